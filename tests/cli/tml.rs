//! The rendered TML, read by ThoughtSpot's own TML library and by PyYAML
//! (YAML 1.1, as ThoughtSpot reads it).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;

/// Generates the example with `config` (TOML text) into `dir/out`, which
/// holds a copy of the activity `held` describes.
fn generate_with(dir: &Path, config: &str, held: &serde_json::Value) -> PathBuf {
    seed_activity(&dir.join("out"), held);
    std::fs::write(dir.join("config.toml"), config).unwrap();
    ts_principals(dir)
        .args(["generate", "--config", "config.toml", "--from"])
        .arg(example())
        .args(["--out", "out"])
        .assert()
        .success();
    dir.join("out")
}

/// What PyYAML reads from each file.
fn pyyaml(python: &str, files: &[PathBuf]) -> Vec<serde_json::Value> {
    let output = Command::new(python)
        .arg(root().join("tests/tools/yaml_values.py"))
        .args(files)
        .output()
        .expect("run yaml_values.py");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON from yaml_values.py")
}

const VARIANTS: &[(&str, &str)] = &[
    ("falcon model", ""),
    (
        "connection model",
        "[tml]\nconnection = \"Snow\"\ndatabase = \"DB\"\nschema = \"S\"\n",
    ),
    ("worksheet", "[tml]\nformat = \"worksheet\"\n"),
    ("no activity", "[tml.activity]\nenabled = false\n"),
    (
        "worksheet without activity",
        "[tml]\nformat = \"worksheet\"\n[tml.activity]\nenabled = false\n",
    ),
    (
        "custom names",
        "[tml]\ntable_prefix = \"PRINCIPALS_\"\nmodel_name = \"Use cases\"\n",
    ),
];

#[test]
fn every_variant_passes_thoughtspot_validation() {
    let Some(python) = python_with_tml() else {
        return;
    };
    for (name, config) in VARIANTS {
        let dir = tempfile::tempdir().unwrap();
        let out = generate_with(dir.path(), config, &activity_held());
        let files = tml_files(&out);
        assert!(files.len() >= 9, "{name}: {files:?}");
        let with_activity = !config.contains("enabled = false");
        assert_eq!(files.len() == 13, with_activity, "{name}: {files:?}");
        validate_tml(python, &files);
    }
}

/// With the GUIDs of an import (root `guid:`, the model's `fqn:`) and
/// `obj_id`s, as a re-import sends them.
#[test]
fn tml_with_guids_and_obj_ids_passes_thoughtspot_validation() {
    let Some(python) = python_with_tml() else {
        return;
    };
    for config in [
        "[tml]\nobj_ids = true\n",
        "[tml]\nobj_ids = true\nformat = \"worksheet\"\n",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out = generate_with(dir.path(), config, &activity_held());
        let set = ts_principals::import::set::read(&out.join("tml")).unwrap();
        let objects: Vec<serde_json::Value> = (set.iter().enumerate())
            .map(|(n, d)| {
                serde_json::json!({"cluster": "acme-prod", "org_id": 0, "kind": d.kind.name(),
                    "name": d.name, "guid": format!("{n:08x}-2222-4000-8000-{n:012x}")})
            })
            .collect();
        let map =
            serde_json::json!({"schema_version": 1, "tool": "ts-principals", "objects": objects});
        std::fs::write(out.join("guids.json"), map.to_string()).unwrap();
        let out = generate_with(dir.path(), config, &activity_held());
        let files = tml_files(&out);
        for file in &files {
            let text = std::fs::read_to_string(file).unwrap();
            assert!(text.starts_with("guid: \""), "{}", file.display());
            assert!(
                text.contains("\nobj_id: \"TS_PRINCIPALS__"),
                "{}",
                file.display()
            );
        }
        validate_tml(python, &files);
    }
}

/// Settings that break naive YAML: YAML 1.1 booleans, nulls, numbers,
/// dates, structure characters, quotes, newlines, emoji, right-to-left text.
const HOSTILE: &str = r#"
[tml]
connection = "yes"
database = "2024-01-01"
schema = "~"
table_prefix = "NO_🚀_"
model_name = "on: off\n- a # not a comment\t\"quoted\" 'single' \\ مرحبا"
# Lower case keeps the configured column name `null` as written.
identifier_case = "lower"
"#;

/// Worksheet columns named like YAML 1.1 values, as a cluster may name them.
fn hostile_held() -> serde_json::Value {
    let mut held = activity_held();
    let columns = held["bi_server"]["columns"].as_array_mut().unwrap();
    columns.push(serde_json::json!({"name": "Off", "csv": "null", "type": "text"}));
    columns.push(
        serde_json::json!({"name": "on: yes # 2024-01-01", "csv": "c_1_000", "type": "bigint"}),
    );
    held
}

#[test]
fn hostile_settings_come_back_as_the_same_strings() {
    let dir = tempfile::tempdir().unwrap();
    let out = generate_with(dir.path(), HOSTILE, &hostile_held());
    let files = tml_files(&out);
    let Some(python) = python_with_tml() else {
        return;
    };
    validate_tml(python, &files);
    let documents = pyyaml(python, &files);
    let model_name = "on: off\n- a # not a comment\t\"quoted\" 'single' \\ مرحبا";
    let mut tables = Vec::new();
    for (file, doc) in files.iter().zip(&documents) {
        if let Some(table) = doc.get("table") {
            assert_eq!(table["db"], "2024-01-01", "{file:?}");
            assert_eq!(table["schema"], "~", "{file:?}");
            assert_eq!(table["connection"]["name"], "yes", "{file:?}");
            tables.push(table["name"].as_str().unwrap().to_owned());
            if table["name"] == "NO_🚀_ACTIVITY_BI_SERVER" {
                let columns = table["columns"].as_array().unwrap();
                let named = |name: &str, db: &str| {
                    columns
                        .iter()
                        .any(|c| c["name"] == name && c["db_column_name"] == db)
                };
                assert!(named("Off", "null"), "{columns:?}");
                assert!(named("on: yes # 2024-01-01", "c_1_000"), "{columns:?}");
            }
        } else {
            assert_eq!(doc["model"]["name"], model_name, "{file:?}");
        }
    }
    tables.sort();
    assert_eq!(
        tables,
        [
            "NO_🚀_ACTIVITY_AI_BI_STATS",
            "NO_🚀_ACTIVITY_BI_SERVER",
            "NO_🚀_GROUPS",
            "NO_🚀_GROUP_ACTIVITY_AI_BI_STATS",
            "NO_🚀_GROUP_ACTIVITY_BI_SERVER",
            "NO_🚀_GROUP_HIERARCHY",
            "NO_🚀_GROUP_MEMBERSHIPS",
            "NO_🚀_GROUP_MEMBERSHIPS_HISTORY",
            "NO_🚀_GROUP_PRIVILEGES",
            "NO_🚀_ORGS",
            "NO_🚀_ORG_MEMBERSHIPS",
            "NO_🚀_USERS",
        ]
    );
}

/// A deterministic generator of awkward strings.
struct Strings(u64);

impl Strings {
    fn next_u32(&mut self) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 16) as u32
    }

    fn string(&mut self) -> String {
        const PIECES: &[&str] = ts_principals::render::yaml::AWKWARD;
        let len = self.next_u32() % 8;
        let mut out = String::new();
        for _ in 0..len {
            if self.next_u32().is_multiple_of(3) {
                out.push_str(PIECES[self.next_u32() as usize % PIECES.len()]);
            } else {
                // Any scalar value, with the troublesome ranges weighted up.
                let c = match self.next_u32() % 6 {
                    0 => self.next_u32() % 0x20,
                    1 => 0x7F + self.next_u32() % 0x22,
                    2 => [0x2028, 0x2029, 0xFEFF, 0xFFFE, 0xFFFF, 0x200F, 0x0300]
                        [self.next_u32() as usize % 7],
                    3 => 0x20 + self.next_u32() % 0x5F,
                    _ => self.next_u32() % 0x11_0000,
                };
                out.push(char::from_u32(c).unwrap_or('\u{FFFD}'));
            }
        }
        out
    }
}

#[test]
fn the_yaml_filter_round_trips_through_pyyaml() {
    let Some(python) = python_with_tml() else {
        return;
    };
    let mut strings = Strings(0x5EED_CAFE_F00D_BEEF);
    let values: Vec<String> = (0..5000).map(|_| strings.string()).collect();
    let mut env = ts_principals::render::Templates::builtin().environment();
    env.add_template("list", "{% for s in values %}- {{ s|yaml }}\n{% endfor %}")
        .unwrap();
    let yaml = env
        .get_template("list")
        .unwrap()
        .render(minijinja::context! { values => values.clone() })
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("values.yaml");
    std::fs::write(&path, yaml).unwrap();
    let read = pyyaml(python, &[path]);
    let read: Vec<String> = serde_json::from_value(read[0].clone()).expect("a list of strings");
    assert_eq!(read.len(), values.len());
    for (expected, got) in values.iter().zip(&read) {
        assert_eq!(got, expected, "{expected:?}");
    }
}
