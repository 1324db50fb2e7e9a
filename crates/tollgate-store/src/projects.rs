//! Projects and their members.

use async_trait::async_trait;
use tollgate_types::{
    AuditEvent, NewProject, OwnerId, ProjectId, ProjectMember, ProjectName, ProjectRecord, ProjectRole, Timestamp,
    TokenId,
};

use crate::{Page, PageRequest, Result};

/// Everything needed to store a new project.
#[derive(Debug, Clone)]
pub struct ProjectInsert {
    /// The new id.
    pub id: ProjectId,
    /// The validated request.
    pub project: NewProject,
    /// Creation time.
    pub created_at: Timestamp,
}

/// What removing a member did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRemoved {
    /// The membership that ended.
    pub member: ProjectMember,
    /// The member's live tokens bound to the project, revoked in the same transaction.
    pub revoked_tokens: Vec<TokenId>,
}

/// Projects and memberships. Every mutation writes its audit event in the same transaction.
#[async_trait]
pub trait ProjectStore: Send + Sync {
    /// Stores a new project. `Conflict` when the name is taken (case-insensitively).
    async fn insert_project(&self, insert: &ProjectInsert, audit: &AuditEvent) -> Result<ProjectRecord>;

    /// The project with `id`, or `NotFound`.
    async fn project(&self, id: &ProjectId) -> Result<ProjectRecord>;

    /// The project named `name` (case-insensitively), or `None`.
    async fn project_by_name(&self, name: &ProjectName) -> Result<Option<ProjectRecord>>;

    /// Projects newest first; with `member`, only those it belongs to. The cursor is an id.
    async fn list_projects(&self, member: Option<&OwnerId>, page: &PageRequest) -> Result<Page<ProjectRecord>>;

    /// Adds a member or changes its role. The store fills `audit.before` with the previous role (`None`
    /// for a new member), read in the same transaction. A member made a viewer may no longer bind
    /// tokens to the project: its live tokens bound to it are revoked in the same transaction (one
    /// `token.revoke` event each), as a removal does. Putting the role a member already has changes
    /// nothing and writes nothing. `NotFound` (entity `project` or `owner`) when either does not exist.
    async fn put_project_member(
        &self,
        project: &ProjectId,
        member: &OwnerId,
        role: ProjectRole,
        at: Timestamp,
        audit: &AuditEvent,
    ) -> Result<ProjectMember>;

    /// Ends a membership and revokes the member's live tokens bound to the project (one
    /// `token.revoke` event each, after `audit`). `NotFound` (entity `member`) when it is not a member.
    async fn remove_project_member(
        &self,
        project: &ProjectId,
        member: &OwnerId,
        audit: &AuditEvent,
    ) -> Result<MemberRemoved>;

    /// The members of a project, by name.
    async fn project_members(&self, project: &ProjectId) -> Result<Vec<ProjectMember>>;

    /// The role of `member` in `project`, or `None` when it is not a member.
    async fn project_role(&self, project: &ProjectId, member: &OwnerId) -> Result<Option<ProjectRole>>;
}
