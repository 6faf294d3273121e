use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use super::testing::Files;
use super::*;

/// Every file under `dir` with its content, relative paths with `/`.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        for entry in fs::read_dir(&current).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let relative = path
                .strip_prefix(dir)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            if entry.file_type().unwrap().is_dir() {
                stack.push(path);
            } else {
                files.insert(relative, fs::read(&path).unwrap_or_default());
            }
        }
    }
    files
}

/// What `set` writes, the manifest included, as `tree` shows it.
fn expected(set: &Files) -> BTreeMap<String, Vec<u8>> {
    in_memory(set)
}

/// Names of ours (staging, backup, journal) anywhere under `dir`.
fn leftovers(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        for entry in fs::read_dir(&current).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(".ts-principals") || name.starts_with("..ts-principals") {
                found.push(entry.path().display().to_string());
            } else if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            }
        }
    }
    found
}

fn write_set(out: &Path, set: &Files) -> Result<WriteSummary, OutputError> {
    write(out, set, &WriteOptions::default())
}

#[test]
fn writes_replaces_and_removes_only_our_files() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let first = Files::new(&[("data/a.csv", "1\n"), ("tml/A.table.tml", "a\n")]).write_to(&out);
    assert_eq!(
        first.added,
        ["data/a.csv", "tml/A.table.tml", "manifest.json"]
    );
    fs::write(out.join("README.md"), "mine").unwrap();
    fs::write(out.join("data/notes.csv"), "mine too").unwrap();
    fs::write(out.join("tml/Sales.liveboard.tml"), "liveboard: {}").unwrap();

    let second = Files::new(&[("data/a.csv", "2\n"), ("data/b.csv", "b\n")]).write_to(&out);
    assert_eq!(second.added, ["data/b.csv"]);
    assert_eq!(second.changed, ["data/a.csv", "manifest.json"]);
    assert_eq!(second.removed, ["tml/A.table.tml"]);
    let third = Files::new(&[("data/a.csv", "2\n"), ("data/b.csv", "b\n")]).write_to(&out);
    assert_eq!(
        third.unchanged,
        ["data/a.csv", "data/b.csv", "manifest.json"]
    );
    let files = tree(&out);
    assert_eq!(files["data/a.csv"], b"2\n");
    assert_eq!(files["README.md"], b"mine");
    assert_eq!(files["data/notes.csv"], b"mine too");
    assert_eq!(files["tml/Sales.liveboard.tml"], b"liveboard: {}");
    assert!(leftovers(&out).is_empty(), "{:?}", leftovers(&out));
}

#[test]
fn without_a_manifest_only_files_with_our_names_are_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path();
    fs::create_dir_all(out.join("data")).unwrap();
    fs::create_dir_all(out.join("tml")).unwrap();
    fs::write(out.join("data/a.csv"), "old\n").unwrap();
    fs::write(out.join("data/lookup.csv"), "k,v\n").unwrap();
    fs::write(out.join("tml/OLD.table.tml"), "table: {}\n").unwrap();
    let summary = Files::new(&[("data/a.csv", "new\n")]).write_to(out);
    assert_eq!(summary.changed, ["data/a.csv"]);
    assert!(summary.removed.is_empty());
    let files = tree(out);
    assert_eq!(files["data/a.csv"], b"new\n");
    assert_eq!(files["data/lookup.csv"], b"k,v\n");
    assert_eq!(files["tml/OLD.table.tml"], b"table: {}\n");
}

#[test]
fn a_manifest_cannot_make_other_files_ours() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path();
    fs::create_dir_all(out.join(".git")).unwrap();
    fs::write(out.join(".git/config"), "[core]\n").unwrap();
    fs::write(out.join("notes.txt"), "mine\n").unwrap();
    let hostile = serde_json::json!({
        "tool": "ts-principals",
        "files": {
            ".git/config": {"sha256": ""},
            "notes.txt": {"sha256": ""},
            "../outside.csv": {"sha256": ""},
            "/etc/passwd.csv": {"sha256": ""},
            "data/../../x.csv": {"sha256": ""}
        }
    });
    fs::write(out.join(MANIFEST), hostile.to_string()).unwrap();
    let summary = Files::new(&[("data/a.csv", "1\n")]).write_to(out);
    assert!(summary.removed.is_empty(), "{summary:?}");
    assert_eq!(fs::read(out.join(".git/config")).unwrap(), b"[core]\n");
    assert_eq!(fs::read(out.join("notes.txt")).unwrap(), b"mine\n");
}

#[test]
fn a_manifest_of_another_tool_stops_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path();
    for (manifest, problem) in [
        (
            r#"{"name": "my-app", "version": "1.0"}"#,
            "names no \"tool\"",
        ),
        (r#"{"tool": "dbt"}"#, "written by \"dbt\""),
        ("not json", "not valid JSON"),
    ] {
        fs::write(out.join(MANIFEST), manifest).unwrap();
        let error = write_set(out, &Files::new(&[("data/a.csv", "1\n")]))
            .unwrap_err()
            .to_string();
        assert!(error.contains(problem), "{error}");
        assert!(error.contains("choose another --out"), "{error}");
        assert_eq!(fs::read_to_string(out.join(MANIFEST)).unwrap(), manifest);
        assert!(!out.join("data").exists());
    }
}

#[test]
fn a_hand_edited_file_is_reported_changed_and_edited() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path();
    let set = Files::new(&[("data/a.csv", "1\n"), ("data/b.csv", "b\n")]);
    set.write_to(out);
    fs::write(out.join("data/a.csv"), "1 edited by hand\n").unwrap();
    let again = set.write_to(out);
    assert_eq!(again.changed, ["data/a.csv"]);
    assert_eq!(again.edited, ["data/a.csv"]);
    assert_eq!(again.unchanged, ["data/b.csv", "manifest.json"]);
    assert_eq!(fs::read(out.join("data/a.csv")).unwrap(), b"1\n");
    // An edited file that the new set drops is removed, and said to be edited.
    fs::write(out.join("data/b.csv"), "b edited\n").unwrap();
    let dropped = Files::new(&[("data/a.csv", "1\n")]).write_to(out);
    assert_eq!(dropped.removed, ["data/b.csv"]);
    assert_eq!(dropped.edited, ["data/b.csv"]);
}

#[test]
fn a_failure_while_staging_leaves_the_directory_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let old = Files::new(&[("data/a.csv", "old\n")]);
    old.write_to(&out);
    let before = tree(&out);
    let failing = Files::new(&[("data/a.csv", "new\n"), ("data/b.csv", "boom")]);
    let error = write_set(&out, &failing).unwrap_err().to_string();
    assert!(
        error.contains("b.csv") && error.contains("disk full"),
        "{error}"
    );
    assert_eq!(tree(&out), before);
    // Into a directory of its own making, a failed run leaves none behind.
    let fresh = dir.path().join("fresh");
    assert!(write_set(&fresh, &failing).is_err());
    assert!(!fresh.exists());
}

#[test]
fn something_in_the_way_is_refused_before_anything_moves() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path();
    let old = Files::new(&[("data/a.csv", "old\n"), ("tml/A.table.tml", "old\n")]);
    old.write_to(out);
    fs::create_dir(out.join("tml/B.table.tml")).unwrap();
    let before = tree(out);
    let new = Files::new(&[
        ("data/a.csv", "new\n"),
        ("tml/A.table.tml", "new\n"),
        ("tml/B.table.tml", "new\n"),
    ]);
    let error = write_set(out, &new).unwrap_err().to_string();
    assert!(error.contains("B.table.tml is a directory"), "{error}");
    assert_eq!(tree(out), before);
    assert!(leftovers(out).is_empty());
}

#[cfg(unix)]
#[test]
fn a_symlinked_data_directory_is_written_through_and_its_other_files_kept() {
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("shared-data");
    fs::create_dir(&shared).unwrap();
    fs::write(shared.join("lookup.csv"), "k,v\n").unwrap();
    let out = dir.path().join("out");
    fs::create_dir(&out).unwrap();
    std::os::unix::fs::symlink(&shared, out.join("data")).unwrap();
    Files::new(&[("data/a.csv", "1\n"), ("data/b.csv", "2\n")]).write_to(&out);
    let summary = Files::new(&[("data/a.csv", "1\n")]).write_to(&out);
    assert_eq!(summary.removed, ["data/b.csv"]);
    assert!(
        fs::symlink_metadata(out.join("data"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(fs::read(shared.join("a.csv")).unwrap(), b"1\n");
    assert_eq!(fs::read(shared.join("lookup.csv")).unwrap(), b"k,v\n");
    assert!(!shared.join("b.csv").exists());
    assert!(leftovers(&shared).is_empty());
}

#[cfg(unix)]
#[test]
fn a_file_name_that_is_not_utf8_is_left_alone() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path();
    let set = Files::new(&[("data/a.csv", "1\n")]);
    set.write_to(out);
    let odd = out
        .join("data")
        .join(std::ffi::OsStr::from_bytes(b"caf\xe9.csv"));
    fs::write(&odd, "mine\n").unwrap();
    Files::new(&[("data/a.csv", "2\n")]).write_to(out);
    set.write_to(out);
    assert_eq!(fs::read(&odd).unwrap(), b"mine\n");
}

#[test]
fn staging_left_by_dead_runs_is_cleared() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path();
    let set = Files::new(&[("data/a.csv", "1\n")]);
    set.write_to(out);
    for stale in [
        ".ts-principals-staging-12345",
        "data/.ts-principals-staging-00ff",
        "data/.ts-principals-backup-00ff",
    ] {
        fs::create_dir_all(out.join(stale)).unwrap();
        fs::write(out.join(stale).join("a.csv"), "junk").unwrap();
    }
    fs::write(out.join("..ts-principals-journal.json.abc.tmp"), "{").unwrap();
    set.write_to(out);
    assert!(leftovers(out).is_empty(), "{:?}", leftovers(out));
}

#[test]
fn a_second_run_waits_or_fails_with_no_wait() {
    let dir = tempfile::tempdir().unwrap();
    let held = open(dir.path(), Wait::Block, Files::may_own).unwrap();
    let error = open(dir.path(), Wait::NoWait, Files::may_own).unwrap_err();
    assert!(matches!(error, OutputError::Busy { .. }), "{error}");
    assert!(error.to_string().contains("another ts-principals run"));
    drop(held);
    open(dir.path(), Wait::NoWait, Files::may_own).unwrap();
}

/// The old set, the new one, and the foreign files beside them, for the
/// fault tests: the new set adds, changes, keeps and drops files.
fn sets() -> (Files, Files) {
    let old = Files::new(&[
        ("data/a.csv", "a old\n"),
        ("data/b.csv", "b same\n"),
        ("data/c.csv", "c dropped\n"),
        ("tml/A.table.tml", "A old\n"),
    ]);
    let new = Files::new(&[
        ("data/a.csv", "a new\n"),
        ("data/b.csv", "b same\n"),
        ("data/d.csv", "d added\n"),
        ("tml/A.table.tml", "A new\n"),
        ("tml/B.table.tml", "B added\n"),
    ]);
    (old, new)
}

/// Our files hold exactly the old set or exactly the new one, foreign
/// files are as they were, and nothing of a run is left.
fn assert_old_or_new(out: &Path, old: &Files, new: &Files, context: &str) -> bool {
    let mut files = tree(out);
    assert_eq!(
        files.remove("tml/mine.liveboard.tml").as_deref(),
        Some(&b"mine\n"[..]),
        "{context}"
    );
    assert!(leftovers(out).is_empty(), "{context}: {:?}", leftovers(out));
    let is_new = files == expected(new);
    assert!(
        is_new || files == expected(old),
        "{context}: neither the old set nor the new: {:?}",
        files.keys().collect::<Vec<_>>()
    );
    is_new
}

fn fresh_old_set(out: &Path, old: &Files) {
    let _ = fs::remove_dir_all(out);
    old.write_to(out);
    fs::write(out.join("tml/mine.liveboard.tml"), "mine\n").unwrap();
}

#[test]
fn a_fault_at_any_step_of_the_commit_rolls_back() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let (old, new) = sets();
    let mut step = 0;
    loop {
        fresh_old_set(&out, &old);
        let mut faults = Faults {
            fail_at: Some(step),
            ..Faults::default()
        };
        let result = open(&out, Wait::Block, Files::may_own)
            .unwrap()
            .write_with(&new, &mut faults);
        if faults.done <= step {
            // The fault lay beyond the last step: the run went through.
            result.unwrap();
            assert!(assert_old_or_new(&out, &old, &new, "no fault"));
            break;
        }
        if result.is_ok() {
            // Committed, with its clean-up cut short: the next run finishes it.
            drop(open(&out, Wait::Block, Files::may_own).unwrap());
        }
        let committed = assert_old_or_new(&out, &old, &new, &format!("fault at {step}"));
        assert_eq!(committed, result.is_ok(), "fault at {step}: {result:?}");
        step += 1;
    }
    assert!(step >= 10, "only {step} steps were tried");
}

#[test]
fn a_crash_at_any_step_is_rolled_back_or_completed_by_the_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let (old, new) = sets();
    let mut step = 0;
    let (mut rolled_back, mut completed) = (0, 0);
    loop {
        fresh_old_set(&out, &old);
        let mut faults = Faults {
            fail_at: Some(step),
            crash: true,
            ..Faults::default()
        };
        let result = open(&out, Wait::Block, Files::may_own)
            .unwrap()
            .write_with(&new, &mut faults);
        if faults.done <= step {
            result.unwrap();
            break;
        }
        // The next run is itself killed at every step of its recovery
        // before one gets through.
        let mut recovery_step = 0;
        loop {
            let mut again = Faults {
                fail_at: Some(recovery_step),
                crash: true,
                ..Faults::default()
            };
            let recovered = journal::recover(&out, &mut again, Files::may_own);
            if again.done <= recovery_step {
                match recovered.unwrap() {
                    Some(Recovered::RolledBack) => rolled_back += 1,
                    Some(Recovered::Completed) => completed += 1,
                    None => {}
                }
                break;
            }
            recovery_step += 1;
        }
        // What the next real run sees: a consistent set, and nothing left.
        let dir = open(&out, Wait::Block, Files::may_own).unwrap();
        drop(dir);
        assert_old_or_new(&out, &old, &new, &format!("crash at {step}"));
        step += 1;
    }
    assert!(
        rolled_back > 5 && completed > 0,
        "{rolled_back} {completed}"
    );
}

/// A journal is only trusted with files a run may have written, and a
/// created file is only removed when it is the one that run moved in: a
/// stale or hostile journal cannot delete or replace anything else.
#[test]
fn a_journal_cannot_touch_files_that_are_not_ours() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path();
    let set = Files::new(&[("data/a.csv", "1\n")]);
    set.write_to(out);
    fs::write(out.join("README.md"), "precious\n").unwrap();
    fs::write(out.join("data/lookup.csv"), "k,v\n").unwrap();
    let journal = |state: &str, steps: &str| {
        let text = format!(
            r#"{{"format":1,"run":"abcdef","state":"{state}","dirs":[""],"steps":[{steps}]}}"#
        );
        fs::write(out.join(journal::JOURNAL), text).unwrap();
    };
    let before = tree(out);

    journal("moving", r#"{"path":"README.md","action":"create"}"#);
    let error = open(out, Wait::Block, Files::may_own).unwrap_err();
    assert!(matches!(error, OutputError::Journal { .. }), "{error}");
    assert!(error.to_string().contains("README.md"), "{error}");

    journal("staging", r#"{"path":"data/lookup.csv","action":"create"}"#);
    let error = open(out, Wait::Block, Files::may_own).unwrap_err();
    assert!(
        error.to_string().contains("had not begun moving"),
        "{error}"
    );

    // A file of a name we could write, but not the content that was moved in.
    for sha in ["", r#","sha256":"00""#] {
        journal(
            "moving",
            &format!(r#"{{"path":"data/lookup.csv","action":"create"{sha}}}"#),
        );
        open(out, Wait::Block, Files::may_own).unwrap();
        let mut after = tree(out);
        after.remove(journal::JOURNAL);
        assert_eq!(
            after,
            before
                .clone()
                .into_iter()
                .filter(|(p, _)| p != journal::JOURNAL)
                .collect()
        );
    }
    assert!(leftovers(out).is_empty(), "{:?}", leftovers(out));
}

#[test]
fn reading_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing/out");
    let read = open_to_read(&missing, Wait::Block).unwrap();
    assert!(read.owned::<Files>().unwrap().files.is_empty());
    drop(read);
    assert!(
        !dir.path().join("missing").exists(),
        "a missing directory stays missing"
    );

    let out = dir.path().join("out");
    Files::new(&[("data/a.csv", "1\n")]).write_to(&out);
    fs::write(out.join(journal::JOURNAL), "{}").unwrap();
    let before = tree(&out);
    let error = open_to_read(&out, Wait::Block).unwrap_err();
    assert!(matches!(error, OutputError::Interrupted { .. }), "{error}");
    assert!(
        error.to_string().contains("run `ts-principals generate`"),
        "{error}"
    );
    assert_eq!(before, tree(&out));
}

#[test]
fn only_the_stamp_line_we_write_is_ignored() {
    let files = BTreeMap::new();
    let plain = Files::new(&[]).manifest(&files);
    let stamped = Files::new(&[])
        .stamped("2026-12-03T07:00:00Z")
        .manifest(&files);
    assert_ne!(plain, stamped);
    assert_eq!(manifest_without_stamp(&stamped), plain);
    assert_eq!(manifest_without_stamp(&plain), plain);
    // Reformatted, it is a change generate would undo: not the same.
    let value: serde_json::Value = serde_json::from_slice(&plain).unwrap();
    let compact = serde_json::to_vec(&value).unwrap();
    assert_ne!(manifest_without_stamp(&compact), plain);
}
