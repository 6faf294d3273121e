//! The data tables of DESIGN §6: their names, columns, types and keys. The
//! CSV sink writes them, the table TML describes them and `load` creates
//! them, so all three read them here, and TML and database agree by
//! construction.

pub mod activity;
pub mod attribution;

use serde::{Deserialize, Serialize};

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

/// The type of a column, as the data holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    /// Text of any length.
    Text,
    /// A 64-bit integer.
    Bigint,
    /// `true` or `false`.
    Boolean,
    /// `YYYY-MM-DD HH:MM:SS`, without a zone (the data's zone, UTC by default).
    Timestamp,
    /// A 64-bit float.
    Double,
}

impl ColumnType {
    /// The type's name in PostgreSQL, and in messages.
    pub fn sql_name(self) -> &'static str {
        match self {
            ColumnType::Text => "text",
            ColumnType::Bigint => "bigint",
            ColumnType::Boolean => "boolean",
            ColumnType::Timestamp => "timestamp",
            ColumnType::Double => "double precision",
        }
    }

    /// The TML `data_type`s that describe this type.
    pub fn tml_types(self) -> &'static [&'static str] {
        match self {
            ColumnType::Text => &["VARCHAR"],
            ColumnType::Bigint => &["INT64"],
            ColumnType::Boolean => &["BOOL"],
            ColumnType::Timestamp => &["DATE_TIME"],
            ColumnType::Double => &["DOUBLE", "FLOAT"],
        }
    }
}

/// One column of a data table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Column {
    /// Lower snake case name: the CSV header, and the database name after
    /// [`IdentifierCase::apply`].
    pub name: &'static str,
    /// Its type.
    pub ty: ColumnType,
}

const fn text(name: &'static str) -> Column {
    Column {
        name,
        ty: ColumnType::Text,
    }
}

const fn bigint(name: &'static str) -> Column {
    Column {
        name,
        ty: ColumnType::Bigint,
    }
}

const fn timestamp(name: &'static str) -> Column {
    Column {
        name,
        ty: ColumnType::Timestamp,
    }
}

const ORGS: &[Column] = &[
    text("cluster_id"),
    bigint("org_id"),
    text("org_name"),
    text("description"),
];
const USERS: &[Column] = &[
    text("cluster_id"),
    text("user_guid"),
    text("username"),
    text("email"),
    text("display_name"),
    text("sharing_visibility"),
    text("user_type"),
    text("account_status"),
    timestamp("created"),
    timestamp("modified"),
];
const ORG_MEMBERSHIPS: &[Column] = &[text("cluster_id"), text("user_guid"), bigint("org_id")];
const GROUPS: &[Column] = &[
    text("cluster_id"),
    bigint("org_id"),
    text("group_guid"),
    text("group_name"),
    text("display_name"),
    text("description"),
    text("sharing_visibility"),
    text("group_type"),
    timestamp("created"),
    timestamp("modified"),
];
const GROUP_PRIVILEGES: &[Column] = &[
    text("cluster_id"),
    bigint("org_id"),
    text("group_guid"),
    text("privilege"),
];
const GROUP_MEMBERSHIPS: &[Column] = &[
    text("cluster_id"),
    bigint("org_id"),
    text("user_guid"),
    text("group_guid"),
    Column {
        name: "is_direct",
        ty: ColumnType::Boolean,
    },
    bigint("depth"),
];
const GROUP_HIERARCHY: &[Column] = &[
    text("cluster_id"),
    bigint("org_id"),
    text("group_guid"),
    text("parent_group_guid"),
];

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

    /// Columns, in order.
    pub fn columns(self) -> &'static [Column] {
        match self {
            Table::Orgs => ORGS,
            Table::Users => USERS,
            Table::OrgMemberships => ORG_MEMBERSHIPS,
            Table::Groups => GROUPS,
            Table::GroupPrivileges => GROUP_PRIVILEGES,
            Table::GroupMemberships => GROUP_MEMBERSHIPS,
            Table::GroupHierarchy => GROUP_HIERARCHY,
        }
    }

    /// How many leading columns make the primary key (DESIGN §6): the
    /// tables whose key is "all" columns use every column.
    pub fn key_len(self) -> usize {
        match self {
            Table::Orgs | Table::Users => 2,
            Table::Groups => 3,
            Table::GroupMemberships => 4,
            Table::OrgMemberships | Table::GroupPrivileges | Table::GroupHierarchy => {
                self.columns().len()
            }
        }
    }

    /// The table's name in ThoughtSpot: `prefix` + upper-case name
    /// (`TS_` + `users` → `TS_USERS`).
    pub fn object_name(self, prefix: &str) -> String {
        format!("{prefix}{}", self.name().to_ascii_uppercase())
    }

    /// The table as it is created in a database: names in `case`.
    pub fn definition(self, prefix: &str, case: IdentifierCase) -> TableDef {
        let key_len = self.key_len();
        TableDef {
            kind: None,
            file: format!("{}.csv", self.name()),
            table: case.apply(&self.object_name(prefix)),
            columns: (self.columns().iter().enumerate())
                .map(|(i, c)| ColumnDef {
                    csv: c.name.to_owned(),
                    name: case.apply(c.name),
                    ty: c.ty,
                    key: i < key_len,
                    identity: false,
                })
                .collect(),
        }
    }
}

/// The case of table and column names in the database and in the TML's
/// `db_table` and `db_column_name`. ThoughtSpot quotes identifiers, so the
/// stored case must match exactly.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdentifierCase {
    /// `TS_USERS`, `USER_GUID`: Snowflake and Falcon store unquoted names so.
    #[default]
    Upper,
    /// `ts_users`, `user_guid`: PostgreSQL, Redshift, Databricks and
    /// BigQuery.
    Lower,
}

impl IdentifierCase {
    /// `name` in this case. Only ASCII letters change, so a configured
    /// prefix with other characters is kept as written.
    pub fn apply(self, name: &str) -> String {
        match self {
            IdentifierCase::Upper => name.to_ascii_uppercase(),
            IdentifierCase::Lower => name.to_ascii_lowercase(),
        }
    }

    /// `"upper"` or `"lower"`.
    pub fn as_str(self) -> &'static str {
        match self {
            IdentifierCase::Upper => "upper",
            IdentifierCase::Lower => "lower",
        }
    }
}

/// Where the tables are loaded: decides the default identifier case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// PostgreSQL (`load --to postgres://…`).
    Postgres,
    /// Amazon Redshift.
    Redshift,
    /// Databricks.
    Databricks,
    /// Google BigQuery.
    Bigquery,
    /// Snowflake.
    Snowflake,
    /// ThoughtSpot's own Falcon database (Software clusters).
    Falcon,
}

impl Target {
    /// The case unquoted names are stored in, which is what other tools and
    /// people typing SQL expect: upper for Snowflake and Falcon, lower for
    /// the rest.
    pub fn default_case(self) -> IdentifierCase {
        match self {
            Target::Snowflake | Target::Falcon => IdentifierCase::Upper,
            Target::Postgres | Target::Redshift | Target::Databricks | Target::Bigquery => {
                IdentifierCase::Lower
            }
        }
    }

    /// Lower-case name, as written in the config and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Target::Postgres => "postgres",
            Target::Redshift => "redshift",
            Target::Databricks => "databricks",
            Target::Bigquery => "bigquery",
            Target::Snowflake => "snowflake",
            Target::Falcon => "falcon",
        }
    }
}

/// One column as created in a database.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnDef {
    /// The CSV header.
    pub csv: String,
    /// The database column name (`db_column_name` in the TML).
    pub name: String,
    /// Its type.
    #[serde(rename = "type")]
    pub ty: ColumnType,
    /// Part of the primary key.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub key: bool,
    /// In a table without a primary key (an activity table): part of what
    /// identifies a row, so a row loaded again replaces the one held.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub identity: bool,
}

/// How `load` brings a table up to date.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TableKind {
    /// Replaced whole by each load: the principal tables.
    Snapshot,
    /// Rows are added; a row loaded again (same identity) replaces the one
    /// held: the activity tables.
    Append,
    /// Advanced by each load: memberships that ended are closed, new ones
    /// opened (`group_memberships_history`, DESIGN §6).
    History,
}

/// One table as created in a database, recorded in the manifest so that
/// `load` creates exactly what the TML beside it describes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableDef {
    /// How a load brings it up to date; unset for the principal tables
    /// (snapshots) and the activity tables (no key: appended).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<TableKind>,
    /// The CSV file in the data directory (`users.csv`).
    pub file: String,
    /// The database table name (`db_table` in the TML).
    pub table: String,
    /// Columns, in CSV order.
    pub columns: Vec<ColumnDef>,
}

impl TableDef {
    /// How a load brings the table up to date.
    pub fn kind(&self) -> TableKind {
        match self.kind {
            Some(kind) => kind,
            None if self.key().next().is_none() => TableKind::Append,
            None => TableKind::Snapshot,
        }
    }

    /// The column whose CSV name is `csv`.
    pub fn column(&self, csv: &str) -> Option<&ColumnDef> {
        self.columns.iter().find(|c| c.csv == csv)
    }

    /// The primary key columns, in order.
    pub fn key(&self) -> impl Iterator<Item = &ColumnDef> {
        self.columns.iter().filter(|c| c.key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_the_leading_columns_design_names() {
        let key = |t: Table| -> Vec<String> {
            let def = t.definition("TS_", IdentifierCase::Lower);
            def.key().map(|c| c.csv.clone()).collect()
        };
        assert_eq!(key(Table::Users), ["cluster_id", "user_guid"]);
        assert_eq!(key(Table::Groups), ["cluster_id", "org_id", "group_guid"]);
        assert_eq!(
            key(Table::GroupMemberships),
            ["cluster_id", "org_id", "user_guid", "group_guid"]
        );
        assert_eq!(
            key(Table::OrgMemberships),
            ["cluster_id", "user_guid", "org_id"]
        );
    }

    #[test]
    fn identifier_case_decides_every_name() {
        let upper = Table::Users.definition("ts_", IdentifierCase::Upper);
        assert_eq!(upper.table, "TS_USERS");
        assert_eq!(upper.columns[1].name, "USER_GUID");
        assert_eq!(upper.columns[1].csv, "user_guid");
        let lower = Table::Users.definition("TS_", IdentifierCase::Lower);
        assert_eq!(lower.table, "ts_users");
        assert_eq!(lower.columns[1].name, "user_guid");
        assert_eq!(Target::Snowflake.default_case(), IdentifierCase::Upper);
        assert_eq!(Target::Postgres.default_case(), IdentifierCase::Lower);
    }
}
