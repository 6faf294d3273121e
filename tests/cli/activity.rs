//! `activity` against the fake ThoughtSpot: every row of the worksheets it
//! serves, row for row, across incremental runs, windows split under small
//! row caps, a Software cluster's time zone, older worksheet names, and the
//! errors a user meets.

use std::path::Path;

use predicates::prelude::*;
use predicates::str::contains;
use serde_json::Value;

use crate::common::tree;
use crate::fake::activity::{self, ActivitySet, Worksheet};
use crate::fake::{self, Data, FakeThoughtSpot, Faults};
use crate::fetch::Scratch;

const HOUR: i64 = 3600;
const DAY: i64 = 24 * HOUR;

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// A fake with 40 users, 8 groups and 2 orgs, and `faults`.
fn cluster(faults: Faults) -> (FakeThoughtSpot, Vec<String>) {
    let data = Data::generated(40, 8, 2);
    let users = activity::user_guids(&data);
    (FakeThoughtSpot::start_on(data, 0, faults), users)
}

/// `generate --out out` from the live fake.
fn generated(scratch: &Scratch, server: &FakeThoughtSpot) {
    scratch
        .with_password(server)
        .args(["generate", "--profile", "env", "--out", "out"])
        .assert()
        .success();
}

fn run(scratch: &Scratch, server: &FakeThoughtSpot, extra: &[&str]) -> assert_cmd::assert::Assert {
    scratch
        .with_password(server)
        .args(["activity", "--out", "out"])
        .args(extra)
        .assert()
}

/// `YYYY-MM-DD HH:MM:SS` (UTC).
fn utc(second: i64) -> String {
    jiff::Timestamp::from_second(second)
        .unwrap()
        .strftime("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// The rows `worksheet` serves, as the data file must hold them, worked
/// out here from the fake's own rows: cluster id, then each cell.
fn expected(worksheet: &Worksheet) -> Vec<Vec<String>> {
    let mut rows: Vec<Vec<String>> = worksheet
        .rows
        .iter()
        .map(|cells| {
            std::iter::once(fake::CLUSTER_ID.to_owned())
                .chain(
                    cells
                        .iter()
                        .zip(&worksheet.columns)
                        .map(|(cell, column)| match cell {
                            Value::Null => String::new(),
                            Value::String(s) => s.clone(),
                            Value::Bool(b) => b.to_string(),
                            Value::Number(n) if column.data_type == "DATE_TIME" => {
                                utc(n.as_i64().unwrap())
                            }
                            Value::Number(n) => match n.as_i64() {
                                Some(i) if column.data_type != "DOUBLE" => i.to_string(),
                                _ => n.as_f64().unwrap().to_string(),
                            },
                            other => panic!("unexpected cell {other}"),
                        }),
                )
                .collect()
        })
        .collect();
    rows.sort();
    rows
}

/// The data file's rows, sorted, after checking its header and that it
/// is in time order.
fn held(out: &Path, file: &str, worksheet: &Worksheet) -> Vec<Vec<String>> {
    let mut reader = csv::Reader::from_path(out.join("data").join(file)).expect("data file");
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(header[0], "cluster_id");
    assert_eq!(header.len(), worksheet.columns.len() + 1, "{header:?}");
    let time = worksheet.time_column + 1;
    let mut rows: Vec<Vec<String>> = reader
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect();
    let times: Vec<&String> = rows.iter().map(|r| &r[time]).collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "{file} is in time order"
    );
    rows.sort();
    rows
}

fn manifest(out: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap()
}

/// `actual == expected`, saying where they first differ.
#[track_caller]
fn same_rows(actual: &[Vec<String>], expected: &[Vec<String>]) {
    if let Some(i) = (0..actual.len().min(expected.len())).find(|&i| actual[i] != expected[i]) {
        panic!(
            "row {i} of {} differs:\n  held     {:?}\n  expected {:?}",
            actual.len(),
            actual[i],
            expected[i]
        );
    }
    assert_eq!(actual.len(), expected.len(), "rows held, rows expected");
}

/// Only the rows of `worksheet` whose time lies in `[start, end)`.
fn within(worksheet: &Worksheet, start: i64, end: i64) -> Worksheet {
    let mut part = worksheet.clone();
    let t = worksheet.time_column;
    part.rows
        .retain(|r| r[t].as_i64().is_some_and(|s| start <= s && s < end));
    part
}

#[test]
fn every_row_is_copied_under_a_small_row_cap_and_the_tml_joins_it() {
    let (server, users) = cluster(Faults {
        row_cap: Some(150),
        ..Faults::default()
    });
    let end = now() - HOUR;
    let set = ActivitySet::generated(
        &users,
        2_000,
        end - 3 * DAY,
        3 * DAY,
        7,
        "TS: AI and BI Stats",
    );
    server.state.set_activity(set.clone());
    let scratch = Scratch::new();
    generated(&scratch, &server);
    run(
        &scratch,
        &server,
        &["--page-size", "40", "--row-cap", "150"],
    )
    .success()
    .stderr(contains("TS: BI Server ("))
    .stderr(contains("split at the cap"))
    .stderr(contains("org 0 (Primary)"));
    let out = scratch.file("out");
    let bi = set.bi_server.as_ref().unwrap();
    let stats = set.ai_bi_stats.as_ref().unwrap();
    same_rows(&held(&out, "activity_bi_server.csv", bi), &expected(bi));
    same_rows(
        &held(&out, "activity_ai_bi_stats.csv", stats),
        &expected(stats),
    );
    // Every search named every column and stayed under the cap.
    let searches: Vec<fake::Seen> = (server.state.seen().into_iter())
        .filter(|s| s.path.ends_with("/searchdata"))
        .collect();
    assert!(searches.len() > 2_000 / 150, "{} searches", searches.len());
    assert!(
        searches
            .iter()
            .all(|s| s.body.contains("[Timestamp].detailed")
                || s.body.contains("[TS Query Start Time].detailed"))
    );

    let manifest = manifest(&out);
    assert_eq!(manifest["activity"]["bi_server"]["rows"], 2_000);
    assert_eq!(manifest["activity"]["ai_bi_stats"]["rows"], 500);
    assert_eq!(
        manifest["files"]["data/activity_bi_server.csv"]["rows"],
        2_000
    );
    assert_eq!(
        manifest["activity"]["bi_server"]["worksheet"],
        "TS: BI Server"
    );
    let tables: Vec<&str> = (manifest["database"]["tables"].as_array().unwrap().iter())
        .map(|t| t["table"].as_str().unwrap())
        .collect();
    assert!(tables.contains(&"TS_ACTIVITY_BI_SERVER"), "{tables:?}");
    let impressions = (manifest["database"]["tables"].as_array().unwrap().iter())
        .find(|t| t["table"] == "TS_ACTIVITY_BI_SERVER")
        .and_then(|t| {
            t["columns"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["csv"] == "impressions")
        })
        .unwrap()
        .clone();
    assert_eq!(impressions["type"], "double");

    let files = tree(&out);
    let table = String::from_utf8(files["tml/TS_ACTIVITY_BI_SERVER.table.tml"].clone()).unwrap();
    assert!(table.contains(
        "[TS_ACTIVITY_BI_SERVER::Cluster Id] = [TS_USERS::Cluster Id] AND \
         [TS_ACTIVITY_BI_SERVER::User Id] = [TS_USERS::User GUID]"
    ));
    let model = String::from_utf8(files["tml/TS_ Users and Groups.model.tml"].clone()).unwrap();
    assert!(model.contains("TS_ACTIVITY_AI_BI_STATS"), "{model}");
    if let Some(python) = crate::common::python_with_tml() {
        crate::common::validate_tml(python, &crate::common::tml_files(&out));
    }

    // generate and diff carry the copy as it is.
    generated(&scratch, &server);
    assert_eq!(tree(&out), files, "generate keeps the activity and its TML");
    scratch
        .with_password(&server)
        .args(["diff", "--profile", "env", "--check", "--out", "out"])
        .assert()
        .success();
}

#[test]
fn incremental_runs_never_lose_or_double_a_row() {
    let (server, users) = cluster(Faults::default());
    let t0 = now() - 10 * DAY;
    let all = ActivitySet::generated(&users, 3_000, t0, 9 * DAY, 11, "TS: AI and BI Stats");
    let bi = all.bi_server.clone().unwrap();
    let scratch = Scratch::new();
    generated(&scratch, &server);
    let out = scratch.file("out");

    // First the rows up to day 4.
    let cut = t0 + 4 * DAY;
    let first = ActivitySet {
        bi_server: Some(within(&bi, t0, cut)),
        ai_bi_stats: None,
    };
    server.state.set_activity(first);
    run(&scratch, &server, &["--source", "bi-server"]).success();
    same_rows(
        &held(&out, "activity_bi_server.csv", &bi),
        &expected(&within(&bi, t0, cut)),
    );
    let newest = within(&bi, t0, cut).rows.last().unwrap()[bi.time_column]
        .as_i64()
        .unwrap();
    assert_eq!(
        manifest(&out)["activity"]["bi_server"]["newest"],
        utc(newest)
    );

    // Then everything: rows that arrived late inside the overlap are read,
    // rows read again are not doubled.
    server.state.set_activity(all.clone());
    let before = server.state.searchdata_requests();
    run(&scratch, &server, &["--source", "bi-server"])
        .success()
        .stderr(contains("already held"));
    let resumed: Vec<String> = (server.state.seen().into_iter())
        .filter(|s| s.path.ends_with("/searchdata"))
        .skip(before)
        .map(|s| s.body)
        .collect();
    let overlap_start = jiff::Timestamp::from_second(newest - HOUR)
        .unwrap()
        .strftime("'%m/%d/%Y %H:%M:%S'")
        .to_string();
    assert!(
        resumed.iter().any(|b| b.contains(&overlap_start)),
        "resumed an hour before the newest row held: {resumed:?}"
    );
    let late_arrivals = within(&bi, newest - HOUR, newest + 1).rows.len();
    assert!(late_arrivals > 0);
    let expected_rows = {
        let mut rows = expected(&within(&bi, t0, cut));
        rows.extend(expected(&within(&bi, newest - HOUR, now() + DAY)));
        rows.sort();
        rows.dedup();
        rows
    };
    same_rows(&held(&out, "activity_bi_server.csv", &bi), &expected_rows);

    // A run with nothing new changes no file.
    let files = tree(&out);
    run(&scratch, &server, &["--source", "bi-server"])
        .success()
        .stderr(contains("0 changed"));
    assert_eq!(tree(&out), files);

    // --since reads again from there; the held rows before it are kept.
    run(
        &scratch,
        &server,
        &["--source", "bi-server", "--since", &utc(t0)],
    )
    .success();
    same_rows(&held(&out, "activity_bi_server.csv", &bi), &expected(&bi));
}

#[test]
fn a_second_at_the_cap_is_an_error_that_names_it_and_changes_nothing() {
    let (server, users) = cluster(Faults {
        row_cap: Some(5),
        ..Faults::default()
    });
    let second = now() - 2 * HOUR;
    let mut bi = activity::bi_server(&users, 12, second - 100, 200, 3);
    let t = bi.time_column;
    for row in &mut bi.rows {
        row[t] = second.into();
    }
    server.state.set_activity(ActivitySet {
        bi_server: Some(bi),
        ai_bi_stats: None,
    });
    let scratch = Scratch::new();
    generated(&scratch, &server);
    let before = tree(&scratch.file("out"));
    run(&scratch, &server, &["--since", "1d", "--row-cap", "5"])
        .code(3)
        .stderr(contains(format!(
            "TS: BI Server: the second {} to {} UTC holds at least 5 rows",
            utc(second),
            utc(second + 1)
        )))
        .stderr(contains("--row-cap"));
    assert_eq!(tree(&scratch.file("out")), before, "nothing written");
}

#[test]
fn a_software_clusters_times_are_read_in_its_zone_and_kept_in_utc() {
    let (server, users) = cluster(Faults {
        software: true,
        time_zone: Some("America/New_York".into()),
        ..Faults::default()
    });
    let end = now() - HOUR;
    let set = ActivitySet::generated(
        &users,
        400,
        end - 2 * DAY,
        2 * DAY,
        5,
        "TS: AI and BI Stats",
    );
    server.state.set_activity(set.clone());
    let scratch = Scratch::new();
    generated(&scratch, &server);
    run(&scratch, &server, &[])
        .success()
        .stderr(contains("times from America/New_York"));
    let out = scratch.file("out");
    let bi = set.bi_server.as_ref().unwrap();
    same_rows(&held(&out, "activity_bi_server.csv", bi), &expected(bi));
    let stats = set.ai_bi_stats.as_ref().unwrap();
    same_rows(
        &held(&out, "activity_ai_bi_stats.csv", stats),
        &expected(stats),
    );
    assert_eq!(
        manifest(&out)["activity"]["bi_server"]["time_zone"],
        "America/New_York"
    );
}

#[test]
fn the_stats_worksheet_is_found_under_an_older_name_and_missing_ones_are_named() {
    let (server, users) = cluster(Faults::default());
    let end = now() - HOUR;
    let set = ActivitySet::generated(
        &users,
        200,
        end - DAY,
        DAY,
        9,
        "TS: Embrace Stats Worksheet",
    );
    server.state.set_activity(ActivitySet {
        bi_server: None,
        ..set.clone()
    });
    let scratch = Scratch::new();
    generated(&scratch, &server);
    // Both asked for, one there: the other is named and skipped.
    run(&scratch, &server, &[])
        .success()
        .stderr(contains("has no TS: BI Server"))
        .stderr(contains("TS: Embrace Stats Worksheet ("));
    let out = scratch.file("out");
    let stats = set.ai_bi_stats.as_ref().unwrap();
    same_rows(
        &held(&out, "activity_ai_bi_stats.csv", stats),
        &expected(stats),
    );
    assert_eq!(
        manifest(&out)["activity"]["ai_bi_stats"]["worksheet"],
        "TS: Embrace Stats Worksheet"
    );
    assert!(!out.join("data/activity_bi_server.csv").exists());
    // Asked for alone, it is an error.
    run(&scratch, &server, &["--source", "bi-server"])
        .code(3)
        .stderr(contains("has no TS: BI Server"));
    // A cluster with neither.
    server.state.set_activity(ActivitySet::default());
    run(&scratch, &server, &[])
        .code(3)
        .stderr(contains("has no TS: BI Server"))
        .stderr(contains(
            "\"TS: AI and BI Stats\", \"TS: AI and BI Stats (Beta)\"",
        ));
}

#[test]
fn a_token_of_another_org_is_told_where_the_worksheets_live() {
    let (server, users) = cluster(Faults::default());
    let end = now() - HOUR;
    server.state.set_activity(ActivitySet::generated(
        &users,
        50,
        end - DAY,
        DAY,
        1,
        "TS: AI and BI Stats",
    ));
    let scratch = Scratch::new();
    generated(&scratch, &server);
    let org = Data::generated(40, 8, 2).orgs[1]["id"].as_i64().unwrap();
    let token = server.state.mint_token(org);
    scratch
        .cmd()
        .env("THOUGHTSPOT_URL", server.url())
        .env("THOUGHTSPOT_TOKEN", &token)
        .args(["activity", "--out", "out"])
        .assert()
        .code(3)
        .stderr(contains("the Primary org (0)"));
    let primary = server.state.mint_token(0);
    scratch
        .cmd()
        .env("THOUGHTSPOT_URL", server.url())
        .env("THOUGHTSPOT_TOKEN", &primary)
        .args(["activity", "--out", "out"])
        .assert()
        .success()
        .stderr(contains("the bearer token's org"));
}

#[test]
fn failures_name_the_window_the_worksheet_and_the_clusters_message() {
    let (server, users) = cluster(Faults {
        searchdata_error: Some("Search timed out in the query engine".into()),
        ..Faults::default()
    });
    let end = now() - HOUR;
    server.state.set_activity(ActivitySet::generated(
        &users,
        50,
        end - DAY,
        DAY,
        1,
        "TS: AI and BI Stats",
    ));
    let scratch = Scratch::new();
    let out = scratch.file("out");
    // Not generated yet: the directory must hold the principals first.
    run(&scratch, &server, &[])
        .code(2)
        .stderr(contains("run `ts-principals generate --out"));
    generated(&scratch, &server);
    let before = tree(&out);
    run(&scratch, &server, &["--retries", "0"])
        .code(3)
        .stderr(contains("reading TS: BI Server from http://127.0.0.1:"))
        .stderr(contains("UTC, records from 0"))
        .stderr(contains("Search timed out in the query engine"));
    assert_eq!(tree(&out), before, "nothing written");

    // Bad flags are usage errors.
    run(&scratch, &server, &["--since", "yesterday"])
        .code(2)
        .stderr(contains("--since: \"yesterday\" is neither a time"));
    run(
        &scratch,
        &server,
        &["--since", "2026-12-01", "--until", "2026-11-01"],
    )
    .code(2)
    .stderr(contains("--since must be before --until"));

    // A data file edited out of order is refused before the cluster is asked.
    server.state.set(|f| f.searchdata_error = None);
    run(&scratch, &server, &["--source", "bi-server"]).success();
    let path = out.join("data/activity_bi_server.csv");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() > 3);
    let last = lines.len() - 1;
    lines.swap(1, last);
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    run(&scratch, &server, &["--source", "bi-server"])
        .code(2)
        .stderr(contains(
            "activity_bi_server.csv was changed since ts-principals wrote it",
        ))
        .stderr(contains("restore it (git checkout), or move it away"));
    // generate refuses to carry it as its own, too.
    scratch
        .with_password(&server)
        .args(["generate", "--profile", "env", "--out", "out"])
        .assert()
        .code(2)
        .stderr(contains("activity_bi_server.csv was changed since"));
    // Moved away, the worksheet is copied afresh; the other copy is kept.
    std::fs::remove_file(&path).unwrap();
    run(&scratch, &server, &["--source", "ai-bi-stats"])
        .success()
        .stderr(contains("activity_bi_server.csv is gone"));
    assert!(!path.exists());
    run(&scratch, &server, &["--source", "bi-server"]).success();
    assert!(path.exists());
    // Ranges no cluster holds are refused before anything is asked.
    run(&scratch, &server, &["--since", "3000000d"])
        .code(2)
        .stderr(contains("--since 3000000d is out of range"));
    run(&scratch, &server, &["--since", "99999999999d"])
        .code(2)
        .stderr(contains("--since"));
    run(&scratch, &server, &["--since", "30d", "--window", "1s"])
        .code(2)
        .stderr(contains("widen --window"));
    // A data file the manifest does not record is not overwritten.
    let mut document = manifest(&out);
    document["activity"]
        .as_object_mut()
        .unwrap()
        .remove("bi_server");
    std::fs::write(
        out.join("manifest.json"),
        serde_json::to_vec_pretty(&document).unwrap(),
    )
    .unwrap();
    run(&scratch, &server, &["--source", "bi-server"])
        .code(2)
        .stderr(contains("records no activity copy of TS: BI Server, but"));
}

#[test]
fn a_row_read_again_with_a_later_status_replaces_the_one_held() {
    let (server, users) = cluster(Faults::default());
    let end = now() - HOUR;
    let set = ActivitySet::generated(&users, 800, end - DAY, DAY, 13, "TS: AI and BI Stats");
    let done = set.ai_bi_stats.clone().unwrap();
    let status = done
        .columns
        .iter()
        .position(|c| c.name == "Query Status")
        .unwrap();
    let mut running = done.clone();
    let n = running.rows.len();
    for row in &mut running.rows[n - 3..] {
        row[status] = "RUNNING".into();
    }
    server.state.set_activity(ActivitySet {
        bi_server: None,
        ai_bi_stats: Some(running),
    });
    let scratch = Scratch::new();
    generated(&scratch, &server);
    run(&scratch, &server, &["--source", "ai-bi-stats"]).success();
    server.state.set_activity(ActivitySet {
        bi_server: None,
        ai_bi_stats: Some(done.clone()),
    });
    run(&scratch, &server, &["--source", "ai-bi-stats"]).success();
    let out = scratch.file("out");
    same_rows(
        &held(&out, "activity_ai_bi_stats.csv", &done),
        &expected(&done),
    );
}

#[test]
fn a_repeated_hour_on_a_software_cluster_loses_and_doubles_nothing() {
    // New York's clocks go back on 2026-11-01: 01:00 to 02:00 comes twice.
    let (server, users) = cluster(Faults {
        software: true,
        time_zone: Some("America/New_York".into()),
        ..Faults::default()
    });
    let start = 1_793_491_200; // 2026-11-01 00:00:00 UTC
    let set = ActivitySet::generated(&users, 6_000, start, 12 * HOUR, 17, "TS: AI and BI Stats");
    server.state.set_activity(ActivitySet {
        bi_server: set.bi_server.clone(),
        ai_bi_stats: None,
    });
    let bi = set.bi_server.unwrap();
    let id = |row: &Vec<String>| row[1].clone();
    let mut expected_ids: Vec<String> = expected(&bi).iter().map(id).collect();
    expected_ids.sort();
    for window in ["30m", "1d", "7m"] {
        let scratch = Scratch::new();
        generated(&scratch, &server);
        run(
            &scratch,
            &server,
            &[
                "--since",
                &utc(start),
                "--until",
                &utc(start + 12 * HOUR),
                "--window",
                window,
            ],
        )
        .success();
        let file = scratch.file("out").join("data/activity_bi_server.csv");
        let mut reader = csv::Reader::from_path(file).unwrap();
        let mut ids: Vec<String> = reader.records().map(|r| r.unwrap()[1].to_owned()).collect();
        ids.sort();
        assert_eq!(
            ids.len(),
            expected_ids.len(),
            "--window {window}: every row once"
        );
        assert_eq!(ids, expected_ids, "--window {window}");
    }
}

#[test]
fn a_cap_the_cluster_does_not_report_is_warned_about() {
    let (server, users) = cluster(Faults {
        row_cap: Some(100),
        ..Faults::default()
    });
    let end = now() - HOUR;
    let set = ActivitySet::generated(
        &users,
        4_000,
        end - 10 * DAY,
        10 * DAY,
        3,
        "TS: AI and BI Stats",
    );
    server.state.set_activity(ActivitySet {
        bi_server: set.bi_server,
        ai_bi_stats: None,
    });
    let scratch = Scratch::new();
    generated(&scratch, &server);
    run(&scratch, &server, &["--since", "11d"])
        .success()
        .stderr(contains("windows returned exactly 100 rows each"))
        .stderr(contains("pass --row-cap 100"));
    // Told the cap, it splits and reads every row, counting every search.
    run(&scratch, &server, &["--since", "11d", "--row-cap", "100"])
        .success()
        .stderr(contains("4000 row(s)"))
        .stderr(contains("exactly").not());
    run(&scratch, &server, &["--overlap", "10000d"])
        .code(2)
        .stderr(contains("before 2000-01-01; lower --overlap"));
}

#[test]
fn activity_of_another_cluster_is_refused() {
    let (server, users) = cluster(Faults::default());
    let end = now() - HOUR;
    server.state.set_activity(ActivitySet::generated(
        &users,
        20,
        end - DAY,
        DAY,
        1,
        "TS: AI and BI Stats",
    ));
    let scratch = Scratch::new();
    scratch
        .with_password(&server)
        .args([
            "generate",
            "--profile",
            "env",
            "--out",
            "out",
            "--cluster-id",
            "elsewhere",
        ])
        .assert()
        .success();
    run(&scratch, &server, &[])
        .code(2)
        .stderr(contains("holds the principals of cluster \"elsewhere\""));
}
