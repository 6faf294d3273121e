//! Writing a set of generated files into an output directory that may be
//! the root of someone's TML repository, trusting nothing about what else
//! is there.
//!
//! **Only our files.** ts-principals owns exactly the files its previous
//! manifest (`manifest.json`) lists, plus the files it writes now. Other
//! files — a liveboard's TML beside ours, a lookup CSV, `.git` — are never
//! touched. A directory with files but no manifest has its files with our
//! names overwritten and nothing deleted. A `manifest.json` that is not
//! ts-principals' stops the run.
//!
//! **All or nothing.** Every file is compared, as it is produced, with the
//! file on disk, so the summary says what really changes; a file that
//! differs is written into a staging directory beside its target, one that
//! does not is left as it is. The staged files are then moved into place
//! under a journal that lets a failed run roll back at once and a killed
//! run be rolled back or completed by the next (see the `journal` module).
//! Runs into one directory take turns: each holds a lock on the directory
//! while it works.

mod journal;
mod stream;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

pub use journal::Recovered;
use journal::{Action, Faults, Journal, Run, Step};
pub use stream::{Compared, FileInfo, Hashing, OnDisk};

use crate::atomic::{Lock, Wait};

/// The manifest's file name in the output directory.
pub const MANIFEST: &str = "manifest.json";
/// The `tool` a manifest of ours names.
pub const TOOL: &str = "ts-principals";

/// A set of files to write into an output directory (or compare with one).
pub trait FileSet: Sync {
    /// Where one file's content comes from.
    type Source: Copy + Send + Sync;
    /// Every file except the manifest, by path relative to the output
    /// directory (with `/`), in path order.
    fn files(&self) -> BTreeMap<String, Self::Source>;
    /// Produces the content of a file into `out`, returning its data rows
    /// when it is a table.
    fn write(&self, source: Self::Source, out: &mut dyn Write) -> io::Result<Option<usize>>;
    /// The manifest, recording what was written of every file.
    fn manifest(&self, files: &BTreeMap<String, FileInfo>) -> Vec<u8>;
    /// Whether a path a previous manifest lists is of a kind this set
    /// writes, so a manifest listing `.git/config` cannot make it ours.
    fn may_own(relative: &str) -> bool;
}

/// How to write.
#[derive(Clone, Copy, Debug)]
pub struct WriteOptions {
    /// What to do when another run is writing to the same directory.
    pub wait: Wait,
}

impl Default for WriteOptions {
    fn default() -> Self {
        Self { wait: Wait::Block }
    }
}

/// What writing changed, judged by what was on disk.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteSummary {
    /// Files that did not exist before.
    pub added: Vec<String>,
    /// Files whose content changed.
    pub changed: Vec<String>,
    /// Files that already held the same content (left as they were).
    pub unchanged: Vec<String>,
    /// Files of ours removed because the new set no longer has them.
    pub removed: Vec<String>,
    /// Files of ours that were edited since the previous run wrote them
    /// (their content is not what its manifest records), now replaced or
    /// removed.
    pub edited: Vec<String>,
    /// What an interrupted earlier run left, and what was done about it.
    pub recovered: Option<Recovered>,
}

/// Writing failed; unless the error says otherwise, the output directory
/// holds what it held before.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// A file or directory could not be read, written or moved.
    #[error("cannot write {path}: {source}{hint}", hint = io_hint(source))]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// `--out` names something that is not a directory.
    #[error("{path} is not a directory; --out names the directory to write into")]
    NotADirectory {
        /// The path given.
        path: PathBuf,
    },
    /// Something that is not a regular file is where a file of the set goes.
    #[error(
        "{path} is {what}, where ts-principals needs {needs}; move it away (or choose \
         another --out) and run again"
    )]
    InTheWay {
        /// What ts-principals writes there: "a file" or "a directory".
        needs: &'static str,
        /// The path.
        path: PathBuf,
        /// "a directory", "a symbolic link", …
        what: &'static str,
    },
    /// The directory's `manifest.json` belongs to something else.
    #[error(
        "{path} is not a ts-principals manifest ({problem}); ts-principals writes only into \
         a directory whose manifest.json is its own or absent: choose another --out, or \
         delete the file if it is an old ts-principals manifest"
    )]
    ForeignManifest {
        /// The manifest.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// Another run holds the directory and `--no-wait` was given.
    #[error(
        "another ts-principals run is writing to {path}; wait for it to finish, or leave \
         out --no-wait to wait for it"
    )]
    Busy {
        /// The output directory.
        path: PathBuf,
    },
    /// An interrupted run's journal cannot be read, so its files cannot be
    /// restored.
    #[error(
        "{path} was left by an interrupted run and cannot be read ({problem}); it lists the \
         files that run moved: restore them from its .ts-principals-backup-* directories \
         (or from git), then delete it"
    )]
    Journal {
        /// The journal.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// A run was interrupted part-way, and the directory is read, not written.
    #[error(
        "{path} shows that a ts-principals run into this directory was interrupted before it \
         finished; run `ts-principals generate` into it, which puts back the set before that \
         run or completes it, then diff again"
    )]
    Interrupted {
        /// The journal.
        path: PathBuf,
    },
    /// A run failed part-way, and the files it had changed were put back.
    #[error("{failure}; nothing was changed: {out} holds the files it held before this run")]
    RolledBack {
        /// The output directory.
        out: PathBuf,
        /// What failed.
        failure: Box<OutputError>,
    },
    /// A failed run could not put the old files back.
    #[error(
        "{failure}; putting the previous files back failed too ({restore}); they are kept \
         beside their places in .ts-principals-backup-* directories, and the next run into \
         {out} puts them back"
    )]
    RollBack {
        /// The output directory.
        out: PathBuf,
        /// What failed first.
        failure: Box<OutputError>,
        /// What failed while restoring.
        restore: Box<OutputError>,
    },
}

/// What to do about a common I/O failure.
fn io_hint(error: &io::Error) -> &'static str {
    match error.kind() {
        io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => {
            "; check that you may write there"
        }
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => {
            "; the disk is full: free some space and run again"
        }
        _ => "",
    }
}

/// Turns an I/O error at `path` into an [`OutputError::Io`] naming it.
pub(crate) fn at(path: &Path) -> impl FnOnce(io::Error) -> OutputError + '_ {
    move |source| OutputError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// True for a relative path of plain, visible components joined by `/`:
/// the only kind of path a manifest or journal may name.
pub(crate) fn is_safe_relative(path: &str) -> bool {
    !path.is_empty()
        && path.split('/').all(|part| {
            !part.is_empty()
                && !part.starts_with('.')
                && !part.contains(['\\', '\0'])
                && !Path::new(part).is_absolute()
        })
}

/// Locks `out` (created if missing) for one run, first finishing whatever
/// an interrupted run left there. `wait` says what to do when another run
/// holds it; `owns` tells the files a run may have written (see
/// [`FileSet::may_own`]), so recovery touches no other.
pub fn open(out: &Path, wait: Wait, owns: fn(&str) -> bool) -> Result<OutputDir, OutputError> {
    refuse_non_directory(out)?;
    let created = !out.exists();
    fs::create_dir_all(out).map_err(at(out))?;
    let lock = lock(out, wait)?;
    let recovered = journal::recover(out, &mut Faults::default(), owns)?;
    match recovered {
        Some(Recovered::RolledBack) => tracing::warn!(
            "a run into {} was interrupted before all its files were in place; its files \
             were moved back, so the directory holds the set before it",
            out.display()
        ),
        Some(Recovered::Completed) => tracing::info!(
            "a run into {} was interrupted after its files were in place; cleared what it left",
            out.display()
        ),
        None => {}
    }
    Ok(OutputDir {
        path: out.to_path_buf(),
        created,
        recovered,
        _lock: Some(lock),
    })
}

/// Opens `out` to read it (`diff`), changing nothing: a missing directory
/// stays missing (and reads as empty); an existing one is locked, so no run
/// changes it while it is read, and one an interrupted run left
/// half-written is refused, for the next `generate` to finish.
pub fn open_to_read(out: &Path, wait: Wait) -> Result<OutputDir, OutputError> {
    refuse_non_directory(out)?;
    let lock = match fs::metadata(out) {
        Ok(_) => Some(lock(out, wait)?),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(at(out)(e)),
    };
    let journal = out.join(journal::JOURNAL);
    if lock.is_some() && fs::symlink_metadata(&journal).is_ok() {
        return Err(OutputError::Interrupted { path: journal });
    }
    Ok(OutputDir {
        path: out.to_path_buf(),
        created: false,
        recovered: None,
        _lock: lock,
    })
}

fn refuse_non_directory(out: &Path) -> Result<(), OutputError> {
    match fs::metadata(out) {
        Ok(meta) if !meta.is_dir() => Err(OutputError::NotADirectory {
            path: out.to_path_buf(),
        }),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(at(out)(e)),
    }
}

fn lock(out: &Path, wait: Wait) -> Result<Lock, OutputError> {
    Lock::acquire(out, wait, || {
        if wait == Wait::Block {
            tracing::info!(
                "another ts-principals run is writing to {}; waiting for it to finish \
                 (--no-wait fails instead)",
                out.display()
            );
        }
    })
    .map_err(|e| match e.kind() {
        io::ErrorKind::WouldBlock => OutputError::Busy {
            path: out.to_path_buf(),
        },
        _ => at(out)(e),
    })
}

/// An output directory locked for one run (see [`open`]).
#[derive(Debug)]
pub struct OutputDir {
    path: PathBuf,
    created: bool,
    recovered: Option<Recovered>,
    /// None only for a missing directory opened to read.
    _lock: Option<Lock>,
}

/// What a previous run left: the files its manifest lists, with the
/// hashes it recorded (empty when it recorded none).
#[derive(Debug, Default)]
pub struct Owned {
    /// Path → SHA-256.
    pub files: BTreeMap<String, String>,
}

impl OutputDir {
    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The files ts-principals owns here according to the manifest: those
    /// it lists that `set` could have written. Entries of other kinds are
    /// ignored with a warning; a manifest that is not ours is an error.
    pub fn owned<F: FileSet>(&self) -> Result<Owned, OutputError> {
        let path = self.path.join(MANIFEST);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Owned::default()),
            Err(e) => return Err(at(&path)(e)),
        };
        let foreign = |problem: String| OutputError::ForeignManifest {
            path: path.clone(),
            problem,
        };
        let value: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| foreign(format!("it is not valid JSON: {e}")))?;
        let tool = value.get("tool").and_then(|t| t.as_str());
        if tool != Some(TOOL) {
            return Err(foreign(match tool {
                Some(other) => format!("it was written by {other:?}"),
                None => "it names no \"tool\"".into(),
            }));
        }
        let mut owned = Owned::default();
        let Some(files) = value.get("files").and_then(|f| f.as_object()) else {
            return Ok(owned);
        };
        for (relative, entry) in files {
            if relative == MANIFEST || !is_safe_relative(relative) || !F::may_own(relative) {
                tracing::warn!(
                    "{} lists {relative:?}, which is not a file ts-principals writes; it is \
                     left alone",
                    path.display()
                );
                continue;
            }
            let sha = entry.get("sha256").and_then(|s| s.as_str()).unwrap_or("");
            owned.files.insert(relative.clone(), sha.to_owned());
        }
        Ok(owned)
    }

    /// Writes `set` into the directory (see the module docs).
    pub fn write<F: FileSet>(&self, set: &F) -> Result<WriteSummary, OutputError> {
        self.write_with(set, &mut Faults::default())
    }

    fn write_with<F: FileSet>(
        &self,
        set: &F,
        faults: &mut Faults,
    ) -> Result<WriteSummary, OutputError> {
        let out = &self.path;
        let owned = self.owned::<F>()?;
        let files = set.files();
        let mut paths: BTreeSet<&str> = files.keys().map(String::as_str).collect();
        paths.insert(MANIFEST);
        sweep(
            out,
            paths
                .iter()
                .copied()
                .chain(owned.files.keys().map(String::as_str)),
        )?;
        for relative in &paths {
            check_target(out, relative)?;
        }

        let run = Run::new();
        let dirs: BTreeSet<String> = (paths.iter().copied())
            .chain(owned.files.keys().map(String::as_str))
            .map(|p| p.rsplit_once('/').map_or("", |(dir, _)| dir).to_owned())
            .collect();
        let mut journal = Journal::begin(out, &run, dirs.into_iter().collect(), faults)?;
        let staged = stage(out, &run, set, &files, &owned).and_then(|staged| {
            let infos = staged
                .iter()
                .map(|(path, (info, _))| (path.clone(), info.clone()))
                .collect();
            let bytes = set.manifest(&infos);
            let manifest = stage_manifest(out, &run, &bytes)?;
            let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
            Ok((staged, (manifest, sha)))
        });
        let (staged, (manifest, manifest_sha)) = match staged {
            Ok(staged) => staged,
            Err(error) => return Err(self.roll_back(&journal, error, faults)),
        };

        let mut summary = WriteSummary {
            recovered: self.recovered,
            ..WriteSummary::default()
        };
        let mut steps = Vec::new();
        let manifest_path = MANIFEST.to_owned();
        let states = (staged.iter()).map(|(path, (info, on_disk))| (path, on_disk, &info.sha256));
        for (relative, on_disk, sha256) in
            states.chain([(&manifest_path, &manifest, &manifest_sha)])
        {
            let action = match on_disk {
                OnDisk::Absent => {
                    summary.added.push(relative.clone());
                    Action::Create
                }
                OnDisk::Same => {
                    summary.unchanged.push(relative.clone());
                    continue;
                }
                OnDisk::Differs(old) => {
                    summary.changed.push(relative.clone());
                    if let (Some(old), Some(recorded)) = (old, owned.files.get(relative))
                        && old != recorded
                    {
                        summary.edited.push(relative.clone());
                    }
                    Action::Replace
                }
            };
            steps.push(Step {
                path: relative.clone(),
                action,
                sha256: Some(sha256.clone()),
            });
        }
        let mut removals = Vec::new();
        for (relative, recorded) in &owned.files {
            let path = out.join(relative);
            if files.contains_key(relative)
                || !fs::symlink_metadata(&path).is_ok_and(|m| m.is_file())
            {
                continue;
            }
            if !recorded.is_empty() && sha256_of(&path).map_err(at(&path))? != *recorded {
                summary.edited.push(relative.clone());
            }
            summary.removed.push(relative.clone());
            removals.push(Step {
                path: relative.clone(),
                action: Action::Remove,
                sha256: None,
            });
        }
        // The manifest moves last, so it never lists a file not yet in place.
        let manifest_step = steps.pop_if(|s| s.path == MANIFEST);
        steps.extend(removals);
        steps.extend(manifest_step);
        summary.edited.sort();

        match journal.commit(out, steps, faults) {
            Ok(()) => Ok(summary),
            Err(failure) => Err(self.roll_back(&journal, failure, faults)),
        }
    }

    /// Undoes a failed run; the error to report.
    fn roll_back(
        &self,
        journal: &Journal,
        failure: OutputError,
        faults: &mut Faults,
    ) -> OutputError {
        if faults.crashed() {
            return failure;
        }
        match journal.roll_back(&self.path, faults) {
            Ok(()) => {
                self.remove_if_created();
                OutputError::RolledBack {
                    out: self.path.clone(),
                    failure: Box::new(failure),
                }
            }
            Err(restore) => OutputError::RollBack {
                out: self.path.clone(),
                failure: Box::new(failure),
                restore: Box::new(restore),
            },
        }
    }

    /// After a failure in a directory this run created: removes it again
    /// where nothing else was put in it meanwhile.
    pub fn remove_if_created(&self) {
        if !self.created {
            return;
        }
        let mut dirs = vec![self.path.clone()];
        while let Some(dir) = dirs.pop() {
            // Only empty directories go, so nothing of anyone else's can.
            if fs::remove_dir(&dir).is_err()
                && let Ok(entries) = fs::read_dir(&dir)
            {
                let subdirs: Vec<PathBuf> = entries
                    .filter_map(Result::ok)
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| e.path())
                    .collect();
                if !subdirs.is_empty() {
                    dirs.push(dir);
                    dirs.extend(subdirs);
                }
            }
        }
    }
}

/// Writes `set` into `out`: [`open`] then [`OutputDir::write`].
pub fn write<F: FileSet>(
    out: &Path,
    set: &F,
    options: &WriteOptions,
) -> Result<WriteSummary, OutputError> {
    open(out, options.wait, F::may_own)?.write(set)
}

/// Every file of `set` rendered into memory, the manifest included.
pub fn in_memory<F: FileSet>(set: &F) -> BTreeMap<String, Vec<u8>> {
    let rendered = crate::parallel::map(set.files(), |(path, source)| {
        let mut out = Hashing::new(Vec::new());
        // Writing to memory cannot fail.
        let rows = set.write(source, &mut out).unwrap_or_default();
        let (bytes, info) = out.finish(rows);
        (path, bytes, info)
    });
    let mut files = BTreeMap::new();
    let mut infos = BTreeMap::new();
    for (path, bytes, info) in rendered {
        infos.insert(path.clone(), info);
        files.insert(path, bytes);
    }
    files.insert(MANIFEST.to_owned(), set.manifest(&infos));
    files
}

/// The manifest without its `generated_at` stamp, so two generations of the
/// same principals compare equal whenever they were made. Only the stamp
/// line as ts-principals writes it (the last key) is taken out; anything
/// else, a reformatted manifest too, is kept as it is, so it compares as
/// the change `generate` would make.
pub fn manifest_without_stamp(bytes: &[u8]) -> Vec<u8> {
    const KEY: &[u8] = b",\n  \"generated_at\": \"";
    const END: &[u8] = b"\"\n}\n";
    let stamp = bytes
        .windows(KEY.len())
        .rposition(|window| window == KEY)
        .filter(|&at| {
            let value = &bytes[at + KEY.len()..];
            value.len() >= END.len()
                && value.ends_with(END)
                && !value[..value.len() - END.len()]
                    .iter()
                    .any(|b| matches!(b, b'"' | b'\\' | b'\n'))
        });
    match stamp {
        Some(at) => [&bytes[..at], b"\n}\n"].concat(),
        None => bytes.to_vec(),
    }
}

/// Writes the manifest into the staging directory; small, so it is
/// compared with the one on disk as a whole.
fn stage_manifest(out: &Path, run: &Run, bytes: &[u8]) -> Result<OnDisk, OutputError> {
    let path = run.staged(out, MANIFEST);
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(at(dir))?;
    }
    fs::write(&path, bytes).map_err(at(&path))?;
    let target = out.join(MANIFEST);
    match fs::read(&target) {
        Ok(old) if old == bytes => Ok(OnDisk::Same),
        Ok(_) => Ok(OnDisk::Differs(None)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(OnDisk::Absent),
        Err(e) => Err(at(&target)(e)),
    }
}

/// Refuses a target that is not a regular file (or absent), before
/// anything is written.
pub(crate) fn check_target(out: &Path, relative: &str) -> Result<(), OutputError> {
    let path = out.join(relative);
    let what = match fs::symlink_metadata(&path) {
        Ok(meta) if meta.is_file() => return Ok(()),
        Ok(meta) if meta.is_dir() => "a directory",
        Ok(meta) if meta.file_type().is_symlink() => "a symbolic link",
        Ok(_) => "not a regular file",
        Err(e)
            if e.kind() == io::ErrorKind::NotFound || e.kind() == io::ErrorKind::NotADirectory =>
        {
            // Its directory must be one, or creatable.
            return match path.parent().map(fs::metadata) {
                Some(Ok(meta)) if !meta.is_dir() => Err(OutputError::InTheWay {
                    needs: "a directory",
                    path: path.parent().unwrap_or(out).to_path_buf(),
                    what: "a file",
                }),
                _ => Ok(()),
            };
        }
        Err(e) => return Err(at(&path)(e)),
    };
    Err(OutputError::InTheWay {
        needs: "a file",
        path,
        what,
    })
}

/// Removes staging and backup directories that dead runs left beside the
/// files of `paths` (the lock is held, so their runs are gone).
fn sweep<'p>(out: &Path, paths: impl Iterator<Item = &'p str>) -> Result<(), OutputError> {
    let mut dirs = BTreeSet::new();
    dirs.insert(out.to_path_buf());
    for relative in paths {
        if let Some(dir) = out.join(relative).parent() {
            dirs.insert(dir.to_path_buf());
        }
    }
    for dir in dirs {
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                continue;
            }
            Err(e) => return Err(at(&dir)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(at(&dir))?;
            let name = entry.file_name();
            let name = name.as_encoded_bytes();
            if journal::is_run_dir(name) {
                tracing::debug!(
                    "removing {}, left by a run that died",
                    entry.path().display()
                );
                journal::remove_dir(&entry.path(), &mut Faults::default())?;
            }
        }
    }
    Ok(())
}

pub(super) fn sha256_of(path: &Path) -> io::Result<String> {
    let mut hashing = Hashing::new(io::sink());
    io::copy(&mut fs::File::open(path)?, &mut hashing)?;
    Ok(hashing.finish(None).1.sha256)
}

/// Produces every file, several at once, comparing each with the file on
/// disk as it goes; only files that differ are written into the staging
/// directory. A changed file of ours gets its old hash, to tell whether it
/// was edited by hand.
fn stage<F: FileSet>(
    out: &Path,
    run: &Run,
    set: &F,
    files: &BTreeMap<String, F::Source>,
    owned: &Owned,
) -> Result<BTreeMap<String, (FileInfo, OnDisk)>, OutputError> {
    for relative in files.keys() {
        let path = run.staged(out, relative);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(at(parent))?;
        }
    }
    let results = crate::parallel::map(files, |(relative, &source)| {
        let path = run.staged(out, relative);
        let target = out.join(relative);
        let compared = Compared::new(&target, Some(path.clone())).map_err(at(&target))?;
        let mut writer = Hashing::new(compared);
        let rows = set.write(source, &mut writer).map_err(at(&path))?;
        let (compared, info) = writer.finish(rows);
        let mut on_disk = compared.finish().map_err(at(&path))?;
        if on_disk == OnDisk::Differs(None) && owned.files.contains_key(relative) {
            on_disk = OnDisk::Differs(Some(sha256_of(&target).map_err(at(&target))?));
        }
        Ok::<_, OutputError>((relative.clone(), (info, on_disk)))
    });
    results.into_iter().collect()
}

/// A small file set for tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// Files with fixed contents; content `"boom"` fails to render.
    pub(crate) struct Files {
        pub files: BTreeMap<String, String>,
        pub stamp: Option<String>,
    }

    impl Files {
        pub fn new(files: &[(&str, &str)]) -> Self {
            Files {
                files: files
                    .iter()
                    .map(|(p, c)| (p.to_string(), c.to_string()))
                    .collect(),
                stamp: None,
            }
        }

        pub fn stamped(mut self, stamp: &str) -> Self {
            self.stamp = Some(stamp.to_owned());
            self
        }

        pub fn write_to(&self, out: &Path) -> WriteSummary {
            write(out, self, &WriteOptions::default()).unwrap()
        }
    }

    impl FileSet for Files {
        type Source = usize;

        fn files(&self) -> BTreeMap<String, usize> {
            self.files
                .keys()
                .cloned()
                .enumerate()
                .map(|(i, p)| (p, i))
                .collect()
        }

        fn write(&self, source: usize, out: &mut dyn Write) -> io::Result<Option<usize>> {
            let content = self.files.values().nth(source).map_or("", String::as_str);
            if content == "boom" {
                return Err(io::Error::other("disk full"));
            }
            out.write_all(content.as_bytes()).map(|()| None)
        }

        fn manifest(&self, files: &BTreeMap<String, FileInfo>) -> Vec<u8> {
            #[derive(serde::Serialize)]
            struct Manifest<'a> {
                tool: &'a str,
                files: &'a BTreeMap<String, FileInfo>,
                #[serde(skip_serializing_if = "Option::is_none")]
                generated_at: Option<&'a str>,
            }
            let manifest = Manifest {
                tool: TOOL,
                files,
                generated_at: self.stamp.as_deref(),
            };
            let mut bytes = serde_json::to_vec_pretty(&manifest).unwrap();
            bytes.push(b'\n');
            bytes
        }

        fn may_own(relative: &str) -> bool {
            relative.ends_with(".csv") || relative.ends_with(".tml")
        }
    }
}

#[cfg(test)]
mod tests;
