//! Secrets on every path: not in URLs, not sent to another server after a
//! redirect, not repeated from a cluster's error or a broken profile file,
//! and a profile file is neither open to others nor lost to a race.

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

#[test]
fn a_broken_profiles_file_names_the_line_not_the_value() {
    const SECRET: &str = "Typed-Secret-9";
    let scratch = Scratch::new();
    std::fs::create_dir(scratch.file("config")).unwrap();
    std::fs::write(
        scratch.file("config/profiles.toml"),
        format!(
            "[profiles.p]\nurl = \"https://ts.example.com\"\nusername = \"admin\"\npassword = \"{SECRET}\"\n"
        ),
    )
    .unwrap();
    let output = scratch.cmd().args(["config", "list"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let text = all_output(&output);
    assert!(!text.contains(SECRET), "{text}");
    assert!(text.contains("profiles.toml: line 4, column 12"), "{text}");
    assert!(text.contains("fix or delete the file"), "{text}");
}

/// A fake cluster and a scratch config with profile `p` for it (password
/// from `P_PW`).
#[cfg(unix)]
fn profile_p() -> (FakeThoughtSpot, Scratch) {
    let server = FakeThoughtSpot::start(fixtures());
    let scratch = Scratch::new();
    scratch
        .cmd()
        .args(["config", "create", "--name", "p", "--url"])
        .arg(server.url())
        .args(["--username", fake::USERNAME, "--password-env", "P_PW"])
        .assert()
        .success();
    (server, scratch)
}

#[cfg(unix)]
#[test]
fn a_profiles_file_others_can_write_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let (server, scratch) = profile_p();
    let file = scratch.file("config/profiles.toml");
    let chmod = |path: &std::path::Path, mode| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    chmod(&file, 0o666);
    let refused = || {
        predicate::str::contains("can be changed by other users (mode 666)")
            .and(predicate::str::contains("chmod 600"))
    };
    scratch
        .cmd()
        .args(["config", "list"])
        .assert()
        .code(2)
        .stderr(refused());
    scratch
        .cmd()
        .env("P_PW", fake::PASSWORD)
        .args(["fetch", "--profile", "p"])
        .assert()
        .code(2)
        .stderr(refused());
    assert!(server.state.seen().is_empty());

    chmod(&file, 0o600);
    chmod(&scratch.file("config"), 0o777);
    scratch
        .cmd()
        .args(["config", "list"])
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("its directory can be changed")
                .and(predicate::str::contains("chmod 700")),
        );
    chmod(&scratch.file("config"), 0o700);
    scratch
        .cmd()
        .env("P_PW", fake::PASSWORD)
        .args(["fetch", "--profile", "p"])
        .assert()
        .success();
}

#[cfg(unix)]
#[test]
fn a_profiles_file_someone_else_owns_is_refused() {
    // Mode 600 and owned by `nobody` was accepted: its owner can change it
    // whatever the mode says. Giving a file away needs root.
    use std::os::unix::fs::chown;
    let (server, scratch) = profile_p();
    let file = scratch.file("config/profiles.toml");
    let dir = scratch.file("config");
    let me = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&dir).unwrap());
    if chown(&file, Some(65534), None).is_err() {
        eprintln!("skipped: giving a file to uid 65534 needs root");
        return;
    }
    let refused = |path: &std::path::Path| {
        predicate::str::contains("is owned by another user (uid 65534")
            .and(predicate::str::contains(format!(
                "chown {me} {}",
                path.display()
            )))
            .and(predicate::str::contains("TS_PRINCIPALS_CONFIG_DIR"))
    };
    scratch
        .cmd()
        .args(["config", "list"])
        .assert()
        .code(2)
        .stderr(refused(&file));
    scratch
        .cmd()
        .env("P_PW", fake::PASSWORD)
        .args(["fetch", "--profile", "p"])
        .assert()
        .code(2)
        .stderr(refused(&file));
    assert!(server.state.seen().is_empty());

    chown(&file, Some(me), None).unwrap();
    chown(&dir, Some(65534), None).unwrap();
    scratch
        .cmd()
        .args(["config", "list"])
        .assert()
        .code(2)
        .stderr(refused(&dir).and(predicate::str::contains(format!(
            "its directory {} is owned",
            dir.display()
        ))));
    scratch
        .cmd()
        .args([
            "config",
            "create",
            "--name",
            "q",
            "--url",
            "https://ts.example.com",
        ])
        .args(["--token-env", "T"])
        .assert()
        .code(2)
        .stderr(refused(&dir));
    chown(&dir, Some(me), None).unwrap();
    scratch
        .cmd()
        .env("P_PW", fake::PASSWORD)
        .args(["fetch", "--profile", "p"])
        .assert()
        .success();
}

#[test]
fn profiles_created_at_the_same_time_are_all_kept() {
    // Concurrent `config create` once lost profiles: each read the file,
    // added its own and wrote it over the others'.
    const RUNS: usize = 12;
    let scratch = Scratch::new();
    let children: Vec<_> = (0..RUNS)
        .map(|i| {
            let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("ts-principals"));
            cmd.current_dir(scratch.path())
                .env("TS_PRINCIPALS_CONFIG_DIR", scratch.file("config"))
                .args(["config", "create", "--name", &format!("p{i}")])
                .args(["--url", "https://ts.example.com", "--token-env", "T"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null());
            cmd.spawn().expect("spawn")
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    let listed = scratch.cmd().args(["config", "list"]).output().unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    for i in 0..RUNS {
        assert!(
            listed.lines().any(|l| l.starts_with(&format!("p{i} "))),
            "p{i} lost: {listed}"
        );
    }
}
