//! Projects and their members on SQLite.

use async_trait::async_trait;
use rusqlite::{Connection, Row, params};
use tollgate_store::{MemberRemoved, Page, PageRequest, ProjectInsert, ProjectStore, Result, StoreError};
use tollgate_types::{
    AuditEvent, Description, OwnerId, ProjectId, ProjectMember, ProjectName, ProjectRecord, ProjectRole, Timestamp,
    Username,
};

use crate::SqliteStore;
use crate::accounts::fetch_owner;
use crate::audit::append;
use crate::columns::{Column, Columns, collect, execute, first, one};
use crate::error::corrupt;

const NAMES: [&str; 5] = ["id", "name", "description", "created_at", "updated_at"];
const COLUMNS: &str = "projects.id, projects.name, projects.description, projects.created_at, projects.updated_at";

fn at(index: usize) -> Column {
    Column { index, name: NAMES[index] }
}

fn column<T, E: std::fmt::Display>(name: &str, parsed: std::result::Result<T, E>) -> Result<T> {
    parsed.map_err(|error| corrupt(&format!("projects.{name}"), error))
}

fn project_from_row(row: &Row<'_>) -> Result<ProjectRecord> {
    Ok(ProjectRecord {
        id: column("id", ProjectId::parse(&row.text(at(0))?))?,
        name: column("name", ProjectName::parse(&row.text(at(1))?))?,
        description: column("description", Description::parse(&row.text(at(2))?))?,
        created_at: Timestamp::from_unix_micros(row.integer(at(3))?),
        updated_at: Timestamp::from_unix_micros(row.integer(at(4))?),
    })
}

fn fetch_project(connection: &Connection, id: &ProjectId) -> Result<ProjectRecord> {
    one(
        connection,
        "project",
        &format!("SELECT {COLUMNS} FROM projects WHERE id = ?"),
        [id.to_string()],
        project_from_row,
    )
}

/// A member row: `project_id, member_id, role, updated_at` then the member's name.
const MEMBER_SELECT: &str = "SELECT m.project_id, m.member_id, m.role, m.updated_at,
        coalesce((SELECT username FROM users WHERE id = m.member_id),
                 (SELECT name FROM service_accounts WHERE id = m.member_id))
     FROM project_members m";

fn member_from_row(row: &Row<'_>) -> Result<ProjectMember> {
    let text = |index: usize, name: &'static str| row.text(Column { index, name });
    let member = |error: tollgate_types::ValidationError| corrupt("project_members", error);
    Ok(ProjectMember {
        project_id: ProjectId::parse(&text(0, "project_id")?).map_err(member)?,
        member: OwnerId::parse(&text(1, "member_id")?).map_err(member)?,
        role: text(2, "role")?.parse::<ProjectRole>().map_err(member)?,
        updated_at: Timestamp::from_unix_micros(row.integer(Column { index: 3, name: "updated_at" })?),
        member_name: Username::parse_field("name", &text(4, "member name")?).map_err(member)?,
    })
}

fn fetch_member(connection: &Connection, project: &ProjectId, member: &OwnerId) -> Result<Option<ProjectMember>> {
    first(
        connection,
        &format!("{MEMBER_SELECT} WHERE m.project_id = ? AND m.member_id = ?"),
        params![project.to_string(), member.to_string()],
        member_from_row,
    )
}

#[async_trait]
impl ProjectStore for SqliteStore {
    async fn insert_project(&self, insert: &ProjectInsert, audit: &AuditEvent) -> Result<ProjectRecord> {
        let (insert, audit) = (insert.clone(), audit.clone());
        self.write(move |tx| {
            let taken =
                first(tx.connection, "SELECT 1 FROM projects WHERE name = ?", [insert.project.name.as_str()], |_| {
                    Ok(())
                })?;
            if taken.is_some() {
                return Err(StoreError::Conflict("name is already taken by a project".to_owned()));
            }
            let at = insert.created_at.unix_micros();
            execute(
                tx.connection,
                "INSERT INTO projects (id, name, description, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
                params![
                    insert.id.to_string(),
                    insert.project.name.as_str(),
                    insert.project.description.as_str(),
                    at,
                    at
                ],
            )?;
            let record = fetch_project(tx.connection, &insert.id)?;
            append(tx, &audit)?;
            Ok(record)
        })
        .await
    }

    async fn project(&self, id: &ProjectId) -> Result<ProjectRecord> {
        let id = *id;
        self.point(move |connection| fetch_project(connection, &id)).await
    }

    async fn project_by_name(&self, name: &ProjectName) -> Result<Option<ProjectRecord>> {
        let name = name.clone();
        self.point(move |connection| {
            first(
                connection,
                &format!("SELECT {COLUMNS} FROM projects WHERE name = ?"),
                [name.as_str()],
                project_from_row,
            )
        })
        .await
    }

    async fn list_projects(&self, member: Option<&OwnerId>, page: &PageRequest) -> Result<Page<ProjectRecord>> {
        let before = match &page.cursor {
            Some(cursor) => ProjectId::parse(cursor).map_err(|_| StoreError::InvalidCursor)?.to_string(),
            None => "~".to_owned(), // sorts after every `prj_…` id
        };
        let (member, limit) = (member.map(ToString::to_string), page.limit);
        let items = self
            .scan(move |connection| {
                collect(
                    connection,
                    &format!(
                        "SELECT {COLUMNS} FROM projects
                         WHERE id < ?1 AND (?2 IS NULL OR EXISTS (
                             SELECT 1 FROM project_members m WHERE m.project_id = projects.id AND m.member_id = ?2))
                         ORDER BY id DESC LIMIT ?3"
                    ),
                    params![before, member, i64::from(limit) + 1],
                    project_from_row,
                )
            })
            .await?;
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
        let (project, member, audit) = (*project, *member, audit.clone());
        self.write(move |tx| {
            fetch_project(tx.connection, &project)?;
            fetch_owner(tx.connection, &member)?;
            let before = fetch_member(tx.connection, &project, &member)?;
            if before.as_ref().is_some_and(|existing| existing.role == role) {
                return before.ok_or(StoreError::NotFound { entity: "member" });
            }
            execute(
                tx.connection,
                "INSERT INTO project_members (project_id, member_id, role, updated_at) VALUES (?, ?, ?, ?)
                 ON CONFLICT (project_id, member_id) DO UPDATE SET role = excluded.role, updated_at = excluded.updated_at",
                params![project.to_string(), member.to_string(), role.as_str(), at.unix_micros()],
            )?;
            let record = fetch_member(tx.connection, &project, &member)?.ok_or(StoreError::NotFound { entity: "member" })?;
            let mut event = audit;
            event.before = before.as_ref().map(|before| serde_json::json!({ "role": before.role }));
            append(tx, &event)?;
            if role == ProjectRole::Viewer {
                // A viewer reads the project's usage; it no longer spends it.
                crate::tokens::revoke_where(
                    tx,
                    "owner_id = ?1 AND project_id = ?2",
                    &[member.to_string(), project.to_string()],
                    "made a viewer of the project",
                    &event,
                )?;
            }
            Ok(record)
        })
        .await
    }

    async fn remove_project_member(
        &self,
        project: &ProjectId,
        member: &OwnerId,
        audit: &AuditEvent,
    ) -> Result<MemberRemoved> {
        let (project, member, audit) = (*project, *member, audit.clone());
        self.write(move |tx| {
            let existing =
                fetch_member(tx.connection, &project, &member)?.ok_or(StoreError::NotFound { entity: "member" })?;
            execute(
                tx.connection,
                "DELETE FROM project_members WHERE project_id = ? AND member_id = ?",
                params![project.to_string(), member.to_string()],
            )?;
            append(tx, &audit)?;
            let revoked_tokens = crate::tokens::revoke_where(
                tx,
                "owner_id = ?1 AND project_id = ?2",
                &[member.to_string(), project.to_string()],
                "removed from the project",
                &audit,
            )?;
            Ok(MemberRemoved { member: existing, revoked_tokens })
        })
        .await
    }

    async fn project_members(&self, project: &ProjectId) -> Result<Vec<ProjectMember>> {
        let project = *project;
        self.scan(move |connection| {
            fetch_project(connection, &project)?;
            collect(
                connection,
                &format!("{MEMBER_SELECT} WHERE m.project_id = ? ORDER BY 5"),
                [project.to_string()],
                member_from_row,
            )
        })
        .await
    }

    async fn project_role(&self, project: &ProjectId, member: &OwnerId) -> Result<Option<ProjectRole>> {
        let (project, member) = (*project, *member);
        self.point(move |connection| Ok(fetch_member(connection, &project, &member)?.map(|found| found.role))).await
    }
}
