//! `load`: the data of an output directory into the database ThoughtSpot
//! queries.
//!
//! The tables are exactly those the manifest's `database` section records
//! (names in the identifier case the TML was rendered with, types, primary
//! keys), so the tables `load` creates are the ones the TML beside the data
//! describes. [`Source::open`] reads and checks that; the sinks
//! ([`postgres`], [`falcon`], [`sql`]) take it from there.

pub mod falcon;
pub mod postgres;
mod records;
pub mod sql;

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::atomic::Wait;
use crate::generate::{DATA_DIR, DatabaseLayout};
use crate::output::{self, MANIFEST, OutputDir, OutputError};
use crate::schema::TableDef;
pub use records::RecordCounter;

/// Bytes read from a data file at a time.
pub const CHUNK: usize = 1 << 20;

/// Why the data of an output directory cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The output directory could not be opened (see [`OutputError`]).
    #[error(transparent)]
    Output(#[from] OutputError),
    /// `--from` names a file.
    #[error(
        "--from {path} is not a directory; it names the output directory `ts-principals \
         generate --out` wrote"
    )]
    NotADirectory {
        /// The path.
        path: PathBuf,
    },
    /// No manifest: not an output directory of ours.
    #[error(
        "{dir} holds no {MANIFEST}; load reads what `ts-principals generate --out {dir}` wrote, \
         so run generate first"
    )]
    NoManifest {
        /// The directory.
        dir: String,
    },
    /// The manifest cannot be read or lacks the database layout.
    #[error("{path}: {problem}")]
    Manifest {
        /// The manifest.
        path: PathBuf,
        /// What is wrong and what to do.
        problem: String,
    },
    /// A data file is missing or unreadable.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A data file is not what `generate` wrote.
    #[error(
        "{path} {problem}, so it was changed after `ts-principals generate` wrote it; nothing \
         was loaded: run generate again rather than editing the data"
    )]
    Changed {
        /// The file.
        path: PathBuf,
        /// How it differs.
        problem: String,
    },
    /// A data file's header is not the columns the manifest records.
    #[error(
        "{path}, line 1: the header is {found:?}, but the manifest records the columns \
         {expected:?}; regenerate the output with `ts-principals generate` rather than \
         editing the CSV files"
    )]
    Header {
        /// The file.
        path: PathBuf,
        /// The header read.
        found: String,
        /// The columns expected.
        expected: String,
    },
}

/// One data file to load.
#[derive(Clone, Debug)]
pub struct SourceTable {
    /// The table, as the manifest describes it.
    pub def: TableDef,
    /// The CSV file.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// Data rows, as the manifest counts them.
    pub rows: Option<u64>,
    /// SHA-256 of the file, as the manifest records it.
    pub sha256: Option<String>,
}

impl SourceTable {
    /// Opens the file and checks its header line; the reader is left at the
    /// start of the header, so COPY … HEADER can skip it.
    pub fn open(&self) -> Result<BufReader<File>, SourceError> {
        let at = |source| SourceError::Io {
            path: self.path.clone(),
            source,
        };
        let mut reader = BufReader::with_capacity(CHUNK, File::open(&self.path).map_err(at)?);
        let header = first_line(&mut reader).map_err(at)?;
        let expected = (self.def.columns.iter())
            .map(|c| c.csv.as_str())
            .collect::<Vec<_>>()
            .join(",");
        if header != expected {
            return Err(SourceError::Header {
                path: self.path.clone(),
                found: header.chars().take(120).collect(),
                expected,
            });
        }
        Ok(reader)
    }
}

impl SourceTable {
    /// Checks what was read of the file against the manifest: the SHA-256
    /// and the data rows. An error names the file and what differs.
    pub fn check(&self, sha256: &str, rows: u64) -> Result<(), SourceError> {
        let changed = |problem: String| SourceError::Changed {
            path: self.path.clone(),
            problem,
        };
        if let Some(expected) = self.rows
            && expected != rows
        {
            return Err(changed(format!(
                "holds {rows} rows where the manifest records {expected}"
            )));
        }
        if let Some(expected) = &self.sha256
            && !expected.eq_ignore_ascii_case(sha256)
        {
            return Err(changed(
                "differs from what the manifest records (SHA-256)".into(),
            ));
        }
        Ok(())
    }

    /// Reads the whole file and checks it against the manifest, for sinks
    /// that do not read it themselves (`--emit-sql`).
    pub fn verify(&self) -> Result<(), SourceError> {
        self.open()?;
        let (sha, rows) = digest(&self.path).map_err(|source| SourceError::Io {
            path: self.path.clone(),
            source,
        })?;
        self.check(&sha, rows)
    }
}

/// SHA-256 of a file read in pieces.
#[derive(Default)]
pub struct FileHash(sha2::Sha256);

impl FileHash {
    /// Adds the next piece.
    pub fn update(&mut self, bytes: &[u8]) {
        use sha2::Digest;
        self.0.update(bytes);
    }

    /// The hash, lower-case hex.
    pub fn finalize_hex(self) -> String {
        use sha2::Digest;
        hex::encode(self.0.finalize())
    }
}

/// The SHA-256 (lower-case hex) and the CSV data rows of the file at
/// `path`, read in pieces: what the manifest records of a data file.
pub fn digest(path: &Path) -> io::Result<(String, u64)> {
    use std::io::Read;
    let mut file = File::open(path)?;
    let mut hash = FileHash::default();
    let mut counter = RecordCounter::default();
    let mut buffer = vec![0; CHUNK];
    loop {
        let n = match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hash.update(&buffer[..n]);
        counter.feed(&buffer[..n]);
    }
    Ok((hash.finalize_hex(), counter.records_after_header(true)))
}

/// What the file at `path` no longer matches of what a manifest records
/// of it: `"its SHA-256"` or `"its row count"`, or none when it matches
/// everything recorded.
pub fn differs_from_record(
    path: &Path,
    sha256: Option<&str>,
    rows: Option<u64>,
) -> io::Result<Option<&'static str>> {
    let (sha, records) = digest(path)?;
    Ok(if sha256.is_some_and(|expected| expected != sha) {
        Some("its SHA-256")
    } else if rows.is_some_and(|rows| rows != records) {
        Some("its row count")
    } else {
        None
    })
}

/// The first line of a buffered file, without consuming it.
fn first_line(reader: &mut BufReader<File>) -> io::Result<String> {
    let buffer = reader.fill_buf()?;
    let end = buffer
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(buffer.len());
    let line = &buffer[..end];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    Ok(String::from_utf8_lossy(line).into_owned())
}

/// The data of an output directory, checked against its manifest. Holds
/// the directory's lock, so no `generate` changes the files while they are
/// read.
#[derive(Debug)]
pub struct Source {
    /// The output directory.
    pub dir: PathBuf,
    /// Where the TML says the tables are, and their definitions.
    pub layout: DatabaseLayout,
    /// The data files, in manifest order.
    pub tables: Vec<SourceTable>,
    /// The cluster the principals are of.
    pub cluster_id: Option<String>,
    /// The time they describe (`YYYY-MM-DD HH:MM:SS` UTC), which membership
    /// changes are stamped with; none when unknown.
    pub as_of: Option<String>,
    /// The group activity CSV files `generate --group-activity` wrote, as
    /// tables, for targets without views (Falcon).
    pub group_activity_files: Vec<SourceTable>,
    _dir: Option<OutputDir>,
}

#[derive(Deserialize)]
struct Manifest {
    tool: Option<String>,
    #[serde(default)]
    input: ManifestInput,
    database: Option<DatabaseLayout>,
    #[serde(default)]
    files: std::collections::BTreeMap<String, ManifestFile>,
}

#[derive(Default, Deserialize)]
struct ManifestInput {
    #[serde(default)]
    cluster_id: Option<String>,
    #[serde(default)]
    as_of: Option<String>,
}

#[derive(Deserialize)]
struct ManifestFile {
    #[serde(default)]
    rows: Option<u64>,
    #[serde(default)]
    sha256: Option<String>,
}

impl Source {
    /// Opens `out` (waiting for, or with `Wait::NoWait` refusing, a run
    /// writing to it), reads its manifest and finds every data file.
    pub fn open(out: &Path, wait: Wait) -> Result<Source, SourceError> {
        if std::fs::metadata(out).is_ok_and(|m| !m.is_dir()) {
            return Err(SourceError::NotADirectory {
                path: out.to_path_buf(),
            });
        }
        let dir = output::open_to_read(out, wait)?;
        let path = out.join(MANIFEST);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(SourceError::NoManifest {
                    dir: out.display().to_string(),
                });
            }
            Err(source) => return Err(SourceError::Io { path, source }),
        };
        let problem = |problem: String| SourceError::Manifest {
            path: path.clone(),
            problem,
        };
        let manifest: Manifest =
            serde_json::from_slice(&bytes).map_err(|e| problem(format!("cannot be read: {e}")))?;
        if manifest.tool.as_deref() != Some(output::TOOL) {
            return Err(problem(
                "was not written by ts-principals; load reads the output of \
                 `ts-principals generate`"
                    .into(),
            ));
        }
        let layout = manifest.database.ok_or_else(|| {
            problem(
                "records no database layout (it was written by an older ts-principals); run \
                 `ts-principals generate` again with this version"
                    .into(),
            )
        })?;
        let mut tables: Vec<SourceTable> = Vec::new();
        for def in &layout.tables {
            let bad = if def.columns.is_empty() {
                Some("has no columns")
            } else if tables.iter().any(|t| t.def.table == def.table) {
                Some("is listed twice")
            } else {
                None
            };
            if let Some(bad) = bad {
                return Err(problem(format!(
                    "the table {:?} {bad}; the manifest was edited: run `ts-principals \
                     generate` again",
                    def.table
                )));
            }
            let relative = format!("{DATA_DIR}/{}", def.file);
            if def.file.contains(['/', '\\']) || def.file.starts_with('.') {
                return Err(problem(format!(
                    "names the data file {:?}, which is not a file of {DATA_DIR}/",
                    def.file
                )));
            }
            let path = out.join(&relative);
            let meta = std::fs::metadata(&path).map_err(|source| SourceError::Io {
                path: path.clone(),
                source,
            })?;
            tables.push(SourceTable {
                def: def.clone(),
                path,
                bytes: meta.len(),
                rows: manifest.files.get(&relative).and_then(|f| f.rows),
                sha256: manifest.files.get(&relative).and_then(|f| f.sha256.clone()),
            });
        }
        if let Some(as_of) =
            (manifest.input.as_of.as_deref()).filter(|t| !crate::history::is_stamp(t))
        {
            return Err(problem(format!(
                "input.as_of {as_of:?} is not a time YYYY-MM-DD HH:MM:SS (UTC); the manifest \
                 was edited: run `ts-principals generate` again"
            )));
        }
        if let Some(as_of) = &manifest.input.as_of {
            let now = crate::activity::window::utc_text(jiff::Timestamp::now().as_second() + 3600);
            if *as_of > now {
                return Err(problem(format!(
                    "input.as_of {as_of} is in the future; the manifest was edited: run \
                     `ts-principals generate` again"
                )));
            }
        }
        if let Some(view) = (layout.group_activity.iter())
            .find(|v| !tables.iter().any(|t| t.def.table == v.activity))
        {
            return Err(problem(format!(
                "the group activity {:?} reads the table {:?}, which the manifest does not \
                 list; the manifest was edited: run `ts-principals generate` again",
                view.view, view.activity
            )));
        }
        let mut group_activity_files = Vec::new();
        for view in &layout.group_activity {
            let relative = format!("{DATA_DIR}/{}", view.file());
            let Some(recorded) = manifest.files.get(&relative) else {
                continue;
            };
            let path = out.join(&relative);
            let meta = std::fs::metadata(&path).map_err(|source| SourceError::Io {
                path: path.clone(),
                source,
            })?;
            group_activity_files.push(SourceTable {
                def: view.as_table(),
                path,
                bytes: meta.len(),
                rows: recorded.rows,
                sha256: recorded.sha256.clone(),
            });
        }
        Ok(Source {
            dir: out.to_path_buf(),
            layout,
            tables,
            cluster_id: manifest.input.cluster_id,
            as_of: manifest.input.as_of,
            group_activity_files,
            _dir: Some(dir),
        })
    }

    /// A source without a directory lock, for tests.
    #[cfg(test)]
    pub(crate) fn for_tests(dir: &Path, layout: DatabaseLayout, tables: Vec<SourceTable>) -> Self {
        Source {
            dir: dir.to_path_buf(),
            layout,
            tables,
            cluster_id: None,
            as_of: None,
            group_activity_files: Vec::new(),
            _dir: None,
        }
    }
}

/// What a sink reports while it loads; the command line shows it as
/// progress bars or log lines.
pub trait Progress: Sync {
    /// A table starts; `rows` is what the manifest counts, when known.
    fn start(&self, table: &str, rows: Option<u64>);
    /// `rows` more rows of `table` were sent.
    fn rows(&self, table: &str, rows: u64);
    /// A step that is not row by row (swapping the tables in, committing).
    fn step(&self, message: &str);
    /// A table is loaded.
    fn finish(&self, table: &str, rows: u64, elapsed: Duration);
}

/// Progress that goes nowhere.
pub struct Quiet;

impl Progress for Quiet {
    fn start(&self, _: &str, _: Option<u64>) {}
    fn rows(&self, _: &str, _: u64) {}
    fn step(&self, _: &str) {}
    fn finish(&self, _: &str, _: u64, _: Duration) {}
}

/// What was loaded into one table.
#[derive(Clone, Debug, PartialEq)]
pub struct Loaded {
    /// The table as created (e.g. `ts_principals.ts_users`).
    pub table: String,
    /// Rows it holds now.
    pub rows: u64,
    /// Time spent sending its rows.
    pub elapsed: Duration,
}
