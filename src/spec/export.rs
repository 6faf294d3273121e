//! `export-spec`: a cluster's principals written as a spec, so adopting
//! principals as code starts from what the cluster has: planning the export
//! against the same cluster shows no change.
//!
//! Every field the cluster reports is written (an empty description or
//! e-mail is left out: a field left out is not managed; so are privileges
//! read over REST v1, which does not report them), maps are sorted by
//! key, lists by name, and every string is a double-quoted YAML scalar. A
//! group's key is its name, or `NAME (ORG)` with a `name:` when groups of
//! one name live in several orgs.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use super::SPEC_VERSION;
use crate::model::{Group, Principals};
use crate::render::yaml::quote;

/// The org name of `id` in `principals`.
fn org_name(principals: &Principals, id: i64) -> String {
    (principals.orgs.iter())
        .find(|o| o.id == id)
        .map_or_else(|| format!("org {id}"), |o| o.name.clone())
}

/// The spec key of every group (by index): its name, unless another org has
/// a group of the same name.
pub fn group_keys(principals: &Principals) -> Vec<String> {
    let mut by_name: HashMap<&str, usize> = HashMap::new();
    for group in &principals.groups {
        *by_name.entry(group.name.as_str()).or_default() += 1;
    }
    let mut keys: Vec<String> = (principals.groups.iter())
        .map(|g| {
            if by_name[g.name.as_str()] > 1 {
                format!("{} ({})", g.name, org_name(principals, group_org(g)))
            } else {
                g.name.clone()
            }
        })
        .collect();
    // A group literally named like another's disambiguated key: number the
    // later ones so keys stay unique.
    let mut seen: HashMap<String, usize> = HashMap::new();
    for key in &mut keys {
        let n = seen.entry(key.clone()).or_default();
        *n += 1;
        if *n > 1 {
            *key = format!("{key} #{n}");
        }
    }
    keys
}

/// The org a group lives in (its first; Primary when it names none).
pub fn group_org(group: &Group) -> i64 {
    group
        .org_ids
        .first()
        .copied()
        .unwrap_or(crate::model::PRIMARY_ORG_ID)
}

fn list(out: &mut String, indent: &str, key: &str, items: &[String]) {
    if items.is_empty() {
        let _ = writeln!(out, "{indent}{key}: []");
        return;
    }
    let _ = writeln!(out, "{indent}{key}:");
    for item in items {
        let _ = writeln!(out, "{indent}  - {}", quote(item));
    }
}

fn field(out: &mut String, indent: &str, key: &str, value: &str) {
    let _ = writeln!(out, "{indent}{key}: {}", quote(value));
}

/// Whether the principals' source reports group privileges (REST v1's
/// `user/list` does not).
pub fn knows_privileges(principals: &Principals) -> bool {
    principals.source.api.as_deref() != Some("v1")
}

/// `principals` as a spec (YAML text).
pub fn export(principals: &Principals) -> String {
    let several_orgs = principals.orgs.len() > 1;
    // REST v1 does not report privileges: a spec must not claim there are none.
    let no_privileges = !knows_privileges(principals);
    let keys = group_keys(principals);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Principals of cluster {} as a ts-principals spec (export-spec).",
        principals.source.cluster_id.replace(['\n', '\r'], " ")
    );
    let _ = writeln!(
        out,
        "# Fields left out are not managed; `members: exact` makes a group's members exactly those listed."
    );
    let _ = writeln!(out, "version: {SPEC_VERSION}");
    let mut orgs: Vec<&str> = principals.orgs.iter().map(|o| o.name.as_str()).collect();
    orgs.sort_unstable();
    orgs.dedup();
    if orgs.is_empty() {
        out.push_str("orgs: {}\n");
    } else {
        out.push_str("orgs:\n");
        for org in orgs {
            let _ = writeln!(out, "  {}: {{}}", quote(org));
        }
    }
    let groups: BTreeMap<&str, &Group> = keys
        .iter()
        .map(String::as_str)
        .zip(principals.groups.iter())
        .collect();
    if groups.is_empty() {
        out.push_str("groups: {}\n");
    } else {
        out.push_str("groups:\n");
    }
    let key_of = |ix: crate::model::GroupIx| keys[ix.get()].clone();
    for (key, group) in &groups {
        let _ = writeln!(out, "  {}:", quote(key));
        let indent = "    ";
        if *key != group.name {
            field(&mut out, indent, "name", &group.name);
        }
        if several_orgs || group_org(group) != crate::model::PRIMARY_ORG_ID {
            field(
                &mut out,
                indent,
                "org",
                &org_name(principals, group_org(group)),
            );
        }
        field(&mut out, indent, "display_name", &group.display_name);
        if !group.description.is_empty() {
            field(&mut out, indent, "description", &group.description);
        }
        if let Some(t) = &group.group_type {
            field(&mut out, indent, "type", t.as_str());
        }
        if let Some(v) = &group.visibility {
            field(&mut out, indent, "visibility", v.as_str());
        }
        if !no_privileges {
            list(&mut out, indent, "privileges", &group.privileges);
        }
        let mut parents: Vec<String> = group.parents.iter().map(|&p| key_of(p)).collect();
        parents.sort_unstable();
        if !parents.is_empty() {
            list(&mut out, indent, "parents", &parents);
        }
    }
    let users: BTreeMap<&str, &crate::model::User> = principals
        .users
        .iter()
        .map(|u| (u.name.as_str(), u))
        .collect();
    if users.is_empty() {
        out.push_str("users: {}\n");
    } else {
        out.push_str("users:\n");
    }
    for (name, user) in users {
        let _ = writeln!(out, "  {}:", quote(name));
        let indent = "    ";
        field(&mut out, indent, "display_name", &user.display_name);
        if !user.email.is_empty() {
            field(&mut out, indent, "email", &user.email);
        }
        if let Some(v) = &user.visibility {
            field(&mut out, indent, "visibility", v.as_str());
        }
        if let Some(t) = &user.account_type {
            field(&mut out, indent, "account_type", t.as_str());
        }
        if several_orgs || user.org_ids != [crate::model::PRIMARY_ORG_ID] {
            let mut orgs: Vec<String> = user
                .org_ids
                .iter()
                .map(|&o| org_name(principals, o))
                .collect();
            orgs.sort_unstable();
            list(&mut out, indent, "orgs", &orgs);
        }
        let mut groups: Vec<String> = user.groups.iter().map(|&g| key_of(g)).collect();
        groups.sort_unstable();
        list(&mut out, indent, "groups", &groups);
    }
    out
}
