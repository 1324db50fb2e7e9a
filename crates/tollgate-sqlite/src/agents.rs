//! Agents on SQLite, and the status their credentials carry.

use async_trait::async_trait;
use rusqlite::{Connection, Row, params};
use tollgate_store::{AgentFilter, AgentInsert, AgentStore, Page, PageRequest, Result, StoreError};
use tollgate_types::{
    AgentId, AgentName, AgentPatch, AgentRecord, AgentStatus, AuditEvent, Description, Metadata, OwnerId, OwnerName,
    ProjectId, ProviderKeyId, ProviderList, Timestamp, TokenId,
};

use crate::SqliteStore;
use crate::accounts::fetch_owner;
use crate::audit::append;
use crate::columns::{Column, Columns, collect, execute, first, one};
use crate::error::corrupt;
use crate::tokens::revoke_where;

const NAMES: [&str; 12] = [
    "id",
    "name",
    "owner_id",
    "owner_name",
    "project_id",
    "providers",
    "provider_key_id",
    "status",
    "description",
    "metadata",
    "created_at",
    "updated_at",
];

/// The agent columns every read selects, prefixed by the table (they are joined in deliveries).
pub(crate) const AGENT_COLUMNS: &str = "agents.id, agents.name, agents.owner_id, agents.owner_name, agents.project_id, \
     agents.providers, agents.provider_key_id, agents.status, agents.description, agents.metadata, \
     agents.created_at, agents.updated_at";

/// How many columns [`AGENT_COLUMNS`] has: the next select list starts there.
pub(crate) const AGENT_COLUMN_COUNT: usize = NAMES.len();

fn at(index: usize) -> Column {
    Column { index, name: NAMES[index] }
}

fn column<T, E: std::fmt::Display>(name: &str, parsed: std::result::Result<T, E>) -> Result<T> {
    parsed.map_err(|error| corrupt(&format!("agents.{name}"), error))
}

pub(crate) fn agent_from_row(row: &Row<'_>) -> Result<AgentRecord> {
    let providers: Vec<String> = column("providers", serde_json::from_str(&row.text(at(5))?))?;
    Ok(AgentRecord {
        id: column("id", AgentId::parse(&row.text(at(0))?))?,
        name: column("name", AgentName::parse(&row.text(at(1))?))?,
        owner: column("owner_id", OwnerId::parse(&row.text(at(2))?))?,
        owner_name: column("owner_name", OwnerName::parse(&row.text(at(3))?))?,
        project: column("project_id", row.optional_text(at(4))?.as_deref().map(ProjectId::parse).transpose())?,
        providers: column("providers", ProviderList::parse(&providers))?,
        provider_key: column(
            "provider_key_id",
            row.optional_text(at(6))?.as_deref().map(ProviderKeyId::parse).transpose(),
        )?,
        status: column("status", row.text(at(7))?.parse::<AgentStatus>())?,
        description: column("description", Description::parse(&row.text(at(8))?))?,
        metadata: column("metadata", Metadata::from_json_text(&row.text(at(9))?))?,
        created_at: Timestamp::from_unix_micros(row.integer(at(10))?),
        updated_at: Timestamp::from_unix_micros(row.integer(at(11))?),
    })
}

fn fetch_agent(connection: &Connection, id: &AgentId) -> Result<AgentRecord> {
    one(
        connection,
        "agent",
        &format!("SELECT {AGENT_COLUMNS} FROM agents WHERE id = ? AND deleted_at IS NULL"),
        [id.to_string()],
        agent_from_row,
    )
}

/// The status a new credential of `agent` carries: `NotFound` for a deleted agent, `Conflict` for a
/// disabled one (no credential is issued to it).
pub(crate) fn status_for_credential(connection: &Connection, agent: &AgentId) -> Result<AgentStatus> {
    let status = fetch_agent(connection, agent)?.status;
    if status == AgentStatus::Disabled {
        return Err(StoreError::Conflict("the agent is disabled".to_owned()));
    }
    Ok(status)
}

/// Checks that a provider key named for an agent exists (deleted keys do not).
fn check_provider_key(connection: &Connection, key: Option<&ProviderKeyId>) -> Result<()> {
    if let Some(key) = key {
        first(
            connection,
            "SELECT 1 FROM provider_keys WHERE id = ? AND deleted_at IS NULL",
            [key.to_string()],
            |_| Ok(()),
        )?
        .ok_or(StoreError::NotFound { entity: "provider_key" })?;
    }
    Ok(())
}

fn json_text<S: serde::Serialize + ?Sized>(value: &S) -> String {
    serde_json::to_string(value).expect("lists of names always serialize")
}

#[async_trait]
impl AgentStore for SqliteStore {
    async fn insert_agent(&self, insert: &AgentInsert, audit: &AuditEvent) -> Result<AgentRecord> {
        let (insert, audit) = (insert.clone(), audit.clone());
        self.write(move |tx| {
            let agent = &insert.agent;
            fetch_owner(tx.connection, &agent.owner).map_err(|error| match error {
                StoreError::NotFound { .. } => StoreError::NotFound { entity: "owner" },
                other => other,
            })?;
            if let Some(project) = &agent.project {
                first(tx.connection, "SELECT 1 FROM projects WHERE id = ?", [project.to_string()], |_| Ok(()))?
                    .ok_or(StoreError::NotFound { entity: "project" })?;
            }
            check_provider_key(tx.connection, agent.provider_key.as_ref())?;
            let at = insert.created_at.unix_micros();
            execute(
                tx.connection,
                "INSERT INTO agents (id, name, owner_id, owner_name, project_id, providers, provider_key_id, status,
                     description, metadata, created_at, updated_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?, 'active', ?, ?, ?, ?)",
                params![
                    insert.id.to_string(),
                    agent.name.as_str(),
                    agent.owner.to_string(),
                    insert.owner_name.as_str(),
                    agent.project.map(|id| id.to_string()),
                    json_text(agent.providers.as_slice()),
                    agent.provider_key.map(|id| id.to_string()),
                    agent.description.as_str(),
                    agent.metadata.to_json_text(),
                    at,
                    at,
                ],
            )?;
            let record = fetch_agent(tx.connection, &insert.id)?;
            append(tx, &audit)?;
            Ok(record)
        })
        .await
    }

    async fn agent(&self, id: &AgentId) -> Result<AgentRecord> {
        let id = *id;
        self.point(move |connection| fetch_agent(connection, &id)).await
    }

    async fn list_agents(&self, filter: &AgentFilter, page: &PageRequest) -> Result<Page<AgentRecord>> {
        let before = match &page.cursor {
            Some(cursor) => AgentId::parse(cursor).map_err(|_| StoreError::InvalidCursor)?.to_string(),
            None => "~".to_owned(), // sorts after every `agt_…` id
        };
        let (filter, limit) = (filter.clone(), page.limit);
        let items = self
            .scan(move |connection| {
                collect(
                    connection,
                    &format!(
                        "SELECT {AGENT_COLUMNS} FROM agents
                         WHERE id < ?1 AND deleted_at IS NULL AND (?2 IS NULL OR owner_id = ?2)
                               AND (?3 IS NULL OR project_id = ?3) AND (?4 IS NULL OR status = ?4)
                         ORDER BY id DESC LIMIT ?5"
                    ),
                    params![
                        before,
                        filter.owner.map(|id| id.to_string()),
                        filter.project.map(|id| id.to_string()),
                        filter.status.map(AgentStatus::as_str),
                        i64::from(limit) + 1
                    ],
                    agent_from_row,
                )
            })
            .await?;
        Ok(Page::from_overfetch(items, limit, |agent| agent.id.to_string()))
    }

    async fn update_agent(
        &self,
        id: &AgentId,
        patch: &AgentPatch,
        at: Timestamp,
        audit: &AuditEvent,
    ) -> Result<AgentRecord> {
        let (id, patch, audit) = (*id, patch.clone(), audit.clone());
        self.write(move |tx| {
            fetch_agent(tx.connection, &id)?;
            if let Some(key) = &patch.provider_key {
                check_provider_key(tx.connection, key.as_ref())?;
            }
            execute(
                tx.connection,
                "UPDATE agents SET name = coalesce(?2, name), providers = coalesce(?3, providers),
                     provider_key_id = CASE WHEN ?4 THEN ?5 ELSE provider_key_id END,
                     description = coalesce(?6, description), metadata = coalesce(?7, metadata), updated_at = ?8
                 WHERE id = ?1",
                params![
                    id.to_string(),
                    patch.name.as_ref().map(AgentName::as_str),
                    patch.providers.as_ref().map(|providers| json_text(providers.as_slice())),
                    patch.provider_key.is_some(),
                    patch.provider_key.flatten().map(|key| key.to_string()),
                    patch.description.as_ref().map(Description::as_str),
                    patch.metadata.as_ref().map(Metadata::to_json_text),
                    at.unix_micros(),
                ],
            )?;
            let record = fetch_agent(tx.connection, &id)?;
            append(tx, &audit)?;
            Ok(record)
        })
        .await
    }

    async fn set_agent_status(
        &self,
        id: &AgentId,
        status: AgentStatus,
        at: Timestamp,
        audit: &AuditEvent,
    ) -> Result<AgentRecord> {
        let (id, audit) = (*id, audit.clone());
        self.write(move |tx| {
            let before = fetch_agent(tx.connection, &id)?;
            if before.status == status {
                return Ok(before);
            }
            execute(
                tx.connection,
                "UPDATE agents SET status = ?2, updated_at = ?3 WHERE id = ?1",
                params![id.to_string(), status.as_str(), at.unix_micros()],
            )?;
            execute(
                tx.connection,
                "UPDATE tokens SET agent_status = ?2 WHERE agent_id = ?1",
                params![id.to_string(), status.as_str()],
            )?;
            let record = fetch_agent(tx.connection, &id)?;
            append(tx, &audit)?;
            Ok(record)
        })
        .await
    }

    async fn delete_agent(&self, id: &AgentId, at: Timestamp, audit: &AuditEvent) -> Result<Vec<TokenId>> {
        let (id, audit) = (*id, audit.clone());
        self.write(move |tx| {
            fetch_agent(tx.connection, &id)?;
            execute(
                tx.connection,
                "UPDATE agents SET deleted_at = ?2, updated_at = ?2, provider_key_id = NULL WHERE id = ?1",
                params![id.to_string(), at.unix_micros()],
            )?;
            append(tx, &audit)?;
            revoke_where(tx, "agent_id = ?", &[id.to_string()], "agent deleted", &audit)
        })
        .await
    }
}
