//! The REST v1 fallback for older software clusters: a session login with a
//! cookie, then `user/list`, which returns every user and group at once.
//! Every v1 call carries `X-Requested-By: ThoughtSpot`.

use bytes::Bytes;
use reqwest::Method;
use secrecy::SecretString;

use super::auth::{Credentials, Secret};
use super::error::ClientError;
use super::http::{Body, Http, Request};

pub(crate) const LOGIN_PATH: &str = "/callosum/v1/tspublic/v1/session/login";
pub(crate) const LOGOUT_PATH: &str = "/callosum/v1/tspublic/v1/session/logout";
pub(crate) const USER_LIST_PATH: &str = "/callosum/v1/tspublic/v1/user/list";

/// Signs in, fetches `user/list` and signs out again.
pub(crate) async fn user_list(
    http: &Http,
    credentials: &Credentials,
) -> Result<Bytes, ClientError> {
    sign_in(
        http,
        credentials,
        "the REST v1 API (used when the cluster has no v2, or with --api v1)",
    )
    .await?;

    let list = Request {
        method: Method::GET,
        path: USER_LIST_PATH,
        body: Body::None,
        bearer: None,
        v1: true,
    };
    let reply = http.send(&list).await?;
    if matches!(reply.status.as_u16(), 401 | 403) {
        return Err(ClientError::Auth {
            method: "GET",
            path: USER_LIST_PATH.to_owned(),
            status: reply.status.as_u16(),
            message: reply.message(),
            credential: format!("{} may not list users and groups;", credentials.who()),
            advice: "the account needs the ADMINISTRATION privilege",
        });
    }
    let body = reply.success(&Method::GET, USER_LIST_PATH)?;

    let logout = Request {
        method: Method::POST,
        path: LOGOUT_PATH,
        body: Body::None,
        bearer: None,
        v1: true,
    };
    if let Err(error) = http.send(&logout).await {
        tracing::debug!("v1 logout failed (ignored): {error}");
    }
    Ok(body)
}

/// Opens a session (a cookie the client keeps) with the v1 login and a
/// password; `needed_by` names what needs it, for the message when the
/// credentials hold no password.
pub(crate) async fn sign_in(
    http: &Http,
    credentials: &Credentials,
    needed_by: &str,
) -> Result<(), ClientError> {
    let (Some(username), Some(Secret::Password(password))) =
        (&credentials.username, &credentials.secret)
    else {
        return Err(ClientError::Unsupported(format!(
            "{needed_by} signs in with a username and password; give THOUGHTSPOT_USERNAME and \
             THOUGHTSPOT_PASSWORD (or a profile with a password)"
        )));
    };
    let username = SecretString::from(username.clone());
    let remember = SecretString::from("true");
    let fields = [
        ("username", &username),
        ("password", password),
        ("rememberme", &remember),
    ];
    let login = Request {
        method: Method::POST,
        path: LOGIN_PATH,
        body: Body::Form(&fields),
        bearer: None,
        v1: true,
    };
    let reply = http.send(&login).await?;
    if matches!(reply.status.as_u16(), 401 | 403) {
        return Err(ClientError::Auth {
            method: "POST",
            path: LOGIN_PATH.to_owned(),
            status: reply.status.as_u16(),
            message: reply.message(),
            credential: format!("the password of {} was refused;", credentials.who()),
            advice: "check THOUGHTSPOT_PASSWORD (or the profile's password source) and that the \
                     account is active and not locked",
        });
    }
    reply.success(&Method::POST, LOGIN_PATH)?;
    tracing::debug!("signed in to REST v1 as {}", credentials.who());
    Ok(())
}
