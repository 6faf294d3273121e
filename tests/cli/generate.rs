//! `generate`: the output it writes and how it writes it.

use crate::common::*;
use predicates::str::contains;

#[test]
fn generates_the_documented_layout_from_the_example() {
    let dir = tempfile::tempdir().unwrap();
    ts_principals(dir.path())
        .args(["generate", "--from"])
        .arg(example())
        .arg("--config")
        .arg(example_config())
        .args(["--out", "out"])
        .assert()
        .success()
        .stderr(contains("3 orgs, 50 users, 16 groups"))
        .stderr(contains("wrote out: 18 files (18 added"));
    let files: Vec<String> = tree(&dir.path().join("out")).into_keys().collect();
    let expected = [
        "data/group_hierarchy.csv",
        "data/group_memberships.csv",
        "data/group_memberships_history.csv",
        "data/group_privileges.csv",
        "data/groups.csv",
        "data/org_memberships.csv",
        "data/orgs.csv",
        "data/users.csv",
        "manifest.json",
        "tml/TS_ Users and Groups.model.tml",
        "tml/TS_GROUPS.table.tml",
        "tml/TS_GROUP_HIERARCHY.table.tml",
        "tml/TS_GROUP_MEMBERSHIPS.table.tml",
        "tml/TS_GROUP_MEMBERSHIPS_HISTORY.table.tml",
        "tml/TS_GROUP_PRIVILEGES.table.tml",
        "tml/TS_ORGS.table.tml",
        "tml/TS_ORG_MEMBERSHIPS.table.tml",
        "tml/TS_USERS.table.tml",
    ];
    assert_eq!(files, expected);
}

#[test]
fn the_same_input_gives_byte_identical_output() {
    let dir = tempfile::tempdir().unwrap();
    for out in ["one", "two"] {
        generate(dir.path(), &fixture("v2_combined.json"), out, &[]).success();
    }
    let one = tree(&dir.path().join("one"));
    assert_eq!(one, tree(&dir.path().join("two")));
    // Regenerating over existing output changes nothing either.
    generate(dir.path(), &fixture("v2_combined.json"), "one", &[])
        .success()
        .stderr(contains("(0 added, 0 changed, 18 unchanged, 0 removed)"));
    assert_eq!(one, tree(&dir.path().join("one")));
}

#[test]
fn every_file_is_listed_in_the_manifest_with_its_hash() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), &example(), "out", &[]).success();
    let files = tree(&dir.path().join("out"));
    let manifest: serde_json::Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    let listed = manifest["files"].as_object().unwrap();
    assert_eq!(listed.len(), files.len() - 1);
    for (path, entry) in listed {
        use sha2::Digest;
        let bytes = &files[path];
        assert_eq!(
            entry["sha256"],
            hex::encode(sha2::Sha256::digest(bytes)),
            "{path}"
        );
        assert_eq!(entry["bytes"], bytes.len(), "{path}");
    }
    assert_eq!(manifest["input"]["kind"], "canonical");
    assert_eq!(manifest["counts"]["effective_memberships"], 141);
    assert!(
        manifest.get("generated_at").is_none(),
        "no wall-clock time unless --stamp"
    );
}

#[test]
fn stamp_records_the_time_and_diff_ignores_it() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), &example(), "out", &["--stamp"]).success();
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("out/manifest.json")).unwrap())
            .unwrap();
    assert!(
        manifest["generated_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    ts_principals(dir.path())
        .args(["diff", "--check", "--from"])
        .arg(example())
        .args(["--out", "out"])
        .assert()
        .success();
}

#[test]
fn only_our_files_are_touched_on_the_first_run_and_later_ones() {
    // Regression: generate deleted every data/*.csv and tml/*.tml it had
    // not produced, even on the first run (a repository's own TML).
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("repo");
    std::fs::create_dir_all(out.join(".git")).unwrap();
    std::fs::write(out.join(".git/HEAD"), "ref: refs/heads/main\n").unwrap();
    std::fs::write(out.join("README.md"), "my TML repo\n").unwrap();
    std::fs::create_dir_all(out.join("tml")).unwrap();
    std::fs::create_dir_all(out.join("data")).unwrap();
    std::fs::write(out.join("tml/Sales.liveboard.tml"), "liveboard: {}\n").unwrap();
    std::fs::write(out.join("tml/notes.txt"), "keep me\n").unwrap();
    std::fs::write(out.join("data/lookup.csv"), "k,v\n").unwrap();
    let foreign = |files: &std::collections::BTreeMap<String, Vec<u8>>| {
        assert_eq!(files[".git/HEAD"], b"ref: refs/heads/main\n");
        assert_eq!(files["README.md"], b"my TML repo\n");
        assert_eq!(files["tml/notes.txt"], b"keep me\n");
        assert_eq!(files["tml/Sales.liveboard.tml"], b"liveboard: {}\n");
        assert_eq!(files["data/lookup.csv"], b"k,v\n");
    };
    generate(dir.path(), &example(), "repo", &[])
        .success()
        .stderr(contains("0 removed"));
    foreign(&tree(&out));
    // A later run drops only what ts-principals wrote and no longer writes.
    generate(dir.path(), &example(), "repo", &["--format", "worksheet"])
        .success()
        .stderr(contains("1 removed"));
    let files = tree(&out);
    foreign(&files);
    assert!(!files.contains_key("tml/TS_ Users and Groups.model.tml"));
    assert!(files.contains_key("tml/TS_USERS.table.tml"));
}

#[test]
fn a_hand_edited_file_is_reported_as_changed_and_replaced() {
    // Regression: the report compared manifests, not files, so a file
    // edited by hand was called "unchanged" while it was overwritten.
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), &example(), "out", &[]).success();
    let users = dir.path().join("out/tml/TS_USERS.table.tml");
    let original = std::fs::read(&users).unwrap();
    std::fs::write(&users, b"table: {}\n").unwrap();
    generate(dir.path(), &example(), "out", &[])
        .success()
        .stderr(contains(
            "TS_USERS.table.tml was changed since ts-principals wrote it",
        ))
        .stderr(contains("(0 added, 1 changed, 17 unchanged, 0 removed)"));
    assert_eq!(std::fs::read(&users).unwrap(), original);
}

#[cfg(unix)]
#[test]
fn a_file_with_an_unreadable_name_is_left_alone() {
    // Regression: a non-UTF-8 file name in data/ made every later generate
    // and diff fail, after files had already been moved.
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), &example(), "out", &[]).success();
    let odd = dir
        .path()
        .join("out/data")
        .join(std::ffi::OsStr::from_bytes(b"lookup-\xff.csv"));
    std::fs::write(&odd, "k,v\n").unwrap();
    generate(dir.path(), &example(), "out", &["--format", "worksheet"]).success();
    generate(dir.path(), &example(), "out", &[]).success();
    let diff = |extra: &[&str]| {
        ts_principals(dir.path())
            .arg("diff")
            .args(extra)
            .arg("--from")
            .arg(example())
            .args(["--out", "out"])
            .assert()
    };
    diff(&["--check"]).success();
    diff(&["--stat"])
        .success()
        .stderr(contains("a file name that is not UTF-8 is not ours"));
    assert_eq!(std::fs::read(&odd).unwrap(), b"k,v\n");
}

#[test]
fn a_failing_run_leaves_the_output_untouched() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), &example(), "out", &[]).success();
    let before = tree(&dir.path().join("out"));
    // A template that renders invalid TML fails the run after the data is ready.
    let templates = dir.path().join("templates");
    std::fs::create_dir(&templates).unwrap();
    std::fs::write(
        templates.join("orgs.table.tml.j2"),
        "table:\n  name: {{ table.name|yaml }}\n  colums: []\n",
    )
    .unwrap();
    generate(
        dir.path(),
        &fixture("v2_combined.json"),
        "out",
        &["--templates", "templates"],
    )
    .code(2)
    .stderr(contains(
        "TS_ORGS.table.tml (from template orgs.table.tml.j2) is not valid TML",
    ))
    .stderr(contains("colums"));
    assert_eq!(before, tree(&dir.path().join("out")));
    // Bad input fails before anything is written, too.
    generate(dir.path(), &root().join("Cargo.toml"), "out", &[]).code(2);
    assert_eq!(before, tree(&dir.path().join("out")));
}

#[test]
fn templates_can_be_overridden_by_file_name() {
    let dir = tempfile::tempdir().unwrap();
    let templates = dir.path().join("templates");
    std::fs::create_dir(&templates).unwrap();
    let builtin = std::fs::read_to_string(root().join("templates/users.table.tml.j2")).unwrap();
    let custom = builtin.replace("Login name.", "Login name, as typed on the sign-in page.");
    std::fs::write(templates.join("users.table.tml.j2"), custom).unwrap();
    generate(dir.path(), &example(), "out", &["--templates", "templates"]).success();
    let users = std::fs::read_to_string(dir.path().join("out/tml/TS_USERS.table.tml")).unwrap();
    assert!(
        users.contains("\"Login name, as typed on the sign-in page.\""),
        "{users}"
    );
}

#[test]
fn a_broken_template_is_reported_with_its_name_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("templates")).unwrap();
    std::fs::write(
        dir.path().join("templates/groups.table.tml.j2"),
        "table:\n  name: {{ table.nmae|yaml }}\n",
    )
    .unwrap();
    generate(dir.path(), &example(), "out", &["--templates", "templates"])
        .code(2)
        .stderr(contains("template groups.table.tml.j2"))
        .stderr(contains("groups.table.tml.j2:2"));
    assert!(!dir.path().join("out").exists(), "nothing written");
}

#[test]
fn excel_safe_prefixes_formula_like_cells() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("users.json");
    std::fs::write(
        &input,
        r#"[{"id": "u1", "name": "=cmd|' /C calc'!A0", "display_name": "+1 555", "account_type": "LOCAL_USER", "email": "@x"}]"#,
    )
    .unwrap();
    ts_principals(dir.path())
        .args([
            "generate",
            "--excel-safe",
            "--from",
            "users.json",
            "--out",
            "safe",
        ])
        .assert()
        .success();
    let users = std::fs::read_to_string(dir.path().join("safe/data/users.csv")).unwrap();
    assert!(
        users.contains(",'=cmd|' /C calc'!A0,'@x,'+1 555,"),
        "{users}"
    );
    ts_principals(dir.path())
        .args(["generate", "--from", "users.json", "--out", "plain"])
        .assert()
        .success();
    let users = std::fs::read_to_string(dir.path().join("plain/data/users.csv")).unwrap();
    assert!(users.contains(",=cmd|' /C calc'!A0,@x,+1 555,"), "{users}");
}

#[test]
fn csv_is_rfc4180_and_reads_back_to_the_same_values() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("groups.json");
    let tricky = "Finance, \"Close\" & Co\nline two\r\nend";
    let record = serde_json::json!([{"id": "g1", "name": tricky, "type": "LOCAL_GROUP", "description": "", "privileges": ["A,B"]}]);
    std::fs::write(&input, record.to_string()).unwrap();
    ts_principals(dir.path())
        .args(["generate", "--from", "groups.json", "--out", "out"])
        .assert()
        .success();
    let bytes = std::fs::read(dir.path().join("out/data/groups.csv")).unwrap();
    assert!(!bytes.starts_with(b"\xEF\xBB\xBF"), "no BOM");
    let mut reader = csv::ReaderBuilder::new().from_reader(&bytes[..]);
    let headers = reader.headers().unwrap().clone();
    assert_eq!(
        headers.iter().collect::<Vec<_>>(),
        (ts_principals::schema::Table::Groups.columns().iter())
            .map(|c| c.name)
            .collect::<Vec<_>>()
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 1);
    assert_eq!(&rows[0][3], tricky);
    let privileges = std::fs::read(dir.path().join("out/data/group_privileges.csv")).unwrap();
    let row = csv::Reader::from_reader(&privileges[..])
        .records()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(&row[3], "A,B");
}

#[test]
fn config_in_the_current_directory_is_used_and_flags_override_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("ts-principals.toml"),
        "[tml]\nformat = \"worksheet\"\ntable_prefix = \"PRINCIPALS_\"\n",
    )
    .unwrap();
    generate(dir.path(), &example(), "out", &[])
        .success()
        .stderr(contains("using config ts-principals.toml"));
    assert!(
        dir.path()
            .join("out/tml/TS_ Users and Groups.worksheet.tml")
            .exists()
    );
    assert!(
        dir.path()
            .join("out/tml/PRINCIPALS_USERS.table.tml")
            .exists()
    );
    generate(dir.path(), &example(), "out2", &["--format", "model"]).success();
    assert!(
        dir.path()
            .join("out2/tml/TS_ Users and Groups.model.tml")
            .exists()
    );
}

#[test]
fn cluster_id_comes_from_the_snapshot_unless_a_flag_says_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), &example(), "a", &[]).success();
    let orgs = std::fs::read_to_string(dir.path().join("a/data/orgs.csv")).unwrap();
    assert!(
        orgs.lines().skip(1).all(|l| l.starts_with("acme-prod,")),
        "{orgs}"
    );
    generate(dir.path(), &example(), "b", &["--cluster-id", "staging"]).success();
    let orgs = std::fs::read_to_string(dir.path().join("b/data/orgs.csv")).unwrap();
    assert!(
        orgs.lines().skip(1).all(|l| l.starts_with("staging,")),
        "{orgs}"
    );
    generate(dir.path(), &fixture("v2_combined.json"), "c", &[]).success();
    let orgs = std::fs::read_to_string(dir.path().join("c/data/orgs.csv")).unwrap();
    assert!(
        orgs.lines().skip(1).all(|l| l.starts_with("default,")),
        "{orgs}"
    );
}

#[test]
fn v1_principals_get_derived_guids_flagged_in_the_model() {
    let bytes = std::fs::read(fixture("v1_user_list.json")).unwrap();
    let loaded = ts_principals::input::load_bytes("v1.json", &bytes, &Default::default()).unwrap();
    assert_eq!(loaded.kind, ts_principals::input::InputKind::V1UserList);
    assert!(loaded.principals.users.iter().all(|u| u.derived_id));
    let ana = loaded
        .principals
        .users
        .iter()
        .find(|u| u.name == "ana.user0@example.com")
        .unwrap();
    assert_eq!(
        ana.id,
        ts_principals::input::derived_guid("default", "user", "ana.user0@example.com")
    );
    // The same memberships as the v2 view of the same cluster.
    let v2 = ts_principals::input::load_bytes(
        "v2.json",
        &std::fs::read(fixture("v2_combined.json")).unwrap(),
        &Default::default(),
    )
    .unwrap();
    let memberships = |p: &ts_principals::model::Principals| {
        let mut pairs: Vec<(String, String)> = p
            .effective_memberships()
            .iter()
            .map(|m| {
                (
                    p.users[m.user as usize].name.clone(),
                    p.group(m.group).name.clone(),
                )
            })
            .collect();
        pairs.sort();
        pairs
    };
    assert_eq!(memberships(&loaded.principals), memberships(&v2.principals));
}

#[test]
fn completions_and_help_teach_the_commands() {
    let dir = tempfile::tempdir().unwrap();
    ts_principals(dir.path())
        .args(["completions", "bash"])
        .assert()
        .success()
        .stdout(contains("ts-principals"));
    ts_principals(dir.path())
        .arg("--help")
        .assert()
        .success()
        .stdout(contains("generate"))
        .stdout(contains("diff"))
        .stdout(contains("Exit codes"));
    ts_principals(dir.path())
        .args(["generate", "--help"])
        .assert()
        .success()
        .stdout(contains("canonical snapshot"))
        .stdout(contains("--excel-safe"));
}
