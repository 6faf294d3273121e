//! Comparing a freshly rendered [`OutputSet`](crate::generate::OutputSet) with an output directory, for
//! reviewers and for CI (`diff --check`).

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use anstyle::{AnsiColor, Style};
use similar::{ChangeTag, TextDiff};

use crate::generate::{MANIFEST, OutputSet, manifest_without_stamp};
use crate::output::{OutputError, owned_files};

/// How one file differs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileChange {
    /// Generate would create it.
    Added {
        /// The new content.
        new: Vec<u8>,
    },
    /// Generate would remove it.
    Removed {
        /// The content on disk.
        old: Vec<u8>,
    },
    /// Generate would change it.
    Modified {
        /// The content on disk.
        old: Vec<u8>,
        /// The new content.
        new: Vec<u8>,
    },
}

/// Every differing file, by relative path, in path order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// (path, change).
    pub files: Vec<(String, FileChange)>,
}

impl Changes {
    /// True when nothing differs.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

/// Compares `set` with the owned files in `out` (a missing directory counts
/// as empty). The manifest is compared without its `generated_at` stamp.
pub fn compare(out: &Path, set: &OutputSet) -> Result<Changes, OutputError> {
    let on_disk = if out.exists() {
        owned_files(out)?
    } else {
        Default::default()
    };
    let read = |relative: &str| {
        let path = out.join(relative);
        std::fs::read(&path).map_err(|source| OutputError { path, source })
    };
    let mut files = Vec::new();
    for (relative, new) in &set.files {
        if !on_disk.contains(relative) {
            files.push((relative.clone(), FileChange::Added { new: new.clone() }));
            continue;
        }
        let old = read(relative)?;
        let (old, new) = if relative == MANIFEST {
            let strip = |b: &[u8]| manifest_without_stamp(b).unwrap_or_else(|| b.to_vec());
            (strip(&old), strip(new))
        } else {
            (old, new.clone())
        };
        if old != new {
            files.push((relative.clone(), FileChange::Modified { old, new }));
        }
    }
    for relative in on_disk.iter().filter(|f| !set.files.contains_key(*f)) {
        files.push((
            relative.clone(),
            FileChange::Removed {
                old: read(relative)?,
            },
        ));
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Changes { files })
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

fn paint(out: &mut String, style: Style, line: &str) {
    let _ = write!(out, "{}{line}{}", style.render(), style.render_reset());
}

/// Bounds the work on huge, thoroughly changed files; beyond it the diff is
/// still correct, only less minimal.
const DIFF_TIMEOUT: Duration = Duration::from_secs(10);

/// Unified diffs of every change, `a/` being the directory and `b/` the
/// new rendering.
pub fn unified(changes: &Changes, palette: Palette) -> String {
    let mut out = String::new();
    for (path, change) in &changes.files {
        let (old, new) = match change {
            FileChange::Added { new } => (&[][..], &new[..]),
            FileChange::Removed { old } => (&old[..], &[][..]),
            FileChange::Modified { old, new } => (&old[..], &new[..]),
        };
        let (Ok(old_text), Ok(new_text)) = (std::str::from_utf8(old), std::str::from_utf8(new))
        else {
            paint(
                &mut out,
                palette.header,
                &format!("Binary files a/{path} and b/{path} differ\n"),
            );
            continue;
        };
        let old_name = if matches!(change, FileChange::Added { .. }) {
            "/dev/null".to_owned()
        } else {
            format!("a/{path}")
        };
        let new_name = if matches!(change, FileChange::Removed { .. }) {
            "/dev/null".to_owned()
        } else {
            format!("b/{path}")
        };
        paint(
            &mut out,
            palette.header,
            &format!("--- {old_name}\n+++ {new_name}\n"),
        );
        let diff = TextDiff::configure()
            .timeout(DIFF_TIMEOUT)
            .diff_lines(old_text, new_text);
        for hunk in diff.unified_diff().context_radius(3).iter_hunks() {
            paint(&mut out, palette.hunk, &format!("{}\n", hunk.header()));
            for change in hunk.iter_changes() {
                let (sign, style) = match change.tag() {
                    ChangeTag::Delete => ('-', palette.removed),
                    ChangeTag::Insert => ('+', palette.added),
                    ChangeTag::Equal => (' ', Style::new()),
                };
                let value = change.value();
                let mut line = format!("{sign}{value}");
                if !value.ends_with('\n') {
                    line.push_str("\n\\ No newline at end of file\n");
                }
                paint(&mut out, style, &line);
            }
        }
    }
    out
}

/// A `git diff --stat`-like summary.
pub fn stat(changes: &Changes, palette: Palette) -> String {
    let mut rows = Vec::new();
    let (mut insertions, mut deletions) = (0usize, 0usize);
    for (path, change) in &changes.files {
        let (old, new) = match change {
            FileChange::Added { new } => (&[][..], &new[..]),
            FileChange::Removed { old } => (&old[..], &[][..]),
            FileChange::Modified { old, new } => (&old[..], &new[..]),
        };
        let (added, removed) = match (std::str::from_utf8(old), std::str::from_utf8(new)) {
            (Ok(o), Ok(n)) => {
                let diff = TextDiff::configure().timeout(DIFF_TIMEOUT).diff_lines(o, n);
                diff.iter_all_changes()
                    .fold((0, 0), |(a, r), c| match c.tag() {
                        ChangeTag::Insert => (a + 1, r),
                        ChangeTag::Delete => (a, r + 1),
                        ChangeTag::Equal => (a, r),
                    })
            }
            _ => (0, 0),
        };
        insertions += added;
        deletions += removed;
        let note = match change {
            FileChange::Added { .. } => " (new)",
            FileChange::Removed { .. } => " (removed)",
            FileChange::Modified { .. } => "",
        };
        rows.push((format!("{path}{note}"), added, removed));
    }
    let width = rows
        .iter()
        .map(|(p, _, _)| p.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (path, added, removed) in &rows {
        let _ = write!(out, " {path:<width$} | {:>6} ", added + removed);
        paint(&mut out, palette.added, &"+".repeat((*added).min(30)));
        paint(&mut out, palette.removed, &"-".repeat((*removed).min(30)));
        out.push('\n');
    }
    let _ = writeln!(
        out,
        " {} file{} changed, {insertions} insertion{}(+), {deletions} deletion{}(-)",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" },
        if insertions == 1 { "" } else { "s" },
        if deletions == 1 { "" } else { "s" },
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(files: &[(&str, &str)]) -> OutputSet {
        OutputSet {
            files: files
                .iter()
                .map(|(p, c)| (p.to_string(), c.as_bytes().to_vec()))
                .collect(),
        }
    }

    /// Writes files and a fixed manifest as `generate` would.
    fn write(dir: &Path, files: &[(&str, &'static str)], manifest: &'static str) {
        let files: std::collections::BTreeMap<String, &str> =
            files.iter().map(|(p, c)| (p.to_string(), *c)).collect();
        let copy =
            |c: &str, out: &mut dyn std::io::Write| out.write_all(c.as_bytes()).map(|()| None);
        crate::output::write(dir, &files, &copy, |_| manifest.as_bytes().to_vec()).unwrap();
    }

    #[test]
    fn finds_added_removed_and_modified_files() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            &[("data/a.csv", "x\ny\n"), ("data/gone.csv", "1\n")],
            "{}\n",
        );
        let changes = compare(
            dir.path(),
            &set(&[
                ("data/a.csv", "x\nz\n"),
                ("tml/N.table.tml", "n\n"),
                ("manifest.json", "{}\n"),
            ]),
        )
        .unwrap();
        let kinds: Vec<_> = changes
            .files
            .iter()
            .map(|(p, c)| (p.as_str(), std::mem::discriminant(c)))
            .collect();
        assert_eq!(kinds.len(), 3);
        let text = unified(&changes, Palette::new(false));
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
        let summary = stat(&changes, Palette::new(false));
        assert!(
            summary.ends_with(" 3 files changed, 2 insertions(+), 2 deletions(-)\n"),
            "{summary}"
        );
    }

    #[test]
    fn identical_output_has_no_changes_and_stamps_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            &[("data/a.csv", "x\n")],
            "{\"a\": 1, \"generated_at\": \"2026-01-01\"}\n",
        );
        let plain = set(&[("data/a.csv", "x\n"), ("manifest.json", "{\"a\": 1}\n")]);
        assert!(compare(dir.path(), &plain).unwrap().is_empty());
    }

    #[test]
    fn colour_is_only_added_when_asked() {
        let changes = Changes {
            files: vec![(
                "a".into(),
                FileChange::Added {
                    new: b"x\n".to_vec(),
                },
            )],
        };
        assert!(!unified(&changes, Palette::new(false)).contains('\u{1b}'));
        assert!(unified(&changes, Palette::new(true)).contains('\u{1b}'));
    }
}
