//! `load --emit-sql DIALECT`: every file parses under the dialect's grammar
//! (sqlparser), and the tables it creates have exactly the names of the TML
//! rendered for that dialect.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;
use sqlparser::ast::Statement;
use sqlparser::dialect::{self, Dialect};
use sqlparser::parser::Parser;

use crate::common::{example, ts_principals};

const DIALECTS: [(&str, Option<&str>); 5] = [
    ("snowflake", None),
    ("databricks", Some("/Volumes/main/ts_principals/files")),
    ("bigquery", Some("gs://acme-analytics/ts-principals")),
    ("redshift", Some("s3://acme-analytics/ts-principals")),
    ("postgres", None),
];

fn grammar(name: &str) -> Box<dyn Dialect> {
    match name {
        "snowflake" => Box::new(dialect::SnowflakeDialect),
        "databricks" => Box::new(dialect::DatabricksDialect),
        "bigquery" => Box::new(dialect::BigQueryDialect),
        "redshift" => Box::new(dialect::RedshiftSqlDialect {}),
        _ => Box::new(dialect::PostgreSqlDialect {}),
    }
}

/// Every statement of a file, parsed one by one (they end with `;` and a
/// blank line; comments are `--` lines).
fn statements(name: &str, text: &str) -> Vec<Statement> {
    let grammar = grammar(name);
    let mut parsed = Vec::new();
    for chunk in text.split(";\n\n") {
        let sql: Vec<&str> = chunk.lines().filter(|l| !l.starts_with("--")).collect();
        let sql = sql.join("\n");
        if sql.trim().trim_end_matches(';').trim().is_empty() {
            continue;
        }
        let statements =
            Parser::parse_sql(&*grammar, &sql).unwrap_or_else(|e| panic!("{name}: {e} in\n{sql}"));
        parsed.extend(statements);
    }
    parsed
}

/// `db_table` → its `db_column_name`s, from the table TML of `out`.
fn tml_tables(out: &Path) -> BTreeMap<String, Vec<String>> {
    let mut tables = BTreeMap::new();
    for file in crate::common::tml_files(out) {
        if !file.to_string_lossy().ends_with(".table.tml") {
            continue;
        }
        let doc: Value = serde_saphyr::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let table = &doc["table"];
        let columns = (table["columns"].as_array().unwrap().iter())
            .map(|c| c["db_column_name"].as_str().unwrap().to_owned())
            .collect();
        tables.insert(table["db_table"].as_str().unwrap().to_owned(), columns);
    }
    tables
}

/// `generate` of the example with an (empty) activity copy into `dir/out`,
/// the TML naming `database`.`schema` of a `target`.
fn generate(dir: &Path, database: &str, schema: &str, target: &str) -> std::path::PathBuf {
    let config = dir.join("ts-principals.toml");
    std::fs::write(
        &config,
        format!(
            "[tml]\nconnection = \"Warehouse\"\ndatabase = \"{database}\"\n\
             schema = \"{schema}\"\ntarget = \"{target}\"\n"
        ),
    )
    .unwrap();
    let out = dir.join("out");
    let generate = || {
        ts_principals(dir)
            .args(["generate", "--from"])
            .arg(example())
            .arg("--config")
            .arg(&config)
            .arg("--out")
            .arg(&out)
            .assert()
            .success();
    };
    // With a copy of the activity, so the group activity views are written.
    generate();
    crate::common::seed_activity(&out, &crate::common::activity_held());
    generate();
    out
}

fn unquote(ident: &str) -> String {
    ident.trim_matches(['"', '`']).to_owned()
}

#[test]
fn every_dialect_parses_and_creates_the_tables_the_tml_names() {
    for (name, files_at) in DIALECTS {
        let dir = tempfile::tempdir().unwrap();
        let out = generate(dir.path(), "analytics", "thoughtspot", name);
        let mut load = ts_principals(dir.path());
        load.args(["load", "--emit-sql", name, "--from"]).arg(&out);
        if let Some(files_at) = files_at {
            load.args(["--files-at", files_at]);
        }
        load.assert().success();
        let sql_dir = out.join("sql").join(name);
        let mut created = BTreeMap::new();
        let mut files = 0;
        for entry in std::fs::read_dir(&sql_dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "sql") {
                continue;
            }
            files += 1;
            let parsed = statements(name, &std::fs::read_to_string(&path).unwrap());
            if !path.ends_with("create_tables.sql") {
                assert!(!parsed.is_empty(), "{name}: {path:?}");
                continue;
            }
            for statement in parsed {
                if let Statement::CreateView(view) = &statement {
                    let parts = &view.name.0;
                    let sqlparser::ast::SetExpr::Select(select) = view.query.body.as_ref() else {
                        panic!("{name}: a view of a SELECT");
                    };
                    let columns = (select.projection.iter())
                        .map(|item| match item {
                            sqlparser::ast::SelectItem::ExprWithAlias { alias, .. } => {
                                alias.value.clone()
                            }
                            other => panic!("{name}: {other} has no alias"),
                        })
                        .collect::<Vec<_>>();
                    created.insert(unquote(&parts[parts.len() - 1].to_string()), columns);
                }
                if let Statement::CreateTable(table) = statement {
                    let parts = &table.name.0;
                    assert_eq!(
                        parts.len(),
                        if matches!(name, "redshift" | "postgres") {
                            2
                        } else {
                            3
                        },
                        "{name}: {}",
                        table.name
                    );
                    let columns = table
                        .columns
                        .iter()
                        .map(|c| c.name.value.clone())
                        .collect::<Vec<_>>();
                    created.insert(unquote(&parts[parts.len() - 1].to_string()), columns);
                }
            }
        }
        assert_eq!(files, 2, "{name}");
        let tml = tml_tables(&out);
        assert_eq!(created, tml, "{name}: CREATE TABLE names against the TML");
        let lower = !matches!(name, "snowflake");
        for table in tml.keys() {
            assert_eq!(
                *table == table.to_ascii_lowercase(),
                lower,
                "{name}: {table} is in the dialect's case"
            );
        }
        // The manifest beside them makes them ours for the next run.
        assert!(sql_dir.join("manifest.json").is_file());
    }
}

#[test]
fn postgres_sql_runs_on_a_real_server() {
    let Some(url) = crate::postgres::server() else {
        return;
    };
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let schema = format!("t_emit_{}", std::process::id());
    client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    // The server reads the files itself, as its own user.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let out = generate(dir.path(), "postgres", &schema, "postgres");
    #[cfg(unix)]
    for sub in ["", "data"] {
        use std::os::unix::fs::PermissionsExt;
        let path = out.join(sub);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        for entry in std::fs::read_dir(&path).unwrap() {
            let file = entry.unwrap().path();
            if file.is_file() {
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
            }
        }
    }
    ts_principals(dir.path())
        .args(["load", "--emit-sql", "postgres", "--from"])
        .arg(&out)
        .assert()
        .success();
    for file in ["create_tables.sql", "load.sql", "load.sql"] {
        let sql = std::fs::read_to_string(out.join("sql/postgres").join(file)).unwrap();
        client
            .batch_execute(&sql)
            .unwrap_or_else(|e| panic!("{file}: {e}"));
    }
    let count: i64 = client
        .query_one(
            &format!("SELECT count(*) FROM \"{schema}\".\"ts_group_memberships\""),
            &[],
        )
        .unwrap()
        .get(0);
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(
        count,
        manifest["counts"]["effective_memberships"]
            .as_i64()
            .unwrap()
    );
    client
        .batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .unwrap();
}
