//! Putting a staged set of files in place so that it can always be undone.
//!
//! Before anything is staged, a journal (`.ts-principals-journal.json` in
//! the output directory) names the run and the directories it stages in.
//! Before the first file moves, the journal lists every step. A step
//! replaces, creates or removes one file; whatever it replaces or removes
//! is first moved into a backup directory beside it, so until the whole
//! set is in place the old set is still on disk. Then the journal is marked
//! committed, and only after that are the backups deleted and the journal
//! removed.
//!
//! A run that fails part-way rolls its steps back at once. A run that is
//! killed leaves the journal behind, and the next run into the directory
//! (which holds its lock, so the killed run is certainly gone) reads it
//! first: staging is cleared, a set not yet committed is rolled back, a
//! committed one has its backups cleared. Every step, forward or back,
//! looks at what is on disk before it acts, so recovery can itself be
//! interrupted and resumed.
//!
//! Staging and backup directories sit beside the files they serve (one per
//! directory, named for the run), so every move is a rename within one
//! directory's file system, even when `data/` is a link to another disk.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{OutputError, at};
use crate::atomic::{self, Access};

/// The journal's file name in the output directory.
pub(super) const JOURNAL: &str = ".ts-principals-journal.json";
/// Names of staging directories begin with this.
const STAGING_PREFIX: &str = ".ts-principals-staging-";
/// Names of backup directories begin with this.
const BACKUP_PREFIX: &str = ".ts-principals-backup-";
/// The journal format this build writes and reads.
const FORMAT: u32 = 1;

/// Whether a directory name is that of a run's staging or backup directory.
pub(super) fn is_run_dir(name: &[u8]) -> bool {
    [STAGING_PREFIX, BACKUP_PREFIX]
        .iter()
        .any(|prefix| name.starts_with(prefix.as_bytes()))
}

/// One run's name for its staging and backup directories.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Run(String);

impl Run {
    /// A fresh, random name.
    pub fn new() -> Self {
        Run(format!("{:016x}", fastrand::u64(..)))
    }

    /// Where the new content of `relative` is staged.
    pub fn staged(&self, out: &Path, relative: &str) -> PathBuf {
        self.beside(out, relative, STAGING_PREFIX)
    }

    /// Where the old content of `relative` is kept until the commit is done.
    pub fn backup(&self, out: &Path, relative: &str) -> PathBuf {
        self.beside(out, relative, BACKUP_PREFIX)
    }

    fn beside(&self, out: &Path, relative: &str, prefix: &str) -> PathBuf {
        let (dir, name) = relative.rsplit_once('/').unwrap_or(("", relative));
        out.join(dir).join(format!("{prefix}{}", self.0)).join(name)
    }
}

/// What a step does to one file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum Action {
    /// Puts a new file where there was none.
    Create,
    /// Puts a new file in place of the old one.
    Replace,
    /// Takes an old file away.
    Remove,
}

/// One step of a commit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Step {
    /// The file, relative to the output directory, with `/`.
    pub path: String,
    /// What happens to it.
    pub action: Action,
    /// SHA-256 of the new content a create or replace puts in place, so a
    /// roll-back removes a created file only when it is the one moved in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum State {
    /// Files are being staged; nothing in place has changed.
    Staging,
    /// Files are being moved; the old set is in the backups.
    Moving,
    /// The new set is in place; the backups can go.
    Committed,
}

/// The journal of one run.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Journal {
    format: u32,
    run: String,
    state: State,
    /// Directories (relative, `""` for the output directory itself) that
    /// hold the run's staging and backup directories.
    dirs: Vec<String>,
    steps: Vec<Step>,
}

/// Points where a fault can be injected, for tests of every step.
#[derive(Debug, Default)]
pub(super) struct Faults {
    /// Fail the n-th change to the disk (0-based), once.
    pub fail_at: Option<usize>,
    /// Changes made so far.
    pub done: usize,
    /// When the fault strikes, stop dead as a killed process would,
    /// without rolling back.
    pub crash: bool,
}

impl Faults {
    /// Counts one change to the disk, failing it when it is the chosen one.
    fn check(&mut self, path: &Path) -> Result<(), OutputError> {
        let now = self.done;
        self.done += 1;
        if self.fail_at == Some(now) {
            return Err(OutputError::Io {
                path: path.to_path_buf(),
                source: io::Error::other(format!("injected fault at change {now}")),
            });
        }
        Ok(())
    }

    /// True when the last failure was injected as a crash.
    pub fn crashed(&self) -> bool {
        self.crash && self.fail_at.is_some_and(|at| at < self.done)
    }
}

fn exists(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok()
}

fn rename(from: &Path, to: &Path, faults: &mut Faults) -> Result<(), OutputError> {
    faults.check(to)?;
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent).map_err(at(parent))?;
    }
    // An error names the user's file, not our staging or backup copy.
    let in_ours = |path: &Path| {
        path.parent()
            .and_then(Path::file_name)
            .is_some_and(|dir| is_run_dir(dir.as_encoded_bytes()))
    };
    let named = if in_ours(to) { from } else { to };
    fs::rename(from, to).map_err(at(named))
}

impl Journal {
    /// Records that `run` stages in `dirs`, before it does.
    pub fn begin(
        out: &Path,
        run: &Run,
        dirs: Vec<String>,
        faults: &mut Faults,
    ) -> Result<Journal, OutputError> {
        let journal = Journal {
            format: FORMAT,
            run: run.0.clone(),
            state: State::Staging,
            dirs,
            steps: Vec::new(),
        };
        journal.save(out, faults)?;
        Ok(journal)
    }

    fn run(&self) -> Run {
        Run(self.run.clone())
    }

    fn save(&self, out: &Path, faults: &mut Faults) -> Result<(), OutputError> {
        let path = out.join(JOURNAL);
        faults.check(&path)?;
        let mut bytes = serde_json::to_vec_pretty(self).unwrap_or_default();
        bytes.push(b'\n');
        atomic::write_file(&path, &bytes, Access::Default).map_err(at(&path))
    }

    /// Moves the staged files into place as `steps` say. On failure the
    /// caller rolls back with [`Journal::roll_back`] (or, when the process
    /// dies, the next run does it with [`recover`]).
    pub fn commit(
        &mut self,
        out: &Path,
        steps: Vec<Step>,
        faults: &mut Faults,
    ) -> Result<(), OutputError> {
        self.steps = steps;
        self.state = State::Moving;
        self.save(out, faults)?;
        let run = self.run();
        for step in &self.steps {
            let target = out.join(&step.path);
            match step.action {
                Action::Create => rename(&run.staged(out, &step.path), &target, faults)?,
                Action::Replace => {
                    rename(&target, &run.backup(out, &step.path), faults)?;
                    rename(&run.staged(out, &step.path), &target, faults)?;
                }
                Action::Remove => rename(&target, &run.backup(out, &step.path), faults)?,
            }
        }
        self.state = State::Committed;
        if let Err(error) = self.save(out, faults) {
            self.state = State::Moving;
            return Err(error);
        }
        if let Err(error) = self.finish(out, faults) {
            // The new set is in place; the next run clears what is left.
            tracing::warn!("{error}; the next run into {} clears it", out.display());
        }
        Ok(())
    }

    /// Puts the old set back after a failure, and clears the run's staging.
    pub fn roll_back(&self, out: &Path, faults: &mut Faults) -> Result<(), OutputError> {
        let run = self.run();
        if self.state != State::Committed {
            for step in self.steps.iter().rev() {
                let target = out.join(&step.path);
                let backup = run.backup(out, &step.path);
                match step.action {
                    // Moved in when its staged copy is gone and it holds
                    // what was staged; nothing was there before.
                    Action::Create => {
                        let moved_in = !exists(&run.staged(out, &step.path))
                            && exists(&target)
                            && step.sha256.as_deref().is_some_and(|sha| {
                                super::sha256_of(&target).is_ok_and(|found| found == sha)
                            });
                        if moved_in {
                            faults.check(&target)?;
                            fs::remove_file(&target).map_err(at(&target))?;
                        }
                    }
                    // The backup, while it exists, is the old file: put it
                    // back (over the new one, if that moved in too).
                    Action::Replace | Action::Remove => {
                        if exists(&backup) {
                            rename(&backup, &target, faults)?;
                        }
                    }
                }
            }
        }
        self.finish(out, faults)
    }

    /// Removes the run's staging and backup directories, then the journal.
    fn finish(&self, out: &Path, faults: &mut Faults) -> Result<(), OutputError> {
        for dir in &self.dirs {
            for prefix in [STAGING_PREFIX, BACKUP_PREFIX] {
                remove_dir(&out.join(dir).join(format!("{prefix}{}", self.run)), faults)?;
            }
        }
        let path = out.join(JOURNAL);
        if exists(&path) {
            faults.check(&path)?;
            fs::remove_file(&path).map_err(at(&path))?;
        }
        Ok(())
    }
}

/// Removes a directory of ours and everything in it, if it exists.
pub(super) fn remove_dir(dir: &Path, faults: &mut Faults) -> Result<(), OutputError> {
    if !exists(dir) {
        return Ok(());
    }
    faults.check(dir)?;
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(at(dir)(e)),
        _ => Ok(()),
    }
}

/// Removes the temporary files of journals that runs were writing when they
/// died (see [`atomic::write_file`]).
fn clear_temporaries(out: &Path) -> Result<(), OutputError> {
    let prefix = format!(".{JOURNAL}.");
    for entry in fs::read_dir(out).map_err(at(out))? {
        let entry = entry.map_err(at(out))?;
        let name = entry.file_name();
        let name = name.as_encoded_bytes();
        if name.starts_with(prefix.as_bytes()) && name.ends_with(b".tmp") {
            let path = entry.path();
            match fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(at(&path)(e)),
                _ => {}
            }
        }
    }
    Ok(())
}

/// What recovery of an interrupted run found and did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recovered {
    /// An interrupted run's files were moved back: the set before it.
    RolledBack,
    /// An interrupted run had put its whole set in place; its leftovers
    /// were cleared.
    Completed,
}

/// Finishes what a killed run left: rolls back a set not yet committed,
/// clears the backups of a committed one. Call with the directory locked.
/// `owns` tells the files a run may have written: a journal naming any
/// other is refused, so a stale or hostile one cannot touch them.
pub(super) fn recover(
    out: &Path,
    faults: &mut Faults,
    owns: fn(&str) -> bool,
) -> Result<Option<Recovered>, OutputError> {
    clear_temporaries(out)?;
    let path = out.join(JOURNAL);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(at(&path)(e)),
    };
    let journal: Journal = serde_json::from_slice(&bytes).map_err(|e| OutputError::Journal {
        path: path.clone(),
        problem: e.to_string(),
    })?;
    if journal.format != FORMAT {
        return Err(OutputError::Journal {
            path,
            problem: format!(
                "it is in format {}, which this version of ts-principals does not read",
                journal.format
            ),
        });
    }
    if journal.run.is_empty() || !journal.run.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(OutputError::Journal {
            path,
            problem: format!(
                "its run name {:?} is not one ts-principals makes",
                journal.run
            ),
        });
    }
    let not_ours = |p: &str| !super::is_safe_relative(p) || (p != super::MANIFEST && !owns(p));
    let dirs = journal
        .dirs
        .iter()
        .map(String::as_str)
        .filter(|d| !d.is_empty());
    let bad = (journal.steps.iter())
        .map(|s| s.path.as_str())
        .find(|p| not_ours(p))
        .or_else(|| dirs.clone().find(|d| !super::is_safe_relative(d)));
    if let Some(bad) = bad {
        return Err(OutputError::Journal {
            path,
            problem: format!("it names {bad:?}, which is not a file of an output set"),
        });
    }
    if journal.state == State::Staging && !journal.steps.is_empty() {
        return Err(OutputError::Journal {
            path,
            problem: "it lists moves of a run that had not begun moving files".into(),
        });
    }
    let recovered = match journal.state {
        State::Staging => None,
        State::Moving => Some(Recovered::RolledBack),
        State::Committed => Some(Recovered::Completed),
    };
    journal.roll_back(out, faults)?;
    Ok(recovered)
}
