//! A stateful fake ThoughtSpot for tests and for trying `fetch` without a
//! cluster: REST v2 (`auth/token/full`, `system`, `orgs/search`,
//! `users/search`, `groups/search`) and v1 (`session/login`, `user/list`,
//! `session/logout`) on 127.0.0.1, with real paging semantics, org-scoped
//! tokens, and faults switched on at will: rate limits with Retry-After,
//! 503 bursts, slow responses, connections dropped mid-body, malformed
//! JSON, failing pages, expiring tokens, a page-size cap, no v2 at all,
//! endless bodies, gzip bombs, redirects elsewhere and errors that echo
//! the request.
//!
//! With `Faults::falcon` it is a ThoughtSpot Software cluster with Falcon:
//! remote TQL and the tsload service (see [`falcon`]).
//!
//! With an [`activity::ActivitySet`] (`Shared::set_activity`) it serves
//! the system worksheets of user activity: `metadata/search` and
//! `searchdata` (see [`activity`]).
//!
//! It keeps the tables, models and worksheets imported through
//! `metadata/tml/import`, per org, checking each document as a cluster does
//! (YAML 1.1 readings, GUID and obj_id identity, a database table mapped
//! once, references, import policies), and lists them in `metadata/search`
//! (see [`tml`]); faults break an import after it is stored or answer a
//! warning.
//!
//! Principals are writable, as on a cluster with its rules: REST v2
//! `users/create`, `users/{id}/update`, `users/{id}/delete`,
//! `users/import`, the same for groups, `security/metadata/assign`, and v1
//! `user/sync` and `user/transfer/ownership`; searches and `user/list` see
//! writes at once (see [`principals`]).
//!
//! Used by `tests/cli/fetch.rs`, `tests/cli/falcon.rs` and
//! `examples/fake_thoughtspot.rs`.
#![allow(dead_code)]

pub mod activity;
pub mod falcon;
pub mod principals;
pub mod tml;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

/// The account the fake accepts.
pub const USERNAME: &str = "admin";
/// Its password.
pub const PASSWORD: &str = "fake-password-Zq9";
/// Its trusted-authentication secret key.
pub const SECRET_KEY: &str = "fake-secret-key-Kx7";
/// The id `GET /api/rest/2.0/system` reports.
pub const CLUSTER_ID: &str = "fake-cluster-0001";
/// The release it reports.
pub const RELEASE: &str = "10.4.0.cl";
/// The release it reports as a Software cluster (`Faults::software`).
pub const RELEASE_SOFTWARE: &str = "10.1.0.sw";

/// Principals the fake serves.
#[derive(Clone, Debug, Default)]
pub struct Data {
    pub orgs: Vec<Value>,
    pub users: Vec<Value>,
    pub groups: Vec<Value>,
    /// The v1 `user/list` answer, when v1 is served.
    pub v1: Option<Vec<Value>>,
}

impl Data {
    /// From a directory of API-shaped files: `v2_orgs_search.json`,
    /// `v2_users_search.json`, `v2_groups_search.json` (or one
    /// `v2_combined.json`), and `v1_user_list.json` if present. A file path
    /// is read as a combined v2 export.
    pub fn load(path: &Path) -> Result<Self, String> {
        let read = |p: &Path| -> Result<Value, String> {
            let text = std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))?;
            serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", p.display()))
        };
        let array = |v: Value, what: &str| -> Result<Vec<Value>, String> {
            match v {
                Value::Array(items) => Ok(items),
                _ => Err(format!("{what} is not a JSON array")),
            }
        };
        let combined = |v: Value| -> Result<Data, String> {
            let take = |key: &str| match v.get(key) {
                Some(Value::Array(items)) => Ok(items.clone()),
                None => Ok(Vec::new()),
                Some(_) => Err(format!("`{key}` is not an array")),
            };
            Ok(Data {
                orgs: take("orgs")?,
                users: take("users")?,
                groups: take("groups")?,
                v1: None,
            })
        };
        if path.is_file() {
            return combined(read(path)?);
        }
        let file = |name: &str| path.join(name);
        let mut data = if file("v2_users_search.json").is_file() {
            Data {
                orgs: if file("v2_orgs_search.json").is_file() {
                    array(read(&file("v2_orgs_search.json"))?, "v2_orgs_search.json")?
                } else {
                    Vec::new()
                },
                users: array(read(&file("v2_users_search.json"))?, "v2_users_search.json")?,
                groups: if file("v2_groups_search.json").is_file() {
                    array(
                        read(&file("v2_groups_search.json"))?,
                        "v2_groups_search.json",
                    )?
                } else {
                    Vec::new()
                },
                v1: None,
            }
        } else if file("v2_combined.json").is_file() {
            combined(read(&file("v2_combined.json"))?)?
        } else {
            return Err(format!(
                "{}: no v2_users_search.json or v2_combined.json",
                path.display()
            ));
        };
        if file("v1_user_list.json").is_file() {
            data.v1 = Some(array(
                read(&file("v1_user_list.json"))?,
                "v1_user_list.json",
            )?);
        }
        Ok(data)
    }
}

impl Data {
    /// A synthetic cluster: `orgs` orgs (Primary, id 0, among them),
    /// `groups` groups spread over them and nested up to 3 deep, and
    /// `users` users, each in its org's groups (a tenth also in Primary).
    pub fn generated(users: usize, groups: usize, orgs: usize) -> Self {
        let orgs = orgs.max(1);
        let guid = |kind: u64, n: usize| format!("{:08x}-0000-4000-8000-{:012x}", kind, n as u64);
        let org_id = |i: usize| if i == 0 { 0 } else { 1_000_000 + i as i64 };
        let org_list: Vec<Value> = (0..orgs)
            .map(|i| {
                let name = if i == 0 {
                    "Primary".to_owned()
                } else {
                    format!("Tenant {i}")
                };
                json!({"id": org_id(i), "name": name, "status": "ACTIVE",
                       "description": format!("Org {i}"), "visibility": "SHOW"})
            })
            .collect();
        let org_ref = |i: usize| json!({"id": org_id(i), "name": org_list[i]["name"]});
        // Groups of org k are those with index % orgs == k; within an org,
        // every group but the first few has a parent three places earlier.
        let group_org = |g: usize| g % orgs;
        let mut members: Vec<Vec<usize>> = vec![Vec::new(); groups];
        let mut user_list = Vec::with_capacity(users);
        for u in 0..users {
            let home = u % orgs;
            let in_org: Vec<usize> = (0..groups).filter(|g| group_org(*g) == home).collect();
            let mut direct = Vec::new();
            if !in_org.is_empty() {
                for step in [0, 7, 13].iter().take(1 + u % 3) {
                    let g = in_org[(u / orgs + step) % in_org.len()];
                    if !direct.contains(&g) {
                        direct.push(g);
                    }
                }
            }
            let mut user_orgs = vec![home];
            if home != 0 && u % 10 == 0 {
                user_orgs.insert(0, 0);
            }
            for &g in &direct {
                members[g].push(u);
            }
            user_list.push(json!({
                "id": guid(1, u),
                "name": format!("user{u}@example.com"),
                "display_name": format!("User {u}"),
                "visibility": if u % 5 == 0 { "NON_SHARABLE" } else { "SHARABLE" },
                "email": format!("user{u}@example.com"),
                "account_type": "LOCAL_USER",
                "account_status": "ACTIVE",
                "creation_time_in_millis": 1_600_000_000_000i64 + u as i64 * 1000,
                "modification_time_in_millis": 1_600_000_000_000i64 + u as i64 * 2000,
                "orgs": user_orgs.iter().map(|&o| org_ref(o)).collect::<Vec<_>>(),
                "user_groups": direct.iter().map(|&g| json!({"id": guid(2, g), "name": format!("Group {g}")})).collect::<Vec<_>>(),
            }));
        }
        let group_list = (0..groups)
            .map(|g| {
                let children: Vec<usize> = [g + 3 * orgs]
                    .into_iter()
                    .filter(|&c| c < groups && !(c / orgs).is_multiple_of(4))
                    .collect();
                json!({
                    "id": guid(2, g),
                    "name": format!("Group {g}"),
                    "display_name": format!("Group {g}"),
                    "description": format!("Use case {g}"),
                    "type": "LOCAL_GROUP",
                    "visibility": "SHARABLE",
                    "creation_time_in_millis": 1_500_000_000_000i64 + g as i64,
                    "modification_time_in_millis": 1_500_000_000_000i64 + g as i64,
                    "privileges": if g % 4 == 0 { json!(["AUTHORING"]) } else { json!([]) },
                    "orgs": [org_ref(group_org(g))],
                    "sub_groups": children.iter().map(|&c| json!({"id": guid(2, c), "name": format!("Group {c}")})).collect::<Vec<_>>(),
                    "users": members[g].iter().map(|&u| json!({"id": guid(1, u), "name": format!("user{u}@example.com")})).collect::<Vec<_>>(),
                })
            })
            .collect();
        Data {
            orgs: org_list,
            users: user_list,
            groups: group_list,
            v1: None,
        }
    }

    /// The data as one v2 export file (`{"orgs", "users", "groups"}`).
    pub fn to_export(&self) -> Vec<u8> {
        serde_json::to_vec(&json!({"orgs": self.orgs, "users": self.users, "groups": self.groups}))
            .expect("json")
    }
}

/// Faults and limits, changeable while the server runs. Counts are "the
/// next N search requests".
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Added to every response.
    pub latency: Duration,
    /// Most records a page may hold, whatever `record_size` asks.
    pub max_page: Option<usize>,
    /// Every Nth search request is answered 429 with `Retry-After: 1`.
    pub rate_limit_every: Option<usize>,
    /// The next N search requests are answered 503.
    pub unavailable: usize,
    /// The next N search responses break off mid-body.
    pub drop_mid_body: usize,
    /// The next N search responses are malformed JSON (with 200).
    pub malformed: usize,
    /// Search responses are delayed this much more (slow cluster).
    pub slow: Duration,
    /// A search at this record_offset fails with 500, every time.
    pub fail_at_offset: Option<u64>,
    /// Issued tokens are refused (401) after this many uses.
    pub token_uses: Option<usize>,
    /// Serve no REST v2 at all (an old software cluster).
    pub no_v2: bool,
    /// `orgs/search` answers 403 (orgs hidden from this user).
    pub orgs_forbidden: bool,
    /// Search responses never end: `[` and then blanks, forever.
    pub endless_body: bool,
    /// Search responses are gzip-compressed (`Content-Encoding: gzip`) and
    /// inflate to this many bytes: `[`, blanks, `]`.
    pub gzip_bomb: Option<usize>,
    /// Every request is answered `307 Temporary Redirect` to the same path
    /// under this base URL (e.g. another fake's).
    pub redirect_to: Option<String>,
    /// Error responses echo the request (body and `Authorization`) in
    /// their message, as some clusters' do.
    pub echo_requests: bool,
    /// Searches ignore `org_identifiers` and answer in the token's org.
    pub ignore_org_identifiers: bool,
    /// Searches in any other org also list this org's principals that are
    /// not in the org searched (after its own).
    pub leak_org: Option<i64>,
    /// `system` reports a ThoughtSpot Software cluster (`.sw` release)
    /// instead of a Cloud one.
    pub software: bool,
    /// Serve Falcon: remote TQL and the tsload service (else they answer
    /// 404, as on ThoughtSpot Cloud).
    pub falcon: bool,
    /// Load cycles are handed to the fake node on this port (`node_address`).
    pub falcon_node: Option<u16>,
    /// tsload sessions expire (401) after this many uses.
    pub falcon_session_uses: Option<usize>,
    /// Every row uploaded into this table is rejected (its load fails).
    pub falcon_reject: Option<String>,
    /// Uploads into this table fail with 500.
    pub falcon_upload_error: Option<String>,
    /// Each commit is answered this much later (a busy cluster).
    pub falcon_commit_delay: Duration,
    /// The org the activity worksheets live in (0, Primary, by default):
    /// tokens of other orgs find none.
    pub activity_org: i64,
    /// One searchdata query returns at most this many rows in all, at any
    /// offset (`available_data_row_count` says no more).
    pub row_cap: Option<usize>,
    /// The cluster's time zone (IANA name): `system` reports it, and
    /// searchdata's date literals and answers are wall-clock times there.
    pub time_zone: Option<String>,
    /// Every searchdata request fails with 500 and this message.
    pub searchdata_error: Option<String>,
    /// TML imports are processed and stored, then the connection is cut
    /// without an answer (a network failure mid-import).
    pub import_drop_after_store: bool,
    /// TML imports are processed and stored, then answered 504 Gateway
    /// Timeout, as a proxy in front of a slow cluster does.
    pub import_gateway_timeout: bool,
    /// Imported objects of this name are answered WARNING ("fake warning:
    /// NAME"), and imported all the same.
    pub import_warning: Option<String>,
    /// Writes of the principal of this name (case-insensitive) fail with
    /// 500: its create, update or delete, and its entry in an import or a
    /// v1 sync (not a dry run), whose other changes are applied. See
    /// [`principals`].
    pub principal_write_fail: Option<String>,
    /// Dry runs (imports with `dry_run`, v1 sync without `applyChanges`)
    /// also report the principal of this name as deleted, though applying
    /// would not delete it.
    pub dry_run_extra_delete: Option<String>,
    /// The v2 principal write endpoints (create, update, delete, import,
    /// `security/metadata/assign`) answer 404, as on an older cluster;
    /// reads and v1 still work.
    pub no_v2_writes: bool,
}

/// One request, as the fake saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub status: u16,
    /// The org a search ran in.
    pub org: Option<i64>,
    pub offset: Option<u64>,
    pub size: Option<i64>,
    pub authorization: Option<String>,
    pub requested_by: Option<String>,
    pub body: String,
}

struct Token {
    org: i64,
    uses: usize,
}

/// What one org sees: its principals (indices into the data) and their ids.
pub(crate) struct OrgView {
    users: Vec<usize>,
    groups: Vec<usize>,
    user_ids: HashSet<String>,
    group_ids: HashSet<String>,
}

/// The server's state.
pub struct Shared {
    /// The principals (mutable through the write endpoints, see
    /// [`principals`]), their per-org views and the objects users own;
    /// shared with the other nodes of the same fake cluster.
    principals: Arc<Mutex<principals::Store>>,
    pub faults: Mutex<Faults>,
    tokens: Mutex<HashMap<String, Token>>,
    sessions: Mutex<HashSet<String>>,
    seen: Mutex<Vec<Seen>>,
    searches: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    next_id: AtomicU64,
    /// The last gzip bomb made, by inflated size.
    bomb: Mutex<Option<(usize, Bytes)>>,
    /// The port this fake listens on.
    pub port: u16,
    /// Falcon, shared with the other nodes of the same fake cluster.
    pub falcon: Arc<Mutex<falcon::FalconStore>>,
    /// tsload sessions and their uses.
    tsload_sessions: Mutex<HashMap<String, usize>>,
    /// The activity worksheets served (`set_activity`).
    activity: Mutex<Arc<activity::ActivitySet>>,
    /// searchdata requests so far.
    searchdata: AtomicUsize,
    /// The tables, models and worksheets imported, shared with the other
    /// nodes of the same fake cluster.
    tml: Arc<Mutex<tml::Store>>,
}

impl Shared {
    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Search requests so far.
    pub fn searches(&self) -> usize {
        self.searches.load(Ordering::SeqCst)
    }

    /// Most search requests in flight at once.
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight.load(Ordering::SeqCst)
    }

    /// A token for `org`, as a bearer token made elsewhere would be.
    pub fn mint_token(&self, org: i64) -> String {
        let token = self.new_secret("fake-minted");
        self.tokens
            .lock()
            .unwrap()
            .insert(token.clone(), Token { org, uses: 0 });
        token
    }

    /// Every token issued so far.
    pub fn tokens(&self) -> Vec<String> {
        self.tokens.lock().unwrap().keys().cloned().collect()
    }

    /// Changes faults.
    pub fn set(&self, change: impl FnOnce(&mut Faults)) {
        change(&mut self.faults.lock().unwrap());
    }

    /// Works out every org's principals now rather than on first use (so
    /// a benchmark does not time it).
    pub fn prepare_views(&self) {
        let mut store = self.principals.lock().unwrap();
        let orgs: Vec<i64> = store.data.orgs.iter().filter_map(org_id).collect();
        for org in orgs {
            store.view(org);
        }
    }

    /// The orgs of the cluster (`orgs/search`'s answer).
    fn orgs(&self) -> Vec<Value> {
        self.principals.lock().unwrap().data.orgs.clone()
    }

    fn record(&self, seen: Seen) {
        self.seen.lock().unwrap().push(seen);
    }

    fn new_secret(&self, prefix: &str) -> String {
        let n = self.next_id.fetch_add(1, Ordering::SeqCst);
        format!("{prefix}-{n}-{:016x}", fastrand::u64(..))
    }
}

/// A fake ThoughtSpot running on its own thread.
pub struct FakeThoughtSpot {
    pub addr: SocketAddr,
    pub state: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeThoughtSpot {
    /// Serves `data` on 127.0.0.1 at a random port.
    pub fn start(data: Data) -> Self {
        Self::start_on(data, 0, Faults::default())
    }

    /// Serves `data` on 127.0.0.1:`port` (0: a random port) with `faults`.
    pub fn start_on(data: Data, port: u16, faults: Faults) -> Self {
        Self::start_with(data, port, faults, falcon::new_store(), tml::new_store())
    }

    /// Another node of this fake's cluster: its own address and sessions,
    /// the same data, Falcon and imported objects, the same faults as now.
    pub fn start_node(&self) -> Self {
        let faults = self.state.faults.lock().unwrap().clone();
        let node = Self::start_shared(
            self.state.principals.clone(),
            0,
            faults,
            self.state.falcon.clone(),
            self.state.tml.clone(),
        );
        *node.state.activity.lock().unwrap() = self.state.activity();
        node
    }

    fn start_with(
        data: Data,
        port: u16,
        faults: Faults,
        falcon: Arc<Mutex<falcon::FalconStore>>,
        tml: Arc<Mutex<tml::Store>>,
    ) -> Self {
        let principals = Arc::new(Mutex::new(principals::Store::new(data)));
        Self::start_shared(principals, port, faults, falcon, tml)
    }

    fn start_shared(
        principals: Arc<Mutex<principals::Store>>,
        port: u16,
        faults: Faults,
        falcon: Arc<Mutex<falcon::FalconStore>>,
        tml: Arc<Mutex<tml::Store>>,
    ) -> Self {
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).expect("bind 127.0.0.1");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(Shared {
            principals,
            faults: Mutex::new(faults),
            tokens: Mutex::new(HashMap::new()),
            sessions: Mutex::new(HashSet::new()),
            seen: Mutex::new(Vec::new()),
            searches: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
            bomb: Mutex::new(None),
            port: addr.port(),
            falcon,
            tsload_sessions: Mutex::new(HashMap::new()),
            activity: Mutex::new(Arc::default()),
            searchdata: AtomicUsize::new(0),
            tml,
        });
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app = router(state.clone());
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = rx.await;
                    })
                    .await
                    .expect("serve");
            });
        });
        Self {
            addr,
            state,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Blocks until the server stops (for running it by hand).
    pub fn wait(mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for FakeThoughtSpot {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn router(state: Arc<Shared>) -> Router {
    Router::new()
        .route("/api/rest/2.0/auth/token/full", post(token))
        .route("/api/rest/2.0/system", get(system))
        .route("/api/rest/2.0/auth/session/user", get(session_user))
        .route("/api/rest/2.0/orgs/search", post(orgs))
        .route("/api/rest/2.0/users/search", post(users))
        .route("/api/rest/2.0/groups/search", post(groups))
        .route(
            "/api/rest/2.0/metadata/search",
            post(activity::metadata_search),
        )
        .route("/api/rest/2.0/searchdata", post(activity::searchdata))
        .route(tml::IMPORT_PATH, post(tml::import))
        .route("/api/rest/2.0/users/create", post(principals::users_create))
        .route(
            "/api/rest/2.0/users/{user_identifier}/update",
            post(principals::users_update),
        )
        .route(
            "/api/rest/2.0/users/{user_identifier}/delete",
            post(principals::users_delete),
        )
        .route("/api/rest/2.0/users/import", post(principals::users_import))
        .route(
            "/api/rest/2.0/groups/create",
            post(principals::groups_create),
        )
        .route(
            "/api/rest/2.0/groups/{group_identifier}/update",
            post(principals::groups_update),
        )
        .route(
            "/api/rest/2.0/groups/{group_identifier}/delete",
            post(principals::groups_delete),
        )
        .route(
            "/api/rest/2.0/groups/import",
            post(principals::groups_import),
        )
        .route(
            "/api/rest/2.0/security/metadata/assign",
            post(principals::metadata_assign),
        )
        .route(
            "/callosum/v1/tspublic/v1/user/sync",
            post(principals::v1_sync),
        )
        .route(
            "/callosum/v1/tspublic/v1/user/transfer/ownership",
            post(principals::v1_transfer),
        )
        .route("/callosum/v1/tspublic/v1/session/login", post(v1_login))
        .route("/callosum/v1/tspublic/v1/session/logout", post(v1_logout))
        .route("/callosum/v1/tspublic/v1/user/list", get(v1_user_list))
        .route(
            "/ts_dataservice/v1/public/tql/query",
            post(falcon::tql_query),
        )
        .route("/ts_dataservice/v1/public/session", post(falcon::session))
        .route("/ts_dataservice/v1/public/loads", post(falcon::start))
        .route(
            "/ts_dataservice/v1/public/loads/{cycle}",
            get(falcon::status).post(falcon::upload),
        )
        .route(
            "/ts_dataservice/v1/public/loads/{cycle}/commit",
            post(falcon::commit),
        )
        .route(
            "/ts_dataservice/v1/public/loads/{cycle}/cancel",
            post(falcon::cancel),
        )
        .layer(axum::extract::DefaultBodyLimit::disable())
        .fallback(|| async { error(StatusCode::NOT_FOUND, 10004, "no such endpoint") })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            redirect_or_echo,
        ))
        .with_state(state)
}

/// The `redirect_to` and `echo_requests` faults, for every route.
async fn redirect_or_echo(
    State(state): State<Arc<Shared>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let (redirect, echo) = {
        let faults = state.faults.lock().unwrap();
        (faults.redirect_to.clone(), faults.echo_requests)
    };
    if let Some(target) = redirect {
        let path = request
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        let mut log = seen(
            request.method().as_str(),
            &path,
            request.headers(),
            &Bytes::new(),
        );
        log.status = StatusCode::TEMPORARY_REDIRECT.as_u16();
        state.record(log);
        return Response::builder()
            .status(StatusCode::TEMPORARY_REDIRECT)
            .header(header::LOCATION, format!("{target}{path}"))
            .body(Body::empty())
            .expect("response");
    }
    if !echo {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let sent = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let authorization = header_text(&parts.headers, header::AUTHORIZATION).unwrap_or_default();
    let request = axum::extract::Request::from_parts(parts, Body::from(sent.clone()));
    let response = next.run(request).await;
    if response.status().is_success() || response.status().is_redirection() {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let mut value: Value = serde_json::from_slice(&body).unwrap_or_else(|_| json!({}));
    let echoed = format!(
        " (request: {}; Authorization: {authorization})",
        String::from_utf8_lossy(&sent)
    );
    if let Some(debug) = value.pointer_mut("/error/message/debug") {
        *debug = Value::String(format!("{}{echoed}", debug.as_str().unwrap_or_default()));
    } else if let Some(debug) = value.get_mut("debug") {
        *debug = Value::String(format!("{}{echoed}", debug.as_str().unwrap_or_default()));
    }
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(serde_json::to_vec(&value).expect("json")))
}

/// A ThoughtSpot-shaped error.
fn error(status: StatusCode, code: u32, debug: &str) -> Response {
    let body =
        json!({"error": {"message": {"code": code, "incident_id_guid": "fake", "debug": debug}}});
    (status, axum::Json(body)).into_response()
}

/// A response whose connection is cut after `sent` bytes of its body (none:
/// the client gets no answer at all).
fn cut_off(sent: Bytes) -> Response {
    let dropped = std::io::Error::new(
        std::io::ErrorKind::ConnectionReset,
        "fake: connection dropped",
    );
    let chunks: Vec<Result<Bytes, std::io::Error>> = if sent.is_empty() {
        vec![Err(dropped)]
    } else {
        vec![Ok(sent), Err(dropped)]
    };
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(futures_util::stream::iter(chunks)))
        .expect("response")
}

fn json_response(value: &Value) -> Response {
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        serde_json::to_vec(value).expect("json"),
    )
        .into_response()
}

fn header_text(headers: &HeaderMap, name: impl header::AsHeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn seen(method: &str, path: &str, headers: &HeaderMap, body: &Bytes) -> Seen {
    Seen {
        method: method.into(),
        path: path.into(),
        status: 0,
        org: None,
        offset: None,
        size: None,
        authorization: header_text(headers, header::AUTHORIZATION),
        requested_by: header_text(headers, "x-requested-by"),
        body: String::from_utf8_lossy(body).into_owned(),
    }
}

async fn pause(state: &Shared) {
    let latency = state.faults.lock().unwrap().latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
}

fn no_v2(state: &Shared) -> Option<Response> {
    state
        .faults
        .lock()
        .unwrap()
        .no_v2
        .then(|| error(StatusCode::NOT_FOUND, 10004, "no such endpoint"))
}

async fn token(State(state): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    pause(&state).await;
    let mut log = seen("POST", "/api/rest/2.0/auth/token/full", &headers, &body);
    let response = issue_token(&state, &body);
    log.status = response.status().as_u16();
    state.record(log);
    response
}

fn issue_token(state: &Shared, body: &Bytes) -> Response {
    if let Some(r) = no_v2(state) {
        return r;
    }
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return error(StatusCode::BAD_REQUEST, 10002, "request body is not JSON");
    };
    let user = request.get("username").and_then(Value::as_str);
    let password = request.get("password").and_then(Value::as_str);
    let key = request.get("secret_key").and_then(Value::as_str);
    let good = user == Some(USERNAME) && (password == Some(PASSWORD) || key == Some(SECRET_KEY));
    if !good {
        return error(
            StatusCode::UNAUTHORIZED,
            10001,
            "Invalid username or password",
        );
    }
    let org = request.get("org_id").and_then(Value::as_i64).unwrap_or(0);
    let orgs = state.orgs();
    if !orgs.is_empty() && !orgs.iter().any(|o| org_id(o) == Some(org)) {
        return error(
            StatusCode::BAD_REQUEST,
            10002,
            &format!("Org {org} does not exist"),
        );
    }
    let token = state.new_secret("fake-token");
    state
        .tokens
        .lock()
        .unwrap()
        .insert(token.clone(), Token { org, uses: 0 });
    let now = jiff::Timestamp::now().as_millisecond();
    json_response(&json!({
        "token": token,
        "creation_time_in_millis": now,
        "expiration_time_in_millis": now + 300_000,
        "scope": {"access_type": "FULL", "org_id": org},
        "valid_for_user_id": "59481331-ee53-42be-a548-bd87be6ddd4a",
        "valid_for_username": USERNAME,
    }))
}

/// The org a bearer token is scoped to, or the error for a bad token.
#[allow(clippy::result_large_err)] // a test server; the error is the reply
fn authorize(state: &Shared, headers: &HeaderMap) -> Result<i64, Response> {
    let Some(value) = header_text(headers, header::AUTHORIZATION) else {
        // A session (the v1 login's cookie) counts for the Primary org, as
        // a cluster's own sessions do.
        if session_of(state, headers).is_some() {
            return Ok(0);
        }
        return Err(error(
            StatusCode::UNAUTHORIZED,
            10000,
            "Authorization header missing",
        ));
    };
    let Some(token) = value.strip_prefix("Bearer ") else {
        return Err(error(StatusCode::UNAUTHORIZED, 10000, "not a bearer token"));
    };
    let limit = state.faults.lock().unwrap().token_uses;
    let mut tokens = state.tokens.lock().unwrap();
    let Some(entry) = tokens.get_mut(token) else {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            10000,
            "Token is invalid or expired",
        ));
    };
    entry.uses += 1;
    if limit.is_some_and(|limit| entry.uses > limit) {
        return Err(error(StatusCode::UNAUTHORIZED, 10000, "Token expired"));
    }
    Ok(entry.org)
}

/// `GET /api/rest/2.0/auth/session/user`: who the token is, and the org
/// it is of (`current_org`).
async fn session_user(State(state): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    pause(&state).await;
    let mut log = seen(
        "GET",
        "/api/rest/2.0/auth/session/user",
        &headers,
        &Bytes::new(),
    );
    let authorized = match no_v2(&state) {
        Some(r) => Err(r),
        None => authorize(&state, &headers),
    };
    let response = match authorized {
        Err(r) => r,
        Ok(org) => {
            let store = state.principals.lock().unwrap();
            let name = (store.data.orgs.iter())
                .find(|o| org_id(o) == Some(org))
                .and_then(|o| o.get("name").cloned())
                .unwrap_or_else(|| json!("Primary"));
            // The signed-in account as the data has it now, if it is there.
            let me = (store.data.users.iter()).find(|u| {
                u["name"]
                    .as_str()
                    .is_some_and(|n| n.eq_ignore_ascii_case(USERNAME))
            });
            let mut answer = json!({
                "id": principals::ADMIN_GUID,
                "name": USERNAME,
                "current_org": {"id": org, "name": name},
            });
            if let Some(me) = me {
                for key in ["id", "name", "display_name", "orgs"] {
                    if let Some(value) = me.get(key) {
                        answer[key] = value.clone();
                    }
                }
            }
            json_response(&answer)
        }
    };
    log.status = response.status().as_u16();
    state.record(log);
    response
}

async fn system(State(state): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    pause(&state).await;
    let mut log = seen("GET", "/api/rest/2.0/system", &headers, &Bytes::new());
    let response = match no_v2(&state) {
        Some(r) => r,
        None => match authorize(&state, &headers) {
            Err(r) => r,
            Ok(_) => {
                let (software, zone) = {
                    let faults = state.faults.lock().unwrap();
                    (faults.software, faults.time_zone.clone())
                };
                json_response(&json!({
                    "id": CLUSTER_ID,
                    "name": "Fake ThoughtSpot",
                    "release_version": if software { RELEASE_SOFTWARE } else { RELEASE },
                    "time_zone": zone.as_deref().unwrap_or("UTC"),
                    "type": if software { "SOFTWARE" } else { "SAAS" },
                }))
            }
        },
    };
    log.status = response.status().as_u16();
    state.record(log);
    response
}

async fn orgs(State(state): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    pause(&state).await;
    let mut log = seen("POST", "/api/rest/2.0/orgs/search", &headers, &body);
    let response = match no_v2(&state) {
        Some(r) => r,
        None => match authorize(&state, &headers) {
            Err(r) => r,
            Ok(_) if state.faults.lock().unwrap().orgs_forbidden => error(
                StatusCode::FORBIDDEN,
                10003,
                "User does not have access to orgs",
            ),
            Ok(_) => json_response(&Value::Array(state.orgs())),
        },
    };
    log.status = response.status().as_u16();
    state.record(log);
    response
}

impl principals::Store {
    /// The principals of `org`, worked out once (until the next write).
    pub(crate) fn view(&mut self, org: i64) -> Arc<OrgView> {
        let data = &self.data;
        self.views
            .entry(org)
            .or_insert_with(|| {
                let pick = |list: &[Value]| -> Vec<usize> {
                    (0..list.len())
                        .filter(|&i| orgs_of(&list[i]).contains(&org))
                        .collect()
                };
                let ids = |list: &[Value], picked: &[usize]| -> HashSet<String> {
                    picked
                        .iter()
                        .filter_map(|&i| id_of(&list[i]).map(str::to_owned))
                        .collect()
                };
                let users = pick(&data.users);
                let groups = pick(&data.groups);
                Arc::new(OrgView {
                    user_ids: ids(&data.users, &users),
                    group_ids: ids(&data.groups, &groups),
                    users,
                    groups,
                })
            })
            .clone()
    }
}

fn org_id(value: &Value) -> Option<i64> {
    match value.get("id")? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// The orgs a principal belongs to (Primary when it lists none).
fn orgs_of(principal: &Value) -> Vec<i64> {
    let ids: Vec<i64> = principal
        .get("orgs")
        .and_then(Value::as_array)
        .map(|orgs| orgs.iter().filter_map(org_id).collect())
        .unwrap_or_default();
    if ids.is_empty() { vec![0] } else { ids }
}

fn id_of(value: &Value) -> Option<&str> {
    value.get("id").and_then(Value::as_str)
}

/// Keeps the entries of `principal[field]` whose id is in `keep`: in an
/// org-scoped view, references reach only that org's principals.
fn filter_refs(principal: &mut Value, field: &str, keep: &HashSet<String>) {
    if let Some(Value::Array(refs)) = principal.get_mut(field) {
        refs.retain(|r| id_of(r).is_some_and(|id| keep.contains(id)));
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Users,
    Groups,
}

async fn users(state: State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    search(state, headers, body, Kind::Users).await
}

async fn groups(state: State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    search(state, headers, body, Kind::Groups).await
}

/// Decrements a "next N" counter; true when it was positive.
fn take(counter: &mut usize) -> bool {
    if *counter > 0 {
        *counter -= 1;
        true
    } else {
        false
    }
}

async fn search(
    State(state): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
    kind: Kind,
) -> Response {
    let path = match kind {
        Kind::Users => "/api/rest/2.0/users/search",
        Kind::Groups => "/api/rest/2.0/groups/search",
    };
    let now = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    state.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let n = state.searches.fetch_add(1, Ordering::SeqCst) + 1;
    pause(&state).await;
    let slow = state.faults.lock().unwrap().slow;
    if !slow.is_zero() {
        tokio::time::sleep(slow).await;
    }
    let mut log = seen("POST", path, &headers, &body);
    let response = search_response(&state, &body, kind, n, &headers, &mut log);
    state.in_flight.fetch_sub(1, Ordering::SeqCst);
    log.status = response.status().as_u16();
    state.record(log);
    response
}

fn search_response(
    state: &Shared,
    body: &Bytes,
    kind: Kind,
    n: usize,
    headers: &HeaderMap,
    log: &mut Seen,
) -> Response {
    if let Some(r) = no_v2(state) {
        return r;
    }
    let token_org = match authorize(state, headers) {
        Ok(org) => org,
        Err(r) => return r,
    };
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return error(StatusCode::BAD_REQUEST, 10002, "request body is not JSON");
    };
    let offset = request
        .get("record_offset")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let size = request
        .get("record_size")
        .and_then(Value::as_i64)
        .unwrap_or(10);
    log.offset = Some(offset);
    log.size = Some(size);
    // A token of the Primary org (a cluster admin's) may name other orgs;
    // a token of any other org sees that org only.
    let named: Option<i64> = request
        .get("org_identifiers")
        .and_then(Value::as_array)
        .and_then(|ids| ids.first())
        .and_then(|id| match id {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.parse().ok(),
            _ => None,
        });
    let ignore = state.faults.lock().unwrap().ignore_org_identifiers;
    let org = match named {
        Some(_) if ignore => token_org,
        Some(org) if org != token_org && token_org != 0 => {
            return error(
                StatusCode::FORBIDDEN,
                10003,
                &format!("token of org {token_org} cannot read org {org}"),
            );
        }
        Some(org) => org,
        None => token_org,
    };
    log.org = Some(org);

    {
        let mut faults = state.faults.lock().unwrap();
        if faults.fail_at_offset == Some(offset) {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                10005,
                "internal error at this page",
            );
        }
        if faults
            .rate_limit_every
            .is_some_and(|every| n.is_multiple_of(every))
        {
            let mut response = error(StatusCode::TOO_MANY_REQUESTS, 10006, "Too many requests");
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            return response;
        }
        if take(&mut faults.unavailable) {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                10007,
                "Service unavailable",
            );
        }
    }

    let (leak, cap) = {
        let faults = state.faults.lock().unwrap();
        (faults.leak_org, faults.max_page)
    };
    let mut store = state.principals.lock().unwrap();
    let view = store.view(org);
    let leaked = leak.filter(|&o| o != org).map(|other| store.view(other));
    let (group_ids, user_ids) = (&view.group_ids, &view.user_ids);
    let (picked, list) = match kind {
        Kind::Users => (&view.users, &store.data.users),
        Kind::Groups => (&view.groups, &store.data.groups),
    };
    let mut all: Vec<&Value> = picked.iter().map(|&i| &list[i]).collect();
    // `user_identifier` / `group_identifier`: one principal, by GUID or
    // name (case-insensitively).
    let identifier = match kind {
        Kind::Users => request.get("user_identifier"),
        Kind::Groups => request.get("group_identifier"),
    }
    .and_then(Value::as_str);
    if let Some(wanted) = identifier {
        all.retain(|p| {
            id_of(p).is_some_and(|id| id.eq_ignore_ascii_case(wanted))
                || (p.get("name").and_then(Value::as_str))
                    .is_some_and(|n| n.eq_ignore_ascii_case(wanted))
        });
    }
    if let Some(leaked) = leaked {
        let leaked = match kind {
            Kind::Users => &leaked.users,
            Kind::Groups => &leaked.groups,
        };
        all.extend(
            leaked
                .iter()
                .filter(|i| !picked.contains(i))
                .map(|&i| &list[i]),
        );
    }
    let mut size = if size < 0 { all.len() } else { size as usize };
    if let Some(cap) = cap {
        size = size.min(cap);
    }
    let start = (offset as usize).min(all.len());
    let end = (start + size).min(all.len());
    let page: Vec<Value> = all[start..end]
        .iter()
        .map(|&p| {
            let mut p = p.clone();
            match kind {
                Kind::Users => {
                    filter_refs(&mut p, "user_groups", group_ids);
                    filter_refs(&mut p, "user_inherited_groups", group_ids);
                }
                Kind::Groups => {
                    filter_refs(&mut p, "sub_groups", group_ids);
                    filter_refs(&mut p, "users", user_ids);
                }
            }
            p
        })
        .collect();
    drop(store);
    let bytes = serde_json::to_vec(&page).expect("json");

    let mut faults = state.faults.lock().unwrap();
    if faults.endless_body {
        static BLANKS: [u8; 64 * 1024] = [b' '; 64 * 1024];
        let chunks = std::iter::once(Bytes::from_static(b"["))
            .chain(std::iter::repeat(Bytes::from_static(&BLANKS)))
            .map(Ok::<_, std::io::Error>);
        return Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from_stream(futures_util::stream::iter(chunks)))
            .expect("response");
    }
    if let Some(inflated) = faults.gzip_bomb {
        return Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::CONTENT_ENCODING, "gzip")
            .body(Body::from(state.gzip_bomb(inflated)))
            .expect("response");
    }
    if take(&mut faults.malformed) {
        let cut = bytes.len() / 2;
        return (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            bytes[..cut].to_vec(),
        )
            .into_response();
    }
    if take(&mut faults.drop_mid_body) {
        return cut_off(Bytes::copy_from_slice(&bytes[..bytes.len() / 2]));
    }
    drop(faults);
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        bytes,
    )
        .into_response()
}

impl Shared {
    /// A gzip body inflating to `inflated` bytes of an empty JSON array
    /// padded with blanks; about a thousandth of that on the wire. Made
    /// once per size.
    fn gzip_bomb(&self, inflated: usize) -> Bytes {
        use std::io::Write;
        let mut cached = self.bomb.lock().unwrap();
        if let Some((size, bomb)) = cached.as_ref()
            && *size == inflated
        {
            return bomb.clone();
        }
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let blanks = vec![b' '; 1 << 20];
        let mut left = inflated.saturating_sub(2);
        encoder.write_all(b"[").expect("gzip");
        while left > 0 {
            let n = left.min(blanks.len());
            encoder.write_all(&blanks[..n]).expect("gzip");
            left -= n;
        }
        encoder.write_all(b"]").expect("gzip");
        let bomb = Bytes::from(encoder.finish().expect("gzip"));
        *cached = Some((inflated, bomb.clone()));
        bomb
    }
}

fn form_field(body: &Bytes, name: &str) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    text.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == name).then(|| {
            let value = value.replace('+', " ");
            percent_decode(&value)
        })
    })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(byte) = u8::from_str_radix(&text[i + 1..i + 3], 16)
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn v1_header_missing(headers: &HeaderMap) -> Option<Response> {
    (header_text(headers, "x-requested-by").as_deref() != Some("ThoughtSpot")).then(|| {
        error(
            StatusCode::BAD_REQUEST,
            10002,
            "X-Requested-By: ThoughtSpot header is required",
        )
    })
}

async fn v1_login(State(state): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    pause(&state).await;
    let mut log = seen(
        "POST",
        "/callosum/v1/tspublic/v1/session/login",
        &headers,
        &body,
    );
    let response = if let Some(r) = v1_header_missing(&headers) {
        r
    } else if !state.principals.lock().unwrap().serves_v1() && !state.faults.lock().unwrap().falcon
    {
        error(StatusCode::NOT_FOUND, 10004, "no such endpoint")
    } else if form_field(&body, "username").as_deref() == Some(USERNAME)
        && form_field(&body, "password").as_deref() == Some(PASSWORD)
    {
        let session = state.new_secret("fake-session");
        state.sessions.lock().unwrap().insert(session.clone());
        Response::builder()
            .status(StatusCode::NO_CONTENT)
            .header(
                header::SET_COOKIE,
                format!("JSESSIONID={session}; Path=/; HttpOnly"),
            )
            .body(Body::empty())
            .expect("response")
    } else {
        (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"type": "USER_AUTH", "debug": "Invalid username or password"})),
        )
            .into_response()
    };
    log.status = response.status().as_u16();
    state.record(log);
    response
}

fn session_of(state: &Shared, headers: &HeaderMap) -> Option<String> {
    let cookies = header_text(headers, header::COOKIE)?;
    cookies.split(';').find_map(|c| {
        let session = c.trim().strip_prefix("JSESSIONID=")?;
        state
            .sessions
            .lock()
            .unwrap()
            .contains(session)
            .then(|| session.to_owned())
    })
}

async fn v1_user_list(State(state): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    pause(&state).await;
    let mut log = seen(
        "GET",
        "/callosum/v1/tspublic/v1/user/list",
        &headers,
        &Bytes::new(),
    );
    let response = if let Some(r) = v1_header_missing(&headers) {
        r
    } else if session_of(&state, &headers).is_none() {
        error(StatusCode::UNAUTHORIZED, 10000, "not signed in")
    } else {
        json_response(&Value::Array(state.principals.lock().unwrap().v1_list()))
    };
    log.status = response.status().as_u16();
    state.record(log);
    response
}

async fn v1_logout(State(state): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let mut log = seen(
        "POST",
        "/callosum/v1/tspublic/v1/session/logout",
        &headers,
        &Bytes::new(),
    );
    if let Some(session) = session_of(&state, &headers) {
        state.sessions.lock().unwrap().remove(&session);
    }
    let response = StatusCode::NO_CONTENT.into_response();
    log.status = response.status().as_u16();
    state.record(log);
    response
}
