//! The remote tsload service (ThoughtSpot Software's data service, port
//! 8442 by default): rows into existing Falcon tables, a load cycle per
//! table.
//!
//! Documented (ThoughtSpot's "tsload connector" and its API reference):
//! `POST /ts_dataservice/v1/public/session` with `{"username",
//! "password"}` sets a session cookie; `POST /ts_dataservice/v1/public/
//! loads` with the load parameters (`target`, `format`, `load_options`)
//! answers `{"cycle_id", "node_address": {"host", "port"}}`, and when the
//! service's own load balancer names a node, every later call of that
//! cycle goes to that node after signing in there; `POST …/loads/{cycle_id}`
//! takes the data as `multipart/form-data` (header `X-ts-chunk-id`);
//! `POST …/loads/{cycle_id}/commit` (header `X-ts-chunks`) starts the
//! commit, which runs on after the answer; `GET …/loads/{cycle_id}`
//! reports it: `internal_stage` (`DONE` when finished), `status.code`
//! (`OK`, or e.g. `LOAD_FAILED` with `status.message`), `rows_written`,
//! `ignored_row_count`, numbers sent as strings; `POST …/loads/{cycle_id}/
//! cancel` abandons a cycle.
//!
//! Assumed, and tolerated either way: the status path is the `public` one
//! cs_tools uses (one page of the reference omits `public`); numbers may
//! come as numbers or strings; a status without `code` is still running;
//! the file part may be named anything (the reference names it `file`,
//! cs_tools `upload-file`); a cycle changes nothing until its commit, and
//! a cancelled one changes nothing at all, so `empty_target` (which
//! replaces the table's rows) takes effect at the commit. A node address
//! on the loopback interface, named by a cluster reached on another
//! address, is the node talking about itself and is not followed (as
//! cs_tools does).

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::Method;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use super::FalconError;
use crate::client::http::{Body, Extra, Http, Reply, Request};
use crate::client::{Connection, Secret};
use crate::load::{CHUNK, Progress, RecordCounter, SourceError, SourceTable};

/// Port of the tsload service unless `--falcon-url` says otherwise.
pub const DEFAULT_PORT: u16 = 8442;
/// Sign-in path.
pub const SESSION_PATH: &str = "/ts_dataservice/v1/public/session";
/// Load cycles live under this path.
pub const LOADS_PATH: &str = "/ts_dataservice/v1/public/loads";

/// The timestamp format of our CSV files (DESIGN §6).
pub const DATE_TIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S";

/// The load parameters of one table: our CSV exactly (RFC 4180 with a
/// header row, `,`, `"` doubled inside quotes, an empty field for a
/// missing value, `true`/`false`, `YYYY-MM-DD HH:MM:SS`), every old row
/// replaced (`empty_target`), and no row may be rejected.
pub fn load_params(database: &str, schema: &str, table: &str) -> Value {
    json!({
        "target": {"database": database, "schema": schema, "table": table},
        "format": {
            "type": "CSV",
            "field_separator": ",",
            "trailing_field_separator": false,
            "enclosing_character": "\"",
            "escape_character": "\"",
            "null_value": "",
            "has_header_row": true,
            "flexible": false,
            "date_time": {
                "converted_to_epoch": false,
                "date_time_format": DATE_TIME_FORMAT,
                "date_format": "%Y-%m-%d",
                "time_format": "%H:%M:%S",
                "skip_second_fraction": false,
            },
            "boolean": {
                "use_bit_values": false,
                "true_format": "true",
                "false_format": "false",
            },
        },
        "load_options": {"empty_target": true, "max_ignored_rows": 0},
        "advanced_options": {"max_reported_parsing_errors": 10},
    })
}

/// What starting a load answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Started {
    /// The cycle's id.
    pub cycle_id: String,
    /// The node to continue on (`host`, `port`), when named.
    pub node: Option<(String, Option<u16>)>,
}

/// Reads the answer to `POST /loads`.
pub fn parse_started(body: &[u8]) -> Result<Started, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("expected {{\"cycle_id\": …}} ({e})"))?;
    let cycle_id = match value.get("cycle_id") {
        Some(Value::String(s)) => s.trim().to_owned(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return Err("no `cycle_id`".into()),
    };
    if cycle_id.is_empty()
        || !(cycle_id.chars()).all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(format!(
            "the cycle id {cycle_id:?} is not an id (letters, digits, - _ .)"
        ));
    }
    let node = value.get("node_address").and_then(|node| {
        let host = node.get("host")?.as_str()?.trim();
        if host.is_empty() {
            return None;
        }
        let port = match node.get("port") {
            Some(Value::Number(n)) => n.as_u64().and_then(|p| u16::try_from(p).ok()),
            Some(Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        };
        Some((host.to_owned(), port))
    });
    Ok(Started { cycle_id, node })
}

/// The base URL of the node a cycle was handed to, or `None` to stay on
/// `current`: the same address, or a loopback address named while
/// `current` is not one (a single node naming itself).
pub fn node_base(current: &url::Url, host: &str, port: Option<u16>) -> Option<String> {
    let port = port
        .or(current.port_or_known_default())
        .unwrap_or(DEFAULT_PORT);
    let loopback = |host: &str| {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        bare.eq_ignore_ascii_case("localhost")
            || bare
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    };
    let current_host = current.host_str().unwrap_or_default();
    let same_host = current_host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .eq_ignore_ascii_case(host.trim_start_matches('[').trim_end_matches(']'));
    if same_host && current.port_or_known_default() == Some(port) {
        return None;
    }
    if loopback(host) && !loopback(current_host) {
        return None;
    }
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    let base = format!("{}://{host}:{port}", current.scheme());
    url::Url::parse(&base).ok().map(|_| base)
}

/// How a load stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Still working.
    Running,
    /// Committed, every row taken.
    Done,
    /// Failed, or rows were rejected.
    Failed,
}

/// What `GET /loads/{cycle_id}` says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadStatus {
    /// `internal_stage`, e.g. `INGESTING`, `COMMITTING`, `DONE`.
    pub stage: Option<String>,
    /// `status.code`, e.g. `OK`, `LOAD_FAILED`.
    pub code: Option<String>,
    /// `status.message`.
    pub message: Option<String>,
    /// `rows_written`.
    pub rows_written: Option<u64>,
    /// `ignored_row_count`: rows rejected.
    pub ignored_rows: Option<u64>,
    /// `parsing_errors`, as text.
    pub parsing_errors: Vec<String>,
}

/// A count sent as a number or as text ("2", "2 rows").
fn count(value: Option<&Value>) -> Option<u64> {
    match value? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => {
            let digits: String = s.trim().chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        }
        _ => None,
    }
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.trim().to_owned(),
        other => other.to_string(),
    }
}

/// Reads the answer to `GET /loads/{cycle_id}`.
pub fn parse_status(body: &[u8]) -> Result<LoadStatus, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("expected a JSON load status ({e})"))?;
    if !value.is_object() {
        return Err("expected a JSON object".into());
    }
    let status = value.get("status");
    let field = |name: &str| status.and_then(|s| s.get(name)).map(text);
    let parsing_errors = match value.get("parsing_errors") {
        Some(Value::Array(items)) => items.iter().map(text).collect(),
        Some(Value::Null) | None => Vec::new(),
        Some(other) => vec![text(other)],
    };
    Ok(LoadStatus {
        stage: value.get("internal_stage").map(text),
        // A bare string status is read as the code.
        code: field("code").or_else(|| status.filter(|s| s.is_string()).map(text)),
        message: field("message"),
        rows_written: count(value.get("rows_written")),
        ignored_rows: count(value.get("ignored_row_count")),
        parsing_errors: parsing_errors
            .into_iter()
            .filter(|e| !e.is_empty())
            .collect(),
    })
}

impl LoadStatus {
    /// Where the load stands.
    pub fn state(&self) -> State {
        let code_ok = |code: &str| {
            ["OK", "SUCCESS"]
                .iter()
                .any(|c| code.eq_ignore_ascii_case(c))
        };
        if self.code.as_deref().is_some_and(|c| !code_ok(c)) {
            return State::Failed;
        }
        let stage = self
            .stage
            .as_deref()
            .unwrap_or_default()
            .to_ascii_uppercase();
        if ["FAIL", "ABORT", "CANCEL", "ERROR"]
            .iter()
            .any(|w| stage.contains(w))
        {
            return State::Failed;
        }
        if stage == "DONE" {
            return if self.ignored_rows.unwrap_or(0) > 0 {
                State::Failed
            } else {
                State::Done
            };
        }
        State::Running
    }

    /// Why it failed, in the server's words.
    pub fn reason(&self) -> String {
        let mut parts = Vec::new();
        if let Some(code) = &self.code {
            parts.push(format!("status {code}"));
        }
        if let Some(stage) = &self.stage {
            parts.push(format!("stage {stage}"));
        }
        if let Some(message) = self.message.as_ref().filter(|m| !m.is_empty()) {
            parts.push(message.clone());
        }
        if let Some(ignored) = self.ignored_rows.filter(|&n| n > 0) {
            parts.push(format!("{ignored} rows rejected"));
        }
        if !self.parsing_errors.is_empty() {
            let shown: Vec<&str> = self
                .parsing_errors
                .iter()
                .take(3)
                .map(String::as_str)
                .collect();
            parts.push(format!("parsing errors: {}", shown.join(" | ")));
        }
        if parts.is_empty() {
            "no reason given".into()
        } else {
            parts.join("; ")
        }
    }
}

/// The multipart envelope around a file's bytes: what comes before and
/// after them.
pub fn multipart_envelope(boundary: &str, file_name: &str) -> (Bytes, Bytes) {
    let file_name: String = (file_name.chars())
        .map(|c| if c == '"' || c.is_control() { '_' } else { c })
        .collect();
    let head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; \
         filename=\"{file_name}\"\r\nContent-Type: text/csv\r\n\r\n"
    );
    let tail = format!("\r\n--{boundary}--\r\n");
    (Bytes::from(head), Bytes::from(tail))
}

/// A request body streamed from a channel, inside a multipart envelope,
/// of a length known in advance (so it goes with a Content-Length).
struct UploadBody {
    head: Option<Bytes>,
    chunks: tokio::sync::mpsc::Receiver<io::Result<Bytes>>,
    chunks_done: bool,
    tail: Option<Bytes>,
    left: u64,
}

impl http_body::Body for UploadBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        let frame = |left: &mut u64, bytes: Bytes| {
            *left = left.saturating_sub(bytes.len() as u64);
            Poll::Ready(Some(Ok(http_body::Frame::data(bytes))))
        };
        if let Some(head) = this.head.take() {
            return frame(&mut this.left, head);
        }
        if !this.chunks_done {
            match this.chunks.poll_recv(cx) {
                Poll::Ready(Some(Ok(bytes))) => return frame(&mut this.left, bytes),
                Poll::Ready(Some(Err(error))) => return Poll::Ready(Some(Err(error))),
                Poll::Ready(None) => this.chunks_done = true,
                Poll::Pending => return Poll::Pending,
            }
        }
        match this.tail.take() {
            Some(tail) => frame(&mut this.left, tail),
            None => Poll::Ready(None),
        }
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.left)
    }
}

/// Reads a data file in chunks into the upload, counting rows and
/// reporting them; returns the data rows sent (the header not counted).
async fn feed(
    mut reader: BufReader<File>,
    chunks: tokio::sync::mpsc::Sender<io::Result<Bytes>>,
    table: &SourceTable,
    progress: &dyn Progress,
) -> Result<u64, SourceError> {
    let mut counter = RecordCounter::default();
    let mut records = 0u64;
    loop {
        let mut buffer = vec![0u8; CHUNK];
        let n = match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => {
                // Abort the request, so the server does not take a cut file.
                let _ = (chunks.send(Err(io::Error::new(source.kind(), source.to_string())))).await;
                return Err(SourceError::Io {
                    path: table.path.clone(),
                    source,
                });
            }
        };
        buffer.truncate(n);
        let fed = counter.feed(&buffer);
        // The first record is the header.
        let rows = fed - u64::from(records == 0 && fed > 0);
        records += fed;
        if chunks.send(Ok(Bytes::from(buffer))).await.is_err() {
            // The request ended early; its answer says why.
            return Ok(records.saturating_sub(1));
        }
        progress.rows(&table.def.table, rows);
    }
    records += counter.finish();
    Ok(records.saturating_sub(1))
}

/// One load cycle: a table's rows on their way.
#[derive(Clone, Debug)]
pub(crate) struct Cycle {
    /// The table (as created).
    pub table: String,
    /// The server's id for the cycle.
    pub cycle_id: String,
    /// Index of the node it lives on (0: the service's own address).
    node: usize,
}

/// The tsload service, signed in on every node a cycle went to.
pub(crate) struct Tsload {
    /// What every node connection is made from (credentials, TLS).
    template: Connection,
    /// The service's own address, then the nodes cycles were handed to.
    nodes: Vec<Http>,
    /// Longest time an upload, or a commit's work, may take.
    wait: Duration,
}

/// Advice for an unsuccessful answer of the tsload service.
fn advice(status: u16) -> &'static str {
    match status {
        401 => {
            "the session was refused even after signing in again; check the profile's user \
                and password"
        }
        403 => {
            "tsload is open only to users with the ADMINISTRATION or \"Can manage data\" \
                privilege; sign in as such a user (--profile)"
        }
        404 => {
            "check --falcon-url (the data service listens on port 8442 of the cluster's nodes \
                by default)"
        }
        400 => "Falcon refused the request; see its message",
        _ => {
            "the data service failed; try again, and if it persists check the cluster \
              (`tscli service status`, etl_http_server logs)"
        }
    }
}

impl Tsload {
    /// The service at `url`; nothing is sent yet.
    pub fn new(connection: &Connection, url: &str, wait: Duration) -> Result<Self, FalconError> {
        let template = connection.clone();
        let http = Http::new(&Connection {
            url: url.to_owned(),
            ..template.clone()
        })
        .map_err(|e| FalconError::Setup(format!("--falcon-url {url}: {e}")))?;
        Ok(Self {
            template,
            nodes: vec![http],
            wait,
        })
    }

    /// The service's own address.
    pub fn base(&self) -> &str {
        self.nodes[0].base()
    }

    fn url(&self, node: usize, path: &str) -> String {
        format!("{}{path}", self.nodes[node].base())
    }

    fn status_error(
        &self,
        node: usize,
        what: String,
        method: &'static str,
        path: &str,
        reply: &Reply,
    ) -> FalconError {
        let status = reply.status.as_u16();
        FalconError::Status {
            what,
            method,
            url: self.url(node, path),
            status,
            message: reply.message(),
            advice: advice(status).into(),
        }
    }

    /// Signs in on a node (a session cookie its client keeps).
    pub async fn sign_in(&self, node: usize) -> Result<(), FalconError> {
        let credentials = &self.template.credentials;
        let (Some(username), Some(Secret::Password(password))) =
            (&credentials.username, &credentials.secret)
        else {
            return Err(FalconError::Setup(
                "the tsload service signs in with a username and password; use a profile with \
                 a password (or THOUGHTSPOT_USERNAME and THOUGHTSPOT_PASSWORD)"
                    .into(),
            ));
        };
        let body = json!({"username": username, "password": password.expose_secret()});
        let request = Request {
            method: Method::POST,
            path: SESSION_PATH,
            body: Body::Json(&body),
            bearer: None,
            v1: false,
        };
        let what = || format!("signing in to the tsload service as user \"{username}\"");
        let reply =
            (self.nodes[node].send(&request).await).map_err(|source| FalconError::Request {
                what: what(),
                url: self.url(node, SESSION_PATH),
                source: Box::new(source),
            })?;
        let status = reply.status.as_u16();
        if status == 404 {
            return Err(FalconError::NoFalcon {
                url: self.nodes[node].base().to_owned(),
                evidence: format!(
                    "POST {SESSION_PATH} answered HTTP 404 ({}): no tsload service there (if it \
                     listens elsewhere, give --falcon-url)",
                    reply.message()
                ),
            });
        }
        if status == 401 {
            return Err(FalconError::Status {
                what: what(),
                method: "POST",
                url: self.url(node, SESSION_PATH),
                status,
                message: reply.message(),
                advice: "the password was refused: check the profile's password source \
                         (THOUGHTSPOT_PASSWORD or its --password-env variable) and that the \
                         account is active and not locked"
                    .into(),
            });
        }
        if !reply.status.is_success() {
            return Err(self.status_error(node, what(), "POST", SESSION_PATH, &reply));
        }
        tracing::debug!(
            "signed in to the tsload service at {}",
            self.nodes[node].base()
        );
        Ok(())
    }

    /// Sends a request on a node, signing in again once when the session
    /// has expired (401). `once`: never resent after a broken connection.
    async fn call(
        &self,
        node: usize,
        what: &str,
        request: &Request<'_>,
        headers: &[(&'static str, String)],
        once: bool,
    ) -> Result<Reply, FalconError> {
        let mut renewed = false;
        loop {
            let sent = if once {
                let extra = Extra {
                    headers: headers.to_vec(),
                    ..Extra::default()
                };
                self.nodes[node].send_once(request, extra).await
            } else {
                self.nodes[node].send(request).await
            };
            let reply = sent.map_err(|source| FalconError::Request {
                what: what.to_owned(),
                url: self.url(node, request.path),
                source: Box::new(source),
            })?;
            if reply.status.as_u16() == 401 && !renewed {
                tracing::debug!(
                    "{}: the tsload session expired; signing in again",
                    request.path
                );
                renewed = true;
                self.sign_in(node).await?;
                continue;
            }
            if !reply.status.is_success() {
                let method = crate::client::http::method_name(&request.method);
                return Err(self.status_error(node, what.to_owned(), method, request.path, &reply));
            }
            return Ok(reply);
        }
    }

    /// Starts a load cycle for a table, following the node the service
    /// hands it to (signing in there).
    pub async fn start(
        &mut self,
        database: &str,
        schema: &str,
        table: &str,
    ) -> Result<Cycle, FalconError> {
        let params = load_params(database, schema, table);
        let request = Request {
            method: Method::POST,
            path: LOADS_PATH,
            body: Body::Json(&params),
            bearer: None,
            v1: false,
        };
        let what = format!("starting the load of {table}");
        let reply = self.call(0, &what, &request, &[], false).await?;
        let started = parse_started(&reply.body).map_err(|reason| FalconError::Malformed {
            what: what.clone(),
            url: self.url(0, LOADS_PATH),
            reason,
        })?;
        let mut node = 0;
        if let Some((host, port)) = &started.node {
            let current = url::Url::parse(self.base())
                .map_err(|e| FalconError::Setup(format!("--falcon-url {}: {e}", self.base())))?;
            if let Some(base) = node_base(&current, host, *port) {
                node = match self.nodes.iter().position(|h| h.base() == base) {
                    Some(known) => known,
                    None => {
                        tracing::info!(
                            "the tsload service hands the load of {table} to node {base}; \
                             signing in there"
                        );
                        let http = Http::new(&Connection {
                            url: base.clone(),
                            ..self.template.clone()
                        })
                        .map_err(|e| {
                            FalconError::Setup(format!("the node {base} the service named: {e}"))
                        })?;
                        self.nodes.push(http);
                        let index = self.nodes.len() - 1;
                        self.sign_in(index).await?;
                        index
                    }
                };
            }
        }
        tracing::debug!(
            "load cycle {} for {table} on {}",
            started.cycle_id,
            self.nodes[node].base()
        );
        Ok(Cycle {
            table: table.to_owned(),
            cycle_id: started.cycle_id,
            node,
        })
    }

    /// Streams a table's CSV file into its cycle, reporting rows as they
    /// go; returns the rows sent. Sent once: a broken upload is never
    /// resent into the same cycle (only one the server refused for an
    /// expired session, whole, after signing in again).
    pub async fn upload(
        &self,
        cycle: &Cycle,
        table: &SourceTable,
        progress: &dyn Progress,
    ) -> Result<u64, FalconError> {
        let path = format!("{LOADS_PATH}/{}", cycle.cycle_id);
        let what = format!(
            "uploading {} into {} (load cycle {})",
            table.path.display(),
            cycle.table,
            cycle.cycle_id
        );
        let mut renewed = false;
        loop {
            let reader = table.open()?;
            let bytes = (reader.get_ref().metadata())
                .map_err(|source| SourceError::Io {
                    path: table.path.clone(),
                    source,
                })?
                .len();
            let boundary = format!("ts-principals-{:016x}", fastrand::u64(..));
            let (head, tail) = multipart_envelope(&boundary, &table.def.file);
            let total = head.len() as u64 + bytes + tail.len() as u64;
            let (sender, receiver) = tokio::sync::mpsc::channel(4);
            let body = UploadBody {
                head: Some(head),
                chunks: receiver,
                chunks_done: false,
                tail: Some(tail),
                left: total,
            };
            let request = bare(Method::POST, &path);
            let extra = Extra {
                headers: vec![
                    (
                        "Content-Type",
                        format!("multipart/form-data; boundary={boundary}"),
                    ),
                    ("X-ts-chunk-id", "1".into()),
                ],
                body: Some(reqwest::Body::wrap(body)),
                timeout: Some(self.wait),
            };
            progress.start(&table.def.table, table.rows);
            let (sent, fed) = tokio::join!(
                self.nodes[cycle.node].send_once(&request, extra),
                feed(reader, sender, table, progress)
            );
            let rows = fed?;
            let reply = sent.map_err(|source| FalconError::Request {
                what: what.clone(),
                url: self.url(cycle.node, &path),
                source: Box::new(source),
            })?;
            if reply.status.as_u16() == 401 && !renewed {
                tracing::debug!("{path}: the tsload session expired; signing in again");
                renewed = true;
                self.sign_in(cycle.node).await?;
                continue;
            }
            if !reply.status.is_success() {
                return Err(self.status_error(cycle.node, what, "POST", &path, &reply));
            }
            return Ok(rows);
        }
    }

    /// Commits a cycle: Falcon then replaces the table's rows with the
    /// cycle's, on its own time ([`Tsload::wait_done`]).
    pub async fn commit(&self, cycle: &Cycle) -> Result<(), FalconError> {
        let path = format!("{LOADS_PATH}/{}/commit", cycle.cycle_id);
        let request = bare(Method::POST, &path);
        let what = format!(
            "committing the load of {} (cycle {})",
            cycle.table, cycle.cycle_id
        );
        let headers = [("X-ts-chunks", "1".to_owned())];
        self.call(cycle.node, &what, &request, &headers, true)
            .await?;
        Ok(())
    }

    /// Polls a committed cycle, with backoff, until it is done or failed,
    /// or the wait runs out.
    pub async fn wait_done(&self, cycle: &Cycle) -> Result<LoadStatus, FalconError> {
        let path = format!("{LOADS_PATH}/{}", cycle.cycle_id);
        let request = bare(Method::GET, &path);
        let what = format!(
            "reading the status of {} (cycle {})",
            cycle.table, cycle.cycle_id
        );
        let started = Instant::now();
        let mut delay = Duration::from_millis(100);
        loop {
            let reply = self.call(cycle.node, &what, &request, &[], false).await?;
            let status = parse_status(&reply.body).map_err(|reason| FalconError::Malformed {
                what: what.clone(),
                url: self.url(cycle.node, &path),
                reason,
            })?;
            match status.state() {
                State::Done => return Ok(status),
                State::Failed => {
                    return Err(FalconError::Load {
                        table: cycle.table.clone(),
                        cycle_id: cycle.cycle_id.clone(),
                        url: self.url(cycle.node, &path),
                        reason: status.reason(),
                        advice: String::new(),
                    });
                }
                State::Running => {}
            }
            if started.elapsed() >= self.wait {
                return Err(FalconError::Timeout {
                    table: cycle.table.clone(),
                    cycle_id: cycle.cycle_id.clone(),
                    url: self.url(cycle.node, &path),
                    waited: self.wait,
                    last: status.reason(),
                });
            }
            tracing::debug!("{}: {}", cycle.table, status.reason());
            let left = self.wait.saturating_sub(started.elapsed());
            tokio::time::sleep(delay.min(left)).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }

    /// Abandons a cycle that was not committed; a failure is only logged
    /// (the cycle then stays uncommitted, which changes nothing).
    pub async fn cancel(&self, cycle: &Cycle) {
        let path = format!("{LOADS_PATH}/{}/cancel", cycle.cycle_id);
        let request = bare(Method::POST, &path);
        let what = format!(
            "cancelling the load of {} (cycle {})",
            cycle.table, cycle.cycle_id
        );
        match self.call(cycle.node, &what, &request, &[], false).await {
            Ok(_) => tracing::debug!("cancelled cycle {} ({})", cycle.cycle_id, cycle.table),
            Err(error) => tracing::warn!("{error} (left uncommitted, it changes nothing)"),
        }
    }
}

/// A request with no body and the session cookie for authentication.
fn bare(method: Method, path: &str) -> Request<'_> {
    Request {
        method,
        path,
        body: Body::None,
        bearer: None,
        v1: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_params_describe_our_csv_and_replace_the_rows() {
        let p = load_params("TS_PRINCIPALS", "falcon_default_schema", "TS_USERS");
        assert_eq!(p["target"]["database"], "TS_PRINCIPALS");
        assert_eq!(p["target"]["schema"], "falcon_default_schema");
        assert_eq!(p["target"]["table"], "TS_USERS");
        assert_eq!(p["format"]["type"], "CSV");
        assert_eq!(p["format"]["field_separator"], ",");
        assert_eq!(p["format"]["enclosing_character"], "\"");
        assert_eq!(p["format"]["has_header_row"], true);
        assert_eq!(p["format"]["null_value"], "");
        assert_eq!(
            p["format"]["date_time"]["date_time_format"],
            "%Y-%m-%d %H:%M:%S"
        );
        assert_eq!(p["format"]["date_time"]["converted_to_epoch"], false);
        assert_eq!(p["format"]["boolean"]["true_format"], "true");
        assert_eq!(p["format"]["boolean"]["false_format"], "false");
        assert_eq!(p["load_options"]["empty_target"], true);
        assert_eq!(p["load_options"]["max_ignored_rows"], 0);
    }

    #[test]
    fn started_loads_give_a_cycle_and_maybe_a_node() {
        // The reference's example answer.
        let started = parse_started(
            br#"{"node_address": {"host": "10.0.0.7", "port": 8442}, "cycle_id": "78aecb14-34c5-4da8-b08f-517de22d9701"}"#,
        )
        .unwrap();
        assert_eq!(started.cycle_id, "78aecb14-34c5-4da8-b08f-517de22d9701");
        assert_eq!(started.node, Some(("10.0.0.7".into(), Some(8442))));
        let started =
            parse_started(br#"{"cycle_id": "c1", "node_address": {"host": "n2", "port": "9000"}}"#)
                .unwrap();
        assert_eq!(started.node, Some(("n2".into(), Some(9000))));
        assert_eq!(parse_started(br#"{"cycle_id": "c1"}"#).unwrap().node, None);
        assert!(parse_started(br#"{"cycle_id": "../x"}"#).is_err());
        assert!(parse_started(br#"{"cycle": 1}"#).is_err());
        assert!(parse_started(b"Upload Complete.").is_err());
    }

    #[test]
    fn nodes_are_followed_unless_they_are_this_address_or_a_loopback_seen_from_outside() {
        let here = url::Url::parse("https://ts.example.com:8442").unwrap();
        assert_eq!(
            node_base(&here, "10.0.0.7", Some(8442)).as_deref(),
            Some("https://10.0.0.7:8442")
        );
        assert_eq!(
            node_base(&here, "10.0.0.7", None).as_deref(),
            Some("https://10.0.0.7:8442")
        );
        assert_eq!(node_base(&here, "ts.example.com", Some(8442)), None);
        assert_eq!(node_base(&here, "127.0.0.1", Some(8442)), None);
        assert_eq!(node_base(&here, "localhost", Some(8442)), None);
        assert_eq!(
            node_base(&here, "fe80::1", Some(8442)).as_deref(),
            Some("https://[fe80::1]:8442")
        );
        let local = url::Url::parse("http://127.0.0.1:5000").unwrap();
        assert_eq!(
            node_base(&local, "127.0.0.1", Some(5001)).as_deref(),
            Some("http://127.0.0.1:5001")
        );
        assert_eq!(node_base(&local, "127.0.0.1", Some(5000)), None);
    }

    #[test]
    fn status_answers_are_judged() {
        // The reference client's example answer: numbers as strings.
        let done = parse_status(
            br#"{"buffered_data": "0 Bytes", "cycle_id": "78aecb14", "ignored_row_count": "0",
                 "internal_stage": "DONE", "rows_written": "2", "size_written": "34 Bytes",
                 "status": {"code": "OK"}}"#,
        )
        .unwrap();
        assert_eq!(done.state(), State::Done);
        assert_eq!(done.rows_written, Some(2));
        let running = parse_status(br#"{"internal_stage": "INGESTING", "status": {}}"#).unwrap();
        assert_eq!(running.state(), State::Running);
        let committing =
            parse_status(br#"{"internal_stage": "COMMITTING", "status": {"code": "OK"}}"#).unwrap();
        assert_eq!(committing.state(), State::Running);
        let failed = parse_status(
            br#"{"internal_stage": "DONE", "ignored_row_count": 3, "rows_written": 0,
                 "status": {"code": "LOAD_FAILED", "message": "Max ignored rows exceeded"},
                 "parsing_errors": ["row 2: bad BIGINT \"x\""]}"#,
        )
        .unwrap();
        assert_eq!(failed.state(), State::Failed);
        let reason = failed.reason();
        assert!(reason.contains("LOAD_FAILED"), "{reason}");
        assert!(reason.contains("Max ignored rows exceeded"), "{reason}");
        assert!(reason.contains("3 rows rejected"), "{reason}");
        assert!(reason.contains("bad BIGINT"), "{reason}");
        let rejected = parse_status(
            br#"{"internal_stage": "DONE", "ignored_row_count": "1", "status": {"code": "OK"}}"#,
        )
        .unwrap();
        assert_eq!(rejected.state(), State::Failed);
        let aborted = parse_status(br#"{"internal_stage": "ABORTED"}"#).unwrap();
        assert_eq!(aborted.state(), State::Failed);
        assert!(parse_status(b"[]").is_err());
        assert!(parse_status(b"nope").is_err());
    }

    #[test]
    fn the_multipart_envelope_frames_one_file() {
        let (head, tail) = multipart_envelope("B", "users\".csv");
        let head = std::str::from_utf8(&head).unwrap();
        assert!(head.starts_with("--B\r\n"), "{head}");
        assert!(
            head.contains("name=\"file\"; filename=\"users_.csv\""),
            "{head}"
        );
        assert!(head.ends_with("\r\n\r\n"), "{head}");
        assert_eq!(&tail[..], b"\r\n--B--\r\n");
    }
}
