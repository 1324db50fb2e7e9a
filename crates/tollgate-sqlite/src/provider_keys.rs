//! The provider-key vault on SQLite: metadata and ciphertext rows, assignment, the delivery read
//! and master-key re-wrapping. The plaintext never reaches this module.

use async_trait::async_trait;
use rusqlite::{Connection, Row, params};
use tollgate_store::{
    Delivery, NewSecret, Page, PageRequest, ProviderKeyFilter, ProviderKeyInsert, ProviderKeyStore, Result, Rewrap,
    SealedKey, StoreError,
};
use tollgate_types::{
    AgentId, AuditEvent, BaseUrl, Description, Metadata, Microdollars, OwnerId, OwnerName, ProjectId, ProviderKeyId,
    ProviderKeyPatch, ProviderKeyRecord, ProviderName, Timestamp,
};

use crate::SqliteStore;
use crate::accounts::fetch_owner;
use crate::agents::{AGENT_COLUMN_COUNT, AGENT_COLUMNS, agent_from_row};
use crate::audit::append;
use crate::columns::{Column, Columns, collect, execute, first, one};
use crate::error::corrupt;

const NAMES: [&str; 14] = [
    "id",
    "provider",
    "base_url",
    "description",
    "owner_id",
    "owner_name",
    "project_id",
    "enabled",
    "balance",
    "metadata",
    "masked",
    "master_key_id",
    "created_at",
    "updated_at",
];

const KEY_COLUMNS: &str = "provider_keys.id, provider_keys.provider, provider_keys.base_url, \
     provider_keys.description, provider_keys.owner_id, provider_keys.owner_name, provider_keys.project_id, \
     provider_keys.enabled, provider_keys.balance, provider_keys.metadata, provider_keys.masked, \
     provider_keys.master_key_id, provider_keys.created_at, provider_keys.updated_at";

const SEALED_COLUMNS: &str =
    "provider_keys.ciphertext, provider_keys.nonce, provider_keys.wrapped_key, provider_keys.master_key_id";

/// A column of the key select list that starts at `offset`.
fn at(offset: usize, index: usize) -> Column {
    Column { index: offset + index, name: NAMES[index] }
}

fn column<T, E: std::fmt::Display>(name: &str, parsed: std::result::Result<T, E>) -> Result<T> {
    parsed.map_err(|error| corrupt(&format!("provider_keys.{name}"), error))
}

fn key_from_row(row: &Row<'_>, offset: usize) -> Result<ProviderKeyRecord> {
    let at = |index| at(offset, index);
    Ok(ProviderKeyRecord {
        id: column("id", ProviderKeyId::parse(&row.text(at(0))?))?,
        provider: column("provider", ProviderName::parse(&row.text(at(1))?))?,
        base_url: column("base_url", row.optional_text(at(2))?.as_deref().map(BaseUrl::parse).transpose())?,
        description: column("description", Description::parse(&row.text(at(3))?))?,
        owner: column("owner_id", OwnerId::parse(&row.text(at(4))?))?,
        owner_name: column("owner_name", OwnerName::parse(&row.text(at(5))?))?,
        project: column("project_id", row.optional_text(at(6))?.as_deref().map(ProjectId::parse).transpose())?,
        enabled: row.integer(at(7))? == 1,
        balance: row.optional_integer(at(8))?.map(Microdollars::from_micros),
        metadata: column("metadata", Metadata::from_json_text(&row.text(at(9))?))?,
        masked: row.text(at(10))?,
        master_key_id: column("master_key_id", u32::try_from(row.integer(at(11))?))?,
        created_at: Timestamp::from_unix_micros(row.integer(at(12))?),
        updated_at: Timestamp::from_unix_micros(row.integer(at(13))?),
    })
}

fn sealed_from_row(row: &Row<'_>, offset: usize) -> Result<SealedKey> {
    let blob = |index: usize, name: &'static str| row.value::<Vec<u8>>(Column { index: offset + index, name });
    Ok(SealedKey {
        ciphertext: blob(0, "ciphertext")?,
        nonce: blob(1, "nonce")?,
        wrapped_key: blob(2, "wrapped_key")?,
        master_key_id: column(
            "master_key_id",
            u32::try_from(row.integer(Column { index: offset + 3, name: "master_key_id" })?),
        )?,
    })
}

fn fetch_key(connection: &Connection, id: &ProviderKeyId) -> Result<ProviderKeyRecord> {
    one(
        connection,
        "provider_key",
        &format!("SELECT {KEY_COLUMNS} FROM provider_keys WHERE id = ? AND deleted_at IS NULL"),
        [id.to_string()],
        |row| key_from_row(row, 0),
    )
}

fn check_project(connection: &Connection, project: Option<&ProjectId>) -> Result<()> {
    if let Some(project) = project {
        first(connection, "SELECT 1 FROM projects WHERE id = ?", [project.to_string()], |_| Ok(()))?
            .ok_or(StoreError::NotFound { entity: "project" })?;
    }
    Ok(())
}

fn micros(money: Option<Microdollars>) -> Option<i64> {
    money.map(Microdollars::micros)
}

#[async_trait]
impl ProviderKeyStore for SqliteStore {
    async fn insert_provider_key(&self, insert: &ProviderKeyInsert, audit: &AuditEvent) -> Result<ProviderKeyRecord> {
        let (insert, audit) = (insert.clone(), audit.clone());
        self.write(move |tx| {
            let key = &insert.key;
            fetch_owner(tx.connection, &key.owner).map_err(|error| match error {
                StoreError::NotFound { .. } => StoreError::NotFound { entity: "owner" },
                other => other,
            })?;
            check_project(tx.connection, key.project.as_ref())?;
            let at = insert.created_at.unix_micros();
            let sealed = &insert.sealed;
            execute(
                tx.connection,
                "INSERT INTO provider_keys (id, provider, base_url, description, owner_id, owner_name, project_id,
                     enabled, balance, metadata, masked, ciphertext, nonce, wrapped_key, master_key_id, created_at,
                     updated_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                params![
                    insert.id.to_string(),
                    key.provider.as_str(),
                    key.base_url.as_ref().map(BaseUrl::as_str),
                    key.description.as_str(),
                    key.owner.to_string(),
                    insert.owner_name.as_str(),
                    key.project.map(|id| id.to_string()),
                    micros(key.balance),
                    key.metadata.to_json_text(),
                    &insert.masked,
                    &sealed.ciphertext,
                    &sealed.nonce,
                    &sealed.wrapped_key,
                    i64::from(sealed.master_key_id),
                    at,
                    at,
                ],
            )?;
            let record = fetch_key(tx.connection, &insert.id)?;
            append(tx, &audit)?;
            Ok(record)
        })
        .await
    }

    async fn provider_key(&self, id: &ProviderKeyId) -> Result<ProviderKeyRecord> {
        let id = *id;
        self.point(move |connection| fetch_key(connection, &id)).await
    }

    async fn list_provider_keys(
        &self,
        filter: &ProviderKeyFilter,
        page: &PageRequest,
    ) -> Result<Page<ProviderKeyRecord>> {
        let before = match &page.cursor {
            Some(cursor) => ProviderKeyId::parse(cursor).map_err(|_| StoreError::InvalidCursor)?.to_string(),
            None => "~".to_owned(), // sorts after every `pk_…` id
        };
        let (filter, limit) = (filter.clone(), page.limit);
        let items = self
            .scan(move |connection| {
                collect(
                    connection,
                    &format!(
                        "SELECT {KEY_COLUMNS} FROM provider_keys
                         WHERE id < ?1 AND deleted_at IS NULL AND (?2 IS NULL OR owner_id = ?2)
                               AND (?3 IS NULL OR provider = ?3) AND (?4 IS NULL OR project_id = ?4)
                         ORDER BY id DESC LIMIT ?5"
                    ),
                    params![
                        before,
                        filter.owner.map(|id| id.to_string()),
                        filter.provider.as_ref().map(ProviderName::as_str),
                        filter.project.map(|id| id.to_string()),
                        i64::from(limit) + 1
                    ],
                    |row| key_from_row(row, 0),
                )
            })
            .await?;
        Ok(Page::from_overfetch(items, limit, |key| key.id.to_string()))
    }

    async fn update_provider_key(
        &self,
        id: &ProviderKeyId,
        patch: &ProviderKeyPatch,
        secret: Option<&NewSecret>,
        at: Timestamp,
        audit: &AuditEvent,
    ) -> Result<ProviderKeyRecord> {
        let (id, patch, secret, audit) = (*id, patch.clone(), secret.cloned(), audit.clone());
        self.write(move |tx| {
            fetch_key(tx.connection, &id)?;
            if let Some(project) = &patch.project {
                check_project(tx.connection, project.as_ref())?;
            }
            execute(
                tx.connection,
                "UPDATE provider_keys SET description = coalesce(?2, description), enabled = coalesce(?3, enabled),
                     balance = CASE WHEN ?4 THEN ?5 ELSE balance END,
                     base_url = CASE WHEN ?6 THEN ?7 ELSE base_url END,
                     project_id = CASE WHEN ?8 THEN ?9 ELSE project_id END,
                     metadata = coalesce(?10, metadata), updated_at = ?11
                 WHERE id = ?1",
                params![
                    id.to_string(),
                    patch.description.as_ref().map(Description::as_str),
                    patch.enabled,
                    patch.balance.is_some(),
                    micros(patch.balance.flatten()),
                    patch.base_url.is_some(),
                    patch.base_url.clone().flatten().as_ref().map(BaseUrl::as_str),
                    patch.project.is_some(),
                    patch.project.flatten().map(|project| project.to_string()),
                    patch.metadata.as_ref().map(Metadata::to_json_text),
                    at.unix_micros(),
                ],
            )?;
            if let Some(secret) = &secret {
                let sealed = &secret.sealed;
                execute(
                    tx.connection,
                    "UPDATE provider_keys SET masked = ?2, ciphertext = ?3, nonce = ?4, wrapped_key = ?5,
                         master_key_id = ?6 WHERE id = ?1",
                    params![
                        id.to_string(),
                        &secret.masked,
                        &sealed.ciphertext,
                        &sealed.nonce,
                        &sealed.wrapped_key,
                        i64::from(sealed.master_key_id)
                    ],
                )?;
            }
            if let Some(Some(project)) = &patch.project {
                execute(
                    tx.connection,
                    "UPDATE agents SET provider_key_id = NULL, updated_at = ?3
                     WHERE provider_key_id = ?1 AND project_id IS NOT ?2",
                    params![id.to_string(), project.to_string(), at.unix_micros()],
                )?;
            }
            let record = fetch_key(tx.connection, &id)?;
            append(tx, &audit)?;
            Ok(record)
        })
        .await
    }

    async fn delete_provider_key(&self, id: &ProviderKeyId, at: Timestamp, audit: &AuditEvent) -> Result<Vec<AgentId>> {
        let (id, audit) = (*id, audit.clone());
        self.write(move |tx| {
            fetch_key(tx.connection, &id)?;
            let agents = collect(
                tx.connection,
                "SELECT id FROM agents WHERE provider_key_id = ? ORDER BY id",
                [id.to_string()],
                |row| column("agents.id", AgentId::parse(&row.text(Column { index: 0, name: "id" })?)),
            )?;
            execute(
                tx.connection,
                "UPDATE agents SET provider_key_id = NULL, updated_at = ?2 WHERE provider_key_id = ?1",
                params![id.to_string(), at.unix_micros()],
            )?;
            execute(
                tx.connection,
                "UPDATE provider_keys SET enabled = 0, ciphertext = NULL, nonce = NULL, wrapped_key = NULL,
                     master_key_id = NULL, deleted_at = ?2, updated_at = ?2
                 WHERE id = ?1",
                params![id.to_string(), at.unix_micros()],
            )?;
            append(tx, &audit)?;
            Ok(agents)
        })
        .await
    }

    async fn delivery(&self, agent: &AgentId) -> Result<Option<Delivery>> {
        let agent = *agent;
        self.point(move |connection| {
            let found = first(
                connection,
                &format!(
                    "SELECT {AGENT_COLUMNS}, {KEY_COLUMNS}, {SEALED_COLUMNS} FROM agents
                     LEFT JOIN provider_keys ON provider_keys.id = agents.provider_key_id
                          AND provider_keys.deleted_at IS NULL AND provider_keys.enabled = 1
                     WHERE agents.id = ? AND agents.deleted_at IS NULL"
                ),
                [agent.to_string()],
                |row| {
                    let record = agent_from_row(row)?;
                    let key_id: Option<String> = row.value(Column { index: AGENT_COLUMN_COUNT, name: "id" })?;
                    if key_id.is_none() {
                        return Ok(None);
                    }
                    let key = key_from_row(row, AGENT_COLUMN_COUNT)?;
                    let sealed = sealed_from_row(row, AGENT_COLUMN_COUNT + NAMES.len())?;
                    Ok(Some(Delivery { agent: record, key, sealed }))
                },
            )?;
            found.ok_or(StoreError::NotFound { entity: "agent" })
        })
        .await
    }

    async fn sealed_provider_keys(&self) -> Result<Vec<(ProviderKeyId, SealedKey)>> {
        self.scan(|connection| {
            collect(
                connection,
                &format!(
                    "SELECT provider_keys.id, {SEALED_COLUMNS} FROM provider_keys WHERE deleted_at IS NULL ORDER BY id"
                ),
                [],
                |row| {
                    let id = column("id", ProviderKeyId::parse(&row.text(Column { index: 0, name: "id" })?))?;
                    Ok((id, sealed_from_row(row, 1)?))
                },
            )
        })
        .await
    }

    async fn rewrap_provider_keys(&self, rewraps: &[Rewrap], audit: &AuditEvent) -> Result<u64> {
        let (rewraps, mut audit) = (rewraps.to_vec(), audit.clone());
        self.write(move |tx| {
            let mut changed = 0;
            for rewrap in &rewraps {
                changed += execute(
                    tx.connection,
                    "UPDATE provider_keys SET wrapped_key = ?3, master_key_id = ?4
                     WHERE id = ?1 AND master_key_id = ?2 AND deleted_at IS NULL",
                    params![
                        rewrap.id.to_string(),
                        i64::from(rewrap.from),
                        &rewrap.wrapped_key,
                        i64::from(rewrap.master_key_id)
                    ],
                )?;
            }
            let after = audit.after.take().unwrap_or_else(|| serde_json::json!({}));
            audit.after = Some(serde_json::json!({ "rewrapped": changed, "detail": after }));
            append(tx, &audit)?;
            Ok(changed)
        })
        .await
    }

    async fn provider_keys_by_master_key(&self) -> Result<Vec<(u32, u64)>> {
        self.scan(|connection| {
            collect(
                connection,
                "SELECT master_key_id, count(*) FROM provider_keys WHERE deleted_at IS NULL
                 GROUP BY master_key_id ORDER BY master_key_id",
                [],
                |row| {
                    let id = column("master_key_id", u32::try_from(row.integer(Column { index: 0, name: "id" })?))?;
                    let rows = u64::try_from(row.integer(Column { index: 1, name: "count" })?).unwrap_or(0);
                    Ok((id, rows))
                },
            )
        })
        .await
    }
}
