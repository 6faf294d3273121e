//! Benchmark of `ts-principals activity`: a million TS: BI Server rows
//! (and a quarter million AI and BI Stats rows) from the fake ThoughtSpot
//! with latency added to every response, against the floor that latency
//! sets: requests × latency / concurrency.
//!
//! ```text
//! cargo build --release --examples --bins
//! cargo run --release --example bench_activity                 # 1M rows, 20 ms
//! cargo run --release --example bench_activity -- --rows 200000 --latency-ms 50 --concurrency 8
//! ```
//!
//! The fake (`examples/fake_thoughtspot.rs`) and ts-principals run as
//! separate processes, so the CPU time measured (user + system, from the
//! kernel's accounting of the waited-for child) is ts-principals' alone.
//! Three runs into one output directory: the first copy of 30 days, an
//! incremental run with nothing new (the hourly schedule's usual case),
//! and a run re-reading the last day.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn release_binary(name: &str, example: bool) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/release");
    let path = if example {
        root.join("examples").join(name)
    } else {
        root.join(name)
    };
    assert!(
        path.exists(),
        "{} is missing: cargo build --release --examples --bins",
        path.display()
    );
    path
}

/// CPU seconds (user + system) of the children waited for so far.
fn children_cpu() -> f64 {
    // SAFETY: getrusage only writes into the struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
        usage
    };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// Peak resident memory of the largest child waited for, in MiB.
fn children_peak_mib() -> f64 {
    // SAFETY: as above.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
        usage
    };
    usage.ru_maxrss as f64 / 1024.0
}

struct Fake(Child);

impl Drop for Fake {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Measured {
    wall: Duration,
    cpu: f64,
    requests: usize,
    rows: usize,
}

fn activity(out: &Path, url: &str, extra: &[&str]) -> Measured {
    let cpu = children_cpu();
    let started = Instant::now();
    let output = Command::new(release_binary("ts-principals", false))
        .args(["activity", "--out"])
        .arg(out)
        .args(extra)
        .env("THOUGHTSPOT_URL", url)
        .env("THOUGHTSPOT_USERNAME", "admin")
        .env("THOUGHTSPOT_PASSWORD", "fake-password-Zq9")
        .env("NO_COLOR", "1")
        .output()
        .expect("run ts-principals");
    let wall = started.elapsed();
    let cpu = children_cpu() - cpu;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "activity failed:\n{stderr}");
    // "… in N window(s) (S split at the cap, R request(s)): X row(s), …"
    let mut requests = 0;
    let mut rows = 0;
    for line in stderr.lines() {
        let number_before = |marker: &str| -> usize {
            line.find(marker)
                .map(|end| {
                    let digits: String = line[..end]
                        .chars()
                        .rev()
                        .take_while(char::is_ascii_digit)
                        .collect();
                    digits
                        .chars()
                        .rev()
                        .collect::<String>()
                        .parse()
                        .unwrap_or(0)
                })
                .unwrap_or(0)
        };
        requests += number_before(" request(s))");
        rows += number_before(" row(s), ");
    }
    Measured {
        wall,
        cpu,
        requests,
        rows,
    }
}

fn main() {
    let rows: usize = arg("--rows").map_or(1_000_000, |r| r.parse().expect("--rows N"));
    let latency_ms: u64 = arg("--latency-ms").map_or(20, |r| r.parse().expect("--latency-ms N"));
    let concurrency: usize =
        arg("--concurrency").map_or(4, |r| r.parse().expect("--concurrency N"));
    let page_size = arg("--page-size").unwrap_or_else(|| "20000".into());

    let mut fake = Command::new(release_binary("fake_thoughtspot", true))
        .args([
            "--port",
            "0",
            "--generate",
            "2000,200,3",
            "--activity-days",
            "30",
        ])
        .args(["--activity", &rows.to_string()])
        .args(["--latency-ms", &latency_ms.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the fake");
    let mut first = String::new();
    let mut lines = BufReader::new(fake.stdout.take().expect("stdout"));
    lines.read_line(&mut first).expect("the fake's address");
    // The fake prints more; keep reading so it never writes to a closed pipe.
    std::thread::spawn(move || std::io::copy(&mut lines, &mut std::io::sink()));
    let fake = Fake(fake);
    let url = first
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("fake ThoughtSpot at http://…")
        .to_owned();

    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let generated = Command::new(release_binary("ts-principals", false))
        .args(["-q", "generate", "--profile", "env", "--out"])
        .arg(&out)
        .env("THOUGHTSPOT_URL", &url)
        .env("THOUGHTSPOT_USERNAME", "admin")
        .env("THOUGHTSPOT_PASSWORD", "fake-password-Zq9")
        .status()
        .expect("generate");
    assert!(generated.success());

    let flags = [
        "--concurrency",
        &concurrency.to_string(),
        "--page-size",
        &page_size,
    ]
    .map(str::to_owned);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    println!(
        "{rows} TS: BI Server rows + {} AI and BI Stats rows over 30 days; {latency_ms} ms per \
         response; concurrency {concurrency}; page size {page_size}",
        rows / 4
    );
    println!(
        "{:<28} {:>9} {:>9} {:>10} {:>7} {:>9} {:>12}",
        "run", "requests", "wall s", "floor s", "ratio", "CPU s", "CPU s / 1M"
    );
    let report = |name: &str, m: &Measured| {
        let floor = m.requests as f64 * latency_ms as f64 / 1000.0 / concurrency as f64;
        let per_million = if m.rows == 0 {
            f64::NAN
        } else {
            m.cpu / (m.rows as f64 / 1e6)
        };
        println!(
            "{name:<28} {:>9} {:>9.2} {:>10.2} {:>7.2} {:>9.2} {:>12.2}",
            m.requests,
            m.wall.as_secs_f64(),
            floor,
            m.wall.as_secs_f64() / floor,
            m.cpu,
            per_million
        );
    };
    let full = activity(&out, &url, &flags);
    report(&format!("first copy ({} rows)", full.rows), &full);
    let again = activity(&out, &url, &flags);
    report(&format!("nothing new ({} rows)", again.rows), &again);
    let mut day = flags.clone();
    day.extend(["--since", "1d"]);
    let last_day = activity(&out, &url, &day);
    report(
        &format!("last day again ({} rows)", last_day.rows),
        &last_day,
    );
    let bytes = std::fs::metadata(out.join("data/activity_bi_server.csv"))
        .map(|m| m.len())
        .unwrap_or(0);
    println!(
        "activity_bi_server.csv: {:.0} MB; peak resident memory of a run: {:.0} MiB",
        bytes as f64 / 1e6,
        children_peak_mib()
    );
    drop(fake);
}
