//! The cluster's own dry run of a plan over REST v2: `users/import` and
//! `groups/import` (per org) with `dry_run: true`, listing the principals
//! the plan creates or changes with their new attributes, never deleting
//! what they do not list. The answer must add exactly what the plan
//! creates, update only what it lists and delete nothing.

use std::collections::{BTreeMap, BTreeSet};

use reqwest::Method;
use serde_json::{Map, Value, json};

use super::{ApplyError, Prepared};
use crate::client::v2::V2;
use crate::model::PRIMARY_ORG_ID;
use crate::plan::{Change, Index};

pub(super) const USERS_IMPORT: &str = "/api/rest/2.0/users/import";
pub(super) const GROUPS_IMPORT: &str = "/api/rest/2.0/groups/import";

/// What one import is expected to do.
#[derive(Default)]
struct Expected {
    entries: Vec<Value>,
    /// Lower-case names the plan creates.
    added: BTreeSet<String>,
    /// GUIDs and lower-case names of the existing principals listed.
    listed: BTreeSet<String>,
}

impl Expected {
    fn list(&mut self, id: &str, name: &str) {
        self.listed.insert(id.to_owned());
        self.listed.insert(name.to_lowercase());
    }
}

fn set(entry: &mut Value, key: &str, value: impl Into<Value>) {
    if let Some(map) = entry.as_object_mut() {
        map.insert(key.to_owned(), value.into());
    }
}

/// The import entry of an existing principal: its identifier and display
/// name (both required), with `fields` set on top.
fn existing(identifier_key: &str, id: &str, display_name: &str) -> Value {
    let mut entry = Map::new();
    entry.insert(identifier_key.to_owned(), id.into());
    entry.insert("display_name".to_owned(), display_name.into());
    Value::Object(entry)
}

/// The users/import entries and what to expect.
fn users(p: &Prepared, index: &Index<'_>) -> Expected {
    let mut expected = Expected::default();
    let current = |name: &str| index.user(name).map(|u| &p.principals.users[u]);
    for change in &p.plan.changes {
        match change {
            Change::CreateUser { name, attrs } => {
                let orgs: Vec<String> = attrs.orgs.iter().map(|o| o.id.to_string()).collect();
                expected.entries.push(json!({
                    "user_identifier": name,
                    "display_name": attrs.display_name,
                    "email": attrs.email,
                    "account_type": attrs.account_type,
                    "visibility": attrs.visibility,
                    "org_identifiers": orgs,
                }));
                expected.added.insert(name.to_lowercase());
            }
            Change::UpdateUser {
                name,
                id,
                fields,
                orgs_added,
                orgs_removed,
            } => {
                let Some(user) = current(name) else { continue };
                let mut entry = existing("user_identifier", id, &user.display_name);
                for f in fields {
                    set(&mut entry, &f.field, f.new.as_str());
                }
                if !orgs_added.is_empty() || !orgs_removed.is_empty() {
                    let mut orgs: BTreeSet<i64> = user.org_ids.iter().copied().collect();
                    orgs.extend(orgs_added.iter().map(|o| o.id));
                    for o in orgs_removed {
                        orgs.remove(&o.id);
                    }
                    let orgs: Vec<String> = orgs.iter().map(i64::to_string).collect();
                    set(&mut entry, "org_identifiers", orgs);
                }
                expected.entries.push(entry);
                expected.list(id, name);
            }
            Change::HideUser { name, id, .. } => {
                let Some(user) = current(name) else { continue };
                let mut entry = existing("user_identifier", id, &user.display_name);
                set(&mut entry, "visibility", "NON_SHARABLE");
                expected.entries.push(entry);
                expected.list(id, name);
            }
            Change::DeactivateUser { name, id } => {
                let Some(user) = current(name) else { continue };
                let mut entry = existing("user_identifier", id, &user.display_name);
                set(&mut entry, "account_status", "INACTIVE");
                expected.entries.push(entry);
                expected.list(id, name);
            }
            _ => {}
        }
    }
    expected
}

/// The groups/import entries per org and what to expect.
fn groups(p: &Prepared, index: &Index<'_>) -> BTreeMap<i64, Expected> {
    let mut per_org: BTreeMap<i64, Expected> = BTreeMap::new();
    for change in &p.plan.changes {
        match change {
            Change::CreateGroup { group, attrs } => {
                let expected = per_org.entry(group.org.id).or_default();
                expected.entries.push(json!({
                    "group_identifier": group.name,
                    "display_name": attrs.display_name,
                    "description": attrs.description,
                    "visibility": attrs.visibility,
                    "type": attrs.group_type,
                    "privileges": attrs.privileges,
                }));
                expected.added.insert(group.name.to_lowercase());
            }
            Change::UpdateGroup {
                group,
                fields,
                privileges_added,
                privileges_removed,
            } => {
                let Some(g) = index.group(group.org.id, &group.name) else {
                    continue;
                };
                let current = &p.principals.groups[g];
                let mut entry = existing("group_identifier", &current.id, &current.display_name);
                for f in fields {
                    set(&mut entry, &f.field, f.new.as_str());
                }
                if !privileges_added.is_empty() || !privileges_removed.is_empty() {
                    set(
                        &mut entry,
                        "privileges",
                        privileges(&current.privileges, privileges_added, privileges_removed),
                    );
                }
                let expected = per_org.entry(group.org.id).or_default();
                expected.entries.push(entry);
                expected.list(&current.id, &current.name);
            }
            Change::HideGroup { group, .. } => {
                let Some(g) = index.group(group.org.id, &group.name) else {
                    continue;
                };
                let current = &p.principals.groups[g];
                let mut entry = existing("group_identifier", &current.id, &current.display_name);
                set(&mut entry, "visibility", "NON_SHARABLE");
                let expected = per_org.entry(group.org.id).or_default();
                expected.entries.push(entry);
                expected.list(&current.id, &current.name);
            }
            _ => {}
        }
    }
    per_org
}

/// A group's privileges after a change.
pub(super) fn privileges(current: &[String], added: &[String], removed: &[String]) -> Vec<String> {
    let mut all: BTreeSet<String> = current.iter().cloned().collect();
    all.extend(added.iter().cloned());
    for r in removed {
        all.remove(r);
    }
    all.into_iter().collect()
}

/// `[{"id", "name"}]` lists of an import's answer.
fn names(answer: &Value, key: &str) -> Vec<(String, String)> {
    (answer
        .get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten())
    .map(|item| {
        let text = |k: &str| item.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
        (text("id"), text("name"))
    })
    .collect()
}

/// Compares one import's answer with what was expected.
fn compare(
    kind: &str,
    answer: &Value,
    keys: [&str; 3],
    expected: &Expected,
    differences: &mut Vec<String>,
) -> (usize, usize) {
    let added = names(answer, keys[0]);
    let updated = names(answer, keys[1]);
    let deleted = names(answer, keys[2]);
    let added_names: BTreeSet<String> = added.iter().map(|(_, n)| n.to_lowercase()).collect();
    for (_, name) in &added {
        if !expected.added.contains(&name.to_lowercase()) {
            differences.push(format!("  the cluster would also create {kind} {name:?}"));
        }
    }
    for name in &expected.added {
        if !added_names.contains(name) {
            differences.push(format!(
                "  the cluster would not create {kind} {name:?} (does it exist already?)"
            ));
        }
    }
    for (id, name) in &updated {
        let listed = expected.listed.contains(id)
            || expected.listed.contains(&name.to_lowercase())
            || expected.added.contains(&name.to_lowercase());
        if !listed {
            differences.push(format!("  the cluster would also change {kind} {name:?}"));
        }
    }
    for (_, name) in &deleted {
        differences.push(format!("  the cluster would delete {kind} {name:?}"));
    }
    (added.len(), updated.len())
}

/// Sends one dry-run import. `Ok(None)`: the path does not exist (no v2
/// writes on this cluster).
async fn import(
    api: &V2<'_>,
    path: &str,
    body: &Value,
    scope: crate::client::auth::Scope,
) -> Result<Option<Value>, ApplyError> {
    let reply = api.call(Method::POST, path, Some(body), scope).await?;
    if reply.status.as_u16() == 404 {
        return Ok(None);
    }
    if reply.status.is_client_error() {
        return Err(ApplyError::DryRunRefused {
            path: path.to_owned(),
            status: reply.status.as_u16(),
            message: reply.message(),
        });
    }
    let bytes = reply.success(&Method::POST, path)?;
    let answer: Value = serde_json::from_slice(&bytes).map_err(|e| ApplyError::Answer {
        path: path.to_owned(),
        expected: "an import's answer (added, updated, deleted)",
        problem: e.to_string(),
    })?;
    Ok(Some(answer))
}

/// The v2 dry run. `Ok(None)`: the cluster has no v2 writes (use v1);
/// else what was checked, for the log.
pub(super) async fn v2(p: &Prepared) -> Result<Option<String>, ApplyError> {
    let api = V2 {
        http: &p.http,
        auth: &p.auth,
    };
    let index = p.index();
    let users = users(p, &index);
    let mut body = json!({
        "users": users.entries,
        "dry_run": true,
        "delete_unspecified_users": false,
    });
    if let Some(password) = &p.password {
        use secrecy::ExposeSecret;
        set(&mut body, "default_password", password.expose_secret());
    }
    // Sent even when empty: a cluster without v2 writes says so here.
    let Some(answer) = import(&api, USERS_IMPORT, &body, p.scope(PRIMARY_ORG_ID)).await? else {
        return Ok(None);
    };
    let mut differences = Vec::new();
    let user_keys = ["users_added", "users_updated", "users_deleted"];
    let (mut added, mut updated) = compare("user", &answer, user_keys, &users, &mut differences);
    for (org, groups) in groups(p, &index) {
        let body = json!({
            "groups": groups.entries,
            "dry_run": true,
            "delete_unspecified_groups": false,
        });
        let Some(answer) = import(&api, GROUPS_IMPORT, &body, p.scope(org)).await? else {
            return Ok(None);
        };
        let keys = ["groups_added", "groups_updated", "groups_deleted"];
        let (a, u) = compare("group", &answer, keys, &groups, &mut differences);
        added += a;
        updated += u;
    }
    if !differences.is_empty() {
        return Err(ApplyError::Disagrees {
            api: "REST v2 users/import and groups/import with dry_run",
            differences: differences.join("\n"),
        });
    }
    let deletions = (p.plan.changes.iter())
        .filter(|c| matches!(c, Change::DeleteUser { .. } | Change::DeleteGroup { .. }))
        .count();
    Ok(Some(format!(
        "the cluster's dry run (v2 imports) agrees: {added} to create, {updated} to update, none \
         deleted by them{}",
        match deletions {
            0 => String::new(),
            n => format!(
                "; the plan's {n} deletions are not in it (imports delete only what they do not \
                 list) and were checked against the cluster's state"
            ),
        }
    )))
}
