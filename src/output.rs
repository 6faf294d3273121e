//! Writing generated files to an output directory without ever leaving it
//! half-written.
//!
//! ts-principals owns `data/*.csv`, `tml/*.tml` and `manifest.json` inside
//! the output directory and nothing else, so the directory can be the root
//! of a TML repository (with `.git`, a README, `guids.json`). Every file is
//! first written to a staging directory inside the output directory (same
//! file system); only when all of them are written does each replace its
//! target by rename, and owned files the new set no longer has are removed.
//! A failure before that point removes the staging directory and leaves the
//! output directory as it was. (Files are not fsync'ed: the guarantee is
//! about failed runs, not power loss, as with git and cargo.)

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use crate::generate::{DATA_DIR, FileInfo, Generated, Hashing, MANIFEST, TML_DIR};

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

/// Writes a generation into `out` (see [`write()`]).
pub fn write_generated(out: &Path, generated: &Generated<'_>) -> Result<WriteSummary, OutputError> {
    write(
        out,
        &generated.files(),
        &|source, w| generated.write(source, w),
        |infos| generated.manifest(infos),
    )
}

/// Produces the content of a file from its source into a writer, returning
/// its data rows when it is a table.
pub type Render<'r, S> = dyn Fn(S, &mut dyn Write) -> io::Result<Option<usize>> + Sync + 'r;

/// Writes every file of `files` into `out` (created if missing), each
/// produced by `render` and hashed as it streams into its staged file,
/// then the manifest `manifest` makes from what was written; owned files
/// are replaced, and owned files no longer produced are removed.
pub fn write<S: Copy + Send + Sync>(
    out: &Path,
    files: &BTreeMap<String, S>,
    render: &Render<'_, S>,
    manifest: impl FnOnce(&BTreeMap<String, FileInfo>) -> Vec<u8>,
) -> Result<WriteSummary, OutputError> {
    let created_out = !out.exists();
    if out.exists() && !out.is_dir() {
        return Err(OutputError {
            path: out.to_path_buf(),
            source: io::Error::other("it is a file; --out names the directory to write into"),
        });
    }
    fs::create_dir_all(out).map_err(at(out))?;
    let before = owned_files(out)?;

    let staging = out.join(format!(".ts-principals-staging-{}", std::process::id()));
    if staging.exists() {
        // Left by a run of ours that was killed; it holds nothing of value.
        fs::remove_dir_all(&staging).map_err(at(&staging))?;
    }
    let staged = stage(&staging, files, render).and_then(|infos| {
        let bytes = manifest(&infos);
        write_staged(&staging.join(MANIFEST), &bytes)?;
        Ok(infos)
    });
    let infos = match staged {
        Ok(infos) => infos,
        Err(error) => {
            let _ = fs::remove_dir_all(&staging);
            if created_out {
                let _ = fs::remove_dir(out);
            }
            return Err(error);
        }
    };

    let old = fs::read(out.join(MANIFEST))
        .map(|b| manifest_hashes(&b))
        .unwrap_or_default();
    let mut summary = WriteSummary::default();
    for relative in files.keys().map(String::as_str).chain([MANIFEST]) {
        let target = out.join(relative);
        let bucket = if !before.contains(relative) {
            &mut summary.added
        } else {
            let same = match (old.get(relative), infos.get(relative)) {
                (Some(old), Some(new)) => *old == new.sha256,
                // The manifest is not listed in itself; it is small.
                _ => fs::read(&target).ok() == fs::read(staging.join(relative)).ok(),
            };
            if same {
                &mut summary.unchanged
            } else {
                &mut summary.changed
            }
        };
        bucket.push(relative.to_owned());
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(at(parent))?;
        }
        fs::rename(staging.join(relative), &target).map_err(at(&target))?;
    }
    for stale in before
        .iter()
        .filter(|f| !files.contains_key(*f) && *f != MANIFEST)
    {
        let path = out.join(stale);
        fs::remove_file(&path).map_err(at(&path))?;
        summary.removed.push(stale.clone());
    }
    fs::remove_dir_all(&staging).map_err(at(&staging))?;
    Ok(summary)
}

/// Produces every file into the staging directory, several at once.
fn stage<S: Copy + Send + Sync>(
    staging: &Path,
    files: &BTreeMap<String, S>,
    render: &Render<'_, S>,
) -> Result<BTreeMap<String, FileInfo>, OutputError> {
    for relative in files.keys() {
        if let Some(parent) = staging.join(relative).parent() {
            fs::create_dir_all(parent).map_err(at(parent))?;
        }
    }
    let results = crate::parallel::map(files, |(relative, &source)| {
        let path = staging.join(relative);
        let file = fs::File::create(&path).map_err(at(&path))?;
        let written = std::thread::scope(|inner| {
            let mut out = Hashing::new(Background::new(inner, file));
            let rows = render(source, &mut out)?;
            let (background, info) = out.finish(rows);
            background.close()?;
            Ok(info)
        });
        Ok::<_, OutputError>((relative.clone(), written.map_err(at(&path))?))
    });
    results.into_iter().collect()
}

/// A writer that hands full buffers to a thread of its own for the actual
/// write, so producing (and hashing) the next bytes overlaps with the
/// kernel copying the previous ones. Buffers are recycled.
struct Background<'scope> {
    buffer: Vec<u8>,
    full: Option<mpsc::SyncSender<Vec<u8>>>,
    empty: mpsc::Receiver<Vec<u8>>,
    done: std::thread::ScopedJoinHandle<'scope, io::Result<()>>,
}

const BUFFER: usize = 1 << 20;

impl<'scope> Background<'scope> {
    fn new<'env>(scope: &'scope std::thread::Scope<'scope, 'env>, mut file: fs::File) -> Self {
        let (full_tx, full_rx) = mpsc::sync_channel::<Vec<u8>>(2);
        let (empty_tx, empty_rx) = mpsc::channel::<Vec<u8>>();
        let done = scope.spawn(move || {
            for mut buffer in full_rx {
                file.write_all(&buffer)?;
                buffer.clear();
                let _ = empty_tx.send(buffer);
            }
            Ok(())
        });
        Background {
            buffer: Vec::with_capacity(BUFFER),
            full: Some(full_tx),
            empty: empty_rx,
            done,
        }
    }

    fn hand_over(&mut self) -> io::Result<()> {
        let next = self
            .empty
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(BUFFER));
        let buffer = std::mem::replace(&mut self.buffer, next);
        let sent = self.full.as_ref().map(|tx| tx.send(buffer));
        match sent {
            Some(Ok(())) => Ok(()),
            // The writer thread stopped: its error is reported by `close`.
            _ => Err(io::Error::other("the file writer stopped")),
        }
    }

    /// Writes what is left and waits for the writer thread; its error, if
    /// any, is the one reported.
    fn close(mut self) -> io::Result<()> {
        let flushed = if self.buffer.is_empty() {
            Ok(())
        } else {
            self.hand_over()
        };
        self.full = None;
        let written = crate::parallel::join(self.done);
        written.and(flushed)
    }
}

impl Write for Background<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(buf);
        if self.buffer.len() >= BUFFER {
            self.hand_over()?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn write_staged(path: &Path, bytes: &[u8]) -> Result<(), OutputError> {
    fs::write(path, bytes).map_err(at(path))
}

/// SHA-256 of each file as a manifest records it, to tell changed files
/// from unchanged ones without reading or hashing them again. (A file
/// edited by hand since the last run shows as changed, which it is.)
fn manifest_hashes(bytes: &[u8]) -> BTreeMap<String, String> {
    #[derive(serde::Deserialize)]
    struct Entry {
        sha256: String,
    }
    #[derive(serde::Deserialize)]
    struct Manifest {
        #[serde(default)]
        files: BTreeMap<String, Entry>,
    }
    serde_json::from_slice::<Manifest>(bytes)
        .map(|m| {
            m.files
                .into_iter()
                .map(|(path, e)| (path, e.sha256))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(files: &[(&str, &'static str)]) -> BTreeMap<String, &'static str> {
        files.iter().map(|(p, c)| (p.to_string(), *c)).collect()
    }

    fn copy(content: &str, out: &mut dyn Write) -> io::Result<Option<usize>> {
        out.write_all(content.as_bytes()).map(|()| None)
    }

    /// A manifest listing the hashes, as generate's does.
    fn manifest(infos: &BTreeMap<String, FileInfo>) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({ "files": infos })).unwrap()
    }

    fn write(
        out: &Path,
        files: &BTreeMap<String, &'static str>,
    ) -> Result<WriteSummary, OutputError> {
        super::write(out, files, &copy, manifest)
    }

    #[test]
    fn writes_replaces_and_removes_only_owned_files() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let first = write(
            &out,
            &files(&[("data/a.csv", "1\n"), ("tml/A.table.tml", "a\n")]),
        )
        .unwrap();
        assert_eq!(first.added.len(), 3, "two files and the manifest");
        fs::write(out.join("README.md"), "mine").unwrap();
        fs::write(out.join("data/notes.txt"), "mine too").unwrap();

        let second = write(
            &out,
            &files(&[("data/a.csv", "2\n"), ("data/b.csv", "b\n")]),
        )
        .unwrap();
        assert_eq!(second.added, ["data/b.csv"]);
        assert_eq!(second.changed, ["data/a.csv", "manifest.json"]);
        assert_eq!(second.removed, ["tml/A.table.tml"]);
        let third = write(
            &out,
            &files(&[("data/a.csv", "2\n"), ("data/b.csv", "b\n")]),
        )
        .unwrap();
        assert_eq!(
            third.unchanged,
            ["data/a.csv", "data/b.csv", "manifest.json"]
        );
        assert_eq!(fs::read_to_string(out.join("data/a.csv")).unwrap(), "2\n");
        assert!(out.join("README.md").exists() && out.join("data/notes.txt").exists());
        let leftovers: Vec<_> = fs::read_dir(&out)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(".ts-principals")
            })
            .collect();
        assert!(leftovers.is_empty(), "staging directory removed");
    }

    #[test]
    fn a_failure_while_staging_leaves_the_directory_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        write(&out, &files(&[("data/a.csv", "old\n")])).unwrap();
        // A file where a directory must go makes staging fail half-way.
        let broken = files(&[
            ("data/a.csv", "new\n"),
            ("data/b", "x"),
            ("data/b/c.csv", "y"),
        ]);
        assert!(write(&out, &broken).is_err());
        assert_eq!(fs::read_to_string(out.join("data/a.csv")).unwrap(), "old\n");
        assert_eq!(
            owned_files(&out).unwrap().into_iter().collect::<Vec<_>>(),
            ["data/a.csv", "manifest.json"]
        );
    }

    #[test]
    fn a_failing_producer_leaves_the_directory_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        write(&out, &files(&[("data/a.csv", "old\n")])).unwrap();
        let failing = |content: &str, out: &mut dyn Write| -> io::Result<Option<usize>> {
            if content == "boom" {
                return Err(io::Error::other("disk full"));
            }
            copy(content, out)
        };
        let result = super::write(
            &out,
            &files(&[("data/a.csv", "new\n"), ("data/b.csv", "boom")]),
            &failing,
            manifest,
        );
        let err = result.unwrap_err().to_string();
        assert!(err.contains("b.csv") && err.contains("disk full"), "{err}");
        assert_eq!(fs::read_to_string(out.join("data/a.csv")).unwrap(), "old\n");
    }
}
