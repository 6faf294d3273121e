//! `--profile` and the other flags that say how to reach a cluster and what
//! to fetch; shared by `fetch`, `generate` and `diff`.

use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::GlobalArgs;
use super::progress::FetchProgress;
use crate::client::{
    self, Api, Connection, Credentials, FetchOptions, HttpSettings, OrgSelection, Progress, Secret,
};
use crate::config::profile::{self, ProcessSecrets, Store};
use crate::config::{ProjectConfig, limits};
use crate::input::{self, InputError, Loaded};

/// `--api`: which REST API to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ApiChoice {
    /// v2, falling back to v1 when the cluster has no v2.
    Auto,
    /// REST v2 only.
    V2,
    /// REST v1 `user/list` only (older software clusters).
    V1,
}

impl From<ApiChoice> for Api {
    fn from(choice: ApiChoice) -> Self {
        match choice {
            ApiChoice::Auto => Api::Auto,
            ApiChoice::V2 => Api::V2,
            ApiChoice::V1 => Api::V1,
        }
    }
}

/// Responses a cluster sent that cannot be normalized: the cluster's
/// fault, so a cluster error (exit code 3), unlike the same problem in a file.
#[derive(Debug, thiserror::Error)]
#[error("the cluster's responses cannot be used: {0}")]
pub(super) struct UnusableResponses(#[source] InputError);

#[derive(Debug, Args)]
#[command(next_help_heading = "Cluster")]
pub(super) struct ConnectArgs {
    /// Connection profile (`ts-principals config list`). `env` uses THOUGHTSPOT_URL,
    /// THOUGHTSPOT_USERNAME and THOUGHTSPOT_TOKEN / _SECRET_KEY / _PASSWORD alone, as
    /// does no profile when THOUGHTSPOT_URL is set.
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    /// Org to fetch, by name or id (repeatable) [default: the profile's orgs, else
    /// [fetch] in the config, else every org].
    #[arg(long = "org", value_name = "NAME|ID")]
    orgs: Vec<String>,
    /// Fetch every org the credentials can see.
    #[arg(long, conflicts_with = "orgs")]
    all_orgs: bool,
    /// REST API: v2, falling back to v1 on clusters without it (auto); or only one.
    #[arg(long, value_enum, value_name = "API", default_value_t = ApiChoice::Auto)]
    api: ApiChoice,
    /// Records per page, 1 to 100000 (`fetch.page_size`, default 1000). Servers may
    /// send fewer.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(wide(limits::PAGE_SIZE)))]
    page_size: Option<u32>,
    /// Requests in flight at once, 1 to 64 (`fetch.concurrency`, default 4).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(wide(limits::CONCURRENCY)))]
    concurrency: Option<u32>,
    /// Most MiB one response may hold once decompressed, 1 to 65536
    /// (`fetch.max_response_mb`, default 512). A longer response (an endless body, a
    /// compression bomb) fails the fetch, naming the URL. The cap is per response: with
    /// --concurrency N up to N are read at once, so the worst case is N × the cap.
    #[arg(long, value_name = "MIB", value_parser = clap::value_parser!(u32).range(wide(limits::MAX_RESPONSE_MB)))]
    max_response_mb: Option<u32>,
    #[command(flatten)]
    transport: TransportArgs,
}

/// How requests reach the cluster: TLS trust, timeout, retries. Shared by
/// every command that talks to a cluster.
#[derive(Debug, Args)]
pub(super) struct TransportArgs {
    /// PEM file with the certificate of a private CA to trust (adds to the system's).
    #[arg(long, value_name = "PEM")]
    ca_cert: Option<PathBuf>,
    /// Do not verify TLS certificates (the cluster's, and for Falcon its nodes'). Unsafe:
    /// prefer --ca-cert.
    #[arg(long)]
    insecure: bool,
    /// Seconds allowed for one request, response included (a Falcon upload gets
    /// --falcon-wait instead).
    #[arg(long, value_name = "SECS", default_value_t = 120,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    timeout: u64,
    /// Retries of a request after a transient failure (connection error, timeout,
    /// 429, 502, 503, 504), with jittered exponential backoff. A Falcon upload or
    /// commit is never resent.
    #[arg(long, value_name = "N", default_value_t = 4,
          value_parser = clap::value_parser!(u32).range(0..=20))]
    retries: u32,
}

impl TransportArgs {
    /// The connection to the cluster at `url` with `credentials`: the
    /// profile's CA and `insecure` unless the flags say otherwise, and
    /// `http` with the flags' timeout and retries.
    pub(super) fn connection(
        &self,
        url: String,
        (profile_ca, profile_insecure): (Option<PathBuf>, bool),
        credentials: Credentials,
        http: HttpSettings,
    ) -> Connection {
        Connection {
            url,
            credentials,
            ca_cert: self.ca_cert.clone().or(profile_ca),
            insecure: self.insecure || profile_insecure,
            http: HttpSettings {
                request_timeout: Duration::from_secs(self.timeout),
                retries: self.retries,
                ..http
            },
        }
    }
}

impl TransportArgs {
    /// Resolves `profile` (`--profile`; none or `env` uses the
    /// THOUGHTSPOT_* variables) and the connection it describes, with the
    /// flags on top and responses capped at `max_response_mb`.
    pub(super) fn connect(
        &self,
        profile: Option<&str>,
        max_response_mb: u32,
    ) -> anyhow::Result<(Connection, profile::Resolved)> {
        let store = Store::locate()?;
        let resolved = profile::resolve(&store, profile, &ProcessSecrets)?;
        Ok((self.connection_to(&resolved, max_response_mb), resolved))
    }

    /// The connection a resolved profile describes, with the flags on top
    /// and responses capped at `max_response_mb`.
    pub(super) fn connection_to(
        &self,
        resolved: &profile::Resolved,
        max_response_mb: u32,
    ) -> Connection {
        let secret = match &resolved.secret {
            profile::Secret::Token(s) => Secret::Token(s.clone()),
            profile::Secret::SecretKey(s) => Secret::SecretKey(s.clone()),
            profile::Secret::Password(s) => Secret::Password(s.clone()),
        };
        self.connection(
            resolved.url.clone(),
            (resolved.ca_cert.clone(), resolved.insecure),
            Credentials {
                username: resolved.username.clone(),
                secret: Some(secret),
            },
            HttpSettings {
                max_response_bytes: u64::from(max_response_mb) << 20,
                ..HttpSettings::default()
            },
        )
    }
}

/// A config limit as the range clap's integer parsers take.
fn wide(range: RangeInclusive<u32>) -> RangeInclusive<i64> {
    i64::from(*range.start())..=i64::from(*range.end())
}

/// Resolves the connection and fetches.
pub(super) fn fetch(
    args: &ConnectArgs,
    config: &ProjectConfig,
    cluster_id: Option<String>,
    global: &GlobalArgs,
) -> anyhow::Result<Loaded> {
    fetch_as(args, config, cluster_id, global).map(|(loaded, _)| loaded)
}

/// Fetches with [`fetch_as`] and refuses a cluster with no users and no
/// groups unless `allow_empty`; also returns the cluster's URL.
pub(super) fn fetch_nonempty(
    args: &ConnectArgs,
    config: &ProjectConfig,
    cluster_id: Option<String>,
    global: &GlobalArgs,
    allow_empty: bool,
) -> anyhow::Result<(Loaded, Option<String>, String)> {
    fetch_nonempty_in(args, config, cluster_id, global, allow_empty, false)
}

/// [`fetch_nonempty`]; `every_org`: all orgs, whatever the flags, the
/// config and the profile say.
pub(super) fn fetch_nonempty_in(
    args: &ConnectArgs,
    config: &ProjectConfig,
    cluster_id: Option<String>,
    global: &GlobalArgs,
    allow_empty: bool,
    every_org: bool,
) -> anyhow::Result<(Loaded, Option<String>, String)> {
    let live = fetch_live(args, config, cluster_id, global, every_org)?;
    let (loaded, caller) = (live.loaded, live.caller);
    let url = (loaded.principals.source.cluster_url.clone()).unwrap_or_default();
    loaded.refuse_empty(&format!("the fetch from {url}"), allow_empty)?;
    Ok((loaded, caller, url))
}

/// Resolves the connection and fetches; also says who signed in (the
/// profile's username).
pub(super) fn fetch_as(
    args: &ConnectArgs,
    config: &ProjectConfig,
    cluster_id: Option<String>,
    global: &GlobalArgs,
) -> anyhow::Result<(Loaded, Option<String>)> {
    let live = fetch_live(args, config, cluster_id, global, false)?;
    Ok((live.loaded, live.caller))
}

/// A live read of the cluster: the principals, who signed in, and how to
/// read it again.
pub(super) struct Live {
    pub loaded: Loaded,
    /// The profile's username.
    pub caller: Option<String>,
    pub connection: Connection,
    options: FetchOptions,
}

impl Live {
    /// Reads the cluster again, as the first time.
    pub(super) fn again(&self, global: &GlobalArgs) -> anyhow::Result<Loaded> {
        fetch_on(&self.connection, &self.options, global)
    }
}

/// [`fetch_as`], keeping the connection, for commands that write to the
/// cluster afterwards. `every_org`: all orgs, whatever the flags, the
/// config and the profile say.
pub(super) fn fetch_live(
    args: &ConnectArgs,
    config: &ProjectConfig,
    cluster_id: Option<String>,
    global: &GlobalArgs,
    every_org: bool,
) -> anyhow::Result<Live> {
    let max_response_mb = args.max_response_mb.unwrap_or(config.fetch.max_response_mb);
    let (connection, resolved) =
        (args.transport).connect(args.profile.as_deref(), max_response_mb)?;
    let orgs = if every_org {
        OrgSelection::All
    } else if !args.orgs.is_empty() {
        OrgSelection::Named(args.orgs.clone())
    } else if args.all_orgs || config.fetch.all_orgs {
        OrgSelection::All
    } else if !config.fetch.orgs.is_empty() {
        OrgSelection::Named(config.fetch.orgs.clone())
    } else if !resolved.orgs.is_empty() {
        OrgSelection::Named(resolved.orgs.clone())
    } else {
        OrgSelection::All
    };
    let options = FetchOptions {
        api: args.api.into(),
        orgs,
        page_size: args.page_size.unwrap_or(config.fetch.page_size),
        concurrency: args.concurrency.unwrap_or(config.fetch.concurrency),
        cluster_id,
        fallback_cluster_id: config.data.cluster_id.clone(),
    };
    tracing::debug!("connecting with {}", resolved.origin);
    let loaded = fetch_on(&connection, &options, global)?;
    // A token names no user: ask the cluster whose it is.
    let caller = match resolved.username {
        Some(name) => Some(name),
        None => client::session_user(&connection).unwrap_or_else(|e| {
            tracing::debug!("cannot tell whose token this is: {e}");
            None
        }),
    };
    Ok(Live {
        loaded,
        caller,
        connection,
        options,
    })
}

fn fetch_on(
    connection: &Connection,
    options: &FetchOptions,
    global: &GlobalArgs,
) -> anyhow::Result<Loaded> {
    let progress = FetchProgress::new(global.no_progress || global.quiet > 0);
    let started = std::time::Instant::now();
    let loaded = client::fetch(connection, options, &progress).map(|fetched| {
        progress.step("normalizing");
        let bodies = fetched
            .responses
            .iter()
            .map(|r| (r.name.as_str(), &r.body[..]));
        input::from_responses(fetched.source, bodies, fetched.only_orgs)
    });
    progress.finish();
    let loaded = loaded?.map_err(UnusableResponses)?;
    tracing::info!(
        "fetched {} in {:.1?}",
        progress.summary(),
        started.elapsed()
    );
    Ok(loaded)
}

impl ConnectArgs {
    /// True when `--org` or `--all-orgs` was given.
    pub(super) fn names_orgs(&self) -> bool {
        !self.orgs.is_empty() || self.all_orgs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_help_states_the_limits_the_config_checks() {
        let command = ConnectArgs::augment_args(clap::Command::new("fetch"));
        for (id, range) in [
            ("page_size", limits::PAGE_SIZE),
            ("concurrency", limits::CONCURRENCY),
            ("max_response_mb", limits::MAX_RESPONSE_MB),
        ] {
            let arg = command
                .get_arguments()
                .find(|a| a.get_id() == id)
                .expect("argument");
            let help = arg.get_help().expect("help").to_string();
            let stated = format!("{} to {}", range.start(), range.end());
            assert!(help.contains(&stated), "--{id}: {help}");
        }
    }
}
