//! The command line: parses arguments, wires the library together, reports
//! errors and picks the exit code (0 ok, 1 differences found, 2 usage or
//! input error, 3 cluster or network error, 4 output not written).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

mod activity;
mod apply;
mod connect;
mod falcon;
mod import;
mod load;
mod profiles;
mod progress;
mod snapshot_out;
mod spec;
mod transfer;

use crate::activity::run::{ActivityError, held_in};
use crate::atomic::Wait;
use crate::client::ClientError;
use crate::config::{self, ProjectConfig, TmlFormat};
use crate::diff::{self, Palette};
use crate::generate::{self, DATA_DIR, GenerateOptions};
use crate::history::{self, History};
use crate::input::{self, LoadOptions, Loaded};
use crate::load::SourceError;
use crate::load::falcon::FalconError;
use crate::load::postgres::PgError;
use crate::output::{self, FileSet, OutputError};
use crate::render::Templates;

const ABOUT: &str =
    "Make ThoughtSpot users, groups and memberships searchable, reviewable and version-controlled.";

const LONG_ABOUT: &str = "\
Make ThoughtSpot users, groups and memberships searchable, reviewable and version-controlled.

ts-principals fetches who-belongs-to-which-group from a cluster (REST v2, v1 fallback) or \
reads it from a principals snapshot, writes it as \
data (CSV tables for users, groups, orgs, memberships, nesting and privileges) and renders \
TML for those tables plus a model that joins them to the activity of TS: BI Server and \
TS: Embrace Stats, so activity can be read per group, that is per use case. Output is \
deterministic: keep it in git and let `diff --check` tell reviewers what changed.";

const AFTER_HELP: &str = "\
Examples:
  ts-principals config create --name prod --url https://example.thoughtspot.cloud --username admin --password-prompt
  ts-principals fetch --profile prod -o principals.json
  ts-principals generate --profile prod --out out
  ts-principals generate --from principals.json --out out
  ts-principals generate --from users.json --from groups.json --config ts-principals.toml
  ts-principals diff --from principals.json --out tml-repo --check
  ts-principals load --from out --to 'postgres://loader@db.example.com:5432/analytics?sslmode=require'
  ts-principals load --from out --emit-sql snowflake
  ts-principals load --from out --to falcon --profile prod

Exit codes: 0 ok, 1 differences found (diff), 2 usage or input error, 3 cluster, database or
network error, 4 output could not be written (permissions, disk full, a directory in the way,
another run writing to it with --no-wait, or a database table of the same name that is not ours).";

/// The ts-principals command line.
#[derive(Debug, Parser)]
#[command(name = "ts-principals", version, about = ABOUT, long_about = LONG_ABOUT, after_help = AFTER_HELP)]
pub struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
pub(crate) struct GlobalArgs {
    /// More log output on stderr (-v debug, -vv trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Less log output on stderr (-q warnings and errors only, -qq errors only).
    #[arg(short, long, action = clap::ArgAction::Count, global = true, conflicts_with = "verbose")]
    quiet: u8,
    /// When to colour output. `auto` colours terminals, unless NO_COLOR is set.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto, global = true)]
    color: ColorChoice,
    /// No progress bar, even on a terminal (plain log lines instead).
    #[arg(long, global = true)]
    no_progress: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ColorChoice {
    Auto,
    Always,
    Never,
}

impl ColorChoice {
    fn enabled(self, terminal: bool) -> bool {
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
            }
        }
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Fetch principals from a cluster into a snapshot file (principals.json).
    ///
    /// Signs in (bearer token, trusted-auth secret key or password, from a profile or
    /// THOUGHTSPOT_* variables), reads the cluster's id, lists its orgs and pages through
    /// users/search and groups/search in each (REST v2; v1 user/list on clusters without
    /// v2). The snapshot is written atomically in canonical form, the file `generate
    /// --from` reads; any failed page fails the fetch, so a snapshot is never partial.
    Fetch(FetchArgs),
    /// Principals → CSV data + TML + manifest in an output directory (the main job).
    ///
    /// Writes OUT/data/<table>.csv for the seven data tables and the membership history
    /// (group_memberships_history.csv, advanced from the one OUT holds, or --history),
    /// OUT/tml/*.tml for their tables, the activity and group activity tables and the
    /// model (or worksheet) joining them, and OUT/manifest.json with counts and a SHA-256
    /// of every file. Everything is
    /// rendered and checked before anything is written, and OUT always holds the old
    /// set or the new one, whole: a failing run puts the old files back, and a run
    /// killed part-way is rolled back or completed by the next one. Only the files
    /// the previous manifest lists and those written now are touched, so OUT may be
    /// the root of a git repository with files of your own beside ours. Runs into
    /// one OUT take turns (--no-wait fails instead of waiting).
    Generate(GenerateArgs),
    /// Show what `generate` would change in an output directory.
    ///
    /// Renders in memory and prints a unified diff of every file that would change,
    /// be added or be removed (`--stat` for a summary). With --check the exit code
    /// says whether anything differs (1) or not (0), for CI in a TML repository.
    Diff(DiffArgs),
    /// Load the data of an output directory into PostgreSQL (in one transaction) or Falcon,
    /// or write the SQL that loads it into Snowflake, Databricks, BigQuery or Redshift.
    ///
    /// With --to postgres://…, creates the schema (default ts_principals, or tml.schema) and every table whose
    /// CSV is in OUT/data, with the names, types and primary keys OUT/manifest.json
    /// records: the names the TML in OUT/tml uses, in its identifier case
    /// (tml.identifier_case), so ThoughtSpot finds them. Each CSV is streamed with COPY
    /// into a staging table; all of them are swapped in and committed together, so
    /// readers never see a half-loaded table and any failure (a bad row, a dropped
    /// connection, a killed run) leaves the previous data as it was. Tables that exist
    /// but were not created by ts-principals are never touched. In the same transaction
    /// the membership history is advanced (memberships that ended are closed, new ones
    /// opened, stamped with the data's time), activity rows are added, and the group
    /// activity views are created: activity attributed to the groups each user was in
    /// when it happened (--materialize fills tables instead). With --emit-sql DIALECT it
    /// writes OUT/sql/DIALECT/create_tables.sql and load.sql instead.
    ///
    /// With `--to falcon --profile NAME` (ThoughtSpot Software clusters; Cloud has no
    /// Falcon) the database, schema and tables the manifest records are created through
    /// remote TQL where missing, and each CSV is streamed into its own tsload load cycle
    /// (replacing the table's rows). Falcon has no transaction across tables: nothing is
    /// committed until every upload has succeeded, then the tables are committed one by
    /// one, and a failure then names the tables already replaced and those left as they
    /// were. Example: `ts-principals load --from out --to falcon --profile prod`.
    #[command(after_help = load::AFTER_HELP)]
    Load(load::LoadArgs),
    /// Copy the rows of TS: BI Server and TS: AI and BI Stats into an output directory,
    /// incrementally, beside the principals their rows join.
    ///
    /// Finds the worksheets by name in the Primary org (POST /api/rest/2.0/metadata/search;
    /// the AI and BI Stats worksheet under each name it has had, newest first), reads
    /// their columns from the worksheet itself, and pages POST /api/rest/2.0/searchdata
    /// with a search naming every column, one time window at a time. A window whose
    /// search reaches the row cap is split in halves until each part is below it, so
    /// nothing is cut off silently. The rows are merged into
    /// OUT/data/activity_bi_server.csv and activity_ai_bi_stats.csv (cluster_id first,
    /// then the worksheet's columns in snake case; times in UTC), in time order and
    /// without doubles, and their table TML and the model are rendered into OUT/tml, so
    /// `load` creates the tables and the model joins them. Without --since it resumes
    /// after the newest row OUT holds: the data is the state. All or nothing: a failed
    /// run leaves OUT as it was.
    #[command(after_help = activity::AFTER_HELP)]
    Activity(activity::ActivityArgs),
    /// Import the TML of an output directory into a cluster, updating the same objects
    /// every time.
    ///
    /// Reads OUT/tml, checks every file as ThoughtSpot reads it (YAML 1.1, the TML
    /// structure, every table, column and join referred to present), and sends the set
    /// in one POST /api/rest/2.0/metadata/tml/import (tables before the tables that join
    /// them, then the model or worksheet), create_new false, never retried. The GUID of
    /// every object imported is recorded in OUT/guids.json per cluster and org, and set
    /// as the root guid: (and the model's fqn:) of what is sent, so the next import
    /// updates in place. Prints one line per object: file, object, kind, status
    /// (OK/WARNING/ERROR), GUID and the cluster's message.
    #[command(after_help = import::AFTER_HELP)]
    Import(import::ImportArgs),
    /// Write a cluster's users, groups and memberships as a spec (principals.yaml), to
    /// start managing principals as code from what the cluster has.
    ///
    /// Reads the cluster (--profile) or a snapshot (--from) and writes every org, group
    /// (name, org, display name, description, type, visibility, privileges, parent
    /// groups) and user (display name, e-mail, visibility, account type, orgs, groups),
    /// sorted by name, every string double-quoted. Planning the export against the same
    /// cluster shows no change. Edit it, review it in git, and `plan` it.
    #[command(name = "export-spec", after_help = spec::EXPORT_HELP)]
    ExportSpec(spec::ExportArgs),
    /// Check a spec offline with ThoughtSpot's rules.
    ///
    /// Reads principals.yaml (or renders principals.yaml.j2 with --vars) and reports,
    /// with line and column: unknown keys, a password in the spec, usernames declared
    /// twice (compared case-insensitively), group names twice in an org, groups that
    /// users or groups name but the spec does not declare, nesting cycles, parents in
    /// another org, orgs not declared, values the API does not take; and warns about
    /// privileges outside ThoughtSpot's documented list. The initial password for new
    /// local users (TS_PRINCIPALS_NEW_USER_PASSWORD), when set, is checked against the
    /// password rules. Nothing is contacted.
    #[command(after_help = spec::VALIDATE_HELP)]
    Validate(spec::ValidateArgs),
    /// Compare a spec with the cluster and print what applying it would change.
    ///
    /// Validates the spec, reads the cluster (--profile) or a snapshot (--from) and
    /// prints a reviewable plan: groups and users to create or update (each field old →
    /// new), privileges granted and taken away, members added and (for groups with
    /// `members: exact`) removed, and counts per kind. Fields the spec leaves out are
    /// not changed. --out saves the plan with the state of every principal it touches as
    /// the cluster had it and their fingerprint, so a plan the cluster has moved away
    /// from can be told. --check exits 1 when there are changes.
    #[command(after_help = spec::PLAN_HELP)]
    Plan(spec::PlanArgs),
    /// Apply a saved plan (`plan --out`) to the cluster, exactly and no more.
    ///
    /// Re-reads the principals the plan touches and refuses, listing what moved, when
    /// any changed since the plan; asks on a terminal unless --yes; asks the cluster's own
    /// dry run (REST v2 users/import and groups/import, or v1 user/sync) and stops when
    /// it disagrees; then applies each change over REST v2 (v1 user/sync on clusters
    /// without v2 writes), reporting each. On a failure it says what was applied and
    /// what not; a new plan shows only the rest.
    #[command(after_help = apply::AFTER_HELP)]
    Apply(apply::ApplyArgs),
    /// Move the ownership of a user's objects to another user (before deleting them).
    ///
    /// Looks both users up, lists the liveboards, answers, tables and connections the
    /// first one owns in each of its orgs (POST /api/rest/2.0/metadata/search) and makes
    /// the second their owner (POST /api/rest/2.0/security/metadata/assign, only objects
    /// still owned by the first). On a cluster without REST v2 writes it uses v1's
    /// user/transfer/ownership, which moves all of them. Transfers to or from system or
    /// tsadmin are refused, as ThoughtSpot refuses them; so is what the cluster refuses,
    /// with its message. --dry-run lists the objects and changes nothing.
    #[command(after_help = transfer::AFTER_HELP)]
    Transfer(transfer::TransferArgs),
    /// Manage connection profiles (where a cluster is and how to sign in).
    ///
    /// Profiles are kept in profiles.toml in your config directory (mode 0600; override
    /// the directory with TS_PRINCIPALS_CONFIG_DIR) and hold no secrets: each names where
    /// its secret comes from (an environment variable, or a prompt when a command runs).
    #[command(subcommand)]
    Config(profiles::ConfigCommand),
    /// Print a shell completion script, e.g. `ts-principals completions bash > /etc/bash_completion.d/ts-principals`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// What to read and how to render it; shared by generate and diff.
#[derive(Debug, Args)]
struct RenderArgs {
    /// Principals to read (repeatable). Accepted: a canonical snapshot (what `fetch`
    /// writes, `schema_version: 1`); a REST v2 export `{"orgs", "users", "groups"}`;
    /// REST v2 search responses as separate files (`--from users.json --from
    /// groups.json [--from orgs.json]`); a REST v1 `user/list` array. The kind is
    /// detected from the content. Or fetch live with --profile.
    #[arg(
        long = "from",
        value_name = "FILE",
        required_unless_present = "profile",
        conflicts_with = "profile"
    )]
    from: Vec<PathBuf>,
    #[command(flatten)]
    connect: connect::ConnectArgs,
    /// Project config [default: ./ts-principals.toml when present]. Flags override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Directory of templates overriding the built-in ones by file name
    /// (e.g. users.table.tml.j2).
    #[arg(long, value_name = "DIR")]
    templates: Option<PathBuf>,
    /// Cluster id written in every row, overriding the input's and `data.cluster_id`.
    #[arg(long, value_name = "ID")]
    cluster_id: Option<String>,
    /// Prefix text cells starting with = + - @ TAB or CR with ' so spreadsheets do
    /// not run them as formulas (`data.excel_safe`).
    #[arg(long)]
    excel_safe: bool,
    /// Render a model (ThoughtSpot 10 and later) or a worksheet (`tml.format`).
    #[arg(long, value_name = "FORMAT", value_parser = tml_format())]
    format: Option<TmlFormat>,
    /// Leave out the activity tables and their joins (`tml.activity.enabled = false`).
    #[arg(long)]
    no_activity: bool,
    /// Accept an input (or fetch) with no users and no groups. Without it such an input
    /// is refused (exit 2): it would empty every table of the output.
    #[arg(long)]
    allow_empty: bool,
    /// Advance the membership history of this earlier output directory (its
    /// data/group_memberships_history.csv, or its group_memberships.csv when it has none)
    /// instead of the one in --out: memberships that ended are closed and new ones opened,
    /// stamped with the input's time (see --as-of). Without it the history in --out is
    /// advanced, or started from these principals when --out has none. A snapshot older
    /// than the history is refused.
    #[arg(long, value_name = "PREV_OUT")]
    history: Option<PathBuf>,
    /// When the principals were taken, for the membership history (e.g.
    /// 2026-12-01T06:00:00Z or 2026-12-01): overrides the snapshot's fetched_at. Inputs
    /// without one (API exports, v1 lists) have changes dated at the time of the run.
    #[arg(long, value_name = "TIME")]
    as_of: Option<String>,
    /// Also write OUT/data/group_activity_bi_server.csv (and _ai_bi_stats.csv): every
    /// activity row once for each group its user was in at the time, as the group activity
    /// views compute it in a database. For loading the files yourself (and for Falcon,
    /// which has no views); `load --to postgres://…` computes it in the database instead.
    #[arg(long)]
    group_activity: bool,
}

/// How to share an output directory with other runs.
#[derive(Debug, Args)]
pub(crate) struct LockArgs {
    /// Fail at once (exit 4) when another ts-principals run is writing to the output
    /// directory, instead of waiting for it to finish.
    #[arg(long)]
    no_wait: bool,
}

impl LockArgs {
    fn wait(&self) -> Wait {
        if self.no_wait {
            Wait::NoWait
        } else {
            Wait::Block
        }
    }
}

/// `--format`: config's [`TmlFormat`] by the names `tml.format` takes
/// (the library's types know nothing of clap).
fn tml_format() -> impl clap::builder::TypedValueParser<Value = TmlFormat> {
    use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
    PossibleValuesParser::new([
        PossibleValue::new("model").help("A model (ThoughtSpot 10.x and later)"),
        PossibleValue::new("worksheet").help("A worksheet, for older clusters"),
    ])
    .map(|name| match name.as_str() {
        "worksheet" => TmlFormat::Worksheet,
        _ => TmlFormat::Model,
    })
}

#[derive(Debug, Args)]
struct GenerateArgs {
    #[command(flatten)]
    render: RenderArgs,
    /// Output directory. Only files ts-principals wrote there (those its manifest.json
    /// lists) and files it writes now are touched.
    #[arg(long, value_name = "DIR", default_value = "out")]
    out: PathBuf,
    #[command(flatten)]
    lock: LockArgs,
    /// Record the generation time in manifest.json (output then differs run to run;
    /// `diff` ignores it).
    #[arg(long)]
    stamp: bool,
}

#[derive(Debug, Args)]
struct FetchArgs {
    #[command(flatten)]
    connect: connect::ConnectArgs,
    /// Where to write the snapshot: a file, replaced atomically (through a symbolic
    /// link, which stays a link; a named pipe or device is written to as it is), or `-`
    /// for standard output.
    #[arg(short, long, value_name = "FILE|-", default_value = "principals.json")]
    output: PathBuf,
    /// Project config, for its [fetch] settings and data.cluster_id
    /// [default: ./ts-principals.toml when present].
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Cluster id to record instead of the cluster's own (v1 clusters report none;
    /// then data.cluster_id, else the URL's host, is used).
    #[arg(long, value_name = "ID")]
    cluster_id: Option<String>,
}

#[derive(Debug, Args)]
struct DiffArgs {
    #[command(flatten)]
    render: RenderArgs,
    /// Output directory to compare with.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    #[command(flatten)]
    lock: LockArgs,
    /// Exit with 1 when anything differs and 0 when nothing does.
    #[arg(long)]
    check: bool,
    /// Print a summary of changed files instead of the full diff.
    #[arg(long)]
    stat: bool,
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.global);
    let color = cli.global.color.enabled(std::io::stderr().is_terminal());
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            report(&error, color);
            ExitCode::from(exit_code(&error))
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Fetch(args) => fetch(args, &cli.global),
        Command::Config(command) => profiles::run(command),
        Command::Generate(args) => generate(args, &cli.global),
        Command::Diff(args) => diff(args, &cli.global),
        Command::Load(args) => load::run(args, &cli.global),
        Command::Activity(args) => activity::run(args, &cli.global),
        Command::Import(args) => import::run(args, &cli.global),
        Command::ExportSpec(args) => spec::export(args, &cli.global),
        Command::Validate(args) => spec::validate(args, &cli.global),
        Command::Plan(args) => spec::plan(args, &cli.global),
        Command::Transfer(args) => transfer::run(args, &cli.global),
        Command::Apply(args) => apply::run(args, &cli.global),
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "ts-principals",
                &mut std::io::stdout(),
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn fetch(args: FetchArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let config = read_config(args.config.as_deref())?;
    let loaded = connect::fetch(&args.connect, &config, args.cluster_id.clone(), global)?;
    let p = &loaded.principals;
    let json = input::snapshot::to_json(p);
    let written_to = snapshot_out::write(&args.output, json.as_bytes())?;
    tracing::info!(
        "wrote {written_to}: {} orgs, {} users, {} groups, {} direct memberships (cluster {})",
        p.orgs.len(),
        p.users.len(),
        p.groups.len(),
        p.direct_membership_count(),
        p.source.cluster_id
    );
    Ok(ExitCode::SUCCESS)
}

fn generate(args: GenerateArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let stamp = args.stamp.then(crate::model::timestamp_now);
    let (loaded, mut options) = prepare(&args.render, stamp, global)?;
    // The activity and the history OUT holds are read under its lock, so
    // no other run changes them between reading and writing (a missing OUT
    // is created and locked first, so two first runs take turns too).
    let dir = output::open(
        &args.out,
        args.lock.wait(),
        <generate::Generated<'static> as FileSet>::may_own,
    )?;
    options.tml.guids =
        match crate::import::guids::for_output(&args.out, &loaded.principals.source.cluster_id) {
            Ok(guids) => guids,
            Err(error) => {
                dir.remove_if_created();
                return Err(error.into());
            }
        };
    let render = |held, (history, prior_as_of)| {
        let carried = generate::Carried {
            dir: args.out.clone(),
            held,
            history,
            prior_as_of,
        };
        generate::generate(
            &loaded.principals,
            &loaded.report,
            loaded.kind,
            &options,
            carried,
        )
    };
    let written = (|| -> anyhow::Result<output::WriteSummary> {
        let history =
            advance_history(&args.render, &args.out, &loaded, &options, args.lock.wait())?;
        let generated = render(held_in(&args.out)?, history)?;
        if args.render.group_activity && generated.layout.group_activity.is_empty() {
            tracing::warn!(
                "--group-activity writes nothing: {} holds no activity copy with a user column \
                 (run `ts-principals activity --out {}` first)",
                args.out.display(),
                args.out.display()
            );
        }
        Ok(dir.write(&generated)?)
    })();
    let summary = match written {
        Ok(summary) => summary,
        Err(error) => {
            // Refused before anything was written: a directory this run
            // created goes again.
            dir.remove_if_created();
            return Err(error);
        }
    };
    for path in &summary.edited {
        let what = if summary.removed.contains(path) {
            "ts-principals no longer writes it, so it was removed with the edit (find it in git \
             if you need it)"
        } else {
            "the new output replaces it (keep lasting changes in --templates)"
        };
        tracing::warn!(
            "{} was changed since ts-principals wrote it (edited by hand?); {what}",
            args.out.join(path).display()
        );
    }
    tracing::info!(
        "wrote {}: {} files ({} added, {} changed, {} unchanged, {} removed)",
        args.out.display(),
        summary.added.len() + summary.changed.len() + summary.unchanged.len(),
        summary.added.len(),
        summary.changed.len(),
        summary.unchanged.len(),
        summary.removed.len()
    );
    Ok(ExitCode::SUCCESS)
}

fn diff(args: DiffArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let color = global.color;
    let (loaded, mut options) = prepare(&args.render, None, global)?;
    let dir = output::open_to_read(&args.out, args.lock.wait())?;
    options.tml.guids =
        crate::import::guids::for_output(&args.out, &loaded.principals.source.cluster_id)?;
    let (history, prior_as_of) =
        advance_history(&args.render, &args.out, &loaded, &options, args.lock.wait())?;
    let carried = generate::Carried {
        dir: args.out.clone(),
        held: held_in(&args.out)?,
        history,
        prior_as_of,
    };
    let generated = generate::generate(
        &loaded.principals,
        &loaded.report,
        loaded.kind,
        &options,
        carried,
    )?;
    // The lock is held until the diff is shown, so no run changes the files
    // being read.
    let shown = diff::compare(&dir, &generated).and_then(|changes| {
        if !changes.is_empty() {
            let palette = Palette::new(color.enabled(std::io::stdout().is_terminal()));
            let mut stdout = std::io::stdout().lock();
            if args.stat {
                diff::stat(&changes, &generated, &args.out, palette, &mut stdout)?;
            } else {
                diff::unified(&changes, &generated, &args.out, palette, &mut stdout)?;
            }
            // A closed pipe (`| head`) is not an error worth reporting.
            let _ = stdout.flush();
        }
        Ok(changes)
    });
    drop(dir);
    let changes = shown?;
    if changes.is_empty() {
        tracing::info!("{} is up to date", args.out.display());
        return Ok(ExitCode::SUCCESS);
    }
    tracing::info!(
        "{} file(s) differ from {}",
        changes.files.len(),
        args.out.display()
    );
    Ok(if args.check {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The membership history the output gets: the one in `--history` (or
/// else in `out`) advanced to the principals, or none to start it.
fn advance_history(
    args: &RenderArgs,
    out: &Path,
    loaded: &Loaded,
    options: &GenerateOptions,
    wait: Wait,
) -> anyhow::Result<(Option<History>, Option<String>)> {
    let dir = args.history.as_deref().unwrap_or(out);
    // Another output directory is locked while it is read (`out` already is).
    let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    let _lock = match &args.history {
        Some(dir) if dir.is_dir() && !same(dir, out) => Some(output::open_to_read(dir, wait)?),
        _ => None,
    };
    let cluster = &loaded.principals.source.cluster_id;
    let taken = match &options.as_of {
        Some(as_of) => Some(as_of.clone()),
        None => history::as_of(None, loaded.principals.source.fetched_at.as_deref())?,
    };
    let prior = match History::read_prior(dir)? {
        Some(prior) => prior,
        None if args.history.is_some() => {
            return Err(history::HistoryError::NoPrior {
                dir: dir.display().to_string(),
            }
            .into());
        }
        None => return Ok((None, None)),
    };
    let after = (prior.as_of.clone()).filter(|_| prior.cluster.as_deref() == Some(cluster));
    // --history PREV replaces the history OUT holds: never with an older
    // snapshot, and not silently when OUT's records changes PREV's does not.
    if args.history.is_some() && !same(dir, out) {
        let held = history::Recorded::of(out);
        let held_as_of = held
            .as_of
            .filter(|_| held.cluster_id.as_deref() == Some(cluster));
        if let (Some(held_as_of), Some(as_of)) = (&held_as_of, &taken)
            && held_as_of > as_of
        {
            return Err(history::HistoryError::Backwards {
                path: out.display().to_string(),
                cluster: cluster.clone(),
                as_of: as_of.clone(),
                latest: held_as_of.clone(),
            }
            .into());
        }
        if held_as_of.as_deref() > after.as_deref() {
            tracing::warn!(
                "{} holds a membership history up to {} UTC; it is replaced by the one of {} \
                 (up to {} UTC) advanced to these principals, without the changes only {} \
                 recorded",
                out.display(),
                held_as_of.as_deref().unwrap_or("?"),
                dir.display(),
                after.as_deref().unwrap_or("its first snapshot"),
                out.display()
            );
        }
    }
    let memberships = history::memberships(&loaded.principals, &options.data);
    let stamp = taken.clone().unwrap_or_else(|| {
        history::as_of(Some(&crate::model::timestamp_now()), None)
            .ok()
            .flatten()
            .unwrap_or_default()
    });
    let path = dir.join(DATA_DIR).join(history::file_name());
    let (history, changes) = prior.history.advance(
        cluster,
        memberships,
        (&stamp, after.as_deref()),
        &path.display().to_string(),
    )?;
    if changes.dropped > 0 {
        tracing::warn!(
            "{} holds {} membership history rows of another cluster than {cluster}; an output \
             directory holds one cluster, so they are not carried (they stay in git and in \
             the databases they were loaded into)",
            path.display(),
            changes.dropped
        );
    }
    if changes.opened + changes.closed > 0 {
        if taken.is_none() {
            tracing::warn!(
                "the input records no time it was taken (fetched_at), so the membership \
                 changes are dated now ({stamp} UTC); say when with --as-of"
            );
        }
        tracing::info!(
            "membership history of {}: {} memberships began and {} ended as of {stamp} UTC",
            path.display(),
            changes.opened,
            changes.closed
        );
    }
    Ok((Some(history), after))
}

/// Reads the config and the input (or fetches it), and resolves the options.
fn prepare(
    args: &RenderArgs,
    stamp: Option<String>,
    global: &GlobalArgs,
) -> anyhow::Result<(Loaded, GenerateOptions)> {
    let config = load_config(args)?;
    let (loaded, what) = if args.from.is_empty() {
        let (loaded, _, url) = connect::fetch_nonempty(
            &args.connect,
            &config,
            args.cluster_id.clone(),
            global,
            args.allow_empty,
        )?;
        (loaded, format!("fetched {url}"))
    } else {
        let loaded = input::load(
            &args.from,
            &LoadOptions {
                cluster_id: args.cluster_id.clone(),
                fallback_cluster_id: config.data.cluster_id.clone(),
                allow_empty: args.allow_empty,
            },
        )?;
        let files: Vec<String> = args.from.iter().map(|f| f.display().to_string()).collect();
        (loaded, format!("read {}", files.join(", ")))
    };
    let p = &loaded.principals;
    tracing::info!(
        "{what} ({}): {} orgs, {} users, {} groups, {} direct memberships",
        loaded.kind,
        p.orgs.len(),
        p.users.len(),
        p.groups.len(),
        p.direct_membership_count()
    );
    let templates = match &args.templates {
        Some(dir) => Templates::with_overrides(dir)?,
        None => Templates::builtin(),
    };
    let as_of = history::as_of(args.as_of.as_deref(), None)?;
    if as_of.is_none() {
        // The input's own time is checked too (a bad or future fetched_at).
        history::as_of(None, loaded.principals.source.fetched_at.as_deref())?;
    }
    let options = GenerateOptions {
        stamp,
        as_of,
        group_activity: args.group_activity,
        ..GenerateOptions::from_config(&config, templates)?
    };
    Ok((loaded, options))
}

/// The project config: `--config`, else `./ts-principals.toml` if present,
/// else defaults; then the flags on top.
fn load_config(args: &RenderArgs) -> anyhow::Result<ProjectConfig> {
    let mut config = read_config(args.config.as_deref())?;
    if args.excel_safe {
        config.data.excel_safe = true;
    }
    if let Some(format) = args.format {
        config.tml.format = format;
    }
    if args.no_activity {
        config.tml.activity.enabled = false;
    }
    config.validate("(with flags)")?;
    Ok(config)
}

/// `--config`, else `./ts-principals.toml` if present, else defaults.
pub(super) fn read_config(path: Option<&Path>) -> anyhow::Result<ProjectConfig> {
    let default = Path::new(config::DEFAULT_FILE);
    Ok(match path {
        Some(path) => ProjectConfig::load(path)?,
        None if default.is_file() => {
            tracing::info!("using config {}", default.display());
            ProjectConfig::load(default)?
        }
        None => ProjectConfig::default(),
    })
}

/// Exit code for an error: 4 when the output (directory or snapshot) could
/// not be written, 3 when the cluster or the network failed, 2 for anything
/// the user can fix in their input, config or command line.
fn exit_code(error: &anyhow::Error) -> u8 {
    if error.is::<OutputError>() || error.is::<snapshot_out::SnapshotWriteError>() {
        return 4;
    }
    if let Some(error) = error.downcast_ref::<ActivityError>() {
        return if error.is_output() {
            4
        } else if error.is_cluster() {
            3
        } else {
            2
        };
    }
    if let Some(error) = error.downcast_ref::<PgError>() {
        return match error {
            PgError::Source(SourceError::Output(_))
            | PgError::NotOurs { .. }
            | PgError::Busy { .. } => 4,
            error if error.is_server() => 3,
            _ => 2,
        };
    }
    if let Some(error) = error.downcast_ref::<FalconError>() {
        return if error.is_interrupted() {
            130
        } else if error.is_output() {
            4
        } else if error.is_cluster() {
            3
        } else {
            2
        };
    }
    if let Some(SourceError::Output(_)) = error.downcast_ref::<SourceError>() {
        return 4;
    }
    if error.is::<crate::load::sql::SqlError>() {
        return 2;
    }
    if let Some(error) = error.downcast_ref::<crate::import::ImportError>() {
        return if error.is_output() {
            4
        } else if error.is_cluster() {
            3
        } else {
            2
        };
    }
    if let Some(error) = error.downcast_ref::<crate::import::GuidMapError>() {
        return match error {
            crate::import::GuidMapError::Io { .. } => 4,
            crate::import::GuidMapError::Invalid { .. } => 2,
        };
    }
    if let Some(error) = error.downcast_ref::<crate::apply::ApplyError>() {
        return error.exit_code();
    }
    if let Some(error) = error.downcast_ref::<crate::transfer::TransferError>() {
        return if error.is_cluster() { 3 } else { 2 };
    }
    if error.is::<connect::UnusableResponses>() {
        return 3;
    }
    match error.downcast_ref::<ClientError>() {
        Some(ClientError::Setup(_) | ClientError::Unsupported(_)) | None => 2,
        Some(_) => 3,
    }
}

/// The error and the causes its message does not already include.
fn error_message(error: &anyhow::Error) -> String {
    let mut message = format!("{error}");
    for cause in error.chain().skip(1) {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(&format!("\n  caused by: {text}"));
        }
    }
    message
}

/// Prints the final error on stderr. Not through the log: it must reach
/// the user whatever RUST_LOG or -q say.
fn report(error: &anyhow::Error, color: bool) {
    let style = anstyle::AnsiColor::Red.on_default().bold();
    let prefix = if color {
        format!("{}error:{} ", style.render(), style.render_reset())
    } else {
        "error: ".to_owned()
    };
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "{prefix}{}", error_message(error));
}

fn init_logging(global: &GlobalArgs) {
    use tracing_subscriber::EnvFilter;
    use tracing_subscriber::filter::LevelFilter;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let level = match (global.verbose, global.quiet) {
        (0, 0) => LevelFilter::INFO,
        (_, 1) => LevelFilter::WARN,
        (_, q) if q >= 2 => LevelFilter::ERROR,
        (1, _) => LevelFilter::DEBUG,
        _ => LevelFilter::TRACE,
    };
    let rust_log = std::env::var("RUST_LOG").ok();
    let filter = EnvFilter::try_new(log_directives(rust_log.as_deref(), level))
        .unwrap_or_else(|_| EnvFilter::new(log_directives(None, level)));
    let color = global.color.enabled(std::io::stderr().is_terminal());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(color)
        .event_format(LogFormat)
        .finish()
        .with(tracing_subscriber::filter::filter_fn(|meta| !hidden(meta)))
        .init();
}

/// The log filter: `warn,ts_principals=LEVEL` without RUST_LOG. RUST_LOG
/// wins for debugging dependencies, but our own logs keep the level -v/-q
/// chose unless it names `ts_principals` (`RUST_LOG=reqwest=debug` once hid
/// every warning of ours), or a global level that shows more of them.
fn log_directives(
    rust_log: Option<&str>,
    level: tracing_subscriber::filter::LevelFilter,
) -> String {
    use tracing_subscriber::filter::LevelFilter;
    let Some(rust_log) = rust_log.map(str::trim).filter(|r| !r.is_empty()) else {
        return format!("warn,ts_principals={level}");
    };
    if rust_log.contains("ts_principals") {
        return rust_log.to_owned();
    }
    let global = rust_log
        .split(',')
        .filter_map(|directive| directive.trim().parse::<LevelFilter>().ok())
        .max();
    let ours = global.map_or(level, |global| global.max(level));
    format!("{rust_log},ts_principals={ours}")
}

/// Log lines never shown: the error rustls-platform-verifier logs when a
/// certificate is refused (`failed to verify TLS certificate: …
/// CaUsedAsEndEntity`; the final error names the same reason and explains
/// it, so the raw line would only say it twice; it is the crate's only
/// error-level log), and cookie_store's, which print session cookies.
fn hidden(meta: &tracing::Metadata<'_>) -> bool {
    *meta.level() == tracing::Level::ERROR && meta.target().starts_with("rustls_platform_verifier")
        // cookie_store logs every cookie it stores, session ids included.
        || meta.target().starts_with("cookie_store")
}

/// `error: …`, `warning: …`, plain info lines.
struct LogFormat;

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for LogFormat
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        use anstyle::AnsiColor;
        let (prefix, style) = match *event.metadata().level() {
            tracing::Level::ERROR => ("error: ", AnsiColor::Red.on_default().bold()),
            tracing::Level::WARN => ("warning: ", AnsiColor::Yellow.on_default().bold()),
            tracing::Level::INFO => ("", anstyle::Style::new()),
            tracing::Level::DEBUG => ("debug: ", AnsiColor::Blue.on_default()),
            tracing::Level::TRACE => ("trace: ", AnsiColor::Magenta.on_default()),
        };
        if writer.has_ansi_escapes() {
            write!(writer, "{}{prefix}{}", style.render(), style.render_reset())?;
        } else {
            write!(writer, "{prefix}")?;
        }
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_cli() {
        Cli::command().debug_assert();
    }

    #[test]
    fn our_logs_keep_their_level_unless_rust_log_names_them() {
        use tracing_subscriber::filter::LevelFilter;
        let info = LevelFilter::INFO;
        assert_eq!(log_directives(None, info), "warn,ts_principals=info");
        assert_eq!(log_directives(Some(" "), info), "warn,ts_principals=info");
        assert_eq!(
            log_directives(None, LevelFilter::WARN),
            "warn,ts_principals=warn"
        );
        // Only a dependency named: ours were all hidden.
        assert_eq!(
            log_directives(Some("reqwest=debug"), info),
            "reqwest=debug,ts_principals=info"
        );
        assert_eq!(
            log_directives(Some("reqwest=debug,hyper=trace"), LevelFilter::DEBUG),
            "reqwest=debug,hyper=trace,ts_principals=debug"
        );
        // Named: RUST_LOG decides.
        assert_eq!(
            log_directives(Some("ts_principals=off"), info),
            "ts_principals=off"
        );
        assert_eq!(
            log_directives(Some("warn,ts_principals::client=trace"), info),
            "warn,ts_principals::client=trace"
        );
        // A global level shows more of ours when it asks for more, never less.
        assert_eq!(
            log_directives(Some("trace"), info),
            "trace,ts_principals=trace"
        );
        assert_eq!(log_directives(Some("off"), info), "off,ts_principals=info");
        assert_eq!(
            log_directives(Some("error,reqwest=debug"), LevelFilter::WARN),
            "error,reqwest=debug,ts_principals=warn"
        );
        for rust_log in [
            None,
            Some("reqwest=debug"),
            Some("trace"),
            Some("ts_principals=off"),
        ] {
            let directives = log_directives(rust_log, info);
            assert!(
                tracing_subscriber::EnvFilter::try_new(&directives).is_ok(),
                "{directives}"
            );
        }
    }
}
