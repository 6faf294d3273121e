//! Reading principals from files: the canonical snapshot (what `fetch`
//! writes), raw REST v2 responses (combined or split) and raw v1 `user/list`.
//!
//! The kind is detected from the content: an object with `schema_version`
//! is a canonical snapshot, any other object is a combined v2 export
//! (`{"orgs", "users", "groups"}`), and an array is a split v2 file (users,
//! groups or orgs, told apart by their fields) or a v1 `user/list`
//! (recognised by `principalTypeEnum`).
//!
//! Records are converted while they are parsed, straight from the file's
//! bytes (strings borrow from them), so no intermediate list of parsed
//! records is ever built.

mod dialect;
pub mod snapshot;
mod wire;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::model::{BuildError, BuildReport, Builder, Origin, Principals, Source};
pub use dialect::derived_guid;
use wire::{Shape, WireRecord, WireSource};

/// The canonical snapshot schema version this build reads and writes.
pub const SCHEMA_VERSION: u64 = 1;

pub use crate::model::DEFAULT_CLUSTER_ID;

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
    /// Responses fetched from a live cluster just now.
    Cluster,
}

impl fmt::Display for InputKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InputKind::Canonical => "canonical snapshot",
            InputKind::V2Combined => "REST v2 export (orgs, users, groups in one file)",
            InputKind::V2Split => "REST v2 search responses",
            InputKind::V1UserList => "REST v1 user/list",
            InputKind::Cluster => "live cluster",
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
    /// Accept an input with no users and no groups (`--allow-empty`). It
    /// is refused otherwise: generating from it would empty every table.
    pub allow_empty: bool,
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
    /// The input holds no users and no groups.
    #[error(
        "{what}: no users and no groups; generating from this input would empty every table. \
         Check that it is the right input (credentials or orgs that see no principals, a \
         response saved from the wrong request?), or pass --allow-empty if the cluster really \
         has none"
    )]
    Empty {
        /// The files, or the cluster, it came from.
        what: String,
    },
}

impl Loaded {
    /// Refuses principals with no users and no groups unless `allow_empty`;
    /// `what` names where they came from (the files, or the cluster).
    /// [`load`] checks this itself; callers of [`from_responses`] do.
    pub fn refuse_empty(&self, what: &str, allow_empty: bool) -> Result<(), InputError> {
        let p = &self.principals;
        if allow_empty || !p.users.is_empty() || !p.groups.is_empty() {
            return Ok(());
        }
        Err(InputError::Empty {
            what: what.to_owned(),
        })
    }
}

/// Reads principals from one or more files (see the module docs for the
/// accepted kinds) and normalizes them.
pub fn load(paths: &[PathBuf], options: &LoadOptions) -> Result<Loaded, InputError> {
    if paths.is_empty() {
        return Err(InputError::Mixed("no input file given".into()));
    }
    let started = std::time::Instant::now();
    let contents = paths
        .iter()
        .map(|path| Contents::read(path))
        .collect::<Result<Vec<_>, _>>()?;
    tracing::debug!(
        "opened {} bytes in {:.2?}",
        contents.iter().map(|c| c.bytes().len()).sum::<usize>(),
        started.elapsed()
    );
    let files: Vec<(&Path, &[u8])> = paths
        .iter()
        .map(PathBuf::as_path)
        .zip(contents.iter().map(Contents::bytes))
        .collect();
    load_files(&files, options)
}

/// Reads principals from JSON text already in memory; `name` is used in
/// messages. Handy for tests and for callers that fetched the bytes.
pub fn load_bytes(name: &str, bytes: &[u8], options: &LoadOptions) -> Result<Loaded, InputError> {
    load_files(&[(Path::new(name), bytes)], options)
}

/// Normalizes responses fetched from a cluster, each a name for messages
/// (`POST /api/rest/2.0/users/search (org 0, records from 1000)`) and a JSON
/// body (an array of orgs, users or groups, or a v1 `user/list` array).
/// They are read as the same responses saved to files would be, except that a principal seen in several orgs'
/// responses is one principal seen through several org scopes (see
/// [`Builder::merge_org_views`]). `source` says where they came from; its
/// `cluster_id` also seeds the GUIDs derived for v1 principals. With
/// `only_orgs` (some orgs were fetched), principals' memberships of other
/// orgs are left out (see [`Builder::only_orgs`]).
pub fn from_responses<'a>(
    source: Source,
    responses: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    only_orgs: Option<Vec<i64>>,
) -> Result<Loaded, InputError> {
    let cluster_id = source.cluster_id.clone();
    let mut builder = Builder::new(source);
    builder.merge_org_views();
    if let Some(ids) = only_orgs {
        builder.only_orgs(ids);
    }
    let mut kinds = Vec::new();
    for (name, body) in responses {
        let path = Path::new(name);
        let (kind, _) = parse_file(path, body, &cluster_id, &mut builder)?;
        if matches!(kind, FileKind::Canonical | FileKind::V2Object) {
            return Err(InputError::Shape {
                path: path.to_path_buf(),
                message: "the response is a JSON object; the search APIs answer with an array"
                    .into(),
            });
        }
        kinds.push((path, kind));
    }
    settle_kind(&kinds)?;
    let (principals, report) = builder.build()?;
    Ok(Loaded {
        principals,
        report,
        kind: InputKind::Cluster,
    })
}

/// A file's bytes: mapped from the page cache when possible (no copy),
/// read into memory otherwise (pipes, empty files, platforms without mmap).
/// (Reading every file into memory made the benchmark's generate 1.19×
/// slower at the same peak: mapped pages count in the peak too.)
enum Contents {
    Mapped(memmap2::Mmap),
    Read(Vec<u8>),
}

impl Contents {
    fn read(path: &Path) -> Result<Self, InputError> {
        let error = |source| InputError::Read {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(error)?;
        let meta = file.metadata().map_err(error)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::FileTypeExt;
            let kind = meta.file_type();
            if kind.is_char_device() || kind.is_block_device() {
                // /dev/zero would be read until memory runs out.
                return Err(error(std::io::Error::other(
                    "it is a device or a terminal, not a file of principals; give a file, or \
                     pipe the JSON in (--from /dev/stdin)",
                )));
            }
        }
        let is_plain = meta.is_file() && meta.len() > 0;
        if is_plain {
            // SAFETY: the mapping is only read, and only while this function's
            // caller holds it. Another process truncating the file meanwhile
            // would make reads fault; ts-principals reads its inputs once, a
            // trade-off the same as ripgrep's.
            if let Ok(map) = unsafe { memmap2::Mmap::map(&file) } {
                return Ok(Contents::Mapped(map));
            }
        }
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut &file, &mut bytes).map_err(error)?;
        Ok(Contents::Read(bytes))
    }

    fn bytes(&self) -> &[u8] {
        match self {
            Contents::Mapped(map) => map,
            Contents::Read(bytes) => bytes,
        }
    }
}

/// What one file turned out to hold.
enum FileKind {
    Canonical,
    V2Object,
    V2Array,
    V1Array,
    Empty,
}

fn load_files(files: &[(&Path, &[u8])], options: &LoadOptions) -> Result<Loaded, InputError> {
    let fallback = options
        .cluster_id
        .clone()
        .or_else(|| options.fallback_cluster_id.clone())
        .unwrap_or_else(|| DEFAULT_CLUSTER_ID.to_owned());
    let mut builder = Builder::new(Source {
        cluster_id: fallback.clone(),
        ..Source::default()
    });
    let started = std::time::Instant::now();
    let mut kinds = Vec::new();
    let mut canonical_source = None;
    for &(path, bytes) in files {
        let (kind, source) = parse_file(path, bytes, &fallback, &mut builder)?;
        if let Some(source) = source {
            canonical_source = Some(source);
        }
        kinds.push((path, kind));
    }
    tracing::debug!("parsed in {:.2?}", started.elapsed());

    let kind = settle_kind(&kinds)?;
    match (kind, canonical_source) {
        (InputKind::Canonical, Some(source)) => {
            let recorded = Some(source.cluster_id.clone()).filter(|c| !c.is_empty());
            let cluster_id = options.cluster_id.clone().or(recorded).unwrap_or(fallback);
            builder.set_source(Source {
                cluster_id,
                ..source
            });
        }
        (InputKind::V1UserList, _) => builder.set_api("v1"),
        _ => builder.set_api("v2"),
    }
    let started = std::time::Instant::now();
    let (principals, report) = builder.build()?;
    tracing::debug!("normalized in {:.2?}", started.elapsed());
    let loaded = Loaded {
        principals,
        report,
        kind,
    };
    let names: Vec<String> = files.iter().map(|(p, _)| p.display().to_string()).collect();
    loaded.refuse_empty(&names.join(", "), options.allow_empty)?;
    Ok(loaded)
}

/// The kind of the whole input, or why its files do not go together.
fn settle_kind(kinds: &[(&Path, FileKind)]) -> Result<InputKind, InputError> {
    if let Some((path, _)) = kinds.iter().find(|(_, k)| matches!(k, FileKind::Canonical)) {
        if kinds.len() > 1 {
            return Err(InputError::Mixed(format!(
                "{} is a canonical snapshot, which is complete on its own; pass it as the only --from",
                path.display()
            )));
        }
        return Ok(InputKind::Canonical);
    }
    let v1 = kinds
        .iter()
        .filter(|(_, k)| matches!(k, FileKind::V1Array))
        .count();
    let content = kinds
        .iter()
        .filter(|(_, k)| !matches!(k, FileKind::Empty))
        .count();
    if v1 > 0 && v1 < content {
        return Err(InputError::Mixed(
            "a v1 user/list export cannot be combined with v2 files: v1 principals have no GUIDs to join on; \
             pass the v1 export alone, or only v2 files"
                .into(),
        ));
    }
    Ok(match kinds {
        _ if v1 > 0 => InputKind::V1UserList,
        [(_, FileKind::V2Object)] => InputKind::V2Combined,
        _ => InputKind::V2Split,
    })
}

/// Records handed from the parsing thread to the converting one.
type Batch<'a> = Vec<(Shape, WireRecord<'a>, Origin)>;

/// Parses one file, feeding its records to the builder. Parsing and
/// converting run on two threads: the parser hands records over in batches
/// and the converter packs ids, checks duplicates and builds model values
/// meanwhile. (Measured with examples/bench.rs: converting on the parsing
/// thread made generate 1.24× slower; parsing the whole file with derived
/// serde before converting, instead of these visitors, 1.33× slower with an
/// 18% higher peak.)
fn parse_file<'a>(
    path: &Path,
    bytes: &'a [u8],
    cluster_id: &str,
    builder: &mut Builder<'a>,
) -> Result<(FileKind, Option<Source>), InputError> {
    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::sync_channel::<Batch<'a>>(8);
        let converter = scope.spawn(move || {
            for batch in rx {
                for (shape, record, origin) in batch {
                    // Returning drops the receiver, which stops the parser.
                    convert(shape, record, origin, cluster_id, builder)?;
                }
            }
            Ok::<(), InputError>(())
        });
        let parsed = parse_body(path, bytes, tx);
        let converted = crate::parallel::join(converter);
        converted.and(parsed)
    })
}

/// Converts one record of a known shape and hands it to the builder.
fn convert<'a>(
    shape: Shape,
    record: WireRecord<'a>,
    origin: Origin,
    cluster_id: &str,
    builder: &mut Builder<'a>,
) -> Result<(), InputError> {
    match shape {
        Shape::Org => builder.org(dialect::org(record, origin)?),
        Shape::User => {
            let user = dialect::user(record, origin, builder)?;
            builder.user(user)?;
        }
        Shape::Group => {
            let group = dialect::group(record, origin, builder)?;
            builder.group(group)?;
        }
        Shape::V1Principal => dialect::v1_principal(record, origin, cluster_id, builder)?,
    }
    Ok(())
}

/// The parsing half of [`parse_file`].
fn parse_body<'a>(
    path: &Path,
    bytes: &'a [u8],
    tx: mpsc::SyncSender<Batch<'a>>,
) -> Result<(FileKind, Option<Source>), InputError> {
    let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let shape_error = |message: String| InputError::Shape {
        path: path.to_path_buf(),
        message,
    };
    let mut feed = Feed {
        file: Arc::from(path.display().to_string()),
        path,
        batch: Vec::with_capacity(BATCH),
        tx,
        failure: None,
    };
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        None => Err(shape_error(
            "the file is empty; expected a principals snapshot or ThoughtSpot API response (JSON)"
                .into(),
        )),
        Some(b'{') => {
            let result = run(body, DocumentSeed { feed: &mut feed });
            let result = result.and_then(|d| feed.flush().map(|()| d).map_err(|e| feed.fail(e)));
            let document = finish(path, body, result, feed.failure.take())?;
            let known = document.lists || document.schema_version.is_some();
            if !known && !document.unread.is_empty() {
                return Err(shape_error(format!(
                    "a JSON object with none of the keys ts-principals reads (`schema_version`, \
                     `orgs`, `users`, `groups`), only `{}`; expected a principals snapshot, a REST \
                     v2 export, or a search response's array (a response wrapped in another \
                     object? pass the array itself)",
                    document.unread.join("`, `")
                )));
            }
            if document.schema_version.is_none() {
                return Ok((FileKind::V2Object, None));
            }
            let source = document.source.unwrap_or_default();
            let owned =
                |t: Option<wire::Text<'_>>| t.map(|t| t.0.into_owned()).filter(|s| !s.is_empty());
            let source = Source {
                cluster_id: owned(source.cluster_id).unwrap_or_default(),
                cluster_url: owned(source.cluster_url),
                release_version: owned(source.release_version),
                api: owned(source.api),
                fetched_at: owned(source.fetched_at),
            };
            Ok((FileKind::Canonical, Some(source)))
        }
        Some(b'[') => {
            let seed = ListSeed {
                feed: &mut feed,
                list: "",
                shape: None,
            };
            let result = run(body, seed);
            let result = result.and_then(|s| feed.flush().map(|()| s).map_err(|e| feed.fail(e)));
            let shape = finish(path, body, result, feed.failure.take())?;
            let kind = match shape {
                Some(Shape::V1Principal) => FileKind::V1Array,
                Some(_) => FileKind::V2Array,
                None => FileKind::Empty,
            };
            Ok((kind, None))
        }
        Some(&other) => {
            let what = match other {
                b'n' => "holds a single JSON value, `null`".to_owned(),
                b't' | b'f' => "holds a single JSON value, a boolean".to_owned(),
                b'"' => "holds a single JSON value, a string".to_owned(),
                b'-' | b'0'..=b'9' => "holds a single JSON value, a number".to_owned(),
                b'<' => "not JSON but HTML or XML (a login or error page saved instead of the \
                         API's answer?)"
                    .to_owned(),
                _ => format!("not JSON: it starts with {:?}", char::from(other)),
            };
            Err(shape_error(format!(
                "{what}; expected a principals snapshot or ThoughtSpot API response (a JSON object or array)"
            )))
        }
    }
}

/// Accepts the schema version this build reads, or says why not.
fn check_schema_version(version: &serde_json::Value) -> Result<(), String> {
    match version.as_u64() {
        Some(SCHEMA_VERSION) => Ok(()),
        Some(newer) if newer > SCHEMA_VERSION => Err(format!(
            "schema_version {newer} is newer than this ts-principals understands \
             ({SCHEMA_VERSION}); upgrade ts-principals"
        )),
        _ => Err(format!(
            "schema_version must be {SCHEMA_VERSION}, found {version}"
        )),
    }
}

/// Runs `seed` over the whole of `body`.
fn run<'a, S: DeserializeSeed<'a>>(body: &'a [u8], seed: S) -> Result<S::Value, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = seed.deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

/// The outcome of a parse: a record the feed rejected is reported as
/// itself, any other failure with file, line, column and JSON path.
fn finish<T>(
    path: &Path,
    body: &[u8],
    result: Result<T, serde_json::Error>,
    failure: Option<InputError>,
) -> Result<T, InputError> {
    match (result, failure) {
        (Ok(value), _) => Ok(value),
        (Err(_), Some(failure)) => Err(failure),
        (Err(error), None) => Err(json_error(path, body, error)),
    }
}

/// Converts a serde_json error, adding the JSON path where it happened.
fn json_error(path: &Path, body: &[u8], error: serde_json::Error) -> InputError {
    // Errors are rare, so only then parse again to learn the JSON path.
    let mut de = serde_json::Deserializer::from_slice(body);
    let path_of = |e: serde_path_to_error::Error<serde_json::Error>| {
        let at = e.path().to_string();
        if at.is_empty() || at == "." {
            String::new()
        } else {
            format!("at {at}: ")
        }
    };
    let object = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    let located = if object {
        serde_path_to_error::deserialize::<_, wire::WireDocument<'_>>(&mut de)
            .err()
            .map(path_of)
    } else {
        serde_path_to_error::deserialize::<_, Vec<wire::Object<WireRecord<'_>>>>(&mut de)
            .err()
            .map(path_of)
    }
    .unwrap_or_default();
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
}

/// Records handed over at a time.
const BATCH: usize = 256;

/// Where parsed records go (to the converting thread, in batches), and the
/// first error found while parsing, kept to be reported as itself rather
/// than as a JSON error.
struct Feed<'f, 'a> {
    file: Arc<str>,
    path: &'f Path,
    batch: Batch<'a>,
    tx: mpsc::SyncSender<Batch<'a>>,
    failure: Option<InputError>,
}

impl<'a> Feed<'_, 'a> {
    fn origin(&self, list: &'static str, index: usize) -> Origin {
        Origin {
            file: self.file.clone(),
            list,
            index,
        }
    }

    /// Hands one record of a known shape to the converter.
    fn take(
        &mut self,
        shape: Shape,
        record: WireRecord<'a>,
        origin: Origin,
    ) -> Result<(), InputError> {
        self.batch.push((shape, record, origin));
        if self.batch.len() >= BATCH {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), InputError> {
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
        // The converter only stops early on an error, which it reports.
        self.tx
            .send(batch)
            .map_err(|_| InputError::Mixed("the converter stopped".into()))
    }

    /// Keeps `error` to be reported as is, and stops the parse.
    fn fail<E: de::Error>(&mut self, error: InputError) -> E {
        let message = error.to_string();
        self.failure.get_or_insert(error);
        E::custom(message)
    }
}

/// The top level of an object-shaped file: a canonical snapshot or a
/// combined v2 export. Keys may come in any order.
struct DocumentSeed<'s, 'f, 'a> {
    feed: &'s mut Feed<'f, 'a>,
}

#[derive(Default)]
struct Document<'a> {
    schema_version: Option<serde_json::Value>,
    source: Option<WireSource<'a>>,
    /// Whether any of `orgs`, `users`, `groups` was present.
    lists: bool,
    /// The first few keys that are none of those ts-principals reads.
    unread: Vec<String>,
}

impl<'a> DeserializeSeed<'a> for DocumentSeed<'_, '_, 'a> {
    type Value = Document<'a>;
    fn deserialize<D: de::Deserializer<'a>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'a> Visitor<'a> for DocumentSeed<'_, '_, 'a> {
    type Value = Document<'a>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a principals snapshot or REST v2 export object")
    }

    fn visit_map<M: MapAccess<'a>>(self, mut map: M) -> Result<Self::Value, M::Error> {
        let mut document = Document::default();
        while let Some(key) = map.next_key::<wire::Text<'a>>()? {
            let (list, shape) = match key.0.as_ref() {
                "schema_version" => {
                    let version: serde_json::Value = map.next_value()?;
                    // Checked at once: records of a schema this build does not
                    // know would otherwise fail first, and mislead.
                    if let Err(message) = check_schema_version(&version) {
                        let error = InputError::Shape {
                            path: self.feed.path.to_path_buf(),
                            message,
                        };
                        return Err(self.feed.fail(error));
                    }
                    document.schema_version = Some(version);
                    continue;
                }
                "source" => {
                    document.source = map.next_value()?;
                    continue;
                }
                "orgs" => ("orgs", Shape::Org),
                "users" => ("users", Shape::User),
                "groups" => ("groups", Shape::Group),
                other => {
                    if document.unread.len() < 5 {
                        document.unread.push(other.to_owned());
                    }
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            document.lists = true;
            map.next_value_seed(NullableList(ListSeed {
                feed: self.feed,
                list,
                shape: Some(shape),
            }))?;
        }
        Ok(document)
    }
}

/// An array of records fed to the builder as they are parsed. With no
/// shape given (a top-level array), the records decide: the first with a
/// distinctive field sets the shape for the whole array, and records before
/// it wait until then. The value is the shape the array held.
struct ListSeed<'s, 'f, 'a> {
    feed: &'s mut Feed<'f, 'a>,
    list: &'static str,
    shape: Option<Shape>,
}

impl<'a> DeserializeSeed<'a> for ListSeed<'_, '_, 'a> {
    type Value = Option<Shape>;
    fn deserialize<D: de::Deserializer<'a>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'a> Visitor<'a> for ListSeed<'_, '_, 'a> {
    type Value = Option<Shape>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of records")
    }

    fn visit_seq<S: SeqAccess<'a>>(self, mut seq: S) -> Result<Self::Value, S::Error> {
        let ListSeed {
            feed,
            list,
            mut shape,
        } = self;
        let fixed = shape.is_some();
        // Records seen before the array's shape is known, with their index.
        let mut waiting: Vec<(usize, WireRecord<'a>)> = Vec::new();
        let mut decided_at = 0;
        let mut index = 0;
        while let Some(wire::Object(record)) = seq.next_element::<wire::Object<WireRecord<'a>>>()? {
            let origin = feed.origin(list, index);
            index += 1;
            if !fixed {
                match (shape, record.shape()) {
                    (_, None) => {}
                    (None, Some(found)) => {
                        shape = Some(found);
                        decided_at = origin.index;
                        for (i, early) in std::mem::take(&mut waiting) {
                            let early_origin = feed.origin(list, i);
                            feed.take(found, early, early_origin)
                                .map_err(|e| feed.fail(e))?;
                        }
                    }
                    (Some(known), Some(found)) if known != found => {
                        let hint = if Shape::V1Principal == known || Shape::V1Principal == found {
                            "a v1 user/list export and v2 search records cannot share a file \
                             (v1 principals have no GUIDs to join on)"
                        } else {
                            "a search response holds one kind of record (pass users, groups and \
                             orgs as separate --from files)"
                        };
                        let error = InputError::Shape {
                            path: feed.path.to_path_buf(),
                            message: format!(
                                "[{}] looks like {} but [{decided_at}] looks like {}; {hint}",
                                origin.index,
                                found.describe(),
                                known.describe()
                            ),
                        };
                        return Err(feed.fail(error));
                    }
                    _ => {}
                }
            }
            match shape {
                Some(shape) => feed.take(shape, record, origin).map_err(|e| feed.fail(e))?,
                None => waiting.push((origin.index, record)),
            }
        }
        if !waiting.is_empty() {
            let Some(by_name) = shape_from_file_name(feed.path) else {
                let error = InputError::Shape {
                    path: feed.path.to_path_buf(),
                    message: "cannot tell whether this array holds users, groups or orgs: its records carry \
                              none of the fields that tell them apart; name the file after its content \
                              (users.json, groups.json, orgs.json)"
                        .into(),
                };
                return Err(feed.fail(error));
            };
            shape = Some(by_name);
            for (i, record) in waiting {
                let origin = feed.origin(list, i);
                feed.take(by_name, record, origin)
                    .map_err(|e| feed.fail(e))?;
            }
        }
        Ok(shape)
    }
}

/// A list that may also be `null` (nothing to add).
struct NullableList<'s, 'f, 'a>(ListSeed<'s, 'f, 'a>);

impl<'a> DeserializeSeed<'a> for NullableList<'_, '_, 'a> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'a>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_option(self)
    }
}

impl<'a> Visitor<'a> for NullableList<'_, '_, 'a> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of records or null")
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_some<D: de::Deserializer<'a>>(self, deserializer: D) -> Result<(), D::Error> {
        self.0.deserialize(deserializer).map(|_| ())
    }
}

/// `users.json` holds users, `groups.json` groups, `orgs.json` orgs.
fn shape_from_file_name(path: &Path) -> Option<Shape> {
    let name = path.file_name()?.to_string_lossy().to_lowercase();
    [
        ("org", Shape::Org),
        ("group", Shape::Group),
        ("user", Shape::User),
    ]
    .into_iter()
    .find(|(word, _)| name.contains(word))
    .map(|(_, shape)| shape)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(name: &str, json: &str) -> Result<Loaded, InputError> {
        load_bytes(name, json.as_bytes(), &LoadOptions::default())
    }

    #[test]
    fn inputs_without_users_and_groups_are_refused_unless_allowed() {
        for json in [
            "{}",
            "[]",
            r#"{"users": null}"#,
            r#"{"orgs": [{"id": 3, "name": "A"}]}"#,
        ] {
            let err = load("e.json", json).unwrap_err();
            assert!(matches!(err, InputError::Empty { .. }), "{json}: {err}");
            assert!(
                err.to_string()
                    .starts_with("e.json: no users and no groups"),
                "{err}"
            );
            let allowed = LoadOptions {
                allow_empty: true,
                ..LoadOptions::default()
            };
            let loaded = load_bytes("e.json", json.as_bytes(), &allowed).unwrap();
            assert!(loaded.principals.users.is_empty(), "{json}");
        }
        // One user, or one group, is not empty.
        assert!(load("u.json", r#"{"users": [{"id": "u", "name": "amy"}]}"#).is_ok());
        assert!(load("g.json", r#"{"groups": [{"id": "g", "name": "A"}]}"#).is_ok());
    }

    /// The message for files given together.
    fn error_of(files: &[(&str, &str)]) -> String {
        let files: Vec<(&Path, &[u8])> = files
            .iter()
            .map(|(name, json)| (Path::new(*name), json.as_bytes()))
            .collect();
        match load_files(&files, &LoadOptions::default()) {
            Ok(_) => panic!("{files:?} loaded"),
            Err(e) => e.to_string(),
        }
    }

    fn error(name: &str, json: &str) -> String {
        error_of(&[(name, json)])
    }

    const USER: &str = r#"{"id": "u", "name": "amy", "account_type": "LOCAL_USER"}"#;
    const GROUP: &str = r#"{"id": "g", "name": "A", "sub_groups": []}"#;
    const V1: &str = r#"{"name": "amy", "principalTypeEnum": "LOCAL_USER"}"#;
    const SNAPSHOT: &str = r#"{"schema_version": 1, "users": [{"id": "u", "name": "amy"}]}"#;

    /// Every way a file's kind can be wrong, ambiguous or mixed, with what
    /// the message must say (the file first).
    #[test]
    fn wrong_ambiguous_and_mixed_shapes_are_explained() {
        let cases: &[(&str, &str, &str)] = &[
            ("a.json", "", "a.json: the file is empty"),
            ("a.json", " \n\t", "a.json: the file is empty"),
            (
                "a.json",
                "null",
                "a.json: holds a single JSON value, `null`",
            ),
            (
                "a.json",
                "true",
                "a.json: holds a single JSON value, a boolean",
            ),
            (
                "a.json",
                "\"users\"",
                "a.json: holds a single JSON value, a string",
            ),
            (
                "a.json",
                "-42",
                "a.json: holds a single JSON value, a number",
            ),
            (
                "a.json",
                "<html><body>Sign in</body></html>",
                "a.json: not JSON but HTML",
            ),
            ("a.csv", "id,name", "a.csv: not JSON: it starts with 'i'"),
            (
                "a.json",
                r#"{"data": [{"id": "u"}], "total": 1}"#,
                "a.json: a JSON object with none of the keys ts-principals reads \
                 (`schema_version`, `orgs`, `users`, `groups`), only `data`, `total`",
            ),
            (
                "a.json",
                &format!("[{USER}, {GROUP}]"),
                "a.json: [1] looks like a group but [0] looks like a user; a search response \
                 holds one kind of record",
            ),
            (
                "a.json",
                &format!("[{V1}, {USER}]"),
                "a.json: [1] looks like a user but [0] looks like a v1 user/list principal; \
                 a v1 user/list export and v2 search records cannot share a file",
            ),
            (
                "data.json",
                r#"[{"id": "x", "name": "y"}]"#,
                "data.json: cannot tell whether this array holds users, groups or orgs",
            ),
            (
                "a.json",
                "[[1, 2]]",
                "at [0]: invalid type: sequence, expected a user, group or org record (a JSON object)",
            ),
            (
                "a.json",
                r#"{"users": {"id": "u"}}"#,
                "a.json:1:10: at users: invalid type: map, expected an array of records",
            ),
            (
                "a.json",
                r#"{"users": [{"id": "u", "name": "amy", "user_groups": ["g"]}]}"#,
                "at users[0].user_groups[0]: invalid type: string \"g\", expected a reference",
            ),
            (
                "a.json",
                r#"{"users": [{"id": 5, "name": "x"}]}"#,
                "a.json: users[0]: record (name \"x\") has the number 5 as `id`",
            ),
            (
                "a.json",
                r#"{"users": [{"id": "u"}]}"#,
                "a.json: users[0]: record (id \"u\") has no `name`",
            ),
            (
                "a.json",
                r#"{"schema_version": "1", "users": []}"#,
                "a.json: schema_version must be 1, found \"1\"",
            ),
            (
                "a.json",
                r#"{"schema_version": 0}"#,
                "a.json: schema_version must be 1, found 0",
            ),
            // Records of a newer schema must not be what the message is about.
            (
                "a.json",
                r#"{"schema_version": 2, "users": [{"uid": "u", "login": "amy"}]}"#,
                "a.json: schema_version 2 is newer than this ts-principals understands (1)",
            ),
        ];
        for (name, json, expected) in cases {
            let message = error(name, json);
            assert!(
                message.contains(expected),
                "{json}:\n{message}\nlacks\n{expected}"
            );
        }
    }

    #[test]
    fn files_of_kinds_that_do_not_combine_are_explained() {
        let array = |record: &str| format!("[{record}]");
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[("snap.json", SNAPSHOT), ("users.json", &array(GROUP))],
                "snap.json is a canonical snapshot, which is complete on its own",
            ),
            (
                &[("one.json", SNAPSHOT), ("two.json", SNAPSHOT)],
                "one.json is a canonical snapshot, which is complete on its own",
            ),
            (
                &[("v1.json", &array(V1)), ("groups.json", &array(GROUP))],
                "a v1 user/list export cannot be combined with v2 files",
            ),
        ];
        for (files, expected) in cases {
            let message = error_of(files);
            assert!(message.contains(expected), "{files:?}:\n{message}");
        }
    }

    #[test]
    fn records_without_telling_fields_take_the_kind_from_the_file_name() {
        let plain = r#"[{"id": "x", "name": "y"}]"#;
        let users = load("users.json", plain).unwrap();
        assert_eq!(
            (users.principals.users.len(), users.kind),
            (1, InputKind::V2Split)
        );
        let groups = load("exported-groups.json", plain).unwrap();
        assert_eq!(groups.principals.groups.len(), 1);
        // The first telling record decides for those before it, whatever the name.
        let late = format!(r#"[{{"id": "x", "name": "y"}}, {GROUP}]"#);
        assert_eq!(
            load("users.json", &late).unwrap().principals.groups.len(),
            2
        );
    }

    #[test]
    fn a_response_that_is_an_object_is_explained() {
        let response: (&str, &[u8]) = ("POST /api/rest/2.0/users/search", br#"{"users": []}"#);
        let message = from_responses(Source::default(), [response], None)
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("users/search: the response is a JSON object"),
            "{message}"
        );
    }
}
