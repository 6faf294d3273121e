//! What a plan records of the principals it touches, as the cluster had
//! them: attributes, sorted memberships and modification times. `apply`
//! reads the same records again and refuses when any differs, showing the
//! fields that moved.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::model::{Group, Principals, User};
use crate::spec::export::group_org;

/// Which principal a record is of.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Key {
    /// A user, by username (lower case).
    User {
        /// Username in lower case.
        name: String,
    },
    /// A group, by org and name.
    Group {
        /// The org's name.
        org: String,
        /// The group's name.
        name: String,
        /// True when the record holds the group's members (the plan
        /// removes members: an exact group).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        members: bool,
    },
}

impl Key {
    /// A user's key.
    pub fn user(name: &str) -> Self {
        Key::User {
            name: name.to_lowercase(),
        }
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Key::User { name } => write!(f, "user {name:?}"),
            Key::Group { org, name, .. } => write!(f, "group {name:?} (org {org})"),
        }
    }
}

/// A principal as the cluster has it (`None` in [`Record::state`]: absent).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Which principal.
    #[serde(flatten)]
    pub key: Key,
    /// Its fields, sorted by name, or `None` when the cluster has no such
    /// principal.
    pub state: Option<Vec<(String, String)>>,
}

/// Name lookups into a [`Principals`].
pub struct Index<'a> {
    /// The principals.
    pub principals: &'a Principals,
    users: HashMap<String, usize>,
    groups: HashMap<(i64, String), usize>,
    groups_folded: HashMap<(i64, String), Vec<usize>>,
    /// Direct members of each group: users, then groups (indices).
    pub user_members: Vec<Vec<usize>>,
    /// Groups that are direct members of each group.
    pub group_members: Vec<Vec<usize>>,
}

impl<'a> Index<'a> {
    /// Indexes `principals`.
    pub fn new(principals: &'a Principals) -> Self {
        let mut users = HashMap::new();
        for (i, user) in principals.users.iter().enumerate() {
            users.entry(user.name.to_lowercase()).or_insert(i);
        }
        let mut groups = HashMap::new();
        let mut groups_folded: HashMap<(i64, String), Vec<usize>> = HashMap::new();
        for (i, group) in principals.groups.iter().enumerate() {
            let org = group_org(group);
            groups.entry((org, group.name.clone())).or_insert(i);
            groups_folded
                .entry((org, group.name.to_lowercase()))
                .or_default()
                .push(i);
        }
        let mut user_members = vec![Vec::new(); principals.groups.len()];
        for (u, user) in principals.users.iter().enumerate() {
            for g in &user.groups {
                user_members[g.get()].push(u);
            }
        }
        let mut group_members = vec![Vec::new(); principals.groups.len()];
        for (c, group) in principals.groups.iter().enumerate() {
            for p in &group.parents {
                group_members[p.get()].push(c);
            }
        }
        Index {
            principals,
            users,
            groups,
            groups_folded,
            user_members,
            group_members,
        }
    }

    /// The groups the user called `name` is in, directly or through
    /// nested groups (empty when there is no such user).
    pub fn groups_of_user(&self, name: &str) -> HashSet<usize> {
        let mut seen = HashSet::new();
        let Some(u) = self.user(name) else {
            return seen;
        };
        let groups = &self.principals.groups;
        let mut stack: Vec<usize> = self.principals.users[u]
            .groups
            .iter()
            .map(|g| g.get())
            .collect();
        while let Some(g) = stack.pop() {
            if seen.insert(g) {
                stack.extend(groups[g].parents.iter().map(|p| p.get()));
            }
        }
        seen
    }

    /// The user called `name` (case-insensitively).
    pub fn user(&self, name: &str) -> Option<usize> {
        self.users.get(&name.to_lowercase()).copied()
    }

    /// The group called `name` in org `org`: that exact name, else the
    /// one group whose name differs only in case.
    pub fn group(&self, org: i64, name: &str) -> Option<usize> {
        if let Some(&i) = self.groups.get(&(org, name.to_owned())) {
            return Some(i);
        }
        match self.groups_folded.get(&(org, name.to_lowercase())) {
            Some(found) if found.len() == 1 => Some(found[0]),
            _ => None,
        }
    }

    /// The org called `name` (exactly, else case-insensitively).
    pub fn org(&self, name: &str) -> Option<(i64, &'a str)> {
        let orgs = &self.principals.orgs;
        (orgs.iter().find(|o| o.name == name))
            .or_else(|| orgs.iter().find(|o| o.name.eq_ignore_ascii_case(name)))
            .map(|o| (o.id, o.name.as_str()))
    }

    /// The name of org `id`.
    pub fn org_name(&self, id: i64) -> String {
        (self.principals.orgs.iter())
            .find(|o| o.id == id)
            .map_or_else(|| format!("org {id}"), |o| o.name.clone())
    }

    /// `org/name` of group `ix`, as records list memberships.
    pub fn group_label(&self, ix: usize) -> String {
        let group = &self.principals.groups[ix];
        format!("{}/{}", self.org_name(group_org(group)), group.name)
    }

    /// The record of the principal `key` names.
    pub fn record(&self, key: &Key) -> Record {
        let state = match key {
            Key::User { name } => self
                .user(name)
                .map(|u| self.user_state(&self.principals.users[u])),
            Key::Group { org, name, members } => self
                .org(org)
                .and_then(|(id, _)| self.group(id, name))
                .map(|g| self.group_state(g, *members)),
        };
        Record {
            key: key.clone(),
            state,
        }
    }

    fn user_state(&self, user: &User) -> Vec<(String, String)> {
        let mut orgs: Vec<String> = user.org_ids.iter().map(|&o| self.org_name(o)).collect();
        orgs.sort_unstable();
        let mut groups: Vec<String> = user
            .groups
            .iter()
            .map(|g| self.group_label(g.get()))
            .collect();
        groups.sort_unstable();
        let text = |v: Option<&str>| v.unwrap_or("").to_owned();
        vec![
            (
                "account_status".into(),
                text(user.account_status.as_ref().map(|s| s.as_str())),
            ),
            (
                "account_type".into(),
                text(user.account_type.as_ref().map(|s| s.as_str())),
            ),
            ("display_name".into(), user.display_name.clone()),
            ("email".into(), user.email.clone()),
            ("groups".into(), groups.join("\n")),
            ("id".into(), user.id.clone()),
            (
                "modified".into(),
                user.modified.map(|m| m.to_string()).unwrap_or_default(),
            ),
            ("name".into(), user.name.clone()),
            ("orgs".into(), orgs.join("\n")),
            (
                "visibility".into(),
                text(user.visibility.as_ref().map(|s| s.as_str())),
            ),
        ]
    }

    /// Every group `ix` is nested in, directly or not, with its
    /// privileges (what a member of `ix` gains from them), one per line.
    fn ancestors(&self, ix: usize) -> String {
        let groups = &self.principals.groups;
        let mut seen = vec![false; groups.len()];
        let mut queue: Vec<usize> = groups[ix].parents.iter().map(|p| p.get()).collect();
        let mut lines = Vec::new();
        while let Some(g) = queue.pop() {
            if std::mem::replace(&mut seen[g], true) {
                continue;
            }
            lines.push(format!(
                "{}: {}",
                self.group_label(g),
                groups[g].privileges.join(",")
            ));
            queue.extend(groups[g].parents.iter().map(|p| p.get()));
        }
        lines.sort_unstable();
        lines.join("\n")
    }

    fn group_state(&self, ix: usize, members: bool) -> Vec<(String, String)> {
        let group: &Group = &self.principals.groups[ix];
        let mut parents: Vec<String> = group
            .parents
            .iter()
            .map(|p| self.group_label(p.get()))
            .collect();
        parents.sort_unstable();
        let text = |v: Option<&str>| v.unwrap_or("").to_owned();
        let mut state = vec![
            ("ancestors".into(), self.ancestors(ix)),
            ("description".into(), group.description.clone()),
            ("display_name".into(), group.display_name.clone()),
            ("id".into(), group.id.clone()),
            (
                "modified".into(),
                group.modified.map(|m| m.to_string()).unwrap_or_default(),
            ),
            ("name".into(), group.name.clone()),
            ("parents".into(), parents.join("\n")),
            ("privileges".into(), group.privileges.join("\n")),
            (
                "type".into(),
                text(group.group_type.as_ref().map(|s| s.as_str())),
            ),
            (
                "visibility".into(),
                text(group.visibility.as_ref().map(|s| s.as_str())),
            ),
        ];
        if members {
            let mut users: Vec<String> = (self.user_members[ix].iter())
                .map(|&u| self.principals.users[u].name.to_lowercase())
                .collect();
            users.sort_unstable();
            let mut groups: Vec<String> = self.group_members[ix]
                .iter()
                .map(|&g| self.group_label(g))
                .collect();
            groups.sort_unstable();
            state.push(("member_groups".into(), groups.join("\n")));
            state.push(("member_users".into(), users.join("\n")));
            state.sort();
        }
        state
    }
}

/// One field of one principal that differs between two reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Moved {
    /// Which principal.
    pub key: Key,
    /// The field (`exists` when the principal appeared or went).
    pub field: String,
    /// What the plan saw.
    pub planned: String,
    /// What the cluster has now.
    pub now: String,
}

/// The fields that differ between the records a plan saw and `now`.
pub fn moved(planned: &[Record], now: &[Record]) -> Vec<Moved> {
    let mut out = Vec::new();
    let now: HashMap<&Key, &Record> = now.iter().map(|r| (&r.key, r)).collect();
    for before in planned {
        let Some(after) = now.get(&before.key) else {
            continue;
        };
        match (&before.state, &after.state) {
            (None, None) => {}
            (Some(_), None) | (None, Some(_)) => out.push(Moved {
                key: before.key.clone(),
                field: "exists".into(),
                planned: before.state.is_some().to_string(),
                now: after.state.is_some().to_string(),
            }),
            (Some(a), Some(b)) => {
                let b: HashMap<&String, &String> = b.iter().map(|(k, v)| (k, v)).collect();
                for (field, value) in a {
                    let current = b.get(field).map(|v| v.as_str()).unwrap_or("");
                    if current != value {
                        out.push(Moved {
                            key: before.key.clone(),
                            field: field.clone(),
                            planned: value.clone(),
                            now: current.to_owned(),
                        });
                    }
                }
            }
        }
    }
    out
}
