//! Turning wire records into builder records.

use std::borrow::Cow;

use uuid::Uuid;

use super::InputError;
use super::wire::{Text, WireId, WireRecord, WireRef};
use crate::model::{Builder, GroupRecord, Id, OrgRecord, Origin, UserRecord, Visibility};

/// Namespace of the GUIDs ts-principals derives for v1 principals.
const DERIVED_GUID_NAMESPACE: Uuid = Uuid::from_u128(0x0b59f6d5_ce7a_46b2_81d5_f700f1270dc8);

/// A stable GUID for a principal that has none (v1 `user/list` keys
/// principals by name): UUIDv5 over the cluster id, kind and name, encoded as
/// a JSON array so no choice of separator can make two triples collide.
pub fn derived_guid(cluster_id: &str, kind: &str, name: &str) -> String {
    derived_id(cluster_id, kind, name).to_string()
}

fn derived_id(cluster_id: &str, kind: &str, name: &str) -> Id<'static> {
    let key = serde_json::json!([cluster_id, kind, name]).to_string();
    // A UUID's number is what its canonical text spells.
    Id::Guid(Uuid::new_v5(&DERIVED_GUID_NAMESPACE, key.as_bytes()).as_u128())
}

fn ids<'a>(values: Option<Vec<Text<'a>>>) -> Vec<Id<'a>> {
    values
        .unwrap_or_default()
        .into_iter()
        .map(|t| Id::new(t.0))
        .collect()
}

fn text<'a>(value: Option<Text<'a>>) -> Cow<'a, str> {
    value.map(|t| t.0).unwrap_or_default()
}

fn texts<'a>(values: Option<Vec<Text<'a>>>) -> Vec<Cow<'a, str>> {
    values
        .unwrap_or_default()
        .into_iter()
        .map(|t| t.0)
        .collect()
}

fn record_error(origin: &Origin, message: impl Into<String>) -> InputError {
    InputError::Record {
        origin: origin.clone(),
        message: message.into(),
    }
}

/// The record's GUID; a record without one cannot be joined to anything.
fn guid<'a>(record: &mut WireRecord<'a>, origin: &Origin) -> Result<Id<'a>, InputError> {
    let name = record.name.as_ref().map(|n| n.0.to_string());
    let named = name.map(|n| format!(" (name \"{n}\")")).unwrap_or_default();
    match record.id.take() {
        Some(WireId::Str(id)) if !id.trim().is_empty() => Ok(Id::new(id)),
        Some(WireId::Str(_)) => Err(record_error(
            origin,
            format!("record{named} has an empty `id`"),
        )),
        Some(WireId::Int(n)) => Err(record_error(
            origin,
            format!(
                "record{named} has the number {n} as `id`; users and groups are identified by GUID strings"
            ),
        )),
        None => Err(record_error(
            origin,
            format!(
                "record{named} has no `id`; every user and group needs its GUID \
                 (v1 user/list exports, which have none, are recognised by their `principalTypeEnum`)"
            ),
        )),
    }
}

/// The record's name; `id`, when known, says which record lacks it.
fn required_name<'a>(
    record: &mut WireRecord<'a>,
    origin: &Origin,
    id: Option<&dyn std::fmt::Display>,
) -> Result<Cow<'a, str>, InputError> {
    match record.name.take() {
        Some(name) => Ok(name.0),
        None => {
            let with_id = id.map(|id| format!(" (id {id})")).unwrap_or_default();
            Err(record_error(
                origin,
                format!("record{with_id} has no `name`"),
            ))
        }
    }
}

/// An org id, written as a number or a numeric string.
fn org_id(id: &WireId<'_>, origin: &Origin) -> Result<i64, InputError> {
    match id {
        WireId::Int(n) => Ok(*n),
        WireId::Str(s) => s
            .trim()
            .parse()
            .map_err(|_| record_error(origin, format!("org id \"{s}\" is not a number"))),
    }
}

/// Org ids of v2 `orgs` references, remembering the names they carry.
fn v2_org_ids<'a>(
    refs: Option<Vec<WireRef<'a>>>,
    origin: &Origin,
    builder: &mut Builder<'a>,
) -> Result<Vec<i64>, InputError> {
    let mut ids = Vec::new();
    for r in refs.unwrap_or_default() {
        let Some(id) = &r.id else {
            return Err(record_error(origin, "an entry of `orgs` has no `id`"));
        };
        let id = org_id(id, origin)?;
        if let Some(name) = r.name {
            builder.org_name_hint(id, name.0);
        }
        ids.push(id);
    }
    Ok(ids)
}

/// GUIDs of v2 `{id, name}` references.
fn v2_ref_ids<'a>(
    refs: Option<Vec<WireRef<'a>>>,
    field: &str,
    origin: &Origin,
) -> Result<Vec<Id<'a>>, InputError> {
    refs.unwrap_or_default()
        .into_iter()
        .map(|r| match r.id {
            Some(WireId::Str(id)) => Ok(Id::new(id)),
            Some(WireId::Int(n)) => Err(record_error(
                origin,
                format!("an entry of `{field}` has the number {n} as `id`; expected a GUID string"),
            )),
            None => Err(record_error(
                origin,
                format!("an entry of `{field}` has no `id`"),
            )),
        })
        .collect()
}

/// An org from a canonical snapshot or REST v2 `orgs/search` (they agree).
pub(crate) fn org<'a>(
    mut record: WireRecord<'a>,
    origin: Origin,
) -> Result<OrgRecord<'a>, InputError> {
    let id = match &record.id {
        Some(id) => org_id(id, &origin)?,
        None => return Err(record_error(&origin, "org has no `id`")),
    };
    Ok(OrgRecord {
        id,
        name: required_name(&mut record, &origin, Some(&id))?,
        description: text(record.description),
        origin,
    })
}

/// Org ids: the canonical `org_ids`, else the v2 `orgs` references, else
/// the v2 `current_org` (`orgs` is null on some clusters, and the org the
/// record was fetched in is the best remaining evidence).
fn org_ids<'a>(
    record: &mut WireRecord<'a>,
    origin: &Origin,
    builder: &mut Builder<'a>,
) -> Result<Vec<i64>, InputError> {
    if let Some(ids) = record.org_ids.take() {
        return ids.iter().map(|id| org_id(id, origin)).collect();
    }
    let ids = v2_org_ids(record.orgs.take(), origin, builder)?;
    if !ids.is_empty() {
        return Ok(ids);
    }
    let current = record.current_org.take().filter(|r| r.id.is_some());
    v2_org_ids(current.map(|r| vec![r]), origin, builder)
}

/// A user from a canonical snapshot or REST v2 `users/search`. The two
/// dialects name their fields differently, so one reading serves both.
pub(crate) fn user<'a>(
    mut record: WireRecord<'a>,
    origin: Origin,
    builder: &mut Builder<'a>,
) -> Result<UserRecord<'a>, InputError> {
    let id = guid(&mut record, &origin)?;
    let name = required_name(&mut record, &origin, Some(&format!("\"{id}\"")))?;
    let org_ids = org_ids(&mut record, &origin, builder)?;
    let mut group_ids = ids(record.group_ids);
    group_ids.extend(v2_ref_ids(record.user_groups, "user_groups", &origin)?);
    Ok(UserRecord {
        id,
        derived_id: record.derived_id.unwrap_or(false),
        name,
        display_name: text(record.display_name),
        email: text(record.email),
        visibility: record.visibility.map(|t| t.0),
        account_type: record.account_type.map(|t| t.0),
        account_status: record.account_status.map(|t| t.0),
        created: record.created.map(|m| m.0),
        modified: record.modified.map(|m| m.0),
        org_ids,
        group_ids,
        inherited_group_ids: match record.user_inherited_groups {
            Some(refs) => Some(v2_ref_ids(Some(refs), "user_inherited_groups", &origin)?),
            None => None,
        },
        origin,
    })
}

/// A group from a canonical snapshot or REST v2 `groups/search`.
pub(crate) fn group<'a>(
    mut record: WireRecord<'a>,
    origin: Origin,
    builder: &mut Builder<'a>,
) -> Result<GroupRecord<'a>, InputError> {
    let id = guid(&mut record, &origin)?;
    let name = required_name(&mut record, &origin, Some(&format!("\"{id}\"")))?;
    let org_ids = org_ids(&mut record, &origin, builder)?;
    Ok(GroupRecord {
        id,
        derived_id: record.derived_id.unwrap_or(false),
        name,
        display_name: text(record.display_name),
        description: text(record.description),
        group_type: record.group_type.map(|t| t.0),
        visibility: record.visibility.map(|t| t.0),
        created: record.created.map(|m| m.0),
        modified: record.modified.map(|m| m.0),
        org_ids,
        parent_ids: ids(record.parent_group_ids),
        child_ids: v2_ref_ids(record.sub_groups, "sub_groups", &origin)?,
        member_user_ids: v2_ref_ids(record.users, "users", &origin)?,
        privileges: texts(record.privileges),
        origin,
    })
}

/// A principal from v1 `user/list`: users and groups share one list, are
/// keyed by name, and reference groups by name.
pub(crate) fn v1_principal<'a>(
    mut record: WireRecord<'a>,
    origin: Origin,
    cluster_id: &str,
    builder: &mut Builder<'a>,
) -> Result<(), InputError> {
    let name = required_name(&mut record, &origin, None)?;
    let principal_type = text(record.principal_type);
    let is_group = principal_type.ends_with("_GROUP");
    if !is_group && !principal_type.ends_with("_USER") {
        tracing::debug!("{origin}: principalTypeEnum \"{principal_type}\" read as a user");
    }
    let group_ids: Vec<Id<'a>> = texts(record.group_names)
        .iter()
        .map(|group| derived_id(cluster_id, "group", group))
        .collect();
    // v1 spells "can be shared with" as DEFAULT.
    let visibility = record.visibility.map(|t| match t.0.as_ref() {
        "DEFAULT" => Cow::Borrowed(Visibility::Sharable.as_str()),
        _ => t.0,
    });
    let principal_type = (!principal_type.is_empty()).then_some(principal_type);
    if is_group {
        builder.group(GroupRecord {
            id: derived_id(cluster_id, "group", &name),
            derived_id: true,
            name,
            display_name: text(record.display_name),
            description: text(record.description),
            group_type: principal_type,
            visibility,
            created: record.created.map(|m| m.0),
            modified: record.modified.map(|m| m.0),
            org_ids: Vec::new(),
            parent_ids: group_ids,
            child_ids: Vec::new(),
            member_user_ids: Vec::new(),
            privileges: Vec::new(),
            origin,
        })?;
    } else {
        builder.user(UserRecord {
            id: derived_id(cluster_id, "user", &name),
            derived_id: true,
            name,
            display_name: text(record.display_name),
            email: text(record.email),
            visibility,
            account_type: principal_type,
            account_status: None,
            created: record.created.map(|m| m.0),
            modified: record.modified.map(|m| m.0),
            org_ids: Vec::new(),
            group_ids,
            inherited_group_ids: None,
            origin,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_guids_are_stable_and_distinct_per_kind_and_cluster() {
        let a = derived_guid("prod", "user", "ana");
        assert_eq!(a, derived_guid("prod", "user", "ana"));
        assert_ne!(a, derived_guid("prod", "group", "ana"));
        assert_ne!(a, derived_guid("dev", "user", "ana"));
        // A separator inside a name cannot forge another triple.
        assert_ne!(
            derived_guid("a", "user", "b\",\"c"),
            derived_guid("a\",\"user", "b", "c")
        );
        assert_eq!(a.len(), 36);
    }
}
