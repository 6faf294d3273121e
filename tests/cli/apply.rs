//! `apply` against the fake ThoughtSpot: a reviewed plan applied exactly
//! (creates, updates, membership moves, additive and exact groups), the
//! delete ladder (hide, deactivate, prune with and without a transfer, the
//! cap, protected and IdP principals), and the refusals: a stale plan, a
//! dry run that disagrees, a run stopped part-way and planned again, and
//! REST v1 on clusters without v2 writes.

use predicates::str::contains;

use crate::fake::{Data, FakeThoughtSpot, Faults};
use crate::fetch::Scratch;

/// A password the fake's rules accept for new local users.
const NEW_PASSWORD: &str = "Welcome-2026!x";

fn cluster(users: usize, groups: usize, orgs: usize) -> FakeThoughtSpot {
    FakeThoughtSpot::start_on(Data::generated(users, groups, orgs), 0, Faults::default())
}

fn cmd(scratch: &Scratch, server: &FakeThoughtSpot, args: &[&str]) -> assert_cmd::Command {
    let mut cmd = scratch.with_password(server);
    cmd.env("TS_PRINCIPALS_NEW_USER_PASSWORD", NEW_PASSWORD)
        .args(args)
        .args(["--profile", "env"]);
    cmd
}

/// `plan SPEC --out plan.json` (with `extra`), returning the plan's text.
fn plan(scratch: &Scratch, server: &FakeThoughtSpot, spec: &str, extra: &[&str]) -> String {
    std::fs::write(scratch.file("principals.yaml"), spec).unwrap();
    let assert = cmd(
        scratch,
        server,
        &["plan", "principals.yaml", "--out", "plan.json"],
    )
    .args(extra)
    .assert()
    .success();
    String::from_utf8(assert.get_output().stdout.clone()).unwrap()
}

fn apply(scratch: &Scratch, server: &FakeThoughtSpot) -> assert_cmd::assert::Assert {
    cmd(scratch, server, &["apply", "plan.json", "--yes"]).assert()
}

/// `plan --check` of the same spec: 0 when nothing is left to do.
fn replan(
    scratch: &Scratch,
    server: &FakeThoughtSpot,
    extra: &[&str],
) -> assert_cmd::assert::Assert {
    cmd(scratch, server, &["plan", "principals.yaml", "--check"])
        .args(extra)
        .assert()
}

const SPEC: &str = r#"version: 1
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
  user1@example.com:
    groups: [Use Case New]
  new.person@example.com:
    display_name: New Person
    email: new.person@example.com
    groups: [Use Case New, Group 0]
"#;

#[test]
fn a_reviewed_plan_is_applied_exactly_and_the_next_plan_is_empty() {
    let server = cluster(20, 6, 1);
    let scratch = Scratch::new();
    let before_user3 = server.state.user("user3@example.com");
    plan(&scratch, &server, SPEC, &[]);
    let assert = apply(&scratch, &server).success();
    let stdout = String::from_utf8(assert.get_output().stdout.clone()).unwrap();
    for line in [
        "applied  + group \"Use Case New\" (org \"Primary\")",
        "applied  ~ group \"Group 0\" (org \"Primary\")",
        "applied  + user \"new.person@example.com\"",
        "applied  ~ user \"user0@example.com\"",
        "applied  + user \"new.person@example.com\" in group \"Group 0\" (org \"Primary\")",
        "applied  + group \"Use Case New\" in group \"Group 2\" (org \"Primary\")",
    ] {
        assert!(stdout.contains(line), "{line:?} missing from\n{stdout}");
    }
    // The cluster now has what the spec says.
    let user0 = server.state.user("user0@example.com").unwrap();
    assert_eq!(user0["display_name"], "User Zero");
    let group0 = server.state.group(0, "Group 0").unwrap();
    assert_eq!(group0["description"], "Use case zero, reviewed");
    let new = server.state.user("new.person@example.com").unwrap();
    assert_eq!(new["email"], "new.person@example.com");
    // A user the spec does not name is left as it was (additive groups).
    assert_eq!(server.state.user("user3@example.com"), before_user3);
    replan(&scratch, &server, &[])
        .code(0)
        .stdout(contains("No changes"));
}

/// The requests that changed (or could have changed) the cluster: every
/// principal write but the dry runs.
fn changes_sent(server: &FakeThoughtSpot) -> Vec<String> {
    (server.state.principal_writes().into_iter())
        .filter(|s| !s.body.contains("\"dry_run\":true") && !s.body.contains("applyChanges=false"))
        .map(|s| format!("{} {}", s.path, s.body))
        .collect()
}

#[test]
fn a_stale_plan_is_refused_showing_what_moved() {
    let server = cluster(20, 6, 1);
    let scratch = Scratch::new();
    plan(&scratch, &server, SPEC, &[]);
    server.state.set_user_field(
        "user0@example.com",
        "display_name",
        "Changed By Hand".into(),
    );
    apply(&scratch, &server)
        .code(1)
        .stderr(contains("the cluster changed since the plan was made; nothing was applied"))
        .stderr(contains(
            "user \"user0@example.com\" display_name: \"User 0\" in the plan, \"Changed By Hand\" now",
        ));
    assert_eq!(changes_sent(&server), Vec::<String>::new());
    // A member added by hand to the exact group moves its record too.
    let scratch = Scratch::new();
    plan(&scratch, &server, SPEC, &[]);
    server
        .state
        .add_member_behind_the_back(0, "Group 0", "user7@example.com");
    apply(&scratch, &server)
        .code(1)
        .stderr(contains("group \"Group 0\" (org Primary) member_users"));
    assert_eq!(changes_sent(&server), Vec::<String>::new());
    // So does a group the plan only adds members to.
    let scratch = Scratch::new();
    plan(&scratch, &server, SPEC, &[]);
    server.state.set_group_field(
        0,
        "Group 2",
        "privileges",
        serde_json::json!(["ADMINISTRATION"]),
    );
    apply(&scratch, &server)
        .code(1)
        .stderr(contains("group \"Group 2\" (org Primary) privileges"));
    assert_eq!(changes_sent(&server), Vec::<String>::new());
    // And one whose parents (what its members inherit) changed.
    let scratch = Scratch::new();
    plan(&scratch, &server, SPEC, &[]);
    let group2 = server.state.group(0, "Group 2").unwrap();
    server.state.set_group_field(
        0,
        "Group 5",
        "sub_groups",
        serde_json::json!([{"id": group2["id"], "name": "Group 2"}]),
    );
    apply(&scratch, &server)
        .code(1)
        .stderr(contains("group \"Group 2\" (org Primary) ancestors"));
    assert_eq!(changes_sent(&server), Vec::<String>::new());
}

#[test]
fn an_edited_plan_or_no_terminal_without_yes_is_refused() {
    let server = cluster(10, 4, 1);
    let scratch = Scratch::new();
    plan(&scratch, &server, SPEC, &[]);
    let path = scratch.file("plan.json");
    let text = std::fs::read_to_string(&path).unwrap();
    // Without --yes and without a terminal: refused before the cluster is read.
    cmd(&scratch, &server, &["apply", "plan.json"])
        .assert()
        .code(2)
        .stderr(contains("pass --yes"));
    // A record changed (records come after the changes).
    let at = text.rfind("\"User 0\"").unwrap();
    let edited = format!("{}\"User X\"{}", &text[..at], &text[at + 8..]);
    std::fs::write(&path, edited).unwrap();
    apply(&scratch, &server)
        .code(2)
        .stderr(contains("do not match its fingerprint"));
    std::fs::write(&path, "{\"schema_version\": 9}").unwrap();
    apply(&scratch, &server)
        .code(2)
        .stderr(contains("schema_version is 9"));
    assert_eq!(changes_sent(&server), Vec::<String>::new());
}

#[test]
fn a_dry_run_that_disagrees_stops_before_any_change() {
    let server = cluster(20, 6, 1);
    let scratch = Scratch::new();
    plan(&scratch, &server, SPEC, &[]);
    server
        .state
        .set(|f| f.dry_run_extra_delete = Some("user9@example.com".into()));
    apply(&scratch, &server)
        .code(3)
        .stderr(contains("the cluster's dry run"))
        .stderr(contains(
            "the cluster would delete user \"user9@example.com\"",
        ));
    assert_eq!(changes_sent(&server), Vec::<String>::new());
}

#[test]
fn a_run_stopped_part_way_says_what_was_applied_and_the_next_plan_shows_the_rest() {
    let server = cluster(20, 6, 1);
    let scratch = Scratch::new();
    plan(&scratch, &server, SPEC, &[]);
    server
        .state
        .set(|f| f.principal_write_fail = Some("new.person@example.com".into()));
    apply(&scratch, &server)
        .code(3)
        .stderr(contains("apply stopped: + user \"new.person@example.com\""))
        .stderr(contains("applied (2):"))
        .stderr(contains("+ group \"Use Case New\" (org \"Primary\")"))
        .stderr(contains("not applied ("))
        .stderr(contains("plan` again"));
    assert!(server.state.group(0, "Use Case New").is_some());
    assert!(server.state.user("new.person@example.com").is_none());
    server.state.set(|f| f.principal_write_fail = None);
    let assert = replan(&scratch, &server, &[]).code(1);
    let rest = String::from_utf8(assert.get_output().stdout.clone()).unwrap();
    assert!(rest.contains("+ user \"new.person@example.com\""), "{rest}");
    assert!(!rest.contains("\n+ group \"Use Case New\""), "{rest}");
    assert!(!rest.contains("description:"), "{rest}");
    plan(&scratch, &server, SPEC, &[]);
    apply(&scratch, &server).success();
    replan(&scratch, &server, &[]).code(0);
}

/// Declares two users and one group of `cluster(6, 3, 1)`: the other four
/// users and two groups are not in the spec.
const SMALL: &str = r#"version: 1
groups:
  Group 0: {}
users:
  user0@example.com: {}
  user1@example.com: {}
"#;

#[test]
fn hide_then_deactivate_reach_only_what_the_spec_does_not_declare() {
    let server = cluster(6, 3, 1);
    let scratch = Scratch::new();
    let user0 = server.state.user("user0@example.com").unwrap();
    let text = plan(&scratch, &server, SMALL, &["--hide"]);
    for line in [
        "+ group \"ts-principals-quarantine\" (org \"Primary\")",
        "~ user \"user2@example.com\" hidden (not in the spec; --hide)",
        "~ group \"Group 1\" (org \"Primary\") hidden (not in the spec)",
        "Not in the spec: 6 to hide, 0 to deactivate, 0 to delete.",
    ] {
        assert!(text.contains(line), "{line:?} missing from\n{text}");
    }
    assert!(!text.contains("user0@example.com"), "{text}");
    apply(&scratch, &server).success();
    let user2 = server.state.user("user2@example.com").unwrap();
    assert_eq!(user2["visibility"], "NON_SHARABLE");
    let group1 = server.state.group(0, "Group 1").unwrap();
    assert_eq!(group1["visibility"], "NON_SHARABLE");
    assert!(server.state.group(0, "ts-principals-quarantine").is_some());
    // A declared user is not touched.
    assert_eq!(server.state.user("user0@example.com").unwrap(), user0);
    // Hidden principals are not hidden again.
    replan(&scratch, &server, &["--hide"]).code(0);
    // Back in the spec, a user leaves the quarantine.
    let back = format!("{SMALL}  user2@example.com: {{visibility: SHARABLE}}\n");
    let text = plan(&scratch, &server, &back, &["--hide"]);
    assert!(
        text.contains("    - user \"user2@example.com\" (back in the spec)"),
        "{text}"
    );
    apply(&scratch, &server).success();
    replan(&scratch, &server, &["--hide"]).code(0);
    assert_eq!(
        server.state.user("user2@example.com").unwrap()["visibility"],
        "SHARABLE"
    );
    plan(&scratch, &server, SMALL, &["--hide"]);
    apply(&scratch, &server).success();
    // A quarantine that gives privileges is refused.
    server.state.set_group_field(
        0,
        "ts-principals-quarantine",
        "privileges",
        serde_json::json!(["ADMINISTRATION"]),
    );
    std::fs::write(scratch.file("principals.yaml"), SMALL).unwrap();
    cmd(&scratch, &server, &["plan", "principals.yaml", "--hide"])
        .assert()
        .code(2)
        .stderr(contains("hidden principals would gain them"));
    server.state.set_group_field(
        0,
        "ts-principals-quarantine",
        "privileges",
        serde_json::json!([]),
    );

    plan(&scratch, &server, SMALL, &["--deactivate"]);
    apply(&scratch, &server).success();
    for name in ["user2@example.com", "user5@example.com"] {
        assert_eq!(
            server.state.user(name).unwrap()["account_status"],
            "INACTIVE",
            "{name}"
        );
    }
    assert_eq!(
        server.state.user("user1@example.com").unwrap()["account_status"],
        "ACTIVE"
    );
    replan(&scratch, &server, &["--deactivate"]).code(0);
}

#[test]
fn prune_deletes_with_a_transfer_keeps_protected_and_idp_principals_and_is_capped() {
    let server = cluster(6, 3, 1);
    let scratch = Scratch::new();
    server
        .state
        .set_user_field("user3@example.com", "account_type", "SAML_USER".into());
    server
        .state
        .set_group_field(0, "Group 2", "type", "LDAP_GROUP".into());
    let objects = server.state.give_objects("user2@example.com", 3);
    // The cap counts every removal.
    std::fs::write(scratch.file("principals.yaml"), SMALL).unwrap();
    cmd(
        &scratch,
        &server,
        &["plan", "principals.yaml", "--prune", "--max-deletes", "2"],
    )
    .assert()
    .code(2)
    .stderr(contains("more than --max-deletes 2"));
    // Protected principals are kept, with the reason.
    let text = plan(&scratch, &server, SMALL, &["--prune"]);
    for line in [
        "- user \"user2@example.com\" (not in the spec; --prune)",
        "- group \"Group 1\" (org \"Primary\") (not in the spec; --prune)",
        "user \"user3@example.com\" (not in the spec): the user is provisioned by an identity provider (SAML_USER)",
        "group \"Group 2\" (org Primary; not in the spec): the group is provisioned by an identity provider (LDAP_GROUP)",
    ] {
        assert!(text.contains(line), "{line:?} missing from\n{text}");
    }
    // A user who owns objects is not deleted without a transfer.
    apply(&scratch, &server)
        .code(2)
        .stderr(contains("\"user2@example.com\" (3 objects)"))
        .stderr(contains("--transfer-to"));
    assert_eq!(changes_sent(&server), Vec::<String>::new());
    // With one: the objects move first, then the user goes.
    let text = plan(
        &scratch,
        &server,
        SMALL,
        &["--prune", "--transfer-to", "user0@example.com"],
    );
    assert!(
        text.contains("objects: → \"user0@example.com\" first (--transfer-to)"),
        "{text}"
    );
    apply(&scratch, &server).success();
    assert!(server.state.user("user2@example.com").is_none());
    assert!(server.state.group(0, "Group 1").is_none());
    let moved: Vec<String> = (server.state.owned_objects("user0@example.com").into_iter())
        .map(|o| o.guid)
        .collect();
    for guid in &objects {
        assert!(moved.contains(guid), "{guid} not moved: {moved:?}");
    }
    assert!(server.state.user("user3@example.com").is_some());
    assert!(server.state.group(0, "Group 2").is_some());
    replan(&scratch, &server, &["--prune"]).code(0);
    // Named explicitly, a protected user is reached.
    let text = plan(
        &scratch,
        &server,
        SMALL,
        &["--prune", "--unprotect", "user3@example.com"],
    );
    assert!(text.contains("- user \"user3@example.com\""), "{text}");
    apply(&scratch, &server).success();
    assert!(server.state.user("user3@example.com").is_none());
    // --transfer-to must be a user the plan keeps.
    std::fs::write(scratch.file("principals.yaml"), SMALL).unwrap();
    cmd(
        &scratch,
        &server,
        &[
            "plan",
            "principals.yaml",
            "--prune",
            "--transfer-to",
            "nobody@example.com",
        ],
    )
    .assert()
    .code(2)
    .stderr(contains("no such user"));
}

#[test]
fn a_cluster_without_v2_writes_is_applied_with_v1_user_sync() {
    let server = FakeThoughtSpot::start_on(crate::fetch::fixtures(), 0, Faults::default());
    server.state.set(|f| f.no_v2_writes = true);
    let scratch = Scratch::new();
    let spec = r#"version: 1
groups:
  Use Case V1:
    description: Made over REST v1
users:
  ana.user0@example.com:
    display_name: Ana Zero
    groups: [Use Case V1]
"#;
    plan(&scratch, &server, spec, &[]);
    apply(&scratch, &server)
        .success()
        .stdout(contains("applied  + group \"Use Case V1\""))
        .stderr(contains("v1 user/sync"));
    let seen = server.state.seen();
    let syncs: Vec<_> = (seen.iter())
        .filter(|s| s.path.starts_with("/callosum/v1/tspublic/v1/user/sync"))
        .collect();
    assert_eq!(syncs.len(), 2, "a dry run, then the sync");
    assert!(syncs.iter().all(|s| s.body.contains("removeDeleted=false")));
    assert_eq!(
        server.state.user("ana.user0@example.com").unwrap()["display_name"],
        "Ana Zero"
    );
    replan(&scratch, &server, &[]).code(0);
    // A cluster without any REST v2 (read over v1) is applied the same way.
    let old = FakeThoughtSpot::start_on(crate::fetch::fixtures(), 0, Faults::default());
    old.state.set(|f| f.no_v2 = true);
    let scratch_old = Scratch::new();
    plan(&scratch_old, &old, spec, &[]);
    apply(&scratch_old, &old)
        .success()
        .stderr(contains("v1 user/sync"));
    replan(&scratch_old, &old, &[]).code(0);
    // Pruning there: the objects go over v1's transfer, then user/sync deletes.
    old.state.give_objects("farid.user15@example.com", 2);
    let prune = "version: 1\nusers:\n  ana.user0@example.com: {}\n";
    plan(
        &scratch_old,
        &old,
        prune,
        &[
            "--prune",
            "--max-deletes",
            "200",
            "--transfer-to",
            "ana.user0@example.com",
        ],
    );
    apply(&scratch_old, &old).success();
    assert!(old.state.user("farid.user15@example.com").is_none());
    assert_eq!(old.state.owned_objects("ana.user0@example.com").len(), 2);
    // What v1 cannot do is refused before anything is sent.
    let spec = r#"version: 1
groups:
  Use Case V1:
    privileges: [DATADOWNLOADING]
"#;
    plan(&scratch, &server, spec, &[]);
    let before = server.state.principal_writes().len();
    apply(&scratch, &server)
        .code(2)
        .stderr(contains("cannot apply 1 of the plan's changes"))
        .stderr(contains("(privileges)"));
    let after = server.state.principal_writes();
    assert!(
        after[before..].iter().all(|s| s.path.ends_with("/import")),
        "only the v2 probe: {:?}",
        after[before..].iter().map(|s| &s.path).collect::<Vec<_>>()
    );
}

#[test]
fn the_readme_apply_walkthrough_works_as_written_against_the_fake() {
    // What `cargo run --example fake_thoughtspot -- --data tests/data/fixtures` serves.
    let server = FakeThoughtSpot::start_on(crate::fetch::fixtures(), 0, Faults::default());
    let scratch = Scratch::new();
    let mut outputs = Vec::new();
    for args in crate::common::readme_commands("apply-walkthrough") {
        let assert = scratch
            .with_password(&server)
            .env("TS_PRINCIPALS_NEW_USER_PASSWORD", NEW_PASSWORD)
            .args(&args)
            .assert()
            .success();
        outputs.push(String::from_utf8(assert.get_output().stdout.clone()).unwrap());
    }
    assert_eq!(outputs.len(), 3);
    assert!(
        outputs[0].contains("+ group \"uc-onboarding\""),
        "{}",
        outputs[0]
    );
    assert!(
        outputs[0].contains(
            "groups 1 to create, 0 to update; users 1 to create, 0 to update; memberships 3 to add"
        ),
        "{}",
        outputs[0]
    );
    assert!(
        outputs[1].contains("applied  + group \"uc-onboarding\" (org \"Primary\")"),
        "{}",
        outputs[1]
    );
    assert!(outputs[2].contains("No changes"), "{}", outputs[2]);
    assert!(server.state.user("new.joiner@example.com").is_some());
}

#[test]
fn a_prune_over_v1_sends_everything_else_and_deletes_exactly_the_plan_s_deletions() {
    let server = FakeThoughtSpot::start_on(crate::fetch::fixtures(), 0, Faults::default());
    server.state.set(|f| f.no_v2_writes = true);
    let scratch = Scratch::new();
    let spec = "version: 1\nusers:\n  ana.user0@example.com: {}\n";
    let text = plan(
        &scratch,
        &server,
        spec,
        &["--prune", "--max-deletes", "200"],
    );
    assert!(
        text.contains("- user \"farid.user15@example.com\""),
        "{text}"
    );
    assert!(
        text.contains("the user is provisioned by an identity provider"),
        "{text}"
    );
    // A disagreeing dry run stops it.
    server
        .state
        .set(|f| f.dry_run_extra_delete = Some("gita.user6@example.com".into()));
    apply(&scratch, &server).code(3).stderr(contains(
        "would also delete user \"gita.user6@example.com\"",
    ));
    assert!(server.state.user("farid.user15@example.com").is_some());
    server.state.set(|f| f.dry_run_extra_delete = None);
    apply(&scratch, &server)
        .success()
        .stderr(contains("removeDeleted=true"));
    let syncs: Vec<String> = (server.state.seen().into_iter())
        .filter(|s| s.path.starts_with("/callosum/v1/tspublic/v1/user/sync"))
        .map(|s| s.body)
        .collect();
    assert!(
        syncs.iter().all(|b| b.contains("removeDeleted=true")),
        "{syncs:?}"
    );
    assert!(server.state.user("farid.user15@example.com").is_none());
    assert!(server.state.user("ana.user0@example.com").is_some());
    // Users also in an org the spec does not name stay.
    assert!(server.state.user("farid.user5@example.com").is_some());
    // Identity-provider users and groups stay.
    assert!(server.state.user("gita.user6@example.com").is_some());
    assert!(server.state.group(0, "Executive - Use Case 6").is_some());
    replan(&scratch, &server, &["--prune", "--max-deletes", "200"]).code(0);
}

#[test]
fn a_token_s_user_is_protected_too() {
    let server = cluster(6, 3, 1);
    server
        .state
        .behind_the_back(0, |w| {
            crate::fake::principals::create_user(
                w,
                &serde_json::json!({"name": crate::fake::USERNAME, "display_name": "Admin",
                    "email": "", "password": "Adm1n-Passw0rd!"}),
            )
        })
        .unwrap();
    let scratch = Scratch::new();
    let token = server.state.mint_token(0);
    let with_token = |args: &[&str]| {
        let mut cmd = scratch.cmd();
        cmd.env("THOUGHTSPOT_URL", server.url())
            .env("THOUGHTSPOT_TOKEN", &token)
            .args(args)
            .args(["--profile", "env"]);
        cmd
    };
    std::fs::write(scratch.file("principals.yaml"), SMALL).unwrap();
    // Live, the token's user (from the cluster) is kept.
    with_token(&["plan", "principals.yaml", "--prune", "--max-deletes", "20"])
        .assert()
        .success()
        .stdout(contains(
            "user \"admin\" (not in the spec): the user is the user running ts-principals",
        ));
    // Made offline without --caller, the plan deletes it: apply refuses.
    scratch
        .with_password(&server)
        .args(["fetch", "--profile", "env", "-o", "snap.json"])
        .assert()
        .success();
    scratch
        .cmd()
        .args([
            "plan",
            "principals.yaml",
            "--from",
            "snap.json",
            "--prune",
            "--max-deletes",
            "20",
            "--out",
            "plan.json",
        ])
        .assert()
        .success()
        .stdout(contains("- user \"admin\""));
    with_token(&["apply", "plan.json", "--yes"])
        .assert()
        .code(2)
        .stderr(contains("the user apply signs in as"));
    assert_eq!(changes_sent(&server), Vec::<String>::new());
}
