//! `load --emit-sql DIALECT`: the SQL that creates the tables and loads the
//! CSV files in a warehouse ts-principals does not connect to (Snowflake,
//! Databricks, BigQuery, Redshift, or PostgreSQL by hand).
//!
//! Two files per dialect, in `OUT/sql/<dialect>/`: `create_tables.sql`
//! (schema and tables, with the names, types and keys the manifest
//! records, so they match the TML) and `load.sql` (getting the CSV files in
//! and replacing each table's rows). Every file is parsed with the
//! dialect's grammar (sqlparser) before it is written, as every TML file is
//! parsed back.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::Path;

use serde::Serialize;
use sqlparser::parser::Parser;

use super::Source;
use crate::output::{FileInfo, FileSet};
use crate::schema::{ColumnType, TableDef, Target};

/// The file creating the schema and tables.
pub const CREATE_FILE: &str = "create_tables.sql";
/// The file loading the CSV files.
pub const LOAD_FILE: &str = "load.sql";

/// A SQL dialect `--emit-sql` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// Snowflake: a stage, PUT, COPY INTO temporary tables, one transaction.
    Snowflake,
    /// Databricks (Unity Catalog, Delta): INSERT OVERWRITE … read_files.
    Databricks,
    /// BigQuery: external tables over the files, one transaction.
    Bigquery,
    /// Amazon Redshift: COPY from S3 into temp tables, one transaction.
    Redshift,
    /// PostgreSQL: server-side COPY, one transaction.
    Postgres,
}

impl Dialect {
    /// Every dialect.
    pub const ALL: [Dialect; 5] = [
        Dialect::Snowflake,
        Dialect::Databricks,
        Dialect::Bigquery,
        Dialect::Redshift,
        Dialect::Postgres,
    ];

    /// The name used on the command line and as the directory name.
    pub fn name(self) -> &'static str {
        self.target().as_str()
    }

    /// The database kind, which decides the default identifier case.
    pub fn target(self) -> Target {
        match self {
            Dialect::Snowflake => Target::Snowflake,
            Dialect::Databricks => Target::Databricks,
            Dialect::Bigquery => Target::Bigquery,
            Dialect::Redshift => Target::Redshift,
            Dialect::Postgres => Target::Postgres,
        }
    }

    /// sqlparser's grammar for the dialect.
    pub fn grammar(self) -> Box<dyn sqlparser::dialect::Dialect> {
        use sqlparser::dialect as d;
        match self {
            Dialect::Snowflake => Box::new(d::SnowflakeDialect),
            Dialect::Databricks => Box::new(d::DatabricksDialect),
            Dialect::Bigquery => Box::new(d::BigQueryDialect),
            Dialect::Redshift => Box::new(d::RedshiftSqlDialect {}),
            Dialect::Postgres => Box::new(d::PostgreSqlDialect {}),
        }
    }

    /// The column type in the dialect.
    pub fn type_name(self, ty: ColumnType) -> &'static str {
        use ColumnType::*;
        match (self, ty) {
            (Dialect::Snowflake, Text) => "VARCHAR",
            (Dialect::Snowflake | Dialect::Databricks | Dialect::Redshift, Bigint) => "BIGINT",
            (Dialect::Snowflake | Dialect::Databricks | Dialect::Redshift, Boolean) => "BOOLEAN",
            (Dialect::Snowflake | Dialect::Databricks, Timestamp) => "TIMESTAMP_NTZ",
            (Dialect::Snowflake | Dialect::Databricks, Double) => "DOUBLE",
            (Dialect::Databricks | Dialect::Bigquery, Text) => "STRING",
            (Dialect::Bigquery, Bigint) => "INT64",
            (Dialect::Bigquery, Boolean) => "BOOL",
            (Dialect::Bigquery, Timestamp) => "DATETIME",
            (Dialect::Bigquery, Double) => "FLOAT64",
            // Redshift's longest VARCHAR, in bytes.
            (Dialect::Redshift, Text) => "VARCHAR(65535)",
            (Dialect::Redshift, Timestamp) => "TIMESTAMP",
            (Dialect::Redshift, Double) => "DOUBLE PRECISION",
            (Dialect::Postgres, ty) => ty.sql_name(),
        }
    }

    /// The longest name the dialect keeps, in bytes, where it is short
    /// enough to matter.
    pub fn max_name_bytes(self) -> Option<usize> {
        match self {
            Dialect::Postgres => Some(63),
            Dialect::Redshift => Some(127),
            Dialect::Snowflake | Dialect::Databricks => Some(255),
            Dialect::Bigquery => Some(1024),
        }
    }

    /// A quoted identifier, so the stored case is exactly the given one.
    pub fn quote(self, name: &str) -> Result<String, SqlError> {
        Ok(match self {
            Dialect::Snowflake | Dialect::Redshift | Dialect::Postgres => {
                format!("\"{}\"", name.replace('"', "\"\""))
            }
            Dialect::Databricks => format!("`{}`", name.replace('`', "``")),
            Dialect::Bigquery => {
                if name.contains(['`', '\\']) || name.is_empty() {
                    return Err(SqlError::Name {
                        dialect: self.name(),
                        name: name.to_owned(),
                    });
                }
                format!("`{name}`")
            }
        })
    }
}

/// Why the SQL cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    /// A location the dialect needs was not given.
    #[error("--emit-sql {dialect} needs --files-at {example}: {why}")]
    FilesAt {
        /// The dialect.
        dialect: &'static str,
        /// An example value.
        example: &'static str,
        /// What it is for.
        why: &'static str,
    },
    /// An option that the dialect does not use.
    #[error("--emit-sql {dialect}: {problem}")]
    Option {
        /// The dialect.
        dialect: &'static str,
        /// What is wrong.
        problem: String,
    },
    /// A name the dialect cannot quote.
    #[error("--emit-sql {dialect}: the name {name:?} cannot be written as an identifier there")]
    Name {
        /// The dialect.
        dialect: &'static str,
        /// The name.
        name: String,
    },
    /// A written file does not parse: a bug, reported rather than written.
    #[error(
        "{file} for {dialect} does not parse as {dialect} SQL ({message}); this is a bug in ts-principals, please report it"
    )]
    Parse {
        /// The file.
        file: String,
        /// The dialect.
        dialect: &'static str,
        /// sqlparser's message.
        message: String,
    },
}

/// Where the loading statements find the files and how they sign in.
#[derive(Clone, Debug, Default)]
pub struct EmitOptions {
    /// Where the CSV files are (or will be uploaded): `s3://…` for Redshift,
    /// `gs://…` for BigQuery, a volume or cloud path for Databricks, a
    /// directory on the server for PostgreSQL (default: OUT/data).
    pub files_at: Option<String>,
    /// Redshift's IAM role for COPY (default: the cluster's default role).
    pub iam_role: Option<String>,
}

/// The SQL files of one dialect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SqlFiles {
    /// The dialect.
    pub dialect: Dialect,
    /// File name → text.
    pub files: BTreeMap<String, String>,
}

/// `'text'`, with quotes doubled (and, for BigQuery and Databricks, whose
/// strings take backslash escapes, backslashes doubled).
fn string(dialect: Dialect, text: &str) -> String {
    let text = match dialect {
        Dialect::Bigquery | Dialect::Databricks => text.replace('\\', "\\\\").replace('\'', "\\'"),
        _ => text.replace('\'', "''"),
    };
    format!("'{text}'")
}

/// `location/file`, with one `/` between.
fn at(location: &str, file: &str) -> String {
    format!("{}/{file}", location.trim_end_matches('/'))
}

struct Writer {
    dialect: Dialect,
    statements: Vec<String>,
}

impl Writer {
    fn comment(&mut self, text: &str) {
        let lines: Vec<String> = text.lines().map(|l| format!("-- {l}")).collect();
        self.statements.push(lines.join("\n"));
    }

    fn sql(&mut self, statement: String) {
        self.statements.push(format!("{statement};"));
    }

    fn finish(self, file: &str) -> Result<String, SqlError> {
        let text = self.statements.join("\n\n") + "\n";
        parse(self.dialect, &text).map_err(|message| SqlError::Parse {
            file: file.to_owned(),
            dialect: self.dialect.name(),
            message,
        })?;
        Ok(text)
    }
}

/// Parses a file written here, statement by statement (each ends with `;`
/// at the end of a line followed by a blank line, or at the end of the
/// file). One at a time because sqlparser 0.64 reads past the `;` after a
/// Snowflake `COPY INTO`.
pub fn parse(dialect: Dialect, text: &str) -> Result<Vec<sqlparser::ast::Statement>, String> {
    let grammar = dialect.grammar();
    let mut statements = Vec::new();
    for chunk in text.split(";\n\n") {
        let sql: String = (chunk.lines())
            .filter(|line| !line.starts_with("--"))
            .collect::<Vec<_>>()
            .join("\n");
        if sql.trim().trim_end_matches(';').trim().is_empty() {
            continue;
        }
        let parsed = Parser::parse_sql(&*grammar, &sql).map_err(|e| format!("{e} in: {sql}"))?;
        statements.extend(parsed);
    }
    Ok(statements)
}

/// The SQL for `source` in `dialect`.
pub fn emit(
    source: &Source,
    dialect: Dialect,
    options: &EmitOptions,
) -> Result<SqlFiles, SqlError> {
    let layout = &source.layout;
    check_options(dialect, options)?;
    if let Some(limit) = dialect.max_name_bytes() {
        let names = (source.tables.iter())
            .flat_map(|t| {
                std::iter::once(&t.def.table).chain(t.def.columns.iter().map(|c| &c.name))
            })
            .chain([&layout.schema]);
        for name in names {
            // Room for the `_load` and `_pkey` names made from it.
            if name.len() + 5 > limit {
                return Err(SqlError::Option {
                    dialect: dialect.name(),
                    problem: format!(
                        "the name {name:?} is {} bytes, and {} keeps only {limit} (less the \
                         5 of the suffixes added to it); shorten tml.table_prefix or tml.schema",
                        name.len(),
                        dialect.name()
                    ),
                });
            }
        }
    }
    let q = |name: &str| dialect.quote(name);
    let schema = match dialect {
        Dialect::Redshift | Dialect::Postgres => q(&layout.schema)?,
        _ => format!("{}.{}", q(&layout.database)?, q(&layout.schema)?),
    };
    let table = |name: &str| -> Result<String, SqlError> { Ok(format!("{schema}.{}", q(name)?)) };
    let header = format!(
        "Written by ts-principals {} from {} for {}.\nTable and column names match the TML \
         beside the data (identifier case {}); do not edit, run `ts-principals load --emit-sql {}` again.",
        env!("CARGO_PKG_VERSION"),
        crate::output::MANIFEST,
        dialect.name(),
        layout.identifier_case.as_str(),
        dialect.name()
    );

    let mut create = Writer {
        dialect,
        statements: Vec::new(),
    };
    create.comment(&format!("{header}\nRun it first, then {LOAD_FILE}."));
    create.sql(format!("CREATE SCHEMA IF NOT EXISTS {schema}"));
    for t in &source.tables {
        let qualified = table(&t.def.table)?;
        create.sql(create_table(dialect, &qualified, &t.def)?);
        if dialect == Dialect::Postgres {
            // Marked as ours, so `load --to postgres://…` may replace them.
            create.sql(format!(
                "COMMENT ON TABLE {qualified} IS {}",
                string(dialect, &super::postgres::table_comment(&t.def))
            ));
        }
    }

    // The group activity: views over the activity and history tables.
    for view in &layout.group_activity {
        if !source.tables.iter().any(|t| t.def.table == view.activity) {
            continue;
        }
        for name in (view.columns.iter())
            .flat_map(|c| [&c.name, &c.from])
            .chain([&view.view, &view.activity, &view.history])
        {
            q(name)?;
        }
        let quote = |name: &str| q(name).unwrap_or_else(|_| name.to_owned());
        let qualify = |name: &str| format!("{schema}.{}", quote(name));
        create.sql(format!(
            "CREATE OR REPLACE VIEW {} AS {}",
            qualify(&view.view),
            view.select_sql(&qualify, &quote)
        ));
    }

    let mut load = Writer {
        dialect,
        statements: Vec::new(),
    };
    let data_dir = source.dir.join(crate::generate::DATA_DIR);
    match dialect {
        Dialect::Snowflake => {
            if options.files_at.is_some() {
                return Err(SqlError::Option {
                    dialect: dialect.name(),
                    problem: "the files are uploaded from OUT/data with PUT (run load.sql in \
                              SnowSQL or snowsql -f); --files-at is not used"
                        .into(),
                });
            }
            snowflake_load(&mut load, &header, source, &data_dir, &table, &schema)?;
        }
        Dialect::Databricks => {
            let files_at = needed(
                options,
                dialect,
                "/Volumes/CATALOG/SCHEMA/VOLUME/ts-principals",
                "the volume or cloud path you copy OUT/data/*.csv to",
            )?;
            load.comment(&format!(
                "{header}\nCopy OUT/data/*.csv to {files_at} first. Each INSERT OVERWRITE \
                 replaces one table atomically."
            ));
            for t in &source.tables {
                let columns = column_list(dialect, &t.def)?;
                let schema_text: Vec<String> = (t.def.columns.iter())
                    .map(|c| Ok(format!("{} {}", q(&c.name)?, dialect.type_name(c.ty))))
                    .collect::<Result<_, SqlError>>()?;
                load.sql(format!(
                    "INSERT OVERWRITE {} ({columns}) SELECT {columns} FROM read_files({}, \
                     format => 'csv', header => true, multiLine => true, escape => '\"', \
                     mode => 'FAILFAST', timestampNTZFormat => 'yyyy-MM-dd HH:mm:ss', \
                     schema => {})",
                    table(&t.def.table)?,
                    string(dialect, &at(&files_at, &t.def.file)),
                    string(dialect, &schema_text.join(", "))
                ));
            }
        }
        Dialect::Bigquery => {
            let files_at = needed(
                options,
                dialect,
                "gs://BUCKET/ts-principals",
                "the Cloud Storage folder you upload OUT/data/*.csv to",
            )?;
            load.comment(&format!(
                "{header}\nUpload OUT/data/*.csv to {files_at} first (gcloud storage cp). An \
                 external table `<table>_load` is defined over each file, then every table is \
                 replaced in one transaction."
            ));
            for t in &source.tables {
                let load_table = table(&format!("{}_load", t.def.table))?;
                load.sql(format!(
                    "CREATE OR REPLACE EXTERNAL TABLE {load_table} ({}) OPTIONS (format = 'CSV', \
                     skip_leading_rows = 1, uris = [{}], allow_quoted_newlines = true, \
                     null_marker = '', encoding = 'UTF-8', quote = '\"', field_delimiter = ',')",
                    column_types(dialect, &t.def)?,
                    string(dialect, &at(&files_at, &t.def.file))
                ));
            }
            let mut swap = vec!["BEGIN TRANSACTION".to_owned()];
            for t in &source.tables {
                let columns = column_list(dialect, &t.def)?;
                let target = table(&t.def.table)?;
                swap.push(format!("DELETE FROM {target} WHERE TRUE"));
                swap.push(format!(
                    "INSERT INTO {target} ({columns}) SELECT {columns} FROM {}",
                    table(&format!("{}_load", t.def.table))?
                ));
            }
            swap.push("COMMIT TRANSACTION".into());
            for statement in swap {
                load.sql(statement);
            }
        }
        Dialect::Redshift => {
            let files_at = needed(
                options,
                dialect,
                "s3://BUCKET/ts-principals",
                "the S3 folder you upload OUT/data/*.csv to",
            )?;
            let role = match options.iam_role.as_deref() {
                None | Some("default") => "DEFAULT".to_owned(),
                Some(arn) => string(dialect, arn),
            };
            load.comment(&format!(
                "{header}\nUpload OUT/data/*.csv to {files_at} first (aws s3 cp). Every table is \
                 copied into a temporary table and replaced in one transaction."
            ));
            load.sql("BEGIN".into());
            for t in &source.tables {
                let columns = column_list(dialect, &t.def)?;
                let target = table(&t.def.table)?;
                let temp = q(&format!("{}_load", t.def.table))?;
                load.sql(format!("CREATE TEMP TABLE {temp} (LIKE {target})"));
                load.sql(format!(
                    "COPY {temp} ({columns}) FROM {} IAM_ROLE {role} CSV IGNOREHEADER 1 \
                     TIMEFORMAT 'YYYY-MM-DD HH:MI:SS' EMPTYASNULL NULL AS '\\000'",
                    string(dialect, &at(&files_at, &t.def.file))
                ));
                load.sql(format!("DELETE FROM {target}"));
                load.sql(format!(
                    "INSERT INTO {target} ({columns}) SELECT {columns} FROM {temp}"
                ));
            }
            load.sql("COMMIT".into());
        }
        Dialect::Postgres => {
            let files_at = options
                .files_at
                .clone()
                .unwrap_or_else(|| absolute(&data_dir));
            load.comment(&format!(
                "{header}\nCOPY reads {files_at} on the database server (pg_read_server_files). \
                 `ts-principals load --to postgres://…` loads from here without that."
            ));
            load.sql("BEGIN".into());
            for t in &source.tables {
                let target = table(&t.def.table)?;
                load.sql(format!("TRUNCATE {target}"));
                load.sql(format!(
                    "COPY {target} ({}) FROM {} WITH (FORMAT csv, HEADER true)",
                    column_list(dialect, &t.def)?,
                    string(dialect, &at(&files_at, &t.def.file))
                ));
            }
            load.sql("COMMIT".into());
        }
    }
    let mut files = BTreeMap::new();
    files.insert(CREATE_FILE.to_owned(), create.finish(CREATE_FILE)?);
    files.insert(LOAD_FILE.to_owned(), load.finish(LOAD_FILE)?);
    Ok(SqlFiles { dialect, files })
}

fn snowflake_load(
    load: &mut Writer,
    header: &str,
    source: &Source,
    data_dir: &Path,
    table: &dyn Fn(&str) -> Result<String, SqlError>,
    schema: &str,
) -> Result<(), SqlError> {
    let dialect = Dialect::Snowflake;
    // One stage per table prefix, so two sets in one schema keep apart.
    let names: Vec<&str> = source.tables.iter().map(|t| t.def.table.as_str()).collect();
    let prefix = common_prefix(&names);
    let stage = format!(
        "{schema}.{}",
        dialect.quote(&format!("{prefix}LOAD_STAGE"))?
    );
    load.comment(&format!(
        "{header}\nRun with SnowSQL, stopping at the first error: snowsql -o exit_on_error=true -f load.sql\n(without it a failed PUT or COPY would go on and replace tables with empty ones). PUT uploads the files from {}. Each \
         file is copied into a temporary table `<table>_LOAD`, then every table is replaced \
         in one transaction (INSERT OVERWRITE keeps its grants).",
        absolute(data_dir)
    ));
    load.sql(format!(
        "CREATE STAGE IF NOT EXISTS {stage} FILE_FORMAT = (TYPE = CSV SKIP_HEADER = 1 \
         FIELD_DELIMITER = ',' FIELD_OPTIONALLY_ENCLOSED_BY = '\"' ESCAPE_UNENCLOSED_FIELD = NONE \
         ESCAPE = NONE EMPTY_FIELD_AS_NULL = TRUE NULL_IF = () TIMESTAMP_FORMAT = \
         'YYYY-MM-DD HH24:MI:SS' ENCODING = 'UTF8' ERROR_ON_COLUMN_COUNT_MISMATCH = TRUE)"
    ));
    for t in &source.tables {
        let file = data_dir.join(&t.def.file);
        load.sql(format!(
            "PUT {} @{stage} AUTO_COMPRESS = TRUE OVERWRITE = TRUE",
            string(dialect, &format!("file://{}", absolute(&file)))
        ));
    }
    for t in &source.tables {
        let staged = table(&format!("{}_LOAD", t.def.table))?;
        load.sql(format!(
            "CREATE OR REPLACE TEMPORARY TABLE {staged} LIKE {}",
            table(&t.def.table)?
        ));
        load.sql(format!(
            "COPY INTO {staged} ({}) FROM @{stage} FILES = ({}) ON_ERROR = ABORT_STATEMENT \
             PURGE = TRUE",
            column_list(dialect, &t.def)?,
            string(dialect, &format!("{}.gz", t.def.file))
        ));
    }
    load.sql("BEGIN TRANSACTION".into());
    for t in &source.tables {
        let columns = column_list(dialect, &t.def)?;
        load.sql(format!(
            "INSERT OVERWRITE INTO {} ({columns}) SELECT {columns} FROM {}",
            table(&t.def.table)?,
            table(&format!("{}_LOAD", t.def.table))?
        ));
    }
    load.sql("COMMIT".into());
    Ok(())
}

/// `--files-at` must be a place the dialect reads from; `--iam-role` is
/// Redshift's.
fn check_options(dialect: Dialect, options: &EmitOptions) -> Result<(), SqlError> {
    let problem = |problem: String| SqlError::Option {
        dialect: dialect.name(),
        problem,
    };
    if options.iam_role.is_some() && dialect != Dialect::Redshift {
        return Err(problem("--iam-role is for redshift only".into()));
    }
    let Some(at) = options.files_at.as_deref() else {
        return Ok(());
    };
    let fits = match dialect {
        Dialect::Redshift => at.starts_with("s3://"),
        Dialect::Bigquery => at.starts_with("gs://"),
        Dialect::Databricks => {
            at.starts_with('/')
                || ["s3://", "s3a://", "gs://", "abfss://", "dbfs:/"]
                    .iter()
                    .any(|scheme| at.starts_with(scheme))
        }
        Dialect::Postgres => at.starts_with('/'),
        Dialect::Snowflake => true,
    };
    if fits {
        Ok(())
    } else {
        Err(problem(format!(
            "--files-at {at:?} is not a place {} reads files from (expected {})",
            dialect.name(),
            match dialect {
                Dialect::Redshift => "s3://BUCKET/PATH",
                Dialect::Bigquery => "gs://BUCKET/PATH",
                Dialect::Databricks => "a /Volumes/… path or s3://, abfss://, gs:// URL",
                _ => "an absolute directory on the database server",
            }
        )))
    }
}

fn needed(
    options: &EmitOptions,
    dialect: Dialect,
    example: &'static str,
    why: &'static str,
) -> Result<String, SqlError> {
    options.files_at.clone().ok_or(SqlError::FilesAt {
        dialect: dialect.name(),
        example,
        why,
    })
}

/// The longest common prefix of the names, at a character boundary.
fn common_prefix<'a>(names: &[&'a str]) -> &'a str {
    let Some(first) = names.first() else {
        return "";
    };
    let mut end = first.len();
    for name in &names[1..] {
        end = end.min(
            (first.char_indices().zip(name.chars()))
                .find(|((_, a), b)| a != b)
                .map_or(first.len().min(name.len()), |((i, _), _)| i),
        );
    }
    &first[..end]
}

fn absolute(path: &Path) -> String {
    std::path::absolute(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

fn column_list(dialect: Dialect, def: &TableDef) -> Result<String, SqlError> {
    let names: Vec<String> = (def.columns.iter())
        .map(|c| dialect.quote(&c.name))
        .collect::<Result<_, _>>()?;
    Ok(names.join(", "))
}

fn column_types(dialect: Dialect, def: &TableDef) -> Result<String, SqlError> {
    let columns: Vec<String> = (def.columns.iter())
        .map(|c| {
            Ok(format!(
                "{} {}",
                dialect.quote(&c.name)?,
                dialect.type_name(c.ty)
            ))
        })
        .collect::<Result<_, SqlError>>()?;
    Ok(columns.join(", "))
}

fn create_table(dialect: Dialect, qualified: &str, def: &TableDef) -> Result<String, SqlError> {
    let mut parts: Vec<String> = (def.columns.iter())
        .map(|c| {
            let not_null = if c.key { " NOT NULL" } else { "" };
            Ok(format!(
                "  {} {}{not_null}",
                dialect.quote(&c.name)?,
                dialect.type_name(c.ty)
            ))
        })
        .collect::<Result<_, SqlError>>()?;
    let key: Vec<String> = def
        .key()
        .map(|c| dialect.quote(&c.name))
        .collect::<Result<_, _>>()?;
    if !key.is_empty() {
        let key = key.join(", ");
        parts.push(match dialect {
            Dialect::Bigquery => format!("  PRIMARY KEY ({key}) NOT ENFORCED"),
            Dialect::Postgres => format!(
                "  CONSTRAINT {} PRIMARY KEY ({key})",
                dialect.quote(&super::postgres::key_name(&def.table))?
            ),
            Dialect::Databricks => format!(
                "  CONSTRAINT {} PRIMARY KEY ({key})",
                dialect.quote(&format!("{}_pk", def.table))?
            ),
            Dialect::Snowflake | Dialect::Redshift => format!("  PRIMARY KEY ({key})"),
        });
    }
    Ok(format!(
        "CREATE TABLE IF NOT EXISTS {qualified} (\n{}\n)",
        parts.join(",\n")
    ))
}

#[derive(Serialize)]
struct Manifest<'a> {
    tool: &'static str,
    version: &'static str,
    dialect: &'static str,
    files: &'a BTreeMap<String, FileInfo>,
}

impl FileSet for SqlFiles {
    type Source = usize;

    fn files(&self) -> BTreeMap<String, usize> {
        (self.files.keys().enumerate())
            .map(|(i, name)| (name.clone(), i))
            .collect()
    }

    fn write(&self, source: usize, out: &mut dyn Write) -> io::Result<Option<usize>> {
        match self.files.values().nth(source) {
            Some(text) => out.write_all(text.as_bytes()).map(|()| None),
            None => Ok(None),
        }
    }

    fn manifest(&self, files: &BTreeMap<String, FileInfo>) -> Vec<u8> {
        let manifest = Manifest {
            tool: crate::output::TOOL,
            version: env!("CARGO_PKG_VERSION"),
            dialect: self.dialect.name(),
            files,
        };
        let mut json = serde_json::to_vec_pretty(&manifest).unwrap_or_default();
        json.push(b'\n');
        json
    }

    /// `*.sql`, directly in the directory.
    fn may_own(relative: &str) -> bool {
        !relative.contains('/') && relative.ends_with(".sql")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::DatabaseLayout;
    use crate::load::SourceTable;
    use crate::render::TmlSettings;
    use sqlparser::ast::Statement;

    fn source(dialect: Dialect) -> Source {
        let settings = TmlSettings {
            connection: Some("Warehouse".into()),
            database: "ANALYTICS".into(),
            schema: "THOUGHTSPOT".into(),
            identifier_case: dialect.target().default_case(),
            ..TmlSettings::default()
        };
        let layout = DatabaseLayout::of(&settings, &crate::activity::sample_held());
        let tables = (layout.tables.iter())
            .map(|def| SourceTable {
                def: def.clone(),
                path: Path::new("/data/out/data").join(&def.file),
                bytes: 0,
                rows: None,
                sha256: None,
            })
            .collect();
        Source::for_tests(Path::new("/data/out"), layout, tables)
    }

    fn options(dialect: Dialect) -> EmitOptions {
        EmitOptions {
            files_at: match dialect {
                Dialect::Databricks => Some("/Volumes/main/ts/files".into()),
                Dialect::Bigquery => Some("gs://bucket/ts's".into()),
                Dialect::Redshift => Some("s3://bucket/ts/".into()),
                _ => None,
            },
            iam_role: None,
        }
    }

    #[test]
    fn every_dialect_parses_and_creates_every_table_with_its_columns() {
        for dialect in Dialect::ALL {
            let source = source(dialect);
            let sql = emit(&source, dialect, &options(dialect)).unwrap();
            assert_eq!(sql.files.len(), 2);
            let create = &sql.files[CREATE_FILE];
            let statements = parse(dialect, create).unwrap();
            let mut created = Vec::new();
            for statement in statements {
                if let Statement::CreateTable(table) = statement {
                    let name = table.name.0.last().unwrap().to_string();
                    let columns: Vec<String> =
                        table.columns.iter().map(|c| c.name.value.clone()).collect();
                    created.push((name, columns));
                }
            }
            let expected: Vec<(String, Vec<String>)> = (source.layout.tables.iter())
                .map(|t| {
                    let quoted = dialect.quote(&t.table).unwrap();
                    let columns = t.columns.iter().map(|c| c.name.clone()).collect();
                    (quoted, columns)
                })
                .collect();
            assert_eq!(created, expected, "{}", dialect.name());
            let load = parse(dialect, &sql.files[LOAD_FILE]).unwrap();
            assert!(load.len() >= source.tables.len(), "{}", dialect.name());
        }
    }

    #[test]
    fn dialects_that_read_files_elsewhere_need_their_location() {
        for dialect in [Dialect::Databricks, Dialect::Bigquery, Dialect::Redshift] {
            let err = emit(&source(dialect), dialect, &EmitOptions::default())
                .unwrap_err()
                .to_string();
            assert!(err.contains("--files-at"), "{err}");
        }
        let snowflake = Dialect::Snowflake;
        let err = emit(&source(snowflake), snowflake, &options(Dialect::Redshift))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not used"), "{err}");
    }

    #[test]
    fn locations_and_name_lengths_are_checked_before_anything_is_written() {
        let postgres = Dialect::Postgres;
        let mut long = source(postgres);
        long.tables[0].def.table = "t".repeat(60);
        let err = emit(&long, postgres, &EmitOptions::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("keeps only 63"), "{err}");
        for (dialect, at) in [
            (Dialect::Redshift, "gs://b/p"),
            (Dialect::Bigquery, "s3://b/p"),
            (Dialect::Databricks, "relative/path"),
            (Dialect::Postgres, "relative/path"),
        ] {
            let options = EmitOptions {
                files_at: Some(at.into()),
                iam_role: None,
            };
            let err = emit(&source(dialect), dialect, &options)
                .unwrap_err()
                .to_string();
            assert!(err.contains("is not a place"), "{err}");
        }
        let options = EmitOptions {
            iam_role: Some("arn".into()),
            ..options(Dialect::Bigquery)
        };
        let err = emit(&source(Dialect::Bigquery), Dialect::Bigquery, &options)
            .unwrap_err()
            .to_string();
        assert!(err.contains("redshift only"), "{err}");
        assert_eq!(common_prefix(&["TS_USERS", "TS_ORGS"]), "TS_");
        assert_eq!(common_prefix(&["ÄB", "ÄC"]), "Ä");
    }

    #[test]
    fn strings_and_names_are_escaped_for_each_dialect() {
        assert_eq!(string(Dialect::Postgres, "it's"), "'it''s'");
        assert_eq!(string(Dialect::Bigquery, "it's \\"), "'it\\'s \\\\'");
        assert_eq!(Dialect::Snowflake.quote("a\"b").unwrap(), "\"a\"\"b\"");
        assert_eq!(Dialect::Databricks.quote("a`b").unwrap(), "`a``b`");
        assert!(Dialect::Bigquery.quote("a`b").is_err());
        let redshift = emit(
            &source(Dialect::Redshift),
            Dialect::Redshift,
            &EmitOptions {
                iam_role: Some("arn:aws:iam::123:role/load".into()),
                ..options(Dialect::Redshift)
            },
        )
        .unwrap();
        let load = &redshift.files[LOAD_FILE];
        assert!(
            load.contains("IAM_ROLE 'arn:aws:iam::123:role/load'"),
            "{load}"
        );
        assert!(load.contains("'s3://bucket/ts/users.csv'"), "{load}");
    }
}
