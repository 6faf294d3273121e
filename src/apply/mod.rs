//! `apply`: carries out a saved [`Plan`], exactly and no more.
//!
//! 1. [`read_plan`] checks the file: its format version and that its
//!    changes and records still match its fingerprint (a plan edited by
//!    hand is refused).
//! 2. [`check_current`] compares the principals the plan touches, as the
//!    cluster has them now, with the plan's records: any field that moved
//!    since the plan was made refuses the apply, listing what moved.
//! 3. [`prepare`] checks what ThoughtSpot would refuse half-way (a new
//!    local user without a password, a deleted user who owns objects and
//!    no `--transfer-to`), then asks the cluster's own dry run: REST v2
//!    `groups/import` and `users/import` with `dry_run: true` (never
//!    deleting what they do not list), or on clusters without v2 writes
//!    v1 `user/sync` with `applyChanges=false` and `removeDeleted=false`. When
//!    the cluster would add, update or delete anything the plan does not,
//!    nothing is applied.
//! 4. [`Prepared::apply`] applies the changes in the plan's order, one
//!    request each over v2 (v1: one `user/sync`), reporting each. The first
//!    failure stops the run; the error lists what was applied, what failed
//!    and what was not attempted, and a new plan shows only the rest.

mod dry_run;
mod v1;
mod v2;

use std::collections::BTreeSet;
use std::path::Path;

use secrecy::{ExposeSecret, SecretString};

use crate::client::auth::Auth;
use crate::client::http::Http;
use crate::client::v2::V2;
use crate::client::{ClientError, Connection};
use crate::model::Principals;
use crate::plan::{self, Change, Index, PLAN_VERSION, Plan};
use crate::spec::validate::{PASSWORD_ENV, blocked_words, check_password};
use crate::transfer::TransferError;

/// An apply that did not start, or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The plan file cannot be read.
    #[error("cannot read the plan {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The plan file is not a plan this version applies.
    #[error("{path} is not a plan ts-principals can apply: {problem}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        problem: String,
    },
    /// The plan is for another cluster.
    #[error(
        "the plan is for cluster {planned:?}, but the profile reaches cluster {now:?}; \
         apply it with the profile it was made with, or make a new plan"
    )]
    WrongCluster {
        /// The plan's cluster id.
        planned: String,
        /// The cluster reached.
        now: String,
    },
    /// Principals the plan touches changed since it was made.
    #[error(
        "the cluster changed since the plan was made; nothing was applied. What moved:\n{moved}\n\
         Make a new plan (`ts-principals plan … --out plan.json`), review it and apply that"
    )]
    Stale {
        /// One line per moved field.
        moved: String,
    },
    /// Something the plan needs that is missing (a password).
    #[error("{0}")]
    Needs(String),
    /// Users to delete own objects and the plan gives them to no one.
    #[error(
        "nothing was applied: the plan deletes users who own objects, and ThoughtSpot refuses \
         that: {owners}. Make the plan again with --prune --transfer-to USER (their objects go \
         to USER first), or transfer them with `ts-principals transfer`"
    )]
    Owners {
        /// `user (N objects)`, …
        owners: String,
    },
    /// The plan would reach a protected principal it does not name.
    #[error("{0}")]
    Protected(String),
    /// What this cluster's API cannot do.
    #[error("nothing was applied: {0}")]
    Unsupported(String),
    /// The cluster's dry run disagrees with the plan.
    #[error(
        "nothing was applied: the cluster's dry run ({api}) disagrees with the plan:\n{differences}\n\
         Make a new plan and review it; if the difference persists, the cluster applies rules \
         the plan does not know"
    )]
    Disagrees {
        /// Which dry run.
        api: &'static str,
        /// One line per difference.
        differences: String,
    },
    /// The cluster refused the dry run.
    #[error(
        "nothing was applied: the cluster refused the dry run: {message} ({path}, HTTP {status})"
    )]
    DryRunRefused {
        /// Path.
        path: String,
        /// HTTP status.
        status: u16,
        /// The cluster's message.
        message: String,
    },
    /// A change failed; earlier ones were applied.
    #[error("{0}")]
    Stopped(Box<Stopped>),
    /// Network or server failure before anything was applied.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// An answer that is not what the API returns.
    #[error("{path} answered something that is not {expected}: {problem}")]
    Answer {
        /// Path.
        path: String,
        /// What was expected.
        expected: &'static str,
        /// What is wrong.
        problem: String,
    },
}

impl ApplyError {
    /// The exit code: 1 when the cluster moved since the plan (make a new
    /// one), 3 for the cluster or the network (and a run stopped part-way),
    /// 2 for the input.
    pub fn exit_code(&self) -> u8 {
        match self {
            ApplyError::Stale { .. } => 1,
            ApplyError::Read { .. }
            | ApplyError::Invalid { .. }
            | ApplyError::WrongCluster { .. }
            | ApplyError::Needs(_)
            | ApplyError::Protected(_)
            | ApplyError::Owners { .. }
            | ApplyError::Unsupported(_) => 2,
            ApplyError::Client(ClientError::Setup(_) | ClientError::Unsupported(_)) => 2,
            _ => 3,
        }
    }
}

/// A run stopped by a failed change.
#[derive(Debug)]
pub struct Stopped {
    /// Changes applied, as labels.
    pub applied: Vec<String>,
    /// The change that failed.
    pub failed: String,
    /// Why (the cluster's answer, or the network's failure).
    pub cause: String,
    /// True when the cluster may have applied the failed change (no
    /// answer, or a server error).
    pub unknown: bool,
    /// Changes not attempted.
    pub not_attempted: Vec<String>,
}

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let outcome = if self.unknown {
            "may or may not have been applied"
        } else {
            "was refused"
        };
        writeln!(
            f,
            "apply stopped: {} {outcome}: {}",
            self.failed, self.cause
        )?;
        writeln!(f, "  applied ({}):", self.applied.len())?;
        list(f, &self.applied)?;
        writeln!(f, "  not applied ({}):", self.not_attempted.len() + 1)?;
        list(f, std::slice::from_ref(&self.failed))?;
        list(f, &self.not_attempted)?;
        write!(
            f,
            "Run `ts-principals plan` again: it shows only what is left to do."
        )
    }
}

fn list(f: &mut std::fmt::Formatter<'_>, items: &[String]) -> std::fmt::Result {
    const SHOWN: usize = 20;
    for item in items.iter().take(SHOWN) {
        writeln!(f, "    {item}")?;
    }
    if items.len() > SHOWN {
        writeln!(f, "    … and {} more", items.len() - SHOWN)?;
    }
    Ok(())
}

/// Reads and checks a plan file.
pub fn read_plan(path: &Path) -> Result<Plan, ApplyError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ApplyError::Read {
        path: shown.clone(),
        source,
    })?;
    parse_plan(&text, &shown)
}

/// Parses and checks a plan (`origin` names it in errors).
pub fn parse_plan(text: &str, origin: &str) -> Result<Plan, ApplyError> {
    let invalid = |problem: String| ApplyError::Invalid {
        path: origin.to_owned(),
        problem,
    };
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        invalid(format!(
            "line {} column {}: not JSON ({e}); `plan --out` writes plans",
            e.line(),
            e.column()
        ))
    })?;
    let version = value.get("schema_version").and_then(|v| v.as_u64());
    if version != Some(u64::from(PLAN_VERSION)) {
        return Err(invalid(format!(
            "schema_version is {}, this version applies {PLAN_VERSION}; make the plan again \
             with this version",
            version.map_or_else(|| "missing".to_owned(), |v| v.to_string())
        )));
    }
    let plan: Plan = serde_json::from_value(value)
        .map_err(|e| invalid(format!("{e}; `plan --out` writes plans")))?;
    if plan.tool != "ts-principals" {
        return Err(invalid(format!("it was written by {:?}", plan.tool)));
    }
    if plan.compute_fingerprint() != plan.fingerprint {
        return Err(invalid(
            "its changes or records do not match its fingerprint (edited after it was made?); \
             make the plan again"
                .to_owned(),
        ));
    }
    if let Some(key) = unrecorded(&plan) {
        return Err(invalid(format!(
            "a change touches {key}, which its records do not hold (edited after it was \
             made?); make the plan again"
        )));
    }
    Ok(plan)
}

/// A principal a change touches that the plan has no record of: such a
/// change would escape the check for what moved.
fn unrecorded(plan: &Plan) -> Option<String> {
    let recorded: BTreeSet<(bool, String, String)> = (plan.records.iter())
        .map(|r| match &r.key {
            plan::Key::User { name } => (false, String::new(), name.to_lowercase()),
            plan::Key::Group { org, name, .. } => (true, org.clone(), name.clone()),
        })
        .collect();
    let user = |name: &str| (false, String::new(), name.to_lowercase());
    let group = |g: &plan::GroupRef| (true, g.org.name.clone(), g.name.clone());
    let mut touched = Vec::new();
    for change in &plan.changes {
        match change {
            Change::CreateGroup { group: g, .. }
            | Change::UpdateGroup { group: g, .. }
            | Change::DeleteGroup { group: g } => touched.push(group(g)),
            Change::HideGroup {
                group: g,
                quarantine,
                ..
            } => touched.extend([group(g), group(quarantine)]),
            Change::HideUser {
                name, quarantine, ..
            } => touched.extend([user(name), group(quarantine)]),
            Change::CreateUser { name, .. }
            | Change::UpdateUser { name, .. }
            | Change::DeactivateUser { name, .. }
            | Change::DeleteUser { name, .. } => touched.push(user(name)),
            Change::AddMember { member, group: g } | Change::RemoveMember { member, group: g } => {
                touched.push(group(g));
                touched.push(match member {
                    plan::Member::User { name, .. } => user(name),
                    plan::Member::Group(g) => group(g),
                });
            }
        }
    }
    (touched.into_iter().find(|k| !recorded.contains(k))).map(|(is_group, org, name)| {
        if is_group {
            format!("group {name:?} (org {org})")
        } else {
            format!("user {name:?}")
        }
    })
}

/// Refuses when `principals` (the cluster now) is another cluster, or any
/// principal the plan touches moved since it was made.
pub fn check_current(plan: &Plan, principals: &Principals) -> Result<(), ApplyError> {
    if plan.cluster.id != principals.source.cluster_id {
        return Err(ApplyError::WrongCluster {
            planned: plan.cluster.id.clone(),
            now: principals.source.cluster_id.clone(),
        });
    }
    let index = Index::new(principals);
    let now: Vec<plan::Record> = plan.records.iter().map(|r| index.record(&r.key)).collect();
    let moved = plan::state::moved(&plan.records, &now);
    if moved.is_empty() {
        return Ok(());
    }
    let mut lines = Vec::new();
    for m in moved.iter().take(50) {
        let shown = |v: &str| v.replace('\n', ", ");
        lines.push(format!(
            "  {} {}: {:?} in the plan, {:?} now",
            m.key,
            m.field,
            shown(&m.planned),
            shown(&m.now)
        ));
    }
    if moved.len() > 50 {
        lines.push(format!("  … and {} more", moved.len() - 50));
    }
    Err(ApplyError::Stale {
        moved: lines.join("\n"),
    })
}

/// Refuses a plan that would remove, hide, deactivate or delete a
/// protected principal (the caller, built-in, system or identity-provider
/// principals, as the cluster has them now) it does not name as
/// unprotected: a plan made offline without `--caller`, or edited.
pub fn check_protected(
    plan: &Plan,
    principals: &Principals,
    caller: Option<&str>,
) -> Result<(), ApplyError> {
    let index = Index::new(principals);
    let named = |name: &str| (plan.unprotected.iter()).any(|n| n.eq_ignore_ascii_case(name));
    let removes_users = plan.changes.iter().any(|c| {
        matches!(
            c,
            Change::HideUser { .. }
                | Change::DeactivateUser { .. }
                | Change::DeleteUser { .. }
                | Change::DeleteGroup { .. }
                | Change::RemoveMember {
                    member: plan::Member::User { .. },
                    ..
                }
        ) || matches!(c, Change::UpdateUser { orgs_removed, .. } if !orgs_removed.is_empty())
    });
    if caller.is_none() && removes_users {
        return Err(ApplyError::Protected(
            "the plan removes, hides, deactivates or deletes users, or deletes groups, and the \
             cluster does not say which user apply signs in as (a token without a username): it \
             could be one of them or in one of them; nothing was applied. Set the profile's username (THOUGHTSPOT_USERNAME)"
                .into(),
        ));
    }
    let refuse = |what: String, reason: String| {
        Err(ApplyError::Protected(format!(
            "the plan would {what}, which is {reason}; nothing was applied. Make the plan again \
             with --profile (or --caller USER, who is then protected), or name it with \
             --unprotect if that is really meant"
        )))
    };
    let caller_groups = caller.map_or_else(Default::default, |c| index.groups_of_user(c));
    for change in &plan.changes {
        let (user, verb) = match change {
            Change::HideUser { name, .. } => (Some(name), "hide"),
            Change::DeactivateUser { name, .. } => (Some(name), "deactivate"),
            Change::DeleteUser { name, .. } => (Some(name), "delete"),
            Change::RemoveMember {
                member: plan::Member::User { name, .. },
                ..
            } => (Some(name), "remove from a group"),
            Change::UpdateUser {
                name, orgs_removed, ..
            } if !orgs_removed.is_empty() => (Some(name), "remove from an org"),
            _ => (None, ""),
        };
        if let Some(name) = user {
            if named(name) {
                continue;
            }
            if caller.is_some_and(|c| c.eq_ignore_ascii_case(name)) {
                return refuse(
                    format!("{verb} the user {name:?}"),
                    "the user apply signs in as".into(),
                );
            }
            let ladder = matches!(
                change,
                Change::HideUser { .. } | Change::DeactivateUser { .. } | Change::DeleteUser { .. }
            );
            if ladder
                && let Some(u) = index.user(name)
                && let Some(reason) = plan::protected_user(&principals.users[u], None)
            {
                return refuse(format!("{verb} the user {name:?}"), reason);
            }
        }
        if let Change::HideGroup { group, .. } | Change::DeleteGroup { group } = change
            && !named(&group.name)
            && let Some(g) = index.group(group.org.id, &group.name)
            && let Some(reason) =
                plan::protected_from_ladder(&principals.groups[g], caller_groups.contains(&g))
        {
            return refuse(format!("remove the group {:?}", group.name), reason);
        }
    }
    Ok(())
}

/// The local users a plan creates: (name, display name).
pub fn new_local_users(plan: &Plan) -> Vec<(&str, &str)> {
    (plan.changes.iter())
        .filter_map(|c| match c {
            Change::CreateUser { name, attrs } if attrs.account_type == "LOCAL_USER" => {
                Some((name.as_str(), attrs.display_name.as_str()))
            }
            _ => None,
        })
        .collect()
}

/// Checks the initial password of the plan's new local users.
pub fn check_new_password(plan: &Plan, password: Option<&SecretString>) -> Result<(), ApplyError> {
    let users = new_local_users(plan);
    if users.is_empty() {
        return Ok(());
    }
    let Some(password) = password else {
        return Err(ApplyError::Needs(format!(
            "the plan creates {} local users ({}), who need an initial password: set \
             {PASSWORD_ENV}, or run apply on a terminal to type it",
            users.len(),
            users
                .iter()
                .take(5)
                .map(|(n, _)| format!("{n:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    };
    for (name, display_name) in users {
        check_password(password.expose_secret(), &blocked_words(name, display_name)).map_err(
            |problem| {
                ApplyError::Needs(format!(
                    "the initial password {problem} for the new user {name:?}; choose another"
                ))
            },
        )?;
    }
    Ok(())
}

/// Which API writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    /// REST v2, one request per change.
    V2,
    /// REST v1 `user/sync`, one request for the plan.
    V1,
}

/// The connection, the plan and the cluster's principals as the plan's
/// records were checked against.
pub struct Prepared {
    runtime: tokio::runtime::Runtime,
    connection: Connection,
    http: Http,
    auth: Auth,
    plan: Plan,
    principals: Principals,
    password: Option<SecretString>,
    /// Scoped tokens: the cluster has orgs.
    orgs: bool,
    /// Which API applies.
    pub api: Api,
    /// What the dry run checked, for the log.
    pub checked: String,
}

/// Checks what would fail half-way, asks the cluster's dry run, and
/// returns what [`Prepared::apply`] carries out.
pub fn prepare(
    connection: &Connection,
    plan: Plan,
    principals: Principals,
    password: Option<SecretString>,
) -> Result<Prepared, ApplyError> {
    check_current(&plan, &principals)?;
    check_new_password(&plan, password.as_ref())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ClientError::Setup(format!("cannot start the async runtime: {e}")))?;
    let http = Http::new(connection)?;
    let auth = Auth::new(connection.credentials.clone())?;
    let mut prepared = Prepared {
        runtime,
        connection: connection.clone(),
        http,
        auth,
        plan,
        principals,
        password,
        orgs: false,
        api: Api::V2,
        checked: String::new(),
    };
    // Principals read over REST v1: the cluster has no v2 at all.
    if !crate::spec::export::knows_privileges(&prepared.principals) {
        prepared.api = Api::V1;
        v1::supported(&prepared.plan)?;
        v1::owners_unknown(&prepared.plan)?;
        prepared.checked = prepared.runtime.block_on(v1::dry_run(&prepared))?;
        return Ok(prepared);
    }
    prepared.runtime.block_on(async {
        let api = V2 {
            http: &prepared.http,
            auth: &prepared.auth,
        };
        prepared.orgs = api.orgs().await?.is_some_and(|o| !o.is_empty());
        Ok::<(), ApplyError>(())
    })?;
    prepared.check_owners()?;
    let checked = prepared.runtime.block_on(dry_run::v2(&prepared))?;
    prepared.checked = match checked {
        Some(checked) => checked,
        None => {
            prepared.api = Api::V1;
            v1::supported(&prepared.plan)?;
            prepared.runtime.block_on(v1::dry_run(&prepared))?
        }
    };
    Ok(prepared)
}

impl Prepared {
    /// The plan.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    fn scope(&self, org: i64) -> crate::client::auth::Scope {
        self.orgs.then_some(org)
    }

    fn index(&self) -> Index<'_> {
        Index::new(&self.principals)
    }

    /// Users the plan deletes without a transfer who own objects: refused
    /// before anything is applied.
    fn check_owners(&self) -> Result<(), ApplyError> {
        let doomed: Vec<(&str, &str)> = (self.plan.changes.iter())
            .filter_map(|c| match c {
                Change::DeleteUser {
                    name,
                    id,
                    transfer_to: None,
                } => Some((name.as_str(), id.as_str())),
                _ => None,
            })
            .collect();
        if doomed.is_empty() {
            return Ok(());
        }
        let index = self.index();
        let mut owners = Vec::new();
        for (name, id) in doomed {
            let orgs: BTreeSet<i64> = index
                .user(name)
                .map(|u| self.principals.users[u].org_ids.iter().copied().collect())
                .unwrap_or_default();
            let orgs = if orgs.is_empty() {
                BTreeSet::from([crate::model::PRIMARY_ORG_ID])
            } else {
                orgs
            };
            let mut count = 0;
            for org in orgs {
                let api = V2 {
                    http: &self.http,
                    auth: &self.auth,
                };
                match self
                    .runtime
                    .block_on(crate::transfer::owned(&api, id, self.scope(org)))
                {
                    Ok(objects) => count += objects.len(),
                    // No metadata search (an older cluster): the delete
                    // itself is refused by the cluster when it must be.
                    Err(TransferError::ClusterRefused { status: 404, .. }) => {}
                    Err(TransferError::Client(e)) => return Err(e.into()),
                    Err(e) => {
                        return Err(ApplyError::Answer {
                            path: "/api/rest/2.0/metadata/search".into(),
                            expected: "a user's objects",
                            problem: e.to_string(),
                        });
                    }
                }
            }
            if count > 0 {
                owners.push(format!("{name:?} ({count} objects)"));
            }
        }
        if owners.is_empty() {
            Ok(())
        } else {
            Err(ApplyError::Owners {
                owners: owners.join(", "),
            })
        }
    }

    /// Applies the plan, calling `report` after each change with its
    /// label. Returns the labels of the changes applied.
    pub fn apply(self, report: &mut dyn FnMut(&str)) -> Result<Vec<String>, ApplyError> {
        match self.api {
            Api::V2 => self.runtime.block_on(v2::apply(&self, report)),
            Api::V1 => self.runtime.block_on(v1::apply(&self, report)),
        }
    }
}
