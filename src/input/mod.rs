//! Reading principals from files: the canonical snapshot (what `fetch`
//! writes), raw REST v2 responses (combined or split) and raw v1 `user/list`.
//!
//! The dialect is detected from the content: an object with
//! `schema_version` is a canonical snapshot, any other object is a combined v2
//! export (`{"orgs", "users", "groups"}`), and an array is a split v2 file
//! (users, groups or orgs, told apart by their fields) or a v1 `user/list`
//! (recognised by `principalTypeEnum`).

mod dialect;
pub mod snapshot;
mod wire;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::model::{BuildError, BuildReport, Builder, Origin, Principals, Source};
pub use dialect::derived_guid;
use wire::{Shape, WireDocument, WireRecord};

/// The canonical snapshot schema version this build reads and writes.
pub const SCHEMA_VERSION: u64 = 1;

/// Cluster id used when neither the input nor the settings name one.
pub const DEFAULT_CLUSTER_ID: &str = "default";

/// Which kind of input the principals were read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum InputKind {
    /// A canonical snapshot (`schema_version: 1`).
    Canonical,
    /// One REST v2 file holding `orgs`, `users` and `groups`.
    V2Combined,
    /// Separate REST v2 `users/search`, `groups/search` (and `orgs/search`) files.
    V2Split,
    /// A REST v1 `user/list` array.
    V1UserList,
}

impl fmt::Display for InputKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InputKind::Canonical => "canonical snapshot",
            InputKind::V2Combined => "REST v2 export (orgs, users, groups in one file)",
            InputKind::V2Split => "REST v2 search responses",
            InputKind::V1UserList => "REST v1 user/list",
        })
    }
}

/// How to read inputs.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// Cluster id given explicitly (`--cluster-id`); wins over everything.
    pub cluster_id: Option<String>,
    /// Cluster id for inputs that carry none (`data.cluster_id`), else
    /// [`DEFAULT_CLUSTER_ID`].
    pub fallback_cluster_id: Option<String>,
}

/// Principals read from files.
#[derive(Debug)]
pub struct Loaded {
    /// The normalized principals.
    pub principals: Principals,
    /// What was repaired while normalizing.
    pub report: BuildReport,
    /// What kind of input it was.
    pub kind: InputKind,
}

/// An input that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid JSON, or a value has the wrong type.
    #[error("{path}:{line}:{column}: {message}")]
    Json {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong, with the JSON path when known.
        message: String,
    },
    /// The file as a whole has the wrong shape.
    #[error("{path}: {message}")]
    Shape {
        /// The file.
        path: PathBuf,
        /// What is wrong and what was expected.
        message: String,
    },
    /// One record is unusable.
    #[error("{origin}: {message}")]
    Record {
        /// The record.
        origin: Origin,
        /// What is wrong.
        message: String,
    },
    /// The records contradict each other.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// The files given together are of kinds that do not combine.
    #[error("{0}")]
    Mixed(String),
}

/// Reads principals from one or more files (see the module docs for the
/// accepted kinds) and normalizes them.
pub fn load(paths: &[PathBuf], options: &LoadOptions) -> Result<Loaded, InputError> {
    if paths.is_empty() {
        return Err(InputError::Mixed("no input file given".into()));
    }
    let buffers = paths
        .iter()
        .map(|path| {
            std::fs::read(path).map_err(|source| InputError::Read {
                path: path.clone(),
                source,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let files = paths
        .iter()
        .zip(&buffers)
        .map(|(path, bytes)| parse_file(path, bytes))
        .collect::<Result<Vec<_>, _>>()?;
    let (builder, kind) = assemble(files, options)?;
    let (principals, report) = builder.build()?;
    Ok(Loaded {
        principals,
        report,
        kind,
    })
}

/// Reads principals from JSON text already in memory; `name` is used in
/// messages. Handy for tests and for callers that fetched the bytes.
pub fn load_bytes(name: &str, bytes: &[u8], options: &LoadOptions) -> Result<Loaded, InputError> {
    let file = parse_file(Path::new(name), bytes)?;
    let (builder, kind) = assemble(vec![file], options)?;
    let (principals, report) = builder.build()?;
    Ok(Loaded {
        principals,
        report,
        kind,
    })
}

/// One parsed file, before its dialect is settled.
struct ParsedFile<'a> {
    path: &'a Path,
    name: Arc<str>,
    content: Content<'a>,
}

enum Content<'a> {
    Document(WireDocument<'a>),
    Records(Vec<WireRecord<'a>>),
}

fn parse_file<'a>(path: &'a Path, bytes: &'a [u8]) -> Result<ParsedFile<'a>, InputError> {
    let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let shape_error = |message: String| InputError::Shape {
        path: path.to_path_buf(),
        message,
    };
    let content = match body.iter().find(|b| !b.is_ascii_whitespace()) {
        None => {
            return Err(shape_error(
                "the file is empty; expected a principals snapshot or ThoughtSpot API response (JSON)".into(),
            ));
        }
        Some(b'{') => Content::Document(parse_json(path, body)?),
        Some(b'[') => Content::Records(parse_json(path, body)?),
        Some(&other) => {
            return Err(shape_error(format!(
                "not JSON: it starts with {:?}; expected a principals snapshot or ThoughtSpot API \
                 response (a JSON object or array)",
                char::from(other)
            )));
        }
    };
    Ok(ParsedFile {
        path,
        name: Arc::from(path.display().to_string()),
        content,
    })
}

fn parse_json<'a, T: serde::Deserialize<'a>>(path: &Path, body: &'a [u8]) -> Result<T, InputError> {
    serde_json::from_slice(body).map_err(|error| {
        // Errors are rare, so only then parse again to learn the JSON path.
        let mut de = serde_json::Deserializer::from_slice(body);
        let located = match serde_path_to_error::deserialize::<_, T>(&mut de) {
            Err(e) if e.path().iter().next().is_some() => format!("at {}: ", e.path()),
            _ => String::new(),
        };
        let message = error.to_string();
        let message = message
            .rsplit_once(" at line ")
            .map_or(message.as_str(), |(head, _)| head);
        let hint = match error.classify() {
            serde_json::error::Category::Eof => {
                " (the file ends early; was it truncated? fetch or copy it again)"
            }
            serde_json::error::Category::Syntax => " (the file is not valid JSON)",
            _ => "",
        };
        InputError::Json {
            path: path.to_path_buf(),
            line: error.line(),
            column: error.column(),
            message: format!("{located}{message}{hint}"),
        }
    })
}

/// Settles the dialect of every file and feeds their records to a builder.
fn assemble<'a>(files: Vec<ParsedFile<'a>>, options: &LoadOptions) -> Result<(Builder<'a>, InputKind), InputError> {
    let fallback = || {
        options
            .cluster_id
            .clone()
            .or_else(|| options.fallback_cluster_id.clone())
            .unwrap_or_else(|| DEFAULT_CLUSTER_ID.to_owned())
    };
    let canonical = files
        .iter()
        .position(|f| matches!(&f.content, Content::Document(d) if d.schema_version.is_some()));
    if let Some(i) = canonical {
        if files.len() > 1 {
            return Err(InputError::Mixed(format!(
                "{} is a canonical snapshot, which is complete on its own; pass it as the only --from",
                files[i].path.display()
            )));
        }
        let file = files.into_iter().next().ok_or_else(|| InputError::Mixed("no input".into()))?;
        return canonical_file(file, options, fallback()).map(|b| (b, InputKind::Canonical));
    }

    let cluster_id = fallback();
    let mut kinds = Vec::new();
    let mut builder = Builder::new(Source {
        cluster_id: cluster_id.clone(),
        ..Source::default()
    });
    let single = files.len() == 1;
    for file in files {
        let kind = match file.content {
            Content::Document(doc) => {
                let origin = |list: &'static str| {
                    let file = file.name.clone();
                    move |index| Origin { file: file.clone(), list, index }
                };
                v2_records(doc.orgs, Shape::Org, origin("orgs"), &mut builder)?;
                v2_records(doc.users, Shape::User, origin("users"), &mut builder)?;
                v2_records(doc.groups, Shape::Group, origin("groups"), &mut builder)?;
                InputKind::V2Combined
            }
            Content::Records(records) => {
                let shape = file_shape(file.path, &records)?;
                let name = file.name.clone();
                let origin = move |index| Origin { file: name.clone(), list: "", index };
                match shape {
                    Some(Shape::V1Principal) => {
                        for (index, record) in records.into_iter().enumerate() {
                            dialect::v1_principal(record, origin(index), &cluster_id, &mut builder)?;
                        }
                        InputKind::V1UserList
                    }
                    Some(shape) => {
                        v2_records(Some(records), shape, origin, &mut builder)?;
                        InputKind::V2Split
                    }
                    None => InputKind::V2Split,
                }
            }
        };
        kinds.push(kind);
    }
    let v1 = kinds.iter().filter(|k| **k == InputKind::V1UserList).count();
    if v1 > 0 && v1 < kinds.len() {
        return Err(InputError::Mixed(
            "a v1 user/list export cannot be combined with v2 files: v1 principals have no GUIDs to join on; \
             pass the v1 export alone, or only v2 files"
                .into(),
        ));
    }
    let kind = match kinds[0] {
        InputKind::V1UserList => InputKind::V1UserList,
        InputKind::V2Combined if single => InputKind::V2Combined,
        _ => InputKind::V2Split,
    };
    builder.set_api(if kind == InputKind::V1UserList { "v1" } else { "v2" });
    Ok((builder, kind))
}

fn v2_records<'a>(
    records: Option<Vec<WireRecord<'a>>>,
    shape: Shape,
    origin: impl Fn(usize) -> Origin,
    builder: &mut Builder<'a>,
) -> Result<(), InputError> {
    for (index, record) in records.unwrap_or_default().into_iter().enumerate() {
        let origin = origin(index);
        match shape {
            Shape::Org => {
                let org = dialect::org(record, origin)?;
                builder.org(org);
            }
            Shape::User => {
                let user = dialect::v2_user(record, origin, builder)?;
                builder.user(user);
            }
            Shape::Group => {
                let group = dialect::v2_group(record, origin, builder)?;
                builder.group(group);
            }
            Shape::V1Principal => {
                return Err(InputError::Record {
                    origin,
                    message: "a v1 user/list principal inside a v2 export; pass the v1 list as its own file".into(),
                });
            }
        }
    }
    Ok(())
}

/// What an array file holds: its records must agree; when none says, the
/// file name may (`users.json`); an empty file holds nothing.
fn file_shape(path: &Path, records: &[WireRecord<'_>]) -> Result<Option<Shape>, InputError> {
    let mut decided: Option<(usize, Shape)> = None;
    for (index, record) in records.iter().enumerate() {
        let Some(shape) = record.shape() else { continue };
        match decided {
            None => decided = Some((index, shape)),
            Some((_, seen)) if seen == shape => {}
            Some((first, seen)) if seen == Shape::V1Principal || shape == Shape::V1Principal => {
                // v1 lists mix users and groups; any v1 field marks the file.
                if seen != Shape::V1Principal {
                    decided = Some((first, Shape::V1Principal));
                }
            }
            Some((first, seen)) => {
                return Err(InputError::Shape {
                    path: path.to_path_buf(),
                    message: format!(
                        "[{index}] looks like {} but [{first}] looks like {}; a search response holds one \
                         kind of record (pass users, groups and orgs as separate --from files)",
                        shape.describe(),
                        seen.describe()
                    ),
                });
            }
        }
    }
    if let Some((_, shape)) = decided {
        return Ok(Some(shape));
    }
    if records.is_empty() {
        return Ok(None);
    }
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let by_name = [("org", Shape::Org), ("group", Shape::Group), ("user", Shape::User)]
        .into_iter()
        .find(|(word, _)| file_name.contains(word))
        .map(|(_, shape)| shape);
    by_name.map(Some).ok_or_else(|| InputError::Shape {
        path: path.to_path_buf(),
        message: "cannot tell whether this array holds users, groups or orgs: its records carry none of \
                  the fields that tell them apart; name the file after its content (users.json, \
                  groups.json, orgs.json)"
            .into(),
    })
}

fn canonical_file<'a>(file: ParsedFile<'a>, options: &LoadOptions, fallback: String) -> Result<Builder<'a>, InputError> {
    let Content::Document(doc) = file.content else {
        return Err(InputError::Mixed("internal: canonical snapshot is not an object".into()));
    };
    match doc.schema_version.as_ref().and_then(|v| v.as_u64()) {
        Some(SCHEMA_VERSION) => {}
        Some(newer) if newer > SCHEMA_VERSION => {
            return Err(InputError::Shape {
                path: file.path.to_path_buf(),
                message: format!(
                    "schema_version {newer} is newer than this ts-principals understands ({SCHEMA_VERSION}); \
                     upgrade ts-principals"
                ),
            });
        }
        _ => {
            return Err(InputError::Shape {
                path: file.path.to_path_buf(),
                message: format!(
                    "schema_version must be {SCHEMA_VERSION}, found {}",
                    doc.schema_version.map(|v| v.to_string()).unwrap_or_default()
                ),
            });
        }
    }
    let source = doc.source.unwrap_or_default();
    let owned = |t: Option<wire::Text<'_>>| t.map(|t| t.0.into_owned());
    let recorded_cluster = owned(source.cluster_id).filter(|c| !c.is_empty());
    let cluster_id = options.cluster_id.clone().or(recorded_cluster).unwrap_or(fallback);
    let mut builder = Builder::new(Source {
        cluster_id,
        cluster_url: owned(source.cluster_url),
        release_version: owned(source.release_version),
        api: owned(source.api),
        fetched_at: owned(source.fetched_at),
    });
    let name = file.name;
    let origin = |list: &'static str, index| Origin { file: name.clone(), list, index };
    for (index, record) in doc.orgs.unwrap_or_default().into_iter().enumerate() {
        builder.org(dialect::org(record, origin("orgs", index))?);
    }
    for (index, record) in doc.users.unwrap_or_default().into_iter().enumerate() {
        builder.user(dialect::canonical_user(record, origin("users", index))?);
    }
    for (index, record) in doc.groups.unwrap_or_default().into_iter().enumerate() {
        builder.group(dialect::canonical_group(record, origin("groups", index))?);
    }
    Ok(builder)
}
