//! The main job: principals → CSV data + TML + manifest, as a set of files
//! keyed by their path inside the output directory (`data/users.csv`,
//! `tml/TS_USERS.table.tml`, `manifest.json`).
//!
//! [`generate`] renders and checks the TML (small) and counts the rows; the
//! data tables (large) are rendered when a caller asks, straight into a
//! writer: [`crate::output::write`] streams them into files while hashing
//! them, `diff` renders them into memory with [`Generated::into_output`](crate::generate::Generated::into_output).

use std::collections::BTreeMap;
use std::io::{self, Write};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::config::{ConfigError, ProjectConfig};
use crate::input::InputKind;
use crate::model::{BuildReport, Principals};
use crate::render::{self, RenderError, Templates, TmlSettings};
use crate::schema::Table;
use crate::sink::{DataOptions, csv};

/// Directory of the data files inside the output directory.
pub const DATA_DIR: &str = "data";
/// Directory of the TML files inside the output directory.
pub const TML_DIR: &str = "tml";
/// The manifest's file name.
pub const MANIFEST: &str = "manifest.json";

/// Everything that decides the output besides the principals.
#[derive(Clone, Debug, Default)]
pub struct GenerateOptions {
    /// How data cells are written.
    pub data: DataOptions,
    /// What the TML describes.
    pub tml: TmlSettings,
    /// Where templates come from.
    pub templates: Templates,
    /// A time to record in the manifest (`--stamp`); none keeps output
    /// byte-identical run after run.
    pub stamp: Option<String>,
}

impl GenerateOptions {
    /// Options as a project config says, with templates from `templates`.
    pub fn from_config(config: &ProjectConfig, templates: Templates) -> Result<Self, ConfigError> {
        let timezone =
            jiff::tz::TimeZone::get(&config.data.timezone).map_err(|e| ConfigError::Invalid {
                origin: "settings".into(),
                key: "data.timezone",
                problem: e.to_string(),
            })?;
        Ok(GenerateOptions {
            data: DataOptions {
                excel_safe: config.data.excel_safe,
                timezone,
            },
            tml: TmlSettings::from_config(&config.tml),
            templates,
            stamp: None,
        })
    }
}

/// Every file of one generation, by path, in path order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OutputSet {
    /// Path → content.
    pub files: BTreeMap<String, Vec<u8>>,
}

/// Counts recorded in the manifest.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Orgs.
    pub orgs: usize,
    /// Users.
    pub users: usize,
    /// Groups.
    pub groups: usize,
    /// Direct user → group memberships.
    pub direct_memberships: usize,
    /// Effective memberships (rows of group_memberships, per org).
    pub effective_memberships: usize,
    /// Group → parent edges.
    pub hierarchy_edges: usize,
}

/// What the manifest records of one file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FileInfo {
    /// SHA-256 of the content, lower-case hex.
    pub sha256: String,
    /// Size in bytes.
    pub bytes: u64,
    /// Data rows, for CSV files.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows: Option<usize>,
}

#[derive(Serialize)]
struct Manifest<'a> {
    tool: &'static str,
    version: &'static str,
    input: ManifestInput<'a>,
    counts: &'a Counts,
    repairs: &'a BuildReport,
    files: &'a BTreeMap<String, FileInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    generated_at: Option<&'a str>,
}

#[derive(Serialize)]
struct ManifestInput<'a> {
    kind: InputKind,
    cluster_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    api: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    release_version: Option<&'a str>,
}

/// One generation, ready to be written: the checked TML in memory, the data
/// tables rendered on request.
#[derive(Debug)]
pub struct Generated<'p> {
    principals: &'p Principals,
    report: &'p BuildReport,
    kind: InputKind,
    data: DataOptions,
    stamp: Option<String>,
    tml: BTreeMap<String, Vec<u8>>,
    /// What the files hold.
    pub counts: Counts,
}

/// Where the content of one file comes from.
#[derive(Clone, Copy, Debug)]
pub enum Content<'g> {
    /// A data table, rendered on request.
    Table(Table),
    /// Bytes already rendered.
    Bytes(&'g [u8]),
}

impl<'p> Generated<'p> {
    /// Every file except the manifest, by path, in path order.
    pub fn files(&self) -> BTreeMap<String, Content<'_>> {
        let mut files: BTreeMap<String, Content<'_>> = Table::ALL
            .iter()
            .map(|&t| (format!("{DATA_DIR}/{}.csv", t.name()), Content::Table(t)))
            .collect();
        for (path, bytes) in &self.tml {
            files.insert(path.clone(), Content::Bytes(bytes));
        }
        files
    }

    /// Writes `content` into `out`, returning its data rows (for tables).
    pub fn write(&self, content: Content<'_>, out: &mut dyn Write) -> io::Result<Option<usize>> {
        match content {
            Content::Table(table) => {
                csv::write_table(table, self.principals, &self.data, out).map(Some)
            }
            Content::Bytes(bytes) => out.write_all(bytes).map(|()| None),
        }
    }

    /// The manifest: tool, input, counts, repairs, and what `files` says
    /// of every file (by path).
    pub fn manifest(&self, files: &BTreeMap<String, FileInfo>) -> Vec<u8> {
        let source = &self.principals.source;
        let manifest = Manifest {
            tool: env!("CARGO_PKG_NAME"),
            version: env!("CARGO_PKG_VERSION"),
            input: ManifestInput {
                kind: self.kind,
                cluster_id: &source.cluster_id,
                api: source.api.as_deref(),
                release_version: source.release_version.as_deref(),
            },
            counts: &self.counts,
            repairs: self.report,
            files,
            generated_at: self.stamp.as_deref(),
        };
        let mut json = serde_json::to_vec_pretty(&manifest).unwrap_or_default();
        json.push(b'\n');
        json
    }

    /// Every file rendered into memory, the manifest included (what `diff`
    /// compares with a directory). Tables are rendered in parallel.
    pub fn into_output(self) -> OutputSet {
        let rendered = crate::parallel::map(self.files(), |(path, content)| {
            let mut out = Hashing::new(Vec::new());
            // Writing to memory cannot fail.
            let rows = self.write(content, &mut out).unwrap_or_default();
            let (bytes, info) = out.finish(rows);
            (path, bytes, info)
        });
        let mut files = BTreeMap::new();
        let mut infos = BTreeMap::new();
        for (path, bytes, info) in rendered {
            infos.insert(path.clone(), info);
            files.insert(path, bytes);
        }
        files.insert(MANIFEST.to_owned(), self.manifest(&infos));
        OutputSet { files }
    }
}

/// Renders and checks the TML for `principals` and counts what the data
/// tables will hold; the tables themselves are rendered when written.
pub fn generate<'p>(
    principals: &'p Principals,
    report: &'p BuildReport,
    kind: InputKind,
    options: &GenerateOptions,
) -> Result<Generated<'p>, RenderError> {
    let tml = render::render_all(&options.tml, &options.templates)?
        .into_iter()
        .map(|file| {
            (
                format!("{TML_DIR}/{}", file.file_name),
                file.text.into_bytes(),
            )
        })
        .collect();
    let counts = Counts {
        orgs: principals.orgs.len(),
        users: principals.users.len(),
        groups: principals.groups.len(),
        direct_memberships: principals.direct_membership_count(),
        effective_memberships: csv::row_count(Table::GroupMemberships, principals),
        hierarchy_edges: principals.hierarchy_edge_count(),
    };
    Ok(Generated {
        principals,
        report,
        kind,
        data: options.data.clone(),
        stamp: options.stamp.clone(),
        tml,
        counts,
    })
}

/// A writer that hashes and counts what passes through it.
pub struct Hashing<W> {
    inner: W,
    sha: Sha256,
    bytes: u64,
}

impl<W: Write> Hashing<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            sha: Sha256::new(),
            bytes: 0,
        }
    }

    /// The inner writer, and what the manifest records of what went through.
    pub fn finish(self, rows: Option<usize>) -> (W, FileInfo) {
        let info = FileInfo {
            sha256: hex::encode(self.sha.finalize()),
            bytes: self.bytes,
            rows,
        };
        (self.inner, info)
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sha.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The manifest without its `generated_at` stamp, so two generations of the
/// same principals compare equal whenever they were made.
pub fn manifest_without_stamp(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    value.as_object_mut()?.remove("generated_at");
    let mut out = serde_json::to_vec_pretty(&value).ok()?;
    out.push(b'\n');
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashing_writer_matches_a_plain_hash() {
        let mut w = Hashing::new(Vec::new());
        w.write_all(b"hello ").unwrap();
        w.write_all(b"world").unwrap();
        let (bytes, info) = w.finish(Some(1));
        assert_eq!(bytes, b"hello world");
        assert_eq!(info.sha256, hex::encode(Sha256::digest(b"hello world")));
        assert_eq!(info.bytes, 11);
    }
}
