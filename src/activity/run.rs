//! One `activity` run: read what the output directory holds, find the
//! worksheets on the cluster, read the windows that are new, and write the
//! merged data, the TML and the manifest back as one set (all or nothing,
//! as `generate` writes).

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::value::RawValue;

use super::fetch::{self, FetchError, Found, PRIMARY_ORG, WindowReader, WindowRows};
use super::held::{HeldError, HeldRows, Merged, Order, Row, merge};
use super::query::Clock;
use super::response::Reader;
use super::window::{self, Event, Window, utc_text};
use super::{Copied, Held, Source, columns};
use crate::atomic::Wait;
use crate::client::auth::{Auth, describe};
use crate::client::http::Http;
use crate::client::v2::V2;
use crate::client::{ClientError, Connection};
use crate::generate::{DATA_DIR, DatabaseLayout, Manifest, TML_DIR, copy_counting};
use crate::output::{self, FileInfo, FileSet, MANIFEST, OutputDir, OutputError, WriteSummary};
use crate::render::{self, RenderError, Templates, TmlSettings};
use crate::schema::Table;

/// Most searches one run may plan before any split.
pub const MAX_WINDOWS: i64 = 100_000;

/// The earliest time a run reads (2000-01-01 00:00:00 UTC): ThoughtSpot
/// keeps no activity older.
pub const EARLIEST: i64 = 946_684_800;

/// How to copy.
#[derive(Clone, Debug)]
pub struct ActivityOptions {
    /// The worksheets to copy.
    pub sources: Vec<Source>,
    /// Read from this second (`--since`) instead of resuming.
    pub since: Option<i64>,
    /// Read up to this second (`--until`), else up to now.
    pub until: Option<i64>,
    /// Seconds re-read before the newest row held.
    pub overlap: i64,
    /// Seconds read by a first copy without `--since`.
    pub first_copy: i64,
    /// Most rows one search returns (the API's cap).
    pub row_cap: usize,
    /// Rows asked for per page.
    pub page_size: usize,
    /// Searches in flight at once.
    pub concurrency: usize,
    /// Longest window searched at once, in seconds, before any split.
    pub window: i64,
    /// What the TML describes (as `generate` was given it).
    pub tml: TmlSettings,
    /// The templates (as `generate` was given them).
    pub templates: Templates,
    /// Whether to wait for another run holding the directory.
    pub wait: Wait,
    /// The time of this run (Unix seconds): `--until` and durations count
    /// from it.
    pub now: i64,
    /// A database the data is loaded into (`--to`): a copy resumes after
    /// the newest row it holds when that is newer than the newest in the
    /// directory.
    pub database: Option<InDatabase>,
}

/// Where `load` puts the activity tables.
#[derive(Clone, Debug)]
pub struct InDatabase {
    /// The PostgreSQL server.
    pub target: crate::load::postgres::Target,
    /// The schema.
    pub schema: String,
}

impl Default for ActivityOptions {
    fn default() -> Self {
        ActivityOptions {
            sources: Source::ALL.to_vec(),
            since: None,
            until: None,
            overlap: 3600,
            first_copy: 30 * 86_400,
            row_cap: 100_000,
            page_size: 20_000,
            concurrency: 4,
            window: 86_400,
            tml: TmlSettings::default(),
            templates: Templates::builtin(),
            wait: Wait::Block,
            now: jiff::Timestamp::now().as_second(),
            database: None,
        }
    }
}

/// Hears how a copy is going.
pub trait Progress: Sync {
    /// A step began.
    fn step(&self, message: &str);
    /// A page of `source` arrived with `rows`.
    fn page(&self, source: Source, rows: usize);
    /// A window of `source` was read, or split.
    fn window(&self, source: Source, event: Event);
}

/// A progress that says nothing.
impl Progress for () {
    fn step(&self, _: &str) {}
    fn page(&self, _: Source, _: usize) {}
    fn window(&self, _: Source, _: Event) {}
}

/// What was copied of one worksheet.
#[derive(Clone, Debug)]
pub struct Copy {
    /// Which one.
    pub source: Source,
    /// Its name on the cluster.
    pub worksheet: String,
    /// Its GUID.
    pub guid: String,
    /// The time range read; none when there was nothing to read.
    pub range: Option<Window>,
    /// Windows read whole (after splitting).
    pub windows: usize,
    /// Windows split because they reached the cap.
    pub splits: usize,
    /// Search requests made.
    pub pages: usize,
    /// Rows read in the range.
    pub read: usize,
    /// Of those, rows already held (the overlap).
    pub already_held: usize,
    /// Rows the file holds now.
    pub rows: usize,
    /// Time of the newest row held now.
    pub newest: Option<String>,
}

/// What a run did.
#[derive(Debug)]
pub struct Report {
    /// The cluster.
    pub cluster_id: String,
    /// Where the worksheets were read: `org 0 (Primary)`, or the token's org.
    pub org: String,
    /// The zone the cluster's times were read in.
    pub time_zone: String,
    /// Each worksheet copied.
    pub copies: Vec<Copy>,
    /// Worksheets the cluster does not have, with why.
    pub missing: Vec<(Source, String)>,
    /// What changed in the output directory.
    pub written: WriteSummary,
}

/// Why a copy failed. Nothing in the output directory changed.
#[derive(Debug, thiserror::Error)]
pub enum ActivityError {
    /// The output directory could not be opened or written.
    #[error(transparent)]
    Output(#[from] OutputError),
    /// The directory holds no generated principals.
    #[error(
        "{dir} holds no {MANIFEST}: activity copies into an output directory of `ts-principals \
         generate`, beside the principals its rows join; run `ts-principals generate --out {dir}` \
         first"
    )]
    NotGenerated {
        /// The directory.
        dir: String,
    },
    /// The manifest cannot be read.
    #[error("{path}: {problem}")]
    Manifest {
        /// The manifest.
        path: PathBuf,
        /// What is wrong and what to do.
        problem: String,
    },
    /// The cluster is not the one whose principals the directory holds.
    #[error(
        "{dir} holds the principals of cluster {held:?}, but {url} is cluster {cluster:?}; \
         activity must join the principals of its own cluster: use another --out (or \
         generate from this cluster first)"
    )]
    OtherCluster {
        /// The directory.
        dir: String,
        /// The cluster it holds.
        held: String,
        /// The cluster read.
        cluster: String,
        /// Its URL.
        url: String,
    },
    /// Signing in or asking the cluster failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// A worksheet asked for is not on the cluster.
    #[error("{0}")]
    NoWorksheet(String),
    /// A one-second window holds as many rows as a search returns.
    #[error(
        "{worksheet}: the second {window} holds at least {cap} rows, as many as one search \
         returns (--row-cap), so some could not be read; nothing was written. If the cluster \
         allows more rows per search, raise --row-cap"
    )]
    AtCap {
        /// The worksheet.
        worksheet: String,
        /// The window.
        window: Window,
        /// The cap.
        cap: usize,
    },
    /// A search failed.
    #[error("reading {worksheet} from {url}: {source}")]
    Fetch {
        /// The worksheet.
        worksheet: String,
        /// The cluster.
        url: String,
        /// What failed, with the window.
        #[source]
        source: Box<FetchError>,
    },
    /// The data held cannot be merged.
    #[error(transparent)]
    Held(#[from] HeldError),
    /// The database given to resume from cannot be read.
    #[error(transparent)]
    Database(#[from] crate::load::postgres::PgError),
    /// The TML cannot be rendered.
    #[error(transparent)]
    Render(#[from] RenderError),
    /// The TML settings are not those the directory was generated with.
    #[error(
        "{path} would change: this run's TML settings or templates are not those {dir} was \
         generated with; give activity the same --config and --templates as generate"
    )]
    Settings {
        /// The file that would change.
        path: PathBuf,
        /// The directory.
        dir: String,
    },
    /// The time range cannot be read as asked.
    #[error("{0}")]
    Range(String),
    /// Something local failed (the async runtime, the cluster's zone).
    #[error("{0}")]
    Setup(String),
}

impl ActivityError {
    /// The cluster or the network failed (exit 3).
    pub fn is_cluster(&self) -> bool {
        match self {
            ActivityError::Client(e) => {
                !matches!(e, ClientError::Setup(_) | ClientError::Unsupported(_))
            }
            ActivityError::Fetch { .. }
            | ActivityError::AtCap { .. }
            | ActivityError::NoWorksheet(_) => true,
            _ => false,
        }
    }

    /// The output directory could not be written or was busy (exit 4).
    pub fn is_output(&self) -> bool {
        matches!(self, ActivityError::Output(_))
    }
}

/// The manifest as `generate` wrote it, the principal parts kept as text.
#[derive(Deserialize)]
struct Prior {
    tool: Option<String>,
    input: Box<RawValue>,
    counts: Box<RawValue>,
    repairs: Box<RawValue>,
    #[serde(default)]
    activity: Held,
    #[serde(default)]
    files: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    generated_at: Option<String>,
}

#[derive(Deserialize)]
struct PriorInput {
    cluster_id: String,
}

/// What an output directory's manifest records of activity, for
/// `generate` to carry; empty when it has no manifest or no activity.
pub fn held_in(out: &Path) -> Result<Held, ActivityError> {
    let path = out.join(MANIFEST);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Held::new()),
        Err(e) => return Err(OutputError::Io { path, source: e }.into()),
    };
    #[derive(Deserialize)]
    struct Section {
        #[serde(default)]
        activity: Held,
        #[serde(default)]
        files: BTreeMap<String, serde_json::Value>,
    }
    let section: Section = serde_json::from_slice(&bytes).map_err(|e| ActivityError::Manifest {
        path: path.clone(),
        problem: format!(
            "its activity section cannot be read ({e}); restore the file (git checkout) or \
             remove the section to drop the activity copy"
        ),
    })?;
    let mut held = section.activity;
    let mut gone = Vec::new();
    for source in held.keys() {
        let relative = format!("{DATA_DIR}/{}", source.file());
        let file = out.join(&relative);
        if !file.is_file() {
            tracing::warn!(
                "{} is gone; its activity is left out (run `ts-principals activity` to copy it \
                 again)",
                file.display()
            );
            gone.push(*source);
            continue;
        }
        // Carried as it is, so it must be what the manifest records: an
        // edit would otherwise be recorded as ours.
        let entry = section.files.get(&relative);
        let sha = entry.and_then(|f| f.get("sha256")).and_then(|v| v.as_str());
        let rows = entry.and_then(|f| f.get("rows")).and_then(|v| v.as_u64());
        super::held::check_recorded(&file, sha, rows)?;
    }
    for source in gone {
        held.remove(&source);
    }
    Ok(held)
}

fn read_prior(out: &Path) -> Result<(Prior, String), ActivityError> {
    let path = out.join(MANIFEST);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(ActivityError::NotGenerated {
                dir: out.display().to_string(),
            });
        }
        Err(e) => return Err(OutputError::Io { path, source: e }.into()),
    };
    let problem = |problem: String| ActivityError::Manifest {
        path: path.clone(),
        problem,
    };
    let prior: Prior = serde_json::from_slice(&bytes).map_err(|e| {
        problem(format!(
            "cannot be read as the manifest of `ts-principals generate` ({e}); run generate again"
        ))
    })?;
    if prior.tool.as_deref() != Some(output::TOOL) {
        return Err(problem("was not written by ts-principals".into()));
    }
    let input: PriorInput = serde_json::from_str(prior.input.get())
        .map_err(|e| problem(format!("its input section names no cluster_id ({e})")))?;
    Ok((prior, input.cluster_id))
}

/// Checks what `out` holds of activity against its manifest before
/// anything is read from the cluster: a held file must be the one the
/// manifest records, a file the manifest does not record is not
/// overwritten, and a held file that is gone is dropped (the next copy of
/// its worksheet starts afresh).
fn check_held(out: &Path, prior: &mut Prior) -> Result<(), ActivityError> {
    for source in Source::ALL {
        let relative = format!("{DATA_DIR}/{}", source.file());
        let path = out.join(&relative);
        let present = path.is_file();
        match (prior.activity.contains_key(&source), present) {
            (true, true) => {
                let entry = prior.files.get(&relative);
                let sha = entry.and_then(|f| f.get("sha256")).and_then(|v| v.as_str());
                let rows = entry.and_then(|f| f.get("rows")).and_then(|v| v.as_u64());
                super::held::check_recorded(&path, sha, rows)?;
            }
            (true, false) => {
                tracing::warn!(
                    "{} is gone; {} is copied afresh when asked for",
                    path.display(),
                    source.label()
                );
                prior.activity.remove(&source);
                prior.files.remove(&relative);
            }
            (false, true) => {
                return Err(ActivityError::Manifest {
                    path: out.join(MANIFEST),
                    problem: format!(
                        "records no activity copy of {}, but {} exists: restore manifest.json \
                         (git checkout), or move the file away to copy the activity afresh",
                        source.label(),
                        path.display()
                    ),
                });
            }
            (false, false) => {}
        }
    }
    Ok(())
}

/// Copies the activity of the cluster at `connection` into `out`.
pub fn run(
    out: &Path,
    connection: &Connection,
    options: &ActivityOptions,
    progress: &dyn Progress,
) -> Result<Report, ActivityError> {
    if !out.join(MANIFEST).is_file() {
        return Err(ActivityError::NotGenerated {
            dir: out.display().to_string(),
        });
    }
    let dir = output::open(out, options.wait, Assembly::may_own)?;
    let (mut prior, cluster_id) = read_prior(out)?;
    check_held(out, &mut prior)?;
    // The TML is rendered with the GUIDs generate wrote into it (an
    // import since may know more; the next generate writes them).
    let mut options = options.clone();
    options.tml.guids = render::check::guids_in(&out.join(TML_DIR));
    let options = &options;
    // What is held, checked before the cluster is asked anything.
    let mut newest_held: BTreeMap<Source, (Option<i64>, usize)> = BTreeMap::new();
    for (&source, copied) in &prior.activity {
        if !options.sources.contains(&source) {
            continue;
        }
        let path = out.join(DATA_DIR).join(source.file());
        if !path.is_file() {
            continue;
        }
        progress.step(&format!("reading {}", path.display()));
        let rows = HeldRows::open(
            &path,
            copied,
            &copied.columns,
            &copied.time_column,
            &cluster_id,
            Order::of(source, &copied.columns),
        )?;
        newest_held.insert(source, rows.scan()?);
    }
    let mut resume: BTreeMap<Source, i64> = (newest_held.iter())
        .filter_map(|(&source, (newest, _))| Some((source, (*newest)?)))
        .collect();
    if let Some(database) = &options.database {
        let case = options.tml.identifier_case;
        for &source in &options.sources {
            let table = case.apply(&source.object_name(&options.tml.table_prefix));
            progress.step(&format!(
                "reading the newest row of {}.{table}",
                database.schema
            ));
            let columns: Vec<String> = (source.time_columns().iter())
                .map(|c| case.apply(&columns::snake_case(c)))
                .collect();
            let newest = crate::load::postgres::newest(
                &database.target,
                &database.schema,
                &table,
                &columns,
                (&case.apply(columns::CLUSTER_ID), &cluster_id),
            )?;
            if let Some(newest) = newest {
                tracing::info!(
                    "{}.{table} holds {} rows up to {} UTC",
                    database.schema,
                    source.label(),
                    utc_text(newest)
                );
                let entry = resume.entry(source).or_insert(newest);
                *entry = (*entry).max(newest);
            }
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| ActivityError::Setup(format!("cannot start the async runtime: {e}")))?;
    let fetched = runtime.block_on(read_cluster(
        out,
        connection,
        options,
        &cluster_id,
        &resume,
        progress,
    ))?;
    drop(runtime);
    progress.step("writing");
    let (assembly, mut copies) = assemble(
        &dir,
        prior,
        cluster_id.clone(),
        &fetched,
        &newest_held,
        options,
    )?;
    let written = dir.write(&assembly)?;
    let merged = assembly
        .merged
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for copy in &mut copies {
        if let Some(merged) = merged.get(&copy.source) {
            copy.rows = merged.rows;
            copy.already_held = merged.already_held;
        }
    }
    Ok(Report {
        cluster_id,
        org: fetched.org,
        time_zone: fetched.clock.name().to_owned(),
        copies,
        missing: fetched.missing,
        written,
    })
}

/// What the cluster gave.
struct Fetched {
    org: String,
    clock: Clock,
    copies: Vec<(Found, Option<Window>, Vec<Row>, Copy)>,
    missing: Vec<(Source, String)>,
}

async fn read_cluster(
    out: &Path,
    connection: &Connection,
    options: &ActivityOptions,
    cluster_id: &str,
    resume: &BTreeMap<Source, i64>,
    progress: &dyn Progress,
) -> Result<Fetched, ActivityError> {
    let http = Http::new(connection)?;
    let auth = Auth::new(connection.credentials.clone())?;
    let api = V2 {
        http: &http,
        auth: &auth,
    };
    progress.step("signing in");
    let system = api.system().await?;
    let cluster = system.id().unwrap_or_default();
    if cluster != cluster_id {
        return Err(ActivityError::OtherCluster {
            dir: out.display().to_string(),
            held: cluster_id.to_owned(),
            cluster,
            url: http.base().to_owned(),
        });
    }
    let clock = fetch::clock(!system.is_cloud(), system.time_zone.as_deref())
        .map_err(ActivityError::Setup)?;
    // The system worksheets live in the Primary org; a token made
    // elsewhere searches in its own org, which may not see them.
    let (scope, org) = if auth.scopes_tokens() {
        (Some(PRIMARY_ORG), format!("org {PRIMARY_ORG} (Primary)"))
    } else {
        (None, "the bearer token's org".to_owned())
    };
    tracing::info!(
        "cluster {cluster_id} (release {}, times in {}); reading activity in {org}",
        system.release_version.as_deref().unwrap_or("unknown"),
        clock.name()
    );
    let end = options.until.unwrap_or(options.now);
    let mut fetched = Fetched {
        org,
        clock,
        copies: Vec::new(),
        missing: Vec::new(),
    };
    for &source in &options.sources {
        progress.step(&format!("looking for {}", source.label()));
        let found = fetch::find(&api, source, scope)
            .await
            .map_err(|e| ActivityError::Fetch {
                worksheet: source.label().to_owned(),
                url: http.base().to_owned(),
                source: Box::new(e),
            })?;
        let Some(found) = found else {
            let mut why = format!(
                "{} has no {} (looked for {} in {})",
                http.base(),
                source.label(),
                source
                    .worksheet_names()
                    .iter()
                    .map(|n| format!("{n:?}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                describe(scope)
            );
            if scope.is_none() {
                why.push_str(
                    "; the system worksheets live in the Primary org (0): use a bearer token \
                     issued for org 0, or sign in with a password or secret key",
                );
            }
            fetched.missing.push((source, why));
            continue;
        };
        if !found.others.is_empty() {
            tracing::warn!(
                "{} objects are named {:?}; reading {} (the others: {})",
                found.others.len() + 1,
                found.name,
                found.guid,
                found.others.join(", ")
            );
        }
        let start = match (options.since, resume.get(&source)) {
            (Some(since), _) => since,
            (None, Some(newest)) => newest - options.overlap,
            (None, None) => end - options.first_copy,
        };
        if start < EARLIEST {
            return Err(ActivityError::Range(format!(
                "{}: the range would start at {} UTC, before 2000-01-01; lower --overlap or \
                 --first-copy",
                found.name,
                utc_text(start)
            )));
        }
        let range = Window::new(start, end);
        if let Some(range) = range {
            let searches = range.seconds() / options.window.max(1);
            if searches > MAX_WINDOWS {
                return Err(ActivityError::Range(format!(
                    "{range} in windows of {} s is {searches} searches at least; widen --window \
                     or read a shorter range",
                    options.window
                )));
            }
        }
        let mut copy = Copy {
            source,
            worksheet: found.name.clone(),
            guid: found.guid.clone(),
            range,
            windows: 0,
            splits: 0,
            pages: 0,
            read: 0,
            already_held: 0,
            rows: 0,
            newest: None,
        };
        let mut rows = Vec::new();
        if let Some(range) = range {
            tracing::info!("{} ({}): reading {range}", found.name, found.guid);
            let (read, requests) = read_range(
                &api,
                scope,
                &found,
                range,
                cluster_id,
                &fetched.clock,
                options,
                progress,
            )
            .await
            .map_err(|e| match e {
                ReadError::AtCap(window) => ActivityError::AtCap {
                    worksheet: found.name.clone(),
                    window,
                    cap: options.row_cap,
                },
                ReadError::Fetch(source) => ActivityError::Fetch {
                    worksheet: found.name.clone(),
                    url: http.base().to_owned(),
                    source: Box::new(source),
                },
            })?;
            copy.pages = requests;
            let mut counts: BTreeMap<usize, usize> = BTreeMap::new();
            for (_, part) in &read {
                *counts.entry(part.returned).or_default() += 1;
            }
            // The most rows any window returned, returned by several, and
            // no window reached --row-cap: the mark of a lower cap the
            // cluster did not report.
            let split = read.len() > range.pieces(options.window).len();
            if let Some((&rows, &windows)) = counts.iter().next_back()
                && !split
                && windows >= 2
                && rows >= 2
                && rows < options.row_cap
            {
                tracing::warn!(
                    "{}: {windows} windows returned exactly {rows} rows each; if the cluster caps \
                     a search at {rows} rows (below --row-cap {}), rows are missing: pass \
                     --row-cap {rows} and read the range again with --since",
                    found.name,
                    options.row_cap
                );
            }
            for (_, part) in read {
                copy.windows += 1;
                if part.outside > 0 {
                    tracing::debug!(
                        "{}: {} rows outside their window dropped",
                        found.name,
                        part.outside
                    );
                }
                rows.extend(part.rows);
            }
            copy.splits = copy
                .windows
                .saturating_sub(range.pieces(options.window).len());
        } else {
            let from = if options.since.is_some() {
                "--since"
            } else if resume.contains_key(&source) {
                "the newest row held less --overlap"
            } else {
                "now less --first-copy"
            };
            tracing::info!(
                "{}: nothing to read: {from} ({} UTC) is not before {} ({} UTC)",
                found.name,
                utc_text(start),
                if options.until.is_some() {
                    "--until"
                } else {
                    "now"
                },
                utc_text(end)
            );
        }
        let read = rows.len();
        Order::of(source, &found.columns).sort_unique(&mut rows);
        if rows.len() < read {
            tracing::warn!(
                "{}: {} row(s) shared their identity ({}) with another row read; the last read \
                 of each was kept",
                found.name,
                read - rows.len(),
                identity_names(source, &found.columns)
            );
        }
        copy.read = rows.len();
        fetched.copies.push((found, range, rows, copy));
    }
    if fetched.copies.is_empty() {
        let reasons: Vec<String> = fetched.missing.iter().map(|(_, why)| why.clone()).collect();
        return Err(ActivityError::NoWorksheet(reasons.join("\n")));
    }
    if options.sources.len() == 1
        && let Some((_, why)) = fetched.missing.first()
    {
        return Err(ActivityError::NoWorksheet(why.clone()));
    }
    Ok(fetched)
}

/// The columns that identify a row of `source`, for messages.
fn identity_names(source: Source, columns: &[super::ActivityColumn]) -> String {
    (columns.iter().zip(source.identity(columns)))
        .filter(|(_, identity)| *identity)
        .map(|(c, _)| c.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

enum ReadError {
    AtCap(Window),
    Fetch(FetchError),
}

#[allow(clippy::too_many_arguments)]
async fn read_range(
    api: &V2<'_>,
    scope: crate::client::auth::Scope,
    found: &Found,
    range: Window,
    cluster_id: &str,
    clock: &Clock,
    options: &ActivityOptions,
    progress: &dyn Progress,
) -> Result<(Vec<(Window, WindowRows)>, usize), ReadError> {
    let source = found.source;
    let requests = std::sync::atomic::AtomicUsize::new(0);
    let on_page = |rows: usize| {
        requests.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        progress.page(source, rows);
    };
    let reader = WindowReader {
        api,
        scope,
        found,
        reader: std::sync::Arc::new(Reader {
            columns: found.columns.clone(),
            time: found.time,
            cluster_id: cluster_id.to_owned(),
            clock: clock.clone(),
        }),
        cap: options.row_cap.max(1),
        page_size: options.page_size,
        on_page: &on_page,
    };
    let parts = window::read_all(
        range.pieces(options.window),
        options.concurrency,
        |w| {
            let reader = &reader;
            async move {
                let (w, result) = reader.read(w).await;
                (w, result.map_err(ReadError::Fetch))
            }
        },
        |rows: &WindowRows| rows.rows.len(),
        ReadError::AtCap,
        |event| progress.window(source, event),
    )
    .await?;
    Ok((parts, requests.into_inner()))
}

/// Where a file of the new set comes from.
#[derive(Clone, Copy, Debug)]
enum Content {
    /// A file the directory holds, copied as it is.
    Kept(usize),
    /// A worksheet's held rows merged with the new ones.
    Merged(Source),
    /// A rendered TML file.
    Tml(usize),
}

struct Merging {
    /// What was held before, if anything.
    before: Option<Copied>,
    /// The worksheet as found now.
    after: Copied,
    rows: Vec<Row>,
}

/// The output directory after a copy: the principals' files as they were,
/// the activity files merged, the TML rendered again, the manifest updated.
struct Assembly {
    out: PathBuf,
    kept: Vec<String>,
    merging: BTreeMap<Source, Merging>,
    tml: Vec<(String, Vec<u8>)>,
    held: Held,
    layout: DatabaseLayout,
    prior: Prior,
    cluster_id: String,
    /// What each merge wrote.
    merged: std::sync::Mutex<BTreeMap<Source, Merged>>,
}

fn assemble(
    dir: &OutputDir,
    prior: Prior,
    cluster_id: String,
    fetched: &Fetched,
    newest_held: &BTreeMap<Source, (Option<i64>, usize)>,
    options: &ActivityOptions,
) -> Result<(Assembly, Vec<Copy>), ActivityError> {
    let out = dir.path().to_path_buf();
    let mut held = prior.activity.clone();
    let mut merging = BTreeMap::new();
    let mut copies = Vec::new();
    for (found, _range, rows, copy) in &fetched.copies {
        let source = found.source;
        let newest_before = newest_held.get(&source).and_then(|(newest, _)| *newest);
        let newest = newest_before.max(rows.last().map(|r| r.time));
        let after = Copied {
            worksheet: found.name.clone(),
            worksheet_guid: found.guid.clone(),
            org_id: PRIMARY_ORG,
            time_zone: fetched.clock.name().to_owned(),
            time_column: found.columns[found.time].csv.clone(),
            columns: found.columns.clone(),
            rows: 0,
            newest: newest.map(utc_text),
        };
        let before = held
            .get(&source)
            .filter(|_| newest_held.contains_key(&source))
            .cloned();
        // Check the held file against the new columns now, not mid-write.
        if let Some(before) = &before {
            HeldRows::open(
                &out.join(DATA_DIR).join(source.file()),
                before,
                &after.columns,
                &after.time_column,
                &cluster_id,
                Order::of(source, &after.columns),
            )?;
        }
        held.insert(source, after.clone());
        let mut copy = copy.clone();
        copy.newest = after.newest.clone();
        copies.push(copy);
        merging.insert(
            source,
            Merging {
                before,
                after,
                rows: rows.clone(),
            },
        );
    }
    let principal_names: Vec<String> = Table::ALL
        .iter()
        .map(|t| t.object_name(&options.tml.table_prefix))
        .collect();
    let rendered = render::render_all(&options.tml, &options.templates, &held)?;
    let mut tml = Vec::new();
    for file in rendered {
        let relative = format!("{TML_DIR}/{}", file.file_name);
        let must_match = principal_names.contains(&file.object_name)
            || !matches!(file.kind, render::TmlKind::Table);
        if must_match && !prior.files.contains_key(&relative) {
            return Err(ActivityError::Settings {
                path: out.join(&relative),
                dir: out.display().to_string(),
            });
        }
        if principal_names.contains(&file.object_name)
            && std::fs::read(out.join(&relative)).ok().as_deref() != Some(file.text.as_bytes())
        {
            return Err(ActivityError::Settings {
                path: out.join(&relative),
                dir: out.display().to_string(),
            });
        }
        tml.push((relative, file.text.into_bytes()));
    }
    // The group activity files (`generate --group-activity`) are built
    // from the activity copy, which this run changes: they are left out
    // rather than kept stale.
    let stale: Vec<&String> = (prior.files.keys())
        .filter(|path| path.starts_with(&format!("{DATA_DIR}/group_activity_")))
        .collect();
    if !stale.is_empty() {
        tracing::warn!(
            "{} would no longer match the activity copied now, so they are removed; run \
             `ts-principals generate --group-activity` to write them again",
            (stale.iter().map(|p| p.as_str()))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let kept: Vec<String> = (prior.files.keys())
        .filter(|path| {
            !stale.contains(path)
                && path.starts_with(&format!("{DATA_DIR}/"))
                && !merging
                    .keys()
                    .any(|s| **path == format!("{DATA_DIR}/{}", s.file()))
                && output::is_safe_relative(path)
                && <Assembly as FileSet>::may_own(path)
        })
        .cloned()
        .collect();
    let layout = DatabaseLayout::of(&options.tml, &held);
    Ok((
        Assembly {
            out,
            kept,
            merging,
            tml,
            held,
            layout,
            prior,
            cluster_id,
            merged: std::sync::Mutex::new(BTreeMap::new()),
        },
        copies,
    ))
}

impl FileSet for Assembly {
    type Source = Content;

    fn files(&self) -> BTreeMap<String, Content> {
        let kept = (self.kept.iter().enumerate()).map(|(i, p)| (p.clone(), Content::Kept(i)));
        let merged = (self.merging.keys())
            .map(|&s| (format!("{DATA_DIR}/{}", s.file()), Content::Merged(s)));
        let tml = (self.tml.iter().enumerate()).map(|(i, (p, _))| (p.clone(), Content::Tml(i)));
        kept.chain(merged).chain(tml).collect()
    }

    fn write(&self, content: Content, out: &mut dyn Write) -> io::Result<Option<usize>> {
        match content {
            Content::Kept(i) => copy_counting(&self.out.join(&self.kept[i]), out).map(Some),
            Content::Tml(i) => out.write_all(&self.tml[i].1).map(|()| None),
            Content::Merged(source) => {
                let merging = &self.merging[&source];
                let after = &merging.after;
                let path = self.out.join(DATA_DIR).join(source.file());
                let unchanged =
                    (merging.before.as_ref()).is_some_and(|before| before.columns == after.columns);
                if merging.rows.is_empty() && unchanged {
                    // Nothing read: the file stays as it is, unparsed.
                    let rows = copy_counting(&path, out)?;
                    let merged = Merged {
                        rows,
                        ..Merged::default()
                    };
                    self.merged
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .insert(source, merged);
                    return Ok(Some(rows));
                }
                let held = match &merging.before {
                    Some(before) => Some(
                        HeldRows::open(
                            &path,
                            before,
                            &after.columns,
                            &after.time_column,
                            &self.cluster_id,
                            Order::of(source, &after.columns),
                        )
                        .map_err(|e| io::Error::other(e.to_string()))?,
                    ),
                    None => None,
                };
                let header: Vec<&str> = std::iter::once(columns::CLUSTER_ID)
                    .chain(after.columns.iter().map(|c| c.csv.as_str()))
                    .collect();
                let order = Order::of(source, &after.columns);
                let merged = merge(&header, held, &merging.rows, &order, out)?;
                self.merged
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(source, merged);
                Ok(Some(merged.rows))
            }
        }
    }

    fn manifest(&self, files: &BTreeMap<String, FileInfo>) -> Vec<u8> {
        let mut held = self.held.clone();
        for (source, copied) in &mut held {
            let path = format!("{DATA_DIR}/{}", source.file());
            if let Some(rows) = files.get(&path).and_then(|f| f.rows) {
                copied.rows = rows;
            }
        }
        Manifest {
            tool: output::TOOL,
            version: env!("CARGO_PKG_VERSION"),
            input: &*self.prior.input,
            counts: &*self.prior.counts,
            repairs: &*self.prior.repairs,
            activity: &held,
            files,
            database: &self.layout,
            generated_at: self.prior.generated_at.as_deref(),
        }
        .to_bytes()
    }

    /// What `generate` may own: the same directory layout.
    fn may_own(relative: &str) -> bool {
        <crate::generate::Generated<'static> as FileSet>::may_own(relative)
    }
}
