//! Activity per group, proved by numbers (issue: "which use case is
//! active?"). A generated cluster, 90 days of its TS: BI Server activity
//! and three snapshots with membership changes (users moving, a group
//! re-nested, a user and a group deleted, memberships returning, a new
//! group) go through generate and load into PostgreSQL. Actions and active
//! users per group, direct members only and effective, over several time
//! ranges, are then read from the group activity view (and the
//! materialised table) and compared with a computation written here from
//! the snapshots alone, without ts-principals' code. They must agree
//! exactly.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::common::{activity_held, seed_activity, ts_principals};
use crate::postgres::{Db, config, layout};

const DAY: i64 = 86_400;
/// 2026-09-01 00:00:00 UTC: the first day of activity.
const START: i64 = 1_788_220_800;
const CLUSTER: &str = "proof-cluster";

#[derive(Clone, Debug)]
struct Group {
    org: i64,
    parents: Vec<String>,
}

/// What one snapshot says: when it was taken, each user's orgs and direct
/// groups, each group's org and parents.
#[derive(Clone, Debug)]
struct Snapshot {
    at: i64,
    users: BTreeMap<String, (Vec<i64>, BTreeSet<String>)>,
    groups: BTreeMap<String, Group>,
}

fn user_id(n: usize) -> String {
    format!("00000000-0000-4000-8000-{n:012x}")
}

fn group_id(n: usize) -> String {
    format!("00000000-0000-4000-9000-{n:012x}")
}

/// Seconds → `YYYY-MM-DD HH:MM:SS` (UTC), by civil-from-days arithmetic.
fn utc(seconds: i64) -> String {
    let days = seconds.div_euclid(DAY);
    let rest = seconds.rem_euclid(DAY);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// The three snapshots of the generated cluster.
fn snapshots() -> [Snapshot; 3] {
    let mut rng = fastrand::Rng::with_seed(11);
    // Groups 0-11 in the Primary org, 12-15 in org 7, nested up to three
    // levels deep.
    let mut groups = BTreeMap::new();
    let parent_of: BTreeMap<usize, usize> =
        BTreeMap::from([(1, 0), (2, 0), (3, 1), (4, 3), (13, 12), (14, 13)]);
    for n in 0..16 {
        groups.insert(
            group_id(n),
            Group {
                org: if n < 12 { 0 } else { 7 },
                parents: parent_of
                    .get(&n)
                    .map(|&p| group_id(p))
                    .into_iter()
                    .collect(),
            },
        );
    }
    let in_org = |org: i64| -> Vec<String> {
        (0..16)
            .filter(|&n| (n < 12) == (org == 0))
            .map(group_id)
            .collect()
    };
    let mut users = BTreeMap::new();
    for n in 0..80 {
        let orgs = if n % 4 == 0 { vec![0, 7] } else { vec![0] };
        let mut direct = BTreeSet::new();
        for _ in 0..rng.usize(1..=3) {
            let org = orgs[rng.usize(..orgs.len())];
            let choices = in_org(org);
            direct.insert(choices[rng.usize(..choices.len())].clone());
        }
        users.insert(user_id(n), (orgs, direct));
    }
    let first = Snapshot {
        at: START + 30 * DAY + 3 * 3600,
        users,
        groups,
    };

    let mut second = first.clone();
    second.at = START + 55 * DAY + 6 * 3600;
    for _ in 0..15 {
        let user = user_id(rng.usize(..80));
        if let Some((orgs, direct)) = second.users.get_mut(&user) {
            if direct.len() > 1 {
                let gone = direct.iter().nth(rng.usize(..direct.len())).cloned();
                direct.remove(&gone.unwrap());
            }
            let choices = in_org(orgs[rng.usize(..orgs.len())]);
            direct.insert(choices[rng.usize(..choices.len())].clone());
        }
    }
    // Group 3 moves from under 1 to under 2; user 5 and group 7 are deleted.
    second.groups.get_mut(&group_id(3)).unwrap().parents = vec![group_id(2)];
    second.users.remove(&user_id(5));
    second.groups.remove(&group_id(7));
    for (_, direct) in second.users.values_mut() {
        direct.remove(&group_id(7));
    }
    // User 10 is added to group 0 itself, which it may have been in
    // through nesting: the membership becomes direct.
    second
        .users
        .get_mut(&user_id(10))
        .unwrap()
        .1
        .insert(group_id(0));

    let mut third = second.clone();
    third.at = START + 75 * DAY + 12 * 3600;
    // Ten users go back to the groups of the first snapshot.
    for n in (20..80).step_by(6) {
        if let (Some(now), Some(before)) = (
            third.users.get_mut(&user_id(n)),
            first.users.get(&user_id(n)),
        ) {
            now.1 = before
                .1
                .iter()
                .filter(|g| *g != &group_id(7))
                .cloned()
                .collect();
        }
    }
    // A new use case, nested in group 0, with eight members; user 6 leaves
    // every group.
    third.groups.insert(
        group_id(16),
        Group {
            org: 0,
            parents: vec![group_id(0)],
        },
    );
    for n in 30..38 {
        third
            .users
            .get_mut(&user_id(n))
            .unwrap()
            .1
            .insert(group_id(16));
    }
    third.users.get_mut(&user_id(6)).unwrap().1.clear();
    [first, second, third]
}

/// The snapshot as a canonical principals file.
fn snapshot_json(snapshot: &Snapshot) -> Value {
    let at = utc(snapshot.at).replace(' ', "T") + "Z";
    let users: Vec<Value> = (snapshot.users.iter())
        .map(|(id, (orgs, direct))| {
            json!({
                "id": id, "name": format!("user-{id}"), "display_name": format!("User {id}"),
                "email": format!("{id}@example.com"), "visibility": "SHARABLE",
                "account_type": "LOCAL_USER", "account_status": "ACTIVE",
                "created": 1_600_000_000_000_i64, "modified": 1_600_000_000_000_i64,
                "org_ids": orgs, "group_ids": direct,
            })
        })
        .collect();
    let groups: Vec<Value> = (snapshot.groups.iter())
        .map(|(id, group)| {
            json!({
                "id": id, "name": format!("group-{id}"), "display_name": format!("Group {id}"),
                "description": "", "type": "LOCAL_GROUP", "visibility": "SHARABLE",
                "created": 1_600_000_000_000_i64, "modified": 1_600_000_000_000_i64,
                "org_ids": [group.org], "parent_group_ids": group.parents, "privileges": [],
            })
        })
        .collect();
    json!({
        "schema_version": 1,
        "source": {"cluster_id": CLUSTER, "api": "v2", "fetched_at": at},
        "orgs": [
            {"id": 0, "name": "Primary", "description": ""},
            {"id": 7, "name": "Seven", "description": ""},
        ],
        "users": users,
        "groups": groups,
    })
}

/// Effective memberships of a snapshot, computed here: (org, user, group)
/// → depth, the shortest number of nesting steps from a group the user is
/// directly in (0 for the group itself).
fn effective(snapshot: &Snapshot) -> BTreeMap<(i64, String, String), u32> {
    let mut out = BTreeMap::new();
    for (user, (_, direct)) in &snapshot.users {
        let mut best: BTreeMap<String, u32> = BTreeMap::new();
        let mut queue: VecDeque<(String, u32)> = direct.iter().map(|g| (g.clone(), 0)).collect();
        while let Some((group, depth)) = queue.pop_front() {
            if best.get(&group).is_some_and(|&d| d <= depth) {
                continue;
            }
            best.insert(group.clone(), depth);
            if let Some(g) = snapshot.groups.get(&group) {
                for parent in &g.parents {
                    queue.push_back((parent.clone(), depth + 1));
                }
            }
        }
        for (group, depth) in best {
            if let Some(g) = snapshot.groups.get(&group) {
                out.insert((g.org, user.clone(), group), depth);
            }
        }
    }
    out
}

/// One activity row: incident, time (seconds), user, org.
struct Action {
    incident: String,
    at: i64,
    user: String,
    org: i64,
}

/// `count` actions at random times over the 90 days, by every user of the
/// first snapshot and one the cluster never had, in the orgs they are in;
/// and one per user in the second before, and at, each later snapshot,
/// where an off-by-one in the history's bounds would show.
fn activity(snapshots: &[Snapshot], count: usize) -> Vec<Action> {
    let first = &snapshots[0];
    let mut rng = fastrand::Rng::with_seed(5);
    let mut out = Vec::new();
    let stranger = "ffffffff-0000-4000-8000-000000000000".to_owned();
    for i in 0..count {
        let n = rng.usize(..81);
        let (user, orgs) = match first.users.get(&user_id(n)) {
            Some((orgs, _)) => (user_id(n), orgs.clone()),
            None => (stranger.clone(), vec![0]),
        };
        let org = if orgs.len() > 1 && rng.bool() {
            orgs[1]
        } else {
            0
        };
        out.push(Action {
            incident: format!("inc-{i:05}"),
            at: START + rng.i64(0..90 * DAY),
            user,
            org,
        });
    }
    for snapshot in &snapshots[1..] {
        for (n, user) in first.users.keys().enumerate() {
            for at in [snapshot.at - 1, snapshot.at] {
                out.push(Action {
                    incident: format!("edge-{at}-{n:03}"),
                    at,
                    user: user.clone(),
                    org: 0,
                });
            }
        }
    }
    out
}

/// The snapshot whose memberships hold at `at`: the latest taken at or
/// before it, and the first one before any was taken (its memberships
/// have no start).
fn state_at(snapshots: &[Snapshot], at: i64) -> &Snapshot {
    (snapshots.iter().rev())
        .find(|s| s.at <= at)
        .unwrap_or(&snapshots[0])
}

type PerGroup = BTreeMap<String, (i64, i64)>;

/// Actions and distinct active users per group over `[from, to)`,
/// computed from the snapshots.
fn expected(
    snapshots: &[Snapshot],
    actions: &[Action],
    (from, to): (i64, i64),
    direct_only: bool,
) -> PerGroup {
    let states: Vec<BTreeMap<(i64, String, String), u32>> =
        snapshots.iter().map(effective).collect();
    let mut counts: BTreeMap<String, (i64, BTreeSet<String>)> = BTreeMap::new();
    for action in actions.iter().filter(|a| a.at >= from && a.at < to) {
        let state = state_at(snapshots, action.at);
        let index = snapshots.iter().position(|s| s.at == state.at).unwrap();
        for ((org, user, group), depth) in &states[index] {
            if *org == action.org && *user == action.user && (!direct_only || *depth == 0) {
                let entry = counts.entry(group.clone()).or_default();
                entry.0 += 1;
                entry.1.insert(user.clone());
            }
        }
    }
    (counts.into_iter())
        .map(|(group, (actions, users))| (group, (actions, users.len() as i64)))
        .collect()
}

/// The same, read from the group activity view (or table) in the database.
fn measured(db: &mut Db, (from, to): (i64, i64), direct_only: bool) -> PerGroup {
    let query = format!(
        "SELECT group_guid, count(*), count(DISTINCT user_guid) FROM {} \
         WHERE \"timestamp\" >= $1::text::timestamp AND \"timestamp\" < $2::text::timestamp {} \
         GROUP BY group_guid",
        db.qualified("ts_group_activity_bi_server"),
        if direct_only { "AND is_direct" } else { "" }
    );
    (db.client
        .query(&query, &[&utc(from), &utc(to)])
        .expect("group activity query")
        .iter())
    .map(|row| (row.get(0), (row.get(1), row.get(2))))
    .collect()
}

/// Writes the activity rows into `out`, as `ts-principals activity` would
/// have copied them.
fn seed(out: &Path, actions: &[Action]) {
    let held = json!({"bi_server": activity_held()["bi_server"].clone()});
    seed_activity(out, &held);
    let mut text = String::from(
        "cluster_id,incident_id,timestamp,url,http_response_code,client_type,user_id,\
         user_action,query_text,latency_us,impressions,org_id\n",
    );
    let mut sorted: Vec<&Action> = actions.iter().collect();
    sorted.sort_by_key(|a| (a.at, a.incident.clone()));
    for a in sorted {
        text.push_str(&format!(
            "{CLUSTER},{},{},/callosum,200,WEB,{},answer_view,,100,1,{}\n",
            a.incident,
            utc(a.at),
            a.user,
            a.org
        ));
    }
    std::fs::write(out.join("data/activity_bi_server.csv"), text).unwrap();
}

/// `generate --from input --config config --out out`, run in `dir`.
fn generating(dir: &Path, input: &Path, config: &Path, out: &Path) -> assert_cmd::Command {
    let mut command = ts_principals(dir);
    command
        .arg("generate")
        .arg("--from")
        .arg(input)
        .arg("--config")
        .arg(config)
        .arg("--out")
        .arg(out);
    command
}

fn generate(dir: &Path, input: &Path, config: &Path, out: &Path, extra: &[&str]) {
    generating(dir, input, config, out)
        .args(extra)
        .assert()
        .success();
}

fn history_rows(db: &mut Db, out: &Path) -> Vec<Vec<String>> {
    let tables = layout(out);
    let history = (tables.iter())
        .find(|t| t.file == "group_memberships_history.csv")
        .expect("the history table");
    db.rows(history)
}

fn write_snapshots(dir: &Path, snapshots: &[Snapshot]) -> Vec<PathBuf> {
    (snapshots.iter().enumerate())
        .map(|(i, s)| {
            let path = dir.join(format!("snapshot-{}.json", i + 1));
            std::fs::write(&path, serde_json::to_vec_pretty(&snapshot_json(s)).unwrap()).unwrap();
            path
        })
        .collect()
}

#[test]
fn actions_and_active_users_per_group_match_an_independent_computation() {
    let Some(mut db) = Db::new("proof") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let snapshots = snapshots();
    let actions = activity(&snapshots, 6000);
    let inputs = write_snapshots(dir.path(), &snapshots);
    let config = config(dir.path(), &db.schema, "lower");
    let out = dir.path().join("out");

    // The scheduled loop: each snapshot generated into the same directory
    // (which advances the history it holds) and loaded.
    generate(dir.path(), &inputs[0], &config, &out, &[]);
    seed(&out, &actions);
    for input in &inputs {
        generate(dir.path(), input, &config, &out, &[]);
        db.load(dir.path(), &out).success();
    }

    // The database's history is the one the directory holds.
    let file = std::fs::read(out.join("data/group_memberships_history.csv")).unwrap();
    let in_file = crate::postgres::records(&file, true);
    assert_eq!(history_rows(&mut db, &out), in_file);
    assert!(
        in_file.iter().any(|r| !r[6].is_empty()),
        "memberships began"
    );
    assert!(
        in_file.iter().any(|r| !r[7].is_empty()),
        "memberships ended"
    );

    let t = |s: usize| snapshots[s].at;
    let ranges = [
        ("all 90 days", (START, START + 90 * DAY)),
        ("before the second snapshot", (START + 10 * DAY, t(1))),
        (
            "across the second snapshot",
            (t(1) - 5 * DAY, t(1) + 5 * DAY),
        ),
        ("last 30 days", (START + 60 * DAY, START + 90 * DAY)),
        ("after the third snapshot", (t(2), START + 90 * DAY)),
        ("the second before the change", (t(1) - 1, t(1))),
        ("the second of the change", (t(1), t(1) + 1)),
        ("the seconds around the last change", (t(2) - 1, t(2) + 1)),
    ];
    let check = |db: &mut Db, what: &str| {
        for (name, range) in ranges {
            for direct_only in [false, true] {
                let want = expected(&snapshots, &actions, range, direct_only);
                let got = measured(db, range, direct_only);
                assert_eq!(got, want, "{what}: {name}, direct only: {direct_only}");
            }
        }
    };
    check(&mut db, "view");
    // Every group with activity shows up, and effective counts exceed the
    // cluster's total actions (an action counts in each group of its user).
    let all = expected(&snapshots, &actions, ranges[0].1, false);
    assert!(all.len() >= 15, "{all:?}");
    let attributed: i64 = all.values().map(|(a, _)| a).sum();
    assert!(attributed > actions.len() as i64);

    // generate --group-activity writes what the view holds, row for row.
    generate(dir.path(), &inputs[2], &config, &out, &["--group-activity"]);
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    let view = &manifest["database"]["group_activity"][0];
    let info = crate::postgres::TableInfo {
        file: "group_activity_bi_server.csv".into(),
        table: view["view"].as_str().unwrap().to_owned(),
        columns: (view["columns"].as_array().unwrap().iter())
            .map(|c| {
                (
                    c["name"].as_str().unwrap().to_owned(),
                    c["type"].as_str().unwrap().to_owned(),
                )
            })
            .collect(),
    };
    let written = std::fs::read(out.join("data/group_activity_bi_server.csv")).unwrap();
    let in_csv = crate::postgres::records(&written, true);
    assert!(in_csv.len() > actions.len());
    assert_eq!(db.rows(&info), in_csv);

    // Reloading the last snapshot changes no history; materialised, the
    // group activity gives the same numbers.
    let before = history_rows(&mut db, &out);
    ts_principals(dir.path())
        .args(["load", "--materialize", "--from"])
        .arg(&out)
        .args(["--to", &db.url, "--schema", &db.schema])
        .assert()
        .success();
    assert_eq!(history_rows(&mut db, &out), before);
    let kind: String = db
        .client
        .query_one(
            "SELECT relkind::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND relname = 'ts_group_activity_bi_server'",
            &[&db.schema],
        )
        .unwrap()
        .get(0);
    assert_eq!(kind, "r", "materialised as a table");
    check(&mut db, "materialised");
    // Someone's view on the materialised table: the next load refills it
    // in place, and the view keeps working.
    let theirs = format!("\"{}\".their_view", db.schema);
    db.client
        .batch_execute(&format!(
            "CREATE VIEW {theirs} AS SELECT group_guid FROM {}",
            db.qualified("ts_group_activity_bi_server")
        ))
        .unwrap();
    ts_principals(dir.path())
        .args(["load", "--materialize", "--from"])
        .arg(&out)
        .args(["--to", &db.url, "--schema", &db.schema])
        .assert()
        .success();
    let seen: i64 = db
        .client
        .query_one(&format!("SELECT count(*) FROM {theirs}"), &[])
        .unwrap()
        .get(0);
    assert!(seen > actions.len() as i64);
    check(&mut db, "materialised again");
}

#[test]
fn every_path_to_the_history_gives_the_same_rows() {
    let Some(mut db) = Db::new("paths") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let snapshots = snapshots();
    let inputs = write_snapshots(dir.path(), &snapshots);
    let config = config(dir.path(), &db.schema, "lower");

    // 1. The same output directory, generated three times.
    let same = dir.path().join("same");
    for input in &inputs {
        generate(dir.path(), input, &config, &same, &[]);
    }
    let history =
        |out: &Path| std::fs::read(out.join("data/group_memberships_history.csv")).unwrap();

    // 2. A directory per snapshot, each advancing the one before
    // (--history PREV_OUT).
    let mut previous: Option<PathBuf> = None;
    for (i, input) in inputs.iter().enumerate() {
        let out = dir.path().join(format!("dated-{i}"));
        let mut extra = Vec::new();
        let prev;
        if let Some(p) = &previous {
            prev = p.display().to_string();
            extra = vec!["--history", prev.as_str()];
        }
        generate(dir.path(), input, &config, &out, &extra);
        previous = Some(out);
    }
    assert_eq!(history(previous.as_ref().unwrap()), history(&same));

    // 3. Fresh directories that know nothing of each other, loaded in turn:
    // the database keeps the history itself.
    for (i, input) in inputs.iter().enumerate() {
        let out = dir.path().join(format!("fresh-{i}"));
        generate(dir.path(), input, &config, &out, &[]);
        db.load(dir.path(), &out).success();
        if i == 0 {
            // Reloading the same snapshot changes nothing.
            db.load(dir.path(), &out).success();
        }
    }
    let last = dir.path().join("fresh-2");
    assert_eq!(
        history_rows(&mut db, &last),
        crate::postgres::records(&history(&same), true)
    );

    // 4. One directory advanced over two snapshots between loads: the
    // database replays both changes at their own times.
    let mut between = Db::new("between").expect("the server");
    let stepped = dir.path().join("stepped");
    generate(dir.path(), &inputs[0], &config, &stepped, &[]);
    between.load(dir.path(), &stepped).success();
    generate(dir.path(), &inputs[1], &config, &stepped, &[]);
    generate(dir.path(), &inputs[2], &config, &stepped, &[]);
    between.load(dir.path(), &stepped).success();
    assert_eq!(
        history_rows(&mut between, &stepped),
        crate::postgres::records(&history(&same), true)
    );
    // A snapshot older than the first one a directory holds is refused
    // too, though the first snapshot's rows carry no times.
    let newer_first = dir.path().join("newer-first");
    generate(dir.path(), &inputs[1], &config, &newer_first, &[]);
    generating(dir.path(), &inputs[0], &config, &newer_first)
        .assert()
        .failure()
        .code(2);
    // And so is loading it into a database that took a newer first one.
    let first_newer = Db::new("firstnewer").expect("the server");
    let fresh_second = dir.path().join("fresh-1");
    first_newer.load(dir.path(), &fresh_second).success();
    let refused = first_newer
        .load(dir.path(), &dir.path().join("fresh-0"))
        .failure();
    let stderr = String::from_utf8_lossy(&refused.get_output().stderr).into_owned();
    assert!(stderr.contains("cannot run backwards"), "{stderr}");
    // Older data that changes nothing is taken (a live fetch's directory is
    // of the time it last saw a change).
    let same_state = dir.path().join("same-state");
    let earlier = utc(snapshots[1].at - DAY).replace(' ', "T") + "Z";
    generate(
        dir.path(),
        &inputs[1],
        &config,
        &same_state,
        &["--as-of", &earlier],
    );
    first_newer.load(dir.path(), &same_state).success();
    // A manifest whose time was edited into the future is refused.
    let manifest = same_state.join("manifest.json");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let edited = text.replace(&utc(snapshots[1].at - DAY), "2099-01-01 00:00:00");
    assert_ne!(text, edited);
    std::fs::write(&manifest, edited).unwrap();
    let refused = first_newer.load(dir.path(), &same_state).failure().code(2);
    let stderr = String::from_utf8_lossy(&refused.get_output().stderr).into_owned();
    assert!(stderr.contains("in the future"), "{stderr}");

    // The same snapshot generated again changes nothing; an older one is
    // refused, naming both times.
    let again = crate::common::tree(&same);
    generate(dir.path(), &inputs[2], &config, &same, &[]);
    assert_eq!(crate::common::tree(&same), again);
    // Naming the output directory itself as --history is the same (and
    // does not wait for its own lock).
    generating(dir.path(), &inputs[2], &config, &same)
        .arg("--history")
        .arg(&same)
        .timeout(std::time::Duration::from_secs(60))
        .assert()
        .success();
    assert_eq!(crate::common::tree(&same), again);
    let refused = generating(dir.path(), &inputs[0], &config, &same)
        .assert()
        .failure()
        .code(2);
    let stderr = String::from_utf8_lossy(&refused.get_output().stderr).into_owned();
    assert!(stderr.contains(&utc(snapshots[0].at)), "{stderr}");
    assert!(stderr.contains(&utc(snapshots[2].at)), "{stderr}");
    assert_eq!(crate::common::tree(&same), again, "nothing written");
    // And so is loading it into a database whose history is newer.
    let old = dir.path().join("fresh-0");
    let failed = db.load(dir.path(), &old).failure();
    let stderr = String::from_utf8_lossy(&failed.get_output().stderr).into_owned();
    assert!(stderr.contains("cannot run backwards"), "{stderr}");
}

#[test]
fn the_date_arithmetic_of_this_test_is_right() {
    assert_eq!(utc(START), "2026-09-01 00:00:00");
    assert_eq!(utc(START + 90 * DAY + 3661), "2026-11-30 01:01:01");
    assert_eq!(utc(951_782_400), "2000-02-29 00:00:00");
}

/// The worked example in README.md ("Which use case is active?"): three
/// users, four groups (Sales nested in Commercial), one user moving from
/// Marketing to Finance mid-month. Its table and totals must be what the
/// data gives.
#[test]
fn the_readme_example_is_what_the_data_gives() {
    let Some(mut db) = Db::new("readme") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &db.schema, "lower");
    let out = dir.path().join("out");
    let (ana, ben, cho) = (user_id(1), user_id(2), user_id(3));
    let named = [
        (group_id(1), "Commercial", None),
        (group_id(2), "Sales", Some(group_id(1))),
        (group_id(3), "Marketing", None),
        (group_id(4), "Finance", None),
    ];
    let snapshot = |at: &str, cho_in: &str| {
        let member = |id: &str, name: &str, groups: Vec<String>| {
            json!({
                "id": id, "name": name, "display_name": name, "email": format!("{name}@example.com"),
                "visibility": "SHARABLE", "account_type": "LOCAL_USER", "account_status": "ACTIVE",
                "created": 1_600_000_000_000_i64, "modified": 1_600_000_000_000_i64,
                "org_ids": [0], "group_ids": groups,
            })
        };
        let groups: Vec<Value> = (named.iter())
            .map(|(id, name, parent)| {
                json!({
                    "id": id, "name": name.to_lowercase(), "display_name": name, "description": "",
                    "type": "LOCAL_GROUP", "visibility": "SHARABLE",
                    "created": 1_600_000_000_000_i64, "modified": 1_600_000_000_000_i64,
                    "org_ids": [0], "parent_group_ids": parent.iter().collect::<Vec<_>>(),
                    "privileges": [],
                })
            })
            .collect();
        let by_name = |name: &str| named.iter().find(|g| g.1 == name).unwrap().0.clone();
        json!({
            "schema_version": 1,
            "source": {"cluster_id": CLUSTER, "api": "v2", "fetched_at": at},
            "orgs": [{"id": 0, "name": "Primary", "description": ""}],
            "users": [
                member(&ana, "ana", vec![by_name("Sales")]),
                member(&ben, "ben", vec![by_name("Sales"), by_name("Marketing")]),
                member(&cho, "cho", vec![by_name(cho_in)]),
            ],
            "groups": groups,
        })
    };
    let inputs: Vec<PathBuf> = [
        snapshot("2026-10-20T08:00:00Z", "Marketing"),
        snapshot("2026-11-15T12:00:00Z", "Finance"),
    ]
    .iter()
    .enumerate()
    .map(|(i, s)| {
        let path = dir.path().join(format!("readme-{i}.json"));
        std::fs::write(&path, serde_json::to_vec(s).unwrap()).unwrap();
        path
    })
    .collect();
    // ana: 3 actions in October, 10 in November; ben: 6 in November; cho: 4
    // before the move on 15 November at noon, 5 from then on.
    let at = |text: &str| -> i64 {
        let ts: i64 = START; // 2026-09-01
        let (date, time) = text.split_once(' ').unwrap();
        let parts: Vec<i64> = date.split('-').map(|p| p.parse().unwrap()).collect();
        let days_before_month = [0, 30, 61]; // September, October, November
        let day = days_before_month[(parts[1] - 9) as usize] + parts[2] - 1;
        let t: Vec<i64> = time.split(':').map(|p| p.parse().unwrap()).collect();
        ts + day * DAY + t[0] * 3600 + t[1] * 60 + t[2]
    };
    let mut actions = Vec::new();
    let mut add = |user: &str, times: &[&str]| {
        for time in times {
            actions.push(Action {
                incident: format!("readme-{}", actions.len()),
                at: at(time),
                user: user.to_owned(),
                org: 0,
            });
        }
    };
    add(
        &ana,
        &[
            "2026-10-05 09:00:00",
            "2026-10-10 09:00:00",
            "2026-10-25 09:00:00",
        ],
    );
    let november: Vec<String> = (0..10)
        .map(|d| format!("2026-11-{:02} 10:00:00", 2 + 3 * d))
        .collect();
    add(
        &ana,
        &november.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    add(
        &ben,
        &[
            "2026-11-03 14:00:00",
            "2026-11-09 14:00:00",
            "2026-11-14 14:00:00",
            "2026-11-19 14:00:00",
            "2026-11-24 14:00:00",
            "2026-11-28 14:00:00",
        ],
    );
    add(
        &cho,
        &[
            "2026-11-03 16:00:00",
            "2026-11-07 16:00:00",
            "2026-11-11 16:00:00",
            "2026-11-15 11:59:59",
            "2026-11-15 12:00:00",
            "2026-11-18 16:00:00",
            "2026-11-21 16:00:00",
            "2026-11-25 16:00:00",
            "2026-11-30 16:00:00",
        ],
    );
    assert_eq!(utc(at("2026-11-15 12:00:00")), "2026-11-15 12:00:00");

    generate(dir.path(), &inputs[0], &config, &out, &[]);
    seed(&out, &actions);
    for input in &inputs {
        generate(dir.path(), input, &config, &out, &[]);
        db.load(dir.path(), &out).success();
    }
    let month = ("2026-11-01 00:00:00", "2026-12-01 00:00:00");
    let per_group = |db: &mut Db, direct_only: bool| -> BTreeMap<String, (i64, i64)> {
        let query = format!(
            "SELECT g.display_name, count(*), count(DISTINCT a.user_guid) FROM {} a \
             JOIN {} g ON g.cluster_id = a.cluster_id AND g.org_id = a.org_id \
             AND g.group_guid = a.group_guid \
             WHERE a.\"timestamp\" >= $1::text::timestamp AND a.\"timestamp\" < $2::text::timestamp {} \
             GROUP BY 1",
            db.qualified("ts_group_activity_bi_server"),
            db.qualified("ts_groups"),
            if direct_only { "AND a.is_direct" } else { "" }
        );
        (db.client
            .query(&query, &[&month.0, &month.1])
            .unwrap()
            .iter())
        .map(|r| (r.get(0), (r.get(1), r.get(2))))
        .collect()
    };
    let effective = per_group(&mut db, false);
    let direct = per_group(&mut db, true);
    let totals = db
        .client
        .query_one(
            &format!(
                "SELECT count(*), count(DISTINCT user_id) FROM {} \
                 WHERE \"timestamp\" >= $1::text::timestamp AND \"timestamp\" < $2::text::timestamp",
                db.qualified("ts_activity_bi_server")
            ),
            &[&month.0, &month.1],
        )
        .unwrap();
    let (cluster_actions, cluster_users): (i64, i64) = (totals.get(0), totals.get(1));

    // What README.md says, between its markers.
    let readme = std::fs::read_to_string(crate::common::root().join("README.md")).unwrap();
    let block = readme
        .split("<!-- readme-example:begin -->")
        .nth(1)
        .and_then(|rest| rest.split("<!-- readme-example:end -->").next())
        .expect("README.md has the worked example between its markers");
    let mut table = BTreeMap::new();
    for line in block.lines().filter(|l| l.starts_with('|')) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let numbers: Vec<i64> = cells[1..].iter().filter_map(|c| c.parse().ok()).collect();
        if numbers.len() == 4 {
            table.insert(cells[0].to_owned(), numbers);
        }
    }
    let mut computed = BTreeMap::new();
    for (group, (actions, users)) in &effective {
        let (direct_actions, direct_users) = direct.get(group).copied().unwrap_or((0, 0));
        computed.insert(
            group.clone(),
            vec![*actions, *users, direct_actions, direct_users],
        );
    }
    assert_eq!(
        table, computed,
        "README.md's table against the data:\n{block}"
    );
    let sum: i64 = effective.values().map(|(a, _)| a).sum();
    for claim in [
        format!("Cluster Actions** is {cluster_actions}"),
        format!("Cluster Active Users** {cluster_users}"),
        format!("add up to {sum}"),
    ] {
        assert!(
            block.contains(&claim),
            "README.md should say {claim:?}:\n{block}"
        );
    }
}
