//! `export-spec`, `validate` and `plan`: principals as code.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;

use super::{GlobalArgs, connect, read_config, snapshot_out};
use crate::input::{self, LoadOptions, Loaded};
use crate::plan::{self, Change, PlanOptions};
use crate::spec::template::VarsFile;
use crate::spec::validate::{self, PASSWORD_ENV, check_password};
use crate::spec::{self, Rendered};

pub(super) const EXPORT_HELP: &str = "\
Examples:
  ts-principals export-spec --profile prod -o principals.yaml
  ts-principals export-spec --from principals.json -o principals.yaml

Then: ts-principals plan principals.yaml --profile prod   (shows no change)";

pub(super) const VALIDATE_HELP: &str = "\
Examples:
  ts-principals validate principals.yaml
  ts-principals validate principals.yaml.j2 --vars hr.csv --print > rendered.yaml

Exit codes: 0 valid (warnings may be printed), 2 errors (each with line and column).";

pub(super) const PLAN_HELP: &str = "\
Examples:
  ts-principals plan principals.yaml --profile prod
  ts-principals plan principals.yaml --profile prod --out plan.json
  ts-principals plan principals.yaml.j2 --vars hr.csv --profile prod --check   # in CI
  ts-principals plan principals.yaml --from principals.json                    # offline

Reading a plan: `+` creates, `~` updates (field: \"old\" → \"new\"), `-` removes;
memberships are listed per group. Groups are `additive` unless the spec says
`members: exact`: additive groups never lose members; exact groups lose every
member the spec does not name, each listed (at most --max-deletes). Built-in
users and groups, the caller (and its groups, from the ladder) and principals
of an identity provider are never removed unless the spec declares them; the
plan lists them as kept.

Principals the spec does not declare are left alone unless a step of the delete
ladder is asked for: --hide, --deactivate or --prune (with --transfer-to USER for
users who own objects), at most --max-deletes of them (default 10). Protected
principals are reached only when named with --unprotect NAME.
  ts-principals plan principals.yaml --profile prod --prune --transfer-to admin@example.com --out plan.json

Exit codes: 0 planned (with --check: no changes), 1 with --check: changes,
2 spec or input error, 3 cluster error, 4 --out cannot be written.";

/// The spec and how to render it.
#[derive(Debug, Args)]
pub(super) struct SpecArgs {
    /// The spec: principals.yaml, or a minijinja template whose name ends in .j2.
    #[arg(value_name = "SPEC")]
    spec: PathBuf,
    /// Variables for a .j2 spec: a CSV (rows of text, by column), JSON or YAML file,
    /// bound to its file name (`hr.csv` → `hr`; with one file also `vars`) or to NAME
    /// (repeatable).
    #[arg(long = "vars", value_name = "[NAME=]FILE", value_parser = VarsFile::parse)]
    vars: Vec<VarsFile>,
}

impl SpecArgs {
    fn read(&self) -> anyhow::Result<Rendered> {
        Ok(spec::read(&self.spec, &self.vars)?)
    }
}

/// Where the cluster's principals come from: a file, or the cluster.
#[derive(Debug, Args)]
pub(super) struct SourceArgs {
    /// Principals to read instead of fetching (a snapshot `fetch` wrote, a v2 export,
    /// v2 search responses, or a v1 user/list), repeatable.
    #[arg(long = "from", value_name = "FILE", conflicts_with = "profile")]
    from: Vec<PathBuf>,
    #[command(flatten)]
    connect: connect::ConnectArgs,
    /// Project config, for its [fetch] settings and data.cluster_id
    /// [default: ./ts-principals.toml when present].
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Accept a cluster (or input) with no users and no groups.
    #[arg(long)]
    allow_empty: bool,
}

impl SourceArgs {
    /// The principals, and the caller's username when fetched live.
    /// `every_org`: read every org live (the delete ladder must see each
    /// user's orgs).
    fn load(
        &self,
        global: &GlobalArgs,
        every_org: bool,
    ) -> anyhow::Result<(Loaded, Option<String>)> {
        let config = read_config(self.config.as_deref())?;
        if self.from.is_empty() {
            if every_org && self.connect.names_orgs() {
                anyhow::bail!(
                    "--hide, --deactivate and --prune read every org (a user's orgs decide whether \
                     it is reached); drop --org and --all-orgs"
                );
            }
            let (loaded, caller, _) = connect::fetch_nonempty_in(
                &self.connect,
                &config,
                None,
                global,
                self.allow_empty,
                every_org,
            )?;
            Ok((loaded, caller))
        } else {
            let loaded = input::load(
                &self.from,
                &LoadOptions {
                    cluster_id: None,
                    fallback_cluster_id: config.data.cluster_id.clone(),
                    allow_empty: self.allow_empty,
                },
            )?;
            Ok((loaded, None))
        }
    }
}

#[derive(Debug, Args)]
pub(super) struct ExportArgs {
    #[command(flatten)]
    source: SourceArgs,
    /// Where to write the spec: a file (replaced atomically) or `-` for standard output.
    #[arg(short, long, value_name = "FILE|-", default_value = "principals.yaml")]
    output: PathBuf,
}

#[derive(Debug, Args)]
pub(super) struct ValidateArgs {
    #[command(flatten)]
    spec: SpecArgs,
    /// Print the spec as read (a template's rendering) on standard output.
    #[arg(long)]
    print: bool,
}

#[derive(Debug, Args)]
pub(super) struct PlanArgs {
    #[command(flatten)]
    spec: SpecArgs,
    #[command(flatten)]
    source: SourceArgs,
    /// Save the plan as JSON: the changes, the state of every principal they touch as
    /// the cluster had it, and its fingerprint.
    #[arg(long, value_name = "FILE", value_parser = not_stdout)]
    out: Option<PathBuf>,
    /// Username of who will apply the plan, never removed from a group or org
    /// [default: the profile's username when fetching live; none with --from].
    #[arg(long, value_name = "USER")]
    caller: Option<String>,
    /// Exit with 1 when the plan has changes, 0 when it has none (for CI).
    #[arg(long)]
    check: bool,
    /// Hide the users and groups the spec does not declare: NON_SHARABLE, and members
    /// of the group `ts-principals-quarantine` (created in their org when missing).
    #[arg(long, help_heading = "Principals not in the spec (the delete ladder)")]
    hide: bool,
    /// Deactivate the users the spec does not declare (account_status INACTIVE); hide
    /// the groups it does not declare.
    #[arg(
        long,
        conflicts_with = "hide",
        help_heading = "Principals not in the spec (the delete ladder)"
    )]
    deactivate: bool,
    /// Delete the users and groups the spec does not declare (in the orgs the spec
    /// names, and the Primary org).
    #[arg(long, conflicts_with_all = ["hide", "deactivate"], help_heading = "Principals not in the spec (the delete ladder)")]
    prune: bool,
    /// Most principals --hide, --deactivate or --prune may reach, and most members
    /// `members: exact` groups and orgs may lose; a plan with more is refused (exit 2).
    #[arg(long, value_name = "N", default_value_t = plan::DEFAULT_MAX_DELETES, help_heading = "Principals not in the spec (the delete ladder)")]
    max_deletes: usize,
    /// With --prune: give the objects of each deleted user to USER first. Without it,
    /// apply refuses to delete a user who owns objects.
    #[arg(
        long,
        value_name = "USER",
        requires = "prune",
        help_heading = "Principals not in the spec (the delete ladder)"
    )]
    transfer_to: Option<String>,
    /// A protected user or group (built-in, the caller, an identity provider's) the
    /// ladder may reach all the same, by name (repeatable).
    #[arg(
        long,
        value_name = "NAME",
        help_heading = "Principals not in the spec (the delete ladder)"
    )]
    unprotect: Vec<String>,
}

impl PlanArgs {
    fn unmanaged(&self) -> plan::Unmanaged {
        if self.prune {
            plan::Unmanaged::Delete
        } else if self.deactivate {
            plan::Unmanaged::Deactivate
        } else if self.hide {
            plan::Unmanaged::Hide
        } else {
            plan::Unmanaged::Ignore
        }
    }
}

/// `--out` takes a file: standard output carries the plan's text.
fn not_stdout(arg: &str) -> Result<PathBuf, String> {
    if arg == "-" {
        Err("the plan's text goes to standard output; save the JSON to a file".to_owned())
    } else {
        Ok(PathBuf::from(arg))
    }
}

pub(super) fn export(args: ExportArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let (loaded, _) = args.source.load(global, false)?;
    let p = &loaded.principals;
    let text = spec::export::export(p);
    let written_to = snapshot_out::write_as(&args.output, text.as_bytes(), "spec", "-o")?;
    if !spec::export::knows_privileges(p) {
        tracing::warn!(
            "the principals were read over REST v1, which does not report privileges: \
             the spec leaves them out (not managed)"
        );
    }
    tracing::info!(
        "wrote {written_to}: {} orgs, {} groups, {} users (cluster {})",
        p.orgs.len(),
        p.groups.len(),
        p.users.len(),
        p.source.cluster_id
    );
    Ok(ExitCode::SUCCESS)
}

/// Prints the warnings (errors are the error's message).
fn print_warnings(report: &validate::Report) {
    let mut stderr = std::io::stderr().lock();
    for finding in report.warnings() {
        let _ = writeln!(stderr, "{finding}");
    }
}

pub(super) fn validate(args: ValidateArgs, _global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    if args.print {
        // Printed before it is parsed, so a template's broken rendering can be read.
        let (text, _) = spec::read_text(&args.spec.spec, &args.spec.vars)?;
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(text.as_bytes())?;
        stdout.flush()?;
    }
    let rendered = args.spec.read()?;
    let mut report = validate::validate(&rendered.spec);
    check_env_password(&rendered.spec, &mut report);
    print_warnings(&report);
    let s = &rendered.spec;
    if !report.is_ok() {
        return Err(validate::Invalid {
            origin: s.origin.clone(),
            report,
        }
        .into());
    }
    tracing::info!(
        "{} is valid: {} orgs, {} groups, {} users{}",
        s.origin,
        s.orgs.len(),
        s.groups.len(),
        s.users.len(),
        match report.warnings().count() {
            0 => String::new(),
            n => format!(" ({n} warnings)"),
        }
    );
    Ok(ExitCode::SUCCESS)
}

/// Checks the initial password in the environment, when set, against the
/// rules and every LOCAL_USER the spec declares (any may be new).
fn check_env_password(s: &spec::Spec, report: &mut validate::Report) {
    let Ok(password) = std::env::var(PASSWORD_ENV) else {
        return;
    };
    let local = |u: &&spec::UserSpec| {
        let t = u
            .account_type
            .as_ref()
            .or(s.defaults.users.account_type.as_ref());
        t.is_none_or(|t| *t == crate::model::AccountType::LocalUser)
    };
    let mut checked = false;
    for user in s.users.iter().filter(local) {
        let display = user.display_name.as_deref().unwrap_or("");
        if let Err(problem) = check_password(
            &password,
            &validate::blocked_words(&user.name.text, display),
        ) {
            report.push_error(
                user.name.at,
                format!(
                    "the initial password in {PASSWORD_ENV} {problem} (user `{}`)",
                    user.name.text
                ),
            );
            return;
        }
        checked = true;
    }
    if !checked && let Err(problem) = check_password(&password, &[]) {
        report.push_error(
            spec::Pos::default(),
            format!("the initial password in {PASSWORD_ENV} {problem}"),
        );
    }
}

/// Checks the initial password of the local users the plan creates, when
/// it is in the environment; says where it comes from otherwise.
fn check_new_passwords(plan: &plan::Plan) -> anyhow::Result<()> {
    let new_local: Vec<(&str, &str)> = (plan.changes.iter())
        .filter_map(|c| match c {
            Change::CreateUser { name, attrs } if attrs.account_type == "LOCAL_USER" => {
                Some((name.as_str(), attrs.display_name.as_str()))
            }
            _ => None,
        })
        .collect();
    if new_local.is_empty() {
        return Ok(());
    }
    match std::env::var(PASSWORD_ENV) {
        Ok(password) => {
            for (name, display_name) in new_local {
                check_password(&password, &validate::blocked_words(name, display_name)).map_err(
                    |problem| {
                        anyhow::anyhow!(
                            "the initial password in {PASSWORD_ENV} {problem} for the new user {name:?}; \
                             choose another"
                        )
                    },
                )?;
            }
        }
        Err(_) => tracing::warn!(
            "{} new LOCAL_USERs need an initial password: set {PASSWORD_ENV} (checked here when set) \
             or type it when asked",
            new_local.len()
        ),
    }
    Ok(())
}

pub(super) fn plan(args: PlanArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let rendered = args.spec.read()?;
    let report = validate::validate(&rendered.spec);
    print_warnings(&report);
    let ladder = args.unmanaged() != plan::Unmanaged::Ignore;
    let (loaded, profile_user) = args.source.load(global, ladder)?;
    if ladder && !args.source.from.is_empty() {
        tracing::warn!(
            "{} on a snapshot: users are reached by the orgs the snapshot holds; a snapshot of \
             some orgs only (fetch --org) makes users of other orgs look reachable, and apply \
             refuses such a plan as stale",
            args.unmanaged().flag()
        );
    }
    if !spec::export::knows_privileges(&loaded.principals)
        && rendered.spec.groups.iter().any(|g| g.privileges.is_some())
    {
        tracing::warn!(
            "the cluster was read over REST v1, which does not report privileges: \
             privileges of existing groups are not compared"
        );
    }
    let caller = args.caller.clone().or(profile_user);
    if caller.is_none() && !args.source.from.is_empty() {
        tracing::info!(
            "no --caller given: the user who will apply the plan is not protected from removals"
        );
    }
    let plan = plan::plan(
        &rendered.spec,
        &rendered.text,
        &loaded.principals,
        &PlanOptions {
            caller,
            unmanaged: args.unmanaged(),
            max_deletes: args.max_deletes,
            transfer_to: args.transfer_to.clone(),
            unprotect: args.unprotect.clone(),
        },
    )?;
    check_new_passwords(&plan)?;
    if let Some(out) = &args.out {
        write_plan(out, &plan)?;
    }
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(plan.to_text().as_bytes())?;
    stdout.flush()?;
    if let Some(out) = &args.out {
        tracing::info!(
            "saved the plan to {} (fingerprint {})",
            out.display(),
            plan.fingerprint
        );
    }
    Ok(if args.check && !plan.is_empty() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn write_plan(path: &Path, plan: &plan::Plan) -> anyhow::Result<()> {
    let mut json = serde_json::to_string_pretty(plan)?;
    json.push('\n');
    snapshot_out::write_as(path, json.as_bytes(), "plan", "--out")?;
    Ok(())
}
