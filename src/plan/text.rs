//! A plan as a reviewer reads it, terraform-style: `+` create, `~` update
//! (`field: old → new`), `-` remove; memberships grouped by group; counts
//! per kind at the end. Names are quoted with control characters escaped,
//! so a name cannot forge a line of the plan.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::{Change, GroupRef, Member, Plan};

fn group_label(group: &GroupRef) -> String {
    format!("group {:?} (org {:?})", group.name, group.org.name)
}

fn member_label(member: &Member) -> String {
    match member {
        Member::User { name, .. } => format!("user {name:?}"),
        Member::Group(group) => format!("group {:?}", group.name),
    }
}

/// The plan as text.
pub fn render(plan: &Plan) -> String {
    let mut out = String::new();
    let url = plan
        .cluster
        .url
        .as_deref()
        .map(|u| format!(" ({u})"))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "Plan for cluster {:?}{url} from {}",
        plan.cluster.id, plan.spec.origin
    );
    if plan.changes.is_empty() {
        let _ = writeln!(out, "\nNo changes: the cluster matches the spec.");
    }
    let mut members: BTreeMap<&GroupRef, Vec<String>> = BTreeMap::new();
    for change in &plan.changes {
        match change {
            Change::CreateGroup { group, attrs } => {
                let _ = writeln!(out, "\n+ {}", group_label(group));
                let _ = writeln!(out, "    display_name: {:?}", attrs.display_name);
                if !attrs.description.is_empty() {
                    let _ = writeln!(out, "    description: {:?}", attrs.description);
                }
                let _ = writeln!(out, "    type: {}", attrs.group_type);
                let _ = writeln!(out, "    visibility: {}", attrs.visibility);
                for privilege in &attrs.privileges {
                    let _ = writeln!(out, "    privileges: + {privilege}");
                }
            }
            Change::UpdateGroup {
                group,
                fields,
                privileges_added,
                privileges_removed,
            } => {
                let _ = writeln!(out, "\n~ {}", group_label(group));
                for f in fields {
                    let _ = writeln!(out, "    {}: {:?} → {:?}", f.field, f.old, f.new);
                }
                for privilege in privileges_added {
                    let _ = writeln!(out, "    privileges: + {privilege}");
                }
                for privilege in privileges_removed {
                    let _ = writeln!(out, "    privileges: - {privilege}");
                }
            }
            Change::CreateUser { name, attrs } => {
                let _ = writeln!(out, "\n+ user {name:?}");
                let _ = writeln!(out, "    display_name: {:?}", attrs.display_name);
                if !attrs.email.is_empty() {
                    let _ = writeln!(out, "    email: {:?}", attrs.email);
                }
                let _ = writeln!(out, "    account_type: {}", attrs.account_type);
                let _ = writeln!(out, "    visibility: {}", attrs.visibility);
                for org in &attrs.orgs {
                    let _ = writeln!(out, "    orgs: + {:?}", org.name);
                }
            }
            Change::UpdateUser {
                name,
                fields,
                orgs_added,
                orgs_removed,
                ..
            } => {
                let _ = writeln!(out, "\n~ user {name:?}");
                for f in fields {
                    let _ = writeln!(out, "    {}: {:?} → {:?}", f.field, f.old, f.new);
                }
                for org in orgs_added {
                    let _ = writeln!(out, "    orgs: + {:?}", org.name);
                }
                for org in orgs_removed {
                    let _ = writeln!(
                        out,
                        "    orgs: - {:?} (org members: exact; the spec does not place the user there; leaves the org's groups too)",
                        org.name
                    );
                }
            }
            Change::AddMember { group, member } => {
                members
                    .entry(group)
                    .or_default()
                    .push(format!("    + {}", member_label(member)));
            }
            Change::RemoveMember { group, member } => {
                let why = if group.name == super::QUARANTINE_GROUP {
                    "back in the spec"
                } else {
                    "members: exact; not in the spec"
                };
                members
                    .entry(group)
                    .or_default()
                    .push(format!("    - {} ({why})", member_label(member)));
            }
            Change::HideUser {
                name,
                visibility,
                quarantine,
                ..
            } => {
                let _ = writeln!(out, "\n~ user {name:?} hidden (not in the spec; --hide)");
                if visibility != "NON_SHARABLE" {
                    let _ = writeln!(out, "    visibility: {visibility:?} → \"NON_SHARABLE\"");
                }
                let _ = writeln!(out, "    groups: + {:?}", quarantine.name);
            }
            Change::HideGroup {
                group,
                visibility,
                quarantine,
            } => {
                let _ = writeln!(out, "\n~ {} hidden (not in the spec)", group_label(group));
                if visibility != "NON_SHARABLE" {
                    let _ = writeln!(out, "    visibility: {visibility:?} → \"NON_SHARABLE\"");
                }
                let _ = writeln!(out, "    parents: + {:?}", quarantine.name);
            }
            Change::DeactivateUser { name, .. } => {
                let _ = writeln!(
                    out,
                    "\n~ user {name:?} deactivated (not in the spec; --deactivate)"
                );
                let _ = writeln!(out, "    account_status: → \"INACTIVE\"");
            }
            Change::DeleteUser {
                name, transfer_to, ..
            } => {
                let _ = writeln!(out, "\n- user {name:?} (not in the spec; --prune)");
                if let Some(to) = transfer_to {
                    let _ = writeln!(out, "    objects: → {to:?} first (--transfer-to)");
                }
            }
            Change::DeleteGroup { group } => {
                let _ = writeln!(out, "\n- {} (not in the spec; --prune)", group_label(group));
            }
        }
    }
    for (group, lines) in members {
        let _ = writeln!(out, "\n~ members of {}", group_label(group));
        for line in lines {
            let _ = writeln!(out, "{line}");
        }
    }
    if !plan.kept.is_empty() {
        let _ = writeln!(
            out,
            "\nKept (protected: the plan would remove them otherwise):"
        );
        for kept in &plan.kept {
            let _ = writeln!(out, "    {}: {}", kept.what, kept.reason);
        }
    }
    let _ = writeln!(out, "\n{}", summary(plan));
    out
}

/// Counts per kind, in one line.
pub fn summary(plan: &Plan) -> String {
    let mut counts = [0usize; 8];
    let (mut joins, mut leaves) = (0usize, 0usize);
    let (mut hidden, mut deactivated, mut deleted) = (0usize, 0usize, 0usize);
    for change in &plan.changes {
        match change {
            Change::CreateGroup { .. } => counts[0] += 1,
            Change::UpdateGroup {
                privileges_added,
                privileges_removed,
                ..
            } => {
                counts[1] += 1;
                counts[6] += privileges_added.len();
                counts[7] += privileges_removed.len();
            }
            Change::CreateUser { .. } => counts[2] += 1,
            Change::UpdateUser {
                orgs_added,
                orgs_removed,
                ..
            } => {
                counts[3] += 1;
                joins += orgs_added.len();
                leaves += orgs_removed.len();
            }
            Change::AddMember { .. } => counts[4] += 1,
            Change::RemoveMember { .. } => counts[5] += 1,
            Change::HideUser { .. } | Change::HideGroup { .. } => hidden += 1,
            Change::DeactivateUser { .. } => deactivated += 1,
            Change::DeleteUser { .. } | Change::DeleteGroup { .. } => deleted += 1,
        }
    }
    for change in &plan.changes {
        if let Change::CreateGroup { attrs, .. } = change {
            counts[6] += attrs.privileges.len();
        }
    }
    let removals = match (hidden, deactivated, deleted) {
        (0, 0, 0) => String::new(),
        _ => format!(
            " Not in the spec: {hidden} to hide, {deactivated} to deactivate, {deleted} to delete."
        ),
    };
    format!(
        "Plan: groups {} to create, {} to update; users {} to create, {} to update; \
         memberships {} to add, {} to remove; privileges {} to grant, {} to take away; \
         orgs {} to join, {} to leave.{removals}",
        counts[0],
        counts[1],
        counts[2],
        counts[3],
        counts[4],
        counts[5],
        counts[6],
        counts[7],
        joins,
        leaves
    )
}

/// One change in a line, for reports.
pub fn label(change: &Change) -> String {
    match change {
        Change::CreateGroup { group, .. } => format!("+ {}", group_label(group)),
        Change::UpdateGroup { group, .. } => format!("~ {}", group_label(group)),
        Change::CreateUser { name, .. } => format!("+ user {name:?}"),
        Change::UpdateUser { name, .. } => format!("~ user {name:?}"),
        Change::AddMember { group, member } => {
            format!("+ {} in {}", member_label(member), group_label(group))
        }
        Change::RemoveMember { group, member } => {
            format!("- {} from {}", member_label(member), group_label(group))
        }
        Change::HideUser { name, .. } => format!("~ user {name:?} hidden"),
        Change::HideGroup { group, .. } => format!("~ {} hidden", group_label(group)),
        Change::DeactivateUser { name, .. } => format!("~ user {name:?} deactivated"),
        Change::DeleteUser {
            name, transfer_to, ..
        } => match transfer_to {
            Some(to) => format!("- user {name:?} (objects to {to:?})"),
            None => format!("- user {name:?}"),
        },
        Change::DeleteGroup { group } => format!("- {}", group_label(group)),
    }
}
