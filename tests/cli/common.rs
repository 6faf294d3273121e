//! Paths, commands and checks shared by the tests.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
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
