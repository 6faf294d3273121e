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
use std::time::Instant;

use bytes::Bytes;
use futures_util::SinkExt;
use tokio_postgres::Transaction;

use super::{CHUNK, Loaded, Progress, RecordCounter, Source, SourceError, SourceTable};
use crate::schema::{ColumnType, TableDef};
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
    /// The server refused a row of a data file.
    #[error("{file}{}: {message}; nothing was loaded (the old tables are unchanged)", record.map(|r| format!(", record {r} (record 1 is the header)")).unwrap_or_default())]
    BadRow {
        /// The CSV file.
        file: String,
        /// The record, counting the header as 1.
        record: Option<u64>,
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
        matches!(self, PgError::Connect { .. } | PgError::Server { .. })
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
            if let Some(hint) = db.hint() {
                message.push_str(&format!("; hint: {hint}"));
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

/// How to load.
#[derive(Clone, Debug)]
pub struct Options {
    /// The schema the tables go into.
    pub schema: String,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            schema: DEFAULT_SCHEMA.into(),
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

/// `<table>_pkey`, cut to fit PostgreSQL's limit at a character boundary.
fn key_name(table: &str) -> String {
    let mut base = table.to_owned();
    while base.len() + "_pkey".len() > MAX_NAME {
        base.pop();
    }
    format!("{base}_pkey")
}

fn check_names(source: &Source, schema: &str) -> Result<(), PgError> {
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
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| PgError::Tls {
            target: target.to_string(),
            problem: format!("cannot start the async runtime: {e}"),
        })?;
    runtime.block_on(load_async(source, target, options, progress))
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
    let mut client = target.connect().await?;
    let server = Failed(target);
    let tx = client.transaction().await.map_err(server.at("BEGIN"))?;
    take_turn(&tx, schema, progress, server).await?;
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
        let stage = format!("_ts_principals_stage_{i}");
        let rows = stage_table(&tx, schema, &stage, table, target, progress).await?;
        loaded.push((stage, rows));
    }
    progress.step(&format!(
        "swapping {} tables into {}",
        source.tables.len(),
        quote(schema)
    ));
    let mut report = Vec::new();
    for ((table, (stage, (rows, elapsed))), old) in source.tables.iter().zip(loaded).zip(existing) {
        swap(&tx, schema, &stage, &table.def, old, server).await?;
        report.push(Loaded {
            table: format!("{}.{}", quote(schema), quote(&table.def.table)),
            rows,
            elapsed,
        });
    }
    progress.step("committing");
    tx.commit().await.map_err(server.at("COMMIT"))?;
    Ok(report)
}

/// Waits for any other load into the same schema to finish.
async fn take_turn(
    tx: &Transaction<'_>,
    schema: &str,
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
    let comment = format!(
        "{MARK} {} from {}; replaced by every `ts-principals load`, do not edit",
        def.table, def.file
    );
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
    let bad_row = |error: tokio_postgres::Error| match error.as_db_error() {
        Some(db) => PgError::BadRow {
            file: file.clone(),
            record: db.where_().and_then(record_of),
            message: describe(&error),
        },
        None => server.at(format!("sending {file}"))(error),
    };
    let sink = tx.copy_in::<_, Bytes>(&copy).await.map_err(bad_row)?;
    let mut sink = pin!(sink);
    let mut counter = RecordCounter::default();
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
    let elapsed = started.elapsed();
    if let Some(expected) = table.rows
        && expected != rows
    {
        tracing::warn!(
            "{file} holds {rows} rows, but the manifest counts {expected}; it was changed \
             after `generate` wrote it"
        );
    }
    progress.finish(&def.table, rows, elapsed);
    Ok((rows, elapsed))
}

/// The record number in a COPY error's context ("COPY t, line 5, column x").
fn record_of(context: &str) -> Option<u64> {
    let rest = context.split(", line ").nth(1)?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
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
    if let Some(old) = &old {
        let dependents = dependents(tx, old.oid, server).await?;
        if !dependents.is_empty() {
            // Views and foreign keys point at the table itself: refill it.
            tracing::info!(
                "{table} is used by {}; refilling it in place so they keep working",
                dependents.join(", ")
            );
            let columns: Vec<String> = def.columns.iter().map(|c| quote(&c.name)).collect();
            let columns = columns.join(", ");
            tx.batch_execute(&format!(
                "TRUNCATE {table}; INSERT INTO {table} ({columns}) SELECT {columns} FROM {staged}; \
                 DROP TABLE {staged}"
            ))
            .await
            .map_err(server.at(format!(
                "refilling {table} (used by {})",
                dependents.join(", ")
            )))?;
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
    tx.batch_execute(&format!(
        "ALTER TABLE {staged} RENAME TO {}; ALTER TABLE {table} RENAME CONSTRAINT {} TO {}",
        quote(&def.table),
        quote(&format!("{stage}_pkey")),
        quote(&key_name(&def.table)),
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

/// Views (and other rules) and foreign keys of other tables that use the
/// table, by name.
async fn dependents(
    tx: &Transaction<'_>,
    oid: u32,
    server: Failed<'_>,
) -> Result<Vec<String>, PgError> {
    let rows = tx
        .query(
            "SELECT DISTINCT v.oid::regclass::text FROM pg_depend d \
             JOIN pg_rewrite r ON r.oid = d.objid JOIN pg_class v ON v.oid = r.ev_class \
             WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass \
             AND d.refobjid = $1 AND v.oid <> $1 \
             UNION SELECT DISTINCT conrelid::regclass::text FROM pg_constraint \
             WHERE confrelid = $1 AND contype = 'f' AND conrelid <> $1 ORDER BY 1",
            &[&oid],
        )
        .await
        .map_err(server.at("reading what depends on the table"))?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
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
            record_of("COPY _stage_0, line 5, column depth: \"x\""),
            Some(5)
        );
        assert_eq!(record_of("COPY _stage_0, line 12"), Some(12));
        assert_eq!(record_of("something else"), None);
    }

    #[test]
    fn key_names_fit_postgres() {
        assert_eq!(key_name("ts_users"), "ts_users_pkey");
        let long = "x".repeat(63);
        assert_eq!(key_name(&long).len(), 63);
    }
}
