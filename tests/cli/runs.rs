//! Runs that overlap, wait for each other or die part-way: the output
//! directory always holds one whole set, the old or the new.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::common::{example, generate, tree, ts_principals};
use crate::fake::Data;

/// What an output directory holds once any interrupted run is finished:
/// the manifest (`None` when there is none yet).
///
/// Panics unless the directory holds exactly one whole set: every file the
/// manifest lists, with its hash, and no other file of ours and nothing
/// left over by a run.
fn whole_set(out: &Path) -> Option<Vec<u8>> {
    // What the next run would do first: finish an interrupted one.
    let owns = <ts_principals::generate::Generated as ts_principals::output::FileSet>::may_own;
    drop(
        ts_principals::output::open(out, ts_principals::atomic::Wait::Block, owns)
            .expect("recovers"),
    );
    let files = tree(out);
    let leftovers: Vec<&String> = files
        .keys()
        .filter(|path| path.split('/').any(|part| part.starts_with('.')))
        .collect();
    assert!(
        leftovers.is_empty(),
        "left over in {}: {leftovers:?}",
        out.display()
    );
    let ours: BTreeSet<&str> = files
        .keys()
        .map(String::as_str)
        .filter(|path| *path != "manifest.json")
        .collect();
    let Some(manifest) = files.get("manifest.json") else {
        assert!(ours.is_empty(), "files without a manifest: {ours:?}");
        return None;
    };
    let parsed: serde_json::Value = serde_json::from_slice(manifest).expect("manifest is JSON");
    let listed = parsed["files"].as_object().expect("manifest lists files");
    assert_eq!(
        ours,
        listed.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        "the files on disk are the files the manifest lists"
    );
    for (path, entry) in listed {
        let hash = hex::encode(Sha256::digest(&files[path]));
        assert_eq!(
            Some(hash.as_str()),
            entry["sha256"].as_str(),
            "{path} matches the manifest"
        );
    }
    Some(manifest.clone())
}

/// The manifest a finished `generate` with `extra` writes for `input`.
fn reference(dir: &Path, input: &Path, name: &str, extra: &[&str]) -> Vec<u8> {
    generate(dir, input, name, extra).success();
    std::fs::read(dir.join(name).join("manifest.json")).expect("manifest written")
}

fn spawn_generate(dir: &Path, input: &Path, out: &str, extra: &[&str]) -> Child {
    Command::new(assert_cmd::cargo::cargo_bin("ts-principals"))
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1")
        .args(["generate", "--no-progress"])
        .args(extra)
        .arg("--from")
        .arg(input)
        .args(["--out", out])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ts-principals starts")
}

#[test]
fn concurrent_runs_take_turns_and_leave_one_whole_set() {
    let dir = tempfile::tempdir().unwrap();
    let first = ["--cluster-id", "first"];
    let second = ["--cluster-id", "second", "--format", "worksheet"];
    let sets = [
        reference(dir.path(), &example(), "ref-first", &first),
        reference(dir.path(), &example(), "ref-second", &second),
    ];
    for round in 0..10 {
        let runs = [
            spawn_generate(dir.path(), &example(), "out", &first),
            spawn_generate(dir.path(), &example(), "out", &second),
        ];
        for run in runs {
            let output = run.wait_with_output().unwrap();
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(output.status.success(), "round {round}: {stderr}");
        }
        let manifest = whole_set(&dir.path().join("out")).expect("a set was written");
        assert!(sets.contains(&manifest), "round {round}: an unknown set");
    }
}

/// Holds the lock a run takes on `out`, as a run writing there would.
fn hold_lock(out: &Path) -> std::fs::File {
    std::fs::create_dir_all(out).unwrap();
    let handle = std::fs::File::open(out).unwrap();
    handle.lock().unwrap();
    handle
}

#[test]
fn a_busy_directory_fails_with_no_wait_and_is_waited_for_without() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let held = hold_lock(&out);

    generate(dir.path(), &example(), "out", &["--no-wait"])
        .code(4)
        .stderr(predicates::str::contains("another ts-principals run"))
        .stderr(predicates::str::contains("out"));
    assert!(tree(&out).is_empty(), "nothing written while busy");

    let mut waiting = spawn_generate(dir.path(), &example(), "out", &[]);
    let mut stderr = BufReader::new(waiting.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("waiting for it to finish") {
        line.clear();
        let read = stderr.read_line(&mut line).unwrap();
        assert!(read > 0, "the waiting run says it waits");
    }
    assert!(waiting.try_wait().unwrap().is_none(), "it waits");
    drop(held);
    let status = waiting.wait().unwrap();
    assert!(status.success());
    assert!(whole_set(&out).is_some());
}

#[test]
fn the_final_error_is_printed_whatever_rust_log_says() {
    let dir = tempfile::tempdir().unwrap();
    for filter in ["reqwest=debug", "off", "error", "ts_principals=off"] {
        ts_principals(dir.path())
            .env("RUST_LOG", filter)
            .args(["generate", "--from", "missing.json", "--out", "out"])
            .assert()
            .code(2)
            .stderr(predicates::str::contains("error: "))
            .stderr(predicates::str::contains("missing.json"));
    }
}

/// When to kill a run.
#[derive(Clone, Copy, Debug)]
enum Moment {
    /// Any time from the start to about when a whole run ends.
    Any(Duration),
    /// Soon after the run starts moving files into place.
    Moving(Duration),
    /// Soon after the run's journal first appears (staging has begun).
    Staging(Duration),
}

/// Waits for `moment` (or the run's end) and kills `run`.
fn kill_at(run: &mut Child, out: &Path, moment: Moment) {
    let journal = out.join(".ts-principals-journal.json");
    let started = Instant::now();
    let deadline = started + Duration::from_secs(600);
    let (state, delay) = match moment {
        Moment::Any(delay) => (None, delay),
        Moment::Moving(delay) => (Some("\"moving\""), delay),
        Moment::Staging(delay) => (Some("\"staging\""), delay),
    };
    let mut seen: Option<Instant> = None;
    while run.try_wait().unwrap().is_none() && Instant::now() < deadline {
        if seen.is_none() {
            let reached = match state {
                None => true,
                Some(state) => std::fs::read_to_string(&journal).is_ok_and(|j| j.contains(state)),
            };
            if reached {
                seen = Some(Instant::now());
            }
        }
        if seen.is_some_and(|at| at.elapsed() >= delay) {
            break;
        }
        thread::sleep(Duration::from_micros(200));
    }
    let _ = run.kill();
    run.wait().unwrap();
}

/// The crash test: kill -9 at random moments of a 100k-user
/// generate, alternating between two different sets, and after every kill
/// the directory holds the old set or the new one, whole.
#[test]
fn killed_runs_leave_the_old_set_or_the_new_one() {
    let iterations: usize = std::env::var("TS_PRINCIPALS_KILL_RUNS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(50);
    let dir = tempfile::tempdir().unwrap();
    let input: PathBuf = dir.path().join("principals.json");
    std::fs::write(&input, Data::generated(100_000, 10_000, 5).to_export()).unwrap();
    let flags: [&[&str]; 2] = [
        &["--cluster-id", "a"],
        &["--cluster-id", "b", "--format", "worksheet"],
    ];

    let started = Instant::now();
    let sets = [
        reference(dir.path(), &input, "ref-a", flags[0]),
        reference(dir.path(), &input, "ref-b", flags[1]),
    ];
    let whole_run = started.elapsed() / 2;

    let out = dir.path().join("out");
    let mut rng = fastrand::Rng::with_seed(8);
    let mut held: Option<Vec<u8>> = None;
    let (mut kept_old, mut got_new) = (0, 0);
    for i in 0..iterations {
        let moment = match i % 3 {
            0 => Moment::Any(whole_run.mul_f64(rng.f64() * 1.1)),
            1 => Moment::Moving(Duration::from_micros(rng.u64(0..3_000))),
            _ => Moment::Staging(whole_run.mul_f64(rng.f64() * 0.5)),
        };
        let new = &sets[i % 2];
        let mut run = spawn_generate(dir.path(), &input, "out", flags[i % 2]);
        kill_at(&mut run, &out, moment);
        let now = whole_set(&out);
        if now.as_ref() == Some(new) {
            got_new += 1;
        } else {
            assert_eq!(
                now, held,
                "run {i} killed at {moment:?}: neither the old set nor the new"
            );
            kept_old += 1;
        }
        held = now;
    }
    eprintln!("{iterations} killed runs: {kept_old} left the old set, {got_new} the new one");
}

#[test]
fn a_directory_where_a_file_goes_fails_with_4_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    generate(dir.path(), &example(), "out", &["--format", "worksheet"]).success();
    let blocker = out.join("tml/TS_ Users and Groups.model.tml");
    std::fs::create_dir(&blocker).unwrap();
    std::fs::write(blocker.join("mine.txt"), "keep\n").unwrap();
    let before = tree(&out);
    generate(dir.path(), &example(), "out", &[])
        .code(4)
        .stderr(predicates::str::contains("TS_ Users and Groups.model.tml"))
        .stderr(predicates::str::contains("a directory"));
    assert_eq!(before, tree(&out));

    // A file where a directory of ours goes.
    std::fs::remove_dir_all(out.join("tml")).unwrap();
    std::fs::write(out.join("tml"), "mine\n").unwrap();
    let before = tree(&out);
    generate(dir.path(), &example(), "out", &[])
        .code(4)
        .stderr(predicates::str::contains(
            "tml is a file, where ts-principals needs a directory",
        ));
    assert_eq!(before, tree(&out));
}

/// A read-only `tml/` fails the run part-way through its moves (data files
/// first), and the moves already made are undone.
#[cfg(unix)]
#[test]
fn a_read_only_directory_fails_with_4_and_the_old_set_is_put_back() {
    use std::os::unix::fs::PermissionsExt;
    // Permissions do not stop root: nothing to test then.
    if std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
    {
        eprintln!("SKIPPED: running as root, which may write into a read-only directory");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let old = reference(dir.path(), &example(), "out", &["--cluster-id", "old"]);
    let tml = out.join("tml");
    std::fs::set_permissions(&tml, std::fs::Permissions::from_mode(0o555)).unwrap();
    let failed = generate(dir.path(), &example(), "out", &["--cluster-id", "new"]);
    std::fs::set_permissions(&tml, std::fs::Permissions::from_mode(0o755)).unwrap();
    failed
        .code(4)
        .stderr(predicates::str::contains("tml"))
        .stderr(predicates::str::contains("check that you may write there"));
    assert_eq!(whole_set(&out), Some(old));
}
