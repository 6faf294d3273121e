//! Writing an [`OutputSet`] to an output directory without ever leaving it
//! half-written.
//!
//! ts-principals owns `data/*.csv`, `tml/*.tml` and `manifest.json` inside
//! the output directory and nothing else, so the directory can be the root
//! of a TML repository (with `.git`, a README, `guids.json`). Every file is
//! first written to a staging directory inside the output directory (same
//! file system); only when all of them are written does each replace its
//! target by rename, and owned files the new set no longer has are removed.
//! A failure before that point removes the staging directory and leaves the
//! output directory as it was.

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::generate::{DATA_DIR, MANIFEST, OutputSet, TML_DIR};

/// What writing changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteSummary {
    /// Files that did not exist before.
    pub added: Vec<String>,
    /// Files whose content changed.
    pub changed: Vec<String>,
    /// Files whose content was already the same.
    pub unchanged: Vec<String>,
    /// Owned files removed because the new set no longer has them.
    pub removed: Vec<String>,
}

/// Writing failed; the output directory is as it was.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {path}: {source}")]
pub struct OutputError {
    /// The file or directory concerned.
    pub path: PathBuf,
    /// Why.
    #[source]
    pub source: io::Error,
}

fn at(path: &Path) -> impl FnOnce(io::Error) -> OutputError + '_ {
    move |source| OutputError {
        path: path.to_path_buf(),
        source,
    }
}

/// Files ts-principals owns under `out`, as relative paths with `/`.
pub fn owned_files(out: &Path) -> Result<BTreeSet<String>, OutputError> {
    let mut found = BTreeSet::new();
    if out.join(MANIFEST).is_file() {
        found.insert(MANIFEST.to_owned());
    }
    for (dir, extension) in [(DATA_DIR, "csv"), (TML_DIR, "tml")] {
        let path = out.join(dir);
        let entries = match fs::read_dir(&path) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(at(&path)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(at(&path))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let is_file = entry.file_type().map_err(at(&path))?.is_file();
            if is_file && Path::new(&name).extension().is_some_and(|e| e == extension) {
                found.insert(format!("{dir}/{name}"));
            }
        }
    }
    Ok(found)
}

/// Writes `set` into `out` (created if missing), replacing owned files.
pub fn write(out: &Path, set: &OutputSet) -> Result<WriteSummary, OutputError> {
    let created_out = !out.exists();
    fs::create_dir_all(out).map_err(at(out))?;
    let before = owned_files(out)?;

    let staging = out.join(format!(".ts-principals-staging-{}", std::process::id()));
    let staged = stage(&staging, set);
    if let Err(error) = staged {
        let _ = fs::remove_dir_all(&staging);
        if created_out {
            let _ = fs::remove_dir(out);
        }
        return Err(error);
    }

    let mut summary = WriteSummary::default();
    for (relative, bytes) in &set.files {
        let target = out.join(relative);
        let bucket = match fs::read(&target) {
            Ok(old) if old == *bytes => &mut summary.unchanged,
            Ok(_) => &mut summary.changed,
            Err(_) => &mut summary.added,
        };
        bucket.push(relative.clone());
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(at(parent))?;
        }
        fs::rename(staging.join(relative), &target).map_err(at(&target))?;
    }
    for stale in before.iter().filter(|f| !set.files.contains_key(*f)) {
        let path = out.join(stale);
        fs::remove_file(&path).map_err(at(&path))?;
        summary.removed.push(stale.clone());
    }
    fs::remove_dir_all(&staging).map_err(at(&staging))?;
    Ok(summary)
}

fn stage(staging: &Path, set: &OutputSet) -> Result<(), OutputError> {
    if staging.exists() {
        // Left by a run of ours that was killed; it holds nothing of value.
        fs::remove_dir_all(staging).map_err(at(staging))?;
    }
    for (relative, bytes) in &set.files {
        let path = staging.join(relative);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(at(parent))?;
        }
        let mut file = fs::File::create(&path).map_err(at(&path))?;
        file.write_all(bytes).map_err(at(&path))?;
        file.sync_all().map_err(at(&path))?;
    }
    Ok(())
}

/// Writes one file atomically: to a temporary file beside it, then renamed
/// over it, so readers see the old or the new content, never a mix.
pub fn write_file_atomically(path: &Path, bytes: &[u8]) -> Result<(), OutputError> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    fs::create_dir_all(dir).map_err(at(dir))?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let temp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut file = fs::File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temp, path)
    })();
    result.map_err(|source| {
        let _ = fs::remove_file(&temp);
        OutputError {
            path: path.to_path_buf(),
            source,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(files: &[(&str, &str)]) -> OutputSet {
        OutputSet {
            files: files.iter().map(|(p, c)| (p.to_string(), c.as_bytes().to_vec())).collect(),
        }
    }

    #[test]
    fn writes_replaces_and_removes_only_owned_files() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let first = write(&out, &set(&[("data/a.csv", "1\n"), ("tml/A.table.tml", "a\n"), ("manifest.json", "{}\n")])).unwrap();
        assert_eq!(first.added.len(), 3);
        fs::write(out.join("README.md"), "mine").unwrap();
        fs::write(out.join("data/notes.txt"), "mine too").unwrap();

        let second = write(&out, &set(&[("data/a.csv", "2\n"), ("manifest.json", "{}\n")])).unwrap();
        assert_eq!(second.changed, ["data/a.csv"]);
        assert_eq!(second.unchanged, ["manifest.json"]);
        assert_eq!(second.removed, ["tml/A.table.tml"]);
        assert_eq!(fs::read_to_string(out.join("data/a.csv")).unwrap(), "2\n");
        assert!(out.join("README.md").exists() && out.join("data/notes.txt").exists());
        let leftovers: Vec<_> = fs::read_dir(&out)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(".ts-principals"))
            .collect();
        assert!(leftovers.is_empty(), "staging directory removed");
    }

    #[test]
    fn a_failure_while_staging_leaves_the_directory_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        write(&out, &set(&[("data/a.csv", "old\n")])).unwrap();
        // A file where a directory must go makes staging fail half-way.
        let broken = set(&[("data/a.csv", "new\n"), ("data/b", "x"), ("data/b/c.csv", "y")]);
        assert!(write(&out, &broken).is_err());
        assert_eq!(fs::read_to_string(out.join("data/a.csv")).unwrap(), "old\n");
        assert_eq!(owned_files(&out).unwrap().into_iter().collect::<Vec<_>>(), ["data/a.csv"]);
    }

    #[test]
    fn atomic_single_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("snap/principals.json");
        write_file_atomically(&path, b"one").unwrap();
        write_file_atomically(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);
    }
}
