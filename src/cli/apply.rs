//! `apply PLAN.json`: carries out a saved plan.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use secrecy::SecretString;

use super::{GlobalArgs, connect, read_config};
use crate::apply::{self, Api};
use crate::spec::validate::PASSWORD_ENV;

pub(super) const AFTER_HELP: &str = "\
Examples:
  ts-principals plan principals.yaml --profile prod --out plan.json   # review it
  ts-principals apply plan.json --profile prod                        # asks first
  ts-principals apply plan.json --profile prod --yes                  # in CI, after merge

What apply checks before changing anything:
  - the plan is for this cluster and was not edited (its fingerprint covers the
    changes and the records);
  - it reaches no protected principal it does not name (--unprotect): not the
    user apply signs in as, nor built-in, system or identity-provider ones;
  - every principal the plan touches is as it was when the plan was made
    (otherwise it lists what moved and stops: make a new plan);
  - new local users get an initial password from TS_PRINCIPALS_NEW_USER_PASSWORD
    or a prompt, checked against ThoughtSpot's rules;
  - users the plan deletes own no objects, unless the plan transfers them
    (plan --prune --transfer-to USER);
  - after the question, the cluster is read again and checked again;
  - the cluster's own dry run (v2 users/import and groups/import with dry_run,
    or v1 user/sync with applyChanges=false) agrees with the plan.
Then each change is applied in order and reported. The first failure stops the
run, listing what was applied and what not; `plan` again shows what is left.

Exit codes: 0 applied (or nothing to apply), 1 the cluster moved since the plan
(or the confirmation was declined), 2 plan, password or option error, 3 cluster
error, dry-run disagreement, or a run stopped part-way.";

#[derive(Debug, Args)]
pub(super) struct ApplyArgs {
    /// The plan `plan --out` saved.
    #[arg(value_name = "PLAN")]
    plan: PathBuf,
    #[command(flatten)]
    connect: connect::ConnectArgs,
    /// Project config, for its [fetch] settings and data.cluster_id
    /// [default: ./ts-principals.toml when present].
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Apply without asking (required when not on a terminal).
    #[arg(long, short = 'y')]
    yes: bool,
}

fn on_terminal() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// The initial password of new local users: the environment, else a prompt.
fn new_user_password(plan: &crate::plan::Plan) -> anyhow::Result<Option<SecretString>> {
    if let Ok(password) = std::env::var(PASSWORD_ENV) {
        return Ok(Some(SecretString::from(password)));
    }
    if apply::new_local_users(plan).is_empty() || !on_terminal() {
        return Ok(None);
    }
    let password = rpassword::prompt_password("Initial password for the new local users: ")?;
    Ok(Some(SecretString::from(password)))
}

fn confirm(changes: usize, url: &str) -> anyhow::Result<bool> {
    let mut stderr = std::io::stderr().lock();
    write!(
        stderr,
        "Apply these {changes} changes to {url}? Only `yes` is accepted: "
    )?;
    stderr.flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(answer.trim() == "yes")
}

pub(super) fn run(args: ApplyArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let plan = apply::read_plan(&args.plan)?;
    if plan.is_empty() {
        tracing::info!(
            "{}: the plan has no changes; nothing to apply",
            args.plan.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    if !args.yes && !on_terminal() {
        anyhow::bail!(
            "apply changes the cluster and asks first, but this is not a terminal: pass --yes \
             to apply {} without asking",
            args.plan.display()
        );
    }
    if args.connect.names_orgs() {
        anyhow::bail!(
            "apply reads every org (the plan's records span them); drop --org and --all-orgs"
        );
    }
    let config = read_config(args.config.as_deref())?;
    let live = connect::fetch_live(&args.connect, &config, None, global, true)?;
    let caller = live.caller.clone();
    if let Some(url) = &plan.cluster.url
        && url.trim_end_matches('/') != live.connection.url.trim_end_matches('/')
    {
        tracing::warn!(
            "the plan was made against {url}; applying to {} (the same cluster id, {})",
            live.connection.url,
            plan.cluster.id
        );
    }
    apply::check_current(&plan, &live.loaded.principals)?;
    apply::check_protected(&plan, &live.loaded.principals, caller.as_deref())?;
    let password = new_user_password(&plan)?;
    let count = plan.changes.len();
    if !args.yes {
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(plan.to_text().as_bytes())?;
        stdout.flush()?;
        if !confirm(count, &live.connection.url)? {
            tracing::warn!("not confirmed: nothing was applied");
            return Ok(ExitCode::from(1));
        }
    }
    // Read again after the question: the cluster may have moved meanwhile.
    let principals = if args.yes {
        live.loaded.principals
    } else {
        live.again(global)?.principals
    };
    apply::check_protected(&plan, &principals, caller.as_deref())?;
    let prepared = apply::prepare(&live.connection, plan, principals, password)?;
    tracing::info!("{}", prepared.checked);
    let api = prepared.api;
    let mut stdout = std::io::stdout();
    let applied = prepared.apply(&mut |label| {
        let _ = writeln!(stdout, "applied  {label}");
        let _ = stdout.flush();
    })?;
    tracing::info!(
        "applied {} changes{}; `ts-principals plan` now shows no changes for them",
        applied.len(),
        match api {
            Api::V2 => "",
            Api::V1 => " (REST v1 user/sync)",
        }
    );
    Ok(ExitCode::SUCCESS)
}
