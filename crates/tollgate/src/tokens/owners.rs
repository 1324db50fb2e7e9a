//! Whom a new token belongs to: resolving the owner and the project of a creation by id or by name,
//! and the rules that come with them (non-admins create tokens only for themselves, a token is bound
//! only to a project its owner is a member of, and an admin's constraints on someone else's token
//! are imposed).

use tollgate_store::StoreError;
use tollgate_types::{
    Imposed, IpAllowList, NewToken, OwnerId, OwnerRecord, Permission, Principal, ProjectId, ProjectName, ProjectRecord,
    ProjectRole, Timestamp, TokenPatch, TokenRecord, ToolList, Username, ValidationError,
};

use super::manager::TokenManager;
use crate::authz::{Operation, authorize};
use crate::{Error, Result};

/// What a creation needs to know about the new token's owner and project.
#[derive(Debug)]
pub(super) struct Placement {
    pub(super) owner: OwnerRecord,
    pub(super) project: Option<ProjectRecord>,
    pub(super) imposed: Imposed,
}

fn not_found(entity: &'static str) -> Error {
    Error::NotFound { entity }
}

impl TokenManager {
    /// An owner (a user or a service account) with its name, status and role: admins read any, others
    /// only themselves (`NotFound` otherwise, whether it exists or not).
    pub async fn owner(&self, principal: &Principal, id: &OwnerId) -> Result<OwnerRecord> {
        authorize(principal, Operation::ReadTokens { owner: Some(*id) }).map_err(|_| not_found("owner"))?;
        self.store.owner(id).await.map_err(hidden("owner"))
    }

    /// The owner a text names: a `usr_…`/`svc_…` id, or a username or service account name. A
    /// non-admin can only name themselves (by id or by name); anything else is refused without
    /// looking it up, so the answer never tells whether someone else exists.
    pub async fn resolve_owner(&self, principal: &Principal, text: &str) -> Result<OwnerId> {
        let admin = principal.level() == Permission::Admin;
        if !admin {
            let own = principal.owner_id().ok_or_else(|| Error::Forbidden("no owner to act for".to_owned()))?;
            let own_name = self.store.owner(&own).await?.name;
            if text == own.to_string() || Username::parse_field("owner", text).is_ok_and(|name| name == own_name) {
                return Ok(own);
            }
            return Err(Error::Forbidden("you can name only yourself as a token's owner".to_owned()));
        }
        if let Ok(id) = OwnerId::parse(text) {
            return Ok(id);
        }
        let name = Username::parse_field("owner", text)?;
        Ok(self.store.owner_by_name(&name).await?.ok_or_else(|| not_found("owner"))?.id)
    }

    /// The project a text names: a `prj_…` id or a project name. A project the principal is not a
    /// member of is `NotFound` for a non-admin, whether it exists or not.
    pub async fn resolve_project(&self, principal: &Principal, text: &str) -> Result<ProjectId> {
        let project = match ProjectId::parse(text) {
            Ok(id) => self.store.project(&id).await.map_err(hidden("project"))?,
            Err(_) => {
                let name = ProjectName::parse(text).map_err(|error| ValidationError::new("project", error.reason))?;
                self.store.project_by_name(&name).await?.ok_or_else(|| not_found("project"))?
            }
        };
        if principal.level() != Permission::Admin {
            let member = match principal.owner_id() {
                Some(owner) => self.store.project_role(&project.id, &owner).await?,
                None => None,
            };
            if member.is_none() {
                return Err(not_found("project"));
            }
        }
        Ok(project.id)
    }

    /// Checks a creation against the owner and project rules and the matrix.
    pub(super) async fn place(&self, principal: &Principal, token: &NewToken) -> Result<Placement> {
        let admin = principal.level() == Permission::Admin;
        if !admin && principal.owner_id() != Some(token.owner) {
            return Err(Error::Forbidden("you can create tokens only for yourself".to_owned()));
        }
        let owner = self.store.owner(&token.owner).await.map_err(hidden("owner"))?;
        if !owner.active {
            return Err(Error::Conflict("the owner is not active".to_owned()));
        }
        let (project, role) = match token.project {
            Some(id) => {
                let project = self.store.project(&id).await.map_err(hidden("project"))?;
                let role = self.store.project_role(&id, &token.owner).await?;
                if role.is_none() && !admin {
                    return Err(not_found("project"));
                }
                if admin && role != Some(ProjectRole::Member) {
                    return Err(Error::Conflict(
                        "the owner is not a member of the project (add it with the member role first)".to_owned(),
                    ));
                }
                (Some(project), Some(role))
            }
            None => (None, None),
        };
        authorize(
            principal,
            Operation::CreateToken { owner: token.owner, permission: token.permission, project: role },
        )?;
        let imposed = if admin && principal.owner_id() != Some(token.owner) { Imposed::ALL } else { Imposed::NONE };
        Ok(Placement { owner, project, imposed })
    }

    /// Checks a metadata change against the tighten-only rule and returns what it imposes: an admin
    /// changing someone else's token imposes the constraints it sets; anyone else may change an
    /// imposed constraint only by tightening it.
    pub(super) fn check_constraints(
        &self,
        principal: &Principal,
        before: &TokenRecord,
        patch: &TokenPatch,
        now: Timestamp,
    ) -> Result<Imposed> {
        if let Some(field) = loosened(before, patch, now) {
            authorize(principal, Operation::LoosenConstraints { owner: before.owner }).map_err(|_| {
                Error::Forbidden(format!("{field}: only an admin can loosen a constraint an admin set"))
            })?;
        }
        let imposes = principal.level() == Permission::Admin && principal.owner_id() != Some(before.owner);
        Ok(if imposes { patch.constraints() } else { Imposed::NONE })
    }
}

/// The first imposed constraint `patch` would loosen, by field name.
fn loosened(before: &TokenRecord, patch: &TokenPatch, now: Timestamp) -> Option<&'static str> {
    let imposed = before.imposed;
    if imposed.contains(Imposed::IP_ALLOW)
        && let Some(ip_allow) = &patch.ip_allow
        && !within_networks(ip_allow, &before.ip_allow)
    {
        return Some("ip_allow");
    }
    if imposed.contains(Imposed::ALLOWED_TOOLS)
        && let Some(tools) = &patch.allowed_tools
        && !within_tools(tools, &before.allowed_tools)
    {
        return Some("allowed_tools");
    }
    if imposed.contains(Imposed::EXPIRES_AT)
        && let Some(expires_at) = patch.expires_at
    {
        let later = match (expires_at, before.expires_at) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(new), Some(old)) => new > old.max(now),
        };
        if later {
            return Some("expires_at");
        }
    }
    None
}

/// Whether `inner` allows no address `outer` refuses (an empty list allows every address).
fn within_networks(inner: &IpAllowList, outer: &IpAllowList) -> bool {
    outer.is_unrestricted() || (!inner.is_unrestricted() && inner.is_within(outer))
}

/// Whether `inner` allows no tool `outer` refuses (an empty list allows every tool).
fn within_tools(inner: &ToolList, outer: &ToolList) -> bool {
    outer.is_unrestricted() || (!inner.is_unrestricted() && inner.is_within(outer))
}

/// Maps a store `NotFound` to the facade's, naming `entity` (an owner or project id that names nothing).
fn hidden(entity: &'static str) -> impl Fn(StoreError) -> Error {
    move |error| match error {
        StoreError::NotFound { .. } => not_found(entity),
        other => other.into(),
    }
}
