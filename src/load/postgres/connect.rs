//! Where a PostgreSQL server is and how to reach it: a `postgres://` URL as
//! libpq reads it, the password from the URL, `PGPASSWORD` or the password
//! file, and TLS through rustls by `sslmode`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio_postgres::config::{Host, SslMode as PgSslMode};

use super::PgError;

/// `sslmode`, as libpq reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    /// Never TLS.
    Disable,
    /// TLS when the server offers it, without checking its certificate
    /// (libpq's default).
    Prefer,
    /// TLS always, without checking the certificate.
    Require,
    /// TLS with a certificate signed by a trusted authority, any host name.
    VerifyCa,
    /// TLS with a trusted certificate for the host connected to.
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Option<SslMode> {
        Some(match value {
            "disable" | "allow" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }
}

/// A server to connect to, parsed from a URL. Never shows the password.
#[derive(Clone)]
pub struct Target {
    config: tokio_postgres::Config,
    ssl: SslMode,
    root_cert: Option<PathBuf>,
    shown: String,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

/// What the environment supplies when the URL does not: `PGUSER`,
/// `PGPASSWORD`, `PGPASSFILE`, `HOME`, `USER`.
#[derive(Clone, Debug, Default)]
pub struct Environment {
    /// `PGHOST`.
    pub host: Option<String>,
    /// `PGPORT`.
    pub port: Option<String>,
    /// `PGUSER`, else `USER`.
    pub user: Option<String>,
    /// `PGDATABASE`.
    pub database: Option<String>,
    /// `PGPASSWORD`.
    pub password: Option<String>,
    /// `PGPASSFILE`, else `~/.pgpass`.
    pub passfile: Option<PathBuf>,
    /// `PGSSLMODE`.
    pub sslmode: Option<String>,
}

impl Environment {
    /// The process environment.
    pub fn from_process() -> Self {
        let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
        Environment {
            host: var("PGHOST"),
            port: var("PGPORT"),
            user: var("PGUSER").or_else(|| var("USER")),
            database: var("PGDATABASE"),
            password: var("PGPASSWORD"),
            passfile: var("PGPASSFILE")
                .map(PathBuf::from)
                .or_else(|| var("HOME").map(|home| Path::new(&home).join(".pgpass"))),
            sslmode: var("PGSSLMODE"),
        }
    }
}

fn invalid(url: &str, problem: impl Into<String>) -> PgError {
    PgError::Url {
        url: url.to_owned(),
        problem: problem.into(),
    }
}

impl Target {
    /// Parses `postgres://user[:password]@host[:port]/database?sslmode=…`
    /// (or `postgresql://`). `sslmode` and `sslrootcert` are read here; other
    /// parameters (`connect_timeout`, `application_name`, `options`, …) go to
    /// the driver as they are.
    pub fn parse(url: &str, env: &Environment) -> Result<Target, PgError> {
        let parsed = url::Url::parse(url).map_err(|e| {
            invalid(
                "(not shown: it may hold a password)",
                format!("is not a URL: {e} (expected postgres://user@host:5432/database)"),
            )
        })?;
        let shown = redact_url(&parsed);
        if !matches!(parsed.scheme(), "postgres" | "postgresql") {
            return Err(invalid(
                &shown,
                "is not a postgres:// URL (expected postgres://user@host:5432/database)",
            ));
        }
        let mut ssl = None;
        let mut root_cert = None;
        // Parameters are passed on as written (still percent-encoded), so
        // `options=-c%20x%3D1` reaches the driver unchanged.
        let mut kept = Vec::new();
        for raw in parsed
            .query()
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
        {
            let (key, value) = raw.split_once('=').unwrap_or((raw, ""));
            let value: String = url::form_urlencoded::parse(format!("v={value}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default();
            match key {
                "sslmode" => {
                    ssl = Some(SslMode::parse(&value).ok_or_else(|| {
                        invalid(
                            &shown,
                            format!(
                                "sslmode={value} is not one of disable, prefer, require, \
                                 verify-ca, verify-full"
                            ),
                        )
                    })?);
                }
                "sslrootcert" => root_cert = Some(value),
                "sslcert" | "sslkey" | "sslpassword" | "sslcrl" | "gssencmode" | "krbsrvname"
                | "gsslib" | "requirepeer" | "service" | "passfile" => {
                    return Err(invalid(
                        &shown,
                        format!(
                            "{key} is not supported by ts-principals (password authentication \
                             over TLS is; use PGPASSFILE for a password file)"
                        ),
                    ));
                }
                "user"
                | "password"
                | "dbname"
                | "options"
                | "application_name"
                | "host"
                | "hostaddr"
                | "port"
                | "connect_timeout"
                | "tcp_user_timeout"
                | "keepalives"
                | "keepalives_idle"
                | "keepalives_interval"
                | "keepalives_retries"
                | "target_session_attrs"
                | "channel_binding"
                | "load_balance_hosts"
                | "sslnegotiation" => kept.push(raw),
                _ => {
                    return Err(invalid(
                        &shown,
                        format!(
                            "has the parameter {key:?}, which is not a libpq connection \
                             parameter ts-principals knows"
                        ),
                    ));
                }
            }
        }
        let mut rest = parsed.clone();
        rest.set_query(None);
        let mut text = rest.to_string();
        if !kept.is_empty() {
            text.push('?');
            text.push_str(&kept.join("&"));
        }
        let mut config: tokio_postgres::Config = text
            .parse()
            .map_err(|e: tokio_postgres::Error| invalid(&shown, e.to_string()))?;
        if config.get_hosts().is_empty() {
            config.host(env.host.as_deref().unwrap_or("localhost"));
        }
        if config.get_ports().is_empty()
            && let Some(port) = &env.port
        {
            let port = port
                .parse()
                .map_err(|_| invalid(&shown, format!("PGPORT={port} is not a port number")))?;
            config.port(port);
        }
        if config.get_user().is_none() {
            let user = env.user.as_deref().ok_or_else(|| {
                invalid(
                    &shown,
                    "names no user; write postgres://USER@host/database or set PGUSER",
                )
            })?;
            config.user(user);
        }
        if config.get_dbname().is_none() {
            let database = env.database.as_deref().or(config.get_user());
            if let Some(database) = database.map(str::to_owned) {
                config.dbname(&database);
            }
        }
        let ssl = match ssl {
            Some(ssl) => ssl,
            None => match &env.sslmode {
                Some(mode) => SslMode::parse(mode).ok_or_else(|| {
                    invalid(&shown, format!("PGSSLMODE={mode} is not a valid sslmode"))
                })?,
                None => SslMode::Prefer,
            },
        };
        if config.get_password().is_none()
            && let Some(password) = env.password.clone().or_else(|| pgpass(&config, env))
        {
            config.password(password);
        }
        config.ssl_mode(match ssl {
            SslMode::Disable => PgSslMode::Disable,
            SslMode::Prefer => PgSslMode::Prefer,
            _ => PgSslMode::Require,
        });
        if config.get_application_name().is_none() {
            config.application_name("ts-principals");
        }
        Ok(Target {
            config,
            ssl,
            root_cert: root_cert.map(PathBuf::from),
            shown,
        })
    }

    /// The database name.
    pub fn database(&self) -> &str {
        self.config.get_dbname().unwrap_or("")
    }

    /// `connect_timeout` from the URL, when given.
    pub fn connect_timeout(&self) -> Option<std::time::Duration> {
        self.config.get_connect_timeout().copied()
    }

    /// The TLS mode.
    pub fn ssl(&self) -> SslMode {
        self.ssl
    }

    /// Connects; the connection runs on a spawned task until the client is
    /// dropped.
    pub async fn connect(&self) -> Result<tokio_postgres::Client, PgError> {
        let failed = |source: tokio_postgres::Error| PgError::Connect {
            target: self.shown.clone(),
            advice: connect_advice(&source, self.ssl),
            source,
        };
        let client = if self.ssl == SslMode::Disable {
            let (client, connection) = self
                .config
                .connect(tokio_postgres::NoTls)
                .await
                .map_err(failed)?;
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!("PostgreSQL connection ended: {e}");
                }
            });
            client
        } else {
            let tls = tokio_postgres_rustls::MakeRustlsConnect::new(self.tls_config()?);
            let (client, connection) = self.config.connect(tls).await.map_err(failed)?;
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!("PostgreSQL connection ended: {e}");
                }
            });
            client
        };
        Ok(client)
    }

    fn tls_config(&self) -> Result<rustls::ClientConfig, PgError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls_error = |problem: String| PgError::Tls {
            target: self.shown.clone(),
            problem,
        };
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_error(e.to_string()))?;
        let verifier: Arc<dyn ServerCertVerifier> = match self.ssl {
            SslMode::Disable | SslMode::Prefer | SslMode::Require => {
                Arc::new(EncryptOnly(provider.clone()))
            }
            SslMode::VerifyCa | SslMode::VerifyFull => {
                let file = self
                    .root_cert
                    .as_ref()
                    .filter(|p| p.as_os_str() != "system");
                let strict: Arc<dyn ServerCertVerifier> = match file {
                    Some(path) => {
                        let mut roots = rustls::RootCertStore::empty();
                        let certs = CertificateDer::pem_file_iter(path).map_err(|e| {
                            tls_error(format!("sslrootcert {}: {e}", path.display()))
                        })?;
                        for cert in certs {
                            let cert = cert.map_err(|e| {
                                tls_error(format!("sslrootcert {}: {e}", path.display()))
                            })?;
                            roots.add(cert).map_err(|e| {
                                tls_error(format!("sslrootcert {}: {e}", path.display()))
                            })?;
                        }
                        if roots.is_empty() {
                            return Err(tls_error(format!(
                                "sslrootcert {} holds no PEM certificate",
                                path.display()
                            )));
                        }
                        rustls::client::WebPkiServerVerifier::builder_with_provider(
                            Arc::new(roots),
                            provider.clone(),
                        )
                        .build()
                        .map_err(|e| tls_error(e.to_string()))?
                    }
                    None => Arc::new(
                        rustls_platform_verifier::Verifier::new(provider.clone())
                            .map_err(|e| tls_error(e.to_string()))?,
                    ),
                };
                if self.ssl == SslMode::VerifyCa {
                    Arc::new(AnyName(strict))
                } else {
                    strict
                }
            }
        };
        Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth())
    }
}

/// What to try when a connection fails.
fn connect_advice(error: &tokio_postgres::Error, ssl: SslMode) -> String {
    let text = error.to_string().to_lowercase();
    let mut chain = String::new();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        chain.push_str(&cause.to_string().to_lowercase());
        source = cause.source();
    }
    let all = format!("{text} {chain}");
    if all.contains("password authentication failed") || all.contains("no password") {
        "check the user and the password (in the URL, PGPASSWORD or ~/.pgpass)".into()
    } else if all.contains("password missing") {
        "the server asks for a password and none was found: put it in the URL, PGPASSWORD or \
         ~/.pgpass (PGPASSFILE)"
            .into()
    } else if all.contains("not valid for name") {
        "the server's certificate is for another host name: connect with a name it was issued \
         for, or use sslmode=verify-ca to check the issuer only"
            .into()
    } else if all.contains("does not support tls") || all.contains("not support ssl") {
        "the server has TLS turned off: use sslmode=disable (or prefer), or turn ssl on in the \
         server's postgresql.conf"
            .into()
    } else if all.contains("certificate") || all.contains("tls") || all.contains("handshake") {
        match ssl {
            SslMode::VerifyCa | SslMode::VerifyFull => {
                "the server's certificate was not trusted: give its CA with \
                 sslrootcert=/path/ca.pem in the URL, or use sslmode=require to encrypt \
                 without checking it"
                    .into()
            }
            _ => "the server refused TLS: try sslmode=disable for a server without TLS".into(),
        }
    } else if all.contains("refused") || all.contains("timed out") || all.contains("resolve") {
        "check the host and port, and that the server accepts TCP connections from here".into()
    } else if all.contains("does not exist") {
        "check the database name at the end of the URL".into()
    } else {
        "check the URL, the credentials and the server's pg_hba.conf".into()
    }
}

/// `postgres://user:***@host/db`: the URL with its password hidden; a
/// text that is not a URL is not shown at all (it may hold a password in a
/// form this cannot find).
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(parsed) => redact_url(&parsed),
        Err(_) => "(not shown: it may hold a password)".to_owned(),
    }
}

fn redact_url(url: &url::Url) -> String {
    let mut shown = url.clone();
    if shown.password().is_some() {
        let _ = shown.set_password(Some("***"));
    }
    if let Some(query) = url.query() {
        let hidden: Vec<String> = (query.split('&'))
            .map(|pair| match pair.split_once('=') {
                Some(("password" | "sslpassword", _)) => {
                    format!("{}=***", pair.split('=').next().unwrap_or_default())
                }
                _ => pair.to_owned(),
            })
            .collect();
        shown.set_query(Some(&hidden.join("&")));
    }
    shown.to_string()
}

/// The password for this connection from the password file: lines
/// `host:port:database:user:password`, `*` matching anything, `\:` and `\\`
/// escaped. libpq ignores a file others can read; so does this.
fn pgpass(config: &tokio_postgres::Config, env: &Environment) -> Option<String> {
    let path = env.passfile.as_ref()?;
    let meta = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(
                "password file {} is readable by others and is ignored, as libpq does; \
                 chmod 0600 it",
                path.display()
            );
            return None;
        }
    }
    #[cfg(not(unix))]
    let _ = meta;
    let text = std::fs::read_to_string(path).ok()?;
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(host)) => host.clone(),
        _ => "localhost".to_owned(),
    };
    let port = config
        .get_ports()
        .first()
        .copied()
        .unwrap_or(5432)
        .to_string();
    let wanted = [
        host.as_str(),
        port.as_str(),
        config.get_dbname().unwrap_or(""),
        config.get_user().unwrap_or(""),
    ];
    text.lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .find_map(|line| {
            let fields = split_pgpass(line);
            if fields.len() < 5 {
                return None;
            }
            let matches =
                (fields.iter().zip(wanted)).all(|(field, want)| field == "*" || field == want);
            matches.then(|| fields[4].clone())
        })
}

/// Splits a password-file line on unescaped colons, unescaping `\:` and
/// `\\`; the password (fifth field) keeps any colons after it.
fn split_pgpass(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => field.extend(chars.next()),
            ':' if fields.len() < 4 => fields.push(std::mem::take(&mut field)),
            _ => field.push(c),
        }
    }
    fields.push(field);
    fields
}

/// `sslmode=require` (and prefer): encrypt, but take any certificate, as
/// libpq does. Handshake signatures are still checked.
#[derive(Debug)]
struct EncryptOnly(Arc<CryptoProvider>);

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `sslmode=verify-ca`: a trusted chain, whatever name the certificate is
/// for.
#[derive(Debug)]
struct AnyName(Arc<dyn ServerCertVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        use rustls::{CertificateError, Error};
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Environment {
        Environment {
            user: Some("admin".into()),
            ..Environment::default()
        }
    }

    #[test]
    fn urls_are_read_as_libpq_reads_them_and_shown_without_password() {
        let target = Target::parse(
            "postgres://loader:s3cret@db.example.com:6543/analytics?sslmode=verify-full&connect_timeout=5",
            &env(),
        )
        .unwrap();
        assert_eq!(target.ssl(), SslMode::VerifyFull);
        assert_eq!(target.database(), "analytics");
        assert_eq!(target.config.get_user(), Some("loader"));
        assert_eq!(target.config.get_password(), Some(&b"s3cret"[..]));
        assert_eq!(target.config.get_ports(), [6543]);
        let shown = target.to_string();
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("loader:***@db.example.com"), "{shown}");
        let debug = format!("{target:?}");
        assert!(!debug.contains("s3cret"), "{debug}");

        let defaults = Target::parse("postgres://db.example.com", &env()).unwrap();
        assert_eq!(defaults.ssl(), SslMode::Prefer);
        assert_eq!(defaults.config.get_user(), Some("admin"));
        assert_eq!(defaults.database(), "admin");
    }

    #[test]
    fn bad_urls_say_what_is_wrong_without_the_password() {
        for (url, wanted) in [
            ("mysql://u:pw@h/db", "not a postgres:// URL"),
            ("postgres://u:pw@h/db?sslmode=maybe", "sslmode=maybe"),
            ("not a url", "expected postgres://"),
        ] {
            let err = Target::parse(url, &env()).unwrap_err().to_string();
            assert!(err.contains(wanted), "{url}: {err}");
            assert!(!err.contains("pw@"), "{url}: {err}");
        }
        let nobody = Environment::default();
        let err = Target::parse("postgres://h/db", &nobody)
            .unwrap_err()
            .to_string();
        assert!(err.contains("PGUSER"), "{err}");
    }

    #[test]
    fn the_password_comes_from_the_url_then_pgpassword_then_the_password_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pgpass");
        std::fs::write(
            &file,
            "# comment\nother:5432:*:*:wrong\ndb.example.com:*:*:loader:pa\\:ss:word\n",
        )
        .unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let mut env = Environment {
            passfile: Some(file.clone()),
            ..env()
        };
        let url = "postgres://loader@db.example.com/analytics";
        let password = |env: &Environment, url: &str| {
            let target = Target::parse(url, env).unwrap();
            target.config.get_password().map(|p| p.to_vec())
        };
        assert_eq!(password(&env, url), Some(b"pa:ss:word".to_vec()));
        env.password = Some("from-env".into());
        assert_eq!(password(&env, url), Some(b"from-env".to_vec()));
        let with = "postgres://loader:inline@db.example.com/analytics";
        assert_eq!(password(&env, with), Some(b"inline".to_vec()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            env.password = None;
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert_eq!(password(&env, url), None);
        }
    }

    #[test]
    fn parameters_pass_through_as_written_and_unknown_ones_are_named() {
        let target = Target::parse(
            "postgres://u@h/db?options=-c%20statement_timeout%3D1&sslmode=require&connect_timeout=3",
            &env(),
        )
        .unwrap();
        assert_eq!(target.config.get_options(), Some("-c statement_timeout=1"));
        assert_eq!(
            target.connect_timeout(),
            Some(std::time::Duration::from_secs(3))
        );
        for (url, wanted) in [
            ("postgres://u@h/db?foo=bar", "\"foo\""),
            (
                "postgres://u@h/db?sslcert=/c.pem",
                "sslcert is not supported",
            ),
        ] {
            let err = Target::parse(url, &env()).unwrap_err().to_string();
            assert!(err.contains(wanted), "{err}");
        }
    }

    #[test]
    fn redact_hides_passwords_even_in_unparsable_urls() {
        assert_eq!(redact("postgres://u:pw@h/db"), "postgres://u:***@h/db");
        assert!(!redact("postgres://u:p w@h:x/db").contains("p w"));
        assert!(!redact("host=h password=secret").contains("secret"));
        let shown = redact("postgres://u@h/db?sslmode=require&password=secret");
        assert_eq!(shown, "postgres://u@h/db?sslmode=require&password=***");
    }
}
