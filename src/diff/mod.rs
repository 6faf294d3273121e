//! Comparing what `generate` would write with an output directory, for
//! reviewers and for CI (`diff --check`).
//!
//! Files are compared as they are rendered, streaming against the files on
//! disk, so memory stays that of `generate` however large the tables;
//! only the files that differ are rendered again, one at a time, to show
//! how. Only our files are compared: those the set writes and those the
//! previous manifest lists (see [`crate::output`]). Other files beside them
//! are "not ours", left out of the diff and counted in `--stat`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, BufRead, Write};
use std::path::Path;
use std::time::Duration;

use anstyle::{AnsiColor, Style};

use lines::{Unified, Window};

mod lines;

use crate::output::{
    Compared, FileSet, Hashing, MANIFEST, OnDisk, OutputDir, OutputError, at,
    manifest_without_stamp,
};

/// How one file differs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Change {
    /// Generate would create it.
    Added,
    /// Generate would remove it.
    Removed,
    /// Generate would change it.
    Modified,
}

/// Every differing file, by relative path, in path order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// (path, change).
    pub files: Vec<(String, Change)>,
    /// Files beside ours that ts-principals does not own and leaves alone.
    pub foreign: Vec<String>,
    /// The new manifest, without its stamp.
    manifest: Vec<u8>,
}

impl Changes {
    /// True when nothing differs.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

/// Compares `set` with the files of ours in `dir` (the manifest without its
/// `generated_at` stamp).
pub fn compare<F: FileSet>(dir: &OutputDir, set: &F) -> Result<Changes, OutputError> {
    let out = dir.path();
    let owned = dir.owned::<F>()?;
    let files = set.files();
    // What would stop `generate` stops the diff too (a directory or a pipe
    // where a file of ours goes), rather than being shown as a new file.
    for relative in files.keys().map(String::as_str).chain([MANIFEST]) {
        crate::output::check_target(out, relative)?;
    }
    let compared = crate::parallel::map(&files, |(relative, &source)| {
        let target = out.join(relative);
        let mut writer = Hashing::new(Compared::new(&target, None).map_err(at(&target))?);
        let rows = set.write(source, &mut writer).map_err(at(&target))?;
        let (compared, info) = writer.finish(rows);
        let on_disk = compared.finish().map_err(at(&target))?;
        Ok::<_, OutputError>((relative.clone(), info, on_disk))
    });
    let mut infos = BTreeMap::new();
    let mut changes = Vec::new();
    for result in compared {
        let (relative, info, on_disk) = result?;
        infos.insert(relative.clone(), info);
        match on_disk {
            OnDisk::Absent => changes.push((relative, Change::Added)),
            OnDisk::Differs(_) => changes.push((relative, Change::Modified)),
            OnDisk::Same => {}
        }
    }
    let strip = manifest_without_stamp;
    let manifest = strip(&set.manifest(&infos));
    let manifest_path = out.join(MANIFEST);
    match std::fs::read(&manifest_path) {
        Ok(old) if strip(&old) == manifest => {}
        Ok(_) => changes.push((MANIFEST.to_owned(), Change::Modified)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            changes.push((MANIFEST.to_owned(), Change::Added));
        }
        Err(e) => return Err(at(&manifest_path)(e)),
    }
    for relative in owned.files.keys() {
        let is_file = std::fs::symlink_metadata(out.join(relative)).is_ok_and(|m| m.is_file());
        if is_file && !files.contains_key(relative) {
            changes.push((relative.clone(), Change::Removed));
        }
    }
    changes.sort();
    let ours: BTreeSet<&str> = files
        .keys()
        .chain(owned.files.keys())
        .map(String::as_str)
        .collect();
    Ok(Changes {
        files: changes,
        foreign: foreign(out, &ours)?,
        manifest,
    })
}

/// Regular, visible files in the directories of `ours` that are not ours.
/// Names that are not UTF-8 are skipped with a warning.
fn foreign(out: &Path, ours: &BTreeSet<&str>) -> Result<Vec<String>, OutputError> {
    let dirs: BTreeSet<&str> = ours
        .iter()
        .map(|p| p.rsplit_once('/').map_or("", |(dir, _)| dir))
        .collect();
    let mut found = Vec::new();
    for dir in dirs {
        let path = out.join(dir);
        let entries = match std::fs::read_dir(&path) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(at(&path)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(at(&path))?;
            let Ok(name) = entry.file_name().into_string() else {
                tracing::warn!(
                    "{}: a file name that is not UTF-8 is not ours and is skipped",
                    entry.path().display()
                );
                continue;
            };
            let relative = if dir.is_empty() {
                name.clone()
            } else {
                format!("{dir}/{name}")
            };
            let is_file = entry.file_type().is_ok_and(|t| t.is_file());
            if is_file && !name.starts_with('.') && !ours.contains(relative.as_str()) {
                found.push(relative);
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Runs `compare` on the old and new content of a changed file, both
/// streamed: the old read from disk as it is (so the diff applies to it),
/// the new rendered again on a thread into a pipe.
fn with_contents<F: FileSet, T>(
    changes: &Changes,
    set: &F,
    sources: &BTreeMap<String, F::Source>,
    out: &Path,
    path: &str,
    change: Change,
    compare: impl FnOnce(&mut dyn BufRead, &mut dyn BufRead) -> io::Result<T>,
) -> Result<T, OutputError> {
    let file = out.join(path);
    let mut old: Box<dyn BufRead> = match change {
        Change::Added => Box::new(io::empty()),
        Change::Removed | Change::Modified => Box::new(io::BufReader::with_capacity(
            BUFFER,
            std::fs::File::open(&file).map_err(at(&file))?,
        )),
    };
    let source = match (change, sources.get(path)) {
        (Change::Removed, _) => {
            return compare(&mut old, &mut io::empty()).map_err(at(&file));
        }
        (_, Some(&source)) => source,
        (_, None) => {
            let mut new = changes.manifest.as_slice();
            return compare(&mut old, &mut new).map_err(at(&file));
        }
    };
    let (reader, writer) = io::pipe().map_err(at(&file))?;
    std::thread::scope(|scope| {
        let rendering = scope.spawn(move || {
            let mut writer = io::BufWriter::with_capacity(BUFFER, writer);
            set.write(source, &mut writer)?;
            writer.flush()
        });
        // The reader goes before the join: a renderer blocked on a full
        // pipe then fails (broken pipe) instead of waiting forever.
        let compared = compare(&mut old, &mut io::BufReader::with_capacity(BUFFER, reader));
        let rendered = rendering
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("rendering the file panicked")));
        match (compared, rendered) {
            (Err(e), _) => Err(e),
            // Stopped early (the reader of the diff went away).
            (Ok(_), Err(e)) if e.kind() != io::ErrorKind::BrokenPipe => Err(e),
            (Ok(result), _) => Ok(result),
        }
    })
    .map_err(at(&file))
}

/// Buffer size for reading and rendering the files compared.
const BUFFER: usize = 1 << 16;

/// Writes what went to stdout; a closed pipe (`| head`) ends the output
/// quietly.
fn emit(w: &mut dyn Write, text: &[u8]) -> Result<bool, OutputError> {
    match w.write_all(text) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(at(Path::new("standard output"))(e)),
    }
}

/// Styles for the diff; plain when colour is off.
#[derive(Clone, Copy, Debug, Default)]
pub struct Palette {
    header: Style,
    hunk: Style,
    added: Style,
    removed: Style,
}

impl Palette {
    /// The palette: coloured, or all plain.
    pub fn new(color: bool) -> Self {
        if !color {
            return Self::default();
        }
        Palette {
            header: Style::new().bold(),
            hunk: AnsiColor::Cyan.on_default(),
            added: AnsiColor::Green.on_default(),
            removed: AnsiColor::Red.on_default(),
        }
    }
}

/// Bounds the search for the smallest diff of one file; beyond it the
/// diff is still correct, only less minimal.
const DIFF_TIMEOUT: Duration = Duration::from_secs(10);

/// Bytes of one hunk held in memory before the rest goes to a temporary
/// file (a hunk is written whole once it closes).
const SPILL_AT: usize = 8 << 20;

/// Writes unified diffs of every change into `w`, `a/` being the
/// directory and `b/` the new rendering. Files are streamed, so memory
/// stays a few windows of lines whatever their size.
pub fn unified<F: FileSet>(
    changes: &Changes,
    set: &F,
    out: &Path,
    palette: Palette,
    w: &mut dyn Write,
) -> Result<(), OutputError> {
    let sources = set.files();
    for (path, change) in &changes.files {
        let written = with_contents(changes, set, &sources, out, path, *change, |old, new| {
            unified_file(path, *change, old, new, palette, w)
        });
        match written {
            Ok(()) => {}
            Err(OutputError::Io { source, .. }) if source.kind() == io::ErrorKind::BrokenPipe => {
                break;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Writes the unified diff of one file.
fn unified_file(
    path: &str,
    change: Change,
    old: &mut dyn BufRead,
    new: &mut dyn BufRead,
    palette: Palette,
    w: &mut dyn Write,
) -> io::Result<()> {
    if lines::looks_binary(old)? || lines::looks_binary(new)? {
        let text = format!("Binary files a/{path} and b/{path} differ\n");
        return lines::paint(w, palette.header, text.as_bytes());
    }
    let old_name = match change {
        Change::Added => "/dev/null".to_owned(),
        _ => format!("a/{path}"),
    };
    let new_name = match change {
        Change::Removed => "/dev/null".to_owned(),
        _ => format!("b/{path}"),
    };
    let header = format!("--- {old_name}\n+++ {new_name}\n");
    lines::paint(w, palette.header, header.as_bytes())?;
    let mut hunks = Unified::new(w, palette, SPILL_AT);
    let compared = lines::diff(old, new, Window::DEFAULT, DIFF_TIMEOUT, |tag, line| {
        hunks.line(tag, line).map(|()| true)
    });
    match compared {
        Ok(()) => hunks.finish(),
        Err(e) if lines::is_line_too_long(&e) => {
            let note = format!("ts-principals: the rest of {path} is not shown: {e}\n");
            lines::paint(w, palette.header, note.as_bytes())
        }
        Err(e) => Err(e),
    }
}

/// Lines added and removed between two contents (none for binary files).
fn line_counts(old: &mut dyn BufRead, new: &mut dyn BufRead) -> io::Result<(usize, usize)> {
    if lines::looks_binary(old)? || lines::looks_binary(new)? {
        return Ok((0, 0));
    }
    match lines::counts(old, new, Window::DEFAULT, DIFF_TIMEOUT) {
        Err(e) if lines::is_line_too_long(&e) => Ok((0, 0)),
        counted => counted,
    }
}

/// Writes a `git diff --stat`-like summary into `w`, and a line counting
/// the files beside ours that are not ours.
pub fn stat<F: FileSet>(
    changes: &Changes,
    set: &F,
    out: &Path,
    palette: Palette,
    w: &mut dyn Write,
) -> Result<(), OutputError> {
    let sources = set.files();
    let mut rows = Vec::new();
    let (mut insertions, mut deletions) = (0usize, 0usize);
    for (path, change) in &changes.files {
        let (added, removed) =
            with_contents(changes, set, &sources, out, path, *change, line_counts)?;
        insertions += added;
        deletions += removed;
        let note = match change {
            Change::Added => " (new)",
            Change::Removed => " (removed)",
            Change::Modified => "",
        };
        rows.push((format!("{path}{note}"), added, removed));
    }
    let width = rows
        .iter()
        .map(|(p, _, _)| p.chars().count())
        .max()
        .unwrap_or(0);
    // Writing into memory cannot fail.
    let mut text = Vec::new();
    for (path, added, removed) in &rows {
        let _ = write!(text, " {path:<width$} | {:>6} ", added + removed);
        let _ = lines::paint(
            &mut text,
            palette.added,
            "+".repeat((*added).min(30)).as_bytes(),
        );
        let _ = lines::paint(
            &mut text,
            palette.removed,
            "-".repeat((*removed).min(30)).as_bytes(),
        );
        text.push(b'\n');
    }
    let _ = writeln!(
        text,
        " {} file{} changed, {insertions} insertion{}(+), {deletions} deletion{}(-)",
        rows.len(),
        plural(rows.len()),
        plural(insertions),
        plural(deletions),
    );
    if !changes.foreign.is_empty() {
        let _ = writeln!(
            text,
            " {} file{} beside ours {} not ours and left alone: {}",
            changes.foreign.len(),
            plural(changes.foreign.len()),
            if changes.foreign.len() == 1 {
                "is"
            } else {
                "are"
            },
            changes.foreign.join(", ")
        );
    }
    emit(w, &text).map(|_| ())
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::atomic::Wait;
    use crate::output::testing::Files;

    fn changes(dir: &Path, files: &Files) -> Changes {
        compare(
            &crate::output::open_to_read(dir, Wait::Block).unwrap(),
            files,
        )
        .unwrap()
    }

    fn text(dir: &Path, files: &Files, stat_only: bool) -> String {
        let changes = changes(dir, files);
        let mut out = Vec::new();
        if stat_only {
            stat(&changes, files, dir, Palette::new(false), &mut out).unwrap();
        } else {
            unified(&changes, files, dir, Palette::new(false), &mut out).unwrap();
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn finds_added_removed_and_modified_files() {
        let dir = tempfile::tempdir().unwrap();
        Files::new(&[("data/a.csv", "x\ny\n"), ("data/gone.csv", "1\n")]).write_to(dir.path());
        let next = Files::new(&[("data/a.csv", "x\nz\n"), ("tml/N.table.tml", "n\n")]);
        let found = changes(dir.path(), &next);
        let kinds: Vec<_> = found.files.iter().map(|(p, c)| (p.as_str(), *c)).collect();
        assert_eq!(
            kinds,
            [
                ("data/a.csv", Change::Modified),
                ("data/gone.csv", Change::Removed),
                ("manifest.json", Change::Modified),
                ("tml/N.table.tml", Change::Added),
            ]
        );
        let text = text(dir.path(), &next, false);
        assert!(
            text.contains("--- a/data/a.csv\n+++ b/data/a.csv\n@@ -1,2 +1,2 @@\n x\n-y\n+z\n"),
            "{text}"
        );
        assert!(
            text.contains("--- a/data/gone.csv\n+++ /dev/null\n"),
            "{text}"
        );
        assert!(
            text.contains("--- /dev/null\n+++ b/tml/N.table.tml\n"),
            "{text}"
        );
    }

    #[test]
    fn identical_output_has_no_changes_and_stamps_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let stamped = Files::new(&[("data/a.csv", "x\n")]).stamped("2026-01-01");
        stamped.write_to(dir.path());
        let plain = Files::new(&[("data/a.csv", "x\n")]);
        assert!(changes(dir.path(), &plain).is_empty());
    }

    #[test]
    fn files_that_are_not_ours_are_left_out_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let files = Files::new(&[("data/a.csv", "x\n"), ("tml/A.table.tml", "a\n")]);
        files.write_to(dir.path());
        std::fs::write(
            dir.path().join("tml/Sales.liveboard.tml"),
            "liveboard: {}\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("data/lookup.csv"), "k,v\n").unwrap();
        let next = Files::new(&[("data/a.csv", "y\n")]);
        let found = changes(dir.path(), &next);
        assert!(
            !found
                .files
                .iter()
                .any(|(p, _)| p.contains("lookup") || p.contains("Sales")),
            "{found:?}"
        );
        assert_eq!(
            found.foreign,
            ["data/lookup.csv", "tml/Sales.liveboard.tml"]
        );
        let summary = text(dir.path(), &next, true);
        assert!(summary.contains(" 3 files changed"), "{summary}");
        assert!(
            summary.contains("2 files beside ours are not ours and left alone: data/lookup.csv, tml/Sales.liveboard.tml"),
            "{summary}"
        );
    }

    #[test]
    fn colour_is_only_added_when_asked() {
        let render = |color: bool| {
            let mut out = Vec::new();
            let (mut old, mut new) = (&b""[..], &b"x\n"[..]);
            unified_file(
                "a",
                Change::Added,
                &mut old,
                &mut new,
                Palette::new(color),
                &mut out,
            )
            .unwrap();
            String::from_utf8(out).unwrap()
        };
        assert_eq!(render(false), "--- /dev/null\n+++ b/a\n@@ -0,0 +1 @@\n+x\n");
        assert!(render(true).contains('\u{1b}'));
    }

    #[test]
    fn a_binary_file_is_named_not_shown() {
        let mut out = Vec::new();
        let (mut old, mut new) = (&b"PK\x03\x04\0"[..], &b"x\n"[..]);
        unified_file(
            "data/a.csv",
            Change::Modified,
            &mut old,
            &mut new,
            Palette::new(false),
            &mut out,
        )
        .unwrap();
        assert_eq!(out, b"Binary files a/data/a.csv and b/data/a.csv differ\n");
    }
}
