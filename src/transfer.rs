//! `transfer`: moves the ownership of a user's objects to another user.
//!
//! REST v2 first: both users are looked up (`users/search`), the objects
//! the first authored are listed in each of its orgs (`metadata/search`
//! with `created_by_user_identifiers`: liveboards, answers, tables,
//! connections) and reassigned there (`security/metadata/assign` with
//! `current_owner_identifier`, so only that user's objects move). A cluster
//! without v2 gets REST v1's `user/transfer/ownership`, which moves all of
//! them at once. ThoughtSpot refuses transfers to or from `system` and the
//! administrative user (`tsadmin`); so does this, before asking.

use reqwest::Method;
use serde_json::{Value, json};

use crate::client::auth::{Auth, Scope};
use crate::client::http::{Body, Http, Request};
use crate::client::v2::V2;
use crate::client::{ClientError, Connection};

const USERS_SEARCH: &str = "/api/rest/2.0/users/search";
const METADATA_SEARCH: &str = "/api/rest/2.0/metadata/search";
const ASSIGN: &str = "/api/rest/2.0/security/metadata/assign";
const V1_TRANSFER: &str = "/callosum/v1/tspublic/v1/user/transfer/ownership";
/// The kinds of object a user can own.
const KINDS: &[&str] = &["LIVEBOARD", "ANSWER", "LOGICAL_TABLE", "CONNECTION"];
/// Users ThoughtSpot transfers nothing to or from.
const NO_TRANSFER: &[&str] = &["system", "tsadmin"];
const PAGE: usize = 500;

/// What to transfer.
#[derive(Clone, Debug)]
pub struct TransferOptions {
    /// The current owner's username.
    pub from: String,
    /// The new owner's username.
    pub to: String,
    /// List the objects only.
    pub dry_run: bool,
}

/// An object that changes owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owned {
    /// Its GUID.
    pub guid: String,
    /// Its name.
    pub name: String,
    /// LIVEBOARD, ANSWER, LOGICAL_TABLE or CONNECTION.
    pub kind: String,
    /// The org it is in.
    pub org: i64,
}

/// What a transfer did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transferred {
    /// Over REST v2: these objects (nothing was sent in a dry run).
    Objects(Vec<Owned>),
    /// Over REST v1: all of the user's objects, which v1 does not list.
    All,
}

/// A transfer that did not happen.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// A transfer ThoughtSpot refuses, or nonsense.
    #[error("{0}")]
    Refused(String),
    /// A user that does not exist.
    #[error(
        "there is no user {name:?} on {url}; check the username (`ts-principals fetch` lists them)"
    )]
    NoSuchUser {
        /// The username.
        name: String,
        /// The cluster.
        url: String,
    },
    /// The cluster refused a request (4xx).
    #[error(
        "the cluster refused the transfer: {message} ({method} {path}, HTTP {status}); nothing more was sent"
    )]
    ClusterRefused {
        /// Method.
        method: &'static str,
        /// Path.
        path: String,
        /// HTTP status.
        status: u16,
        /// The cluster's message.
        message: String,
    },
    /// Network or server failure.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// An answer that is not what the API returns.
    #[error("{path} answered something that is not {expected}: {problem}")]
    Answer {
        /// Path.
        path: &'static str,
        /// What was expected.
        expected: &'static str,
        /// What is wrong.
        problem: String,
    },
}

impl TransferError {
    /// True when the cluster or the network failed (exit code 3), not the
    /// request.
    pub fn is_cluster(&self) -> bool {
        matches!(
            self,
            TransferError::Client(_) | TransferError::Answer { .. }
        )
    }
}

/// Checks what ThoughtSpot would refuse anyway.
pub fn check(options: &TransferOptions) -> Result<(), TransferError> {
    for name in [&options.from, &options.to] {
        if name.trim().is_empty() {
            return Err(TransferError::Refused(
                "--from and --to name users: a username is empty".into(),
            ));
        }
        if NO_TRANSFER
            .iter()
            .any(|n| n.eq_ignore_ascii_case(name.trim()))
        {
            return Err(TransferError::Refused(format!(
                "ThoughtSpot transfers no objects to or from `{name}` (the system user and the \
                 administrative user); choose another user"
            )));
        }
    }
    if options.from.trim().eq_ignore_ascii_case(options.to.trim()) {
        return Err(TransferError::Refused(format!(
            "--from and --to are the same user ({}); nothing to transfer",
            options.from
        )));
    }
    Ok(())
}

fn refused(method: &'static str, path: &str, reply: &crate::client::http::Reply) -> TransferError {
    TransferError::ClusterRefused {
        method,
        path: path.to_owned(),
        status: reply.status.as_u16(),
        message: reply.message(),
    }
}

/// Transfers (or, in a dry run, lists) the objects of `options.from`.
pub fn run(
    connection: &Connection,
    options: &TransferOptions,
) -> Result<Transferred, TransferError> {
    check(options)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ClientError::Setup(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(transfer(connection, options))
}

/// A user as `users/search` gives it: GUID and orgs.
struct Found {
    id: String,
    orgs: Vec<i64>,
}

/// The user called `name`: searched in the Primary org, then in every org
/// in turn (a Primary-org search sees that org's users only). `Ok(None)`: the
/// cluster has no REST v2.
async fn find_user(api: &V2<'_>, name: &str) -> Result<Option<Option<Found>>, TransferError> {
    match search_user(api, name, None).await? {
        Some(None) => {}
        other => return Ok(other),
    }
    let Some(orgs) = api.orgs().await? else {
        return Ok(Some(None));
    };
    for org in orgs
        .iter()
        .filter_map(|o| o.id())
        .filter(|&o| o != crate::model::PRIMARY_ORG_ID)
    {
        if let Some(Some(found)) = search_user(api, name, Some(org)).await? {
            return Ok(Some(Some(found)));
        }
    }
    Ok(Some(None))
}

async fn search_user(
    api: &V2<'_>,
    name: &str,
    org: Option<i64>,
) -> Result<Option<Option<Found>>, TransferError> {
    let mut request = json!({"user_identifier": name, "record_offset": 0, "record_size": 10});
    if let Some(org) = org {
        request["org_identifiers"] = json!([org.to_string()]);
    }
    let reply = api
        .call(Method::POST, USERS_SEARCH, Some(&request), None)
        .await?;
    // No users/search at all: a cluster without REST v2.
    if reply.status.as_u16() == 404 {
        return Ok(None);
    }
    if reply.status.is_client_error() {
        return Err(refused("POST", USERS_SEARCH, &reply));
    }
    let body = reply.success(&Method::POST, USERS_SEARCH)?;
    let users: Vec<Value> = serde_json::from_slice(&body).map_err(|e| TransferError::Answer {
        path: USERS_SEARCH,
        expected: "a list of users",
        problem: e.to_string(),
    })?;
    let user = users.into_iter().find(|u| {
        u.get("name")
            .and_then(Value::as_str)
            .is_some_and(|n| n.eq_ignore_ascii_case(name))
    });
    Ok(Some(user.and_then(|u| {
        let id = u.get("id")?.as_str()?.to_owned();
        let mut orgs: Vec<i64> = (u
            .get("orgs")
            .and_then(Value::as_array)
            .into_iter()
            .flatten())
        .filter_map(|o| o.get("id").and_then(Value::as_i64))
        .collect();
        if orgs.is_empty() {
            orgs.push(crate::model::PRIMARY_ORG_ID);
        }
        Some(Found { id, orgs })
    })))
}

/// The objects `author` (GUID or name) owns in `scope`.
pub(crate) async fn owned(
    api: &V2<'_>,
    author: &str,
    scope: Scope,
) -> Result<Vec<Owned>, TransferError> {
    let org = scope.unwrap_or(crate::model::PRIMARY_ORG_ID);
    let mut out = Vec::new();
    let metadata: Vec<Value> = KINDS.iter().map(|k| json!({"type": k})).collect();
    loop {
        let request = json!({
            "metadata": metadata,
            "created_by_user_identifiers": [author],
            "record_offset": out.len(),
            "record_size": PAGE,
        });
        let reply = api
            .call(Method::POST, METADATA_SEARCH, Some(&request), scope)
            .await?;
        if reply.status.is_client_error() {
            return Err(refused("POST", METADATA_SEARCH, &reply));
        }
        let body = reply.success(&Method::POST, METADATA_SEARCH)?;
        let page: Vec<Value> =
            serde_json::from_slice(&body).map_err(|e| TransferError::Answer {
                path: METADATA_SEARCH,
                expected: "a list of metadata objects",
                problem: e.to_string(),
            })?;
        let n = page.len();
        for item in page {
            let text = |key: &str| {
                item.get(key)
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned()
            };
            let guid = text("metadata_id");
            if guid.is_empty() || out.iter().any(|o: &Owned| o.guid == guid) {
                continue;
            }
            out.push(Owned {
                guid,
                name: text("metadata_name"),
                kind: text("metadata_type"),
                org,
            });
        }
        if n < PAGE {
            return Ok(out);
        }
    }
}

/// [`run`] inside a runtime.
pub(crate) async fn transfer(
    connection: &Connection,
    options: &TransferOptions,
) -> Result<Transferred, TransferError> {
    let http = Http::new(connection)?;
    let auth = Auth::new(connection.credentials.clone())?;
    let api = V2 {
        http: &http,
        auth: &auth,
    };
    let url = http.base().to_owned();
    // No REST v2 at all (an older software cluster): v1 from the start.
    if let Err(ClientError::Status { status: 404, .. }) = api.system().await {
        return v1_transfer(&http, connection, options).await;
    }
    let from = match find_user(&api, &options.from).await? {
        None => return v1_transfer(&http, connection, options).await,
        Some(None) => {
            return Err(TransferError::NoSuchUser {
                name: options.from.clone(),
                url,
            });
        }
        Some(Some(user)) => user,
    };
    let Some(Some(to)) = find_user(&api, &options.to).await? else {
        return Err(TransferError::NoSuchUser {
            name: options.to.clone(),
            url,
        });
    };
    let mut objects = Vec::new();
    for &org in &from.orgs {
        objects.extend(owned(&api, &from.id, Some(org)).await?);
    }
    if options.dry_run || objects.is_empty() {
        return Ok(Transferred::Objects(objects));
    }
    for &org in &from.orgs {
        let metadata: Vec<Value> = (objects.iter())
            .filter(|o| o.org == org)
            .map(|o| json!({"identifier": o.guid, "type": o.kind}))
            .collect();
        if metadata.is_empty() {
            continue;
        }
        let request = json!({
            "metadata": metadata,
            "user_identifier": to.id,
            "current_owner_identifier": from.id,
        });
        let reply = api
            .call_once(Method::POST, ASSIGN, Some(&request), Some(org) as Scope)
            .await?;
        // An older cluster (reads over v2, writes over v1) answers 404 for
        // the path; a 404 about a user or an object names it.
        let message = reply.message().to_lowercase();
        let names_one = [&options.from, &options.to, &from.id, &to.id]
            .iter()
            .map(|s| s.to_lowercase())
            .chain(objects.iter().map(|o| o.guid.to_lowercase()))
            .any(|s| message.contains(&s));
        if reply.status.as_u16() == 404 && !names_one {
            return v1_transfer(&http, connection, options).await;
        }
        if reply.status.is_client_error() {
            return Err(refused("POST", ASSIGN, &reply));
        }
        reply.success(&Method::POST, ASSIGN)?;
    }
    Ok(Transferred::Objects(objects))
}

async fn v1_transfer(
    http: &Http,
    connection: &Connection,
    options: &TransferOptions,
) -> Result<Transferred, TransferError> {
    if options.dry_run {
        return Err(TransferError::Refused(
            "the cluster has no REST v2, and v1 cannot list a user's objects: a dry run is not possible"
                .into(),
        ));
    }
    crate::client::v1::sign_in(
        http,
        &connection.credentials,
        "transfer on a cluster without REST v2",
    )
    .await?;
    let path = format!(
        "{V1_TRANSFER}?fromUserName={}&toUserName={}",
        url::form_urlencoded::byte_serialize(options.from.as_bytes()).collect::<String>(),
        url::form_urlencoded::byte_serialize(options.to.as_bytes()).collect::<String>()
    );
    let request = Request {
        method: Method::POST,
        path: &path,
        body: Body::None,
        bearer: None,
        v1: true,
    };
    let reply = http.send_once(&request, Default::default()).await?;
    if reply.status.is_client_error() {
        return Err(refused("POST", V1_TRANSFER, &reply));
    }
    reply.success(&Method::POST, V1_TRANSFER)?;
    Ok(Transferred::All)
}
