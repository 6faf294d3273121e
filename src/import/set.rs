//! The TML set an import sends: the files of a directory, checked as one
//! import, in dependency order, each with the identity (root `guid:`,
//! model `fqn:`) of the cluster and org it goes to.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::render::TmlKind;
use crate::render::check::{self, Parsed};

/// One TML file of the set.
#[derive(Clone, Debug)]
pub struct Document {
    /// The file name.
    pub file: String,
    /// What it defines.
    pub kind: TmlKind,
    /// The object's name.
    pub name: String,
    /// The text as the file holds it.
    pub text: String,
    /// For a table: its connection (none for Falcon), db, schema and
    /// db_table.
    pub table: Option<TablePlace>,
    /// For a table: the tables its joins reach.
    pub joins_to: Vec<String>,
}

/// Where a table's data lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TablePlace {
    /// The connection's name; none for Falcon.
    pub connection: Option<String>,
    /// The database.
    pub db: Option<String>,
    /// The schema.
    pub schema: Option<String>,
    /// The database table.
    pub db_table: Option<String>,
}

/// The set could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SetError {
    /// The directory or a file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The directory holds no TML.
    #[error(
        "{dir} holds no .table.tml, .model.tml or .worksheet.tml file; --tml names the tml \
         directory `ts-principals generate` wrote (OUT/tml)"
    )]
    Empty {
        /// The directory.
        dir: PathBuf,
    },
    /// Files are not valid TML, or do not fit together.
    #[error(
        "the TML in {dir} cannot be imported:\n{}\nfix the files (or run `ts-principals generate` \
         again) before importing",
        problems.iter().map(|(f, m)| format!("  {f}: {m}")).collect::<Vec<_>>().join("\n")
    )]
    Invalid {
        /// The directory.
        dir: PathBuf,
        /// (file, problem).
        problems: Vec<(String, String)>,
    },
}

/// Reads every TML file in `dir` (not its subdirectories), checks each as
/// ThoughtSpot would read it (YAML 1.1, the TML structure) and the set as
/// one import (every table, column and join it refers to is in it), and
/// returns the documents in the order they must be imported: tables
/// before the tables that join to them, then models and worksheets.
pub fn read(dir: &Path) -> Result<Vec<Document>, SetError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SetError::Io { path, source }
    };
    let mut names: Vec<String> = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        match (TmlKind::of_file(&name), entry.path().is_file()) {
            (Some(_), true) => names.push(name),
            (Some(_), false) => tracing::warn!(
                "{}: not a regular file (a directory, or a link to nothing); not imported",
                entry.path().display()
            ),
            (None, _) if name.ends_with(".tml") => tracing::warn!(
                "{}: not a .table.tml, .model.tml or .worksheet.tml file; not imported",
                entry.path().display()
            ),
            (None, _) => {}
        }
    }
    names.sort();
    if names.is_empty() {
        return Err(SetError::Empty {
            dir: dir.to_path_buf(),
        });
    }
    let mut problems = Vec::new();
    let mut parsed = Vec::new();
    let mut documents = Vec::new();
    for file in names {
        let path = dir.join(&file);
        let bytes = std::fs::read(&path).map_err(io(&path))?;
        let Ok(mut text) = String::from_utf8(bytes) else {
            problems.push((file, "is not UTF-8 text".to_owned()));
            continue;
        };
        // A byte order mark is no part of the document.
        if let Some(rest) = text.strip_prefix('\u{feff}') {
            text = rest.to_owned();
        }
        let Some(kind) = TmlKind::of_file(&file) else {
            continue;
        };
        match check::parse(kind, &text) {
            Err(message) => problems.push((file, message)),
            Ok(document) => {
                if let Err(message) = editable(kind, &text) {
                    problems.push((file, message));
                    continue;
                }
                let (table, joins_to) = match &document {
                    Parsed::Table(t) => (
                        Some(TablePlace {
                            connection: t.connection.as_ref().and_then(|c| c.name.clone()),
                            db: t.db.clone(),
                            schema: t.schema.clone(),
                            db_table: t.db_table.clone(),
                        }),
                        t.joins_with
                            .iter()
                            .map(|j| j.destination().to_owned())
                            .collect(),
                    ),
                    Parsed::Model(_) => (None, Vec::new()),
                };
                documents.push(Document {
                    file: file.clone(),
                    kind,
                    name: document.name().to_owned(),
                    text,
                    table,
                    joins_to,
                });
                parsed.push((file, document));
            }
        }
    }
    // A file that cannot be read would make every reference to it a
    // problem too: those come once the files read.
    if problems.is_empty() {
        problems.extend(
            check::check_set(&parsed)
                .into_iter()
                .map(|p| (p.file, p.message)),
        );
    }
    let mut seen: BTreeMap<(TmlKind, &str), &str> = BTreeMap::new();
    for d in &documents {
        if let Some(other) = seen.insert((d.kind, &d.name), &d.file) {
            problems.push((
                d.file.clone(),
                format!(
                    "defines {} {:?} as {other} does; one object, one file",
                    d.kind.name(),
                    d.name
                ),
            ));
        }
    }
    if !problems.is_empty() {
        return Err(SetError::Invalid {
            dir: dir.to_path_buf(),
            problems,
        });
    }
    Ok(in_dependency_order(documents))
}

/// Tables first, each after the tables its joins reach (a cycle is broken
/// in name order), then models and worksheets; ties in file order.
fn in_dependency_order(documents: Vec<Document>) -> Vec<Document> {
    let (mut tables, others): (Vec<Document>, Vec<Document>) = documents
        .into_iter()
        .partition(|d| d.kind == TmlKind::Table);
    let names: BTreeSet<String> = tables.iter().map(|d| d.name.clone()).collect();
    let mut placed: BTreeSet<String> = BTreeSet::new();
    let mut ordered = Vec::with_capacity(tables.len() + others.len());
    while !tables.is_empty() {
        let ready = tables.iter().position(|d| {
            (d.joins_to.iter())
                .all(|to| to == &d.name || placed.contains(to) || !names.contains(to))
        });
        let next = tables.remove(ready.unwrap_or(0));
        placed.insert(next.name.clone());
        ordered.push(next);
    }
    ordered.extend(others);
    ordered
}

/// Whether the GUIDs of a file laid out as `text` can be set (see
/// [`with_identity`]), checked with made-up GUIDs before anything is sent.
fn editable(kind: TmlKind, text: &str) -> Result<(), String> {
    const PROBE: &str = "00000000-0000-4000-8000-000000000000";
    let identity = check::identity(text)?;
    let tables = (identity.tables.iter())
        .map(|(name, _)| (name.clone(), PROBE.to_owned()))
        .collect();
    let document = Document {
        file: String::new(),
        kind,
        name: identity.name.unwrap_or_default(),
        text: text.to_owned(),
        table: None,
        joins_to: Vec::new(),
    };
    with_identity(&document, Some(PROBE), &tables)
        .and_then(|_| with_identity(&document, None, &BTreeMap::new()))
        .map(|_| ())
}

/// `text` with its root `guid:` set to `guid` (or removed), and, for a
/// model or worksheet, each named table's `fqn:` set to the GUID in
/// `tables` (or removed). The result is read back and checked, so a
/// file laid out in a way this cannot edit is reported, not sent wrong.
pub fn with_identity(
    document: &Document,
    guid: Option<&str>,
    tables: &BTreeMap<String, String>,
) -> Result<String, String> {
    let mut lines: Vec<String> = Vec::new();
    let mut body = document.text.lines().peekable();
    // A document start marker stays first.
    if let Some(start) = body.next_if(|line| line.trim_end() == "---") {
        lines.push(start.to_owned());
    }
    if let Some(guid) = guid {
        lines.push(format!("guid: {}", crate::render::yaml::quote(guid)));
    }
    lines.extend(
        body.filter(|line| !line.starts_with("guid:"))
            .map(str::to_owned),
    );
    if document.kind != TmlKind::Table {
        lines = with_fqns(lines, tables)?;
    }
    let mut text = lines.join("\n");
    if document.text.ends_with('\n') {
        text.push('\n');
    }
    let found = check::identity(&text)?;
    let expected: Vec<(String, Option<String>)> = (found.tables.iter())
        .map(|(name, _)| (name.clone(), tables.get(name).cloned()))
        .collect();
    if found.guid.as_deref() != guid || found.tables != expected {
        return Err(
            "the root guid: or the tables' fqn: cannot be set in this file's layout (the \
             model's table list must be a block list of `- name:` entries); write it as \
             `ts-principals generate` does"
                .to_owned(),
        );
    }
    check::parse(document.kind, &text)?;
    Ok(text)
}

/// Sets or removes `fqn:` in the entries of the root object's
/// `model_tables:` (or `tables:`) list, each of which must start
/// `- name:`, however the document is indented.
fn with_fqns(lines: Vec<String>, tables: &BTreeMap<String, String>) -> Result<Vec<String>, String> {
    let indent = |line: &str| line.len() - line.trim_start().len();
    let content = |line: &str| !line.trim().is_empty() && !line.trim_start().starts_with('#');
    // The indentation of the root object's keys: its first content line's.
    let mut root_keys: Option<usize> = None;
    let mut in_root = false;
    let mut out = Vec::with_capacity(lines.len());
    // Inside the list: the indentation of its key, and of its entries'
    // dashes once seen.
    let mut list: Option<(usize, Option<usize>)> = None;
    for line in lines {
        let at = indent(&line);
        let trimmed = line.trim_start();
        if content(&line) && at == 0 {
            in_root = trimmed == "model:" || trimmed == "worksheet:";
            list = None;
        } else if in_root && content(&line) && root_keys.is_none() {
            root_keys = Some(at);
        }
        if let Some((key, dash)) = list
            && content(&line)
        {
            let dash = dash.unwrap_or(at);
            if trimmed.starts_with("- ") && at == dash && at >= key {
                let Some(value) = trimmed.strip_prefix("- name:") else {
                    return Err(format!(
                        "line {:?}: each table of the list must start with `- name:`",
                        line.trim()
                    ));
                };
                let name: String = serde_saphyr::from_str(value.trim())
                    .map_err(|e| format!("line {:?}: {e}", line.trim()))?;
                list = Some((key, Some(dash)));
                out.push(line);
                if let Some(guid) = tables.get(&name) {
                    let quoted = crate::render::yaml::quote(guid);
                    out.push(format!("{}fqn: {quoted}", " ".repeat(dash + 2)));
                }
                continue;
            }
            if at <= key {
                list = None;
            } else if at == dash + 2 && trimmed.starts_with("fqn:") {
                continue;
            }
        }
        if list.is_none()
            && in_root
            && Some(at) == root_keys
            && matches!(trimmed.trim_end(), "model_tables:" | "tables:")
        {
            list = Some((at, None));
        }
        out.push(line);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activity::Held;
    use crate::render::{Templates, TmlSettings, render_all};

    fn rendered(settings: &TmlSettings) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for file in render_all(settings, &Templates::builtin(), &Held::new()).unwrap() {
            std::fs::write(dir.path().join(&file.file_name), &file.text).unwrap();
        }
        dir
    }

    #[test]
    fn tables_come_before_what_joins_to_them_and_the_model_last() {
        let dir = rendered(&TmlSettings::default());
        let set = read(dir.path()).unwrap();
        let position = |name: &str| set.iter().position(|d| d.name == name).unwrap();
        for d in &set {
            for to in &d.joins_to {
                assert!(position(to) < position(&d.name), "{} before {to}", d.name);
            }
        }
        assert_eq!(set.last().unwrap().kind, TmlKind::Model);
        assert!(
            set[..set.len() - 1]
                .iter()
                .all(|d| d.kind == TmlKind::Table)
        );
    }

    #[test]
    fn identities_are_set_and_removed_as_generate_would_write_them() {
        for format in [
            crate::config::TmlFormat::Model,
            crate::config::TmlFormat::Worksheet,
        ] {
            let plain = TmlSettings {
                format,
                ..TmlSettings::default()
            };
            let set = read(rendered(&plain).path()).unwrap();
            let mut guids = crate::render::Guids::new();
            let mut tables = BTreeMap::new();
            for (n, d) in set.iter().enumerate() {
                let guid = format!("0000000{n}-aaaa-4000-8000-00000000000{n}");
                if d.kind == TmlKind::Table {
                    tables.insert(d.name.clone(), guid.clone());
                }
                guids.insert((d.kind, d.name.clone()), guid);
            }
            let with = TmlSettings {
                guids: guids.clone(),
                ..plain.clone()
            };
            let expected = read(rendered(&with).path()).unwrap();
            for (d, e) in set.iter().zip(&expected) {
                let guid = guids.get(&(d.kind, d.name.clone())).map(String::as_str);
                let text = with_identity(d, guid, &tables).unwrap();
                assert_eq!(text, e.text, "{}", d.file);
                // And back.
                let without = with_identity(e, None, &BTreeMap::new()).unwrap();
                assert_eq!(without, d.text, "{}", d.file);
            }
        }
    }

    #[test]
    fn identities_are_set_in_other_indentations_and_odd_layouts_are_refused_early() {
        let set = read(rendered(&TmlSettings::default()).path()).unwrap();
        let model = set.iter().find(|d| d.kind == TmlKind::Model).unwrap();
        let wide: String = (model.text.lines())
            .map(|l| match l.len() - l.trim_start().len() {
                0 => format!("{l}\n"),
                _ => format!("  {l}\n"),
            })
            .collect();
        let wide = Document {
            text: wide,
            ..model.clone()
        };
        let tables: BTreeMap<String, String> = [("TS_USERS".to_owned(), "g-1".to_owned())].into();
        let text = with_identity(&wide, Some("g-m"), &tables).unwrap();
        assert!(text.starts_with("guid: \"g-m\"\n"), "{text}");
        assert!(
            text.contains("    - name: \"TS_USERS\"\n      fqn: \"g-1\"\n"),
            "{text}"
        );
        assert!(editable(TmlKind::Model, &wide.text).is_ok());
        let flow = model
            .text
            .replacen("  - name: \"TS_USERS\"\n", "  - {name: \"TS_USERS\"}\n", 1);
        assert!(editable(TmlKind::Model, &flow).is_err());
    }

    #[test]
    fn a_set_that_does_not_hold_together_is_refused_naming_the_file() {
        let dir = rendered(&TmlSettings::default());
        std::fs::remove_file(dir.path().join("TS_USERS.table.tml")).unwrap();
        let error = read(dir.path()).map(|_| ()).unwrap_err().to_string();
        assert!(error.contains("TS_USERS"), "{error}");
        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(read(empty.path()), Err(SetError::Empty { .. })));
        let dir = rendered(&TmlSettings::default());
        let path = dir.path().join("TS_GROUPS.table.tml");
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replace("\"on\":", "on:")).unwrap();
        let error = read(dir.path()).map(|_| ()).unwrap_err().to_string();
        assert!(
            error.contains("TS_GROUPS.table.tml") && error.contains("YAML 1.1"),
            "{error}"
        );
    }
}
