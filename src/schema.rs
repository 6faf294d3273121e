//! The data tables of DESIGN §6: their names and columns. The CSV sink
//! writes them and the table TML describes them, so both read them here.

/// The data tables, in the order they are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Table {
    /// One row per org.
    Orgs,
    /// One row per user.
    Users,
    /// User → org.
    OrgMemberships,
    /// One row per (org, group).
    Groups,
    /// Group → privilege.
    GroupPrivileges,
    /// Effective user → group membership with `is_direct` and `depth`.
    GroupMemberships,
    /// Group → parent group.
    GroupHierarchy,
}

impl Table {
    /// Every table, in output order.
    pub const ALL: [Table; 7] = [
        Table::Orgs,
        Table::Users,
        Table::OrgMemberships,
        Table::Groups,
        Table::GroupPrivileges,
        Table::GroupMemberships,
        Table::GroupHierarchy,
    ];

    /// Lower-case name: the CSV file stem, and the table name after
    /// upper-casing and prefixing (`TS_USERS`).
    pub fn name(self) -> &'static str {
        match self {
            Table::Orgs => "orgs",
            Table::Users => "users",
            Table::OrgMemberships => "org_memberships",
            Table::Groups => "groups",
            Table::GroupPrivileges => "group_privileges",
            Table::GroupMemberships => "group_memberships",
            Table::GroupHierarchy => "group_hierarchy",
        }
    }

    /// Column names, in order.
    pub fn columns(self) -> &'static [&'static str] {
        match self {
            Table::Orgs => &["cluster_id", "org_id", "org_name", "description"],
            Table::Users => &[
                "cluster_id",
                "user_guid",
                "username",
                "email",
                "display_name",
                "sharing_visibility",
                "user_type",
                "account_status",
                "created",
                "modified",
            ],
            Table::OrgMemberships => &["cluster_id", "user_guid", "org_id"],
            Table::Groups => &[
                "cluster_id",
                "org_id",
                "group_guid",
                "group_name",
                "display_name",
                "description",
                "sharing_visibility",
                "group_type",
                "created",
                "modified",
            ],
            Table::GroupPrivileges => &["cluster_id", "org_id", "group_guid", "privilege"],
            Table::GroupMemberships => &[
                "cluster_id",
                "org_id",
                "user_guid",
                "group_guid",
                "is_direct",
                "depth",
            ],
            Table::GroupHierarchy => &["cluster_id", "org_id", "group_guid", "parent_group_guid"],
        }
    }

    /// The table's name in the database and in TML: `prefix` + upper-case
    /// name (`TS_` + `users` → `TS_USERS`).
    pub fn object_name(self, prefix: &str) -> String {
        format!("{prefix}{}", self.name().to_ascii_uppercase())
    }
}
