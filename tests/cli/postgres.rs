//! `load --to postgres://…` against a real PostgreSQL server.
//!
//! The server comes from `TS_PRINCIPALS_TEST_PG` (`.ci/run` starts one with
//! `tests/tools/postgres.sh`). Without it these tests skip with a loud
//! message, except on CI, where they fail. Every test works in a schema of
//! its own and drops it at the end.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use postgres::{Client, NoTls};
use serde_json::Value;

use crate::common::{example, ts_principals};

/// The server's URL, or `None` to skip.
pub fn server() -> Option<String> {
    match std::env::var("TS_PRINCIPALS_TEST_PG") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var_os("CI").is_some() => panic!(
            "CI needs a PostgreSQL server for the load tests: .ci/run starts one with \
             tests/tools/postgres.sh and exports TS_PRINCIPALS_TEST_PG"
        ),
        _ => {
            eprintln!(
                "\n*** SKIPPED: no PostgreSQL server for the load tests (TS_PRINCIPALS_TEST_PG \
                 is not set).\n*** Start one with   eval \"$(bash tests/tools/postgres.sh \
                 start)\"   and run the tests again.\n"
            );
            None
        }
    }
}

/// A schema of the test's own on the test server.
pub(crate) struct Db {
    pub(crate) url: String,
    pub(crate) schema: String,
    pub(crate) client: Client,
}

impl Db {
    pub(crate) fn new(test: &str) -> Option<Db> {
        let url = server()?;
        let mut client = Client::connect(&url, NoTls).expect("connect to the test server");
        let schema = format!("t_{test}_{}", std::process::id());
        client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
            .expect("drop schema");
        Some(Db {
            url,
            schema,
            client,
        })
    }

    /// `load --from out --to URL --schema SCHEMA`, run in `dir`.
    pub(crate) fn load(&self, dir: &Path, out: &Path) -> assert_cmd::assert::Assert {
        ts_principals(dir)
            .args(["load", "--from"])
            .arg(out)
            .args(["--to", &self.url, "--schema", &self.schema])
            .assert()
    }

    pub(crate) fn qualified(&self, table: &str) -> String {
        format!("\"{}\".\"{table}\"", self.schema)
    }

    /// Every row of a loaded table as CSV text formatted as the data files
    /// write it, sorted.
    pub(crate) fn rows(&mut self, table: &TableInfo) -> Vec<Vec<String>> {
        let columns: Vec<String> = (table.columns.iter())
            .map(|(name, ty)| match ty.as_str() {
                "boolean" => format!("CASE WHEN \"{name}\" THEN 'true' ELSE 'false' END"),
                "timestamp" => format!("to_char(\"{name}\", 'YYYY-MM-DD HH24:MI:SS')"),
                _ => format!("\"{name}\"::text"),
            })
            .collect();
        let query = format!(
            "COPY (SELECT {} FROM {}) TO STDOUT WITH (FORMAT csv)",
            columns.join(", "),
            self.qualified(&table.table)
        );
        let mut text = Vec::new();
        self.client
            .copy_out(&query)
            .expect("copy out")
            .read_to_end(&mut text)
            .expect("read copy");
        records(&text, false)
    }

    pub(crate) fn count(&mut self, table: &str) -> i64 {
        let query = format!("SELECT count(*) FROM {}", self.qualified(table));
        self.client.query_one(&query, &[]).expect("count").get(0)
    }

    pub(crate) fn tables(&mut self) -> Vec<String> {
        let rows = self
            .client
            .query(
                "SELECT table_name::text FROM information_schema.tables \
                 WHERE table_schema = $1 ORDER BY 1",
                &[&self.schema],
            )
            .expect("tables");
        rows.iter().map(|r| r.get(0)).collect()
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        let _ = self.client.batch_execute(&format!(
            "DROP SCHEMA IF EXISTS \"{}\" CASCADE",
            self.schema
        ));
    }
}

/// CSV records, sorted (the header dropped when `header`).
pub(crate) fn records(bytes: &[u8], header: bool) -> Vec<Vec<String>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(header)
        .from_reader(bytes);
    let mut rows: Vec<Vec<String>> = reader
        .records()
        .map(|r| r.expect("csv record").iter().map(str::to_owned).collect())
        .collect();
    rows.sort();
    rows
}

/// A table as the manifest records it: database name and (column, type).
pub(crate) struct TableInfo {
    pub(crate) file: String,
    pub(crate) table: String,
    pub(crate) columns: Vec<(String, String)>,
}

pub(crate) fn layout(out: &Path) -> Vec<TableInfo> {
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).expect("manifest"))
            .expect("manifest json");
    manifest["database"]["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .map(|t| TableInfo {
            file: t["file"].as_str().expect("file").to_owned(),
            table: t["table"].as_str().expect("table").to_owned(),
            columns: (t["columns"].as_array().expect("columns").iter())
                .map(|c| {
                    (
                        c["name"].as_str().expect("name").to_owned(),
                        c["type"].as_str().expect("type").to_owned(),
                    )
                })
                .collect(),
        })
        .collect()
}

/// A project config pointing the TML at `schema` of the test database.
pub(crate) fn config(dir: &Path, schema: &str, case: &str) -> PathBuf {
    let path = dir.join(format!("ts-principals-{case}.toml"));
    std::fs::write(
        &path,
        format!(
            "[tml]\nconnection = \"Test PostgreSQL\"\ndatabase = \"postgres\"\n\
             schema = \"{schema}\"\nidentifier_case = \"{case}\"\n"
        ),
    )
    .expect("write config");
    path
}

/// `generate` into `dir/out` with the config and extra flags.
fn generate(dir: &Path, input: &Path, config: &Path, extra: &[&str]) -> PathBuf {
    let out = dir.join("out");
    ts_principals(dir)
        .arg("generate")
        .arg("--from")
        .arg(input)
        .arg("--config")
        .arg(config)
        .args(["--out"])
        .arg(&out)
        .args(extra)
        .assert()
        .success();
    out
}

/// A schema of the test's own with the example loaded: the database, the
/// scratch directory, its config and the output directory.
fn loaded(test: &str) -> Option<(Db, tempfile::TempDir, PathBuf, PathBuf)> {
    let db = Db::new(test)?;
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &db.schema, "lower");
    let out = generate(dir.path(), &example(), &config, &[]);
    db.load(dir.path(), &out).success();
    Some((db, dir, config, out))
}

/// Every row of every table of `out`, as the database holds them.
fn contents(db: &mut Db, out: &Path) -> Vec<Vec<Vec<String>>> {
    layout(out).iter().map(|t| db.rows(t)).collect()
}

/// Checks that every table of `out` is in the database, row for row.
fn assert_loaded(db: &mut Db, out: &Path) {
    let tables = layout(out);
    assert_eq!(tables.len(), 8);
    // The history is advanced by each load rather than replaced; its own
    // tests check it.
    for table in tables.iter().filter(|t| !t.file.contains("history")) {
        let file = std::fs::read(out.join("data").join(&table.file)).expect("csv");
        assert_eq!(db.rows(table), records(&file, true), "{}", table.table);
    }
}

#[test]
fn load_creates_every_table_and_reloads_replace_them() {
    let Some(mut db) = Db::new("reload") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &db.schema, "lower");
    let out = generate(dir.path(), &example(), &config, &[]);
    let loaded = db.load(dir.path(), &out).success();
    let summary = String::from_utf8_lossy(&loaded.get_output().stdout).into_owned();
    assert!(summary.contains("ts_group_memberships"), "{summary}");
    assert!(summary.contains("total"), "{summary}");
    assert_loaded(&mut db, &out);
    let first: Vec<String> = db.tables();
    // The eight tables and the log of the history's loads.
    assert_eq!(first.len(), 9, "{first:?}");
    // Twice: the same tables.
    db.load(dir.path(), &out).success();
    assert_eq!(db.tables(), first);
    assert_loaded(&mut db, &out);
    // Different principals of the same cluster: the tables hold exactly
    // the new rows.
    let other = crate::common::fixture("v2_combined.json");
    let out = generate(dir.path(), &other, &config, &["--cluster-id", "acme-prod"]);
    db.load(dir.path(), &out).success();
    assert_eq!(db.tables(), first);
    assert_loaded(&mut db, &out);
}

/// ThoughtSpot types in TML → PostgreSQL's `information_schema` types.
fn compatible(tml: &str, postgres: &str) -> bool {
    matches!(
        (tml, postgres),
        ("VARCHAR", "text" | "character varying")
            | ("INT64" | "INT32", "bigint" | "integer")
            | ("BOOL", "boolean")
            | ("DATE_TIME", "timestamp without time zone")
            | ("DOUBLE" | "FLOAT", "double precision" | "real")
    )
}

#[test]
fn every_name_and_type_in_the_tml_exists_in_the_database_in_both_cases() {
    for case in ["lower", "upper"] {
        let Some(mut db) = Db::new(&format!("names_{case}")) else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path(), &db.schema, case);
        // With a copy of both activity worksheets, so theirs are checked too.
        crate::common::seed_activity(&dir.path().join("out"), &crate::common::activity_held());
        let out = generate(dir.path(), &example(), &config, &[]);
        db.load(dir.path(), &out).success();
        let rows = db
            .client
            .query(
                "SELECT table_catalog::text, table_name::text, column_name::text, data_type::text \
                 FROM information_schema.columns WHERE table_schema = $1",
                &[&db.schema],
            )
            .expect("columns");
        let mut database: BTreeMap<(String, String), String> = BTreeMap::new();
        for row in &rows {
            assert_eq!(row.get::<_, String>(0), "postgres");
            // The log of the history's loads is the load's own record, not
            // a table ThoughtSpot reads.
            if !row
                .get::<_, String>(1)
                .to_ascii_lowercase()
                .ends_with("_history_loads")
            {
                database.insert((row.get(1), row.get(2)), row.get(3));
            }
        }
        let mut checked = 0;
        for file in crate::common::tml_files(&out) {
            if !file.to_string_lossy().ends_with(".table.tml") {
                continue;
            }
            let text = std::fs::read_to_string(&file).unwrap();
            let doc: Value = serde_saphyr::from_str(&text).expect("tml parses");
            let table = &doc["table"];
            assert_eq!(table["db"], "postgres", "{file:?}");
            assert_eq!(table["schema"], db.schema.as_str(), "{file:?}");
            let db_table = table["db_table"].as_str().unwrap();
            let expected_case = if case == "lower" {
                db_table.to_ascii_lowercase()
            } else {
                db_table.to_ascii_uppercase()
            };
            assert_eq!(db_table, expected_case, "{file:?}");
            for column in table["columns"].as_array().unwrap() {
                let name = column["db_column_name"].as_str().unwrap();
                let tml_type = column["db_column_properties"]["data_type"]
                    .as_str()
                    .unwrap();
                let found = database
                    .get(&(db_table.to_owned(), name.to_owned()))
                    .unwrap_or_else(|| {
                        panic!("{file:?}: {db_table}.{name} is not in the database ({case})")
                    });
                assert!(
                    compatible(tml_type, found),
                    "{file:?}: {db_table}.{name} is {tml_type} in the TML and {found} in the database"
                );
                checked += 1;
            }
        }
        assert_eq!(
            checked,
            database.len(),
            "every database column is in the TML"
        );
        assert!(checked > 55, "{checked}");
        assert!(
            database
                .keys()
                .any(|(t, _)| t.eq_ignore_ascii_case("ts_activity_bi_server"))
        );
    }
}

/// The activity of the fake cluster loaded, loaded again with more, and
/// copied into a fresh directory that resumes from what the database holds:
/// the database ends with every row once.
#[test]
fn activity_rows_are_added_to_what_the_database_holds() {
    use crate::fake::activity::{self, ActivitySet};
    use crate::fake::{Data, FakeThoughtSpot, Faults};
    let Some(mut db) = Db::new("activity") else {
        return;
    };
    let data = Data::generated(30, 6, 1);
    let users = activity::user_guids(&data);
    let server = FakeThoughtSpot::start_on(data, 0, Faults::default());
    let now = jiff::Timestamp::now().as_second();
    let t0 = now - 5 * 86_400;
    let all = ActivitySet::generated(&users, 900, t0, 4 * 86_400, 21, "TS: AI and BI Stats");
    let bi = all.bi_server.clone().unwrap();
    let cut = t0 + 2 * 86_400;
    let t = bi.time_column;
    let mut first = bi.clone();
    first
        .rows
        .retain(|r| r[t].as_i64().is_some_and(|s| s < cut));
    server.state.set_activity(ActivitySet {
        bi_server: Some(first.clone()),
        ai_bi_stats: None,
    });
    let scratch = crate::fetch::Scratch::new();
    let config = config(scratch.path(), &db.schema, "lower");
    let cli = |args: &[&str]| {
        scratch
            .with_password(&server)
            .args(args)
            .arg("--config")
            .arg(&config)
            .assert()
    };
    cli(&["generate", "--profile", "env", "--out", "out"]).success();
    cli(&["activity", "--out", "out", "--source", "bi-server"]).success();
    let out = scratch.file("out");
    db.load(scratch.path(), &out).success();
    let table = layout(&out)
        .into_iter()
        .find(|t| t.table == "ts_activity_bi_server")
        .expect("activity table in the layout");
    let file = std::fs::read(out.join("data/activity_bi_server.csv")).unwrap();
    assert_eq!(db.rows(&table), records(&file, true));
    assert_eq!(db.rows(&table).len(), first.rows.len());

    // Another cluster's newer row in the same table does not count.
    db.client
        .batch_execute(&format!(
            "INSERT INTO {} (cluster_id, incident_id, timestamp) VALUES \
             ('another-cluster', 'x', now()::timestamp)",
            db.qualified("ts_activity_bi_server")
        ))
        .unwrap();
    // A fresh directory (a CI job's checkout) resumes from the database.
    server.state.set_activity(ActivitySet {
        bi_server: Some(bi.clone()),
        ai_bi_stats: None,
    });
    cli(&["generate", "--profile", "env", "--out", "fresh"]).success();
    let before = server.state.searchdata_requests();
    cli(&[
        "activity",
        "--out",
        "fresh",
        "--source",
        "bi-server",
        "--to",
        &db.url,
        "--schema",
        &db.schema,
    ])
    .success()
    .stderr(predicates::str::contains(
        "ts_activity_bi_server holds TS: BI Server rows up to",
    ));
    assert!(server.state.searchdata_requests() > before);
    let fresh = scratch.file("fresh");
    let held = records(
        &std::fs::read(fresh.join("data/activity_bi_server.csv")).unwrap(),
        true,
    );
    assert!(
        held.len() < bi.rows.len(),
        "only the rows since the newest loaded"
    );
    assert!(
        held.len() > bi.rows.len() - first.rows.len(),
        "from this cluster's newest row, not another's"
    );
    db.load(scratch.path(), &fresh).success();
    // Loading the first directory again adds nothing.
    db.load(scratch.path(), &out).success();
    db.client
        .batch_execute(&format!(
            "DELETE FROM {} WHERE cluster_id = 'another-cluster'",
            db.qualified("ts_activity_bi_server")
        ))
        .unwrap();
    let rows = db.rows(&table);
    assert_eq!(rows.len(), bi.rows.len(), "every row once");
    let mut union = records(&file, true);
    union.extend(held);
    union.sort();
    union.dedup();
    assert_eq!(rows, union);
}

#[test]
fn a_bad_row_names_its_record_and_leaves_the_old_data() {
    let Some((mut db, dir, _, out)) = loaded("badrow") else {
        return;
    };
    let before = contents(&mut db, &out);
    let memberships = out.join("data/group_memberships.csv");
    let text = std::fs::read_to_string(&memberships).unwrap();
    let broken = text.replacen(",true,0\n", ",true,zero\n", 1);
    assert_ne!(broken, text);
    std::fs::write(&memberships, broken).unwrap();
    let failed = db.load(dir.path(), &out).failure().code(2);
    let stderr = String::from_utf8_lossy(&failed.get_output().stderr).into_owned();
    assert!(
        stderr.contains("group_memberships.csv, line 4, column depth: "),
        "{stderr}"
    );
    assert!(stderr.contains("zero"), "{stderr}");
    assert!(stderr.contains("old tables are unchanged"), "{stderr}");
    assert_eq!(contents(&mut db, &out), before);
    assert_eq!(db.tables().len(), 9, "no staging table is left");
}

/// Replaces `data/group_memberships.csv` with `rows` valid rows, and its
/// entry in the manifest (as generate would have written it).
fn inflate_memberships(out: &Path, rows: usize) {
    let path = out.join("data/group_memberships.csv");
    write_memberships(&path, rows);
    let bytes = std::fs::read(&path).unwrap();
    let manifest_path = out.join("manifest.json");
    let mut manifest: Value =
        serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    let entry = &mut manifest["files"]["data/group_memberships.csv"];
    entry["rows"] = Value::from(rows);
    entry["bytes"] = Value::from(bytes.len());
    entry["sha256"] = Value::from(sha256(&bytes));
    std::fs::write(
        &manifest_path,
        serde_json::to_vec_pretty(&manifest).unwrap(),
    )
    .unwrap();
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

fn write_memberships(path: &Path, rows: usize) {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    writeln!(
        file,
        "cluster_id,org_id,user_guid,group_guid,is_direct,depth"
    )
    .unwrap();
    for i in 0..rows {
        writeln!(
            file,
            "acme-prod,0,user-{:08},group-{},{},{}",
            i / 10,
            i % 10,
            i % 3 == 0,
            i % 3
        )
        .unwrap();
    }
    file.flush().unwrap();
}

#[test]
fn a_million_membership_rows_load() {
    let Some(mut db) = Db::new("million") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &db.schema, "lower");
    let out = generate(dir.path(), &example(), &config, &[]);
    inflate_memberships(&out, 1_000_000);
    let loaded = db.load(dir.path(), &out).success();
    let summary = String::from_utf8_lossy(&loaded.get_output().stdout).into_owned();
    assert!(summary.contains("1000000"), "{summary}");
    assert_eq!(db.count("ts_group_memberships"), 1_000_000);
    let row = db
        .client
        .query_one(
            &format!(
                "SELECT count(DISTINCT user_guid), sum(depth)::bigint, count(*) FILTER (WHERE is_direct) \
                 FROM {}",
                db.qualified("ts_group_memberships")
            ),
            &[],
        )
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 100_000);
    assert_eq!(row.get::<_, i64>(1), 999_999);
    assert_eq!(row.get::<_, i64>(2), 333_334);
}

/// Waits until a load of ours is inside COPY; returns its backend pid.
fn copying(db: &mut Db, timeout: Duration) -> i32 {
    let started = Instant::now();
    loop {
        let row = db
            .client
            .query_opt(
                "SELECT pid FROM pg_stat_activity WHERE application_name = 'ts-principals' \
                 AND state = 'active' AND query LIKE 'COPY \"' || $1 || '\".%group_memberships%' \
                 LIMIT 1",
                &[&db.schema],
            )
            .unwrap();
        if let Some(row) = row {
            return row.get(0);
        }
        assert!(
            started.elapsed() < timeout,
            "no load reached COPY within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn spawn_load(db: &Db, dir: &Path, out: &Path) -> std::process::Child {
    std::process::Command::new(assert_cmd::cargo::cargo_bin("ts-principals"))
        .current_dir(dir)
        .args(["--no-progress", "load", "--from"])
        .arg(out)
        .args(["--to", &db.url, "--schema", &db.schema])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn load")
}

#[test]
fn a_connection_killed_during_copy_leaves_the_old_data() {
    let Some((mut db, dir, _, out)) = loaded("killconn") else {
        return;
    };
    let before = contents(&mut db, &out);
    inflate_memberships(&out, 1_000_000);
    let child = spawn_load(&db, dir.path(), &out);
    let pid = copying(&mut db, Duration::from_secs(60));
    db.client
        .execute("SELECT pg_terminate_backend($1)", &[&pid])
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("old tables are unchanged"), "{stderr}");
    assert_eq!(contents(&mut db, &out), before);
}

#[cfg(unix)]
#[test]
fn a_load_killed_during_copy_leaves_the_old_data_and_the_next_one_works() {
    let Some((mut db, dir, _, out)) = loaded("killrun") else {
        return;
    };
    let before = contents(&mut db, &out);
    inflate_memberships(&out, 1_000_000);
    let mut child = spawn_load(&db, dir.path(), &out);
    copying(&mut db, Duration::from_secs(60));
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(contents(&mut db, &out), before);
    db.load(dir.path(), &out).success();
    assert_eq!(db.count("ts_group_memberships"), 1_000_000);
    assert_eq!(db.tables().len(), 9);
}

#[test]
fn concurrent_loads_take_turns() {
    let Some(mut db) = Db::new("turns") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &db.schema, "lower");
    let out = generate(dir.path(), &example(), &config, &[]);
    // Two copies of the output, so the directory locks do not serialise them.
    let copy = dir.path().join("copy");
    std::fs::create_dir_all(copy.join("data")).unwrap();
    for (path, bytes) in crate::common::tree(&out) {
        let target = copy.join(&path);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::write(target, bytes).unwrap();
    }
    let runs: Vec<_> = [&out, &copy]
        .iter()
        .map(|o| spawn_load(&db, dir.path(), o))
        .collect();
    for run in runs {
        let output = run.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    assert_loaded(&mut db, &out);
}

#[test]
fn a_table_that_is_not_ours_is_left_alone() {
    let Some(mut db) = Db::new("notours") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &db.schema, "lower");
    let out = generate(dir.path(), &example(), &config, &[]);
    let theirs = db.qualified("ts_groups");
    db.client
        .batch_execute(&format!(
            "CREATE SCHEMA \"{}\"; CREATE TABLE {theirs} (x int); INSERT INTO {theirs} VALUES (42)",
            db.schema
        ))
        .unwrap();
    let failed = db.load(dir.path(), &out).failure().code(4);
    let stderr = String::from_utf8_lossy(&failed.get_output().stderr).into_owned();
    assert!(
        stderr.contains("was not created by ts-principals"),
        "{stderr}"
    );
    assert!(stderr.contains("ts_groups"), "{stderr}");
    assert_eq!(db.tables(), ["ts_groups"]);
    assert_eq!(db.count("ts_groups"), 1);
}

#[test]
fn views_and_grants_on_our_tables_survive_a_reload() {
    let Some((mut db, dir, config, _)) = loaded("keep") else {
        return;
    };
    let role = format!("ts_reader_{}", std::process::id());
    let (users, groups) = (db.qualified("ts_users"), db.qualified("ts_groups"));
    let view = db.qualified("active_users");
    db.client
        .batch_execute(&format!(
            "DROP ROLE IF EXISTS {role}; CREATE ROLE {role}; \
             GRANT USAGE ON SCHEMA \"{}\" TO {role}; GRANT SELECT ON {groups} TO {role}; \
             GRANT SELECT ON {users} TO {role}; \
             CREATE VIEW {view} AS SELECT user_guid FROM {users} WHERE account_status = 'ACTIVE'",
            db.schema
        ))
        .unwrap();
    let other = crate::common::fixture("v2_combined.json");
    let out = generate(dir.path(), &other, &config, &["--cluster-id", "acme-prod"]);
    db.load(dir.path(), &out).success();
    assert_loaded(&mut db, &out);
    let query = format!(
        "SELECT (SELECT count(*) FROM {view}), (SELECT count(*) FROM {users} WHERE account_status = 'ACTIVE'), \
         has_table_privilege('{role}', '{groups}', 'SELECT'), has_table_privilege('{role}', '{users}', 'SELECT')"
    );
    let row = db.client.query_one(&query, &[]).unwrap();
    let (in_view, active): (i64, i64) = (row.get(0), row.get(1));
    assert_eq!(in_view, active);
    assert!(
        row.get::<_, bool>(2),
        "the grant on a swapped table is kept"
    );
    assert!(
        row.get::<_, bool>(3),
        "the grant on a refilled table is kept"
    );
    db.client
        .batch_execute(&format!(
            "DROP VIEW {view}; REVOKE ALL ON ALL TABLES IN SCHEMA \"{}\" FROM {role}; \
             REVOKE ALL ON SCHEMA \"{}\" FROM {role}; DROP ROLE {role}",
            db.schema, db.schema
        ))
        .unwrap();
}

#[test]
fn hostile_strings_round_trip_exactly() {
    let Some(mut db) = Db::new("hostile") else {
        return;
    };
    let hostile = [
        "quote \" and 'single', comma",
        "tab\there",
        "new\nline",
        "crlf\r\nline",
        "back\\slash",
        "\\N",
        "\\.",
        "before\n\\.\nafter",
        "\\.\n",
        "emoji 🚀👩‍💻",
        "RTL مرحبا بالعالم",
        "nul\u{0}inside",
        "",
        " padded ",
        "=1+1",
    ];
    let mut principals: Value = serde_json::from_slice(&std::fs::read(example()).unwrap()).unwrap();
    let users = principals["users"].as_array_mut().unwrap();
    let mut expected = BTreeMap::new();
    for (user, text) in users.iter_mut().zip(hostile) {
        user["display_name"] = Value::from(text);
        expected.insert(
            user["id"].as_str().unwrap().to_owned(),
            text.replace('\0', ""),
        );
    }
    principals["source"]["cluster_id"] = Value::from("\\.");
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("hostile.json");
    std::fs::write(&input, serde_json::to_vec(&principals).unwrap()).unwrap();
    let config = config(dir.path(), &db.schema, "lower");
    let out = generate(dir.path(), &input, &config, &[]);
    db.load(dir.path(), &out).success();
    let query = format!(
        "SELECT user_guid, coalesce(display_name, ''), cluster_id FROM {}",
        db.qualified("ts_users")
    );
    let rows = db.client.query(&query, &[]).unwrap();
    let mut found = BTreeMap::new();
    for row in &rows {
        assert_eq!(row.get::<_, String>(2), "\\.");
        let guid: String = row.get(0);
        if expected.contains_key(&guid) {
            found.insert(guid, row.get::<_, String>(1));
        }
    }
    assert_eq!(found, expected);
    assert_loaded(&mut db, &out);
}

/// The test URL with its password taken out and `sslmode` replaced.
fn without_password(url: &str, sslmode: &str) -> (String, String) {
    let mut parsed = url::Url::parse(url).expect("test URL");
    let password = parsed.password().unwrap_or_default().to_owned();
    parsed.set_password(None).unwrap();
    parsed.set_query(Some(&format!("sslmode={sslmode}")));
    (parsed.to_string(), password)
}

#[test]
fn passwords_come_from_the_environment_and_tls_is_verified() {
    let Some((db, dir, _, out)) = loaded("tls") else {
        return;
    };
    let load = |url: &str, password: Option<&str>| {
        let mut cmd = ts_principals(dir.path());
        cmd.args(["load", "--from"])
            .arg(&out)
            .args(["--to", url, "--schema", &db.schema])
            .env_remove("PGPASSWORD")
            .env("PGPASSFILE", dir.path().join("no-pgpass"));
        if let Some(password) = password {
            cmd.env("PGPASSWORD", password);
        }
        cmd.assert()
    };
    let (plain, password) = without_password(&db.url, "disable");
    load(&plain, Some(&password)).success();
    let failed = load(&plain, Some("wrong-password")).failure().code(3);
    let stderr = String::from_utf8_lossy(&failed.get_output().stderr).into_owned();
    assert!(stderr.contains("password"), "{stderr}");
    assert!(!stderr.contains("wrong-password"), "{stderr}");
    assert!(!stderr.contains(&password), "{stderr}");
    let Ok(ca) = std::env::var("TS_PRINCIPALS_TEST_PG_CA") else {
        eprintln!("*** TLS part skipped: TS_PRINCIPALS_TEST_PG_CA is not set");
        return;
    };
    let (require, _) = without_password(&db.url, "require");
    load(&require, Some(&password)).success();
    let (verified, _) = without_password(&db.url, "verify-full");
    let with_ca = format!("{verified}&sslrootcert={ca}");
    load(&with_ca, Some(&password)).success();
    // The test CA is not among the system's roots.
    let failed = load(&verified, Some(&password)).failure().code(3);
    let stderr = String::from_utf8_lossy(&failed.get_output().stderr).into_owned();
    assert!(stderr.contains("sslrootcert"), "{stderr}");
}

#[test]
fn row_security_column_grants_and_foreign_keys_survive_a_reload() {
    let Some((mut db, dir, _, out)) = loaded("security") else {
        return;
    };
    let role = format!("ts_rls_{}", std::process::id());
    let (orgs, privileges, users) = (
        db.qualified("ts_orgs"),
        db.qualified("ts_group_privileges"),
        db.qualified("ts_users"),
    );
    let theirs = db.qualified("their_audit");
    db.client
        .batch_execute(&format!(
            "DROP ROLE IF EXISTS {role}; CREATE ROLE {role}; \
             GRANT USAGE ON SCHEMA \"{schema}\" TO {role}; \
             GRANT SELECT ON {privileges} TO {role}; GRANT SELECT (org_name) ON {orgs} TO {role}; \
             ALTER TABLE {privileges} ENABLE ROW LEVEL SECURITY; \
             CREATE POLICY org0 ON {privileges} FOR SELECT TO {role} USING (org_id = 0); \
             CREATE TABLE {theirs} (cluster_id text, user_guid text, \
               FOREIGN KEY (cluster_id, user_guid) REFERENCES {users}); \
             INSERT INTO {theirs} SELECT cluster_id, user_guid FROM {users} LIMIT 3",
            schema = db.schema
        ))
        .unwrap();
    db.load(dir.path(), &out).success();
    assert_loaded(&mut db, &out);
    let row = db
        .client
        .query_one(
            &format!(
                "SELECT c.relrowsecurity, has_column_privilege('{role}', '{orgs}', 'org_name', 'SELECT'), \
                 (SELECT count(*) FROM {theirs}) FROM pg_class c WHERE c.oid = '{privileges}'::regclass"
            ),
            &[],
        )
        .unwrap();
    assert!(row.get::<_, bool>(0), "row-level security is kept");
    assert!(row.get::<_, bool>(1), "the column grant is kept");
    assert_eq!(row.get::<_, i64>(2), 3, "their rows are kept");
    db.client
        .batch_execute(&format!(
            "DROP TABLE {theirs}; DROP POLICY org0 ON {privileges}; \
             REVOKE ALL ON ALL TABLES IN SCHEMA \"{schema}\" FROM {role}; \
             REVOKE SELECT (org_name) ON {orgs} FROM {role}; \
             REVOKE ALL ON SCHEMA \"{schema}\" FROM {role}; DROP ROLE {role}",
            schema = db.schema
        ))
        .unwrap();
}

#[test]
fn clusters_sharing_a_schema_keep_each_others_rows() {
    let Some(mut db) = Db::new("clusters") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &db.schema, "lower");
    let first = generate(dir.path(), &example(), &config, &[]);
    db.load(dir.path(), &first).success();
    let users = |db: &mut Db| -> Vec<(String, i64)> {
        let query = format!(
            "SELECT cluster_id, count(*) FROM {} GROUP BY 1 ORDER BY 1",
            db.qualified("ts_users")
        );
        (db.client.query(&query, &[]).unwrap().iter())
            .map(|r| (r.get(0), r.get(1)))
            .collect()
    };
    let before = users(&mut db);
    let second_dir = tempfile::tempdir().unwrap();
    let second = generate(
        second_dir.path(),
        &crate::common::fixture("v2_combined.json"),
        &config,
        &["--cluster-id", "second-cluster"],
    );
    db.load(second_dir.path(), &second).success();
    let both = users(&mut db);
    assert_eq!(both.len(), 2, "{both:?}");
    assert!(both.contains(&before[0]), "{both:?}");
    // Loading the first again replaces only its own rows.
    db.load(dir.path(), &first).success();
    assert_eq!(users(&mut db), both);
    let history = db.count("ts_group_memberships_history");
    assert!(history > 0);
}
