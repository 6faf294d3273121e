//! A fake ThoughtSpot on 127.0.0.1, to try `ts-principals fetch` without a
//! cluster:
//!
//! ```text
//! cargo run --example fake_thoughtspot -- --port 8787 --data tests/data/fixtures
//! ```
//!
//! `--data` is a directory of API-shaped files (`v2_orgs_search.json`,
//! `v2_users_search.json`, `v2_groups_search.json` or `v2_combined.json`,
//! optionally `v1_user_list.json`) or one v2 export file; `--generate
//! USERS,GROUPS,ORGS` makes up a cluster of that size instead; `--falcon`
//! makes it a Software cluster with Falcon for `load --to falcon`;
//! `--activity ROWS` serves the system worksheets of user activity for
//! `activity` (with `--row-cap`, `--time-zone` and `--old-stats-name` to
//! make it harder). It also accepts TML imports (`metadata/tml/import`:
//! tables, models and worksheets, kept per org and listed by
//! `metadata/search`), and principal writes (v2 users/groups create, update,
//! delete and import, `security/metadata/assign`; v1 `user/sync` and
//! `user/transfer/ownership`). The server lives in `tests/fake_thoughtspot`, where
//! the integration tests use it.

#[path = "../tests/fake_thoughtspot/mod.rs"]
mod fake;

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// A fake ThoughtSpot REST API (v2 and v1) for trying ts-principals.
#[derive(Debug, Parser)]
struct Args {
    /// Port on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 8787)]
    port: u16,
    /// Directory of API-shaped JSON files, or one v2 export file.
    #[arg(long, value_name = "DIR|FILE", required_unless_present = "generate")]
    data: Option<PathBuf>,
    /// Make up USERS,GROUPS,ORGS principals instead of reading --data.
    #[arg(long, value_name = "USERS,GROUPS,ORGS", conflicts_with = "data")]
    generate: Option<String>,
    /// Milliseconds added to every response.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Most records per page, whatever record_size asks.
    #[arg(long)]
    max_page: Option<usize>,
    /// Answer every Nth search with 429 and Retry-After: 1.
    #[arg(long)]
    rate_limit_every: Option<usize>,
    /// Serve REST v1 only, like an old software cluster.
    #[arg(long)]
    no_v2: bool,
    /// Search responses never end (try `fetch --max-response-mb`).
    #[arg(long)]
    endless_body: bool,
    /// Search responses are gzip bombs inflating to this many MiB.
    #[arg(long, value_name = "MIB")]
    gzip_bomb_mb: Option<usize>,
    /// Be a ThoughtSpot Software cluster with Falcon: remote TQL and the tsload
    /// service on this same port (try `load --to falcon --falcon-url URL`).
    #[arg(long)]
    falcon: bool,
    /// Serve the activity worksheets: ROWS rows of TS: BI Server and ROWS/4 of
    /// TS: AI and BI Stats, by the served users (try `activity`).
    #[arg(long, value_name = "ROWS")]
    activity: Option<usize>,
    /// Days the activity rows span, ending now.
    #[arg(long, value_name = "N", default_value_t = 30)]
    activity_days: i64,
    /// One searchdata query returns at most N rows in all.
    #[arg(long, value_name = "N")]
    row_cap: Option<usize>,
    /// Be a ThoughtSpot Software cluster in this time zone (IANA name, e.g.
    /// America/New_York): searchdata speaks in its wall-clock time.
    #[arg(long, value_name = "ZONE")]
    time_zone: Option<String>,
    /// Serve the stats worksheet under its older name, TS: Embrace Stats
    /// Worksheet.
    #[arg(long)]
    old_stats_name: bool,
}

fn main() {
    let args = Args::parse();
    let data = match (&args.data, &args.generate) {
        (Some(path), _) => fake::Data::load(path).unwrap_or_else(|e| {
            eprintln!("error: {e}");
            std::process::exit(2);
        }),
        (None, Some(sizes)) => {
            let n: Vec<usize> = sizes
                .split(',')
                .filter_map(|s| s.trim().parse().ok())
                .collect();
            let [users, groups, orgs] = n[..] else {
                eprintln!("error: --generate wants USERS,GROUPS,ORGS, e.g. 1000,100,3");
                std::process::exit(2);
            };
            fake::Data::generated(users, groups, orgs)
        }
        (None, None) => unreachable!("clap requires one"),
    };
    if let Some(zone) = &args.time_zone
        && let Err(e) = jiff::tz::TimeZone::get(zone)
    {
        eprintln!("error: --time-zone {zone}: {e}");
        std::process::exit(2);
    }
    let activity = args.activity.map(|rows| {
        let span = args.activity_days.max(0) * 86_400;
        let now = jiff::Timestamp::now().as_second();
        let stats = if args.old_stats_name {
            fake::activity::EMBRACE_STATS
        } else {
            fake::activity::AI_BI_STATS
        };
        let guids = fake::activity::user_guids(&data);
        fake::activity::ActivitySet::generated(&guids, rows, now - span, span, 1, stats)
    });
    let faults = fake::Faults {
        latency: Duration::from_millis(args.latency_ms),
        max_page: args.max_page,
        rate_limit_every: args.rate_limit_every,
        no_v2: args.no_v2,
        endless_body: args.endless_body,
        gzip_bomb: args.gzip_bomb_mb.map(|mb| mb << 20),
        // A zone of its own makes it a Software cluster: Cloud answers in UTC.
        software: args.falcon || args.time_zone.is_some(),
        falcon: args.falcon,
        row_cap: args.row_cap,
        time_zone: args.time_zone.clone(),
        ..fake::Faults::default()
    };
    let (orgs, users, groups) = (data.orgs.len(), data.users.len(), data.groups.len());
    let server = fake::FakeThoughtSpot::start_on(data, args.port, faults);
    let activity_line = match activity {
        Some(set) => {
            let rows: Vec<String> = set
                .worksheets()
                .map(|ws| format!("{} rows of {}", ws.rows.len(), ws.name))
                .collect();
            server.state.set_activity(set);
            format!(
                "\x20 ts-principals activity --out out    ({})\n",
                rows.join(", ")
            )
        }
        None => "\x20 (start with --activity 100000 to try `ts-principals activity --out out`)\n"
            .to_owned(),
    };
    println!(
        "fake ThoughtSpot at {} ({orgs} orgs, {users} users, {groups} groups)\n\n\
         Try, in another shell:\n\
         \x20 export THOUGHTSPOT_URL={} THOUGHTSPOT_USERNAME={} THOUGHTSPOT_PASSWORD={}\n\
         \x20 ts-principals fetch -o principals.json\n\
         \x20 ts-principals generate --from principals.json --out out\n\
         {activity_line}\n\
         (or THOUGHTSPOT_SECRET_KEY={}). Ctrl-C stops it.",
        server.url(),
        server.url(),
        fake::USERNAME,
        fake::PASSWORD,
        fake::SECRET_KEY
    );
    server.wait();
}
