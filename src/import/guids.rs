//! The GUID map, `OUT/guids.json`: the GUID each object got on each cluster
//! and org it was imported into, so the next import updates the same
//! objects instead of creating new ones. Committed beside the TML, so it is
//! canonical (sorted, one form) and diffs line by line.
//!
//! ```json
//! {
//!   "schema_version": 1,
//!   "tool": "ts-principals",
//!   "objects": [
//!     {"cluster": "prod-cluster", "org_id": 0, "org": "Primary", "kind": "table",
//!      "name": "TS_USERS", "guid": "0f4c…"}
//!   ]
//! }
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::render::{Guids, TmlKind};

/// The map's file name, in the output directory.
pub const FILE: &str = "guids.json";

/// The only schema version written and read.
const SCHEMA_VERSION: u32 = 1;

/// Where objects are imported: a cluster (its id) and an org in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The cluster's id (`GET /api/rest/2.0/system`).
    pub cluster: String,
    /// The org's id (0 on clusters without orgs: Primary).
    pub org_id: i64,
    /// The org's name, when known.
    pub org_name: Option<String>,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.org_name {
            Some(name) => write!(f, "cluster {}, org {} ({name})", self.cluster, self.org_id),
            None => write!(f, "cluster {}, org {}", self.cluster, self.org_id),
        }
    }
}

/// The map could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum GuidMapError {
    /// Reading or writing the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a GUID map we can use.
    #[error(
        "{path}: {problem}; fix it (it is JSON, normally kept in git: `git checkout` restores \
         it), or move it away to let import find the objects by name again"
    )]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, with where.
        problem: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    cluster: String,
    org_id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    org: Option<String>,
    kind: String,
    name: String,
    guid: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    schema_version: u32,
    tool: String,
    objects: Vec<Entry>,
}

/// (cluster, org id, kind, name).
type Key = (String, i64, TmlKind, String);

/// The GUID map.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GuidMap {
    objects: BTreeMap<Key, (String, Option<String>)>,
}

/// Whether `guid` looks like a ThoughtSpot GUID: letters, digits and `-`,
/// at most 64 of them. Anything else is refused before it reaches a file.
pub fn is_guid(guid: &str) -> bool {
    !guid.is_empty()
        && guid.len() <= 64
        && guid.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

impl GuidMap {
    /// Reads the map at `path`; a missing file is an empty map.
    pub fn read(path: &Path) -> Result<Self, GuidMapError> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(source) => {
                return Err(GuidMapError::Io {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        let invalid = |problem: String| GuidMapError::Invalid {
            path: path.to_path_buf(),
            problem,
        };
        let mut deserializer = serde_json::Deserializer::from_slice(&bytes);
        let file: File = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
            let at = match e.path().to_string() {
                path if path == "?" || path == "." => String::new(),
                path => format!(" (at {path})"),
            };
            invalid(format!("not a GUID map: {}{at}", e.inner()))
        })?;
        if file.schema_version != SCHEMA_VERSION || file.tool != crate::output::TOOL {
            return Err(invalid(format!(
                "schema_version {} of tool {:?}; this ts-principals reads version {SCHEMA_VERSION} \
                 of {:?}",
                file.schema_version,
                file.tool,
                crate::output::TOOL
            )));
        }
        let mut map = Self::default();
        for (n, entry) in file.objects.into_iter().enumerate() {
            let place = format!("objects[{n}] ({} {:?})", entry.kind, entry.name);
            let at = || place.clone();
            let kind = TmlKind::ALL
                .into_iter()
                .find(|k| k.name() == entry.kind)
                .ok_or_else(|| {
                    invalid(format!("{}: kind must be table, model or worksheet", at()))
                })?;
            if !is_guid(&entry.guid) {
                return Err(invalid(format!(
                    "{}: {:?} is not a GUID (letters, digits and -)",
                    at(),
                    entry.guid
                )));
            }
            if entry.cluster.is_empty() || entry.name.is_empty() {
                return Err(invalid(format!("{}: an empty cluster or name", at())));
            }
            let twice = (map.objects.iter()).find(|((c, o, _, _), (g, _))| {
                *c == entry.cluster && *o == entry.org_id && g.eq_ignore_ascii_case(&entry.guid)
            });
            if let Some(((_, _, other_kind, other), _)) = twice {
                return Err(invalid(format!(
                    "{}: GUID {} is also recorded for {} {other:?}; one object, one GUID",
                    at(),
                    entry.guid,
                    other_kind.name()
                )));
            }
            let key = (entry.cluster, entry.org_id, kind, entry.name);
            if map.objects.contains_key(&key) {
                return Err(invalid(format!(
                    "{} appears twice for cluster {}, org {}",
                    at(),
                    key.0,
                    key.1
                )));
            }
            map.objects.insert(key, (entry.guid, entry.org));
        }
        Ok(map)
    }

    /// The canonical text: sorted by cluster, org, kind and name, one
    /// object per line.
    pub fn to_text(&self) -> String {
        let mut text = format!(
            "{{\n  \"schema_version\": {SCHEMA_VERSION},\n  \"tool\": \"{}\",\n  \"objects\": [",
            crate::output::TOOL
        );
        for (n, ((cluster, org_id, kind, name), (guid, org))) in self.objects.iter().enumerate() {
            let entry = Entry {
                cluster: cluster.clone(),
                org_id: *org_id,
                org: org.clone(),
                kind: kind.name().to_owned(),
                name: name.clone(),
                guid: guid.clone(),
            };
            let line = serde_json::to_string(&entry).unwrap_or_default();
            text.push_str(if n == 0 { "\n    " } else { ",\n    " });
            text.push_str(&line);
        }
        text.push_str(if self.objects.is_empty() {
            "]\n}\n"
        } else {
            "\n  ]\n}\n"
        });
        text
    }

    /// Writes the map to `path` atomically.
    pub fn write(&self, path: &Path) -> Result<(), GuidMapError> {
        crate::atomic::write_file(
            path,
            self.to_text().as_bytes(),
            crate::atomic::Access::Default,
        )
        .map_err(|source| GuidMapError::Io {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Whether the map holds nothing.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// The GUID of `kind` `name` in `target`.
    pub fn get(&self, target: &Target, kind: TmlKind, name: &str) -> Option<&str> {
        let key = (target.cluster.clone(), target.org_id, kind, name.to_owned());
        self.objects.get(&key).map(|(guid, _)| guid.as_str())
    }

    /// Records the GUID of `kind` `name` in `target`.
    pub fn set(&mut self, target: &Target, kind: TmlKind, name: &str, guid: &str) {
        let key = (target.cluster.clone(), target.org_id, kind, name.to_owned());
        self.objects
            .insert(key, (guid.to_owned(), target.org_name.clone()));
    }

    /// Forgets `kind` `name` in `target`; returns the GUID it had.
    pub fn remove(&mut self, target: &Target, kind: TmlKind, name: &str) -> Option<String> {
        let key = (target.cluster.clone(), target.org_id, kind, name.to_owned());
        self.objects.remove(&key).map(|(guid, _)| guid)
    }

    /// The org of `cluster` whose name is `name` (ignoring case), as the
    /// map recorded it.
    pub fn org_named(&self, cluster: &str, name: &str) -> Option<i64> {
        (self.objects.iter())
            .find(|((c, _, _, _), (_, org))| {
                c == cluster && org.as_deref().is_some_and(|o| o.eq_ignore_ascii_case(name))
            })
            .map(|((_, org_id, _, _), _)| *org_id)
    }

    /// The kind the map records `guid` as in `target`, if any.
    pub fn kind_of(&self, target: &Target, guid: &str) -> Option<TmlKind> {
        (self.objects.iter())
            .find(|((c, o, _, _), (g, _))| *c == target.cluster && *o == target.org_id && g == guid)
            .map(|((_, _, kind, _), _)| *kind)
    }

    /// Every object of `target`: kind, name, GUID.
    pub fn objects_of(&self, target: &Target) -> Vec<(TmlKind, String, String)> {
        (self.objects.iter())
            .filter(|((c, o, _, _), _)| *c == target.cluster && *o == target.org_id)
            .map(|((_, _, kind, name), (guid, _))| (*kind, name.clone(), guid.clone()))
            .collect()
    }

    /// The clusters the map holds.
    pub fn clusters(&self) -> BTreeSet<&str> {
        self.objects.keys().map(|(c, _, _, _)| c.as_str()).collect()
    }

    /// The orgs of `cluster` the map holds, with their names.
    pub fn orgs(&self, cluster: &str) -> BTreeMap<i64, Option<&str>> {
        (self.objects.iter())
            .filter(|((c, _, _, _), _)| c == cluster)
            .map(|((_, org_id, _, _), (_, org))| (*org_id, org.as_deref()))
            .collect()
    }

    /// The target whose GUIDs `generate` writes into the TML of data of
    /// `cluster`: that cluster (else the map's only one), in the Primary
    /// org when the map holds it, else the org with the lowest id. Import
    /// sets each org's own GUIDs whatever the files carry.
    pub fn output_target(&self, cluster: &str) -> Option<Target> {
        let clusters = self.clusters();
        let cluster = if clusters.contains(cluster) {
            cluster
        } else if clusters.len() == 1 {
            clusters.first().copied()?
        } else {
            return None;
        };
        let orgs = self.orgs(cluster);
        let (&org_id, name) = orgs.get_key_value(&0).or_else(|| orgs.first_key_value())?;
        if orgs.len() > 1 {
            tracing::info!(
                "{FILE} holds GUIDs of {} orgs of cluster {cluster}; the TML carries those of \
                 org {org_id} (import sets each org's own)",
                orgs.len()
            );
        }
        Some(Target {
            cluster: cluster.to_owned(),
            org_id,
            org_name: name.map(str::to_owned),
        })
    }

    /// Every GUID of `target`, by kind and name: what rendering writes.
    pub fn guids(&self, target: &Target) -> Guids {
        (self.objects.iter())
            .filter(|((c, o, _, _), _)| *c == target.cluster && *o == target.org_id)
            .map(|((_, _, kind, name), (guid, _))| ((*kind, name.clone()), guid.clone()))
            .collect()
    }
}

/// Fails when the map at `path` could not be written (its directory
/// missing or not writable, or a directory in its place): found before
/// the cluster is changed, not after.
pub fn check_writable(path: &Path) -> Result<(), GuidMapError> {
    let io = |source| GuidMapError::Io {
        path: path.to_path_buf(),
        source,
    };
    if path.is_dir() {
        return Err(io(std::io::Error::new(
            std::io::ErrorKind::IsADirectory,
            "a directory is where the GUID map goes; move it away or give --guids FILE",
        )));
    }
    let dir = (path.parent())
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    tempfile::Builder::new()
        .prefix(".guids-probe.")
        .tempfile_in(dir)
        .map(drop)
        .map_err(io)
}

/// The GUIDs `generate` writes for data of `cluster` into the output
/// directory `out`: those its map records for that cluster (see
/// [`GuidMap::output_target`]); none without a map.
pub fn for_output(out: &Path, cluster: &str) -> Result<Guids, GuidMapError> {
    let map = GuidMap::read(&out.join(FILE))?;
    Ok(map
        .output_target(cluster)
        .map(|target| map.guids(&target))
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(cluster: &str, org_id: i64) -> Target {
        Target {
            cluster: cluster.into(),
            org_id,
            org_name: Some(format!("Org {org_id}")),
        }
    }

    #[test]
    fn the_map_is_canonical_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let mut map = GuidMap::default();
        map.set(&target("b", 5), TmlKind::Table, "TS_USERS", "guid-b5");
        map.set(&target("a", 0), TmlKind::Model, "TS: Users", "guid-a0m");
        map.set(&target("a", 0), TmlKind::Table, "TS_USERS", "guid-a0t");
        map.write(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let a = text.find("guid-a0t").unwrap();
        let m = text.find("guid-a0m").unwrap();
        let b = text.find("guid-b5").unwrap();
        assert!(a < m && m < b, "{text}");
        let back = GuidMap::read(&path).unwrap();
        assert_eq!(back, map);
        assert_eq!(back.to_text(), text);
        assert_eq!(
            back.get(&target("a", 0), TmlKind::Table, "TS_USERS"),
            Some("guid-a0t")
        );
        assert_eq!(back.get(&target("a", 5), TmlKind::Table, "TS_USERS"), None);
        assert_eq!(back.org_named("b", "org 5"), Some(5));
        assert_eq!(GuidMap::default().to_text().lines().count(), 5);
        assert_eq!(
            GuidMap::read(&dir.path().join("none.json")).unwrap(),
            GuidMap::default()
        );
    }

    #[test]
    fn the_output_carries_one_orgs_guids() {
        let mut map = GuidMap::default();
        map.set(&target("a", 7), TmlKind::Table, "T", "g7");
        map.set(&target("a", 3), TmlKind::Table, "T", "g3");
        assert_eq!(map.output_target("a").unwrap().org_id, 3);
        map.set(&target("a", 0), TmlKind::Table, "T", "g0");
        let chosen = map.output_target("a").unwrap();
        assert_eq!(chosen.org_id, 0);
        assert_eq!(map.guids(&chosen).len(), 1);
        // The data's cluster id may differ from the one imported into.
        assert_eq!(map.output_target("other").unwrap().cluster, "a");
        map.set(&target("b", 0), TmlKind::Table, "T", "gb");
        assert_eq!(map.output_target("other"), None);
    }

    #[test]
    fn bad_maps_are_refused_with_where() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        for (text, expect) in [
            ("{", "line"),
            (
                r#"{"schema_version": 2, "tool": "ts-principals", "objects": []}"#,
                "version",
            ),
            (
                r#"{"schema_version": 1, "tool": "ts-principals", "objects": [{"cluster": "a", "org_id": 0, "kind": "view", "name": "x", "guid": "g"}]}"#,
                "kind must be",
            ),
            (
                r#"{"schema_version": 1, "tool": "ts-principals", "objects": [{"cluster": "a", "org_id": 0, "kind": "table", "name": "x", "guid": "g\"\n"}]}"#,
                "not a GUID",
            ),
            (
                r#"{"schema_version": 1, "tool": "ts-principals", "objects": [{"cluster": "a", "org_id": 0, "kind": "table", "name": "x", "guid": "g"}, {"cluster": "a", "org_id": 0, "kind": "table", "name": "x", "guid": "h"}]}"#,
                "twice",
            ),
            (
                r#"{"schema_version": 1, "tool": "ts-principals", "objects": [{"cluster": "a", "org_id": 0, "kind": "table", "name": "x", "guid": "g"}, {"cluster": "a", "org_id": 0, "kind": "model", "name": "y", "guid": "G"}]}"#,
                "one object, one GUID",
            ),
        ] {
            std::fs::write(&path, text).unwrap();
            let error = GuidMap::read(&path).unwrap_err().to_string();
            assert!(error.contains(expect), "{text}: {error}");
            assert!(error.contains(FILE), "{error}");
        }
    }
}
