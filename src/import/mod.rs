//! `import`: sends the TML `generate` wrote to a cluster
//! (`POST /api/rest/2.0/metadata/tml/import`) so that every run updates the
//! same objects.
//!
//! Without a GUID a cluster creates: it refuses a table whose database
//! table is already mapped and duplicates the model. So each object's GUID
//! is kept in the GUID map ([`guids`]), per cluster and org, and set in the
//! TML sent to that org (root `guid:`, the model's `model_tables[].fqn`),
//! whatever GUIDs the files carry. Before sending:
//! - an object the map knows but the cluster no longer has is created
//!   again (its old GUID is dropped, with a warning);
//! - an object the map does not know is looked for by name (and, for a
//!   table, connection, database and schema): found once, it is adopted;
//!   found twice, the import stops, naming both.
//!
//! The import is one request (tables first, then the model), sent once:
//! it is not idempotent, so it is never retried. The map is updated, in one
//! atomic write, from the OK and WARNING results only.

mod cluster;
pub mod guids;
pub mod set;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::atomic::Wait;
use crate::client::auth::{Auth, Scope};
use crate::client::http::Http;
use crate::client::v2::V2;
use crate::client::{ClientError, Connection};
use crate::render::TmlKind;
pub use guids::{GuidMap, GuidMapError, Target};
pub use set::{Document, SetError};

/// How the cluster treats failures (`import_policy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Everything or nothing is imported (ALL_OR_NONE).
    AllOrNone,
    /// What can be imported is (PARTIAL).
    Partial,
    /// Nothing is imported; the cluster only checks (VALIDATE_ONLY).
    ValidateOnly,
}

impl Policy {
    /// The name the API takes.
    pub fn wire(self) -> &'static str {
        match self {
            Policy::AllOrNone => "ALL_OR_NONE",
            Policy::Partial => "PARTIAL",
            Policy::ValidateOnly => "VALIDATE_ONLY",
        }
    }
}

/// What to import, where from and how.
#[derive(Clone, Debug)]
pub struct ImportOptions {
    /// The directory of TML files (`OUT/tml`).
    pub tml: PathBuf,
    /// The GUID map (`OUT/guids.json`).
    pub map: PathBuf,
    /// The import policy.
    pub policy: Policy,
    /// The org to import into, by name or id; none: the Primary org (0).
    pub org: Option<String>,
    /// What to do when another run holds the output directory.
    pub wait: Wait,
}

impl ImportOptions {
    /// The GUID map's default place for a TML directory: beside it when it
    /// is an output directory's `tml`, else in it.
    pub fn default_map(tml: &Path) -> PathBuf {
        // `--tml .` inside OUT/tml still means OUT/guids.json.
        let tml = &std::fs::canonicalize(tml).unwrap_or_else(|_| tml.to_path_buf());
        match (tml.file_name(), tml.parent()) {
            (Some(name), Some(parent)) if name == crate::generate::TML_DIR => {
                parent.join(guids::FILE)
            }
            _ => tml.join(guids::FILE),
        }
    }
}

/// An import failed.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The TML could not be read or does not hold together.
    #[error(transparent)]
    Set(#[from] SetError),
    /// The GUID map could not be read or written.
    #[error(transparent)]
    Map(#[from] GuidMapError),
    /// The output directory could not be locked.
    #[error(transparent)]
    Output(#[from] crate::output::OutputError),
    /// Signing in or searching failed.
    #[error(transparent)]
    Client(Box<ClientError>),
    /// The async runtime could not start.
    #[error("{0}")]
    Setup(String),
    /// The cluster reports no id to key the map with.
    #[error("{url} reports no cluster id (GET /api/rest/2.0/system); the GUID map needs one")]
    NoClusterId {
        /// The cluster.
        url: String,
    },
    /// `--org` names no org of the cluster.
    #[error("{url} has no org {org:?}; its orgs: {}", if known.is_empty() { "(it lists none)".to_owned() } else { known.join(", ") })]
    NoSuchOrg {
        /// The cluster.
        url: String,
        /// What --org said.
        org: String,
        /// The orgs it has, `id (name)`.
        known: Vec<String>,
    },
    /// Two objects on the cluster could be ours.
    #[error(
        "{target}: {file} defines {kind} {name:?}, and the cluster has {} objects that could \
         be it ({}); nothing was imported. Keep the one to update and delete the others, or \
         record its GUID in {map}",
        guids.len(), guids.join(", ")
    )]
    Ambiguous {
        /// Where.
        target: Box<Target>,
        /// The file.
        file: String,
        /// Its kind.
        kind: &'static str,
        /// The object's name.
        name: String,
        /// The candidates' GUIDs.
        guids: Vec<String>,
        /// The GUID map.
        map: String,
    },
    /// A bearer token is of another org than `--org` names.
    #[error(
        "the bearer token is of org {token_org}, not of org {asked} that --org names; a bearer \
         token imports into its own org: get one for org {asked}, or sign in with a password or \
         secret key (which sign in to the org --org names)"
    )]
    TokenOrg {
        /// The token's org.
        token_org: i64,
        /// The org --org names.
        asked: i64,
    },
    /// The map's GUID names another object on the cluster.
    #[error(
        "{file}: {map} records GUID {guid} for {name:?}, but on the cluster {guid} is {found}; \
         nothing was imported (updating it would overwrite that object). Correct or remove the \
         entry in {map} (git log shows who changed it), then import again"
    )]
    NotOurs {
        /// The file.
        file: String,
        /// The object's name.
        name: String,
        /// The GUID.
        guid: String,
        /// What the cluster has under it.
        found: String,
        /// The GUID map.
        map: String,
    },
    /// The object the map knows has another kind than the file's.
    #[error(
        "{}: {} defines {} {:?}, but the object of that name there (GUID {}) is the {} (as the \
         cluster or {} says); ThoughtSpot does not turn one into the other on import. Keep tml.format = \
         \"{}\", or convert or delete the {} in ThoughtSpot and remove its entry from {}, then \
         import again",
        .0.target, .0.file, .0.now, .0.name, .0.guid, .0.was, .0.map, .0.was, .0.was, .0.map
    )]
    KindChanged(Box<KindChange>),
    /// The objects were imported, but the map could not be written.
    #[error(
        "the objects were imported:\n{table}but the GUID map could not be written: {source}. \
         Make it writable and run import again: it finds the objects by name and adopts them"
    )]
    MapAfterImport {
        /// The results.
        table: String,
        /// Why.
        #[source]
        source: GuidMapError,
    },
    /// A file's GUIDs could not be set.
    #[error("{file}: {message}")]
    Identity {
        /// The file.
        file: String,
        /// Why.
        message: String,
    },
    /// The import request got no answer: the cluster may have imported
    /// some or all of the objects.
    #[error(
        "the import of {sent} TML document(s) got no answer: {source}. The cluster may have \
         imported some or all of them, so the import was not sent again (it is not idempotent) \
         and the GUID map was not changed. Running import again is safe: objects the cluster \
         created are found by name and adopted, and updated in place"
    )]
    Interrupted {
        /// Documents sent.
        sent: usize,
        /// What happened.
        #[source]
        source: Box<ClientError>,
    },
    /// The cluster refused the import request as a whole.
    #[error(
        "the cluster refused the import: {source}. The GUID map was not changed; fix the cause \
         and run import again"
    )]
    Refused {
        /// The refusal.
        #[source]
        source: Box<ClientError>,
    },
    /// The cluster's answer is not what the API documents.
    #[error("{what}: {problem}")]
    Answer {
        /// The request.
        what: String,
        /// What is wrong.
        problem: String,
    },
    /// Objects failed to import.
    #[error(
        "{} of {} object(s) failed{}:\n{}",
        failed.len(), total,
        if *validate_only { " validation" } else { " to import" },
        failed.iter().map(|(f, m)| format!("  {f}: {m}")).collect::<Vec<_>>().join("\n")
    )]
    Failed {
        /// (file, the cluster's message).
        failed: Vec<(String, String)>,
        /// Documents sent.
        total: usize,
        /// Whether it was a validation only.
        validate_only: bool,
    },
}

impl From<ClientError> for ImportError {
    fn from(error: ClientError) -> Self {
        ImportError::Client(Box::new(error))
    }
}

impl ImportError {
    /// Whether the cluster or the network failed (exit code 3), rather
    /// than the input (2).
    pub fn is_cluster(&self) -> bool {
        matches!(
            self,
            ImportError::Client(_)
                | ImportError::NoClusterId { .. }
                | ImportError::Ambiguous { .. }
                | ImportError::NotOurs { .. }
                | ImportError::Interrupted { .. }
                | ImportError::Refused { .. }
                | ImportError::Answer { .. }
                | ImportError::Failed { .. }
        ) && !matches!(
            self,
            ImportError::Client(e) if matches!(**e, ClientError::Setup(_) | ClientError::Unsupported(_))
        )
    }

    /// Whether the output directory or the map could not be written (exit
    /// code 4).
    pub fn is_output(&self) -> bool {
        matches!(
            self,
            ImportError::Output(_)
                | ImportError::Map(GuidMapError::Io { .. })
                | ImportError::MapAfterImport { .. }
        )
    }
}

/// An object whose kind differs from what the map records of it.
#[derive(Debug)]
pub struct KindChange {
    /// Where.
    pub target: Target,
    /// The file.
    pub file: String,
    /// The object's name.
    pub name: String,
    /// Its GUID.
    pub guid: String,
    /// The kind the map records.
    pub was: &'static str,
    /// The file's kind.
    pub now: &'static str,
    /// The GUID map.
    pub map: String,
}

/// Result of one object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The file.
    pub file: String,
    /// The object's name.
    pub name: String,
    /// Its kind.
    pub kind: TmlKind,
    /// `OK`, `WARNING` or `ERROR`.
    pub status: String,
    /// Its GUID, as the cluster returned it (or as sent, for a
    /// validation).
    pub guid: Option<String>,
    /// The cluster's message.
    pub message: Option<String>,
}

impl Outcome {
    /// Whether the object was imported (or would be).
    pub fn is_ok(&self) -> bool {
        matches!(self.status.as_str(), "OK" | "WARNING")
    }
}

/// What an import did.
#[derive(Clone, Debug)]
pub struct Report {
    /// Where it went.
    pub target: Target,
    /// One per document, in the order sent.
    pub outcomes: Vec<Outcome>,
    /// Whether the GUID map was changed.
    pub map_changed: bool,
}

impl Report {
    /// The results as a table: file, object, kind, status, GUID, message.
    pub fn table(&self) -> String {
        let header = ["FILE", "OBJECT", "KIND", "STATUS", "GUID", "MESSAGE"];
        let rows: Vec<[String; 6]> = (self.outcomes.iter())
            .map(|o| {
                [
                    o.file.clone(),
                    o.name.clone(),
                    o.kind.name().to_owned(),
                    o.status.clone(),
                    o.guid.clone().unwrap_or_else(|| "-".to_owned()),
                    o.message.clone().unwrap_or_default(),
                ]
            })
            .collect();
        table(&header, &rows)
    }

    /// The objects that failed, with the cluster's message.
    pub fn failed(&self) -> Vec<(String, String)> {
        (self.outcomes.iter())
            .filter(|o| !o.is_ok())
            .map(|o| {
                (
                    o.file.clone(),
                    o.message
                        .clone()
                        .unwrap_or_else(|| format!("status {}", o.status)),
                )
            })
            .collect()
    }
}

/// Left-aligned columns, the last one unpadded; control characters in
/// cells (a newline in a name, a terminal escape in a message) are shown
/// escaped.
fn table<const N: usize>(header: &[&str; N], rows: &[[String; N]]) -> String {
    let rows: Vec<[String; N]> = (rows.iter())
        .map(|row| {
            row.clone().map(|cell| {
                cell.chars()
                    .flat_map(|c| {
                        let escaped: String = if c.is_control() {
                            c.escape_default().collect()
                        } else {
                            c.to_string()
                        };
                        escaped.chars().collect::<Vec<_>>()
                    })
                    .collect()
            })
        })
        .collect();
    let rows = rows.as_slice();
    let mut widths = header.map(|h| h.chars().count());
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == N {
                text.push_str(cell);
            } else {
                let _ = write!(text, "{cell:<width$}  ", width = widths[i]);
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

/// What a dry run would send.
#[derive(Clone, Debug)]
pub struct DryRun {
    /// The target the GUIDs are of (as the map knows it, offline).
    pub target: Option<Target>,
    /// (file, kind, name, bytes, GUID) in the order they would be sent.
    pub documents: Vec<(String, TmlKind, String, usize, Option<String>)>,
}

impl DryRun {
    /// As a table.
    pub fn table(&self) -> String {
        let rows: Vec<[String; 5]> = (self.documents.iter())
            .map(|(file, kind, name, bytes, guid)| {
                [
                    file.clone(),
                    name.clone(),
                    kind.name().to_owned(),
                    bytes.to_string(),
                    guid.clone()
                        .unwrap_or_else(|| "(none: found by name, else created)".to_owned()),
                ]
            })
            .collect();
        table(&["FILE", "OBJECT", "KIND", "BYTES", "KNOWN GUID"], &rows)
    }
}

/// What `import --dry-run` would send, without asking the cluster: the
/// files in order, their sizes, and the GUIDs the map knows for the
/// target (`cluster`, else the map's only one; `org` by id or by a name the
/// map recorded, else Primary).
pub fn dry_run(options: &ImportOptions, cluster: Option<&str>) -> Result<DryRun, ImportError> {
    let _lock = lock(options)?;
    let documents = set::read(&options.tml)?;
    let map = GuidMap::read(&options.map)?;
    let clusters = map.clusters();
    let cluster = cluster.filter(|c| clusters.contains(c)).or_else(|| {
        (clusters.len() == 1)
            .then(|| clusters.first().copied())
            .flatten()
    });
    let target = cluster.and_then(|cluster| {
        let orgs = map.orgs(cluster);
        let org_id = match options.org.as_deref().map(str::trim) {
            None => 0,
            Some(org) => (org.parse().ok())
                .filter(|id| orgs.contains_key(id))
                .or_else(|| map.org_named(cluster, org))
                .or_else(|| org.parse().ok())?,
        };
        Some(Target {
            cluster: cluster.to_owned(),
            org_id,
            org_name: orgs.get(&org_id).copied().flatten().map(str::to_owned),
        })
    });
    let documents = (documents.into_iter())
        .map(|d| {
            let guid = (target.as_ref())
                .and_then(|t| map.get(t, d.kind, &d.name))
                .map(str::to_owned);
            (d.file, d.kind, d.name, d.text.len(), guid)
        })
        .collect();
    Ok(DryRun { target, documents })
}

/// Imports the TML in `options.tml` into the cluster at `connection`.
/// Per-object failures come back in the report (see [`Report::failed`]);
/// the GUID map is updated from the objects imported.
pub fn run(connection: &Connection, options: &ImportOptions) -> Result<Report, ImportError> {
    let _lock = lock(options)?;
    let documents = set::read(&options.tml)?;
    let mut map = GuidMap::read(&options.map)?;
    if options.policy != Policy::ValidateOnly {
        guids::check_writable(&options.map)?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| ImportError::Setup(format!("cannot start the async runtime: {e}")))?;
    let before = map.clone();
    let (target, outcomes) = runtime.block_on(import(connection, options, &documents, &mut map))?;
    let imported = options.policy != Policy::ValidateOnly
        && !(options.policy == Policy::AllOrNone && outcomes.iter().any(|o| !o.is_ok()));
    if imported {
        for outcome in outcomes.iter().filter(|o| o.is_ok()) {
            if let Some(guid) = outcome.guid.as_deref().filter(|g| guids::is_guid(g)) {
                map.set(&target, outcome.kind, &outcome.name, guid);
            }
        }
    }
    let map_changed = imported && map != before;
    let report = Report {
        target,
        outcomes,
        map_changed,
    };
    if map_changed && let Err(source) = map.write(&options.map) {
        return Err(ImportError::MapAfterImport {
            table: report.table(),
            source,
        });
    }
    Ok(report)
}

/// Locks the directory of the GUID map (the output directory), so no
/// `generate` changes the TML or the map while they are read and written.
fn lock(options: &ImportOptions) -> Result<crate::output::OutputDir, ImportError> {
    let dir = (options.map.parent())
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    Ok(crate::output::open_to_read(dir, options.wait)?)
}

async fn import(
    connection: &Connection,
    options: &ImportOptions,
    documents: &[Document],
    map: &mut GuidMap,
) -> Result<(Target, Vec<Outcome>), ImportError> {
    let http = Http::new(connection)?;
    let auth = Auth::new(connection.credentials.clone())?;
    let api = V2 {
        http: &http,
        auth: &auth,
    };
    let url = http.base().to_owned();
    let system = api.system().await?;
    let cluster = system
        .id()
        .ok_or_else(|| ImportError::NoClusterId { url: url.clone() })?;
    let (mut org_id, orgs) = resolve_org(&api, &url, options.org.as_deref()).await?;
    // A password or secret key signs in to the org; a bearer token is
    // already of one (its own), which --org must then name.
    if !auth.scopes_tokens() {
        match api.session_org(None).await? {
            Some(token_org) if options.org.is_some() && token_org != org_id => {
                return Err(ImportError::TokenOrg {
                    token_org,
                    asked: org_id,
                });
            }
            Some(token_org) => org_id = token_org,
            None if options.org.is_none() => tracing::warn!(
                "{url} does not say which org the bearer token is of; its objects are recorded \
                 as org 0 (Primary): name the token's org with --org"
            ),
            None => {}
        }
    }
    let org_name = (orgs.iter())
        .find(|(id, _)| *id == org_id)
        .map(|(_, name)| name.clone())
        .or_else(|| (org_id == 0).then(|| "Primary".to_owned()));
    let scope: Scope = auth.scopes_tokens().then_some(org_id);
    let target = Target {
        cluster,
        org_id,
        org_name,
    };
    tracing::info!(
        "importing {} TML document(s) from {} into {target} at {url} ({})",
        documents.len(),
        options.tml.display(),
        options.policy.wire()
    );
    let map_name = options.map.display().to_string();
    // The GUIDs the map knows, checked against what the cluster has.
    let known: Vec<(&Document, String)> = (documents.iter())
        .filter_map(|d| Some((d, map.get(&target, d.kind, &d.name)?.to_owned())))
        .collect();
    let guid_ids: Vec<&str> = known.iter().map(|(_, g)| g.as_str()).collect();
    let present = cluster::search(&api, &guid_ids, scope).await?;
    let mut guid_of: BTreeMap<(TmlKind, String), String> = BTreeMap::new();
    for (d, guid) in &known {
        if let Some(listed) = present.iter().find(|l| l.guid.eq_ignore_ascii_case(guid)) {
            // The map must not point at someone else's object: updating it
            // would overwrite and rename it.
            let kind_differs = listed.kind().is_some_and(|k| k != d.kind);
            if !listed.name.eq_ignore_ascii_case(&d.name) || kind_differs {
                return Err(ImportError::NotOurs {
                    file: d.file.clone(),
                    name: d.name.clone(),
                    guid: guid.clone(),
                    found: format!(
                        "{} {:?}",
                        listed.kind().map_or("object", TmlKind::name),
                        listed.name
                    ),
                    map: map_name,
                });
            }
            guid_of.insert((d.kind, d.name.clone()), listed.guid.clone());
        } else {
            tracing::warn!(
                "{} {:?} (GUID {guid} in {map_name}) is gone from {target}; the map is \
                 corrected: it is looked for by name, else created again",
                d.kind.name(),
                d.name
            );
            map.remove(&target, d.kind, &d.name);
        }
    }
    // The others are looked for by name: ours, imported by hand or by a run
    // whose answer was lost?
    let unknown: Vec<&Document> = (documents.iter())
        .filter(|d| !guid_of.contains_key(&(d.kind, d.name.clone())))
        .collect();
    let mut names: Vec<&str> = unknown.iter().map(|d| d.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    let listed = cluster::search(&api, &names, scope).await?;
    for d in unknown {
        let candidates = cluster::candidates(&listed, d);
        // What the map (else the cluster) says a single candidate is.
        let their_kind = match candidates.as_slice() {
            [one] => map.kind_of(&target, &one.guid).or(one.kind()),
            _ => None,
        };
        if d.kind == TmlKind::Table {
            let elsewhere: Vec<&str> = (listed.iter())
                .filter(|l| l.name.eq_ignore_ascii_case(&d.name) && l.is(TmlKind::Table))
                .filter(|l| !candidates.iter().any(|c| c.guid == l.guid))
                .map(|l| l.guid.as_str())
                .collect();
            if !elsewhere.is_empty() {
                tracing::warn!(
                    "{target} has other tables named {:?} in another connection, database or \
                     schema ({}); the model names its new tables by name, so the cluster may \
                     refuse it as ambiguous: rename ours (tml.table_prefix) or theirs",
                    d.name,
                    elsewhere.join(", ")
                );
            }
        }
        match candidates.as_slice() {
            [] => {}
            [one] if their_kind.is_some_and(|k| k != d.kind) => {
                let was = their_kind.map_or("", TmlKind::name);
                return Err(ImportError::KindChanged(Box::new(KindChange {
                    target,
                    file: d.file.clone(),
                    name: d.name.clone(),
                    guid: one.guid.clone(),
                    was,
                    now: d.kind.name(),
                    map: map_name,
                })));
            }
            [one] => {
                tracing::info!(
                    "{} {:?} is already on {target} (GUID {}: imported by hand, or by a run \
                     whose answer was lost); adopting it",
                    d.kind.name(),
                    d.name,
                    one.guid
                );
                guid_of.insert((d.kind, d.name.clone()), one.guid.clone());
            }
            many => {
                return Err(ImportError::Ambiguous {
                    target: Box::new(target),
                    file: d.file.clone(),
                    kind: d.kind.name(),
                    name: d.name.clone(),
                    guids: many.iter().map(|l| l.guid.clone()).collect(),
                    map: map_name,
                });
            }
        }
    }
    for (kind, name, guid) in map.objects_of(&target) {
        if !documents.iter().any(|d| d.kind == kind && d.name == name) {
            tracing::warn!(
                "{map_name} records {} {name:?} (GUID {guid}) on {target}, which the TML no \
                 longer has (tml.table_prefix or tml.model_name changed?); it stays on the \
                 cluster: delete it there if nothing uses it, and its entry in {map_name}",
                kind.name()
            );
        }
    }
    let tables: BTreeMap<String, String> = (guid_of.iter())
        .filter(|((kind, _), _)| *kind == TmlKind::Table)
        .map(|((_, name), guid)| (name.clone(), guid.clone()))
        .collect();
    let mut tmls = Vec::with_capacity(documents.len());
    for d in documents {
        let guid = guid_of.get(&(d.kind, d.name.clone())).map(String::as_str);
        let text =
            set::with_identity(d, guid, &tables).map_err(|message| ImportError::Identity {
                file: d.file.clone(),
                message,
            })?;
        tmls.push(text);
    }
    let answers = cluster::import(&api, &tmls, options.policy.wire(), scope).await?;
    let outcomes = (documents.iter().zip(answers))
        .map(|(d, a)| Outcome {
            file: d.file.clone(),
            name: d.name.clone(),
            kind: d.kind,
            status: a.status,
            guid: a
                .guid
                .or_else(|| guid_of.get(&(d.kind, d.name.clone())).cloned()),
            message: a.message,
        })
        .collect();
    Ok((target, outcomes))
}

/// The org `--org` names (an id, or a name the cluster lists; a number
/// that is no org's id may be an org's name), and the orgs the cluster
/// lists; none is the Primary org, 0.
async fn resolve_org(
    api: &V2<'_>,
    url: &str,
    org: Option<&str>,
) -> Result<(i64, Vec<(i64, String)>), ImportError> {
    let listed = api.orgs().await?;
    let orgs: Vec<(i64, String)> = (listed.iter().flatten())
        .filter_map(|o| Some((o.id()?, o.name().unwrap_or_default().to_owned())))
        .collect();
    let Some(org) = org.map(str::trim) else {
        return Ok((0, orgs));
    };
    let by_id = (org.parse::<i64>().ok())
        .filter(|id| listed.is_none() || orgs.iter().any(|(o, _)| o == id));
    let by_name = (orgs.iter())
        .find(|(_, name)| name.eq_ignore_ascii_case(org))
        .map(|(id, _)| *id);
    match by_id.or(by_name) {
        Some(id) => Ok((id, orgs)),
        None => Err(no_such_org(url, org, &orgs)),
    }
}

fn no_such_org(url: &str, org: &str, orgs: &[(i64, String)]) -> ImportError {
    ImportError::NoSuchOrg {
        url: url.to_owned(),
        org: org.to_owned(),
        known: orgs.iter().map(|(id, n)| format!("{id} ({n})")).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_results_table_lines_up() {
        let report = Report {
            target: Target {
                cluster: "c".into(),
                org_id: 0,
                org_name: None,
            },
            outcomes: vec![
                Outcome {
                    file: "TS_USERS.table.tml".into(),
                    name: "TS_USERS".into(),
                    kind: TmlKind::Table,
                    status: "OK".into(),
                    guid: Some("g1".into()),
                    message: None,
                },
                Outcome {
                    file: "m.model.tml".into(),
                    name: "M".into(),
                    kind: TmlKind::Model,
                    status: "ERROR".into(),
                    guid: None,
                    message: Some("bad\nthing".into()),
                },
            ],
            map_changed: false,
        };
        let table = report.table();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3, "{table}");
        let status = lines[0].find("STATUS").unwrap();
        assert_eq!(&lines[1][status..status + 2], "OK");
        assert_eq!(&lines[2][status..status + 5], "ERROR");
        assert!(lines[2].ends_with("bad\\nthing"), "{table}");
        assert_eq!(
            report.failed(),
            vec![("m.model.tml".into(), "bad\nthing".into())]
        );
    }

    #[test]
    fn the_map_sits_beside_an_output_directorys_tml() {
        assert_eq!(
            ImportOptions::default_map(Path::new("out/tml")),
            Path::new("out/guids.json")
        );
        assert_eq!(
            ImportOptions::default_map(Path::new("repo")),
            Path::new("repo/guids.json")
        );
    }
}
