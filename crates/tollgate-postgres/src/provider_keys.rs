//! The provider-key vault on PostgreSQL: metadata and ciphertext rows, assignment, the delivery
//! read and master-key re-wrapping. The plaintext never reaches this module.

use async_trait::async_trait;
use sqlx::PgConnection;
use sqlx::postgres::PgRow;
use tollgate_store::{
    Delivery, NewSecret, Page, PageRequest, ProviderKeyFilter, ProviderKeyInsert, ProviderKeyStore, Result, Rewrap,
    SealedKey, StoreError,
};
use tollgate_types::{
    AgentId, AuditEvent, BaseUrl, Description, Metadata, Microdollars, OwnerId, OwnerName, ProjectId, ProviderKeyId,
    ProviderKeyPatch, ProviderKeyRecord, ProviderName, Timestamp,
};

use crate::PgStore;
use crate::accounts::fetch_owner;
use crate::agents::{AGENT_COLUMNS, agent_from_row};
use crate::error::PgResultExt;
use crate::rows::{get, parsed, time};
use crate::store::retrying;

/// The key columns every read selects, each aliased `key_<column>` (they are joined in deliveries).
const KEY_COLUMNS: &str = "provider_keys.id AS key_id, provider_keys.provider AS key_provider, \
     provider_keys.base_url AS key_base_url, provider_keys.description AS key_description, \
     provider_keys.owner_id AS key_owner_id, provider_keys.owner_name AS key_owner_name, \
     provider_keys.project_id AS key_project_id, provider_keys.enabled AS key_enabled, \
     provider_keys.balance AS key_balance, provider_keys.metadata::text AS key_metadata, \
     provider_keys.masked AS key_masked, provider_keys.master_key_id AS key_master_key_id, \
     provider_keys.created_at AS key_created_at, provider_keys.updated_at AS key_updated_at";

const SEALED_COLUMNS: &str = "provider_keys.ciphertext AS sealed_ciphertext, provider_keys.nonce AS sealed_nonce, \
     provider_keys.wrapped_key AS sealed_wrapped_key, provider_keys.master_key_id AS sealed_master_key_id";

const TABLE: &str = "provider_keys";

fn master_key_id(row: &PgRow, column: &str) -> Result<u32> {
    parsed(TABLE, "master_key_id", u32::try_from(get::<i64>(row, TABLE, column)?))
}

fn key_from_row(row: &PgRow) -> Result<ProviderKeyRecord> {
    let text = |column: &str| -> Result<String> { get(row, TABLE, &format!("key_{column}")) };
    let optional = |column: &str| -> Result<Option<String>> { get(row, TABLE, &format!("key_{column}")) };
    Ok(ProviderKeyRecord {
        id: parsed(TABLE, "id", ProviderKeyId::parse(&text("id")?))?,
        provider: parsed(TABLE, "provider", ProviderName::parse(&text("provider")?))?,
        base_url: parsed(TABLE, "base_url", optional("base_url")?.as_deref().map(BaseUrl::parse).transpose())?,
        description: parsed(TABLE, "description", Description::parse(&text("description")?))?,
        owner: parsed(TABLE, "owner_id", OwnerId::parse(&text("owner_id")?))?,
        owner_name: parsed(TABLE, "owner_name", OwnerName::parse(&text("owner_name")?))?,
        project: parsed(TABLE, "project_id", optional("project_id")?.as_deref().map(ProjectId::parse).transpose())?,
        enabled: get(row, TABLE, "key_enabled")?,
        balance: get::<Option<i64>>(row, TABLE, "key_balance")?.map(Microdollars::from_micros),
        metadata: parsed(TABLE, "metadata", Metadata::from_json_text(&text("metadata")?))?,
        masked: text("masked")?,
        master_key_id: master_key_id(row, "key_master_key_id")?,
        created_at: time(row, TABLE, "key_created_at")?,
        updated_at: time(row, TABLE, "key_updated_at")?,
    })
}

fn sealed_from_row(row: &PgRow) -> Result<SealedKey> {
    Ok(SealedKey {
        ciphertext: get(row, TABLE, "sealed_ciphertext")?,
        nonce: get(row, TABLE, "sealed_nonce")?,
        wrapped_key: get(row, TABLE, "sealed_wrapped_key")?,
        master_key_id: master_key_id(row, "sealed_master_key_id")?,
    })
}

/// The provider key `id`, not deleted (locked for the transaction with `lock`), or `NotFound`.
async fn fetch_key(connection: &mut PgConnection, id: &ProviderKeyId, lock: bool) -> Result<ProviderKeyRecord> {
    let sql = format!(
        "SELECT {KEY_COLUMNS} FROM provider_keys WHERE id = $1 AND deleted_at IS NULL{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    let row = sqlx::query(&sql).bind(id.to_string()).fetch_optional(connection).await.store()?;
    row.as_ref().map(key_from_row).transpose()?.ok_or(StoreError::NotFound { entity: "provider_key" })
}

async fn check_project(connection: &mut PgConnection, project: Option<&ProjectId>) -> Result<()> {
    if let Some(project) = project {
        let found: Option<i32> = sqlx::query_scalar("SELECT 1 FROM projects WHERE id = $1")
            .bind(project.to_string())
            .fetch_optional(connection)
            .await
            .store()?;
        found.ok_or(StoreError::NotFound { entity: "project" })?;
    }
    Ok(())
}

fn micros(money: Option<Microdollars>) -> Option<i64> {
    money.map(Microdollars::micros)
}

async fn insert_key(store: &PgStore, insert: &ProviderKeyInsert, audit: &AuditEvent) -> Result<ProviderKeyRecord> {
    let mut tx = store.begin().await?;
    let key = &insert.key;
    fetch_owner(tx.conn(), &key.owner).await?;
    check_project(tx.conn(), key.project.as_ref()).await?;
    let sealed = &insert.sealed;
    sqlx::query(
        "INSERT INTO provider_keys (id, provider, base_url, description, owner_id, owner_name, project_id,
             enabled, balance, metadata, masked, ciphertext, nonce, wrapped_key, master_key_id, created_at,
             updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, true, $8, $9::json, $10, $11, $12, $13, $14, $15, $15)",
    )
    .bind(insert.id.to_string())
    .bind(key.provider.as_str())
    .bind(key.base_url.as_ref().map(BaseUrl::as_str))
    .bind(key.description.as_str())
    .bind(key.owner.to_string())
    .bind(insert.owner_name.as_str())
    .bind(key.project.map(|id| id.to_string()))
    .bind(micros(key.balance))
    .bind(key.metadata.to_json_text())
    .bind(&insert.masked)
    .bind(&sealed.ciphertext)
    .bind(&sealed.nonce)
    .bind(&sealed.wrapped_key)
    .bind(i64::from(sealed.master_key_id))
    .bind(insert.created_at.unix_micros())
    .execute(tx.conn())
    .await
    .store()?;
    let record = fetch_key(tx.conn(), &insert.id, false).await?;
    tx.audit(audit.clone());
    tx.commit().await?;
    Ok(record)
}

async fn update_key(
    store: &PgStore,
    id: &ProviderKeyId,
    patch: &ProviderKeyPatch,
    secret: Option<&NewSecret>,
    at: Timestamp,
    audit: &AuditEvent,
) -> Result<ProviderKeyRecord> {
    let mut tx = store.begin().await?;
    fetch_key(tx.conn(), id, true).await?;
    if let Some(project) = &patch.project {
        check_project(tx.conn(), project.as_ref()).await?;
    }
    sqlx::query(
        "UPDATE provider_keys SET description = coalesce($2, description), enabled = coalesce($3, enabled),
             balance = CASE WHEN $4 THEN $5 ELSE balance END,
             base_url = CASE WHEN $6 THEN $7 ELSE base_url END,
             project_id = CASE WHEN $8 THEN $9 ELSE project_id END,
             metadata = coalesce($10::json, metadata), updated_at = $11
         WHERE id = $1",
    )
    .bind(id.to_string())
    .bind(patch.description.as_ref().map(Description::as_str))
    .bind(patch.enabled)
    .bind(patch.balance.is_some())
    .bind(micros(patch.balance.flatten()))
    .bind(patch.base_url.is_some())
    .bind(patch.base_url.clone().flatten().as_ref().map(BaseUrl::as_str).map(str::to_owned))
    .bind(patch.project.is_some())
    .bind(patch.project.flatten().map(|project| project.to_string()))
    .bind(patch.metadata.as_ref().map(Metadata::to_json_text))
    .bind(at.unix_micros())
    .execute(tx.conn())
    .await
    .store()?;
    if let Some(secret) = secret {
        let sealed = &secret.sealed;
        sqlx::query(
            "UPDATE provider_keys SET masked = $2, ciphertext = $3, nonce = $4, wrapped_key = $5, master_key_id = $6
             WHERE id = $1",
        )
        .bind(id.to_string())
        .bind(&secret.masked)
        .bind(&sealed.ciphertext)
        .bind(&sealed.nonce)
        .bind(&sealed.wrapped_key)
        .bind(i64::from(sealed.master_key_id))
        .execute(tx.conn())
        .await
        .store()?;
    }
    if let Some(Some(project)) = &patch.project {
        sqlx::query(
            "UPDATE agents SET provider_key_id = NULL, updated_at = $3
             WHERE provider_key_id = $1 AND project_id IS DISTINCT FROM $2",
        )
        .bind(id.to_string())
        .bind(project.to_string())
        .bind(at.unix_micros())
        .execute(tx.conn())
        .await
        .store()?;
    }
    let record = fetch_key(tx.conn(), id, false).await?;
    tx.audit(audit.clone());
    tx.commit().await?;
    Ok(record)
}

async fn delete_key(store: &PgStore, id: &ProviderKeyId, at: Timestamp, audit: &AuditEvent) -> Result<Vec<AgentId>> {
    let mut tx = store.begin().await?;
    fetch_key(tx.conn(), id, true).await?;
    let agents: Vec<String> = sqlx::query_scalar(
        "UPDATE agents SET provider_key_id = NULL, updated_at = $2 WHERE provider_key_id = $1 RETURNING id",
    )
    .bind(id.to_string())
    .bind(at.unix_micros())
    .fetch_all(tx.conn())
    .await
    .store()?;
    sqlx::query(
        "UPDATE provider_keys SET enabled = false, ciphertext = NULL, nonce = NULL, wrapped_key = NULL,
             master_key_id = NULL, deleted_at = $2, updated_at = $2
         WHERE id = $1",
    )
    .bind(id.to_string())
    .bind(at.unix_micros())
    .execute(tx.conn())
    .await
    .store()?;
    tx.audit(audit.clone());
    tx.commit().await?;
    let mut agents =
        agents.iter().map(|agent| parsed("agents", "id", AgentId::parse(agent))).collect::<Result<Vec<_>>>()?;
    agents.sort();
    Ok(agents)
}

async fn rewrap(store: &PgStore, rewraps: &[Rewrap], audit: &AuditEvent) -> Result<u64> {
    let mut tx = store.begin().await?;
    let mut rewraps: Vec<&Rewrap> = rewraps.iter().collect();
    rewraps.sort_by_key(|rewrap| rewrap.id.to_string());
    let mut changed = 0;
    for rewrap in rewraps {
        changed += sqlx::query(
            "UPDATE provider_keys SET wrapped_key = $3, master_key_id = $4
             WHERE id = $1 AND master_key_id = $2 AND deleted_at IS NULL",
        )
        .bind(rewrap.id.to_string())
        .bind(i64::from(rewrap.from))
        .bind(&rewrap.wrapped_key)
        .bind(i64::from(rewrap.master_key_id))
        .execute(tx.conn())
        .await
        .store()?
        .rows_affected();
    }
    let mut event = audit.clone();
    let after = event.after.take().unwrap_or_else(|| serde_json::json!({}));
    event.after = Some(serde_json::json!({ "rewrapped": changed, "detail": after }));
    tx.audit(event);
    tx.commit().await?;
    Ok(changed)
}

#[async_trait]
impl ProviderKeyStore for PgStore {
    async fn insert_provider_key(&self, insert: &ProviderKeyInsert, audit: &AuditEvent) -> Result<ProviderKeyRecord> {
        retrying(move || insert_key(self, insert, audit)).await
    }

    async fn provider_key(&self, id: &ProviderKeyId) -> Result<ProviderKeyRecord> {
        let mut connection = self.pool().acquire().await.store()?;
        fetch_key(&mut connection, id, false).await
    }

    async fn list_provider_keys(
        &self,
        filter: &ProviderKeyFilter,
        page: &PageRequest,
    ) -> Result<Page<ProviderKeyRecord>> {
        let before = match &page.cursor {
            Some(cursor) => ProviderKeyId::parse(cursor).map_err(|_| StoreError::InvalidCursor)?.to_string(),
            None => "~".to_owned(), // sorts after every `pk_…` id (ids are in the "C" collation)
        };
        let rows = sqlx::query(&format!(
            "SELECT {KEY_COLUMNS} FROM provider_keys
             WHERE id < $1 AND deleted_at IS NULL AND ($2::text IS NULL OR owner_id = $2)
                   AND ($3::text IS NULL OR provider = $3) AND ($4::text IS NULL OR project_id = $4)
             ORDER BY id DESC LIMIT $5"
        ))
        .bind(before)
        .bind(filter.owner.map(|id| id.to_string()))
        .bind(filter.provider.as_ref().map(ProviderName::as_str))
        .bind(filter.project.map(|id| id.to_string()))
        .bind(i64::from(page.limit) + 1)
        .fetch_all(self.pool())
        .await
        .store()?;
        let items = rows.iter().map(key_from_row).collect::<Result<Vec<_>>>()?;
        Ok(Page::from_overfetch(items, page.limit, |key| key.id.to_string()))
    }

    async fn update_provider_key(
        &self,
        id: &ProviderKeyId,
        patch: &ProviderKeyPatch,
        secret: Option<&NewSecret>,
        at: Timestamp,
        audit: &AuditEvent,
    ) -> Result<ProviderKeyRecord> {
        retrying(move || update_key(self, id, patch, secret, at, audit)).await
    }

    async fn delete_provider_key(&self, id: &ProviderKeyId, at: Timestamp, audit: &AuditEvent) -> Result<Vec<AgentId>> {
        retrying(move || delete_key(self, id, at, audit)).await
    }

    async fn delivery(&self, agent: &AgentId) -> Result<Option<Delivery>> {
        let row = sqlx::query(&format!(
            "SELECT {AGENT_COLUMNS}, {KEY_COLUMNS}, {SEALED_COLUMNS} FROM agents
             LEFT JOIN provider_keys ON provider_keys.id = agents.provider_key_id
                  AND provider_keys.deleted_at IS NULL AND provider_keys.enabled
             WHERE agents.id = $1 AND agents.deleted_at IS NULL"
        ))
        .bind(agent.to_string())
        .fetch_optional(self.pool())
        .await
        .store()?
        .ok_or(StoreError::NotFound { entity: "agent" })?;
        let record = agent_from_row(&row)?;
        if get::<Option<String>>(&row, TABLE, "key_id")?.is_none() {
            return Ok(None);
        }
        Ok(Some(Delivery { agent: record, key: key_from_row(&row)?, sealed: sealed_from_row(&row)? }))
    }

    async fn sealed_provider_keys(&self) -> Result<Vec<(ProviderKeyId, SealedKey)>> {
        let rows = sqlx::query(&format!(
            "SELECT provider_keys.id AS key_id, {SEALED_COLUMNS} FROM provider_keys WHERE deleted_at IS NULL ORDER BY id"
        ))
        .fetch_all(self.pool())
        .await
        .store()?;
        rows.iter()
            .map(|row| {
                let id = parsed(TABLE, "id", ProviderKeyId::parse(&get::<String>(row, TABLE, "key_id")?))?;
                Ok((id, sealed_from_row(row)?))
            })
            .collect()
    }

    async fn rewrap_provider_keys(&self, rewraps: &[Rewrap], audit: &AuditEvent) -> Result<u64> {
        retrying(move || rewrap(self, rewraps, audit)).await
    }

    async fn provider_keys_by_master_key(&self) -> Result<Vec<(u32, u64)>> {
        let rows: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT master_key_id, count(*) FROM provider_keys WHERE deleted_at IS NULL
             GROUP BY master_key_id ORDER BY master_key_id",
        )
        .fetch_all(self.pool())
        .await
        .store()?;
        rows.into_iter()
            .map(|(id, rows)| {
                let id = parsed(TABLE, "master_key_id", u32::try_from(id))?;
                Ok((id, u64::try_from(rows).unwrap_or(0)))
            })
            .collect()
    }
}
