//! Secrets on every path: not in URLs, not sent to another server after a
//! redirect, not repeated from a cluster's error.

use predicates::prelude::*;

use crate::fake::{self, FakeThoughtSpot};
use crate::fetch::{Scratch, fixtures};

/// The server URL with `user:password@` put in front of the host.
fn with_userinfo(server: &FakeThoughtSpot, userinfo: &str) -> String {
    server
        .url()
        .replacen("http://", &format!("http://{userinfo}@"), 1)
}

/// stdout and stderr of a finished command, as one text.
fn all_output(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn a_password_in_the_url_is_refused_never_sent_stored_or_shown() {
    // `https://user:pass@host` once reached the logs, the snapshot's
    // cluster_url, profiles.toml and `config list`.
    const SECRET: &str = "Url-Secret-42";
    let server = FakeThoughtSpot::start(fixtures());
    let scratch = Scratch::new();
    let url = with_userinfo(&server, &format!("admin:{SECRET}"));

    let output = scratch
        .with_password(&server)
        .env("THOUGHTSPOT_URL", &url)
        .args(["-vv", "fetch"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", all_output(&output));
    let text = all_output(&output);
    assert!(!text.contains(SECRET), "{text}");
    assert!(
        text.contains("holds a user name or password") && text.contains("--password-env"),
        "{text}"
    );
    assert!(server.state.seen().is_empty(), "nothing was sent");
    assert!(!scratch.file("principals.json").exists());

    let output = scratch
        .cmd()
        .args(["config", "create", "--name", "p", "--url", &url])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(!all_output(&output).contains(SECRET));
    assert!(!scratch.file("config/profiles.toml").exists());

    // Written into the file by hand: refused when read, never listed.
    std::fs::create_dir(scratch.file("config")).unwrap();
    std::fs::write(
        scratch.file("config/profiles.toml"),
        format!("[profiles.p]\nurl = \"{url}\"\n"),
    )
    .unwrap();
    for args in [&["config", "list"][..], &["config", "show", "p"]] {
        let output = scratch.cmd().args(args).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let text = all_output(&output);
        assert!(!text.contains(SECRET), "{args:?}: {text}");
        assert!(text.contains("holds a user name or password"), "{text}");
    }
}

#[test]
fn credentials_never_follow_a_redirect_to_another_server() {
    let elsewhere = FakeThoughtSpot::start(fixtures());
    let server = FakeThoughtSpot::start(fixtures());
    server.state.set(|f| f.redirect_to = Some(elsewhere.url()));
    let scratch = Scratch::new();
    // A 307 would send the password in the body again, to the other server.
    scratch
        .with_password(&server)
        .arg("fetch")
        .assert()
        .code(3)
        .stderr(
            predicate::str::contains("POST /api/rest/2.0/auth/token/full")
                .and(predicate::str::contains(format!(
                    "redirected it to {}",
                    elsewhere.url()
                )))
                .and(predicate::str::contains("use it as the cluster URL")),
        );
    // A bearer token goes in a header: not sent on either.
    let token = server.state.mint_token(0);
    scratch
        .cmd()
        .env("THOUGHTSPOT_URL", server.url())
        .env("THOUGHTSPOT_TOKEN", &token)
        .arg("fetch")
        .assert()
        .code(3)
        .stderr(predicate::str::contains("GET /api/rest/2.0/system"));
    assert!(
        elsewhere.state.seen().is_empty(),
        "the other server got {:?}",
        elsewhere.state.seen()
    );
    // Not retried either: one request each time.
    assert_eq!(server.state.seen().len(), 2, "{:?}", server.state.seen());
}

#[test]
fn secrets_a_cluster_echoes_in_its_errors_are_scrubbed() {
    let server = FakeThoughtSpot::start(fixtures());
    server.state.set(|f| f.echo_requests = true);
    let scratch = Scratch::new();
    for (var, secret) in [
        ("THOUGHTSPOT_PASSWORD", "Echoed-Password-55"),
        ("THOUGHTSPOT_SECRET_KEY", "Echoed-Key-66"),
    ] {
        let output = scratch
            .cmd()
            .env("THOUGHTSPOT_URL", server.url())
            .env("THOUGHTSPOT_USERNAME", fake::USERNAME)
            .env(var, secret)
            .arg("fetch")
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(3));
        let text = all_output(&output);
        // The cluster did echo the request; its message is still shown.
        assert!(text.contains("(request: {"), "{text}");
        assert!(!text.contains(secret), "{var} shown: {text}");
        assert!(text.contains("<redacted>"), "{text}");
    }
    // A token echoed from the Authorization header of a failing page.
    let token = server.state.mint_token(0);
    server.state.set(|f| f.fail_at_offset = Some(0));
    let output = scratch
        .cmd()
        .env("THOUGHTSPOT_URL", server.url())
        .env("THOUGHTSPOT_TOKEN", &token)
        .args(["fetch", "--retries", "0"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(3));
    let text = all_output(&output);
    assert!(text.contains("Authorization: Bearer <redacted>"), "{text}");
    assert!(!text.contains(&token), "{text}");
    // Tokens issued during the run are scrubbed too.
    let output = scratch
        .with_password(&server)
        .args(["fetch", "--retries", "0"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(3));
    let text = all_output(&output);
    assert!(text.contains("Authorization: Bearer <redacted>"), "{text}");
    for issued in server.state.tokens() {
        assert!(!text.contains(&issued), "{text}");
    }
}
