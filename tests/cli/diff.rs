//! `diff`: what reviewers and CI see.

use crate::common::*;
use predicates::prelude::*;
use predicates::str::contains;

fn generated(dir: &std::path::Path) {
    generate(dir, &example(), "out", &[]).success();
}

fn diff(dir: &std::path::Path, extra: &[&str]) -> assert_cmd::assert::Assert {
    ts_principals(dir)
        .arg("diff")
        .args(extra)
        .arg("--from")
        .arg(example())
        .args(["--out", "out"])
        .assert()
}

#[test]
fn check_passes_when_nothing_changed() {
    let dir = tempfile::tempdir().unwrap();
    generated(dir.path());
    diff(dir.path(), &["--check"])
        .code(0)
        .stdout("")
        .stderr(contains("out is up to date"));
}

#[test]
fn check_fails_and_shows_a_unified_diff_when_something_changed() {
    let dir = tempfile::tempdir().unwrap();
    generated(dir.path());
    let orgs = dir.path().join("out/data/orgs.csv");
    let text = std::fs::read_to_string(&orgs)
        .unwrap()
        .replace("Finance tenant", "Finance tenant (old)");
    std::fs::write(&orgs, text).unwrap();
    diff(dir.path(), &["--check"])
        .code(1)
        .stdout(contains("--- a/data/orgs.csv\n+++ b/data/orgs.csv\n"))
        .stdout(contains("-acme-prod,2093451177,Globex Finance,Finance tenant (old)\n+acme-prod,2093451177,Globex Finance,Finance tenant\n"))
        .stdout(contains("\u{1b}").not())
        .stderr(contains("1 file(s) differ"));
    // Without --check, differences are reported but the exit code is 0.
    diff(dir.path(), &[])
        .code(0)
        .stdout(contains("+++ b/data/orgs.csv"));
}

#[test]
fn added_and_removed_files_are_shown_and_other_files_left_out() {
    let dir = tempfile::tempdir().unwrap();
    generated(dir.path());
    std::fs::remove_file(dir.path().join("out/tml/TS_USERS.table.tml")).unwrap();
    // Not ours: never shown as removed, only counted by --stat.
    std::fs::write(
        dir.path().join("out/tml/Sales.liveboard.tml"),
        "liveboard:\n  name: \"Sales\"\n",
    )
    .unwrap();
    // As a worksheet, the model ts-principals wrote goes.
    diff(dir.path(), &["--check", "--format", "worksheet"])
        .code(1)
        .stdout(contains("--- /dev/null\n+++ b/tml/TS_USERS.table.tml\n"))
        .stdout(contains(
            "--- a/tml/TS_ Users and Groups.model.tml\n+++ /dev/null\n",
        ))
        .stdout(contains("Sales").not());
    diff(dir.path(), &["--check", "--stat", "--format", "worksheet"])
        .code(1)
        .stdout(contains("tml/TS_ Users and Groups.model.tml (removed)"))
        .stdout(contains("tml/TS_USERS.table.tml (new)"))
        .stdout(contains(" 4 files changed,"))
        .stdout(contains(
            "1 file beside ours is not ours and left alone: tml/Sales.liveboard.tml",
        ));
}

#[test]
fn an_empty_or_missing_directory_differs_in_every_file() {
    let dir = tempfile::tempdir().unwrap();
    diff(dir.path(), &["--check", "--stat"])
        .code(1)
        .stdout(contains(" 18 files changed,"));
    assert!(
        !dir.path().join("out").exists(),
        "diff leaves a missing directory missing"
    );
}

#[test]
fn colour_only_when_asked_or_on_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    generated(dir.path());
    std::fs::write(dir.path().join("out/data/orgs.csv"), "changed\n").unwrap();
    diff(dir.path(), &["--color", "always"]).stdout(contains("\u{1b}["));
    diff(dir.path(), &["--color", "auto"]).stdout(contains("\u{1b}[").not());
}

/// The diff is a patch: applied to the directory with `git apply` (which
/// allows no fuzz), it gives exactly what `generate` writes; files added and
/// removed included.
#[test]
fn the_diff_applies_as_a_patch_and_gives_what_generate_writes() {
    for (old_flags, new_flags) in [
        (&["--stamp"][..], &["--format", "worksheet"][..]),
        (&["--format", "worksheet"], &[]),
    ] {
        let dir = tempfile::tempdir().unwrap();
        // The old side: another input, with a file edited by hand.
        generate(dir.path(), &fixture("v2_combined.json"), "out", old_flags).success();
        let users = dir.path().join("out/data/users.csv");
        let mut edited = std::fs::read(&users).unwrap();
        edited.extend_from_slice(b"a row added by hand");
        std::fs::write(&users, edited).unwrap();
        let output = ts_principals(dir.path())
            .arg("diff")
            .args(new_flags)
            .arg("--from")
            .arg(example())
            .args(["--out", "out"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{stderr}");
        let patch = dir.path().join("change.patch");
        std::fs::write(&patch, &output.stdout).unwrap();
        let applied = std::process::Command::new("git")
            .current_dir(dir.path().join("out"))
            .args(["apply", "-p1"])
            .arg(&patch)
            .output()
            .expect("git is installed");
        assert!(
            applied.status.success(),
            "git apply {old_flags:?} → {new_flags:?}: {}",
            String::from_utf8_lossy(&applied.stderr)
        );
        generate(dir.path(), &example(), "fresh", new_flags).success();
        assert_eq!(
            tree(&dir.path().join("out")),
            tree(&dir.path().join("fresh"))
        );
    }
}

#[test]
fn diff_refuses_what_generate_refuses_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    generated(dir.path());
    let out = dir.path().join("out");
    // A directory where a file of ours goes.
    let blocker = out.join("tml/TS_ORGS.table.tml");
    std::fs::remove_file(&blocker).unwrap();
    std::fs::create_dir(&blocker).unwrap();
    diff(dir.path(), &["--stat"])
        .code(4)
        .stderr(contains("TS_ORGS.table.tml"));
    std::fs::remove_dir(&blocker).unwrap();
    // A run that was interrupted: diff leaves it for generate to finish.
    std::fs::write(out.join(".ts-principals-journal.json"), "{}").unwrap();
    let before = tree(&out);
    diff(dir.path(), &["--check"])
        .code(4)
        .stderr(contains("was interrupted"));
    assert_eq!(before, tree(&out));
}
