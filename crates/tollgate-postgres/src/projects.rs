//! Projects and their members on PostgreSQL.

use async_trait::async_trait;
use sqlx::PgConnection;
use sqlx::postgres::PgRow;
use tollgate_store::{MemberRemoved, Page, PageRequest, ProjectInsert, ProjectStore, Result, StoreError};
use tollgate_types::{
    AuditEvent, Description, OwnerId, ProjectId, ProjectMember, ProjectName, ProjectRecord, ProjectRole, Timestamp,
    Username,
};

use crate::PgStore;
use crate::accounts::fetch_owner;
use crate::error::PgResultExt;
use crate::rows::{get, parsed, time};
use crate::store::retrying;

const COLUMNS: &str = "projects.id, projects.name, projects.description, projects.created_at, projects.updated_at";
const TABLE: &str = "projects";

fn project_from_row(row: &PgRow) -> Result<ProjectRecord> {
    let text = |column: &str| -> Result<String> { get(row, TABLE, column) };
    Ok(ProjectRecord {
        id: parsed(TABLE, "id", ProjectId::parse(&text("id")?))?,
        name: parsed(TABLE, "name", ProjectName::parse(&text("name")?))?,
        description: parsed(TABLE, "description", Description::parse(&text("description")?))?,
        created_at: time(row, TABLE, "created_at")?,
        updated_at: time(row, TABLE, "updated_at")?,
    })
}

/// The project with `id` (locked against changes with `lock`), or `NotFound`.
async fn fetch_project(connection: &mut PgConnection, id: &ProjectId, lock: bool) -> Result<ProjectRecord> {
    let sql = format!("SELECT {COLUMNS} FROM projects WHERE id = $1{}", if lock { " FOR SHARE" } else { "" });
    let row = sqlx::query(&sql).bind(id.to_string()).fetch_optional(connection).await.store()?;
    row.as_ref().map(project_from_row).transpose()?.ok_or(StoreError::NotFound { entity: "project" })
}

/// A member row: `project_id, member_id, role, updated_at` and the member's name.
const MEMBER_SELECT: &str = "SELECT m.project_id, m.member_id, m.role, m.updated_at,
        coalesce((SELECT username FROM users WHERE id = m.member_id),
                 (SELECT name FROM service_accounts WHERE id = m.member_id)) COLLATE \"C\" AS member_name
     FROM project_members m";

fn member_from_row(row: &PgRow) -> Result<ProjectMember> {
    let text = |column: &str| -> Result<String> { get(row, "project_members", column) };
    Ok(ProjectMember {
        project_id: parsed("project_members", "project_id", ProjectId::parse(&text("project_id")?))?,
        member: parsed("project_members", "member_id", OwnerId::parse(&text("member_id")?))?,
        role: parsed("project_members", "role", text("role")?.parse::<ProjectRole>())?,
        updated_at: time(row, "project_members", "updated_at")?,
        member_name: parsed("project_members", "member name", Username::parse_field("name", &text("member_name")?))?,
    })
}

/// The membership, locked for the rest of the transaction with `lock`.
async fn fetch_member(
    connection: &mut PgConnection,
    project: &ProjectId,
    member: &OwnerId,
    lock: bool,
) -> Result<Option<ProjectMember>> {
    let sql = format!(
        "{MEMBER_SELECT} WHERE m.project_id = $1 AND m.member_id = $2{}",
        if lock { " FOR UPDATE OF m" } else { "" }
    );
    let row = sqlx::query(&sql)
        .bind(project.to_string())
        .bind(member.to_string())
        .fetch_optional(connection)
        .await
        .store()?;
    row.as_ref().map(member_from_row).transpose()
}

async fn insert_project(store: &PgStore, insert: &ProjectInsert, audit: &AuditEvent) -> Result<ProjectRecord> {
    let mut tx = store.begin().await?;
    let taken: Option<i32> = sqlx::query_scalar("SELECT 1 FROM projects WHERE lower(name) = lower($1)")
        .bind(insert.project.name.as_str())
        .fetch_optional(tx.conn())
        .await
        .store()?;
    if taken.is_some() {
        return Err(StoreError::Conflict("name is already taken by a project".to_owned()));
    }
    sqlx::query("INSERT INTO projects (id, name, description, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)")
        .bind(insert.id.to_string())
        .bind(insert.project.name.as_str())
        .bind(insert.project.description.as_str())
        .bind(insert.created_at.unix_micros())
        .execute(tx.conn())
        .await
        .store()?;
    let record = fetch_project(tx.conn(), &insert.id, false).await?;
    tx.audit(audit.clone());
    tx.commit().await?;
    Ok(record)
}

async fn put_member(
    store: &PgStore,
    project: &ProjectId,
    member: &OwnerId,
    role: ProjectRole,
    at: Timestamp,
    audit: &AuditEvent,
) -> Result<ProjectMember> {
    let mut tx = store.begin().await?;
    fetch_project(tx.conn(), project, true).await?;
    fetch_owner(tx.conn(), member).await?;
    let before = fetch_member(tx.conn(), project, member, true).await?;
    if let Some(existing) = before.as_ref().filter(|existing| existing.role == role) {
        let existing = existing.clone();
        tx.rollback().await?;
        return Ok(existing);
    }
    sqlx::query(
        "INSERT INTO project_members (project_id, member_id, role, updated_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (project_id, member_id) DO UPDATE SET role = excluded.role, updated_at = excluded.updated_at",
    )
    .bind(project.to_string())
    .bind(member.to_string())
    .bind(role.as_str())
    .bind(at.unix_micros())
    .execute(tx.conn())
    .await
    .store()?;
    let record =
        fetch_member(tx.conn(), project, member, false).await?.ok_or(StoreError::NotFound { entity: "member" })?;
    let mut event = audit.clone();
    event.before = before.as_ref().map(|before| serde_json::json!({ "role": before.role }));
    tx.audit(event.clone());
    if role == ProjectRole::Viewer {
        // A viewer reads the project's usage; it no longer spends it.
        let parameters = [member.to_string(), project.to_string()];
        let condition = "owner_id = $1 AND project_id = $2";
        crate::tokens::revoke_where(&mut tx, condition, &parameters, "made a viewer of the project", &event).await?;
    }
    tx.commit().await?;
    Ok(record)
}

async fn remove_member(
    store: &PgStore,
    project: &ProjectId,
    member: &OwnerId,
    audit: &AuditEvent,
) -> Result<MemberRemoved> {
    let mut tx = store.begin().await?;
    let existing =
        fetch_member(tx.conn(), project, member, true).await?.ok_or(StoreError::NotFound { entity: "member" })?;
    sqlx::query("DELETE FROM project_members WHERE project_id = $1 AND member_id = $2")
        .bind(project.to_string())
        .bind(member.to_string())
        .execute(tx.conn())
        .await
        .store()?;
    tx.audit(audit.clone());
    let parameters = [member.to_string(), project.to_string()];
    let revoked_tokens = crate::tokens::revoke_where(
        &mut tx,
        "owner_id = $1 AND project_id = $2",
        &parameters,
        "removed from the project",
        audit,
    )
    .await?;
    tx.commit().await?;
    Ok(MemberRemoved { member: existing, revoked_tokens })
}

#[async_trait]
impl ProjectStore for PgStore {
    async fn insert_project(&self, insert: &ProjectInsert, audit: &AuditEvent) -> Result<ProjectRecord> {
        retrying(move || insert_project(self, insert, audit)).await
    }

    async fn project(&self, id: &ProjectId) -> Result<ProjectRecord> {
        let mut connection = self.pool().acquire().await.store()?;
        fetch_project(&mut connection, id, false).await
    }

    async fn project_by_name(&self, name: &ProjectName) -> Result<Option<ProjectRecord>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM projects WHERE lower(name) = lower($1)"))
            .bind(name.as_str())
            .fetch_optional(self.pool())
            .await
            .store()?;
        row.as_ref().map(project_from_row).transpose()
    }

    async fn list_projects(&self, member: Option<&OwnerId>, page: &PageRequest) -> Result<Page<ProjectRecord>> {
        let before = match &page.cursor {
            Some(cursor) => ProjectId::parse(cursor).map_err(|_| StoreError::InvalidCursor)?.to_string(),
            None => "~".to_owned(), // sorts after every `prj_…` id (ids are in the "C" collation)
        };
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM projects
             WHERE id < $1 AND ($2::text IS NULL OR EXISTS (
                 SELECT 1 FROM project_members m WHERE m.project_id = projects.id AND m.member_id = $2))
             ORDER BY id DESC LIMIT $3"
        ))
        .bind(before)
        .bind(member.map(ToString::to_string))
        .bind(i64::from(page.limit) + 1)
        .fetch_all(self.pool())
        .await
        .store()?;
        let items = rows.iter().map(project_from_row).collect::<Result<Vec<_>>>()?;
        Ok(Page::from_overfetch(items, page.limit, |record| record.id.to_string()))
    }

    async fn put_project_member(
        &self,
        project: &ProjectId,
        member: &OwnerId,
        role: ProjectRole,
        at: Timestamp,
        audit: &AuditEvent,
    ) -> Result<ProjectMember> {
        retrying(move || put_member(self, project, member, role, at, audit)).await
    }

    async fn remove_project_member(
        &self,
        project: &ProjectId,
        member: &OwnerId,
        audit: &AuditEvent,
    ) -> Result<MemberRemoved> {
        retrying(move || remove_member(self, project, member, audit)).await
    }

    async fn project_members(&self, project: &ProjectId) -> Result<Vec<ProjectMember>> {
        let mut connection = self.pool().acquire().await.store()?;
        fetch_project(&mut connection, project, false).await?;
        let rows = sqlx::query(&format!("{MEMBER_SELECT} WHERE m.project_id = $1 ORDER BY member_name"))
            .bind(project.to_string())
            .fetch_all(&mut *connection)
            .await
            .store()?;
        rows.iter().map(member_from_row).collect()
    }

    async fn project_role(&self, project: &ProjectId, member: &OwnerId) -> Result<Option<ProjectRole>> {
        let mut connection = self.pool().acquire().await.store()?;
        Ok(fetch_member(&mut connection, project, member, false).await?.map(|found| found.role))
    }
}
