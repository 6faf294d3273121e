//! `--profile` and the other flags that say how to reach a cluster and what
//! to fetch; shared by `fetch`, `generate` and `diff`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::GlobalArgs;
use super::progress::FetchProgress;
use crate::client::{self, Api, FetchOptions, OrgSelection};
use crate::config::ProjectConfig;
use crate::config::profile::{self, ProcessSecrets, Store};
use crate::input::Loaded;

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
    #[arg(long, value_enum, value_name = "API", default_value_t = Api::Auto)]
    api: Api,
    /// Records per page (`fetch.page_size`, default 1000). Servers may send fewer.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    page_size: Option<u32>,
    /// Requests in flight at once (`fetch.concurrency`, default 4).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64))]
    concurrency: Option<u32>,
    /// PEM file with the certificate of a private CA to trust (adds to the system's).
    #[arg(long, value_name = "PEM")]
    ca_cert: Option<PathBuf>,
    /// Do not verify the cluster's TLS certificate. Unsafe: prefer --ca-cert.
    #[arg(long)]
    insecure: bool,
    /// Seconds allowed for one request, response included.
    #[arg(long, value_name = "SECS", default_value_t = 120,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    timeout: u64,
    /// Retries of a request after a transient failure (connection error, timeout,
    /// 429, 502, 503, 504), with jittered exponential backoff.
    #[arg(long, value_name = "N", default_value_t = 4,
          value_parser = clap::value_parser!(u32).range(0..=20))]
    retries: u32,
}

/// Resolves the connection and fetches.
pub(super) fn fetch(
    args: &ConnectArgs,
    config: &ProjectConfig,
    cluster_id: Option<String>,
    global: &GlobalArgs,
) -> anyhow::Result<Loaded> {
    let store = Store::locate()?;
    let mut resolved = profile::resolve(&store, args.profile.as_deref(), &ProcessSecrets)?;
    let connection = &mut resolved.connection;
    if args.ca_cert.is_some() {
        connection.ca_cert.clone_from(&args.ca_cert);
    }
    connection.insecure |= args.insecure;
    connection.http.request_timeout = Duration::from_secs(args.timeout);
    connection.http.retries = args.retries;
    let orgs = if !args.orgs.is_empty() {
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
        api: args.api,
        orgs,
        page_size: args.page_size.unwrap_or(config.fetch.page_size),
        concurrency: args.concurrency.unwrap_or(config.fetch.concurrency),
        cluster_id,
        fallback_cluster_id: config.data.cluster_id.clone(),
    };
    tracing::debug!("connecting with {}", resolved.origin);
    let progress = FetchProgress::new(global.no_progress || global.quiet > 0);
    let started = std::time::Instant::now();
    let loaded = client::fetch(&resolved.connection, &options, &progress);
    progress.finish();
    let loaded = loaded?;
    tracing::info!(
        "fetched {} in {:.1?}",
        progress.summary(),
        started.elapsed()
    );
    Ok(loaded)
}
