//! Credentials and the tokens they buy.
//!
//! One secret signs in: a bearer token used as is, or a trusted-authentication
//! secret key or a password (which one, when several are at hand, is the
//! caller's choice); the last two are exchanged for tokens with
//! `POST /api/rest/2.0/auth/token/full`, one per org (`org_id` in the
//! request), cached, and refreshed when they near expiry or the cluster
//! refuses them mid-run. Secrets live in [`SecretString`]s: they are exposed
//! only into request bodies and headers, never into logs or messages.

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::error::ClientError;
use super::http::{Body, Http, Reply, Request};

/// Path of the token endpoint.
pub const TOKEN_PATH: &str = "/api/rest/2.0/auth/token/full";

/// How long an issued token is asked to last.
const TOKEN_VALIDITY_SECS: u64 = 3600;

/// A token this close to expiry is replaced before use.
const REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// The secret a user signs in with.
#[derive(Clone)]
pub enum Secret {
    /// A bearer token, used as is.
    Token(SecretString),
    /// A trusted-authentication secret key, exchanged for tokens.
    SecretKey(SecretString),
    /// A password, exchanged for tokens (or a v1 session).
    Password(SecretString),
}

impl Secret {
    /// The secret itself.
    pub(crate) fn value(&self) -> &SecretString {
        match self {
            Secret::Token(s) | Secret::SecretKey(s) | Secret::Password(s) => s,
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Secret::Token(_) => "Token(<redacted>)",
            Secret::SecretKey(_) => "SecretKey(<redacted>)",
            Secret::Password(_) => "Password(<redacted>)",
        })
    }
}

/// Who signs in and with what. `Debug` never shows a secret.
#[derive(Clone, Debug, Default)]
pub struct Credentials {
    /// The user to sign in as (needed for secret keys and passwords).
    pub username: Option<String>,
    /// The secret.
    pub secret: Option<Secret>,
}

/// Which credential is used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMethod {
    /// A bearer token, as is.
    Token,
    /// A trusted-authentication secret key for `username`.
    SecretKey,
    /// A password for `username`.
    Password,
}

impl fmt::Display for AuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AuthMethod::Token => "bearer token",
            AuthMethod::SecretKey => "secret key (trusted authentication)",
            AuthMethod::Password => "password",
        })
    }
}

impl Credentials {
    /// The credential to use; `None` when there is none, or a secret key or
    /// password comes without a username.
    pub fn method(&self) -> Option<AuthMethod> {
        match (&self.secret, &self.username) {
            (Some(Secret::Token(_)), _) => Some(AuthMethod::Token),
            (Some(Secret::SecretKey(_)), Some(_)) => Some(AuthMethod::SecretKey),
            (Some(Secret::Password(_)), Some(_)) => Some(AuthMethod::Password),
            _ => None,
        }
    }

    /// Who the credential belongs to, for messages.
    pub(crate) fn who(&self) -> String {
        match &self.username {
            Some(user) => format!("user \"{user}\""),
            None => "the token's user".to_owned(),
        }
    }
}

/// An org scope: `None` is the credentials' default org.
pub(crate) type Scope = Option<i64>;

/// A token in hand.
struct Issued {
    token: SecretString,
    /// Bumped on every refresh, so a refusal of an old token does not throw
    /// away a newer one another page already obtained.
    generation: u64,
    expires: Option<SystemTime>,
}

/// The token of one scope, if any.
type Slot = std::sync::Arc<tokio::sync::Mutex<Option<Issued>>>;

/// A token handed out for one request.
pub(crate) struct Lease {
    pub token: SecretString,
    generation: u64,
}

/// Signs in and keeps one token per org scope.
pub(crate) struct Auth {
    credentials: Credentials,
    method: AuthMethod,
    /// One slot per scope, each locked on its own so orgs sign in at once
    /// while pages of one org wait for that org's single sign-in.
    tokens: std::sync::Mutex<HashMap<Scope, Slot>>,
    generation: std::sync::atomic::AtomicU64,
}

#[derive(Deserialize)]
struct TokenResponse {
    token: String,
    #[serde(default)]
    expiration_time_in_millis: Option<i64>,
}

impl Auth {
    /// Auth for `credentials`; errors when none is usable.
    pub fn new(credentials: Credentials) -> Result<Self, ClientError> {
        let method = credentials.method().ok_or_else(|| {
            ClientError::Unsupported(
                "no usable credentials: give a bearer token (THOUGHTSPOT_TOKEN), or a username \
                 (THOUGHTSPOT_USERNAME) with a secret key (THOUGHTSPOT_SECRET_KEY) or a password \
                 (THOUGHTSPOT_PASSWORD), or use a profile (ts-principals config create)"
                    .into(),
            )
        })?;
        Ok(Self {
            credentials,
            method,
            tokens: std::sync::Mutex::new(HashMap::new()),
            generation: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// The credential in use.
    pub fn method(&self) -> AuthMethod {
        self.method
    }

    /// Whether tokens are scoped to an org when issued (otherwise searches
    /// name the org with `org_identifiers`).
    pub fn scopes_tokens(&self) -> bool {
        self.method != AuthMethod::Token
    }

    /// A token for `scope`, signing in when there is none or it is about to
    /// expire.
    pub async fn lease(&self, http: &Http, scope: Scope) -> Result<Lease, ClientError> {
        if let Some(Secret::Token(token)) = &self.credentials.secret {
            return Ok(Lease {
                token: token.clone(),
                generation: 0,
            });
        }
        let slot = self.slot(scope);
        let mut current = slot.lock().await;
        if let Some(issued) = current.as_ref() {
            let fresh = issued
                .expires
                .is_none_or(|at| at > SystemTime::now() + REFRESH_MARGIN);
            if fresh {
                return Ok(Lease {
                    token: issued.token.clone(),
                    generation: issued.generation,
                });
            }
            tracing::debug!("token for {} expires soon; renewing it", describe(scope));
        }
        let issued = self.sign_in(http, scope).await?;
        let lease = Lease {
            token: issued.token.clone(),
            generation: issued.generation,
        };
        *current = Some(issued);
        Ok(lease)
    }

    fn slot(&self, scope: Scope) -> Slot {
        let mut tokens = self
            .tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        tokens.entry(scope).or_default().clone()
    }

    /// Forgets `lease`'s token after the cluster refused it; returns whether
    /// a new one can be obtained (not for a bearer token given as is).
    pub async fn refused(&self, scope: Scope, lease: &Lease) -> bool {
        if !self.scopes_tokens() {
            return false;
        }
        let slot = self.slot(scope);
        let mut current = slot.lock().await;
        if current
            .as_ref()
            .is_some_and(|t| t.generation == lease.generation)
        {
            *current = None;
        }
        true
    }

    async fn sign_in(&self, http: &Http, scope: Scope) -> Result<Issued, ClientError> {
        let username = self.credentials.username.clone().unwrap_or_default();
        let (field, secret) = match &self.credentials.secret {
            Some(Secret::SecretKey(key)) => ("secret_key", key.expose_secret()),
            Some(Secret::Password(password)) => ("password", password.expose_secret()),
            Some(Secret::Token(_)) | None => ("password", ""),
        };
        let mut body = serde_json::json!({
            "username": username,
            field: secret,
            "validity_time_in_sec": TOKEN_VALIDITY_SECS,
        });
        if let Some(org) = scope {
            body["org_id"] = org.into();
        }
        let request = Request {
            method: Method::POST,
            path: TOKEN_PATH,
            body: Body::Json(&body),
            bearer: None,
            v1: false,
        };
        let reply = http.send(&request).await?;
        if matches!(reply.status.as_u16(), 401 | 403) {
            return Err(self.refusal(&request.method, TOKEN_PATH, &reply, scope));
        }
        let bytes = reply.success(&Method::POST, TOKEN_PATH)?;
        let parsed: TokenResponse =
            serde_json::from_slice(&bytes).map_err(|e| ClientError::Malformed {
                method: "POST",
                path: TOKEN_PATH.to_owned(),
                context: String::new(),
                reason: format!("expected {{\"token\": …}} ({e})"),
            })?;
        let token = SecretString::from(parsed.token);
        http.keep_out_of_messages(&token);
        let expires = parsed
            .expiration_time_in_millis
            .filter(|&ms| ms > 0)
            .map(|ms| UNIX_EPOCH + Duration::from_millis(ms as u64));
        tracing::debug!(
            "signed in as {} for {}",
            self.credentials.who(),
            describe(scope)
        );
        Ok(Issued {
            token,
            generation: self
                .generation
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                + 1,
            expires,
        })
    }

    /// The error for a 401/403 reply: which credential failed and what to do.
    pub fn refusal(&self, method: &Method, path: &str, reply: &Reply, scope: Scope) -> ClientError {
        let status = reply.status.as_u16();
        let who = self.credentials.who();
        let signing_in = path == TOKEN_PATH;
        let (credential, advice) = match (self.method, status, signing_in) {
            (AuthMethod::Password, _, true) => (
                format!("the password of {who} was refused;"),
                "check THOUGHTSPOT_PASSWORD (or the profile's password source) and that the \
                 account is active, not locked, and a member of the org asked for",
            ),
            (AuthMethod::SecretKey, _, true) => (
                format!("the secret key for {who} was refused;"),
                "check THOUGHTSPOT_SECRET_KEY against Develop > Security settings (trusted \
                 authentication must be enabled) and that the user exists in the org asked for",
            ),
            (AuthMethod::Token, 401, _) => (
                "the bearer token was refused;".to_owned(),
                "it may have expired: create a new one (POST /api/rest/2.0/auth/token/full) and \
                 set THOUGHTSPOT_TOKEN, or sign in with a username and password or secret key",
            ),
            (_, 401, _) => (
                format!("the token issued to {who} was refused even after signing in again;"),
                "the session may have been revoked; try again, and check the cluster's session \
                 settings",
            ),
            _ => (
                format!("{who} may not do this in {};", describe(scope)),
                "listing users and groups needs the ADMINISTRATION (or USER_ADMINISTRATION) \
                 privilege in every org fetched; ask a cluster admin, or fetch fewer orgs (--org)",
            ),
        };
        ClientError::Auth {
            method: super::http::method_name(method),
            path: path.to_owned(),
            status,
            message: reply.message(),
            credential,
            advice,
        }
    }
}

/// "org 42" or "the default org", for messages.
pub(crate) fn describe(scope: Scope) -> String {
    match scope {
        Some(id) => format!("org {id}"),
        None => "the default org".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_passwords_need_a_username_tokens_do_not() {
        let secret = || SecretString::from("s");
        let mut c = Credentials {
            username: None,
            secret: Some(Secret::Token(secret())),
        };
        assert_eq!(c.method(), Some(AuthMethod::Token));
        c.secret = Some(Secret::SecretKey(secret()));
        assert_eq!(c.method(), None);
        c.secret = Some(Secret::Password(secret()));
        assert_eq!(c.method(), None);
        c.username = Some("admin".into());
        assert_eq!(c.method(), Some(AuthMethod::Password));
        c.secret = Some(Secret::SecretKey(secret()));
        assert_eq!(c.method(), Some(AuthMethod::SecretKey));
        c.secret = None;
        assert_eq!(c.method(), None);
    }

    #[test]
    fn debug_output_hides_secrets() {
        let c = Credentials {
            username: Some("admin".into()),
            secret: Some(Secret::Password(SecretString::from("hunter2"))),
        };
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("admin") && shown.contains("<redacted>"));
    }
}
