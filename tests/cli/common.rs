//! Paths, commands and checks shared by the tests.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The `ts-principals` commands of the README between
/// `<!-- NAME:begin -->` and `<!-- NAME:end -->`, as arguments (comments
/// dropped, `examples/…` made absolute).
pub fn readme_commands(name: &str) -> Vec<Vec<String>> {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let block = readme
        .split(&format!("<!-- {name}:begin -->"))
        .nth(1)
        .and_then(|rest| rest.split(&format!("<!-- {name}:end -->")).next())
        .unwrap_or_else(|| panic!("README.md has the {name} block between its markers"));
    let examples = root().join("examples");
    (block.lines().filter(|l| l.starts_with("ts-principals ")))
        .map(|line| {
            let command = line.split("  #").next().unwrap_or(line).trim();
            (command.split_whitespace().skip(1))
                .map(|a| match a.strip_prefix("examples/") {
                    Some(rest) => examples.join(rest).display().to_string(),
                    None => a.to_owned(),
                })
                .collect()
        })
        .collect()
}

pub fn fixture(name: &str) -> PathBuf {
    root().join("tests/data/fixtures").join(name)
}

pub fn example() -> PathBuf {
    root().join("examples/principals.json")
}

pub fn example_config() -> PathBuf {
    root().join("examples/ts-principals.toml")
}

/// The ts-principals binary, run from a scratch directory so no
/// `ts-principals.toml` of the repository is picked up.
pub fn ts_principals(cwd: &Path) -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("ts-principals").expect("binary built");
    cmd.current_dir(cwd)
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1");
    cmd
}

/// `generate --from input --out out` with `extra` options, run in `dir`.
pub fn generate(dir: &Path, input: &Path, out: &str, extra: &[&str]) -> assert_cmd::assert::Assert {
    ts_principals(dir)
        .arg("generate")
        .args(extra)
        .arg("--from")
        .arg(input)
        .args(["--out", out])
        .assert()
}

/// Every file under `dir`, by path relative to it (with `/`).
pub fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        for entry in std::fs::read_dir(&current).expect("readable dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let relative = path
                    .strip_prefix(dir)
                    .expect("inside")
                    .to_string_lossy()
                    .replace('\\', "/");
                files.insert(relative, std::fs::read(&path).expect("readable file"));
            }
        }
    }
    files
}

/// A Python 3 with PyYAML and ThoughtSpot's `thoughtspot_tml`, or `None` to
/// skip. On CI (`CI` set) a missing one is a failure: the checks must run.
pub fn python_with_tml() -> Option<&'static str> {
    let ok = Command::new("python3")
        .args(["-c", "import yaml, thoughtspot_tml"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if ok {
        return Some("python3");
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "CI needs python3 with PyYAML and thoughtspot-tml: pip install thoughtspot-tml pyyaml"
        );
    }
    eprintln!(
        "skipped: python3 with PyYAML and thoughtspot-tml is not available (pip install thoughtspot-tml pyyaml)"
    );
    None
}

/// Runs ThoughtSpot's TML library over a set of files (strict, as one import).
pub fn validate_tml(python: &str, files: &[PathBuf]) {
    let output = Command::new(python)
        .arg(root().join("tests/tools/validate_tml.py"))
        .args(["--strict", "--set", "--roundtrip"])
        .args(files)
        .output()
        .expect("run validate_tml.py");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "validate_tml.py failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The `.tml` files of an output directory.
pub fn tml_files(out: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(out.join("tml"))
        .expect("tml dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "tml"))
        .collect();
    files.sort();
    files
}

/// What `ts-principals activity` records in the manifest for a copy of
/// both worksheets (the older name of the second), as JSON.
pub fn activity_held() -> serde_json::Value {
    serde_json::json!({
        "bi_server": {
            "worksheet": "TS: BI Server", "worksheet_guid": "bd8a6ce2-5b0c-4f0e-9c7e-1f0b1d0e7a11",
            "org_id": 0, "time_zone": "UTC", "time_column": "timestamp", "rows": 2,
            "columns": [
                {"name": "Incident Id", "csv": "incident_id", "type": "text"},
                {"name": "Timestamp", "csv": "timestamp", "type": "timestamp"},
                {"name": "URL", "csv": "url", "type": "text"},
                {"name": "HTTP Response Code", "csv": "http_response_code", "type": "bigint"},
                {"name": "Client Type", "csv": "client_type", "type": "text"},
                {"name": "User Id", "csv": "user_id", "type": "text"},
                {"name": "User Action", "csv": "user_action", "type": "text"},
                {"name": "Query Text", "csv": "query_text", "type": "text"},
                {"name": "Latency (us)", "csv": "latency_us", "type": "bigint", "measure": true},
                {"name": "Impressions", "csv": "impressions", "type": "double", "measure": true},
                {"name": "Org Id", "csv": "org_id", "type": "bigint"}
            ]
        },
        "ai_bi_stats": {
            "worksheet": "TS: Embrace Stats Worksheet", "worksheet_guid": "0c9e1d3a-7a4f-4a52-8d0e-2b6f3c1d9e22",
            "org_id": 0, "time_zone": "UTC", "time_column": "ts_query_start_time", "rows": 0,
            "columns": [
                {"name": "Query ID", "csv": "query_id", "type": "text"},
                {"name": "TS Query Start Time", "csv": "ts_query_start_time", "type": "timestamp"},
                {"name": "User ID", "csv": "user_id", "type": "text"},
                {"name": "Connection", "csv": "connection", "type": "text"},
                {"name": "Is Billable", "csv": "is_billable", "type": "boolean"},
                {"name": "Credits", "csv": "credits", "type": "double", "measure": true}
            ]
        }
    })
}

/// Makes `out` hold a copy of the activity `held` describes, as
/// `ts-principals activity` leaves it: its manifest section (in a manifest
/// of its own when `out` has none) and a data file with a header per
/// worksheet.
pub fn seed_activity(out: &Path, held: &serde_json::Value) {
    std::fs::create_dir_all(out.join("data")).unwrap();
    let manifest = out.join("manifest.json");
    let mut document: serde_json::Value = std::fs::read(&manifest)
        .map(|bytes| serde_json::from_slice(&bytes).expect("manifest JSON"))
        .unwrap_or_else(|_| serde_json::json!({"tool": "ts-principals"}));
    document["activity"] = held.clone();
    std::fs::write(&manifest, serde_json::to_vec_pretty(&document).unwrap()).unwrap();
    for (key, copied) in held.as_object().expect("held by worksheet") {
        let columns = copied["columns"].as_array().expect("columns");
        let header: Vec<&str> = std::iter::once("cluster_id")
            .chain(columns.iter().map(|c| c["csv"].as_str().expect("csv name")))
            .collect();
        std::fs::write(
            out.join(format!("data/activity_{key}.csv")),
            format!("{}\n", header.join(",")),
        )
        .unwrap();
    }
}
