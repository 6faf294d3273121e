//! The PostgreSQL sink: every table of an output directory into one schema,
//! all or nothing.
//!
//! In one transaction: the schema is created when missing; each table's CSV
//! is streamed with `COPY … FROM STDIN (FORMAT csv, HEADER)` into a staging
//! table with the types and primary key the manifest records; then each
//! staging table replaces its table (renamed into place, keeping the old
//! table's grants and owner, or, when views or foreign keys of someone else
//! depend on the old table, by refilling it in place so they keep working);
//! then one COMMIT. Readers see the old tables until the commit and the new
//! ones after it, never a half-loaded one; any failure (a bad row, a
//! dropped connection, a killed process) leaves the old data as it was.
//!
//! Only tables ts-principals created are replaced: each carries a comment
//! that says so, and a same-named table without it stops the load. Loads
//! into one schema take turns under an advisory lock.

pub mod connect;

use std::pin::pin;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::SinkExt;
use tokio_postgres::Transaction;

use super::{CHUNK, Loaded, Progress, RecordCounter, Source, SourceError, SourceTable};
use crate::atomic::Wait;
use crate::schema::attribution::GroupActivityDef;
use crate::schema::{ColumnType, TableDef, TableKind};
pub use connect::{Environment, SslMode, Target};

/// Schema the tables go into unless `--schema` says otherwise.
pub const DEFAULT_SCHEMA: &str = "ts_principals";

/// The comment every table of ours carries; a table without it is not ours.
const MARK: &str = "ts-principals:";

/// PostgreSQL's longest identifier, in bytes (NAMEDATALEN - 1); longer
/// names are cut silently, which would part the TML from the table.
const MAX_NAME: usize = 63;

/// A failed load. The transaction was rolled back: the old tables are
/// untouched.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// The URL cannot be used.
    #[error("PostgreSQL URL {url}: {problem}")]
    Url {
        /// The URL, password hidden.
        url: String,
        /// What is wrong.
        problem: String,
    },
    /// TLS could not be set up.
    #[error("TLS for {target}: {problem}")]
    Tls {
        /// The server, password hidden.
        target: String,
        /// What is wrong.
        problem: String,
    },
    /// The server could not be reached or refused the login.
    #[error("cannot connect to {target}: {source}; {advice}")]
    Connect {
        /// The server, password hidden.
        target: String,
        /// What to try.
        advice: String,
        /// The driver's error.
        source: tokio_postgres::Error,
    },
    /// The data of the output directory cannot be read.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// A name is longer than PostgreSQL keeps.
    #[error(
        "the {what} name {name:?} is {bytes} bytes; PostgreSQL keeps only {MAX_NAME}, so the \
         table would not match the TML: shorten tml.table_prefix or --schema"
    )]
    NameTooLong {
        /// Table, column or schema.
        what: &'static str,
        /// The name.
        name: String,
        /// Its length in bytes.
        bytes: usize,
    },
    /// A table with one of our names exists but was not created by us.
    #[error(
        "{table} already exists and was not created by ts-principals (it has no \"{MARK}\" \
         comment), so it is left alone and nothing was loaded; load into another schema \
         (--schema) or table prefix (tml.table_prefix), or drop that table yourself"
    )]
    NotOurs {
        /// `schema.table`.
        table: String,
    },
    /// The server did not answer in time.
    #[error(
        "{target} did not complete the connection within {seconds} s; check the host and port \
         (is it a PostgreSQL server?), or allow longer with connect_timeout=SECONDS in the URL"
    )]
    Timeout {
        /// The server, password hidden.
        target: String,
        /// The limit.
        seconds: u64,
    },
    /// Another load into the schema is running and `--no-wait` was given.
    #[error(
        "another ts-principals load into schema {schema} is running; wait for it to finish, or \
         leave out --no-wait to wait"
    )]
    Busy {
        /// The schema.
        schema: String,
    },
    /// The data is older than what the membership history records.
    #[error(
        "the data in this directory is as of {as_of} UTC, but {table} already holds the \
         membership history of cluster {cluster} up to {latest} UTC, with other memberships; \
         history cannot run backwards, so nothing was loaded: load a newer snapshot (fetch and \
         generate again)"
    )]
    Backwards {
        /// The history table.
        table: String,
        /// The cluster.
        cluster: String,
        /// The data's time.
        as_of: String,
        /// The latest change the table records.
        latest: String,
    },
    /// The server refused a row of a data file.
    #[error("{file}{}: {message}; nothing was loaded (the old tables are unchanged)", record.as_ref().map(|r| format!(", {r}")).unwrap_or_default())]
    BadRow {
        /// The CSV file.
        file: String,
        /// The line COPY names (the header is line 1), and the column.
        record: Option<String>,
        /// The server's message and detail.
        message: String,
    },
    /// A statement failed, or the connection broke.
    #[error(
        "PostgreSQL {target}: {what} failed: {message}; nothing was loaded (the old tables are unchanged)"
    )]
    Server {
        /// The server, password hidden.
        target: String,
        /// What was being done.
        what: String,
        /// The server's message (with detail and hint).
        message: String,
        /// The driver's error.
        #[source]
        source: tokio_postgres::Error,
    },
}

impl PgError {
    /// Whether the server or the network failed (exit 3), rather than the
    /// input or the command line (exit 2).
    pub fn is_server(&self) -> bool {
        matches!(
            self,
            PgError::Connect { .. } | PgError::Server { .. } | PgError::Timeout { .. }
        )
    }
}

/// The error's message with the server's detail and hint.
fn describe(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => {
            let mut message = db.message().to_owned();
            if let Some(detail) = db.detail() {
                message.push_str(&format!(" ({detail})"));
            }
            // PostgreSQL's own hint may say CASCADE, which would delete
            // other people's objects or rows: never pass that on.
            if let Some(hint) = db.hint().filter(|h| !h.contains("CASCADE")) {
                message.push_str(&format!("; hint: {hint}"));
            }
            if let Some(advice) = advice(db.code()) {
                message.push_str(&format!("; {advice}"));
            }
            message
        }
        None => {
            let mut message = error.to_string();
            let mut source = std::error::Error::source(error);
            while let Some(cause) = source {
                message.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            message
        }
    }
}

/// Turns a driver error into a [`PgError::Server`] naming the server and
/// what was being done.
#[derive(Clone, Copy)]
struct Failed<'t>(&'t Target);

impl Failed<'_> {
    fn at(self, what: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> PgError {
        let target = self.0.to_string();
        let what = what.into();
        move |source| PgError::Server {
            target,
            what,
            message: describe(&source),
            source,
        }
    }
}

/// What to do about a server error, by its SQLSTATE.
fn advice(code: &tokio_postgres::error::SqlState) -> Option<&'static str> {
    use tokio_postgres::error::SqlState;
    Some(if *code == SqlState::INSUFFICIENT_PRIVILEGE {
        "the user needs CREATE on the database (for a new schema) or on the schema, and must \
         own the tables it replaces; grant those, or load into a schema the user owns (--schema)"
    } else if *code == SqlState::LOCK_NOT_AVAILABLE {
        "a long-running query or transaction holds one of the tables, and waiting longer would \
         block every reader behind it; nothing was changed: try again later, or allow a longer \
         wait with --lock-timeout"
    } else if *code == SqlState::FOREIGN_KEY_VIOLATION {
        "a foreign key of another table refers to rows this load removes; drop or change that \
         constraint, the rows are still as they were"
    } else if *code == SqlState::DEPENDENT_OBJECTS_STILL_EXIST {
        "objects of someone else's depend on the one ts-principals replaces (PostgreSQL names \
         them above); drop or change them, or keep loading the group activity the way it was \
         (as a view, or with --materialize), which refills it in place"
    } else if *code == SqlState::READ_ONLY_SQL_TRANSACTION {
        "the server or the user's session is read-only; load into the primary, with a user \
         that may write"
    } else {
        return None;
    })
}

/// How to load.
#[derive(Clone, Debug)]
pub struct Options {
    /// The schema the tables go into.
    pub schema: String,
    /// How long the swap may wait for readers holding a table before the
    /// load gives up (every new reader queues behind the waiting swap).
    pub lock_timeout: Duration,
    /// What to do when another load into the schema is running.
    pub wait: Wait,
    /// How long connecting may take.
    pub connect_timeout: Duration,
    /// Create the group activity as tables filled now, rather than views
    /// computed at each query (`--materialize`).
    pub materialize: bool,
}

/// Default of [`Options::lock_timeout`].
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(60);

impl Default for Options {
    fn default() -> Self {
        Self {
            schema: DEFAULT_SCHEMA.into(),
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
            wait: Wait::Block,
            connect_timeout: Duration::from_secs(30),
            materialize: false,
        }
    }
}

/// `"name"`, with inner quotes doubled.
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `'text'`, with inner quotes doubled.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The column list of a CREATE TABLE: names, types, primary key.
pub fn columns_sql(def: &TableDef, key_name: &str) -> String {
    let mut parts: Vec<String> = (def.columns.iter())
        .map(|c| format!("{} {}", quote(&c.name), c.ty.sql_name()))
        .collect();
    let key: Vec<String> = def.key().map(|c| quote(&c.name)).collect();
    if !key.is_empty() {
        parts.push(format!(
            "CONSTRAINT {} PRIMARY KEY ({})",
            quote(key_name),
            key.join(", ")
        ));
    }
    parts.join(", ")
}

/// The staging table of the `i`th table: `_tsp_new_<i>_<table>`, cut to
/// fit PostgreSQL's limit (with room for `_pkey`) at a character boundary.
fn stage_name(i: usize, table: &str) -> String {
    let mut name = format!("_tsp_new_{i}_{table}");
    while name.len() + "_pkey".len() > MAX_NAME {
        name.pop();
    }
    name
}

/// The comment that marks a table as ours (`ts-principals: …`).
pub fn table_comment(def: &TableDef) -> String {
    let how = match def.kind() {
        TableKind::Snapshot => "its cluster's rows replaced by every `ts-principals load`",
        TableKind::Append => "rows added by every `ts-principals load`",
        TableKind::History => "advanced by every `ts-principals load`",
    };
    format!("{MARK} {} from {}; {how}, do not edit", def.table, def.file)
}

/// `<table>_pkey`, cut to fit PostgreSQL's limit at a character boundary.
pub fn key_name(table: &str) -> String {
    let mut base = table.to_owned();
    while base.len() + "_pkey".len() > MAX_NAME {
        base.pop();
    }
    format!("{base}_pkey")
}

/// Checks that no name is longer than PostgreSQL keeps.
pub fn check_names(source: &Source, schema: &str) -> Result<(), PgError> {
    let too_long = |what, name: &str| PgError::NameTooLong {
        what,
        name: name.to_owned(),
        bytes: name.len(),
    };
    if schema.len() > MAX_NAME {
        return Err(too_long("schema", schema));
    }
    for table in &source.tables {
        if table.def.table.len() > MAX_NAME {
            return Err(too_long("table", &table.def.table));
        }
        if let Some(c) = (table.def.columns.iter()).find(|c| c.name.len() > MAX_NAME) {
            return Err(too_long("column", &c.name));
        }
    }
    for view in &source.layout.group_activity {
        if view.view.len() > MAX_NAME {
            return Err(too_long("view", &view.view));
        }
    }
    Ok(())
}

/// Loads every table of `source` into `target` (see the module docs).
/// Blocks; runs its own small async runtime.
pub fn load(
    source: &Source,
    target: &Target,
    options: &Options,
    progress: &dyn Progress,
) -> Result<Vec<Loaded>, PgError> {
    let runtime = runtime(target)?;
    runtime.block_on(load_async(source, target, options, progress))
}

/// The small runtime the blocking entry points run their async work on.
fn runtime(target: &Target) -> Result<tokio::runtime::Runtime, PgError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| PgError::Tls {
            target: target.to_string(),
            problem: format!("cannot start the async runtime: {e}"),
        })
}

/// A table as it is now in the schema.
struct Existing {
    oid: u32,
    owner: String,
}

async fn load_async(
    source: &Source,
    target: &Target,
    options: &Options,
    progress: &dyn Progress,
) -> Result<Vec<Loaded>, PgError> {
    let schema = options.schema.as_str();
    check_names(source, schema)?;
    progress.step(&format!("connecting to {target}"));
    let mut client = match tokio::time::timeout(options.connect_timeout, target.connect()).await {
        Ok(client) => client?,
        Err(_) => {
            return Err(PgError::Timeout {
                target: target.to_string(),
                seconds: options.connect_timeout.as_secs(),
            });
        }
    };
    let server = Failed(target);
    let tx = client.transaction().await.map_err(server.at("BEGIN"))?;
    take_turn(&tx, schema, options.wait, progress, server).await?;
    let exists = tx
        .query_opt("SELECT 1 FROM pg_namespace WHERE nspname = $1", &[&schema])
        .await
        .map_err(server.at(format!("looking up schema {schema}")))?;
    if exists.is_none() {
        tx.batch_execute(&format!("CREATE SCHEMA {}", quote(schema)))
            .await
            .map_err(server.at(format!("CREATE SCHEMA {}", quote(schema))))?;
    }
    let mut existing = Vec::new();
    for table in &source.tables {
        existing.push(ours(&tx, schema, &table.def.table, server).await?);
    }
    let mut loaded = Vec::new();
    for (i, table) in source.tables.iter().enumerate() {
        let stage = stage_name(i, &table.def.table);
        let rows = stage_table(&tx, schema, &stage, table, target, progress).await?;
        loaded.push((stage, rows));
    }
    tx.batch_execute(&format!(
        "SET LOCAL lock_timeout = {}",
        options.lock_timeout.as_millis()
    ))
    .await
    .map_err(server.at("setting lock_timeout"))?;
    progress.step(&format!(
        "swapping {} tables into {}",
        source.tables.len(),
        quote(schema)
    ));
    let mut report = Vec::new();
    // The history is advanced with the staged memberships, before they
    // are swapped in.
    let memberships = (source.tables.iter().zip(&loaded))
        .find(|(t, _)| {
            t.def.file == format!("{}.csv", crate::schema::Table::GroupMemberships.name())
        })
        .map(|(t, (stage, _))| (t.def.clone(), stage.clone()));
    let mut order: Vec<_> = source.tables.iter().zip(loaded).zip(existing).collect();
    order.sort_by_key(|((table, _), _)| table.def.kind() != TableKind::History);
    for ((table, (stage, (rows, elapsed))), old) in order {
        let rows = match (table.def.kind(), &old, &memberships) {
            (TableKind::History, old, Some(memberships)) => {
                let history = History {
                    def: &table.def,
                    staged: &stage,
                    memberships: (&memberships.0, &memberships.1),
                };
                if old.is_some() {
                    history.advance(&tx, schema, source, server).await?
                } else {
                    swap(&tx, schema, &stage, &table.def, None, server).await?;
                    history.started(&tx, schema, source, server).await?;
                    rows
                }
            }
            _ => {
                let kept = match (&old, table.def.kind(), &source.cluster_id) {
                    (Some(_), TableKind::Snapshot, Some(cluster)) => {
                        keep_other_clusters(&tx, schema, &stage, &table.def, cluster, server)
                            .await?
                    }
                    _ => 0,
                };
                if kept > 0 {
                    tracing::info!("{}: kept {kept} rows of other clusters", table.def.table);
                }
                swap(&tx, schema, &stage, &table.def, old, server).await?;
                rows
            }
        };
        report.push(Loaded {
            table: format!("{}.{}", quote(schema), quote(&table.def.table)),
            rows,
            elapsed,
        });
    }
    for view in &source.layout.group_activity {
        progress.step(&format!(
            "{} {}",
            if options.materialize {
                "materialising"
            } else {
                "creating the view"
            },
            quote(&view.view)
        ));
        let started = Instant::now();
        let rows = group_activity(&tx, schema, view, options.materialize, server).await?;
        // A view holds no rows of its own: only a materialised one is
        // reported with the tables.
        if options.materialize {
            report.push(Loaded {
                table: format!("{}.{}", quote(schema), quote(&view.view)),
                rows,
                elapsed: started.elapsed(),
            });
        }
    }
    warn_about_tables_left_behind(&tx, schema, source, server).await?;
    progress.step("committing");
    tx.commit().await.map_err(server.at("COMMIT"))?;
    Ok(report)
}

/// Tables of ours in the schema that this data no longer has (an older
/// prefix or identifier case): left alone, and named so they can be dropped.
async fn warn_about_tables_left_behind(
    tx: &Transaction<'_>,
    schema: &str,
    source: &Source,
    server: Failed<'_>,
) -> Result<(), PgError> {
    let current: Vec<String> = (source.tables.iter().map(|t| t.def.table.clone()))
        .chain(source.layout.group_activity.iter().map(|v| v.view.clone()))
        .chain(
            (source.tables.iter())
                .filter(|t| t.def.kind() == TableKind::History)
                .map(|t| log_name(&t.def.table)),
        )
        .collect();
    let rows = tx
        .query(
            "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relkind = 'r' AND NOT (c.relname = ANY($2)) \
             AND starts_with(coalesce(obj_description(c.oid, 'pg_class'), ''), $3) ORDER BY 1",
            &[&schema, &current, &MARK],
        )
        .await
        .map_err(server.at("listing the tables of the schema"))?;
    let stale: Vec<String> = rows.iter().map(|r| quote(&r.get::<_, String>(0))).collect();
    if !stale.is_empty() {
        tracing::warn!(
            "schema {} also holds {}, which ts-principals loaded earlier and this data does not \
             have (from another output directory, or under another table prefix or identifier \
             case); they were left as they are: drop them when nothing uses them",
            quote(schema),
            stale.join(", ")
        );
    }
    Ok(())
}

/// Waits for any other load into the same schema to finish.
async fn take_turn(
    tx: &Transaction<'_>,
    schema: &str,
    wait: Wait,
    progress: &dyn Progress,
    server: Failed<'_>,
) -> Result<(), PgError> {
    let key = format!("ts-principals load {schema}");
    let got: bool = tx
        .query_one(
            "SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0))",
            &[&key],
        )
        .await
        .map_err(server.at("taking the load lock"))?
        .get(0);
    if !got && wait == Wait::NoWait {
        return Err(PgError::Busy {
            schema: schema.to_owned(),
        });
    }
    if !got {
        progress.step(&format!(
            "another ts-principals load into schema {schema} is running; waiting for it"
        ));
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            &[&key],
        )
        .await
        .map_err(server.at("waiting for the load lock"))?;
    }
    Ok(())
}

/// The table of that name, when it exists and is ours; an error when it
/// exists and is not.
async fn ours(
    tx: &Transaction<'_>,
    schema: &str,
    table: &str,
    server: Failed<'_>,
) -> Result<Option<Existing>, PgError> {
    let row = tx
        .query_opt(
            "SELECT c.oid, c.relkind::text, coalesce(obj_description(c.oid, 'pg_class'), ''), \
             pg_get_userbyid(c.relowner)::text \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relname = $2",
            &[&schema, &table],
        )
        .await
        .map_err(server.at(format!("looking up {schema}.{table}")))?;
    let Some(row) = row else {
        return Ok(None);
    };
    let kind: String = row.get(1);
    let comment: String = row.get(2);
    if kind != "r" || !comment.starts_with(MARK) {
        return Err(PgError::NotOurs {
            table: format!("{}.{}", quote(schema), quote(table)),
        });
    }
    Ok(Some(Existing {
        oid: row.get(0),
        owner: row.get(3),
    }))
}

/// Creates the staging table and streams the CSV into it.
async fn stage_table(
    tx: &Transaction<'_>,
    schema: &str,
    stage: &str,
    table: &SourceTable,
    target: &Target,
    progress: &dyn Progress,
) -> Result<(u64, std::time::Duration), PgError> {
    let def = &table.def;
    let file = table.path.display().to_string();
    let qualified = format!("{}.{}", quote(schema), quote(stage));
    let server = Failed(target);
    let comment = table_comment(def);
    tx.batch_execute(&format!(
        "CREATE TABLE {qualified} ({}); COMMENT ON TABLE {qualified} IS {}",
        columns_sql(def, &format!("{stage}_pkey")),
        literal(&comment)
    ))
    .await
    .map_err(server.at(format!("creating the staging table for {}", def.table)))?;
    let mut reader = table.open()?;
    let columns: Vec<String> = def.columns.iter().map(|c| quote(&c.name)).collect();
    let copy = format!(
        "COPY {qualified} ({}) FROM STDIN WITH (FORMAT csv, HEADER true)",
        columns.join(", ")
    );
    progress.start(&def.table, table.rows);
    let started = Instant::now();
    // Data exceptions (class 22) and constraint violations (class 23) are
    // the file's fault; anything else (a killed backend, a full disk) is
    // the server's.
    let bad_row = |error: tokio_postgres::Error| match error.as_db_error() {
        Some(db) if db.code().code().starts_with("22") || db.code().code().starts_with("23") => {
            PgError::BadRow {
                file: file.clone(),
                record: db.where_().and_then(record_of),
                message: describe(&error),
            }
        }
        _ => server.at(format!("sending {file}"))(error),
    };
    let sink = tx.copy_in::<_, Bytes>(&copy).await.map_err(bad_row)?;
    let mut sink = pin!(sink);
    let mut counter = RecordCounter::default();
    let mut hasher = super::FileHash::default();
    let mut header = true;
    let mut buffer = vec![0u8; CHUNK];
    loop {
        use std::io::Read;
        let n = match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(SourceError::Io {
                    path: table.path.clone(),
                    source,
                }
                .into());
            }
        };
        hasher.update(&buffer[..n]);
        let mut records = counter.feed(&buffer[..n]);
        if header && records > 0 {
            header = false;
            records -= 1;
        }
        sink.send(Bytes::copy_from_slice(&buffer[..n]))
            .await
            .map_err(bad_row)?;
        progress.rows(&def.table, records);
    }
    let rows = sink.as_mut().finish().await.map_err(bad_row)?;
    // Checked before anything is committed: a file changed since generate
    // wrote it fails the load (the server's own complaint about a bad row,
    // above, says more, so it comes first).
    table.check(&hasher.finalize_hex(), counter.records_after_header(true))?;
    // Statistics for the planner: the history is advanced and activity
    // appended by joins with the staged rows, which a planner guessing a
    // handful of rows would run as nested loops.
    tx.batch_execute(&format!("ANALYZE {qualified}"))
        .await
        .map_err(server.at(format!("ANALYZE {qualified}")))?;
    let elapsed = started.elapsed();
    progress.finish(&def.table, rows, elapsed);
    Ok((rows, elapsed))
}

/// Where in the file a COPY error's context points: "COPY t, line 5,
/// column depth: …" gives "line 5, column depth".
fn record_of(context: &str) -> Option<String> {
    let rest = context.split(", line ").nth(1)?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let line: u64 = digits.parse().ok()?;
    let column =
        (rest.split_once(", column ")).map(|(_, c)| c.split(':').next().unwrap_or(c).to_owned());
    Some(match column {
        Some(column) => format!("line {line}, column {column}"),
        None => format!("line {line}"),
    })
}

/// Puts the staging table in the place of the table.
async fn swap(
    tx: &Transaction<'_>,
    schema: &str,
    stage: &str,
    def: &TableDef,
    old: Option<Existing>,
    server: Failed<'_>,
) -> Result<(), PgError> {
    let table = format!("{}.{}", quote(schema), quote(&def.table));
    let staged = format!("{}.{}", quote(schema), quote(stage));
    let mut grants = Vec::new();
    if let (Some(_), None) = (&old, def.key().next()) {
        // An activity table keeps what it holds: rows are added, and a row
        // held with the same identity is replaced by its new reading, so a
        // data directory holding only recent activity loses nothing.
        tx.batch_execute(&append_sql(&table, &staged, def))
            .await
            .map_err(server.at(format!(
                "adding the new rows of {} to {table} (if its columns changed, drop it to \
                 load the file whole)",
                def.file
            )))?;
        return Ok(());
    }
    if let Some(old) = &old {
        let keep = what_a_swap_would_lose(tx, old.oid, def, server).await?;
        if !keep.is_empty() {
            // Replacing the table would lose what others built on it:
            // refill it in place instead (foreign keys stay honest and
            // readers on older snapshots see the old rows).
            tracing::info!(
                "{table} has {}; refilling it in place so all of that is kept",
                keep.join(", ")
            );
            tx.batch_execute(&refill_sql(&table, &staged, def))
                .await
                .map_err(server.at(format!("refilling {table} (it has {})", keep.join(", "))))?;
            return Ok(());
        }
        grants = tx
            .query(
                "SELECT a.privilege_type, CASE WHEN a.grantee = 0 THEN 'PUBLIC' \
                 ELSE quote_ident(pg_get_userbyid(a.grantee)::text) END, a.is_grantable \
                 FROM pg_class c, aclexplode(c.relacl) a \
                 WHERE c.oid = $1 AND a.grantee <> c.relowner",
                &[&old.oid],
            )
            .await
            .map_err(server.at(format!("reading the grants on {table}")))?
            .iter()
            .map(|row| {
                let privilege: String = row.get(0);
                let grantee: String = row.get(1);
                let grantable: bool = row.get(2);
                format!(
                    "GRANT {privilege} ON {table} TO {grantee}{}",
                    if grantable { " WITH GRANT OPTION" } else { "" }
                )
            })
            .collect();
        tx.batch_execute(&format!("DROP TABLE {table}"))
            .await
            .map_err(server.at(format!("dropping the old {table}")))?;
    }
    let rename_key = match def.key().next() {
        Some(_) => format!(
            "; ALTER TABLE {table} RENAME CONSTRAINT {} TO {}",
            quote(&format!("{stage}_pkey")),
            quote(&key_name(&def.table)),
        ),
        None => String::new(),
    };
    tx.batch_execute(&format!(
        "ALTER TABLE {staged} RENAME TO {}{rename_key}",
        quote(&def.table),
    ))
    .await
    .map_err(server.at(format!("renaming the staging table to {table}")))?;
    if let Some(old) = &old {
        let me: String = tx
            .query_one("SELECT current_user::text", &[])
            .await
            .map_err(server.at("reading current_user"))?
            .get(0);
        if old.owner != me {
            tx.batch_execute(&format!(
                "ALTER TABLE {table} OWNER TO {}",
                quote(&old.owner)
            ))
            .await
            .map_err(server.at(format!("giving {table} back to its owner {}", old.owner)))?;
        }
    }
    for grant in grants {
        tx.batch_execute(&grant)
            .await
            .map_err(server.at(format!("keeping the old grants ({grant})")))?;
    }
    Ok(())
}

/// Runs `work` in a savepoint: when it fails the savepoint is rolled back,
/// so the transaction goes on, and the caller decides what the failure
/// means.
async fn attempt<T>(
    tx: &Transaction<'_>,
    work: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
    server: Failed<'_>,
) -> Result<Result<T, tokio_postgres::Error>, PgError> {
    tx.batch_execute("SAVEPOINT tsp_attempt")
        .await
        .map_err(server.at("SAVEPOINT"))?;
    let result = work.await;
    let end = match result {
        Ok(_) => "RELEASE SAVEPOINT tsp_attempt",
        Err(_) => "ROLLBACK TO SAVEPOINT tsp_attempt",
    };
    tx.batch_execute(end).await.map_err(server.at(end))?;
    Ok(result)
}

/// The rows `name` holds.
async fn count_rows(tx: &Transaction<'_>, name: &str, server: Failed<'_>) -> Result<u64, PgError> {
    let rows: i64 = tx
        .query_one(&format!("SELECT count(*) FROM {name}"), &[])
        .await
        .map_err(server.at(format!("counting the rows of {name}")))?
        .get(0);
    Ok(rows as u64)
}

/// Copies the rows of other clusters from `def`'s table into its staging
/// table, so replacing the table replaces only this cluster's rows (one
/// schema may hold several clusters). A table whose columns no longer
/// match (an older layout) keeps none, with a warning. Returns the rows
/// kept.
async fn keep_other_clusters(
    tx: &Transaction<'_>,
    schema: &str,
    stage: &str,
    def: &TableDef,
    cluster: &str,
    server: Failed<'_>,
) -> Result<u64, PgError> {
    let Some(cluster_column) = def.column("cluster_id") else {
        return Ok(0);
    };
    let table = format!("{}.{}", quote(schema), quote(&def.table));
    let columns: Vec<String> = def.columns.iter().map(|c| quote(&c.name)).collect();
    let insert = format!(
        "INSERT INTO {}.{} ({columns}) SELECT {columns} FROM {table} WHERE {} <> $1",
        quote(schema),
        quote(stage),
        quote(&cluster_column.name),
        columns = columns.join(", ")
    );
    let kept = attempt(tx, tx.execute(&insert, &[&cluster]), server).await?;
    if let Err(error) = &kept {
        tracing::warn!(
            "the rows of other clusters in {table} could not be kept ({}); the table is \
             replaced with this cluster's rows",
            describe(error)
        );
    }
    Ok(kept.unwrap_or(0))
}

/// The membership history's load: the table as it is, advanced with the
/// staged memberships (DESIGN §6).
struct History<'a> {
    def: &'a TableDef,
    /// The history file's staging table.
    staged: &'a str,
    /// The group_memberships table and its staging table.
    memberships: (&'a TableDef, &'a str),
}

impl History<'_> {
    /// Advances the history of the data's cluster, stamped with the time
    /// the data is of (else now): open rows whose membership the staged
    /// memberships lack are closed, and memberships no open row holds are
    /// opened. A database holding no history of the cluster yet takes the
    /// data directory's history whole. Other clusters' rows are left
    /// alone. Returns the rows of the cluster.
    async fn advance(
        &self,
        tx: &Transaction<'_>,
        schema: &str,
        source: &Source,
        server: Failed<'_>,
    ) -> Result<u64, PgError> {
        let table = format!("{}.{}", quote(schema), quote(&self.def.table));
        let staged = format!("{}.{}", quote(schema), quote(self.staged));
        let members = format!("{}.{}", quote(schema), quote(self.memberships.1));
        let h = |csv: &str| column(self.def, csv);
        let cluster = source.cluster_id.clone().unwrap_or_default();
        let stamp = self.stamp(tx, source, server, true).await?;
        let log = self.log(tx, schema, server).await?;
        let row = tx
            .query_one(
                &format!(
                    "SELECT count(*), to_char(greatest(max(greatest({from}, {to})), \
                     (SELECT max({as_of}) FROM {log} WHERE {log_cluster} = $1)), \
                     'YYYY-MM-DD HH24:MI:SS') FROM {table} WHERE {cluster} = $1",
                    from = h("valid_from"),
                    to = h("valid_to"),
                    cluster = h("cluster_id"),
                    as_of = quote(&self.log_column("as_of")),
                    log_cluster = quote(&self.log_column("cluster_id")),
                ),
                &[&cluster],
            )
            .await
            .map_err(server.at(format!("reading the history in {table}")))?;
        let held: i64 = row.get(0);
        let latest: Option<String> = row.get(1);
        if let Some(latest) = latest.clone().filter(|l| *l > stamp) {
            // Older data that changes nothing (a live fetch whose directory
            // is of the time it last saw a change) is taken as it is.
            if held > 0
                && !self
                    .differs(tx, (&table, &members), &cluster, server)
                    .await?
            {
                tx.batch_execute(&format!("DROP TABLE {staged}"))
                    .await
                    .map_err(server.at(format!("dropping {staged}")))?;
                return self.count(tx, &table, &cluster, server).await;
            }
            return Err(PgError::Backwards {
                table,
                cluster,
                as_of: stamp,
                latest,
            });
        }
        if held == 0 {
            let all: Vec<String> = self.def.columns.iter().map(|c| quote(&c.name)).collect();
            tx.execute(
                &format!(
                    "INSERT INTO {table} ({all}) SELECT {all} FROM {staged} WHERE {} = $1",
                    h("cluster_id"),
                    all = all.join(", ")
                ),
                &[&cluster],
            )
            .await
            .map_err(server.at(format!("taking the directory's history into {table}")))?;
        } else {
            // The changes the directory's history records after what the
            // database holds are replayed first, each at its own time, so
            // a directory advanced over several snapshots between loads
            // loses none of them.
            let replayed = self
                .replay(
                    tx,
                    (&table, &staged),
                    (&cluster, latest.as_deref(), &stamp),
                    server,
                )
                .await?;
            if replayed > 0 {
                tracing::info!(
                    "{table}: replayed {replayed} change(s) the directory's history records \
                     since the database's"
                );
            }
            let members_def = self.memberships.0;
            for statement in self.close_and_open(&table, (&members, members_def), "TRUE") {
                tx.execute(&statement, &[&cluster, &stamp])
                    .await
                    .map_err(server.at(format!("advancing the membership history in {table}")))?;
            }
        }
        self.record(tx, &log, (&cluster, &stamp), server).await?;
        tx.batch_execute(&format!("DROP TABLE {staged}"))
            .await
            .map_err(server.at(format!("dropping {staged}")))?;
        self.count(tx, &table, &cluster, server).await
    }

    /// The rows of `cluster` in the history.
    async fn count(
        &self,
        tx: &Transaction<'_>,
        table: &str,
        cluster: &str,
        server: Failed<'_>,
    ) -> Result<u64, PgError> {
        let rows: i64 = tx
            .query_one(
                &format!(
                    "SELECT count(*) FROM {table} WHERE {} = $1",
                    column(self.def, "cluster_id")
                ),
                &[&cluster],
            )
            .await
            .map_err(server.at(format!("counting the rows of {table}")))?
            .get(0);
        Ok(rows as u64)
    }

    /// Whether the staged memberships of `cluster` differ from the open
    /// rows of the history.
    async fn differs(
        &self,
        tx: &Transaction<'_>,
        (table, members): (&str, &str),
        cluster: &str,
        server: Failed<'_>,
    ) -> Result<bool, PgError> {
        let same = self.same_membership(self.memberships.0);
        let to = column(self.def, "valid_to");
        let differs: bool = tx
            .query_one(
                &format!(
                    "SELECT EXISTS (SELECT 1 FROM {table} t WHERE t.{c} = $1 AND t.{to} IS NULL \
                     AND NOT EXISTS (SELECT 1 FROM {members} s WHERE {same})) \
                     OR EXISTS (SELECT 1 FROM {members} s WHERE s.{sc} = $1 AND NOT EXISTS \
                     (SELECT 1 FROM {table} t WHERE t.{to} IS NULL AND {same}))",
                    c = column(self.def, "cluster_id"),
                    sc = column(self.memberships.0, "cluster_id"),
                ),
                &[&cluster],
            )
            .await
            .map_err(server.at(format!("comparing the memberships with {table}")))?
            .get(0);
        Ok(differs)
    }
}

impl History<'_> {
    /// The log of the loads that advanced the history: `<history>_loads`
    /// (cluster_id, as_of, loaded_at), in the history's identifier case.
    fn log_name(&self) -> String {
        log_name(&self.def.table)
    }

    /// A column of the log, in the history's identifier case.
    fn log_column(&self, name: &str) -> String {
        if self.def.table.chars().any(|c| c.is_ascii_lowercase()) {
            name.to_owned()
        } else {
            name.to_ascii_uppercase()
        }
    }

    /// The time the data is of: the manifest's `as_of`, else now (with a
    /// warning).
    async fn stamp(
        &self,
        tx: &Transaction<'_>,
        source: &Source,
        server: Failed<'_>,
        warn: bool,
    ) -> Result<String, PgError> {
        if let Some(as_of) = &source.as_of {
            return Ok(as_of.clone());
        }
        let now: String = tx
            .query_one(
                "SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')",
                &[],
            )
            .await
            .map_err(server.at("reading the time"))?
            .get(0);
        if warn {
            tracing::warn!(
                "the data records no time it was taken (manifest input.as_of), so the \
                 membership changes in {} are dated now ({now} UTC)",
                self.def.table
            );
        }
        Ok(now)
    }

    /// Records in the log that the history of `cluster` is now of `stamp`.
    async fn record(
        &self,
        tx: &Transaction<'_>,
        log: &str,
        (cluster, stamp): (&str, &str),
        server: Failed<'_>,
    ) -> Result<(), PgError> {
        tx.execute(
            &format!(
                "INSERT INTO {log} ({}, {}, {}) VALUES ($1, $2::text::timestamp, \
                 date_trunc('second', now() AT TIME ZONE 'UTC'))",
                quote(&self.log_column("cluster_id")),
                quote(&self.log_column("as_of")),
                quote(&self.log_column("loaded_at")),
            ),
            &[&cluster, &stamp],
        )
        .await
        .map_err(server.at(format!("recording the load in {log}")))?;
        Ok(())
    }

    /// After the history table was created from the directory's: starts
    /// the log with this load.
    async fn started(
        &self,
        tx: &Transaction<'_>,
        schema: &str,
        source: &Source,
        server: Failed<'_>,
    ) -> Result<(), PgError> {
        let stamp = self.stamp(tx, source, server, false).await?;
        let log = self.log(tx, schema, server).await?;
        let cluster = source.cluster_id.clone().unwrap_or_default();
        // A log left from a history table dropped since speaks of nothing.
        tx.execute(
            &format!(
                "DELETE FROM {log} WHERE {} = $1",
                quote(&self.log_column("cluster_id"))
            ),
            &[&cluster],
        )
        .await
        .map_err(server.at(format!("clearing {log}")))?;
        self.record(tx, &log, (&cluster, &stamp), server).await
    }

    /// The log, created when missing (and refused when a table of that
    /// name is not ours): its qualified name.
    async fn log(
        &self,
        tx: &Transaction<'_>,
        schema: &str,
        server: Failed<'_>,
    ) -> Result<String, PgError> {
        let name = self.log_name();
        let qualified = format!("{}.{}", quote(schema), quote(&name));
        if ours(tx, schema, &name, server).await?.is_none() {
            let comment = format!(
                "{MARK} {name}: the loads that advanced {}, with the time each was of; \
                 kept by `ts-principals load`, do not edit",
                self.def.table
            );
            tx.batch_execute(&format!(
                "CREATE TABLE {qualified} ({} text, {} timestamp, {} timestamp); \
                 COMMENT ON TABLE {qualified} IS {}",
                quote(&self.log_column("cluster_id")),
                quote(&self.log_column("as_of")),
                quote(&self.log_column("loaded_at")),
                literal(&comment)
            ))
            .await
            .map_err(server.at(format!("creating {qualified}")))?;
        }
        Ok(qualified)
    }

    /// Replays the changes the staged history records for `cluster` after
    /// `since` (the database's latest) and up to `until`, in time order:
    /// at each time the open rows the history no longer holds valid are
    /// closed and the rows it holds valid that are not open are opened.
    /// Returns the times replayed.
    async fn replay(
        &self,
        tx: &Transaction<'_>,
        (table, staged): (&str, &str),
        (cluster, since, until): (&str, Option<&str>, &str),
        server: Failed<'_>,
    ) -> Result<usize, PgError> {
        let h = |csv: &str| column(self.def, csv);
        let (from, to, c) = (h("valid_from"), h("valid_to"), h("cluster_id"));
        let times: Vec<String> = tx
            .query(
                &format!(
                    "SELECT DISTINCT to_char(t, 'YYYY-MM-DD HH24:MI:SS') FROM \
                     (SELECT {from} AS t FROM {staged} WHERE {c} = $1 UNION ALL \
                      SELECT {to} FROM {staged} WHERE {c} = $1) x \
                     WHERE t IS NOT NULL AND ($2::text IS NULL OR t > $2::text::timestamp) \
                     AND t <= $3::text::timestamp ORDER BY 1"
                ),
                &[&cluster, &since, &until],
            )
            .await
            .map_err(server.at(format!("reading the changes in {staged}")))?
            .iter()
            .map(|row| row.get(0))
            .collect();
        // The staged history's rows valid at the time ($2) are the
        // memberships then.
        let valid = format!(
            "(s.{from} IS NULL OR s.{from} <= $2::text::timestamp) \
             AND (s.{to} IS NULL OR $2::text::timestamp < s.{to})"
        );
        let statements = self.close_and_open(table, (staged, self.def), &valid);
        for time in &times {
            for statement in &statements {
                tx.execute(statement.as_str(), &[&cluster, time])
                    .await
                    .map_err(server.at(format!("replaying the history change of {time}")))?;
            }
        }
        Ok(times.len())
    }
}

/// The log of the loads of a history table: `<history>_loads`, cut to
/// PostgreSQL's limit.
fn log_name(history: &str) -> String {
    let suffix = if history.chars().any(|c| c.is_ascii_lowercase()) {
        "_loads"
    } else {
        "_LOADS"
    };
    let mut base = history.to_owned();
    while base.len() + suffix.len() > MAX_NAME {
        base.pop();
    }
    format!("{base}{suffix}")
}

/// The CSV names of the columns that make a membership:
/// group_memberships' columns, which the history starts with.
fn membership() -> impl Iterator<Item = &'static str> {
    (crate::schema::Table::GroupMemberships.columns().iter()).map(|c| c.name)
}

/// The quoted database name of `def`'s column `csv`.
fn column(def: &TableDef, csv: &str) -> String {
    quote(&(def.column(csv)).map_or_else(|| csv.to_owned(), |c| c.name.clone()))
}

impl History<'_> {
    /// `s.a = t.a AND …` over the membership columns, `s` a row of a table
    /// described by `source`, `t` a row of the history.
    fn same_membership(&self, source: &TableDef) -> String {
        let same: Vec<String> = membership()
            .map(|csv| format!("s.{} = t.{}", column(source, csv), column(self.def, csv)))
            .collect();
        same.join(" AND ")
    }

    /// The two statements that bring the open rows of cluster $1 in the
    /// history `table` to the memberships of `source` (its rows `s` for
    /// which `valid` holds), at the time $2: open rows `source` lacks are
    /// closed, its memberships no open row holds are opened.
    fn close_and_open(
        &self,
        table: &str,
        (source, source_def): (&str, &TableDef),
        valid: &str,
    ) -> [String; 2] {
        let same = self.same_membership(source_def);
        let h = |csv: &str| column(self.def, csv);
        let (from, to, c) = (h("valid_from"), h("valid_to"), h("cluster_id"));
        let into: Vec<String> = membership().map(h).collect();
        let taken: Vec<String> = membership()
            .map(|csv| format!("s.{}", column(source_def, csv)))
            .collect();
        [
            format!(
                "UPDATE {table} t SET {to} = $2::text::timestamp WHERE t.{c} = $1 \
                 AND t.{to} IS NULL AND NOT EXISTS (SELECT 1 FROM {source} s WHERE {same} \
                 AND {valid})"
            ),
            format!(
                "INSERT INTO {table} ({}, {from}) SELECT {}, $2::text::timestamp FROM {source} s \
                 WHERE s.{} = $1 AND {valid} AND NOT EXISTS \
                 (SELECT 1 FROM {table} t WHERE t.{to} IS NULL AND {same})",
                into.join(", "),
                taken.join(", "),
                column(source_def, "cluster_id"),
            ),
        ]
    }
}

/// Creates (or replaces) a group activity view, or with `materialize` a
/// table filled from the same query and indexed on the activity's time.
/// Returns the rows of a materialised table (none for a view).
async fn group_activity(
    tx: &Transaction<'_>,
    schema: &str,
    def: &GroupActivityDef,
    materialize: bool,
    server: Failed<'_>,
) -> Result<u64, PgError> {
    let name = format!("{}.{}", quote(schema), quote(&def.view));
    let select = def.select_sql(&|t| format!("{}.{}", quote(schema), quote(t)), &quote);
    let comment = literal(&format!(
        "{MARK} {} attributing {} to the groups of the membership history; replaced by every \
         `ts-principals load`, do not edit",
        def.view, def.activity
    ));
    let existing = tx
        .query_opt(
            "SELECT c.relkind::text, coalesce(obj_description(c.oid, 'pg_class'), '') \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relname = $2",
            &[&schema, &def.view],
        )
        .await
        .map_err(server.at(format!("looking up {name}")))?;
    let existing: Option<String> = match existing {
        None => None,
        Some(row) => {
            let (kind, note): (String, String) = (row.get(0), row.get(1));
            if !matches!(kind.as_str(), "v" | "r") || !note.starts_with(MARK) {
                return Err(PgError::NotOurs { table: name });
            }
            Some(kind)
        }
    };
    let drop = match existing.as_deref() {
        Some("v") => format!("DROP VIEW {name}; "),
        Some(_) => format!("DROP TABLE {name}; "),
        None => String::new(),
    };
    // Activity arrives in time order, so a BRIN index on the time (a few
    // pages, whatever the rows) lets a search over a range read only the
    // blocks that hold it, in the activity table and the materialised one.
    let time_index = |table: &str, column: &str| {
        let mut index = format!("{table}_time_brin");
        while index.len() > MAX_NAME {
            index.remove(0);
        }
        format!(
            "CREATE INDEX IF NOT EXISTS {} ON {}.{} USING brin ({})",
            quote(&index),
            quote(schema),
            quote(table),
            quote(column)
        )
    };
    tx.batch_execute(&time_index(&def.activity, &def.on.time))
        .await
        .map_err(server.at(format!("indexing the time of {}", def.activity)))?;
    if materialize && existing.as_deref() == Some("r") {
        // Refilled in place when its columns are the same, so what others
        // built on it (views, grants) keeps working.
        let columns: Vec<String> = def.columns.iter().map(|c| quote(&c.name)).collect();
        let refill = format!(
            "TRUNCATE {name}; INSERT INTO {name} ({}) {select}; ANALYZE {name}",
            columns.join(", ")
        );
        if attempt(tx, tx.batch_execute(&refill), server)
            .await?
            .is_ok()
        {
            return count_rows(tx, &name, server).await;
        }
    }
    if materialize {
        let time = (def.columns.iter()).find(|c| c.from == def.on.time && !c.membership);
        let index = match time {
            Some(time) => format!("; {}", time_index(&def.view, &time.name)),
            None => String::new(),
        };
        tx.batch_execute(&format!(
            "{drop}CREATE TABLE {name} AS {select}; COMMENT ON TABLE {name} IS {comment}{index}; \
             ANALYZE {name}"
        ))
        .await
        .map_err(server.at(format!("materialising {name}")))?;
        return count_rows(tx, &name, server).await;
    }
    // A view of the same columns is replaced in place, so views others
    // built on it keep working; one whose columns changed is recreated.
    if existing.as_deref() == Some("v") {
        let replace = format!(
            "CREATE OR REPLACE VIEW {name} AS {select}; COMMENT ON VIEW {name} IS {comment}"
        );
        if attempt(tx, tx.batch_execute(&replace), server)
            .await?
            .is_ok()
        {
            return Ok(0);
        }
    }
    tx.batch_execute(&format!(
        "{drop}CREATE VIEW {name} AS {select}; COMMENT ON VIEW {name} IS {comment}"
    ))
    .await
    .map_err(server.at(format!("creating the view {name}")))?;
    Ok(0)
}

/// Adding the staging table's rows to `table`, a row held with the same
/// identity (the columns marked `identity`, NULLs equal, as a row's text
/// shows them) replaced by the new one, then dropping the staging table.
fn append_sql(table: &str, staged: &str, def: &TableDef) -> String {
    let columns: Vec<String> = def.columns.iter().map(|c| quote(&c.name)).collect();
    let marked: Vec<&crate::schema::ColumnDef> =
        def.columns.iter().filter(|c| c.identity).collect();
    let identifying = if marked.is_empty() {
        def.columns.iter().collect()
    } else {
        marked
    };
    let identity = |alias: &str| {
        let fields: Vec<String> = (identifying.iter())
            .map(|c| format!("{alias}.{}", quote(&c.name)))
            .collect();
        format!("ROW({})::text", fields.join(", "))
    };
    format!(
        "DELETE FROM {table} t USING {staged} s WHERE {} = {}; \
         INSERT INTO {table} ({columns}) SELECT {columns} FROM {staged}; DROP TABLE {staged}",
        identity("t"),
        identity("s"),
        columns = columns.join(", "),
    )
}

/// Refilling a table in place from its staging table: rows whose key is
/// gone are deleted, the rest inserted or updated by key, so a foreign key
/// of someone else's only objects to rows that really go away.
fn refill_sql(table: &str, staged: &str, def: &TableDef) -> String {
    let key: Vec<String> = def.key().map(|c| quote(&c.name)).collect();
    let columns: Vec<String> = def.columns.iter().map(|c| quote(&c.name)).collect();
    let same_key: Vec<String> = key.iter().map(|k| format!("s.{k} = t.{k}")).collect();
    let others: Vec<String> = (def.columns.iter())
        .filter(|c| !c.key)
        .map(|c| format!("{0} = EXCLUDED.{0}", quote(&c.name)))
        .collect();
    let on_conflict = if others.is_empty() {
        "DO NOTHING".to_owned()
    } else {
        format!("DO UPDATE SET {}", others.join(", "))
    };
    format!(
        "DELETE FROM {table} t WHERE NOT EXISTS (SELECT 1 FROM {staged} s WHERE {}); \
         INSERT INTO {table} ({columns}) SELECT {columns} FROM {staged} \
         ON CONFLICT ({}) {on_conflict}; DROP TABLE {staged}",
        same_key.join(" AND "),
        key.join(", "),
        columns = columns.join(", ")
    )
}

/// What dropping the table and renaming the staging table into its place
/// would lose: objects that depend on it (views, foreign keys, functions,
/// inheritance children, triggers, policies, indexes, publications), row
/// security, column grants and comments, storage options, or columns that
/// are not ours. Empty for a table exactly as we create it.
async fn what_a_swap_would_lose(
    tx: &Transaction<'_>,
    oid: u32,
    def: &TableDef,
    server: Failed<'_>,
) -> Result<Vec<String>, PgError> {
    let row = tx
        .query_one(
            "SELECT \
             (SELECT string_agg(DISTINCT pg_describe_object(d.classid, d.objid, 0), ', ') \
              FROM pg_depend d WHERE d.refclassid = 'pg_class'::regclass AND d.refobjid = $1 \
              AND d.deptype NOT IN ('i') AND NOT (d.classid = 'pg_constraint'::regclass AND \
              d.objid IN (SELECT oid FROM pg_constraint WHERE conrelid = $1 AND contype = 'p'))), \
             c.relrowsecurity OR c.relforcerowsecurity, \
             EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = $1 AND attacl IS NOT NULL), \
             EXISTS (SELECT 1 FROM pg_description WHERE objoid = $1 AND objsubid > 0), \
             c.reloptions IS NOT NULL, \
             EXISTS (SELECT 1 FROM pg_inherits WHERE inhparent = $1 OR inhrelid = $1), \
             (SELECT array_agg(attname::text ORDER BY attnum) \
              FROM pg_attribute WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped) \
             FROM pg_class c WHERE c.oid = $1",
            &[&oid],
        )
        .await
        .map_err(server.at("reading what uses the table"))?;
    let mut keep = Vec::new();
    if let Some(objects) = row.get::<_, Option<String>>(0) {
        keep.push(format!("objects that depend on it ({objects})"));
    }
    let flags = [
        (1, "row-level security"),
        (2, "column grants"),
        (3, "column comments"),
        (4, "storage options"),
        (5, "inheritance"),
    ];
    for (i, what) in flags {
        if row.get::<_, bool>(i) {
            keep.push(what.to_owned());
        }
    }
    // Columns someone added are kept; ours that changed type or went
    // missing (an older layout) are put right by the swap.
    let columns: Vec<String> = row.get::<_, Option<Vec<String>>>(6).unwrap_or_default();
    let added: Vec<&String> = (columns.iter())
        .filter(|name| !def.columns.iter().any(|c| &c.name == *name))
        .collect();
    if !added.is_empty() {
        keep.push(format!(
            "columns of its own ({})",
            (added.iter().map(|s| s.as_str()))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(keep)
}

/// The newest value (Unix seconds, UTC) in `schema.table` of the first of
/// the timestamp `columns` it has, among the rows whose `cluster_column`
/// is `cluster_id` (one database may hold several clusters); none when the
/// table, such a column or a value is missing. Where an activity copy resumes when the database holds
/// more than the data directory.
pub fn newest(
    target: &Target,
    schema: &str,
    table: &str,
    columns: &[String],
    (cluster_column, cluster_id): (&str, &str),
) -> Result<Option<i64>, PgError> {
    let runtime = runtime(target)?;
    runtime.block_on(async {
        let client = target.connect().await?;
        let server = Failed(target);
        let qualified = format!("{}.{}", quote(schema), quote(table));
        let present: Vec<String> = client
            .query(
                "SELECT column_name::text FROM information_schema.columns \
                 WHERE table_schema = $1 AND table_name = $2",
                &[&schema, &table],
            )
            .await
            .map_err(server.at(format!("looking for {qualified}")))?
            .iter()
            .map(|row| row.get(0))
            .collect();
        let Some(column) = columns.iter().find(|c| present.contains(c)) else {
            return Ok(None);
        };
        let newest: Option<i64> = client
            .query_one(
                &format!(
                    "SELECT extract(epoch FROM max({}))::bigint FROM {qualified} WHERE {} = $1",
                    quote(column),
                    quote(cluster_column)
                ),
                &[&cluster_id],
            )
            .await
            .map_err(server.at(format!("reading the newest {column} of {qualified}")))?
            .get(0);
        Ok(newest)
    })
}

/// The PostgreSQL type of each column type, for comparing with
/// `information_schema.columns.data_type`.
pub fn information_schema_type(ty: ColumnType) -> &'static str {
    match ty {
        ColumnType::Text => "text",
        ColumnType::Bigint => "bigint",
        ColumnType::Boolean => "boolean",
        ColumnType::Timestamp => "timestamp without time zone",
        ColumnType::Double => "double precision",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{IdentifierCase, Table};

    #[test]
    fn create_table_quotes_every_name_and_keys_the_leading_columns() {
        let def = Table::GroupMemberships.definition("TS_", IdentifierCase::Upper);
        let sql = columns_sql(&def, "k");
        assert!(
            sql.starts_with("\"CLUSTER_ID\" text, \"ORG_ID\" bigint, \"USER_GUID\" text"),
            "{sql}"
        );
        assert!(sql.contains("\"IS_DIRECT\" boolean"), "{sql}");
        assert!(
            sql.ends_with(
                "CONSTRAINT \"k\" PRIMARY KEY (\"CLUSTER_ID\", \"ORG_ID\", \"USER_GUID\", \"GROUP_GUID\")"
            ),
            "{sql}"
        );
        assert_eq!(quote("a\"b"), "\"a\"\"b\"");
    }

    #[test]
    fn copy_errors_name_the_record() {
        assert_eq!(
            record_of("COPY _stage_0, line 5, column depth: \"x\"").as_deref(),
            Some("line 5, column depth")
        );
        assert_eq!(
            record_of("COPY _stage_0, line 12").as_deref(),
            Some("line 12")
        );
        assert_eq!(record_of("something else"), None);
    }

    #[test]
    fn key_names_fit_postgres() {
        assert_eq!(key_name("ts_users"), "ts_users_pkey");
        let long = "x".repeat(63);
        assert_eq!(key_name(&long).len(), 63);
    }
}
