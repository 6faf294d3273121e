//! An input with no users and no groups never wipes an output directory:
//! it is refused (exit 2, naming the input) unless `--allow-empty` says the
//! cluster really has none.

use predicates::prelude::*;
use predicates::str::contains;

use crate::common::*;
use crate::fake::{self, Data, FakeThoughtSpot};

/// Inputs that hold nothing, each once broke a repository by emptying every table.
const EMPTY: &[(&str, &str)] = &[
    ("object.json", "{}"),
    ("array.json", "[]"),
    ("nulls.json", r#"{"users": null, "groups": null}"#),
    (
        "orgs_only.json",
        r#"{"orgs": [{"id": 0, "name": "Primary"}], "users": [], "groups": []}"#,
    ),
    (
        "snapshot.json",
        r#"{"schema_version": 1, "source": {"cluster_id": "c"}, "orgs": [], "users": [], "groups": []}"#,
    ),
];

#[test]
fn empty_inputs_are_refused_and_the_output_is_left_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), &example(), "out", &[]).success();
    let before = tree(&dir.path().join("out"));
    for (name, content) in EMPTY {
        std::fs::write(dir.path().join(name), content).unwrap();
        for command in ["generate", "diff"] {
            ts_principals(dir.path())
                .args([command, "--from", name, "--out", "out"])
                .assert()
                .code(2)
                .stderr(contains(format!("{name}: no users and no groups")))
                .stderr(contains("--allow-empty"));
        }
        assert!(before == tree(&dir.path().join("out")), "{name}");
    }
    // Several files: every one is named.
    ts_principals(dir.path())
        .args(["generate", "--from", "array.json", "--from", "object.json"])
        .assert()
        .code(2)
        .stderr(contains("array.json, object.json: no users and no groups"));
}

#[test]
fn allow_empty_writes_tables_with_only_their_header() {
    let dir = tempfile::tempdir().unwrap();
    for (name, content) in EMPTY {
        std::fs::write(dir.path().join(name), content).unwrap();
        let out = format!("out-{name}");
        generate(dir.path(), &dir.path().join(name), &out, &["--allow-empty"]).success();
        let files = tree(&dir.path().join(&out));
        for table in ["users", "groups", "group_memberships", "group_hierarchy"] {
            let csv = String::from_utf8(files[&format!("data/{table}.csv")].clone()).unwrap();
            assert_eq!(csv.lines().count(), 1, "{name}: {table}: {csv}");
        }
    }
}

/// A cluster whose searches answer with nothing (credentials that see no
/// one, an org without principals).
fn empty_cluster() -> Data {
    Data {
        orgs: vec![serde_json::json!({"id": 0, "name": "Primary"})],
        ..Data::default()
    }
}

#[test]
fn a_fetch_that_returns_nothing_is_refused() {
    let server = FakeThoughtSpot::start(empty_cluster());
    let dir = tempfile::tempdir().unwrap();
    let live = |extra: &[&str]| {
        let mut cmd = ts_principals(dir.path());
        for var in ["THOUGHTSPOT_SECRET_KEY", "THOUGHTSPOT_TOKEN"] {
            cmd.env_remove(var);
        }
        cmd.env("TS_PRINCIPALS_CONFIG_DIR", dir.path().join("config"))
            .env("THOUGHTSPOT_URL", server.url())
            .env("THOUGHTSPOT_USERNAME", fake::USERNAME)
            .env("THOUGHTSPOT_PASSWORD", fake::PASSWORD)
            .args(["generate", "--profile", "env", "--out", "out"])
            .args(extra)
            .assert()
    };
    live(&[]).code(2).stderr(contains(format!(
        "the fetch from {}: no users and no groups",
        server.url()
    )));
    assert!(!dir.path().join("out").exists());
    live(&["--allow-empty"])
        .success()
        .stderr(contains("panicked").not());
    assert!(dir.path().join("out/data/users.csv").is_file());
}
