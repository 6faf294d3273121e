use std::path::{Path, PathBuf};

use super::*;
use crate::input::{self, LoadOptions};
use crate::spec;

fn load(paths: &[PathBuf]) -> Principals {
    input::load(paths, &LoadOptions::default())
        .unwrap_or_else(|e| panic!("{e}"))
        .principals
}

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// A small cluster: orgs Primary and T; groups All, Admins (with tsadmin),
/// Sales (alice, bob, carol the SAML user; Sales EMEA under it), Ops; T has
/// its own Sales.
fn cluster() -> Principals {
    let json = serde_json::json!({
        "orgs": [{"id": 0, "name": "Primary"}, {"id": 7, "name": "T"}],
        "users": [
            {"id": "u-alice", "name": "alice", "display_name": "Alice", "email": "alice@x.com",
             "visibility": "SHARABLE", "account_type": "LOCAL_USER", "modification_time_in_millis": 10,
             "orgs": [{"id": 0, "name": "Primary"}], "user_groups": [{"id": "g-sales", "name": "Sales"}]},
            {"id": "u-bob", "name": "bob", "display_name": "Bob", "email": "",
             "visibility": "SHARABLE", "account_type": "LOCAL_USER", "modification_time_in_millis": 11,
             "orgs": [{"id": 0, "name": "Primary"}, {"id": 7, "name": "T"}],
             "user_groups": [{"id": "g-sales", "name": "Sales"}, {"id": "g-tsales", "name": "Sales"}]},
            {"id": "u-carol", "name": "carol", "display_name": "Carol", "email": "",
             "visibility": "SHARABLE", "account_type": "SAML_USER", "modification_time_in_millis": 12,
             "orgs": [{"id": 0, "name": "Primary"}], "user_groups": [{"id": "g-sales", "name": "Sales"}]},
            {"id": "u-tsadmin", "name": "tsadmin", "display_name": "Administrator", "email": "",
             "visibility": "SHARABLE", "account_type": "LOCAL_USER", "modification_time_in_millis": 13,
             "orgs": [{"id": 0, "name": "Primary"}, {"id": 7, "name": "T"}],
             "user_groups": [{"id": "g-admins", "name": "Admins"}]}
        ],
        "groups": [
            {"id": "g-all", "name": "All", "display_name": "All Group", "type": "LOCAL_GROUP",
             "visibility": "SHARABLE", "orgs": [{"id": 0, "name": "Primary"}], "privileges": []},
            {"id": "g-admins", "name": "Admins", "display_name": "Admins", "type": "LOCAL_GROUP",
             "visibility": "SHARABLE", "orgs": [{"id": 0, "name": "Primary"}], "privileges": ["ADMINISTRATION"]},
            {"id": "g-sales", "name": "Sales", "display_name": "Sales", "description": "Use case",
             "type": "LOCAL_GROUP", "visibility": "SHARABLE", "orgs": [{"id": 0, "name": "Primary"}],
             "privileges": ["DATADOWNLOADING"], "modification_time_in_millis": 20,
             "sub_groups": [{"id": "g-emea", "name": "Sales EMEA"}]},
            {"id": "g-emea", "name": "Sales EMEA", "display_name": "Sales EMEA", "type": "LOCAL_GROUP",
             "visibility": "SHARABLE", "orgs": [{"id": 0, "name": "Primary"}], "privileges": []},
            {"id": "g-ops", "name": "Ops", "display_name": "Ops", "type": "LOCAL_GROUP",
             "visibility": "SHARABLE", "orgs": [{"id": 0, "name": "Primary"}], "privileges": []},
            {"id": "g-tsales", "name": "Sales", "display_name": "T Sales", "type": "LOCAL_GROUP",
             "visibility": "SHARABLE", "orgs": [{"id": 7, "name": "T"}], "privileges": []}
        ]
    });
    input::load_bytes(
        "cluster.json",
        json.to_string().as_bytes(),
        &LoadOptions::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"))
    .principals
}

fn plan_of(spec_text: &str, principals: &Principals) -> Plan {
    try_plan(spec_text, principals, &PlanOptions::default()).unwrap_or_else(|e| panic!("{e}"))
}

fn no_change_after_export(principals: &Principals) {
    let text = spec::export::export(principals);
    let s = spec::parse(&text, "export.yaml").unwrap_or_else(|e| panic!("{e}\n{text}"));
    let report = spec::validate::validate(&s);
    assert!(report.is_ok(), "{:?}\n{text}", report.findings);
    let plan =
        plan(&s, &text, principals, &PlanOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    assert!(plan.is_empty(), "{}", plan.to_text());
    assert!(plan.records.is_empty());
    // Exported twice, the same bytes.
    assert_eq!(spec::export::export(principals), text);
}

#[test]
fn an_exported_cluster_plans_no_change_for_every_fixture() {
    let fixtures = repo("tests/data/fixtures");
    no_change_after_export(&load(&[fixtures.join("v2_combined.json")]));
    no_change_after_export(&load(&[fixtures.join("v1_user_list.json")]));
    no_change_after_export(&load(&[
        fixtures.join("v2_users_search.json"),
        fixtures.join("v2_groups_search.json"),
        fixtures.join("v2_orgs_search.json"),
    ]));
    no_change_after_export(&load(&[repo("examples/principals.json")]));
    no_change_after_export(&cluster());
}

#[test]
fn groups_of_one_name_in_two_orgs_get_two_keys() {
    let text = spec::export::export(&cluster());
    assert!(
        text.contains("  \"Sales (Primary)\":\n    name: \"Sales\"\n    org: \"Primary\""),
        "{text}"
    );
    assert!(
        text.contains("  \"Sales (T)\":\n    name: \"Sales\"\n    org: \"T\""),
        "{text}"
    );
}

#[test]
fn creates_updates_and_memberships_are_planned_in_order() {
    let p = cluster();
    let plan = plan_of(
        "version: 1\norgs: {Primary: {}, T: {}}\n\
         groups:\n  Sales:\n    org: Primary\n    description: Sales analytics\n    privileges: [A3ANALYSIS]\n  Marketing:\n    privileges: [DATADOWNLOADING]\n    parents: [Sales]\n\
         users:\n  Alice:\n    email: alice@example.com\n    groups: [Marketing]\n    orgs: [T]\n  dan:\n    display_name: Dan\n    groups: [Sales]\n",
        &p,
    );
    let text = plan.to_text();
    let expected = [
        "+ group \"Marketing\" (org \"Primary\")",
        "~ group \"Sales\" (org \"Primary\")",
        "    description: \"Use case\" → \"Sales analytics\"",
        "    privileges: + A3ANALYSIS",
        "    privileges: - DATADOWNLOADING",
        "+ user \"dan\"",
        "~ user \"alice\"",
        "    email: \"alice@x.com\" → \"alice@example.com\"",
        "    orgs: + \"T\"",
        "~ members of group \"Marketing\" (org \"Primary\")",
        "    + user \"alice\"",
        "~ members of group \"Sales\" (org \"Primary\")",
        "    + user \"dan\"",
        "    + group \"Marketing\"",
    ];
    let mut at = 0;
    for line in expected {
        let found = text[at..]
            .find(line)
            .unwrap_or_else(|| panic!("{line:?} after {at} in\n{text}"));
        at += found + line.len();
    }
    assert!(
        text.contains("Plan: groups 1 to create, 1 to update; users 1 to create, 1 to update; memberships 3 to add, 0 to remove; privileges 2 to grant, 1 to take away; orgs 1 to join, 0 to leave."),
        "{text}"
    );
    // Additive: nobody leaves Sales.
    assert!(!text.contains("    - "), "{text}");
    let keys: Vec<String> = plan.records.iter().map(|r| r.key.to_string()).collect();
    assert_eq!(
        keys,
        [
            "user \"alice\"",
            "user \"dan\"",
            "group \"Marketing\" (org Primary)",
            "group \"Sales\" (org Primary)"
        ]
    );
    assert!(plan.records[1].state.is_none() && plan.records[2].state.is_none());
    assert!(plan.fingerprint.starts_with("sha256:"));
}

#[test]
fn exact_groups_list_every_removal_and_keep_protected_members() {
    let p = cluster();
    let additive = "version: 1\ngroups:\n  Sales: {}\n  Sales EMEA: {}\nusers:\n  alice:\n    groups: [Sales]\n";
    assert!(plan_of(additive, &p).is_empty());
    let exact = additive.replace("Sales: {}", "Sales: {members: exact}");
    let plan = plan_of(&exact, &p);
    let text = plan.to_text();
    assert!(
        text.contains("    - group \"Sales EMEA\" (members: exact; not in the spec)"),
        "{text}"
    );
    assert!(
        text.contains("    - user \"bob\" (members: exact; not in the spec)"),
        "{text}"
    );
    assert!(!text.contains("- user \"alice\""), "{text}");
    // carol is a SAML user the spec does not declare: kept, with the reason.
    assert!(!text.contains("- user \"carol\""), "{text}");
    assert!(text.contains("user \"carol\" in group \"Sales\" (org Primary): the user is provisioned by an identity provider (SAML_USER)"), "{text}");
    // Declared, she is managed like anyone.
    let declared = format!("{exact}  carol: {{}}\n");
    assert!(
        plan_of(&declared, &p)
            .to_text()
            .contains("- user \"carol\"")
    );
    // The exact group's record holds its members.
    let record = plan
        .records
        .iter()
        .find(|r| matches!(&r.key, Key::Group { members: true, .. }))
        .expect("group record");
    let state = record.state.as_ref().expect("exists");
    assert!(
        state
            .iter()
            .any(|(k, v)| k == "member_users" && v == "alice\nbob\ncarol"),
        "{state:?}"
    );
}

#[test]
fn protected_groups_never_lose_members() {
    let p = cluster();
    let plan = plan_of(
        "version: 1\ngroups:\n  All: {members: exact}\n  Admins: {members: exact}\n",
        &p,
    );
    let text = plan.to_text();
    // Admins is an ordinary group: tsadmin is protected as a user.
    assert!(text.contains("user \"tsadmin\" in group \"Admins\" (org Primary): the user is a built-in ThoughtSpot user"), "{text}");
    assert!(plan.is_empty(), "{text}");
}

#[test]
fn exact_orgs_remove_the_users_the_spec_does_not_place_there() {
    let p = cluster();
    let plan = plan_of(
        "version: 1\norgs:\n  Primary: {}\n  T: {members: exact}\nusers:\n  alice: {}\n",
        &p,
    );
    let text = plan.to_text();
    assert!(
        text.contains("~ user \"bob\"\n    orgs: - \"T\" (org members: exact; the spec does not place the user there; leaves the org's groups too)"),
        "{text}"
    );
    assert!(text.contains("user \"tsadmin\" in org \"T\""), "{text}");
    let plan = plan_of(
        "version: 1\norgs:\n  Primary: {}\n  T: {members: exact}\ngroups:\n  Sales (T): {name: Sales, org: T}\nusers:\n  bob:\n    groups: [Sales (T)]\n",
        &p,
    );
    assert!(plan.is_empty(), "{}", plan.to_text());
}

#[test]
fn unknown_orgs_and_invalid_specs_are_refused() {
    let p = cluster();
    let s = spec::parse("version: 1\norgs: {Nowhere: {}}\n", "p.yaml").expect("parses");
    let message = plan(&s, "", &p, &PlanOptions::default())
        .expect_err("no org")
        .to_string();
    assert!(
        message.contains("`Nowhere` does not exist") && message.contains("Primary, T"),
        "{message}"
    );
    let s = spec::parse("version: 1\nusers:\n  a: {groups: [x]}\n", "p.yaml").expect("parses");
    let message = plan(&s, "", &p, &PlanOptions::default())
        .expect_err("invalid")
        .to_string();
    assert!(
        message.contains("p.yaml is not a valid spec") && message.contains("line 3"),
        "{message}"
    );
}

#[test]
fn a_plan_sees_what_moved_since() {
    let p = cluster();
    let plan = plan_of(
        "version: 1\ngroups:\n  Ops: {}\nusers:\n  alice:\n    groups: [Ops]\n",
        &p,
    );
    let index = Index::new(&p);
    let again: Vec<Record> = plan.records.iter().map(|r| index.record(&r.key)).collect();
    assert_eq!(again, plan.records);
    assert_eq!(plan.compute_fingerprint(), plan.fingerprint);
    assert!(state::moved(&plan.records, &again).is_empty());
    let mut changed = p.clone();
    changed.users[0].email = "new@x.com".into();
    changed.users[0].modified = Some(99);
    let index = Index::new(&changed);
    let now: Vec<Record> = plan.records.iter().map(|r| index.record(&r.key)).collect();
    assert_ne!(now, plan.records);
    let moved: Vec<(String, String, String)> = state::moved(&plan.records, &now)
        .into_iter()
        .map(|m| (m.field, m.planned, m.now))
        .collect();
    assert_eq!(
        moved,
        [
            (
                "email".to_owned(),
                "alice@x.com".to_owned(),
                "new@x.com".to_owned()
            ),
            ("modified".to_owned(), "10".to_owned(), "99".to_owned())
        ]
    );
}

#[test]
fn plans_round_trip_through_json() {
    let p = cluster();
    let plan = plan_of(
        "version: 1\ngroups:\n  New: {privileges: [DEVELOPER]}\nusers:\n  erin: {groups: [New]}\n",
        &p,
    );
    let json = serde_json::to_string_pretty(&plan).expect("json");
    let back: Plan = serde_json::from_str(&json).expect("reads back");
    assert_eq!(back, plan);
}

#[test]
fn names_cannot_forge_plan_lines() {
    let p = cluster();
    let plan = plan_of(
        "version: 1\nusers:\n  \"x\\n+ user \\\"root\\\"\": {}\n",
        &p,
    );
    let text = plan.to_text();
    assert!(
        !text.lines().any(|l| l.starts_with("+ user \"root\"")),
        "{text}"
    );
}

#[test]
fn defaults_are_for_what_a_plan_creates() {
    let p = cluster();
    let plan = plan_of(
        "version: 1\ndefaults:\n  users: {account_type: SAML_USER, visibility: NON_SHARABLE}\n  groups: {type: LDAP_GROUP}\ngroups:\n  Sales: {}\n  Fresh: {}\nusers:\n  tsadmin: {}\n  alice: {}\n  zed: {}\n",
        &p,
    );
    let text = plan.to_text();
    assert!(!text.contains("~ user"), "{text}");
    assert!(!text.contains("~ group"), "{text}");
    assert!(text.contains("+ user \"zed\"\n    display_name: \"zed\"\n    account_type: SAML_USER\n    visibility: NON_SHARABLE"), "{text}");
    assert!(
        text.contains(
            "+ group \"Fresh\" (org \"Primary\")\n    display_name: \"Fresh\"\n    type: LDAP_GROUP"
        ),
        "{text}"
    );
}

#[test]
fn declared_users_without_orgs_keep_them_and_the_caller_is_never_removed() {
    let p = cluster();
    let options = PlanOptions {
        caller: Some("Bob".to_owned()),
        ..PlanOptions::default()
    };
    let text = "version: 1\norgs:\n  Primary: {members: exact}\n  T: {members: exact}\nusers:\n  tsadmin: {}\n  alice: {orgs: [T]}\n  bob: {orgs: [Primary]}\n";
    let s = spec::parse(text, "p.yaml").expect("parses");
    let plan = plan(&s, text, &p, &options).expect("plans");
    let out = plan.to_text();
    assert!(!out.contains("~ user \"tsadmin\""), "{out}");
    assert!(
        out.contains("~ user \"alice\"\n    orgs: + \"T\"\n    orgs: - \"Primary\""),
        "{out}"
    );
    assert!(
        out.contains(
            "user \"carol\" in org \"Primary\": the user is provisioned by an identity provider"
        ),
        "{out}"
    );
    assert!(
        out.contains("user \"bob\" in org \"T\": the user is the user running ts-principals"),
        "{out}"
    );
    assert!(out.contains("orgs 1 to join, 1 to leave."), "{out}");
}

#[test]
fn privileges_read_over_v1_are_neither_exported_nor_compared() {
    let v1 = load(&[repo("tests/data/fixtures/v1_user_list.json")]);
    let text = spec::export::export(&v1);
    assert!(!text.contains("privileges"), "{text}");
    let group = &v1.groups[0].name;
    let plan = plan_of(
        &format!("version: 1\ngroups:\n  {group:?}: {{privileges: [DEVELOPER]}}\n"),
        &v1,
    );
    assert!(plan.is_empty(), "{}", plan.to_text());
}

#[test]
fn a_spec_of_a_large_cluster_is_read() {
    let mut text = String::from("version: 1\ngroups:\n  G: {}\nusers:\n");
    for n in 0..40_000 {
        text.push_str(&format!(
            "  user{n}@example.com:\n    display_name: User {n}\n    groups: [G]\n"
        ));
    }
    let s = spec::parse(&text, "big.yaml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.users.len(), 40_000);
}

#[test]
fn the_delete_ladder_reaches_only_undeclared_unprotected_principals() {
    let p = cluster();
    let text = "version: 1\ngroups:\n  Sales: {}\nusers:\n  alice: {}\n";
    let s = spec::parse(text, "p.yaml").expect("parses");
    let options = |unmanaged, unprotect: &[&str]| PlanOptions {
        caller: Some("bob".to_owned()),
        unmanaged,
        unprotect: unprotect.iter().map(|s| s.to_string()).collect(),
        ..PlanOptions::default()
    };
    // Ignore (the default): nothing.
    let plan_of = |o: &PlanOptions| plan(&s, text, &p, o).expect("plans");
    assert!(plan_of(&options(Unmanaged::Ignore, &[])).is_empty());
    // Prune: the caller (bob), the IdP user (carol), tsadmin, All are kept;
    // groups of T (not named by the spec) are not reached.
    let pruned = plan_of(&options(Unmanaged::Delete, &[]));
    let labels: Vec<String> = pruned.changes.iter().map(label).collect();
    assert_eq!(
        labels,
        [
            "- group \"Admins\" (org \"Primary\")",
            "- group \"Ops\" (org \"Primary\")",
            "- group \"Sales EMEA\" (org \"Primary\")",
        ],
        "{}",
        pruned.to_text()
    );
    let out = pruned.to_text();
    for kept in ["user \"carol\"", "group \"All\""] {
        assert!(out.contains(kept), "{kept} not listed as kept:\n{out}");
    }
    // Users also in an org the spec does not name (bob, tsadmin in T) are
    // not reached at all.
    assert!(!out.contains("bob") && !out.contains("tsadmin"), "{out}");
    assert_eq!(pruned.unmanaged, Unmanaged::Delete);
    // Named explicitly, a protected principal is reached.
    let named = plan_of(&options(Unmanaged::Delete, &["carol"]));
    assert!(named.changes.iter().any(|c| label(c) == "- user \"carol\""));
    // Hide creates the quarantine group once and puts each in it.
    let hidden = plan_of(&options(Unmanaged::Hide, &[]));
    let creates = (hidden.changes.iter())
        .filter(
            |c| matches!(c, Change::CreateGroup { group, .. } if group.name == QUARANTINE_GROUP),
        )
        .count();
    assert_eq!(creates, 1, "{}", hidden.to_text());
    assert!(matches!(
        hidden.changes.last(),
        Some(Change::HideGroup { .. })
    ));
    // The cap counts every removal.
    let capped = PlanOptions {
        max_deletes: 2,
        ..options(Unmanaged::Delete, &[])
    };
    let error = plan(&s, text, &p, &capped).expect_err("over the cap");
    assert!(
        error.to_string().contains("delete 3 principals")
            && error.to_string().contains("--max-deletes 2"),
        "{error}"
    );
    // --transfer-to names a user the plan keeps.
    let to_deleted = PlanOptions {
        transfer_to: Some("nobody".into()),
        ..options(Unmanaged::Delete, &[])
    };
    let error = plan(&s, text, &p, &to_deleted).expect_err("unknown user");
    assert!(error.to_string().contains("no such user"), "{error}");
}

#[test]
fn apply_refuses_a_plan_whose_changes_escape_its_records() {
    let p = cluster();
    let text = "version: 1\nusers:\n  alice: {display_name: Alicia}\n";
    let s = spec::parse(text, "p.yaml").expect("parses");
    let made = plan(&s, text, &p, &PlanOptions::default()).expect("plans");
    let json = serde_json::to_string(&made).unwrap();
    crate::apply::parse_plan(&json, "plan.json").expect("a plan as made applies");
    let edited = json.replace("\"name\":\"alice\",\"id\"", "\"name\":\"bob\",\"id\"");
    assert_ne!(edited, json);
    let error = crate::apply::parse_plan(&edited, "plan.json").expect_err("edited");
    assert!(error.to_string().contains("fingerprint"), "{error}");
    // Even with the fingerprint made again, a change on a principal the
    // records do not hold would escape the check for what moved.
    let mut resigned: Plan = serde_json::from_str(&edited).unwrap();
    resigned.fingerprint = resigned.compute_fingerprint();
    let resigned = serde_json::to_string(&resigned).unwrap();
    let error = crate::apply::parse_plan(&resigned, "plan.json").expect_err("unrecorded");
    assert!(error.to_string().contains("user \"bob\""), "{error}");
    // And the cluster it is applied to must be the one planned, as it was.
    crate::apply::check_current(&made, &p).expect("nothing moved");
    // A plan made offline without --caller that deletes the user apply
    // signs in as is refused, as is one reaching an IdP user it does not name.
    let text = "version: 1\ngroups:\n  Sales: {}\nusers:\n  carol: {}\n";
    let s = spec::parse(text, "p.yaml").expect("parses");
    let options = PlanOptions {
        unmanaged: Unmanaged::Delete,
        ..PlanOptions::default()
    };
    let pruning = plan(&s, text, &p, &options).expect("plans");
    assert!(
        pruning
            .changes
            .iter()
            .any(|c| label(c) == "- user \"alice\""),
        "{}",
        pruning.to_text()
    );
    crate::apply::check_protected(&pruning, &p, Some("bob")).expect("another caller");
    let error = crate::apply::check_protected(&pruning, &p, None).expect_err("no caller known");
    assert!(error.to_string().contains("does not"), "{error}");
    let error = crate::apply::check_protected(&pruning, &p, Some("ALICE")).expect_err("caller");
    assert!(
        error.to_string().contains("the user apply signs in as"),
        "{error}"
    );
    let mut idp = p.clone();
    idp.users[0].account_type = Some(crate::model::AccountType::SamlUser);
    let error = crate::apply::check_protected(&pruning, &idp, Some("bob")).expect_err("IdP user");
    assert!(error.to_string().contains("identity provider"), "{error}");
}

/// Plans `spec_text` with `options`, returning the plan or the error's text.
fn try_plan(
    spec_text: &str,
    principals: &Principals,
    options: &PlanOptions,
) -> Result<Plan, String> {
    let s = spec::parse(spec_text, "principals.yaml").unwrap_or_else(|e| panic!("{e}"));
    plan(&s, spec_text, principals, options).map_err(|e| e.to_string())
}

#[test]
fn the_caller_s_groups_are_kept_from_the_ladder() {
    let p = cluster();
    let pruning = PlanOptions {
        unmanaged: Unmanaged::Delete,
        max_deletes: 100,
        caller: Some("Alice".into()),
        ..PlanOptions::default()
    };
    let text = "version: 1\nusers:\n  alice: {}\n";
    let made = try_plan(text, &p, &pruning).expect("plans");
    let out = made.to_text();
    assert!(
        out.contains(&format!(
            "group \"Sales\" (org Primary; not in the spec): the group is {CALLER_GROUP}"
        )),
        "{out}"
    );
    assert!(out.contains("- group \"Ops\""), "{out}");
    // A plan made without knowing the caller is refused by apply when the
    // user it signs in as is in a group it deletes.
    let blind = PlanOptions {
        caller: None,
        ..pruning
    };
    let made = try_plan(text, &p, &blind).expect("plans");
    assert!(
        made.to_text().contains("- group \"Sales\""),
        "{}",
        made.to_text()
    );
    let error =
        crate::apply::check_protected(&made, &p, Some("alice")).expect_err("caller's group");
    assert!(error.to_string().contains(CALLER_GROUP), "{error}");
}

#[test]
fn exact_removals_are_capped_and_leave_every_user_an_org() {
    let p = cluster();
    // Sales exact: alice, bob and Sales EMEA leave (carol, a SAML user, is kept).
    let text = "version: 1\ngroups:\n  Sales: {members: exact}\n";
    let capped = PlanOptions {
        max_deletes: 1,
        ..PlanOptions::default()
    };
    let error = try_plan(text, &p, &capped).expect_err("over the cap");
    assert!(
        error.contains("take 3 members out of `members: exact`")
            && error.contains("--max-deletes 1"),
        "{error}"
    );
    assert!(try_plan(text, &p, &PlanOptions::default()).is_ok());
    // alice is only in Primary: an exact Primary would leave her in no org.
    let text =
        "version: 1\norgs:\n  Primary: {members: exact}\n  T: {}\nusers:\n  bob: {orgs: [T]}\n";
    let error = try_plan(text, &p, &PlanOptions::default()).expect_err("no org left");
    assert!(
        error.contains("user \"alice\" would leave every org"),
        "{error}"
    );
    // Pruned, she is deleted instead; bob leaves Primary and keeps T.
    let pruning = PlanOptions {
        unmanaged: Unmanaged::Delete,
        max_deletes: 100,
        ..PlanOptions::default()
    };
    let made = try_plan(text, &p, &pruning).expect("plans");
    let out = made.to_text();
    assert!(out.contains("- user \"alice\""), "{out}");
    assert!(!out.contains("~ user \"alice\""), "{out}");
    assert!(
        out.contains("~ user \"bob\"\n    orgs: - \"Primary\""),
        "{out}"
    );
}

#[test]
fn a_nesting_cycle_closed_with_the_cluster_s_groups_is_refused() {
    let p = cluster();
    // The cluster has Sales EMEA in Sales; the spec puts Sales in Sales EMEA.
    let text = "version: 1\ngroups:\n  Sales: {parents: [Sales EMEA]}\n  Sales EMEA: {}\n";
    let error = try_plan(text, &p, &PlanOptions::default()).expect_err("cycle");
    assert!(
        error.contains("cycle (org Primary)")
            && error.contains("\"Sales EMEA\"")
            && error.contains("\"Sales\""),
        "{error}"
    );
    // Taken out of Sales by an exact Sales first, there is no cycle.
    let text = "version: 1\ngroups:\n  Sales: {parents: [Sales EMEA], members: exact}\n  Sales EMEA: {}\nusers:\n  alice: {groups: [Sales]}\n  bob: {groups: [Sales]}\n";
    let made = try_plan(text, &p, &PlanOptions::default()).expect("no cycle");
    assert!(
        made.to_text().contains("- group \"Sales EMEA\""),
        "{}",
        made.to_text()
    );
}
