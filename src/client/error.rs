//! What can go wrong talking to a cluster; every message names the request
//! (method and path), what the cluster said and what to do.

use std::sync::RwLock;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

/// A failure talking to a cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The client could not be set up (TLS settings, a bad URL).
    #[error("{0}")]
    Setup(String),
    /// No connection could be made, after every retry.
    #[error(
        "cannot connect to {url} for {method} {path} after {attempts} attempt(s): {reason}; \
         {advice}"
    )]
    Connect {
        /// Base URL of the cluster.
        url: String,
        /// HTTP method.
        method: &'static str,
        /// Request path.
        path: String,
        /// Attempts made.
        attempts: u32,
        /// Why the last attempt failed.
        reason: String,
        /// What to do: about certificates when TLS failed, else about the
        /// URL, network and proxy.
        advice: String,
    },
    /// The cluster did not answer in time, after every retry.
    #[error(
        "{method} {path} timed out after {after:?} ({attempts} attempt(s)); the cluster is slow \
         or unreachable: try again later, or raise --timeout"
    )]
    Timeout {
        /// HTTP method.
        method: &'static str,
        /// Request path.
        path: String,
        /// The request timeout.
        after: Duration,
        /// Attempts made.
        attempts: u32,
    },
    /// The connection broke while the response was being read, after every retry.
    #[error(
        "{method} {path}: the connection broke before the whole response came ({reason}) after \
         {attempts} attempt(s); try again, or lower --page-size if it keeps happening"
    )]
    Body {
        /// HTTP method.
        method: &'static str,
        /// Request path.
        path: String,
        /// Why.
        reason: String,
        /// Attempts made.
        attempts: u32,
    },
    /// A redirect away from the cluster (or in circles); never followed or retried.
    #[error("{method} {path}: {reason}")]
    Redirect {
        /// HTTP method.
        method: &'static str,
        /// Request path.
        path: String,
        /// Where it went and what to do.
        reason: String,
    },
    /// A search in one org answered with records of other orgs only.
    #[error(
        "POST {path} in org {org}: all {count} records the cluster sent belong to other orgs \
         (e.g. {example}), so it did not search the org asked for; {hint}"
    )]
    WrongOrg {
        /// Request path.
        path: String,
        /// The org searched.
        org: i64,
        /// Records received.
        count: usize,
        /// One of them, with its orgs.
        example: String,
        /// What to do.
        hint: &'static str,
    },
    /// A response body grew past the limit (an endless body, a compression
    /// bomb, or far more records than asked for); never retried.
    #[error(
        "{method} {url}: the response grew past {limit_mib} MiB and was abandoned; \
         ask for fewer records per page (--page-size), or raise the limit (--max-response-mb, \
         `fetch.max_response_mb`) if the cluster really sends this much"
    )]
    TooLarge {
        /// HTTP method.
        method: &'static str,
        /// The whole URL requested.
        url: String,
        /// The limit, in MiB.
        limit_mib: u64,
    },
    /// The cluster refused the credentials (401) or the action (403).
    #[error("{method} {path} failed with HTTP {status} ({message}): {credential} {advice}")]
    Auth {
        /// HTTP method.
        method: &'static str,
        /// Request path.
        path: String,
        /// 401 or 403.
        status: u16,
        /// The cluster's message.
        message: String,
        /// Which credential failed, e.g. "the password of user admin was refused;".
        credential: String,
        /// What to do.
        advice: &'static str,
    },
    /// Any other unsuccessful status, after retries where they apply.
    #[error("{method} {path} failed with HTTP {status} ({message}){after}")]
    Status {
        /// HTTP method.
        method: &'static str,
        /// Request path.
        path: String,
        /// HTTP status.
        status: u16,
        /// The cluster's message.
        message: String,
        /// " after N attempts" when retried.
        after: String,
    },
    /// A successful response whose body is not what the API documents.
    #[error("{method} {path}{context}: unexpected response: {reason}")]
    Malformed {
        /// HTTP method.
        method: &'static str,
        /// Request path.
        path: String,
        /// Which page, e.g. " (org 0, records from 2000)".
        context: String,
        /// What is wrong.
        reason: String,
    },
    /// The cluster lacks what the fetch needs (e.g. v2 with a bearer token only).
    #[error("{0}")]
    Unsupported(String),
}

/// Secrets kept out of every message built from what a cluster says:
/// clusters may echo a request, password or token and all, in an error.
/// Holds the credentials and each token as it is issued, in the forms a
/// request carries them (as is, JSON-escaped, form-encoded).
#[derive(Default)]
pub(crate) struct Scrubber {
    secrets: RwLock<Vec<SecretString>>,
}

impl Scrubber {
    /// What stands in for a secret.
    const REDACTED: &'static str = "<redacted>";
    /// Shorter secrets are left alone: replacing every `t` or `ab` would
    /// garble the message while hiding nothing worth hiding.
    const SHORTEST: usize = 4;

    /// Keeps `secret` out of messages from now on.
    pub fn add(&self, secret: &SecretString) {
        let text = secret.expose_secret();
        if text.chars().count() < Self::SHORTEST {
            return;
        }
        let json = serde_json::to_string(text).unwrap_or_default();
        let json = json.trim_matches('"');
        let form: String = url::form_urlencoded::byte_serialize(text.as_bytes()).collect();
        let mut secrets = self
            .secrets
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for form in [text, json, &form] {
            if !form.is_empty() && !secrets.iter().any(|s| s.expose_secret() == form) {
                secrets.push(SecretString::from(form));
            }
        }
        // Longest first, so a secret inside another is not half-replaced.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.expose_secret().len()));
    }

    /// `text` with every secret replaced.
    pub fn scrub(&self, text: String) -> String {
        let secrets = self
            .secrets
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        secrets.iter().fold(text, |text, secret| {
            let secret = secret.expose_secret();
            if text.contains(secret) {
                text.replace(secret, Self::REDACTED)
            } else {
                text
            }
        })
    }
}

/// The message in a ThoughtSpot error body: v2 sends
/// `{"error": {"message": …}}` where the message is text or an object with
/// `debug`/`message`/`code`; v1 sends `{"debug": …}` or `{"message": …}`.
/// Falls back to the start of the body, then to the status's reason.
/// Known secrets are scrubbed from it before it is shortened.
pub(crate) fn server_message(
    body: &[u8],
    status: reqwest::StatusCode,
    scrubber: &Scrubber,
) -> String {
    let reason = || status.canonical_reason().unwrap_or("no message").to_owned();
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        if text.is_empty() || text.starts_with('<') {
            return reason();
        }
        return shorten(&scrubber.scrub(text.to_owned()));
    };
    let message = value
        .get("error")
        .and_then(|e| e.get("message").or(Some(e)))
        .unwrap_or(&value);
    describe(message)
        .map(|m| shorten(&scrubber.scrub(m)))
        .unwrap_or_else(reason)
}

/// Text of a message value: a string, or the useful fields of an object.
fn describe(message: &serde_json::Value) -> Option<String> {
    match message {
        serde_json::Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        serde_json::Value::Object(map) => {
            let text = ["debug", "message", "error"]
                .iter()
                .find_map(|k| map.get(*k).and_then(describe));
            let code = map
                .get("code")
                .filter(|c| !c.is_null())
                .map(|c| c.to_string());
            match (text, code) {
                (Some(t), Some(c)) => Some(format!("{t} (code {c})")),
                (Some(t), None) => Some(t),
                (None, Some(c)) => Some(format!("error code {c}")),
                (None, None) => None,
            }
        }
        _ => None,
    }
}

fn shorten(text: &str) -> String {
    const MAX: usize = 300;
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::StatusCode;

    fn server_message(body: &[u8], status: StatusCode) -> String {
        super::server_message(body, status, &Scrubber::default())
    }

    #[test]
    fn secrets_echoed_by_the_cluster_are_scrubbed_in_every_form() {
        let scrubber = Scrubber::default();
        scrubber.add(&SecretString::from("pa\"ss wörd"));
        scrubber.add(&SecretString::from("tok-123"));
        let s = StatusCode::BAD_REQUEST;
        let echoed = br#"{"error":{"message":"bad request {\"password\":\"pa\\\"ss w\u00f6rd\"} Bearer tok-123 password=pa%22ss+w%C3%B6rd"}}"#;
        let message = super::server_message(echoed, s, &scrubber);
        assert_eq!(
            message,
            "bad request {\"password\":\"<redacted>\"} Bearer <redacted> password=<redacted>"
        );
        // Scrubbed before shortening, so no cut leaves a piece of a secret.
        let long = format!("{}tok-123", "x".repeat(297));
        let message = super::server_message(long.as_bytes(), s, &scrubber);
        assert!(!message.contains("tok"), "{message}");
        // Too short to tell from text: left alone rather than garbling it.
        scrubber.add(&SecretString::from("t"));
        assert_eq!(super::server_message(b"tls ok", s, &scrubber), "tls ok");
    }

    #[test]
    fn messages_are_found_in_every_error_shape() {
        let s = StatusCode::BAD_REQUEST;
        let v2 =
            br#"{"error":{"message":{"code":10002,"incident_id_guid":"x","debug":"Bad org"}}}"#;
        assert_eq!(server_message(v2, s), "Bad org (code 10002)");
        assert_eq!(
            server_message(br#"{"error":{"message":"nope"}}"#, s),
            "nope"
        );
        assert_eq!(server_message(br#"{"debug":"v1 says"}"#, s), "v1 says");
        assert_eq!(server_message(b"plain text", s), "plain text");
        assert_eq!(server_message(b"<html>x</html>", s), "Bad Request");
        assert_eq!(
            server_message(b"", StatusCode::SERVICE_UNAVAILABLE),
            "Service Unavailable"
        );
        let long = "x".repeat(1000);
        assert_eq!(server_message(long.as_bytes(), s).chars().count(), 301);
    }
}
