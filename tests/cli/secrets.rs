//! Secrets on every path: not in URLs.

use crate::fake::FakeThoughtSpot;
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
