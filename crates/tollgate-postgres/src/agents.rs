//! Agents on PostgreSQL, and the status their credentials carry.
//!
//! A status change locks the agent's row and rewrites its credentials' copy of the status in the
//! same transaction; a new credential reads the status under a share lock on that row, so it never
//! misses a change that commits at the same time.

use async_trait::async_trait;
use sqlx::PgConnection;
use sqlx::postgres::PgRow;
use tollgate_store::{AgentFilter, AgentInsert, AgentStore, Page, PageRequest, Result, StoreError};
use tollgate_types::{
    AgentId, AgentName, AgentPatch, AgentRecord, AgentStatus, AuditEvent, Description, Metadata, OwnerId, OwnerName,
    ProjectId, ProviderKeyId, ProviderList, Timestamp, TokenId,
};

use crate::PgStore;
use crate::accounts::fetch_owner;
use crate::error::PgResultExt;
use crate::rows::{get, json, json_text, parsed, time};
use crate::store::retrying;
use crate::tokens::revoke_where;

/// The agent columns every read selects, each aliased `agent_<column>` (they are joined in deliveries).
pub(crate) const AGENT_COLUMNS: &str = "agents.id AS agent_id, agents.name AS agent_name, \
     agents.owner_id AS agent_owner_id, agents.owner_name AS agent_owner_name, \
     agents.project_id AS agent_project_id, agents.providers::text AS agent_providers, \
     agents.provider_key_id AS agent_provider_key_id, agents.status AS agent_status, \
     agents.description AS agent_description, agents.metadata::text AS agent_metadata, \
     agents.created_at AS agent_created_at, agents.updated_at AS agent_updated_at";

const TABLE: &str = "agents";

pub(crate) fn agent_from_row(row: &PgRow) -> Result<AgentRecord> {
    let text = |column: &str| -> Result<String> { get(row, TABLE, &format!("agent_{column}")) };
    let optional = |column: &str| -> Result<Option<String>> { get(row, TABLE, &format!("agent_{column}")) };
    let providers: Vec<String> = json(row, TABLE, "agent_providers")?;
    Ok(AgentRecord {
        id: parsed(TABLE, "id", AgentId::parse(&text("id")?))?,
        name: parsed(TABLE, "name", AgentName::parse(&text("name")?))?,
        owner: parsed(TABLE, "owner_id", OwnerId::parse(&text("owner_id")?))?,
        owner_name: parsed(TABLE, "owner_name", OwnerName::parse(&text("owner_name")?))?,
        project: parsed(TABLE, "project_id", optional("project_id")?.as_deref().map(ProjectId::parse).transpose())?,
        providers: parsed(TABLE, "providers", ProviderList::parse(&providers))?,
        provider_key: parsed(
            TABLE,
            "provider_key_id",
            optional("provider_key_id")?.as_deref().map(ProviderKeyId::parse).transpose(),
        )?,
        status: parsed(TABLE, "status", text("status")?.parse::<AgentStatus>())?,
        description: parsed(TABLE, "description", Description::parse(&text("description")?))?,
        metadata: parsed(TABLE, "metadata", Metadata::from_json_text(&text("metadata")?))?,
        created_at: time(row, TABLE, "agent_created_at")?,
        updated_at: time(row, TABLE, "agent_updated_at")?,
    })
}

/// The agent with `id`, not deleted; `lock` takes `FOR UPDATE` or `FOR SHARE` on its row.
async fn fetch_agent(connection: &mut PgConnection, id: &AgentId, lock: &str) -> Result<AgentRecord> {
    let sql = format!("SELECT {AGENT_COLUMNS} FROM agents WHERE id = $1 AND deleted_at IS NULL {lock}");
    let row = sqlx::query(&sql).bind(id.to_string()).fetch_optional(connection).await.store()?;
    row.as_ref().map(agent_from_row).transpose()?.ok_or(StoreError::NotFound { entity: "agent" })
}

/// The status a new credential of `agent` carries, read under a share lock on the agent:
/// `NotFound` for a deleted agent, `Conflict` for a disabled one (no credential is issued to it).
pub(crate) async fn status_for_credential(connection: &mut PgConnection, agent: &AgentId) -> Result<AgentStatus> {
    let status = fetch_agent(connection, agent, "FOR SHARE").await?.status;
    if status == AgentStatus::Disabled {
        return Err(StoreError::Conflict("the agent is disabled".to_owned()));
    }
    Ok(status)
}

/// Checks that a provider key named for an agent exists (deleted keys do not), locking it against deletion.
async fn check_provider_key(connection: &mut PgConnection, key: Option<&ProviderKeyId>) -> Result<()> {
    if let Some(key) = key {
        let found: Option<i32> =
            sqlx::query_scalar("SELECT 1 FROM provider_keys WHERE id = $1 AND deleted_at IS NULL FOR SHARE")
                .bind(key.to_string())
                .fetch_optional(connection)
                .await
                .store()?;
        found.ok_or(StoreError::NotFound { entity: "provider_key" })?;
    }
    Ok(())
}

async fn insert_agent(store: &PgStore, insert: &AgentInsert, audit: &AuditEvent) -> Result<AgentRecord> {
    let mut tx = store.begin().await?;
    let agent = &insert.agent;
    fetch_owner(tx.conn(), &agent.owner).await?;
    if let Some(project) = &agent.project {
        let found: Option<i32> = sqlx::query_scalar("SELECT 1 FROM projects WHERE id = $1")
            .bind(project.to_string())
            .fetch_optional(tx.conn())
            .await
            .store()?;
        found.ok_or(StoreError::NotFound { entity: "project" })?;
    }
    check_provider_key(tx.conn(), agent.provider_key.as_ref()).await?;
    sqlx::query(
        "INSERT INTO agents (id, name, owner_id, owner_name, project_id, providers, provider_key_id, status,
             description, metadata, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6::json, $7, 'active', $8, $9::json, $10, $10)",
    )
    .bind(insert.id.to_string())
    .bind(agent.name.as_str())
    .bind(agent.owner.to_string())
    .bind(insert.owner_name.as_str())
    .bind(agent.project.map(|id| id.to_string()))
    .bind(json_text(agent.providers.as_slice()))
    .bind(agent.provider_key.map(|id| id.to_string()))
    .bind(agent.description.as_str())
    .bind(agent.metadata.to_json_text())
    .bind(insert.created_at.unix_micros())
    .execute(tx.conn())
    .await
    .store()?;
    let record = fetch_agent(tx.conn(), &insert.id, "").await?;
    tx.audit(audit.clone());
    tx.commit().await?;
    Ok(record)
}

async fn update_agent(
    store: &PgStore,
    id: &AgentId,
    patch: &AgentPatch,
    at: Timestamp,
    audit: &AuditEvent,
) -> Result<AgentRecord> {
    let mut tx = store.begin().await?;
    fetch_agent(tx.conn(), id, "FOR UPDATE").await?;
    if let Some(key) = &patch.provider_key {
        check_provider_key(tx.conn(), key.as_ref()).await?;
    }
    sqlx::query(
        "UPDATE agents SET name = coalesce($2, name), providers = coalesce($3::json, providers),
             provider_key_id = CASE WHEN $4 THEN $5 ELSE provider_key_id END,
             description = coalesce($6, description), metadata = coalesce($7::json, metadata), updated_at = $8
         WHERE id = $1",
    )
    .bind(id.to_string())
    .bind(patch.name.as_ref().map(AgentName::as_str))
    .bind(patch.providers.as_ref().map(|providers| json_text(providers.as_slice())))
    .bind(patch.provider_key.is_some())
    .bind(patch.provider_key.flatten().map(|key| key.to_string()))
    .bind(patch.description.as_ref().map(Description::as_str))
    .bind(patch.metadata.as_ref().map(Metadata::to_json_text))
    .bind(at.unix_micros())
    .execute(tx.conn())
    .await
    .store()?;
    let record = fetch_agent(tx.conn(), id, "").await?;
    tx.audit(audit.clone());
    tx.commit().await?;
    Ok(record)
}

async fn set_status(
    store: &PgStore,
    id: &AgentId,
    status: AgentStatus,
    at: Timestamp,
    audit: &AuditEvent,
) -> Result<AgentRecord> {
    let mut tx = store.begin().await?;
    let before = fetch_agent(tx.conn(), id, "FOR UPDATE").await?;
    if before.status == status {
        tx.rollback().await?;
        return Ok(before);
    }
    sqlx::query("UPDATE agents SET status = $2, updated_at = $3 WHERE id = $1")
        .bind(id.to_string())
        .bind(status.as_str())
        .bind(at.unix_micros())
        .execute(tx.conn())
        .await
        .store()?;
    sqlx::query("UPDATE tokens SET agent_status = $2 WHERE agent_id = $1")
        .bind(id.to_string())
        .bind(status.as_str())
        .execute(tx.conn())
        .await
        .store()?;
    let record = fetch_agent(tx.conn(), id, "").await?;
    tx.audit(audit.clone());
    tx.commit().await?;
    Ok(record)
}

async fn delete_agent(store: &PgStore, id: &AgentId, at: Timestamp, audit: &AuditEvent) -> Result<Vec<TokenId>> {
    let mut tx = store.begin().await?;
    fetch_agent(tx.conn(), id, "FOR UPDATE").await?;
    sqlx::query("UPDATE agents SET deleted_at = $2, updated_at = $2, provider_key_id = NULL WHERE id = $1")
        .bind(id.to_string())
        .bind(at.unix_micros())
        .execute(tx.conn())
        .await
        .store()?;
    tx.audit(audit.clone());
    let revoked = revoke_where(&mut tx, "agent_id = $1", &[id.to_string()], "agent deleted", audit).await?;
    tx.commit().await?;
    Ok(revoked)
}

#[async_trait]
impl AgentStore for PgStore {
    async fn insert_agent(&self, insert: &AgentInsert, audit: &AuditEvent) -> Result<AgentRecord> {
        retrying(move || insert_agent(self, insert, audit)).await
    }

    async fn agent(&self, id: &AgentId) -> Result<AgentRecord> {
        let mut connection = self.pool().acquire().await.store()?;
        fetch_agent(&mut connection, id, "").await
    }

    async fn list_agents(&self, filter: &AgentFilter, page: &PageRequest) -> Result<Page<AgentRecord>> {
        let before = match &page.cursor {
            Some(cursor) => AgentId::parse(cursor).map_err(|_| StoreError::InvalidCursor)?.to_string(),
            None => "~".to_owned(), // sorts after every `agt_…` id (ids are in the "C" collation)
        };
        let rows = sqlx::query(&format!(
            "SELECT {AGENT_COLUMNS} FROM agents
             WHERE id < $1 AND deleted_at IS NULL AND ($2::text IS NULL OR owner_id = $2)
                   AND ($3::text IS NULL OR project_id = $3) AND ($4::text IS NULL OR status = $4)
             ORDER BY id DESC LIMIT $5"
        ))
        .bind(before)
        .bind(filter.owner.map(|id| id.to_string()))
        .bind(filter.project.map(|id| id.to_string()))
        .bind(filter.status.map(AgentStatus::as_str))
        .bind(i64::from(page.limit) + 1)
        .fetch_all(self.pool())
        .await
        .store()?;
        let items = rows.iter().map(agent_from_row).collect::<Result<Vec<_>>>()?;
        Ok(Page::from_overfetch(items, page.limit, |agent| agent.id.to_string()))
    }

    async fn update_agent(
        &self,
        id: &AgentId,
        patch: &AgentPatch,
        at: Timestamp,
        audit: &AuditEvent,
    ) -> Result<AgentRecord> {
        retrying(move || update_agent(self, id, patch, at, audit)).await
    }

    async fn set_agent_status(
        &self,
        id: &AgentId,
        status: AgentStatus,
        at: Timestamp,
        audit: &AuditEvent,
    ) -> Result<AgentRecord> {
        retrying(move || set_status(self, id, status, at, audit)).await
    }

    async fn delete_agent(&self, id: &AgentId, at: Timestamp, audit: &AuditEvent) -> Result<Vec<TokenId>> {
        retrying(move || delete_agent(self, id, at, audit)).await
    }
}
