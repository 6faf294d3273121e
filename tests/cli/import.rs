//! `import` against the fake ThoughtSpot, which imports TML as a cluster
//! does: generate → import → generate → import keeps one object per file,
//! updated in place; adoption of objects imported by hand; a deleted
//! object; all-or-none, partial and validate-only; orgs; a connection cut
//! mid-import; the dry run; and the README's walkthrough, as written.

use std::collections::BTreeMap;
use std::path::Path;

use predicates::prelude::*;
use predicates::str::contains;
use serde_json::Value;

use crate::fake::tml::Kind;
use crate::fake::{Data, FakeThoughtSpot, Faults};
use crate::fetch::Scratch;

/// The org id the fake gives its second org.
const TENANT: i64 = 1_000_001;

fn cluster() -> FakeThoughtSpot {
    FakeThoughtSpot::start_on(Data::generated(20, 6, 2), 0, Faults::default())
}

fn generated(scratch: &Scratch, server: &FakeThoughtSpot) {
    scratch
        .with_password(server)
        .args(["generate", "--profile", "env", "--out", "out"])
        .assert()
        .success();
}

fn import(
    scratch: &Scratch,
    server: &FakeThoughtSpot,
    extra: &[&str],
) -> assert_cmd::assert::Assert {
    scratch
        .with_password(server)
        .args(["import", "--tml", "out/tml"])
        .args(extra)
        .assert()
}

/// The TML files of `out`, by object name: (file name, text).
fn files(scratch: &Scratch) -> BTreeMap<String, String> {
    let dir = scratch.file("out/tml");
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        files.insert(
            path.file_name().unwrap().to_string_lossy().into_owned(),
            std::fs::read_to_string(&path).unwrap(),
        );
    }
    files
}

/// The fake's objects of `org`: name → (GUID, version).
fn objects(server: &FakeThoughtSpot, org: i64) -> BTreeMap<String, (String, u64)> {
    let mut found = BTreeMap::new();
    for o in server.state.objects().into_iter().filter(|o| o.org == org) {
        let previous = found.insert(o.name.clone(), (o.guid.clone(), o.version));
        assert!(
            previous.is_none(),
            "two objects named {:?} in org {org}",
            o.name
        );
    }
    found
}

/// guids.json's entries of `org`: name → GUID.
fn mapped(scratch: &Scratch, org: i64) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(scratch.file("out/guids.json")).unwrap_or_default();
    if text.is_empty() {
        return BTreeMap::new();
    }
    let map: Value = serde_json::from_str(&text).unwrap();
    (map["objects"].as_array().unwrap().iter())
        .filter(|e| e["org_id"] == org)
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_owned(),
                e["guid"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The body of the last TML import the fake saw.
fn last_import_body(server: &FakeThoughtSpot) -> Value {
    let seen = server.state.seen();
    let request = (seen.iter().rev())
        .find(|s| s.path == "/api/rest/2.0/metadata/tml/import")
        .expect("an import request");
    serde_json::from_str(&request.body).unwrap()
}

fn text(output: &[u8]) -> String {
    String::from_utf8_lossy(output).into_owned()
}

#[test]
fn generate_import_generate_import_updates_the_same_objects_in_place() {
    let server = cluster();
    let scratch = Scratch::new();
    generated(&scratch, &server);
    let count = files(&scratch).len();
    let first = import(&scratch, &server, &[]).success();
    let stdout = text(&first.get_output().stdout);
    assert_eq!(stdout.matches(" OK ").count(), count, "{stdout}");
    let created = objects(&server, 0);
    assert_eq!(created.len(), count, "{created:?}");
    let map = mapped(&scratch, 0);
    let guids: BTreeMap<String, String> = (created.iter())
        .map(|(name, (guid, _))| (name.clone(), guid.clone()))
        .collect();
    assert_eq!(map, guids, "guids.json records what the cluster assigned");
    // Tables went before the model, in one request, all or none.
    let body = last_import_body(&server);
    assert_eq!(body["import_policy"], "ALL_OR_NONE");
    assert_eq!(body["create_new"], false);
    let tmls = body["metadata_tmls"].as_array().unwrap();
    assert!(tmls.last().unwrap().as_str().unwrap().contains("model:"));
    assert!(
        tmls[..count - 1]
            .iter()
            .all(|t| t.as_str().unwrap().contains("table:"))
    );

    // generate writes the GUIDs into the TML; diff then finds nothing.
    generated(&scratch, &server);
    for d in ts_principals::import::set::read(&scratch.file("out/tml")).unwrap() {
        assert!(
            d.text.starts_with(&format!("guid: \"{}\"\n", map[&d.name])),
            "{} starts with its GUID:\n{}",
            d.file,
            &d.text[..200.min(d.text.len())]
        );
    }
    let model = (files(&scratch).into_iter())
        .find(|(f, _)| f.ends_with(".model.tml"))
        .unwrap()
        .1;
    assert!(
        model.contains(&format!("fqn: \"{}\"", map["TS_USERS"])),
        "{model}"
    );
    scratch
        .with_password(&server)
        .args(["diff", "--profile", "env", "--out", "out", "--check"])
        .assert()
        .success();

    let map_before = std::fs::read(scratch.file("out/guids.json")).unwrap();
    import(&scratch, &server, &[]).success();
    let updated = objects(&server, 0);
    assert_eq!(updated.len(), count, "still one object per file");
    for (name, (guid, version)) in &updated {
        assert_eq!(guid, &created[name].0, "{name} kept its GUID");
        assert_eq!(*version, created[name].1 + 1, "{name} was updated in place");
    }
    assert_eq!(
        std::fs::read(scratch.file("out/guids.json")).unwrap(),
        map_before
    );
}

#[test]
fn objects_imported_by_hand_are_adopted_and_two_candidates_stop_the_import() {
    let server = cluster();
    let scratch = Scratch::new();
    generated(&scratch, &server);
    // Someone imported the TML by hand: no GUIDs anywhere.
    let order: Vec<(String, String)> = ts_principals::import::set::read(&scratch.file("out/tml"))
        .unwrap()
        .into_iter()
        .map(|d| (d.file, d.text))
        .collect();
    for (file, tml) in &order {
        server
            .state
            .import_by_hand(0, tml)
            .unwrap_or_else(|e| panic!("{file}: {e}"));
    }
    let by_hand = objects(&server, 0);
    let count = by_hand.len();
    // Without adoption the cluster would refuse the tables: their database
    // tables are mapped already.
    let adopted = import(&scratch, &server, &[]).success();
    assert!(text(&adopted.get_output().stderr).contains("adopting"));
    let after = objects(&server, 0);
    assert_eq!(after.len(), count, "nothing created");
    for (name, (guid, version)) in &after {
        assert_eq!(guid, &by_hand[name].0);
        assert_eq!(*version, 2, "{name} updated");
    }
    assert_eq!(mapped(&scratch, 0).len(), count);

    // A second model of the same name: which one is ours?
    std::fs::remove_file(scratch.file("out/guids.json")).unwrap();
    let model = (order.iter())
        .find(|(f, _)| f.ends_with(".model.tml"))
        .unwrap();
    let second = server.state.import_by_hand(0, &model.1).unwrap();
    let first = &by_hand["TS: Users and Groups"].0;
    import(&scratch, &server, &[])
        .code(3)
        .stderr(contains(first.as_str()).and(contains(second.as_str())));
    assert!(!scratch.file("out/guids.json").exists());
}

#[test]
fn an_object_deleted_on_the_cluster_is_created_again_and_the_map_corrected() {
    let server = cluster();
    let scratch = Scratch::new();
    generated(&scratch, &server);
    import(&scratch, &server, &[]).success();
    let before = mapped(&scratch, 0);
    let model = &before["TS: Users and Groups"];
    assert!(server.state.delete_object(model));
    generated(&scratch, &server);
    import(&scratch, &server, &[])
        .success()
        .stderr(contains("is gone").and(contains(model.as_str())));
    let after = mapped(&scratch, 0);
    let now = objects(&server, 0);
    assert_eq!(now.len(), before.len());
    assert_ne!(&after["TS: Users and Groups"], model);
    assert_eq!(after["TS: Users and Groups"], now["TS: Users and Groups"].0);
    assert_eq!(after["TS_USERS"], before["TS_USERS"]);
}

/// A table someone else created over our TS_USERS database table, under
/// another name: creating ours is refused.
fn squat_users_table(scratch: &Scratch, server: &FakeThoughtSpot) -> String {
    let users = std::fs::read_to_string(scratch.file("out/tml/TS_USERS.table.tml")).unwrap();
    let theirs = users.replacen("name: \"TS_USERS\"", "name: \"Someone's users\"", 1);
    server.state.import_by_hand(0, &theirs).unwrap()
}

#[test]
fn all_or_none_imports_nothing_when_one_object_fails_and_partial_imports_the_rest() {
    let server = cluster();
    let scratch = Scratch::new();
    generated(&scratch, &server);
    squat_users_table(&scratch, &server);
    let refused = import(&scratch, &server, &[]).code(3);
    let stdout = text(&refused.get_output().stdout);
    let stderr = text(&refused.get_output().stderr);
    assert!(
        stderr.contains("TS_USERS.table.tml") && stderr.contains("already exists"),
        "{stderr}"
    );
    assert!(stdout.contains("ERROR"), "{stdout}");
    assert_eq!(objects(&server, 0).len(), 1, "only theirs");
    assert!(!scratch.file("out/guids.json").exists());

    let partial = import(&scratch, &server, &["--policy", "partial"]).code(3);
    let stdout = text(&partial.get_output().stdout);
    let ok = stdout.matches(" OK ").count();
    assert!(ok > 0 && stdout.contains("ERROR"), "{stdout}");
    let map = mapped(&scratch, 0);
    assert_eq!(
        map.len(),
        ok,
        "the map holds the objects imported:\n{stdout}"
    );
    let now = objects(&server, 0);
    for (name, guid) in &map {
        assert_eq!(&now[name].0, guid);
    }
    assert!(!map.contains_key("TS_USERS"));
}

#[test]
fn validate_only_changes_nothing() {
    let server = cluster();
    let scratch = Scratch::new();
    generated(&scratch, &server);
    let checked = import(&scratch, &server, &["--validate-only"]).success();
    assert!(text(&checked.get_output().stderr).contains("validated"));
    assert_eq!(last_import_body(&server)["import_policy"], "VALIDATE_ONLY");
    assert!(objects(&server, 0).is_empty());
    assert!(!scratch.file("out/guids.json").exists());
    squat_users_table(&scratch, &server);
    import(&scratch, &server, &["--validate-only"])
        .code(3)
        .stderr(contains("failed validation").and(contains("TS_USERS.table.tml")));
    assert_eq!(objects(&server, 0).len(), 1);
    assert!(!scratch.file("out/guids.json").exists());
}

#[test]
fn orgs_and_clusters_are_kept_apart() {
    let server = cluster();
    let scratch = Scratch::new();
    generated(&scratch, &server);
    let count = files(&scratch).len();
    import(&scratch, &server, &["--org", "Tenant 1"]).success();
    let tenant = objects(&server, TENANT);
    assert_eq!(tenant.len(), count);
    assert!(objects(&server, 0).is_empty());
    let text = std::fs::read_to_string(scratch.file("out/guids.json")).unwrap();
    assert!(text.contains("\"org\":\"Tenant 1\""), "{text}");
    import(&scratch, &server, &[]).success();
    let primary = objects(&server, 0);
    assert_eq!(primary.len(), count, "a second set, in Primary");
    assert_eq!(mapped(&scratch, TENANT).len(), count);
    assert_eq!(mapped(&scratch, 0).len(), count);
    // The files carry the Primary org's GUIDs; an import into the tenant
    // sends the tenant's own.
    generated(&scratch, &server);
    let users = std::fs::read_to_string(scratch.file("out/tml/TS_USERS.table.tml")).unwrap();
    assert!(users.starts_with(&format!("guid: \"{}\"", primary["TS_USERS"].0)));
    import(&scratch, &server, &["--org", &TENANT.to_string()]).success();
    let sent = last_import_body(&server).to_string();
    assert!(sent.contains(&tenant["TS_USERS"].0) && !sent.contains(&primary["TS_USERS"].0));
    for (name, (guid, version)) in objects(&server, TENANT) {
        assert_eq!(guid, tenant[&name].0);
        assert_eq!(version, 2);
    }
    import(&scratch, &server, &["--org", "Nowhere"])
        .code(2)
        .stderr(contains("no org \"Nowhere\"").and(contains("Tenant 1")));
}

#[test]
fn a_connection_cut_mid_import_is_reported_and_running_again_is_safe() {
    let server = cluster();
    let scratch = Scratch::new();
    generated(&scratch, &server);
    let count = files(&scratch).len();
    server.state.set(|f| f.import_drop_after_store = true);
    import(&scratch, &server, &[])
        .code(3)
        .stderr(contains("got no answer").and(contains("again is safe")));
    let imports = |server: &FakeThoughtSpot| {
        (server.state.seen().iter())
            .filter(|s| s.path.ends_with("/tml/import"))
            .count()
    };
    assert_eq!(imports(&server), 1, "never sent twice");
    assert!(!scratch.file("out/guids.json").exists());
    assert_eq!(objects(&server, 0).len(), count, "the cluster did import");
    server.state.set(|f| f.import_drop_after_store = false);
    import(&scratch, &server, &[]).success();
    assert_eq!(objects(&server, 0).len(), count, "adopted, not duplicated");
    assert_eq!(mapped(&scratch, 0).len(), count);
}

#[test]
fn a_gateway_timeout_is_an_unknown_outcome_not_a_refusal() {
    let server = cluster();
    let scratch = Scratch::new();
    generated(&scratch, &server);
    server.state.set(|f| f.import_gateway_timeout = true);
    import(&scratch, &server, &[])
        .code(3)
        .stderr(contains("may have imported").and(contains("again is safe")));
    server.state.set(|f| f.import_gateway_timeout = false);
    import(&scratch, &server, &[]).success();
    assert_eq!(objects(&server, 0).len(), files(&scratch).len());
}

#[test]
fn a_bearer_token_imports_into_its_own_org_and_the_map_says_so() {
    let server = cluster();
    let scratch = Scratch::new();
    generated(&scratch, &server);
    let token = server.state.mint_token(TENANT);
    let with_token = |extra: &[&str]| {
        scratch
            .cmd()
            .env("THOUGHTSPOT_URL", server.url())
            .env("THOUGHTSPOT_TOKEN", &token)
            .args(["import", "--tml", "out/tml"])
            .args(extra)
            .assert()
    };
    with_token(&["--org", "0"])
        .code(2)
        .stderr(contains(format!("the bearer token is of org {TENANT}")));
    assert!(server.state.objects().is_empty());
    with_token(&[]).success();
    assert_eq!(objects(&server, TENANT).len(), files(&scratch).len());
    assert!(mapped(&scratch, 0).is_empty());
    assert_eq!(mapped(&scratch, TENANT).len(), files(&scratch).len());
}

#[test]
fn input_problems_are_found_before_the_cluster_is_changed() {
    let server = cluster();
    let scratch = Scratch::new();
    generated(&scratch, &server);
    // A map that cannot be written.
    import(&scratch, &server, &["--guids", "missing/dir/guids.json"])
        .code(4)
        .stderr(contains("missing/dir/guids.json"));
    std::fs::create_dir(scratch.file("out/guids.json")).unwrap();
    import(&scratch, &server, &[])
        .code(4)
        .stderr(contains("directory"));
    std::fs::remove_dir(scratch.file("out/guids.json")).unwrap();
    // A corrupt map.
    std::fs::write(scratch.file("out/guids.json"), "{\"schema_version\": 1,").unwrap();
    import(&scratch, &server, &[])
        .code(2)
        .stderr(contains("guids.json").and(contains("git checkout")));
    std::fs::remove_file(scratch.file("out/guids.json")).unwrap();
    // An org that is not there.
    import(&scratch, &server, &["--org", "Nowhere"]).code(2);
    // A file ThoughtSpot would misread.
    let path = scratch.file("out/tml/TS_GROUPS.table.tml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("\"on\":", "on:")).unwrap();
    import(&scratch, &server, &[])
        .code(2)
        .stderr(contains("TS_GROUPS.table.tml").and(contains("YAML 1.1")));
    assert!(
        server.state.objects().is_empty(),
        "nothing reached the cluster"
    );
    let imports = (server.state.seen().iter())
        .filter(|s| s.path.ends_with("/tml/import"))
        .count();
    assert_eq!(imports, 0);
}

/// Imports the set as a worksheet, then generates it as a model again.
fn worksheet_then_model(scratch: &Scratch, server: &FakeThoughtSpot) {
    let config = scratch.file("ts-principals.toml");
    std::fs::write(&config, "[tml]\nformat = \"worksheet\"\n").unwrap();
    generated(scratch, server);
    import(scratch, server, &[]).success();
    std::fs::write(&config, "").unwrap();
    generated(scratch, server);
}

#[test]
fn a_switch_from_worksheet_to_model_is_explained_and_renamed_objects_are_named() {
    let server = cluster();
    let scratch = Scratch::new();
    worksheet_then_model(&scratch, &server);
    import(&scratch, &server, &[])
        .code(2)
        .stderr(contains("is the worksheet (as the").and(contains("tml.format")));
    // A new model name leaves the old worksheet behind: said, not hidden.
    std::fs::write(
        scratch.file("ts-principals.toml"),
        "[tml]\nformat = \"worksheet\"\nmodel_name = \"Use cases\"\n",
    )
    .unwrap();
    generated(&scratch, &server);
    import(&scratch, &server, &[])
        .success()
        .stderr(contains("no longer has").and(contains("TS: Users and Groups")));
}

#[test]
fn a_template_override_that_drops_the_guid_is_refused_once_guids_are_known() {
    let server = cluster();
    let scratch = Scratch::new();
    generated(&scratch, &server);
    import(&scratch, &server, &[]).success();
    std::fs::create_dir(scratch.file("templates")).unwrap();
    std::fs::write(scratch.file("templates/_identity.tml.j2"), "").unwrap();
    scratch
        .with_password(&server)
        .args([
            "generate",
            "--profile",
            "env",
            "--out",
            "out",
            "--templates",
            "templates",
        ])
        .assert()
        .code(2)
        .stderr(contains(
            "has guid none, but the GUID map (guids.json) records",
        ));
}

#[test]
fn a_map_entry_pointing_at_another_object_is_refused_not_overwritten() {
    let server = cluster();
    let scratch = Scratch::new();
    generated(&scratch, &server);
    import(&scratch, &server, &[]).success();
    // Someone's own model, and a map edited to point ours at it.
    let model = (files(&scratch).into_iter())
        .find(|(f, _)| f.ends_with(".model.tml"))
        .unwrap()
        .1;
    let theirs = model
        .lines()
        .filter(|l| !l.starts_with("guid:"))
        .collect::<Vec<_>>()
        .join("\n")
        .replacen(
            "name: \"TS: Users and Groups\"",
            "name: \"Finance KPIs\"",
            1,
        );
    let foreign = server.state.import_by_hand(0, &theirs).unwrap();
    let path = scratch.file("out/guids.json");
    let ours = mapped(&scratch, 0)["TS: Users and Groups"].clone();
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace(&ours, &foreign);
    std::fs::write(&path, text).unwrap();
    import(&scratch, &server, &[])
        .code(3)
        .stderr(contains(foreign.as_str()).and(contains("Finance KPIs")));
    let kept = (server.state.objects().into_iter())
        .find(|o| o.guid == foreign)
        .unwrap();
    assert_eq!((kept.name.as_str(), kept.version), ("Finance KPIs", 1));
}

#[test]
fn a_worksheet_is_not_adopted_for_a_model_even_without_a_map() {
    let server = cluster();
    let scratch = Scratch::new();
    worksheet_then_model(&scratch, &server);
    std::fs::remove_file(scratch.file("out/guids.json")).unwrap();
    import(&scratch, &server, &[])
        .code(2)
        .stderr(contains("is the worksheet (as the"));
}

#[test]
fn the_map_beside_the_tml_is_found_from_inside_it() {
    let server = cluster();
    let scratch = Scratch::new();
    generated(&scratch, &server);
    scratch
        .with_password(&server)
        .current_dir(scratch.file("out/tml"))
        .args(["import", "--tml", "."])
        .assert()
        .success();
    assert!(scratch.file("out/guids.json").is_file());
    assert!(!scratch.file("out/tml/guids.json").exists());
}

#[test]
fn warnings_are_shown_and_do_not_fail() {
    let server = cluster();
    let scratch = Scratch::new();
    generated(&scratch, &server);
    server
        .state
        .set(|f| f.import_warning = Some("TS: Users and Groups".into()));
    let done = import(&scratch, &server, &[]).success();
    assert!(text(&done.get_output().stdout).contains("WARNING"));
    assert!(text(&done.get_output().stderr).contains("fake warning"));
    assert!(mapped(&scratch, 0).contains_key("TS: Users and Groups"));
}

#[test]
fn a_dry_run_lists_what_would_be_sent_without_contacting_the_cluster() {
    let server = cluster();
    let scratch = Scratch::new();
    generated(&scratch, &server);
    import(&scratch, &server, &[]).success();
    let requests = server.state.seen().len();
    let dry = scratch
        .cmd()
        .args(["import", "--tml", "out/tml", "--dry-run"])
        .assert()
        .success();
    let stdout = text(&dry.get_output().stdout);
    for (file, tml) in files(&scratch) {
        assert!(stdout.contains(&format!("{file} ")), "{stdout}");
        assert!(stdout.contains(&tml.len().to_string()), "{stdout}");
    }
    for guid in mapped(&scratch, 0).values() {
        assert!(stdout.contains(guid.as_str()), "{stdout}");
    }
    assert_eq!(server.state.seen().len(), requests, "nothing was sent");
}

#[test]
fn obj_ids_are_written_and_reach_the_cluster() {
    let server = cluster();
    let scratch = Scratch::new();
    std::fs::write(
        scratch.file("ts-principals.toml"),
        "[tml]\nobj_ids = true\n",
    )
    .unwrap();
    generated(&scratch, &server);
    import(&scratch, &server, &[]).success();
    let objects = server.state.objects();
    assert!(!objects.is_empty());
    for o in &objects {
        let id = o.obj_id.as_deref().unwrap_or_default();
        assert!(
            id.starts_with("TS_PRINCIPALS__TS_")
                && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{}: {id:?}",
            o.name
        );
    }
    let model = objects.iter().find(|o| o.kind == Kind::Model).unwrap();
    assert_eq!(model.obj_id.as_deref(), Some("TS_PRINCIPALS__TS_MODEL"));
}

#[test]
fn the_scheduled_loop_keeps_one_object_per_file_with_activity_joining_in() {
    let data = Data::generated(20, 6, 2);
    let users = crate::fake::activity::user_guids(&data);
    let server = FakeThoughtSpot::start(data);
    let now = jiff::Timestamp::now().as_second();
    let set = crate::fake::activity::ActivitySet::generated(
        &users,
        300,
        now - 86_400,
        86_400,
        3,
        "TS: AI and BI Stats",
    );
    server.state.set_activity(set);
    let scratch = Scratch::new();
    let activity = || {
        scratch
            .with_password(&server)
            .args(["activity", "--out", "out"])
            .assert()
            .success();
    };
    // An import between generate and activity leaves the files' GUIDs
    // behind the map's: activity renders what generate wrote.
    generated(&scratch, &server);
    import(&scratch, &server, &[]).success();
    activity();
    import(&scratch, &server, &[]).success();
    for _ in 0..2 {
        generated(&scratch, &server);
        activity();
        import(&scratch, &server, &[]).success();
    }
    let count = files(&scratch).len();
    assert!(
        files(&scratch).keys().any(|f| f.contains("ACTIVITY")),
        "{:?}",
        files(&scratch).keys()
    );
    assert_eq!(objects(&server, 0).len(), count, "one object per file");
    assert_eq!(mapped(&scratch, 0).len(), count);
}

#[test]
fn the_readme_walkthrough_works_as_written() {
    let readme = std::fs::read_to_string(crate::common::root().join("README.md")).unwrap();
    let block = readme
        .split("<!-- import-walkthrough:begin -->")
        .nth(1)
        .and_then(|rest| rest.split("<!-- import-walkthrough:end -->").next())
        .expect("README.md has the import walkthrough between its markers");
    let server = FakeThoughtSpot::start(
        Data::load(&crate::common::root().join("tests/data/fixtures")).unwrap(),
    );
    let scratch = Scratch::new();
    let binary = assert_cmd::cargo::cargo_bin("ts-principals");
    let mut script = String::from("set -eu\n");
    for line in block.lines() {
        if line.starts_with("cargo run --example fake_thoughtspot") {
            assert!(line.contains("--data tests/data/fixtures"), "{line}");
            continue; // started above, on a free port
        }
        if line.starts_with("```") {
            continue;
        }
        let line = line.replace("http://127.0.0.1:8787", &server.url());
        let line = match line.strip_prefix("ts-principals ") {
            Some(rest) => format!("{} {rest}", shell_quote(&binary)),
            None => line,
        };
        script.push_str(&line);
        script.push('\n');
    }
    let run = std::process::Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(scratch.path())
        .env("TS_PRINCIPALS_CONFIG_DIR", scratch.file("config"))
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{script}\nstdout:\n{}\nstderr:\n{}",
        text(&run.stdout),
        text(&run.stderr)
    );
    let count = files(&scratch).len();
    let objects = objects(&server, 0);
    assert_eq!(objects.len(), count, "one object per file");
    assert!(
        objects.values().all(|(_, version)| *version == 2),
        "{objects:?}"
    );
    assert_eq!(mapped(&scratch, 0).len(), count);
}

fn shell_quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', "'\\''"))
}
