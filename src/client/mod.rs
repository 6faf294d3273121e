//! Fetching principals from a live ThoughtSpot cluster over REST (v2, with
//! the v1 `user/list` fallback for older software clusters).
//!
//! [`fetch`](fetch()) signs in ([`auth`]), reads the cluster's identity,
//! lists the orgs and then pages through `users/search` and `groups/search`
//! in each org with bounded concurrency. It returns every response as the
//! cluster sent it, with the [`Source`](crate::model::Source) they came
//! from; normalizing them is the job of the input reader, which the
//! command line calls next, exactly as for the same responses saved to
//! files. The client depends on the model only.

pub mod auth;
mod error;
mod fetch;
pub(crate) mod http;
mod paging;
pub(crate) mod v1;
pub(crate) mod v2;

use std::path::PathBuf;
use std::time::Duration;

pub use auth::{AuthMethod, Credentials, Secret};
pub use error::ClientError;
pub use fetch::{Api, FetchOptions, OrgSelection, Progress, Response, Responses, fetch};

/// The username the credentials sign in as, as the cluster says
/// (`auth/session/user`): for tokens, whose user the profile may not name.
pub fn session_user(connection: &Connection) -> Result<Option<String>, ClientError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ClientError::Setup(format!("cannot start the async runtime: {e}")))?;
    let http = http::Http::new(connection)?;
    let auth = auth::Auth::new(connection.credentials.clone())?;
    runtime.block_on(async {
        v2::V2 {
            http: &http,
            auth: &auth,
        }
        .session_user()
        .await
    })
}

/// Where a cluster is and how to talk to it.
#[derive(Clone, Debug)]
pub struct Connection {
    /// Base URL, e.g. `https://example.thoughtspot.cloud` (no trailing slash).
    pub url: String,
    /// Who signs in, and with what.
    pub credentials: Credentials,
    /// A PEM file of extra CA certificates to trust (private CAs).
    pub ca_cert: Option<PathBuf>,
    /// Skip TLS certificate verification (only when asked for explicitly).
    pub insecure: bool,
    /// Timeouts and retries.
    pub http: HttpSettings,
}

/// Timeouts and retries for every request.
#[derive(Clone, Debug)]
pub struct HttpSettings {
    /// Time allowed to open a connection.
    pub connect_timeout: Duration,
    /// Time allowed for a whole request, response body included.
    pub request_timeout: Duration,
    /// How many times a request is retried after a transient failure.
    pub retries: u32,
    /// First backoff delay; each retry doubles it (with jitter).
    pub backoff: Duration,
    /// Longest wait between tries, `Retry-After` included.
    pub max_backoff: Duration,
    /// Most bytes a response body may hold once decompressed; a longer one
    /// is abandoned with [`ClientError::TooLarge`], not retried.
    pub max_response_bytes: u64,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(120),
            retries: 4,
            backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(60),
            max_response_bytes: 512 * 1024 * 1024,
        }
    }
}
