//! Falcon on the fake ThoughtSpot: remote TQL (`tql/query`, signed in with
//! the callosum session) and the tsload service (`session`, `loads`,
//! upload, `commit`, `cancel`, status), keeping what a real cluster keeps:
//! databases, schemas, tables with their columns and key, and the rows
//! each committed load left (parsed with the csv crate as the load's
//! parameters say, checked against the column types). Several fake nodes
//! can share one store, as a cluster's nodes share Falcon; a load cycle
//! belongs to the node its start named, and the others do not know it.
//!
//! Faults (in [`Faults`](super::Faults)): no Falcon at all (404, as on
//! ThoughtSpot Cloud), a load handed to another node, sessions that expire,
//! rows rejected in one table, and an upload that fails with 500.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{PASSWORD, Shared, USERNAME, error, header_text, seen, session_of};

/// Every path of the data service starts so.
pub const PREFIX: &str = "/ts_dataservice/v1/public";

/// One column as created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FakeColumn {
    /// The name, as quoted in the statement.
    pub name: String,
    /// The type as written, upper case (`VARCHAR(65535)`, `BIGINT`).
    pub ty: String,
}

/// One Falcon table.
#[derive(Clone, Debug, Default)]
pub struct FakeTable {
    /// Columns in order.
    pub columns: Vec<FakeColumn>,
    /// The primary key's columns.
    pub key: Vec<String>,
    /// The rows it holds, each field as the CSV had it.
    pub rows: Vec<Vec<String>>,
    /// Loads committed into it.
    pub loads: usize,
}

/// Where a load cycle stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Taking uploads.
    Open,
    /// Committed; `polls` status reads so far.
    Committed,
    /// Cancelled.
    Cancelled,
}

/// One load cycle.
#[derive(Clone, Debug)]
pub struct Cycle {
    /// The port of the node it lives on.
    pub node: u16,
    /// Target.
    pub database: String,
    pub schema: String,
    pub table: String,
    /// The load parameters as sent.
    pub params: Value,
    /// Uploads received.
    pub uploads: usize,
    /// Rows parsed from them.
    pub rows: Vec<Vec<String>>,
    /// Rows rejected, with why.
    pub rejected: Vec<String>,
    pub stage: Stage,
    /// Whether the commit applied the rows.
    pub applied: bool,
    polls: usize,
}

/// What Falcon holds, shared by every node of a fake cluster.
#[derive(Debug, Default)]
pub struct FalconStore {
    /// database → schema → table.
    pub databases: BTreeMap<String, BTreeMap<String, BTreeMap<String, FakeTable>>>,
    /// Load cycles by id.
    pub cycles: HashMap<String, Cycle>,
    /// Every TQL statement run, in order.
    pub statements: Vec<String>,
    next: u64,
}

impl FalconStore {
    /// A table, when it exists.
    pub fn table(&self, database: &str, schema: &str, table: &str) -> Option<&FakeTable> {
        self.databases.get(database)?.get(schema)?.get(table)
    }

    /// The cycles of a table, oldest first.
    pub fn cycles_of(&self, table: &str) -> Vec<&Cycle> {
        let mut cycles: Vec<(&String, &Cycle)> = self
            .cycles
            .iter()
            .filter(|(_, c)| c.table == table)
            .collect();
        cycles.sort_by_key(|(id, _)| {
            id.split('-')
                .nth(1)
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0)
        });
        cycles.into_iter().map(|(_, c)| c).collect()
    }
}

/// A shared store for a new fake cluster.
pub fn new_store() -> Arc<Mutex<FalconStore>> {
    Arc::new(Mutex::new(FalconStore::default()))
}

fn plain(status: StatusCode, text: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain")],
        text.to_owned(),
    )
        .into_response()
}

fn no_falcon(state: &Shared) -> Option<Response> {
    (!state.faults.lock().unwrap().falcon)
        .then(|| error(StatusCode::NOT_FOUND, 10004, "no such endpoint"))
}

fn finish(
    state: &Shared,
    method: &str,
    path: &str,
    headers: &HeaderMap,
    body: &Bytes,
    response: Response,
) -> Response {
    let mut log = seen(method, path, headers, body);
    log.status = response.status().as_u16();
    state.record(log);
    response
}

// ---------------------------------------------------------------- TQL

/// A token of a TQL statement.
#[derive(Clone, Debug, PartialEq)]
enum Token {
    Quoted(String),
    Word(String),
    Number(u64),
    Punct(char),
}

fn tokens(statement: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut chars = statement.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '"' {
            chars.next();
            let mut name = String::new();
            loop {
                match chars.next() {
                    Some('"') => break,
                    Some(c) => name.push(c),
                    None => return Err("unterminated quoted name".into()),
                }
            }
            out.push(Token::Quoted(name));
        } else if c.is_ascii_digit() {
            let mut n = String::new();
            while let Some(&d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                n.push(d);
                chars.next();
            }
            out.push(Token::Number(n.parse().map_err(|e| format!("{e}"))?));
        } else if c.is_alphabetic() || c == '_' {
            let mut w = String::new();
            while let Some(&d) = chars.peek().filter(|d| d.is_alphanumeric() || **d == '_') {
                w.push(d);
                chars.next();
            }
            out.push(Token::Word(w.to_ascii_uppercase()));
        } else {
            out.push(Token::Punct(c));
            chars.next();
        }
    }
    if out.last() == Some(&Token::Punct(';')) {
        out.pop();
    }
    Ok(out)
}

/// `"a"."b"."c"` from the front of `tokens`.
fn qualified(tokens: &[Token]) -> (Vec<String>, &[Token]) {
    let mut parts = Vec::new();
    let mut rest = tokens;
    while let Some(Token::Quoted(name)) = rest.first() {
        parts.push(name.clone());
        rest = &rest[1..];
        if rest.first() == Some(&Token::Punct('.')) {
            rest = &rest[1..];
        } else {
            break;
        }
    }
    (parts, rest)
}

/// Runs a statement; returns INFO lines or an error.
fn execute(
    store: &mut FalconStore,
    statement: &str,
    context_db: Option<&str>,
) -> Result<Vec<String>, String> {
    use Token::*;
    let tokens = tokens(statement)?;
    let words = |n: usize| -> Vec<String> {
        tokens
            .iter()
            .take(n)
            .map(|t| match t {
                Word(w) => w.clone(),
                _ => String::new(),
            })
            .collect()
    };
    match words(2).iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["SHOW", "DATABASES"] => Ok(store.databases.keys().cloned().collect()),
        ["CREATE", "DATABASE"] => {
            let (names, rest) = qualified(&tokens[2..]);
            let [name] = &names[..] else {
                return Err("CREATE DATABASE wants one name".into());
            };
            if !rest.is_empty() {
                return Err(format!("unexpected {:?}", rest[0]));
            }
            if store.databases.contains_key(name) {
                return Err(format!("Database \"{name}\" already exists"));
            }
            let mut schemas = BTreeMap::new();
            schemas.insert("falcon_default_schema".to_owned(), BTreeMap::new());
            store.databases.insert(name.clone(), schemas);
            Ok(Vec::new())
        }
        ["CREATE", "SCHEMA"] => {
            let (names, rest) = qualified(&tokens[2..]);
            let (database, schema) = match &names[..] {
                [d, s] => (d.clone(), s.clone()),
                [s] => (
                    context_db.ok_or("no database selected")?.to_owned(),
                    s.clone(),
                ),
                _ => return Err("CREATE SCHEMA wants a name".into()),
            };
            if !rest.is_empty() {
                return Err(format!("unexpected {:?}", rest[0]));
            }
            let schemas = (store.databases.get_mut(&database))
                .ok_or(format!("Database \"{database}\" does not exist"))?;
            if schemas.contains_key(&schema) {
                return Err(format!("Schema \"{schema}\" already exists"));
            }
            schemas.insert(schema, BTreeMap::new());
            Ok(Vec::new())
        }
        ["CREATE", "TABLE"] => {
            let (names, rest) = qualified(&tokens[2..]);
            let [database, schema, table] = &names[..] else {
                return Err("the fake wants \"db\".\"schema\".\"table\"".into());
            };
            let (columns, key) = table_body(rest)?;
            let tables = (store.databases.get_mut(database))
                .ok_or(format!("Database \"{database}\" does not exist"))?
                .get_mut(schema)
                .ok_or(format!("Schema \"{schema}\" does not exist"))?;
            if tables.contains_key(table) {
                return Err(format!("Table \"{table}\" already exists"));
            }
            tables.insert(
                table.clone(),
                FakeTable {
                    columns,
                    key,
                    ..FakeTable::default()
                },
            );
            Ok(Vec::new())
        }
        _ => Err(format!("the fake does not know {statement:?}")),
    }
}

/// `( "c" TYPE, …, CONSTRAINT PRIMARY KEY ("c", …) )`.
fn table_body(tokens: &[Token]) -> Result<(Vec<FakeColumn>, Vec<String>), String> {
    use Token::*;
    let inner = match (tokens.first(), tokens.last()) {
        (Some(Punct('(')), Some(Punct(')'))) => &tokens[1..tokens.len() - 1],
        _ => return Err("expected ( … )".into()),
    };
    let mut items: Vec<&[Token]> = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, t) in inner.iter().enumerate() {
        match t {
            Punct('(') => depth += 1,
            Punct(')') => depth -= 1,
            Punct(',') if depth == 0 => {
                items.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&inner[start..]);
    let (mut columns, mut key) = (Vec::new(), Vec::new());
    for item in items {
        match item {
            [
                Word(c),
                Word(p),
                Word(k),
                Punct('('),
                names @ ..,
                Punct(')'),
            ] if c == "CONSTRAINT" && p == "PRIMARY" && k == "KEY" => {
                for t in names {
                    match t {
                        Quoted(n) => key.push(n.clone()),
                        Punct(',') => {}
                        other => return Err(format!("unexpected {other:?} in the key")),
                    }
                }
            }
            [Quoted(name), Word(ty)]
                if [
                    "BIGINT", "INT", "BOOL", "DATETIME", "DOUBLE", "FLOAT", "DATE", "TIME",
                ]
                .contains(&ty.as_str()) =>
            {
                columns.push(FakeColumn {
                    name: name.clone(),
                    ty: ty.clone(),
                })
            }
            [Quoted(name), Word(ty), Punct('('), Number(n), Punct(')')] if ty == "VARCHAR" => {
                columns.push(FakeColumn {
                    name: name.clone(),
                    ty: format!("VARCHAR({n})"),
                })
            }
            other => return Err(format!("cannot read the column definition {other:?}")),
        }
    }
    if let Some(missing) = key.iter().find(|k| !columns.iter().any(|c| &c.name == *k)) {
        return Err(format!("the key names {missing:?}, which is no column"));
    }
    Ok((columns, key))
}

/// `POST /ts_dataservice/v1/public/tql/query`.
pub async fn tql_query(
    State(state): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let response = tql_response(&state, &headers, &body);
    finish(
        &state,
        "POST",
        &format!("{PREFIX}/tql/query"),
        &headers,
        &body,
        response,
    )
}

fn tql_response(state: &Shared, headers: &HeaderMap, body: &Bytes) -> Response {
    if let Some(r) = no_falcon(state) {
        return r;
    }
    if session_of(state, headers).is_none() {
        return error(StatusCode::UNAUTHORIZED, 10000, "not signed in");
    }
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return error(StatusCode::BAD_REQUEST, 10002, "request body is not JSON");
    };
    let Some(statement) = request.pointer("/query/statement").and_then(Value::as_str) else {
        return error(StatusCode::BAD_REQUEST, 10002, "no query.statement");
    };
    let database = request.pointer("/context/database").and_then(Value::as_str);
    let mut store = state.falcon.lock().unwrap();
    store.statements.push(statement.to_owned());
    let mut messages: Vec<Value> = Vec::new();
    match execute(&mut store, statement, database) {
        Ok(lines) => {
            messages.extend(
                lines
                    .iter()
                    .map(|l| json!({"type": "INFO", "value": format!("{l}\n")})),
            );
            messages.push(json!({"type": "INFO", "value": "Statement executed successfully. \n"}));
        }
        Err(message) => messages.push(json!({"type": "ERROR", "value": format!("{message}\n")})),
    }
    // JSON lines: messages, then a final line with the context.
    let first = json!({"result": {"message": messages}});
    let last = json!({"result": {"final_context": {"schema": "falcon_default_schema",
        "database": database.unwrap_or(""), "server_schema_version": "7"}, "complete": true}});
    plain(StatusCode::OK, &format!("{first}\n{last}\n"))
}

// ------------------------------------------------------------- tsload

/// Checks the tsload session cookie; counts its uses.
#[allow(clippy::result_large_err)] // a test server; the error is the reply
fn tsload_session(state: &Shared, headers: &HeaderMap) -> Result<(), Response> {
    let expired = || {
        plain(
            StatusCode::UNAUTHORIZED,
            "Unable to verify user. Please login again.",
        )
    };
    let cookies = header_text(headers, header::COOKIE).ok_or_else(expired)?;
    let limit = state.faults.lock().unwrap().falcon_session_uses;
    let mut sessions = state.tsload_sessions.lock().unwrap();
    let session = cookies
        .split(';')
        .filter_map(|c| c.trim().strip_prefix("JSESSIONID="))
        .find(|s| sessions.contains_key(*s))
        .ok_or_else(expired)?
        .to_owned();
    let uses = sessions.get_mut(&session).ok_or_else(expired)?;
    *uses += 1;
    if limit.is_some_and(|limit| *uses > limit) {
        sessions.remove(&session);
        return Err(expired());
    }
    Ok(())
}

/// `POST /ts_dataservice/v1/public/session`.
pub async fn session(
    State(state): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let response = if let Some(r) = no_falcon(&state) {
        r
    } else {
        let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let good = request.get("username").and_then(Value::as_str) == Some(USERNAME)
            && request.get("password").and_then(Value::as_str) == Some(PASSWORD);
        if good {
            let session = state.new_secret("fake-tsload");
            state
                .tsload_sessions
                .lock()
                .unwrap()
                .insert(session.clone(), 0);
            Response::builder()
                .status(StatusCode::OK)
                .header(
                    header::SET_COOKIE,
                    format!("JSESSIONID={session}; Path=/; HttpOnly"),
                )
                .body(Body::empty())
                .expect("response")
        } else {
            plain(
                StatusCode::UNAUTHORIZED,
                "Unable to verify user. Please login again.",
            )
        }
    };
    finish(
        &state,
        "POST",
        &format!("{PREFIX}/session"),
        &headers,
        &body,
        response,
    )
}

/// `POST /ts_dataservice/v1/public/loads`.
pub async fn start(State(state): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let response = start_response(&state, &headers, &body);
    finish(
        &state,
        "POST",
        &format!("{PREFIX}/loads"),
        &headers,
        &body,
        response,
    )
}

fn start_response(state: &Shared, headers: &HeaderMap, body: &Bytes) -> Response {
    if let Some(r) = no_falcon(state) {
        return r;
    }
    if let Err(r) = tsload_session(state, headers) {
        return r;
    }
    let Ok(params) = serde_json::from_slice::<Value>(body) else {
        return plain(
            StatusCode::BAD_REQUEST,
            "Invalid input params for starting data load: Request body",
        );
    };
    let target = |k: &str| {
        params
            .pointer(&format!("/target/{k}"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let (Some(database), Some(table)) = (target("database"), target("table")) else {
        return plain(
            StatusCode::BAD_REQUEST,
            "Invalid input params for starting data load: Request body",
        );
    };
    let schema = target("schema").unwrap_or_else(|| "falcon_default_schema".into());
    let mut store = state.falcon.lock().unwrap();
    if store.table(&database, &schema, &table).is_none() {
        return plain(
            StatusCode::BAD_REQUEST,
            "Unable to find table in Falcon. Cannot load data.",
        );
    }
    store.next += 1;
    let id = format!("cycle-{}-{:08x}", store.next, fastrand::u32(..));
    let node = state
        .faults
        .lock()
        .unwrap()
        .falcon_node
        .unwrap_or(state.port);
    store.cycles.insert(
        id.clone(),
        Cycle {
            node,
            database,
            schema,
            table,
            params,
            uploads: 0,
            rows: Vec::new(),
            rejected: Vec::new(),
            stage: Stage::Open,
            applied: false,
            polls: 0,
        },
    );
    let answer = json!({"node_address": {"host": "127.0.0.1", "port": node}, "cycle_id": id});
    plain(StatusCode::ACCEPTED, &answer.to_string())
}

/// The cycle, when it lives on this node.
#[allow(clippy::result_large_err)]
fn cycle_here<'a>(
    state: &Shared,
    store: &'a mut FalconStore,
    id: &str,
) -> Result<&'a mut Cycle, Response> {
    match store.cycles.get_mut(id) {
        Some(cycle) if cycle.node == state.port => Ok(cycle),
        _ => Err(plain(
            StatusCode::BAD_REQUEST,
            &format!("Cycle_id=[{id}] does not exist."),
        )),
    }
}

/// `POST /ts_dataservice/v1/public/loads/{cycle}`: a multipart upload.
pub async fn upload(
    State(state): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let response = upload_response(&state, &id, &headers, &body);
    let path = format!("{PREFIX}/loads/{id}");
    finish(&state, "POST", &path, &headers, &Bytes::new(), response)
}

fn upload_response(state: &Shared, id: &str, headers: &HeaderMap, body: &Bytes) -> Response {
    if let Some(r) = no_falcon(state) {
        return r;
    }
    if let Err(r) = tsload_session(state, headers) {
        return r;
    }
    let (fail_upload, reject) = {
        let faults = state.faults.lock().unwrap();
        (
            faults.falcon_upload_error.clone(),
            faults.falcon_reject.clone(),
        )
    };
    let mut store = state.falcon.lock().unwrap();
    let (database, schema, table_name) = {
        let cycle = match cycle_here(state, &mut store, id) {
            Ok(c) => c,
            Err(r) => return r,
        };
        if cycle.stage != Stage::Open {
            return plain(
                StatusCode::BAD_REQUEST,
                &format!("Cycle_id=[{id}] is not open."),
            );
        }
        (
            cycle.database.clone(),
            cycle.schema.clone(),
            cycle.table.clone(),
        )
    };
    if fail_upload.as_deref() == Some(table_name.as_str()) {
        return plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!(
                "error code = INTERNAL, message = the upload of {table_name} broke off after {} bytes (fake)",
                body.len() / 2
            ),
        );
    }
    let Some(columns) = store
        .table(&database, &schema, &table_name)
        .map(|t| t.columns.clone())
    else {
        return plain(
            StatusCode::BAD_REQUEST,
            "Unable to find table in Falcon. Cannot load data.",
        );
    };
    let file = match multipart_file(headers, body) {
        Ok(file) => file,
        Err(message) => return plain(StatusCode::BAD_REQUEST, &message),
    };
    let cycle = match cycle_here(state, &mut store, id) {
        Ok(c) => c,
        Err(r) => return r,
    };
    if let Err(message) = parse_rows(
        cycle,
        &columns,
        &file,
        reject.as_deref() == Some(table_name.as_str()),
    ) {
        return plain(StatusCode::BAD_REQUEST, &message);
    }
    cycle.uploads += 1;
    plain(StatusCode::ACCEPTED, "Upload Complete.")
}

/// The file part of a `multipart/form-data` body.
fn multipart_file(headers: &HeaderMap, body: &[u8]) -> Result<Vec<u8>, String> {
    let content_type = header_text(headers, header::CONTENT_TYPE).unwrap_or_default();
    if !content_type.starts_with("multipart/form-data") {
        return Err("We only support multipart form/data.".into());
    }
    let boundary = content_type
        .split(';')
        .find_map(|p| p.trim().strip_prefix("boundary="))
        .ok_or("no multipart boundary")?
        .trim_matches('"');
    let open = format!("--{boundary}\r\n");
    let close = format!("\r\n--{boundary}");
    let find = |hay: &[u8], needle: &[u8], from: usize| {
        hay[from..]
            .windows(needle.len())
            .position(|w| w == needle)
            .map(|p| p + from)
    };
    let start = find(body, open.as_bytes(), 0).ok_or("no multipart part")? + open.len();
    let headers_end = find(body, b"\r\n\r\n", start).ok_or("a part without headers")?;
    let part_headers = String::from_utf8_lossy(&body[start..headers_end]);
    if !part_headers.contains("filename=") {
        return Err("the part is not a file".into());
    }
    let data_start = headers_end + 4;
    let end = find(body, close.as_bytes(), data_start).ok_or("the part does not end")?;
    if !body[end + close.len()..].starts_with(b"--") {
        return Err("more than one part".into());
    }
    Ok(body[data_start..end].to_vec())
}

/// Parses uploaded CSV into the cycle as its parameters say, checking
/// each field against its column's type.
fn parse_rows(
    cycle: &mut Cycle,
    columns: &[FakeColumn],
    file: &[u8],
    reject_all: bool,
) -> Result<(), String> {
    let format = cycle.params.get("format").cloned().unwrap_or(Value::Null);
    let text = |k: &str, default: &str| {
        format
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or(default)
            .to_owned()
    };
    let separator = text("field_separator", ",");
    let enclosing = text("enclosing_character", "\"");
    let null = text("null_value", "(null)");
    let header = format
        .get("has_header_row")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let date_time = format
        .pointer("/date_time/date_time_format")
        .and_then(Value::as_str)
        .unwrap_or("%Y%m%d %H:%M:%S")
        .to_owned();
    let true_format = format
        .pointer("/boolean/true_format")
        .and_then(Value::as_str)
        .unwrap_or("T")
        .to_owned();
    let false_format = format
        .pointer("/boolean/false_format")
        .and_then(Value::as_str)
        .unwrap_or("F")
        .to_owned();
    let (&[separator], &[quote]) = (separator.as_bytes(), enclosing.as_bytes()) else {
        return Err("Invalid input params: one-byte separator and enclosing character".into());
    };
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(separator)
        .quote(quote)
        .has_headers(header)
        .from_reader(file);
    for (i, record) in reader.records().enumerate() {
        let line = i + 1 + usize::from(header);
        let record = record.map_err(|e| format!("cannot parse the CSV: {e}"))?;
        if reject_all {
            cycle
                .rejected
                .push(format!("line {line}: rejected (fake fault)"));
            continue;
        }
        if record.len() != columns.len() {
            cycle.rejected.push(format!(
                "line {line}: {} fields, the table has {} columns",
                record.len(),
                columns.len()
            ));
            continue;
        }
        let mut row = Vec::new();
        let mut bad = None;
        for (value, column) in record.iter().zip(columns) {
            if value == null {
                row.push(String::new());
                continue;
            }
            let ok = match column.ty.as_str() {
                "BIGINT" | "INT" => value.parse::<i64>().is_ok(),
                "DOUBLE" | "FLOAT" => value.parse::<f64>().is_ok(),
                "BOOL" => value == true_format || value == false_format,
                "DATETIME" => jiff::civil::DateTime::strptime(&date_time, value).is_ok(),
                ty => match ty
                    .strip_prefix("VARCHAR(")
                    .and_then(|n| n.strip_suffix(')'))
                {
                    Some(n) => value.chars().count() <= n.parse::<usize>().unwrap_or(0),
                    None => false,
                },
            };
            if !ok && bad.is_none() {
                bad = Some(format!(
                    "line {line}: {value:?} is not a {} ({})",
                    column.ty, column.name
                ));
            }
            row.push(value.to_owned());
        }
        match bad {
            Some(why) => cycle.rejected.push(why),
            None => cycle.rows.push(row),
        }
    }
    Ok(())
}

/// `POST /ts_dataservice/v1/public/loads/{cycle}/commit`.
pub async fn commit(
    State(state): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let delay = state.faults.lock().unwrap().falcon_commit_delay;
    tokio::time::sleep(delay).await;
    let response = commit_response(&state, &id, &headers);
    finish(
        &state,
        "POST",
        &format!("{PREFIX}/loads/{id}/commit"),
        &headers,
        &Bytes::new(),
        response,
    )
}

fn commit_response(state: &Shared, id: &str, headers: &HeaderMap) -> Response {
    if let Some(r) = no_falcon(state) {
        return r;
    }
    if let Err(r) = tsload_session(state, headers) {
        return r;
    }
    let mut store = state.falcon.lock().unwrap();
    let cycle = match cycle_here(state, &mut store, id) {
        Ok(c) => c,
        Err(r) => return r,
    };
    if cycle.stage != Stage::Open {
        return plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("Commit load cycle failed. Error ending load. Unknown cycle_id '{id}'"),
        );
    }
    let chunks = header_text(headers, "x-ts-chunks").and_then(|n| n.trim().parse::<usize>().ok());
    if chunks.is_some_and(|n| n != cycle.uploads) {
        return plain(
            StatusCode::BAD_REQUEST,
            &format!(
                "{} chunks announced, {} received",
                chunks.unwrap_or(0),
                cycle.uploads
            ),
        );
    }
    cycle.stage = Stage::Committed;
    let max_ignored = cycle
        .params
        .pointer("/load_options/max_ignored_rows")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let empty_target = cycle
        .params
        .pointer("/load_options/empty_target")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let fails = cycle.rejected.len() as u64 > max_ignored;
    let (database, schema, table, rows) = (
        cycle.database.clone(),
        cycle.schema.clone(),
        cycle.table.clone(),
        cycle.rows.clone(),
    );
    cycle.applied = !fails;
    if !fails {
        let Some(target) = (store.databases.get_mut(&database))
            .and_then(|s| s.get_mut(&schema))
            .and_then(|t| t.get_mut(&table))
        else {
            return plain(
                StatusCode::BAD_REQUEST,
                "Unable to find table in Falcon. Cannot load data.",
            );
        };
        if empty_target {
            target.rows = rows;
        } else {
            target.rows.extend(rows);
        }
        target.loads += 1;
    }
    plain(StatusCode::ACCEPTED, "Commit load cycle request made.")
}

/// `POST /ts_dataservice/v1/public/loads/{cycle}/cancel`.
pub async fn cancel(
    State(state): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let response = match no_falcon(&state) {
        Some(r) => r,
        None => match tsload_session(&state, &headers) {
            Err(r) => r,
            Ok(()) => {
                let mut store = state.falcon.lock().unwrap();
                match cycle_here(&state, &mut store, &id) {
                    Err(r) => r,
                    Ok(cycle) => {
                        if cycle.stage == Stage::Open {
                            cycle.stage = Stage::Cancelled;
                        }
                        plain(StatusCode::OK, "")
                    }
                }
            }
        },
    };
    finish(
        &state,
        "POST",
        &format!("{PREFIX}/loads/{id}/cancel"),
        &headers,
        &Bytes::new(),
        response,
    )
}

/// `GET /ts_dataservice/v1/public/loads/{cycle}`: committing on the first
/// read, done (or failed) on the next.
pub async fn status(
    State(state): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let response = match no_falcon(&state) {
        Some(r) => r,
        None => match tsload_session(&state, &headers) {
            Err(r) => r,
            Ok(()) => {
                let mut store = state.falcon.lock().unwrap();
                match cycle_here(&state, &mut store, &id) {
                    Err(r) => r,
                    Ok(cycle) => plain(StatusCode::OK, &status_of(&id, cycle).to_string()),
                }
            }
        },
    };
    finish(
        &state,
        "GET",
        &format!("{PREFIX}/loads/{id}"),
        &headers,
        &Bytes::new(),
        response,
    )
}

fn status_of(id: &str, cycle: &mut Cycle) -> Value {
    let rows = cycle.rows.len().to_string();
    let ignored = cycle.rejected.len().to_string();
    match cycle.stage {
        Stage::Open => json!({"cycle_id": id, "internal_stage": "INGESTING", "status": {}}),
        Stage::Cancelled => {
            json!({"cycle_id": id, "internal_stage": "CANCELLED", "status": {"code": "LOAD_CANCELLED"}})
        }
        Stage::Committed => {
            cycle.polls += 1;
            if cycle.polls == 1 {
                return json!({"cycle_id": id, "internal_stage": "COMMITTING", "status": {"code": "OK"},
                              "rows_written": "0", "ignored_row_count": ignored});
            }
            if cycle.applied {
                json!({"cycle_id": id, "internal_stage": "DONE", "status": {"code": "OK"},
                       "rows_written": rows, "ignored_row_count": ignored,
                       "buffered_data": "0 Bytes"})
            } else {
                json!({"cycle_id": id, "internal_stage": "DONE",
                       "status": {"code": "LOAD_FAILED", "message": "Ignored row count exceeds max_ignored_rows (0)"},
                       "rows_written": "0", "ignored_row_count": ignored,
                       "parsing_errors": cycle.rejected.iter().take(10).collect::<Vec<_>>()})
            }
        }
    }
}
