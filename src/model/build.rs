//! Turning records from any input into [`Principals`].

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use std::fmt;
use std::sync::Arc;

use serde::Serialize;

use super::ids::{Id, IdIndex};
use super::{
    AccountStatus, AccountType, Group, GroupIx, GroupType, Millis, Org, PRIMARY_ORG_ID,
    PRIMARY_ORG_NAME, Principals, Source, User, Visibility,
};

/// Where a record came from, so messages can point at it
/// (`principals.json: users[12]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// The file, as the user named it.
    pub file: Arc<str>,
    /// The JSON array the record sits in (`users`), or empty for a top-level array.
    pub list: &'static str,
    /// Position in that array.
    pub index: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}[{}]", self.file, self.list, self.index)
    }
}

/// An org as an input describes it.
#[derive(Clone, Debug)]
pub struct OrgRecord<'a> {
    /// Where it came from.
    pub origin: Origin,
    /// Numeric org id.
    pub id: i64,
    /// Org name.
    pub name: Cow<'a, str>,
    /// Description (may be empty).
    pub description: Cow<'a, str>,
}

/// A user as an input describes it; references are GUIDs.
#[derive(Clone, Debug)]
pub struct UserRecord<'a> {
    /// Where it came from.
    pub origin: Origin,
    /// GUID.
    pub id: Id<'a>,
    /// True when the GUID was derived (v1 inputs).
    pub derived_id: bool,
    /// Username.
    pub name: Cow<'a, str>,
    /// Display name (may be empty).
    pub display_name: Cow<'a, str>,
    /// E-mail (may be empty).
    pub email: Cow<'a, str>,
    /// `visibility` as spelled by the input.
    pub visibility: Option<Cow<'a, str>>,
    /// `account_type` as spelled by the input.
    pub account_type: Option<Cow<'a, str>>,
    /// `account_status` as spelled by the input.
    pub account_status: Option<Cow<'a, str>>,
    /// Creation time.
    pub created: Option<Millis>,
    /// Modification time.
    pub modified: Option<Millis>,
    /// Orgs the user belongs to; empty means the Primary org.
    pub org_ids: Vec<i64>,
    /// GUIDs of groups the user is a direct member of.
    pub group_ids: Vec<Id<'a>>,
    /// GUIDs of groups ThoughtSpot says the user inherits, when the input says
    /// (v2 `user_inherited_groups`); used to check the hierarchy is complete.
    pub inherited_group_ids: Option<Vec<Id<'a>>>,
}

/// A group as an input describes it; references are GUIDs.
#[derive(Clone, Debug)]
pub struct GroupRecord<'a> {
    /// Where it came from.
    pub origin: Origin,
    /// GUID.
    pub id: Id<'a>,
    /// True when the GUID was derived (v1 inputs).
    pub derived_id: bool,
    /// Group name.
    pub name: Cow<'a, str>,
    /// Display name (may be empty).
    pub display_name: Cow<'a, str>,
    /// Description (may be empty).
    pub description: Cow<'a, str>,
    /// `type` as spelled by the input.
    pub group_type: Option<Cow<'a, str>>,
    /// `visibility` as spelled by the input.
    pub visibility: Option<Cow<'a, str>>,
    /// Creation time.
    pub created: Option<Millis>,
    /// Modification time.
    pub modified: Option<Millis>,
    /// Orgs the group lives in; empty means the Primary org.
    pub org_ids: Vec<i64>,
    /// GUIDs of groups this group is a member of.
    pub parent_ids: Vec<Id<'a>>,
    /// GUIDs of groups that are members of this group (v2 `sub_groups`).
    pub child_ids: Vec<Id<'a>>,
    /// GUIDs of users that are direct members (v2 `users`).
    pub member_user_ids: Vec<Id<'a>>,
    /// Privileges granted to members.
    pub privileges: Vec<Cow<'a, str>>,
}

/// Input that cannot be turned into a consistent set of principals.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// Two records share an id but say different things.
    #[error("{0}")]
    Conflict(Box<Conflict>),
    /// More principals than the model can index.
    #[error("the input holds {count} {kind}s; at most {max} are supported", max = u32::MAX)]
    TooMany {
        /// `user` or `group`.
        kind: &'static str,
        /// How many there were.
        count: usize,
    },
}

/// Two records with one id that say different things.
#[derive(Debug, thiserror::Error)]
#[error(
    "{second} has the same {kind} id \"{id}\" as {first} but a different `{field}`; \
     the input contradicts itself (a paged fetch that changed underneath?). \
     Fetch the snapshot again, or remove one of the two records"
)]
pub struct Conflict {
    /// `user`, `group` or `org`.
    pub kind: &'static str,
    /// The shared id.
    pub id: String,
    /// The record seen first.
    pub first: Origin,
    /// The record that contradicts it.
    pub second: Origin,
    /// The first field that differs.
    pub field: &'static str,
}

/// What the builder repaired or noticed; every non-zero count was also logged
/// once as a warning.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct BuildReport {
    /// Exact duplicate records merged into one.
    pub duplicates_merged: usize,
    /// References to users or groups the input does not contain, dropped.
    pub dangling_references: usize,
    /// Orgs referenced by users or groups but not listed, added with what is known.
    pub orgs_added: usize,
    /// Cycles in group nesting.
    pub group_cycles: usize,
    /// Inherited memberships ThoughtSpot reported that the hierarchy does not explain.
    pub unexplained_inherited: usize,
    /// Principals seen twice with different details during a live fetch
    /// (changed while it ran); the most recently modified version was kept.
    #[serde(skip_serializing_if = "is_zero")]
    pub changed_during_fetch: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// The name of the first field that differs between `$a` and `$b`, two
/// values of the struct `$ty`: first those compared for equality, then
/// those compared as sets (paged APIs list references in any order).
/// Every field of `$ty` is named once, compared or skipped, in a pattern
/// without `..`: a field added to the struct does not compile until it is
/// placed here, so no field can be left out of the comparison unnoticed.
macro_rules! first_difference {
    ($ty:ident: $a:expr, $b:expr;
     equal: $($eq:ident),*;
     as_sets: $($set:ident),*;
     skip: $($skip:ident),* $(,)?) => {{
        let (a, b) = ($a, $b);
        let $ty { $($eq: _,)* $($set: _,)* $($skip: _,)* } = a;
        None
            $(.or_else(|| (a.$eq != b.$eq).then_some(stringify!($eq))))*
            $(.or_else(|| (!SameSet::same_set(&a.$set, &b.$set)).then_some(stringify!($set))))*
    }};
}

/// A principal accepted so far: the model value (its references still
/// unresolved), where it came from, and its references.
#[derive(Debug)]
struct Slot<T, R> {
    value: T,
    origin: Origin,
    refs: R,
}

/// A user's references, resolved when everything is in; named as in
/// [`UserRecord`], so a conflict names the record's field.
#[derive(Debug)]
struct UserRefs<'a> {
    group_ids: Vec<Id<'a>>,
    inherited_group_ids: Option<Vec<Id<'a>>>,
}

/// A group's references, resolved when everything is in; named as in
/// [`GroupRecord`].
#[derive(Debug)]
struct GroupRefs<'a> {
    parent_ids: Vec<Id<'a>>,
    child_ids: Vec<Id<'a>>,
    member_user_ids: Vec<Id<'a>>,
}

/// Collects records from one or more inputs, then [`Builder::build`]s them.
///
/// Each user and group is checked against earlier records with the same id
/// and converted to its model value as it arrives, so that work can overlap
/// with parsing; only ordering and resolving references wait for `build`.
#[derive(Debug, Default)]
pub struct Builder<'a> {
    source: Source,
    orgs: Vec<OrgRecord<'a>>,
    org_names: HashMap<i64, Cow<'a, str>>,
    users: Vec<Slot<User, UserRefs<'a>>>,
    user_index: IdIndex,
    groups: Vec<Slot<Group, GroupRefs<'a>>>,
    group_index: IdIndex,
    merged: usize,
    org_views: bool,
    changed: usize,
    only_orgs: Option<Vec<i64>>,
}

impl<'a> Builder<'a> {
    /// A builder for principals from `source`.
    pub fn new(source: Source) -> Self {
        Self {
            source,
            ..Self::default()
        }
    }

    /// Replaces where the principals came from (a canonical snapshot says).
    pub fn set_source(&mut self, source: Source) {
        self.source = source;
    }

    /// Records which REST API the principals were read with.
    pub fn set_api(&mut self, api: &str) {
        self.source.api = Some(api.to_owned());
    }

    /// Declares that the records are views of the same principals through
    /// several org scopes, as a live fetch sees them: a principal seen again
    /// has the references and orgs of the new view added to the first, and
    /// when its details differ (it changed while the fetch ran) the most
    /// recently modified version is kept, with one warning for all such.
    pub fn merge_org_views(&mut self) {
        self.org_views = true;
    }

    /// Keeps only these orgs in principals' org lists: a fetch of some
    /// orgs says nothing complete about the others, so their rows are left
    /// out rather than half filled.
    pub fn only_orgs(&mut self, ids: Vec<i64>) {
        self.only_orgs = Some(ids);
    }

    /// Adds an org.
    pub fn org(&mut self, org: OrgRecord<'a>) {
        self.orgs.push(org);
    }

    /// Remembers an org's name seen in a reference, used if the org itself is
    /// not listed.
    pub fn org_name_hint(&mut self, id: i64, name: Cow<'a, str>) {
        self.org_names.entry(id).or_insert(name);
    }

    /// Adds a user. A user seen before with the same content (as paged APIs
    /// sometimes repeat) is merged, its org memberships added; one with
    /// different content is an error.
    pub fn user(&mut self, record: UserRecord<'a>) -> Result<(), BuildError> {
        // Every field, without `..`: a new one must be placed here.
        let UserRecord {
            origin,
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
            group_ids,
            inherited_group_ids,
        } = record;
        let value = User {
            id: id.to_string(),
            derived_id,
            name: name.into_owned(),
            display_name: display_name.into_owned(),
            email: email.into_owned(),
            visibility: visibility.as_deref().map(Visibility::parse),
            account_type: account_type.as_deref().map(AccountType::parse),
            account_status: account_status.as_deref().map(AccountStatus::parse),
            created,
            modified,
            org_ids,
            groups: Vec::new(),
        };
        let slot = Slot {
            value,
            origin,
            refs: UserRefs {
                group_ids,
                inherited_group_ids,
            },
        };
        let merge = accept(
            &mut self.user_index,
            &mut self.users,
            &id,
            slot,
            self.org_views,
        )?;
        self.count(merge);
        Ok(())
    }

    /// Adds a group; duplicates are handled as for [`Builder::user`].
    pub fn group(&mut self, record: GroupRecord<'a>) -> Result<(), BuildError> {
        // Every field, without `..`: a new one must be placed here.
        let GroupRecord {
            origin,
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
            parent_ids,
            child_ids,
            member_user_ids,
            privileges,
        } = record;
        let mut privileges: Vec<String> = privileges.into_iter().map(Cow::into_owned).collect();
        privileges.sort_unstable();
        privileges.dedup();
        let value = Group {
            id: id.to_string(),
            derived_id,
            name: name.into_owned(),
            display_name: display_name.into_owned(),
            description: description.into_owned(),
            group_type: group_type.as_deref().map(GroupType::parse),
            visibility: visibility.as_deref().map(Visibility::parse),
            created,
            modified,
            org_ids,
            parents: Vec::new(),
            privileges,
        };
        let slot = Slot {
            value,
            origin,
            refs: GroupRefs {
                parent_ids,
                child_ids,
                member_user_ids,
            },
        };
        let merge = accept(
            &mut self.group_index,
            &mut self.groups,
            &id,
            slot,
            self.org_views,
        )?;
        self.count(merge);
        Ok(())
    }

    fn count(&mut self, merge: Merge) {
        match merge {
            Merge::New => {}
            Merge::Repeat => self.merged += 1,
            Merge::Changed => self.changed += 1,
        }
    }

    /// Normalizes everything added into [`Principals`].
    pub fn build(self) -> Result<(Principals, BuildReport), BuildError> {
        let Builder {
            source,
            orgs,
            org_names,
            users: user_slots,
            user_index,
            groups: group_slots,
            group_index,
            merged,
            org_views,
            changed,
            only_orgs,
        } = self;
        let mut report = BuildReport::default();
        if merged > 0 && !org_views {
            tracing::warn!(
                "merged {merged} duplicate user or group record(s) with identical content"
            );
        }
        if changed > 0 {
            tracing::warn!(
                "{changed} user(s) or group(s) changed while they were fetched; kept the most \
                 recently modified version of each (fetch again for a consistent snapshot)"
            );
        }
        report.duplicates_merged = merged;
        report.changed_during_fetch = changed;
        let orgs = dedup_orgs(orgs, &mut report)?;
        for (kind, count) in [("user", user_slots.len()), ("group", group_slots.len())] {
            if count > u32::MAX as usize {
                return Err(BuildError::TooMany { kind, count });
            }
        }

        let had_org_list = !orgs.is_empty();
        let org_map: BTreeMap<i64, Org> = orgs
            .into_iter()
            .map(|o| {
                let org = Org {
                    id: o.id,
                    name: o.name.into_owned(),
                    description: o.description.into_owned(),
                };
                (org.id, org)
            })
            .collect();

        // Slots stay in arrival order; `rank` says where each lands in the
        // canonical order, and references resolve through the index (id →
        // slot) and then `rank` (slot → model index).
        let user_rank = canonical_rank(&user_slots, |a, b| {
            (&a.value.name, &a.value.id).cmp(&(&b.value.name, &b.value.id))
        });
        let group_rank = canonical_rank(&group_slots, |a, b| {
            (&a.value.name, &a.value.id).cmp(&(&b.value.name, &b.value.id))
        });
        let user_of = |id: &Id<'_>| user_index.get(id).map(|i| user_rank[i as usize]);
        let group_of = |id: &Id<'_>| group_index.get(id).map(|i| group_rank[i as usize]);

        let (memberships, nesting, dangling) = resolve(
            (&user_slots, &user_rank),
            (&group_slots, &group_rank),
            &user_of,
            &group_of,
        );
        let inherited: Vec<(u32, Vec<u32>)> = user_slots
            .iter()
            .zip(&user_rank)
            .filter_map(|(slot, &u)| {
                let reported = slot
                    .refs
                    .inherited_group_ids
                    .as_ref()
                    .filter(|r| !r.is_empty())?;
                Some((u, reported.iter().filter_map(&group_of).collect()))
            })
            .collect();
        let mut users = in_rank_order(user_slots, &user_rank);
        let mut groups = in_rank_order(group_slots, &group_rank);
        distribute(memberships, users.iter_mut().map(|u| &mut u.groups));
        distribute(nesting, groups.iter_mut().map(|g| &mut g.parents));
        if let Some(keep) = &only_orgs {
            let lists = users
                .iter_mut()
                .map(|u| &mut u.org_ids)
                .chain(groups.iter_mut().map(|g| &mut g.org_ids));
            for list in lists {
                list.retain(|id| keep.contains(id));
            }
        }
        if dangling > 0 {
            tracing::warn!(
                "dropped {dangling} reference(s) to users or groups that are not in the input \
                 (deleted meanwhile, or outside the orgs fetched)"
            );
        }
        report.dangling_references = dangling;
        let orgs = place_orgs(
            org_map,
            &org_names,
            had_org_list,
            &mut users,
            &mut groups,
            &mut report,
        );
        report.group_cycles = warn_about_cycles(&groups);
        let principals = Principals::new(source, orgs, users, groups);
        report.unexplained_inherited = check_inherited(&principals, &inherited);
        Ok((principals, report))
    }
}

/// Resolves every reference to a (from, to) edge between model indices
/// (`rank` gives each slot's), packed into a `u64` so the edges sort
/// cheaply. Returns the membership (user → group) and nesting (child →
/// parent) edges, and how many references name principals the input lacks.
fn resolve(
    users: (&[Slot<User, UserRefs<'_>>], &[u32]),
    groups: (&[Slot<Group, GroupRefs<'_>>], &[u32]),
    user_of: &dyn Fn(&Id<'_>) -> Option<u32>,
    group_of: &dyn Fn(&Id<'_>) -> Option<u32>,
) -> (Vec<u64>, Vec<u64>, usize) {
    let mut dangling = 0usize;
    let mut memberships: Vec<u64> = Vec::new();
    let mut nesting: Vec<u64> = Vec::new();
    let mut edge = |edges: &mut Vec<u64>, resolved: Option<(u32, u32)>| match resolved {
        Some((from, to)) => edges.push((u64::from(from) << 32) | u64::from(to)),
        None => dangling += 1,
    };
    for (slot, &g) in groups.0.iter().zip(groups.1) {
        for parent in &slot.refs.parent_ids {
            edge(&mut nesting, group_of(parent).map(|p| (g, p)));
        }
        for child in &slot.refs.child_ids {
            edge(&mut nesting, group_of(child).map(|c| (c, g)));
        }
        for member in &slot.refs.member_user_ids {
            edge(&mut memberships, user_of(member).map(|u| (u, g)));
        }
    }
    for (slot, &u) in users.0.iter().zip(users.1) {
        for group in &slot.refs.group_ids {
            edge(&mut memberships, group_of(group).map(|g| (u, g)));
        }
    }
    (memberships, nesting, dangling)
}

/// Gives every principal at least one org (Primary when the input says
/// none) and every org a principal lives in a row, named as references
/// named it when the input did not list it; warns when an org list was
/// given but lacked some. Returns the orgs by id.
fn place_orgs(
    mut orgs: BTreeMap<i64, Org>,
    names: &HashMap<i64, Cow<'_, str>>,
    had_org_list: bool,
    users: &mut [User],
    groups: &mut [Group],
    report: &mut BuildReport,
) -> Vec<Org> {
    let nothing_at_all = orgs.is_empty() && users.is_empty() && groups.is_empty();
    let mut added = Vec::new();
    let mut ensure_org = |id: i64| {
        orgs.entry(id).or_insert_with(|| {
            added.push(id);
            let name = match names.get(&id) {
                Some(name) => name.to_string(),
                None if id == PRIMARY_ORG_ID => PRIMARY_ORG_NAME.to_owned(),
                None => format!("Org {id}"),
            };
            Org {
                id,
                name,
                description: String::new(),
            }
        });
    };
    let lists = users
        .iter_mut()
        .map(|u| &mut u.org_ids)
        .chain(groups.iter_mut().map(|g| &mut g.org_ids));
    for principal_orgs in lists {
        if principal_orgs.is_empty() {
            principal_orgs.push(PRIMARY_ORG_ID);
        }
        principal_orgs.sort_unstable();
        principal_orgs.dedup();
        principal_orgs.iter().for_each(|&id| ensure_org(id));
    }
    if nothing_at_all {
        ensure_org(PRIMARY_ORG_ID);
    }
    if had_org_list && !added.is_empty() {
        tracing::warn!(
            "{} org(s) are used by users or groups but missing from the org list; added them by id ({:?})",
            added.len(),
            added
        );
        report.orgs_added = added.len();
    }
    orgs.into_values().collect()
}

/// Warns once about cycles in group nesting, naming one; returns how many.
fn warn_about_cycles(groups: &[Group]) -> usize {
    let cycles = super::effective::find_cycles(groups);
    if let Some(example) = cycles.first() {
        const SHOWN: usize = 5;
        let mut path: Vec<&str> = example
            .iter()
            .take(SHOWN)
            .map(|&g| groups[g.get()].name.as_str())
            .collect();
        let more = example.len().saturating_sub(SHOWN);
        let elided = format!("… {more} more");
        if more > 0 {
            path.push(&elided);
        }
        path.push(&groups[example[0].get()].name);
        tracing::warn!(
            "group nesting has {} cycle(s), e.g. \"{}\"; each group is counted once per user, at its shortest depth",
            cycles.len(),
            path.join("\" → \""),
        );
    }
    cycles.len()
}

/// Counts inherited memberships ThoughtSpot reported (per user index, as
/// group indices) that the group nesting of this input does not produce,
/// and warns about them once.
fn check_inherited(principals: &Principals, reported: &[(u32, Vec<u32>)]) -> usize {
    if reported.is_empty() {
        return 0;
    }
    let effective = principals.effective_memberships();
    let mut unexplained = 0;
    for (user, groups) in reported {
        let start = effective.partition_point(|m| m.user < *user);
        let end = effective.partition_point(|m| m.user <= *user);
        let computed = &effective[start..end];
        unexplained += groups
            .iter()
            .filter(|&&g| {
                computed
                    .binary_search_by(|m| m.group.0.cmp(&g))
                    .map_or(true, |i| computed[i].is_direct())
            })
            .count();
    }
    if unexplained > 0 {
        tracing::warn!(
            "ThoughtSpot reports {unexplained} inherited membership(s) that the group nesting in \
             this input does not explain; the nesting is probably incomplete (fetch groups with \
             their sub-groups), so group_memberships lacks those rows"
        );
    }
    unexplained
}

/// For each item, its position in the order `compare` defines (ties keep
/// input order).
fn canonical_rank<R>(items: &[R], compare: impl Fn(&R, &R) -> std::cmp::Ordering) -> Vec<u32> {
    let mut order: Vec<u32> = (0..items.len() as u32).collect();
    order.sort_by(|&a, &b| compare(&items[a as usize], &items[b as usize]));
    let mut rank = vec![0u32; items.len()];
    for (position, &item) in order.iter().enumerate() {
        rank[item as usize] = position as u32;
    }
    rank
}

/// The slots' values in rank order.
fn in_rank_order<T, R>(slots: Vec<Slot<T, R>>, rank: &[u32]) -> Vec<T> {
    let mut placed: Vec<Option<T>> = (0..slots.len()).map(|_| None).collect();
    for (slot, &r) in slots.into_iter().zip(rank) {
        placed[r as usize] = Some(slot.value);
    }
    placed.into_iter().flatten().collect()
}

/// Sorts packed (from, to) edges and appends each `to` to the list of its
/// `from`, so every list comes out sorted and without duplicates.
fn distribute<'l>(mut edges: Vec<u64>, lists: impl Iterator<Item = &'l mut Vec<GroupIx>>) {
    edges.sort_unstable();
    edges.dedup();
    let mut edges = edges.into_iter().peekable();
    for (from, list) in lists.enumerate() {
        while let Some(edge) = edges.next_if(|e| (e >> 32) as usize == from) {
            list.push(GroupIx(edge as u32));
        }
    }
}

/// What [`accept`] did with a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Merge {
    /// A principal not seen before.
    New,
    /// A repeat, folded into the first.
    Repeat,
    /// A repeat with other details (org views only): the newer one was kept.
    Changed,
}

/// Adds `slot` unless its id was seen. A repeat is folded into the first
/// one when only the orgs it is listed in differ (the same principal
/// fetched through several orgs); otherwise it is an error naming the first
/// field that differs, except for `org_views` (see
/// [`Builder::merge_org_views`]), where references are united and differing
/// details settled by modification time.
fn accept<T: Principal, R: References>(
    index: &mut IdIndex,
    slots: &mut Vec<Slot<T, R>>,
    id: &Id<'_>,
    slot: Slot<T, R>,
    org_views: bool,
) -> Result<Merge, BuildError> {
    let Some(first) = index.insert(id, slots.len() as u32) else {
        slots.push(slot);
        return Ok(Merge::New);
    };
    let first = &mut slots[first as usize];
    let detail = first.value.differs(&slot.value);
    let Some(field) = detail.or_else(|| first.refs.differs(&slot.refs)) else {
        let mut again = slot.value;
        first.value.orgs_mut().append(again.orgs_mut());
        return Ok(Merge::Repeat);
    };
    if !org_views {
        return Err(BuildError::Conflict(Box::new(Conflict {
            kind: T::KIND,
            id: first.value.id().to_owned(),
            first: first.origin.clone(),
            second: slot.origin,
            field,
        })));
    }
    let Slot {
        mut value,
        origin,
        refs,
    } = slot;
    first.refs.unite(refs);
    first.value.orgs_mut().append(value.orgs_mut());
    if detail.is_none() {
        return Ok(Merge::Repeat);
    }
    if value.modified() >= first.value.modified() {
        std::mem::swap(value.orgs_mut(), first.value.orgs_mut());
        first.value = value;
        first.origin = origin;
    }
    Ok(Merge::Changed)
}

/// Model values with an id, org memberships and details to compare.
trait Principal {
    /// `user` or `group`, for messages.
    const KIND: &'static str;
    fn id(&self) -> &str;
    fn orgs_mut(&mut self) -> &mut Vec<i64>;
    fn modified(&self) -> Option<Millis>;
    /// The first detail (not a reference) that differs.
    fn differs(&self, other: &Self) -> Option<&'static str>;
}

/// A principal's unresolved references.
trait References {
    /// The first list that differs as a set.
    fn differs(&self, other: &Self) -> Option<&'static str>;
    /// Adds the other's references to these.
    fn unite(&mut self, other: Self);
}

impl Principal for User {
    const KIND: &'static str = "user";
    fn id(&self) -> &str {
        &self.id
    }
    fn orgs_mut(&mut self) -> &mut Vec<i64> {
        &mut self.org_ids
    }
    fn modified(&self) -> Option<Millis> {
        self.modified
    }
    fn differs(&self, other: &Self) -> Option<&'static str> {
        first_difference!(User: self, other;
            equal: derived_id, name, display_name, email, visibility, account_type,
                account_status, created, modified;
            as_sets: ;
            // The id is what made them duplicates; a principal's orgs are the
            // union of the views it is listed in; groups are still in its refs.
            skip: id, org_ids, groups)
    }
}

impl Principal for Group {
    const KIND: &'static str = "group";
    fn id(&self) -> &str {
        &self.id
    }
    fn orgs_mut(&mut self) -> &mut Vec<i64> {
        &mut self.org_ids
    }
    fn modified(&self) -> Option<Millis> {
        self.modified
    }
    fn differs(&self, other: &Self) -> Option<&'static str> {
        first_difference!(Group: self, other;
            // Privileges are sorted and unique by now.
            equal: derived_id, name, display_name, description, group_type, visibility,
                created, modified, privileges;
            as_sets: ;
            // As for users; parents are still in its refs.
            skip: id, org_ids, parents)
    }
}

impl References for UserRefs<'_> {
    fn differs(&self, other: &Self) -> Option<&'static str> {
        first_difference!(UserRefs: self, other;
            equal: ;
            as_sets: group_ids, inherited_group_ids;
            skip: )
    }
    fn unite(&mut self, other: Self) {
        let UserRefs {
            group_ids,
            inherited_group_ids,
        } = other;
        self.group_ids.extend(group_ids);
        match (&mut self.inherited_group_ids, inherited_group_ids) {
            (Some(mine), Some(theirs)) => mine.extend(theirs),
            (mine @ None, theirs) => *mine = theirs,
            (Some(_), None) => {}
        }
    }
}

impl References for GroupRefs<'_> {
    fn differs(&self, other: &Self) -> Option<&'static str> {
        first_difference!(GroupRefs: self, other;
            equal: ;
            as_sets: parent_ids, child_ids, member_user_ids;
            skip: )
    }
    fn unite(&mut self, other: Self) {
        let GroupRefs {
            parent_ids,
            child_ids,
            member_user_ids,
        } = other;
        self.parent_ids.extend(parent_ids);
        self.child_ids.extend(child_ids);
        self.member_user_ids.extend(member_user_ids);
    }
}

/// Keeps the first org of each id, merging repeats with the same content
/// and rejecting ones that contradict each other.
fn dedup_orgs<'a>(
    orgs: Vec<OrgRecord<'a>>,
    report: &mut BuildReport,
) -> Result<Vec<OrgRecord<'a>>, BuildError> {
    let mut seen: HashMap<i64, usize> = HashMap::new();
    let mut kept: Vec<OrgRecord<'a>> = Vec::new();
    for org in orgs {
        match seen.get(&org.id) {
            None => {
                seen.insert(org.id, kept.len());
                kept.push(org);
            }
            Some(&first) => {
                let first = &kept[first];
                let field = first_difference!(OrgRecord: first, &org;
                    equal: name, description;
                    as_sets: ;
                    // Where they came from differs by definition; the id is shared.
                    skip: origin, id);
                if let Some(field) = field {
                    return Err(BuildError::Conflict(Box::new(Conflict {
                        kind: "org",
                        id: org.id.to_string(),
                        first: first.origin.clone(),
                        second: org.origin,
                        field,
                    })));
                }
                report.duplicates_merged += 1;
            }
        }
    }
    Ok(kept)
}

/// Compares reference lists as sets: pages may list the same references
/// in another order, or repeat one.
trait SameSet {
    fn same_set(&self, other: &Self) -> bool;
}

impl<T: Ord + Clone> SameSet for Vec<T> {
    fn same_set(&self, other: &Self) -> bool {
        let (mut a, mut b) = (self.clone(), other.clone());
        a.sort_unstable();
        a.dedup();
        b.sort_unstable();
        b.dedup();
        a == b
    }
}

/// A list given and a list not given differ, even when the given one is empty.
impl<T: SameSet> SameSet for Option<T> {
    fn same_set(&self, other: &Self) -> bool {
        match (self, other) {
            (Some(a), Some(b)) => a.same_set(b),
            (a, b) => a.is_none() && b.is_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn origin(index: usize) -> Origin {
        Origin {
            file: Arc::from("test.json"),
            list: "users",
            index,
        }
    }

    pub(crate) fn user(
        id: &'static str,
        name: &'static str,
        groups: &[&'static str],
    ) -> UserRecord<'static> {
        UserRecord {
            origin: origin(0),
            id: Id::from(id),
            derived_id: false,
            name: name.into(),
            display_name: Cow::Borrowed(""),
            email: Cow::Borrowed(""),
            visibility: None,
            account_type: None,
            account_status: None,
            created: None,
            modified: None,
            org_ids: vec![],
            group_ids: groups.iter().map(|g| Id::from(*g)).collect(),
            inherited_group_ids: None,
        }
    }

    pub(crate) fn group(
        id: &'static str,
        name: &'static str,
        parents: &[&'static str],
    ) -> GroupRecord<'static> {
        GroupRecord {
            origin: origin(0),
            id: Id::from(id),
            derived_id: false,
            name: name.into(),
            display_name: Cow::Borrowed(""),
            description: Cow::Borrowed(""),
            group_type: None,
            visibility: None,
            created: None,
            modified: None,
            org_ids: vec![],
            parent_ids: parents.iter().map(|g| Id::from(*g)).collect(),
            child_ids: vec![],
            member_user_ids: vec![],
            privileges: vec![],
        }
    }

    #[test]
    fn sorts_by_name_then_id_and_resolves_references() {
        let mut b = Builder::new(Source::default());
        b.user(user("u2", "zed", &["g1"])).unwrap();
        b.user(user("u1", "amy", &["g2", "g1", "g1"])).unwrap();
        b.group(group("g1", "Sales", &["g2"])).unwrap();
        b.group(group("g2", "All", &[])).unwrap();
        let (p, report) = b.build().unwrap();
        assert_eq!(report, BuildReport::default());
        let names: Vec<_> = p.users.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(names, ["amy", "zed"]);
        let groups: Vec<_> = p.groups.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(groups, ["All", "Sales"]);
        assert_eq!(p.users[0].groups, vec![GroupIx(0), GroupIx(1)]);
        assert_eq!(p.groups[1].parents, vec![GroupIx(0)]);
        assert_eq!(p.orgs.len(), 1, "principals without orgs live in Primary");
        assert_eq!(p.orgs[0].name, PRIMARY_ORG_NAME);
        assert_eq!(p.users[0].org_ids, vec![PRIMARY_ORG_ID]);
    }

    #[test]
    fn sub_groups_and_member_lists_add_edges() {
        let mut b = Builder::new(Source::default());
        b.user(user("u1", "amy", &[])).unwrap();
        let mut parent = group("g1", "Parent", &[]);
        parent.child_ids = vec![Id::from("g2")];
        parent.member_user_ids = vec![Id::from("u1")];
        b.group(parent).unwrap();
        b.group(group("g2", "Child", &[])).unwrap();
        let (p, _) = b.build().unwrap();
        let child = p.groups.iter().position(|g| g.id == "g2").unwrap();
        let parent = p.groups.iter().position(|g| g.id == "g1").unwrap();
        assert_eq!(p.groups[child].parents, vec![GroupIx(parent as u32)]);
        assert_eq!(p.users[0].groups, vec![GroupIx(parent as u32)]);
    }

    #[test]
    fn exact_duplicates_merge_and_conflicts_fail() {
        let mut b = Builder::new(Source::default());
        b.user(user("u1", "amy", &["g1"])).unwrap();
        let mut again = user("u1", "amy", &["g1"]);
        again.origin = origin(7);
        again.org_ids = vec![5];
        b.user(again).unwrap();
        let (p, report) = b.build().unwrap();
        assert_eq!(report.duplicates_merged, 1);
        assert_eq!(p.users.len(), 1);
        assert_eq!(p.users[0].org_ids, vec![5], "org lists are merged");
        assert_eq!(report.dangling_references, 1, "g1 is not in the input");

        let mut b = Builder::new(Source::default());
        b.user(user("u1", "amy", &[])).unwrap();
        let mut other = user("u1", "amy", &[]);
        other.origin = origin(9);
        other.display_name = "Amy B.".into();
        let err = b.user(other).unwrap_err().to_string();
        assert!(err.contains("test.json: users[9]"), "{err}");
        assert!(err.contains("test.json: users[0]"), "{err}");
        assert!(err.contains("`display_name`"), "{err}");
    }

    /// The conflict a second record raises against `first`, or `None`
    /// when they merge.
    fn user_conflict(first: UserRecord<'static>, second: UserRecord<'static>) -> Option<String> {
        let mut b = Builder::new(Source::default());
        b.user(first).unwrap();
        match b.user(second) {
            Ok(()) => None,
            Err(BuildError::Conflict(c)) => {
                let message = c.to_string();
                assert!(message.contains(&format!("`{}`", c.field)), "{message}");
                Some(c.field.to_owned())
            }
            Err(other) => panic!("{other}"),
        }
    }

    fn group_conflict(first: GroupRecord<'static>, second: GroupRecord<'static>) -> Option<String> {
        let mut b = Builder::new(Source::default());
        b.group(first).unwrap();
        match b.group(second) {
            Ok(()) => None,
            Err(BuildError::Conflict(c)) => {
                let message = c.to_string();
                assert!(message.contains(&format!("`{}`", c.field)), "{message}");
                Some(c.field.to_owned())
            }
            Err(other) => panic!("{other}"),
        }
    }

    // A field the comparison skipped would let contradicting duplicates
    // merge silently. Each field below comes from a destructuring of a record
    // that differs from `base` everywhere; a new field breaks the pattern,
    // and an unused binding fails clippy, until it gets its own case here.
    #[test]
    fn users_differing_in_any_one_field_conflict_naming_it() {
        let base = || {
            let mut u = user("u1", "amy", &["g1"]);
            u.display_name = "Amy".into();
            u.email = "amy@example.com".into();
            u.visibility = Some("SHARABLE".into());
            u.account_type = Some("LOCAL_USER".into());
            u.account_status = Some("ACTIVE".into());
            u.created = Some(1);
            u.modified = Some(2);
            u.org_ids = vec![0];
            u
        };
        let UserRecord {
            origin,
            id: _, // the shared id is what makes them duplicates
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
            group_ids,
            inherited_group_ids,
        } = UserRecord {
            origin: origin(1),
            id: Id::from("u1"),
            derived_id: true,
            name: "amy.b".into(),
            display_name: "Amy B.".into(),
            email: "amy.b@example.com".into(),
            visibility: Some("NON_SHARABLE".into()),
            account_type: Some("SAML_USER".into()),
            account_status: Some("LOCKED".into()),
            created: Some(10),
            modified: Some(20),
            org_ids: vec![7],
            group_ids: vec![Id::from("g2")],
            inherited_group_ids: Some(vec![]),
        };
        let second = || UserRecord {
            origin: origin.clone(),
            ..base()
        };
        let cases: Vec<(&str, UserRecord<'static>)> = vec![
            (
                "derived_id",
                UserRecord {
                    derived_id,
                    ..second()
                },
            ),
            ("name", UserRecord { name, ..second() }),
            (
                "display_name",
                UserRecord {
                    display_name,
                    ..second()
                },
            ),
            ("email", UserRecord { email, ..second() }),
            (
                "visibility",
                UserRecord {
                    visibility,
                    ..second()
                },
            ),
            (
                "account_type",
                UserRecord {
                    account_type,
                    ..second()
                },
            ),
            (
                "account_status",
                UserRecord {
                    account_status,
                    ..second()
                },
            ),
            (
                "created",
                UserRecord {
                    created,
                    ..second()
                },
            ),
            (
                "modified",
                UserRecord {
                    modified,
                    ..second()
                },
            ),
            (
                "group_ids",
                UserRecord {
                    group_ids,
                    ..second()
                },
            ),
            (
                "inherited_group_ids",
                UserRecord {
                    inherited_group_ids,
                    ..second()
                },
            ),
        ];
        for (field, record) in cases {
            assert_eq!(
                user_conflict(base(), record),
                Some(field.to_owned()),
                "{field}"
            );
        }
        // The same principal listed in another org is one principal.
        let elsewhere = UserRecord {
            org_ids,
            ..second()
        };
        assert_eq!(user_conflict(base(), elsewhere), None);
        // References in another order, or repeated, are the same references.
        let mut reordered = base();
        reordered.group_ids = vec![Id::from("g3"), Id::from("g1"), Id::from("g3")];
        let mut first = base();
        first.group_ids = vec![Id::from("g1"), Id::from("g3")];
        assert_eq!(user_conflict(first, reordered), None);
    }

    #[test]
    fn groups_differing_in_any_one_field_conflict_naming_it() {
        let base = || {
            let mut g = group("g1", "Sales", &["p1"]);
            g.display_name = "Sales".into();
            g.description = "Sales team".into();
            g.group_type = Some("LOCAL_GROUP".into());
            g.visibility = Some("SHARABLE".into());
            g.created = Some(1);
            g.modified = Some(2);
            g.org_ids = vec![0];
            g.child_ids = vec![Id::from("c1")];
            g.member_user_ids = vec![Id::from("u1")];
            g.privileges = vec!["AUTHORING".into()];
            g
        };
        let GroupRecord {
            origin,
            id: _, // the shared id is what makes them duplicates
            derived_id,
            name,
            display_name,
            description,
            group_type,
            visibility,
            created,
            modified,
            org_ids,
            parent_ids,
            child_ids,
            member_user_ids,
            privileges,
        } = GroupRecord {
            origin: origin(1),
            id: Id::from("g1"),
            derived_id: true,
            name: "Sales EU".into(),
            display_name: "Sales EU".into(),
            description: "Sales in Europe".into(),
            group_type: Some("LDAP_GROUP".into()),
            visibility: Some("NON_SHARABLE".into()),
            created: Some(10),
            modified: Some(20),
            org_ids: vec![7],
            parent_ids: vec![Id::from("p2")],
            child_ids: vec![Id::from("c2")],
            member_user_ids: vec![Id::from("u2")],
            privileges: vec!["ADMINISTRATION".into()],
        };
        let second = || GroupRecord {
            origin: origin.clone(),
            ..base()
        };
        let cases: Vec<(&str, GroupRecord<'static>)> = vec![
            (
                "derived_id",
                GroupRecord {
                    derived_id,
                    ..second()
                },
            ),
            ("name", GroupRecord { name, ..second() }),
            (
                "display_name",
                GroupRecord {
                    display_name,
                    ..second()
                },
            ),
            (
                "description",
                GroupRecord {
                    description,
                    ..second()
                },
            ),
            (
                "group_type",
                GroupRecord {
                    group_type,
                    ..second()
                },
            ),
            (
                "visibility",
                GroupRecord {
                    visibility,
                    ..second()
                },
            ),
            (
                "created",
                GroupRecord {
                    created,
                    ..second()
                },
            ),
            (
                "modified",
                GroupRecord {
                    modified,
                    ..second()
                },
            ),
            (
                "parent_ids",
                GroupRecord {
                    parent_ids,
                    ..second()
                },
            ),
            (
                "child_ids",
                GroupRecord {
                    child_ids,
                    ..second()
                },
            ),
            (
                "member_user_ids",
                GroupRecord {
                    member_user_ids,
                    ..second()
                },
            ),
            (
                "privileges",
                GroupRecord {
                    privileges,
                    ..second()
                },
            ),
        ];
        for (field, record) in cases {
            assert_eq!(
                group_conflict(base(), record),
                Some(field.to_owned()),
                "{field}"
            );
        }
        let elsewhere = GroupRecord {
            org_ids,
            ..second()
        };
        assert_eq!(group_conflict(base(), elsewhere), None);
    }

    #[test]
    fn orgs_differing_in_any_one_field_conflict_naming_it() {
        let base = || OrgRecord {
            origin: origin(0),
            id: 5,
            name: "Acme".into(),
            description: "Tenant".into(),
        };
        let OrgRecord {
            origin,
            id: _, // the shared id is what makes them duplicates
            name,
            description,
        } = OrgRecord {
            origin: origin(1),
            id: 5,
            name: "Acme EU".into(),
            description: "Tenant in Europe".into(),
        };
        let second = || OrgRecord {
            origin: origin.clone(),
            ..base()
        };
        let cases = [
            ("name", OrgRecord { name, ..second() }),
            (
                "description",
                OrgRecord {
                    description,
                    ..second()
                },
            ),
        ];
        for (field, record) in cases {
            let mut b = Builder::new(Source::default());
            b.org(base());
            b.org(record);
            match b.build() {
                Err(BuildError::Conflict(c)) => assert_eq!(c.field, field),
                other => panic!("{field}: {other:?}"),
            }
        }
        let mut b = Builder::new(Source::default());
        b.org(base());
        b.org(second());
        assert_eq!(b.build().unwrap().1.duplicates_merged, 1);
    }

    #[test]
    fn unknown_orgs_are_added_with_hinted_names() {
        let mut b = Builder::new(Source::default());
        b.org(OrgRecord {
            origin: origin(0),
            id: 0,
            name: "Primary".into(),
            description: "".into(),
        });
        b.org_name_hint(42, "Acme".into());
        let mut u = user("u1", "amy", &[]);
        u.org_ids = vec![42, 7];
        b.user(u).unwrap();
        let (p, report) = b.build().unwrap();
        let orgs: Vec<_> = p.orgs.iter().map(|o| (o.id, o.name.as_str())).collect();
        assert_eq!(orgs, [(0, "Primary"), (7, "Org 7"), (42, "Acme")]);
        assert_eq!(report.orgs_added, 2);
    }

    #[test]
    fn inherited_groups_the_hierarchy_cannot_explain_are_counted() {
        let mut b = Builder::new(Source::default());
        let mut u = user("u1", "amy", &["g1"]);
        u.inherited_group_ids = Some(vec![Id::from("g2"), Id::from("g3")]);
        b.user(u).unwrap();
        b.group(group("g1", "A", &["g2"])).unwrap();
        b.group(group("g2", "B", &[])).unwrap();
        b.group(group("g3", "C", &[])).unwrap();
        let (_, report) = b.build().unwrap();
        assert_eq!(
            report.unexplained_inherited, 1,
            "g3 is not reachable from g1"
        );
    }

    #[test]
    fn org_views_unite_references_and_keep_the_newest_details() {
        let mut b = Builder::new(Source::default());
        b.merge_org_views();
        b.group(group("g1", "G1", &[])).unwrap();
        b.group(group("g2", "G2", &[])).unwrap();
        let mut in_a = user("u1", "ana", &["g1"]);
        in_a.org_ids = vec![1];
        let mut in_b = user("u1", "ana", &["g2"]);
        in_b.org_ids = vec![2];
        b.user(in_a).unwrap();
        b.user(in_b).unwrap();
        // Seen again, renamed meanwhile and modified later: the newer wins.
        let mut renamed = user("u1", "ana.new", &[]);
        renamed.org_ids = vec![2];
        renamed.modified = Some(5);
        b.user(renamed).unwrap();
        let (p, report) = b.build().unwrap();
        assert_eq!(p.users.len(), 1);
        let u = &p.users[0];
        assert_eq!(u.name, "ana.new");
        assert_eq!(u.org_ids, vec![1, 2]);
        let groups: Vec<&str> = u.groups.iter().map(|&g| p.group(g).name.as_str()).collect();
        assert_eq!(groups, ["G1", "G2"]);
        assert_eq!(report.changed_during_fetch, 1);

        // Without org views the same records conflict.
        let mut strict = Builder::new(Source::default());
        strict.user(user("u1", "ana", &["g1"])).unwrap();
        assert!(strict.user(user("u1", "ana", &["g2"])).is_err());
    }

    #[test]
    fn only_orgs_drops_memberships_of_orgs_not_fetched() {
        let mut b = Builder::new(Source::default());
        b.only_orgs(vec![7]);
        let mut u = user("u1", "ana", &[]);
        u.org_ids = vec![0, 7];
        b.user(u).unwrap();
        let (p, _) = b.build().unwrap();
        assert_eq!(p.users[0].org_ids, vec![7]);
        assert_eq!(p.orgs.iter().map(|o| o.id).collect::<Vec<_>>(), vec![7]);
    }
}
