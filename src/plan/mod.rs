//! `plan`: what it takes to make a cluster match a [`Spec`], as a list of
//! [`Change`]s a reviewer reads and `apply` carries out.
//!
//! A field the spec leaves out is not managed. Memberships follow the
//! authority of the group they are in: an `additive` group (the default)
//! gets the members the spec names and keeps every other; an `exact` group
//! loses the members the spec does not name, each removal listed in the
//! plan, so switching a group to `exact` shows every removal it causes. An
//! org with `members: exact` likewise loses the users the spec does not
//! place in it. Protected principals (the caller, `tsadmin`, `system`,
//! `su`, `guest`, the `All` and `Administrator` groups, the cluster's
//! system groups, and principals provisioned by an identity provider) are
//! never removed from anything unless the spec declares them: such
//! removals are listed as kept, with the reason.
//!
//! The plan records the principals it touches as the cluster had them
//! ([`state::Record`]) and their fingerprint, so `apply` can tell when any
//! moved since.

pub mod state;
mod text;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::model::{
    AccountType, GroupType, PRIMARY_ORG_ID, PRIMARY_ORG_NAME, Principals, Visibility,
};
use crate::spec::export::group_org;
use crate::spec::validate::{self, Invalid};
use crate::spec::{Authority, Located, Pos, Spec};
pub use state::{Index, Key, Moved, Record};
pub use text::label;

/// The plan format this version writes (`schema_version`).
pub const PLAN_VERSION: u32 = 1;

/// Usernames that are never changed or removed unless the spec declares them.
pub const PROTECTED_USERS: &[&str] = &["tsadmin", "system", "su", "guest"];
/// Group names likewise protected.
pub const PROTECTED_GROUPS: &[&str] = &["All", "All Group", "Administrator", "System"];
/// Users ThoughtSpot refuses to delete.
const UNDELETABLE_USERS: &[&str] = &["tsadmin", "system", "su", "guest"];
/// Groups ThoughtSpot refuses to delete.
const UNDELETABLE_GROUPS: &[&str] = &["All", "All Group", "Administrator", "System"];

/// An org, by id and name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct OrgRef {
    /// The org's id.
    pub id: i64,
    /// Its name.
    pub name: String,
}

/// A group: one the cluster has (`id`), or one the plan creates.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct GroupRef {
    /// Its org.
    pub org: OrgRef,
    /// Its name.
    pub name: String,
    /// Its GUID, when it exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// A member of a group.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Member {
    /// A user.
    User {
        /// Username.
        name: String,
        /// GUID, when the user exists.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
    },
    /// A group.
    Group(GroupRef),
}

/// One field that changes: `old` → `new`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldChange {
    /// The field (`display_name`, `email`, `visibility`, …).
    pub field: String,
    /// What the cluster has.
    pub old: String,
    /// What the spec says.
    pub new: String,
}

/// A new group's attributes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupAttrs {
    /// Display name.
    pub display_name: String,
    /// Description.
    pub description: String,
    /// Visibility.
    pub visibility: String,
    /// Type.
    #[serde(rename = "type")]
    pub group_type: String,
    /// Privileges.
    pub privileges: Vec<String>,
}

/// A new user's attributes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserAttrs {
    /// Display name.
    pub display_name: String,
    /// E-mail (may be empty).
    pub email: String,
    /// Visibility.
    pub visibility: String,
    /// Account type.
    pub account_type: String,
    /// Orgs.
    pub orgs: Vec<OrgRef>,
}

/// One change a plan makes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Change {
    /// A group to create.
    CreateGroup {
        /// The group.
        group: GroupRef,
        /// Its attributes.
        attrs: GroupAttrs,
    },
    /// A group's fields and privileges to change.
    UpdateGroup {
        /// The group.
        group: GroupRef,
        /// Fields that change.
        fields: Vec<FieldChange>,
        /// Privileges granted.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        privileges_added: Vec<String>,
        /// Privileges taken away.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        privileges_removed: Vec<String>,
    },
    /// A user to create.
    CreateUser {
        /// Username.
        name: String,
        /// Attributes.
        attrs: UserAttrs,
    },
    /// A user's fields and orgs to change.
    UpdateUser {
        /// Username.
        name: String,
        /// GUID.
        id: String,
        /// Fields that change.
        fields: Vec<FieldChange>,
        /// Orgs the user joins.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        orgs_added: Vec<OrgRef>,
        /// Orgs the user leaves (an org with `members: exact`).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        orgs_removed: Vec<OrgRef>,
    },
    /// A member to add to a group.
    AddMember {
        /// The group.
        group: GroupRef,
        /// The member.
        member: Member,
    },
    /// A member to remove from a group (`members: exact`).
    RemoveMember {
        /// The group.
        group: GroupRef,
        /// The member.
        member: Member,
    },
    /// A user the spec does not declare, hidden (`--hide`): made
    /// NON_SHARABLE and put in the quarantine group.
    HideUser {
        /// Username.
        name: String,
        /// GUID.
        id: String,
        /// Its visibility now.
        visibility: String,
        /// The quarantine group of its org.
        quarantine: GroupRef,
    },
    /// A group the spec does not declare, hidden (`--hide`, `--deactivate`):
    /// made NON_SHARABLE and put in the quarantine group of its org.
    HideGroup {
        /// The group.
        group: GroupRef,
        /// Its visibility now.
        visibility: String,
        /// The quarantine group.
        quarantine: GroupRef,
    },
    /// A user the spec does not declare, deactivated (`--deactivate`).
    DeactivateUser {
        /// Username.
        name: String,
        /// GUID.
        id: String,
    },
    /// A user the spec does not declare, deleted (`--prune`), its objects
    /// first given to `transfer_to` when set.
    DeleteUser {
        /// Username.
        name: String,
        /// GUID.
        id: String,
        /// Who receives the user's objects (`--transfer-to`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        transfer_to: Option<String>,
    },
    /// A group the spec does not declare, deleted (`--prune`).
    DeleteGroup {
        /// The group.
        group: GroupRef,
    },
}

impl Change {
    /// True for a step of the delete ladder (hide, deactivate, delete).
    pub fn is_removal(&self) -> bool {
        matches!(
            self,
            Change::HideUser { .. }
                | Change::HideGroup { .. }
                | Change::DeactivateUser { .. }
                | Change::DeleteUser { .. }
                | Change::DeleteGroup { .. }
        )
    }
}

/// What happens to principals the spec does not declare: the delete
/// ladder, each step opted into.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unmanaged {
    /// Left alone (the default).
    #[default]
    Ignore,
    /// Made NON_SHARABLE and put in the quarantine group.
    Hide,
    /// Users deactivated (account_status INACTIVE); groups hidden.
    Deactivate,
    /// Deleted.
    Delete,
}

impl Unmanaged {
    /// The flag that asks for this step.
    pub fn flag(self) -> &'static str {
        match self {
            Unmanaged::Ignore => "(none)",
            Unmanaged::Hide => "--hide",
            Unmanaged::Deactivate => "--deactivate",
            Unmanaged::Delete => "--prune",
        }
    }
}

/// The group hidden principals are put in, one per org, created by the
/// first plan that hides something there.
pub const QUARANTINE_GROUP: &str = "ts-principals-quarantine";

/// How many removals a plan may hold unless `--max-deletes` says otherwise.
pub const DEFAULT_MAX_DELETES: usize = 10;

/// A removal `exact` would make but protection prevents.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kept {
    /// What is kept (`user "x" in group "y"`).
    pub what: String,
    /// Why.
    pub reason: String,
}

/// The cluster a plan is for.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterRef {
    /// The cluster's id.
    pub id: String,
    /// Its URL, when fetched live.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// The spec a plan was made from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpecRef {
    /// Its path (a template's, with `(rendered)`).
    pub origin: String,
    /// SHA-256 of the YAML planned.
    pub sha256: String,
}

/// A plan: the changes, and the principals they touch as the cluster had
/// them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// [`PLAN_VERSION`].
    pub schema_version: u32,
    /// `ts-principals`.
    pub tool: String,
    /// The cluster.
    pub cluster: ClusterRef,
    /// The spec.
    pub spec: SpecRef,
    /// Fingerprint of `records`.
    pub fingerprint: String,
    /// The changes, in the order they are applied.
    pub changes: Vec<Change>,
    /// Removals not planned, and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kept: Vec<Kept>,
    /// The delete ladder's step this plan was made with.
    #[serde(default, skip_serializing_if = "is_ignore")]
    pub unmanaged: Unmanaged,
    /// Protected principals named with `--unprotect`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unprotected: Vec<String>,
    /// Every principal the changes touch, as the cluster had it.
    pub records: Vec<Record>,
}

impl Plan {
    /// True when there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// The plan for review: terraform-style text.
    pub fn to_text(&self) -> String {
        text::render(self)
    }

    /// The fingerprint of what `apply` relies on: the cluster, the spec,
    /// the changes, the ladder's options and the records (SHA-256 of
    /// their JSON). A checksum against edits and damage, not a signature.
    pub fn compute_fingerprint(&self) -> String {
        let mut records: Vec<&Record> = self.records.iter().collect();
        records.sort_by(|a, b| a.key.cmp(&b.key));
        let covered = serde_json::json!({
            "cluster": self.cluster,
            "spec": self.spec,
            "changes": self.changes,
            "unmanaged": self.unmanaged,
            "unprotected": self.unprotected,
            "records": records,
        });
        format!(
            "sha256:{}",
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
                covered.to_string().as_bytes()
            ))
        )
    }

    /// The one-line summary: counts per kind.
    pub fn summary(&self) -> String {
        text::summary(self)
    }
}

fn is_ignore(step: &Unmanaged) -> bool {
    *step == Unmanaged::Ignore
}

/// Who is running the plan, and other choices.
#[derive(Clone, Debug)]
pub struct PlanOptions {
    /// The caller's username: never removed from anything.
    pub caller: Option<String>,
    /// What happens to principals the spec does not declare.
    pub unmanaged: Unmanaged,
    /// Most removals (hides, deactivations, deletions) the plan may hold.
    pub max_deletes: usize,
    /// Who receives the objects of deleted users.
    pub transfer_to: Option<String>,
    /// Protected principals (users or groups, by name) the ladder may
    /// nevertheless reach: named explicitly.
    pub unprotect: Vec<String>,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            caller: None,
            unmanaged: Unmanaged::Ignore,
            max_deletes: DEFAULT_MAX_DELETES,
            transfer_to: None,
            unprotect: Vec::new(),
        }
    }
}

/// A plan that cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The spec has errors.
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// The spec names an org the cluster does not have.
    #[error(
        "{origin}: {at}: the org `{name}` does not exist on cluster {cluster} (it has: {available}); \
         create it in ThoughtSpot (Admin → Orgs) first, or correct the name — plans do not create orgs"
    )]
    NoSuchOrg {
        /// The spec.
        origin: String,
        /// Where it is named.
        at: Pos,
        /// The name.
        name: String,
        /// The cluster.
        cluster: String,
        /// The orgs it has.
        available: String,
    },
    /// More removals than `--max-deletes` allows.
    #[error(
        "the plan would {step} {count} principals the spec does not declare ({flag}), more than \
         --max-deletes {max} allows: {sample}; check that the spec is complete, or raise --max-deletes"
    )]
    TooManyRemovals {
        /// The verb (`hide`, `deactivate`, `delete`).
        step: &'static str,
        /// The flag.
        flag: &'static str,
        /// How many.
        count: usize,
        /// The cap.
        max: usize,
        /// The first few, by name.
        sample: String,
    },
    /// The plan's memberships close a nesting cycle with the cluster's.
    #[error(
        "the plan would nest groups in a cycle (org {org}): {cycle} (each a member of the next, \
         counting the cluster's nesting); ThoughtSpot refuses cycles: drop one of these parents \
         from the spec, or take the group out of the other in ThoughtSpot"
    )]
    NestingCycle {
        /// The org.
        org: String,
        /// The groups, child first.
        cycle: String,
    },
    /// More removals by `members: exact` than `--max-deletes` allows.
    #[error(
        "the plan would take {count} members out of `members: exact` groups and orgs, more than \
         --max-deletes {max} allows: {sample}; check that the spec (and the --vars it is rendered \
         from) is complete, or raise --max-deletes"
    )]
    TooManyExactRemovals {
        /// How many.
        count: usize,
        /// The cap.
        max: usize,
        /// The first few.
        sample: String,
    },
    /// A user would leave every org it is in.
    #[error(
        "user {name:?} would leave every org it is in ({orgs}: `members: exact`), and ThoughtSpot \
         keeps every user in at least one org; declare the user with the `orgs` it should stay \
         in, or delete it with --prune"
    )]
    NoOrgLeft {
        /// The user.
        name: String,
        /// The orgs it would leave.
        orgs: String,
    },
    /// The quarantine group gives privileges.
    #[error(
        "the group `ts-principals-quarantine` of org {org} has privileges [{privileges}] or parent \
         groups [{parents}]: hidden principals would gain them; remove them in ThoughtSpot first"
    )]
    Quarantine {
        /// The org.
        org: String,
        /// Its privileges.
        privileges: String,
        /// Its parents.
        parents: String,
    },
    /// `--unprotect` names nothing on the cluster.
    #[error(
        "--unprotect {name:?}: the cluster has no user or group of that name; check the spelling \
         (a typo leaves the principal you meant protected)"
    )]
    Unprotect {
        /// The name.
        name: String,
    },
    /// `--unprotect` names a principal ThoughtSpot never deletes.
    #[error(
        "--prune --unprotect: ThoughtSpot does not delete the {what}; leave it out of --unprotect \
         (or hide it with --hide --unprotect)"
    )]
    Undeletable {
        /// What.
        what: String,
    },
    /// `--transfer-to` names no usable user.
    #[error("--transfer-to {name:?}: {problem}")]
    TransferTo {
        /// The username.
        name: String,
        /// What is wrong.
        problem: String,
    },
}

/// Why a user may not be removed from anything it is not declared for.
pub fn protected_user(user: &crate::model::User, caller: Option<&str>) -> Option<String> {
    let name = user.name.to_lowercase();
    if caller.is_some_and(|c| c.eq_ignore_ascii_case(&name)) {
        return Some("the user running ts-principals".to_owned());
    }
    if PROTECTED_USERS.contains(&name.as_str()) {
        return Some("a built-in ThoughtSpot user".to_owned());
    }
    match &user.account_type {
        Some(AccountType::LocalUser) | None => None,
        Some(t) => Some(format!("provisioned by an identity provider ({t})")),
    }
}

/// Why a group may not be removed from anything it is not declared for, or
/// lose members.
pub fn protected_group(group: &crate::model::Group) -> Option<String> {
    if PROTECTED_GROUPS
        .iter()
        .any(|g| g.eq_ignore_ascii_case(&group.name))
    {
        return Some("a built-in ThoughtSpot group".to_owned());
    }
    match &group.group_type {
        Some(GroupType::TenantGroup) => Some("an org's system group (TENANT_GROUP)".to_owned()),
        Some(GroupType::LdapGroup) => {
            Some("provisioned by an identity provider (LDAP_GROUP)".to_owned())
        }
        _ => None,
    }
}

/// Why the delete ladder may not reach a group: [`protected_group`], or
/// being one of the caller's groups (`of_caller`, direct or nested), whose
/// removal could take the caller's privileges away part-way through a run.
pub fn protected_from_ladder(group: &crate::model::Group, of_caller: bool) -> Option<String> {
    if of_caller {
        return Some(CALLER_GROUP.to_owned());
    }
    protected_group(group)
}

/// The spec's groups resolved against the cluster.
struct SpecGroup {
    org: OrgRef,
    /// The cluster's group, when it exists.
    cluster: Option<usize>,
    authority: Authority,
}

impl SpecGroup {
    fn reference(&self, name: &str, index: &Index) -> GroupRef {
        GroupRef {
            org: self.org.clone(),
            name: self.cluster.map_or_else(
                || name.to_owned(),
                |g| index.principals.groups[g].name.clone(),
            ),
            id: self.cluster.map(|g| index.principals.groups[g].id.clone()),
        }
    }
}

fn group_ref(index: &Index, g: usize) -> GroupRef {
    let group = &index.principals.groups[g];
    let org = group_org(group);
    GroupRef {
        org: OrgRef {
            id: org,
            name: index.org_name(org),
        },
        name: group.name.clone(),
        id: Some(group.id.clone()),
    }
}

fn user_member(index: &Index, u: usize) -> Member {
    let user = &index.principals.users[u];
    Member::User {
        name: user.name.clone(),
        id: Some(user.id.clone()),
    }
}

fn field(fields: &mut Vec<FieldChange>, name: &str, old: &str, new: Option<&str>) {
    if let Some(new) = new
        && new != old
    {
        fields.push(FieldChange {
            field: name.to_owned(),
            old: old.to_owned(),
            new: new.to_owned(),
        });
    }
}

fn text_of<T: AsRef<str>>(value: Option<&T>) -> &str {
    value.map_or("", AsRef::as_ref)
}

struct Planner<'a> {
    spec: &'a Spec,
    index: Index<'a>,
    options: &'a PlanOptions,
    groups: Vec<SpecGroup>,
    keys: HashMap<&'a str, usize>,
    changes: Vec<Change>,
    memberships: Vec<Change>,
    user_updates: BTreeMap<String, Change>,
    /// The delete ladder's changes.
    removals: Vec<Change>,
    /// Members `members: exact` groups lose, by name.
    exact_removals: Vec<String>,
    kept: Vec<Kept>,
    touched: BTreeSet<Key>,
    /// False when the cluster was read over REST v1, which reports no
    /// privileges: they are then not compared.
    knows_privileges: bool,
}

impl<'a> Planner<'a> {
    fn org(&self, name: &Located) -> Result<OrgRef, PlanError> {
        if let Some((id, name)) = self.index.org(&name.text) {
            return Ok(OrgRef {
                id,
                name: name.to_owned(),
            });
        }
        if name.text == PRIMARY_ORG_NAME {
            return Ok(OrgRef {
                id: PRIMARY_ORG_ID,
                name: PRIMARY_ORG_NAME.to_owned(),
            });
        }
        let mut available: Vec<&str> = self
            .index
            .principals
            .orgs
            .iter()
            .map(|o| o.name.as_str())
            .collect();
        available.sort_unstable();
        Err(PlanError::NoSuchOrg {
            origin: self.spec.origin.clone(),
            at: name.at,
            name: name.text.clone(),
            cluster: self.index.principals.source.cluster_id.clone(),
            available: available.join(", "),
        })
    }

    fn group_key(&self, g: usize) -> Key {
        let group = &self.groups[g];
        Key::Group {
            org: group.org.name.clone(),
            name: match group.cluster {
                Some(c) => self.index.principals.groups[c].name.clone(),
                None => self.spec.groups[g].name.clone(),
            },
            members: group.authority == Authority::Exact,
        }
    }

    fn cluster_group_key(&self, c: usize) -> Key {
        let spec_group = self.groups.iter().position(|g| g.cluster == Some(c));
        match spec_group {
            Some(g) => self.group_key(g),
            None => {
                let group = &self.index.principals.groups[c];
                Key::Group {
                    org: self.index.org_name(group_org(group)),
                    name: group.name.clone(),
                    members: false,
                }
            }
        }
    }

    fn resolve_groups(&mut self) -> Result<(), PlanError> {
        for (g, group) in self.spec.groups.iter().enumerate() {
            let org_name = group
                .org
                .clone()
                .or_else(|| self.spec.defaults.groups.org.clone())
                .unwrap_or_else(|| Located::new(PRIMARY_ORG_NAME));
            let org = self.org(&org_name)?;
            let cluster = self.index.group(org.id, &group.name);
            self.groups.push(SpecGroup {
                org,
                cluster,
                authority: self.spec.group_authority(group),
            });
            self.keys.insert(group.key.text.as_str(), g);
        }
        Ok(())
    }

    fn plan_groups(&mut self) {
        let defaults = &self.spec.defaults.groups;
        for (g, group) in self.spec.groups.iter().enumerate() {
            let visibility = group.visibility.as_ref().or(defaults.visibility.as_ref());
            let group_type = group.group_type.as_ref().or(defaults.group_type.as_ref());
            let privileges: Option<Vec<String>> = group.privileges.as_ref().map(|p| {
                let set: BTreeSet<String> = p.iter().map(|p| p.text.clone()).collect();
                set.into_iter().collect()
            });
            let reference = self.groups[g].reference(&group.name, &self.index);
            match self.groups[g].cluster {
                None => {
                    self.touched.insert(self.group_key(g));
                    self.changes.push(Change::CreateGroup {
                        group: reference,
                        attrs: GroupAttrs {
                            display_name: group
                                .display_name
                                .clone()
                                .unwrap_or_else(|| group.name.clone()),
                            description: group.description.clone().unwrap_or_default(),
                            visibility: visibility
                                .map_or(Visibility::Sharable.as_str(), |v| v.as_str())
                                .to_owned(),
                            group_type: group_type
                                .map_or(GroupType::LocalGroup.as_str(), |t| t.as_str())
                                .to_owned(),
                            privileges: privileges.unwrap_or_default(),
                        },
                    });
                }
                Some(c) => {
                    let current = &self.index.principals.groups[c];
                    let mut fields = Vec::new();
                    field(
                        &mut fields,
                        "display_name",
                        &current.display_name,
                        group.display_name.as_deref(),
                    );
                    field(
                        &mut fields,
                        "description",
                        &current.description,
                        group.description.as_deref(),
                    );
                    field(
                        &mut fields,
                        "visibility",
                        text_of(current.visibility.as_ref()),
                        // Defaults are for what a plan creates.
                        group.visibility.as_ref().map(|v| v.as_str()),
                    );
                    field(
                        &mut fields,
                        "type",
                        text_of(current.group_type.as_ref()),
                        group.group_type.as_ref().map(|t| t.as_str()),
                    );
                    let (mut added, mut removed) = (Vec::new(), Vec::new());
                    if let Some(wanted) = privileges.as_ref().filter(|_| self.knows_privileges) {
                        added = wanted
                            .iter()
                            .filter(|p| !current.privileges.contains(p))
                            .cloned()
                            .collect();
                        removed = (current.privileges.iter())
                            .filter(|p| !wanted.contains(p))
                            .cloned()
                            .collect();
                    }
                    if !fields.is_empty() || !added.is_empty() || !removed.is_empty() {
                        self.touched.insert(self.group_key(g));
                        self.changes.push(Change::UpdateGroup {
                            group: reference,
                            fields,
                            privileges_added: added,
                            privileges_removed: removed,
                        });
                    }
                }
            }
        }
    }

    /// The spec groups (indices, ascending, once each) a spec user is a
    /// direct member of: its own and `defaults.users.groups`.
    fn user_groups(&self, user: &crate::spec::UserSpec) -> Vec<usize> {
        let groups: BTreeSet<usize> = (user.groups.iter())
            .chain(&self.spec.defaults.users.groups)
            .filter_map(|g| self.keys.get(g.text.as_str()).copied())
            .collect();
        groups.into_iter().collect()
    }

    /// Orgs a spec user is to be in.
    fn user_orgs(
        &self,
        user: &crate::spec::UserSpec,
        groups: &[usize],
    ) -> Result<BTreeSet<OrgRef>, PlanError> {
        let mut orgs = BTreeSet::new();
        for org in user
            .orgs
            .as_ref()
            .or(self.spec.defaults.users.orgs.as_ref())
            .into_iter()
            .flatten()
        {
            orgs.insert(self.org(org)?);
        }
        for &g in groups {
            orgs.insert(self.groups[g].org.clone());
        }
        Ok(orgs)
    }

    fn plan_users(&mut self) -> Result<(), PlanError> {
        let defaults = &self.spec.defaults.users;
        for user in &self.spec.users {
            let groups = self.user_groups(user);
            let orgs = self.user_orgs(user, &groups)?;
            let visibility = user.visibility.as_ref().or(defaults.visibility.as_ref());
            let account_type = user
                .account_type
                .as_ref()
                .or(defaults.account_type.as_ref());
            let name = user.name.text.as_str();
            let cluster = self.index.user(name);
            let member = match cluster {
                Some(u) => user_member(&self.index, u),
                None => Member::User {
                    name: name.to_owned(),
                    id: None,
                },
            };
            match cluster {
                None => {
                    self.touched.insert(Key::user(name));
                    let mut orgs: Vec<OrgRef> = orgs.into_iter().collect();
                    if orgs.is_empty() {
                        orgs.push(OrgRef {
                            id: PRIMARY_ORG_ID,
                            name: self.index.org_name(PRIMARY_ORG_ID),
                        });
                    }
                    self.changes.push(Change::CreateUser {
                        name: name.to_owned(),
                        attrs: UserAttrs {
                            display_name: user
                                .display_name
                                .clone()
                                .unwrap_or_else(|| name.to_owned()),
                            email: user.email.clone().unwrap_or_default(),
                            visibility: visibility
                                .map_or(Visibility::Sharable.as_str(), |v| v.as_str())
                                .to_owned(),
                            account_type: account_type
                                .map_or(AccountType::LocalUser.as_str(), |t| t.as_str())
                                .to_owned(),
                            orgs,
                        },
                    });
                }
                Some(u) => {
                    let current = &self.index.principals.users[u];
                    let mut fields = Vec::new();
                    field(
                        &mut fields,
                        "display_name",
                        &current.display_name,
                        user.display_name.as_deref(),
                    );
                    field(&mut fields, "email", &current.email, user.email.as_deref());
                    field(
                        &mut fields,
                        "visibility",
                        text_of(current.visibility.as_ref()),
                        // Defaults are for what a plan creates.
                        user.visibility.as_ref().map(|v| v.as_str()),
                    );
                    field(
                        &mut fields,
                        "account_type",
                        text_of(current.account_type.as_ref()),
                        user.account_type.as_ref().map(|t| t.as_str()),
                    );
                    let orgs_added: Vec<OrgRef> = orgs
                        .into_iter()
                        .filter(|o| !current.org_ids.contains(&o.id))
                        .collect();
                    if !fields.is_empty() || !orgs_added.is_empty() {
                        self.touched.insert(Key::user(name));
                        self.user_updates.insert(
                            current.name.to_lowercase(),
                            Change::UpdateUser {
                                name: current.name.clone(),
                                id: current.id.clone(),
                                fields,
                                orgs_added,
                                orgs_removed: Vec::new(),
                            },
                        );
                    }
                }
            }
            // Back in the spec: out of the quarantine `--hide` put it in.
            if let Some(u) = cluster {
                let wanted: HashSet<usize> = groups
                    .iter()
                    .filter_map(|&g| self.groups[g].cluster)
                    .collect();
                for q in &self.index.principals.users[u].groups {
                    let q = q.get();
                    if self.index.principals.groups[q].name == QUARANTINE_GROUP
                        && !wanted.contains(&q)
                    {
                        self.touched.insert(Key::user(name));
                        self.touched.insert(self.cluster_group_key(q));
                        self.memberships.push(Change::RemoveMember {
                            group: group_ref(&self.index, q),
                            member: member.clone(),
                        });
                    }
                }
            }
            for &g in &groups {
                let is_member = match (cluster, self.groups[g].cluster) {
                    (Some(u), Some(c)) => self.index.principals.users[u]
                        .groups
                        .iter()
                        .any(|x| x.get() == c),
                    _ => false,
                };
                if !is_member {
                    self.touched.insert(Key::user(name));
                    self.touched.insert(self.group_key(g));
                    self.memberships.push(Change::AddMember {
                        group: self.groups[g].reference(&self.spec.groups[g].name, &self.index),
                        member: member.clone(),
                    });
                }
            }
        }
        Ok(())
    }

    fn plan_parents(&mut self) {
        for (g, group) in self.spec.groups.iter().enumerate() {
            let member = Member::Group(self.groups[g].reference(&group.name, &self.index));
            if let Some(c) = self.groups[g].cluster {
                let wanted: HashSet<usize> = (group.parents.iter())
                    .filter_map(|p| self.keys.get(p.text.as_str()))
                    .filter_map(|&p| self.groups[p].cluster)
                    .collect();
                for q in &self.index.principals.groups[c].parents {
                    let q = q.get();
                    if self.index.principals.groups[q].name == QUARANTINE_GROUP
                        && !wanted.contains(&q)
                    {
                        self.touched.insert(self.group_key(g));
                        self.touched.insert(self.cluster_group_key(q));
                        self.memberships.push(Change::RemoveMember {
                            group: group_ref(&self.index, q),
                            member: member.clone(),
                        });
                    }
                }
            }
            for parent in &group.parents {
                let Some(&p) = self.keys.get(parent.text.as_str()) else {
                    continue;
                };
                let is_member = match (self.groups[g].cluster, self.groups[p].cluster) {
                    (Some(c), Some(pc)) => self.index.principals.groups[c]
                        .parents
                        .iter()
                        .any(|x| x.get() == pc),
                    _ => false,
                };
                if !is_member {
                    self.touched.insert(self.group_key(g));
                    self.touched.insert(self.group_key(p));
                    self.memberships.push(Change::AddMember {
                        group: self.groups[p].reference(&self.spec.groups[p].name, &self.index),
                        member: member.clone(),
                    });
                }
            }
        }
    }

    /// Members of `exact` groups the spec does not name.
    fn plan_exact(&mut self) {
        let declared_users: HashSet<String> = self
            .spec
            .users
            .iter()
            .map(|u| u.name.text.to_lowercase())
            .collect();
        let declared_groups: HashSet<usize> =
            self.groups.iter().filter_map(|g| g.cluster).collect();
        let defaults = &self.spec.defaults.users.groups;
        for (g, group) in self.spec.groups.iter().enumerate() {
            let (Some(c), Authority::Exact) = (self.groups[g].cluster, self.groups[g].authority)
            else {
                continue;
            };
            let cluster_group = &self.index.principals.groups[c];
            let reference = self.groups[g].reference(&group.name, &self.index);
            let wanted_users: HashSet<String> = (self.spec.users.iter())
                .filter(|u| (u.groups.iter().chain(defaults)).any(|x| x.text == group.key.text))
                .map(|u| u.name.text.to_lowercase())
                .collect();
            let wanted_groups: HashSet<usize> = (self.spec.groups.iter().enumerate())
                .filter(|(_, s)| s.parents.iter().any(|p| p.text == group.key.text))
                .filter_map(|(s, _)| self.groups[s].cluster)
                .collect();
            let group_protection = protected_group(cluster_group);
            for &u in &self.index.user_members[c] {
                let user = &self.index.principals.users[u];
                let folded = user.name.to_lowercase();
                if wanted_users.contains(&folded) {
                    continue;
                }
                let what = format!(
                    "user {:?} in group {:?} (org {})",
                    user.name, group.name, reference.org.name
                );
                if let Some(reason) = &group_protection {
                    self.kept.push(Kept {
                        what,
                        reason: format!("the group is {reason}"),
                    });
                    continue;
                }
                let is_caller = self
                    .options
                    .caller
                    .as_deref()
                    .is_some_and(|c| c.eq_ignore_ascii_case(&folded));
                if (is_caller || !declared_users.contains(&folded))
                    && let Some(reason) = protected_user(user, self.options.caller.as_deref())
                {
                    self.kept.push(Kept {
                        what,
                        reason: format!(
                            "the user is {reason}; declare the user in the spec to manage it"
                        ),
                    });
                    continue;
                }
                self.touched.insert(self.group_key(g));
                self.touched.insert(Key::user(&user.name));
                self.exact_removals.push(what);
                self.memberships.push(Change::RemoveMember {
                    group: reference.clone(),
                    member: user_member(&self.index, u),
                });
            }
            for &m in &self.index.group_members[c] {
                if wanted_groups.contains(&m) {
                    continue;
                }
                let member = &self.index.principals.groups[m];
                let what = format!(
                    "group {:?} in group {:?} (org {})",
                    member.name, group.name, reference.org.name
                );
                if let Some(reason) = &group_protection {
                    self.kept.push(Kept {
                        what,
                        reason: format!("the group is {reason}"),
                    });
                    continue;
                }
                if !declared_groups.contains(&m)
                    && let Some(reason) = protected_group(member)
                {
                    self.kept.push(Kept {
                        what,
                        reason: format!(
                            "the member group is {reason}; declare it in the spec to manage it"
                        ),
                    });
                    continue;
                }
                self.touched.insert(self.group_key(g));
                self.touched.insert(self.cluster_group_key(m));
                self.exact_removals.push(what);
                self.memberships.push(Change::RemoveMember {
                    group: reference.clone(),
                    member: Member::Group(group_ref(&self.index, m)),
                });
            }
        }
    }

    /// Users of `exact` orgs the spec does not place there: users it does
    /// not declare, and users whose `orgs` (or `defaults.users.orgs`) and
    /// groups leave the org out. A declared user without `orgs` keeps the
    /// orgs it is in.
    fn plan_exact_orgs(&mut self) -> Result<(), PlanError> {
        let mut wanted: HashMap<i64, HashSet<String>> = HashMap::new();
        let defaults = &self.spec.defaults.users;
        let mut keeps_orgs: HashSet<String> = HashSet::new();
        for user in &self.spec.users {
            let folded = user.name.text.to_lowercase();
            if user.orgs.is_none() && defaults.orgs.is_none() {
                keeps_orgs.insert(folded.clone());
            }
            let groups = self.user_groups(user);
            for org in self.user_orgs(user, &groups)? {
                wanted.entry(org.id).or_default().insert(folded.clone());
            }
        }
        let declared: HashSet<String> = self
            .spec
            .users
            .iter()
            .map(|u| u.name.text.to_lowercase())
            .collect();
        for org in &self.spec.orgs {
            if org.members != Some(Authority::Exact) {
                continue;
            }
            let org = self.org(&org.name)?;
            let empty = HashSet::new();
            let wanted = wanted.get(&org.id).unwrap_or(&empty);
            for user in &self.index.principals.users {
                let folded = user.name.to_lowercase();
                if !user.org_ids.contains(&org.id)
                    || wanted.contains(&folded)
                    || keeps_orgs.contains(&folded)
                {
                    continue;
                }
                let is_caller = self
                    .options
                    .caller
                    .as_deref()
                    .is_some_and(|c| c.eq_ignore_ascii_case(&folded));
                let protection = if is_caller {
                    Some("the user running ts-principals".to_owned())
                } else if declared.contains(&folded) {
                    None
                } else {
                    protected_user(user, self.options.caller.as_deref())
                };
                if let Some(reason) = protection {
                    self.kept.push(Kept {
                        what: format!("user {:?} in org {:?}", user.name, org.name),
                        reason: format!("the user is {reason}"),
                    });
                    continue;
                }
                self.touched.insert(Key::user(&user.name));
                let change =
                    self.user_updates
                        .entry(folded)
                        .or_insert_with(|| Change::UpdateUser {
                            name: user.name.clone(),
                            id: user.id.clone(),
                            fields: Vec::new(),
                            orgs_added: Vec::new(),
                            orgs_removed: Vec::new(),
                        });
                if let Change::UpdateUser { orgs_removed, .. } = change {
                    orgs_removed.push(org.clone());
                }
            }
        }
        Ok(())
    }
}

impl Planner<'_> {
    /// True when `name` is given to `--unprotect`.
    fn unprotected(&self, name: &str) -> bool {
        (self.options.unprotect.iter()).any(|n| n.eq_ignore_ascii_case(name))
    }

    /// The orgs the spec manages: those it names, and the Primary org.
    fn managed_orgs(&self) -> Result<BTreeSet<i64>, PlanError> {
        let mut orgs: BTreeSet<i64> = self.groups.iter().map(|g| g.org.id).collect();
        orgs.insert(PRIMARY_ORG_ID);
        for org in &self.spec.orgs {
            orgs.insert(self.org(&org.name)?.id);
        }
        Ok(orgs)
    }

    /// The quarantine group of `org`: the cluster's, or one the plan creates.
    fn quarantine(&mut self, org: i64, created: &mut BTreeMap<i64, GroupRef>) -> GroupRef {
        if let Some(g) = self.index.group(org, QUARANTINE_GROUP) {
            self.touched.insert(self.cluster_group_key(g));
            return group_ref(&self.index, g);
        }
        created
            .entry(org)
            .or_insert_with(|| GroupRef {
                org: OrgRef {
                    id: org,
                    name: self.index.org_name(org),
                },
                name: QUARANTINE_GROUP.to_owned(),
                id: None,
            })
            .clone()
    }

    /// Refuses quarantine groups that give something: hidden principals
    /// would gain their privileges, or their parents'.
    fn check_quarantines(&self, managed: &BTreeSet<i64>) -> Result<(), PlanError> {
        for &org in managed {
            let Some(q) = self.index.group(org, QUARANTINE_GROUP) else {
                continue;
            };
            let group = &self.index.principals.groups[q];
            if !group.privileges.is_empty() || !group.parents.is_empty() {
                return Err(PlanError::Quarantine {
                    org: self.index.org_name(org),
                    privileges: group.privileges.join(", "),
                    parents: (group.parents.iter())
                        .map(|p| self.index.principals.groups[p.get()].name.clone())
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
        }
        Ok(())
    }

    /// True when cluster group `g` is in `org`'s quarantine group.
    fn quarantined_group(&self, g: usize, org: i64) -> bool {
        let Some(q) = self.index.group(org, QUARANTINE_GROUP) else {
            return false;
        };
        self.index.principals.groups[g]
            .parents
            .iter()
            .any(|p| p.get() == q)
    }

    /// The delete ladder: principals the cluster has and the spec does not
    /// declare, hidden, deactivated or deleted as `options.unmanaged` says.
    fn plan_unmanaged(&mut self) -> Result<(), PlanError> {
        let step = self.options.unmanaged;
        if step == Unmanaged::Ignore {
            return Ok(());
        }
        let declared_users: HashSet<String> = (self.spec.users.iter())
            .map(|u| u.name.text.to_lowercase())
            .collect();
        let declared_groups: HashSet<usize> =
            self.groups.iter().filter_map(|g| g.cluster).collect();
        let managed = self.managed_orgs()?;
        if step != Unmanaged::Delete {
            self.check_quarantines(&managed)?;
        }
        let mut created: BTreeMap<i64, GroupRef> = BTreeMap::new();
        let mut removals = Vec::new();
        let caller = self.options.caller.clone();
        let caller_groups =
            (caller.as_deref()).map_or_else(HashSet::new, |c| self.index.groups_of_user(c));
        let principals = self.index.principals;
        let mut users: Vec<usize> = (0..principals.users.len()).collect();
        users.sort_by(|&a, &b| principals.users[a].name.cmp(&principals.users[b].name));
        for u in users {
            let user = &principals.users[u];
            if declared_users.contains(&user.name.to_lowercase()) {
                continue;
            }
            // Users of an org the spec does not manage are not reached
            // (a user with no org reported is of the Primary org).
            let outside = if user.org_ids.is_empty() {
                !managed.contains(&PRIMARY_ORG_ID)
            } else {
                user.org_ids.iter().any(|o| !managed.contains(o))
            };
            if outside {
                continue;
            }
            if step == Unmanaged::Delete
                && UNDELETABLE_USERS
                    .iter()
                    .any(|n| n.eq_ignore_ascii_case(&user.name))
            {
                if self.unprotected(&user.name) {
                    return Err(PlanError::Undeletable {
                        what: format!("user {:?}", user.name),
                    });
                }
                self.kept.push(Kept {
                    what: format!("user {:?} (not in the spec)", user.name),
                    reason: "a built-in ThoughtSpot user, which ThoughtSpot does not delete".into(),
                });
                continue;
            }
            if !self.unprotected(&user.name)
                && let Some(reason) = protected_user(user, caller.as_deref())
            {
                self.kept.push(Kept {
                    what: format!("user {:?} (not in the spec)", user.name),
                    reason: format!(
                        "the user is {reason}; {} reaches it only when named with --unprotect",
                        step.flag()
                    ),
                });
                continue;
            }
            let change = match step {
                Unmanaged::Ignore => continue,
                Unmanaged::Hide => {
                    let org = (user.org_ids.iter().copied())
                        .find(|&o| o == PRIMARY_ORG_ID)
                        .or_else(|| user.org_ids.iter().copied().min())
                        .unwrap_or(PRIMARY_ORG_ID);
                    let hidden = user.visibility == Some(Visibility::NonSharable);
                    let inside = self
                        .index
                        .group(org, QUARANTINE_GROUP)
                        .is_some_and(|q| user.groups.iter().any(|g| g.get() == q));
                    if hidden && inside {
                        continue;
                    }
                    Change::HideUser {
                        name: user.name.clone(),
                        id: user.id.clone(),
                        visibility: text_of(user.visibility.as_ref()).to_owned(),
                        quarantine: self.quarantine(org, &mut created),
                    }
                }
                Unmanaged::Deactivate => {
                    if user.account_status == Some(crate::model::AccountStatus::Inactive) {
                        continue;
                    }
                    Change::DeactivateUser {
                        name: user.name.clone(),
                        id: user.id.clone(),
                    }
                }
                Unmanaged::Delete => {
                    if (self.options.transfer_to.as_deref())
                        .is_some_and(|t| t.eq_ignore_ascii_case(&user.name))
                    {
                        return Err(PlanError::TransferTo {
                            name: user.name.clone(),
                            problem: "is a user the plan deletes (not in the spec); declare it \
                                      in the spec or choose another user"
                                .into(),
                        });
                    }
                    Change::DeleteUser {
                        name: user.name.clone(),
                        id: user.id.clone(),
                        transfer_to: self.options.transfer_to.clone(),
                    }
                }
            };
            self.touched.insert(Key::user(&user.name));
            removals.push(change);
        }
        let mut groups: Vec<usize> = (0..principals.groups.len())
            .filter(|g| !declared_groups.contains(g))
            .filter(|&g| managed.contains(&group_org(&principals.groups[g])))
            .collect();
        groups.sort_by(|&a, &b| {
            let (a, b) = (&principals.groups[a], &principals.groups[b]);
            (group_org(a), &a.name).cmp(&(group_org(b), &b.name))
        });
        for g in groups {
            let group = &principals.groups[g];
            let org = group_org(group);
            if group.name.eq_ignore_ascii_case(QUARANTINE_GROUP) {
                continue;
            }
            if step == Unmanaged::Delete
                && UNDELETABLE_GROUPS
                    .iter()
                    .any(|n| n.eq_ignore_ascii_case(&group.name))
                && self.unprotected(&group.name)
            {
                return Err(PlanError::Undeletable {
                    what: format!("group {:?}", group.name),
                });
            }
            if !self.unprotected(&group.name)
                && let Some(reason) = protected_from_ladder(group, caller_groups.contains(&g))
            {
                self.kept.push(Kept {
                    what: format!(
                        "group {:?} (org {}; not in the spec)",
                        group.name,
                        self.index.org_name(org)
                    ),
                    reason: if step == Unmanaged::Delete
                        && UNDELETABLE_GROUPS
                            .iter()
                            .any(|n| n.eq_ignore_ascii_case(&group.name))
                    {
                        format!("the group is {reason}, which ThoughtSpot does not delete")
                    } else {
                        format!(
                            "the group is {reason}; {} reaches it only when named with --unprotect",
                            step.flag()
                        )
                    },
                });
                continue;
            }
            let change = if step == Unmanaged::Delete {
                Change::DeleteGroup {
                    group: group_ref(&self.index, g),
                }
            } else {
                if group.visibility == Some(Visibility::NonSharable)
                    && self.quarantined_group(g, org)
                {
                    continue;
                }
                Change::HideGroup {
                    group: group_ref(&self.index, g),
                    visibility: text_of(group.visibility.as_ref()).to_owned(),
                    quarantine: self.quarantine(org, &mut created),
                }
            };
            self.touched.insert(self.cluster_group_key(g));
            removals.push(change);
        }
        // The caller's own removal (named with --unprotect) goes last: the
        // run signs in as it.
        if let Some(caller) = &caller {
            removals.sort_by_key(|c| match c {
                Change::HideUser { name, .. }
                | Change::DeactivateUser { name, .. }
                | Change::DeleteUser { name, .. } => name.eq_ignore_ascii_case(caller),
                _ => false,
            });
        }
        if removals.len() > self.options.max_deletes {
            let names: Vec<String> = removals.iter().map(removal_name).collect();
            return Err(PlanError::TooManyRemovals {
                step: match step {
                    Unmanaged::Hide => "hide",
                    Unmanaged::Deactivate => "deactivate or hide",
                    _ => "delete",
                },
                flag: step.flag(),
                count: removals.len(),
                max: self.options.max_deletes,
                sample: sample_of(&names),
            });
        }
        for group in created.into_values() {
            self.touched.insert(Key::Group {
                org: group.org.name.clone(),
                name: group.name.clone(),
                members: false,
            });
            self.changes.push(Change::CreateGroup {
                group,
                attrs: GroupAttrs {
                    display_name: "Hidden by ts-principals (not in the spec)".to_owned(),
                    description: "Principals the spec does not declare, hidden by \
                                  `ts-principals plan --hide`; no privileges."
                        .to_owned(),
                    visibility: Visibility::NonSharable.as_str().to_owned(),
                    group_type: GroupType::LocalGroup.as_str().to_owned(),
                    privileges: Vec::new(),
                },
            });
        }
        self.removals = removals;
        Ok(())
    }

    /// Checks that the nesting the plan leaves (the cluster's, with the
    /// plan's group memberships added and removed) has no cycle: the spec
    /// alone may have none (validate checks that) and still close one with
    /// the cluster's groups, which ThoughtSpot refuses part-way through.
    fn check_nesting<'s>(&'s self) -> Result<(), PlanError> {
        use crate::model::GroupIx;
        // The cluster's groups keep their indexes; groups the plan creates
        // follow, one per org and name.
        let principals = self.index.principals;
        let mut parents: Vec<Vec<GroupIx>> = (principals.groups.iter())
            .map(|g| g.parents.clone())
            .collect();
        let mut orgs: Vec<i64> = principals.groups.iter().map(group_org).collect();
        let mut names: Vec<&str> = principals.groups.iter().map(|g| g.name.as_str()).collect();
        let by_id: HashMap<&str, usize> = (principals.groups.iter().enumerate())
            .map(|(i, g)| (g.id.as_str(), i))
            .collect();
        let mut created: HashMap<(i64, String), usize> = HashMap::new();
        let mut ix = |g: &'s GroupRef| -> GroupIx {
            let i = match g.id.as_deref().and_then(|id| by_id.get(id)) {
                Some(&i) => i,
                None => *created
                    .entry((g.org.id, g.name.to_lowercase()))
                    .or_insert_with(|| {
                        parents.push(Vec::new());
                        orgs.push(g.org.id);
                        names.push(&g.name);
                        parents.len() - 1
                    }),
            };
            GroupIx(u32::try_from(i).unwrap_or(u32::MAX))
        };
        let mut edits = Vec::new();
        for change in &self.memberships {
            if let Change::AddMember {
                group,
                member: Member::Group(member),
            }
            | Change::RemoveMember {
                group,
                member: Member::Group(member),
            } = change
            {
                let add = matches!(change, Change::AddMember { .. });
                edits.push((ix(member), ix(group), add));
            }
        }
        for (member, group, add) in edits {
            let list = &mut parents[member.get()];
            list.retain(|&p| p != group);
            if add {
                list.push(group);
            }
        }
        let Some(cycle) = crate::model::find_cycles_in(&parents).into_iter().next() else {
            return Ok(());
        };
        // Around the cycle, back to where it starts.
        let path: Vec<String> = (cycle.iter().chain(cycle.first()))
            .map(|g| format!("{:?}", names[g.get()]))
            .collect();
        Err(PlanError::NestingCycle {
            org: self.index.org_name(orgs[cycle[0].get()]).to_owned(),
            cycle: path.join(" → "),
        })
    }

    /// Checks what `members: exact` groups and orgs take away: no user
    /// may leave every org it is in (ThoughtSpot keeps each user in one;
    /// a user the ladder deletes simply keeps them until then), and no more
    /// removals than `--max-deletes` (a truncated source export feeding an
    /// exact group would otherwise empty it).
    fn check_exact_removals(&mut self) -> Result<(), PlanError> {
        let deleted: HashSet<String> = (self.removals.iter())
            .filter_map(|c| match c {
                Change::DeleteUser { name, .. } => Some(name.to_lowercase()),
                _ => None,
            })
            .collect();
        let principals = self.index.principals;
        let mut removals = std::mem::take(&mut self.exact_removals);
        let mut emptied = Vec::new();
        for (folded, change) in &mut self.user_updates {
            let Change::UpdateUser {
                name,
                orgs_added,
                orgs_removed,
                fields,
                ..
            } = change
            else {
                continue;
            };
            if orgs_removed.is_empty() {
                continue;
            }
            let Some(u) = self.index.user(name) else {
                continue;
            };
            let keeps = (principals.users[u].org_ids.iter())
                .any(|o| !orgs_removed.iter().any(|r| r.id == *o))
                || !orgs_added.is_empty();
            if !keeps {
                if !deleted.contains(folded) {
                    return Err(PlanError::NoOrgLeft {
                        name: name.clone(),
                        orgs: (orgs_removed.iter())
                            .map(|o| format!("{:?}", o.name))
                            .collect::<Vec<_>>()
                            .join(", "),
                    });
                }
                orgs_removed.clear();
                if fields.is_empty() && orgs_added.is_empty() {
                    emptied.push(folded.clone());
                }
                continue;
            }
            for org in orgs_removed.iter() {
                removals.push(format!("user {name:?} in org {:?}", org.name));
            }
        }
        for folded in emptied {
            self.user_updates.remove(&folded);
        }
        if removals.len() > self.options.max_deletes {
            return Err(PlanError::TooManyExactRemovals {
                count: removals.len(),
                max: self.options.max_deletes,
                sample: sample_of(&removals),
            });
        }
        Ok(())
    }

    /// Checks that every `--unprotect` name is a user or group of the
    /// cluster: a typo would leave the principal meant protected.
    fn check_unprotect(&self) -> Result<(), PlanError> {
        let principals = self.index.principals;
        for name in &self.options.unprotect {
            let known = self.index.user(name).is_some()
                || (principals.groups.iter()).any(|g| g.name.eq_ignore_ascii_case(name));
            if !known {
                return Err(PlanError::Unprotect { name: name.clone() });
            }
        }
        Ok(())
    }

    /// Checks `--transfer-to`: a user of the cluster the plan keeps.
    fn check_transfer_to(&self) -> Result<(), PlanError> {
        let Some(name) = &self.options.transfer_to else {
            return Ok(());
        };
        let options = crate::transfer::TransferOptions {
            from: "(a deleted user)".into(),
            to: name.clone(),
            dry_run: true,
        };
        if let Err(e) = crate::transfer::check(&options) {
            return Err(PlanError::TransferTo {
                name: name.clone(),
                problem: e.to_string(),
            });
        }
        if self.index.user(name).is_none()
            && !(self.spec.users.iter()).any(|u| u.name.text.eq_ignore_ascii_case(name))
        {
            return Err(PlanError::TransferTo {
                name: name.clone(),
                problem: "there is no such user on the cluster or in the spec".into(),
            });
        }
        Ok(())
    }
}

/// The first five of `names`, then `…` when there are more.
fn sample_of(names: &[String]) -> String {
    let mut sample = names.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
    if names.len() > 5 {
        sample.push_str(", …");
    }
    sample
}

fn removal_name(change: &Change) -> String {
    match change {
        Change::HideUser { name, .. }
        | Change::DeactivateUser { name, .. }
        | Change::DeleteUser { name, .. } => format!("user {name:?}"),
        Change::HideGroup { group, .. } | Change::DeleteGroup { group } => {
            format!("group {:?} (org {})", group.name, group.org.name)
        }
        _ => String::new(),
    }
}

/// Why a group of the caller is protected.
const CALLER_GROUP: &str =
    "a group the user running ts-principals is in (directly or through a nested group)";

/// Plans `spec` against `principals` (what the cluster has).
pub fn plan(
    spec: &Spec,
    spec_text: &str,
    principals: &Principals,
    options: &PlanOptions,
) -> Result<Plan, PlanError> {
    let report = validate::validate(spec);
    if !report.is_ok() {
        return Err(Invalid {
            origin: spec.origin.clone(),
            report,
        }
        .into());
    }
    let mut planner = Planner {
        spec,
        index: Index::new(principals),
        options,
        groups: Vec::new(),
        keys: HashMap::new(),
        changes: Vec::new(),
        memberships: Vec::new(),
        user_updates: BTreeMap::new(),
        removals: Vec::new(),
        exact_removals: Vec::new(),
        kept: Vec::new(),
        touched: BTreeSet::new(),
        knows_privileges: crate::spec::export::knows_privileges(principals),
    };
    planner.resolve_groups()?;
    for org in &spec.orgs {
        planner.org(&org.name)?;
    }
    planner.plan_groups();
    planner.plan_users()?;
    planner.plan_parents();
    planner.plan_exact();
    planner.check_nesting()?;
    planner.plan_exact_orgs()?;
    if options.unmanaged == Unmanaged::Delete {
        planner.check_transfer_to()?;
    }
    planner.check_unprotect()?;
    planner.plan_unmanaged()?;
    planner.check_exact_removals()?;
    let Planner {
        mut changes,
        mut memberships,
        user_updates,
        removals,
        kept,
        touched,
        index,
        ..
    } = planner;
    // Groups and users first (creations, then updates), then memberships:
    // a member and its group exist before the one joins the other.
    changes.sort_by_key(order);
    changes.extend(user_updates.into_values());
    memberships.sort_by(|a, b| membership_sort(a).cmp(&membership_sort(b)));
    memberships.dedup();
    changes.extend(memberships);
    // The ladder last: what the spec keeps is in place before anything
    // goes (a deleted user's objects go to a user the plan may create).
    changes.extend(removals);
    let records: Vec<Record> = touched.iter().map(|key| index.record(key)).collect();
    let mut plan = Plan {
        schema_version: PLAN_VERSION,
        tool: "ts-principals".to_owned(),
        cluster: ClusterRef {
            id: principals.source.cluster_id.clone(),
            url: principals.source.cluster_url.clone(),
        },
        spec: SpecRef {
            origin: spec.origin.clone(),
            sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(spec_text.as_bytes())),
        },
        fingerprint: String::new(),
        changes,
        kept,
        unmanaged: options.unmanaged,
        unprotected: options.unprotect.clone(),
        records,
    };
    plan.fingerprint = plan.compute_fingerprint();
    Ok(plan)
}

fn order(change: &Change) -> u8 {
    match change {
        Change::CreateGroup { .. } => 0,
        Change::UpdateGroup { .. } => 1,
        Change::CreateUser { .. } => 2,
        Change::UpdateUser { .. } => 3,
        Change::AddMember { .. } => 4,
        Change::RemoveMember { .. } => 5,
        _ => 6,
    }
}

fn membership_sort(change: &Change) -> (Option<&GroupRef>, u8, Option<&Member>) {
    match change {
        Change::AddMember { group, member } => (Some(group), 0, Some(member)),
        Change::RemoveMember { group, member } => (Some(group), 1, Some(member)),
        other => (None, order(other), None),
    }
}

#[cfg(test)]
mod tests;
