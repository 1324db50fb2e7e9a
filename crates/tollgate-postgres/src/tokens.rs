//! Token storage on PostgreSQL.

use async_trait::async_trait;
use sqlx::PgConnection;
use sqlx::postgres::PgRow;
use tollgate_store::{
    HashMatch, Page, PageRequest, Result, SecretRotation, StatusFilter, StoreError, TokenFilter, TokenInsert,
    TokenLookup, TokenStore,
};
use tollgate_types::{
    AgentBinding, AgentId, AgentStatus, AuditEvent, Description, Imposed, IpAllowList, KeyId, OwnerId, OwnerName,
    Permission, ProjectId, ProjectName, Role, Scope, Timestamp, TokenHash, TokenId, TokenName, TokenPatch, TokenRecord,
    ToolList,
};

use crate::PgStore;
use crate::audit::delete_before_with_audit;
use crate::error::{PgResultExt, corrupt};
use crate::rows::{get, json, json_text, optional_time, parsed, time};
use crate::store::{PgTx, retrying};

/// The token columns every read selects (JSON lists as text).
macro_rules! token_columns {
    () => {
        "id, name, owner_id, owner_name, owner_role, project_id, project_name, permission, scopes::text AS scopes,
        allowed_tools::text AS allowed_tools, ip_allow::text AS ip_allow, imposed, expires_at, description,
        display_hint, key_id, created_at, updated_at, last_used_at, revoked_at, revoke_reason, rotated_at,
        previous_valid_until, agent_id, agent_status"
    };
}

pub(crate) const COLUMNS: &str = token_columns!();

/// The verify lookup: the current secret's hash, else a previous secret still inside its grace period.
/// `$1` the hash, `$2` now; the `current` column tells which matched.
const BY_HASH: &str = concat!(
    "SELECT ",
    token_columns!(),
    ", true AS current FROM tokens WHERE hash = $1
     UNION ALL
     SELECT ",
    token_columns!(),
    ", false AS current FROM tokens WHERE previous_hash = $1 AND previous_valid_until > $2
     LIMIT 1"
);

const TABLE: &str = "tokens";

fn text_list(row: &PgRow, column: &str) -> Result<Vec<String>> {
    json(row, TABLE, column)
}

pub(crate) fn record_from_row(row: &PgRow) -> Result<TokenRecord> {
    let text = |column: &str| -> Result<String> { get(row, TABLE, column) };
    let optional = |column: &str| -> Result<Option<String>> { get(row, TABLE, column) };
    let imposed = u8::try_from(get::<i64>(row, TABLE, "imposed")?).ok().and_then(Imposed::from_bits);
    let agent = match (optional("agent_id")?, optional("agent_status")?) {
        (Some(id), Some(status)) => Some(AgentBinding {
            id: parsed(TABLE, "agent_id", AgentId::parse(&id))?,
            status: parsed(TABLE, "agent_status", status.parse::<AgentStatus>())?,
        }),
        _ => None,
    };
    Ok(TokenRecord {
        id: parsed(TABLE, "id", TokenId::parse(&text("id")?))?,
        name: parsed(TABLE, "name", TokenName::parse(&text("name")?))?,
        owner: parsed(TABLE, "owner_id", OwnerId::parse(&text("owner_id")?))?,
        owner_name: parsed(TABLE, "owner_name", OwnerName::parse(&text("owner_name")?))?,
        owner_role: parsed(TABLE, "owner_role", optional("owner_role")?.map(|role| role.parse::<Role>()).transpose())?,
        project: parsed(TABLE, "project_id", optional("project_id")?.as_deref().map(ProjectId::parse).transpose())?,
        project_name: parsed(
            TABLE,
            "project_name",
            optional("project_name")?.as_deref().map(ProjectName::parse).transpose(),
        )?,
        permission: parsed(TABLE, "permission", text("permission")?.parse::<Permission>())?,
        scopes: parsed(TABLE, "scopes", text_list(row, "scopes")?.iter().map(|scope| Scope::parse(scope)).collect())?,
        allowed_tools: parsed(TABLE, "allowed_tools", ToolList::parse(&text_list(row, "allowed_tools")?))?,
        ip_allow: parsed(TABLE, "ip_allow", IpAllowList::parse(&text_list(row, "ip_allow")?))?,
        imposed: imposed.ok_or_else(|| corrupt("tokens.imposed", "unknown bits"))?,
        expires_at: optional_time(row, TABLE, "expires_at")?,
        description: parsed(TABLE, "description", Description::parse(&text("description")?))?,
        display_hint: text("display_hint")?,
        key_id: KeyId(parsed(TABLE, "key_id", u32::try_from(get::<i64>(row, TABLE, "key_id")?))?),
        created_at: time(row, TABLE, "created_at")?,
        updated_at: time(row, TABLE, "updated_at")?,
        last_used_at: optional_time(row, TABLE, "last_used_at")?,
        revoked_at: optional_time(row, TABLE, "revoked_at")?,
        revoke_reason: optional("revoke_reason")?,
        rotated_at: optional_time(row, TABLE, "rotated_at")?,
        previous_valid_until: optional_time(row, TABLE, "previous_valid_until")?,
        agent,
    })
}

/// The token with `id`, locked for the rest of the transaction when `lock` says so.
pub(crate) async fn fetch(connection: &mut PgConnection, id: &TokenId, lock: bool) -> Result<TokenRecord> {
    let sql = format!("SELECT {COLUMNS} FROM tokens WHERE id = $1{}", if lock { " FOR UPDATE" } else { "" });
    let row = sqlx::query(&sql).bind(id.to_string()).fetch_optional(connection).await.store()?;
    row.as_ref().map(record_from_row).transpose()?.ok_or(StoreError::NotFound { entity: "token" })
}

/// Revokes tokens inside a transaction (they must exist); `reason` is kept on the rows.
async fn revoke_ids(tx: &mut PgTx, ids: &[String], reason: Option<&str>, at: Timestamp) -> Result<()> {
    sqlx::query(
        "UPDATE tokens SET revoked_at = $1, revoke_reason = $2, updated_at = $1, previous_hash = NULL,
            previous_key_id = NULL, previous_valid_until = NULL
         WHERE id = ANY($3)",
    )
    .bind(at.unix_micros())
    .bind(reason)
    .bind(ids)
    .execute(tx.conn())
    .await
    .store()
    .map(drop)
}

/// Revokes every live token matching `condition` (over `parameters` as `$1`, `$2`, …), locking them
/// in id order, and queues a `token.revoke` event for each after the caller's own event:
/// suspensions and removals that take tokens with them.
pub(crate) async fn revoke_where(
    tx: &mut PgTx,
    condition: &str,
    parameters: &[String],
    reason: &str,
    audit: &AuditEvent,
) -> Result<Vec<TokenId>> {
    let sql = format!("SELECT {COLUMNS} FROM tokens WHERE revoked_at IS NULL AND {condition} ORDER BY id FOR UPDATE");
    let mut query = sqlx::query(&sql);
    for parameter in parameters {
        query = query.bind(parameter);
    }
    let rows = query.fetch_all(tx.conn()).await.store()?;
    let tokens = rows.iter().map(record_from_row).collect::<Result<Vec<_>>>()?;
    if tokens.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<String> = tokens.iter().map(|token| token.id.to_string()).collect();
    revoke_ids(tx, &ids, Some(reason), audit.at).await?;
    let mut revoked = Vec::with_capacity(tokens.len());
    for token in tokens {
        let mut event = AuditEvent::new(audit.actor.clone(), "token.revoke", token.id, audit.at);
        event.before = serde_json::to_value(&token).ok();
        event.reason = Some(reason.to_owned());
        event.ip = audit.ip;
        tx.audit(event);
        revoked.push(token.id);
    }
    Ok(revoked)
}

/// Inserts a token row (the schema's triggers check its owner and project).
async fn insert_row(tx: &mut PgTx, insert: &TokenInsert, agent_status: Option<AgentStatus>) -> Result<()> {
    let token = &insert.token;
    sqlx::query(
        "INSERT INTO tokens (id, name, owner_id, owner_name, owner_role, project_id, project_name, permission,
            scopes, allowed_tools, ip_allow, imposed, expires_at, description, hash, key_id, display_hint,
            created_at, updated_at, agent_id, agent_status)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::json, $10::json, $11::json, $12, $13, $14, $15, $16, $17,
            $18, $18, $19, $20)",
    )
    .bind(insert.id.to_string())
    .bind(token.name.as_str())
    .bind(token.owner.to_string())
    .bind(insert.owner_name.as_str())
    .bind(insert.owner_role.map(Role::as_str))
    .bind(token.project.map(|id| id.to_string()))
    .bind(insert.project_name.as_ref().map(ProjectName::as_str))
    .bind(token.permission.as_str())
    .bind(json_text(&token.scopes))
    .bind(json_text(&token.allowed_tools))
    .bind(json_text(&token.ip_allow))
    .bind(i64::from(insert.imposed.bits()))
    .bind(token.expires_at.map(Timestamp::unix_micros))
    .bind(token.description.as_str())
    .bind(insert.hash.as_bytes().as_slice())
    .bind(i64::from(insert.key_id.0))
    .bind(&insert.display_hint)
    .bind(insert.created_at.unix_micros())
    .bind(insert.agent.map(|id| id.to_string()))
    .bind(agent_status.map(AgentStatus::as_str))
    .execute(tx.conn())
    .await
    .store()
    .map(drop)
}

#[async_trait]
impl TokenStore for PgStore {
    async fn insert_token(&self, insert: &TokenInsert, audit: &AuditEvent) -> Result<TokenRecord> {
        retrying(move || async move {
            let mut tx = self.begin().await?;
            let agent_status = match &insert.agent {
                Some(agent) => Some(crate::agents::status_for_credential(tx.conn(), agent).await?),
                None => None,
            };
            insert_row(&mut tx, insert, agent_status).await?;
            tx.audit(audit.clone());
            tx.commit().await?;
            Ok(insert.record(agent_status.unwrap_or(AgentStatus::Active)))
        })
        .await
    }

    async fn token_by_hash(&self, hash: &TokenHash, now: Timestamp) -> Result<Option<TokenLookup>> {
        let row = sqlx::query(BY_HASH)
            .bind(hash.as_bytes().as_slice())
            .bind(now.unix_micros())
            .fetch_optional(self.pool())
            .await
            .store()?;
        let Some(row) = row else { return Ok(None) };
        let current: bool = get(&row, TABLE, "current")?;
        let matched = if current { HashMatch::Current } else { HashMatch::Previous };
        Ok(Some(TokenLookup { record: record_from_row(&row)?, matched }))
    }

    async fn token(&self, id: &TokenId) -> Result<TokenRecord> {
        let mut connection = self.pool().acquire().await.store()?;
        fetch(&mut connection, id, false).await
    }

    async fn list_tokens(&self, filter: &TokenFilter, page: &PageRequest, now: Timestamp) -> Result<Page<TokenRecord>> {
        let before = match &page.cursor {
            Some(cursor) => TokenId::parse(cursor).map_err(|_| StoreError::InvalidCursor)?.to_string(),
            None => "~".to_owned(), // sorts after every `tok_…` id (ids are in the "C" collation)
        };
        let status = match filter.status {
            StatusFilter::Active => "revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $4)",
            StatusFilter::Revoked => "revoked_at IS NOT NULL AND $4::bigint IS NOT NULL",
            StatusFilter::Expired => "revoked_at IS NULL AND expires_at <= $4",
            StatusFilter::All => "$4::bigint IS NOT NULL",
        };
        let sql = format!(
            "SELECT {COLUMNS} FROM tokens
             WHERE id < $1 AND ($2::text IS NULL OR owner_id = $2) AND ($3::text IS NULL OR project_id = $3)
                   AND {status} AND agent_id IS NOT DISTINCT FROM $6
             ORDER BY id DESC LIMIT $5"
        );
        let rows = sqlx::query(&sql)
            .bind(before)
            .bind(filter.owner.map(|id| id.to_string()))
            .bind(filter.project.map(|id| id.to_string()))
            .bind(now.unix_micros())
            .bind(i64::from(page.limit) + 1)
            .bind(filter.agent.map(|id| id.to_string()))
            .fetch_all(self.pool())
            .await
            .store()?;
        let items = rows.iter().map(record_from_row).collect::<Result<Vec<_>>>()?;
        Ok(Page::from_overfetch(items, page.limit, |record| record.id.to_string()))
    }

    async fn revoke_token(&self, id: &TokenId, reason: Option<&str>, audit: &AuditEvent) -> Result<TokenRecord> {
        retrying(move || async move {
            let mut tx = self.begin().await?;
            let current = fetch(tx.conn(), id, true).await?;
            if current.revoked_at.is_some() {
                tx.rollback().await?;
                return Ok(current);
            }
            revoke_ids(&mut tx, &[id.to_string()], reason, audit.at).await?;
            let record = fetch(tx.conn(), id, false).await?;
            tx.audit(audit.clone());
            tx.commit().await?;
            Ok(record)
        })
        .await
    }

    async fn rotate_token(&self, rotation: &SecretRotation, audit: &AuditEvent) -> Result<TokenRecord> {
        retrying(move || async move {
            let mut tx = self.begin().await?;
            let current = fetch(tx.conn(), &rotation.id, true).await?;
            if current.revoked_at.is_some() {
                return Err(StoreError::Conflict("token is revoked".to_owned()));
            }
            // A grace period that has already ended keeps no previous secret at all.
            let grace = rotation.previous_valid_until.filter(|until| *until > rotation.at);
            sqlx::query(
                "UPDATE tokens SET
                    previous_hash = CASE WHEN $1::bigint IS NULL THEN NULL ELSE hash END,
                    previous_key_id = CASE WHEN $1::bigint IS NULL THEN NULL ELSE key_id END,
                    previous_valid_until = $1,
                    hash = $2, key_id = $3, display_hint = $4, rotated_at = $5, updated_at = $5
                 WHERE id = $6 AND revoked_at IS NULL",
            )
            .bind(grace.map(Timestamp::unix_micros))
            .bind(rotation.hash.as_bytes().as_slice())
            .bind(i64::from(rotation.key_id.0))
            .bind(&rotation.display_hint)
            .bind(rotation.at.unix_micros())
            .bind(rotation.id.to_string())
            .execute(tx.conn())
            .await
            .store()?;
            let record = fetch(tx.conn(), &rotation.id, false).await?;
            tx.audit(audit.clone());
            tx.commit().await?;
            Ok(record)
        })
        .await
    }

    async fn update_token(
        &self,
        id: &TokenId,
        patch: &TokenPatch,
        at: Timestamp,
        audit: &AuditEvent,
    ) -> Result<TokenRecord> {
        retrying(move || async move {
            let mut tx = self.begin().await?;
            let current = fetch(tx.conn(), id, true).await?;
            if current.revoked_at.is_some() {
                return Err(StoreError::Conflict("token is revoked".to_owned()));
            }
            let expires_at = patch.expires_at.unwrap_or(current.expires_at);
            sqlx::query(
                "UPDATE tokens SET name = $1, description = $2, allowed_tools = $3::json, ip_allow = $4::json,
                    expires_at = $5, updated_at = $6, imposed = imposed | $7
                 WHERE id = $8",
            )
            .bind(patch.name.as_ref().unwrap_or(&current.name).as_str())
            .bind(patch.description.as_ref().unwrap_or(&current.description).as_str())
            .bind(json_text(patch.allowed_tools.as_ref().unwrap_or(&current.allowed_tools)))
            .bind(json_text(patch.ip_allow.as_ref().unwrap_or(&current.ip_allow)))
            .bind(expires_at.map(Timestamp::unix_micros))
            .bind(at.unix_micros())
            .bind(i64::from(patch.impose.bits()))
            .bind(id.to_string())
            .execute(tx.conn())
            .await
            .store()?;
            let record = fetch(tx.conn(), id, false).await?;
            tx.audit(audit.clone());
            tx.commit().await?;
            Ok(record)
        })
        .await
    }

    async fn touch_tokens(&self, uses: &[(TokenId, Timestamp)]) -> Result<()> {
        if uses.is_empty() {
            return Ok(());
        }
        // The latest use per token, in id order (so concurrent touches lock rows in one order).
        let mut latest: std::collections::BTreeMap<String, i64> = std::collections::BTreeMap::new();
        for (id, at) in uses {
            let slot = latest.entry(id.to_string()).or_insert(i64::MIN);
            *slot = (*slot).max(at.unix_micros());
        }
        let (ids, times): (Vec<String>, Vec<i64>) = latest.into_iter().unzip();
        let (ids, times) = (&ids, &times);
        retrying(move || async move {
            sqlx::query(
                "UPDATE tokens SET last_used_at = used.at
                 FROM unnest($1::text[], $2::bigint[]) AS used (id, at)
                 WHERE tokens.id = used.id AND (tokens.last_used_at IS NULL OR tokens.last_used_at < used.at)",
            )
            .bind(ids)
            .bind(times)
            .execute(self.pool())
            .await
            .store()
            .map(drop)
        })
        .await
    }

    async fn delete_inactive_tokens(&self, cutoff: Timestamp, audit: &AuditEvent) -> Result<u64> {
        let sql = "DELETE FROM tokens WHERE revoked_at < $1 OR (revoked_at IS NULL AND expires_at < $1)";
        delete_before_with_audit(self, sql, cutoff, audit).await
    }
}
