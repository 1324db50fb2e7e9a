//! Token storage on SQLite.

use async_trait::async_trait;
use rusqlite::{Connection, Row, params};
use tollgate_store::{
    HashMatch, Page, PageRequest, Result, SecretRotation, StatusFilter, StoreError, TokenFilter, TokenInsert,
    TokenLookup, TokenStore,
};
use tollgate_types::{
    AgentBinding, AgentId, AgentStatus, AuditEvent, Description, Imposed, IpAllowList, KeyId, OwnerId, OwnerName,
    Permission, ProjectId, ProjectName, Role, Scope, Timestamp, TokenHash, TokenId, TokenName, TokenPatch, TokenRecord,
    ToolList,
};

use crate::SqliteStore;
use crate::audit::{append, delete_before_with_audit};
use crate::columns::{Column, Columns, collect, execute, first, one};
use crate::error::corrupt;
use crate::writer::Tx;

/// The token columns every read selects, as a literal so statements can be built with `concat!`.
macro_rules! token_columns {
    () => {
        "id, name, owner_id, owner_name, owner_role, project_id, project_name, permission, scopes, allowed_tools,
        ip_allow, imposed, expires_at, description, display_hint, key_id, created_at, updated_at, last_used_at,
        revoked_at, revoke_reason, rotated_at, previous_valid_until, agent_id, agent_status"
    };
}

pub(crate) const COLUMNS: &str = token_columns!();

/// The verify lookup: the current secret's hash, else a previous secret still inside its grace period.
/// `?1` the hash, `?2` now; the `current` column tells which matched.
pub(crate) const BY_HASH: &str = concat!(
    "SELECT ",
    token_columns!(),
    ", 1 AS current FROM tokens WHERE hash = ?1
     UNION ALL
     SELECT ",
    token_columns!(),
    ", 0 AS current FROM tokens WHERE previous_hash = ?1 AND previous_valid_until > ?2
     LIMIT 1"
);

/// Positions in [`COLUMNS`] (and `current`, after them in [`BY_HASH`]).
const ID: Column = Column { index: 0, name: "id" };
const NAME: Column = Column { index: 1, name: "name" };
const OWNER_ID: Column = Column { index: 2, name: "owner_id" };
const OWNER_NAME: Column = Column { index: 3, name: "owner_name" };
const OWNER_ROLE: Column = Column { index: 4, name: "owner_role" };
const PROJECT_ID: Column = Column { index: 5, name: "project_id" };
const PROJECT_NAME: Column = Column { index: 6, name: "project_name" };
const PERMISSION: Column = Column { index: 7, name: "permission" };
const SCOPES: Column = Column { index: 8, name: "scopes" };
const ALLOWED_TOOLS: Column = Column { index: 9, name: "allowed_tools" };
const IP_ALLOW: Column = Column { index: 10, name: "ip_allow" };
const IMPOSED: Column = Column { index: 11, name: "imposed" };
const EXPIRES_AT: Column = Column { index: 12, name: "expires_at" };
const DESCRIPTION: Column = Column { index: 13, name: "description" };
const DISPLAY_HINT: Column = Column { index: 14, name: "display_hint" };
const KEY_ID: Column = Column { index: 15, name: "key_id" };
const CREATED_AT: Column = Column { index: 16, name: "created_at" };
const UPDATED_AT: Column = Column { index: 17, name: "updated_at" };
const LAST_USED_AT: Column = Column { index: 18, name: "last_used_at" };
const REVOKED_AT: Column = Column { index: 19, name: "revoked_at" };
const REVOKE_REASON: Column = Column { index: 20, name: "revoke_reason" };
const ROTATED_AT: Column = Column { index: 21, name: "rotated_at" };
const PREVIOUS_VALID_UNTIL: Column = Column { index: 22, name: "previous_valid_until" };
const AGENT_ID: Column = Column { index: 23, name: "agent_id" };
const AGENT_STATUS: Column = Column { index: 24, name: "agent_status" };
const CURRENT: Column = Column { index: 25, name: "current" };

fn column<T, E: std::fmt::Display>(column: &str, parsed: std::result::Result<T, E>) -> Result<T> {
    parsed.map_err(|error| corrupt(&format!("tokens.{column}"), error))
}

fn json_list(row: &Row<'_>, list: Column) -> Result<Vec<String>> {
    column(list.name, serde_json::from_str(&row.text(list)?))
}

fn micros(row: &Row<'_>, time: Column) -> Result<Option<Timestamp>> {
    Ok(row.optional_integer(time)?.map(Timestamp::from_unix_micros))
}

pub(crate) fn record_from_row(row: &Row<'_>) -> Result<TokenRecord> {
    let project = row.optional_text(PROJECT_ID)?;
    let project_name = row.optional_text(PROJECT_NAME)?;
    let imposed = u8::try_from(row.integer(IMPOSED)?).ok().and_then(Imposed::from_bits);
    Ok(TokenRecord {
        id: column("id", TokenId::parse(&row.text(ID)?))?,
        name: column("name", TokenName::parse(&row.text(NAME)?))?,
        owner: column("owner_id", OwnerId::parse(&row.text(OWNER_ID)?))?,
        owner_name: column("owner_name", OwnerName::parse(&row.text(OWNER_NAME)?))?,
        owner_role: column("owner_role", row.optional_text(OWNER_ROLE)?.map(|role| role.parse::<Role>()).transpose())?,
        project: column("project_id", project.as_deref().map(ProjectId::parse).transpose())?,
        project_name: column("project_name", project_name.as_deref().map(ProjectName::parse).transpose())?,
        permission: column("permission", row.text(PERMISSION)?.parse::<Permission>())?,
        scopes: column("scopes", json_list(row, SCOPES)?.iter().map(|scope| Scope::parse(scope)).collect())?,
        allowed_tools: column("allowed_tools", ToolList::parse(&json_list(row, ALLOWED_TOOLS)?))?,
        ip_allow: column("ip_allow", IpAllowList::parse(&json_list(row, IP_ALLOW)?))?,
        imposed: imposed.ok_or_else(|| corrupt("tokens.imposed", "unknown bits"))?,
        expires_at: micros(row, EXPIRES_AT)?,
        description: column("description", Description::parse(&row.text(DESCRIPTION)?))?,
        display_hint: row.text(DISPLAY_HINT)?,
        key_id: KeyId(column("key_id", u32::try_from(row.integer(KEY_ID)?))?),
        created_at: Timestamp::from_unix_micros(row.integer(CREATED_AT)?),
        updated_at: Timestamp::from_unix_micros(row.integer(UPDATED_AT)?),
        last_used_at: micros(row, LAST_USED_AT)?,
        revoked_at: micros(row, REVOKED_AT)?,
        revoke_reason: row.optional_text(REVOKE_REASON)?,
        rotated_at: micros(row, ROTATED_AT)?,
        previous_valid_until: micros(row, PREVIOUS_VALID_UNTIL)?,
        agent: agent_binding(row)?,
    })
}

fn agent_binding(row: &Row<'_>) -> Result<Option<AgentBinding>> {
    let (Some(id), Some(status)) = (row.optional_text(AGENT_ID)?, row.optional_text(AGENT_STATUS)?) else {
        return Ok(None);
    };
    Ok(Some(AgentBinding {
        id: column("agent_id", AgentId::parse(&id))?,
        status: column("agent_status", status.parse::<AgentStatus>())?,
    }))
}

/// Decodes a [`BY_HASH`] row.
pub(crate) fn lookup_from_row(row: &Row<'_>) -> Result<TokenLookup> {
    let matched = if row.integer(CURRENT)? == 1 { HashMatch::Current } else { HashMatch::Previous };
    Ok(TokenLookup { record: record_from_row(row)?, matched })
}

fn json_text<S: serde::Serialize + ?Sized>(value: &S) -> String {
    serde_json::to_string(value).expect("lists of strings always serialize")
}

/// The token with `id`, read on `connection` (inside a write job, or on a reader).
pub(crate) fn fetch(connection: &Connection, id: &TokenId) -> Result<TokenRecord> {
    one(
        connection,
        "token",
        concat!("SELECT ", token_columns!(), " FROM tokens WHERE id = ?"),
        [id.to_string()],
        record_from_row,
    )
}

/// Reads the changed token back and appends its audit event: the tail of every token write.
fn finish_with_audit(tx: &mut Tx<'_>, id: &TokenId, audit: &AuditEvent) -> Result<TokenRecord> {
    let record = fetch(tx.connection, id)?;
    append(tx, audit)?;
    Ok(record)
}

/// Revokes a token inside a write job (it must exist and be live); `reason` is kept on the row.
pub(crate) fn revoke_in(tx: &mut Tx<'_>, id: &TokenId, reason: Option<&str>, at: Timestamp) -> Result<()> {
    execute(
        tx.connection,
        "UPDATE tokens SET revoked_at = ?1, revoke_reason = ?2, updated_at = ?1, previous_hash = NULL,
            previous_key_id = NULL, previous_valid_until = NULL
         WHERE id = ?3",
        params![at.unix_micros(), reason, id.to_string()],
    )
    .map(drop)
}

/// Revokes every live token matching `condition` (over `parameters`), writing a `token.revoke`
/// event for each after the caller's own event: suspensions and removals that take tokens with them.
pub(crate) fn revoke_where(
    tx: &mut Tx<'_>,
    condition: &str,
    parameters: &[String],
    reason: &str,
    audit: &AuditEvent,
) -> Result<Vec<TokenId>> {
    let sql = format!("SELECT {COLUMNS} FROM tokens WHERE revoked_at IS NULL AND {condition} ORDER BY id");
    let tokens = collect(tx.connection, &sql, rusqlite::params_from_iter(parameters), record_from_row)?;
    let mut revoked = Vec::with_capacity(tokens.len());
    for token in tokens {
        revoke_in(tx, &token.id, Some(reason), audit.at)?;
        let mut event = AuditEvent::new(audit.actor.clone(), "token.revoke", token.id, audit.at);
        event.before = serde_json::to_value(&token).ok();
        event.reason = Some(reason.to_owned());
        event.ip = audit.ip;
        append(tx, &event)?;
        revoked.push(token.id);
    }
    Ok(revoked)
}

#[async_trait]
impl TokenStore for SqliteStore {
    async fn insert_token(&self, insert: &TokenInsert, audit: &AuditEvent) -> Result<TokenRecord> {
        let insert = insert.clone();
        let audit = audit.clone();
        self.write(move |tx| {
            let token = &insert.token;
            let agent_status = match &insert.agent {
                Some(agent) => Some(crate::agents::status_for_credential(tx.connection, agent)?),
                None => None,
            };
            execute(
                tx.connection,
                "INSERT INTO tokens (id, name, owner_id, owner_name, owner_role, project_id, project_name, permission,
                    scopes, allowed_tools, ip_allow, imposed, expires_at, description, hash, key_id, display_hint,
                    created_at, updated_at, agent_id, agent_status)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                params![
                    insert.id.to_string(),
                    token.name.as_str(),
                    token.owner.to_string(),
                    insert.owner_name.as_str(),
                    insert.owner_role.map(Role::as_str),
                    token.project.map(|id| id.to_string()),
                    insert.project_name.as_ref().map(ProjectName::as_str),
                    token.permission.as_str(),
                    json_text(&token.scopes),
                    json_text(&token.allowed_tools),
                    json_text(&token.ip_allow),
                    insert.imposed.bits(),
                    token.expires_at.map(Timestamp::unix_micros),
                    token.description.as_str(),
                    insert.hash.as_bytes().as_slice(),
                    i64::from(insert.key_id.0),
                    &insert.display_hint,
                    insert.created_at.unix_micros(),
                    insert.created_at.unix_micros(),
                    insert.agent.map(|id| id.to_string()),
                    agent_status.map(AgentStatus::as_str),
                ],
            )?;
            append(tx, &audit)?;
            Ok(insert.record(agent_status.unwrap_or(AgentStatus::Active)))
        })
        .await
    }

    async fn token_by_hash(&self, hash: &TokenHash, now: Timestamp) -> Result<Option<TokenLookup>> {
        let hash = *hash;
        self.point(move |connection| {
            first(connection, BY_HASH, params![hash.as_bytes().as_slice(), now.unix_micros()], lookup_from_row)
        })
        .await
    }

    async fn token(&self, id: &TokenId) -> Result<TokenRecord> {
        let id = *id;
        self.point(move |connection| fetch(connection, &id)).await
    }

    async fn list_tokens(&self, filter: &TokenFilter, page: &PageRequest, now: Timestamp) -> Result<Page<TokenRecord>> {
        let before = match &page.cursor {
            Some(cursor) => TokenId::parse(cursor).map_err(|_| StoreError::InvalidCursor)?.to_string(),
            None => "~".to_owned(), // sorts after every `tok_…` id
        };
        let status = match filter.status {
            StatusFilter::Active => "revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?4)",
            StatusFilter::Revoked => "revoked_at IS NOT NULL AND ?4 IS NOT NULL",
            StatusFilter::Expired => "revoked_at IS NULL AND expires_at <= ?4",
            StatusFilter::All => "?4 IS NOT NULL",
        };
        let sql = format!(
            "SELECT {COLUMNS} FROM tokens
             WHERE id < ?1 AND (?2 IS NULL OR owner_id = ?2) AND (?3 IS NULL OR project_id = ?3) AND {status}
                   AND agent_id IS ?6
             ORDER BY id DESC LIMIT ?5"
        );
        let filter = filter.clone();
        let limit = page.limit;
        let items = self
            .scan(move |connection| {
                collect(
                    connection,
                    &sql,
                    params![
                        before,
                        filter.owner.map(|id| id.to_string()),
                        filter.project.map(|id| id.to_string()),
                        now.unix_micros(),
                        i64::from(limit) + 1,
                        filter.agent.map(|id| id.to_string()),
                    ],
                    record_from_row,
                )
            })
            .await?;
        Ok(Page::from_overfetch(items, page.limit, |record| record.id.to_string()))
    }

    async fn revoke_token(&self, id: &TokenId, reason: Option<&str>, audit: &AuditEvent) -> Result<TokenRecord> {
        let (id, reason, audit) = (*id, reason.map(str::to_owned), audit.clone());
        self.write(move |tx| {
            let current = fetch(tx.connection, &id)?;
            if current.revoked_at.is_some() {
                return Ok(current);
            }
            revoke_in(tx, &id, reason.as_deref(), audit.at)?;
            finish_with_audit(tx, &id, &audit)
        })
        .await
    }

    async fn rotate_token(&self, rotation: &SecretRotation, audit: &AuditEvent) -> Result<TokenRecord> {
        let (rotation, audit) = (rotation.clone(), audit.clone());
        self.write(move |tx| {
            let current = fetch(tx.connection, &rotation.id)?;
            if current.revoked_at.is_some() {
                return Err(StoreError::Conflict("token is revoked".to_owned()));
            }
            // A grace period that has already ended keeps no previous secret at all.
            let grace = rotation.previous_valid_until.filter(|until| *until > rotation.at);
            execute(
                tx.connection,
                "UPDATE tokens SET
                    previous_hash = CASE WHEN ?1 IS NULL THEN NULL ELSE hash END,
                    previous_key_id = CASE WHEN ?1 IS NULL THEN NULL ELSE key_id END,
                    previous_valid_until = ?1,
                    hash = ?2, key_id = ?3, display_hint = ?4, rotated_at = ?5, updated_at = ?5
                 WHERE id = ?6 AND revoked_at IS NULL",
                params![
                    grace.map(Timestamp::unix_micros),
                    rotation.hash.as_bytes().as_slice(),
                    i64::from(rotation.key_id.0),
                    &rotation.display_hint,
                    rotation.at.unix_micros(),
                    rotation.id.to_string(),
                ],
            )?;
            finish_with_audit(tx, &rotation.id, &audit)
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
        let (id, patch, audit) = (*id, patch.clone(), audit.clone());
        self.write(move |tx| {
            let current = fetch(tx.connection, &id)?;
            if current.revoked_at.is_some() {
                return Err(StoreError::Conflict("token is revoked".to_owned()));
            }
            let expires_at = patch.expires_at.unwrap_or(current.expires_at);
            execute(
                tx.connection,
                "UPDATE tokens SET name = ?, description = ?, allowed_tools = ?, ip_allow = ?, expires_at = ?,
                    updated_at = ?, imposed = imposed | ?
                 WHERE id = ?",
                params![
                    patch.name.as_ref().unwrap_or(&current.name).as_str(),
                    patch.description.as_ref().unwrap_or(&current.description).as_str(),
                    json_text(patch.allowed_tools.as_ref().unwrap_or(&current.allowed_tools)),
                    json_text(patch.ip_allow.as_ref().unwrap_or(&current.ip_allow)),
                    expires_at.map(Timestamp::unix_micros),
                    at.unix_micros(),
                    patch.impose.bits(),
                    id.to_string(),
                ],
            )?;
            finish_with_audit(tx, &id, &audit)
        })
        .await
    }

    async fn touch_tokens(&self, uses: &[(TokenId, Timestamp)]) -> Result<()> {
        if uses.is_empty() {
            return Ok(());
        }
        let uses = uses.to_vec();
        self.write(move |tx| {
            for (id, at) in &uses {
                execute(
                    tx.connection,
                    "UPDATE tokens SET last_used_at = ?1 WHERE id = ?2 AND (last_used_at IS NULL OR last_used_at < ?1)",
                    params![at.unix_micros(), id.to_string()],
                )?;
            }
            Ok(())
        })
        .await
    }

    async fn delete_inactive_tokens(&self, cutoff: Timestamp, audit: &AuditEvent) -> Result<u64> {
        let sql = "DELETE FROM tokens WHERE revoked_at < ?1 OR (revoked_at IS NULL AND expires_at < ?1)";
        delete_before_with_audit(self, sql, cutoff, audit).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_positions_match_the_select_list() {
        let names: Vec<&str> = COLUMNS.split(',').map(str::trim).chain(["current"]).collect();
        let positions = [
            ID,
            NAME,
            OWNER_ID,
            OWNER_NAME,
            OWNER_ROLE,
            PROJECT_ID,
            PROJECT_NAME,
            PERMISSION,
            SCOPES,
            ALLOWED_TOOLS,
            IP_ALLOW,
            IMPOSED,
            EXPIRES_AT,
            DESCRIPTION,
            DISPLAY_HINT,
            KEY_ID,
            CREATED_AT,
            UPDATED_AT,
            LAST_USED_AT,
            REVOKED_AT,
            REVOKE_REASON,
            ROTATED_AT,
            PREVIOUS_VALID_UNTIL,
            AGENT_ID,
            AGENT_STATUS,
            CURRENT,
        ];
        assert_eq!(positions.len(), names.len());
        for position in positions {
            assert_eq!(names[position.index], position.name);
        }
    }
}
