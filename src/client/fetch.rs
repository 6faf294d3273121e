//! The whole fetch: sign in, identify the cluster, pick the orgs, and page
//! through users and groups in each, keeping every response.

use std::collections::HashMap;
use std::sync::PoisonError;

use bytes::Bytes;
use tokio::sync::Semaphore;

use super::auth::{Auth, Scope, describe};
use super::error::ClientError;
use super::http::Http;
use super::paging::{self, Fetched};
use super::v2::{self, GROUPS_PATH, OrgHeader, Stray, USERS_PATH, V2};
use super::{Connection, v1};
use crate::model::{DEFAULT_CLUSTER_ID, Source, timestamp_now};

/// Which REST API to use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Api {
    /// v2, falling back to v1 when the cluster has no v2.
    #[default]
    Auto,
    /// REST v2 only.
    V2,
    /// REST v1 `user/list` only (older software clusters).
    V1,
}

/// Which orgs to fetch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum OrgSelection {
    /// Every org the credentials can list.
    #[default]
    All,
    /// These orgs, by name or numeric id.
    Named(Vec<String>),
}

/// How to fetch.
#[derive(Clone, Debug)]
pub struct FetchOptions {
    /// Which API.
    pub api: Api,
    /// Which orgs (v2).
    pub orgs: OrgSelection,
    /// `record_size` asked for per page.
    pub page_size: u32,
    /// Requests in flight at once, across all orgs.
    pub concurrency: u32,
    /// Cluster id overriding the cluster's own (`--cluster-id`).
    pub cluster_id: Option<String>,
    /// Cluster id for v1, which reports none (`data.cluster_id`); the URL's
    /// host otherwise.
    pub fallback_cluster_id: Option<String>,
}

impl Default for FetchOptions {
    fn default() -> Self {
        Self {
            api: Api::Auto,
            orgs: OrgSelection::All,
            page_size: 1000,
            concurrency: 4,
            cluster_id: None,
            fallback_cluster_id: None,
        }
    }
}

/// Hears how a fetch is going (a progress bar, log lines).
pub trait Progress: Sync {
    /// A step began, e.g. "signing in".
    fn step(&self, message: &str);
    /// A page arrived: `kind` is "users" or "groups"; `rows` in it.
    fn page(&self, kind: &'static str, rows: usize);
}

/// A progress that says nothing.
impl Progress for () {
    fn step(&self, _: &str) {}
    fn page(&self, _: &'static str, _: usize) {}
}

/// One response body, named for messages
/// (`POST /api/rest/2.0/users/search (org 0, records from 1000)`).
#[derive(Clone, Debug)]
pub struct Response {
    /// What was requested.
    pub name: String,
    /// The JSON body: an array of orgs, users or groups (v2), or a v1
    /// `user/list` array.
    pub body: Bytes,
}

/// Everything a snapshot is made of, as the cluster sent it.
#[derive(Debug)]
pub struct Responses {
    /// Where the responses came from.
    pub source: Source,
    /// Every response body, in a stable order.
    pub responses: Vec<Response>,
    /// The orgs fetched, when only some were asked for.
    pub only_orgs: Option<Vec<i64>>,
}

/// Fetches every response the principals are made of.
pub fn fetch(
    connection: &Connection,
    options: &FetchOptions,
    progress: &dyn Progress,
) -> Result<Responses, ClientError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| ClientError::Setup(format!("cannot start the async runtime: {e}")))?;
    let started = std::time::Instant::now();
    let fetched = runtime.block_on(fetch_responses(connection, options, progress))?;
    drop(runtime);
    tracing::debug!(
        "{} responses ({} bytes) in {:.2?}",
        fetched.responses.len(),
        fetched
            .responses
            .iter()
            .map(|r| r.body.len())
            .sum::<usize>(),
        started.elapsed()
    );
    Ok(fetched)
}

/// Fetches every response the snapshot is made of.
async fn fetch_responses(
    connection: &Connection,
    options: &FetchOptions,
    progress: &dyn Progress,
) -> Result<Responses, ClientError> {
    let http = Http::new(connection)?;
    if options.api == Api::V1 {
        return fetch_v1(&http, connection, options, progress).await;
    }
    let auth = Auth::new(connection.credentials.clone())?;
    tracing::info!(
        "signing in to {} with a {}{}",
        http.base(),
        auth.method(),
        connection
            .credentials
            .username
            .as_ref()
            .map(|u| format!(" as {u}"))
            .unwrap_or_default()
    );
    progress.step("signing in");
    let api = V2 {
        http: &http,
        auth: &auth,
    };
    let system = match api.system().await {
        Ok(system) => system,
        Err(ClientError::Status { status: 404, .. }) if options.api == Api::Auto => {
            tracing::info!("{} has no REST v2 API; falling back to v1", http.base());
            return fetch_v1(&http, connection, options, progress).await;
        }
        Err(e) => return Err(e),
    };
    let cluster_id = options
        .cluster_id
        .clone()
        .or_else(|| system.id())
        .ok_or_else(|| ClientError::Malformed {
            method: "GET",
            path: v2::SYSTEM_PATH.to_owned(),
            context: String::new(),
            reason: "no `id`; pass --cluster-id to name the cluster".into(),
        })?;
    tracing::info!(
        "cluster {}{} (release {})",
        cluster_id,
        system
            .name
            .as_ref()
            .map(|n| format!(" \"{n}\""))
            .unwrap_or_default(),
        system.release_version.as_deref().unwrap_or("unknown")
    );

    progress.step("listing orgs");
    let (org_response, scopes) = select_orgs(&api, &options.orgs).await?;
    let scope_names: Vec<String> = scopes.iter().map(|&s| describe(s)).collect();
    tracing::info!("fetching users and groups in {}", scope_names.join(", "));
    progress.step("fetching users and groups");

    let gate = Semaphore::new(options.concurrency.max(1) as usize);
    let window = options.concurrency.max(1) as usize;
    let listings = scopes.iter().flat_map(|&scope| {
        [("users", USERS_PATH), ("groups", GROUPS_PATH)].map(|(kind, path)| {
            list(
                &api,
                &gate,
                kind,
                path,
                scope,
                options.page_size,
                window,
                progress,
            )
        })
    });
    let listed = futures_util::future::try_join_all(listings).await?;

    let mut responses = Vec::new();
    if let Some(body) = org_response {
        responses.push(Response {
            name: format!("POST {}", v2::ORGS_PATH),
            body,
        });
    }
    responses.extend(listed.into_iter().flatten());
    let source = Source {
        cluster_id,
        cluster_url: Some(http.base().to_owned()),
        release_version: system.release_version,
        api: Some("v2".into()),
        fetched_at: Some(timestamp_now()),
    };
    let only_orgs = match options.orgs {
        OrgSelection::Named(_) => Some(scopes.iter().flatten().copied().collect()),
        OrgSelection::All => None,
    };
    Ok(Responses {
        source,
        responses,
        only_orgs,
    })
}

/// Lists every page of one search in one scope, as named responses.
#[allow(clippy::too_many_arguments)]
async fn list(
    api: &V2<'_>,
    gate: &Semaphore,
    kind: &'static str,
    path: &'static str,
    scope: Scope,
    page_size: u32,
    window: usize,
    progress: &dyn Progress,
) -> Result<Vec<Response>, ClientError> {
    let name = |offset: u64| format!(" ({}, records from {offset})", describe(scope));
    let strays = std::sync::Mutex::new(HashMap::<u64, Vec<Stray>>::new());
    let fetch_page = |offset: u64, size: u32| {
        let context = name(offset);
        let strays = &strays;
        async move {
            let _permit = gate
                .acquire()
                .await
                .map_err(|_| ClientError::Setup("the request gate closed".into()))?;
            let (page, found): (Fetched, _) =
                api.search_page(path, scope, offset, size, &context).await?;
            if !found.is_empty() {
                let mut strays = strays.lock().unwrap_or_else(PoisonError::into_inner);
                strays.insert(offset, found);
            }
            progress.page(kind, page.rows);
            Ok(page)
        }
    };
    let pages = paging::list_all(page_size, window, fetch_page, |offset| {
        ("POST", path.to_owned(), name(offset))
    })
    .await?;
    let listed: usize = pages.iter().map(|p| p.rows).sum();
    tracing::debug!(
        "{kind} in {}: {listed} records in {} pages",
        describe(scope),
        pages.len()
    );
    // Pages fetched ahead past the end are not kept, nor their strays.
    let mut strays = strays.into_inner().unwrap_or_else(PoisonError::into_inner);
    let mut dropped: Vec<Stray> = Vec::new();
    let mut responses = Vec::with_capacity(pages.len());
    for page in pages {
        let mut body = page.body;
        if let Some(found) = strays.remove(&page.offset) {
            let indices: Vec<usize> = found.iter().map(|s| s.index).collect();
            body = v2::without_records(&body, &indices)
                .map_err(|e| v2::malformed("POST", path, &name(page.offset), e))?;
            dropped.extend(found);
        }
        responses.push(Response {
            name: format!("POST {path}{}", name(page.offset)),
            body,
        });
    }
    if let (Some(org), Some(first)) = (scope, dropped.first()) {
        let example = format!(
            "{} \"{}\" of org {}",
            kind.trim_end_matches('s'),
            first.name,
            first
                .orgs
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
        if dropped.len() == listed {
            let hint = if api.auth.scopes_tokens() {
                "check that the user belongs to that org, or fetch the other orgs alone (--org)"
            } else {
                "a bearer token may answer for the org it was created in only: create one for \
                 this org, or sign in with a username and a password or secret key, for which \
                 ts-principals gets a token per org"
            };
            return Err(ClientError::WrongOrg {
                path: path.to_owned(),
                org,
                count: listed,
                example,
                hint,
            });
        }
        tracing::warn!(
            "POST {path} in org {org}: left out {} of the {listed} {kind} the cluster sent, which \
             belong to other orgs (e.g. {example})",
            dropped.len()
        );
    }
    Ok(responses)
}

/// The org list to keep in the snapshot (only the selected orgs) and the
/// scopes to search in.
async fn select_orgs(
    api: &V2<'_>,
    selection: &OrgSelection,
) -> Result<(Option<Bytes>, Vec<Scope>), ClientError> {
    let Some(orgs) = api.orgs().await? else {
        if let OrgSelection::Named(names) = selection {
            return Err(ClientError::Unsupported(format!(
                "cannot list the cluster's orgs, so --org {} cannot be found; fetch without \
                 --org (the credentials' own org), or use a cluster admin's credentials",
                names.join(", ")
            )));
        }
        return Ok((None, vec![None]));
    };
    let chosen: Vec<&OrgHeader> = match selection {
        OrgSelection::All => orgs.iter().collect(),
        OrgSelection::Named(names) => {
            let mut chosen: Vec<&OrgHeader> = Vec::new();
            for wanted in names {
                let found = find_org(&orgs, wanted).ok_or_else(|| {
                    let known: Vec<String> = orgs
                        .iter()
                        .map(|o| {
                            format!(
                                "{} ({})",
                                o.name().unwrap_or("?"),
                                o.id().map_or("?".into(), |i| i.to_string())
                            )
                        })
                        .collect();
                    ClientError::Unsupported(format!(
                        "no org \"{wanted}\" on the cluster; its orgs are: {}",
                        known.join(", ")
                    ))
                })?;
                if !chosen.iter().any(|c| std::ptr::eq(*c, found)) {
                    chosen.push(found);
                }
            }
            chosen
        }
    };
    let mut scopes = Vec::with_capacity(chosen.len());
    let mut kept = Vec::with_capacity(chosen.len());
    for org in chosen {
        let id = org.id().ok_or_else(|| ClientError::Malformed {
            method: "POST",
            path: v2::ORGS_PATH.to_owned(),
            context: String::new(),
            reason: format!("an org without a numeric id: {}", org.0),
        })?;
        scopes.push(Some(id));
        kept.push(&org.0);
    }
    if scopes.is_empty() {
        // A cluster without orgs lists none: search the default one.
        return Ok((None, vec![None]));
    }
    let body = serde_json::to_vec(&kept).map_err(|e| ClientError::Setup(e.to_string()))?;
    Ok((Some(Bytes::from(body)), scopes))
}

/// An org by numeric id, exact name, or name ignoring case.
fn find_org<'o>(orgs: &'o [OrgHeader], wanted: &str) -> Option<&'o OrgHeader> {
    let wanted = wanted.trim();
    let by_id = wanted.parse::<i64>().ok();
    orgs.iter()
        .find(|o| by_id.is_some() && o.id() == by_id)
        .or_else(|| orgs.iter().find(|o| o.name() == Some(wanted)))
        .or_else(|| {
            orgs.iter()
                .find(|o| o.name().is_some_and(|n| n.eq_ignore_ascii_case(wanted)))
        })
}

async fn fetch_v1(
    http: &Http,
    connection: &Connection,
    options: &FetchOptions,
    progress: &dyn Progress,
) -> Result<Responses, ClientError> {
    if matches!(options.orgs, OrgSelection::Named(_)) {
        tracing::warn!("REST v1 has no orgs; --org is ignored");
    }
    progress.step("signing in (REST v1)");
    let body = v1::user_list(http, &connection.credentials).await?;
    let rows =
        v2::count_records(&body).map_err(|e| v2::malformed("GET", v1::USER_LIST_PATH, "", e))?;
    progress.page("users", rows);
    let host = reqwest::Url::parse(http.base())
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned));
    let cluster_id = options
        .cluster_id
        .clone()
        .or_else(|| options.fallback_cluster_id.clone())
        .or(host)
        .unwrap_or_else(|| DEFAULT_CLUSTER_ID.to_owned());
    let source = Source {
        cluster_id,
        cluster_url: Some(http.base().to_owned()),
        release_version: None,
        api: Some("v1".into()),
        fetched_at: Some(timestamp_now()),
    };
    let responses = vec![Response {
        name: format!("GET {}", v1::USER_LIST_PATH),
        body,
    }];
    Ok(Responses {
        source,
        responses,
        only_orgs: None,
    })
}
