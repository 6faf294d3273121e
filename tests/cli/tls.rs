//! TLS against a local HTTPS server with a self-signed certificate:
//! refused by default, trusted with `--ca-cert`, accepted with `--insecure`
//! (and warned about); a CA certificate used as the server's own is
//! refused even with `--ca-cert`, saying exactly why.

use std::io::Write;
use std::sync::Arc;

use predicates::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::ts_principals;

/// An HTTPS server on 127.0.0.1 answering every request with 401 (proof
/// that the TLS handshake succeeded) with a self-signed certificate;
/// returns its port and that certificate. With `is_ca` the certificate
/// says it is a CA (`basicConstraints CA:TRUE`), as `openssl req -x509`
/// makes them by default.
fn https_server(is_ca: bool) -> (u16, String) {
    let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    if is_ca {
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    }
    let signing_key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&signing_key).unwrap();
    let pem = cert.pem();
    let chain = vec![cert.der().clone()];
    let key = tokio_rustls::rustls::pki_types::PrivateKeyDer::try_from(signing_key.serialize_der())
        .unwrap();
    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(Arc::new(
        tokio_rustls::rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let mut request = Vec::new();
                    let mut buffer = [0u8; 4096];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tls.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buffer[..n]),
                        }
                    }
                    let body = r#"{"error":{"message":"tls ok"}}"#;
                    let response = format!(
                        "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\n\
                         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = tls.write_all(response.as_bytes()).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
    });
    (port, pem)
}

#[test]
fn a_private_ca_is_trusted_only_when_given() {
    let (port, pem) = https_server(false);
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::File::create(&ca)
        .unwrap()
        .write_all(pem.as_bytes())
        .unwrap();
    let fetch_retrying = |retries: &str| {
        let mut cmd = ts_principals(dir.path());
        cmd.env("TS_PRINCIPALS_CONFIG_DIR", dir.path().join("config"))
            .env("THOUGHTSPOT_URL", format!("https://127.0.0.1:{port}"))
            .env("THOUGHTSPOT_TOKEN", "t")
            .args(["fetch", "--retries", retries]);
        cmd
    };
    let fetch = || fetch_retrying("0");
    // Unknown CA: refused, with the hint.
    fetch().assert().code(3).stderr(
        predicate::str::contains("cannot connect").and(predicate::str::contains("--ca-cert")),
    );
    // Said once, and not retried: the same certificate would come back.
    let output = fetch_retrying("4").output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains(
            "after 1 attempt(s): TLS refused the cluster's certificate (UnknownIssuer); the \
             cluster's certificate is issued by a CA this computer does not trust"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("retrying"), "{stderr}");
    assert_eq!(stderr.matches("error: ").count(), 1, "{stderr}");
    // With the CA: the handshake succeeds and the server's 401 comes back.
    fetch().arg("--ca-cert").arg(&ca).assert().code(3).stderr(
        predicate::str::contains("HTTP 401 (tls ok)")
            .and(predicate::str::contains("bearer token was refused")),
    );
    // --insecure: accepted too, and warned about.
    fetch().arg("--insecure").assert().code(3).stderr(
        predicate::str::contains("HTTP 401 (tls ok)").and(predicate::str::contains(
            "TLS certificate verification is OFF",
        )),
    );
}

#[test]
fn a_self_signed_ca_certificate_as_the_servers_own_is_explained() {
    // `--ca-cert` with the server's own self-signed certificate made with
    // CA:TRUE once failed with a bare `CaUsedAsEndEntity`.
    let (port, pem) = https_server(true);
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("server.pem");
    std::fs::write(&ca, pem).unwrap();
    let mut cmd = ts_principals(dir.path());
    cmd.env("TS_PRINCIPALS_CONFIG_DIR", dir.path().join("config"))
        .env("THOUGHTSPOT_URL", format!("https://127.0.0.1:{port}"))
        .env("THOUGHTSPOT_TOKEN", "t")
        .args(["fetch", "--retries", "0", "--ca-cert"])
        .arg(&ca);
    let output = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("presents a CA certificate (basicConstraints CA:TRUE) as its own")
            && stderr.contains("CA:FALSE")
            && !stderr.contains("for a private CA pass"),
        "{stderr}"
    );
    // Said once: rustls-platform-verifier's own log line (`error: failed
    // to verify TLS certificate: … Other(OtherError(CaUsedAsEndEntity))`)
    // came first, and the final error repeated rustls's raw reason.
    assert_eq!(stderr.matches("error: ").count(), 1, "{stderr}");
    assert!(
        !stderr.contains("failed to verify TLS certificate"),
        "{stderr}"
    );
    assert!(!stderr.contains("OtherError"), "{stderr}");
    assert!(
        stderr.contains("TLS refused the cluster's certificate (CaUsedAsEndEntity)"),
        "{stderr}"
    );
}
