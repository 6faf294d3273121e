//! Benchmark of `load --to postgres://…` against `psql \copy` of the same
//! CSV into an equal table (same columns, types and primary key), on the
//! 1M-row membership table.
//!
//! ```text
//! eval "$(bash tests/tools/postgres.sh start)"
//! cargo run --release --example bench_load               # 1M rows, 5 rounds
//! cargo run --release --example bench_load -- --rows 200000 --rounds 3
//! ```
//!
//! The server is `TS_PRINCIPALS_TEST_PG` (or `--to URL`). Each round runs
//! both, alternating which goes first: `psql \copy` into a freshly created
//! table, and the whole `load` of the output directory (seven tables, the
//! membership table holding nearly all rows: staging, COPY, swap, commit),
//! as the CLI runs it but in this process. The figure is the ratio of
//! rows/s, median over the rounds, taken in one run on one machine.

use std::io::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use ts_principals::generate::{self, GenerateOptions};
use ts_principals::load::postgres::{self as pg, Environment, Target};
use ts_principals::load::{Quiet, Source};
use ts_principals::render::TmlSettings;
use ts_principals::schema::{IdentifierCase, Table};

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() -> anyhow::Result<()> {
    let rows: usize = arg("--rows").map_or(Ok(1_000_000), |r| r.parse())?;
    let rounds: usize = arg("--rounds").map_or(Ok(5), |r| r.parse())?;
    let url = arg("--to")
        .or_else(|| std::env::var("TS_PRINCIPALS_TEST_PG").ok())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "no server: eval \"$(bash tests/tools/postgres.sh start)\" or pass --to URL"
            )
        })?;
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("out");
    let schema = "bench_load";
    write_output(&out, schema, rows)?;
    let csv = out.join("data/group_memberships.csv");
    let megabytes = std::fs::metadata(&csv)?.len() as f64 / 1e6;
    println!("{rows} membership rows, {megabytes:.0} MB of CSV; {rounds} rounds");

    let mut admin = postgres_client(&url)?;
    admin.batch_execute(&format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE; DROP SCHEMA IF EXISTS bench_psql CASCADE; \
         CREATE SCHEMA bench_psql"
    ))?;
    let def = Table::GroupMemberships.definition("TS_", IdentifierCase::Lower);
    let columns = pg::columns_sql(&def, "psql_target_pkey");
    let target = Target::parse(&url, &Environment::from_process())?;
    let options = pg::Options {
        schema: schema.to_owned(),
        ..pg::Options::default()
    };

    let mut psql_times = Vec::new();
    let mut ours_times = Vec::new();
    let mut copy_times = Vec::new();
    for round in 0..rounds {
        let psql = || -> anyhow::Result<Duration> {
            admin_exec(
                &url,
                &format!(
                    "DROP TABLE IF EXISTS bench_psql.target; CREATE TABLE bench_psql.target ({columns})"
                ),
            )?;
            let started = Instant::now();
            let status = Command::new("psql")
                .args(["-q", "-v", "ON_ERROR_STOP=1", &url, "-c"])
                .arg(format!(
                    "\\copy bench_psql.target FROM '{}' WITH (FORMAT csv, HEADER true)",
                    csv.display()
                ))
                .status()?;
            anyhow::ensure!(status.success(), "psql \\copy failed");
            Ok(started.elapsed())
        };
        let ours = || -> anyhow::Result<(Duration, Duration)> {
            let source = Source::open(&out, ts_principals::atomic::Wait::Block)?;
            let started = Instant::now();
            let loaded = pg::load(&source, &target, &options, &Quiet)?;
            let total = started.elapsed();
            let copy = loaded
                .iter()
                .find(|l| l.table.contains("group_memberships"))
                .map(|l| l.elapsed)
                .unwrap_or_default();
            Ok((total, copy))
        };
        let (p, (o, c)) = if round % 2 == 0 {
            let p = psql()?;
            (p, ours()?)
        } else {
            let o = ours()?;
            (psql()?, o)
        };
        println!(
            "round {}: psql \\copy {:.2} s, load {:.2} s (its COPY {:.2} s)",
            round + 1,
            p.as_secs_f64(),
            o.as_secs_f64(),
            c.as_secs_f64()
        );
        psql_times.push(p);
        ours_times.push(o);
        copy_times.push(c);
    }
    let median = |times: &mut Vec<Duration>| {
        times.sort();
        times[times.len() / 2]
    };
    let (p, o, c) = (
        median(&mut psql_times),
        median(&mut ours_times),
        median(&mut copy_times),
    );
    let rate = |d: Duration| rows as f64 / d.as_secs_f64();
    println!(
        "median: psql \\copy {:.0} rows/s; load (whole run) {:.0} rows/s = {:.2}× psql; \
         load's COPY phase {:.0} rows/s = {:.2}× psql",
        rate(p),
        rate(o),
        rate(o) / rate(p),
        rate(c),
        rate(c) / rate(p)
    );
    admin.batch_execute(&format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE; DROP SCHEMA IF EXISTS bench_psql CASCADE"
    ))?;
    Ok(())
}

fn postgres_client(url: &str) -> anyhow::Result<::postgres::Client> {
    Ok(::postgres::Client::connect(url, ::postgres::NoTls)?)
}

fn admin_exec(url: &str, sql: &str) -> anyhow::Result<()> {
    postgres_client(url)?.batch_execute(sql)?;
    Ok(())
}

/// An output directory of the bundled example, its membership table
/// replaced by `rows` rows.
fn write_output(out: &Path, schema: &str, rows: usize) -> anyhow::Result<()> {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/principals.json");
    let loaded = ts_principals::input::load(&[example], &Default::default())?;
    let options = GenerateOptions {
        tml: TmlSettings {
            connection: Some("Bench".into()),
            database: "postgres".into(),
            schema: schema.into(),
            identifier_case: IdentifierCase::Lower,
            ..TmlSettings::default()
        },
        ..GenerateOptions::default()
    };
    let generated = generate::generate(
        &loaded.principals,
        &loaded.report,
        loaded.kind,
        &options,
        Default::default(),
    )?;
    ts_principals::output::write(out, &generated, &Default::default())?;
    let path = out.join("data/group_memberships.csv");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path)?);
    writeln!(
        file,
        "cluster_id,org_id,user_guid,group_guid,is_direct,depth"
    )?;
    for i in 0..rows {
        writeln!(
            file,
            "acme-prod,1417823650,{:08x}-468d-576c-bfe0-54ba175c9bd0,{:08x}-7f48-5b66-bac5-7f4687a2722f,{},{}",
            i / 10,
            i % 10,
            i % 3 == 0,
            i % 3
        )?;
    }
    file.flush()?;
    drop(file);
    // As generate would have recorded it: load checks the file against it.
    let bytes = std::fs::read(&path)?;
    let manifest_path = out.join("manifest.json");
    let mut manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(&manifest_path)?)?;
    let entry = &mut manifest["files"]["data/group_memberships.csv"];
    entry["rows"] = rows.into();
    entry["bytes"] = bytes.len().into();
    entry["sha256"] = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&bytes)).into()
    };
    std::fs::write(&manifest_path, serde_json::to_vec_pretty(&manifest)?)?;
    Ok(())
}
