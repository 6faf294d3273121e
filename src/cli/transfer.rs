//! `transfer --from USER --to USER`: ownership of a user's objects.

use std::io::Write as _;
use std::process::ExitCode;

use clap::Args;

use super::GlobalArgs;
use super::connect::TransportArgs;
use crate::config::ProjectConfig;
use crate::transfer::{self, TransferOptions, Transferred};

pub(super) const AFTER_HELP: &str = "\
Examples:
  ts-principals transfer --from leaver@example.com --to manager@example.com --profile prod --dry-run
  ts-principals transfer --from leaver@example.com --to manager@example.com --profile prod

Exit codes: 0 transferred (or nothing to transfer), 2 a transfer ThoughtSpot refuses
(to or from system or tsadmin, the same user twice, an unknown user, a refusal by the
cluster), 3 cluster or network error.";

#[derive(Debug, Args)]
pub(super) struct TransferArgs {
    /// The user whose objects change owner (username).
    #[arg(long, value_name = "USER")]
    from: String,
    /// The user who becomes their owner (username).
    #[arg(long, value_name = "USER")]
    to: String,
    /// List the objects that would change owner; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Connection profile (`ts-principals config list`); `env` (or none, with
    /// THOUGHTSPOT_URL set) uses the THOUGHTSPOT_* variables.
    #[arg(long, value_name = "NAME")]
    profile: Option<String>,
    #[command(flatten)]
    transport: TransportArgs,
}

pub(super) fn run(args: TransferArgs, _global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let options = TransferOptions {
        from: args.from.clone(),
        to: args.to.clone(),
        dry_run: args.dry_run,
    };
    transfer::check(&options)?;
    let max_response_mb = ProjectConfig::default().fetch.max_response_mb;
    let (connection, _) = (args.transport).connect(args.profile.as_deref(), max_response_mb)?;
    let done = transfer::run(&connection, &options)?;
    let mut stdout = std::io::stdout().lock();
    match done {
        Transferred::Objects(objects) if objects.is_empty() => {
            tracing::info!("{:?} owns no objects: nothing to transfer", options.from);
        }
        Transferred::Objects(objects) => {
            for o in &objects {
                let _ = writeln!(
                    stdout,
                    "{}\t{}\t{:?}\torg {}",
                    o.guid, o.kind, o.name, o.org
                );
            }
            if options.dry_run {
                tracing::info!(
                    "dry run: {} objects of {:?} would go to {:?}; nothing was changed",
                    objects.len(),
                    options.from,
                    options.to
                );
            } else {
                tracing::info!(
                    "transferred {} objects from {:?} to {:?}",
                    objects.len(),
                    options.from,
                    options.to
                );
            }
        }
        Transferred::All => tracing::info!(
            "transferred every object of {:?} to {:?} (REST v1, which does not list them)",
            options.from,
            options.to
        ),
    }
    let _ = stdout.flush();
    Ok(ExitCode::SUCCESS)
}
