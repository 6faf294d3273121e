//! Turning records from any input into [`Principals`].

use std::borrow::Cow;
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use serde::Serialize;

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
    pub id: Cow<'a, str>,
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
    pub group_ids: Vec<Cow<'a, str>>,
    /// GUIDs of groups ThoughtSpot says the user inherits, when the input says
    /// (v2 `user_inherited_groups`); used to check the hierarchy is complete.
    pub inherited_group_ids: Option<Vec<Cow<'a, str>>>,
}

/// A group as an input describes it; references are GUIDs.
#[derive(Clone, Debug)]
pub struct GroupRecord<'a> {
    /// Where it came from.
    pub origin: Origin,
    /// GUID.
    pub id: Cow<'a, str>,
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
    pub parent_ids: Vec<Cow<'a, str>>,
    /// GUIDs of groups that are members of this group (v2 `sub_groups`).
    pub child_ids: Vec<Cow<'a, str>>,
    /// GUIDs of users that are direct members (v2 `users`).
    pub member_user_ids: Vec<Cow<'a, str>>,
    /// Privileges granted to members.
    pub privileges: Vec<Cow<'a, str>>,
}

/// Input that cannot be turned into a consistent set of principals.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// Two records share an id but say different things.
    #[error(
        "{second} has the same {kind} id \"{id}\" as {first} but a different `{field}`; \
         the input contradicts itself (a paged fetch that changed underneath?). \
         Fetch the snapshot again, or remove one of the two records"
    )]
    Conflict {
        /// `user`, `group` or `org`.
        kind: &'static str,
        /// The shared id.
        id: String,
        /// The record seen first.
        first: Origin,
        /// The record that contradicts it.
        second: Origin,
        /// The first field that differs.
        field: &'static str,
    },
    /// More principals than the model can index.
    #[error("the input holds {count} {kind}s; at most {max} are supported", max = u32::MAX)]
    TooMany {
        /// `user` or `group`.
        kind: &'static str,
        /// How many there were.
        count: usize,
    },
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
}

/// Collects records from one or more inputs, then [`Builder::build`]s them.
#[derive(Debug, Default)]
pub struct Builder<'a> {
    source: Source,
    orgs: Vec<OrgRecord<'a>>,
    org_names: HashMap<i64, Cow<'a, str>>,
    users: Vec<UserRecord<'a>>,
    groups: Vec<GroupRecord<'a>>,
}

impl<'a> Builder<'a> {
    /// A builder for principals from `source`.
    pub fn new(source: Source) -> Self {
        Self {
            source,
            ..Self::default()
        }
    }

    /// Records which REST API the principals were read with.
    pub fn set_api(&mut self, api: &str) {
        self.source.api = Some(api.to_owned());
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

    /// Adds a user.
    pub fn user(&mut self, user: UserRecord<'a>) {
        self.users.push(user);
    }

    /// Adds a group.
    pub fn group(&mut self, group: GroupRecord<'a>) {
        self.groups.push(group);
    }

    /// Records added so far: (orgs, users, groups).
    pub fn counts(&self) -> (usize, usize, usize) {
        (self.orgs.len(), self.users.len(), self.groups.len())
    }

    /// Normalizes everything added into [`Principals`].
    pub fn build(self) -> Result<(Principals, BuildReport), BuildError> {
        let Builder {
            source,
            orgs,
            org_names,
            users,
            groups,
        } = self;
        let mut report = BuildReport::default();

        let orgs = dedup(orgs, |o| Cow::Owned(o.id.to_string()), &mut report)?;
        let users = dedup(users, |u| u.id.clone(), &mut report)?;
        let groups = dedup(groups, |g| g.id.clone(), &mut report)?;
        if users.len() > u32::MAX as usize {
            return Err(BuildError::TooMany {
                kind: "user",
                count: users.len(),
            });
        }
        if groups.len() > u32::MAX as usize {
            return Err(BuildError::TooMany {
                kind: "group",
                count: groups.len(),
            });
        }

        let had_org_list = !orgs.is_empty();
        let mut org_map: BTreeMap<i64, Org> = orgs
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

        // Convert to owned model values in canonical order; references are
        // resolved afterwards, through id → index maps over the sorted vectors.
        let mut users: Vec<(User, UserRecord<'a>)> = users
            .into_iter()
            .map(|r| (user_from_record(&r), r))
            .collect();
        users.sort_unstable_by(|(a, _), (b, _)| (&a.name, &a.id).cmp(&(&b.name, &b.id)));
        let mut groups: Vec<(Group, GroupRecord<'a>)> = groups
            .into_iter()
            .map(|r| (group_from_record(&r), r))
            .collect();
        groups.sort_unstable_by(|(a, _), (b, _)| (&a.name, &a.id).cmp(&(&b.name, &b.id)));

        let (mut users, user_records): (Vec<User>, Vec<UserRecord<'a>>) =
            users.into_iter().unzip();
        let (mut groups, group_records): (Vec<Group>, Vec<GroupRecord<'a>>) =
            groups.into_iter().unzip();

        let user_ix: HashMap<&str, u32> = user_records
            .iter()
            .enumerate()
            .map(|(i, r)| (r.id.as_ref(), i as u32))
            .collect();
        let group_ix: HashMap<&str, GroupIx> = group_records
            .iter()
            .enumerate()
            .map(|(i, r)| (r.id.as_ref(), GroupIx(i as u32)))
            .collect();

        let mut dangling = 0usize;
        for (child, record) in group_records.iter().enumerate() {
            for parent in &record.parent_ids {
                match group_ix.get(parent.as_ref()) {
                    Some(&p) => groups[child].parents.push(p),
                    None => dangling += 1,
                }
            }
            for sub in &record.child_ids {
                match group_ix.get(sub.as_ref()) {
                    Some(&c) => groups[c.get()].parents.push(GroupIx(child as u32)),
                    None => dangling += 1,
                }
            }
            for member in &record.member_user_ids {
                match user_ix.get(member.as_ref()) {
                    Some(&u) => users[u as usize].groups.push(GroupIx(child as u32)),
                    None => dangling += 1,
                }
            }
        }
        for (user, record) in users.iter_mut().zip(&user_records) {
            for group in &record.group_ids {
                match group_ix.get(group.as_ref()) {
                    Some(&g) => user.groups.push(g),
                    None => dangling += 1,
                }
            }
            user.groups.sort_unstable();
            user.groups.dedup();
        }
        for group in &mut groups {
            group.parents.sort_unstable();
            group.parents.dedup();
        }
        if dangling > 0 {
            tracing::warn!(
                "dropped {dangling} reference(s) to users or groups that are not in the input \
                 (deleted meanwhile, or outside the orgs fetched)"
            );
        }
        report.dangling_references = dangling;

        // Every org a principal lives in gets a row, even when the input did
        // not list it; principals without org information live in Primary.
        let nothing_at_all = org_map.is_empty() && users.is_empty() && groups.is_empty();
        let mut added = Vec::new();
        let mut ensure_org = |id: i64| {
            org_map.entry(id).or_insert_with(|| {
                added.push(id);
                let name = match org_names.get(&id) {
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
        for principal_orgs in users
            .iter_mut()
            .map(|u| &mut u.org_ids)
            .chain(groups.iter_mut().map(|g| &mut g.org_ids))
        {
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
                "{} org(s) are used by users or groups but missing from the org list; \
                 added them by id ({:?})",
                added.len(),
                added
            );
            report.orgs_added = added.len();
        }

        let cycles = super::effective::find_cycles(&groups);
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
                "group nesting has {} cycle(s), e.g. \"{}\"; each group is counted once per user, \
                 at its shortest depth",
                cycles.len(),
                path.join("\" → \""),
            );
        }
        report.group_cycles = cycles.len();

        let principals = Principals::new(source, org_map.into_values().collect(), users, groups);
        report.unexplained_inherited = check_inherited(&principals, &user_records, &group_ix);
        Ok((principals, report))
    }
}

/// Counts inherited memberships ThoughtSpot reported that the group hierarchy
/// of this input does not produce, and warns about them once.
fn check_inherited(
    principals: &Principals,
    records: &[UserRecord<'_>],
    group_ix: &HashMap<&str, GroupIx>,
) -> usize {
    if records.iter().all(|r| r.inherited_group_ids.is_none()) {
        return 0;
    }
    let effective = principals.effective_memberships();
    let mut unexplained = 0;
    let mut start = 0;
    for (user, record) in records.iter().enumerate() {
        let end = start + effective[start..].partition_point(|m| m.user as usize == user);
        let computed = &effective[start..end];
        start = end;
        let Some(reported) = &record.inherited_group_ids else {
            continue;
        };
        unexplained += reported
            .iter()
            .filter_map(|id| group_ix.get(id.as_ref()))
            .filter(|g| {
                computed
                    .binary_search_by(|m| m.group.cmp(g))
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

fn user_from_record(r: &UserRecord<'_>) -> User {
    User {
        id: r.id.to_string(),
        derived_id: r.derived_id,
        name: r.name.to_string(),
        display_name: r.display_name.to_string(),
        email: r.email.to_string(),
        visibility: r.visibility.as_deref().map(Visibility::parse),
        account_type: r.account_type.as_deref().map(AccountType::parse),
        account_status: r.account_status.as_deref().map(AccountStatus::parse),
        created: r.created,
        modified: r.modified,
        org_ids: r.org_ids.clone(),
        groups: Vec::new(),
    }
}

fn group_from_record(r: &GroupRecord<'_>) -> Group {
    let mut privileges: Vec<String> = r.privileges.iter().map(|p| p.to_string()).collect();
    privileges.sort_unstable();
    privileges.dedup();
    Group {
        id: r.id.to_string(),
        derived_id: r.derived_id,
        name: r.name.to_string(),
        display_name: r.display_name.to_string(),
        description: r.description.to_string(),
        group_type: r.group_type.as_deref().map(GroupType::parse),
        visibility: r.visibility.as_deref().map(Visibility::parse),
        created: r.created,
        modified: r.modified,
        org_ids: r.org_ids.clone(),
        parents: Vec::new(),
        privileges,
    }
}

/// A record that can be checked against another with the same id.
trait Record {
    const KIND: &'static str;
    fn origin(&self) -> &Origin;
    /// The first field (other than org membership) whose content differs.
    fn first_difference(&self, other: &Self) -> Option<&'static str>;
    /// Takes over the org memberships of `other`, which the same principal
    /// may report differently when fetched through different orgs.
    fn absorb_orgs(&mut self, other: Self);
}

/// Keeps the first record of each id, merging exact duplicates (as paged APIs
/// sometimes return) and rejecting records that contradict each other.
fn dedup<'r, R: Record>(
    records: Vec<R>,
    key: impl Fn(&R) -> Cow<'r, str>,
    report: &mut BuildReport,
) -> Result<Vec<R>, BuildError> {
    let mut seen: HashMap<Cow<'r, str>, usize> = HashMap::with_capacity(records.len());
    let mut kept: Vec<R> = Vec::with_capacity(records.len());
    let mut merged = 0;
    for record in records {
        match seen.entry(key(&record)) {
            Entry::Vacant(slot) => {
                slot.insert(kept.len());
                kept.push(record);
            }
            Entry::Occupied(slot) => {
                let first = &mut kept[*slot.get()];
                if let Some(field) = first.first_difference(&record) {
                    return Err(BuildError::Conflict {
                        kind: R::KIND,
                        id: slot.key().to_string(),
                        first: first.origin().clone(),
                        second: record.origin().clone(),
                        field,
                    });
                }
                first.absorb_orgs(record);
                merged += 1;
            }
        }
    }
    if merged > 0 {
        tracing::warn!(
            "merged {merged} duplicate {} record(s) with identical content",
            R::KIND
        );
    }
    report.duplicates_merged += merged;
    Ok(kept)
}

/// Compares list fields as sets: pages may list the same references in another order.
fn same_set<T: Ord + Clone>(a: &[T], b: &[T]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let (mut a, mut b) = (a.to_vec(), b.to_vec());
    a.sort_unstable();
    b.sort_unstable();
    a == b
}

macro_rules! first_difference {
    ($a:expr, $b:expr; scalars: $($s:ident),*; sets: $($l:ident),*) => {{
        let (a, b) = ($a, $b);
        None
            $(.or_else(|| (a.$s != b.$s).then_some(stringify!($s))))*
            $(.or_else(|| (!same_set(&a.$l, &b.$l)).then_some(stringify!($l))))*
    }};
}

impl Record for OrgRecord<'_> {
    const KIND: &'static str = "org";
    fn origin(&self) -> &Origin {
        &self.origin
    }
    fn first_difference(&self, other: &Self) -> Option<&'static str> {
        first_difference!(self, other; scalars: name, description; sets:)
    }
    fn absorb_orgs(&mut self, _other: Self) {}
}

impl Record for UserRecord<'_> {
    const KIND: &'static str = "user";
    fn origin(&self) -> &Origin {
        &self.origin
    }
    fn first_difference(&self, other: &Self) -> Option<&'static str> {
        first_difference!(self, other;
            scalars: derived_id, name, display_name, email, visibility, account_type,
                account_status, created, modified;
            sets: group_ids)
        .or_else(|| {
            let (a, b) = (&self.inherited_group_ids, &other.inherited_group_ids);
            let same = match (a, b) {
                (Some(a), Some(b)) => same_set(a, b),
                (a, b) => a.is_none() && b.is_none(),
            };
            (!same).then_some("inherited_group_ids")
        })
    }
    fn absorb_orgs(&mut self, other: Self) {
        self.org_ids.extend(other.org_ids);
    }
}

impl Record for GroupRecord<'_> {
    const KIND: &'static str = "group";
    fn origin(&self) -> &Origin {
        &self.origin
    }
    fn first_difference(&self, other: &Self) -> Option<&'static str> {
        first_difference!(self, other;
            scalars: derived_id, name, display_name, description, group_type, visibility,
                created, modified;
            sets: parent_ids, child_ids, member_user_ids, privileges)
    }
    fn absorb_orgs(&mut self, other: Self) {
        self.org_ids.extend(other.org_ids);
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

    pub(crate) fn user<'a>(id: &'a str, name: &'a str, groups: &[&'a str]) -> UserRecord<'a> {
        UserRecord {
            origin: origin(0),
            id: id.into(),
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
            group_ids: groups.iter().map(|g| Cow::Borrowed(*g)).collect(),
            inherited_group_ids: None,
        }
    }

    pub(crate) fn group<'a>(id: &'a str, name: &'a str, parents: &[&'a str]) -> GroupRecord<'a> {
        GroupRecord {
            origin: origin(0),
            id: id.into(),
            derived_id: false,
            name: name.into(),
            display_name: Cow::Borrowed(""),
            description: Cow::Borrowed(""),
            group_type: None,
            visibility: None,
            created: None,
            modified: None,
            org_ids: vec![],
            parent_ids: parents.iter().map(|g| Cow::Borrowed(*g)).collect(),
            child_ids: vec![],
            member_user_ids: vec![],
            privileges: vec![],
        }
    }

    #[test]
    fn sorts_by_name_then_id_and_resolves_references() {
        let mut b = Builder::new(Source::default());
        b.user(user("u2", "zed", &["g1"]));
        b.user(user("u1", "amy", &["g2", "g1", "g1"]));
        b.group(group("g1", "Sales", &["g2"]));
        b.group(group("g2", "All", &[]));
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
        b.user(user("u1", "amy", &[]));
        let mut parent = group("g1", "Parent", &[]);
        parent.child_ids = vec!["g2".into()];
        parent.member_user_ids = vec!["u1".into()];
        b.group(parent);
        b.group(group("g2", "Child", &[]));
        let (p, _) = b.build().unwrap();
        let child = p.groups.iter().position(|g| g.id == "g2").unwrap();
        let parent = p.groups.iter().position(|g| g.id == "g1").unwrap();
        assert_eq!(p.groups[child].parents, vec![GroupIx(parent as u32)]);
        assert_eq!(p.users[0].groups, vec![GroupIx(parent as u32)]);
    }

    #[test]
    fn exact_duplicates_merge_and_conflicts_fail() {
        let mut b = Builder::new(Source::default());
        b.user(user("u1", "amy", &["g1"]));
        let mut again = user("u1", "amy", &["g1"]);
        again.origin = origin(7);
        again.org_ids = vec![5];
        b.user(again);
        let (p, report) = b.build().unwrap();
        assert_eq!(report.duplicates_merged, 1);
        assert_eq!(p.users.len(), 1);
        assert_eq!(p.users[0].org_ids, vec![5], "org lists are merged");
        assert_eq!(report.dangling_references, 1, "g1 is not in the input");

        let mut b = Builder::new(Source::default());
        b.user(user("u1", "amy", &[]));
        let mut other = user("u1", "amy", &[]);
        other.origin = origin(9);
        other.display_name = "Amy B.".into();
        b.user(other);
        let err = b.build().unwrap_err().to_string();
        assert!(err.contains("test.json: users[9]"), "{err}");
        assert!(err.contains("test.json: users[0]"), "{err}");
        assert!(err.contains("`display_name`"), "{err}");
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
        b.user(u);
        let (p, report) = b.build().unwrap();
        let orgs: Vec<_> = p.orgs.iter().map(|o| (o.id, o.name.as_str())).collect();
        assert_eq!(orgs, [(0, "Primary"), (7, "Org 7"), (42, "Acme")]);
        assert_eq!(report.orgs_added, 2);
    }

    #[test]
    fn inherited_groups_the_hierarchy_cannot_explain_are_counted() {
        let mut b = Builder::new(Source::default());
        let mut u = user("u1", "amy", &["g1"]);
        u.inherited_group_ids = Some(vec!["g2".into(), "g3".into()]);
        b.user(u);
        b.group(group("g1", "A", &["g2"]));
        b.group(group("g2", "B", &[]));
        b.group(group("g3", "C", &[]));
        let (_, report) = b.build().unwrap();
        assert_eq!(report.unexplained_inherited, 1, "g3 is not reachable from g1");
    }
}
