//! The main job in memory: principals → CSV data + TML + manifest, as a set
//! of files keyed by their path inside the output directory. `generate`
//! writes the set; `diff` compares it with what is on disk.

use std::collections::BTreeMap;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::input::InputKind;
use crate::model::{BuildReport, Principals};
use crate::render::{self, RenderError, Templates, TmlSettings};
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

/// The files of one generation, by path relative to the output directory
/// (`data/users.csv`, `tml/TS_USERS.table.tml`, `manifest.json`), in
/// path order.
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

#[derive(Serialize)]
struct Manifest<'a> {
    tool: &'static str,
    version: &'static str,
    input: ManifestInput<'a>,
    counts: &'a Counts,
    repairs: &'a BuildReport,
    files: BTreeMap<&'a str, FileEntry>,
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

#[derive(Serialize)]
struct FileEntry {
    sha256: String,
    bytes: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    rows: Option<usize>,
}

/// A finished generation.
#[derive(Clone, Debug)]
pub struct Generated {
    /// The files.
    pub output: OutputSet,
    /// What they hold.
    pub counts: Counts,
}

/// Renders the data tables and the TML for `principals`, checks the TML,
/// and adds a manifest listing every file with its SHA-256.
pub fn generate(
    principals: &Principals,
    report: &BuildReport,
    kind: InputKind,
    options: &GenerateOptions,
) -> Result<Generated, RenderError> {
    // TML does not depend on the data, so render it while the tables are written.
    let (tml, tables) = std::thread::scope(|scope| {
        let tml = scope.spawn(|| render::render_all(&options.tml, &options.templates));
        let tables = csv::render_all(principals, &options.data);
        let tml = tml.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (tml, tables)
    });
    let tml = tml?;

    let mut files = BTreeMap::new();
    let mut rows = BTreeMap::new();
    let mut counts = Counts {
        orgs: principals.orgs.len(),
        users: principals.users.len(),
        groups: principals.groups.len(),
        direct_memberships: principals.direct_membership_count(),
        effective_memberships: 0,
        hierarchy_edges: principals.hierarchy_edge_count(),
    };
    for table in tables {
        let path = format!("{DATA_DIR}/{}", table.file_name());
        if table.table == crate::schema::Table::GroupMemberships {
            counts.effective_memberships = table.rows;
        }
        rows.insert(path.clone(), table.rows);
        files.insert(path, table.bytes);
    }
    for file in tml {
        files.insert(format!("{TML_DIR}/{}", file.file_name), file.text.into_bytes());
    }

    let hashes = hash_all(&files);
    let manifest = Manifest {
        tool: env!("CARGO_PKG_NAME"),
        version: env!("CARGO_PKG_VERSION"),
        input: ManifestInput {
            kind,
            cluster_id: &principals.source.cluster_id,
            api: principals.source.api.as_deref(),
            release_version: principals.source.release_version.as_deref(),
        },
        counts: &counts,
        repairs: report,
        files: files
            .iter()
            .zip(hashes)
            .map(|((path, bytes), sha256)| {
                let entry = FileEntry {
                    sha256,
                    bytes: bytes.len(),
                    rows: rows.get(path).copied(),
                };
                (path.as_str(), entry)
            })
            .collect(),
        generated_at: options.stamp.as_deref(),
    };
    let mut manifest_json = serde_json::to_vec_pretty(&manifest).unwrap_or_default();
    manifest_json.push(b'\n');
    files.insert(MANIFEST.to_owned(), manifest_json);
    Ok(Generated {
        output: OutputSet { files },
        counts,
    })
}

/// SHA-256 of every file, hex, in path order; the big files are hashed in
/// parallel.
fn hash_all(files: &BTreeMap<String, Vec<u8>>) -> Vec<String> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = files
            .values()
            .map(|bytes| scope.spawn(move || hex::encode(Sha256::digest(bytes))))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
            .collect()
    })
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
