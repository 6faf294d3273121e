//! The Falcon sink: every table of an output directory into ThoughtSpot's
//! own database, on ThoughtSpot Software clusters.
//!
//! 1. Sign in to the cluster (the callosum session remote TQL uses) and
//!    stop when it is a ThoughtSpot Cloud cluster, which has no Falcon
//!    (`GET /api/rest/2.0/system` says `SAAS` or a `.cl` release, or
//!    remote TQL answers 404).
//! 2. Sign in to the tsload data service (port 8442 by default).
//! 3. Through remote TQL ([`tql`]): create the database and schema the
//!    manifest's layout names when missing, and every table with the
//!    names, Falcon types and primary key the layout records. Tables that
//!    exist are kept as they are.
//! 4. Through tsload ([`tsload`]): one load cycle per table, each CSV
//!    streamed into its cycle; nothing is committed until every table's
//!    rows are uploaded, so a failed or broken upload cancels every cycle
//!    and leaves every table as it was.
//! 5. Commit the cycles one by one, in manifest order, waiting for each to
//!    finish: each commit replaces one table's rows (`empty_target`).
//!
//! **Falcon has no transaction across tables.** Until the first commit
//! nothing has changed; after it, a failure (Falcon rejecting rows of a
//! table, a commit refused) leaves the tables committed so far replaced
//! and the rest as they were. The error then names both lists, and the
//! remaining cycles are cancelled; loading again once the problem is fixed
//! brings every table to the same data.

pub mod tql;
pub mod tsload;

use std::fmt;
use std::time::{Duration, Instant};

use super::{Loaded, Progress, Source, SourceError};
use crate::client::http::Http;
use crate::client::{ClientError, Connection};
use tsload::{Cycle, Tsload};

/// How long one table's upload, or Falcon's work on its commit, may take
/// unless `--falcon-wait` says otherwise.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(30 * 60);

/// What became of each table when a load failed after it started.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Tables whose rows were replaced (committed and done).
    pub replaced: Vec<String>,
    /// Tables left with their previous rows.
    pub kept: Vec<String>,
    /// A table whose commit was sent but whose end is unknown.
    pub unknown: Option<String>,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.replaced.is_empty() && self.unknown.is_none() {
            return write!(
                f,
                "no table was replaced: all {} keep their previous data",
                self.kept.len()
            );
        }
        write!(
            f,
            "Falcon has no transaction across tables, so this load is partial: replaced with \
             the new data: {}; not replaced (previous data kept): {}",
            list(&self.replaced),
            list(&self.kept)
        )?;
        if let Some(table) = &self.unknown {
            write!(
                f,
                "; {table}: committed, but Falcon did not say whether it finished (check it in \
                 ThoughtSpot)"
            )?;
        }
        write!(
            f,
            ". Run the load again once the problem is fixed to bring every table to the same data"
        )
    }
}

fn list(tables: &[String]) -> String {
    if tables.is_empty() {
        "none".into()
    } else {
        tables.join(", ")
    }
}

/// A failed load into Falcon. Every message names the URL and, once
/// tables are involved, the table, the load cycle and the server's words.
#[derive(Debug, thiserror::Error)]
pub enum FalconError {
    /// The data of the output directory cannot be read.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The settings cannot be used (a URL, the credentials, a name).
    #[error("{0}")]
    Setup(String),
    /// The cluster has no Falcon: ThoughtSpot Cloud.
    #[error(
        "{url} has no Falcon: {evidence}. Falcon (with remote TQL and tsload) exists only on \
         ThoughtSpot Software clusters; on ThoughtSpot Cloud load the data into the warehouse \
         behind a connection instead: `ts-principals load --to postgres://…` for PostgreSQL, or \
         `--emit-sql DIALECT` for Snowflake, Databricks, BigQuery or Redshift (with \
         tml.connection, tml.database and tml.schema set in ts-principals.toml)"
    )]
    NoFalcon {
        /// The address asked.
        url: String,
        /// What showed it.
        evidence: String,
    },
    /// A request could not be made or answered (connection, TLS, timeout).
    #[error("{what}: {url}: {source}")]
    Request {
        /// What was being done.
        what: String,
        /// The URL.
        url: String,
        /// Why.
        #[source]
        source: Box<ClientError>,
    },
    /// An unsuccessful HTTP status.
    #[error("{what}: {method} {url} answered HTTP {status} ({message}); {advice}")]
    Status {
        /// What was being done.
        what: String,
        /// The HTTP method.
        method: &'static str,
        /// The URL.
        url: String,
        /// The status.
        status: u16,
        /// The server's message (secrets scrubbed).
        message: String,
        /// What to do.
        advice: String,
    },
    /// Remote TQL refused a statement.
    #[error(
        "remote TQL ({url}) refused `{statement}`: {message}; the signed-in user needs the \
         ADMINISTRATION or \"Can manage data\" privilege, and the names must be valid in TQL"
    )]
    Tql {
        /// The URL.
        url: String,
        /// The statement.
        statement: String,
        /// The ERROR messages.
        message: String,
    },
    /// An answer that is not what the API documents.
    #[error("{what}: {url} answered something unexpected: {reason}")]
    Malformed {
        /// What was being done.
        what: String,
        /// The URL.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// Falcon refused a table's rows.
    #[error("Falcon did not load {table} (load cycle {cycle_id}, {url}): {reason}{advice}")]
    Load {
        /// The table.
        table: String,
        /// The load cycle.
        cycle_id: String,
        /// The status URL.
        url: String,
        /// The server's status and message, rejected rows and parsing errors.
        reason: String,
        /// What to do ("; …"), or nothing.
        advice: String,
    },
    /// A committed load did not finish in time.
    #[error(
        "{table} (load cycle {cycle_id}, {url}) was not done after {}s (last: {last}); \
         Falcon may still finish it: raise --falcon-wait for big tables",
        waited.as_secs()
    )]
    Timeout {
        /// The table.
        table: String,
        /// The load cycle.
        cycle_id: String,
        /// The status URL.
        url: String,
        /// How long it was given.
        waited: Duration,
        /// The last status.
        last: String,
    },
    /// Ctrl-C or SIGTERM stopped the load.
    #[error("interrupted (Ctrl-C or SIGTERM)")]
    Interrupted,
    /// Falcon wrote fewer rows than were sent.
    #[error(
        "Falcon reports {written} rows written into {table}, but {sent} were sent; rows were \
         dropped (check the table in ThoughtSpot, then load again)"
    )]
    Shortfall {
        /// The table.
        table: String,
        /// Rows sent.
        sent: u64,
        /// Rows Falcon says it wrote.
        written: u64,
    },
    /// A failure after tables were loaded or uploaded: which were replaced.
    #[error("{source}\n  {outcome}")]
    Partial {
        /// What failed.
        #[source]
        source: Box<FalconError>,
        /// What became of each table.
        outcome: Outcome,
    },
}

impl FalconError {
    /// Whether the load was stopped by Ctrl-C or SIGTERM.
    pub fn is_interrupted(&self) -> bool {
        match self {
            FalconError::Partial { source, .. } => source.is_interrupted(),
            FalconError::Interrupted => true,
            _ => false,
        }
    }

    /// Whether the cluster or the network failed (exit 3), rather than the
    /// input or the command line (exit 2).
    pub fn is_cluster(&self) -> bool {
        match self {
            FalconError::Partial { source, .. } => source.is_cluster(),
            FalconError::Request { .. }
            | FalconError::Status { .. }
            | FalconError::Tql { .. }
            | FalconError::Malformed { .. }
            | FalconError::Load { .. }
            | FalconError::Shortfall { .. }
            | FalconError::Timeout { .. } => true,
            FalconError::Interrupted => false,
            FalconError::Source(_) | FalconError::Setup(_) | FalconError::NoFalcon { .. } => false,
        }
    }

    /// Whether the output directory could not be used (exit 4).
    pub fn is_output(&self) -> bool {
        match self {
            FalconError::Partial { source, .. } => source.is_output(),
            FalconError::Source(SourceError::Output(_)) => true,
            _ => false,
        }
    }

    /// What became of the tables, when the load had started.
    pub fn outcome(&self) -> Option<&Outcome> {
        match self {
            FalconError::Partial { outcome, .. } => Some(outcome),
            _ => None,
        }
    }
}

/// How to load.
#[derive(Clone, Debug)]
pub struct Options {
    /// Base URL of the tsload data service, e.g. `https://ts.example.com:8442`.
    pub falcon_url: String,
    /// Longest time one table's upload, or Falcon's work on its commit,
    /// may take.
    pub wait: Duration,
}

/// `--falcon-url`, checked before anything is sent: http(s), a host, no
/// credentials (the password would be shown in messages), no path beyond
/// `/`.
pub fn check_falcon_url(given: &str) -> Result<String, FalconError> {
    let trimmed = given.trim().trim_end_matches('/');
    let bad = |problem: &str| {
        FalconError::Setup(format!(
            "--falcon-url {problem}; give the tsload service as http(s)://HOST:PORT, e.g. \
             https://ts.example.com:{}",
            tsload::DEFAULT_PORT
        ))
    };
    let url = url::Url::parse(trimmed).map_err(|_| bad("is not a URL"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            "holds a user or password (not shown); the profile's credentials are used",
        ));
    }
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(bad(&format!(
            "{trimmed:?} is not an http(s) URL with a host"
        )));
    }
    if url.query().is_some() || url.fragment().is_some() || url.path() != "/" {
        return Err(bad(&format!("{trimmed:?} has a path or query")));
    }
    Ok(trimmed.to_owned())
}

/// The tsload service's default address: the cluster's host on port 8442,
/// same scheme.
pub fn default_falcon_url(cluster_url: &str) -> Result<String, FalconError> {
    let url = url::Url::parse(cluster_url)
        .map_err(|e| FalconError::Setup(format!("the cluster URL {cluster_url:?}: {e}")))?;
    let host = url.host_str().ok_or_else(|| {
        FalconError::Setup(format!("the cluster URL {cluster_url:?} names no host"))
    })?;
    Ok(format!(
        "{}://{host}:{}",
        url.scheme(),
        tsload::DEFAULT_PORT
    ))
}

/// Every name TQL will see: quotable.
fn check_names(source: &Source) -> Result<(), FalconError> {
    let layout = &source.layout;
    let mut names = vec![("database", &layout.database), ("schema", &layout.schema)];
    for table in &source.tables {
        names.push(("table", &table.def.table));
        names.extend(table.def.columns.iter().map(|c| ("column", &c.name)));
    }
    for (what, name) in names {
        tql::check_name(what, name).map_err(|problem| {
            FalconError::Setup(format!(
                "{problem}; set tml.database, tml.schema and tml.table_prefix in \
                 ts-principals.toml to plain names and run generate again"
            ))
        })?;
    }
    Ok(())
}

/// Loads every table of `source` into Falcon on the cluster of
/// `connection` (see the module docs). Blocks; runs its own small async
/// runtime.
pub fn load(
    source: &Source,
    connection: &Connection,
    options: &Options,
    progress: &dyn Progress,
) -> Result<Vec<Loaded>, FalconError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| FalconError::Setup(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(async {
        let interrupt = Interrupt::listen();
        load_async(source, connection, options, progress, &interrupt).await
    })
}

/// Ctrl-C or SIGTERM, seen while the load runs, so it can stop cleanly:
/// cancel the cycles not committed and say which tables were replaced.
#[derive(Clone, Default)]
struct Interrupt {
    seen: std::sync::Arc<std::sync::atomic::AtomicBool>,
    notify: std::sync::Arc<tokio::sync::Notify>,
}

impl Interrupt {
    fn listen() -> Self {
        let interrupt = Interrupt::default();
        let listener = interrupt.clone();
        tokio::spawn(async move {
            #[cfg(unix)]
            let terminate = async {
                use tokio::signal::unix::{SignalKind, signal};
                match signal(SignalKind::terminate()) {
                    Ok(mut signal) => {
                        signal.recv().await;
                    }
                    Err(_) => std::future::pending::<()>().await,
                }
            };
            #[cfg(not(unix))]
            let terminate = std::future::pending::<()>();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate => {}
            }
            listener
                .seen
                .store(true, std::sync::atomic::Ordering::SeqCst);
            listener.notify.notify_waiters();
        });
        interrupt
    }

    /// `work`, unless an interrupt comes first (or came already).
    async fn or_stop<T>(
        &self,
        work: impl std::future::Future<Output = Result<T, FalconError>>,
    ) -> Result<T, FalconError> {
        let notified = self.notify.notified();
        if self.seen.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(FalconError::Interrupted);
        }
        tokio::select! {
            result = work => result,
            _ = notified => Err(FalconError::Interrupted),
        }
    }
}

/// A table whose rows wait in their cycle.
struct Staged {
    cycle: Cycle,
    rows: u64,
    elapsed: Duration,
}

async fn load_async(
    source: &Source,
    connection: &Connection,
    options: &Options,
    progress: &dyn Progress,
    interrupt: &Interrupt,
) -> Result<Vec<Loaded>, FalconError> {
    let layout = &source.layout;
    let (database, schema) = (layout.database.as_str(), layout.schema.as_str());
    check_names(source)?;
    // Every file readable and as the manifest records it (header, rows,
    // SHA-256), before anything is sent.
    for table in &source.tables {
        table.verify()?;
    }
    let http = Http::new(connection).map_err(|e| FalconError::Setup(e.to_string()))?;
    let tql = tql::Tql {
        http: &http,
        credentials: &connection.credentials,
    };
    progress.step(&format!("signing in to {}", http.base()));
    tql.sign_in().await?;
    tql.refuse_cloud().await?;
    // The first TQL call: a cluster without it answers 404 here, before
    // anything else is tried.
    let databases = tql.databases(schema).await?;
    let mut tsload = Tsload::new(connection, &options.falcon_url, options.wait)?;
    progress.step(&format!(
        "signing in to the tsload service at {}",
        tsload.base()
    ));
    tsload.sign_in(0).await?;

    progress.step(&format!("creating {database}.{schema} and its tables"));
    let existed = create(&tql, source, &databases).await?;

    let names: Vec<String> = source.tables.iter().map(|t| t.def.table.clone()).collect();
    let mut staged: Vec<Staged> = Vec::new();
    for table in &source.tables {
        let started = Instant::now();
        let started_cycle = interrupt.or_stop(tsload.start(database, schema, &table.def.table));
        let cycle = match started_cycle.await {
            Ok(cycle) => cycle,
            Err(error) => return Err(abandon(&tsload, &staged, None, error, &names).await),
        };
        match interrupt
            .or_stop(tsload.upload(&cycle, table, progress))
            .await
        {
            Ok(rows) => {
                let elapsed = started.elapsed();
                progress.finish(&table.def.table, rows, elapsed);
                staged.push(Staged {
                    cycle,
                    rows,
                    elapsed,
                });
            }
            Err(error) => return Err(abandon(&tsload, &staged, Some(&cycle), error, &names).await),
        }
    }

    let mut loaded = Vec::new();
    let mut outcome = Outcome::default();
    for (i, table) in staged.iter().enumerate() {
        let cycle = &table.cycle;
        progress.step(&format!(
            "committing {} (load cycle {})",
            cycle.table, cycle.cycle_id
        ));
        let started = Instant::now();
        // A commit refused (or never sent), or rows rejected, changes
        // nothing; a commit sent whose end is unknown may yet change the
        // table.
        if interrupt.seen.load(std::sync::atomic::Ordering::SeqCst) {
            // Not committed yet: nothing of this table changes.
            return Err(stop(&tsload, &staged[i..], FalconError::Interrupted, outcome).await);
        }
        let (done, certain) = match tsload.commit(cycle).await {
            Ok(()) => {
                let done = interrupt.or_stop(tsload.wait_done(cycle)).await;
                let certain = matches!(done, Err(FalconError::Load { .. }));
                (done, certain)
            }
            // A gateway in front may answer for a commit that went through:
            // ask the cycle how it ended.
            Err(FalconError::Status {
                status: 502 | 504, ..
            }) => {
                let done = interrupt.or_stop(tsload.wait_done(cycle)).await;
                let certain = matches!(done, Err(FalconError::Load { .. }));
                (done, certain)
            }
            Err(error) => {
                let certain = match &error {
                    FalconError::Status { .. } => true,
                    FalconError::Request { source, .. } => {
                        matches!(**source, ClientError::Connect { .. })
                    }
                    _ => false,
                };
                (Err(error), certain)
            }
        };
        match done {
            Ok(status) => {
                let rows = status.rows_written.unwrap_or(table.rows);
                outcome.replaced.push(cycle.table.clone());
                if rows != table.rows {
                    let error = FalconError::Shortfall {
                        table: cycle.table.clone(),
                        sent: table.rows,
                        written: rows,
                    };
                    return Err(stop(&tsload, &staged[i + 1..], error, outcome).await);
                }
                loaded.push(Loaded {
                    table: tql::qualified(database, schema, &cycle.table),
                    rows,
                    elapsed: table.elapsed + started.elapsed(),
                });
            }
            Err(mut error) => {
                if let FalconError::Load { advice, table, .. } = &mut error {
                    *advice = if existed.contains(table) {
                        format!(
                            "; {table} existed before this load: if its columns differ from \
                             the layout in manifest.json (written by another ts-principals, or \
                             changed by hand), change it with TQL (ALTER TABLE) or drop it, then \
                             load again"
                        )
                    } else {
                        "; fix what the server names, run generate again, and load again".into()
                    };
                }
                if certain {
                    outcome.kept.push(cycle.table.clone());
                } else {
                    outcome.unknown = Some(cycle.table.clone());
                }
                return Err(stop(&tsload, &staged[i + 1..], error, outcome).await);
            }
        }
    }
    Ok(loaded)
}

/// Stops during the commits: cancels the cycles not committed (`rest`),
/// which keep their previous data, and reports what became of each table.
async fn stop(
    tsload: &Tsload,
    rest: &[Staged],
    error: FalconError,
    mut outcome: Outcome,
) -> FalconError {
    for later in rest {
        tsload.cancel(&later.cycle).await;
        outcome.kept.push(later.cycle.table.clone());
    }
    FalconError::Partial {
        source: Box::new(error),
        outcome,
    }
}

/// Cancels every cycle not committed (all of them: the failure came before
/// the first commit) and reports that no table changed.
async fn abandon(
    tsload: &Tsload,
    staged: &[Staged],
    failed: Option<&Cycle>,
    error: FalconError,
    names: &[String],
) -> FalconError {
    for cycle in staged.iter().map(|s| &s.cycle).chain(failed) {
        tsload.cancel(cycle).await;
    }
    FalconError::Partial {
        source: Box::new(error),
        outcome: Outcome {
            kept: names.to_vec(),
            ..Outcome::default()
        },
    }
}

/// Creates the database (unless `databases` lists it), schema and tables
/// that are missing; returns the tables that existed already.
async fn create(
    tql: &tql::Tql<'_>,
    source: &Source,
    databases: &[String],
) -> Result<std::collections::BTreeSet<String>, FalconError> {
    let layout = &source.layout;
    let (database, schema) = (layout.database.as_str(), layout.schema.as_str());
    if databases.iter().any(|d| d == database) {
        tracing::debug!("database {database} exists");
    } else {
        let statement = format!("CREATE DATABASE {};", tql::quote(database));
        if tql.execute(&statement, None, schema, true).await? {
            tracing::info!("created the Falcon database {database}");
        }
    }
    let statement = format!(
        "CREATE SCHEMA {}.{};",
        tql::quote(database),
        tql::quote(schema)
    );
    if tql
        .execute(&statement, Some(database), schema, true)
        .await?
    {
        tracing::info!("created the schema {database}.{schema}");
    }
    let mut existed = std::collections::BTreeSet::new();
    for table in &source.tables {
        let statement = tql::create_table(database, schema, &table.def);
        if tql
            .execute(&statement, Some(database), schema, true)
            .await?
        {
            tracing::info!("created the table {database}.{schema}.{}", table.def.table);
        } else {
            tracing::debug!(
                "{database}.{schema}.{} exists; kept as it is",
                table.def.table
            );
            existed.insert(table.def.table.clone());
        }
    }
    Ok(existed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn falcon_urls_are_checked_before_anything_is_sent_and_never_echo_a_password() {
        assert_eq!(
            check_falcon_url(" https://ts.example.com:8442/ ").unwrap(),
            "https://ts.example.com:8442"
        );
        for bad in [
            "http://user:s3cret@ts.example.com:8442",
            "ftp://ts.example.com",
            "ts.example.com:8442",
            "https://ts.example.com:8442/path?x=1",
        ] {
            let err = check_falcon_url(bad).unwrap_err().to_string();
            assert!(err.contains("--falcon-url"), "{err}");
            assert!(!err.contains("s3cret"), "{err}");
        }
    }

    #[test]
    fn the_default_service_address_is_the_cluster_on_port_8442() {
        assert_eq!(
            default_falcon_url("https://ts.example.com").unwrap(),
            "https://ts.example.com:8442"
        );
        assert_eq!(
            default_falcon_url("https://ts.example.com:443/").unwrap(),
            "https://ts.example.com:8442"
        );
        assert_eq!(
            default_falcon_url("http://[::1]:8080").unwrap(),
            "http://[::1]:8442"
        );
        assert!(default_falcon_url("not a url").is_err());
    }

    #[test]
    fn outcomes_say_what_was_replaced_and_what_not() {
        let none = Outcome {
            kept: vec!["A".into(), "B".into()],
            ..Outcome::default()
        };
        assert_eq!(
            none.to_string(),
            "no table was replaced: all 2 keep their previous data"
        );
        let partial = Outcome {
            replaced: vec!["A".into()],
            kept: vec!["B".into(), "C".into()],
            unknown: None,
        };
        let text = partial.to_string();
        assert!(text.contains("no transaction across tables"), "{text}");
        assert!(text.contains("replaced with the new data: A;"), "{text}");
        assert!(
            text.contains("not replaced (previous data kept): B, C"),
            "{text}"
        );
        let unknown = Outcome {
            replaced: vec![],
            kept: vec!["C".into()],
            unknown: Some("B".into()),
        };
        let text = unknown.to_string();
        assert!(text.contains("replaced with the new data: none"), "{text}");
        assert!(
            text.contains("B: committed, but Falcon did not say"),
            "{text}"
        );
    }

    #[test]
    fn exit_classes_follow_the_failure_inside() {
        let load = FalconError::Load {
            table: "T".into(),
            cycle_id: "c".into(),
            url: "u".into(),
            reason: "r".into(),
            advice: String::new(),
        };
        assert!(load.is_cluster());
        let partial = FalconError::Partial {
            source: Box::new(load),
            outcome: Outcome::default(),
        };
        assert!(partial.is_cluster() && !partial.is_output());
        assert!(partial.outcome().is_some());
        let cloud = FalconError::NoFalcon {
            url: "u".into(),
            evidence: "e".into(),
        };
        assert!(!cloud.is_cluster() && !cloud.is_output());
        assert!(cloud.to_string().contains("--to postgres://"));
        assert!(cloud.to_string().contains("--emit-sql DIALECT"));
    }
}
