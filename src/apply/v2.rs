//! Applying a plan over REST v2: one request per change, in the plan's
//! order, each sent once (a write is never repeated blindly).

use reqwest::Method;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use super::dry_run::privileges;
use super::{ApplyError, Prepared, Stopped};
use crate::client::ClientError;
use crate::client::auth::Scope;
use crate::client::v2::V2;
use crate::model::PRIMARY_ORG_ID;
use crate::plan::{Change, GroupRef, Member, label};
use crate::transfer::{TransferError, TransferOptions};

/// Why one change failed.
struct Failed {
    cause: String,
    /// The cluster may have applied it.
    unknown: bool,
}

impl From<ClientError> for Failed {
    fn from(error: ClientError) -> Self {
        // A refused token was no write; anything else after sending may
        // have reached the cluster.
        let unknown = !matches!(
            error,
            ClientError::Auth { .. } | ClientError::Setup(_) | ClientError::Unsupported(_)
        );
        Failed {
            cause: error.to_string(),
            unknown,
        }
    }
}

impl From<TransferError> for Failed {
    fn from(error: TransferError) -> Self {
        Failed {
            unknown: error.is_cluster(),
            cause: format!("transferring the user's objects first: {error}"),
        }
    }
}

/// A group's identifier: its GUID, or its name when the plan created it.
fn group_id(group: &GroupRef) -> &str {
    group.id.as_deref().unwrap_or(&group.name)
}

fn member_body(member: &Member, operation: &str) -> Value {
    match member {
        Member::User { name, id } => json!({
            "user_identifiers": [id.as_deref().unwrap_or(name)],
            "operation": operation,
        }),
        Member::Group(group) => json!({
            "sub_group_identifiers": [group_id(group)],
            "operation": operation,
        }),
    }
}

struct Writer<'a> {
    p: &'a Prepared,
    api: V2<'a>,
}

impl Writer<'_> {
    async fn post(&self, path: &str, body: &Value, scope: Scope) -> Result<(), Failed> {
        let reply = self
            .api
            .call_once(Method::POST, path, Some(body), scope)
            .await?;
        if reply.status.is_client_error() {
            return Err(Failed {
                cause: format!(
                    "{} (POST {path}, HTTP {})",
                    reply.message(),
                    reply.status.as_u16()
                ),
                unknown: false,
            });
        }
        reply.success(&Method::POST, path)?;
        Ok(())
    }

    fn user_scope(&self) -> Scope {
        self.p.scope(PRIMARY_ORG_ID)
    }

    async fn change(&self, change: &Change) -> Result<(), Failed> {
        match change {
            Change::CreateGroup { group, attrs } => {
                let body = json!({
                    "name": group.name,
                    "display_name": attrs.display_name,
                    "description": attrs.description,
                    "visibility": attrs.visibility,
                    "type": attrs.group_type,
                    "privileges": attrs.privileges,
                });
                let scope = self.p.scope(group.org.id);
                self.post("/api/rest/2.0/groups/create", &body, scope).await
            }
            Change::UpdateGroup {
                group,
                fields,
                privileges_added,
                privileges_removed,
            } => {
                let mut body = json!({"operation": "REPLACE"});
                for f in fields {
                    body[&f.field] = f.new.as_str().into();
                }
                if !privileges_added.is_empty() || !privileges_removed.is_empty() {
                    let index = self.p.index();
                    let current = index
                        .group(group.org.id, &group.name)
                        .map(|g| self.p.principals.groups[g].privileges.clone())
                        .unwrap_or_default();
                    body["privileges"] =
                        privileges(&current, privileges_added, privileges_removed).into();
                }
                let path = format!("/api/rest/2.0/groups/{}/update", group_id(group));
                self.post(&path, &body, self.p.scope(group.org.id)).await
            }
            Change::CreateUser { name, attrs } => {
                let orgs: Vec<String> = attrs.orgs.iter().map(|o| o.id.to_string()).collect();
                let mut body = json!({
                    "name": name,
                    "display_name": attrs.display_name,
                    "email": attrs.email,
                    "account_type": attrs.account_type,
                    "visibility": attrs.visibility,
                    "org_identifiers": orgs,
                });
                if attrs.account_type == "LOCAL_USER"
                    && let Some(password) = &self.p.password
                {
                    body["password"] = password.expose_secret().into();
                }
                self.post("/api/rest/2.0/users/create", &body, self.user_scope())
                    .await
            }
            Change::UpdateUser {
                id,
                fields,
                orgs_added,
                orgs_removed,
                ..
            } => {
                let path = format!("/api/rest/2.0/users/{id}/update");
                if !fields.is_empty() {
                    let mut body = json!({});
                    for f in fields {
                        body[&f.field] = f.new.as_str().into();
                    }
                    self.post(&path, &body, self.user_scope()).await?;
                }
                for (orgs, operation) in [(orgs_added, "ADD"), (orgs_removed, "REMOVE")] {
                    if orgs.is_empty() {
                        continue;
                    }
                    let ids: Vec<String> = orgs.iter().map(|o| o.id.to_string()).collect();
                    let body = json!({"org_identifiers": ids, "operation": operation});
                    self.post(&path, &body, self.user_scope()).await?;
                }
                Ok(())
            }
            Change::AddMember { group, member } | Change::RemoveMember { group, member } => {
                let operation = match change {
                    Change::AddMember { .. } => "ADD",
                    _ => "REMOVE",
                };
                let path = format!("/api/rest/2.0/groups/{}/update", group_id(group));
                let body = member_body(member, operation);
                self.post(&path, &body, self.p.scope(group.org.id)).await
            }
            Change::HideUser { id, quarantine, .. } => {
                let path = format!("/api/rest/2.0/users/{id}/update");
                let body = json!({"visibility": "NON_SHARABLE"});
                self.post(&path, &body, self.user_scope()).await?;
                let member = Member::User {
                    name: id.clone(),
                    id: Some(id.clone()),
                };
                let path = format!("/api/rest/2.0/groups/{}/update", group_id(quarantine));
                let body = member_body(&member, "ADD");
                self.post(&path, &body, self.p.scope(quarantine.org.id))
                    .await
            }
            Change::HideGroup {
                group, quarantine, ..
            } => {
                let scope = self.p.scope(group.org.id);
                let path = format!("/api/rest/2.0/groups/{}/update", group_id(group));
                let body = json!({"visibility": "NON_SHARABLE", "operation": "REPLACE"});
                self.post(&path, &body, scope).await?;
                let path = format!("/api/rest/2.0/groups/{}/update", group_id(quarantine));
                let body = member_body(&Member::Group(group.clone()), "ADD");
                self.post(&path, &body, scope).await
            }
            Change::DeactivateUser { id, .. } => {
                let path = format!("/api/rest/2.0/users/{id}/update");
                let body = json!({"account_status": "INACTIVE"});
                self.post(&path, &body, self.user_scope()).await
            }
            Change::DeleteUser {
                name,
                id,
                transfer_to,
            } => {
                if let Some(to) = transfer_to {
                    let options = TransferOptions {
                        from: name.clone(),
                        to: to.clone(),
                        dry_run: false,
                    };
                    crate::transfer::transfer(&self.p.connection, &options).await?;
                }
                let path = format!("/api/rest/2.0/users/{id}/delete");
                self.post(&path, &json!({}), self.user_scope()).await
            }
            Change::DeleteGroup { group } => {
                let path = format!("/api/rest/2.0/groups/{}/delete", group_id(group));
                self.post(&path, &json!({}), self.p.scope(group.org.id))
                    .await
            }
        }
    }
}

/// Applies every change in order; stops at the first failure.
pub(super) async fn apply(
    p: &Prepared,
    report: &mut dyn FnMut(&str),
) -> Result<Vec<String>, ApplyError> {
    let writer = Writer {
        p,
        api: V2 {
            http: &p.http,
            auth: &p.auth,
        },
    };
    let mut applied = Vec::new();
    for (i, change) in p.plan.changes.iter().enumerate() {
        let this = label(change);
        if let Err(failed) = writer.change(change).await {
            return Err(ApplyError::Stopped(Box::new(Stopped {
                applied,
                failed: this,
                cause: failed.cause,
                unknown: failed.unknown,
                not_attempted: p.plan.changes[i + 1..].iter().map(label).collect(),
            })));
        }
        report(&this);
        applied.push(this);
    }
    Ok(applied)
}
