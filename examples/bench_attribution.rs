//! Benchmark of activity per group in PostgreSQL: ten million TS: BI
//! Server rows over 90 days by 20 000 users who are each in about ten
//! groups (four direct, the rest through two levels of nesting), through
//! `generate` and `load`, then "actions per group per day over the last 30
//! days" asked of the group activity view, and again of the table `load
//! --materialize` fills.
//!
//! ```text
//! cargo build --release --examples --bins
//! eval "$(bash tests/tools/postgres.sh start)"      # or set TS_PRINCIPALS_TEST_PG
//! target/release/examples/bench_attribution                      # 10M rows
//! target/release/examples/bench_attribution --rows 1000000 --users 5000
//! target/release/examples/bench_attribution --skip-materialize   # 10M rows, view only
//! ```
//!
//! Materialised, 10M rows with ten groups each make a table of about
//! 100M rows (some 18 GiB); `--skip-materialize` leaves that step out on a
//! machine without the disk for it.
//!
//! The schema `bench_attribution` is dropped at the end.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const DAY: i64 = 86_400;
/// 2026-09-01 00:00:00 UTC.
const START: i64 = 1_788_220_800;
const SCHEMA: &str = "bench_attribution";

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn guid(kind: u32, n: usize) -> String {
    format!("00000000-0000-4000-{kind:04x}-{n:012x}")
}

fn utc(seconds: i64) -> String {
    jiff::Timestamp::from_second(seconds)
        .expect("a time")
        .strftime("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// 300 use-case groups, each nested in one of 60 departments, each in one
/// of 12 divisions; every user directly in four use cases.
fn snapshot(users: usize) -> serde_json::Value {
    let mut rng = fastrand::Rng::with_seed(3);
    let group = |n: usize, parent: Option<usize>| {
        serde_json::json!({
            "id": guid(0x9000, n), "name": format!("group-{n}"), "display_name": format!("Group {n}"),
            "description": "", "type": "LOCAL_GROUP", "visibility": "SHARABLE",
            "created": 1_600_000_000_000_i64, "modified": 1_600_000_000_000_i64,
            "org_ids": [0], "parent_group_ids": parent.map(|p| vec![guid(0x9000, p)]).unwrap_or_default(),
            "privileges": [],
        })
    };
    let mut groups = Vec::new();
    for n in 0..12 {
        groups.push(group(n, None));
    }
    for n in 12..72 {
        groups.push(group(n, Some(n % 12)));
    }
    for n in 72..372 {
        groups.push(group(n, Some(12 + n % 60)));
    }
    let users: Vec<serde_json::Value> = (0..users)
        .map(|n| {
            let direct: Vec<String> = (0..4).map(|_| guid(0x9000, 72 + rng.usize(..300))).collect();
            serde_json::json!({
                "id": guid(0x8000, n), "name": format!("user-{n}"), "display_name": format!("User {n}"),
                "email": format!("user-{n}@example.com"), "visibility": "SHARABLE",
                "account_type": "LOCAL_USER", "account_status": "ACTIVE",
                "created": 1_600_000_000_000_i64, "modified": 1_600_000_000_000_i64,
                "org_ids": [0], "group_ids": direct,
            })
        })
        .collect();
    serde_json::json!({
        "schema_version": 1,
        "source": {"cluster_id": "bench", "api": "v2", "fetched_at": "2026-09-15T00:00:00Z"},
        "orgs": [{"id": 0, "name": "Primary", "description": ""}],
        "users": users,
        "groups": groups,
    })
}

/// Makes `out` hold a copy of `rows` TS: BI Server rows, as `ts-principals
/// activity` leaves it, in time order.
fn seed_activity(out: &Path, rows: usize, users: usize) {
    let manifest_path = out.join("manifest.json");
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest_path).expect("manifest")).expect("json");
    manifest["activity"] = serde_json::json!({"bi_server": {
        "worksheet": "TS: BI Server", "worksheet_guid": "bd8a6ce2-5b0c-4f0e-9c7e-1f0b1d0e7a11",
        "org_id": 0, "time_zone": "UTC", "time_column": "timestamp", "rows": rows,
        "columns": [
            {"name": "Incident Id", "csv": "incident_id", "type": "text"},
            {"name": "Timestamp", "csv": "timestamp", "type": "timestamp"},
            {"name": "User Id", "csv": "user_id", "type": "text"},
            {"name": "User Action", "csv": "user_action", "type": "text"},
            {"name": "Impressions", "csv": "impressions", "type": "double", "measure": true},
            {"name": "Org Id", "csv": "org_id", "type": "bigint"}
        ]
    }});
    std::fs::write(
        &manifest_path,
        serde_json::to_vec_pretty(&manifest).unwrap(),
    )
    .unwrap();
    let file =
        std::fs::File::create(out.join("data/activity_bi_server.csv")).expect("activity file");
    let mut w = BufWriter::with_capacity(1 << 20, file);
    writeln!(
        w,
        "cluster_id,incident_id,timestamp,user_id,user_action,impressions,org_id"
    )
    .unwrap();
    let mut rng = fastrand::Rng::with_seed(9);
    let step = (90 * DAY) as f64 / rows as f64;
    let actions = ["answer_view", "pinboard_view", "data_export", "search"];
    for i in 0..rows {
        let at = START + (i as f64 * step) as i64;
        writeln!(
            w,
            "bench,i{i:09},{},{},{},1,0",
            utc(at),
            guid(0x8000, rng.usize(..users)),
            actions[i % actions.len()]
        )
        .unwrap();
    }
    w.flush().unwrap();
}

fn run(binary: &Path, dir: &Path, args: &[&str]) -> Duration {
    let started = Instant::now();
    let status = Command::new(binary)
        .current_dir(dir)
        .args(["--no-progress", "--quiet"])
        .args(args)
        .status()
        .expect("ts-principals runs");
    assert!(status.success(), "ts-principals {args:?} failed");
    started.elapsed()
}

/// "Actions per group per day over the last 30 days": returns the time and
/// the number of (group, day) rows.
fn actions_per_group_per_day(client: &mut postgres::Client) -> (Duration, usize) {
    let query = format!(
        "SELECT group_guid, date_trunc('day', \"timestamp\") AS day, count(*) \
         FROM {SCHEMA}.ts_group_activity_bi_server \
         WHERE \"timestamp\" >= '{}' AND \"timestamp\" < '{}' GROUP BY 1, 2",
        utc(START + 60 * DAY),
        utc(START + 90 * DAY)
    );
    let started = Instant::now();
    let rows = client.query(&query, &[]).expect("query").len();
    (started.elapsed(), rows)
}

fn main() {
    let rows: usize = arg("--rows").map_or(10_000_000, |r| r.parse().expect("--rows N"));
    let users: usize = arg("--users").map_or(20_000, |u| u.parse().expect("--users N"));
    let url = std::env::var("TS_PRINCIPALS_TEST_PG")
        .expect("TS_PRINCIPALS_TEST_PG: eval \"$(bash tests/tools/postgres.sh start)\"");
    let binary = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/release/ts-principals");
    assert!(binary.exists(), "cargo build --release --examples --bins");
    let mut client = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
    client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let snapshot_path = dir.path().join("principals.json");
    std::fs::write(
        &snapshot_path,
        serde_json::to_vec(&snapshot(users)).unwrap(),
    )
    .unwrap();
    let config = dir.path().join("ts-principals.toml");
    std::fs::write(
        &config,
        format!(
            "[tml]\nconnection = \"Bench\"\ndatabase = \"postgres\"\nschema = \"{SCHEMA}\"\n\
             identifier_case = \"lower\"\n"
        ),
    )
    .unwrap();
    let generate = [
        "generate",
        "--from",
        "principals.json",
        "--config",
        "ts-principals.toml",
        "--out",
        "out",
    ];
    run(&binary, dir.path(), &generate);
    let started = Instant::now();
    seed_activity(&dir.path().join("out"), rows, users);
    println!(
        "wrote {rows} activity rows in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let generated = run(&binary, dir.path(), &generate);
    let load = ["load", "--from", "out", "--to", &url, "--schema", SCHEMA];
    let loaded = run(&binary, dir.path(), &load);
    let memberships: i64 = client
        .query_one(
            &format!("SELECT count(*) FROM {SCHEMA}.ts_group_memberships"),
            &[],
        )
        .unwrap()
        .get(0);
    let (view_time, groups_days) = actions_per_group_per_day(&mut client);
    let (view_again, _) = actions_per_group_per_day(&mut client);
    println!(
        "load {:.1} s; view: {:.2} s then {:.2} s",
        loaded.as_secs_f64(),
        view_time.as_secs_f64(),
        view_again.as_secs_f64()
    );
    // The same data again: the history is advanced (nothing changes) and
    // every activity row replaced by its new reading.
    let reloaded = run(&binary, dir.path(), &load);
    if std::env::args().any(|a| a == "--skip-materialize") {
        client
            .batch_execute(&format!("DROP SCHEMA {SCHEMA} CASCADE"))
            .unwrap();
        println!(
            "{rows} activity rows, {users} users, {memberships} memberships; generate {:.1} s; \
             load {:.1} s; reload {:.1} s; view {:.2} s then {:.2} s ({groups_days} rows)",
            generated.as_secs_f64(),
            loaded.as_secs_f64(),
            reloaded.as_secs_f64(),
            view_time.as_secs_f64(),
            view_again.as_secs_f64()
        );
        return;
    }
    let materialize = [&load[..], &["--materialize"]].concat();
    let materialized = run(&binary, dir.path(), &materialize);
    let (attributed, bytes): (i64, i64) = {
        let row = client
            .query_one(
                &format!(
                    "SELECT count(*), pg_total_relation_size('{SCHEMA}.ts_group_activity_bi_server') \
                     FROM {SCHEMA}.ts_group_activity_bi_server"
                ),
                &[],
            )
            .unwrap();
        (row.get(0), row.get(1))
    };
    let (table_time, table_rows) = actions_per_group_per_day(&mut client);
    let (table_again, _) = actions_per_group_per_day(&mut client);
    assert_eq!(groups_days, table_rows, "the view and the table agree");
    client
        .batch_execute(&format!("DROP SCHEMA {SCHEMA} CASCADE"))
        .unwrap();

    let s = |d: Duration| d.as_secs_f64();
    println!(
        "{rows} activity rows, {users} users, {:.1} groups per user ({memberships} memberships), \
         {attributed} group activity rows ({:.1} GiB materialised)",
        memberships as f64 / users as f64,
        bytes as f64 / (1u64 << 30) as f64
    );
    println!("generate (carrying the activity): {:.1} s", s(generated));
    println!(
        "load into an empty schema (view created): {:.1} s",
        s(loaded)
    );
    println!("reload of the same data (view): {:.1} s", s(reloaded));
    println!(
        "reload with --materialize: {:.1} s (materialising adds {:.1} s)",
        s(materialized),
        s(materialized) - s(reloaded)
    );
    println!(
        "actions per group per day over 30 days ({groups_days} rows): view {:.2} s then {:.2} s; \
         materialised {:.2} s then {:.2} s (the view takes {:.2}× as long)",
        s(view_time),
        s(view_again),
        s(table_time),
        s(table_again),
        s(view_again) / s(table_again)
    );
}
