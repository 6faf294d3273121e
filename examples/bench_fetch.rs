//! Fetch benchmark: a made-up cluster (100k users, 10k groups, 5 orgs by
//! default) served by the fake ThoughtSpot with latency added to every
//! response, fetched at several concurrency bounds. Each run's wall time is
//! compared with the bound the design sets, pages × latency / concurrency.
//! A second run without added latency measures the work that is not
//! waiting (the fake serializing pages, the client reading and normalizing
//! them, on the same cores), so the waiting part can be compared alone.
//!
//! ```text
//! cargo run --release --example bench_fetch -- [--users 100000] [--groups 10000]
//!     [--orgs 5] [--latency-ms 20] [--page-size 1000] [--concurrency 1,4,8]
//! ```

#[path = "../tests/fake_thoughtspot/mod.rs"]
mod fake;

use std::time::{Duration, Instant};

use clap::Parser;
use ts_principals::client::{self, Connection, Credentials, FetchOptions, HttpSettings, Secret};
use ts_principals::input;

#[derive(Debug, Parser)]
struct Args {
    #[arg(long, default_value_t = 100_000)]
    users: usize,
    #[arg(long, default_value_t = 10_000)]
    groups: usize,
    #[arg(long, default_value_t = 5)]
    orgs: usize,
    /// Added to every response.
    #[arg(long, default_value_t = 20)]
    latency_ms: u64,
    #[arg(long, default_value_t = 1000)]
    page_size: u32,
    /// Concurrency bounds to run, comma-separated.
    #[arg(long, default_value = "1,4,8")]
    concurrency: String,
}

fn main() {
    let args = Args::parse();
    // RUST_LOG=ts_principals=debug shows where the time goes.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let started = Instant::now();
    let data = fake::Data::generated(args.users, args.groups, args.orgs);
    eprintln!(
        "made {} users, {} groups in {} orgs in {:.1?}",
        data.users.len(),
        data.groups.len(),
        data.orgs.len(),
        started.elapsed()
    );
    let latency = Duration::from_millis(args.latency_ms);
    println!(
        "| concurrency | search pages | wall | bound: pages × latency / concurrency | wall / bound | wall without latency | (wall − that) / bound |"
    );
    println!("|---|---|---|---|---|---|---|");
    for concurrency in args
        .concurrency
        .split(',')
        .filter_map(|c| c.trim().parse::<u32>().ok())
    {
        let (wall, pages) = run(&data, &args, concurrency, latency);
        let (work, _) = run(&data, &args, concurrency, Duration::ZERO);
        let bound = latency
            .mul_f64(pages as f64 / f64::from(concurrency))
            .as_secs_f64();
        let (wall, work) = (wall.as_secs_f64(), work.as_secs_f64());
        println!(
            "| {concurrency} | {pages} | {wall:.2} s | {bound:.2} s | {:.2}× | {work:.2} s | {:.2}× |",
            wall / bound,
            (wall - work) / bound
        );
    }
}

/// One fetch of `data` from a fresh fake; returns the wall time and the
/// number of search pages requested.
fn run(data: &fake::Data, args: &Args, concurrency: u32, latency: Duration) -> (Duration, usize) {
    let server = fake::FakeThoughtSpot::start_on(
        data.clone(),
        0,
        fake::Faults {
            latency,
            ..fake::Faults::default()
        },
    );
    // The fake's per-org indexes are built before timing starts.
    server.state.prepare_views();
    let connection = Connection {
        url: server.url(),
        credentials: Credentials {
            username: Some(fake::USERNAME.into()),
            secret: Some(Secret::Password(fake::PASSWORD.to_owned().into())),
        },
        ca_cert: None,
        insecure: false,
        http: HttpSettings::default(),
    };
    let options = FetchOptions {
        page_size: args.page_size,
        concurrency,
        ..FetchOptions::default()
    };
    let started = Instant::now();
    let fetched = client::fetch(&connection, &options, &()).expect("fetch");
    let bodies = fetched
        .responses
        .iter()
        .map(|r| (r.name.as_str(), &r.body[..]));
    let loaded =
        input::from_responses(fetched.source, bodies, fetched.only_orgs).expect("normalize");
    let wall = started.elapsed();
    assert_eq!(loaded.principals.users.len(), args.users);
    assert_eq!(loaded.principals.groups.len(), args.groups);
    (wall, server.state.searches())
}
