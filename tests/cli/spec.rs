//! Principals as code against the fake ThoughtSpot: `export-spec` then
//! `plan` shows no change (the fixtures, a generated 10k-user cluster, a
//! snapshot); plans of changes, `--check`, `--out`; `validate` findings
//! with line and column; a template rendered from an HR export.

use predicates::prelude::*;
use predicates::str::contains;
use serde_json::Value;

use crate::common::{example, fixture};
use crate::fake::{Data, FakeThoughtSpot, Faults};
use crate::fetch::{Scratch, fixtures};

fn export_then_plan_shows_no_change(data: Data) {
    let server = FakeThoughtSpot::start_on(data, 0, Faults::default());
    let scratch = Scratch::new();
    scratch
        .with_password(&server)
        .args(["export-spec", "--profile", "env", "-o", "principals.yaml"])
        .assert()
        .success();
    scratch
        .with_password(&server)
        .args(["plan", "principals.yaml", "--profile", "env", "--check"])
        .assert()
        .code(0)
        .stdout(contains("No changes: the cluster matches the spec."));
    // Nothing was written to the cluster.
    assert!(server.state.principal_writes().is_empty());
}

#[test]
fn an_exported_fixture_cluster_plans_no_change() {
    export_then_plan_shows_no_change(fixtures());
}

#[test]
fn an_exported_10k_user_cluster_plans_no_change() {
    export_then_plan_shows_no_change(Data::generated(10_000, 400, 4));
}

#[test]
fn a_snapshot_exports_and_plans_offline() {
    let scratch = Scratch::new();
    let example = example();
    let example = example.to_str().unwrap();
    scratch
        .cmd()
        .args(["export-spec", "--from", example, "-o", "-"])
        .assert()
        .success()
        .stdout(contains("version: 1\n").and(contains("  \"uc-sales\":\n")));
    scratch
        .cmd()
        .args(["export-spec", "--from", example, "-o", "p.yaml"])
        .assert()
        .success();
    scratch
        .cmd()
        .args(["plan", "p.yaml", "--from", example, "--check"])
        .assert()
        .code(0);
    for name in ["v1_user_list.json", "v2_combined.json"] {
        let input = fixture(name);
        let input = input.to_str().unwrap();
        scratch
            .cmd()
            .args(["export-spec", "--from", input, "-o", "f.yaml"])
            .assert()
            .success();
        scratch
            .cmd()
            .args(["plan", "f.yaml", "--from", input, "--check"])
            .assert()
            .code(0);
    }
}

const SPEC: &str = r#"version: 1
orgs:
  Primary: {}
groups:
  Group 0:
    description: Use case zero, reviewed
    privileges: [AUTHORING, DATADOWNLOADING]
    members: exact
  Group 2: {}
  Use Case New:
    display_name: Use Case (new)
    parents: [Group 2]
users:
  user0@example.com:
    display_name: User Zero
    groups: [Group 0]
  new.person@example.com:
    display_name: New Person
    email: new.person@example.com
    groups: [Use Case New, Group 0]
"#;

#[test]
fn a_plan_shows_creates_updates_memberships_and_saves_with_a_fingerprint() {
    let server = FakeThoughtSpot::start_on(Data::generated(20, 6, 1), 0, Faults::default());
    let scratch = Scratch::new();
    std::fs::write(scratch.file("principals.yaml"), SPEC).unwrap();
    let assert = scratch
        .with_password(&server)
        .args([
            "plan",
            "principals.yaml",
            "--profile",
            "env",
            "--check",
            "--out",
            "plan.json",
        ])
        .assert()
        .code(1);
    let stdout = String::from_utf8(assert.get_output().stdout.clone()).unwrap();
    for line in [
        "+ group \"Use Case New\" (org \"Primary\")",
        "    display_name: \"Use Case (new)\"",
        "~ group \"Group 0\" (org \"Primary\")",
        "    description: \"Use case 0\" → \"Use case zero, reviewed\"",
        "    privileges: + DATADOWNLOADING",
        "+ user \"new.person@example.com\"",
        "~ user \"user0@example.com\"",
        "    display_name: \"User 0\" → \"User Zero\"",
        "~ members of group \"Group 0\" (org \"Primary\")",
        "    + user \"new.person@example.com\"",
        "    - user \"user5@example.com\" (members: exact; not in the spec)",
        "    - group \"Group 3\" (members: exact; not in the spec)",
        "~ members of group \"Group 2\" (org \"Primary\")",
        "    + group \"Use Case New\"",
    ] {
        assert!(stdout.contains(line), "{line:?} missing from\n{stdout}");
    }
    assert!(
        stdout.contains("Plan: groups 1 to create, 1 to update; users 1 to create, 1 to update;"),
        "{stdout}"
    );
    let plan: Value =
        serde_json::from_slice(&std::fs::read(scratch.file("plan.json")).unwrap()).unwrap();
    assert_eq!(plan["schema_version"], 1);
    assert_eq!(plan["cluster"]["id"], crate::fake::CLUSTER_ID);
    assert!(plan["fingerprint"].as_str().unwrap().starts_with("sha256:"));
    let records = plan["records"].as_array().unwrap();
    // The exact group's record lists its members as the cluster had them.
    let group = records
        .iter()
        .find(|r| r["kind"] == "group" && r["name"] == "Group 0")
        .expect("Group 0 recorded");
    assert_eq!(group["members"], true);
    let state = group["state"].as_array().unwrap();
    assert!(state.iter().any(|f| f[0] == "member_users"), "{group}");
    // Every principal the changes touch is recorded, and only those.
    let mut keys: Vec<String> = records
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect();
    keys.sort();
    assert!(
        keys.contains(&"new.person@example.com".to_owned()),
        "{keys:?}"
    );
    assert!(keys.contains(&"user5@example.com".to_owned()), "{keys:?}");
    assert!(!keys.contains(&"user3@example.com".to_owned()), "{keys:?}");
    assert!(server.state.principal_writes().is_empty());
}

#[test]
fn an_unknown_org_is_refused_naming_the_cluster_s_orgs() {
    let server = FakeThoughtSpot::start_on(Data::generated(4, 2, 2), 0, Faults::default());
    let scratch = Scratch::new();
    std::fs::write(
        scratch.file("p.yaml"),
        "version: 1\norgs:\n  Primary: {}\n  Tenant 9: {}\n",
    )
    .unwrap();
    scratch
        .with_password(&server)
        .args(["plan", "p.yaml", "--profile", "env"])
        .assert()
        .code(2)
        .stderr(contains("`Tenant 9` does not exist").and(contains("Primary, Tenant 1")));
}

#[test]
fn validate_reports_every_error_with_line_and_column() {
    let scratch = Scratch::new();
    std::fs::write(
        scratch.file("p.yaml"),
        "version: 1\ngroups:\n  a: {parents: [b], privileges: [NOT_A_PRIVILEGE]}\n  b: {parents: [a]}\nusers:\n  Bob: {groups: [c]}\n  bob: {}\n",
    )
    .unwrap();
    scratch
        .cmd()
        .args(["validate", "p.yaml"])
        .assert()
        .code(2)
        .stderr(
            contains("error: line 3 column 3: groups nest in a cycle: a → b → a")
                .and(contains(
                    "error: line 6 column 18: user `Bob` names the group `c`",
                ))
                .and(contains(
                    "error: line 7 column 3: user `bob` is declared twice",
                ))
                .and(contains(
                    "warning: line 3 column 34: group `a`: the privilege `NOT_A_PRIVILEGE`",
                )),
        );
    std::fs::write(
        scratch.file("q.yaml"),
        "version: 1\nusers:\n  alice:\n    pasword: x\n",
    )
    .unwrap();
    scratch
        .cmd()
        .args(["validate", "q.yaml"])
        .assert()
        .code(2)
        .stderr(contains("q.yaml: line 4 column 5: unknown field `pasword`"));
    scratch
        .cmd()
        .args(["validate", "missing.yaml"])
        .assert()
        .code(2)
        .stderr(contains("cannot read the spec missing.yaml"));
}

#[test]
fn a_template_is_rendered_from_an_hr_export_and_planned() {
    let server = FakeThoughtSpot::start_on(Data::generated(6, 3, 1), 0, Faults::default());
    let scratch = Scratch::new();
    std::fs::write(
        scratch.file("hr.csv"),
        "username,name,use_case\nuser0@example.com,User 0,Group 0\nnew@example.com,\"No\",Finance: close\n",
    )
    .unwrap();
    std::fs::write(
        scratch.file("principals.yaml.j2"),
        "version: 1\ngroups:\n  Group 0: {}\n  Finance: close: {}\nusers:\n",
    )
    .unwrap();
    // A template that breaks the YAML is refused, naming the rendering.
    scratch
        .cmd()
        .args(["validate", "principals.yaml.j2", "--vars", "hr.csv"])
        .assert()
        .code(2)
        .stderr(contains("principals.yaml.j2 (rendered): line 4"));
    std::fs::write(
        scratch.file("principals.yaml.j2"),
        "version: 1\ngroups:\n{% for team in hr | map(attribute='use_case') | unique %}\n  {{ team }}: {}\n{% endfor %}\nusers:\n{% for row in hr %}\n  {{ row.username }}:\n    display_name: {{ row.name }}\n    groups: [{{ row.use_case }}]\n{% endfor %}\n",
    )
    .unwrap();
    scratch
        .cmd()
        .args([
            "validate",
            "principals.yaml.j2",
            "--vars",
            "hr.csv",
            "--print",
        ])
        .assert()
        .success()
        .stdout(contains(
            "  \"new@example.com\":\n    display_name: \"No\"\n    groups: [\"Finance: close\"]",
        ));
    let assert = scratch
        .with_password(&server)
        .args([
            "plan",
            "principals.yaml.j2",
            "--vars",
            "hr.csv",
            "--profile",
            "env",
            "--check",
        ])
        .assert()
        .code(1);
    let stdout = String::from_utf8(assert.get_output().stdout.clone()).unwrap();
    assert!(stdout.contains("+ group \"Finance: close\""), "{stdout}");
    assert!(
        stdout.contains("+ user \"new@example.com\"\n    display_name: \"No\""),
        "{stdout}"
    );
    assert!(!stdout.contains("~ user \"user0@example.com\""), "{stdout}");
    // --vars on a plain spec is a mistake worth saying.
    std::fs::write(scratch.file("plain.yaml"), "version: 1\n").unwrap();
    scratch
        .cmd()
        .args(["validate", "plain.yaml", "--vars", "hr.csv"])
        .assert()
        .code(2)
        .stderr(contains("--vars is for templates"));
}

#[test]
fn a_new_local_user_s_password_is_checked_when_given() {
    let server = FakeThoughtSpot::start_on(Data::generated(4, 2, 1), 0, Faults::default());
    let scratch = Scratch::new();
    std::fs::write(
        scratch.file("p.yaml"),
        "version: 1\nusers:\n  jane.doe@example.com:\n    display_name: Jane Doe\n",
    )
    .unwrap();
    scratch
        .with_password(&server)
        .env("TS_PRINCIPALS_NEW_USER_PASSWORD", "Jane-2026-pass")
        .args(["plan", "p.yaml", "--profile", "env"])
        .assert()
        .code(2)
        .stderr(contains("contains `jane`"));
    scratch
        .with_password(&server)
        .env("TS_PRINCIPALS_NEW_USER_PASSWORD", "Kx8#vQ2!mW")
        .args(["plan", "p.yaml", "--profile", "env"])
        .assert()
        .success()
        .stdout(contains("+ user \"jane.doe@example.com\""));
}

fn readme() -> String {
    std::fs::read_to_string(crate::common::root().join("README.md")).unwrap()
}

#[test]
fn the_readme_spec_walkthrough_works_as_written() {
    let scratch = Scratch::new();
    let mut ran = 0;
    for args in crate::common::readme_commands("spec-walkthrough") {
        scratch.cmd().args(&args).assert().success();
        ran += 1;
    }
    assert_eq!(ran, 5);
    let plan: Value =
        serde_json::from_slice(&std::fs::read(scratch.file("plan.json")).unwrap()).unwrap();
    assert_eq!(plan["changes"].as_array().unwrap().len(), 6, "{plan}");
}

#[test]
fn the_readme_spec_example_is_a_valid_spec_of_the_example_cluster() {
    let readme = readme();
    let section = readme.split("### Principals as code").nth(1).unwrap();
    let spec = section
        .split("```yaml\n")
        .nth(1)
        .unwrap()
        .split("```")
        .next()
        .unwrap();
    let scratch = Scratch::new();
    std::fs::write(scratch.file("principals.yaml"), spec).unwrap();
    let example = example();
    scratch
        .cmd()
        .args([
            "plan",
            "principals.yaml",
            "--from",
            example.to_str().unwrap(),
        ])
        .assert()
        .success()
        .stdout(contains("+ group \"Sales\" (org \"Acme Retail\")"));
}

#[test]
fn one_org_s_export_keeps_its_groups_in_that_org() {
    let server = FakeThoughtSpot::start_on(Data::generated(30, 8, 3), 0, Faults::default());
    let scratch = Scratch::new();
    scratch
        .with_password(&server)
        .args([
            "export-spec",
            "--profile",
            "env",
            "--org",
            "Tenant 1",
            "-o",
            "t.yaml",
        ])
        .assert()
        .success();
    let text = std::fs::read_to_string(scratch.file("t.yaml")).unwrap();
    assert!(text.contains("    org: \"Tenant 1\"\n"), "{text}");
    scratch
        .with_password(&server)
        .args([
            "plan",
            "t.yaml",
            "--profile",
            "env",
            "--org",
            "Tenant 1",
            "--check",
        ])
        .assert()
        .code(0);
}

#[test]
fn secrets_output_and_passwords_are_handled_with_care() {
    let scratch = Scratch::new();
    let example = example();
    let example = example.to_str().unwrap();
    // A password written by mistake is refused without being repeated.
    std::fs::write(
        scratch.file("p.yaml"),
        "version: 1\nusers:\n  bob:\n    password: \"Hunter2#Secret\"\n    bogus: 1\n",
    )
    .unwrap();
    scratch
        .cmd()
        .args(["validate", "p.yaml"])
        .assert()
        .code(2)
        .stderr(contains("line 5 column 5").and(contains("Hunter2").not()));
    // The plan's text is on standard output, so its JSON goes to a file.
    scratch
        .cmd()
        .args(["plan", "p.yaml", "--from", example, "--out", "-"])
        .assert()
        .code(2)
        .stderr(contains("save the JSON to a file"));
    std::fs::write(scratch.file("q.yaml"), "version: 1\nusers:\n  newbie: {}\n").unwrap();
    scratch
        .cmd()
        .args([
            "plan",
            "q.yaml",
            "--from",
            example,
            "--out",
            "nodir/plan.json",
        ])
        .assert()
        .code(4)
        .stderr(contains("cannot write the plan to nodir/plan.json").and(contains("--out")));
    // A weak initial password matters only when a local user is created.
    scratch
        .cmd()
        .args(["export-spec", "--from", example, "-o", "same.yaml"])
        .assert()
        .success();
    scratch
        .cmd()
        .env("TS_PRINCIPALS_NEW_USER_PASSWORD", "x")
        .args(["plan", "same.yaml", "--from", example, "--check"])
        .assert()
        .code(0);
    scratch
        .cmd()
        .env("TS_PRINCIPALS_NEW_USER_PASSWORD", "x")
        .args(["plan", "q.yaml", "--from", example])
        .assert()
        .code(2)
        .stderr(contains("8 characters or more"));
    scratch
        .cmd()
        .env_remove("TS_PRINCIPALS_NEW_USER_PASSWORD")
        .args(["plan", "q.yaml", "--from", example])
        .assert()
        .success()
        .stderr(contains("need an initial password"));
}
