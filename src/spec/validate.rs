//! Offline checks of a [`Spec`] with ThoughtSpot's rules: names unique per
//! kind (usernames case-insensitively), every group named declared, no
//! nesting cycles, groups nested only within their org, privileges from the
//! documented list, values the API takes, and the password rules for the
//! initial password of new local users.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use super::{Located, Pos, Spec};
use crate::model::{AccountType, GroupType, PRIMARY_ORG_NAME, Visibility};

/// The environment variable the initial password of new LOCAL_USERs is
/// taken from (else it is asked for on a terminal).
pub const PASSWORD_ENV: &str = "TS_PRINCIPALS_NEW_USER_PASSWORD";

/// Group privileges ThoughtSpot documents (Group API), plus those its v2
/// API reports (`AUTHORING`, `LIVEBOARD_VERIFIER`). Others are passed on
/// with a warning: newer clusters add privileges.
pub const KNOWN_PRIVILEGES: &[&str] = &[
    "A3ANALYSIS",
    "ADMINISTRATION",
    "AUTHORING",
    "BYPASSRLS",
    "DATADOWNLOADING",
    "DATAMANAGEMENT",
    "DEVELOPER",
    "EXPERIMENTALFEATUREPRIVILEGE",
    "JOBSCHEDULING",
    "LIVEBOARD_VERIFIER",
    "RANALYSIS",
    "SHAREWITHALL",
    "SYNCMANAGEMENT",
    "USERDATAUPLOADING",
];

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The spec cannot be planned.
    Error,
    /// Worth a look; planning goes on.
    Warning,
}

/// One thing wrong with a spec, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// Error or warning.
    pub severity: Severity,
    /// Where in the spec.
    pub at: Pos,
    /// What, and what to do.
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        if self.at.line > 0 {
            write!(f, "{what}: {}: {}", self.at, self.message)
        } else {
            write!(f, "{what}: {}", self.message)
        }
    }
}

/// Everything [`validate`] found, errors first, each kind in file order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// The findings.
    pub findings: Vec<Finding>,
}

impl Report {
    /// The errors.
    pub fn errors(&self) -> impl Iterator<Item = &Finding> {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
    }

    /// The warnings.
    pub fn warnings(&self) -> impl Iterator<Item = &Finding> {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Warning)
    }

    /// True when the spec can be planned.
    pub fn is_ok(&self) -> bool {
        self.errors().next().is_none()
    }

    /// Adds an error found outside [`validate`].
    pub fn push_error(&mut self, at: Pos, message: String) {
        self.error(at, message);
        self.findings.sort_by_key(|f| (f.severity, f.at));
    }

    fn error(&mut self, at: Pos, message: String) {
        self.findings.push(Finding {
            severity: Severity::Error,
            at,
            message,
        });
    }

    fn warn(&mut self, at: Pos, message: String) {
        self.findings.push(Finding {
            severity: Severity::Warning,
            at,
            message,
        });
    }
}

/// A spec with errors, for `?`.
#[derive(Debug, thiserror::Error)]
#[error("{origin} is not a valid spec:\n{}", list(.report))]
pub struct Invalid {
    /// The spec.
    pub origin: String,
    /// What is wrong.
    pub report: Report,
}

fn list(report: &Report) -> String {
    let lines: Vec<String> = report.errors().map(|f| format!("  {f}")).collect();
    lines.join("\n")
}

/// Checks `spec` (the initial password is checked by [`check_password`]
/// where the new users are known).
pub fn validate(spec: &Spec) -> Report {
    let mut report = Report::default();
    check_orgs(spec, &mut report);
    check_users(spec, &mut report);
    check_groups(spec, &mut report);
    report.findings.sort_by_key(|f| (f.severity, f.at));
    report
}

/// The words the initial password of `name` (display name `display_name`)
/// may not contain: the username, its part before `@`, and each word of
/// the display name, and the display name whole.
pub fn blocked_words<'a>(name: &'a str, display_name: &'a str) -> Vec<&'a str> {
    let mut words = vec![name, display_name];
    if let Some((local, _)) = name.split_once('@') {
        words.push(local);
    }
    words.extend(display_name.split_whitespace());
    words
}

/// Checks the initial password of new local users with ThoughtSpot's rules:
/// at least 8 characters, an upper-case and a lower-case letter, a digit and
/// a special character, and none of the `blocked` words (the username and
/// the parts of the display name), compared case-insensitively.
pub fn check_password(password: &str, blocked: &[&str]) -> Result<(), String> {
    let mut missing = Vec::new();
    if password.chars().count() < 8 {
        missing.push("8 characters or more");
    }
    if !password.chars().any(char::is_uppercase) {
        missing.push("an upper-case letter");
    }
    if !password.chars().any(char::is_lowercase) {
        missing.push("a lower-case letter");
    }
    if !password.chars().any(|c| c.is_ascii_digit()) {
        missing.push("a digit");
    }
    if !password
        .chars()
        .any(|c| !c.is_alphanumeric() && !c.is_whitespace())
    {
        missing.push("a special character");
    }
    if !missing.is_empty() {
        return Err(format!(
            "does not meet ThoughtSpot's password rules: it needs {}",
            missing.join(", ")
        ));
    }
    let lower = password.to_lowercase();
    for word in blocked {
        let word = word.trim().to_lowercase();
        if word.chars().count() >= 3 && lower.contains(&word) {
            return Err(format!(
                "contains `{word}` (a username or part of a display name), which ThoughtSpot refuses"
            ));
        }
    }
    Ok(())
}

/// The orgs the spec may name: those under `orgs:`, and Primary.
fn known_orgs(spec: &Spec) -> HashMap<&str, Pos> {
    let mut known: HashMap<&str, Pos> = spec
        .orgs
        .iter()
        .map(|o| (o.name.text.as_str(), o.name.at))
        .collect();
    known.entry(PRIMARY_ORG_NAME).or_default();
    known
}

fn check_org_ref(spec: &Spec, org: &Located, whose: &str, report: &mut Report) {
    if spec.orgs.is_empty() && org.text == PRIMARY_ORG_NAME {
        return;
    }
    if !known_orgs(spec).contains_key(org.text.as_str()) {
        let hint = if spec.orgs.is_empty() {
            "declare it under orgs: (e.g. `orgs: {NAME: {}}`)".replace("NAME", &org.text)
        } else {
            "declare it under orgs:, or correct the name".to_owned()
        };
        report.error(
            org.at,
            format!(
                "{whose} names the org `{}`, which is not declared; {hint}",
                org.text
            ),
        );
    }
}

fn check_orgs(spec: &Spec, report: &mut Report) {
    let mut seen: HashMap<String, &Located> = HashMap::new();
    for org in &spec.orgs {
        if org.name.text.trim().is_empty() {
            report.error(org.name.at, "an org has an empty name".to_owned());
        }
        if let Some(first) = seen.insert(org.name.text.to_lowercase(), &org.name) {
            report.error(
                org.name.at,
                format!(
                    "the org `{}` is declared twice (also `{}` at {}); org names are compared case-insensitively",
                    org.name.text, first.text, first.at
                ),
            );
        }
    }
    if let Some(org) = &spec.defaults.groups.org {
        check_org_ref(spec, org, "defaults.groups.org", report);
    }
    for org in spec.defaults.users.orgs.iter().flatten() {
        check_org_ref(spec, org, "defaults.users.orgs", report);
    }
}

fn check_visibility(visibility: Option<&Visibility>, at: Pos, whose: &str, report: &mut Report) {
    if let Some(Visibility::Other(text)) = visibility {
        report.error(
            at,
            format!(
                "{whose} has visibility `{text}`; ThoughtSpot takes SHARABLE or NON_SHARABLE{}",
                if text.eq_ignore_ascii_case("DEFAULT") {
                    " (v1's DEFAULT is SHARABLE)"
                } else {
                    ""
                }
            ),
        );
    }
}

fn check_users(spec: &Spec, report: &mut Report) {
    let groups = group_keys(spec);
    let mut seen: HashMap<String, &Located> = HashMap::new();
    check_visibility(
        spec.defaults.users.visibility.as_ref(),
        Pos::default(),
        "defaults.users",
        report,
    );
    for group in &spec.defaults.users.groups {
        check_group_ref(&groups, group, "defaults.users.groups", report);
    }
    for user in &spec.users {
        let name = &user.name;
        let whose = format!("user `{}`", name.text);
        if name.text.trim().is_empty() {
            report.error(name.at, "a user has an empty username".to_owned());
            continue;
        }
        if name.text.trim() != name.text {
            report.error(
                name.at,
                format!("{whose}: the username has leading or trailing spaces"),
            );
        }
        let folded = name.text.to_lowercase();
        if let Some(first) = seen.insert(folded.clone(), name) {
            report.error(
                name.at,
                format!(
                    "{whose} is declared twice: `{}` at {} is the same username \
                     (ThoughtSpot compares usernames case-insensitively)",
                    first.text, first.at
                ),
            );
        }
        if folded != name.text {
            report.warn(
                name.at,
                format!(
                    "{whose}: ThoughtSpot keeps usernames in lower case; it is matched as `{folded}`"
                ),
            );
        }
        check_visibility(user.visibility.as_ref(), name.at, &whose, report);
        let account_type = user
            .account_type
            .as_ref()
            .or(spec.defaults.users.account_type.as_ref());
        if let Some(AccountType::Other(text)) = account_type {
            report.warn(
                name.at,
                format!(
                    "{whose} has account_type `{text}`, which is not one ThoughtSpot documents \
                     (LOCAL_USER, LDAP_USER, SAML_USER, OIDC_USER, REMOTE_USER); it is sent as written"
                ),
            );
        }
        if let Some(email) = &user.email
            && !email.is_empty()
            && !email.contains('@')
        {
            report.warn(
                name.at,
                format!("{whose} has the e-mail `{email}`, which has no @"),
            );
        }
        let mut listed: HashMap<&str, Pos> = HashMap::new();
        for group in &user.groups {
            if let Some(first) = listed.insert(group.text.as_str(), group.at) {
                report.warn(
                    group.at,
                    format!(
                        "{whose} lists the group `{}` twice (first at {first})",
                        group.text
                    ),
                );
            }
            check_group_ref(&groups, group, &whose, report);
        }
        for org in user.orgs.iter().flatten() {
            check_org_ref(spec, org, &whose, report);
        }
    }
}

fn group_keys(spec: &Spec) -> HashMap<&str, usize> {
    (spec.groups.iter().enumerate())
        .map(|(i, g)| (g.key.text.as_str(), i))
        .collect()
}

fn check_group_ref(
    groups: &HashMap<&str, usize>,
    group: &Located,
    whose: &str,
    report: &mut Report,
) {
    if groups.contains_key(group.text.as_str()) {
        return;
    }
    let near = groups
        .keys()
        .filter(|k| k.eq_ignore_ascii_case(&group.text))
        .min()
        .map(|k| format!(" (did you mean `{k}`?)"))
        .unwrap_or_default();
    let what_to_do = if near.is_empty() {
        format!(
            "; declare it (an existing group the spec does not manage needs only `{}: {{}}`)",
            group.text
        )
    } else {
        String::new()
    };
    report.error(
        group.at,
        format!(
            "{whose} names the group `{}`, which is not declared under groups:{near}{what_to_do}",
            group.text
        ),
    );
}

fn check_groups(spec: &Spec, report: &mut Report) {
    let keys = group_keys(spec);
    let mut names: HashMap<(String, String), &Located> = HashMap::new();
    check_visibility(
        spec.defaults.groups.visibility.as_ref(),
        Pos::default(),
        "defaults.groups",
        report,
    );
    for group in &spec.groups {
        let whose = format!("group `{}`", group.key.text);
        let org = spec.group_org(group);
        if group.name.trim().is_empty() {
            report.error(group.key.at, format!("{whose} has an empty name"));
        }
        if let Some(org) = &group.org {
            check_org_ref(spec, org, &whose, report);
        }
        let id = (org.to_lowercase(), group.name.to_lowercase());
        if let Some(first) = names.insert(id, &group.key) {
            report.error(
                group.key.at,
                format!(
                    "{whose} is the group `{}` of org {org}, as `{}` at {} is; \
                     group names are unique in an org (compared case-insensitively)",
                    group.name, first.text, first.at
                ),
            );
        }
        check_visibility(group.visibility.as_ref(), group.key.at, &whose, report);
        let group_type = group
            .group_type
            .as_ref()
            .or(spec.defaults.groups.group_type.as_ref());
        if let Some(GroupType::Other(text)) = group_type {
            report.warn(
                group.key.at,
                format!(
                    "{whose} has type `{text}`, which is not one ThoughtSpot documents \
                     (LOCAL_GROUP, LDAP_GROUP, TEAM_GROUP, TENANT_GROUP); it is sent as written"
                ),
            );
        }
        let mut privileges: HashMap<&str, Pos> = HashMap::new();
        for privilege in group.privileges.iter().flatten() {
            if let Some(first) = privileges.insert(privilege.text.as_str(), privilege.at) {
                report.warn(
                    privilege.at,
                    format!(
                        "{whose} lists the privilege {} twice (first at {first})",
                        privilege.text
                    ),
                );
            } else if !KNOWN_PRIVILEGES.contains(&privilege.text.as_str()) {
                report.warn(
                    privilege.at,
                    format!(
                        "{whose}: the privilege `{}` is not in ThoughtSpot's documented list ({}); \
                         it is sent as written and the cluster decides",
                        privilege.text,
                        KNOWN_PRIVILEGES.join(", ")
                    ),
                );
            }
        }
        for parent in &group.parents {
            if parent.text == group.key.text {
                report.error(parent.at, format!("{whose} names itself as a parent"));
                continue;
            }
            check_group_ref(&keys, parent, &whose, report);
            if let Some(&p) = keys.get(parent.text.as_str()) {
                let parent_org = spec.group_org(&spec.groups[p]);
                if parent_org != org {
                    report.error(
                        parent.at,
                        format!(
                            "{whose} (org {org}) names `{}` (org {parent_org}) as a parent; \
                             groups nest only within one org",
                            parent.text
                        ),
                    );
                }
            }
        }
    }
    check_cycles(spec, &keys, report);
}

/// Reports each nesting cycle once, at the group where it is first found.
fn check_cycles(spec: &Spec, keys: &HashMap<&str, usize>, report: &mut Report) {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    // A group naming itself is reported on its own.
    let parents: Vec<Vec<usize>> = (spec.groups.iter().enumerate())
        .map(|(g, group)| {
            (group.parents.iter())
                .filter_map(|p| keys.get(p.text.as_str()).copied())
                .filter(|&p| p != g)
                .collect()
        })
        .collect();
    let mut marks = vec![Mark::New; spec.groups.len()];
    let mut reported = BTreeMap::new();
    for start in 0..spec.groups.len() {
        if marks[start] != Mark::New {
            continue;
        }
        // Iterative depth-first search; `path` is the chain being explored.
        let mut path: Vec<(usize, usize)> = vec![(start, 0)];
        marks[start] = Mark::Open;
        while let Some(&mut (node, ref mut next)) = path.last_mut() {
            if let Some(&parent) = parents[node].get(*next) {
                *next += 1;
                match marks[parent] {
                    Mark::New => {
                        marks[parent] = Mark::Open;
                        path.push((parent, 0));
                    }
                    Mark::Open => {
                        let from = path.iter().position(|&(n, _)| n == parent).unwrap_or(0);
                        let cycle: Vec<usize> = path[from..].iter().map(|&(n, _)| n).collect();
                        let mut sorted = cycle.clone();
                        sorted.sort_unstable();
                        reported.entry(sorted).or_insert(cycle);
                    }
                    Mark::Done => {}
                }
            } else {
                marks[node] = Mark::Done;
                path.pop();
            }
        }
    }
    for cycle in reported.into_values() {
        let first = &spec.groups[cycle[0]];
        let mut names: Vec<&str> = cycle
            .iter()
            .map(|&i| spec.groups[i].key.text.as_str())
            .collect();
        names.push(first.key.text.as_str());
        report.error(
            first.key.at,
            format!(
                "groups nest in a cycle: {}; ThoughtSpot refuses a group inside itself",
                names.join(" → ")
            ),
        );
    }
}
