//! `import`: send the TML of an output directory to a cluster, updating
//! the same objects every time.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};

use super::connect::TransportArgs;
use super::{GlobalArgs, LockArgs};
use crate::config::ProjectConfig;
use crate::import::{self, ImportError, ImportOptions, Policy};

pub(super) const AFTER_HELP: &str = "\
Examples:
  ts-principals import --tml out/tml --profile prod
  ts-principals import --tml out/tml --profile prod --org Sales
  ts-principals import --tml out/tml --profile prod --validate-only   # a pull-request check
  ts-principals import --tml out/tml --dry-run                         # what would be sent

The tables go first, then the model (or worksheet), in one request. The GUID each object gets
is recorded in out/guids.json (per cluster and org; commit it beside the TML), and the next
import sends it, so the same objects are updated in place; `generate` writes the GUIDs into the
TML too. An object recorded there but gone from the cluster is created again. An object of ours
the map does not know (imported by hand) is found by name and adopted.

Exit codes: 0 imported (warnings are shown); 2 bad input (the TML or guids.json); 3 the cluster
refused an object (the table says which and why) or the cluster or network failed; 4 the output
directory is busy or guids.json cannot be written.";

/// `--policy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum PolicyChoice {
    /// Import everything or nothing (ALL_OR_NONE).
    AllOrNone,
    /// Import what can be imported (PARTIAL); the others are reported.
    Partial,
}

#[derive(Debug, Args)]
pub(super) struct ImportArgs {
    /// The TML directory `ts-principals generate` wrote (OUT/tml).
    #[arg(long, value_name = "DIR")]
    tml: PathBuf,
    /// Connection profile (`ts-principals config list`); `env` (or none, with
    /// THOUGHTSPOT_URL set) uses the THOUGHTSPOT_* variables.
    #[arg(long, value_name = "NAME")]
    profile: Option<String>,
    /// The org to import into, by name or id, signing in to it [default: the Primary org,
    /// 0]. With a bearer token, which is already of an org, name that org.
    #[arg(long, value_name = "NAME|ID", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    org: Option<String>,
    /// What happens when some objects fail: nothing is imported (all-or-none), or the
    /// others are (partial).
    #[arg(long, value_enum, value_name = "POLICY", default_value_t = PolicyChoice::AllOrNone)]
    policy: PolicyChoice,
    /// Only let the cluster check the TML (VALIDATE_ONLY): nothing is imported and
    /// guids.json is not changed; exit 3 when it finds errors. For pull-request checks.
    #[arg(long, conflicts_with = "policy")]
    validate_only: bool,
    /// Print what would be sent (files in order, sizes, org, the GUIDs guids.json knows)
    /// without contacting the cluster.
    #[arg(long)]
    dry_run: bool,
    /// The GUID map [default: guids.json beside DIR when DIR is an output directory's
    /// tml, else in DIR].
    #[arg(long, value_name = "FILE")]
    guids: Option<PathBuf>,
    #[command(flatten)]
    lock: LockArgs,
    #[command(flatten)]
    transport: TransportArgs,
}

pub(super) fn run(args: ImportArgs, _global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let map = (args.guids.clone()).unwrap_or_else(|| ImportOptions::default_map(&args.tml));
    let options = ImportOptions {
        tml: args.tml.clone(),
        map,
        policy: if args.validate_only {
            Policy::ValidateOnly
        } else {
            match args.policy {
                PolicyChoice::AllOrNone => Policy::AllOrNone,
                PolicyChoice::Partial => Policy::Partial,
            }
        },
        org: args.org.clone(),
        wait: args.lock.wait(),
    };
    if args.dry_run {
        return dry_run(&options);
    }
    let max_response_mb = ProjectConfig::default().fetch.max_response_mb;
    let (connection, _) = (args.transport).connect(args.profile.as_deref(), max_response_mb)?;
    let report = import::run(&connection, &options)?;
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(report.table().as_bytes());
    let _ = stdout.flush();
    for outcome in report.outcomes.iter().filter(|o| o.status == "WARNING") {
        tracing::warn!(
            "{}: {}",
            outcome.file,
            outcome.message.as_deref().unwrap_or("warning")
        );
    }
    let failed = report.failed();
    if !failed.is_empty() {
        if options.policy == Policy::AllOrNone {
            tracing::warn!("all-or-none: nothing was imported");
        }
        return Err(ImportError::Failed {
            failed,
            total: report.outcomes.len(),
            validate_only: options.policy == Policy::ValidateOnly,
        }
        .into());
    }
    let done = if options.policy == Policy::ValidateOnly {
        "validated (nothing imported) for"
    } else {
        "imported into"
    };
    tracing::info!(
        "{} object(s) {done} {}{}",
        report.outcomes.len(),
        report.target,
        if report.map_changed {
            format!(
                "; {} updated (commit it; `generate` writes the GUIDs into the TML)",
                options.map.display()
            )
        } else {
            String::new()
        }
    );
    Ok(ExitCode::SUCCESS)
}

/// `--dry-run`: the files, their order and sizes, and the GUIDs known.
fn dry_run(options: &ImportOptions) -> anyhow::Result<ExitCode> {
    let out = options.map.parent().unwrap_or(std::path::Path::new("."));
    let cluster = crate::history::Recorded::of(out).cluster_id;
    let plan = import::dry_run(options, cluster.as_deref())?;
    let target = match &plan.target {
        Some(target) => format!("{target} (as {} records it)", options.map.display()),
        None => format!(
            "org {} (no GUIDs recorded in {} for it)",
            options.org.as_deref().unwrap_or("0 (Primary)"),
            options.map.display()
        ),
    };
    let bytes: usize = plan.documents.iter().map(|d| d.3).sum();
    let text = format!(
        "Would send {} TML document(s), {bytes} bytes, in this order, to \
         POST /api/rest/2.0/metadata/tml/import ({}) into {target}:\n{}Nothing was sent. A real \
         run first checks the known GUIDs on the cluster and looks for the others by name.\n",
        plan.documents.len(),
        options.policy.wire(),
        plan.table()
    );
    // A closed pipe (`| head`) is not an error worth reporting.
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush());
    Ok(ExitCode::SUCCESS)
}
