//! The two system worksheets of user activity on the fake ThoughtSpot,
//! for `ts-principals activity`: TS: BI Server (one row per request a
//! user made) and TS: AI and BI Stats (one row per query sent to a data
//! warehouse; "TS: Embrace Stats Worksheet" on older clusters).
//!
//! Served by `POST /api/rest/2.0/metadata/search` (finds a worksheet by
//! name or GUID, with its columns) and `POST /api/rest/2.0/searchdata` (a
//! search query string: columns in brackets, date filters; answers
//! COMPACT rows, paged). Worksheets live in one org
//! ([`Faults::activity_org`]); a cluster can cap how many rows one search
//! returns ([`Faults::row_cap`]), speak in its local wall-clock time
//! ([`Faults::time_zone`]) or fail every search
//! ([`Faults::searchdata_error`]).
//!
//! Rows are kept sorted by time (then by the rest of the row), so a search
//! finds its time window by binary search and copies only its page.

use std::cmp::Ordering;
use std::sync::Arc;
use std::sync::atomic::Ordering as AtomicOrdering;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use serde::Serialize;
use serde::ser::SerializeSeq;
use serde_json::{Value, json};

#[cfg(doc)]
use super::Faults;
use super::{Data, Seen, Shared, authorize, error, json_response, no_v2, pause, seen, take};

/// The name of the worksheet of requests.
pub const BI_SERVER: &str = "TS: BI Server";
/// The name of the worksheet of warehouse queries.
pub const AI_BI_STATS: &str = "TS: AI and BI Stats";
/// Its name on older clusters.
pub const EMBRACE_STATS: &str = "TS: Embrace Stats Worksheet";

/// One column of a worksheet.
#[derive(Clone, Debug)]
pub struct WsColumn {
    pub name: String,
    /// `VARCHAR`, `INT64`, `DOUBLE`, `DATE_TIME` or `BOOL`.
    pub data_type: &'static str,
    /// A measure (summed, named `Total <name>` in answers) rather than an
    /// attribute.
    pub measure: bool,
}

/// A worksheet and its rows.
#[derive(Clone, Debug)]
pub struct Worksheet {
    pub guid: String,
    pub name: String,
    pub columns: Vec<WsColumn>,
    /// Index of the time column in `columns`.
    pub time_column: usize,
    /// One JSON cell per column, in column order. `DATE_TIME` cells are
    /// epoch seconds of the true (UTC) instant, or null.
    pub rows: Vec<Vec<Value>>,
}

/// The activity worksheets a fake serves; none by default.
#[derive(Clone, Debug, Default)]
pub struct ActivitySet {
    pub bi_server: Option<Worksheet>,
    pub ai_bi_stats: Option<Worksheet>,
}

impl ActivitySet {
    /// Both worksheets made up: `rows` rows of TS: BI Server and `rows / 4`
    /// of the stats worksheet (named `stats_name`) over `[start,
    /// start + span_secs)`.
    pub fn generated(
        user_guids: &[String],
        rows: usize,
        start: i64,
        span_secs: i64,
        seed: u64,
        stats_name: &str,
    ) -> Self {
        ActivitySet {
            bi_server: Some(bi_server(user_guids, rows, start, span_secs, seed)),
            ai_bi_stats: Some(ai_bi_stats(
                user_guids,
                rows / 4,
                start,
                span_secs,
                seed ^ 0x5eed_5eed,
                stats_name,
            )),
        }
    }

    /// The worksheets served.
    pub fn worksheets(&self) -> impl Iterator<Item = &Worksheet> {
        self.bi_server.iter().chain(self.ai_bi_stats.iter())
    }
}

/// The GUIDs of `data`'s users, in order.
pub fn user_guids(data: &Data) -> Vec<String> {
    data.users
        .iter()
        .filter_map(|u| u.get("id").and_then(Value::as_str).map(str::to_owned))
        .collect()
}

impl Shared {
    /// Serves `set` from now on (replacing what was served). Rows are
    /// sorted by time, then by the rest of the row.
    pub fn set_activity(&self, mut set: ActivitySet) {
        for ws in [&mut set.bi_server, &mut set.ai_bi_stats]
            .into_iter()
            .flatten()
        {
            sort_rows(ws);
        }
        *self.activity.lock().unwrap() = Arc::new(set);
    }

    /// What is served now.
    pub fn activity(&self) -> Arc<ActivitySet> {
        self.activity.lock().unwrap().clone()
    }

    /// `searchdata` requests so far.
    pub fn searchdata_requests(&self) -> usize {
        self.searchdata.load(AtomicOrdering::SeqCst)
    }
}

// ---------------------------------------------------------------------------
// Generation
// ---------------------------------------------------------------------------

fn col(name: &str, data_type: &'static str, measure: bool) -> WsColumn {
    WsColumn {
        name: name.to_owned(),
        data_type,
        measure,
    }
}

/// A GUID made from `text` (FNV-1a), the same every time.
fn stable_guid(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut g: u64 = 0x8422_2325_cbf2_9ce4;
    for b in text.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        g = (g ^ u64::from(b))
            .wrapping_mul(0x100_0000_01b3)
            .rotate_left(7);
    }
    format!(
        "{:08x}-{:04x}-5{:03x}-{:04x}-{:012x}",
        h >> 32,
        (h >> 16) & 0xffff,
        h & 0xfff,
        0x8000 | (g >> 48) & 0x3fff,
        g & 0xffff_ffff_ffff
    )
}

/// A version-4 GUID of 122 bits of `hi` and `lo`, written by hand (a
/// million of them must be quick).
fn guid_of(hi: u64, lo: u64) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let hi = (hi & !0xf000) | 0x4000;
    let lo = (lo & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
    let mut out = String::with_capacity(36);
    for (word, from, to) in [
        (hi, 64, 32),
        (hi, 32, 16),
        (hi, 16, 0),
        (lo, 64, 48),
        (lo, 48, 0),
    ] {
        if !out.is_empty() {
            out.push('-');
        }
        let mut bit = from;
        while bit > to {
            bit -= 4;
            out.push(HEX[((word >> bit) & 0xf) as usize] as char);
        }
    }
    out
}

fn random_guid(rng: &mut fastrand::Rng) -> String {
    guid_of(rng.u64(..), rng.u64(..))
}

/// `rows` (time, unique id) pairs sorted by both: times over `[start,
/// start + span_secs)`, some seconds shared by several rows.
fn times_and_ids(
    rng: &mut fastrand::Rng,
    rows: usize,
    start: i64,
    span_secs: i64,
) -> Vec<(i64, String)> {
    let span = span_secs.max(1);
    let mut times: Vec<i64> = (0..rows).map(|_| start + rng.i64(0..span)).collect();
    times.sort_unstable();
    // Bursts: a tenth of the rows share the second before them.
    for i in 1..times.len() {
        if rng.u8(..10) == 0 {
            times[i] = times[i - 1];
        }
    }
    let mut pairs: Vec<(i64, String)> = times
        .into_iter()
        .enumerate()
        .map(|(n, t)| {
            // Random-looking, unique through the row number at the end.
            let id = guid_of(rng.u64(..), (rng.u64(..) << 48) | n as u64);
            (t, id)
        })
        .collect();
    pairs.sort_unstable();
    pairs
}

/// Who made each row: the i-th GUID (named `user{i}@example.com`, as
/// [`Data::generated`] names them), busier users first; ~2% rows by users
/// since deleted (GUIDs not in the list).
struct Users<'a> {
    guids: &'a [String],
    names: Vec<String>,
    deleted: Vec<(String, String)>,
}

impl<'a> Users<'a> {
    fn new(guids: &'a [String], seed: u64) -> Self {
        let deleted = (0u64..)
            .map(|k| {
                (
                    format!("dead{:04x}-0000-4000-8000-{:012x}", seed & 0xffff, k),
                    format!("deleted.user{k}@example.com"),
                )
            })
            .filter(|(g, _)| !guids.contains(g))
            .take(4)
            .collect();
        Users {
            guids,
            names: (0..guids.len())
                .map(|i| format!("user{i}@example.com"))
                .collect(),
            deleted,
        }
    }

    fn pick(&self, rng: &mut fastrand::Rng) -> (Value, Value) {
        if self.guids.is_empty() || rng.u8(..100) < 2 {
            let (g, n) = &self.deleted[rng.usize(..self.deleted.len())];
            return (Value::String(g.clone()), Value::String(n.clone()));
        }
        let n = self.guids.len();
        let i = ((rng.f64() * rng.f64() * n as f64) as usize).min(n - 1);
        (
            Value::String(self.guids[i].clone()),
            Value::String(self.names[i].clone()),
        )
    }
}

/// Rows made by `make` from each (time, id) pair, in order: in chunks of a
/// fixed size, each with its own generator seeded from `seed` and its
/// index, on several threads; the same whatever the number of cores.
fn build_rows<F>(pairs: Vec<(i64, String)>, seed: u64, make: F) -> Vec<Vec<Value>>
where
    F: Fn(&mut fastrand::Rng, i64, String) -> Vec<Value> + Sync,
{
    const CHUNK: usize = 1 << 15;
    type Chunk = Vec<(i64, String)>;
    let mut chunks: Vec<Chunk> = Vec::new();
    let mut pairs = pairs.into_iter();
    loop {
        let chunk: Chunk = pairs.by_ref().take(CHUNK).collect();
        if chunk.is_empty() {
            break;
        }
        chunks.push(chunk);
    }
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8)
        .min(chunks.len().max(1));
    let mut built: Vec<Vec<Vec<Value>>> = vec![Vec::new(); chunks.len()];
    let mut work: Vec<Vec<(usize, Chunk)>> = vec![Vec::new(); threads];
    for (i, chunk) in chunks.into_iter().enumerate() {
        work[i % threads].push((i, chunk));
    }
    let make = &make;
    std::thread::scope(|scope| {
        let handles: Vec<_> = work
            .into_iter()
            .map(|mine| {
                scope.spawn(move || {
                    mine.into_iter()
                        .map(|(i, chunk)| {
                            let mut rng = fastrand::Rng::with_seed(
                                seed ^ (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15),
                            );
                            let rows = chunk
                                .into_iter()
                                .map(|(time, id)| make(&mut rng, time, id))
                                .collect::<Vec<_>>();
                            (i, rows)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for handle in handles {
            for (i, rows) in handle.join().expect("generator thread") {
                built[i] = rows;
            }
        }
    });
    built.into_iter().flatten().collect()
}

fn pick<T: Copy>(rng: &mut fastrand::Rng, items: &[T]) -> T {
    items[rng.usize(..items.len())]
}

fn text(s: &str) -> Value {
    Value::String(s.to_owned())
}

/// Query texts, some hostile to naive CSV and YAML writers.
const QUERY_TEXTS: &[Option<&str>] = &[
    Some("[Revenue] [Region] top 10"),
    Some("[Revenue] by [Month] last year"),
    Some("[Sales] [Customer Name], [City] sort by [Sales] descending"),
    Some("[Product] \"Widget, large\" [Units]"),
    Some("multi-line query:\n[Revenue]\n[Région] = 'Île-de-France'"),
    Some("売上 [地域] = '日本' : 年次"),
    Some("note: \"quoted\", comma, and café"),
    Some(""),
    None,
    None,
];

/// TS: BI Server: `rows` requests over `[start, start + span_secs)` by the
/// users `user_guids` (and a few deleted ones), the same for the same
/// `seed`. Rows are sorted by (Timestamp, Incident Id).
pub fn bi_server(
    user_guids: &[String],
    rows: usize,
    start: i64,
    span_secs: i64,
    seed: u64,
) -> Worksheet {
    let columns = vec![
        col("Incident Id", "VARCHAR", false),
        col("Timestamp", "DATE_TIME", false),
        col("URL", "VARCHAR", false),
        col("HTTP Response Code", "INT64", false),
        col("Browser Type", "VARCHAR", false),
        col("Browser Version", "VARCHAR", false),
        col("Client Type", "VARCHAR", false),
        col("Client Id", "VARCHAR", false),
        col("Answer Book GUID", "VARCHAR", false),
        col("Viz Id", "VARCHAR", false),
        col("User Id", "VARCHAR", false),
        col("User", "VARCHAR", false),
        col("User Action", "VARCHAR", false),
        col("Query Text", "VARCHAR", false),
        col("Response Size", "INT64", true),
        col("Latency (us)", "INT64", true),
        col("Database Latency (us)", "INT64", true),
        col("Impressions", "DOUBLE", true),
        col("Org Id", "INT64", false),
    ];
    let mut rng = fastrand::Rng::with_seed(seed);
    let users = Users::new(user_guids, seed);
    let books: Vec<String> = (0..50).map(|_| random_guid(&mut rng)).collect();
    let vizzes: Vec<String> = (0..200).map(|_| random_guid(&mut rng)).collect();
    let clients: Vec<String> = (0..20).map(|_| random_guid(&mut rng)).collect();
    let pairs = times_and_ids(&mut rng, rows, start, span_secs);
    const ACTIONS: &[(&str, &str)] = &[
        ("PINBOARD_VIEW", "/callosum/v1/pinboard/load"),
        ("PINBOARD_VIEW", "/callosum/v1/pinboard/load"),
        ("ANSWER_VIEW", "/callosum/v1/answer/load"),
        ("SEARCH", "/callosum/v1/search"),
        ("SEARCH", "/callosum/v1/search"),
        ("DATA_EXPORT", "/callosum/v1/export"),
        ("API_SEARCHDATA", "/api/rest/2.0/searchdata"),
        ("LOGIN", "/callosum/v1/session/login"),
        ("TML_EXPORT", "/api/rest/2.0/metadata/tml/export"),
    ];
    const BROWSERS: &[(&str, &[&str])] = &[
        ("Chrome", &["124.0.6367", "125.0.6422", "126.0.6478"]),
        ("Chrome", &["124.0.6367", "126.0.6478"]),
        ("Firefox", &["125.0", "126.0"]),
        ("Safari", &["17.4.1", "17.5"]),
        ("Edge", &["125.0.2535"]),
    ];
    let rows = build_rows(pairs, seed, |rng, time, id| {
        let (action, url) = pick(rng, ACTIONS);
        let api = action.starts_with("API") || action == "TML_EXPORT";
        let code = match rng.u8(..100) {
            0..=93 => 200,
            94..=96 => 400,
            97..=98 => 403,
            _ => 500,
        };
        let (browser, versions) = pick(rng, BROWSERS);
        let (browser_type, browser_version) = if api {
            (text("OTHER"), Value::Null)
        } else if rng.u8(..10) == 0 {
            (text(browser), Value::Null)
        } else {
            (text(browser), text(pick(rng, versions)))
        };
        let client_type = if api {
            "REST_API"
        } else if rng.u8(..20) == 0 {
            "MOBILE"
        } else {
            "BROWSER"
        };
        let client = Value::String(clients[rng.usize(..clients.len())].clone());
        let book = if matches!(action, "PINBOARD_VIEW" | "ANSWER_VIEW" | "DATA_EXPORT") {
            Value::String(books[rng.usize(..books.len())].clone())
        } else {
            Value::Null
        };
        let viz = if action == "PINBOARD_VIEW" {
            Value::String(vizzes[rng.usize(..vizzes.len())].clone())
        } else {
            Value::Null
        };
        let (user_id, user) = users.pick(rng);
        let query = if matches!(action, "SEARCH" | "ANSWER_VIEW" | "API_SEARCHDATA") {
            pick(rng, QUERY_TEXTS).map_or(Value::Null, text)
        } else {
            Value::Null
        };
        let latency = 2_000 + rng.i64(0..3_000_000);
        let db = if query.is_null() {
            0
        } else {
            rng.i64(0..latency)
        };
        let impressions = pick(rng, &[0.0, 0.5, 1.0, 1.0, 1.0, 2.25]);
        vec![
            Value::String(id),
            Value::from(time),
            text(url),
            Value::from(code),
            browser_type,
            browser_version,
            text(client_type),
            client,
            book,
            viz,
            user_id,
            user,
            text(action),
            query,
            Value::from(rng.i64(100..5_000_000)),
            Value::from(latency),
            Value::from(db),
            Value::from(impressions),
            Value::from(0),
        ]
    });
    Worksheet {
        guid: stable_guid(BI_SERVER),
        name: BI_SERVER.to_owned(),
        columns,
        time_column: 1,
        rows,
    }
}

/// The AI and BI stats worksheet, named `name`: `rows` warehouse queries
/// over `[start, start + span_secs)`, the same for the same `seed`. Rows are
/// sorted by (TS Query Start Time, Query ID).
pub fn ai_bi_stats(
    user_guids: &[String],
    rows: usize,
    start: i64,
    span_secs: i64,
    seed: u64,
    name: &str,
) -> Worksheet {
    let columns = vec![
        col("Query ID", "VARCHAR", false),
        col("TS Query Start Time", "DATE_TIME", false),
        col("DB Start Time", "DATE_TIME", false),
        col("User", "VARCHAR", false),
        col("User ID", "VARCHAR", false),
        col("User Action", "VARCHAR", false),
        col("Org", "VARCHAR", false),
        col("Org ID", "INT64", false),
        col("Connection", "VARCHAR", false),
        col("Model", "VARCHAR", false),
        col("Query Status", "VARCHAR", false),
        col("Is Billable", "BOOL", false),
        col("Credits", "DOUBLE", true),
        col("Impressions", "DOUBLE", true),
        col("Queries", "INT64", true),
        col("Query Errors", "INT64", true),
        col("Query Latency (External)", "INT64", true),
    ];
    let mut rng = fastrand::Rng::with_seed(seed);
    let users = Users::new(user_guids, seed);
    let pairs = times_and_ids(&mut rng, rows, start, span_secs);
    const ACTIONS: &[&str] = &[
        "SEARCH",
        "LIVEBOARD_VIEW",
        "LIVEBOARD_VIEW",
        "ANSWER_VIEW",
        "SPOTTER_QUERY",
        "API_SEARCHDATA",
        "DATA_EXPORT",
    ];
    const CONNECTIONS: &[&str] = &["Snowflake Prod", "Databricks", "BigQuery, EU", "Falcon"];
    const MODELS: &[&str] = &[
        "Sales Model",
        "Finance: Revenue \"Q3\"",
        "Marketing 日本",
        "Opérations",
    ];
    let rows = build_rows(pairs, seed, |rng, time, id| {
        let status = match rng.u8(..100) {
            0..=89 => "SUCCESS",
            90..=96 => "FAILED",
            _ => "CANCELLED",
        };
        let db_start = if status == "CANCELLED" || rng.u8(..10) == 0 {
            Value::Null
        } else {
            Value::from(time + rng.i64(0..3))
        };
        let (user_id, user) = users.pick(rng);
        let connection = pick(rng, CONNECTIONS);
        let billable = connection != "Falcon" && status == "SUCCESS";
        let credits = if billable {
            pick(rng, &[0.25, 0.5, 1.0, 1.5])
        } else {
            0.0
        };
        vec![
            Value::String(id),
            Value::from(time),
            db_start,
            user,
            user_id,
            text(pick(rng, ACTIONS)),
            text("Primary"),
            Value::from(0),
            text(connection),
            text(pick(rng, MODELS)),
            text(status),
            Value::Bool(billable),
            Value::from(credits),
            Value::from(pick(rng, &[0.5, 1.0, 1.0, 2.25])),
            Value::from(1),
            Value::from(i64::from(status == "FAILED")),
            Value::from(50 + rng.i64(0..20_000)),
        ]
    });
    Worksheet {
        guid: stable_guid(name),
        name: name.to_owned(),
        columns,
        time_column: 1,
        rows,
    }
}

// ---------------------------------------------------------------------------
// Order
// ---------------------------------------------------------------------------

/// A row's time (null and non-integers first).
fn time_of(row: &[Value], column: usize) -> i64 {
    row.get(column).and_then(Value::as_i64).unwrap_or(i64::MIN)
}

fn rank(v: &Value) -> u8 {
    match v {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Number(_) => 2,
        Value::String(_) => 3,
        Value::Array(_) => 4,
        Value::Object(_) => 5,
    }
}

/// A total order of JSON cells: null, booleans, numbers, strings, then
/// the rest.
fn cmp_value(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x.cmp(&y),
            _ => x
                .as_f64()
                .unwrap_or(0.0)
                .total_cmp(&y.as_f64().unwrap_or(0.0)),
        },
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Array(_) | Value::Object(_), _) if rank(a) == rank(b) => {
            a.to_string().cmp(&b.to_string())
        }
        _ => rank(a).cmp(&rank(b)),
    }
}

/// Result order: time, then the other cells in column order.
fn cmp_rows(a: &[Value], b: &[Value], time: usize) -> Ordering {
    time_of(a, time).cmp(&time_of(b, time)).then_with(|| {
        a.iter()
            .enumerate()
            .filter(|(i, _)| *i != time)
            .map(|(i, x)| cmp_value(x, b.get(i).unwrap_or(&Value::Null)))
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
    })
}

fn sort_rows(ws: &mut Worksheet) {
    let time = ws.time_column;
    if !ws.rows.is_sorted_by(|a, b| cmp_rows(a, b, time).is_le()) {
        ws.rows.sort_by(|a, b| cmp_rows(a, b, time));
    }
}

// ---------------------------------------------------------------------------
// Query strings
// ---------------------------------------------------------------------------

/// A comparison of a date filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Ge,
    Gt,
    Le,
    Lt,
}

/// `[Col] op 'MM/DD/YYYY[ HH:MM:SS]'`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filter {
    /// Index of the column.
    pub column: usize,
    pub op: Op,
    /// The literal's wall-clock reading, as epoch seconds were it UTC.
    pub wall: i64,
}

/// A parsed search query string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    /// Columns asked for, in order (indices into the worksheet's).
    pub columns: Vec<usize>,
    pub filters: Vec<Filter>,
}

/// `MM/DD/YYYY HH:MM:SS` or `MM/DD/YYYY` (midnight), as epoch seconds of
/// that reading taken as UTC.
fn parse_literal(text: &str) -> Option<i64> {
    let (date, time) = match text.trim().split_once(' ') {
        Some((d, t)) => (d, Some(t.trim())),
        None => (text.trim(), None),
    };
    let number = |s: &str, max_len: usize| -> Option<i64> {
        (!s.is_empty() && s.len() <= max_len && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    let d: Vec<&str> = date.split('/').collect();
    let [m, day, y] = d[..] else { return None };
    let (m, day, y) = (number(m, 2)?, number(day, 2)?, number(y, 4)?);
    let (h, min, s) = match time {
        None => (0, 0, 0),
        Some(t) => {
            let t: Vec<&str> = t.split(':').collect();
            let [h, min, s] = t[..] else { return None };
            (number(h, 2)?, number(min, 2)?, number(s, 2)?)
        }
    };
    let dt = DateTime::new(
        i16::try_from(y).ok()?,
        i8::try_from(m).ok()?,
        i8::try_from(day).ok()?,
        i8::try_from(h).ok()?,
        i8::try_from(min).ok()?,
        i8::try_from(s).ok()?,
        0,
    )
    .ok()?;
    Some(dt.to_zoned(TimeZone::UTC).ok()?.timestamp().as_second())
}

/// Parses `query` against `ws`: `[Name]` (optionally `.detailed`) asks
/// for a column, `[Name] >= 'MM/DD/YYYY HH:MM:SS'` (also `>`, `<=`, `<`)
/// filters a `DATE_TIME` column. The error is ThoughtSpot's message.
pub fn parse_query(ws: &Worksheet, query: &str) -> Result<Query, String> {
    let mut columns = Vec::new();
    let mut filters = Vec::new();
    let mut rest = query.trim_start();
    while !rest.is_empty() {
        let Some(after) = rest.strip_prefix('[') else {
            let word = rest.split_whitespace().next().unwrap_or(rest);
            return Err(format!("Search did not understand {word}"));
        };
        let Some(close) = after.find(']') else {
            return Err(format!("Search did not understand [{after}"));
        };
        let name = &after[..close];
        let column = ws
            .columns
            .iter()
            .position(|c| c.name.eq_ignore_ascii_case(name.trim()))
            .ok_or_else(|| format!("Search did not find column [{name}]"))?;
        rest = &after[close + 1..];
        if let Some(suffix) = rest.strip_prefix('.') {
            let word_end = suffix
                .find(|c: char| !c.is_ascii_alphanumeric() && c != '_')
                .unwrap_or(suffix.len());
            if !suffix[..word_end].eq_ignore_ascii_case("detailed") {
                return Err(format!(
                    "Search did not understand [{name}].{}",
                    &suffix[..word_end]
                ));
            }
            rest = &suffix[word_end..];
        }
        let trimmed = rest.trim_start();
        let op_len = trimmed
            .find(|c: char| !matches!(c, '<' | '>' | '=' | '!'))
            .unwrap_or(trimmed.len());
        if op_len == 0 {
            columns.push(column);
            rest = trimmed;
            continue;
        }
        let op = match &trimmed[..op_len] {
            ">=" => Op::Ge,
            ">" => Op::Gt,
            "<=" => Op::Le,
            "<" => Op::Lt,
            other => return Err(format!("Search did not understand {other} after [{name}]")),
        };
        if ws.columns[column].data_type != "DATE_TIME" {
            return Err(format!(
                "Search cannot compare [{name}] with a date: it is not a date column"
            ));
        }
        let value = trimmed[op_len..].trim_start();
        let Some(quoted) = value.strip_prefix('\'') else {
            return Err(format!(
                "Search did not understand the value after [{name}] {}",
                &trimmed[..op_len]
            ));
        };
        let Some(end) = quoted.find('\'') else {
            return Err(format!("Search did not understand '{quoted}"));
        };
        let literal = &quoted[..end];
        let wall = parse_literal(literal).ok_or_else(|| {
            format!("Search did not understand date '{literal}' (want MM/DD/YYYY HH:MM:SS)")
        })?;
        filters.push(Filter { column, op, wall });
        rest = quoted[end + 1..].trim_start();
    }
    if columns.is_empty() {
        return Err("Search query names no column".to_owned());
    }
    Ok(Query { columns, filters })
}

// ---------------------------------------------------------------------------
// Answering
// ---------------------------------------------------------------------------

/// The true instant of a wall-clock reading in `tz` (an earlier instant for
/// a reading that happens twice, a later one for a skipped reading).
fn instant_of(wall: i64, tz: Option<&TimeZone>) -> i64 {
    let Some(tz) = tz else { return wall };
    Timestamp::from_second(wall)
        .ok()
        .and_then(|ts| {
            let dt = ts.to_zoned(TimeZone::UTC).datetime();
            tz.to_ambiguous_timestamp(dt).compatible().ok()
        })
        .map_or(wall, |ts| ts.as_second())
}

/// The wall-clock reading in `tz` of a true instant, as epoch seconds were
/// it UTC.
fn wall_of(instant: i64, tz: Option<&TimeZone>) -> i64 {
    let Some(tz) = tz else { return instant };
    match Timestamp::from_second(instant) {
        Ok(ts) => instant + i64::from(tz.to_offset(ts).seconds()),
        Err(_) => instant,
    }
}

/// Whether instant `t` passes a filter on instant `bound`.
fn passes(t: i64, op: Op, bound: i64) -> bool {
    match op {
        Op::Ge => t >= bound,
        Op::Gt => t > bound,
        Op::Le => t <= bound,
        Op::Lt => t < bound,
    }
}

/// One page of a search: which rows, and how many the search has.
pub struct Answer<'a> {
    /// The rows of the page, in result order.
    pub rows: Vec<&'a [Value]>,
    /// Rows the search has (after the row cap).
    pub available: usize,
}

/// Runs `query` on `ws`: rows within its filters (`tz`: the literals are
/// wall-clock readings there), at most `cap` of them in all, and of those
/// `size` from `offset`. Copies no row.
pub fn answer<'a>(
    ws: &'a Worksheet,
    query: &Query,
    tz: Option<&TimeZone>,
    cap: Option<usize>,
    offset: usize,
    size: usize,
) -> Answer<'a> {
    let time = ws.time_column;
    let (mut lo, mut hi) = (i64::MIN, i64::MAX); // [lo, hi) on the time column
    let mut others: Vec<(usize, Op, i64)> = Vec::new();
    for f in &query.filters {
        let bound = instant_of(f.wall, tz);
        if f.column == time {
            match f.op {
                Op::Ge => lo = lo.max(bound),
                Op::Gt => lo = lo.max(bound.saturating_add(1)),
                Op::Le => hi = hi.min(bound.saturating_add(1)),
                Op::Lt => hi = hi.min(bound),
            }
        } else {
            others.push((f.column, f.op, bound));
        }
    }
    // Filtered rows never have a null time.
    if !query.filters.iter().any(|f| f.column == time) {
        lo = i64::MIN;
    } else {
        lo = lo.max(i64::MIN + 1);
    }
    let rows = &ws.rows;
    let start = rows.partition_point(|r| time_of(r, time) < lo);
    let end = if hi <= lo {
        start
    } else {
        start + rows[start..].partition_point(|r| time_of(r, time) < hi)
    };
    let window = &rows[start..end];
    let cap = cap.unwrap_or(usize::MAX);
    if others.is_empty() {
        let available = window.len().min(cap);
        let from = offset.min(available);
        let to = from.saturating_add(size).min(available);
        return Answer {
            rows: window[from..to].iter().map(Vec::as_slice).collect(),
            available,
        };
    }
    let keep = |r: &&Vec<Value>| {
        others.iter().all(|&(c, op, bound)| {
            r.get(c)
                .and_then(Value::as_i64)
                .is_some_and(|t| passes(t, op, bound))
        })
    };
    let mut available = 0;
    let mut page = Vec::new();
    for r in window.iter().filter(keep) {
        if available >= cap {
            break;
        }
        if available >= offset && page.len() < size {
            page.push(r.as_slice());
        }
        available += 1;
    }
    Answer {
        rows: page,
        available,
    }
}

/// A `DATE_TIME` cell as searchdata answers it.
#[derive(Serialize)]
struct TimeCell {
    v: Seconds,
}

#[derive(Serialize)]
struct Seconds {
    s: i64,
}

/// The page's rows, projected as they are written.
struct DataRows<'a> {
    rows: &'a [&'a [Value]],
    /// Column index and whether it is a `DATE_TIME`.
    columns: &'a [(usize, bool)],
    tz: Option<&'a TimeZone>,
}

struct DataRow<'a> {
    row: &'a [Value],
    columns: &'a [(usize, bool)],
    tz: Option<&'a TimeZone>,
}

impl Serialize for DataRows<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.rows.len()))?;
        for row in self.rows {
            seq.serialize_element(&DataRow {
                row,
                columns: self.columns,
                tz: self.tz,
            })?;
        }
        seq.end()
    }
}

impl Serialize for DataRow<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.columns.len()))?;
        for &(c, date) in self.columns {
            let cell = self.row.get(c).unwrap_or(&Value::Null);
            match cell.as_i64() {
                Some(t) if date => seq.serialize_element(&TimeCell {
                    v: Seconds {
                        s: wall_of(t, self.tz),
                    },
                })?,
                _ => seq.serialize_element(cell)?,
            }
        }
        seq.end()
    }
}

#[derive(Serialize)]
struct Contents<'a> {
    column_names: Vec<String>,
    data_rows: DataRows<'a>,
    returned_data_row_count: usize,
    available_data_row_count: usize,
    record_offset: u64,
    record_size: i64,
    sampling_ratio: u32,
}

#[derive(Serialize)]
struct SearchData<'a> {
    contents: [Contents<'a>; 1],
}

/// The searchdata answer's bytes.
fn render(
    ws: &Worksheet,
    query: &Query,
    answer: &Answer<'_>,
    tz: Option<&TimeZone>,
    offset: u64,
    size: i64,
) -> Vec<u8> {
    let column_names = query
        .columns
        .iter()
        .map(|&c| {
            let column = &ws.columns[c];
            if column.measure {
                format!("Total {}", column.name)
            } else {
                column.name.clone()
            }
        })
        .collect();
    let columns: Vec<(usize, bool)> = query
        .columns
        .iter()
        .map(|&c| (c, ws.columns[c].data_type == "DATE_TIME"))
        .collect();
    let body = SearchData {
        contents: [Contents {
            column_names,
            data_rows: DataRows {
                rows: &answer.rows,
                columns: &columns,
                tz,
            },
            returned_data_row_count: answer.rows.len(),
            available_data_row_count: answer.available,
            record_offset: offset,
            record_size: size,
            sampling_ratio: 1,
        }],
    };
    serde_json::to_vec(&body).expect("json")
}

/// A worksheet as `metadata/search` lists it.
fn listing(ws: &Worksheet, details: bool) -> Value {
    let detail = details.then(|| {
        let columns: Vec<Value> = ws
            .columns
            .iter()
            .map(|c| {
                json!({
                    "header": {
                        "id": stable_guid(&format!("{}/{}", ws.guid, c.name)),
                        "name": c.name,
                    },
                    "type": if c.measure { "MEASURE" } else { "ATTRIBUTE" },
                    "dataType": c.data_type,
                })
            })
            .collect();
        json!({"columns": columns})
    });
    json!({
        "metadata_id": ws.guid,
        "metadata_name": ws.name,
        "metadata_type": "LOGICAL_TABLE",
        "metadata_header": {
            "id": ws.guid,
            "name": ws.name,
            "type": "WORKSHEET",
            "description": format!("System worksheet {} (fake ThoughtSpot)", ws.name),
        },
        "metadata_detail": detail,
    })
}

/// SQL `LIKE` with `%` (any run) and `_` (one character), ignoring case.
pub(super) fn like(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    let t: Vec<char> = text.to_lowercase().chars().collect();
    // Positions of p reachable after each character of t.
    let mut states = vec![false; p.len() + 1];
    states[0] = true;
    let close = |states: &mut Vec<bool>| {
        for i in 0..p.len() {
            if states[i] && p[i] == '%' {
                states[i + 1] = true;
            }
        }
    };
    close(&mut states);
    for &c in &t {
        let mut next = vec![false; p.len() + 1];
        for i in 0..p.len() {
            if states[i] {
                match p[i] {
                    '%' => next[i] = true,
                    '_' => next[i + 1] = true,
                    pc if pc == c => next[i + 1] = true,
                    _ => {}
                }
            }
        }
        close(&mut next);
        states = next;
    }
    states[p.len()]
}

/// Whether `ws` is what one `metadata` entry of a search asks for.
fn wanted(ws: &Worksheet, entry: &Value) -> bool {
    asked_for(entry, &ws.guid, &ws.name, None)
}

/// Whether the object of `guid`, `name` and `obj_id` is what one
/// `metadata` entry of a search asks for: of its `type` (LOGICAL_TABLE, or
/// none), its `obj_identifier` if given, and then its `identifier` (the
/// GUID or the name, in any case), else its `name_pattern`, else any.
pub(super) fn asked_for(entry: &Value, guid: &str, name: &str, obj_id: Option<&str>) -> bool {
    let kind = entry.get("type").and_then(Value::as_str);
    if kind.is_some_and(|k| !k.eq_ignore_ascii_case("LOGICAL_TABLE")) {
        return false;
    }
    if let Some(wanted) = entry.get("obj_identifier").and_then(Value::as_str)
        && obj_id != Some(wanted)
    {
        return false;
    }
    if let Some(id) = entry.get("identifier").and_then(Value::as_str) {
        return name.eq_ignore_ascii_case(id) || guid.eq_ignore_ascii_case(id);
    }
    if let Some(pattern) = entry.get("name_pattern").and_then(Value::as_str) {
        return like(pattern, name);
    }
    true
}

/// `POST /api/rest/2.0/metadata/search`: the activity worksheets asked
/// for, in the activity org, then the org's imported tables, models and
/// worksheets asked for (see [`super::tml`]).
pub async fn metadata_search(
    State(state): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    pause(&state).await;
    let mut log = seen("POST", "/api/rest/2.0/metadata/search", &headers, &body);
    let response = metadata_response(&state, &headers, &body, &mut log);
    log.status = response.status().as_u16();
    state.record(log);
    response
}

fn metadata_response(
    state: &Shared,
    headers: &HeaderMap,
    body: &Bytes,
    log: &mut Seen,
) -> Response {
    if let Some(r) = no_v2(state) {
        return r;
    }
    let org = match authorize(state, headers) {
        Ok(org) => org,
        Err(r) => return r,
    };
    log.org = Some(org);
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return error(StatusCode::BAD_REQUEST, 10002, "request body is not JSON");
    };
    let offset = request
        .get("record_offset")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let size = request
        .get("record_size")
        .and_then(Value::as_i64)
        .unwrap_or(10);
    log.offset = Some(offset);
    log.size = Some(size);
    let details = request
        .get("include_details")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let entries: Vec<Value> = match request.get("metadata") {
        Some(Value::Array(entries)) if !entries.is_empty() => entries.clone(),
        Some(Value::Array(_)) | None => vec![json!({})],
        Some(_) => {
            return error(StatusCode::BAD_REQUEST, 10002, "metadata is not an array");
        }
    };
    // `created_by_user_identifiers`: objects those users authored only (the
    // activity worksheets are the system's, imported TML the admin's).
    let authors = match request.get("created_by_user_identifiers") {
        None | Some(Value::Null) => None,
        Some(Value::Array(ids)) if ids.iter().all(Value::is_string) => {
            let ids: Vec<String> = ids
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect();
            Some(state.author_ids(&ids))
        }
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                10002,
                "created_by_user_identifiers is not an array of strings",
            );
        }
    };
    let activity_org = state.faults.lock().unwrap().activity_org;
    let set = state.activity();
    let mut found: Vec<Value> = if org == activity_org && authors.is_none() {
        set.worksheets()
            .filter(|ws| entries.iter().any(|e| wanted(ws, e)))
            .map(|ws| listing(ws, details))
            .collect()
    } else {
        Vec::new()
    };
    if authors
        .as_ref()
        .is_none_or(|a| a.contains(super::principals::ADMIN_GUID))
    {
        found.extend(state.listed_objects(org, &entries));
    }
    found.extend(state.listed_owned(org, &entries, authors.as_ref()));
    let size = if size < 0 { found.len() } else { size as usize };
    let page: Vec<Value> = found.into_iter().skip(offset as usize).take(size).collect();
    json_response(&Value::Array(page))
}

/// `POST /api/rest/2.0/searchdata` on an activity worksheet.
pub async fn searchdata(
    State(state): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let n = state.searchdata.fetch_add(1, AtomicOrdering::SeqCst) + 1;
    pause(&state).await;
    let mut log = seen("POST", "/api/rest/2.0/searchdata", &headers, &body);
    let response = searchdata_response(&state, &headers, &body, n, &mut log);
    log.status = response.status().as_u16();
    state.record(log);
    response
}

fn searchdata_response(
    state: &Shared,
    headers: &HeaderMap,
    body: &Bytes,
    n: usize,
    log: &mut Seen,
) -> Response {
    if let Some(r) = no_v2(state) {
        return r;
    }
    let org = match authorize(state, headers) {
        Ok(org) => org,
        Err(r) => return r,
    };
    log.org = Some(org);
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return error(StatusCode::BAD_REQUEST, 10002, "request body is not JSON");
    };
    let offset = request
        .get("record_offset")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let size = request
        .get("record_size")
        .and_then(Value::as_i64)
        .unwrap_or(10);
    log.offset = Some(offset);
    log.size = Some(size);

    let (activity_org, cap, max_page, zone) = {
        let mut faults = state.faults.lock().unwrap();
        if let Some(message) = &faults.searchdata_error {
            return error(StatusCode::INTERNAL_SERVER_ERROR, 10005, message);
        }
        if faults
            .rate_limit_every
            .is_some_and(|every| n.is_multiple_of(every))
        {
            let mut response = error(StatusCode::TOO_MANY_REQUESTS, 10006, "Too many requests");
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            return response;
        }
        if take(&mut faults.unavailable) {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                10007,
                "Service unavailable",
            );
        }
        (
            faults.activity_org,
            faults.row_cap,
            faults.max_page,
            faults.time_zone.clone(),
        )
    };

    if let Some(format) = request.get("data_format").and_then(Value::as_str)
        && !format.eq_ignore_ascii_case("COMPACT")
    {
        return error(
            StatusCode::BAD_REQUEST,
            10002,
            &format!("data_format {format} is not served by the fake (COMPACT only)"),
        );
    }
    let Some(id) = request
        .get("logical_table_identifier")
        .and_then(Value::as_str)
    else {
        return error(
            StatusCode::BAD_REQUEST,
            10002,
            "logical_table_identifier is required",
        );
    };
    let Some(query_string) = request.get("query_string").and_then(Value::as_str) else {
        return error(StatusCode::BAD_REQUEST, 10002, "query_string is required");
    };
    let set = state.activity();
    let Some(ws) = set
        .worksheets()
        .find(|ws| ws.guid.eq_ignore_ascii_case(id))
        .filter(|_| org == activity_org)
    else {
        return error(
            StatusCode::BAD_REQUEST,
            10002,
            &format!("Cannot find logical table with identifier {id}"),
        );
    };
    let tz = match zone.as_deref().map(TimeZone::get).transpose() {
        Ok(tz) => tz,
        Err(e) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                10005,
                &format!("cluster time zone: {e}"),
            );
        }
    };
    let query = match parse_query(ws, query_string) {
        Ok(query) => query,
        Err(message) => return error(StatusCode::BAD_REQUEST, 10002, &message),
    };
    let mut page = if size < 0 { usize::MAX } else { size as usize };
    if let Some(max) = max_page {
        page = page.min(max);
    }
    let answer = answer(ws, &query, tz.as_ref(), cap, offset as usize, page);
    let bytes = render(ws, &query, &answer, tz.as_ref(), offset, size);
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        bytes,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users() -> Vec<String> {
        (0..20)
            .map(|i| format!("{i:08x}-0000-4000-8000-000000000000"))
            .collect()
    }

    /// 01/02/2024 00:00:00 UTC.
    const JAN2: i64 = 1_704_153_600;

    fn ws() -> Worksheet {
        bi_server(&users(), 2_000, JAN2, 86_400, 7)
    }

    #[test]
    fn parses_columns_and_filters() {
        let ws = ws();
        let q = parse_query(
            &ws,
            "[Incident Id] [timestamp].detailed [USER ID]   [Timestamp] >= '01/02/2024 06:00:00' \
             [Timestamp] < '01/03/2024' [Latency (us)]",
        )
        .unwrap();
        assert_eq!(q.columns, vec![0, 1, 10, 15]);
        assert_eq!(
            q.filters,
            vec![
                Filter {
                    column: 1,
                    op: Op::Ge,
                    wall: JAN2 + 6 * 3600
                },
                Filter {
                    column: 1,
                    op: Op::Lt,
                    wall: JAN2 + 86_400
                },
            ]
        );
        let q = parse_query(
            &ws,
            "[User Id] [Timestamp]>'1/2/2024 00:00:01' [Timestamp]<='01/02/2024 00:00:02'",
        )
        .unwrap();
        assert_eq!(q.columns, vec![10]);
        assert_eq!(q.filters[0].op, Op::Gt);
        assert_eq!(q.filters[1].op, Op::Le);
    }

    #[test]
    fn refuses_bad_queries() {
        let ws = ws();
        let err = |q: &str| parse_query(&ws, q).unwrap_err();
        assert_eq!(
            err("[Incident Id] [Nope]"),
            "Search did not find column [Nope]"
        );
        for bad in [
            "[Timestamp] >= '13/01/2024 00:00:00'",
            "[Incident Id] [Timestamp] >= '01/02/2024 25:00:00'",
            "[Incident Id] [Timestamp] >= 01/02/2024",
            "[Incident Id] [Timestamp] >= '01/02/2024",
            "[Incident Id] [Timestamp] => '01/02/2024'",
            "[Incident Id] [Timestamp] != '01/02/2024'",
            "[Incident Id] [Timestamp] >= '2024-01-02'",
            "[Incident Id] [User] >= '01/02/2024'",
            "[Incident Id] [Timestamp].monthly",
            "[Incident Id] top 10",
            "[Incident Id",
            "[Timestamp] >= '01/02/2024'",
            "",
        ] {
            assert!(parse_query(&ws, bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn generation_is_deterministic_sorted_and_hostile() {
        let a = ws();
        let b = ws();
        assert_eq!(a.rows, b.rows);
        assert_ne!(a.rows, bi_server(&users(), 2_000, JAN2, 86_400, 8).rows);
        assert!(a.rows.is_sorted_by(|x, y| cmp_rows(x, y, 1).is_lt()));
        let ids: std::collections::HashSet<&str> =
            a.rows.iter().map(|r| r[0].as_str().unwrap()).collect();
        assert_eq!(ids.len(), a.rows.len());
        assert!(a.rows.windows(2).any(|w| w[0][1] == w[1][1]));
        assert!(a.rows.iter().all(|r| {
            let t = r[1].as_i64().unwrap();
            (JAN2..JAN2 + 86_400).contains(&t) && r.len() == a.columns.len()
        }));
        let users = users();
        assert!(a.rows.iter().any(|r| !users.iter().any(|u| r[10] == *u)));
        let queries: Vec<&Value> = a.rows.iter().map(|r| &r[13]).collect();
        assert!(queries.iter().any(|q| q.is_null()));
        assert!(
            queries
                .iter()
                .any(|q| q.as_str().is_some_and(|s| s.contains('\n')))
        );
        assert!(
            queries
                .iter()
                .any(|q| q.as_str().is_some_and(|s| s.contains("日本")))
        );
        assert!(a.rows.iter().any(|r| r[5].is_null()));
        for r in &a.rows {
            for c in 14..=17 {
                assert!(r[c].as_f64().unwrap() >= 0.0, "{r:?}");
            }
            let id = r[0].as_str().unwrap();
            let groups: Vec<usize> = id.split('-').map(str::len).collect();
            assert_eq!(groups, [8, 4, 4, 4, 12], "{id}");
            assert!(id.bytes().all(|b| b == b'-' || b.is_ascii_hexdigit()));
        }
        let stats = ai_bi_stats(&users, 500, JAN2, 86_400, 7, AI_BI_STATS);
        assert_eq!(stats.rows.len(), 500);
        assert!(stats.rows.is_sorted_by(|x, y| cmp_rows(x, y, 1).is_lt()));
    }

    #[test]
    fn windows_pages_and_cap() {
        let ws = ws();
        let q = parse_query(
            &ws,
            "[Incident Id] [Timestamp].detailed [Timestamp] >= '01/02/2024 06:00:00' \
             [Timestamp] < '01/02/2024 12:00:00'",
        )
        .unwrap();
        let lo = JAN2 + 6 * 3600;
        let hi = JAN2 + 12 * 3600;
        let expected: Vec<&[Value]> = ws
            .rows
            .iter()
            .filter(|r| (lo..hi).contains(&r[1].as_i64().unwrap()))
            .map(Vec::as_slice)
            .collect();
        assert!(expected.len() > 300);

        let all = answer(&ws, &q, None, None, 0, usize::MAX);
        assert_eq!(all.available, expected.len());
        assert_eq!(all.rows, expected);

        // Pages of 100 with a cap of 250: 250 rows in all, never more.
        let mut got = Vec::new();
        for offset in (0..expected.len() + 200).step_by(100) {
            let page = answer(&ws, &q, None, Some(250), offset, 100);
            assert_eq!(page.available, 250);
            got.extend(page.rows);
        }
        assert_eq!(got, expected[..250]);

        // A cap above the count changes nothing.
        assert_eq!(
            answer(&ws, &q, None, Some(1_000_000), 0, 10).available,
            expected.len()
        );
    }

    #[test]
    fn time_zone_shifts_literals_and_values() {
        let ws = ws();
        let tz = TimeZone::get("America/New_York").unwrap();
        // 01/02/2024 06:00 in New York is 11:00 UTC.
        let q = parse_query(&ws, "[Timestamp] [Timestamp] >= '01/02/2024 06:00:00'").unwrap();
        let first = answer(&ws, &q, Some(&tz), None, 0, 1).rows[0];
        let t = first[1].as_i64().unwrap();
        assert!(t >= JAN2 + 11 * 3600);
        let before = ws
            .rows
            .iter()
            .rev()
            .find(|r| r[1].as_i64().unwrap() < t)
            .unwrap();
        assert!(before[1].as_i64().unwrap() < JAN2 + 11 * 3600);
        assert_eq!(wall_of(t, Some(&tz)), t - 5 * 3600);
        let bytes = render(
            &ws,
            &q,
            &answer(&ws, &q, Some(&tz), None, 0, 1),
            Some(&tz),
            0,
            1,
        );
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["contents"][0]["data_rows"][0][0]["v"]["s"], t - 5 * 3600);
        assert_eq!(v["contents"][0]["column_names"], json!(["Timestamp"]));
    }

    #[test]
    fn measures_are_totals_and_other_date_filters_scan() {
        let stats = ai_bi_stats(&users(), 400, JAN2, 86_400, 3, EMBRACE_STATS);
        let q = parse_query(
            &stats,
            "[Query ID] [Credits] [DB Start Time] [DB Start Time] >= '01/02/2024 12:00:00'",
        )
        .unwrap();
        let a = answer(&stats, &q, None, None, 0, usize::MAX);
        let expected = stats
            .rows
            .iter()
            .filter(|r| r[2].as_i64().is_some_and(|t| t >= JAN2 + 12 * 3600))
            .count();
        assert_eq!(a.available, expected);
        assert_eq!(answer(&stats, &q, None, Some(5), 3, 10).rows.len(), 2);
        let v: Value = serde_json::from_slice(&render(&stats, &q, &a, None, 0, -1)).unwrap();
        assert_eq!(
            v["contents"][0]["column_names"],
            json!(["Query ID", "Total Credits", "DB Start Time"])
        );
        assert!(v["contents"][0]["data_rows"][0][2]["v"]["s"].is_i64());
    }

    /// The routes end to end: find the worksheet, page through a window,
    /// errors, the org, the time zone and replacing the set.
    #[tokio::test(flavor = "multi_thread")]
    async fn served_over_http() {
        use super::super::{Data, FakeThoughtSpot, Faults};
        let data = Data::generated(30, 5, 2);
        let guids = user_guids(&data);
        let server = FakeThoughtSpot::start_on(
            data,
            0,
            Faults {
                row_cap: Some(150),
                ..Faults::default()
            },
        );
        server.state.set_activity(ActivitySet::generated(
            &guids,
            1_000,
            JAN2,
            86_400,
            1,
            EMBRACE_STATS,
        ));
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let token = server.state.mint_token(0);
        let post = |path: &str, body: Value, token: &str| {
            let request = client
                .post(format!("{}/api/rest/2.0/{path}", server.url()))
                .bearer_auth(token)
                .json(&body);
            async move {
                let response = request.send().await.unwrap();
                let status = response.status().as_u16();
                (status, response.json::<Value>().await.unwrap())
            }
        };
        let find = |name: &str, details: bool| {
            json!({"metadata": [{"type": "LOGICAL_TABLE", "identifier": name}],
                   "include_details": details, "record_size": 10})
        };
        let (status, found) = post("metadata/search", find("ts: bi server", true), &token).await;
        assert_eq!(status, 200);
        assert_eq!(found.as_array().unwrap().len(), 1);
        let guid = found[0]["metadata_id"].as_str().unwrap().to_owned();
        assert_eq!(found[0]["metadata_header"]["type"], "WORKSHEET");
        let columns = found[0]["metadata_detail"]["columns"].as_array().unwrap();
        assert_eq!(columns.len(), 19);
        assert_eq!(columns[1]["header"]["name"], "Timestamp");
        assert_eq!(columns[1]["dataType"], "DATE_TIME");
        assert_eq!(columns[14]["type"], "MEASURE");
        let (_, by_guid) = post("metadata/search", find(&guid, false), &token).await;
        assert_eq!(by_guid[0]["metadata_name"], BI_SERVER);
        assert!(by_guid[0]["metadata_detail"].is_null());
        let (_, none) = post("metadata/search", find(AI_BI_STATS, true), &token).await;
        assert_eq!(none, json!([]));
        let (_, old) = post("metadata/search", find(EMBRACE_STATS, true), &token).await;
        assert_eq!(old.as_array().unwrap().len(), 1);
        let other = server.state.mint_token(1_000_001);
        let (_, elsewhere) = post("metadata/search", find(BI_SERVER, true), &other).await;
        assert_eq!(elsewhere, json!([]));

        let query = "[Incident Id] [Timestamp].detailed [User Id] [Response Size] \
                     [Timestamp] >= '01/02/2024 00:00:00' [Timestamp] < '01/03/2024 00:00:00'";
        let search = |offset: u64, size: i64| {
            json!({"logical_table_identifier": guid, "query_string": query,
                   "data_format": "COMPACT", "record_offset": offset, "record_size": size})
        };
        let mut rows = Vec::new();
        for offset in [0, 100, 200] {
            let (status, page) = post("searchdata", search(offset, 100), &token).await;
            assert_eq!(status, 200, "{page}");
            let contents = &page["contents"][0];
            assert_eq!(contents["available_data_row_count"], 150);
            assert_eq!(
                contents["column_names"],
                json!(["Incident Id", "Timestamp", "User Id", "Total Response Size"])
            );
            assert_eq!(contents["record_offset"], offset);
            let data_rows = contents["data_rows"].as_array().unwrap();
            assert_eq!(contents["returned_data_row_count"], data_rows.len());
            rows.extend(data_rows.iter().cloned());
        }
        assert_eq!(rows.len(), 150);
        assert!(rows[0][1]["v"]["s"].as_i64().unwrap() >= JAN2);
        assert_eq!(server.state.searchdata_requests(), 3);
        let seen = server.state.seen();
        let last = seen
            .iter()
            .rev()
            .find(|s| s.path == "/api/rest/2.0/searchdata")
            .unwrap();
        assert!(last.body.contains("[Incident Id]"));
        assert_eq!(last.offset, Some(200));

        let bad = |q: &str| json!({"logical_table_identifier": guid, "query_string": q, "record_size": 10});
        let (status, e) = post("searchdata", bad("[Incident Id] [Nope]"), &token).await;
        assert_eq!(status, 400);
        assert_eq!(
            e["error"]["message"]["debug"],
            "Search did not find column [Nope]"
        );
        let (status, _) = post("searchdata", bad("[Timestamp] >= 'yesterday'"), &token).await;
        assert_eq!(status, 400);
        let (status, _) = post("searchdata", search(0, 10), &other).await;
        assert_eq!(status, 400);

        server
            .state
            .set(|f| f.time_zone = Some("Asia/Tokyo".into()));
        let (_, local) = post("searchdata", search(0, 1), &token).await;
        let first = local["contents"][0]["data_rows"][0].clone();
        // 01/02/2024 00:00 in Tokyo is 01/01/2024 15:00 UTC, before any row.
        assert_eq!(first[0], ws_first_id(&server.state));
        assert!(first[1]["v"]["s"].as_i64().unwrap() >= JAN2 + 9 * 3600);

        server
            .state
            .set(|f| f.searchdata_error = Some("Search failed".into()));
        let (status, e) = post("searchdata", search(0, 1), &token).await;
        assert_eq!(status, 500);
        assert_eq!(e["error"]["message"]["debug"], "Search failed");

        server.state.set_activity(ActivitySet::default());
        let (_, gone) = post("metadata/search", find(BI_SERVER, true), &token).await;
        assert_eq!(gone, json!([]));
    }

    fn ws_first_id(state: &Shared) -> Value {
        state.activity().bi_server.as_ref().unwrap().rows[0][0].clone()
    }

    #[test]
    fn like_patterns() {
        assert!(like("TS: BI%", "ts: bi server"));
        assert!(like("%stats%", "TS: AI and BI Stats"));
        assert!(!like("TS: BI", "TS: BI Server"));
        assert!(like("TS:_BI Server", "TS: BI Server"));
    }
}
