//! `activity`: copy the rows of the activity worksheets into an output
//! directory, beside the principals.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use clap::{Args, ValueEnum};

use super::connect::TransportArgs;
use super::progress::Spinner;
use super::{GlobalArgs, LockArgs, read_config, tml_format};
use crate::activity::run::{self, ActivityOptions, InDatabase, Progress};
use crate::activity::window::Event;
use crate::activity::{self, Source};
use crate::config::TmlFormat;
use crate::generate::GenerateOptions;
use crate::load::postgres::{self, Environment, Target};
use crate::render::Templates;

pub(super) const AFTER_HELP: &str = "\
Examples:
  ts-principals generate --profile prod --out out
  ts-principals activity --profile prod --out out               # resume (first run: 30 days)
  ts-principals activity --profile prod --out out --since 2026-11-01 --until 2026-12-01
  ts-principals activity --profile prod --out out --since 7d --source bi-server
  ts-principals load --from out --to postgres://ts@db/analytics

Run it on a schedule (hourly, say) after generate: each run reads from the newest row out
holds minus --overlap, and rows read again replace the same rows, so none is lost or doubled.

Exit codes: 0 copied; 2 bad input (flags, config, a changed data file); 3 the cluster or
network failed (nothing written); 4 the output directory is busy or cannot be written.";

/// `--source`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum SourceChoice {
    /// TS: BI Server: one row per user action.
    BiServer,
    /// TS: AI and BI Stats (TS: Embrace Stats Worksheet on older clusters): one row per
    /// query sent to a database.
    AiBiStats,
    /// Both; a cluster without the second is told and skipped.
    All,
}

#[derive(Debug, Args)]
pub(super) struct ActivityArgs {
    /// Output directory of `ts-principals generate`; the rows go to
    /// OUT/data/activity_bi_server.csv and activity_ai_bi_stats.csv, their TML to OUT/tml.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Connection profile (`ts-principals config list`); `env` (or none, with
    /// THOUGHTSPOT_URL set) uses the THOUGHTSPOT_* variables.
    #[arg(long, value_name = "NAME")]
    profile: Option<String>,
    /// Read from this time: a UTC date or time (2026-11-01, "2026-11-01 13:00:00",
    /// 2026-11-01T13:00:00Z) or a duration before now (90m, 24h, 7d) [default: the newest
    /// row OUT holds minus --overlap; 30 days for a first copy].
    #[arg(long, value_name = "DATE|DURATION")]
    since: Option<String>,
    /// Read up to (not including) this time [default: now].
    #[arg(long, value_name = "DATE|DURATION")]
    until: Option<String>,
    /// Which worksheet to copy.
    #[arg(long, value_enum, value_name = "WHICH", default_value_t = SourceChoice::All)]
    source: SourceChoice,
    /// How much is read again before the newest row held, so rows that reach the
    /// worksheet late are not missed.
    #[arg(long, value_name = "DURATION", default_value = "1h")]
    overlap: String,
    /// How far back a first copy without --since reads.
    #[arg(long, value_name = "DURATION", default_value = "30d")]
    first_copy: String,
    /// Most rows one search returns (ThoughtSpot: 100000). A window whose search reaches
    /// it is split in halves until each is below it.
    #[arg(long, value_name = "N", default_value_t = 100_000,
          value_parser = clap::value_parser!(u64).range(2..=10_000_000))]
    row_cap: u64,
    /// Rows asked for per request.
    #[arg(long, value_name = "N", default_value_t = 20_000,
          value_parser = clap::value_parser!(u64).range(1..=100_000))]
    page_size: u64,
    /// Searches in flight at once.
    #[arg(long, value_name = "N", default_value_t = 4,
          value_parser = clap::value_parser!(u64).range(1..=32))]
    concurrency: u64,
    /// Longest time one search covers before any split (smaller windows: more,
    /// smaller requests).
    #[arg(long, value_name = "DURATION", default_value = "1d")]
    window: String,
    /// Most MiB one response may hold once decompressed.
    #[arg(long, value_name = "MIB", default_value_t = 512,
          value_parser = clap::value_parser!(u32).range(1..=65_536))]
    max_response_mb: u32,
    /// The PostgreSQL database `load --to` fills (postgres://…): resume after the newest
    /// row it holds when that is newer than OUT's, for an OUT that does not keep the whole
    /// history (load adds the rows of activity tables to what they hold).
    #[arg(long, value_name = "URL")]
    to: Option<String>,
    /// Schema of the activity tables with --to, as given to load [default: tml.schema when
    /// the TML names a connection, else ts_principals].
    #[arg(long, value_name = "NAME", requires = "to")]
    schema: Option<String>,
    /// Project config, as given to generate [default: ./ts-principals.toml when present]:
    /// the activity tables' TML is rendered beside the principals' with it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Template directory, as given to generate.
    #[arg(long, value_name = "DIR")]
    templates: Option<PathBuf>,
    /// Model or worksheet, as given to generate (`tml.format`).
    #[arg(long, value_name = "FORMAT", value_parser = tml_format())]
    format: Option<TmlFormat>,
    #[command(flatten)]
    lock: LockArgs,
    #[command(flatten)]
    transport: TransportArgs,
}

/// Runs `activity`.
pub(super) fn run(args: ActivityArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let now = jiff::Timestamp::now().as_second();
    let bad = |flag: &'static str| move |e: String| anyhow::anyhow!("{flag}: {e}");
    let since = (args.since.as_deref())
        .map(|t| activity::parse_time(t, now))
        .transpose()
        .map_err(bad("--since"))?;
    let until = (args.until.as_deref())
        .map(|t| activity::parse_time(t, now))
        .transpose()
        .map_err(bad("--until"))?;
    if let (Some(since), Some(until)) = (since, until)
        && since >= until
    {
        anyhow::bail!("--since must be before --until");
    }
    for (flag, text, time) in [
        ("--since", &args.since, since),
        ("--until", &args.until, until),
    ] {
        if let (Some(text), Some(time)) = (text, time)
            && !(run::EARLIEST..=now + 86_400).contains(&time)
        {
            anyhow::bail!(
                "{flag} {text} is out of range: activity is read from 2000-01-01 up to now"
            );
        }
    }
    let mut config = read_config(args.config.as_deref())?;
    if let Some(format) = args.format {
        config.tml.format = format;
    }
    config.validate("(with flags)")?;
    let templates = match &args.templates {
        Some(dir) => Templates::with_overrides(dir)?,
        None => Templates::builtin(),
    };
    let generate = GenerateOptions::from_config(&config, templates)?;
    let database = match &args.to {
        None => None,
        Some(url) => {
            let target = Target::parse(url, &Environment::from_process())?;
            let schema = match (&args.schema, &config.tml.connection, &config.tml.schema) {
                (Some(schema), _, _) => schema.clone(),
                (None, Some(_), Some(schema)) if !schema.is_empty() => schema.clone(),
                _ => postgres::DEFAULT_SCHEMA.to_owned(),
            };
            Some(InDatabase { target, schema })
        }
    };
    let options = ActivityOptions {
        sources: match args.source {
            SourceChoice::BiServer => vec![Source::BiServer],
            SourceChoice::AiBiStats => vec![Source::AiBiStats],
            SourceChoice::All => Source::ALL.to_vec(),
        },
        since,
        until,
        overlap: activity::parse_duration(&args.overlap).map_err(bad("--overlap"))?,
        first_copy: activity::parse_duration(&args.first_copy).map_err(bad("--first-copy"))?,
        row_cap: args.row_cap as usize,
        page_size: args.page_size as usize,
        concurrency: args.concurrency as usize,
        window: activity::parse_duration(&args.window).map_err(bad("--window"))?,
        tml: generate.tml,
        templates: generate.templates,
        wait: args.lock.wait(),
        now,
        database,
    };
    let (connection, _) =
        (args.transport).connect(args.profile.as_deref(), args.max_response_mb)?;
    let progress = ActivityProgress::new(global.no_progress || global.quiet > 0);
    let started = Instant::now();
    let report = run::run(&args.out, &connection, &options, &progress);
    progress.finish();
    let report = report?;
    for (_, why) in &report.missing {
        tracing::warn!("{why}; skipped");
    }
    for copy in &report.copies {
        let range = copy
            .range
            .map_or_else(|| "nothing to read".to_owned(), |r| format!("read {r}"));
        tracing::info!(
            "{} ({}): {range} in {} window(s) ({} split at the cap, {} request(s)): {} row(s), \
             {} already held; {} now holds {} row(s){}",
            copy.worksheet,
            copy.guid,
            copy.windows,
            copy.splits,
            copy.pages,
            copy.read,
            copy.already_held,
            args.out.join("data").join(copy.source.file()).display(),
            copy.rows,
            copy.newest
                .as_ref()
                .map(|n| format!(", the newest at {n} UTC"))
                .unwrap_or_default()
        );
    }
    let written = &report.written;
    tracing::info!(
        "copied the activity of cluster {} ({}, times from {}) into {} in {:.1?}: {} file(s) \
         added, {} changed, {} unchanged",
        report.cluster_id,
        report.org,
        report.time_zone,
        args.out.display(),
        started.elapsed(),
        written.added.len(),
        written.changed.len(),
        written.unchanged.len()
    );
    Ok(ExitCode::SUCCESS)
}

/// Rows and windows so far, on a spinner or in log lines.
struct ActivityProgress {
    spinner: Spinner,
    rows: AtomicUsize,
    requests: AtomicUsize,
    windows: AtomicUsize,
    splits: AtomicUsize,
}

impl ActivityProgress {
    fn new(quiet: bool) -> Self {
        ActivityProgress {
            spinner: Spinner::new(quiet),
            rows: AtomicUsize::new(0),
            requests: AtomicUsize::new(0),
            windows: AtomicUsize::new(0),
            splits: AtomicUsize::new(0),
        }
    }

    fn summary(&self) -> String {
        format!(
            "{} rows in {} requests, {} windows read ({} split at the cap)",
            self.rows.load(Ordering::Relaxed),
            self.requests.load(Ordering::Relaxed),
            self.windows.load(Ordering::Relaxed),
            self.splits.load(Ordering::Relaxed)
        )
    }

    fn finish(&self) {
        self.spinner.finish();
    }
}

impl Progress for ActivityProgress {
    fn step(&self, message: &str) {
        self.spinner.step(message);
    }

    fn page(&self, source: Source, rows: usize) {
        self.rows.fetch_add(rows, Ordering::Relaxed);
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.spinner
            .update(|| format!("{}: {}", source.label(), self.summary()));
    }

    fn window(&self, source: Source, event: Event) {
        match event {
            Event::Read(..) => self.windows.fetch_add(1, Ordering::Relaxed),
            Event::Split(window) => {
                tracing::debug!(
                    "{}: {window} reached the row cap; splitting it",
                    source.label()
                );
                self.splits.fetch_add(1, Ordering::Relaxed)
            }
        };
        self.spinner
            .update(|| format!("{}: {}", source.label(), self.summary()));
    }
}
