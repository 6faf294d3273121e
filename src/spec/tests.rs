use super::template::{self, VarsFile};
use super::validate::{self, Severity, check_password};
use super::*;

fn spec(text: &str) -> Spec {
    parse(text, "principals.yaml").unwrap_or_else(|e| panic!("{e}"))
}

fn error_of(text: &str) -> String {
    parse(text, "principals.yaml")
        .expect_err("refused")
        .to_string()
}

fn findings(text: &str) -> Vec<(Severity, usize, String)> {
    (validate::validate(&spec(text)).findings.into_iter())
        .map(|f| (f.severity, f.at.line, f.message))
        .collect()
}

#[test]
fn a_full_spec_is_read_with_positions_and_defaults() {
    let s = spec(
        "version: 1\n\
         defaults:\n  users: {account_type: SAML_USER, groups: [Everyone]}\n  groups: {members: exact}\n\
         orgs:\n  Primary: {}\n  Tenant 1: {members: exact}\n\
         groups:\n  Everyone:\n  Sales:\n    org: Tenant 1\n    privileges: [DATADOWNLOADING]\n    parents: [Everyone]\n\
         users:\n  alice@example.com:\n    display_name: Alice\n    groups: [Sales]\n",
    );
    assert_eq!(s.orgs.len(), 2);
    assert_eq!(s.orgs[1].members, Some(Authority::Exact));
    assert_eq!(s.groups[0].key.text, "Everyone");
    assert_eq!(s.groups[1].name, "Sales");
    assert_eq!(s.group_org(&s.groups[1]), "Tenant 1");
    assert_eq!(s.group_org(&s.groups[0]), "Primary");
    assert_eq!(s.group_authority(&s.groups[0]), Authority::Exact);
    assert_eq!(
        s.users[0].name.at,
        Pos {
            line: 15,
            column: 3
        }
    );
    assert_eq!(s.users[0].groups[0].at.line, 17);
    assert_eq!(s.defaults.users.account_type, Some(AccountType::SamlUser));
}

#[test]
fn unknown_keys_are_errors_naming_line_and_column() {
    let message = error_of("version: 1\nusers:\n  alice:\n    displayname: Alice\n");
    assert!(
        message.starts_with("principals.yaml: line 4 column 5"),
        "{message}"
    );
    assert!(message.contains("unknown field `displayname`"), "{message}");
    let message = error_of("version: 1\ngroup: {}\n");
    assert!(message.contains("line 2"), "{message}");
}

#[test]
fn a_password_in_the_spec_is_refused_with_what_to_do() {
    let message = error_of("version: 1\nusers:\n  alice:\n    password: Secret-123\n");
    assert!(message.contains("line 4"), "{message}");
    assert!(
        message.contains("passwords never go in the spec"),
        "{message}"
    );
    assert!(message.contains(validate::PASSWORD_ENV), "{message}");
    assert!(!message.contains("Secret-123"), "{message}");
}

#[test]
fn versions_duplicates_and_shapes_are_checked() {
    assert!(error_of("version: 2\n").contains("spec version 2"));
    assert!(error_of("users: {}\n").contains("version"));
    let message = error_of("version: 1\nusers:\n  alice: {}\n  alice: {}\n");
    assert!(
        message.contains("line 4") && message.contains("duplicate"),
        "{message}"
    );
    assert!(error_of("version: 1\nusers: [alice]\n").contains("line 2"));
    assert!(error_of("version: 1\ngroups:\n  g: {members: some}\n").contains("line 3"));
}

#[test]
fn values_yaml_reads_as_other_types_stay_text() {
    let s = spec("version: 1\nusers:\n  no:\n    display_name: yes\n    email: 2024-01-01\n");
    assert_eq!(s.users[0].name.text, "no");
    assert_eq!(s.users[0].display_name.as_deref(), Some("yes"));
    assert_eq!(s.users[0].email.as_deref(), Some("2024-01-01"));
}

#[test]
fn usernames_are_unique_case_insensitively() {
    let found = findings("version: 1\nusers:\n  alice@x.com: {}\n  Alice@X.com: {}\n");
    assert!(
        found.iter().any(|(s, line, m)| *s == Severity::Error
            && *line == 4
            && m.contains("declared twice")),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|(s, _, m)| *s == Severity::Warning && m.contains("lower case"))
    );
}

#[test]
fn groups_members_name_must_be_declared_and_hints_are_given() {
    let found =
        findings("version: 1\ngroups:\n  Sales: {}\nusers:\n  bob:\n    groups: [sales, Ops]\n");
    let errors: Vec<_> = found.iter().filter(|f| f.0 == Severity::Error).collect();
    assert_eq!(errors.len(), 2, "{found:?}");
    assert!(errors[0].2.contains("did you mean `Sales`"), "{found:?}");
    assert!(errors[1].2.contains("`Ops: {}`"), "{found:?}");
    assert_eq!(errors[0].1, 6);
}

#[test]
fn nesting_cycles_are_found_once() {
    let found = findings(
        "version: 1\ngroups:\n  a: {parents: [b]}\n  b: {parents: [c]}\n  c: {parents: [a]}\n  d: {parents: [d]}\n",
    );
    let cycles: Vec<_> = found.iter().filter(|f| f.2.contains("cycle")).collect();
    assert_eq!(cycles.len(), 1, "{found:?}");
    assert!(cycles[0].2.contains("a → b → c → a"), "{found:?}");
    assert!(found.iter().any(|f| f.2.contains("names itself")));
}

#[test]
fn orgs_privileges_and_values_are_checked() {
    let found = findings(
        "version: 1\norgs:\n  Primary: {}\ngroups:\n  a:\n    org: Tenant\n    privileges: [DATADOWNLOADING, MAKE_COFFEE, DATADOWNLOADING]\n    visibility: DEFAULT\n  b:\n    parents: [a]\nusers:\n  u:\n    email: nope\n    orgs: [Elsewhere]\n",
    );
    let has = |severity, text: &str| found.iter().any(|f| f.0 == severity && f.2.contains(text));
    assert!(has(Severity::Error, "org `Tenant`"), "{found:?}");
    assert!(has(Severity::Error, "org `Elsewhere`"), "{found:?}");
    assert!(has(Severity::Warning, "MAKE_COFFEE"), "{found:?}");
    assert!(has(Severity::Warning, "twice"), "{found:?}");
    assert!(
        has(Severity::Error, "v1's DEFAULT is SHARABLE"),
        "{found:?}"
    );
    assert!(
        has(Severity::Error, "groups nest only within one org"),
        "{found:?}"
    );
    assert!(has(Severity::Warning, "no @"), "{found:?}");
}

#[test]
fn group_names_are_unique_per_org_and_keys_may_rename() {
    let found = findings(
        "version: 1\norgs: {Primary: {}, T: {}}\ngroups:\n  Sales: {}\n  Sales (T): {name: Sales, org: T}\n  sales2: {name: SALES}\n",
    );
    let errors: Vec<_> = found.iter().filter(|f| f.0 == Severity::Error).collect();
    assert_eq!(errors.len(), 1, "{found:?}");
    assert!(errors[0].2.contains("unique in an org"));
    assert_eq!(errors[0].1, 6);
}

#[test]
fn password_rules_are_thoughtspots() {
    assert!(check_password("Abcdef1!", &[]).is_ok());
    let short = check_password("Ab1!", &[]).expect_err("short");
    assert!(short.contains("8 characters"), "{short}");
    let plain = check_password("abcdefgh", &[]).expect_err("plain");
    for need in ["upper-case", "digit", "special"] {
        assert!(plain.contains(need), "{plain}");
    }
    let blocked = check_password("Alice-2026!", &["alice", "Alice Doe"]).expect_err("blocked");
    assert!(blocked.contains("alice"), "{blocked}");
}

#[test]
fn templates_render_csv_rows_with_every_value_quoted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("hr-export.csv");
    std::fs::write(
        &csv,
        "username,name,team\nalice@x.com,yes,Sales\nbob@x.com,\"a: b #c\",Ops\nno,2024-01-01,Sales\n",
    )
    .expect("write");
    let text = "version: 1\ngroups:\n{% for team in hr_export | map(attribute='team') | unique %}\n  {{ team }}: {members: exact}\n{% endfor %}\nusers:\n{% for row in vars %}\n  {{ row.username }}:\n    display_name: {{ row.name }}\n    groups: [{{ row.team }}]\n{% endfor %}\n";
    let vars = [VarsFile::parse(csv.to_str().expect("utf-8")).expect("vars")];
    assert_eq!(vars[0].name, "hr_export");
    let rendered = template::render(text, "p.yaml.j2", &vars).expect("renders");
    let s = parse(&rendered, "p.yaml.j2 (rendered)").expect("parses");
    let names: Vec<(&str, &str)> = (s.users.iter())
        .map(|u| {
            (
                u.name.text.as_str(),
                u.display_name.as_deref().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            ("alice@x.com", "yes"),
            ("bob@x.com", "a: b #c"),
            ("no", "2024-01-01")
        ]
    );
    assert_eq!(s.groups.len(), 2);
    assert!(validate::validate(&s).is_ok());
}

#[test]
fn template_errors_name_the_line_and_the_variable() {
    let message = template::render("version: 1\n{{ nope.x }}\n", "p.yaml.j2", &[])
        .expect_err("undefined")
        .to_string();
    assert!(
        message.contains("p.yaml.j2") && message.contains("line 2"),
        "{message}"
    );
    let message = template::render("{{ [1, 2] }}", "p.yaml.j2", &[])
        .expect_err("seq")
        .to_string();
    assert!(message.contains("tojson"), "{message}");
    let raw = template::render("groups: {{ ['a', 'yes'] | tojson }}\n", "p", &[]).expect("tojson");
    assert_eq!(raw, "groups: [\"a\", \"yes\"]\n");
    assert_eq!(VarsFile::parse("hr=data/x.json").expect("named").name, "hr");
}

#[test]
fn vars_files_are_read_by_kind_and_bad_ones_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("teams.json");
    std::fs::write(&json, r#"{"teams": ["Sales", "Ops"]}"#).expect("write");
    let yaml = dir.path().join("more.yaml");
    std::fs::write(
        &yaml,
        "region: EMEA\nids: [007, no, on, 1_000, 12]\nsecret: \"x\"\n",
    )
    .expect("write");
    let vars = [
        VarsFile::parse(json.to_str().expect("utf-8")).expect("vars"),
        VarsFile::parse(yaml.to_str().expect("utf-8")).expect("vars"),
    ];
    let out =
        template::render("{{ teams.teams[1] }} {{ more.region }}", "t", &vars).expect("renders");
    assert_eq!(out, "\"Ops\" \"EMEA\"");
    // YAML 1.2 scalars: ids with leading zeros, `no`, `on` and `1_000` stay
    // as written (plain decimals are numbers).
    let out = template::render(
        "{% for id in more.ids %}{{ id|string }},{% endfor %}",
        "t",
        &vars,
    )
    .expect("renders");
    assert_eq!(out, "\"007\",\"no\",\"on\",\"1_000\",\"12\",");
    // A broken vars file is named, on one line, without its lines.
    std::fs::write(&yaml, "region: [EMEA\nsecret: hunter2\n").expect("write");
    let message = template::load_vars(&yaml).expect_err("bad").to_string();
    assert!(
        message.contains("more.yaml") && message.contains("line") && !message.contains("hunter2"),
        "{message}"
    );
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "a,a\n1,2\n").expect("write");
    let message = template::load_vars(&bad)
        .expect_err("dup header")
        .to_string();
    assert!(
        message.contains("bad.csv") && message.contains("twice"),
        "{message}"
    );
    let message = template::load_vars(&dir.path().join("x.txt"))
        .expect_err("kind")
        .to_string();
    assert!(message.contains("x.txt"), "{message}");
}
