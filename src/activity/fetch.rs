//! Reading activity from a cluster: the worksheet by name
//! (`POST /api/rest/2.0/metadata/search`), its columns, and its rows
//! through `POST /api/rest/2.0/searchdata`, window by window.

use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use super::columns::{WorksheetColumn, data_columns};
use super::held::Row;
use super::query::{self, Clock};
use super::response::Reader;
use super::window::{Outcome, Window};
use super::{ActivityColumn, Source};
use crate::client::ClientError;
use crate::client::auth::Scope;
use crate::client::v2::V2;

/// Path of the metadata search.
pub const METADATA_SEARCH_PATH: &str = "/api/rest/2.0/metadata/search";
/// Path of the data search.
pub const SEARCHDATA_PATH: &str = "/api/rest/2.0/searchdata";

/// The org the system worksheets live in (since 9.10): Primary.
pub const PRIMARY_ORG: i64 = 0;

/// A worksheet found on the cluster.
#[derive(Clone, Debug)]
pub struct Found {
    /// Which one.
    pub source: Source,
    /// Its GUID.
    pub guid: String,
    /// Its name on the cluster.
    pub name: String,
    /// Its columns, as data columns.
    pub columns: Vec<ActivityColumn>,
    /// Index of the column that dates a row.
    pub time: usize,
    /// Other objects with the same name (their GUIDs), not read.
    pub others: Vec<String>,
}

#[derive(Deserialize)]
struct MetadataEntry {
    #[serde(default)]
    metadata_id: Option<String>,
    #[serde(default)]
    metadata_name: Option<String>,
    #[serde(default)]
    metadata_header: Option<serde_json::Value>,
    #[serde(default)]
    metadata_detail: Option<serde_json::Value>,
}

/// A search failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The cluster or the network failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The worksheet answered, but not with what the API documents.
    #[error("{what}: {problem}")]
    Answer {
        /// The request, e.g. `POST /api/rest/2.0/searchdata for TS: BI Server, 2026-… to …`.
        what: String,
        /// What is wrong.
        problem: String,
    },
}

/// Looks for `source`'s worksheet under each of its names, newest first.
/// `Ok(None)` when the cluster has none of them (in `scope`).
pub(crate) async fn find(
    api: &V2<'_>,
    source: Source,
    scope: Scope,
) -> Result<Option<Found>, FetchError> {
    for name in source.worksheet_names() {
        let request = json!({
            "metadata": [{"type": "LOGICAL_TABLE", "identifier": name}],
            "include_details": true,
            "record_size": 10,
        });
        let body = api
            .call(Method::POST, METADATA_SEARCH_PATH, Some(&request), scope)
            .await?
            .success(&Method::POST, METADATA_SEARCH_PATH)?;
        let what = || format!("POST {METADATA_SEARCH_PATH} for {name:?}");
        let entries: Vec<MetadataEntry> =
            serde_json::from_slice(&body).map_err(|e| FetchError::Answer {
                what: what(),
                problem: format!("not a list of metadata objects ({e})"),
            })?;
        let mut matching = entries
            .into_iter()
            .filter(|e| entry_name(e).is_some_and(|n| n.eq_ignore_ascii_case(name)));
        let Some(entry) = matching.next() else {
            continue;
        };
        let others: Vec<String> = matching.filter_map(|e| entry_guid(&e)).collect();
        let guid = entry_guid(&entry).ok_or_else(|| FetchError::Answer {
            what: what(),
            problem: "the worksheet has no GUID (metadata_id)".into(),
        })?;
        let listed = worksheet_columns(&entry).map_err(|problem| FetchError::Answer {
            what: what(),
            problem,
        })?;
        let unnameable: Vec<&str> = (listed.iter())
            .map(|c| c.name.as_str())
            .filter(|n| !query::nameable(n))
            .collect();
        if !unnameable.is_empty() {
            return Err(FetchError::Answer {
                what: what(),
                problem: format!(
                    "the column(s) {unnameable:?} cannot be named in a search ([, ] or ')"
                ),
            });
        }
        let columns = data_columns(&listed);
        let time = (source.time_columns().iter())
            .find_map(|t| columns.iter().position(|c| c.name.eq_ignore_ascii_case(t)))
            .ok_or_else(|| FetchError::Answer {
                what: what(),
                problem: format!(
                    "the worksheet has none of the time columns {:?}",
                    source.time_columns()
                ),
            })?;
        return Ok(Some(Found {
            source,
            guid,
            name: entry_name(&entry).unwrap_or(name).to_owned(),
            columns,
            time,
            others,
        }));
    }
    Ok(None)
}

fn entry_name(entry: &MetadataEntry) -> Option<&str> {
    entry
        .metadata_name
        .as_deref()
        .or_else(|| entry.metadata_header.as_ref()?.get("name")?.as_str())
}

fn entry_guid(entry: &MetadataEntry) -> Option<String> {
    entry.metadata_id.clone().or_else(|| {
        Some(
            entry
                .metadata_header
                .as_ref()?
                .get("id")?
                .as_str()?
                .to_owned(),
        )
    })
}

/// The columns `metadata_detail.columns` lists: `header.name`, `type`
/// (ATTRIBUTE or MEASURE) and `dataType`.
fn worksheet_columns(entry: &MetadataEntry) -> Result<Vec<WorksheetColumn>, String> {
    let columns = entry
        .metadata_detail
        .as_ref()
        .and_then(|d| d.get("columns"))
        .and_then(|c| c.as_array())
        .ok_or("the answer lists no columns (metadata_detail.columns)")?;
    let text =
        |value: Option<&serde_json::Value>| value.and_then(|v| v.as_str()).map(str::to_owned);
    let mut out = Vec::with_capacity(columns.len());
    for (i, column) in columns.iter().enumerate() {
        let name = text(column.get("header").and_then(|h| h.get("name")))
            .or_else(|| text(column.get("name")))
            .ok_or_else(|| format!("column {} has no name (header.name)", i + 1))?;
        let data_type = text(column.get("dataType"))
            .or_else(|| text(column.get("data_type")))
            .unwrap_or_else(|| "VARCHAR".into());
        let kind = text(column.get("type"))
            .or_else(|| text(column.get("column_type")))
            .unwrap_or_else(|| "ATTRIBUTE".into());
        out.push(WorksheetColumn {
            name,
            data_type,
            kind,
        });
    }
    if out.is_empty() {
        return Err("the worksheet has no columns".into());
    }
    Ok(out)
}

/// How one window is read.
pub(crate) struct WindowReader<'a> {
    /// The API.
    pub api: &'a V2<'a>,
    /// The org to search in.
    pub scope: Scope,
    /// The worksheet.
    pub found: &'a Found,
    /// Turning pages into rows (on the blocking pool, so reading one page
    /// overlaps fetching the next).
    pub reader: std::sync::Arc<Reader>,
    /// Most rows one search returns.
    pub cap: usize,
    /// Rows asked for per page.
    pub page_size: usize,
    /// Called with the rows of each page as it arrives.
    pub on_page: &'a (dyn Fn(usize) + Sync),
}

/// Rows of one window, and what was dropped.
#[derive(Debug, Default)]
pub struct WindowRows {
    /// Rows in the window.
    pub rows: Vec<Row>,
    /// Rows the search returned outside the window.
    pub outside: usize,
    /// Rows the searches returned, in the window or not.
    pub returned: usize,
}

impl WindowReader<'_> {
    /// Reads `window` page by page; [`Outcome::AtCap`] as soon as the
    /// search says (or shows) it holds as many rows as the cap.
    pub async fn read(&self, window: Window) -> (Window, Result<Outcome<WindowRows>, FetchError>) {
        (window, self.read_inner(window).await)
    }

    async fn read_inner(&self, window: Window) -> Result<Outcome<WindowRows>, FetchError> {
        let columns = &self.found.columns;
        let query = query::search(
            columns,
            &columns[self.found.time],
            window,
            &self.reader.clock,
        );
        let mut got = WindowRows::default();
        let mut offset: u64 = 0;
        let size = self.page_size.clamp(1, self.cap.max(1));
        loop {
            let request = json!({
                "logical_table_identifier": self.found.guid,
                "query_string": query,
                "data_format": "COMPACT",
                "record_offset": offset,
                "record_size": size,
            });
            let what = || {
                format!(
                    "POST {SEARCHDATA_PATH} on {:?} ({}), {window}, records from {offset}",
                    self.found.name, self.found.guid
                )
            };
            let reply = self
                .api
                .call(Method::POST, SEARCHDATA_PATH, Some(&request), self.scope)
                .await
                .map_err(|e| in_window(e, &what()))?;
            let body = reply
                .success(&Method::POST, SEARCHDATA_PATH)
                .map_err(|e| in_window(e, &what()))?;
            let reader = self.reader.clone();
            let page = tokio::task::spawn_blocking(move || reader.page(&body, window, offset))
                .await
                .unwrap_or_else(|e| Err(format!("reading the page failed: {e}")))
                .map_err(|problem| FetchError::Answer {
                    what: what(),
                    problem,
                })?;
            (self.on_page)(page.returned);
            if page.available.is_some_and(|a| a >= self.cap as u64) {
                return Ok(Outcome::AtCap);
            }
            got.outside += page.outside;
            got.returned += page.returned;
            got.rows.extend(page.rows);
            offset += page.returned as u64;
            if offset >= self.cap as u64 {
                return Ok(Outcome::AtCap);
            }
            if page.returned < size {
                // A search that says it holds more than it gave was cut.
                if page.available.is_some_and(|a| a > offset) {
                    return Ok(Outcome::AtCap);
                }
                return Ok(Outcome::Rows(got));
            }
        }
    }
}

/// A client error with the window it happened in.
fn in_window(error: ClientError, what: &str) -> FetchError {
    match error {
        ClientError::Status {
            status, message, ..
        } => FetchError::Answer {
            what: what.to_owned(),
            problem: format!("HTTP {status}: {message}"),
        },
        other => FetchError::Answer {
            what: what.to_owned(),
            problem: other.to_string(),
        },
    }
}

/// The clock of a cluster: UTC on Cloud, its `time_zone` on Software.
pub fn clock(software: bool, time_zone: Option<&str>) -> Result<Clock, String> {
    match (software, time_zone) {
        (true, Some(zone)) if !zone.trim().is_empty() => Clock::zone(zone.trim()),
        _ => Ok(Clock::utc()),
    }
}
