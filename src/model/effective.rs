//! Effective (transitive) group membership and cycle detection.
//!
//! A user who is a direct member of group A is an effective member of A
//! (depth 0) and of every group A is nested in: A's parents at depth 1, their
//! parents at depth 2, and so on. When a group is reachable along several
//! paths the shortest wins; a direct membership always wins.

use super::{Group, GroupIx, User};

/// One effective user → group membership.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct EffectiveMembership {
    /// Index of the user in [`super::Principals::users`].
    pub user: u32,
    /// The group.
    pub group: GroupIx,
    /// Steps up the hierarchy from a group the user is directly in; 0 = direct.
    pub depth: u32,
}

impl EffectiveMembership {
    /// True when the user is a direct member of the group.
    pub fn is_direct(&self) -> bool {
        self.depth == 0
    }
}

/// Every effective membership, ordered by `(user, group)`.
///
/// Ancestors are computed once per group that some user is directly in
/// (breadth-first, so cycles terminate and depths are shortest), which keeps
/// the work proportional to the output. Large sets of users are split
/// across the available cores.
pub fn effective_memberships(users: &[User], groups: &[Group]) -> Vec<EffectiveMembership> {
    const PER_THREAD: usize = 20_000;
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(users.len() / PER_THREAD)
        .max(1);
    if threads == 1 {
        return closure(users, 0, groups);
    }
    let chunk = users.len().div_ceil(threads);
    let parts = crate::parallel::map(users.chunks(chunk).enumerate(), |(i, part)| {
        closure(part, i * chunk, groups)
    });
    let mut all = Vec::with_capacity(parts.iter().map(Vec::len).sum());
    for part in parts {
        all.extend(part);
    }
    all
}

/// Effective memberships of `users`, the first of which has index `first`.
fn closure(users: &[User], first: usize, groups: &[Group]) -> Vec<EffectiveMembership> {
    let mut ancestors = Ancestors::new(groups);
    let mut out = Vec::with_capacity(users.iter().map(|u| u.groups.len()).sum::<usize>() * 2);
    let mut scratch: Vec<(GroupIx, u32)> = Vec::new();
    for (offset, u) in users.iter().enumerate() {
        let user = first + offset;
        scratch.clear();
        for &direct in &u.groups {
            scratch.push((direct, 0));
            scratch.extend_from_slice(ancestors.of(direct));
        }
        // Sorting by (group, depth) puts each group's shortest depth first.
        scratch.sort_unstable();
        scratch.dedup_by_key(|(group, _)| *group);
        out.extend(scratch.iter().map(|&(group, depth)| EffectiveMembership {
            user: user as u32,
            group,
            depth,
        }));
    }
    out
}

/// A group's ancestors with their depth (≥ 1).
type Ancestry = Box<[(GroupIx, u32)]>;

/// Lazily computed ancestor lists.
struct Ancestors<'g> {
    groups: &'g [Group],
    memo: Vec<Option<Ancestry>>,
    seen: Vec<u32>,
    stamp: u32,
    queue: Vec<(GroupIx, u32)>,
}

impl<'g> Ancestors<'g> {
    fn new(groups: &'g [Group]) -> Self {
        Self {
            groups,
            memo: vec![None; groups.len()],
            seen: vec![0; groups.len()],
            stamp: 0,
            queue: Vec::new(),
        }
    }

    fn of(&mut self, start: GroupIx) -> &[(GroupIx, u32)] {
        if self.memo[start.get()].is_none() {
            let list = self.breadth_first(start);
            self.memo[start.get()] = Some(list);
        }
        self.memo[start.get()].as_deref().unwrap_or_default()
    }

    fn breadth_first(&mut self, start: GroupIx) -> Ancestry {
        // A fresh stamp marks "seen in this walk" without clearing the array.
        self.stamp += 1;
        let stamp = self.stamp;
        self.seen[start.get()] = stamp;
        self.queue.clear();
        self.queue.push((start, 0));
        let mut head = 0;
        while head < self.queue.len() {
            let (group, depth) = self.queue[head];
            head += 1;
            for &parent in &self.groups[group.get()].parents {
                if self.seen[parent.get()] != stamp {
                    self.seen[parent.get()] = stamp;
                    self.queue.push((parent, depth + 1));
                }
            }
        }
        self.queue[1..].into()
    }
}

/// Cycles in group nesting: each strongly connected component of the
/// parent graph with more than one group, or a group that is its own parent,
/// as one path through it. Iterative Tarjan, so deep nesting cannot overflow
/// the stack.
pub(crate) fn find_cycles(groups: &[Group]) -> Vec<Vec<GroupIx>> {
    let parents: Vec<&[GroupIx]> = groups.iter().map(|g| g.parents.as_slice()).collect();
    find_cycles_in(&parents)
}

/// [`find_cycles`] of a nesting given as each group's parents (a plan's
/// nesting, before it exists as groups).
pub(crate) fn find_cycles_in<P: AsRef<[GroupIx]>>(groups: &[P]) -> Vec<Vec<GroupIx>> {
    const UNSEEN: u32 = u32::MAX;
    let n = groups.len();
    let mut index = vec![UNSEEN; n];
    let mut low = vec![0u32; n];
    let mut on_stack = vec![false; n];
    let mut stack: Vec<u32> = Vec::new();
    let mut next = 0u32;
    let mut cycles = Vec::new();
    // Call frames: (node, position in its parent list).
    let mut frames: Vec<(u32, usize)> = Vec::new();

    for root in 0..n as u32 {
        if index[root as usize] != UNSEEN {
            continue;
        }
        frames.push((root, 0));
        index[root as usize] = next;
        low[root as usize] = next;
        next += 1;
        stack.push(root);
        on_stack[root as usize] = true;

        while let Some(&mut (node, ref mut pos)) = frames.last_mut() {
            let parents = groups[node as usize].as_ref();
            if let Some(&parent) = parents.get(*pos) {
                *pos += 1;
                let p = parent.0 as usize;
                if index[p] == UNSEEN {
                    index[p] = next;
                    low[p] = next;
                    next += 1;
                    stack.push(parent.0);
                    on_stack[p] = true;
                    frames.push((parent.0, 0));
                } else if on_stack[p] {
                    low[node as usize] = low[node as usize].min(index[p]);
                }
                continue;
            }
            frames.pop();
            if let Some(&(caller, _)) = frames.last() {
                low[caller as usize] = low[caller as usize].min(low[node as usize]);
            }
            if low[node as usize] == index[node as usize] {
                let mut component = Vec::new();
                while let Some(member) = stack.pop() {
                    on_stack[member as usize] = false;
                    component.push(GroupIx(member));
                    if member == node {
                        break;
                    }
                }
                let self_loop = groups[node as usize].as_ref().contains(&GroupIx(node));
                if component.len() > 1 || self_loop {
                    cycles.push(cycle_path(groups, &component));
                }
            }
        }
    }
    cycles.sort();
    cycles
}

/// One path around a strongly connected component, starting at its smallest
/// member, for messages.
fn cycle_path<P: AsRef<[GroupIx]>>(groups: &[P], component: &[GroupIx]) -> Vec<GroupIx> {
    use std::collections::HashSet;
    let members: HashSet<GroupIx> = component.iter().copied().collect();
    let start = component.iter().copied().min().unwrap_or(GroupIx(0));
    let mut path = vec![start];
    let mut on_path: HashSet<GroupIx> = HashSet::from([start]);
    let mut current = start;
    // Every member of a component has a parent inside it, so this walk ends
    // back on the path after at most `component.len()` steps.
    while let Some(next) = groups[current.get()]
        .as_ref()
        .iter()
        .copied()
        .find(|p| members.contains(p))
    {
        if !on_path.insert(next) {
            break;
        }
        path.push(next);
        current = next;
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    fn groups(parents: &[&[u32]]) -> Vec<Group> {
        parents
            .iter()
            .enumerate()
            .map(|(i, ps)| Group {
                id: format!("g{i}"),
                derived_id: false,
                name: format!("G{i}"),
                display_name: String::new(),
                description: String::new(),
                group_type: None,
                visibility: None,
                created: None,
                modified: None,
                org_ids: vec![0],
                parents: ps.iter().map(|&p| GroupIx(p)).collect(),
                privileges: vec![],
            })
            .collect()
    }

    fn user_in(groups: &[u32]) -> User {
        User {
            id: "u".into(),
            derived_id: false,
            name: "u".into(),
            display_name: String::new(),
            email: String::new(),
            visibility: None,
            account_type: None,
            account_status: None,
            created: None,
            modified: None,
            org_ids: vec![0],
            groups: groups.iter().map(|&g| GroupIx(g)).collect(),
        }
    }

    fn rows(users: &[User], groups: &[Group]) -> Vec<(u32, u32, u32)> {
        effective_memberships(users, groups)
            .into_iter()
            .map(|m| (m.user, m.group.0, m.depth))
            .collect()
    }

    #[test]
    fn chain_gives_increasing_depths() {
        // 0 is in 1, 1 is in 2.
        let g = groups(&[&[1], &[2], &[]]);
        assert_eq!(
            rows(&[user_in(&[0])], &g),
            [(0, 0, 0), (0, 1, 1), (0, 2, 2)]
        );
    }

    #[test]
    fn shortest_path_and_direct_membership_win() {
        // 0 → 1 → 2 and 0 → 2; the user is also directly in 1.
        let g = groups(&[&[1, 2], &[2], &[]]);
        assert_eq!(
            rows(&[user_in(&[0, 1])], &g),
            [(0, 0, 0), (0, 1, 0), (0, 2, 1)]
        );
    }

    #[test]
    fn cycles_terminate_and_are_reported_once() {
        // 0 → 1 → 2 → 0, and 3 is its own parent.
        let g = groups(&[&[1], &[2], &[0], &[3]]);
        assert_eq!(
            rows(&[user_in(&[0, 3])], &g),
            [(0, 0, 0), (0, 1, 1), (0, 2, 2), (0, 3, 0)]
        );
        let cycles = find_cycles(&g);
        assert_eq!(
            cycles,
            vec![vec![GroupIx(0), GroupIx(1), GroupIx(2)], vec![GroupIx(3)]]
        );
    }

    #[test]
    fn splitting_across_threads_gives_the_same_rows() {
        let g = groups(&[&[1], &[2], &[]]);
        let users: Vec<User> = (0..50_000).map(|i| user_in(&[i % 3])).collect();
        let parallel = effective_memberships(&users, &g);
        assert_eq!(parallel, closure(&users, 0, &g));
        assert!(
            parallel
                .windows(2)
                .all(|w| (w[0].user, w[0].group) < (w[1].user, w[1].group))
        );
    }

    #[test]
    fn deep_nesting_does_not_overflow() {
        let n = 200_000u32;
        let parents: Vec<Vec<u32>> = (0..n)
            .map(|i| if i + 1 < n { vec![i + 1] } else { vec![0] })
            .collect();
        let refs: Vec<&[u32]> = parents.iter().map(|p| p.as_slice()).collect();
        let g = groups(&refs);
        assert_eq!(find_cycles(&g).len(), 1);
        assert_eq!(
            effective_memberships(&[user_in(&[0])], &g).len(),
            n as usize
        );
    }
}
