//! Principals as code: the spec file (`principals.yaml`) that declares the
//! orgs, groups and users an admin wants, as [`Spec`].
//!
//! ```yaml
//! version: 1
//! defaults:
//!   users: {account_type: LOCAL_USER, visibility: SHARABLE}
//!   groups: {members: additive}
//! orgs:
//!   Primary: {}
//! groups:
//!   Sales Analytics:
//!     display_name: Sales Analytics
//!     privileges: [DATADOWNLOADING]
//!     parents: [All Analytics]
//!     members: exact
//!   All Analytics: {}
//! users:
//!   alice@example.com:
//!     display_name: Alice Doe
//!     email: alice@example.com
//!     groups: [Sales Analytics]
//! ```
//!
//! Orgs, groups and users are mappings keyed by name. A group's key is its
//! name unless it says `name:` (two groups of one name in two orgs need two
//! keys); users' `groups` and groups' `parents` name group keys. A field left
//! out is not managed: the cluster keeps what it has. Unknown keys are errors
//! naming their line and column, and so is a password: passwords never go in
//! the spec. [`template`] renders a `principals.yaml.j2` with variables from
//! an HR or IdP export first; [`validate`] checks a spec against ThoughtSpot's
//! rules; [`export`] writes a cluster as a spec.

mod entries;
pub mod export;
pub mod template;
pub mod validate;

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_saphyr::Spanned;

use entries::Entries;
pub use entries::{Located, Pos};

use crate::model::{AccountType, GroupType, PRIMARY_ORG_NAME, Visibility};

/// The spec format this version reads and writes (`version:`).
pub const SPEC_VERSION: u32 = 1;

/// Who decides a group's (or an org's) members.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Authority {
    /// The spec adds the members it names and never removes one.
    #[default]
    Additive,
    /// The spec is the whole truth: members it does not name are removed.
    Exact,
}

impl Authority {
    /// `additive` or `exact`.
    pub fn as_str(self) -> &'static str {
        match self {
            Authority::Additive => "additive",
            Authority::Exact => "exact",
        }
    }
}

/// A declared org: the spec does not create orgs, it names those its
/// groups and users live in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrgSpec {
    /// The org's name (its key).
    pub name: Located,
    /// Who decides which users are in the org (default additive).
    pub members: Option<Authority>,
}

/// A declared group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupSpec {
    /// Its key in `groups:`, which users and groups refer to.
    pub key: Located,
    /// Its name on the cluster (the key unless `name:` says otherwise).
    pub name: String,
    /// The org it lives in (default: `defaults.groups.org`, else Primary).
    pub org: Option<Located>,
    /// Display name.
    pub display_name: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Sharing visibility.
    pub visibility: Option<Visibility>,
    /// Kind of group.
    pub group_type: Option<GroupType>,
    /// Privileges granted to members: when given, exactly these.
    pub privileges: Option<Vec<Located>>,
    /// Groups this group is a member of (keys).
    pub parents: Vec<Located>,
    /// Who decides its members (default: `defaults.groups.members`, else additive).
    pub members: Option<Authority>,
}

/// A declared user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserSpec {
    /// Username (its key), compared case-insensitively.
    pub name: Located,
    /// Display name.
    pub display_name: Option<String>,
    /// E-mail address.
    pub email: Option<String>,
    /// Sharing visibility.
    pub visibility: Option<Visibility>,
    /// How the account authenticates.
    pub account_type: Option<AccountType>,
    /// Groups the user is a direct member of (keys).
    pub groups: Vec<Located>,
    /// Orgs the user belongs to (names), besides those of its groups.
    pub orgs: Option<Vec<Located>>,
}

/// Values for what users and groups leave out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Defaults {
    /// For users.
    pub users: UserDefaults,
    /// For groups.
    pub groups: GroupDefaults,
}

/// `defaults.users`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserDefaults {
    /// Account type.
    pub account_type: Option<AccountType>,
    /// Visibility.
    pub visibility: Option<Visibility>,
    /// Orgs every user is in.
    pub orgs: Option<Vec<Located>>,
    /// Groups every user is in (keys).
    pub groups: Vec<Located>,
}

/// `defaults.groups`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupDefaults {
    /// The org of groups that name none.
    pub org: Option<Located>,
    /// Kind of group.
    pub group_type: Option<GroupType>,
    /// Visibility.
    pub visibility: Option<Visibility>,
    /// Membership authority.
    pub members: Option<Authority>,
}

/// A parsed spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spec {
    /// Where it came from, for messages (a path, or a template's path).
    pub origin: String,
    /// `version:`.
    pub version: u32,
    /// `defaults:`.
    pub defaults: Defaults,
    /// `orgs:`, in file order.
    pub orgs: Vec<OrgSpec>,
    /// `groups:`, in file order.
    pub groups: Vec<GroupSpec>,
    /// `users:`, in file order.
    pub users: Vec<UserSpec>,
}

impl Spec {
    /// The org of `group`, after defaults.
    pub fn group_org<'a>(&'a self, group: &'a GroupSpec) -> &'a str {
        group
            .org
            .as_ref()
            .or(self.defaults.groups.org.as_ref())
            .map_or(PRIMARY_ORG_NAME, |o| o.text.as_str())
    }

    /// The membership authority of `group`, after defaults.
    pub fn group_authority(&self, group: &GroupSpec) -> Authority {
        group
            .members
            .or(self.defaults.groups.members)
            .unwrap_or_default()
    }
}

/// A spec that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The file cannot be read.
    #[error("cannot read the spec {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The YAML is not a spec.
    #[error("{origin}: {message}")]
    Invalid {
        /// The file (or the template it was rendered from).
        origin: String,
        /// What is wrong, with line and column.
        message: String,
    },
    /// A template that does not render.
    #[error("{origin}: {message}")]
    Template {
        /// The template.
        origin: String,
        /// What is wrong.
        message: String,
    },
    /// A variables file that cannot be read.
    #[error("{}: {message}", path.display())]
    Vars {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl SpecError {
    fn invalid(origin: &str, message: impl Into<String>) -> Self {
        SpecError::Invalid {
            origin: origin.to_owned(),
            message: message.into(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    version: Spanned<u32>,
    #[serde(default)]
    defaults: Option<RawDefaults>,
    #[serde(default)]
    orgs: Entries<Option<RawOrg>>,
    #[serde(default)]
    groups: Entries<Option<RawGroup>>,
    #[serde(default)]
    users: Entries<Option<RawUser>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    #[serde(default)]
    users: Option<RawUserDefaults>,
    #[serde(default)]
    groups: Option<RawGroupDefaults>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawUserDefaults {
    #[serde(default)]
    account_type: Option<AccountType>,
    #[serde(default)]
    visibility: Option<Visibility>,
    #[serde(default)]
    orgs: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    groups: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    password: Option<Spanned<serde::de::IgnoredAny>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawGroupDefaults {
    #[serde(default)]
    org: Option<Spanned<String>>,
    #[serde(default, rename = "type")]
    group_type: Option<GroupType>,
    #[serde(default)]
    visibility: Option<Visibility>,
    #[serde(default)]
    members: Option<Authority>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawOrg {
    #[serde(default)]
    members: Option<Authority>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    org: Option<Spanned<String>>,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    visibility: Option<Visibility>,
    #[serde(default, rename = "type")]
    group_type: Option<GroupType>,
    #[serde(default)]
    privileges: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    parents: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    members: Option<Authority>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawUser {
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    visibility: Option<Visibility>,
    #[serde(default)]
    account_type: Option<AccountType>,
    #[serde(default)]
    groups: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    orgs: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    password: Option<Spanned<serde::de::IgnoredAny>>,
}

fn located(list: Option<Vec<Spanned<String>>>) -> Vec<Located> {
    list.unwrap_or_default()
        .into_iter()
        .map(Located::from)
        .collect()
}

fn no_password(
    origin: &str,
    password: Option<Spanned<serde::de::IgnoredAny>>,
    whose: &str,
) -> Result<(), SpecError> {
    match password {
        None => Ok(()),
        Some(at) => Err(SpecError::invalid(
            origin,
            format!(
                "{}: {whose} has a password; passwords never go in the spec (it is kept in git). \
                 Remove it: the initial password of new LOCAL_USERs comes from \
                 {} or a prompt",
                Pos::of(&at),
                validate::PASSWORD_ENV
            ),
        )),
    }
}

/// How specs are read: without quoting the file in messages (a line of it
/// may hold a secret written by mistake), and with room for a spec of a
/// large cluster (the parser's default node budget is 250 000, a spec of
/// 30 000 users has more); aliases stay capped, so a "billion laughs"
/// document is still refused.
fn options(len: usize) -> serde_saphyr::Options {
    let mut options = serde_saphyr::Options::default();
    options.with_snippet = false;
    if let Some(budget) = options.budget.as_mut() {
        budget.max_nodes = budget.max_nodes.max(len);
        budget.max_events = budget.max_events.max(len.saturating_mul(2));
    }
    options
}

/// A YAML error as one line, in words a spec's author knows.
fn yaml_message(error: &serde_saphyr::Error) -> String {
    let text = error.to_string();
    let text = text.lines().next().unwrap_or_default();
    let text = text.trim_start_matches("error: ");
    // "… at line 4, column 5" → "line 4 column 5: …", as every finding reads.
    let text = match text.rsplit_once(" at line ") {
        Some((message, at)) => match at.split_once(", column ") {
            Some((line, column)) => format!("line {line} column {column}: {message}"),
            None => text.to_owned(),
        },
        None => text.to_owned(),
    };
    // `password` is a field only so that it can be refused with a reason.
    text.replace(", password", "")
        .replace(
            ", set DuplicateKeyPolicy in Options if acceptable",
            " (each name once)",
        )
        .replace("; use Option<String>", "")
        .replace(
            "expected mapping start",
            "expected a mapping (`name: value` lines, or `{}` for none)",
        )
        .replace(
            "; use from_str_multiple or from_str_multiple_with_options",
            " (a `---` line starts another): keep one",
        )
        .replace("; use from_str_multiple or similar", "")
}

/// Reads a spec from YAML text. `origin` names it in messages.
pub fn parse(text: &str, origin: &str) -> Result<Spec, SpecError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let raw: RawSpec = serde_saphyr::from_str_with_options(text, options(text.len()))
        .map_err(|e| SpecError::invalid(origin, yaml_message(&e)))?;
    if raw.version.value != SPEC_VERSION {
        return Err(SpecError::invalid(
            origin,
            format!(
                "{}: spec version {} is not one this ts-principals reads (it reads version {SPEC_VERSION}); \
                 upgrade ts-principals or write `version: {SPEC_VERSION}`",
                Pos::of(&raw.version),
                raw.version.value
            ),
        ));
    }
    let raw_defaults = raw.defaults.unwrap_or_default();
    let user_defaults = raw_defaults.users.unwrap_or_default();
    no_password(origin, user_defaults.password, "defaults.users")?;
    let group_defaults = raw_defaults.groups.unwrap_or_default();
    let defaults = Defaults {
        users: UserDefaults {
            account_type: user_defaults.account_type,
            visibility: user_defaults.visibility,
            orgs: user_defaults.orgs.map(|o| located(Some(o))),
            groups: located(user_defaults.groups),
        },
        groups: GroupDefaults {
            org: group_defaults.org.map(Located::from),
            group_type: group_defaults.group_type,
            visibility: group_defaults.visibility,
            members: group_defaults.members,
        },
    };
    let orgs = (raw.orgs.0.into_iter())
        .map(|(name, org)| OrgSpec {
            name,
            members: org.unwrap_or_default().members,
        })
        .collect();
    let groups = (raw.groups.0.into_iter())
        .map(|(key, group)| {
            let group = group.unwrap_or_default();
            GroupSpec {
                name: group.name.unwrap_or_else(|| key.text.clone()),
                key,
                org: group.org.map(Located::from),
                display_name: group.display_name,
                description: group.description,
                visibility: group.visibility,
                group_type: group.group_type,
                privileges: group.privileges.map(|p| located(Some(p))),
                parents: located(group.parents),
                members: group.members,
            }
        })
        .collect();
    let mut users = Vec::new();
    for (name, user) in raw.users.0 {
        let user = user.unwrap_or_default();
        no_password(origin, user.password, &format!("user {:?}", name.text))?;
        users.push(UserSpec {
            name,
            display_name: user.display_name,
            email: user.email,
            visibility: user.visibility,
            account_type: user.account_type,
            groups: located(user.groups),
            orgs: user.orgs.map(|o| located(Some(o))),
        });
    }
    Ok(Spec {
        origin: origin.to_owned(),
        version: raw.version.value,
        defaults,
        orgs,
        groups,
        users,
    })
}

/// Reads the spec at `path`: YAML, or a minijinja template (a name ending
/// in `.j2`) rendered with the variables files `vars` first.
pub fn read(path: &Path, vars: &[template::VarsFile]) -> Result<Rendered, SpecError> {
    let (text, origin) = read_text(path, vars)?;
    let spec = parse(&text, &origin)?;
    Ok(Rendered { spec, text })
}

/// The YAML text of the spec at `path` (a template's rendering) and the
/// name it goes by in messages, not parsed yet.
pub fn read_text(path: &Path, vars: &[template::VarsFile]) -> Result<(String, String), SpecError> {
    let text = std::fs::read_to_string(path).map_err(|source| SpecError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let origin = path.display().to_string();
    let is_template = path.extension().is_some_and(|e| e == "j2");
    if !is_template && !vars.is_empty() {
        return Err(SpecError::Template {
            origin,
            message:
                "--vars is for templates (a spec whose name ends in .j2); this spec is plain YAML"
                    .to_owned(),
        });
    }
    if is_template {
        let rendered = template::render(&text, &origin, vars)?;
        Ok((rendered, format!("{origin} (rendered)")))
    } else {
        Ok((text, origin))
    }
}

/// A spec read from a file, with the YAML it was read from (a template's
/// rendering).
#[derive(Clone, Debug)]
pub struct Rendered {
    /// The spec.
    pub spec: Spec,
    /// Its YAML text.
    pub text: String,
}

#[cfg(test)]
mod tests;
