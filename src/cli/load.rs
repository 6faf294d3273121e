//! `load`: the data of an output directory into PostgreSQL or Falcon (or,
//! with `--emit-sql`, the SQL that loads it elsewhere).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use super::falcon::{self, FalconArgs};
use super::{GlobalArgs, LockArgs};
use crate::load::postgres::{self, Environment, Target};
use crate::load::sql::{self, Dialect, EmitOptions};
use crate::load::{Loaded, Progress, Source};
use crate::output;

/// Examples and exit codes, after the options in `load --help`.
pub(super) const AFTER_HELP: &str = "\
Examples:
  ts-principals load --from out --to 'postgres://loader@db.example.com/analytics?sslmode=verify-full'
  PGPASSWORD=… ts-principals load --from out --to postgres://loader@127.0.0.1/analytics
  ts-principals load --from out --to postgres://loader@db.example.com/analytics --materialize
  ts-principals load --from out --emit-sql snowflake
  ts-principals load --from out --emit-sql redshift --files-at s3://bucket/ts-principals
  ts-principals load --from out --to falcon --profile prod

One of --to and --emit-sql is needed. Exit codes: 0 loaded (or SQL written), 2 bad input (a URL,
a CSV changed since generate, a bad row), 3 the database or cluster failed (PostgreSQL: nothing
changed; Falcon: the error names the tables already replaced), 4 the output directory is busy or
a table of ours by name is not ours, 130 a Falcon load stopped by Ctrl-C.";

#[derive(Debug, Args)]
pub(super) struct LoadArgs {
    /// Output directory written by `generate`: its data/*.csv are loaded into the tables
    /// its manifest.json records, under the names its TML uses.
    #[arg(long, value_name = "DIR", default_value = "out")]
    from: PathBuf,
    /// Where to load: postgres://USER@HOST:PORT/DATABASE?sslmode=MODE. The password comes
    /// from the URL, PGPASSWORD or ~/.pgpass (PGPASSFILE), and is never printed. sslmode:
    /// disable, prefer (default), require (encrypted, certificate not checked), verify-ca,
    /// verify-full (add sslrootcert=/path/ca.pem for a private CA). Or `falcon`: ThoughtSpot
    /// Software's own database, with --profile (see the Falcon options).
    #[arg(long, value_name = "URL|falcon", required_unless_present = "emit_sql")]
    to: Option<String>,
    /// Schema to create the tables in [default: tml.schema when the TML names a
    /// connection, else ts_principals].
    #[arg(long, value_name = "NAME")]
    schema: Option<String>,
    /// Instead of loading, write the SQL that creates the tables and loads the CSV files
    /// in DIALECT into OUT/sql/DIALECT/ (create_tables.sql, load.sql), with the names and
    /// case of the TML. Generate with tml.target = DIALECT so the TML uses that
    /// database's case.
    #[arg(long, value_name = "DIALECT", value_parser = dialect(), conflicts_with_all = ["to", "schema"])]
    emit_sql: Option<Dialect>,
    /// With --emit-sql: where the load statements read the CSV files: the S3 folder
    /// (redshift), the Cloud Storage folder (bigquery), the volume or cloud path
    /// (databricks) you upload OUT/data/*.csv to, or a directory on the server
    /// (postgres; default OUT/data). Snowflake uploads them with PUT instead.
    #[arg(long, value_name = "URL", requires = "emit_sql")]
    files_at: Option<String>,
    /// With --emit-sql redshift: the IAM role COPY uses [default: the cluster's default
    /// role].
    #[arg(long, value_name = "ARN", requires = "emit_sql")]
    iam_role: Option<String>,
    /// Seconds the swap may wait for queries holding a table (every new query on it waits
    /// behind the swap meanwhile); past that the load gives up and changes nothing.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    lock_timeout: u64,
    /// Create the group activity (activity attributed to the groups each user was in at
    /// the time) as tables filled during the load, instead of views computed at every
    /// query: faster searches on large activity, a longer load. PostgreSQL only.
    #[arg(long, conflicts_with = "emit_sql")]
    materialize: bool,
    #[command(flatten)]
    lock: LockArgs,
    #[command(flatten)]
    falcon: FalconArgs,
}

/// `--emit-sql`: the dialects by name.
fn dialect() -> impl clap::builder::TypedValueParser<Value = Dialect> {
    use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
    PossibleValuesParser::new(Dialect::ALL.map(|d| {
        PossibleValue::new(d.name()).help(match d {
            Dialect::Snowflake => "stage, PUT, COPY INTO, one transaction",
            Dialect::Databricks => "INSERT OVERWRITE from read_files",
            Dialect::Bigquery => "external tables, one transaction",
            Dialect::Redshift => "COPY from S3, one transaction",
            Dialect::Postgres => "server-side COPY, one transaction",
        })
    }))
    .map(|name| {
        (Dialect::ALL.into_iter())
            .find(|d| d.name() == name)
            .unwrap_or(Dialect::Postgres)
    })
}

pub(super) fn run(args: LoadArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    if let Some(dialect) = args.emit_sql {
        return emit_sql(&args, dialect);
    }
    if args.files_at.is_some() || args.iam_role.is_some() {
        anyhow::bail!(
            "--files-at and --iam-role go with --emit-sql; --to loads from OUT/data itself"
        );
    }
    let url = args.to.as_deref().unwrap_or_default();
    if falcon::chosen(url) {
        if args.materialize {
            anyhow::bail!(
                "--materialize is for PostgreSQL: Falcon has no views, so there is nothing to \
                 materialise; leave it out"
            );
        }
        let schema = args.schema.as_deref();
        return falcon::run(&args.from, schema, args.lock.wait(), &args.falcon, global);
    }
    let target = Target::parse(url, &Environment::from_process())?;
    let source = Source::open(&args.from, args.lock.wait())?;
    let layout = &source.layout;
    let schema = match (&args.schema, &layout.connection) {
        (Some(schema), _) => schema.clone(),
        (None, Some(_)) if !layout.schema.is_empty() => layout.schema.clone(),
        _ => postgres::DEFAULT_SCHEMA.to_owned(),
    };
    if schema.trim().is_empty() || schema.starts_with("pg_") {
        anyhow::bail!(
            "--schema {schema:?} cannot be used: PostgreSQL reserves names starting with pg_, \
             and an empty name is no schema; choose another (default ts_principals)"
        );
    }
    warn_where_the_tml_points_elsewhere(&source, &target, &schema);
    warn_about_the_tml(&source);
    let progress = LoadProgress::new(global.no_progress || global.quiet > 0);
    let loaded = postgres::load(
        &source,
        &target,
        &postgres::Options {
            schema: schema.clone(),
            lock_timeout: Duration::from_secs(args.lock_timeout),
            wait: args.lock.wait(),
            connect_timeout: target.connect_timeout().unwrap_or(Duration::from_secs(30)),
            materialize: args.materialize,
        },
        &progress,
    );
    progress.clear();
    let loaded = loaded?;
    print_summary(&loaded)?;
    tracing::info!(
        "loaded {} tables into schema {schema} of {target} in one transaction",
        loaded.len()
    );
    Ok(ExitCode::SUCCESS)
}

fn emit_sql(args: &LoadArgs, dialect: Dialect) -> anyhow::Result<ExitCode> {
    let source = Source::open(&args.from, args.lock.wait())?;
    let layout = &source.layout;
    if layout.connection.is_none() {
        tracing::warn!(
            "the TML in {} describes Falcon tables (no tml.connection), so ThoughtSpot will not \
             look for these tables in {}; set tml.connection, tml.database and tml.schema and \
             run generate again",
            source.dir.join(crate::generate::TML_DIR).display(),
            dialect.name()
        );
    }
    let usual = dialect.target().default_case();
    if layout.identifier_case != usual {
        tracing::warn!(
            "names are {} case, as the TML in {} has them, where tml.target = \"{}\" would give \
             {} case; the SQL quotes every name, so the tables match the TML either way",
            layout.identifier_case.as_str(),
            source.dir.display(),
            dialect.name(),
            usual.as_str()
        );
    }
    warn_about_the_tml(&source);
    for table in &source.tables {
        table.verify()?;
    }
    let files = sql::emit(
        &source,
        dialect,
        &EmitOptions {
            files_at: args.files_at.clone(),
            iam_role: args.iam_role.clone(),
        },
    )?;
    let dir = args.from.join("sql").join(dialect.name());
    output::write(
        &dir,
        &files,
        &output::WriteOptions {
            wait: args.lock.wait(),
        },
    )?;
    tracing::info!(
        "wrote {}: run {} first, then {}",
        dir.display(),
        sql::CREATE_FILE,
        sql::LOAD_FILE
    );
    Ok(ExitCode::SUCCESS)
}

/// The TML must name the place the data goes, or ThoughtSpot will not find
/// it; say so when it does not.
fn warn_where_the_tml_points_elsewhere(source: &Source, target: &Target, schema: &str) {
    let layout = &source.layout;
    let tml = source.dir.join(crate::generate::TML_DIR);
    match &layout.connection {
        None => tracing::warn!(
            "the TML in {} describes Falcon tables (no tml.connection), so ThoughtSpot will not \
             look for them in PostgreSQL; set tml.connection, tml.database and tml.schema in \
             ts-principals.toml and run generate again",
            tml.display()
        ),
        Some(connection) => {
            if layout.schema != schema {
                tracing::warn!(
                    "the TML in {} says schema {:?} (connection {connection:?}), but the tables \
                     are loaded into schema {schema:?}; set tml.schema = {schema:?} and run \
                     generate again, or load with --schema {:?}",
                    tml.display(),
                    layout.schema,
                    layout.schema
                );
            }
            if layout.database != target.database() {
                tracing::warn!(
                    "the TML in {} says database {:?}, but the URL names database {:?}; \
                     ThoughtSpot looks where the TML says",
                    tml.display(),
                    layout.database,
                    target.database()
                );
            }
        }
    }
}

/// Tables the TML in OUT describes that the data does not hold (TML
/// left by an older version or written by hand), and table TML that no
/// longer matches the layout (edited by hand): ThoughtSpot's import fails
/// on a table that does not exist, so say so before it does.
fn warn_about_the_tml(source: &Source) {
    use crate::render::{TmlKind, check};
    let dir = source.dir.join(crate::generate::TML_DIR);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        tracing::warn!(
            "{} is missing; import needs the TML beside the data",
            dir.display()
        );
        return;
    };
    let mut missing = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if TmlKind::of_file(&path.to_string_lossy()) != Some(TmlKind::Table) {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let Ok(check::Parsed::Table(table)) = check::parse(TmlKind::Table, &text) else {
            tracing::warn!("{} is not valid table TML", path.display());
            continue;
        };
        let db_table = table.db_table.clone().unwrap_or_default();
        let table_columns = (source.tables.iter().find(|t| t.def.table == db_table)).map(|t| {
            t.def
                .columns
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
        });
        let view_columns = (source
            .layout
            .group_activity
            .iter()
            .find(|v| v.view == db_table))
        .map(|v| {
            v.columns
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
        });
        match table_columns.or(view_columns) {
            None => missing.push(db_table),
            Some(ours) => {
                let names: Vec<&str> = (table.columns.iter())
                    .map(|c| c.db_column_name.as_str())
                    .collect();
                if names != ours {
                    tracing::warn!(
                        "{} names the columns {names:?}, but the data loaded has {ours:?}; it \
                         was edited after generate wrote it",
                        path.display()
                    );
                }
            }
        }
    }
    if !missing.is_empty() {
        missing.sort();
        tracing::warn!(
            "the TML in {} also describes {}, which this data does not hold, so they are not \
             created; importing that TML fails until they exist (run generate again: it \
             renders only the tables the data holds)",
            dir.display(),
            missing.join(", ")
        );
    }
}

/// `table  rows  seconds  rows/s`, one line per table and a total.
pub(super) fn print_summary(loaded: &[Loaded]) -> std::io::Result<()> {
    let width = (loaded.iter().map(|l| l.table.chars().count()))
        .max()
        .unwrap_or(5)
        .max("total".len());
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<width$}  {:>12}  {:>8}  {:>12}",
        "table", "rows", "seconds", "rows/s"
    )?;
    let mut rows = 0;
    let mut elapsed = Duration::ZERO;
    for table in loaded {
        writeln!(
            out,
            "{:<width$}  {:>12}  {:>8.2}  {:>12}",
            table.table,
            table.rows,
            table.elapsed.as_secs_f64(),
            per_second(table.rows, table.elapsed)
        )?;
        rows += table.rows;
        elapsed += table.elapsed;
    }
    writeln!(
        out,
        "{:<width$}  {:>12}  {:>8.2}  {:>12}",
        "total",
        rows,
        elapsed.as_secs_f64(),
        per_second(rows, elapsed)
    )?;
    out.flush()
}

fn per_second(rows: u64, elapsed: Duration) -> String {
    let seconds = elapsed.as_secs_f64();
    if seconds < 0.001 {
        "-".into()
    } else {
        format!("{:.0}", rows as f64 / seconds)
    }
}

/// How often plain log lines report progress.
const LOG_EVERY: Duration = Duration::from_secs(5);

/// A bar per table on a terminal (rows, rows/s); log lines otherwise.
pub(super) struct LoadProgress {
    bar: Option<ProgressBar>,
    state: Mutex<(u64, Instant)>,
}

impl LoadProgress {
    pub(super) fn new(off: bool) -> Self {
        let bar = (!off && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new_spinner();
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Self {
            bar,
            state: Mutex::new((0, Instant::now())),
        }
    }

    pub(super) fn clear(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Progress for LoadProgress {
    fn start(&self, table: &str, rows: Option<u64>) {
        if let Ok(mut state) = self.state.lock() {
            *state = (0, Instant::now());
        }
        match &self.bar {
            Some(bar) => {
                bar.set_message(table.to_owned());
                bar.reset();
                let template = match rows {
                    Some(total) => {
                        bar.set_length(total);
                        "{spinner} {msg} [{bar:20}] {human_pos}/{human_len} rows, {rate}, eta {eta}"
                    }
                    None => "{spinner} {msg} {human_pos} rows, {rate}",
                };
                if let Ok(style) = ProgressStyle::with_template(template) {
                    let style = style.progress_chars("=> ").with_key(
                        "rate",
                        |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                            let _ = write!(w, "{:.0} rows/s", state.per_sec());
                        },
                    );
                    bar.set_style(style);
                }
                bar.set_message(table.to_owned());
            }
            None => tracing::debug!(
                "loading {table}{}",
                rows.map(|r| format!(" ({r} rows)")).unwrap_or_default()
            ),
        }
    }

    fn rows(&self, table: &str, rows: u64) {
        match &self.bar {
            Some(bar) => bar.inc(rows),
            None => {
                let Ok(mut state) = self.state.lock() else {
                    return;
                };
                state.0 += rows;
                if state.1.elapsed() >= LOG_EVERY {
                    state.1 = Instant::now();
                    tracing::info!("loading {table}: {} rows so far", state.0);
                }
            }
        }
    }

    fn step(&self, message: &str) {
        match &self.bar {
            Some(bar) => {
                if let Ok(style) = ProgressStyle::with_template("{spinner} {msg}") {
                    bar.set_style(style);
                }
                bar.set_message(message.to_owned());
            }
            None => tracing::info!("{message}"),
        }
    }

    fn finish(&self, table: &str, rows: u64, elapsed: Duration) {
        let line = format!(
            "sent {table}: {rows} rows in {:.2} s ({} rows/s)",
            elapsed.as_secs_f64(),
            per_second(rows, elapsed)
        );
        match &self.bar {
            Some(bar) => bar.println(line),
            None => tracing::info!("{line}"),
        }
    }
}
