//! The requests an import makes: which objects exist (`metadata/search`)
//! and the import itself (`metadata/tml/import`, sent once).

use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use super::ImportError;
use super::set::{Document, TablePlace};
use crate::client::ClientError;
use crate::client::auth::Scope;
use crate::client::v2::V2;
use crate::render::TmlKind;

/// Path of the metadata search.
pub const SEARCH_PATH: &str = "/api/rest/2.0/metadata/search";
/// Path of the TML import.
pub const IMPORT_PATH: &str = "/api/rest/2.0/metadata/tml/import";

/// An object the cluster lists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    /// Its GUID.
    pub guid: String,
    /// Its name.
    pub name: String,
    /// `metadata_header.type`: `ONE_TO_ONE_LOGICAL` for a table,
    /// `WORKSHEET` for a worksheet or model, when given.
    pub header_type: Option<String>,
    /// A table's connection (`dataSourceName`), database and schema, when
    /// given.
    pub connection: Option<String>,
    /// `worksheetVersion`: `V2` for a model, `V1` for a worksheet, when
    /// given.
    pub worksheet_version: Option<String>,
    /// `databaseStripe`.
    pub db: Option<String>,
    /// `schemaStripe`.
    pub schema: Option<String>,
}

#[derive(Deserialize)]
struct Entry {
    #[serde(default)]
    metadata_id: Option<String>,
    #[serde(default)]
    metadata_name: Option<String>,
    #[serde(default)]
    metadata_header: Option<Value>,
}

impl Listed {
    /// The kind the header says this is, when it says: a model or a
    /// worksheet by `worksheetVersion`, a table by any other type.
    pub fn kind(&self) -> Option<TmlKind> {
        let t = self.header_type.as_deref()?;
        if !t.eq_ignore_ascii_case("WORKSHEET") {
            return Some(TmlKind::Table);
        }
        match self.worksheet_version.as_deref() {
            Some(v) if v.eq_ignore_ascii_case("V2") => Some(TmlKind::Model),
            Some(v) if v.eq_ignore_ascii_case("V1") => Some(TmlKind::Worksheet),
            _ => None,
        }
    }

    /// Whether this can be `kind` (the header's type, when given, says;
    /// models and worksheets are told apart later, with a message).
    pub fn is(&self, kind: TmlKind) -> bool {
        match (self.header_type.as_deref(), kind) {
            (None, _) => true,
            (Some(t), TmlKind::Table) => !t.eq_ignore_ascii_case("WORKSHEET"),
            (Some(t), _) => t.eq_ignore_ascii_case("WORKSHEET"),
        }
    }

    /// Whether what the cluster says of the table's place agrees with
    /// `place` (what it does not say is taken to agree).
    fn is_at(&self, place: &TablePlace) -> bool {
        let agrees = |listed: &Option<String>, ours: &Option<String>| match (listed, ours) {
            (Some(listed), Some(ours)) => listed.eq_ignore_ascii_case(ours),
            _ => true,
        };
        agrees(&self.connection, &place.connection)
            && agrees(&self.db, &place.db)
            && agrees(&self.schema, &place.schema)
    }
}

/// Lists the LOGICAL_TABLE objects `identifiers` (GUIDs or names) name, in
/// `scope`.
pub async fn search(
    api: &V2<'_>,
    identifiers: &[&str],
    scope: Scope,
) -> Result<Vec<Listed>, ImportError> {
    if identifiers.is_empty() {
        return Ok(Vec::new());
    }
    let metadata: Vec<Value> = (identifiers.iter())
        .map(|id| json!({"type": "LOGICAL_TABLE", "identifier": id}))
        .collect();
    let request = json!({
        "metadata": metadata,
        "record_offset": 0,
        "record_size": 100 + identifiers.len() * 10,
    });
    let body = api
        .call(Method::POST, SEARCH_PATH, Some(&request), scope)
        .await?
        .success(&Method::POST, SEARCH_PATH)?;
    let entries: Vec<Entry> = serde_json::from_slice(&body).map_err(|e| ImportError::Answer {
        what: format!("POST {SEARCH_PATH}"),
        problem: format!("not a list of metadata objects ({e})"),
    })?;
    let text = |header: Option<&Value>, key: &str| {
        header
            .and_then(|h| h.get(key))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    Ok(entries
        .into_iter()
        .filter_map(|e| {
            let header = e.metadata_header.as_ref();
            Some(Listed {
                guid: e.metadata_id.or_else(|| text(header, "id"))?,
                name: e.metadata_name.or_else(|| text(header, "name"))?,
                header_type: text(header, "type"),
                worksheet_version: text(header, "worksheetVersion"),
                connection: text(header, "dataSourceName"),
                db: text(header, "databaseStripe"),
                schema: text(header, "schemaStripe"),
            })
        })
        .collect())
}

/// The objects on the cluster that may be `document`'s: of its name and
/// kind, and for a table in the same connection, database and schema.
pub fn candidates<'l>(listed: &'l [Listed], document: &Document) -> Vec<&'l Listed> {
    let mut found: Vec<&Listed> = (listed.iter())
        .filter(|l| l.name.eq_ignore_ascii_case(&document.name) && l.is(document.kind))
        .filter(|l| document.table.as_ref().is_none_or(|place| l.is_at(place)))
        .collect();
    found.sort_by(|a, b| a.guid.cmp(&b.guid));
    found.dedup_by(|a, b| a.guid == b.guid);
    found
}

/// What the cluster said of one document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// `OK`, `WARNING` or `ERROR` (anything else is kept as sent).
    pub status: String,
    /// The message, if any.
    pub message: Option<String>,
    /// The object's GUID, if given.
    pub guid: Option<String>,
}

#[derive(Deserialize)]
struct Item {
    #[serde(default)]
    response: Option<Value>,
    #[serde(default)]
    status: Option<Value>,
    #[serde(default)]
    header: Option<Value>,
}

/// Sends the import once and reads one answer per document.
pub async fn import(
    api: &V2<'_>,
    tmls: &[String],
    policy: &str,
    scope: Scope,
) -> Result<Vec<Answer>, ImportError> {
    let request = json!({
        "metadata_tmls": tmls,
        "import_policy": policy,
        "create_new": false,
    });
    let reply = api
        .call_once(Method::POST, IMPORT_PATH, Some(&request), scope)
        .await
        .map_err(|source| match source {
            // Refused before anything was done.
            ClientError::Auth { .. } | ClientError::Setup(_) => ImportError::Refused {
                source: Box::new(source),
            },
            _ => ImportError::Interrupted {
                sent: tmls.len(),
                source: Box::new(source),
            },
        })?;
    // A gateway's 5xx may come after the cluster imported: the outcome is
    // unknown, as with no answer at all.
    let unknown = reply.status.is_server_error();
    let body = reply
        .success(&Method::POST, IMPORT_PATH)
        .map_err(|source| {
            let source = Box::new(source);
            if unknown {
                ImportError::Interrupted {
                    sent: tmls.len(),
                    source,
                }
            } else {
                ImportError::Refused { source }
            }
        })?;
    let what = || format!("POST {IMPORT_PATH}");
    let items: Vec<Item> = serde_json::from_slice(&body).map_err(|e| ImportError::Answer {
        what: what(),
        problem: format!(
            "not a list of results ({e}); the cluster may have imported some objects: run \
             import again, which finds them by name"
        ),
    })?;
    if items.len() != tmls.len() {
        return Err(ImportError::Answer {
            what: what(),
            problem: format!(
                "{} results for {} documents; the cluster may have imported some objects: run \
                 import again, which finds them by name",
                items.len(),
                tmls.len()
            ),
        });
    }
    Ok(items.into_iter().map(answer).collect())
}

fn answer(item: Item) -> Answer {
    let response = item.response.unwrap_or_else(|| {
        json!({"status": item.status.unwrap_or(Value::Null), "header": item.header.unwrap_or(Value::Null)})
    });
    let status = response.get("status");
    let text = |value: Option<&Value>, key: &str| {
        value
            .and_then(|v| v.get(key))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let header = response.get("header");
    Answer {
        status: text(status, "status_code").unwrap_or_else(|| "ERROR".to_owned()),
        message: text(status, "error_message"),
        guid: text(header, "id_guid").or_else(|| text(header, "id")),
    }
}
