//! REST v2 calls: the cluster's identity, its orgs, and search pages.

use bytes::Bytes;
use reqwest::Method;
use serde::Deserialize;
use serde::de::IgnoredAny;

use super::auth::{Auth, Scope};
use super::error::ClientError;
use super::http::{Body, Extra, Http, Reply, Request};
use super::paging::Fetched;

pub(crate) const SYSTEM_PATH: &str = "/api/rest/2.0/system";
pub(crate) const SESSION_USER_PATH: &str = "/api/rest/2.0/auth/session/user";
pub(crate) const ORGS_PATH: &str = "/api/rest/2.0/orgs/search";
pub(crate) const USERS_PATH: &str = "/api/rest/2.0/users/search";
pub(crate) const GROUPS_PATH: &str = "/api/rest/2.0/groups/search";

/// How often one request may renew a refused token: pages in flight at
/// once may all find the old token expired and share the new one.
const RENEWALS: u32 = 3;

/// What `GET /api/rest/2.0/system` says about the cluster.
#[derive(Debug, Deserialize)]
pub(crate) struct System {
    /// The cluster's id (the snapshot's `cluster_id`).
    #[serde(default)]
    pub id: Option<serde_json::Value>,
    /// The cluster's name.
    #[serde(default)]
    pub name: Option<String>,
    /// The software release, e.g. `10.4.0.cl` (Cloud releases end in
    /// `.cl`, Software releases in `.sw`).
    #[serde(default)]
    pub release_version: Option<String>,
    /// The deployment: `SAAS` on ThoughtSpot Cloud (what cs_tools reads
    /// as "is cloud"); other values are taken for Software.
    #[serde(default, rename = "type")]
    pub deployment: Option<String>,
    /// The cluster's time zone (an IANA name): the zone of the activity
    /// worksheets' times on ThoughtSpot Software.
    #[serde(default)]
    pub time_zone: Option<String>,
}

impl System {
    /// ThoughtSpot Cloud: `SAAS`, or a `.cl` release.
    pub fn is_cloud(&self) -> bool {
        self.deployment.as_deref() == Some("SAAS")
            || self
                .release_version
                .as_deref()
                .is_some_and(|r| r.ends_with(".cl"))
    }

    /// The id as text (clusters send a string; a number is accepted).
    pub fn id(&self) -> Option<String> {
        match &self.id {
            Some(serde_json::Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_owned()),
            Some(serde_json::Value::Number(n)) => Some(n.to_string()),
            _ => None,
        }
    }
}

/// An org as `orgs/search` lists it, kept whole for the snapshot.
#[derive(Debug)]
pub(crate) struct OrgHeader(pub serde_json::Value);

impl OrgHeader {
    /// The numeric id (sent as a number or a numeric string).
    pub fn id(&self) -> Option<i64> {
        match self.0.get("id")? {
            serde_json::Value::Number(n) => n.as_i64(),
            serde_json::Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// The name.
    pub fn name(&self) -> Option<&str> {
        self.0.get("name")?.as_str()
    }
}

/// REST v2 with one set of credentials.
pub(crate) struct V2<'a> {
    pub http: &'a Http,
    pub auth: &'a Auth,
}

impl V2<'_> {
    /// Sends an authorized request in `scope`; a refused token is replaced
    /// (it may have expired mid-run) up to [`RENEWALS`] times before the
    /// refusal is reported.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
        scope: Scope,
    ) -> Result<Reply, ClientError> {
        self.call_with(method, path, body, scope, false).await
    }

    /// Like [`V2::call`], but the request reaches the cluster at most once:
    /// no retry after a broken connection, a timeout or a 5xx, for requests
    /// that are not safe to repeat (a TML import). A refused token is still
    /// renewed, as the cluster did nothing with the request.
    pub async fn call_once(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
        scope: Scope,
    ) -> Result<Reply, ClientError> {
        self.call_with(method, path, body, scope, true).await
    }

    async fn call_with(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
        scope: Scope,
        once: bool,
    ) -> Result<Reply, ClientError> {
        let mut renewals = 0;
        loop {
            let lease = self.auth.lease(self.http, scope).await?;
            let request = Request {
                method: method.clone(),
                path,
                body: body.map_or(Body::None, Body::Json),
                bearer: Some(&lease.token),
                v1: false,
            };
            let reply = if once {
                self.http.send_once(&request, Extra::default()).await?
            } else {
                self.http.send(&request).await?
            };
            if reply.status.as_u16() == 401
                && renewals < RENEWALS
                && self.auth.refused(scope, &lease).await
            {
                tracing::debug!("{path}: token refused (expired?); signing in again");
                renewals += 1;
                continue;
            }
            if matches!(reply.status.as_u16(), 401 | 403) {
                return Err(self.auth.refusal(&method, path, &reply, scope));
            }
            return Ok(reply);
        }
    }

    /// `GET /api/rest/2.0/system`.
    pub async fn system(&self) -> Result<System, ClientError> {
        let body = self
            .call(Method::GET, SYSTEM_PATH, None, None)
            .await?
            .success(&Method::GET, SYSTEM_PATH)?;
        serde_json::from_slice(&body).map_err(|e| malformed("GET", SYSTEM_PATH, "", e))
    }

    /// The org the credentials' token is of (`current_org` of
    /// `GET /api/rest/2.0/auth/session/user`) in `scope`; `Ok(None)` when the
    /// cluster does not say.
    pub async fn session_org(&self, scope: Scope) -> Result<Option<i64>, ClientError> {
        let reply = self
            .call(Method::GET, SESSION_USER_PATH, None, scope)
            .await?;
        if matches!(reply.status.as_u16(), 400 | 404) {
            return Ok(None);
        }
        let body = reply.success(&Method::GET, SESSION_USER_PATH)?;
        let user: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| malformed("GET", SESSION_USER_PATH, "", e))?;
        Ok(OrgHeader(user.get("current_org").cloned().unwrap_or_default()).id())
    }

    /// `GET /api/rest/2.0/auth/session/user`: the signed-in user's name
    /// (`Ok(None)` when the cluster does not say).
    pub async fn session_user(&self) -> Result<Option<String>, ClientError> {
        let reply = self
            .call(Method::GET, SESSION_USER_PATH, None, None)
            .await?;
        if matches!(reply.status.as_u16(), 400 | 404) {
            return Ok(None);
        }
        let body = reply.success(&Method::GET, SESSION_USER_PATH)?;
        let user: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| malformed("GET", SESSION_USER_PATH, "", e))?;
        Ok(user.get("name").and_then(|n| n.as_str()).map(str::to_owned))
    }

    /// `POST /api/rest/2.0/orgs/search`: the orgs.
    /// `Ok(None)` when the cluster will not list orgs (orgs not enabled, or
    /// the user is no cluster admin).
    pub async fn orgs(&self) -> Result<Option<Vec<OrgHeader>>, ClientError> {
        let request = serde_json::json!({});
        let reply = match self
            .call(Method::POST, ORGS_PATH, Some(&request), None)
            .await
        {
            Ok(reply) => reply,
            Err(ClientError::Auth {
                status: 403,
                message,
                ..
            }) => {
                tracing::warn!(
                    "cannot list orgs (HTTP 403: {message}); fetching the credentials' own org only"
                );
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        if matches!(reply.status.as_u16(), 400 | 404) {
            tracing::warn!(
                "cannot list orgs (HTTP {}: {}); fetching the credentials' own org only",
                reply.status.as_u16(),
                reply.message()
            );
            return Ok(None);
        }
        let body = reply.success(&Method::POST, ORGS_PATH)?;
        let orgs: Vec<serde_json::Value> =
            serde_json::from_slice(&body).map_err(|e| malformed("POST", ORGS_PATH, "", e))?;
        Ok(Some(orgs.into_iter().map(OrgHeader).collect()))
    }

    /// One page of `users/search` or `groups/search` in `scope`, and the
    /// records on it that belong to other orgs than the one searched. With a
    /// bearer token (not scoped to an org) the org is named in the request.
    pub async fn search_page(
        &self,
        path: &str,
        scope: Scope,
        offset: u64,
        size: u32,
        context: &str,
    ) -> Result<(Fetched, Vec<Stray>), ClientError> {
        let mut request = serde_json::json!({
            "record_offset": offset,
            "record_size": size,
        });
        if let (Some(org), false) = (scope, self.auth.scopes_tokens()) {
            request["org_identifiers"] = serde_json::json!([org.to_string()]);
        }
        let body = self
            .call(Method::POST, path, Some(&request), scope)
            .await?
            .success(&Method::POST, path)?;
        let (rows, strays) =
            read_page(&body, scope).map_err(|e| malformed("POST", path, context, e))?;
        Ok((Fetched { rows, body }, strays))
    }
}

/// A record a search in one org returned although its `orgs` do not
/// include that org.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Stray {
    /// Its place on the page.
    pub index: usize,
    /// Its name, for messages.
    pub name: String,
    /// The orgs it says it belongs to.
    pub orgs: Vec<i64>,
}

/// The number of records on a search page and, when the search was in
/// `scope`'s org, the records whose `orgs` leave that org out (records
/// naming no orgs are taken as the org's).
fn read_page(body: &[u8], scope: Scope) -> Result<(usize, Vec<Stray>), serde_json::Error> {
    #[derive(Deserialize)]
    struct Record {
        #[serde(default)]
        name: Option<String>,
        #[serde(default)]
        orgs: Option<Vec<OrgRef>>,
    }
    #[derive(Deserialize)]
    struct OrgRef {
        #[serde(default)]
        id: Option<serde_json::Value>,
    }
    let Some(org) = scope else {
        return count_records(body).map(|rows| (rows, Vec::new()));
    };
    let records: Vec<Record> = serde_json::from_slice(body)?;
    let strays = records
        .iter()
        .enumerate()
        .filter_map(|(index, record)| {
            let orgs: Vec<i64> = record
                .orgs
                .iter()
                .flatten()
                .filter_map(|o| match o.id.as_ref()? {
                    serde_json::Value::Number(n) => n.as_i64(),
                    serde_json::Value::String(s) => s.trim().parse().ok(),
                    _ => None,
                })
                .collect();
            (!orgs.is_empty() && !orgs.contains(&org)).then(|| Stray {
                index,
                name: record.name.clone().unwrap_or_else(|| "?".into()),
                orgs,
            })
        })
        .collect();
    Ok((records.len(), strays))
}

/// `body` (a JSON array) without the records at `drop` (sorted indices).
/// Rare, so the records are simply parsed and written again.
pub(crate) fn without_records(body: &[u8], drop: &[usize]) -> Result<Bytes, serde_json::Error> {
    let records: Vec<serde_json::Value> = serde_json::from_slice(body)?;
    let kept: Vec<_> = records
        .into_iter()
        .enumerate()
        .filter(|(i, _)| drop.binary_search(i).is_err())
        .map(|(_, r)| r)
        .collect();
    serde_json::to_vec(&kept).map(Bytes::from)
}

/// The number of records in a JSON array body.
pub(crate) fn count_records(body: &[u8]) -> Result<usize, serde_json::Error> {
    serde_json::from_slice::<Vec<IgnoredAny>>(body).map(|v| v.len())
}

pub(crate) fn malformed(
    method: &'static str,
    path: &str,
    context: &str,
    error: serde_json::Error,
) -> ClientError {
    let what = match error.classify() {
        serde_json::error::Category::Eof => "the JSON ends early (truncated)",
        serde_json::error::Category::Syntax => "not valid JSON",
        _ => "not the documented shape",
    };
    ClientError::Malformed {
        method,
        path: path.to_owned(),
        context: context.to_owned(),
        reason: format!("{what}: {error}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_of_other_orgs_are_found_whatever_their_ids_look_like() {
        let page = br#"[
            {"name": "a", "orgs": [{"id": 7}]},
            {"name": "b", "orgs": [{"id": "0", "name": "Primary"}, {"id": "7"}]},
            {"name": "c", "orgs": [{"id": "0"}]},
            {"name": "d"},
            {"name": "e", "orgs": []},
            {"name": "f", "orgs": null},
            {"orgs": [{"id": 8}, {"id": 9}]}
        ]"#;
        let (rows, strays) = read_page(page, Some(7)).unwrap();
        assert_eq!(rows, 7);
        let found: Vec<(usize, &str, &[i64])> = strays
            .iter()
            .map(|s| (s.index, s.name.as_str(), &s.orgs[..]))
            .collect();
        assert_eq!(found, [(2, "c", &[0][..]), (6, "?", &[8, 9][..])]);
        // Searched in no particular org: nothing to check.
        assert_eq!(read_page(page, None).unwrap(), (7, Vec::new()));
    }

    #[test]
    fn strays_are_cut_out_of_the_page() {
        let page = br#"[{"name":"a"},{"name":"b"},{"name":"c"}]"#;
        let kept = without_records(page, &[0, 2]).unwrap();
        assert_eq!(&kept[..], br#"[{"name":"b"}]"#);
    }
}
