//! Projects: entities with members (users or service accounts, each a member or a viewer). Admins
//! create them and manage members; members read them; only members bind tokens to them.

use serde_json::json;
use tollgate_store::{Page, PageRequest, ProjectInsert};
use tollgate_types::{
    AuditEvent, NewProject, OwnerId, Principal, ProjectId, ProjectMember, ProjectRecord, ProjectRole,
};

use crate::authz::{Operation, authorize};
use crate::{Caller, Error, Result, UserService};

impl UserService {
    fn project_event(&self, caller: &Caller, action: &str, target: ProjectId) -> AuditEvent {
        let mut event = AuditEvent::new(caller.principal.actor(), action, target, self.inner.clock.now());
        event.ip = caller.ip;
        event
    }

    /// The principal's role in a project (`None`: not a member, or the operator).
    pub async fn project_role(&self, principal: &Principal, project: &ProjectId) -> Result<Option<ProjectRole>> {
        match principal.owner_id() {
            Some(owner) => Ok(self.inner.store.project_role(project, &owner).await?),
            None => Ok(None),
        }
    }

    /// Creates a project (admins). `Conflict` when the name is taken.
    #[tracing::instrument(skip_all, fields(name = %project.name))]
    pub async fn create_project(&self, caller: &Caller, project: NewProject) -> Result<ProjectRecord> {
        authorize(&caller.principal, Operation::ManageProjects)?;
        let id = ProjectId::generate();
        let mut event = self.project_event(caller, "project.create", id);
        event.after = Some(json!({ "name": project.name, "description": project.description }));
        let insert = ProjectInsert { id, project, created_at: event.at };
        Ok(self.inner.store.insert_project(&insert, &event).await?)
    }

    /// One project: admins and its members. Others get `NotFound`, whether it exists or not.
    pub async fn project(&self, principal: &Principal, id: &ProjectId) -> Result<ProjectRecord> {
        let role = self.project_role(principal, id).await?;
        authorize(principal, Operation::ReadProject { role }).map_err(|_| Error::NotFound { entity: "project" })?;
        Ok(self.inner.store.project(id).await?)
    }

    /// Projects newest first: all of them for admins, those the principal belongs to for others.
    pub async fn list_projects(&self, principal: &Principal, page: &PageRequest) -> Result<Page<ProjectRecord>> {
        let member = match authorize(principal, Operation::ListAllProjects) {
            Ok(()) => None,
            Err(_) => Some(principal.owner_id().ok_or_else(|| Error::Forbidden("listing projects".to_owned()))?),
        };
        Ok(self.inner.store.list_projects(member.as_ref(), page).await?)
    }

    /// A project's members: admins and its members.
    pub async fn project_members(&self, principal: &Principal, id: &ProjectId) -> Result<Vec<ProjectMember>> {
        self.project(principal, id).await?;
        Ok(self.inner.store.project_members(id).await?)
    }

    /// Adds a member to a project or changes its role (admins).
    #[tracing::instrument(skip_all, fields(project_id = %project, member = %member, role = %role))]
    pub async fn put_project_member(
        &self,
        caller: &Caller,
        project: &ProjectId,
        member: &OwnerId,
        role: ProjectRole,
    ) -> Result<ProjectMember> {
        authorize(&caller.principal, Operation::ManageProjects)?;
        let mut event = self.project_event(caller, "project.put_member", *project);
        event.after = Some(json!({ "member": member, "role": role }));
        let put = self.inner.store.put_project_member(project, member, role, event.at, &event).await;
        if role == ProjectRole::Viewer {
            // Tokens bound to the project may have been revoked with the demotion.
            self.inner.tokens.invalidate_cache();
        }
        Ok(put?)
    }

    /// Removes a member from a project (admins); the member's tokens bound to it are revoked in the
    /// same transaction.
    #[tracing::instrument(skip_all, fields(project_id = %project, member = %member))]
    pub async fn remove_project_member(
        &self,
        caller: &Caller,
        project: &ProjectId,
        member: &OwnerId,
    ) -> Result<ProjectMember> {
        authorize(&caller.principal, Operation::ManageProjects)?;
        let mut event = self.project_event(caller, "project.remove_member", *project);
        event.before = Some(json!({ "member": member }));
        let removed = self.inner.store.remove_project_member(project, member, &event).await;
        self.inner.tokens.invalidate_cache();
        let removed = removed?;
        tracing::info!(tokens_revoked = removed.revoked_tokens.len(), "project member removed");
        Ok(removed.member)
    }
}
