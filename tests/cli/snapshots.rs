//! Snapshots of every CSV and TML file, for the example and each input
//! kind, stored under the top-level `snapshots/`. Review changes with
//! `cargo insta review`; CI fails on any difference.

use std::path::PathBuf;

use ts_principals::config::{ProjectConfig, TmlFormat};
use ts_principals::generate::{Carried, GenerateOptions, OutputSet, generate};
use ts_principals::input::{self, LoadOptions};
use ts_principals::render::Templates;

use crate::common::*;

fn render(inputs: &[PathBuf], config: &ProjectConfig) -> OutputSet {
    render_with(inputs, config, Carried::default())
}

fn render_with(inputs: &[PathBuf], config: &ProjectConfig, carried: Carried) -> OutputSet {
    let options = LoadOptions {
        fallback_cluster_id: config.data.cluster_id.clone(),
        ..LoadOptions::default()
    };
    let loaded = input::load(inputs, &options).expect("input loads");
    let options = GenerateOptions::from_config(config, Templates::builtin()).expect("valid config");
    generate(
        &loaded.principals,
        &loaded.report,
        loaded.kind,
        &options,
        carried,
    )
    .expect("renders")
    .into_output()
}

/// Snapshots the files whose path starts with one of `prefixes`, and the
/// list of every file.
fn snapshot(case: &str, output: &OutputSet, prefixes: &[&str]) {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(root().join("snapshots"));
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    // The manifest records the tool's version; a release must not change
    // every manifest snapshot.
    settings.add_filter(
        r#""version": "\d+\.\d+\.\d+[^"]*""#,
        r#""version": "[version]""#,
    );
    settings.bind(|| {
        let listing: Vec<&str> = output.files.keys().map(String::as_str).collect();
        insta::assert_snapshot!(format!("{case}__files"), listing.join("\n"));
        for (path, bytes) in &output.files {
            if !prefixes.iter().any(|p| path.starts_with(p)) {
                continue;
            }
            let name: String = path
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '.' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            let text = String::from_utf8(bytes.clone()).expect("UTF-8 output");
            insta::assert_snapshot!(format!("{case}__{name}"), text);
        }
    });
}

fn example_config() -> ProjectConfig {
    ProjectConfig::load(&crate::common::example_config()).expect("example config")
}

#[test]
fn example_with_its_config() {
    let output = render(&[example()], &example_config());
    snapshot("example", &output, &["data/", "tml/", "manifest.json"]);
}

#[test]
fn v2_combined_export() {
    let output = render(&[fixture("v2_combined.json")], &ProjectConfig::default());
    snapshot("v2_combined", &output, &["data/", "manifest.json"]);
}

#[test]
fn v2_search_responses_in_separate_files() {
    let inputs = [
        "v2_users_search.json",
        "v2_groups_search.json",
        "v2_orgs_search.json",
    ]
    .map(fixture);
    let output = render(&inputs, &ProjectConfig::default());
    snapshot("v2_split", &output, &["data/", "manifest.json"]);
    // The same cluster as the combined export: the same data.
    let combined = render(&[fixture("v2_combined.json")], &ProjectConfig::default());
    for (path, bytes) in &output.files {
        if path.starts_with("data/") {
            assert_eq!(bytes, &combined.files[path], "{path}");
        }
    }
}

#[test]
fn v1_user_list() {
    let output = render(&[fixture("v1_user_list.json")], &ProjectConfig::default());
    snapshot("v1_user_list", &output, &["data/", "manifest.json"]);
}

#[test]
fn tml_for_falcon_tables_by_default() {
    let output = render(&[example()], &ProjectConfig::default());
    snapshot("tml_falcon", &output, &["tml/"]);
}

#[test]
fn tml_as_a_worksheet_for_older_clusters() {
    let mut config = example_config();
    config.tml.format = TmlFormat::Worksheet;
    let output = render(&[example()], &config);
    snapshot("tml_worksheet", &output, &["tml/"]);
}

/// An output directory holding a copy of both activity worksheets, as
/// `ts-principals activity` leaves it.
fn activity_copied(dir: &std::path::Path) -> Carried {
    seed_activity(dir, &activity_held());
    std::fs::write(
        dir.join("data/activity_bi_server.csv"),
        "cluster_id,incident_id,timestamp,url,http_response_code,client_type,user_id,\
         user_action,query_text,latency_us,impressions,org_id\n\
         acme-prod,i-1,2026-12-01 13:00:00,/callosum,200,WEB,u-1,answer_view,\"sales, by: region\",120,0.5,0\n\
         acme-prod,i-2,2026-12-01 13:00:05,/callosum,200,WEB,u-2,pinboard_view,,80,1,0\n",
    )
    .unwrap();
    Carried {
        dir: dir.to_path_buf(),
        held: ts_principals::activity::run::held_in(dir).expect("held activity"),
        history: None,
        prior_as_of: None,
    }
}

#[test]
fn tml_with_activity_tables() {
    let dir = tempfile::tempdir().unwrap();
    let output = render_with(&[example()], &example_config(), activity_copied(dir.path()));
    snapshot(
        "tml_activity",
        &output,
        &["tml/", "manifest.json", "data/activity_"],
    );
    let mut config = example_config();
    config.tml.format = TmlFormat::Worksheet;
    let output = render_with(&[example()], &config, activity_copied(dir.path()));
    snapshot("tml_activity_worksheet", &output, &["tml/TS_ Users"]);
}

#[test]
fn tml_without_activity_tables() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = example_config();
    config.tml.activity.enabled = false;
    let output = render_with(&[example()], &config, activity_copied(dir.path()));
    snapshot("tml_no_activity", &output, &["tml/", "data/activity_"]);
}
