//! Bad input: a clear message naming the file and place, exit code 2, no panic.

use crate::common::*;
use predicates::prelude::*;
use predicates::str::contains;

fn generate_from(dir: &std::path::Path, name: &str, content: &str) -> assert_cmd::assert::Assert {
    std::fs::write(dir.join(name), content).unwrap();
    ts_principals(dir)
        .args(["generate", "--from", name, "--out", "out"])
        .assert()
}

#[test]
fn not_json() {
    let dir = tempfile::tempdir().unwrap();
    generate_from(dir.path(), "users.csv", "id,name\n1,a\n")
        .code(2)
        .stderr(contains("users.csv: not JSON"));
}

#[test]
fn truncated_json_names_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let full = std::fs::read_to_string(fixture("v2_combined.json")).unwrap();
    let cut = &full[..full.len() / 2];
    let lines = cut.lines().count();
    generate_from(dir.path(), "export.json", cut)
        .code(2)
        .stderr(contains(format!("export.json:{lines}:")))
        .stderr(contains("truncated"));
    assert!(!dir.path().join("out").exists());
}

#[test]
fn invalid_json_syntax() {
    let dir = tempfile::tempdir().unwrap();
    generate_from(
        dir.path(),
        "export.json",
        "{\"users\": [\n  {\"id\": \"a\", \"name\": \"x\",}\n]}",
    )
    .code(2)
    .stderr(contains("export.json:2:"))
    .stderr(contains("not valid JSON"));
}

#[test]
fn wrong_types_name_the_json_path() {
    let dir = tempfile::tempdir().unwrap();
    generate_from(
        dir.path(),
        "export.json",
        r#"{"users": [{"id": "a", "name": "x"}, {"id": "b", "name": "y", "orgs": "Primary"}]}"#,
    )
    .code(2)
    .stderr(contains("at users[1].orgs"));
    generate_from(dir.path(), "export.json", r#"{"users": 42}"#)
        .code(2)
        .stderr(contains("export.json:1:"));
    generate_from(dir.path(), "numbers.json", "[1, 2, 3]")
        .code(2)
        .stderr(contains("numbers.json:1:"));
}

// A time far out of range was reported as "not a whole number of
// milliseconds", which sent people looking for a fraction.
#[test]
fn an_out_of_range_time_says_so() {
    let dir = tempfile::tempdir().unwrap();
    generate_from(
        dir.path(),
        "export.json",
        r#"{"users": [{"id": "u", "name": "amy", "creation_time_in_millis": 1.6e18}]}"#,
    )
    .code(2)
    .stderr(contains("export.json:1:"))
    .stderr(contains("at users[0].creation_time_in_millis"))
    .stderr(contains(
        "time 1600000000000000000 ms is outside the years -9999 to 9999",
    ))
    .stderr(contains("whole number").not());
}

#[test]
fn a_record_without_id_is_named() {
    let dir = tempfile::tempdir().unwrap();
    generate_from(
        dir.path(),
        "export.json",
        r#"{"groups": [{"id": "g", "name": "A"}, {"name": "Finance", "type": "LOCAL_GROUP"}]}"#,
    )
    .code(2)
    .stderr(contains(
        "export.json: groups[1]: record (name \"Finance\") has no `id`",
    ));
}

#[test]
fn the_same_id_with_different_content_is_an_error_and_exact_duplicates_merge() {
    let dir = tempfile::tempdir().unwrap();
    generate_from(
        dir.path(),
        "export.json",
        r#"{"users": [{"id": "u", "name": "amy", "display_name": "Amy"}, {"id": "u", "name": "amy", "display_name": "Amy B."}]}"#,
    )
    .code(2)
    .stderr(contains("export.json: users[1] has the same user id \"u\" as export.json: users[0] but a different `display_name`"));
    generate_from(
        dir.path(),
        "export.json",
        r#"{"users": [{"id": "u", "name": "amy", "display_name": "Amy"}, {"id": "u", "name": "amy", "display_name": "Amy"}]}"#,
    )
    .success()
    .stderr(contains("warning: merged 1 duplicate"));
}

#[test]
fn dangling_references_and_cycles_warn_once_with_a_count() {
    let dir = tempfile::tempdir().unwrap();
    let snapshot = r#"{"schema_version": 1, "source": {"cluster_id": "c"}, "orgs": [],
        "users": [{"id": "u", "name": "amy", "group_ids": ["a", "gone-1", "gone-2"]}],
        "groups": [{"id": "a", "name": "A", "parent_group_ids": ["b"]}, {"id": "b", "name": "B", "parent_group_ids": ["a", "gone-3"]}]}"#;
    let assert = generate_from(dir.path(), "snap.json", snapshot).success();
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    assert_eq!(
        stderr.matches("dropped 3 reference(s)").count(),
        1,
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("group nesting has 1 cycle(s)").count(),
        1,
        "{stderr}"
    );
    let memberships =
        std::fs::read_to_string(dir.path().join("out/data/group_memberships.csv")).unwrap();
    assert_eq!(memberships.lines().count(), 3, "{memberships}");
}

#[test]
fn mixing_kinds_of_input_is_explained() {
    let dir = tempfile::tempdir().unwrap();
    ts_principals(dir.path())
        .args(["generate", "--from"])
        .arg(example())
        .arg("--from")
        .arg(fixture("v2_users_search.json"))
        .assert()
        .code(2)
        .stderr(contains(
            "is a canonical snapshot, which is complete on its own",
        ));
    ts_principals(dir.path())
        .args(["generate", "--from"])
        .arg(fixture("v1_user_list.json"))
        .arg("--from")
        .arg(fixture("v2_groups_search.json"))
        .assert()
        .code(2)
        .stderr(contains("v1 user/list export cannot be combined"));
}

#[cfg(unix)]
#[test]
fn a_device_is_refused_rather_than_read_forever() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), std::path::Path::new("/dev/zero"), "out", &[])
        .code(2)
        .stderr(contains("cannot read /dev/zero: it is a device"));
    assert!(!dir.path().join("out").exists());
}

#[test]
fn missing_file_and_newer_schema() {
    let dir = tempfile::tempdir().unwrap();
    ts_principals(dir.path())
        .args(["generate", "--from", "nope.json"])
        .assert()
        .code(2)
        .stderr(contains("cannot read nope.json"));
    generate_from(
        dir.path(),
        "snap.json",
        r#"{"schema_version": 7, "users": []}"#,
    )
    .code(2)
    .stderr(contains("schema_version 7 is newer"));
}

#[test]
fn config_mistakes_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.toml"), "[tml]\nmodel_nmae = \"x\"\n").unwrap();
    ts_principals(dir.path())
        .args(["generate", "--config", "bad.toml", "--from"])
        .arg(example())
        .assert()
        .code(2)
        .stderr(contains("config bad.toml"))
        .stderr(contains("model_nmae"));
    std::fs::write(
        dir.path().join("bad.toml"),
        "[tml]\ntable_prefix = \"[BI]\"\n",
    )
    .unwrap();
    ts_principals(dir.path())
        .args(["generate", "--config", "bad.toml", "--from"])
        .arg(example())
        .assert()
        .code(2)
        .stderr(contains("`tml.table_prefix` contains '['"));
}

#[test]
fn an_output_path_that_is_a_file_is_explained() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("out"), "not a directory").unwrap();
    generate(dir.path(), &example(), "out", &[])
        .code(4)
        .stderr(contains(
            "out is not a directory; --out names the directory to write into",
        ));
}

#[test]
fn usage_errors_exit_with_2() {
    let dir = tempfile::tempdir().unwrap();
    ts_principals(dir.path())
        .arg("generate")
        .assert()
        .code(2)
        .stderr(contains("--from"));
    ts_principals(dir.path())
        .args(["generate", "--format", "cube"])
        .assert()
        .code(2);
    ts_principals(dir.path())
        .arg("frobnicate")
        .assert()
        .code(2)
        .stderr(contains("panicked").not());
}

#[test]
fn our_warnings_show_when_rust_log_names_only_dependencies() {
    // RUST_LOG=reqwest=debug once hid every log line of ts-principals,
    // warnings included: only the targets it named were enabled.
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), &example(), "out", &[]).success();
    let users = dir.path().join("out/tml/TS_USERS.table.tml");
    for (rust_log, extra) in [
        ("reqwest=debug", &[][..]),
        ("reqwest=debug,hyper=info", &["-q"][..]),
    ] {
        std::fs::write(&users, b"table: {}\n").unwrap();
        ts_principals(dir.path())
            .env("RUST_LOG", rust_log)
            .args(extra)
            .arg("generate")
            .arg("--from")
            .arg(example())
            .args(["--out", "out"])
            .assert()
            .success()
            .stderr(contains(
                "warning: out/tml/TS_USERS.table.tml was changed since ts-principals wrote it",
            ));
    }
    // Info lines keep -q's level: hidden with -q, shown without.
    std::fs::write(&users, b"table: {}\n").unwrap();
    ts_principals(dir.path())
        .env("RUST_LOG", "reqwest=debug")
        .args(["-q", "generate", "--from"])
        .arg(example())
        .args(["--out", "out"])
        .assert()
        .success()
        .stderr(contains("wrote out").not());
    // Naming ts_principals still decides.
    std::fs::write(&users, b"table: {}\n").unwrap();
    ts_principals(dir.path())
        .env("RUST_LOG", "ts_principals=error")
        .arg("generate")
        .arg("--from")
        .arg(example())
        .args(["--out", "out"])
        .assert()
        .success()
        .stderr(contains("was changed").not());
}
