//! The normalized model of a cluster's principals, independent of the API
//! version it came from.
//!
//! [`Principals`] holds orgs, users and groups in their canonical order (orgs by
//! id, users and groups by `(name, id)`), with direct memberships and the group
//! hierarchy resolved to indices. [`Builder`] turns loosely-typed records from
//! any input into that shape: it merges exact duplicates, rejects conflicting
//! ones, drops dangling references (warning once with a count) and reports
//! cycles in group nesting. [`effective_memberships`](crate::model::Principals::effective_memberships) derives the transitive
//! user → group membership with `is_direct` and `depth`.

mod build;
mod effective;
mod enums;
mod ids;

pub use build::{
    BuildError, BuildReport, Builder, Conflict, GroupRecord, OrgRecord, Origin, UserRecord,
};
pub(crate) use effective::find_cycles_in;
pub use effective::{EffectiveMembership, effective_memberships};
pub use enums::{AccountStatus, AccountType, GroupType, Visibility};
pub use ids::Id;

use std::sync::OnceLock;

/// The org every single-tenant cluster has, and the one principals without org
/// information are placed in.
pub const PRIMARY_ORG_ID: i64 = 0;
/// Name of [`PRIMARY_ORG_ID`].
pub const PRIMARY_ORG_NAME: &str = "Primary";

/// Cluster id used when neither the input nor the settings name one.
pub const DEFAULT_CLUSTER_ID: &str = "default";

/// Milliseconds since the Unix epoch, as ThoughtSpot reports times.
pub type Millis = i64;

/// Index of a group in [`Principals::groups`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupIx(pub u32);

impl GroupIx {
    /// The index as a `usize`, for slicing.
    pub fn get(self) -> usize {
        self.0 as usize
    }
}

/// Now in UTC, to the second (`2026-11-20T06:00:00Z`), as snapshots
/// (`fetched_at`) and manifests (`generated_at`) record it.
pub fn timestamp_now() -> String {
    jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// Where a set of principals came from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Source {
    /// Identifies the cluster in every output row (`cluster_id` column).
    pub cluster_id: String,
    /// Base URL of the cluster, when fetched.
    pub cluster_url: Option<String>,
    /// ThoughtSpot release, when known.
    pub release_version: Option<String>,
    /// REST API the principals were read with (`v2`, `v1`), when known.
    pub api: Option<String>,
    /// When the principals were fetched (RFC 3339), when known.
    pub fetched_at: Option<String>,
}

/// A ThoughtSpot org (tenant).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Org {
    /// Numeric org id; 0 is the Primary org.
    pub id: i64,
    /// Org name.
    pub name: String,
    /// Free-text description (may be empty).
    pub description: String,
}

/// A ThoughtSpot user. Users are cluster-wide; `org_ids` says which orgs they
/// belong to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// The user's GUID.
    pub id: String,
    /// True when `id` was derived by ts-principals (v1 inputs carry no GUIDs).
    pub derived_id: bool,
    /// Username (login name).
    pub name: String,
    /// Display name (may be empty).
    pub display_name: String,
    /// E-mail address (may be empty).
    pub email: String,
    /// Sharing visibility.
    pub visibility: Option<Visibility>,
    /// How the account authenticates.
    pub account_type: Option<AccountType>,
    /// Whether the account can log in.
    pub account_status: Option<AccountStatus>,
    /// Creation time.
    pub created: Option<Millis>,
    /// Last modification time.
    pub modified: Option<Millis>,
    /// Orgs the user belongs to, ascending.
    pub org_ids: Vec<i64>,
    /// Groups the user is a direct member of, ascending.
    pub groups: Vec<GroupIx>,
}

/// A ThoughtSpot group. Groups live in an org (normally exactly one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    /// The group's GUID.
    pub id: String,
    /// True when `id` was derived by ts-principals (v1 inputs carry no GUIDs).
    pub derived_id: bool,
    /// Group name (unique per org).
    pub name: String,
    /// Display name (may be empty).
    pub display_name: String,
    /// Free-text description (may be empty).
    pub description: String,
    /// Kind of group.
    pub group_type: Option<GroupType>,
    /// Sharing visibility.
    pub visibility: Option<Visibility>,
    /// Creation time.
    pub created: Option<Millis>,
    /// Last modification time.
    pub modified: Option<Millis>,
    /// Orgs the group lives in, ascending.
    pub org_ids: Vec<i64>,
    /// Groups this group is a direct member of (its parents), ascending.
    pub parents: Vec<GroupIx>,
    /// Privileges granted to members, sorted and unique.
    pub privileges: Vec<String>,
}

/// Every principal of a cluster, normalized and in canonical order.
///
/// Made by [`Builder::build`]; the effective memberships are derived from the
/// users and groups on first use.
#[derive(Clone, Debug, Default)]
pub struct Principals {
    /// Where the principals came from.
    pub source: Source,
    /// Orgs, by id.
    pub orgs: Vec<Org>,
    /// Users, by `(name, id)`.
    pub users: Vec<User>,
    /// Groups, by `(name, id)`.
    pub groups: Vec<Group>,
    effective: OnceLock<Vec<EffectiveMembership>>,
}

/// Equal principals are equal whether or not their derived memberships have
/// been computed yet.
impl PartialEq for Principals {
    fn eq(&self, other: &Self) -> bool {
        (&self.source, &self.orgs, &self.users, &self.groups)
            == (&other.source, &other.orgs, &other.users, &other.groups)
    }
}

impl Eq for Principals {}

impl Principals {
    fn new(source: Source, orgs: Vec<Org>, users: Vec<User>, groups: Vec<Group>) -> Self {
        Self {
            source,
            orgs,
            users,
            groups,
            effective: OnceLock::new(),
        }
    }

    /// Every effective (transitive) membership, ordered by `(user, group)`.
    pub fn effective_memberships(&self) -> &[EffectiveMembership] {
        self.effective
            .get_or_init(|| effective_memberships(&self.users, &self.groups))
    }

    /// The group at `ix`.
    pub fn group(&self, ix: GroupIx) -> &Group {
        &self.groups[ix.get()]
    }

    /// Number of direct user → group memberships.
    pub fn direct_membership_count(&self) -> usize {
        self.users.iter().map(|u| u.groups.len()).sum()
    }

    /// Number of group → parent-group edges.
    pub fn hierarchy_edge_count(&self) -> usize {
        self.groups.iter().map(|g| g.parents.len()).sum()
    }

    /// Position of each org id in [`Principals::orgs`], for ordering rows by org.
    /// Every org id used by a user or group is present (the builder guarantees it).
    pub fn org_rank(&self) -> std::collections::HashMap<i64, u32> {
        self.orgs
            .iter()
            .enumerate()
            .map(|(rank, org)| (org.id, rank as u32))
            .collect()
    }
}
