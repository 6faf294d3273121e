//! `fetch`, `generate --profile` and `config` against the fake ThoughtSpot
//! in `tests/fake_thoughtspot`: paging, org scopes, every auth method, and
//! every fault the fake can throw.

use std::path::{Path, PathBuf};
use std::time::Duration;

use predicates::prelude::*;
use serde_json::Value;

use crate::common::{self, fixture, tree};
use crate::fake::{self, Data, FakeThoughtSpot};

/// A scratch directory with its own (empty) profile store.
pub(crate) struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    pub(crate) fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// ts-principals with no THOUGHTSPOT_* variables from the outside.
    pub(crate) fn cmd(&self) -> assert_cmd::Command {
        let mut cmd = common::ts_principals(self.path());
        for var in [
            "THOUGHTSPOT_URL",
            "THOUGHTSPOT_USERNAME",
            "THOUGHTSPOT_PASSWORD",
            "THOUGHTSPOT_SECRET_KEY",
            "THOUGHTSPOT_TOKEN",
        ] {
            cmd.env_remove(var);
        }
        cmd.env("TS_PRINCIPALS_CONFIG_DIR", self.file("config"));
        cmd
    }

    /// ts-principals signed in to `server` with the password.
    pub(crate) fn with_password(&self, server: &FakeThoughtSpot) -> assert_cmd::Command {
        let mut cmd = self.cmd();
        cmd.env("THOUGHTSPOT_URL", server.url())
            .env("THOUGHTSPOT_USERNAME", fake::USERNAME)
            .env("THOUGHTSPOT_PASSWORD", fake::PASSWORD);
        cmd
    }
}

pub(crate) fn fixtures() -> Data {
    Data::load(&fixture("")).expect("fixtures load")
}

pub(crate) fn fetch_ok(scratch: &Scratch, server: &FakeThoughtSpot, extra: &[&str]) -> Value {
    let out = scratch.file("principals.json");
    scratch
        .with_password(server)
        .arg("fetch")
        .args(extra)
        .arg("-o")
        .arg(&out)
        .assert()
        .success();
    serde_json::from_slice(&std::fs::read(&out).expect("snapshot written")).expect("json")
}

/// data/ and tml/ of `generate`.
fn generated(
    scratch: &Scratch,
    from: &[&Path],
    extra: &[&str],
    out: &str,
) -> Vec<(String, Vec<u8>)> {
    let mut cmd = scratch.cmd();
    cmd.arg("generate");
    for f in from {
        cmd.arg("--from").arg(f);
    }
    cmd.args(extra).args(["--out", out]).assert().success();
    without_manifest(&scratch.file(out))
}

/// The files under `dir` but the manifest (which names the input kind, and
/// so differs by design between a fetch and a file).
fn without_manifest(dir: &Path) -> Vec<(String, Vec<u8>)> {
    tree(dir)
        .into_iter()
        .filter(|(name, _)| name != "manifest.json")
        .collect()
}

/// The output of generating straight from the fixture files, as the fake's
/// cluster id names it.
fn expected_from_fixtures(scratch: &Scratch) -> Vec<(String, Vec<u8>)> {
    generated(
        scratch,
        &[&fixture("v2_combined.json")],
        &["--cluster-id", fake::CLUSTER_ID],
        "expected",
    )
}

fn assert_same_output(scratch: &Scratch, snapshot: &Path) {
    let expected = expected_from_fixtures(scratch);
    let fetched = generated(scratch, &[snapshot], &[], "fetched");
    assert_eq!(expected.len(), fetched.len());
    for ((name_a, a), (name_b, b)) in expected.iter().zip(&fetched) {
        assert_eq!(name_a, name_b);
        assert!(
            a == b,
            "{name_a} differs between fixture and fetched snapshot"
        );
    }
}

fn count(snapshot: &Value, list: &str) -> usize {
    snapshot[list].as_array().map_or(0, Vec::len)
}

#[test]
fn fetch_pages_through_every_org_and_generates_what_the_fixture_does() {
    let server = FakeThoughtSpot::start(fixtures());
    // The server caps pages at 3 while 5 are asked: short pages are not the end.
    server.state.set(|f| f.max_page = Some(3));
    let scratch = Scratch::new();
    let snapshot = fetch_ok(
        &scratch,
        &server,
        &["--page-size", "5", "--concurrency", "3"],
    );
    assert_eq!(snapshot["schema_version"], 1);
    assert_eq!(snapshot["source"]["cluster_id"], fake::CLUSTER_ID);
    assert_eq!(snapshot["source"]["release_version"], fake::RELEASE);
    assert_eq!(snapshot["source"]["api"], "v2");
    assert_eq!(count(&snapshot, "orgs"), 3);
    assert_eq!(count(&snapshot, "users"), 40);
    assert_eq!(count(&snapshot, "groups"), 14);
    assert_same_output(&scratch, &scratch.file("principals.json"));

    let seen = server.state.seen();
    let tokens: Vec<_> = seen
        .iter()
        .filter(|s| s.path.ends_with("token/full"))
        .collect();
    // One token for the cluster's details, then one per org, asked for with its org_id.
    assert_eq!(tokens.len(), 4, "{tokens:?}");
    for org in ["0", "1842551919", "2012345678"] {
        assert!(
            tokens
                .iter()
                .any(|t| t.body.contains(&format!("\"org_id\":{org}")))
        );
    }
    let searches: Vec<_> = seen
        .iter()
        .filter(|s| s.path.ends_with("/search") && !s.path.contains("orgs"))
        .collect();
    assert!(
        searches
            .iter()
            .all(|s| s.size.unwrap() <= 5 && s.status == 200)
    );
    assert!(server.state.max_in_flight() <= 3);
}

#[test]
fn the_fetched_snapshot_is_the_canonical_form_generate_reads() {
    let server = FakeThoughtSpot::start(fixtures());
    let scratch = Scratch::new();
    fetch_ok(&scratch, &server, &[]);
    let first = std::fs::read(scratch.file("principals.json")).unwrap();
    // Reading it and fetching again give the same principals (only the
    // fetch time may differ).
    fetch_ok(
        &scratch,
        &server,
        &["--concurrency", "1", "--page-size", "2"],
    );
    let second = std::fs::read(scratch.file("principals.json")).unwrap();
    let strip = |bytes: &[u8]| {
        let mut v: Value = serde_json::from_slice(bytes).unwrap();
        v["source"]["fetched_at"] = Value::Null;
        v
    };
    assert_eq!(strip(&first), strip(&second));
}

#[test]
fn org_selection_fetches_only_the_orgs_asked_for() {
    let server = FakeThoughtSpot::start(fixtures());
    let scratch = Scratch::new();
    let snapshot = fetch_ok(&scratch, &server, &["--org", "acme retail"]);
    let orgs: Vec<i64> = snapshot["orgs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_i64().unwrap())
        .collect();
    assert_eq!(orgs, [1842551919]);
    let searched: Vec<Option<i64>> = server
        .state
        .seen()
        .iter()
        .filter(|s| s.path.ends_with("users/search") || s.path.ends_with("groups/search"))
        .map(|s| s.org)
        .collect();
    assert!(!searched.is_empty());
    assert!(
        searched.iter().all(|&o| o == Some(1842551919)),
        "{searched:?}"
    );

    scratch
        .with_password(&server)
        .args(["fetch", "--org", "Nowhere"])
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("no org \"Nowhere\"")
                .and(predicate::str::contains("Acme Retail (1842551919)")),
        );
}

#[test]
fn a_bearer_token_names_each_org_in_the_request() {
    let server = FakeThoughtSpot::start(fixtures());
    let token = server.state.mint_token(0);
    let scratch = Scratch::new();
    let out = scratch.file("principals.json");
    scratch
        .cmd()
        .env("THOUGHTSPOT_URL", server.url())
        .env("THOUGHTSPOT_TOKEN", &token)
        .args(["fetch", "-o"])
        .arg(&out)
        .assert()
        .success();
    assert_same_output(&scratch, &out);
    let seen = server.state.seen();
    assert!(!seen.iter().any(|s| s.path.ends_with("token/full")));
    assert!(
        seen.iter()
            .filter(|s| s.path.ends_with("groups/search"))
            .all(|s| s.body.contains("org_identifiers"))
    );
}

#[test]
fn a_secret_key_signs_in_with_trusted_authentication() {
    let server = FakeThoughtSpot::start(fixtures());
    let scratch = Scratch::new();
    let out = scratch.file("principals.json");
    scratch
        .cmd()
        .env("THOUGHTSPOT_URL", server.url())
        .env("THOUGHTSPOT_USERNAME", fake::USERNAME)
        .env("THOUGHTSPOT_SECRET_KEY", fake::SECRET_KEY)
        // The secret key wins over a (wrong) password.
        .env("THOUGHTSPOT_PASSWORD", "wrong")
        .args(["fetch", "-o"])
        .arg(&out)
        .assert()
        .success();
    let seen = server.state.seen();
    let sign_in = seen
        .iter()
        .find(|s| s.path.ends_with("token/full"))
        .unwrap();
    assert!(sign_in.body.contains("secret_key") && !sign_in.body.contains("password"));
}

#[test]
fn refused_credentials_say_which_and_what_to_do() {
    let server = FakeThoughtSpot::start(fixtures());
    let scratch = Scratch::new();
    scratch
        .with_password(&server)
        .env("THOUGHTSPOT_PASSWORD", "not-the-password")
        .arg("fetch")
        .assert()
        .code(3)
        .stderr(
            predicate::str::contains("POST /api/rest/2.0/auth/token/full failed with HTTP 401")
                .and(predicate::str::contains(
                    "the password of user \"admin\" was refused",
                ))
                .and(predicate::str::contains("THOUGHTSPOT_PASSWORD")),
        );
    assert!(!scratch.file("principals.json").exists());

    scratch
        .cmd()
        .env("THOUGHTSPOT_URL", server.url())
        .env("THOUGHTSPOT_TOKEN", "expired-token")
        .arg("fetch")
        .assert()
        .code(3)
        .stderr(
            predicate::str::contains("the bearer token was refused")
                .and(predicate::str::contains("401")),
        );
}

#[test]
fn a_token_that_expires_mid_run_is_renewed() {
    let server = FakeThoughtSpot::start(fixtures());
    server.state.set(|f| f.token_uses = Some(2));
    let scratch = Scratch::new();
    fetch_ok(
        &scratch,
        &server,
        &["--page-size", "3", "--concurrency", "1"],
    );
    assert_same_output(&scratch, &scratch.file("principals.json"));
    let sign_ins = server
        .state
        .seen()
        .iter()
        .filter(|s| s.path.ends_with("token/full"))
        .count();
    assert!(sign_ins > 3, "tokens were renewed: {sign_ins} sign-ins");
}

#[test]
fn rate_limits_are_waited_out_as_retry_after_asks() {
    let server = FakeThoughtSpot::start(fixtures());
    server.state.set(|f| f.rate_limit_every = Some(4));
    let scratch = Scratch::new();
    let out = scratch.file("principals.json");
    scratch
        .with_password(&server)
        .args(["fetch", "--page-size", "10", "-o"])
        .arg(&out)
        .assert()
        .success()
        .stderr(
            predicate::str::contains("HTTP 429").and(predicate::str::contains("retrying in 1.0s")),
        );
    assert_same_output(&scratch, &out);
}

#[test]
fn bursts_of_503_are_retried() {
    let server = FakeThoughtSpot::start(fixtures());
    server.state.set(|f| f.unavailable = 3);
    let scratch = Scratch::new();
    fetch_ok(&scratch, &server, &["--concurrency", "1"]);
    assert_same_output(&scratch, &scratch.file("principals.json"));
    let unavailable = server
        .state
        .seen()
        .iter()
        .filter(|s| s.status == 503)
        .count();
    assert_eq!(unavailable, 3);
}

#[test]
fn slow_responses_succeed_within_the_timeout_and_fail_clearly_beyond_it() {
    let server = FakeThoughtSpot::start(fixtures());
    server.state.set(|f| f.slow = Duration::from_millis(300));
    let scratch = Scratch::new();
    fetch_ok(&scratch, &server, &["--timeout", "5"]);
    assert_same_output(&scratch, &scratch.file("principals.json"));

    server.state.set(|f| f.slow = Duration::from_millis(2500));
    scratch
        .with_password(&server)
        .args([
            "fetch",
            "--timeout",
            "1",
            "--retries",
            "1",
            "-o",
            "slow.json",
        ])
        .assert()
        .code(3)
        .stderr(
            predicate::str::contains("timed out after 1s (2 attempt(s))")
                .and(predicate::str::contains("--timeout")),
        );
    assert!(!scratch.file("slow.json").exists());
}

#[test]
fn a_connection_dropped_mid_body_is_retried_then_reported() {
    let server = FakeThoughtSpot::start(fixtures());
    server.state.set(|f| f.drop_mid_body = 2);
    let scratch = Scratch::new();
    fetch_ok(&scratch, &server, &[]);
    assert_same_output(&scratch, &scratch.file("principals.json"));

    server.state.set(|f| f.drop_mid_body = 1000);
    scratch
        .with_password(&server)
        .args(["fetch", "--retries", "1", "-o", "dropped.json"])
        .assert()
        .code(3)
        .stderr(predicate::str::contains(
            "connection broke before the whole response came",
        ));
    assert!(!scratch.file("dropped.json").exists());
}

/// Each search request at most once: nothing was retried.
fn assert_no_search_repeated(server: &FakeThoughtSpot) {
    let searches: Vec<_> = server
        .state
        .seen()
        .into_iter()
        .filter(|s| s.path.ends_with("users/search") || s.path.ends_with("groups/search"))
        .map(|s| (s.path, s.org, s.offset))
        .collect();
    assert!(!searches.is_empty());
    let mut unique = searches.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), searches.len(), "retried: {searches:?}");
}

#[test]
fn an_endless_response_is_cut_off_at_the_limit_and_not_retried() {
    // An endless body once grew to 6 GB and aborted the process.
    let server = FakeThoughtSpot::start(fixtures());
    server.state.set(|f| f.endless_body = true);
    let scratch = Scratch::new();
    scratch
        .with_password(&server)
        .args(["fetch", "--max-response-mb", "1", "--timeout", "20"])
        .assert()
        .code(3)
        .stderr(
            predicate::str::contains(format!("POST {}/api/rest/2.0/", server.url()))
                .and(predicate::str::contains("the response grew past 1 MiB"))
                .and(predicate::str::contains("--max-response-mb")),
        );
    assert_no_search_repeated(&server);
    assert!(!scratch.file("principals.json").exists());
}

#[test]
fn a_gzip_bomb_is_measured_inflated_and_the_limit_comes_from_the_config() {
    // 2 MB of gzip once inflated to 4.3 GB; here some KiB inflate to 16 MiB.
    let server = FakeThoughtSpot::start(fixtures());
    server.state.set(|f| f.gzip_bomb = Some(16 << 20));
    let scratch = Scratch::new();
    std::fs::write(
        scratch.file("ts-principals.toml"),
        "[fetch]\nmax_response_mb = 2\n",
    )
    .unwrap();
    scratch
        .with_password(&server)
        .arg("fetch")
        .assert()
        .code(3)
        .stderr(
            predicate::str::contains("/search: the response grew past 2 MiB")
                .and(predicate::str::contains("fetch.max_response_mb")),
        );
    assert_no_search_repeated(&server);
    // Under a limit it fits, the same response is read (and is empty).
    let snapshot = fetch_ok(&scratch, &server, &["--max-response-mb", "17"]);
    assert_eq!(count(&snapshot, "users"), 0);
}

#[test]
fn malformed_json_fails_the_fetch_naming_the_page() {
    let server = FakeThoughtSpot::start(fixtures());
    server.state.set(|f| f.malformed = 1);
    let scratch = Scratch::new();
    scratch
        .with_password(&server)
        .args(["fetch", "--concurrency", "1"])
        .assert()
        .code(3)
        .stderr(
            predicate::str::contains("/search (org")
                .and(predicate::str::contains("records from 0"))
                .and(predicate::str::contains("truncated")),
        );
    assert!(!scratch.file("principals.json").exists());
}

#[test]
fn an_error_on_any_page_fails_loudly_and_keeps_the_old_snapshot() {
    let server = FakeThoughtSpot::start(fixtures());
    let scratch = Scratch::new();
    fetch_ok(&scratch, &server, &["--page-size", "4"]);
    let before = std::fs::read(scratch.file("principals.json")).unwrap();
    server.state.set(|f| f.fail_at_offset = Some(8));
    scratch
        .with_password(&server)
        .args(["fetch", "--page-size", "4", "--retries", "0"])
        .assert()
        .code(3)
        .stderr(predicate::str::contains(
            "failed with HTTP 500 (internal error at this page (code 10005))",
        ));
    assert_eq!(
        std::fs::read(scratch.file("principals.json")).unwrap(),
        before
    );
}

#[test]
fn clusters_without_v2_are_read_through_v1() {
    let server = FakeThoughtSpot::start(fixtures());
    server.state.set(|f| f.no_v2 = true);
    let scratch = Scratch::new();
    let snapshot = fetch_ok(&scratch, &server, &[]);
    assert_eq!(snapshot["source"]["api"], "v1");
    assert_eq!(snapshot["source"]["cluster_id"], "127.0.0.1");
    // The same as generating from the v1 fixture under that cluster id.
    let expected = generated(
        &scratch,
        &[&fixture("v1_user_list.json")],
        &["--cluster-id", "127.0.0.1"],
        "expected",
    );
    let fetched = generated(
        &scratch,
        &[&scratch.file("principals.json")],
        &[],
        "fetched",
    );
    assert!(expected == fetched, "v1 fetch and v1 file differ");
    let seen = server.state.seen();
    let v1: Vec<_> = seen
        .iter()
        .filter(|s| s.path.starts_with("/callosum"))
        .collect();
    assert_eq!(v1.len(), 3, "login, user/list, logout: {v1:?}");
    assert!(
        v1.iter()
            .all(|s| s.requested_by.as_deref() == Some("ThoughtSpot"))
    );
    assert!(v1.iter().all(|s| s.status < 300), "{v1:?}");

    // Asked for explicitly, v1 is used even where v2 exists.
    let server = FakeThoughtSpot::start(fixtures());
    let snapshot = fetch_ok(
        &scratch,
        &server,
        &["--api", "v1", "--cluster-id", "legacy"],
    );
    assert_eq!(snapshot["source"]["api"], "v1");
    assert_eq!(snapshot["source"]["cluster_id"], "legacy");
    assert!(
        !server
            .state
            .seen()
            .iter()
            .any(|s| s.path.starts_with("/api"))
    );
}

#[test]
fn users_who_may_not_list_orgs_fetch_their_own_org() {
    let server = FakeThoughtSpot::start(fixtures());
    server.state.set(|f| f.orgs_forbidden = true);
    let scratch = Scratch::new();
    let out = scratch.file("principals.json");
    scratch
        .with_password(&server)
        .args(["fetch", "-o"])
        .arg(&out)
        .assert()
        .success()
        .stderr(predicate::str::contains("cannot list orgs (HTTP 403"));
    let snapshot: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    // Only Primary's groups were searched.
    let groups = snapshot["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 5);
    assert!(
        groups
            .iter()
            .all(|g| g["org_ids"].as_array().unwrap().contains(&Value::from(0)))
    );
}

#[test]
fn pages_are_fetched_concurrently_within_the_bound() {
    let data = Data::generated(600, 60, 3);
    let server = FakeThoughtSpot::start(data.clone());
    server.state.set(|f| f.latency = Duration::from_millis(30));
    let scratch = Scratch::new();
    let snapshot = fetch_ok(
        &scratch,
        &server,
        &["--page-size", "50", "--concurrency", "4"],
    );
    assert_eq!(server.state.max_in_flight(), 4);
    assert_eq!(count(&snapshot, "users"), 600);
    assert_eq!(count(&snapshot, "groups"), 60);
    // The generated cluster, fetched, generates what its export file does.
    std::fs::write(scratch.file("export.json"), data.to_export()).unwrap();
    let expected = generated(
        &scratch,
        &[&scratch.file("export.json")],
        &["--cluster-id", fake::CLUSTER_ID],
        "expected",
    );
    let fetched = generated(
        &scratch,
        &[&scratch.file("principals.json")],
        &[],
        "fetched",
    );
    assert!(expected == fetched, "large fetch and export differ");
}

#[test]
fn secrets_never_reach_logs_errors_or_the_snapshot() {
    let server = FakeThoughtSpot::start(fixtures());
    server.state.set(|f| {
        f.token_uses = Some(10);
        f.unavailable = 1;
    });
    let scratch = Scratch::new();
    let out = scratch.file("principals.json");
    let output = scratch
        .with_password(&server)
        .env("THOUGHTSPOT_SECRET_KEY", fake::SECRET_KEY)
        .args(["-vv", "fetch", "--page-size", "3", "-o"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(output.status.success());
    let mut secrets = server.state.tokens();
    assert!(!secrets.is_empty());
    secrets.push(fake::SECRET_KEY.to_owned());
    let snapshot = std::fs::read_to_string(&out).unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stderr.contains("trace:") || stderr.contains("debug:"),
        "verbose output: {stderr}"
    );
    for secret in &secrets {
        assert!(!stderr.contains(secret.as_str()), "secret in stderr");
        assert!(!stdout.contains(secret.as_str()), "secret in stdout");
        assert!(!snapshot.contains(secret.as_str()), "secret in snapshot");
    }

    // Nor in errors, with dependencies' logs turned all the way up.
    let output = scratch
        .with_password(&server)
        .env("THOUGHTSPOT_PASSWORD", "Wrong-Password-77")
        .env("RUST_LOG", "trace")
        .args(["fetch", "-o", "failed.json"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(3));
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!all.contains("Wrong-Password-77"), "password in output");
    assert!(!all.contains(fake::PASSWORD));
}

#[test]
fn profiles_are_created_listed_shown_used_and_deleted() {
    let server = FakeThoughtSpot::start(fixtures());
    let scratch = Scratch::new();
    scratch
        .cmd()
        .args(["config", "create", "--name", "fake", "--url"])
        .arg(server.url())
        .args([
            "--username",
            fake::USERNAME,
            "--password-env",
            "FAKE_TS_PASSWORD",
        ])
        .assert()
        .success()
        .stderr(predicate::str::contains("saved profile \"fake\""));
    let file = scratch.file("config/profiles.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains("password_env = \"FAKE_TS_PASSWORD\""),
        "{text}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    scratch
        .cmd()
        .args([
            "config",
            "create",
            "--name",
            "fake",
            "--url",
            "https://x.example.com",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--force"));
    scratch
        .cmd()
        .args(["config", "list"])
        .assert()
        .success()
        .stdout(predicate::str::contains("fake").and(predicate::str::contains(server.url())));
    scratch
        .cmd()
        .env("FAKE_TS_PASSWORD", fake::PASSWORD)
        .args(["config", "show", "fake"])
        .assert()
        .success()
        .stdout(
            predicate::str::contains("password from $FAKE_TS_PASSWORD (set)")
                .and(predicate::str::contains(fake::PASSWORD).not()),
        );

    // generate --profile fetches and generates in one go.
    scratch
        .cmd()
        .env("FAKE_TS_PASSWORD", fake::PASSWORD)
        .args(["generate", "--profile", "fake", "--out", "live"])
        .assert()
        .success();
    let expected = expected_from_fixtures(&scratch);
    let live = without_manifest(&scratch.file("live"));
    assert!(
        expected == live,
        "generate --profile differs from the fixture"
    );
    let manifest = std::fs::read_to_string(scratch.file("live/manifest.json")).unwrap();
    assert!(manifest.contains("\"kind\": \"cluster\""), "{manifest}");

    // Without the variable it names, the profile says what is missing.
    scratch
        .cmd()
        .args(["fetch", "--profile", "fake"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "$FAKE_TS_PASSWORD, which is not set",
        ));

    scratch
        .cmd()
        .args(["config", "delete", "fake"])
        .assert()
        .success();
    scratch
        .cmd()
        .args(["fetch", "--profile", "fake"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no profile \"fake\""));
}

#[test]
fn without_a_cluster_fetch_says_how_to_name_one() {
    let scratch = Scratch::new();
    scratch.cmd().arg("fetch").assert().code(2).stderr(
        predicate::str::contains("--profile NAME").and(predicate::str::contains("THOUGHTSPOT_URL")),
    );
}

#[test]
fn records_of_another_org_than_the_one_asked_are_not_kept() {
    // With a bearer token and --org, a cluster once answered with the
    // Primary org's groups, which were written as Acme's with exit 0.
    let server = FakeThoughtSpot::start(fixtures());
    server.state.set(|f| f.ignore_org_identifiers = true);
    let token = server.state.mint_token(0);
    let scratch = Scratch::new();
    scratch
        .cmd()
        .env("THOUGHTSPOT_URL", server.url())
        .env("THOUGHTSPOT_TOKEN", &token)
        .args(["fetch", "--org", "Acme Retail"])
        .assert()
        .code(3)
        .stderr(
            predicate::str::contains("/search in org 1842551919: all")
                .and(predicate::str::contains("belong to other orgs"))
                .and(predicate::str::contains("of org 0)"))
                .and(predicate::str::contains("bearer token")),
        );
    assert!(!scratch.file("principals.json").exists());
    // Answered right, the same fetch works.
    server.state.set(|f| f.ignore_org_identifiers = false);
    let out = scratch.file("principals.json");
    scratch
        .cmd()
        .env("THOUGHTSPOT_URL", server.url())
        .env("THOUGHTSPOT_TOKEN", &token)
        .args(["fetch", "--org", "Acme Retail", "-o"])
        .arg(&out)
        .assert()
        .success()
        .stderr(predicate::str::contains("belong to other orgs").not());
    let snapshot: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let groups = snapshot["groups"].as_array().unwrap();
    assert!(!groups.is_empty());
    assert!(
        groups
            .iter()
            .all(|g| g["org_ids"] == serde_json::json!([1842551919])),
        "{groups:?}"
    );
}

#[test]
fn strays_of_other_orgs_among_an_orgs_records_are_left_out_with_a_warning() {
    let server = FakeThoughtSpot::start(fixtures());
    let scratch = Scratch::new();
    let clean = fetch_ok(&scratch, &server, &["--org", "Acme Retail"]);
    // Every search in Acme now also lists Primary's principals.
    server.state.set(|f| f.leak_org = Some(0));
    let out = scratch.file("leaky.json");
    scratch
        .with_password(&server)
        .args(["fetch", "--org", "Acme Retail", "--page-size", "4", "-o"])
        .arg(&out)
        .assert()
        .success()
        .stderr(
            predicate::str::contains(
                "groups/search in org 1842551919: left out 5 of the 10 groups",
            )
            .and(predicate::str::contains("(e.g. group \""))
            .and(predicate::str::contains(
                "users/search in org 1842551919: left out",
            )),
        );
    let mut leaky: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let mut clean = clean;
    leaky["source"]["fetched_at"] = Value::Null;
    clean["source"]["fetched_at"] = Value::Null;
    assert_eq!(leaky, clean);
}

#[test]
fn a_url_copied_from_a_browser_is_used_as_the_clusters_address() {
    // `…/#/home` once sent every request to the web page and was reported
    // as a refused password.
    let server = FakeThoughtSpot::start(fixtures());
    let scratch = Scratch::new();
    let out = scratch.file("principals.json");
    scratch
        .with_password(&server)
        .env("THOUGHTSPOT_URL", format!("{}/#/home", server.url()))
        .args(["fetch", "-o"])
        .arg(&out)
        .assert()
        .success()
        .stderr(predicate::str::contains(format!(
            "using {} and ignoring \"#/home\"",
            server.url()
        )));
    let snapshot: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(snapshot["source"]["cluster_url"], server.url().as_str());
    assert_same_output(&scratch, &out);

    scratch
        .cmd()
        .args([
            "config",
            "create",
            "--name",
            "b",
            "--token-env",
            "T",
            "--url",
        ])
        .arg(format!("{}/?orgId=1#/pinboard/x", server.url()))
        .assert()
        .success()
        .stderr(predicate::str::contains("ignoring \"?…#/pinboard/x\""));
    let profiles = std::fs::read_to_string(scratch.file("config/profiles.toml")).unwrap();
    assert!(
        profiles.contains(&format!("url = \"{}\"\n", server.url())),
        "{profiles}"
    );
}

#[test]
fn dash_writes_the_snapshot_to_standard_output() {
    let server = FakeThoughtSpot::start(fixtures());
    let scratch = Scratch::new();
    let output = scratch
        .with_password(&server)
        .args(["fetch", "-o", "-"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let snapshot: Value = serde_json::from_slice(&output.stdout).expect("a snapshot on stdout");
    assert_eq!(count(&snapshot, "users"), 40);
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("wrote standard output: 3 orgs"),
        "{output:?}"
    );
    assert!(!scratch.file("-").exists(), "no file named -");
}

#[test]
fn a_snapshot_that_cannot_be_written_is_an_output_error_naming_the_path() {
    // Exited 2 ("usage or input error"), naming the temporary file
    // (`/nonexistent-dir/.p.json.ASgbn4.tmp`) the user never gave.
    let server = FakeThoughtSpot::start(fixtures());
    let scratch = Scratch::new();
    let target = scratch.file("missing-dir").join("p.json");
    let output = scratch
        .with_password(&server)
        .arg("fetch")
        .arg("-o")
        .arg(&target)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "error: cannot write the snapshot to {}: ",
            target.display()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "the directory {} does not exist: create it, or choose another path with -o",
            scratch.file("missing-dir").display()
        )),
        "{stderr}"
    );
    assert!(!stderr.contains(".p.json."), "{stderr}");
    assert!(!scratch.file("missing-dir").exists());
}

#[cfg(target_os = "linux")]
#[test]
fn a_full_disk_under_the_snapshot_is_an_output_error() {
    let server = FakeThoughtSpot::start(fixtures());
    let scratch = Scratch::new();
    let full = "No space left on device";
    scratch
        .with_password(&server)
        .args(["fetch", "-o", "/dev/full"])
        .assert()
        .code(4)
        .stderr(
            predicate::str::contains("cannot write the snapshot to /dev/full: ")
                .and(predicate::str::contains(full))
                .and(predicate::str::contains("free some space")),
        );

    // `-o -` with standard output on a full disk.
    let dev_full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let output = std::process::Command::new(assert_cmd::cargo::cargo_bin("ts-principals"))
        .current_dir(scratch.path())
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1")
        .env("TS_PRINCIPALS_CONFIG_DIR", scratch.file("config"))
        .env("THOUGHTSPOT_URL", server.url())
        .env("THOUGHTSPOT_USERNAME", fake::USERNAME)
        .env("THOUGHTSPOT_PASSWORD", fake::PASSWORD)
        .env_remove("THOUGHTSPOT_TOKEN")
        .env_remove("THOUGHTSPOT_SECRET_KEY")
        .args(["fetch", "-o", "-"])
        .stdout(dev_full)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains("cannot write the snapshot to standard output: ")
            && stderr.contains(full)
            && stderr.contains("free some space"),
        "{stderr}"
    );
}

#[cfg(unix)]
#[test]
fn a_symbolic_link_or_a_named_pipe_is_written_through_not_replaced() {
    use std::os::unix::fs::FileTypeExt;
    let server = FakeThoughtSpot::start(fixtures());
    let scratch = Scratch::new();

    std::fs::create_dir(scratch.file("real")).unwrap();
    std::fs::write(scratch.file("real/snapshot.json"), "old").unwrap();
    std::os::unix::fs::symlink("real/snapshot.json", scratch.file("link.json")).unwrap();
    scratch
        .with_password(&server)
        .args(["fetch", "-o", "link.json"])
        .assert()
        .success();
    let link = std::fs::symlink_metadata(scratch.file("link.json")).unwrap();
    assert!(link.file_type().is_symlink(), "the link stays a link");
    let through: Value =
        serde_json::from_slice(&std::fs::read(scratch.file("real/snapshot.json")).unwrap())
            .unwrap();
    assert_eq!(count(&through, "users"), 40);

    let fifo = scratch.file("pipe");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    // A reader that can be stopped if nothing is ever written.
    let mut reader = std::process::Command::new("cat")
        .arg(&fifo)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let fetched = scratch
        .with_password(&server)
        .args(["fetch", "-o"])
        .arg(&fifo)
        .output()
        .unwrap();
    if !fetched.status.success() {
        let _ = reader.kill();
    }
    let read = reader.wait_with_output().unwrap();
    assert!(fetched.status.success(), "{fetched:?}");
    let piped: Value = serde_json::from_slice(&read.stdout).expect("the snapshot came through");
    assert_eq!(count(&piped, "users"), 40);
    let meta = std::fs::symlink_metadata(&fifo).unwrap();
    assert!(meta.file_type().is_fifo(), "the pipe stays a pipe");

    // /dev/stdout on a pipe: a link to a pipe that has no path of its own.
    let output = scratch
        .with_password(&server)
        .args(["fetch", "-o", "/dev/stdout"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let piped: Value = serde_json::from_slice(&output.stdout).expect("a snapshot on stdout");
    assert_eq!(count(&piped, "users"), 40);
}

#[test]
fn fetch_settings_in_the_config_have_the_limits_of_the_flags() {
    // `[fetch] concurrency = 5000` once sent 31k requests in a minute.
    let server = FakeThoughtSpot::start(fixtures());
    let scratch = Scratch::new();
    for (setting, key) in [
        (
            "concurrency = 5000",
            "`fetch.concurrency` is 5000; it must be from 1 to 64",
        ),
        (
            "page_size = 0",
            "`fetch.page_size` is 0; it must be from 1 to 100000",
        ),
    ] {
        std::fs::write(
            scratch.file("ts-principals.toml"),
            format!("[fetch]\n{setting}\n"),
        )
        .unwrap();
        scratch
            .with_password(&server)
            .arg("fetch")
            .assert()
            .code(2)
            .stderr(predicate::str::contains(key));
    }
    assert!(server.state.seen().is_empty(), "no request was sent");
    assert!(!scratch.file("principals.json").exists());
}

#[test]
fn an_unreachable_cluster_is_a_network_error() {
    // A port nothing listens on: bind one, then free it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let scratch = Scratch::new();
    scratch
        .cmd()
        .env("THOUGHTSPOT_URL", format!("http://127.0.0.1:{port}"))
        .env("THOUGHTSPOT_TOKEN", "t")
        .args(["fetch", "--retries", "1"])
        .assert()
        .code(3)
        .stderr(
            predicate::str::contains("cannot connect to")
                .and(predicate::str::contains("after 2 attempt(s)")),
        );
}

#[test]
fn a_bad_ca_certificate_file_is_a_usage_error() {
    let scratch = Scratch::new();
    std::fs::write(scratch.file("ca.pem"), "not a certificate").unwrap();
    scratch
        .cmd()
        .env("THOUGHTSPOT_URL", "https://127.0.0.1:9")
        .env("THOUGHTSPOT_TOKEN", "t")
        .args(["fetch", "--ca-cert", "ca.pem"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--ca-cert ca.pem holds no"));
}
