//! The main job: principals → CSV data + TML + manifest, as a set of files
//! keyed by their path inside the output directory (`data/users.csv`,
//! `tml/TS_USERS.table.tml`, `manifest.json`).
//!
//! [`generate`] renders and checks the TML (small) and counts the rows; the
//! data tables (large) are rendered when a caller asks, straight into a
//! writer: [`crate::output::write`] streams them into files while hashing
//! them, `diff` renders them into memory with [`Generated::into_output`](crate::generate::Generated::into_output).

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::PathBuf;

use serde::Serialize;

use crate::config::{ConfigError, ProjectConfig};
use crate::history::{self, History};
use crate::input::InputKind;
use crate::model::{BuildReport, Principals};
use crate::output::{FileInfo, FileSet};
use crate::render::{self, RenderError, Templates, TmlSettings};
use crate::schema::activity::{Held, Source};
use crate::schema::attribution::{self, GroupActivityDef};
use crate::schema::{IdentifierCase, Table, TableDef};
use crate::sink::{DataOptions, csv};

/// Directory of the data files inside the output directory.
pub const DATA_DIR: &str = "data";
/// Directory of the TML files inside the output directory.
pub const TML_DIR: &str = "tml";

/// Everything that decides the output besides the principals.
#[derive(Clone, Debug, Default)]
pub struct GenerateOptions {
    /// How data cells are written.
    pub data: DataOptions,
    /// What the TML describes.
    pub tml: TmlSettings,
    /// Where templates come from.
    pub templates: Templates,
    /// A time to record in the manifest (`--stamp`); none keeps output
    /// byte-identical run after run.
    pub stamp: Option<String>,
    /// The time the principals describe (`--as-of`), `YYYY-MM-DD HH:MM:SS`
    /// UTC: what the membership history stamps changes with, recorded in
    /// the manifest for `load`. None takes the input's `fetched_at`.
    pub as_of: Option<String>,
    /// Also write the group activity as CSV (`--group-activity`).
    pub group_activity: bool,
}

impl GenerateOptions {
    /// Options as a project config says, with templates from `templates`.
    pub fn from_config(config: &ProjectConfig, templates: Templates) -> Result<Self, ConfigError> {
        let timezone =
            jiff::tz::TimeZone::get(&config.data.timezone).map_err(|e| ConfigError::Invalid {
                origin: "settings".into(),
                key: "data.timezone",
                problem: e.to_string(),
            })?;
        Ok(GenerateOptions {
            data: DataOptions {
                excel_safe: config.data.excel_safe,
                timezone,
            },
            tml: TmlSettings::from_config(&config.tml),
            templates,
            stamp: None,
            as_of: None,
            group_activity: false,
        })
    }
}

/// Every file of one generation, by path, in path order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OutputSet {
    /// Path → content.
    pub files: BTreeMap<String, Vec<u8>>,
}

/// Counts recorded in the manifest.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Orgs.
    pub orgs: usize,
    /// Users.
    pub users: usize,
    /// Groups.
    pub groups: usize,
    /// Direct user → group memberships.
    pub direct_memberships: usize,
    /// Effective memberships (rows of group_memberships, per org).
    pub effective_memberships: usize,
    /// Group → parent edges.
    pub hierarchy_edges: usize,
}

/// `manifest.json`: what a run wrote. `activity` rewrites it with the
/// principal parts (`I`nput, `C`ounts, `R`epairs) as `generate` left them.
#[derive(Serialize)]
pub(crate) struct Manifest<'a, I, C, R> {
    pub tool: &'static str,
    pub version: &'static str,
    pub input: I,
    pub counts: C,
    pub repairs: R,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub activity: &'a Held,
    pub files: &'a BTreeMap<String, FileInfo>,
    pub database: &'a DatabaseLayout,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generated_at: Option<&'a str>,
}

impl<I: Serialize, C: Serialize, R: Serialize> Manifest<'_, I, C, R> {
    /// The manifest as written: pretty JSON and a line end.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut json = serde_json::to_vec_pretty(self).unwrap_or_default();
        json.push(b'\n');
        json
    }
}

/// Where and under which names the data is meant to be loaded: what the
/// TML beside it describes. `load` creates exactly these tables, so the
/// TML and the database agree by construction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct DatabaseLayout {
    /// The TML's connection; none for Falcon tables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<String>,
    /// The TML's `db`.
    pub database: String,
    /// The TML's `schema`.
    pub schema: String,
    /// Case of every name below.
    pub identifier_case: IdentifierCase,
    /// Every data table, in file order.
    pub tables: Vec<TableDef>,
    /// The group activity views over the activity tables and the
    /// membership history (`load` creates them; `--materialize` makes
    /// them tables).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub group_activity: Vec<GroupActivityDef>,
}

impl DatabaseLayout {
    /// The layout the TML settings describe, with the activity tables of
    /// the worksheets `held` records.
    pub fn of(tml: &TmlSettings, held: &Held) -> Self {
        let principals =
            (Table::ALL.iter()).map(|t| t.definition(&tml.table_prefix, tml.identifier_case));
        let (prefix, case) = (&tml.table_prefix, tml.identifier_case);
        let history = std::iter::once(attribution::history_definition(prefix, case));
        let activity =
            (held.iter()).map(|(&source, copied)| copied.definition(source, prefix, case));
        DatabaseLayout {
            connection: tml.connection.clone(),
            database: tml.database.clone(),
            schema: tml.schema.clone(),
            identifier_case: tml.identifier_case,
            tables: principals.chain(history).chain(activity).collect(),
            group_activity: (held.iter())
                .filter_map(|(&source, copied)| GroupActivityDef::of(source, copied, prefix, case))
                .collect(),
        }
    }
}

/// What a new generation carries from an output directory: the activity
/// it holds (`ts-principals activity` copied it), unchanged, and the
/// membership history, advanced.
#[derive(Clone, Debug, Default)]
pub struct Carried {
    /// The output directory the files are in.
    pub dir: PathBuf,
    /// What its manifest records of each worksheet.
    pub held: Held,
    /// The membership history to write, advanced to these principals
    /// ([`crate::history`]); none starts it with them.
    pub history: Option<History>,
    /// The time the history carried was already of (its directory's
    /// manifest), when it is of the same cluster.
    pub prior_as_of: Option<String>,
}

#[derive(Serialize)]
struct ManifestInput<'a> {
    kind: InputKind,
    cluster_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    api: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    release_version: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    as_of: Option<&'a str>,
}

/// One generation, ready to be written: the checked TML in memory, the data
/// tables rendered on request.
#[derive(Debug)]
pub struct Generated<'p> {
    principals: &'p Principals,
    report: &'p BuildReport,
    kind: InputKind,
    data: DataOptions,
    stamp: Option<String>,
    /// The TML files by path, in path order.
    tml: Vec<(String, Vec<u8>)>,
    /// Activity files carried over.
    carried: Carried,
    /// The membership history.
    history: History,
    as_of: Option<String>,
    /// Write the group activity as CSV.
    group_activity: bool,
    /// The tables the data is loaded into.
    pub layout: DatabaseLayout,
    /// What the files hold.
    pub counts: Counts,
}

/// Where the content of one file comes from.
#[derive(Clone, Copy, Debug)]
pub enum Content {
    /// A data table, rendered on request.
    Table(Table),
    /// A TML file already rendered: its index among the TML files.
    Tml(usize),
    /// An activity file the directory holds, copied as it is.
    Carried(Source),
    /// The membership history.
    History,
    /// The group activity of an activity file (`--group-activity`).
    GroupActivity(Source),
}

impl FileSet for Generated<'_> {
    type Source = Content;

    fn files(&self) -> BTreeMap<String, Content> {
        let tables = Table::ALL
            .iter()
            .map(|&t| (format!("{DATA_DIR}/{}.csv", t.name()), Content::Table(t)));
        let tml =
            (self.tml.iter().enumerate()).map(|(i, (path, _))| (path.clone(), Content::Tml(i)));
        let carried = (self.carried.held.keys()).map(|&source| {
            (
                format!("{DATA_DIR}/{}", source.file()),
                Content::Carried(source),
            )
        });
        let history = std::iter::once((
            format!("{DATA_DIR}/{}", history::file_name()),
            Content::History,
        ));
        let group_activity = (self.layout.group_activity.iter())
            .filter(|_| self.group_activity)
            .map(|view| {
                (
                    format!("{DATA_DIR}/{}", view.file()),
                    Content::GroupActivity(view.source),
                )
            });
        (tables.chain(history).chain(tml).chain(carried))
            .chain(group_activity)
            .collect()
    }

    fn write(&self, content: Content, out: &mut dyn Write) -> io::Result<Option<usize>> {
        match content {
            Content::Table(table) => {
                csv::write_table(table, self.principals, &self.data, out).map(Some)
            }
            Content::Tml(i) => out.write_all(&self.tml[i].1).map(|()| None),
            Content::Carried(source) => {
                let path = self.carried.dir.join(DATA_DIR).join(source.file());
                copy_counting(&path, out).map(Some)
            }
            Content::History => self.history.write(out).map(Some),
            Content::GroupActivity(source) => {
                let view = (self.layout.group_activity.iter())
                    .find(|v| v.source == source)
                    .ok_or_else(|| io::Error::other("no group activity for the source"))?;
                let copied = &self.carried.held[&source];
                let path = self.carried.dir.join(DATA_DIR).join(source.file());
                crate::group_activity::write_csv(
                    view,
                    &copied.time_column,
                    &path,
                    &self.history,
                    out,
                )
                .map(Some)
            }
        }
    }

    /// The manifest: tool, input, counts, repairs, and what `files` says
    /// of every file (by path).
    fn manifest(&self, files: &BTreeMap<String, FileInfo>) -> Vec<u8> {
        let source = &self.principals.source;
        let manifest = Manifest {
            tool: crate::output::TOOL,
            version: env!("CARGO_PKG_VERSION"),
            input: ManifestInput {
                kind: self.kind,
                cluster_id: &source.cluster_id,
                api: source.api.as_deref(),
                release_version: source.release_version.as_deref(),
                as_of: self.as_of.as_deref(),
            },
            counts: &self.counts,
            repairs: self.report,
            activity: &self.carried.held,
            files,
            database: &self.layout,
            generated_at: self.stamp.as_deref(),
        };
        manifest.to_bytes()
    }

    /// `data/<table>.csv` and `tml/<name>.tml`, one level deep.
    fn may_own(relative: &str) -> bool {
        match relative.split_once('/') {
            Some((DATA_DIR, name)) => !name.contains('/') && name.ends_with(".csv"),
            Some((TML_DIR, name)) => !name.contains('/') && name.ends_with(".tml"),
            _ => false,
        }
    }
}

impl Generated<'_> {
    /// Every file rendered into memory, the manifest included. Handy for
    /// tests and small sets; writing and `diff` stream instead.
    pub fn into_output(self) -> OutputSet {
        OutputSet {
            files: crate::output::in_memory(&self),
        }
    }
}

/// Renders and checks the TML for `principals` and counts what the data
/// tables will hold; the tables themselves are rendered when written.
pub fn generate<'p>(
    principals: &'p Principals,
    report: &'p BuildReport,
    kind: InputKind,
    options: &GenerateOptions,
    mut carried: Carried,
) -> Result<Generated<'p>, RenderError> {
    let history = (carried.history.take())
        .unwrap_or_else(|| History::first(history::memberships(principals, &options.data)));
    let as_of = recorded_as_of(
        principals,
        kind,
        options,
        (&history, carried.prior_as_of.as_deref()),
    );
    let tml = render::render_all(&options.tml, &options.templates, &carried.held)?
        .into_iter()
        .map(|file| {
            (
                format!("{TML_DIR}/{}", file.file_name),
                file.text.into_bytes(),
            )
        })
        .collect::<BTreeMap<_, _>>()
        .into_iter()
        .collect();
    let counts = Counts {
        orgs: principals.orgs.len(),
        users: principals.users.len(),
        groups: principals.groups.len(),
        direct_memberships: principals.direct_membership_count(),
        effective_memberships: csv::row_count(Table::GroupMemberships, principals),
        hierarchy_edges: principals.hierarchy_edge_count(),
    };
    Ok(Generated {
        principals,
        report,
        kind,
        data: options.data.clone(),
        stamp: options.stamp.clone(),
        tml,
        layout: DatabaseLayout::of(&options.tml, &carried.held),
        carried,
        history,
        as_of,
        group_activity: options.group_activity,
        counts,
    })
}

/// The time the manifest says the principals are of, for `load` to stamp
/// membership changes with and to refuse older data: `--as-of`, else the
/// time a saved input was fetched. A live fetch, new every run, records the
/// time it was first seen in this state instead — the latest change of its
/// history, else the time its directory was already of, else the fetch —
/// so the manifest stays the same until the memberships change.
fn recorded_as_of(
    principals: &Principals,
    kind: InputKind,
    options: &GenerateOptions,
    (history, prior): (&History, Option<&str>),
) -> Option<String> {
    if let Some(as_of) = &options.as_of {
        return Some(as_of.clone());
    }
    let fetched = history::as_of(None, principals.source.fetched_at.as_deref())
        .ok()
        .flatten();
    if kind != InputKind::Cluster {
        return fetched;
    }
    let latest = history.latest(&principals.source.cluster_id);
    match latest.max(prior) {
        Some(seen) => Some(seen.to_owned()),
        None => fetched,
    }
}

/// Copies the CSV file at `path` into `out`, returning its data rows.
pub fn copy_counting(path: &std::path::Path, out: &mut dyn Write) -> io::Result<usize> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    let mut counter = crate::load::RecordCounter::default();
    let mut buffer = vec![0; crate::load::CHUNK];
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        counter.feed(&buffer[..n]);
        out.write_all(&buffer[..n])?;
    }
    Ok(counter.records_after_header(true) as usize)
}
