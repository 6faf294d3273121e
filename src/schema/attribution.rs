//! The tables that attribute activity to groups (DESIGN §6): the
//! membership history, and the group activity built from it and an
//! activity table, one row per activity row and group the user was in at
//! that moment.

use serde::{Deserialize, Serialize};

use super::activity::{CLUSTER_ID, Copied, Source};
use super::{Column, ColumnType, IdentifierCase, Table, TableDef, TableKind, timestamp};

/// The history's name: its CSV file stem, and the table name after
/// upper-casing and prefixing.
pub const HISTORY: &str = "group_memberships_history";

/// Columns of the history: a membership, as `group_memberships` has it,
/// and the time it began and ended. `valid_from` is empty for memberships
/// held since before the history began, `valid_to` while it lasts.
pub fn history_columns() -> Vec<Column> {
    (Table::GroupMemberships.columns().iter().copied())
        .chain([timestamp("valid_from"), timestamp("valid_to")])
        .collect()
}

/// The history table as created in a database. It has no primary key
/// (`valid_from` is empty for the first snapshot's rows); a load advances
/// it rather than replacing it.
pub fn history_definition(prefix: &str, case: IdentifierCase) -> TableDef {
    TableDef {
        kind: Some(TableKind::History),
        file: format!("{HISTORY}.csv"),
        table: case.apply(&format!("{prefix}{}", HISTORY.to_ascii_uppercase())),
        columns: (history_columns().into_iter())
            .map(|c| super::ColumnDef {
                csv: c.name.to_owned(),
                name: case.apply(c.name),
                ty: c.ty,
                key: false,
                identity: false,
            })
            .collect(),
    }
}

/// The membership columns every group activity row starts with, read from
/// the history (`cluster_id` from the activity row, which equals it).
const MEMBERSHIP: [&str; 6] = [
    "cluster_id",
    "org_id",
    "group_guid",
    "user_guid",
    "is_direct",
    "depth",
];

/// Activity columns of free text, often long, that the group activity
/// leaves out (they would be repeated for every group of the user).
const LONG_TEXT: [&str; 4] = ["url", "query_text", "query_sql", "error_message"];

/// One column of a group activity view.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewColumn {
    /// Lower snake case name: the CSV header, and the name in the TML
    /// before the identifier case is applied.
    pub csv: String,
    /// The database name.
    pub name: String,
    /// Its type.
    #[serde(rename = "type")]
    pub ty: ColumnType,
    /// Read from the membership history (else from the activity table).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub membership: bool,
    /// The database name of the column it is read from.
    pub from: String,
}

/// The activity table's columns the attribution joins on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinColumns {
    /// The cluster id.
    pub cluster: String,
    /// The user's GUID.
    pub user: String,
    /// The org the activity happened in (a bigint); without it the
    /// activity counts in the Primary org (0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    /// The time of the activity (UTC).
    pub time: String,
}

/// The membership history's columns the attribution reads.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryColumns {
    /// The cluster id.
    pub cluster: String,
    /// The org.
    pub org: String,
    /// The user's GUID.
    pub user: String,
    /// When the membership began (NULL: before history began).
    pub valid_from: String,
    /// When it ended (NULL: it lasts).
    pub valid_to: String,
}

/// `group_activity` for one activity table (DESIGN §6): one row per
/// activity row and group the user belonged to when it happened, in the
/// org where it happened, directly or through nesting. A view in a
/// database (`load --materialize` makes it a table), recorded in the
/// manifest's `database.group_activity`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupActivityDef {
    /// The worksheet the activity comes from.
    pub source: Source,
    /// The view's database name.
    pub view: String,
    /// The activity table it reads.
    pub activity: String,
    /// The membership history it reads.
    pub history: String,
    /// What it joins on in the activity table.
    pub on: JoinColumns,
    /// What it joins on in the history.
    pub membership: HistoryColumns,
    /// Its columns, in order: the membership's, then the activity's (all
    /// but the long free texts: URL, Query Text, Query SQL, Error Message).
    pub columns: Vec<ViewColumn>,
}

impl GroupActivityDef {
    /// The group activity of `copied`'s table, or none when the worksheet
    /// has no user column to attribute by.
    pub fn of(source: Source, copied: &Copied, prefix: &str, case: IdentifierCase) -> Option<Self> {
        let activity = copied.definition(source, prefix, case);
        let history = history_definition(prefix, case);
        let name_of = |csv: &str| {
            history
                .column(csv)
                .map_or_else(|| case.apply(csv), |c| c.name.clone())
        };
        let user = activity.column("user_id")?;
        let time = activity.column(&copied.time_column)?;
        let org = (activity.column("org_id")).filter(|c| c.ty == ColumnType::Bigint);
        let mut columns: Vec<ViewColumn> = MEMBERSHIP
            .iter()
            .map(|&csv| {
                let (from, ty) = match csv {
                    CLUSTER_ID => (activity.columns[0].name.clone(), ColumnType::Text),
                    _ => {
                        let c = history.column(csv).map(|c| (c.name.clone(), c.ty));
                        c.unwrap_or_else(|| (case.apply(csv), ColumnType::Text))
                    }
                };
                ViewColumn {
                    csv: csv.to_owned(),
                    name: case.apply(csv),
                    ty,
                    membership: csv != CLUSTER_ID,
                    from,
                }
            })
            .collect();
        // Every column of the activity but the long free texts, so a search
        // can split or filter activity per group by any attribute (User
        // Action, Client Type…) on this fact alone.
        for c in &activity.columns[1..] {
            let taken = MEMBERSHIP.contains(&c.csv.as_str()) || c.csv == "user_id";
            if !taken && !LONG_TEXT.contains(&c.csv.as_str()) {
                columns.push(ViewColumn {
                    csv: c.csv.clone(),
                    name: c.name.clone(),
                    ty: c.ty,
                    membership: false,
                    from: c.name.clone(),
                });
            }
        }
        Some(GroupActivityDef {
            source,
            view: case.apply(&group_activity_name(source, prefix)),
            activity: activity.table.clone(),
            history: history.table.clone(),
            on: JoinColumns {
                cluster: activity.columns[0].name.clone(),
                user: user.name.clone(),
                org: org.map(|c| c.name.clone()),
                time: time.name.clone(),
            },
            columns,
            membership: HistoryColumns {
                cluster: name_of("cluster_id"),
                org: name_of("org_id"),
                user: name_of("user_guid"),
                valid_from: name_of("valid_from"),
                valid_to: name_of("valid_to"),
            },
        })
    }

    /// The query the view runs: each activity row joined to the history
    /// rows of its cluster, user and org (the Primary org, 0, when the
    /// activity has none) that were valid at its time: `valid_from` (NULL:
    /// before history began) at or before it, `valid_to` (NULL: still
    /// valid) after it. `table` qualifies and quotes a table name,
    /// `quote` quotes a column name, in the dialect's way.
    pub fn select_sql(
        &self,
        table: &dyn Fn(&str) -> String,
        quote: &dyn Fn(&str) -> String,
    ) -> String {
        let columns: Vec<String> = (self.columns.iter())
            .map(|c| {
                let side = if c.membership { "m" } else { "a" };
                format!("{side}.{} AS {}", quote(&c.from), quote(&c.name))
            })
            .collect();
        let (a, m) = (&self.on, &self.membership);
        let org = match &a.org {
            Some(org) => format!("COALESCE(a.{}, 0)", quote(org)),
            None => "0".to_owned(),
        };
        let time = format!("a.{}", quote(&a.time));
        format!(
            "SELECT {} FROM {} a JOIN {} m ON m.{} = a.{} AND m.{} = a.{} AND m.{} = {org} \
             AND (m.{from} IS NULL OR m.{from} <= {time}) AND (m.{to} IS NULL OR {time} < m.{to})",
            columns.join(", "),
            table(&self.activity),
            table(&self.history),
            quote(&m.cluster),
            quote(&a.cluster),
            quote(&m.user),
            quote(&a.user),
            quote(&m.org),
            from = quote(&m.valid_from),
            to = quote(&m.valid_to),
        )
    }

    /// The view as a table filled from its CSV (for Falcon, which has no
    /// views): replaced whole by each load.
    pub fn as_table(&self) -> TableDef {
        TableDef {
            kind: Some(TableKind::Snapshot),
            file: self.file(),
            table: self.view.clone(),
            columns: (self.columns.iter())
                .map(|c| super::ColumnDef {
                    csv: c.csv.clone(),
                    name: c.name.clone(),
                    ty: c.ty,
                    key: false,
                    identity: false,
                })
                .collect(),
        }
    }

    /// The CSV `generate --group-activity` writes: `group_activity_bi_server.csv`.
    pub fn file(&self) -> String {
        format!("group_activity_{}.csv", self.source.key())
    }
}

/// The object name of a group activity view: `prefix` +
/// `GROUP_ACTIVITY_BI_SERVER`.
pub fn group_activity_name(source: Source, prefix: &str) -> String {
    format!(
        "{prefix}GROUP_ACTIVITY_{}",
        source.key().to_ascii_uppercase()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_activity_carries_the_activity_but_its_long_texts() {
        let held = crate::activity::sample_held();
        let copied = &held[&Source::BiServer];
        let def = GroupActivityDef::of(Source::BiServer, copied, "TS_", IdentifierCase::Lower)
            .expect("BI Server has a user column");
        let names: Vec<&str> = def.columns.iter().map(|c| c.csv.as_str()).collect();
        assert_eq!(
            &names[..6],
            [
                "cluster_id",
                "org_id",
                "group_guid",
                "user_guid",
                "is_direct",
                "depth"
            ]
        );
        assert!(names.contains(&"incident_id"), "{names:?}");
        assert!(names.contains(&"timestamp"), "{names:?}");
        assert!(names.contains(&"impressions"), "{names:?}");
        assert!(!names.contains(&"user_id"), "{names:?}");
        assert!(names.contains(&"user_action"), "{names:?}");
        assert!(!names.contains(&"query_text"), "{names:?}");
        assert_eq!(def.view, "ts_group_activity_bi_server");
        assert_eq!(def.history, "ts_group_memberships_history");
        assert_eq!(def.on.org.as_deref(), Some("org_id"));
        let history = history_definition("TS_", IdentifierCase::Upper);
        assert_eq!(history.table, "TS_GROUP_MEMBERSHIPS_HISTORY");
        assert_eq!(history.kind(), TableKind::History);
    }
}
