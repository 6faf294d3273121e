//! `load --to falcon` against the fake ThoughtSpot as a Software cluster:
//! tables created through remote TQL as the manifest records them, every
//! CSV row received through tsload, reloads that replace, and each way it
//! fails (a Cloud cluster, a load handed to another node, an expired
//! session, rejected rows, a 500 mid-upload, a wrong password).

use std::path::Path;

use predicates::prelude::*;
use serde_json::Value;

use crate::common::{self, example, example_config, fixture};
use crate::fake::falcon::Stage;
use crate::fake::{self, FakeThoughtSpot, Faults};
use crate::fetch::{Scratch, fixtures};

const DATABASE: &str = "TS_PRINCIPALS";
const SCHEMA: &str = "falcon_default_schema";

/// A fake Software cluster with Falcon.
fn software() -> FakeThoughtSpot {
    FakeThoughtSpot::start_on(
        fixtures(),
        0,
        Faults {
            software: true,
            falcon: true,
            ..Faults::default()
        },
    )
}

/// `generate --from input --out out` in the scratch directory.
fn generate(scratch: &Scratch, input: &Path, extra: &[&str]) {
    common::generate(scratch.path(), input, "out", extra).success();
}

/// `load --from out --to falcon` signed in with the password of the
/// environment, the tsload service on the fake itself.
fn load(scratch: &Scratch, server: &FakeThoughtSpot) -> assert_cmd::Command {
    let mut cmd = scratch.with_password(server);
    cmd.args(["load", "--from", "out", "--to", "falcon", "--falcon-url"])
        .arg(server.url());
    cmd
}

/// The manifest's tables: (file, table, [(column, type, key)]).
fn layout(scratch: &Scratch) -> (Value, Vec<Value>) {
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(scratch.file("out/manifest.json")).unwrap()).unwrap();
    let tables = manifest["database"]["tables"].as_array().unwrap().clone();
    (manifest["database"].clone(), tables)
}

/// The data rows of a CSV file of the output.
fn csv_rows(scratch: &Scratch, file: &str) -> Vec<Vec<String>> {
    let path = scratch.file("out/data").join(file);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_path(&path)
        .unwrap();
    reader
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect()
}

/// The rows the fake holds in a table.
fn held(server: &FakeThoughtSpot, database: &str, schema: &str, table: &str) -> Vec<Vec<String>> {
    let store = server.state.falcon.lock().unwrap();
    store
        .table(database, schema, table)
        .unwrap_or_else(|| panic!("{database}.{schema}.{table} was not created"))
        .rows
        .clone()
}

/// Every table holds exactly the rows of its CSV file.
fn assert_holds_the_csv(scratch: &Scratch, server: &FakeThoughtSpot, database: &str, schema: &str) {
    for table in layout(scratch).1 {
        let name = table["table"].as_str().unwrap();
        let file = table["file"].as_str().unwrap();
        let rows = csv_rows(scratch, file);
        assert_eq!(
            held(server, database, schema, name),
            rows,
            "{name} does not hold the rows of {file}"
        );
    }
}

fn output(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn creates_the_tables_the_manifest_records_and_a_reload_replaces_their_rows() {
    let server = software();
    let scratch = Scratch::new();
    generate(&scratch, &example(), &[]);
    let (database, tables) = layout(&scratch);
    assert_eq!(database["database"], DATABASE);
    assert_eq!(database["schema"], SCHEMA);

    let out = load(&scratch, &server).output().unwrap();
    let text = output(&out);
    assert!(out.status.success(), "{text}");
    // The summary names every table with its rows.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("table"), "{stdout}");
    let users = csv_rows(&scratch, "users.csv").len();
    let line = (stdout.lines())
        .find(|l| l.starts_with(&format!("\"{DATABASE}\".\"{SCHEMA}\".\"TS_USERS\" ")))
        .unwrap_or_else(|| panic!("no TS_USERS line in {stdout}"));
    assert_eq!(
        line.split_whitespace().nth(1),
        Some(users.to_string().as_str()),
        "{line}"
    );
    assert_eq!(stdout.lines().count(), 1 + tables.len() + 1, "{stdout}");
    assert!(!text.contains(fake::PASSWORD), "the password was printed");

    // Names, types and keys exactly as the layout records them.
    {
        let store = server.state.falcon.lock().unwrap();
        assert!(
            store
                .statements
                .iter()
                .any(|s| s == "CREATE DATABASE \"TS_PRINCIPALS\";"),
            "{:?}",
            store.statements
        );
        for table in &tables {
            let name = table["table"].as_str().unwrap();
            let created = store.table(DATABASE, SCHEMA, name).unwrap();
            let columns: Vec<Value> = table["columns"].as_array().unwrap().clone();
            let expected: Vec<(String, String)> = columns
                .iter()
                .map(|c| {
                    let ty = match c["type"].as_str().unwrap() {
                        "text" => "VARCHAR(65535)",
                        "bigint" => "BIGINT",
                        "boolean" => "BOOL",
                        "timestamp" => "DATETIME",
                        "double" => "DOUBLE",
                        other => panic!("type {other}"),
                    };
                    (c["name"].as_str().unwrap().to_owned(), ty.to_owned())
                })
                .collect();
            let got: Vec<(String, String)> = (created.columns.iter())
                .map(|c| (c.name.clone(), c.ty.clone()))
                .collect();
            assert_eq!(got, expected, "{name}");
            let key: Vec<String> = (columns.iter())
                .filter(|c| c["key"] == true)
                .map(|c| c["name"].as_str().unwrap().to_owned())
                .collect();
            // Every principal table has a key; the history has none.
            assert_eq!(key.is_empty(), table["kind"] == "history", "{name}");
            assert_eq!(created.key, key, "{name}");
            assert_eq!(created.loads, 1, "{name}");
        }
    }
    assert_holds_the_csv(&scratch, &server, DATABASE, SCHEMA);

    // Again: the same rows, not twice as many; the tables are kept.
    load(&scratch, &server).assert().success();
    assert_holds_the_csv(&scratch, &server, DATABASE, SCHEMA);
    {
        let store = server.state.falcon.lock().unwrap();
        let users = store.table(DATABASE, SCHEMA, "TS_USERS").unwrap();
        assert_eq!(users.loads, 2);
    }

    // Other principals: every table holds the new rows only.
    generate(&scratch, &fixture("v2_combined.json"), &[]);
    assert_ne!(csv_rows(&scratch, "users.csv").len(), users);
    load(&scratch, &server).assert().success();
    assert_holds_the_csv(&scratch, &server, DATABASE, SCHEMA);
}

#[test]
fn a_profile_signs_in_and_the_load_follows_the_node_the_service_names() {
    let server = software();
    let node = server.start_node();
    server.state.set(|f| f.falcon_node = Some(node.addr.port()));
    let scratch = Scratch::new();
    scratch
        .cmd()
        .args(["config", "create", "--name", "prod", "--url"])
        .arg(server.url())
        .args([
            "--username",
            fake::USERNAME,
            "--password-env",
            "PROD_TS_PASSWORD",
        ])
        .assert()
        .success();
    generate(&scratch, &example(), &[]);
    let out = scratch
        .cmd()
        .env("PROD_TS_PASSWORD", fake::PASSWORD)
        .args([
            "load",
            "--from",
            "out",
            "--to",
            "falcon",
            "--profile",
            "prod",
            "--falcon-url",
        ])
        .arg(server.url())
        .output()
        .unwrap();
    let text = output(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(&format!("hands the load of TS_ORGS to node {}", node.url())),
        "{text}"
    );
    assert!(!text.contains(fake::PASSWORD));
    assert_holds_the_csv(&scratch, &server, DATABASE, SCHEMA);

    // Cycles start on the service's address; uploads, commits and status
    // reads go to the node, after signing in there.
    let posts = |s: &FakeThoughtSpot, suffix: &str| {
        s.state
            .seen()
            .iter()
            .filter(|r| {
                r.path.starts_with("/ts_dataservice/v1/public/loads/") && r.path.ends_with(suffix)
            })
            .count()
    };
    let tables = layout(&scratch).1.len();
    assert_eq!(posts(&node, "/commit"), tables);
    assert_eq!(posts(&server, "/commit"), 0);
    let seen = node.state.seen();
    assert!(
        seen.iter()
            .any(|r| r.path == "/ts_dataservice/v1/public/session" && r.status == 200)
    );
    assert!(
        !seen
            .iter()
            .any(|r| r.path == "/ts_dataservice/v1/public/loads"),
        "cycles start on the service's own address"
    );
    let uploads = |s: &FakeThoughtSpot| {
        s.state
            .seen()
            .iter()
            .filter(|r| {
                r.method == "POST"
                    && r.path.starts_with("/ts_dataservice/v1/public/loads/")
                    && r.path.matches('/').count() == 5
            })
            .count()
    };
    assert_eq!(uploads(&node), tables);
    assert_eq!(uploads(&server), 0);
}

#[test]
fn an_expired_tsload_session_is_renewed() {
    let server = software();
    server.state.set(|f| f.falcon_session_uses = Some(3));
    let scratch = Scratch::new();
    generate(&scratch, &example(), &[]);
    let out = load(&scratch, &server).output().unwrap();
    assert!(out.status.success(), "{}", output(&out));
    assert_holds_the_csv(&scratch, &server, DATABASE, SCHEMA);
    let seen = server.state.seen();
    let logins = (seen.iter())
        .filter(|r| r.path == "/ts_dataservice/v1/public/session")
        .count();
    let refused = (seen.iter())
        .filter(|r| r.path.starts_with("/ts_dataservice/v1/public/loads") && r.status == 401)
        .count();
    assert!(refused > 0, "the session never expired");
    assert_eq!(logins, refused + 1, "one new sign-in per expiry");
    // An upload refused for an expired session is sent again whole: every
    // cycle holds each row once.
    assert!(
        server
            .state
            .falcon
            .lock()
            .unwrap()
            .cycles
            .values()
            .all(|c| c.uploads == 1)
    );
}

#[test]
fn rows_falcon_rejects_fail_the_load_naming_the_tables_already_replaced() {
    let server = software();
    let scratch = Scratch::new();
    generate(&scratch, &fixture("v2_combined.json"), &[]);
    load(&scratch, &server).assert().success();
    let before_memberships = held(&server, DATABASE, SCHEMA, "TS_GROUP_MEMBERSHIPS");
    let before_hierarchy = held(&server, DATABASE, SCHEMA, "TS_GROUP_HIERARCHY");

    generate(&scratch, &example(), &[]);
    server
        .state
        .set(|f| f.falcon_reject = Some("TS_GROUP_MEMBERSHIPS".into()));
    let out = load(&scratch, &server).output().unwrap();
    let text = output(&out);
    assert_eq!(out.status.code(), Some(3), "{text}");
    for expected in [
        "Falcon did not load TS_GROUP_MEMBERSHIPS (load cycle cycle-",
        &format!("{}/ts_dataservice/v1/public/loads/cycle-", server.url()),
        "status LOAD_FAILED",
        "Ignored row count exceeds max_ignored_rows",
        "rows rejected",
        "rejected (fake fault)",
        "TS_GROUP_MEMBERSHIPS existed before this load",
        "Falcon has no transaction across tables",
        "replaced with the new data: TS_ORGS, TS_USERS, TS_ORG_MEMBERSHIPS, TS_GROUPS, TS_GROUP_PRIVILEGES;",
        "not replaced (previous data kept): TS_GROUP_MEMBERSHIPS, TS_GROUP_HIERARCHY",
        "Run the load again",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    for (table, file) in [("TS_USERS", "users.csv"), ("TS_GROUPS", "groups.csv")] {
        assert_eq!(
            held(&server, DATABASE, SCHEMA, table),
            csv_rows(&scratch, file)
        );
    }
    assert_eq!(
        held(&server, DATABASE, SCHEMA, "TS_GROUP_MEMBERSHIPS"),
        before_memberships
    );
    assert_eq!(
        held(&server, DATABASE, SCHEMA, "TS_GROUP_HIERARCHY"),
        before_hierarchy
    );
    assert_ne!(before_hierarchy, csv_rows(&scratch, "group_hierarchy.csv"));
    let store = server.state.falcon.lock().unwrap();
    let last = store.cycles_of("TS_GROUP_HIERARCHY");
    assert_eq!(last.last().unwrap().stage, Stage::Cancelled);
}

#[test]
fn a_500_mid_upload_cancels_every_cycle_and_replaces_nothing() {
    let server = software();
    let scratch = Scratch::new();
    generate(&scratch, &fixture("v2_combined.json"), &[]);
    load(&scratch, &server).assert().success();
    let before: Vec<Vec<Vec<String>>> = (layout(&scratch).1.iter())
        .map(|t| held(&server, DATABASE, SCHEMA, t["table"].as_str().unwrap()))
        .collect();

    generate(&scratch, &example(), &[]);
    server
        .state
        .set(|f| f.falcon_upload_error = Some("TS_GROUPS".into()));
    let out = load(&scratch, &server).output().unwrap();
    let text = output(&out);
    assert_eq!(out.status.code(), Some(3), "{text}");
    for expected in [
        "into TS_GROUPS (load cycle cycle-",
        &format!(
            "POST {}/ts_dataservice/v1/public/loads/cycle-",
            server.url()
        ),
        "answered HTTP 500",
        "the upload of TS_GROUPS broke off",
        "no table was replaced: all 8 keep their previous data",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    let after: Vec<Vec<Vec<String>>> = (layout(&scratch).1.iter())
        .map(|t| held(&server, DATABASE, SCHEMA, t["table"].as_str().unwrap()))
        .collect();
    assert_eq!(after, before, "a table changed");
    // Never resent, and every cycle of this run cancelled.
    let store = server.state.falcon.lock().unwrap();
    for table in ["TS_ORGS", "TS_USERS", "TS_ORG_MEMBERSHIPS", "TS_GROUPS"] {
        let cycles = store.cycles_of(table);
        assert_eq!(cycles.len(), 2, "{table}");
        assert_eq!(cycles[1].stage, Stage::Cancelled, "{table}");
    }
    assert!(store.cycles_of("TS_GROUP_PRIVILEGES").len() == 1);
    drop(store);
    let uploads_of_groups = (server.state.seen().iter())
        .filter(|r| r.status == 500)
        .count();
    assert_eq!(uploads_of_groups, 1, "the failed upload was resent");
}

#[test]
fn a_cloud_cluster_is_told_to_load_into_a_warehouse() {
    let scratch = Scratch::new();
    generate(&scratch, &example(), &[]);
    // Cloud as the fake is by default: GET system says SAAS.
    let cloud = FakeThoughtSpot::start(fixtures());
    let out = load(&scratch, &cloud).output().unwrap();
    let text = output(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    for expected in [
        &format!("{} has no Falcon", cloud.url()),
        "ThoughtSpot Cloud cluster (type SAAS, release 10.4.0.cl)",
        "only on ThoughtSpot Software",
        "--to postgres://",
        "--emit-sql DIALECT",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    // A cluster that does not say, but has no remote TQL: the 404 tells.
    let no_tql = FakeThoughtSpot::start_on(
        fixtures(),
        0,
        Faults {
            software: true,
            ..Faults::default()
        },
    );
    let out = load(&scratch, &no_tql).output().unwrap();
    let text = output(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("POST /ts_dataservice/v1/public/tql/query answered HTTP 404"),
        "{text}"
    );
    assert!(text.contains("only on ThoughtSpot Software"), "{text}");
    for server in [&cloud, &no_tql] {
        assert!(
            !(server.state.seen().iter()).any(|r| r.path.contains("/loads")),
            "a load was started"
        );
    }
}

#[test]
fn a_wrong_password_is_refused_and_never_shown() {
    const WRONG: &str = "Wrong-Falcon-Password-31";
    let server = software();
    let scratch = Scratch::new();
    generate(&scratch, &example(), &[]);
    let out = load(&scratch, &server)
        .env("THOUGHTSPOT_PASSWORD", WRONG)
        .output()
        .unwrap();
    let text = output(&out);
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert!(
        text.contains("signing in to the cluster for remote TQL"),
        "{text}"
    );
    assert!(
        text.contains("the password of user \"admin\" was refused"),
        "{text}"
    );
    assert!(!text.contains(WRONG), "{text}");
    assert!(server.state.falcon.lock().unwrap().databases.is_empty());
}

#[test]
fn tml_of_another_connection_is_refused_before_anything_is_sent() {
    let server = software();
    let scratch = Scratch::new();
    generate(
        &scratch,
        &example(),
        &["--config", example_config().to_str().unwrap()],
    );
    let out = load(&scratch, &server).output().unwrap();
    let text = output(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains(
            "names the connection \"Analytics Snowflake\", so ThoughtSpot looks for these tables"
        ),
        "{text}"
    );
    assert!(server.state.falcon.lock().unwrap().statements.is_empty());
}

#[test]
fn falcon_needs_a_password_and_no_schema_flag() {
    let server = software();
    let scratch = Scratch::new();
    generate(&scratch, &example(), &[]);
    load(&scratch, &server)
        .args(["--schema", "elsewhere"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "--schema chooses a PostgreSQL schema",
        ));
    let token = server.state.mint_token(0);
    scratch
        .cmd()
        .env("THOUGHTSPOT_URL", server.url())
        .env("THOUGHTSPOT_TOKEN", &token)
        .args(["load", "--from", "out", "--to", "falcon"])
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("sign in with a username and password")
                .and(predicate::str::contains(&token).not()),
        );
    assert!(server.state.seen().is_empty(), "nothing is sent");
}

#[test]
fn the_help_teaches_loading_into_falcon() {
    let scratch = Scratch::new();
    scratch
        .cmd()
        .args(["load", "--help"])
        .assert()
        .success()
        .stdout(
            predicate::str::contains("ts-principals load --from out --to falcon --profile prod")
                .and(predicate::str::contains("Falcon has no transaction"))
                .and(predicate::str::contains("--falcon-url <URL>"))
                .and(predicate::str::contains("--falcon-wait <SECS>")),
        );
}

#[cfg(unix)]
#[test]
fn an_interrupt_during_the_commits_cancels_the_rest_and_says_what_was_replaced() {
    let server = FakeThoughtSpot::start_on(
        fixtures(),
        0,
        Faults {
            software: true,
            falcon: true,
            falcon_commit_delay: std::time::Duration::from_millis(400),
            ..Faults::default()
        },
    );
    let scratch = Scratch::new();
    generate(&scratch, &example(), &[]);
    let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("ts-principals"))
        .current_dir(scratch.path())
        .env("THOUGHTSPOT_URL", server.url())
        .env("THOUGHTSPOT_USERNAME", fake::USERNAME)
        .env("THOUGHTSPOT_PASSWORD", fake::PASSWORD)
        .env("NO_COLOR", "1")
        .args(["load", "--from", "out", "--to", "falcon", "--falcon-url"])
        .arg(server.url())
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while !(server.state.falcon.lock().unwrap().cycles.values()).any(|c| c.applied) {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "no commit"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let pid = child.id().to_string();
    std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = output(&out);
    assert_eq!(out.status.code(), Some(130), "{text}");
    assert!(text.contains("interrupted"), "{text}");
    assert!(text.contains("not replaced (previous data kept)"), "{text}");
    let store = server.state.falcon.lock().unwrap();
    assert!(
        store.cycles.values().all(|c| c.stage != Stage::Open),
        "every cycle not committed is cancelled"
    );
    assert!(store.cycles.values().any(|c| c.stage == Stage::Cancelled));
}

#[test]
fn the_group_activity_is_loaded_from_its_csv_since_falcon_has_no_views() {
    let server = software();
    let scratch = Scratch::new();
    let out = scratch.file("out");
    generate(&scratch, &example(), &[]);
    common::seed_activity(&out, &common::activity_held());
    std::fs::write(
        out.join("data/activity_bi_server.csv"),
        "cluster_id,incident_id,timestamp,url,http_response_code,client_type,user_id,\
         user_action,query_text,latency_us,impressions,org_id\n\
         acme-prod,i-1,2026-12-01 13:00:00,/callosum,200,WEB,14a92311-a6d9-534d-a824-2a19aafb1850,answer_view,,120,0.5,0\n",
    )
    .unwrap();
    // Without the file: a warning names the flag that writes it.
    generate(&scratch, &example(), &[]);
    let loaded = load(&scratch, &server).output().unwrap();
    assert!(loaded.status.success(), "{}", output(&loaded));
    assert!(
        output(&loaded).contains("run generate again with --group-activity"),
        "{}",
        output(&loaded)
    );
    // With it: a table holding its rows, one per group of the user.
    generate(&scratch, &example(), &["--group-activity"]);
    let loaded = load(&scratch, &server).output().unwrap();
    assert!(loaded.status.success(), "{}", output(&loaded));
    let rows = csv_rows(&scratch, "group_activity_bi_server.csv");
    assert_eq!(rows.len(), 3, "the user is in three groups: {rows:?}");
    assert_eq!(
        held(&server, DATABASE, SCHEMA, "TS_GROUP_ACTIVITY_BI_SERVER"),
        rows
    );
}
