//! Writing the canonical snapshot, schema version 1.
//!
//! ```json
//! {
//!   "schema_version": 1,
//!   "source": {"cluster_id": "…", "cluster_url": "…", "release_version": "…",
//!              "api": "v2", "fetched_at": "2026-11-22T10:00:00Z"},
//!   "orgs":   [{"id": 0, "name": "Primary", "description": ""}],
//!   "users":  [{"id": "<guid>", "name": "ana", "display_name": "Ana", "email": "…",
//!               "visibility": "SHARABLE", "account_type": "LOCAL_USER",
//!               "account_status": "ACTIVE", "created": 1600000000000,
//!               "modified": 1600000060000, "org_ids": [0], "group_ids": ["<guid>"]}],
//!   "groups": [{"id": "<guid>", "name": "Finance", "display_name": "Finance",
//!               "description": "…", "type": "LOCAL_GROUP", "visibility": "SHARABLE",
//!               "created": …, "modified": …, "org_ids": [0],
//!               "parent_group_ids": ["<guid>"], "privileges": ["AUTHORING"]}]
//! }
//! ```
//! Times are milliseconds since 1970 (UTC). `group_ids` are direct
//! memberships, `parent_group_ids` the groups a group is directly nested in.
//! `derived_id: true` marks GUIDs ts-principals derived (v1 inputs). Absent
//! optional fields are omitted. Arrays are in canonical order, so the file is
//! byte-stable for the same principals.

use serde::Serialize;

use super::SCHEMA_VERSION;
use crate::model::{
    AccountStatus, AccountType, Group, GroupIx, GroupType, Millis, Org, Principals, User,
    Visibility,
};

#[derive(Serialize)]
struct Snapshot<'p> {
    schema_version: u64,
    source: SourceOut<'p>,
    orgs: Vec<OrgOut<'p>>,
    users: Vec<UserOut<'p>>,
    groups: Vec<GroupOut<'p>>,
}

#[derive(Serialize)]
struct SourceOut<'p> {
    cluster_id: &'p str,
    #[serde(skip_serializing_if = "Option::is_none")]
    cluster_url: Option<&'p str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    release_version: Option<&'p str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    api: Option<&'p str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fetched_at: Option<&'p str>,
}

#[derive(Serialize)]
struct OrgOut<'p> {
    id: i64,
    name: &'p str,
    description: &'p str,
}

fn is_false(b: &bool) -> bool {
    !*b
}

#[derive(Serialize)]
struct UserOut<'p> {
    id: &'p str,
    #[serde(skip_serializing_if = "is_false")]
    derived_id: bool,
    name: &'p str,
    display_name: &'p str,
    email: &'p str,
    #[serde(skip_serializing_if = "Option::is_none")]
    visibility: Option<&'p Visibility>,
    #[serde(skip_serializing_if = "Option::is_none")]
    account_type: Option<&'p AccountType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    account_status: Option<&'p AccountStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    created: Option<Millis>,
    #[serde(skip_serializing_if = "Option::is_none")]
    modified: Option<Millis>,
    org_ids: &'p [i64],
    group_ids: Vec<&'p str>,
}

#[derive(Serialize)]
struct GroupOut<'p> {
    id: &'p str,
    #[serde(skip_serializing_if = "is_false")]
    derived_id: bool,
    name: &'p str,
    display_name: &'p str,
    description: &'p str,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    group_type: Option<&'p GroupType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    visibility: Option<&'p Visibility>,
    #[serde(skip_serializing_if = "Option::is_none")]
    created: Option<Millis>,
    #[serde(skip_serializing_if = "Option::is_none")]
    modified: Option<Millis>,
    org_ids: &'p [i64],
    parent_group_ids: Vec<&'p str>,
    privileges: &'p [String],
}

/// A user as the snapshot writes it. Every field is named (no `..`), so a
/// field added to [`User`] does not compile until it is written or skipped.
fn user_out<'p>(user: &'p User, guid: &dyn Fn(&GroupIx) -> &'p str) -> UserOut<'p> {
    let User {
        id,
        derived_id,
        name,
        display_name,
        email,
        visibility,
        account_type,
        account_status,
        created,
        modified,
        org_ids,
        groups,
    } = user;
    UserOut {
        id,
        derived_id: *derived_id,
        name,
        display_name,
        email,
        visibility: visibility.as_ref(),
        account_type: account_type.as_ref(),
        account_status: account_status.as_ref(),
        created: *created,
        modified: *modified,
        org_ids,
        group_ids: groups.iter().map(guid).collect(),
    }
}

/// A group as the snapshot writes it; every field named, as for users.
fn group_out<'p>(group: &'p Group, guid: &dyn Fn(&GroupIx) -> &'p str) -> GroupOut<'p> {
    let Group {
        id,
        derived_id,
        name,
        display_name,
        description,
        group_type,
        visibility,
        created,
        modified,
        org_ids,
        parents,
        privileges,
    } = group;
    GroupOut {
        id,
        derived_id: *derived_id,
        name,
        display_name,
        description,
        group_type: group_type.as_ref(),
        visibility: visibility.as_ref(),
        created: *created,
        modified: *modified,
        org_ids,
        parent_group_ids: parents.iter().map(guid).collect(),
        privileges,
    }
}

/// The canonical snapshot of `principals` as pretty JSON with a trailing newline.
pub fn to_json(principals: &Principals) -> String {
    let p = principals;
    let guid = |ix: &GroupIx| p.group(*ix).id.as_str();
    let snapshot = Snapshot {
        schema_version: SCHEMA_VERSION,
        source: SourceOut {
            cluster_id: &p.source.cluster_id,
            cluster_url: p.source.cluster_url.as_deref(),
            release_version: p.source.release_version.as_deref(),
            api: p.source.api.as_deref(),
            fetched_at: p.source.fetched_at.as_deref(),
        },
        orgs: p
            .orgs
            .iter()
            .map(
                |Org {
                     id,
                     name,
                     description,
                 }| OrgOut {
                    id: *id,
                    name,
                    description,
                },
            )
            .collect(),
        users: p.users.iter().map(|u| user_out(u, &guid)).collect(),
        groups: p.groups.iter().map(|g| group_out(g, &guid)).collect(),
    };
    // Serializing plain structs of strings and numbers cannot fail.
    let mut json = serde_json::to_string_pretty(&snapshot).unwrap_or_default();
    json.push('\n');
    json
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_snapshot_is_in_canonical_form() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/principals.json");
        let text = std::fs::read_to_string(path).unwrap();
        let loaded =
            crate::input::load_bytes("principals.json", text.as_bytes(), &Default::default())
                .unwrap();
        assert_eq!(to_json(&loaded.principals), text);
    }

    #[test]
    fn raw_inputs_round_trip_through_the_snapshot() {
        for name in ["v2_combined.json", "v1_user_list.json"] {
            let path = format!("{}/tests/data/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
            let bytes = std::fs::read(path).unwrap();
            let first = crate::input::load_bytes(name, &bytes, &Default::default()).unwrap();
            let json = to_json(&first.principals);
            let again =
                crate::input::load_bytes("snapshot.json", json.as_bytes(), &Default::default())
                    .unwrap();
            assert_eq!(again.principals, first.principals, "{name}");
            assert_eq!(to_json(&again.principals), json, "{name}");
        }
    }
}
