//! Applying a plan on clusters without REST v2 writes: one v1 `user/sync`
//! with every principal the plan touches in its new state, first with
//! `applyChanges=false` (the cluster's dry run), then `true`, with
//! `removeDeleted=false`, so what is not sent is left alone. A plan that
//! deletes (`--prune`) sends every other principal of the cluster as it is
//! too, with `removeDeleted=true`: the cluster's dry run must then delete
//! exactly the plan's deletions, or nothing is applied. v1 has no
//! privileges, orgs or account status in `user/sync`'s principal shape:
//! plans that change them are refused before anything is sent.

use std::collections::{BTreeMap, BTreeSet};

use reqwest::Method;
use secrecy::SecretString;
use serde_json::{Value, json};

use super::{ApplyError, Prepared, Stopped};
use crate::client::http::{Body, Request};
use crate::model::PRIMARY_ORG_ID;
use crate::plan::{Change, Member, Plan, label};

const SYNC: &str = "/callosum/v1/tspublic/v1/user/sync";

/// Refuses plans `user/sync` cannot carry out.
pub(super) fn supported(plan: &Plan) -> Result<(), ApplyError> {
    let mut refused = Vec::new();
    for change in &plan.changes {
        let why = match change {
            Change::CreateGroup { attrs, .. } if !attrs.privileges.is_empty() => Some("privileges"),
            Change::UpdateGroup {
                privileges_added,
                privileges_removed,
                ..
            } if !privileges_added.is_empty() || !privileges_removed.is_empty() => {
                Some("privileges")
            }
            Change::CreateUser { attrs, .. }
                if attrs.orgs.iter().any(|o| o.id != PRIMARY_ORG_ID) =>
            {
                Some("orgs")
            }
            Change::UpdateUser {
                orgs_added,
                orgs_removed,
                ..
            } if !orgs_added.is_empty() || !orgs_removed.is_empty() => Some("orgs"),
            Change::DeactivateUser { .. } => Some("deactivation"),
            _ => None,
        };
        if let Some(why) = why {
            refused.push(format!("{} ({why})", label(change)));
        }
    }
    if refused.is_empty() {
        return Ok(());
    }
    let shown: Vec<String> = refused.iter().take(10).cloned().collect();
    Err(ApplyError::Unsupported(format!(
        "the cluster has no REST v2 user and group writes, and REST v1 user/sync cannot apply {} \
         of the plan's changes: {}{}. Make those changes in ThoughtSpot's admin console, or plan \
         without them (leave privileges and orgs out of the spec; use --hide or --prune \
         rather than --deactivate)",
        refused.len(),
        shown.join("; "),
        if refused.len() > shown.len() {
            "; …"
        } else {
            ""
        }
    )))
}

/// Without REST v2 a user's objects cannot be listed: deleting a user is
/// refused unless the plan gives its objects to someone.
pub(super) fn owners_unknown(plan: &Plan) -> Result<(), ApplyError> {
    let blind: Vec<String> = (plan.changes.iter())
        .filter_map(|c| match c {
            Change::DeleteUser {
                name,
                transfer_to: None,
                ..
            } => Some(format!("{name:?}")),
            _ => None,
        })
        .collect();
    if blind.is_empty() {
        return Ok(());
    }
    Err(ApplyError::Unsupported(format!(
        "the cluster has no REST v2, so the objects of the users the plan deletes ({}) cannot be \
         listed, and user/sync would give them to tsadmin; make the plan again with --prune \
         --transfer-to USER",
        blind.join(", ")
    )))
}

/// A principal in `user/sync`'s shape.
struct Principal {
    name: String,
    display_name: String,
    description: String,
    email: String,
    kind: String,
    visibility: String,
    groups: BTreeSet<String>,
}

impl Principal {
    fn json(&self, group: bool) -> Value {
        let mut value = json!({
            "name": self.name,
            "displayName": self.display_name,
            "principalTypeEnum": self.kind,
            "groupNames": self.groups.iter().collect::<Vec<_>>(),
            "visibility": self.visibility,
        });
        if group {
            value["description"] = self.description.clone().into();
        } else {
            value["mail"] = self.email.clone().into();
        }
        value
    }
}

/// The principals the plan touches, in their new state: users and groups
/// by lower-case name, and the names the plan creates.
struct Desired {
    users: BTreeMap<String, Principal>,
    groups: BTreeMap<String, Principal>,
    new_users: BTreeSet<String>,
    new_groups: BTreeSet<String>,
    /// Lower-case names the plan deletes.
    deleted_users: BTreeSet<String>,
    deleted_groups: BTreeSet<String>,
    /// Lower-case names of the principals the plan changes (the others
    /// sent, when the plan deletes, are sent as they are).
    touched_users: BTreeSet<String>,
    touched_groups: BTreeSet<String>,
}

impl Desired {
    /// True when the plan deletes: `removeDeleted=true`, and every other
    /// principal is sent.
    fn prunes(&self) -> bool {
        !self.deleted_users.is_empty() || !self.deleted_groups.is_empty()
    }
}

fn desired(p: &Prepared) -> Desired {
    let index = p.index();
    let mut d = Desired {
        users: BTreeMap::new(),
        groups: BTreeMap::new(),
        new_users: BTreeSet::new(),
        new_groups: BTreeSet::new(),
        deleted_users: BTreeSet::new(),
        deleted_groups: BTreeSet::new(),
        touched_users: BTreeSet::new(),
        touched_groups: BTreeSet::new(),
    };
    let text = |v: Option<&str>| v.unwrap_or("").to_owned();
    let user = |d: &mut Desired, name: &str| -> Option<()> {
        let key = name.to_lowercase();
        if d.users.contains_key(&key) {
            return Some(());
        }
        let u = &p.principals.users[index.user(name)?];
        let groups = (u.groups.iter())
            .map(|g| p.principals.groups[g.get()].name.clone())
            .collect();
        d.users.insert(
            key,
            Principal {
                name: u.name.clone(),
                display_name: u.display_name.clone(),
                description: String::new(),
                email: u.email.clone(),
                kind: text(u.account_type.as_ref().map(|t| t.as_str())),
                visibility: text(u.visibility.as_ref().map(|v| v.as_str())),
                groups,
            },
        );
        Some(())
    };
    let group = |d: &mut Desired, org: i64, name: &str| -> Option<()> {
        let key = name.to_lowercase();
        if d.groups.contains_key(&key) {
            return Some(());
        }
        let g = &p.principals.groups[index.group(org, name)?];
        let groups = (g.parents.iter())
            .map(|x| p.principals.groups[x.get()].name.clone())
            .collect();
        d.groups.insert(
            key,
            Principal {
                name: g.name.clone(),
                display_name: g.display_name.clone(),
                description: g.description.clone(),
                email: String::new(),
                kind: (g.group_type.as_ref())
                    .map_or("LOCAL_GROUP", |t| t.as_str())
                    .to_owned(),
                visibility: text(g.visibility.as_ref().map(|v| v.as_str())),
                groups,
            },
        );
        Some(())
    };
    let set = |principal: &mut Principal, field: &str, value: &str| match field {
        "display_name" => principal.display_name = value.to_owned(),
        "description" => principal.description = value.to_owned(),
        "email" => principal.email = value.to_owned(),
        "visibility" => principal.visibility = value.to_owned(),
        "account_type" | "type" => principal.kind = value.to_owned(),
        _ => {}
    };
    for change in &p.plan.changes {
        match change {
            Change::CreateGroup { group, attrs } => {
                let key = group.name.to_lowercase();
                d.new_groups.insert(key.clone());
                d.groups.insert(
                    key,
                    Principal {
                        name: group.name.clone(),
                        display_name: attrs.display_name.clone(),
                        description: attrs.description.clone(),
                        email: String::new(),
                        kind: attrs.group_type.clone(),
                        visibility: attrs.visibility.clone(),
                        groups: BTreeSet::new(),
                    },
                );
            }
            Change::CreateUser { name, attrs } => {
                let key = name.to_lowercase();
                d.new_users.insert(key.clone());
                d.users.insert(
                    key,
                    Principal {
                        name: name.clone(),
                        display_name: attrs.display_name.clone(),
                        description: String::new(),
                        email: attrs.email.clone(),
                        kind: attrs.account_type.clone(),
                        visibility: attrs.visibility.clone(),
                        groups: BTreeSet::new(),
                    },
                );
            }
            Change::UpdateGroup {
                group: g, fields, ..
            } => {
                if group(&mut d, g.org.id, &g.name).is_some()
                    && let Some(x) = d.groups.get_mut(&g.name.to_lowercase())
                {
                    for f in fields {
                        set(x, &f.field, &f.new);
                    }
                }
            }
            Change::UpdateUser { name, fields, .. } => {
                if user(&mut d, name).is_some()
                    && let Some(x) = d.users.get_mut(&name.to_lowercase())
                {
                    for f in fields {
                        set(x, &f.field, &f.new);
                    }
                }
            }
            Change::AddMember { group: g, member } | Change::RemoveMember { group: g, member } => {
                let add = matches!(change, Change::AddMember { .. });
                let target = match member {
                    Member::User { name, .. } => {
                        user(&mut d, name);
                        d.users.get_mut(&name.to_lowercase())
                    }
                    Member::Group(child) => {
                        group(&mut d, child.org.id, &child.name);
                        d.groups.get_mut(&child.name.to_lowercase())
                    }
                };
                if let Some(x) = target {
                    if add {
                        x.groups.insert(g.name.clone());
                    } else {
                        x.groups.remove(&g.name);
                    }
                }
            }
            Change::HideUser {
                name, quarantine, ..
            } => {
                user(&mut d, name);
                if let Some(x) = d.users.get_mut(&name.to_lowercase()) {
                    x.visibility = "NON_SHARABLE".to_owned();
                    x.groups.insert(quarantine.name.clone());
                }
            }
            Change::HideGroup {
                group: g,
                quarantine,
                ..
            } => {
                group(&mut d, g.org.id, &g.name);
                if let Some(x) = d.groups.get_mut(&g.name.to_lowercase()) {
                    x.visibility = "NON_SHARABLE".to_owned();
                    x.groups.insert(quarantine.name.clone());
                }
            }
            Change::DeleteUser { name, .. } => {
                d.deleted_users.insert(name.to_lowercase());
            }
            Change::DeleteGroup { group } => {
                d.deleted_groups.insert(group.name.to_lowercase());
            }
            Change::DeactivateUser { .. } => {}
        }
    }
    d.touched_users = d.users.keys().cloned().collect();
    d.touched_groups = d.groups.keys().cloned().collect();
    if d.prunes() {
        // What a deletion changes besides: the members of deleted groups
        // (and of groups holding deleted users or groups), which lose them.
        for u in &p.principals.users {
            let in_doomed = (u.groups.iter()).any(|g| {
                (d.deleted_groups).contains(&p.principals.groups[g.get()].name.to_lowercase())
            });
            if in_doomed {
                d.touched_users.insert(u.name.to_lowercase());
            }
            if d.deleted_users.contains(&u.name.to_lowercase()) {
                for g in &u.groups {
                    (d.touched_groups).insert(p.principals.groups[g.get()].name.to_lowercase());
                }
            }
        }
        for g in &p.principals.groups {
            let name = g.name.to_lowercase();
            let parents: Vec<String> = (g.parents.iter())
                .map(|x| p.principals.groups[x.get()].name.to_lowercase())
                .collect();
            if parents.iter().any(|x| d.deleted_groups.contains(x)) {
                d.touched_groups.insert(name.clone());
            }
            if d.deleted_groups.contains(&name) {
                d.touched_groups.extend(parents);
            }
        }
        for u in &p.principals.users {
            if !d.deleted_users.contains(&u.name.to_lowercase()) {
                user(&mut d, &u.name);
            }
        }
        for g in &p.principals.groups {
            if !d.deleted_groups.contains(&g.name.to_lowercase()) {
                group(&mut d, crate::spec::export::group_org(g), &g.name);
            }
        }
        let doomed = d.deleted_groups.clone();
        for principal in d.users.values_mut().chain(d.groups.values_mut()) {
            principal
                .groups
                .retain(|g| !doomed.contains(&g.to_lowercase()));
        }
    }
    d
}

/// Sends `user/sync`; the answer's six name lists.
async fn sync(p: &Prepared, d: &Desired, apply: bool) -> Result<Value, SyncFailed> {
    crate::client::v1::sign_in(
        &p.http,
        &p.connection.credentials,
        "apply on a cluster without REST v2 writes",
    )
    .await
    .map_err(|e| SyncFailed::Client(e.into()))?;
    let principals: Vec<Value> = (d.groups.values().map(|g| g.json(true)))
        .chain(d.users.values().map(|u| u.json(false)))
        .collect();
    let principals = SecretString::from(Value::Array(principals).to_string());
    let apply = SecretString::from(apply.to_string());
    let remove = SecretString::from(d.prunes().to_string());
    let password = p
        .password
        .clone()
        .unwrap_or_else(|| SecretString::from(String::new()));
    let fields = [
        ("principals", &principals),
        ("applyChanges", &apply),
        ("removeDeleted", &remove),
        ("password", &password),
    ];
    let request = Request {
        method: Method::POST,
        path: SYNC,
        body: Body::Form(&fields),
        bearer: None,
        v1: true,
    };
    let reply = (p.http.send_once(&request, Default::default()).await)
        .map_err(|e| SyncFailed::Client(e.into()))?;
    if reply.status.is_client_error() {
        return Err(SyncFailed::Refused(format!(
            "{} (POST {SYNC}, HTTP {})",
            reply.message(),
            reply.status.as_u16()
        )));
    }
    let bytes = (reply.success(&Method::POST, SYNC)).map_err(|e| SyncFailed::Client(e.into()))?;
    serde_json::from_slice(&bytes).map_err(|e| {
        SyncFailed::Client(ApplyError::Answer {
            path: SYNC.to_owned(),
            expected: "user/sync's answer (usersAdded, …)",
            problem: e.to_string(),
        })
    })
}

enum SyncFailed {
    Refused(String),
    Client(ApplyError),
}

fn listed(answer: &Value, key: &str) -> BTreeSet<String> {
    (answer
        .get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten())
    .filter_map(Value::as_str)
    .map(str::to_lowercase)
    .collect()
}

/// The v1 dry run (`applyChanges=false`).
pub(super) async fn dry_run(p: &Prepared) -> Result<String, ApplyError> {
    let d = desired(p);
    let answer = match sync(p, &d, false).await {
        Ok(answer) => answer,
        Err(SyncFailed::Refused(message)) => {
            return Err(ApplyError::DryRunRefused {
                path: SYNC.to_owned(),
                status: 400,
                message,
            });
        }
        Err(SyncFailed::Client(e)) => return Err(e),
    };
    let mut differences = Vec::new();
    for (kind, touched, new, doomed, [added, updated, deleted]) in [
        (
            "user",
            &d.touched_users,
            &d.new_users,
            &d.deleted_users,
            ["usersAdded", "usersUpdated", "usersDeleted"],
        ),
        (
            "group",
            &d.touched_groups,
            &d.new_groups,
            &d.deleted_groups,
            ["groupsAdded", "groupsUpdated", "groupsDeleted"],
        ),
    ] {
        let added = listed(&answer, added);
        for name in added.difference(new) {
            differences.push(format!("  the cluster would also create {kind} {name:?}"));
        }
        for name in new.difference(&added) {
            differences.push(format!("  the cluster would not create {kind} {name:?}"));
        }
        for name in listed(&answer, updated) {
            if !touched.contains(&name) {
                differences.push(format!("  the cluster would also change {kind} {name:?}"));
            }
        }
        let deleted = listed(&answer, deleted);
        for name in deleted.difference(doomed) {
            differences.push(format!("  the cluster would also delete {kind} {name:?}"));
        }
        for name in doomed.difference(&deleted) {
            differences.push(format!("  the cluster would not delete {kind} {name:?}"));
        }
    }
    if !differences.is_empty() {
        return Err(ApplyError::Disagrees {
            api: "REST v1 user/sync with applyChanges=false",
            differences: differences.join("\n"),
        });
    }
    Ok(format!(
        "the cluster's dry run (v1 user/sync) agrees: {} users and {} groups changed, {} deleted{}",
        d.touched_users.len(),
        d.touched_groups.len(),
        d.deleted_users.len() + d.deleted_groups.len(),
        if d.prunes() {
            " (every other principal sent as it is, removeDeleted=true)"
        } else {
            ""
        }
    ))
}

/// Applies the plan in one `user/sync`.
pub(super) async fn apply(
    p: &Prepared,
    report: &mut dyn FnMut(&str),
) -> Result<Vec<String>, ApplyError> {
    let d = desired(p);
    let labels: Vec<String> = p.plan.changes.iter().map(label).collect();
    let mut transferred = Vec::new();
    for change in &p.plan.changes {
        if let Change::DeleteUser {
            name,
            transfer_to: Some(to),
            ..
        } = change
        {
            let options = crate::transfer::TransferOptions {
                from: name.clone(),
                to: to.clone(),
                dry_run: false,
            };
            if let Err(e) = crate::transfer::transfer(&p.connection, &options).await {
                return Err(ApplyError::Stopped(Box::new(Stopped {
                    applied: transferred,
                    failed: format!("the transfer of {name:?}'s objects to {to:?}"),
                    cause: e.to_string(),
                    unknown: e.is_cluster(),
                    not_attempted: labels.clone(),
                })));
            }
            transferred.push(format!("objects of {name:?} transferred to {to:?}"));
        }
    }
    let failed = |cause: String, unknown: bool| {
        ApplyError::Stopped(Box::new(Stopped {
            applied: transferred.clone(),
            failed: format!("REST v1 user/sync of {} changes", labels.len()),
            cause,
            unknown,
            not_attempted: labels.clone(),
        }))
    };
    match sync(p, &d, true).await {
        Ok(_) => {}
        Err(SyncFailed::Refused(message)) => return Err(failed(message, false)),
        Err(SyncFailed::Client(e)) => return Err(failed(e.to_string(), true)),
    }
    for l in &labels {
        report(l);
    }
    Ok(labels)
}
