//! `load --to falcon`: the data of an output directory into Falcon on a
//! ThoughtSpot Software cluster, signed in with a profile's password.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use super::GlobalArgs;
use super::connect::TransportArgs;
use super::load::{LoadProgress, print_summary};
use crate::atomic::Wait;
use crate::client::{Credentials, HttpSettings, Secret};
use crate::config::profile::{self, ProcessSecrets, Store};
use crate::load::Source;
use crate::load::falcon::{self, FalconError};

/// `--to` value that picks Falcon.
const FALCON: &str = "falcon";

/// Whether `--to` names Falcon.
pub(super) fn chosen(to: &str) -> bool {
    to.trim().eq_ignore_ascii_case(FALCON)
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Falcon (--to falcon)")]
pub(super) struct FalconArgs {
    /// Connection profile of the ThoughtSpot Software cluster (`ts-principals config
    /// list`); it must sign in with a password, which remote TQL and tsload require. `env`
    /// (or no profile, with THOUGHTSPOT_URL set) uses THOUGHTSPOT_URL, THOUGHTSPOT_USERNAME
    /// and THOUGHTSPOT_PASSWORD.
    #[arg(long, value_name = "NAME")]
    profile: Option<String>,
    /// Address of the tsload data service [default: the cluster's host on port 8442].
    /// The service may hand a table's load to another node of the cluster, which is then
    /// signed in to with the same credentials.
    #[arg(long, value_name = "URL")]
    falcon_url: Option<String>,
    /// Longest time, in seconds, one table's upload may take, and Falcon may take to
    /// finish committing it (its status is polled with backoff until then).
    #[arg(long, value_name = "SECS", default_value_t = falcon::DEFAULT_WAIT.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..=7 * 24 * 3600))]
    falcon_wait: u64,
    #[command(flatten)]
    transport: TransportArgs,
}

/// Loads `from` into Falcon.
pub(super) fn run(
    from: &Path,
    schema: Option<&str>,
    wait: Wait,
    args: &FalconArgs,
    global: &GlobalArgs,
) -> anyhow::Result<ExitCode> {
    if schema.is_some() {
        return Err(FalconError::Setup(
            "--schema chooses a PostgreSQL schema; Falcon tables go where the TML says (the \
             manifest's tml.database and tml.schema), so set those in ts-principals.toml and \
             run generate again instead"
                .into(),
        )
        .into());
    }
    let mut source = Source::open(from, wait)?;
    // Falcon has no views: the group activity is loaded from the files
    // `generate --group-activity` wrote.
    let files = std::mem::take(&mut source.group_activity_files);
    for view in &source.layout.group_activity {
        if !files.iter().any(|f| f.def.table == view.view) {
            tracing::warn!(
                "Falcon has no views, so {} (activity per group) is loaded from \
                 data/{}, which {} does not hold; importing the TML fails until it exists: \
                 run generate again with --group-activity",
                view.view,
                view.file(),
                from.display()
            );
        }
    }
    source.tables.extend(files);
    let store = Store::locate()?;
    let resolved = profile::resolve(&store, args.profile.as_deref(), &ProcessSecrets)?;
    let password = match resolved.secret {
        profile::Secret::Password(password) => password,
        profile::Secret::Token(_) | profile::Secret::SecretKey(_) => {
            return Err(FalconError::Setup(format!(
                "{} signs in with a token or secret key, but Falcon's services (remote TQL and \
                 tsload) sign in with a username and password: use a profile made with \
                 --password-prompt or --password-env VAR (or THOUGHTSPOT_PASSWORD)",
                resolved.origin
            ))
            .into());
        }
    };
    let Some(username) = resolved.username.clone() else {
        return Err(FalconError::Setup(format!(
            "{} names no user; Falcon's services sign in with a username and password \
             (--username in `config create`, or THOUGHTSPOT_USERNAME)",
            resolved.origin
        ))
        .into());
    };
    let falcon_url = match &args.falcon_url {
        Some(url) => falcon::check_falcon_url(url)?,
        None => falcon::default_falcon_url(&resolved.url)?,
    };
    let connection = args.transport.connection(
        resolved.url.clone(),
        (resolved.ca_cert, resolved.insecure),
        Credentials {
            username: Some(username),
            secret: Some(Secret::Password(password)),
        },
        HttpSettings::default(),
    );
    let layout = &source.layout;
    if let Some(name) = &layout.connection {
        return Err(FalconError::Setup(format!(
            "the TML in {} names the connection {name:?}, so ThoughtSpot looks for these tables \
             in that connection's database, not in Falcon, and nothing was loaded: leave \
             tml.connection (and tml.target) out of ts-principals.toml and run generate again \
             to load into Falcon, or load into that database with --to postgres://… or \
             --emit-sql",
            source.dir.join(crate::generate::TML_DIR).display(),
        ))
        .into());
    }
    tracing::info!(
        "loading into Falcon {}.{} on {} (tsload at {falcon_url}) as user {:?}",
        layout.database,
        layout.schema,
        resolved.url,
        connection
            .credentials
            .username
            .as_deref()
            .unwrap_or_default()
    );
    let options = falcon::Options {
        falcon_url,
        wait: Duration::from_secs(args.falcon_wait),
    };
    let progress = LoadProgress::new(global.no_progress || global.quiet > 0);
    let loaded = falcon::load(&source, &connection, &options, &progress);
    progress.clear();
    let loaded = loaded?;
    print_summary(&loaded)?;
    tracing::info!(
        "loaded {} tables into Falcon {}.{}, each committed on its own (Falcon has no \
         transaction across tables)",
        loaded.len(),
        layout.database,
        layout.schema
    );
    Ok(ExitCode::SUCCESS)
}
