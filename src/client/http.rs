//! One HTTP client for a cluster: TLS set-up, timeouts, and retries with
//! jittered exponential backoff on transient failures (connection errors,
//! timeouts, broken bodies, 429 honouring `Retry-After`, 502/503/504).
//! Nothing else is retried: other 4xx mean the request itself is wrong.

use std::time::Duration;

use reqwest::header::{self, HeaderValue};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};

use super::error::{ClientError, Scrubber, server_message};
use super::{Connection, HttpSettings};

/// A request to send; rebuilt for every attempt.
pub(crate) struct Request<'a> {
    pub method: Method,
    pub path: &'a str,
    pub body: Body<'a>,
    /// `Authorization: Bearer …`.
    pub bearer: Option<&'a SecretString>,
    /// A v1 (`/callosum/v1`) call, which needs `X-Requested-By: ThoughtSpot`.
    pub v1: bool,
}

/// A request body.
pub(crate) enum Body<'a> {
    None,
    Json(&'a serde_json::Value),
    /// Form fields; values may be secrets, exposed only into the request.
    Form(&'a [(&'static str, &'a SecretString)]),
}

/// What [`Http::send_once`] adds to a request.
#[derive(Default)]
pub(crate) struct Extra {
    /// More headers.
    pub headers: Vec<(&'static str, String)>,
    /// A body sent as it is (e.g. streamed from a file); replaces the
    /// request's own.
    pub body: Option<reqwest::Body>,
    /// A timeout for this request instead of the client's.
    pub timeout: Option<Duration>,
}

/// A response that was not retried (any status).
pub(crate) struct Reply {
    pub status: StatusCode,
    pub body: bytes::Bytes,
    /// Attempts it took.
    pub attempts: u32,
    /// The secrets its message must not show.
    scrubber: std::sync::Arc<Scrubber>,
}

impl Reply {
    /// The server's message for an unsuccessful reply.
    pub fn message(&self) -> String {
        server_message(&self.body, self.status, &self.scrubber)
    }

    /// The body of a successful reply, or an error naming the request.
    pub fn success(self, method: &Method, path: &str) -> Result<bytes::Bytes, ClientError> {
        if self.status.is_success() {
            return Ok(self.body);
        }
        let after = if self.attempts > 1 {
            format!(" after {} attempts", self.attempts)
        } else {
            String::new()
        };
        Err(ClientError::Status {
            method: method_name(method),
            path: path.to_owned(),
            status: self.status.as_u16(),
            message: self.message(),
            after,
        })
    }
}

/// What a body that broke off while being read means.
fn read_failure(error: reqwest::Error, timeout: Duration) -> Failure {
    if error.is_timeout() {
        Failure::Timeout(timeout)
    } else {
        Failure::Body(error_chain(error))
    }
}

/// What a request that got no response means, and whether trying again
/// can help. A redirect off the cluster is an error at once; a refused
/// certificate is not worth retrying (the same one comes back every time).
fn send_failure(
    error: reqwest::Error,
    method: &'static str,
    request: &Request<'_>,
    timeout: Duration,
) -> Result<(Failure, bool), ClientError> {
    if error.is_redirect() {
        return Err(ClientError::Redirect {
            method,
            path: request.path.to_owned(),
            reason: error_chain(error),
        });
    }
    Ok(if error.is_timeout() {
        (Failure::Timeout(timeout), true)
    } else if error.is_connect() {
        let reason = error_chain(error);
        match certificate_refusal(&reason) {
            Some(refusal) => (Failure::Connect(refusal), false),
            None => (Failure::Connect(reason), true),
        }
    } else {
        // Sent, but the connection closed before a whole response came.
        (Failure::Body(error_chain(error)), true)
    })
}

/// The static name of a method, for messages.
pub(crate) fn method_name(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        _ => "request",
    }
}

/// The client for one cluster.
pub(crate) struct Http {
    client: reqwest::Client,
    base: String,
    /// `--ca-cert`, for advice when the cluster's certificate is refused.
    ca_cert: Option<std::path::PathBuf>,
    settings: HttpSettings,
    scrubber: std::sync::Arc<Scrubber>,
}

impl Http {
    /// Builds the client: TLS roots (plus `ca_cert`), timeouts, cookies
    /// (the v1 session lives in one).
    pub fn new(connection: &Connection) -> Result<Self, ClientError> {
        let base = connection.url.trim_end_matches('/').to_owned();
        let parsed = reqwest::Url::parse(&base).map_err(|e| {
            ClientError::Setup(format!(
                "the cluster URL is not valid ({e}); give it as https://host[:port]"
            ))
        })?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(ClientError::Setup(format!(
                "the cluster URL \"{base}\" must start with https:// (or http://) and name a host"
            )));
        }
        let origin = parsed.origin();
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(ClientError::Setup(format!(
                "the cluster URL holds a user name or password; give the address alone ({}) \
                 and the credentials apart",
                origin.ascii_serialization()
            )));
        }
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(ClientError::Setup(format!(
                "the cluster URL \"{base}\" has a query or fragment; give the address alone ({})",
                origin.ascii_serialization()
            )));
        }
        let settings = connection.http.clone();
        let mut headers = header::HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("ts-principals/", env!("CARGO_PKG_VERSION")))
            .default_headers(headers)
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.request_timeout)
            .redirect(same_origin_redirects(origin))
            .cookie_store(true);
        if let Some(path) = &connection.ca_cert {
            let pem = std::fs::read(path).map_err(|e| {
                ClientError::Setup(format!("cannot read --ca-cert {}: {e}", path.display()))
            })?;
            let certificates = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                ClientError::Setup(format!(
                    "--ca-cert {} holds no usable PEM certificate ({e}); give the CA's \
                     certificate in PEM form (-----BEGIN CERTIFICATE-----)",
                    path.display()
                ))
            })?;
            if certificates.is_empty() {
                return Err(ClientError::Setup(format!(
                    "--ca-cert {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                    path.display()
                )));
            }
            builder = builder.tls_certs_merge(certificates);
        }
        if connection.insecure {
            tracing::warn!(
                "TLS certificate verification is OFF (--insecure): anyone between you and {base} \
                 can read your credentials; use --ca-cert for a private CA instead"
            );
            builder = builder.tls_danger_accept_invalid_certs(true);
        }
        let client = builder
            .build()
            .map_err(|e| ClientError::Setup(format!("cannot set up the HTTP client: {e}")))?;
        let scrubber = std::sync::Arc::new(Scrubber::default());
        if let Some(secret) = &connection.credentials.secret {
            scrubber.add(secret.value());
        }
        Ok(Self {
            client,
            base,
            ca_cert: connection.ca_cert.clone(),
            settings,
            scrubber,
        })
    }

    /// Keeps `secret` (a token just issued) out of every message.
    pub fn keep_out_of_messages(&self, secret: &SecretString) {
        self.scrubber.add(secret);
    }

    /// The cluster's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends a request, retrying transient failures; any status that is not
    /// retried (or still fails after the last retry) comes back as a reply.
    pub async fn send(&self, request: &Request<'_>) -> Result<Reply, ClientError> {
        let method = method_name(&request.method);
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let last = attempt > self.settings.retries;
            let started = std::time::Instant::now();
            let failure = match self.build(request).send().await {
                Ok(response) => {
                    let status = response.status();
                    let retry_after = retry_after(response.headers());
                    match self.read_body(response).await {
                        Err(BodyError::TooLarge) => return Err(self.too_large(method, request)),
                        Ok(body) => {
                            tracing::debug!(
                                "{method} {} → {} ({} bytes, {:.0?})",
                                request.path,
                                status.as_u16(),
                                body.len(),
                                started.elapsed()
                            );
                            let transient = matches!(status.as_u16(), 429 | 502 | 503 | 504);
                            if !transient || last {
                                return Ok(Reply {
                                    status,
                                    body,
                                    attempts: attempt,
                                    scrubber: self.scrubber.clone(),
                                });
                            }
                            let message = server_message(&body, status, &self.scrubber);
                            Failure::Status(status, message, retry_after)
                        }
                        Err(BodyError::Read(error)) => {
                            read_failure(error, self.settings.request_timeout)
                        }
                    }
                }
                Err(error) => {
                    let (failure, retry) =
                        send_failure(error, method, request, self.settings.request_timeout)?;
                    if !retry {
                        return Err(self.give_up(request, failure, attempt));
                    }
                    failure
                }
            };
            if last {
                return Err(self.give_up(request, failure, attempt));
            }
            let delay = match &failure {
                Failure::Status(_, _, Some(wait)) => (*wait).min(self.settings.max_backoff),
                _ => self.backoff(attempt),
            };
            tracing::warn!(
                "{method} {}: {}; retrying in {:.1?} (attempt {} of {})",
                request.path,
                failure.describe(),
                delay,
                attempt + 1,
                self.settings.retries + 1
            );
            tokio::time::sleep(delay).await;
        }
    }

    /// Sends a request exactly once, whatever happens: for requests that
    /// must not reach the server twice (a data upload, a commit), where a
    /// retry after a broken connection could apply them twice. `extra`
    /// adds headers, a streamed body and a longer timeout.
    pub async fn send_once(
        &self,
        request: &Request<'_>,
        extra: Extra,
    ) -> Result<Reply, ClientError> {
        let method = method_name(&request.method);
        let started = std::time::Instant::now();
        let mut builder = self.build(request);
        for (name, value) in &extra.headers {
            builder = builder.header(*name, value.as_str());
        }
        if let Some(body) = extra.body {
            builder = builder.body(body);
        }
        let timeout = extra.timeout.unwrap_or(self.settings.request_timeout);
        builder = builder.timeout(timeout);
        let failure = match builder.send().await {
            Ok(response) => {
                let status = response.status();
                match self.read_body(response).await {
                    Ok(body) => {
                        tracing::debug!(
                            "{method} {}{} → {} ({} bytes, {:.0?})",
                            self.base,
                            request.path,
                            status.as_u16(),
                            body.len(),
                            started.elapsed()
                        );
                        return Ok(Reply {
                            status,
                            body,
                            attempts: 1,
                            scrubber: self.scrubber.clone(),
                        });
                    }
                    Err(BodyError::TooLarge) => return Err(self.too_large(method, request)),
                    Err(BodyError::Read(error)) => read_failure(error, timeout),
                }
            }
            Err(error) => send_failure(error, method, request, timeout)?.0,
        };
        Err(self.give_up(request, failure, 1))
    }

    /// A body longer than the cap.
    fn too_large(&self, method: &'static str, request: &Request<'_>) -> ClientError {
        ClientError::TooLarge {
            method,
            url: format!("{}{}", self.base, request.path),
            limit_mib: self.settings.max_response_bytes / (1024 * 1024),
        }
    }

    /// Reads a (decompressed) body as it streams in, stopping at the limit,
    /// so an endless or inflating body is cut off. The limit is per
    /// response: with N requests in flight, N bodies may each reach it.
    async fn read_body(&self, mut response: reqwest::Response) -> Result<bytes::Bytes, BodyError> {
        let limit = self.settings.max_response_bytes;
        let announced = response.content_length().unwrap_or(0);
        if announced > limit {
            return Err(BodyError::TooLarge);
        }
        let mut body = bytes::BytesMut::with_capacity(usize::try_from(announced).unwrap_or(0));
        while let Some(chunk) = response.chunk().await.map_err(BodyError::Read)? {
            if (body.len() + chunk.len()) as u64 > limit {
                return Err(BodyError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    }

    fn build(&self, request: &Request<'_>) -> reqwest::RequestBuilder {
        let url = format!("{}{}", self.base, request.path);
        let mut builder = self.client.request(request.method.clone(), url);
        if request.v1 {
            builder = builder.header("X-Requested-By", "ThoughtSpot");
        }
        if let Some(token) = request.bearer {
            match HeaderValue::from_str(&format!("Bearer {}", token.expose_secret())) {
                Ok(mut value) => {
                    value.set_sensitive(true);
                    builder = builder.header(header::AUTHORIZATION, value);
                }
                Err(_) => {
                    tracing::warn!("the bearer token holds characters HTTP headers cannot carry")
                }
            }
        }
        match request.body {
            Body::None => builder,
            Body::Json(value) => builder.json(value),
            Body::Form(fields) => {
                let exposed: Vec<(&str, &str)> = fields
                    .iter()
                    .map(|(k, v)| (*k, v.expose_secret()))
                    .collect();
                builder.form(&exposed)
            }
        }
    }

    /// Full-jitter exponential backoff: a random delay between half and all
    /// of `backoff × 2^(attempt-1)`, capped.
    fn backoff(&self, attempt: u32) -> Duration {
        let ceiling = self
            .settings
            .backoff
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
            .min(self.settings.max_backoff);
        ceiling.mul_f64(0.5 + fastrand::f64() / 2.0)
    }

    fn give_up(&self, request: &Request<'_>, failure: Failure, attempts: u32) -> ClientError {
        let method = method_name(&request.method);
        let path = request.path.to_owned();
        match failure {
            Failure::Connect(reason) => {
                let advice = connect_advice(&reason, self.ca_cert.as_deref());
                ClientError::Connect {
                    url: self.base.clone(),
                    method,
                    path,
                    attempts,
                    reason,
                    advice,
                }
            }
            Failure::Timeout(after) => ClientError::Timeout {
                method,
                path,
                after,
                attempts,
            },
            Failure::Body(reason) => ClientError::Body {
                method,
                path,
                reason,
                attempts,
            },
            Failure::Status(status, message, _) => ClientError::Status {
                method,
                path,
                status: status.as_u16(),
                message,
                after: format!(" after {attempts} attempts"),
            },
        }
    }
}

/// When TLS refused the cluster's certificate, that in words, with the
/// reason rustls gives: `invalid peer certificate:
/// Other(OtherError(CaUsedAsEndEntity))` (after reqwest's and hyper's
/// wrappers) becomes `TLS refused the cluster's certificate
/// (CaUsedAsEndEntity)`, which [`connect_advice`] then explains.
fn certificate_refusal(chain: &str) -> Option<String> {
    const MARK: &str = "invalid peer certificate: ";
    let mut detail = chain[chain.find(MARK)? + MARK.len()..].trim();
    while let Some(inner) = ["Other(", "OtherError("]
        .iter()
        .find_map(|wrapper| detail.strip_prefix(wrapper)?.strip_suffix(')'))
    {
        detail = inner;
    }
    Some(format!("TLS refused the cluster's certificate ({detail})"))
}

/// What to do about a failed connection: when TLS refused the cluster's
/// certificate, exactly why (rustls names the reason) and how to fix it.
fn connect_advice(reason: &str, ca_cert: Option<&std::path::Path>) -> String {
    let given = ca_cert.map(|p| p.display().to_string());
    let given = given.as_deref();
    if reason.contains("CaUsedAsEndEntity") {
        return "the cluster presents a CA certificate (basicConstraints CA:TRUE) as its own, \
                which TLS never accepts as a server's certificate, even when trusted with \
                --ca-cert: give the cluster a certificate signed by that CA and pass the CA with \
                --ca-cert, or make the self-signed certificate without CA:TRUE (openssl req \
                -x509 … -addext basicConstraints=critical,CA:FALSE -addext \
                subjectAltName=DNS:<host>); --insecure skips verification (unsafe)"
            .to_owned();
    }
    if reason.contains("NotValidForName") {
        return "the cluster's certificate is not issued for this host name: use the name it \
                was issued for (its subjectAltName) in the cluster URL, or reissue it for this \
                name"
            .to_owned();
    }
    if reason.contains("Expired") || reason.contains("NotValidYet") {
        return "the cluster's certificate is outside its validity period: renew it, or check \
                this computer's clock"
            .to_owned();
    }
    if reason.contains("UnknownIssuer") {
        return match given {
            Some(path) => format!(
                "the cluster's certificate is not signed by the CA in --ca-cert {path} (nor by \
                 a CA the system trusts): pass the certificate of the CA that issued it"
            ),
            None => "the cluster's certificate is issued by a CA this computer does not trust: \
                     for a private CA pass --ca-cert FILE.pem"
                .to_owned(),
        };
    }
    if reason.contains("certificate") || reason.contains("tls") || reason.contains("TLS") {
        return "TLS failed; for a private CA pass --ca-cert FILE.pem".to_owned();
    }
    "check the URL, your network and proxy settings".to_owned()
}

/// Redirects are followed only within the cluster's origin (scheme, host
/// and port): every request carries credentials (a token, a session
/// cookie, or a password in its body, which a 307 would send again), and
/// none may reach another server.
fn same_origin_redirects(origin: url::Origin) -> reqwest::redirect::Policy {
    const MOST: usize = 10;
    reqwest::redirect::Policy::custom(move |attempt| {
        let to = attempt.url().origin();
        if to != origin {
            let reason = format!(
                "the cluster redirected it to {}, another address than {}; requests carrying \
                 credentials are never sent on to another address: if that is the cluster's \
                 own address, use it as the cluster URL",
                to.ascii_serialization(),
                origin.ascii_serialization()
            );
            attempt.error(reason)
        } else if attempt.previous().len() > MOST {
            attempt.error(format!("more than {MOST} redirects; check the cluster URL"))
        } else {
            attempt.follow()
        }
    })
}

/// Why a body could not be read.
enum BodyError {
    /// Past [`HttpSettings::max_response_bytes`].
    TooLarge,
    /// The connection failed or timed out.
    Read(reqwest::Error),
}

/// Why an attempt failed in a way worth retrying.
enum Failure {
    Connect(String),
    /// The request took longer than this.
    Timeout(Duration),
    Body(String),
    Status(StatusCode, String, Option<Duration>),
}

impl Failure {
    fn describe(&self) -> String {
        match self {
            Failure::Connect(reason) => format!("cannot connect ({reason})"),
            Failure::Timeout(_) => "timed out".to_owned(),
            Failure::Body(reason) => format!("response broken off ({reason})"),
            Failure::Status(status, message, _) => format!("HTTP {} ({message})", status.as_u16()),
        }
    }
}

/// An error and its causes in one line, without the URL reqwest adds
/// (messages name the path already).
fn error_chain(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut parts = vec![error.to_string()];
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.join(": ")
}

/// The wait a `Retry-After` header asks for: seconds, or an HTTP date.
fn retry_after(headers: &header::HeaderMap) -> Option<Duration> {
    let value = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = jiff::fmt::rfc2822::DateTimeParser::new()
        .parse_timestamp(value)
        .ok()?;
    let wait = when.duration_since(jiff::Timestamp::now());
    Some(Duration::try_from(wait).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> header::HeaderMap {
        let mut map = header::HeaderMap::new();
        map.insert(header::RETRY_AFTER, HeaderValue::from_str(value).unwrap());
        map
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(retry_after(&headers("3")), Some(Duration::from_secs(3)));
        assert_eq!(
            retry_after(&headers("Wed, 21 Oct 2015 07:28:00 GMT")),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after(&headers("soon")), None);
        assert_eq!(retry_after(&header::HeaderMap::new()), None);
    }

    #[test]
    fn backoff_grows_with_jitter_and_is_capped() {
        let connection = Connection {
            url: "https://example.invalid".into(),
            credentials: crate::client::Credentials::default(),
            ca_cert: None,
            insecure: false,
            http: HttpSettings {
                backoff: Duration::from_millis(100),
                max_backoff: Duration::from_millis(1000),
                ..HttpSettings::default()
            },
        };
        let http = Http::new(&connection).unwrap();
        for _ in 0..100 {
            let first = http.backoff(1);
            assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
            let third = http.backoff(3);
            assert!(third >= Duration::from_millis(200) && third <= Duration::from_millis(400));
            assert!(http.backoff(30) <= Duration::from_millis(1000));
        }
    }

    #[test]
    fn refused_certificates_are_named_without_rustls_wrappers() {
        let chain = "error sending request: client error (Connect): invalid peer certificate: \
                     Other(OtherError(CaUsedAsEndEntity))";
        assert_eq!(
            certificate_refusal(chain).as_deref(),
            Some("TLS refused the cluster's certificate (CaUsedAsEndEntity)")
        );
        assert_eq!(
            certificate_refusal("client error (Connect): invalid peer certificate: UnknownIssuer")
                .as_deref(),
            Some("TLS refused the cluster's certificate (UnknownIssuer)")
        );
        assert_eq!(
            certificate_refusal("tcp connect error: Connection refused (os error 111)"),
            None
        );
    }

    #[test]
    fn refused_certificates_are_explained() {
        let ca = Some(std::path::Path::new("ca.pem"));
        let advice = |reason: &str, ca| connect_advice(reason, ca);
        let it = advice(
            "invalid peer certificate: Other(OtherError(CaUsedAsEndEntity))",
            ca,
        );
        assert!(it.contains("CA:TRUE") && it.contains("CA:FALSE"), "{it}");
        let it = advice("invalid peer certificate: UnknownIssuer", ca);
        assert!(
            it.contains("not signed by the CA in --ca-cert ca.pem"),
            "{it}"
        );
        let it = advice("invalid peer certificate: UnknownIssuer", None);
        assert!(it.contains("pass --ca-cert"), "{it}");
        let it = advice("invalid peer certificate: NotValidForName", ca);
        assert!(it.contains("host name"), "{it}");
        let it = advice("tcp connect error: Connection refused", None);
        assert!(it.contains("network"), "{it}");
    }

    #[test]
    fn bad_urls_are_refused_with_advice() {
        for url in ["example.com", "ftp://example.com", "https://"] {
            let connection = Connection {
                url: url.into(),
                credentials: crate::client::Credentials::default(),
                ca_cert: None,
                insecure: false,
                http: HttpSettings::default(),
            };
            let error = Http::new(&connection).err().unwrap().to_string();
            assert!(error.contains("https://"), "{error}");
        }
    }
}
