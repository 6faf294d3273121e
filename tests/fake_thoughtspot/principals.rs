//! The write side of the fake's principals: users and groups created,
//! updated, deleted and imported through REST v2, synchronised through v1
//! `user/sync`, and the objects users own (moved by ownership transfer,
//! listed by `metadata/search`).
//!
//! # What the real API is (research)
//!
//! Sources: the OpenAPI spec of REST v2 in `thoughtspot/rest-api-sdk`
//! (`api-spec/openapiSpecv3-2_0.json`, release 26.8.0.cl: request and
//! response schemas, status codes), ThoughtSpot's v1 User API and group
//! docs (`/work/shared/reference/001`, `004`), the user admin guide (`002`,
//! password rules), and `thoughtspot/cs_tools` (how a ThoughtSpot-made client
//! calls v1 `user/sync`, reads its answer and transfers ownership).
//! Everything is `POST`. v2 errors are `ErrorResponse` `{"error": {...}}`
//! (the fake's shape: `{"error": {"message": {"code", "incident_id_guid",
//! "debug"}}}`); the spec lists 400, 401, 403 and 500 for every endpoint
//! below (404 for an unknown principal is the fake's choice [assumed]).
//!
//! ## REST v2 (documented in the spec unless marked)
//!
//! - `users/create` (`CreateUserRequest`): `name`, `display_name`, `email`
//!   required; `password`, `account_type` (LOCAL_USER default, LDAP_USER,
//!   SAML_USER, OIDC_USER, REMOTE_USER), `account_status` (ACTIVE default,
//!   INACTIVE, EXPIRED, LOCKED, PENDING, SUSPENDED), `org_identifiers`
//!   (org ids), `group_identifiers` (GUIDs or names), `visibility`
//!   (SHARABLE default, NON_SHARABLE), `notify_on_share`,
//!   `show_onboarding_experience`, `onboarding_experience_completed`,
//!   `home_liveboard_identifier`, `favorite_metadata`, `preferred_locale`,
//!   `extended_properties`, `extended_preferences`, `trigger_*_email`.
//!   200 with the `User` (the `users/search` item shape).
//! - `users/{user_identifier}/update` (GUID or name; `UpdateUserRequest`):
//!   `name`, `display_name`, `visibility`, `email`, `account_status`,
//!   `account_type`, `notify_on_share`, ..., `group_identifiers`,
//!   `org_identifiers`, `operation` ADD | REMOVE | REPLACE ("Type of update
//!   operation. Default operation type is REPLACE"). 204, no body. That the
//!   operation applies to the two lists only, each only when present, is
//!   [assumed].
//! - `users/{user_identifier}/delete`: no body; 204. The description says
//!   to remove a user from one org use update instead.
//! - `users/import` (`ImportUsersRequest`): `users` (required, `ImportUser`:
//!   `user_identifier` and `display_name` required; `password`,
//!   `account_type`, `account_status`, `email`, `org_identifiers`,
//!   `group_identifiers`, `visibility`, `notify_on_share`, ...),
//!   `default_password`, `dry_run` (**default true**), and
//!   `delete_unspecified_users` (default false; deletes the users not
//!   specified "excluding the tsadmin, guest, system and su users"). 200
//!   with `ImportUsersResponse` `{"users_added", "users_updated",
//!   "users_deleted"}`, each a list of `ImportUserType` `{"id" (nullable),
//!   "name"}`. The spec says a dry run "returns user IDs whose data will be
//!   edited".
//! - `groups/create` (`CreateUserGroupRequest`): `name` and `display_name`
//!   required; `description`, `privileges` (the enum of 004 and more),
//!   `sub_group_identifiers`, `type` (LOCAL_GROUP default, LDAP_GROUP,
//!   TEAM_GROUP, TENANT_GROUP), `user_identifiers`, `visibility`,
//!   `default_liveboard_identifiers`, `role_identifiers`. 200 with
//!   `UserGroupResponse` (the `groups/search` item shape).
//! - `groups/{group_identifier}/update` (`UpdateUserGroupRequest`): the same
//!   fields, all optional, plus `operation` (default REPLACE). 204.
//! - `groups/{group_identifier}/delete`: 204.
//! - `groups/import` (`ImportUserGroupsRequest`): `groups`
//!   (`GroupsImportListInput`: `group_identifier` and `display_name`
//!   required; `description`, `privileges`, `sub_group_identifiers`, `type`,
//!   `user_identifiers`, `visibility`, `default_liveboard_identifiers`),
//!   `delete_unspecified_groups` (default false; "excluding administrator
//!   and system user groups"), `dry_run` (**default true**). 200 with
//!   `ImportUserGroupsResponse` `{"groups_added", "groups_updated",
//!   "groups_deleted"}` (all three required), each a list of `{"id",
//!   "name"}`.
//! - Ownership: `security/metadata/assign` (`AssignChangeAuthorRequest`,
//!   "Transfers the ownership of one or several objects from one user to
//!   another"): `metadata` (required, `[{"identifier", "type"?}]`, type
//!   LIVEBOARD, ANSWER, LOGICAL_TABLE or CONNECTION), `user_identifier`
//!   (required, the new author), `current_owner_identifier` (optional: only
//!   objects authored by that user are changed). 204. cs_tools' `transfer`
//!   calls it once per object GUID.
//! - A user's objects: `metadata/search` takes `created_by_user_identifiers`
//!   (GUIDs or names, documented) and each item's `metadata_header` has
//!   `author` (GUID) and `authorName` (cs_tools reads both).
//!
//! ## REST v1 (reference 001, cs_tools)
//!
//! - `POST /callosum/v1/tspublic/v1/user/sync`, multipart/form-data:
//!   `principals` (a JSON array of principal objects as `user/list` gives
//!   them: `name`, `displayName`, `description`, `mail`,
//!   `principalTypeEnum`, `groupNames`, `visibility`, and `password` for a
//!   new LOCAL_USER), `applyChanges`, `removeDeleted`, `password`. cs_tools
//!   sends `principals` as a file part (`principals.json`,
//!   application/json) and reads the answer's `usersAdded`,
//!   `usersUpdated`, `usersDeleted`, `groupsAdded`, `groupsUpdated`,
//!   `groupsDeleted` (lists of names); on an error it reads `debug` as a
//!   JSON-encoded list of messages, and warns that deleted users' content
//!   goes to tsadmin. The defaults of `applyChanges` and `removeDeleted` are
//!   not documented: absent is false here [assumed].
//! - `POST /callosum/v1/tspublic/v1/user/transfer/ownership?fromUserName=
//!   &toUserName=`: all objects of one user to another; "You cannot
//!   transfer objects to or from the system user or the administrative
//!   user"; 204. cs_tools also sends `objectsID` (a JSON array of GUIDs) to
//!   move some objects only.
//!
//! # What the fake does
//!
//! The v2 data (`Data::users`, `Data::groups`) is the one truth. Writes run
//! on a copy and are kept only if the whole request succeeds (no partial
//! change, but see `principal_write_fail`). After each write the fake fixes
//! reference names, drops references to deleted principals, recomputes
//! `user_inherited_groups` (the groups whose `sub_groups` reach the user's
//! groups) and stamps `modification_time_in_millis` of every principal
//! whose record changed, or whose parent groups changed (a parent/child
//! edge is stored once, in the parent's `sub_groups`, but bumps both), with
//! a clock strictly above every time in the data and one more at each
//! write. New principals get fresh GUIDs and `creation_time_in_millis`.
//! Searches, `user/list` and `auth/session/user` see writes at once.
//!
//! Rules: usernames unique case-insensitively (the cluster over); group
//! names unique per org case-insensitively; identifiers are a GUID or a
//! name (case-insensitive); unknown identifiers refuse the request (404 for
//! the principal in the path, 400 inside a body). A v2 token of org N
//! creates groups in org N and users in org N (unless a Primary token names
//! `org_identifiers`); group identifiers resolve among org N's groups, and
//! a group's members must be users of its org. A Primary (org 0) token
//! reaches users of every org, another token its org's users only; only a
//! Primary token may change a user's orgs. A new LOCAL_USER needs a
//! password meeting 002 (8 characters or more, an upper-case and a
//! lower-case letter, a digit, a special character, not containing the
//! username); others need none (the complexity library and display-name
//! words are not checked). The group `All` (in any org) gets every new user
//! of its org; it cannot be deleted and no member can be removed from it
//! (REMOVE naming it is refused; REPLACE keeps it). `tsadmin`, `system`,
//! `su` and `guest` cannot be deleted and imports never prune them; group
//! imports and sync never prune `All`, `Administrator`, `System` or a
//! `system_group`. A group cannot contain itself and nesting cycles are
//! refused. Deleting a user who owns objects is refused ("owns N objects;
//! transfer ownership first") [assumed], except through v1 sync's
//! `removeDeleted`, which gives them to tsadmin as cs_tools warns. A token
//! of org N deleting a user who is in other orgs too removes the user from
//! org N (and its groups) only [assumed].
//!
//! Imports report as `updated` only the listed existing principals whose
//! record the import changes (the spec's "whose data will be edited")
//! [assumed; the cluster may list every one]; lists given in an import
//! entry replace (groups of the token's org for a user, members and
//! sub-groups for a group), absent ones are left alone [assumed]. v1 sync
//! sees every org's principals (as the fixture's `user/list` does), matches
//! them by name and kind, creates new ones in the Primary org, replaces a
//! user's groups (and parent groups of a group) with `groupNames` (a user
//! put into another org's group joins that org), leaves
//! `principalTypeEnum` of existing principals alone, and reports names.
//! `user/list` answers `Data::v1` kept in step with every write (entries of
//! changed principals rewritten, new ones appended, deleted ones removed)
//! or, without `Data::v1`, every principal rendered in v1 shape.
//!
//! Faults: [`super::Faults::principal_write_fail`],
//! [`super::Faults::dry_run_extra_delete`],
//! [`super::Faults::no_v2_writes`]. Test helpers: [`Shared::user`],
//! [`Shared::group`], [`Shared::principals`], [`Shared::behind_the_back`],
//! [`Shared::set_user_field`], [`Shared::set_group_field`],
//! [`Shared::add_member_behind_the_back`], [`Shared::delete_user_behind_the_back`],
//! [`Shared::give_objects`], [`Shared::owned_objects`],
//! [`Shared::principal_writes`], [`Shared::last_write_time`].

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{
    Data, OrgView, Seen, Shared, USERNAME, authorize, error, form_field, header_text, id_of,
    json_response, no_v2, org_id, orgs_of, pause, percent_decode, seen, session_of,
    v1_header_missing,
};

/// The GUID of the fake's signed-in account ([`USERNAME`]).
pub const ADMIN_GUID: &str = "59481331-ee53-42be-a548-bd87be6ddd4a";
/// The GUID objects go to when tsadmin is not among the users.
pub const TSADMIN_GUID: &str = "0000a11d-0000-4000-8000-00000000ad41";
/// Users that cannot be deleted and that imports never prune.
pub const PROTECTED_USERS: [&str; 4] = ["tsadmin", "system", "su", "guest"];
/// Users ownership cannot be transferred to or from.
pub const NO_TRANSFER_USERS: [&str; 2] = ["system", "tsadmin"];
/// The group every user is in.
pub const ALL_GROUP: &str = "All";
/// Groups that group imports and sync never prune.
pub const PROTECTED_GROUPS: [&str; 3] = ["All", "Administrator", "System"];
/// Group privileges the spec knows.
pub const PRIVILEGES: [&str; 36] = [
    "ADMINISTRATION",
    "AUTHORING",
    "USERDATAUPLOADING",
    "DATADOWNLOADING",
    "USERMANAGEMENT",
    "DATAMANAGEMENT",
    "SHAREWITHALL",
    "JOBSCHEDULING",
    "A3ANALYSIS",
    "EXPERIMENTALFEATUREPRIVILEGE",
    "BYPASSRLS",
    "RANALYSIS",
    "DEVELOPER",
    "USER_ADMINISTRATION",
    "GROUP_ADMINISTRATION",
    "SYNCMANAGEMENT",
    "CAN_CREATE_CATALOG",
    "DISABLE_PINBOARD_CREATION",
    "LIVEBOARD_VERIFIER",
    "PREVIEW_THOUGHTSPOT_SAGE",
    "CAN_MANAGE_VERSION_CONTROL",
    "THIRDPARTY_ANALYSIS",
    "ALLOW_NON_EMBED_FULL_APP_ACCESS",
    "CAN_ACCESS_ANALYST_STUDIO",
    "CAN_MANAGE_ANALYST_STUDIO",
    "CAN_MODIFY_FOLDERS",
    "CAN_MANAGE_VARIABLES",
    "CAN_VIEW_FOLDERS",
    "CAN_MANAGE_AGENTSPOT",
    "CAN_ACCESS_AGENTSPOT",
    "PREVIEW_DOCUMENT_SEARCH",
    "CAN_SETUP_VERSION_CONTROL",
    "CAN_DOWNLOAD_VISUALS",
    "CAN_DOWNLOAD_DETAILED_DATA",
    "CAN_USE_SPOTTER",
    "CAN_MANAGE_SPOTTER",
];
const ACCOUNT_TYPES: [&str; 5] = [
    "LOCAL_USER",
    "LDAP_USER",
    "SAML_USER",
    "OIDC_USER",
    "REMOTE_USER",
];
const ACCOUNT_STATUSES: [&str; 6] = [
    "ACTIVE",
    "INACTIVE",
    "EXPIRED",
    "LOCKED",
    "PENDING",
    "SUSPENDED",
];
const GROUP_TYPES: [&str; 4] = ["LOCAL_GROUP", "LDAP_GROUP", "TEAM_GROUP", "TENANT_GROUP"];
const VISIBILITIES: [&str; 2] = ["SHARABLE", "NON_SHARABLE"];

/// An object a user owns (is the author of).
#[derive(Clone, Debug, PartialEq)]
pub struct Owned {
    pub guid: String,
    pub name: String,
    /// Its `metadata_type`: LIVEBOARD, ANSWER, ...
    pub kind: String,
    pub org: i64,
    /// The author's GUID.
    pub author: String,
    pub created: i64,
    pub modified: i64,
}

/// The principals of a fake cluster and what they own.
pub struct Store {
    pub(super) data: Data,
    pub(super) views: HashMap<i64, Arc<OrgView>>,
    /// The last time handed out to a write.
    clock: i64,
    /// Principals and objects made so far (GUIDs are made from it).
    created: u64,
    owned: Vec<Owned>,
}

/// What a write changed: (GUID, name) pairs; names as they are after the
/// write, or were before a deletion.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Changes {
    pub users_added: Vec<(String, String)>,
    pub users_updated: Vec<(String, String)>,
    pub users_deleted: Vec<(String, String)>,
    pub groups_added: Vec<(String, String)>,
    pub groups_updated: Vec<(String, String)>,
    pub groups_deleted: Vec<(String, String)>,
}

/// A refusal: the status and message of the answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Fail {
    pub status: u16,
    pub message: String,
}

impl Fail {
    fn bad(message: impl Into<String>) -> Self {
        Fail {
            status: 400,
            message: message.into(),
        }
    }
    fn not_found(message: impl Into<String>) -> Self {
        Fail {
            status: 404,
            message: message.into(),
        }
    }
    fn forbidden(message: impl Into<String>) -> Self {
        Fail {
            status: 403,
            message: message.into(),
        }
    }
    fn internal(message: impl Into<String>) -> Self {
        Fail {
            status: 500,
            message: message.into(),
        }
    }

    /// As a v2 answer.
    fn v2(&self) -> Response {
        let code = match self.status {
            404 => 10004,
            403 => 10003,
            500 => 10005,
            _ => 10002,
        };
        error(
            StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST),
            code,
            &self.message,
        )
    }

    /// As a v1 answer: `{"type", "debug"}`, `debug` a JSON-encoded list of
    /// messages (as cs_tools reads it).
    fn v1(&self) -> Response {
        let kind = match self.status {
            404 => "NOT_FOUND",
            403 => "FORBIDDEN",
            500 => "INTERNAL_ERROR",
            _ => "INVALID_INPUT",
        };
        let debug = serde_json::to_string(&[&self.message]).expect("json");
        (
            StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST),
            axum::Json(json!({"type": kind, "debug": debug})),
        )
            .into_response()
    }
}

fn now_millis() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// Case-insensitive equality (usernames, group names).
fn same(a: &str, b: &str) -> bool {
    a == b || a.to_lowercase() == b.to_lowercase()
}

fn name_of(value: &Value) -> &str {
    value.get("name").and_then(Value::as_str).unwrap_or("")
}

fn guid_of(value: &Value) -> &str {
    id_of(value).unwrap_or("")
}

/// `{"id", "name"}` of a principal.
fn reference(value: &Value) -> Value {
    json!({"id": guid_of(value), "name": name_of(value)})
}

fn ref_ids(value: &Value, field: &str) -> Vec<String> {
    value
        .get(field)
        .and_then(Value::as_array)
        .map(|refs| {
            refs.iter()
                .filter_map(|r| id_of(r).map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn push_ref(value: &mut Value, field: &str, target: Value) {
    let id = guid_of(&target).to_owned();
    if !value.get(field).is_some_and(Value::is_array) {
        value[field] = json!([]);
    }
    let list = value[field].as_array_mut().expect("array");
    if !list.iter().any(|r| id_of(r) == Some(id.as_str())) {
        list.push(target);
    }
}

fn drop_ref(value: &mut Value, field: &str, id: &str) {
    if let Some(Value::Array(list)) = value.get_mut(field) {
        list.retain(|r| id_of(r) != Some(id));
    }
}

/// Every time in a principal (creation, modification; v1 created,
/// modified).
fn times_of(value: &Value) -> impl Iterator<Item = i64> + '_ {
    [
        "creation_time_in_millis",
        "modification_time_in_millis",
        "created",
        "modified",
    ]
    .into_iter()
    .filter_map(|k| value.get(k).and_then(Value::as_f64).map(|t| t as i64))
}

/// Whether `password` meets 002's rules for `username`, else why not.
pub fn check_password(username: &str, password: &str) -> Result<(), String> {
    let mut problems = Vec::new();
    if password.chars().count() < 8 {
        problems.push("be 8 characters or more");
    }
    if !password.chars().any(char::is_uppercase) {
        problems.push("include an upper-case letter");
    }
    if !password.chars().any(char::is_lowercase) {
        problems.push("include a lower-case letter");
    }
    if !password.chars().any(|c| c.is_ascii_digit()) {
        problems.push("include a number");
    }
    if !password.chars().any(|c| !c.is_alphanumeric()) {
        problems.push("include a special character");
    }
    if !username.is_empty() && password.to_lowercase().contains(&username.to_lowercase()) {
        problems.push("not contain the username");
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "Password for user {username} does not meet the password policy: it must {}",
            problems.join(", ")
        ))
    }
}

// ---------------------------------------------------------------------------
// The store
// ---------------------------------------------------------------------------

impl Store {
    /// A store over `data`.
    pub fn new(data: Data) -> Self {
        let clock = (data.users.iter().chain(&data.groups))
            .chain(data.v1.iter().flatten())
            .flat_map(times_of)
            .max()
            .unwrap_or(0);
        Store {
            data,
            views: HashMap::new(),
            clock,
            created: 0,
            owned: Vec::new(),
        }
    }

    /// Whether v1 was given (`Data::v1`).
    pub(super) fn serves_v1(&self) -> bool {
        self.data.v1.is_some()
    }

    /// `user/list`'s answer.
    pub(super) fn v1_list(&self) -> Vec<Value> {
        match &self.data.v1 {
            Some(list) => list.clone(),
            None => {
                let mut list: Vec<Value> = (self.data.groups.iter())
                    .map(|g| v1_entry(&self.data, g, true))
                    .collect();
                list.extend(
                    self.data
                        .users
                        .iter()
                        .map(|u| v1_entry(&self.data, u, false)),
                );
                list
            }
        }
    }

    /// Runs `op` on a copy of the principals as a token of `org` would; when
    /// it succeeds, works out what changed and, unless `dry`, stamps the
    /// changed principals and keeps the copy. `dry` changes nothing at all.
    pub(super) fn write<T>(
        &mut self,
        org: i64,
        dry: bool,
        op: impl FnOnce(&mut Work) -> Result<T, Fail>,
    ) -> Result<(T, Changes), Fail> {
        let mut work = Work {
            data: self.data.clone(),
            owned: self.owned.clone(),
            created: self.created,
            org,
        };
        let out = op(&mut work)?;
        fix_references(&mut work.data);
        let changes = diff(&self.data, &work.data);
        if dry {
            return Ok((out, changes));
        }
        let now = (self.clock + 1).max(now_millis());
        let stamp = |list: &mut Vec<Value>, ids: &[&(String, String)], created: bool| {
            let ids: HashSet<&str> = ids.iter().map(|(id, _)| id.as_str()).collect();
            for p in list.iter_mut().filter(|p| ids.contains(guid_of(p))) {
                p["modification_time_in_millis"] = json!(now);
                if created {
                    p["creation_time_in_millis"] = json!(now);
                }
            }
        };
        let added_users: Vec<_> = changes.users_added.iter().collect();
        let updated_users: Vec<_> = changes.users_updated.iter().collect();
        let added_groups: Vec<_> = changes.groups_added.iter().collect();
        let updated_groups: Vec<_> = changes.groups_updated.iter().collect();
        stamp(&mut work.data.users, &added_users, true);
        stamp(&mut work.data.users, &updated_users, false);
        stamp(&mut work.data.groups, &added_groups, true);
        stamp(&mut work.data.groups, &updated_groups, false);
        fix_inherited(&mut work.data);
        let before = std::mem::replace(&mut self.data, work.data);
        mirror_v1(&before, &mut self.data, &changes);
        self.owned = work.owned;
        self.created = work.created;
        self.clock = now;
        self.views.clear();
        Ok((out, changes))
    }

    fn user_index(&self, name: &str) -> Option<usize> {
        self.data.users.iter().position(|u| same(name_of(u), name))
    }

    /// The name of the user of GUID `guid` (tsadmin and the admin account
    /// also when they are not among the users).
    fn user_name(&self, guid: &str) -> Option<String> {
        if let Some(u) = self.data.users.iter().find(|u| guid_of(u) == guid) {
            return Some(name_of(u).to_owned());
        }
        match guid {
            TSADMIN_GUID => Some("tsadmin".into()),
            ADMIN_GUID => Some(USERNAME.into()),
            _ => None,
        }
    }

    /// GUIDs of the users `identifiers` (GUIDs or names) name; unknown ones
    /// name nobody.
    pub(super) fn author_ids(&self, identifiers: &[String]) -> HashSet<String> {
        identifiers
            .iter()
            .filter_map(|i| {
                if let Some(u) = (self.data.users.iter())
                    .find(|u| guid_of(u).eq_ignore_ascii_case(i) || same(name_of(u), i))
                {
                    return Some(guid_of(u).to_owned());
                }
                if same(i, USERNAME) || i.eq_ignore_ascii_case(ADMIN_GUID) {
                    return Some(ADMIN_GUID.to_owned());
                }
                if same(i, "tsadmin") || i.eq_ignore_ascii_case(TSADMIN_GUID) {
                    return Some(TSADMIN_GUID.to_owned());
                }
                None
            })
            .collect()
    }
}

/// A principal as v1 `user/list` has it.
fn v1_entry(data: &Data, p: &Value, group: bool) -> Value {
    let visibility = match p.get("visibility").and_then(Value::as_str) {
        Some("NON_SHARABLE") => "NON_SHARABLE",
        _ => "DEFAULT",
    };
    let group_names: Vec<&str> = if group {
        parents_of(data, guid_of(p))
            .into_iter()
            .map(|i| name_of(&data.groups[i]))
            .collect()
    } else {
        p.get("user_groups")
            .and_then(Value::as_array)
            .map(|refs| refs.iter().map(name_of).collect())
            .unwrap_or_default()
    };
    let kind = if group {
        p.get("type")
            .and_then(Value::as_str)
            .unwrap_or("LOCAL_GROUP")
    } else {
        p.get("account_type")
            .and_then(Value::as_str)
            .unwrap_or("LOCAL_USER")
    };
    json!({
        "name": name_of(p),
        "displayName": p.get("display_name").cloned().unwrap_or(Value::Null),
        "description": p.get("description").cloned().unwrap_or(Value::Null),
        "mail": if group { Value::Null } else { p.get("email").cloned().unwrap_or(Value::Null) },
        "principalTypeEnum": kind,
        "groupNames": group_names,
        "visibility": visibility,
        "created": p.get("creation_time_in_millis").cloned().unwrap_or(Value::Null),
        "modified": p.get("modification_time_in_millis").cloned().unwrap_or(Value::Null),
    })
}

fn is_group_entry(entry: &Value) -> bool {
    entry
        .get("principalTypeEnum")
        .and_then(Value::as_str)
        .is_some_and(|t| t.ends_with("_GROUP"))
}

/// Keeps `after.v1` (when given) in step with a write.
fn mirror_v1(before: &Data, after: &mut Data, changes: &Changes) {
    let Some(mut list) = after.v1.take() else {
        return;
    };
    let old_name = |list: &[Value], id: &str| -> Option<String> {
        list.iter()
            .find(|p| guid_of(p) == id)
            .map(|p| name_of(p).to_owned())
    };
    let position = |list: &[Value], name: &str, group: bool| {
        list.iter()
            .position(|e| is_group_entry(e) == group && same(name_of(e), name))
    };
    for (kind_deleted, group, olds) in [
        (&changes.users_deleted, false, &before.users),
        (&changes.groups_deleted, true, &before.groups),
    ] {
        for (id, _) in kind_deleted {
            if let Some(name) = old_name(olds, id)
                && let Some(i) = position(&list, &name, group)
            {
                list.remove(i);
            }
        }
    }
    for (updated, group, olds, news) in [
        (&changes.users_updated, false, &before.users, &after.users),
        (&changes.groups_updated, true, &before.groups, &after.groups),
    ] {
        for (id, _) in updated {
            let (Some(name), Some(now)) =
                (old_name(olds, id), news.iter().find(|p| guid_of(p) == id))
            else {
                continue;
            };
            let fresh = v1_entry(after, now, group);
            match position(&list, &name, group) {
                Some(i) => {
                    for key in [
                        "name",
                        "displayName",
                        "description",
                        "mail",
                        "groupNames",
                        "visibility",
                        "modified",
                    ] {
                        if key == "description" && !group && list[i].get(key).is_none() {
                            continue;
                        }
                        list[i][key] = fresh[key].clone();
                    }
                }
                None => list.push(fresh),
            }
        }
    }
    for (added, group, news) in [
        (&changes.groups_added, true, &after.groups),
        (&changes.users_added, false, &after.users),
    ] {
        for (id, _) in added {
            if let Some(now) = news.iter().find(|p| guid_of(p) == id) {
                list.push(v1_entry(after, now, group));
            }
        }
    }
    after.v1 = Some(list);
}

/// Indices of the groups whose `sub_groups` hold group `id`.
fn parents_of(data: &Data, id: &str) -> Vec<usize> {
    (0..data.groups.len())
        .filter(|&i| {
            ref_ids(&data.groups[i], "sub_groups")
                .iter()
                .any(|c| c == id)
        })
        .collect()
}

/// Reference names as the principals are named now; references to
/// principals that are gone dropped.
fn fix_references(data: &mut Data) {
    let users: HashMap<String, String> = (data.users.iter())
        .map(|u| (guid_of(u).to_owned(), name_of(u).to_owned()))
        .collect();
    let groups: HashMap<String, String> = (data.groups.iter())
        .map(|g| (guid_of(g).to_owned(), name_of(g).to_owned()))
        .collect();
    let fix = |p: &mut Value, field: &str, names: &HashMap<String, String>| {
        if let Some(Value::Array(refs)) = p.get_mut(field) {
            refs.retain(|r| id_of(r).is_some_and(|id| names.contains_key(id)));
            for r in refs.iter_mut() {
                let name = &names[id_of(r).expect("id")];
                if r.get("name").and_then(Value::as_str) != Some(name.as_str()) {
                    r["name"] = json!(name);
                }
            }
        }
    };
    for u in &mut data.users {
        fix(u, "user_groups", &groups);
        fix(u, "user_inherited_groups", &groups);
    }
    for g in &mut data.groups {
        fix(g, "sub_groups", &groups);
        fix(g, "users", &users);
    }
}

/// `user_inherited_groups` worked out again: the groups whose sub-groups
/// reach a user's groups, not its own groups; kept as they are when the
/// set is the same. Users without the field get none.
fn fix_inherited(data: &mut Data) {
    let mut parents: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, g) in data.groups.iter().enumerate() {
        for child in ref_ids(g, "sub_groups") {
            parents.entry(child).or_default().push(i);
        }
    }
    let groups = &data.groups;
    for u in &mut data.users {
        if u.get("user_inherited_groups").is_none() {
            continue;
        }
        let direct: HashSet<String> = ref_ids(u, "user_groups").into_iter().collect();
        let mut found: Vec<usize> = Vec::new();
        let mut stack: Vec<String> = direct.iter().cloned().collect();
        let mut seen: HashSet<String> = direct.clone();
        while let Some(id) = stack.pop() {
            for &p in parents.get(&id).map(Vec::as_slice).unwrap_or(&[]) {
                let pid = guid_of(&groups[p]).to_owned();
                if seen.insert(pid.clone()) {
                    found.push(p);
                    stack.push(pid);
                }
            }
        }
        let now: HashSet<String> = ref_ids(u, "user_inherited_groups").into_iter().collect();
        let wanted: HashSet<String> = found
            .iter()
            .map(|&p| guid_of(&groups[p]).to_owned())
            .collect();
        if now != wanted {
            found.sort_by(|a, b| name_of(&groups[*a]).cmp(name_of(&groups[*b])));
            u["user_inherited_groups"] =
                Value::Array(found.iter().map(|&p| reference(&groups[p])).collect());
        }
    }
}

/// What changed from `before` to `after`, by GUID. A principal is updated
/// when its record (bar modification time and inherited groups) or, for a
/// group, its set of parent groups differs.
fn diff(before: &Data, after: &Data) -> Changes {
    let strip = |p: &Value| {
        let mut p = p.clone();
        if let Some(map) = p.as_object_mut() {
            map.remove("modification_time_in_millis");
            map.remove("user_inherited_groups");
        }
        p
    };
    let pair = |p: &Value| (guid_of(p).to_owned(), name_of(p).to_owned());
    let mut changes = Changes::default();
    let old_users: HashMap<&str, &Value> = before.users.iter().map(|u| (guid_of(u), u)).collect();
    let new_users: HashSet<&str> = after.users.iter().map(guid_of).collect();
    for u in &after.users {
        match old_users.get(guid_of(u)) {
            None => changes.users_added.push(pair(u)),
            Some(old) if strip(old) != strip(u) => changes.users_updated.push(pair(u)),
            Some(_) => {}
        }
    }
    for u in &before.users {
        if !new_users.contains(guid_of(u)) {
            changes.users_deleted.push(pair(u));
        }
    }
    let parent_set = |data: &Data| -> HashMap<String, HashSet<String>> {
        let mut map: HashMap<String, HashSet<String>> = HashMap::new();
        for g in &data.groups {
            for child in ref_ids(g, "sub_groups") {
                map.entry(child).or_default().insert(guid_of(g).to_owned());
            }
        }
        map
    };
    let (old_parents, new_parents) = (parent_set(before), parent_set(after));
    let empty = HashSet::new();
    let old_groups: HashMap<&str, &Value> = before.groups.iter().map(|g| (guid_of(g), g)).collect();
    let new_groups: HashSet<&str> = after.groups.iter().map(guid_of).collect();
    for g in &after.groups {
        let id = guid_of(g);
        match old_groups.get(id) {
            None => changes.groups_added.push(pair(g)),
            Some(old)
                if strip(old) != strip(g)
                    || old_parents.get(id).unwrap_or(&empty)
                        != new_parents.get(id).unwrap_or(&empty) =>
            {
                changes.groups_updated.push(pair(g))
            }
            Some(_) => {}
        }
    }
    for g in &before.groups {
        if !new_groups.contains(guid_of(g)) {
            changes.groups_deleted.push(pair(g));
        }
    }
    changes
}

// ---------------------------------------------------------------------------
// Operations on a working copy
// ---------------------------------------------------------------------------

/// A write in progress: a copy of the principals and owned objects, as a
/// token of `org` changes them.
pub struct Work {
    pub data: Data,
    pub owned: Vec<Owned>,
    created: u64,
    /// The org of the token writing.
    pub org: i64,
}

fn text<'a>(body: &'a Value, key: &str) -> Result<Option<&'a str>, Fail> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(Fail::bad(format!("{key} must be a string, not {other}"))),
    }
}

fn required<'a>(body: &'a Value, key: &str) -> Result<&'a str, Fail> {
    match text(body, key)? {
        Some(s) if !s.trim().is_empty() || key == "email" => Ok(s),
        _ => Err(Fail::bad(format!("{key} is required"))),
    }
}

fn strings(body: &Value, key: &str) -> Result<Option<Vec<String>>, Fail> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                Value::Number(n) => Ok(n.to_string()),
                other => Err(Fail::bad(format!("{key} must hold strings, not {other}"))),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(other) => Err(Fail::bad(format!("{key} must be an array, not {other}"))),
    }
}

fn one_of<'a>(body: &'a Value, key: &str, allowed: &[&str]) -> Result<Option<&'a str>, Fail> {
    match text(body, key)? {
        Some(v) if !allowed.contains(&v) => Err(Fail::bad(format!(
            "Invalid {key} {v}: expected one of {}",
            allowed.join(", ")
        ))),
        other => Ok(other),
    }
}

fn flag(body: &Value, key: &str) -> Result<Option<bool>, Fail> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(Fail::bad(format!(
            "{key} must be true or false, not {other}"
        ))),
    }
}

/// `operation` of an update.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    Add,
    Remove,
    Replace,
}

fn operation(body: &Value) -> Result<Operation, Fail> {
    match one_of(body, "operation", &["ADD", "REMOVE", "REPLACE"])? {
        Some("ADD") => Ok(Operation::Add),
        Some("REMOVE") => Ok(Operation::Remove),
        _ => Ok(Operation::Replace),
    }
}

impl Work {
    fn new_guid(&mut self, kind: u32) -> String {
        self.created += 1;
        format!(
            "{kind:04x}{:04x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            fastrand::u16(..),
            fastrand::u16(..),
            fastrand::u16(..0x1000),
            fastrand::u16(..0x1000),
            self.created
        )
    }

    fn now_guess(&self) -> i64 {
        now_millis()
    }

    /// The org `identifier` (id or name) names.
    fn resolve_org(&self, identifier: &str) -> Option<i64> {
        if self.data.orgs.is_empty() {
            return (identifier == "0" || same(identifier, "Primary")).then_some(0);
        }
        self.data
            .orgs
            .iter()
            .find(|o| {
                org_id(o).is_some_and(|id| id.to_string() == identifier)
                    || same(name_of(o), identifier)
            })
            .and_then(org_id)
    }

    fn org_ref(&self, org: i64) -> Value {
        let name = (self.data.orgs.iter())
            .find(|o| org_id(o) == Some(org))
            .map(|o| name_of(o).to_owned())
            .unwrap_or_else(|| {
                if org == 0 {
                    "Primary".into()
                } else {
                    org.to_string()
                }
            });
        json!({"id": org, "name": name})
    }

    /// The user `identifier` (GUID or name) names, among org `scope`'s
    /// users (any org: `None`).
    pub fn find_user(&self, identifier: &str, scope: Option<i64>) -> Option<usize> {
        let users = &self.data.users;
        let fits = |i: &usize| scope.is_none_or(|org| orgs_of(&users[*i]).contains(&org));
        (0..users.len())
            .filter(fits)
            .find(|&i| guid_of(&users[i]).eq_ignore_ascii_case(identifier))
            .or_else(|| {
                (0..users.len())
                    .filter(fits)
                    .find(|&i| same(name_of(&users[i]), identifier))
            })
    }

    /// The group `identifier` (GUID or name) names among org `scope`'s
    /// groups (any org, Primary's first: `None`).
    pub fn find_group(&self, identifier: &str, scope: Option<i64>) -> Option<usize> {
        let groups = &self.data.groups;
        let fits = |i: &usize| scope.is_none_or(|org| orgs_of(&groups[*i]).contains(&org));
        let by_id = (0..groups.len())
            .filter(fits)
            .find(|&i| guid_of(&groups[i]).eq_ignore_ascii_case(identifier));
        if by_id.is_some() {
            return by_id;
        }
        let named: Vec<usize> = (0..groups.len())
            .filter(fits)
            .filter(|&i| same(name_of(&groups[i]), identifier))
            .collect();
        named
            .iter()
            .copied()
            .find(|&i| orgs_of(&groups[i]).contains(&0))
            .or(named.first().copied())
    }

    /// The users scope of this token: all for a Primary token, else its org.
    fn user_scope(&self) -> Option<i64> {
        (self.org != 0).then_some(self.org)
    }

    fn user_or_404(&self, identifier: &str) -> Result<usize, Fail> {
        self.find_user(identifier, self.user_scope())
            .ok_or_else(|| Fail::not_found(format!("User {identifier} not found")))
    }

    fn group_or_404(&self, identifier: &str) -> Result<usize, Fail> {
        self.find_group(identifier, Some(self.org)).ok_or_else(|| {
            Fail::not_found(format!("Group {identifier} not found in org {}", self.org))
        })
    }

    /// Groups of the token's org, by identifier; all unknown ones named in
    /// the error.
    fn groups_in_org(
        &self,
        identifiers: &[String],
        scope: Option<i64>,
    ) -> Result<Vec<usize>, Fail> {
        let mut found = Vec::new();
        let mut unknown = Vec::new();
        for id in identifiers {
            match self.find_group(id, scope) {
                Some(i) => found.push(i),
                None => unknown.push(id.as_str()),
            }
        }
        if unknown.is_empty() {
            Ok(found)
        } else {
            Err(Fail::bad(format!(
                "Unknown group(s): {}",
                unknown.join(", ")
            )))
        }
    }

    fn users_in_org(&self, identifiers: &[String], scope: Option<i64>) -> Result<Vec<usize>, Fail> {
        let mut found = Vec::new();
        let mut unknown = Vec::new();
        for id in identifiers {
            match self.find_user(id, scope) {
                Some(i) => found.push(i),
                None => unknown.push(id.as_str()),
            }
        }
        if unknown.is_empty() {
            Ok(found)
        } else {
            Err(Fail::bad(format!(
                "Unknown user(s): {}",
                unknown.join(", ")
            )))
        }
    }

    fn orgs_named(&self, identifiers: &[String]) -> Result<Vec<i64>, Fail> {
        let mut found = Vec::new();
        for id in identifiers {
            match self.resolve_org(id) {
                Some(o) => {
                    if !found.contains(&o) {
                        found.push(o)
                    }
                }
                None => return Err(Fail::bad(format!("Unknown org {id}"))),
            }
        }
        if self.org != 0 && found.iter().any(|&o| o != self.org) {
            return Err(Fail::forbidden(format!(
                "A token of org {} cannot place users in other orgs",
                self.org
            )));
        }
        Ok(found)
    }

    fn is_all(&self, g: usize) -> bool {
        name_of(&self.data.groups[g]) == ALL_GROUP
    }

    /// Puts user `u` in group `g` (both sides).
    pub fn add_member(&mut self, g: usize, u: usize) -> Result<(), Fail> {
        let group_orgs = orgs_of(&self.data.groups[g]);
        if !orgs_of(&self.data.users[u])
            .iter()
            .any(|o| group_orgs.contains(o))
        {
            return Err(Fail::bad(format!(
                "User {} is not in the org of group {}",
                name_of(&self.data.users[u]),
                name_of(&self.data.groups[g])
            )));
        }
        let user_ref = reference(&self.data.users[u]);
        let group_ref = reference(&self.data.groups[g]);
        push_ref(&mut self.data.groups[g], "users", user_ref);
        push_ref(&mut self.data.users[u], "user_groups", group_ref);
        Ok(())
    }

    /// Takes user `u` out of group `g` (both sides); never out of `All`.
    pub fn remove_member(&mut self, g: usize, u: usize) -> Result<(), Fail> {
        let (gid, uid) = (
            guid_of(&self.data.groups[g]).to_owned(),
            guid_of(&self.data.users[u]).to_owned(),
        );
        let member = ref_ids(&self.data.users[u], "user_groups").contains(&gid)
            || ref_ids(&self.data.groups[g], "users").contains(&uid);
        if !member {
            return Ok(());
        }
        if self.is_all(g) {
            return Err(Fail::bad(format!(
                "Cannot remove {} from the All group",
                name_of(&self.data.users[u])
            )));
        }
        drop_ref(&mut self.data.groups[g], "users", &uid);
        drop_ref(&mut self.data.users[u], "user_groups", &gid);
        Ok(())
    }

    fn descendants(&self, g: usize) -> HashSet<String> {
        let mut seen = HashSet::new();
        let mut stack = vec![guid_of(&self.data.groups[g]).to_owned()];
        while let Some(id) = stack.pop() {
            if let Some(group) = self.data.groups.iter().find(|x| guid_of(x) == id) {
                for child in ref_ids(group, "sub_groups") {
                    if seen.insert(child.clone()) {
                        stack.push(child);
                    }
                }
            }
        }
        seen
    }

    /// Makes group `child` a sub-group of `parent`: never itself, never a
    /// cycle.
    pub fn add_sub_group(&mut self, parent: usize, child: usize) -> Result<(), Fail> {
        let (p, c) = (&self.data.groups[parent], &self.data.groups[child]);
        if parent == child {
            return Err(Fail::bad(format!(
                "Group {} cannot contain itself",
                name_of(p)
            )));
        }
        if self.descendants(child).contains(guid_of(p)) {
            return Err(Fail::bad(format!(
                "Making {} a sub-group of {} would make a cycle",
                name_of(c),
                name_of(p)
            )));
        }
        let child_ref = reference(c);
        push_ref(&mut self.data.groups[parent], "sub_groups", child_ref);
        Ok(())
    }

    pub fn remove_sub_group(&mut self, parent: usize, child: usize) {
        let id = guid_of(&self.data.groups[child]).to_owned();
        drop_ref(&mut self.data.groups[parent], "sub_groups", &id);
    }

    /// The groups of org `org` user `u` is directly in.
    fn groups_of_user_in(&self, u: usize, org: Option<i64>) -> Vec<usize> {
        let ids = ref_ids(&self.data.users[u], "user_groups");
        (0..self.data.groups.len())
            .filter(|&g| ids.iter().any(|id| id == guid_of(&self.data.groups[g])))
            .filter(|&g| org.is_none_or(|o| orgs_of(&self.data.groups[g]).contains(&o)))
            .collect()
    }

    /// Sets user `u`'s groups (of org `org`, any: `None`) by `op`.
    fn change_user_groups(
        &mut self,
        u: usize,
        groups: &[usize],
        op: Operation,
        org: Option<i64>,
    ) -> Result<(), Fail> {
        match op {
            Operation::Add => {
                for &g in groups {
                    self.add_member(g, u)?;
                }
            }
            Operation::Remove => {
                for &g in groups {
                    self.remove_member(g, u)?;
                }
            }
            Operation::Replace => {
                for g in self.groups_of_user_in(u, org) {
                    if !groups.contains(&g) && !self.is_all(g) {
                        self.remove_member(g, u)?;
                    }
                }
                for &g in groups {
                    self.add_member(g, u)?;
                }
            }
        }
        Ok(())
    }

    /// Sets user `u`'s orgs by `op`; leaving an org leaves its groups.
    fn change_user_orgs(&mut self, u: usize, orgs: &[i64], op: Operation) -> Result<(), Fail> {
        let now = orgs_of(&self.data.users[u]);
        let wanted: Vec<i64> = match op {
            Operation::Add => now
                .iter()
                .chain(orgs)
                .copied()
                .fold(Vec::new(), |mut v, o| {
                    if !v.contains(&o) {
                        v.push(o)
                    }
                    v
                }),
            Operation::Remove => now.iter().copied().filter(|o| !orgs.contains(o)).collect(),
            Operation::Replace => orgs.to_vec(),
        };
        if wanted.is_empty() {
            return Err(Fail::bad(format!(
                "User {} must stay in at least one org",
                name_of(&self.data.users[u])
            )));
        }
        for org in now.iter().filter(|o| !wanted.contains(o)) {
            for g in self.groups_of_user_in(u, Some(*org)) {
                let uid = guid_of(&self.data.users[u]).to_owned();
                let gid = guid_of(&self.data.groups[g]).to_owned();
                drop_ref(&mut self.data.groups[g], "users", &uid);
                drop_ref(&mut self.data.users[u], "user_groups", &gid);
            }
        }
        if wanted != now {
            let refs: Vec<Value> = wanted.iter().map(|&o| self.org_ref(o)).collect();
            self.data.users[u]["orgs"] = Value::Array(refs);
            self.data.users[u]["current_org"] = self.org_ref(wanted[0]);
            for &o in wanted.iter().filter(|o| !now.contains(o)) {
                self.join_all_group(u, o);
            }
        }
        Ok(())
    }

    /// Puts user `u` in org `org`'s All group, if it has one.
    fn join_all_group(&mut self, u: usize, org: i64) {
        if let Some(g) = (0..self.data.groups.len())
            .find(|&g| self.is_all(g) && orgs_of(&self.data.groups[g]).contains(&org))
        {
            let _ = self.add_member(g, u);
        }
    }

    /// Objects user `u` owns.
    fn owned_count(&self, u: usize) -> usize {
        let id = guid_of(&self.data.users[u]);
        self.owned.iter().filter(|o| o.author == id).count()
    }

    /// Deletes user `u` (a token of another org than Primary: takes it out
    /// of that org only, when it is in others too). Owners refused unless
    /// `give_to_tsadmin`. Indices of users after `u` move down by one when
    /// it is removed.
    pub fn delete_user(&mut self, u: usize, give_to_tsadmin: bool) -> Result<(), Fail> {
        let name = name_of(&self.data.users[u]).to_owned();
        if PROTECTED_USERS.iter().any(|p| same(p, &name)) {
            return Err(Fail::bad(format!("User {name} cannot be deleted")));
        }
        let orgs = orgs_of(&self.data.users[u]);
        if self.org != 0 && orgs.len() > 1 && orgs.contains(&self.org) {
            let rest: Vec<i64> = orgs.iter().copied().filter(|&o| o != self.org).collect();
            return self.change_user_orgs(u, &rest, Operation::Replace);
        }
        let n = self.owned_count(u);
        let id = guid_of(&self.data.users[u]).to_owned();
        if n > 0 {
            if !give_to_tsadmin {
                return Err(Fail::bad(format!(
                    "User {name} owns {n} objects; transfer ownership first"
                )));
            }
            let tsadmin = (self.data.users.iter())
                .find(|x| same(name_of(x), "tsadmin"))
                .map(|x| guid_of(x).to_owned())
                .unwrap_or_else(|| TSADMIN_GUID.to_owned());
            for o in self.owned.iter_mut().filter(|o| o.author == id) {
                o.author = tsadmin.clone();
            }
        }
        for g in &mut self.data.groups {
            drop_ref(g, "users", &id);
        }
        self.data.users.remove(u);
        Ok(())
    }

    /// Deletes group `g` (never All); its references go with it.
    pub fn delete_group(&mut self, g: usize) -> Result<(), Fail> {
        if self.is_all(g) {
            return Err(Fail::bad("The All group cannot be deleted"));
        }
        let id = guid_of(&self.data.groups[g]).to_owned();
        for u in &mut self.data.users {
            drop_ref(u, "user_groups", &id);
            drop_ref(u, "user_inherited_groups", &id);
        }
        for other in &mut self.data.groups {
            drop_ref(other, "sub_groups", &id);
        }
        self.data.groups.remove(g);
        Ok(())
    }

    /// A new user record (no groups yet) in `orgs`.
    fn new_user(
        &mut self,
        name: &str,
        display_name: &str,
        orgs: &[i64],
        fields: &Value,
    ) -> Result<usize, Fail> {
        if let Some(i) = self.find_user(name, None) {
            return Err(Fail::bad(format!(
                "User {name} already exists (as {})",
                name_of(&self.data.users[i])
            )));
        }
        let account_type = one_of(fields, "account_type", &ACCOUNT_TYPES)?.unwrap_or("LOCAL_USER");
        let id = self.new_guid(1);
        let now = self.now_guess();
        let user = json!({
            "id": id,
            "name": name,
            "display_name": display_name,
            "visibility": one_of(fields, "visibility", &VISIBILITIES)?.unwrap_or("SHARABLE"),
            "author_id": ADMIN_GUID,
            "can_change_password": account_type == "LOCAL_USER",
            "complete_detail": true,
            "creation_time_in_millis": now,
            "current_org": self.org_ref(orgs[0]),
            "deleted": false,
            "deprecated": false,
            "account_type": account_type,
            "account_status": one_of(fields, "account_status", &ACCOUNT_STATUSES)?.unwrap_or("ACTIVE"),
            "email": text(fields, "email")?.unwrap_or(""),
            "expiration_time_in_millis": null,
            "external": false,
            "favorite_metadata": [],
            "first_login_time_in_millis": 0,
            "group_mask": 14,
            "hidden": false,
            "home_liveboard": null,
            "incomplete_details": [],
            "is_first_login": true,
            "modification_time_in_millis": now,
            "modifier_id": ADMIN_GUID,
        });
        let rest = json!({
            "notify_on_share": flag(fields, "notify_on_share")?.unwrap_or(true),
            "onboarding_experience_completed": flag(fields, "onboarding_experience_completed")?.unwrap_or(false),
            "orgs": orgs.iter().map(|&o| self.org_ref(o)).collect::<Vec<_>>(),
            "owner_id": id,
            "parent_type": "USER",
            "privileges": [],
            "show_onboarding_experience": flag(fields, "show_onboarding_experience")?.unwrap_or(true),
            "super_user": false,
            "system_user": false,
            "tags": [],
            "tenant_id": "982d6da9-9cd1-479e-b9a6-35aa05f9282a",
            "user_groups": [],
            "user_inherited_groups": [],
            "welcome_email_sent": false,
            "org_privileges": null,
            "preferred_locale": fields.get("preferred_locale").cloned().unwrap_or(Value::Null),
            "extended_properties": fields.get("extended_properties").cloned().unwrap_or(Value::Null),
            "extended_preferences": fields.get("extended_preferences").cloned().unwrap_or(Value::Null),
        });
        let mut user = user;
        if let (Some(map), Value::Object(rest)) = (user.as_object_mut(), rest) {
            map.extend(rest);
        }
        self.data.users.push(user);
        let u = self.data.users.len() - 1;
        for &o in orgs {
            self.join_all_group(u, o);
        }
        Ok(u)
    }

    /// Sets the plain fields of user `u` that `fields` has.
    fn set_user_fields(&mut self, u: usize, fields: &Value, display_key: &str) -> Result<(), Fail> {
        if let Some(name) = text(fields, "name")? {
            if let Some(other) = self.find_user(name, None)
                && other != u
            {
                return Err(Fail::bad(format!("User {name} already exists")));
            }
            self.data.users[u]["name"] = json!(name);
        }
        let mut set = |key: &str, value: Option<Value>| {
            if let Some(value) = value {
                self.data.users[u][key] = value;
            }
        };
        set("display_name", text(fields, display_key)?.map(|s| json!(s)));
        set("email", text(fields, "email")?.map(|s| json!(s)));
        set(
            "visibility",
            one_of(fields, "visibility", &VISIBILITIES)?.map(|s| json!(s)),
        );
        set(
            "account_status",
            one_of(fields, "account_status", &ACCOUNT_STATUSES)?.map(|s| json!(s)),
        );
        set(
            "account_type",
            one_of(fields, "account_type", &ACCOUNT_TYPES)?.map(|s| json!(s)),
        );
        for key in [
            "notify_on_share",
            "show_onboarding_experience",
            "onboarding_experience_completed",
        ] {
            set(key, flag(fields, key)?.map(Value::Bool));
        }
        for key in [
            "preferred_locale",
            "extended_properties",
            "extended_preferences",
        ] {
            set(key, fields.get(key).filter(|v| !v.is_null()).cloned());
        }
        Ok(())
    }

    /// A new group record (no members) in the token's org.
    fn new_group(&mut self, name: &str, display_name: &str) -> Result<usize, Fail> {
        if self
            .find_group(name, Some(self.org))
            .is_some_and(|g| same(name_of(&self.data.groups[g]), name))
        {
            return Err(Fail::bad(format!(
                "Group {name} already exists in org {}",
                self.org
            )));
        }
        let id = self.new_guid(2);
        let now = self.now_guess();
        let group = json!({
            "id": id,
            "name": name,
            "display_name": display_name,
            "description": null,
            "type": "LOCAL_GROUP",
            "visibility": "SHARABLE",
            "creation_time_in_millis": now,
            "modification_time_in_millis": now,
            "author_id": ADMIN_GUID,
            "owner_id": id,
            "deleted": false,
            "deprecated": false,
            "external": false,
            "hidden": false,
            "system_group": false,
            "complete_detail": true,
            "parent_type": "GROUP",
            "privileges": [],
            "default_liveboards": [],
            "tags": [],
            "roles": [],
            "orgs": [self.org_ref(self.org)],
            "sub_groups": [],
            "users": [],
            "generation_number": 1,
            "index": 0,
            "index_version": 0,
            "metadata_version": 0,
            "modifier_id": ADMIN_GUID,
        });
        self.data.groups.push(group);
        Ok(self.data.groups.len() - 1)
    }

    /// Sets the plain fields of group `g` that `fields` has (privileges by
    /// `op`).
    fn set_group_fields(&mut self, g: usize, fields: &Value, op: Operation) -> Result<(), Fail> {
        if let Some(name) = text(fields, "name")? {
            if let Some(other) = self.find_group(name, Some(self.org))
                && other != g
                && same(name_of(&self.data.groups[other]), name)
            {
                return Err(Fail::bad(format!(
                    "Group {name} already exists in org {}",
                    self.org
                )));
            }
            if self.is_all(g) && name != ALL_GROUP {
                return Err(Fail::bad("The All group cannot be renamed"));
            }
            self.data.groups[g]["name"] = json!(name);
        }
        let mut set = |key: &str, value: Option<Value>| {
            if let Some(value) = value {
                self.data.groups[g][key] = value;
            }
        };
        set(
            "display_name",
            text(fields, "display_name")?.map(|s| json!(s)),
        );
        set(
            "description",
            text(fields, "description")?.map(|s| json!(s)),
        );
        set(
            "visibility",
            one_of(fields, "visibility", &VISIBILITIES)?.map(|s| json!(s)),
        );
        set(
            "type",
            one_of(fields, "type", &GROUP_TYPES)?.map(|s| json!(s)),
        );
        if let Some(ids) = strings(fields, "default_liveboard_identifiers")? {
            set(
                "default_liveboards",
                Some(json!(
                    ids.iter()
                        .map(|i| json!({"id": i, "name": null}))
                        .collect::<Vec<_>>()
                )),
            );
        }
        if let Some(ids) = strings(fields, "role_identifiers")? {
            set(
                "roles",
                Some(json!(
                    ids.iter()
                        .map(|i| json!({"id": i, "name": i}))
                        .collect::<Vec<_>>()
                )),
            );
        }
        if let Some(privileges) = strings(fields, "privileges")? {
            if let Some(bad) = privileges
                .iter()
                .find(|p| !PRIVILEGES.contains(&p.as_str()))
            {
                return Err(Fail::bad(format!("Invalid privilege {bad}")));
            }
            let mut now: Vec<String> = self.data.groups[g]
                .get("privileges")
                .and_then(Value::as_array)
                .map(|v| {
                    v.iter()
                        .filter_map(|p| p.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            match op {
                Operation::Add => {
                    for p in privileges {
                        if !now.contains(&p) {
                            now.push(p);
                        }
                    }
                }
                Operation::Remove => now.retain(|p| !privileges.contains(p)),
                Operation::Replace => now = privileges,
            }
            self.data.groups[g]["privileges"] = json!(now);
        }
        Ok(())
    }

    /// Sets group `g`'s members by `op` (never dropping one from All).
    fn change_members(&mut self, g: usize, users: &[usize], op: Operation) -> Result<(), Fail> {
        match op {
            Operation::Add => users.iter().try_for_each(|&u| self.add_member(g, u)),
            Operation::Remove => users.iter().try_for_each(|&u| self.remove_member(g, u)),
            Operation::Replace => {
                let ids = ref_ids(&self.data.groups[g], "users");
                let now: Vec<usize> = (0..self.data.users.len())
                    .filter(|&u| ids.iter().any(|id| id == guid_of(&self.data.users[u])))
                    .collect();
                for u in now {
                    if !users.contains(&u) {
                        self.remove_member(g, u)?;
                    }
                }
                users.iter().try_for_each(|&u| self.add_member(g, u))
            }
        }
    }

    /// Sets group `g`'s sub-groups by `op`.
    fn change_sub_groups(
        &mut self,
        g: usize,
        children: &[usize],
        op: Operation,
    ) -> Result<(), Fail> {
        match op {
            Operation::Add => children.iter().try_for_each(|&c| self.add_sub_group(g, c)),
            Operation::Remove => {
                children.iter().for_each(|&c| self.remove_sub_group(g, c));
                Ok(())
            }
            Operation::Replace => {
                self.drop_sub_groups_but(g, children);
                children.iter().try_for_each(|&c| self.add_sub_group(g, c))
            }
        }
    }

    fn drop_sub_groups_but(&mut self, g: usize, keep: &[usize]) {
        let keep: Vec<String> = keep
            .iter()
            .map(|&c| guid_of(&self.data.groups[c]).to_owned())
            .collect();
        if let Some(Value::Array(list)) = self.data.groups[g].get_mut("sub_groups") {
            list.retain(|r| id_of(r).is_some_and(|id| keep.iter().any(|k| k == id)));
        }
    }
}

// ---------------------------------------------------------------------------
// The requests, as operations on a working copy
// ---------------------------------------------------------------------------

fn new_password(name: &str, account_type: &str, given: Option<&str>) -> Result<(), Fail> {
    if account_type != "LOCAL_USER" {
        return Ok(());
    }
    match given {
        None | Some("") => Err(Fail::bad(format!(
            "A password is required to create the LOCAL_USER {name}"
        ))),
        Some(p) => check_password(name, p).map_err(Fail::bad),
    }
}

/// `users/create`: the new user's GUID.
pub fn create_user(w: &mut Work, body: &Value) -> Result<String, Fail> {
    let name = required(body, "name")?;
    let display_name = required(body, "display_name")?;
    required(body, "email")?;
    let account_type = one_of(body, "account_type", &ACCOUNT_TYPES)?.unwrap_or("LOCAL_USER");
    let orgs = match strings(body, "org_identifiers")? {
        Some(ids) if !ids.is_empty() => w.orgs_named(&ids)?,
        _ => vec![w.org],
    };
    let groups = w.groups_in_org(
        &strings(body, "group_identifiers")?.unwrap_or_default(),
        Some(w.org),
    )?;
    new_password(name, account_type, text(body, "password")?)?;
    let u = w.new_user(name, display_name, &orgs, body)?;
    for g in groups {
        w.add_member(g, u)?;
    }
    Ok(guid_of(&w.data.users[u]).to_owned())
}

/// `users/{id}/update`.
pub fn update_user(w: &mut Work, identifier: &str, body: &Value) -> Result<(), Fail> {
    let u = w.user_or_404(identifier)?;
    let op = operation(body)?;
    let groups = match strings(body, "group_identifiers")? {
        Some(ids) => Some(w.groups_in_org(&ids, Some(w.org))?),
        None => None,
    };
    let orgs = match strings(body, "org_identifiers")? {
        Some(_) if w.org != 0 => {
            return Err(Fail::forbidden(
                "Only a Primary org token can change a user's orgs",
            ));
        }
        Some(ids) => Some(w.orgs_named(&ids)?),
        None => None,
    };
    w.set_user_fields(u, body, "display_name")?;
    if let Some(orgs) = orgs {
        w.change_user_orgs(u, &orgs, op)?;
    }
    if let Some(groups) = groups {
        if op == Operation::Remove && groups.iter().any(|&g| w.is_all(g)) {
            return Err(Fail::bad("Members cannot be removed from the All group"));
        }
        w.change_user_groups(u, &groups, op, Some(w.org))?;
    }
    Ok(())
}

/// `users/{id}/delete`.
pub fn delete_user(w: &mut Work, identifier: &str) -> Result<(), Fail> {
    let u = w.user_or_404(identifier)?;
    w.delete_user(u, false)
}

/// `groups/create`: the new group's GUID.
pub fn create_group(w: &mut Work, body: &Value) -> Result<String, Fail> {
    let name = required(body, "name")?;
    let display_name = required(body, "display_name")?;
    let users = w.users_in_org(
        &strings(body, "user_identifiers")?.unwrap_or_default(),
        Some(w.org),
    )?;
    let children = w.groups_in_org(
        &strings(body, "sub_group_identifiers")?.unwrap_or_default(),
        Some(w.org),
    )?;
    let g = w.new_group(name, display_name)?;
    let mut fields = body.clone();
    if let Some(map) = fields.as_object_mut() {
        map.remove("name");
    }
    w.set_group_fields(g, &fields, Operation::Replace)?;
    for u in users {
        w.add_member(g, u)?;
    }
    for c in children {
        w.add_sub_group(g, c)?;
    }
    Ok(guid_of(&w.data.groups[g]).to_owned())
}

/// `groups/{id}/update`.
pub fn update_group(w: &mut Work, identifier: &str, body: &Value) -> Result<(), Fail> {
    let g = w.group_or_404(identifier)?;
    let op = operation(body)?;
    let users = match strings(body, "user_identifiers")? {
        Some(ids) => Some(w.users_in_org(&ids, Some(w.org))?),
        None => None,
    };
    let children = match strings(body, "sub_group_identifiers")? {
        Some(ids) => Some(w.groups_in_org(&ids, Some(w.org))?),
        None => None,
    };
    w.set_group_fields(g, body, op)?;
    if let Some(users) = users {
        w.change_members(g, &users, op)?;
    }
    if let Some(children) = children {
        w.change_sub_groups(g, &children, op)?;
    }
    Ok(())
}

/// `groups/{id}/delete`.
pub fn delete_group(w: &mut Work, identifier: &str) -> Result<(), Fail> {
    let g = w.group_or_404(identifier)?;
    w.delete_group(g)
}

/// What an import or sync did beyond the diff: the GUIDs it listed, and
/// users it took out of the token's org (reported deleted).
#[derive(Debug, Default)]
pub struct Report {
    listed: HashSet<String>,
    removed_from_org: Vec<(String, String)>,
}

fn entries<'a>(body: &'a Value, key: &str) -> Result<&'a Vec<Value>, Fail> {
    match body.get(key) {
        Some(Value::Array(items)) => Ok(items),
        _ => Err(Fail::bad(format!("{key} is required: an array"))),
    }
}

/// `users/import` (whatever `dry_run` says: the caller decides). The user
/// named `frozen` is left as it is (the `principal_write_fail` fault).
pub fn import_users(w: &mut Work, body: &Value, frozen: Option<&str>) -> Result<Report, Fail> {
    let items = entries(body, "users")?;
    let default_password = text(body, "default_password")?;
    let prune = flag(body, "delete_unspecified_users")?.unwrap_or(false);
    let mut report = Report::default();
    let mut named: Vec<String> = Vec::new();
    for item in items {
        let identifier = required(item, "user_identifier")?;
        required(item, "display_name")?;
        if named.iter().any(|n| same(n, identifier)) {
            return Err(Fail::bad(format!("User {identifier} is listed twice")));
        }
        named.push(identifier.to_owned());
    }
    for item in items {
        let identifier = required(item, "user_identifier")?;
        let existing = w.find_user(identifier, None);
        let name = existing.map_or(identifier.to_owned(), |u| {
            name_of(&w.data.users[u]).to_owned()
        });
        if frozen.is_some_and(|f| same(f, &name)) {
            if let Some(u) = existing {
                report.listed.insert(guid_of(&w.data.users[u]).to_owned());
            }
            continue;
        }
        let groups = match strings(item, "group_identifiers")? {
            Some(ids) => Some(w.groups_in_org(&ids, Some(w.org))?),
            None => None,
        };
        let orgs = match strings(item, "org_identifiers")? {
            Some(ids) if !ids.is_empty() => Some(w.orgs_named(&ids)?),
            _ => None,
        };
        let u = match existing {
            Some(u) => {
                let mut fields = item.clone();
                if let Some(map) = fields.as_object_mut() {
                    map.remove("name");
                }
                w.set_user_fields(u, &fields, "display_name")?;
                match &orgs {
                    Some(orgs) => w.change_user_orgs(u, orgs, Operation::Replace)?,
                    None if !orgs_of(&w.data.users[u]).contains(&w.org) => {
                        w.change_user_orgs(u, &[w.org], Operation::Add)?
                    }
                    None => {}
                }
                u
            }
            None => {
                let account_type =
                    one_of(item, "account_type", &ACCOUNT_TYPES)?.unwrap_or("LOCAL_USER");
                new_password(
                    identifier,
                    account_type,
                    text(item, "password")?.or(default_password),
                )?;
                let orgs = orgs.unwrap_or_else(|| vec![w.org]);
                w.new_user(identifier, required(item, "display_name")?, &orgs, item)?
            }
        };
        if let Some(groups) = groups {
            w.change_user_groups(u, &groups, Operation::Replace, Some(w.org))?;
        }
        report.listed.insert(guid_of(&w.data.users[u]).to_owned());
    }
    if prune {
        let doomed: Vec<String> = (w.data.users.iter())
            .filter(|u| orgs_of(u).contains(&w.org))
            .filter(|u| !report.listed.contains(guid_of(u)))
            .filter(|u| !PROTECTED_USERS.iter().any(|p| same(p, name_of(u))))
            .filter(|u| !frozen.is_some_and(|f| same(f, name_of(u))))
            .map(|u| guid_of(u).to_owned())
            .collect();
        let mut owners = Vec::new();
        for id in &doomed {
            let u = w
                .data
                .users
                .iter()
                .position(|x| guid_of(x) == id)
                .expect("user");
            let n = w.owned_count(u);
            let only_here = w.org == 0 || orgs_of(&w.data.users[u]).len() == 1;
            if n > 0 && only_here {
                owners.push(format!("{} owns {n} objects", name_of(&w.data.users[u])));
            }
        }
        if !owners.is_empty() {
            return Err(Fail::bad(format!(
                "Cannot delete unspecified users: {}; transfer ownership first",
                owners.join(", ")
            )));
        }
        for id in doomed {
            let u = w
                .data
                .users
                .iter()
                .position(|x| guid_of(x) == id)
                .expect("user");
            let pair = (id.clone(), name_of(&w.data.users[u]).to_owned());
            let leaves_org_only = w.org != 0 && orgs_of(&w.data.users[u]).len() > 1;
            w.delete_user(u, false)?;
            if leaves_org_only {
                report.removed_from_org.push(pair);
            }
        }
    }
    Ok(report)
}

fn protected_group(g: &Value) -> bool {
    PROTECTED_GROUPS.iter().any(|p| same(p, name_of(g)))
        || g.get("system_group").and_then(Value::as_bool) == Some(true)
}

/// `groups/import`. The group named `frozen` is left as it is.
pub fn import_groups(w: &mut Work, body: &Value, frozen: Option<&str>) -> Result<Report, Fail> {
    let items = entries(body, "groups")?;
    let prune = flag(body, "delete_unspecified_groups")?.unwrap_or(false);
    let mut report = Report::default();
    let mut named: Vec<String> = Vec::new();
    for item in items {
        let identifier = required(item, "group_identifier")?;
        required(item, "display_name")?;
        if named.iter().any(|n| same(n, identifier)) {
            return Err(Fail::bad(format!("Group {identifier} is listed twice")));
        }
        named.push(identifier.to_owned());
    }
    // Every group first, then memberships: entries may name each other.
    let mut placed: Vec<Option<(usize, &Value)>> = Vec::new();
    for item in items {
        let identifier = required(item, "group_identifier")?;
        let existing = w.find_group(identifier, Some(w.org));
        let name = existing.map_or(identifier.to_owned(), |g| {
            name_of(&w.data.groups[g]).to_owned()
        });
        if frozen.is_some_and(|f| same(f, &name)) {
            if let Some(g) = existing {
                report.listed.insert(guid_of(&w.data.groups[g]).to_owned());
            }
            placed.push(None);
            continue;
        }
        let g = match existing {
            Some(g) => g,
            None => w.new_group(identifier, required(item, "display_name")?)?,
        };
        let mut fields = item.clone();
        if let Some(map) = fields.as_object_mut() {
            map.remove("name");
        }
        w.set_group_fields(g, &fields, Operation::Replace)?;
        report.listed.insert(guid_of(&w.data.groups[g]).to_owned());
        placed.push(Some((g, item)));
    }
    let mut additions = Vec::new();
    for (g, item) in placed.into_iter().flatten() {
        if let Some(ids) = strings(item, "user_identifiers")? {
            let users = w.users_in_org(&ids, Some(w.org))?;
            w.change_members(g, &users, Operation::Replace)?;
        }
        if let Some(ids) = strings(item, "sub_group_identifiers")? {
            let children = w.groups_in_org(&ids, Some(w.org))?;
            w.drop_sub_groups_but(g, &children);
            additions.push((g, children));
        }
    }
    for (g, children) in additions {
        for c in children {
            w.add_sub_group(g, c)?;
        }
    }
    if prune {
        let doomed: Vec<String> = (w.data.groups.iter())
            .filter(|g| orgs_of(g).contains(&w.org))
            .filter(|g| !report.listed.contains(guid_of(g)) && !protected_group(g))
            .filter(|g| !frozen.is_some_and(|f| same(f, name_of(g))))
            .map(|g| guid_of(g).to_owned())
            .collect();
        for id in doomed {
            let g = w
                .data
                .groups
                .iter()
                .position(|x| guid_of(x) == id)
                .expect("group");
            w.delete_group(g)?;
        }
    }
    Ok(report)
}

fn v1_visibility(principal: &Value) -> Option<&'static str> {
    match principal.get("visibility").and_then(Value::as_str) {
        Some("NON_SHARABLE") => Some("NON_SHARABLE"),
        Some(_) => Some("SHARABLE"),
        None => None,
    }
}

/// v1 `user/sync` (whatever `applyChanges` says). Principals named
/// `frozen` are left as they are.
pub fn sync(
    w: &mut Work,
    principals: &[Value],
    remove_deleted: bool,
    password: Option<&str>,
    frozen: Option<&str>,
) -> Result<(Report, Report), Fail> {
    let mut users = Report::default();
    let mut groups = Report::default();
    let mut seen: Vec<(String, bool)> = Vec::new();
    for p in principals {
        let name = required(p, "name")?;
        let kind = required(p, "principalTypeEnum")?;
        let group = if kind.ends_with("_GROUP") {
            true
        } else if kind.ends_with("_USER") {
            false
        } else {
            return Err(Fail::bad(format!(
                "Invalid principalTypeEnum {kind} of {name}"
            )));
        };
        if seen.iter().any(|(n, g)| *g == group && same(n, name)) {
            return Err(Fail::bad(format!("Principal {name} is listed twice")));
        }
        seen.push((name.to_owned(), group));
    }
    let is_frozen = |name: &str| frozen.is_some_and(|f| same(f, name));
    let v1_fields = |p: &Value, group: bool| -> Value {
        let mut fields =
            json!({"display_name": p.get("displayName").cloned().unwrap_or(Value::Null)});
        if let Some(v) = v1_visibility(p) {
            fields["visibility"] = json!(v);
        }
        if group {
            fields["description"] = p.get("description").cloned().unwrap_or(Value::Null);
        } else if let Some(mail) = p.get("mail").and_then(Value::as_str) {
            fields["email"] = json!(mail);
        }
        fields
    };
    // Groups, then users, then memberships.
    let primary = w.org;
    for p in principals.iter().filter(|p| is_group_entry(p)) {
        let name = name_of(p);
        let g = match w
            .find_group(name, None)
            .filter(|&g| same(name_of(&w.data.groups[g]), name))
        {
            Some(g) => g,
            None if is_frozen(name) => continue,
            None => {
                w.org = 0;
                let display = p
                    .get("displayName")
                    .and_then(Value::as_str)
                    .unwrap_or(name)
                    .to_owned();
                let g = w.new_group(name, &display)?;
                w.org = primary;
                let kind = p
                    .get("principalTypeEnum")
                    .and_then(Value::as_str)
                    .unwrap_or("LOCAL_GROUP");
                if GROUP_TYPES.contains(&kind) {
                    w.data.groups[g]["type"] = json!(kind);
                }
                g
            }
        };
        groups.listed.insert(guid_of(&w.data.groups[g]).to_owned());
        if !is_frozen(name) {
            let fields = v1_fields(p, true);
            let old = w.org;
            w.org = orgs_of(&w.data.groups[g])[0];
            let result = w.set_group_fields(g, &fields, Operation::Replace);
            w.org = old;
            result?;
        }
    }
    for p in principals.iter().filter(|p| !is_group_entry(p)) {
        let name = name_of(p);
        let u = match w.find_user(name, None) {
            Some(u) => {
                if !is_frozen(name) {
                    w.set_user_fields(u, &v1_fields(p, false), "display_name")?;
                }
                u
            }
            None if is_frozen(name) => continue,
            None => {
                let kind = p
                    .get("principalTypeEnum")
                    .and_then(Value::as_str)
                    .unwrap_or("LOCAL_USER");
                let kind = if ACCOUNT_TYPES.contains(&kind) {
                    kind
                } else {
                    "LOCAL_USER"
                };
                let given = p.get("password").and_then(Value::as_str).or(password);
                new_password(name, kind, given)?;
                let mut fields = v1_fields(p, false);
                fields["account_type"] = json!(kind);
                let display = p
                    .get("displayName")
                    .and_then(Value::as_str)
                    .unwrap_or(name)
                    .to_owned();
                w.new_user(name, &display, &[0], &fields)?
            }
        };
        users.listed.insert(guid_of(&w.data.users[u]).to_owned());
    }
    let mut additions = Vec::new();
    for p in principals {
        let name = name_of(p);
        if is_frozen(name) {
            continue;
        }
        let wanted = strings(p, "groupNames")?.unwrap_or_default();
        let mut targets = Vec::new();
        for g in &wanted {
            match w
                .find_group(g, None)
                .filter(|&i| same(name_of(&w.data.groups[i]), g))
            {
                Some(i) => targets.push(i),
                None => {
                    return Err(Fail::bad(format!(
                        "Group {g} in groupNames of {name} does not exist"
                    )));
                }
            }
        }
        if is_group_entry(p) {
            let Some(child) = w
                .find_group(name, None)
                .filter(|&g| same(name_of(&w.data.groups[g]), name))
            else {
                continue;
            };
            for parent in parents_of(&w.data, guid_of(&w.data.groups[child])) {
                if !targets.contains(&parent) {
                    w.remove_sub_group(parent, child);
                }
            }
            additions.extend(targets.into_iter().map(|t| (t, child)));
        } else {
            let Some(u) = w.find_user(name, None) else {
                continue;
            };
            for &g in &targets {
                let org = orgs_of(&w.data.groups[g])[0];
                if !orgs_of(&w.data.users[u]).contains(&org) {
                    w.change_user_orgs(u, &[org], Operation::Add)?;
                }
            }
            w.change_user_groups(u, &targets, Operation::Replace, None)?;
        }
    }
    for (parent, child) in additions {
        w.add_sub_group(parent, child)?;
    }
    if remove_deleted {
        let doomed: Vec<String> = (w.data.users.iter())
            .filter(|u| !users.listed.contains(guid_of(u)))
            .filter(|u| {
                !PROTECTED_USERS.iter().any(|p| same(p, name_of(u))) && !is_frozen(name_of(u))
            })
            .map(|u| guid_of(u).to_owned())
            .collect();
        w.org = 0;
        for id in doomed {
            let u = w
                .data
                .users
                .iter()
                .position(|x| guid_of(x) == id)
                .expect("user");
            w.delete_user(u, true)?;
        }
        let doomed: Vec<String> = (w.data.groups.iter())
            .filter(|g| {
                !groups.listed.contains(guid_of(g)) && !protected_group(g) && !is_frozen(name_of(g))
            })
            .map(|g| guid_of(g).to_owned())
            .collect();
        for id in doomed {
            let g = w
                .data
                .groups
                .iter()
                .position(|x| guid_of(x) == id)
                .expect("group");
            w.delete_group(g)?;
        }
        w.org = primary;
    }
    Ok((users, groups))
}

/// Moves objects to user `to` (GUID): those of `guids` (all of `from`'s
/// when `None`) authored by `from` (anyone's: `None`).
fn transfer(w: &mut Work, from: Option<&str>, to: &str, guids: Option<&[String]>) -> usize {
    let mut moved = 0;
    for o in w.owned.iter_mut() {
        let picked = guids.is_none_or(|g| g.iter().any(|x| x.eq_ignore_ascii_case(&o.guid)));
        if picked && from.is_none_or(|f| o.author == f) && o.author != to {
            o.author = to.to_owned();
            o.modified = now_millis();
            moved += 1;
        }
    }
    moved
}

fn no_transfer(w: &Work, u: usize) -> Result<(), Fail> {
    let name = name_of(&w.data.users[u]);
    if NO_TRANSFER_USERS.iter().any(|n| same(n, name)) {
        return Err(Fail::bad(format!(
            "Cannot transfer objects to or from the {name} user"
        )));
    }
    Ok(())
}

/// `security/metadata/assign`.
pub fn assign(w: &mut Work, body: &Value) -> Result<usize, Fail> {
    let items = entries(body, "metadata")?;
    let to_name = required(body, "user_identifier")?;
    let to = w.user_or_404(to_name)?;
    no_transfer(w, to)?;
    let from = match text(body, "current_owner_identifier")? {
        Some(f) => {
            let u = w.user_or_404(f)?;
            no_transfer(w, u)?;
            Some(guid_of(&w.data.users[u]).to_owned())
        }
        None => None,
    };
    let mut guids = Vec::new();
    for item in items {
        let identifier = required(item, "identifier")?;
        let kind = text(item, "type")?;
        let found = w.owned.iter().find(|o| {
            o.org == w.org
                && (o.guid.eq_ignore_ascii_case(identifier) || same(&o.name, identifier))
                && kind.is_none_or(|k| k == o.kind)
        });
        match found {
            Some(o) => guids.push(o.guid.clone()),
            None => {
                return Err(Fail::not_found(format!(
                    "Metadata object {identifier} not found"
                )));
            }
        }
    }
    let to_id = guid_of(&w.data.users[to]).to_owned();
    Ok(transfer(w, from.as_deref(), &to_id, Some(&guids)))
}

// ---------------------------------------------------------------------------
// Serving
// ---------------------------------------------------------------------------

/// The paths of every principal write (for [`Shared::principal_writes`]).
fn is_write_path(path: &str) -> bool {
    const V2: &str = "/api/rest/2.0/";
    let v2 = path.strip_prefix(V2).is_some_and(|rest| {
        ((rest.starts_with("users/") || rest.starts_with("groups/")) && !rest.ends_with("/search"))
            || rest == "security/metadata/assign"
    });
    v2 || path.starts_with("/callosum/v1/tspublic/v1/user/sync")
        || path.starts_with("/callosum/v1/tspublic/v1/user/transfer/ownership")
}

fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

/// The 500 of the `principal_write_fail` fault.
fn write_failure(name: &str, partial: bool) -> Fail {
    Fail::internal(if partial {
        format!(
            "fake write failure: {name} was not written; the request's other changes were applied"
        )
    } else {
        format!("fake write failure: {name} was not written")
    })
}

/// Whether the fault names one of `names`.
fn failing(state: &Shared, names: &[&str]) -> Option<String> {
    let fail = state.faults.lock().unwrap().principal_write_fail.clone()?;
    names.iter().any(|n| same(n, &fail)).then_some(fail)
}

/// Runs a v2 write endpoint: the log, `no_v2`/`no_v2_writes`, the token
/// (its org), the body as JSON (empty: `{}`), then `answer`.
async fn v2_write(
    state: Arc<Shared>,
    headers: HeaderMap,
    body: Bytes,
    path: String,
    answer: impl FnOnce(&Shared, i64, &Value) -> Response,
) -> Response {
    pause(&state).await;
    let mut log = seen("POST", &path, &headers, &body);
    let response = (|| {
        if let Some(r) = no_v2(&state) {
            return r;
        }
        if state.faults.lock().unwrap().no_v2_writes {
            return error(StatusCode::NOT_FOUND, 10004, "no such endpoint");
        }
        let org = match authorize(&state, &headers) {
            Ok(org) => org,
            Err(r) => return r,
        };
        log.org = Some(org);
        let request: Value = if body.iter().all(u8::is_ascii_whitespace) {
            json!({})
        } else {
            match serde_json::from_slice(&body) {
                Ok(v @ Value::Object(_)) => v,
                _ => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        10002,
                        "request body is not a JSON object",
                    );
                }
            }
        };
        answer(&state, org, &request)
    })();
    log.status = response.status().as_u16();
    state.record(log);
    response
}

/// The current name of the user (or group of `org`) `identifier` names.
fn current_name(state: &Shared, org: i64, identifier: &str, group: bool) -> Option<String> {
    let store = state.principals.lock().unwrap();
    let work = Work {
        data: Data {
            users: if group {
                Vec::new()
            } else {
                store.data.users.clone()
            },
            groups: if group {
                store.data.groups.clone()
            } else {
                Vec::new()
            },
            ..Data::default()
        },
        owned: Vec::new(),
        created: 0,
        org,
    };
    if group {
        work.find_group(identifier, Some(org))
            .map(|g| name_of(&work.data.groups[g]).to_owned())
    } else {
        work.find_user(identifier, None)
            .map(|u| name_of(&work.data.users[u]).to_owned())
    }
}

fn principal_json(state: &Shared, id: &str, group: bool) -> Response {
    let store = state.principals.lock().unwrap();
    let list = if group {
        &store.data.groups
    } else {
        &store.data.users
    };
    match list.iter().find(|p| guid_of(p) == id) {
        Some(p) => json_response(p),
        None => Fail::internal("created principal vanished").v2(),
    }
}

/// `POST /api/rest/2.0/users/create`.
pub async fn users_create(
    State(state): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    v2_write(
        state,
        headers,
        body,
        "/api/rest/2.0/users/create".into(),
        |state, org, body| {
            let name = body.get("name").and_then(Value::as_str).unwrap_or("");
            if let Some(name) = failing(state, &[name]) {
                return write_failure(&name, false).v2();
            }
            let result = state
                .principals
                .lock()
                .unwrap()
                .write(org, false, |w| create_user(w, body));
            match result {
                Ok((id, _)) => principal_json(state, &id, false),
                Err(f) => f.v2(),
            }
        },
    )
    .await
}

/// `POST /api/rest/2.0/users/{user_identifier}/update`.
pub async fn users_update(
    State(state): State<Arc<Shared>>,
    Path(identifier): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = format!("/api/rest/2.0/users/{identifier}/update");
    v2_write(state, headers, body, path, |state, org, body| {
        let old = current_name(state, org, &identifier, false).unwrap_or_default();
        let new = body.get("name").and_then(Value::as_str).unwrap_or("");
        if let Some(name) = failing(state, &[&old, new]) {
            return write_failure(&name, false).v2();
        }
        let result = state
            .principals
            .lock()
            .unwrap()
            .write(org, false, |w| update_user(w, &identifier, body));
        result.map_or_else(|f| f.v2(), |_| no_content())
    })
    .await
}

/// `POST /api/rest/2.0/users/{user_identifier}/delete`.
pub async fn users_delete(
    State(state): State<Arc<Shared>>,
    Path(identifier): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = format!("/api/rest/2.0/users/{identifier}/delete");
    v2_write(state, headers, body, path, |state, org, _| {
        let old = current_name(state, org, &identifier, false).unwrap_or_default();
        if let Some(name) = failing(state, &[&old]) {
            return write_failure(&name, false).v2();
        }
        let result = state
            .principals
            .lock()
            .unwrap()
            .write(org, false, |w| delete_user(w, &identifier));
        result.map_or_else(|f| f.v2(), |_| no_content())
    })
    .await
}

/// `POST /api/rest/2.0/groups/create`.
pub async fn groups_create(
    State(state): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    v2_write(
        state,
        headers,
        body,
        "/api/rest/2.0/groups/create".into(),
        |state, org, body| {
            let name = body.get("name").and_then(Value::as_str).unwrap_or("");
            if let Some(name) = failing(state, &[name]) {
                return write_failure(&name, false).v2();
            }
            let result = state
                .principals
                .lock()
                .unwrap()
                .write(org, false, |w| create_group(w, body));
            match result {
                Ok((id, _)) => principal_json(state, &id, true),
                Err(f) => f.v2(),
            }
        },
    )
    .await
}

/// `POST /api/rest/2.0/groups/{group_identifier}/update`.
pub async fn groups_update(
    State(state): State<Arc<Shared>>,
    Path(identifier): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = format!("/api/rest/2.0/groups/{identifier}/update");
    v2_write(state, headers, body, path, |state, org, body| {
        let old = current_name(state, org, &identifier, true).unwrap_or_default();
        let new = body.get("name").and_then(Value::as_str).unwrap_or("");
        if let Some(name) = failing(state, &[&old, new]) {
            return write_failure(&name, false).v2();
        }
        let result = state
            .principals
            .lock()
            .unwrap()
            .write(org, false, |w| update_group(w, &identifier, body));
        result.map_or_else(|f| f.v2(), |_| no_content())
    })
    .await
}

/// `POST /api/rest/2.0/groups/{group_identifier}/delete`.
pub async fn groups_delete(
    State(state): State<Arc<Shared>>,
    Path(identifier): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = format!("/api/rest/2.0/groups/{identifier}/delete");
    v2_write(state, headers, body, path, |state, org, _| {
        let old = current_name(state, org, &identifier, true).unwrap_or_default();
        if let Some(name) = failing(state, &[&old]) {
            return write_failure(&name, false).v2();
        }
        let result = state
            .principals
            .lock()
            .unwrap()
            .write(org, false, |w| delete_group(w, &identifier));
        result.map_or_else(|f| f.v2(), |_| no_content())
    })
    .await
}

fn pairs_json(pairs: &[(String, String)], with_ids: bool) -> Value {
    Value::Array(
        pairs
            .iter()
            .map(|(id, name)| json!({"id": if with_ids { json!(id) } else { Value::Null }, "name": name}))
            .collect(),
    )
}

/// Which side of the principals an import or sync is about.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Users,
    Groups,
}

/// What a dry run or an apply reports for `side`: added, updated (listed
/// ones that changed), deleted; the `dry_run_extra_delete` fault added to a
/// dry run's deletions.
fn reported(
    state: &Shared,
    side: Side,
    changes: &Changes,
    report: &Report,
    dry: bool,
) -> [Vec<(String, String)>; 3] {
    let (added, updated, deleted) = match side {
        Side::Users => (
            &changes.users_added,
            &changes.users_updated,
            &changes.users_deleted,
        ),
        Side::Groups => (
            &changes.groups_added,
            &changes.groups_updated,
            &changes.groups_deleted,
        ),
    };
    let updated: Vec<_> = (updated.iter())
        .filter(|(id, _)| report.listed.contains(id))
        .filter(|(id, _)| !report.removed_from_org.iter().any(|(r, _)| r == id))
        .cloned()
        .collect();
    let mut deleted = deleted.clone();
    deleted.extend(report.removed_from_org.iter().cloned());
    if dry {
        let extra = state.faults.lock().unwrap().dry_run_extra_delete.clone();
        if let Some(extra) = extra
            && !deleted.iter().any(|(_, n)| same(n, &extra))
        {
            let store = state.principals.lock().unwrap();
            let list = match side {
                Side::Users => &store.data.users,
                Side::Groups => &store.data.groups,
            };
            if let Some(p) = list.iter().find(|p| same(name_of(p), &extra)) {
                deleted.push((guid_of(p).to_owned(), name_of(p).to_owned()));
            }
        }
    }
    [added.clone(), updated, deleted]
}

/// Whether a dry run's outcome writes the principal `name`.
fn writes(changes: &Changes, report: &[&Report], name: &str) -> bool {
    [
        &changes.users_added,
        &changes.users_updated,
        &changes.users_deleted,
        &changes.groups_added,
        &changes.groups_updated,
        &changes.groups_deleted,
    ]
    .iter()
    .flat_map(|l| l.iter())
    .chain(report.iter().flat_map(|r| r.removed_from_org.iter()))
    .any(|(_, n)| same(n, name))
}

/// `users/import` and `groups/import`.
fn import_answer(state: &Shared, org: i64, body: &Value, side: Side) -> Response {
    let dry = match flag(body, "dry_run") {
        Ok(dry) => dry.unwrap_or(true),
        Err(f) => return f.v2(),
    };
    let run = |dry: bool, frozen: Option<&str>| {
        state
            .principals
            .lock()
            .unwrap()
            .write(org, dry, |w| match side {
                Side::Users => import_users(w, body, frozen),
                Side::Groups => import_groups(w, body, frozen),
            })
    };
    let fail = state.faults.lock().unwrap().principal_write_fail.clone();
    if !dry && let Some(name) = fail {
        match run(true, None) {
            Err(f) => return f.v2(),
            Ok((report, changes)) if writes(&changes, &[&report], &name) => {
                return match run(false, Some(&name)) {
                    Err(f) => f.v2(),
                    Ok(_) => write_failure(&name, true).v2(),
                };
            }
            Ok(_) => {}
        }
    }
    match run(dry, None) {
        Err(f) => f.v2(),
        Ok((report, changes)) => {
            let [added, updated, deleted] = reported(state, side, &changes, &report, dry);
            let keys = match side {
                Side::Users => ["users_added", "users_updated", "users_deleted"],
                Side::Groups => ["groups_added", "groups_updated", "groups_deleted"],
            };
            json_response(&json!({
                keys[0]: pairs_json(&added, !dry),
                keys[1]: pairs_json(&updated, true),
                keys[2]: pairs_json(&deleted, true),
            }))
        }
    }
}

/// `POST /api/rest/2.0/users/import`.
pub async fn users_import(
    State(state): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    v2_write(
        state,
        headers,
        body,
        "/api/rest/2.0/users/import".into(),
        |state, org, body| import_answer(state, org, body, Side::Users),
    )
    .await
}

/// `POST /api/rest/2.0/groups/import`.
pub async fn groups_import(
    State(state): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    v2_write(
        state,
        headers,
        body,
        "/api/rest/2.0/groups/import".into(),
        |state, org, body| import_answer(state, org, body, Side::Groups),
    )
    .await
}

/// `POST /api/rest/2.0/security/metadata/assign`.
pub async fn metadata_assign(
    State(state): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    v2_write(
        state,
        headers,
        body,
        "/api/rest/2.0/security/metadata/assign".into(),
        |state, org, body| {
            let result = state
                .principals
                .lock()
                .unwrap()
                .write(org, false, |w| assign(w, body));
            result.map_or_else(|f| f.v2(), |_| no_content())
        },
    )
    .await
}

/// The fields of a multipart/form-data body (file parts too), or of a
/// urlencoded one.
fn form_fields(headers: &HeaderMap, body: &Bytes) -> HashMap<String, String> {
    let content_type = header_text(headers, header::CONTENT_TYPE).unwrap_or_default();
    let mut fields = HashMap::new();
    if let Some(boundary) = content_type
        .split(';')
        .find_map(|p| p.trim().strip_prefix("boundary="))
        .map(|b| b.trim_matches('"').to_owned())
    {
        let text = String::from_utf8_lossy(body);
        let delimiter = format!("--{boundary}");
        for part in text.split(delimiter.as_str()).skip(1) {
            if part.starts_with("--") {
                break;
            }
            let part = part.strip_prefix("\r\n").unwrap_or(part);
            let Some((head, value)) = part.split_once("\r\n\r\n") else {
                continue;
            };
            let value = value.strip_suffix("\r\n").unwrap_or(value);
            let name = head.lines().find_map(|line| {
                let lower = line.to_ascii_lowercase();
                lower.starts_with("content-disposition:").then(|| {
                    line.split(';').find_map(|p| {
                        p.trim()
                            .strip_prefix("name=")
                            .map(|n| n.trim_matches('"').to_owned())
                    })
                })?
            });
            if let Some(name) = name {
                fields.insert(name, value.to_owned());
            }
        }
        return fields;
    }
    for key in ["principals", "applyChanges", "removeDeleted", "password"] {
        if let Some(value) = form_field(body, key) {
            fields.insert(key.to_owned(), value);
        }
    }
    fields
}

/// The v1 checks: the header, the session.
fn v1_checks(state: &Shared, headers: &HeaderMap) -> Option<Response> {
    if let Some(r) = v1_header_missing(headers) {
        return Some(r);
    }
    session_of(state, headers)
        .is_none()
        .then(|| error(StatusCode::UNAUTHORIZED, 10000, "not signed in"))
}

fn truthy(value: Option<&String>) -> Result<bool, Fail> {
    match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
        None | Some("") | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => Err(Fail::bad(format!("expected true or false, not {other}"))),
    }
}

/// `POST /callosum/v1/tspublic/v1/user/sync`.
pub async fn v1_sync(
    State(state): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    pause(&state).await;
    let mut log = seen(
        "POST",
        "/callosum/v1/tspublic/v1/user/sync",
        &headers,
        &body,
    );
    let response =
        v1_checks(&state, &headers).unwrap_or_else(|| sync_answer(&state, &headers, &body));
    log.status = response.status().as_u16();
    state.record(log);
    response
}

fn sync_answer(state: &Shared, headers: &HeaderMap, body: &Bytes) -> Response {
    let fields = form_fields(headers, body);
    let (apply, remove) = match (
        truthy(fields.get("applyChanges")),
        truthy(fields.get("removeDeleted")),
    ) {
        (Ok(a), Ok(r)) => (a, r),
        (Err(f), _) | (_, Err(f)) => return f.v1(),
    };
    let principals: Vec<Value> = match fields.get("principals").map(|p| serde_json::from_str(p)) {
        Some(Ok(Value::Array(items))) => items,
        _ => return Fail::bad("principals is required: a JSON array of principals").v1(),
    };
    let password = fields
        .get("password")
        .map(String::as_str)
        .filter(|p| !p.is_empty());
    let run = |dry: bool, frozen: Option<&str>| {
        state
            .principals
            .lock()
            .unwrap()
            .write(0, dry, |w| sync(w, &principals, remove, password, frozen))
    };
    let fail = state.faults.lock().unwrap().principal_write_fail.clone();
    if apply && let Some(name) = fail {
        match run(true, None) {
            Err(f) => return f.v1(),
            Ok(((users, groups), changes)) if writes(&changes, &[&users, &groups], &name) => {
                return match run(false, Some(&name)) {
                    Err(f) => f.v1(),
                    Ok(_) => write_failure(&name, true).v1(),
                };
            }
            Ok(_) => {}
        }
    }
    match run(!apply, None) {
        Err(f) => f.v1(),
        Ok(((users, groups), changes)) => {
            let names = |pairs: &[(String, String)]| -> Vec<String> {
                pairs.iter().map(|(_, n)| n.clone()).collect()
            };
            let [ua, uu, ud] = reported(state, Side::Users, &changes, &users, !apply);
            let [ga, gu, gd] = reported(state, Side::Groups, &changes, &groups, !apply);
            json_response(&json!({
                "usersAdded": names(&ua),
                "usersUpdated": names(&uu),
                "usersDeleted": names(&ud),
                "groupsAdded": names(&ga),
                "groupsUpdated": names(&gu),
                "groupsDeleted": names(&gd),
            }))
        }
    }
}

/// `POST /callosum/v1/tspublic/v1/user/transfer/ownership`.
pub async fn v1_transfer(
    State(state): State<Arc<Shared>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    pause(&state).await;
    let query = query.unwrap_or_default();
    let path = format!("/callosum/v1/tspublic/v1/user/transfer/ownership?{query}");
    let mut log = seen("POST", &path, &headers, &body);
    let response = v1_checks(&state, &headers).unwrap_or_else(|| {
        let param = |key: &str| {
            query.split('&').find_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                (k == key).then(|| percent_decode(&v.replace('+', " ")))
            })
        };
        let (Some(from), Some(to)) = (param("fromUserName"), param("toUserName")) else {
            return Fail::bad("fromUserName and toUserName are required").v1();
        };
        let guids: Option<Vec<String>> = match param("objectsID").filter(|s| !s.is_empty()) {
            None => None,
            Some(text) => match serde_json::from_str(&text) {
                Ok(g) => Some(g),
                Err(_) => return Fail::bad("objectsID must be a JSON array of GUIDs").v1(),
            },
        };
        let result = state.principals.lock().unwrap().write(0, false, |w| {
            let find = |name: &str| {
                w.find_user(name, None)
                    .filter(|&u| same(name_of(&w.data.users[u]), name))
                    .ok_or_else(|| Fail::not_found(format!("User {name} not found")))
            };
            let (f, t) = (find(&from)?, find(&to)?);
            no_transfer(w, f)?;
            no_transfer(w, t)?;
            let (f, t) = (
                guid_of(&w.data.users[f]).to_owned(),
                guid_of(&w.data.users[t]).to_owned(),
            );
            Ok(transfer(w, Some(&f), &t, guids.as_deref()))
        });
        result.map_or_else(|f| f.v1(), |_| no_content())
    });
    log.status = response.status().as_u16();
    state.record(log);
    response
}

// ---------------------------------------------------------------------------
// Owned objects in metadata/search, and test helpers
// ---------------------------------------------------------------------------

impl Shared {
    /// The owned objects of `org` that one of `entries` (of a
    /// `metadata/search`) asks for, by one of `authors` (GUIDs; any:
    /// `None`), as the search lists them.
    pub(super) fn listed_owned(
        &self,
        org: i64,
        entries: &[Value],
        authors: Option<&HashSet<String>>,
    ) -> Vec<Value> {
        let store = self.principals.lock().unwrap();
        store
            .owned
            .iter()
            .filter(|o| o.org == org)
            .filter(|o| authors.is_none_or(|a| a.contains(&o.author)))
            .filter(|o| {
                entries.iter().any(|e| {
                    let kind = e.get("type").and_then(Value::as_str);
                    if kind.is_some_and(|k| !k.eq_ignore_ascii_case(&o.kind)) {
                        return false;
                    }
                    if let Some(id) = e.get("identifier").and_then(Value::as_str) {
                        return o.guid.eq_ignore_ascii_case(id) || same(&o.name, id);
                    }
                    if let Some(pattern) = e.get("name_pattern").and_then(Value::as_str) {
                        return super::activity::like(pattern, &o.name);
                    }
                    e.get("obj_identifier").is_none()
                })
            })
            .map(|o| {
                let author_name = store.user_name(&o.author);
                let display = (store.data.users.iter())
                    .find(|u| guid_of(u) == o.author)
                    .and_then(|u| u.get("display_name").cloned());
                json!({
                    "metadata_id": o.guid,
                    "metadata_name": o.name,
                    "metadata_type": o.kind,
                    "metadata_obj_id": null,
                    "metadata_header": {
                        "id": o.guid,
                        "name": o.name,
                        "author": o.author,
                        "authorName": author_name,
                        "authorDisplayName": display,
                        "owner": o.guid,
                        "created": o.created,
                        "modified": o.modified,
                    },
                })
            })
            .collect()
    }

    /// GUIDs of the users `identifiers` name (see `created_by_user_identifiers`).
    pub(super) fn author_ids(&self, identifiers: &[String]) -> HashSet<String> {
        self.principals.lock().unwrap().author_ids(identifiers)
    }

    /// The user named `name` (case-insensitive), as `users/search` has it.
    pub fn user(&self, name: &str) -> Option<Value> {
        let store = self.principals.lock().unwrap();
        store.user_index(name).map(|u| store.data.users[u].clone())
    }

    /// The group named `name` (case-insensitive) of org `org`.
    pub fn group(&self, org: i64, name: &str) -> Option<Value> {
        let store = self.principals.lock().unwrap();
        (store.data.groups.iter())
            .find(|g| orgs_of(g).contains(&org) && same(name_of(g), name))
            .cloned()
    }

    /// Every org, user and group (and the v1 list) as they are now.
    pub fn principals(&self) -> Data {
        self.principals.lock().unwrap().data.clone()
    }

    /// Changes the principals as another admin would, with a token of
    /// `org`: `change` works on a copy (see [`Work`]'s methods and the
    /// request functions of this module, e.g. [`create_user`]); kept, with
    /// modification times moved, when it succeeds.
    pub fn behind_the_back<T>(
        &self,
        org: i64,
        change: impl FnOnce(&mut Work) -> Result<T, Fail>,
    ) -> Result<T, Fail> {
        self.principals
            .lock()
            .unwrap()
            .write(org, false, change)
            .map(|(t, _)| t)
    }

    /// Sets `key` of user `name` to `value` behind the client's back.
    pub fn set_user_field(&self, name: &str, key: &str, value: Value) {
        self.behind_the_back(0, |w| {
            let u = w
                .find_user(name, None)
                .ok_or_else(|| Fail::not_found(name))?;
            w.data.users[u][key] = value;
            Ok(())
        })
        .expect("user to change");
    }

    /// Sets `key` of group `name` of `org` to `value` behind the client's
    /// back.
    pub fn set_group_field(&self, org: i64, name: &str, key: &str, value: Value) {
        self.behind_the_back(org, |w| {
            let g = w
                .find_group(name, Some(org))
                .ok_or_else(|| Fail::not_found(name))?;
            w.data.groups[g][key] = value;
            Ok(())
        })
        .expect("group to change");
    }

    /// Puts user `user` in group `group` of `org` behind the client's back.
    pub fn add_member_behind_the_back(&self, org: i64, group: &str, user: &str) {
        self.behind_the_back(org, |w| {
            let g = w
                .find_group(group, Some(org))
                .ok_or_else(|| Fail::not_found(group))?;
            let u = w
                .find_user(user, None)
                .ok_or_else(|| Fail::not_found(user))?;
            w.add_member(g, u)
        })
        .expect("membership to add");
    }

    /// Deletes user `name` behind the client's back (its objects go to
    /// tsadmin).
    pub fn delete_user_behind_the_back(&self, name: &str) {
        self.behind_the_back(0, |w| {
            let u = w
                .find_user(name, None)
                .ok_or_else(|| Fail::not_found(name))?;
            w.delete_user(u, true)
        })
        .expect("user to delete");
    }

    /// Makes user `username` the author of `n` new liveboards in its first
    /// org; their GUIDs.
    pub fn give_objects(&self, username: &str, n: usize) -> Vec<String> {
        let mut store = self.principals.lock().unwrap();
        let u = store.user_index(username).expect("user to give objects to");
        let (author, org) = (
            guid_of(&store.data.users[u]).to_owned(),
            orgs_of(&store.data.users[u])[0],
        );
        let now = now_millis();
        (0..n)
            .map(|k| {
                store.created += 1;
                let guid = format!("0b1ec700-0000-4000-8000-{:012x}", store.created);
                let name = format!("Liveboard {} of {username}", k + 1);
                store.owned.push(Owned {
                    guid: guid.clone(),
                    name,
                    kind: "LIVEBOARD".into(),
                    org,
                    author: author.clone(),
                    created: now,
                    modified: now,
                });
                guid
            })
            .collect()
    }

    /// The objects user `username` owns now.
    pub fn owned_objects(&self, username: &str) -> Vec<Owned> {
        let store = self.principals.lock().unwrap();
        let ids = store.author_ids(&[username.to_owned()]);
        store
            .owned
            .iter()
            .filter(|o| ids.contains(&o.author))
            .cloned()
            .collect()
    }

    /// The principal write requests seen so far (v2 create, update, delete,
    /// import, metadata assign; v1 sync and transfer), with their bodies.
    pub fn principal_writes(&self) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| is_write_path(&s.path))
            .collect()
    }

    /// The time the last principal write was stamped with.
    pub fn last_write_time(&self) -> i64 {
        self.principals.lock().unwrap().clock
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRIMARY: i64 = 0;
    const TENANT: i64 = 1_000_001;
    const GOOD: &str = "Good-pass-42";

    /// 6 users and 4 groups over Primary and Tenant 1 (user0, user2,
    /// user4, Group 0, Group 2 in Primary), an All group in Primary with
    /// its users, and tsadmin.
    fn data() -> Data {
        let mut data = Data::generated(6, 4, 2);
        let primary_users: Vec<Value> = (data.users.iter())
            .filter(|u| orgs_of(u).contains(&0))
            .map(reference)
            .collect();
        data.groups.push(json!({
            "id": "a11a11a1-0000-4000-8000-000000000001", "name": "All",
            "display_name": "All Group", "type": "LOCAL_GROUP", "visibility": "SHARABLE",
            "creation_time_in_millis": 1, "modification_time_in_millis": 1,
            "privileges": [], "orgs": [{"id": 0, "name": "Primary"}],
            "sub_groups": [], "users": primary_users,
        }));
        for u in data.users.iter_mut().filter(|u| orgs_of(u).contains(&0)) {
            push_ref(
                u,
                "user_groups",
                json!({"id": "a11a11a1-0000-4000-8000-000000000001", "name": "All"}),
            );
        }
        data.users.push(json!({
            "id": "75ad0000-0000-4000-8000-000000000001", "name": "tsadmin",
            "display_name": "Administrator", "account_type": "LOCAL_USER",
            "visibility": "SHARABLE", "email": "",
            "orgs": [{"id": 0, "name": "Primary"}], "user_groups": [],
            "creation_time_in_millis": 1, "modification_time_in_millis": 1,
        }));
        data
    }

    fn store() -> Store {
        Store::new(data())
    }

    fn user<'a>(store: &'a Store, name: &str) -> Option<&'a Value> {
        store.data.users.iter().find(|u| same(name_of(u), name))
    }

    fn group<'a>(store: &'a Store, org: i64, name: &str) -> Option<&'a Value> {
        (store.data.groups.iter()).find(|g| orgs_of(g).contains(&org) && same(name_of(g), name))
    }

    fn names(p: &Value, field: &str) -> Vec<String> {
        let mut names: Vec<String> = (p[field].as_array().into_iter().flatten())
            .map(|r| name_of(r).to_owned())
            .collect();
        names.sort();
        names
    }

    fn new_user(name: &str, groups: &[&str]) -> Value {
        json!({"name": name, "display_name": name, "email": "", "password": GOOD,
               "group_identifiers": groups})
    }

    /// Members of every group and groups of every user agree.
    fn consistent(store: &Store) {
        for g in &store.data.groups {
            for uid in ref_ids(g, "users") {
                let u = store
                    .data
                    .users
                    .iter()
                    .find(|u| guid_of(u) == uid)
                    .expect("member exists");
                assert!(
                    ref_ids(u, "user_groups").contains(&guid_of(g).to_owned()),
                    "{}",
                    name_of(u)
                );
            }
        }
        for u in &store.data.users {
            for gid in ref_ids(u, "user_groups") {
                let g = store
                    .data
                    .groups
                    .iter()
                    .find(|g| guid_of(g) == gid)
                    .expect("group exists");
                assert!(
                    ref_ids(g, "users").contains(&guid_of(u).to_owned()),
                    "{}",
                    name_of(g)
                );
            }
        }
    }

    #[test]
    fn passwords_follow_the_rules() {
        assert!(check_password("ana", GOOD).is_ok());
        for bad in [
            "Sh0rt-",
            "lower-case-42",
            "UPPER-CASE-42",
            "No-digits-here",
            "NoSpecial42",
            "x-Ana-42-y",
        ] {
            assert!(check_password("ana", bad).is_err(), "{bad}");
        }
        let message = check_password("ana", "x-ANA-42-y").unwrap_err();
        assert!(message.contains("not contain the username"), "{message}");
    }

    #[test]
    fn create_update_delete_a_user_with_both_sides_of_membership() {
        let mut s = store();
        let before = s.clock;
        let (id, changes) = s
            .write(PRIMARY, false, |w| {
                create_user(w, &new_user("new.user", &["group 0"]))
            })
            .unwrap();
        assert_eq!(
            changes.users_added,
            vec![(id.clone(), "new.user".to_owned())]
        );
        let u = user(&s, "NEW.user").unwrap().clone();
        assert_eq!(guid_of(&u), id);
        assert_eq!(names(&u, "user_groups"), ["All", "Group 0"]);
        assert!(u["creation_time_in_millis"].as_i64().unwrap() > before);
        assert!(
            names(group(&s, PRIMARY, "Group 0").unwrap(), "users").contains(&"new.user".to_owned())
        );
        assert!(changes.groups_updated.iter().any(|(_, n)| n == "Group 0"));
        assert!(
            group(&s, PRIMARY, "Group 0").unwrap()["modification_time_in_millis"]
                .as_i64()
                .unwrap()
                > before
        );
        consistent(&s);

        // Rename, by GUID; references follow.
        let t1 = s.clock;
        s.write(PRIMARY, false, |w| {
            update_user(w, &id, &json!({"name": "renamed", "display_name": "R"}))
        })
        .unwrap();
        assert!(user(&s, "new.user").is_none());
        assert_eq!(
            user(&s, "renamed").unwrap()["modification_time_in_millis"]
                .as_i64()
                .unwrap(),
            s.clock
        );
        assert!(s.clock > t1);
        assert!(
            names(group(&s, PRIMARY, "Group 0").unwrap(), "users").contains(&"renamed".to_owned())
        );

        s.write(PRIMARY, false, |w| delete_user(w, "RENAMED"))
            .unwrap();
        assert!(user(&s, "renamed").is_none());
        assert!(
            !names(group(&s, PRIMARY, "Group 0").unwrap(), "users").contains(&"renamed".to_owned())
        );
        consistent(&s);
        let missing = s
            .write(PRIMARY, false, |w| delete_user(w, "renamed"))
            .unwrap_err();
        assert_eq!(missing.status, 404);
    }

    #[test]
    fn usernames_clash_case_insensitively_and_groups_per_org() {
        let mut s = store();
        let clash = s
            .write(PRIMARY, false, |w| {
                create_user(w, &new_user("USER0@example.com", &[]))
            })
            .unwrap_err();
        assert_eq!(clash.status, 400);
        assert!(
            clash.message.contains("already exists"),
            "{}",
            clash.message
        );
        let clash = s
            .write(PRIMARY, false, |w| {
                create_group(w, &json!({"name": "group 0", "display_name": "x"}))
            })
            .unwrap_err();
        assert_eq!(clash.status, 400);
        // Group 1 is Tenant 1's: Primary may have one of that name.
        s.write(PRIMARY, false, |w| {
            create_group(w, &json!({"name": "Group 1", "display_name": "x"}))
        })
        .unwrap();
        assert!(group(&s, PRIMARY, "Group 1").is_some() && group(&s, TENANT, "Group 1").is_some());
    }

    #[test]
    fn unknown_identifiers_and_bad_passwords_change_nothing() {
        let mut s = store();
        let before = s.data.clone();
        let e = s
            .write(PRIMARY, false, |w| {
                create_user(w, &new_user("x.y", &["Group 0", "Nope"]))
            })
            .unwrap_err();
        assert_eq!((e.status, e.message.contains("Nope")), (400, true));
        // Tenant 1's group is not Primary's.
        let e = s
            .write(PRIMARY, false, |w| {
                create_user(w, &new_user("x.y", &["Group 1"]))
            })
            .unwrap_err();
        assert_eq!(e.status, 400);
        let mut weak = new_user("x.y", &[]);
        weak["password"] = json!("weak");
        assert_eq!(
            s.write(PRIMARY, false, |w| create_user(w, &weak))
                .unwrap_err()
                .status,
            400
        );
        weak.as_object_mut().unwrap().remove("password");
        assert_eq!(
            s.write(PRIMARY, false, |w| create_user(w, &weak))
                .unwrap_err()
                .status,
            400
        );
        weak["account_type"] = json!("SAML_USER");
        let e = s
            .write(PRIMARY, false, |w| {
                update_user(
                    w,
                    "user0@example.com",
                    &json!({"display_name": "changed", "group_identifiers": ["Nope"]}),
                )
            })
            .unwrap_err();
        assert_eq!(e.status, 400);
        assert_eq!(s.data.users, before.users);
        assert_eq!(s.data.groups, before.groups);
        // A SAML user needs no password.
        s.write(PRIMARY, false, |w| create_user(w, &weak)).unwrap();
    }

    #[test]
    fn add_remove_replace_groups_of_a_user_and_members_of_a_group() {
        let mut s = store();
        s.write(PRIMARY, false, |w| {
            create_group(w, &json!({"name": "Extra", "display_name": "Extra"}))
        })
        .unwrap();
        let u = "user0@example.com";
        let groups = |s: &Store| names(user(s, u).unwrap(), "user_groups");
        let start = groups(&s);
        let update =
            |s: &mut Store, body: Value| s.write(PRIMARY, false, |w| update_user(w, u, &body));
        update(
            &mut s,
            json!({"operation": "ADD", "group_identifiers": ["Extra"]}),
        )
        .unwrap();
        assert!(groups(&s).contains(&"Extra".to_owned()) && groups(&s).len() == start.len() + 1);
        update(
            &mut s,
            json!({"operation": "REMOVE", "group_identifiers": ["Extra"]}),
        )
        .unwrap();
        assert_eq!(groups(&s), start);
        update(&mut s, json!({"group_identifiers": ["Extra"]})).unwrap();
        assert_eq!(groups(&s), ["All", "Extra"], "REPLACE keeps All");
        let e = update(
            &mut s,
            json!({"operation": "REMOVE", "group_identifiers": ["All"]}),
        )
        .unwrap_err();
        assert_eq!(e.status, 400);
        consistent(&s);

        // The group side.
        let members = |s: &Store| names(group(s, PRIMARY, "Extra").unwrap(), "users");
        let g = |s: &mut Store, body: Value| {
            s.write(PRIMARY, false, |w| update_group(w, "extra", &body))
        };
        g(
            &mut s,
            json!({"operation": "ADD", "user_identifiers": ["user2@example.com"]}),
        )
        .unwrap();
        assert_eq!(members(&s), ["user0@example.com", "user2@example.com"]);
        g(
            &mut s,
            json!({"operation": "REMOVE", "user_identifiers": ["user0@example.com"]}),
        )
        .unwrap();
        assert_eq!(members(&s), ["user2@example.com"]);
        g(
            &mut s,
            json!({"user_identifiers": ["user4@example.com"], "privileges": ["DEVELOPER"]}),
        )
        .unwrap();
        assert_eq!(members(&s), ["user4@example.com"]);
        assert_eq!(
            group(&s, PRIMARY, "Extra").unwrap()["privileges"],
            json!(["DEVELOPER"])
        );
        assert!(
            names(user(&s, "user2@example.com").unwrap(), "user_groups")
                .iter()
                .all(|n| n != "Extra")
        );
        // A Tenant 1 user cannot join a Primary group.
        let e = g(
            &mut s,
            json!({"operation": "ADD", "user_identifiers": ["user1@example.com"]}),
        )
        .unwrap_err();
        assert_eq!(e.status, 400);
        consistent(&s);
    }

    #[test]
    fn the_all_group_and_system_users_are_protected() {
        let mut s = store();
        assert_eq!(
            s.write(PRIMARY, false, |w| delete_group(w, "All"))
                .unwrap_err()
                .status,
            400
        );
        let e = s
            .write(PRIMARY, false, |w| {
                update_group(
                    w,
                    "All",
                    &json!({"user_identifiers": ["user0@example.com"]}),
                )
            })
            .unwrap_err();
        assert!(e.message.contains("All group"), "{}", e.message);
        assert_eq!(
            s.write(PRIMARY, false, |w| delete_user(w, "tsadmin"))
                .unwrap_err()
                .status,
            400
        );
    }

    #[test]
    fn nesting_cycles_are_refused_and_both_ends_move() {
        let mut s = store();
        let before = s.clock;
        let (_, changes) = s
            .write(PRIMARY, false, |w| {
                update_group(
                    w,
                    "Group 2",
                    &json!({"operation": "ADD", "sub_group_identifiers": ["Group 0"]}),
                )
            })
            .unwrap();
        let updated: Vec<&str> = changes
            .groups_updated
            .iter()
            .map(|(_, n)| n.as_str())
            .collect();
        assert_eq!(updated, ["Group 0", "Group 2"], "the child moves too");
        assert!(
            group(&s, PRIMARY, "Group 0").unwrap()["modification_time_in_millis"]
                .as_i64()
                .unwrap()
                > before
        );
        let e = s
            .write(PRIMARY, false, |w| {
                update_group(
                    w,
                    "Group 0",
                    &json!({"operation": "ADD", "sub_group_identifiers": ["Group 2"]}),
                )
            })
            .unwrap_err();
        assert!(e.message.contains("cycle"), "{}", e.message);
        let e = s
            .write(PRIMARY, false, |w| {
                update_group(w, "Group 0", &json!({"sub_group_identifiers": ["Group 0"]}))
            })
            .unwrap_err();
        assert!(e.message.contains("itself"), "{}", e.message);
        // A user of Group 0 inherits Group 2 (when the field is kept).
        s.behind_the_back_for_test(|w| {
            w.data.users[0]["user_inherited_groups"] = json!([]);
            Ok(())
        });
        let inherited = names(&s.data.users[0], "user_inherited_groups");
        assert!(inherited.contains(&"Group 2".to_owned()), "{inherited:?}");
    }

    impl Store {
        fn behind_the_back_for_test(&mut self, f: impl FnOnce(&mut Work) -> Result<(), Fail>) {
            self.write(0, false, f).unwrap();
        }
    }

    #[test]
    fn owners_cannot_be_deleted_until_their_objects_move() {
        let mut s = store();
        let owner = guid_of(user(&s, "user0@example.com").unwrap()).to_owned();
        s.owned.push(Owned {
            guid: "0b1ec700-0000-4000-8000-000000000001".into(),
            name: "Sales".into(),
            kind: "LIVEBOARD".into(),
            org: 0,
            author: owner.clone(),
            created: 1,
            modified: 1,
        });
        let e = s
            .write(PRIMARY, false, |w| delete_user(w, "user0@example.com"))
            .unwrap_err();
        assert_eq!(
            e,
            Fail::bad("User user0@example.com owns 1 objects; transfer ownership first")
        );
        let to_system =
            json!({"metadata": [{"identifier": "Sales"}], "user_identifier": "tsadmin"});
        assert_eq!(
            s.write(PRIMARY, false, |w| assign(w, &to_system))
                .unwrap_err()
                .status,
            400
        );
        let unknown = json!({"metadata": [{"identifier": "Sales"}], "user_identifier": "nobody"});
        assert_eq!(
            s.write(PRIMARY, false, |w| assign(w, &unknown))
                .unwrap_err()
                .status,
            404
        );
        let other_owner = json!({"metadata": [{"identifier": "Sales"}], "user_identifier": "user2@example.com",
                                 "current_owner_identifier": "user4@example.com"});
        let (moved, _) = s
            .write(PRIMARY, false, |w| assign(w, &other_owner))
            .unwrap();
        assert_eq!(moved, 0, "filtered by the current owner");
        let good = json!({"metadata": [{"identifier": "SALES", "type": "LIVEBOARD"}], "user_identifier": "user2@example.com"});
        assert_eq!(s.write(PRIMARY, false, |w| assign(w, &good)).unwrap().0, 1);
        assert_ne!(s.owned[0].author, owner);
        s.write(PRIMARY, false, |w| delete_user(w, "user0@example.com"))
            .unwrap();
    }

    #[test]
    fn user_import_dry_run_reports_and_changes_nothing() {
        let mut s = store();
        let before = (s.data.clone(), s.clock);
        let body = json!({
            "users": [
                {"user_identifier": "user0@example.com", "display_name": "User 0"},
                {"user_identifier": "user2@example.com", "display_name": "Renamed Two", "group_identifiers": ["Group 0"]},
                {"user_identifier": "fresh@example.com", "display_name": "Fresh"},
            ],
            "default_password": GOOD,
            "delete_unspecified_users": true,
        });
        let (report, changes) = s
            .write(PRIMARY, true, |w| import_users(w, &body, None))
            .unwrap();
        assert_eq!(
            (&s.data.users, &s.data.groups, s.clock),
            (&before.0.users, &before.0.groups, before.1)
        );
        let added: Vec<&str> = changes
            .users_added
            .iter()
            .map(|(_, n)| n.as_str())
            .collect();
        assert_eq!(added, ["fresh@example.com"]);
        let updated: Vec<&str> = (changes.users_updated.iter())
            .filter(|(id, _)| report.listed.contains(id))
            .map(|(_, n)| n.as_str())
            .collect();
        assert_eq!(updated, ["user2@example.com"], "user0 is unchanged");
        let deleted: Vec<&str> = changes
            .users_deleted
            .iter()
            .map(|(_, n)| n.as_str())
            .collect();
        assert_eq!(
            deleted,
            ["user4@example.com"],
            "tsadmin and other orgs' users are kept"
        );

        // Applied, the same.
        let (_, applied) = s
            .write(PRIMARY, false, |w| import_users(w, &body, None))
            .unwrap();
        assert_eq!(applied.users_deleted, changes.users_deleted);
        assert!(user(&s, "fresh@example.com").is_some() && user(&s, "tsadmin").is_some());
        assert!(user(&s, "user1@example.com").is_some());
        consistent(&s);
        // A new LOCAL user without any password is refused.
        let e = s
            .write(PRIMARY, true, |w| {
                import_users(
                    w,
                    &json!({"users": [{"user_identifier": "p", "display_name": "p"}]}),
                    None,
                )
            })
            .unwrap_err();
        assert!(e.message.contains("password"), "{}", e.message);
    }

    #[test]
    fn group_import_nests_in_any_order_and_prunes() {
        let mut s = store();
        let body = json!({
            "groups": [
                {"group_identifier": "Parent", "display_name": "P", "sub_group_identifiers": ["Child"]},
                {"group_identifier": "Child", "display_name": "C", "user_identifiers": ["user0@example.com"]},
                {"group_identifier": "Group 0", "display_name": "Group 0"},
            ],
            "delete_unspecified_groups": true,
        });
        let (_, changes) = s
            .write(PRIMARY, false, |w| import_groups(w, &body, None))
            .unwrap();
        let deleted: Vec<&str> = changes
            .groups_deleted
            .iter()
            .map(|(_, n)| n.as_str())
            .collect();
        assert_eq!(deleted, ["Group 2"], "All is kept");
        assert_eq!(
            names(group(&s, PRIMARY, "Parent").unwrap(), "sub_groups"),
            ["Child"]
        );
        assert!(
            names(user(&s, "user0@example.com").unwrap(), "user_groups")
                .contains(&"Child".to_owned())
        );
        // Swapping parent and child in one import is no cycle.
        let swap = json!({"groups": [
            {"group_identifier": "Parent", "display_name": "P", "sub_group_identifiers": []},
            {"group_identifier": "Child", "display_name": "C", "sub_group_identifiers": ["Parent"]},
        ]});
        s.write(PRIMARY, false, |w| import_groups(w, &swap, None))
            .unwrap();
        assert_eq!(
            names(group(&s, PRIMARY, "Child").unwrap(), "sub_groups"),
            ["Parent"]
        );
        consistent(&s);
    }

    #[test]
    fn org_scoping_of_writes() {
        let mut s = store();
        s.write(TENANT, false, |w| {
            create_user(w, &new_user("tenant.user", &["Group 1"]))
        })
        .unwrap();
        assert_eq!(orgs_of(user(&s, "tenant.user").unwrap()), [TENANT]);
        // A tenant token reaches neither Primary's users nor its groups.
        assert_eq!(
            s.write(TENANT, false, |w| delete_user(w, "user0@example.com"))
                .unwrap_err()
                .status,
            404
        );
        assert_eq!(
            s.write(TENANT, false, |w| delete_group(w, "Group 0"))
                .unwrap_err()
                .status,
            404
        );
        let e = s
            .write(TENANT, false, |w| create_user(w, &json!({"name": "x", "display_name": "x", "email": "", "password": GOOD, "org_identifiers": ["0"]})))
            .unwrap_err();
        assert_eq!(e.status, 403);
        // A Primary token may move a user between orgs; its groups follow.
        s.write(PRIMARY, false, |w| {
            update_user(w, "tenant.user", &json!({"org_identifiers": ["Primary"]}))
        })
        .unwrap();
        let u = user(&s, "tenant.user").unwrap();
        assert_eq!(
            (orgs_of(u), names(u, "user_groups")),
            (vec![0], vec!["All".to_owned()])
        );
        consistent(&s);
    }

    #[test]
    fn v1_sync_dry_then_applied_with_remove_deleted() {
        let mut s = store();
        let mut principals: Vec<Value> = s.v1_list();
        // Drop user4, rename-free changes: a new group holding user0, a new user.
        principals.retain(|p| name_of(p) != "user4@example.com");
        principals.push(json!({"name": "Synced", "displayName": "Synced", "principalTypeEnum": "LOCAL_GROUP", "groupNames": ["Group 0"]}));
        for p in principals
            .iter_mut()
            .filter(|p| name_of(p) == "user0@example.com")
        {
            p["groupNames"]
                .as_array_mut()
                .unwrap()
                .push(json!("Synced"));
        }
        principals.push(json!({"name": "v1.user", "displayName": "V1", "principalTypeEnum": "LOCAL_USER", "groupNames": ["Synced"], "mail": "v1@example.com"}));
        let before = s.data.clone();
        let run = |s: &mut Store, dry: bool| {
            s.write(0, dry, |w| sync(w, &principals, true, Some(GOOD), None))
        };
        let ((users, groups), changes) = run(&mut s, true).unwrap();
        assert_eq!(s.data.users, before.users);
        let pick = |l: &[(String, String)], r: Option<&Report>| -> Vec<String> {
            l.iter()
                .filter(|(id, _)| r.is_none_or(|r| r.listed.contains(id)))
                .map(|(_, n)| n.clone())
                .collect()
        };
        assert_eq!(pick(&changes.users_added, None), ["v1.user"]);
        assert_eq!(pick(&changes.users_deleted, None), ["user4@example.com"]);
        assert_eq!(pick(&changes.groups_added, None), ["Synced"]);
        assert_eq!(
            pick(&changes.users_updated, Some(&users)),
            ["user0@example.com"]
        );
        let mut groups_updated = pick(&changes.groups_updated, Some(&groups));
        groups_updated.sort();
        // Group 0 gets a sub-group; All and Group 2 lose user4.
        assert_eq!(groups_updated, ["All", "Group 0", "Group 2"]);
        run(&mut s, false).unwrap();
        assert!(user(&s, "user4@example.com").is_none());
        assert_eq!(
            names(group(&s, PRIMARY, "Synced").unwrap(), "users"),
            ["user0@example.com", "v1.user"]
        );
        assert_eq!(
            names(group(&s, PRIMARY, "Group 0").unwrap(), "sub_groups"),
            ["Synced"]
        );
        consistent(&s);
        // Nothing left to do.
        let (_, again) = run(&mut s, true).unwrap();
        assert_eq!(again, Changes::default());
    }

    #[test]
    fn v1_list_follows_writes() {
        let mut data = data();
        data.v1 = Some(Store::new(data.clone()).v1_list());
        let mut s = Store::new(data);
        s.write(PRIMARY, false, |w| {
            create_user(w, &new_user("listed", &["Group 0"]))
        })
        .unwrap();
        s.write(PRIMARY, false, |w| delete_user(w, "user2@example.com"))
            .unwrap();
        let list = s.v1_list();
        let entry = list.iter().find(|p| name_of(p) == "listed").unwrap();
        assert_eq!(entry["groupNames"], json!(["All", "Group 0"]));
        assert!(!list.iter().any(|p| name_of(p) == "user2@example.com"));
    }

    fn multipart(boundary: &str, fields: &[(&str, &str)]) -> String {
        let mut body = String::new();
        for (name, value) in fields {
            body.push_str(&format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            ));
        }
        body.push_str(&format!("--{boundary}--\r\n"));
        body
    }

    /// The endpoints end to end: answers, searches, faults, v1.
    #[tokio::test(flavor = "multi_thread")]
    async fn served_over_http() {
        use super::super::FakeThoughtSpot;
        let mut data = data();
        data.v1 = Some(Store::new(data.clone()).v1_list());
        let server = FakeThoughtSpot::start(data);
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let token = server.state.mint_token(0);
        let post = |path: &str, body: Value| {
            let request = client
                .post(format!("{}/api/rest/2.0/{path}", server.url()))
                .bearer_auth(&token)
                .json(&body);
            async move {
                let response = request.send().await.unwrap();
                let status = response.status().as_u16();
                let text = response.text().await.unwrap();
                (
                    status,
                    serde_json::from_str::<Value>(&text).unwrap_or(Value::Null),
                )
            }
        };
        let search_user = |name: &str| {
            post(
                "users/search",
                json!({"user_identifier": name, "record_size": -1}),
            )
        };

        let (status, created) = post("users/create", new_user("http.user", &["Group 0"])).await;
        assert_eq!(status, 200, "{created}");
        assert_eq!(created["name"], "http.user");
        let (_, found) = search_user("http.user").await;
        let found: Vec<&Value> = found
            .as_array()
            .unwrap()
            .iter()
            .filter(|u| u["name"] == "http.user")
            .collect();
        assert_eq!(found.len(), 1, "the search sees the new user at once");
        let (status, _) = post("users/http.user/update", json!({"display_name": "Changed"})).await;
        assert_eq!(status, 204);
        assert_eq!(
            server.state.user("HTTP.USER").unwrap()["display_name"],
            "Changed"
        );
        let (status, e) = post("users/nobody/update", json!({})).await;
        assert_eq!(
            (status, e["error"]["message"]["code"].as_u64()),
            (404, Some(10004))
        );

        // Imports: dry_run is the default.
        let import = json!({"users": [{"user_identifier": "imp@example.com", "display_name": "Imp"}], "default_password": GOOD});
        let (status, answer) = post("users/import", import.clone()).await;
        assert_eq!(status, 200);
        assert_eq!(
            answer,
            json!({"users_added": [{"id": null, "name": "imp@example.com"}], "users_updated": [], "users_deleted": []})
        );
        assert!(server.state.user("imp@example.com").is_none());
        server
            .state
            .set(|f| f.dry_run_extra_delete = Some("user0@example.com".into()));
        let (_, answer) = post("users/import", import.clone()).await;
        assert_eq!(answer["users_deleted"][0]["name"], "user0@example.com");
        server.state.set(|f| f.dry_run_extra_delete = None);

        // A partial failure: the others are written.
        server
            .state
            .set(|f| f.principal_write_fail = Some("bad@example.com".into()));
        let both = json!({"dry_run": false, "default_password": GOOD, "users": [
            {"user_identifier": "imp@example.com", "display_name": "Imp"},
            {"user_identifier": "bad@example.com", "display_name": "Bad"}]});
        let (status, e) = post("users/import", both).await;
        assert_eq!(status, 500);
        assert!(
            e["error"]["message"]["debug"]
                .as_str()
                .unwrap()
                .contains("bad@example.com")
        );
        assert!(
            server.state.user("imp@example.com").is_some()
                && server.state.user("bad@example.com").is_none()
        );
        let (status, _) = post("users/create", new_user("bad@example.com", &[])).await;
        assert_eq!(status, 500);
        server.state.set(|f| f.principal_write_fail = None);

        // Groups.
        let (status, g) = post(
            "groups/create",
            json!({"name": "Made", "display_name": "Made", "user_identifiers": ["http.user"]}),
        )
        .await;
        assert_eq!(status, 200, "{g}");
        assert_eq!(g["users"][0]["name"], "http.user");
        let (_, groups) = post(
            "groups/search",
            json!({"group_identifier": "Made", "record_size": -1}),
        )
        .await;
        assert!(
            groups
                .as_array()
                .unwrap()
                .iter()
                .any(|g| g["name"] == "Made")
        );
        let (status, answer) = post("groups/import", json!({"dry_run": false, "groups": [{"group_identifier": "Made", "display_name": "Made again"}]})).await;
        assert_eq!(status, 200);
        assert_eq!(answer["groups_updated"][0]["name"], "Made");
        let (status, _) = post("groups/Made/delete", json!({})).await;
        assert_eq!(status, 204);

        // Ownership through metadata/search and assign.
        let objects = server.state.give_objects("http.user", 2);
        let (status, e) = post("users/http.user/delete", json!({})).await;
        assert_eq!(status, 400);
        assert!(
            e["error"]["message"]["debug"]
                .as_str()
                .unwrap()
                .contains("owns 2 objects")
        );
        let (_, listed) = post(
            "metadata/search",
            json!({"created_by_user_identifiers": ["http.user"], "record_size": -1}),
        )
        .await;
        let listed = listed.as_array().unwrap();
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0]["metadata_header"]["authorName"], "http.user");
        let metadata: Vec<Value> = objects.iter().map(|g| json!({"identifier": g})).collect();
        let (status, _) = post(
            "security/metadata/assign",
            json!({"metadata": metadata, "user_identifier": "user2@example.com"}),
        )
        .await;
        assert_eq!(status, 204);
        assert_eq!(server.state.owned_objects("user2@example.com").len(), 2);
        let (status, _) = post("users/http.user/delete", json!({})).await;
        assert_eq!(status, 204);

        // no_v2_writes: writes 404, reads work.
        server.state.set(|f| f.no_v2_writes = true);
        assert_eq!(post("users/create", new_user("z", &[])).await.0, 404);
        assert_eq!(search_user("user0@example.com").await.0, 200);
        server.state.set(|f| f.no_v2_writes = false);

        // v1: login, sync (multipart), list, transfer.
        let login = client
            .post(format!(
                "{}/callosum/v1/tspublic/v1/session/login",
                server.url()
            ))
            .header("X-Requested-By", "ThoughtSpot")
            .form(&[
                ("username", super::super::USERNAME),
                ("password", super::super::PASSWORD),
            ])
            .send()
            .await
            .unwrap();
        let cookie = login.headers()[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        let v1 = |path: &str| {
            client
                .post(format!("{}/callosum/v1/tspublic/v1/{path}", server.url()))
                .header("X-Requested-By", "ThoughtSpot")
                .header(header::COOKIE, &cookie)
        };
        let mut principals = server.state.principals().v1.unwrap();
        principals.push(json!({"name": "from.v1", "displayName": "V1", "principalTypeEnum": "LOCAL_USER", "groupNames": []}));
        let principals = serde_json::to_string(&principals).unwrap();
        let sync = |apply: &str| {
            v1("user/sync")
                .header(header::CONTENT_TYPE, "multipart/form-data; boundary=XyZ")
                .body(multipart(
                    "XyZ",
                    &[
                        ("principals", &principals),
                        ("applyChanges", apply),
                        ("removeDeleted", "false"),
                        ("password", GOOD),
                    ],
                ))
                .send()
        };
        let answer: Value = sync("false").await.unwrap().json().await.unwrap();
        assert_eq!(answer["usersAdded"], json!(["from.v1"]));
        assert!(server.state.user("from.v1").is_none());
        let response = sync("true").await.unwrap();
        assert_eq!(response.status().as_u16(), 200);
        assert!(server.state.user("from.v1").is_some());
        let list: Value = client
            .get(format!(
                "{}/callosum/v1/tspublic/v1/user/list",
                server.url()
            ))
            .header("X-Requested-By", "ThoughtSpot")
            .header(header::COOKIE, &cookie)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(
            list.as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "from.v1")
        );
        let (_, found) = search_user("from.v1").await;
        assert!(
            found
                .as_array()
                .unwrap()
                .iter()
                .any(|u| u["name"] == "from.v1"),
            "v2 reads see v1 writes"
        );
        server.state.give_objects("from.v1", 1);
        let transfer = |q: &str| v1(&format!("user/transfer/ownership?{q}")).send();
        assert_eq!(
            transfer("fromUserName=from.v1&toUserName=tsadmin")
                .await
                .unwrap()
                .status()
                .as_u16(),
            400
        );
        assert_eq!(
            transfer("fromUserName=from.v1&toUserName=nobody")
                .await
                .unwrap()
                .status()
                .as_u16(),
            404
        );
        assert_eq!(
            transfer("fromUserName=from.v1&toUserName=user0%40example.com")
                .await
                .unwrap()
                .status()
                .as_u16(),
            204
        );
        assert_eq!(server.state.owned_objects("user0@example.com").len(), 1);
        let writes = server.state.principal_writes();
        assert!(
            writes
                .iter()
                .any(|w| w.path.ends_with("/user/sync") && w.body.contains("from.v1"))
        );
        assert!(writes.iter().all(|w| !w.path.ends_with("/search")));
    }
}
