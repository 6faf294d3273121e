//! What an output directory holds of the activity worksheets: which
//! worksheet, its columns, and the table it is loaded into. `activity`
//! writes it into the manifest; `generate`, `load` and the TML read it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{ColumnDef, ColumnType, IdentifierCase, TableDef};

/// An activity worksheet ts-principals copies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// TS: BI Server: one row per user action (Primary org).
    BiServer,
    /// TS: AI and BI Stats (formerly TS: Embrace Stats Worksheet): one row
    /// per query ThoughtSpot sent to a database.
    AiBiStats,
}

impl Source {
    /// Both, in output order.
    pub const ALL: [Source; 2] = [Source::BiServer, Source::AiBiStats];

    /// `bi_server` or `ai_bi_stats`: the key in the manifest and in the
    /// templates, and the end of the file and table names.
    pub fn key(self) -> &'static str {
        match self {
            Source::BiServer => "bi_server",
            Source::AiBiStats => "ai_bi_stats",
        }
    }

    /// `bi-server` or `ai-bi-stats`, as `--source` takes it.
    pub fn flag(self) -> &'static str {
        match self {
            Source::BiServer => "bi-server",
            Source::AiBiStats => "ai-bi-stats",
        }
    }

    /// The worksheet's current name, for messages.
    pub fn label(self) -> &'static str {
        self.worksheet_names()[0]
    }

    /// The names the worksheet has had, newest first: the first one a
    /// cluster has is copied.
    pub fn worksheet_names(self) -> &'static [&'static str] {
        match self {
            Source::BiServer => &["TS: BI Server"],
            Source::AiBiStats => &[
                "TS: AI and BI Stats",
                "TS: AI and BI Stats (Beta)",
                "TS: Embrace Stats Worksheet v2",
                "TS: Embrace Stats Worksheet",
                "TS: Query Stats Worksheet",
            ],
        }
    }

    /// Names of the column that dates a row, in order of preference.
    pub fn time_columns(self) -> &'static [&'static str] {
        match self {
            Source::BiServer => &["Timestamp"],
            Source::AiBiStats => &["TS Query Start Time", "DB Start Time", "DB End Time"],
        }
    }

    /// Which of `columns` identify a row, with the cluster id: TS: BI
    /// Server's Incident Id, Timestamp and Viz Id; the stats worksheet's
    /// Query ID (else Trace ID). A row read again under the same identity
    /// replaces the one held, so a status or measure filled in later is
    /// updated, not doubled. A worksheet without those columns is told
    /// apart by every attribute (every column but the measures).
    pub fn identity(self, columns: &[ActivityColumn]) -> Vec<bool> {
        let has = |name: &str| columns.iter().any(|c| c.csv == name);
        let chosen: &[&str] = match self {
            Source::BiServer if has("incident_id") => &["incident_id", "timestamp", "viz_id"],
            Source::AiBiStats if has("query_id") => &["query_id"],
            Source::AiBiStats if has("trace_id") => &["trace_id"],
            _ => return columns.iter().map(|c| !c.measure).collect(),
        };
        (columns.iter())
            .map(|c| chosen.contains(&c.csv.as_str()))
            .collect()
    }

    /// The data file in `OUT/data`: `activity_bi_server.csv`.
    pub fn file(self) -> String {
        format!("activity_{}.csv", self.key())
    }

    /// The table's name in ThoughtSpot: `prefix` + `ACTIVITY_BI_SERVER`.
    pub fn object_name(self, prefix: &str) -> String {
        format!("{prefix}ACTIVITY_{}", self.key().to_ascii_uppercase())
    }
}

/// What the output directory holds of one worksheet: recorded in the
/// manifest (`activity`), so `generate`, `load` and the next `activity`
/// know the columns without asking the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Copied {
    /// The worksheet's name on the cluster.
    pub worksheet: String,
    /// Its GUID.
    pub worksheet_guid: String,
    /// The org it was read in.
    pub org_id: i64,
    /// The zone the cluster's times were read in (UTC on Cloud); every
    /// time in the data is UTC.
    pub time_zone: String,
    /// The CSV name of the column that dates a row.
    pub time_column: String,
    /// The worksheet's columns, in its order (the data file starts with
    /// `cluster_id` before them).
    pub columns: Vec<ActivityColumn>,
    /// Rows held.
    pub rows: usize,
    /// Time of the newest row held (UTC), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newest: Option<String>,
}

impl Copied {
    /// The table as created in a database: `cluster_id`, then the
    /// worksheet's columns. It has no primary key (texts such as Query Text
    /// are too long for an index): a row is told apart by the cluster id
    /// and [`Source::identity`].
    pub fn definition(&self, source: Source, prefix: &str, case: IdentifierCase) -> TableDef {
        let cluster = ColumnDef {
            csv: CLUSTER_ID.to_owned(),
            name: case.apply(CLUSTER_ID),
            ty: ColumnType::Text,
            key: false,
            identity: true,
        };
        let identity = source.identity(&self.columns);
        TableDef {
            kind: None,
            file: source.file(),
            table: case.apply(&source.object_name(prefix)),
            columns: std::iter::once(cluster)
                .chain(
                    self.columns
                        .iter()
                        .zip(identity)
                        .map(|(c, identity)| ColumnDef {
                            csv: c.csv.clone(),
                            name: case.apply(&c.csv),
                            ty: c.ty,
                            key: false,
                            identity,
                        }),
                )
                .collect(),
        }
    }
}

/// The manifest's `activity` section: what is held of each worksheet.
pub type Held = BTreeMap<Source, Copied>;

/// The first column of every activity file.
pub const CLUSTER_ID: &str = "cluster_id";

/// One worksheet column.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivityColumn {
    /// Its name in the worksheet (and in the table TML): `Latency (us)`.
    pub name: String,
    /// Its name in the data: `latency_us`.
    pub csv: String,
    /// The type the data holds.
    #[serde(rename = "type")]
    pub ty: ColumnType,
    /// A measure (searches return it aggregated, as `Total …`); the rest
    /// are attributes, which together identify a row.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub measure: bool,
}
