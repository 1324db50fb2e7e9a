//! Token storage on SQLite.

use async_trait::async_trait;
use sqlx::{Sqlite, SqliteConnection, Transaction};
use tollgate_store::{
    HashMatch, Page, PageRequest, Result, SecretRotation, StatusFilter, StoreError, TokenFilter, TokenInsert,
    TokenLookup, TokenStore,
};
use tollgate_types::{
    AuditEvent, Description, IpAllowList, KeyId, OwnerName, Permission, ProjectName, Scope, Timestamp, TokenHash,
    TokenId, TokenName, TokenPatch, TokenRecord, ToolList, UserId,
};

use crate::SqliteStore;
use crate::audit::{append, delete_before_with_audit};
use crate::columns::{Column, Columns};
use crate::error::{SqlxResultExt, corrupt};

/// The token columns every read selects, as a literal so statements can be built with `concat!`.
macro_rules! token_columns {
    () => {
        "id, name, owner, user_id, project, permission, scopes, allowed_tools, ip_allow, expires_at,
        description, display_hint, key_id, created_at, updated_at, last_used_at, revoked_at, revoke_reason,
        rotated_at, previous_valid_until"
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
const OWNER: Column = Column { index: 2, name: "owner" };
const USER_ID: Column = Column { index: 3, name: "user_id" };
const PROJECT: Column = Column { index: 4, name: "project" };
const PERMISSION: Column = Column { index: 5, name: "permission" };
const SCOPES: Column = Column { index: 6, name: "scopes" };
const ALLOWED_TOOLS: Column = Column { index: 7, name: "allowed_tools" };
const IP_ALLOW: Column = Column { index: 8, name: "ip_allow" };
const EXPIRES_AT: Column = Column { index: 9, name: "expires_at" };
const DESCRIPTION: Column = Column { index: 10, name: "description" };
const DISPLAY_HINT: Column = Column { index: 11, name: "display_hint" };
const KEY_ID: Column = Column { index: 12, name: "key_id" };
const CREATED_AT: Column = Column { index: 13, name: "created_at" };
const UPDATED_AT: Column = Column { index: 14, name: "updated_at" };
const LAST_USED_AT: Column = Column { index: 15, name: "last_used_at" };
const REVOKED_AT: Column = Column { index: 16, name: "revoked_at" };
const REVOKE_REASON: Column = Column { index: 17, name: "revoke_reason" };
const ROTATED_AT: Column = Column { index: 18, name: "rotated_at" };
const PREVIOUS_VALID_UNTIL: Column = Column { index: 19, name: "previous_valid_until" };
const CURRENT: Column = Column { index: 20, name: "current" };

fn column<T, E: std::fmt::Display>(column: &str, parsed: std::result::Result<T, E>) -> Result<T> {
    parsed.map_err(|error| corrupt(&format!("tokens.{column}"), error))
}

fn json_list(row: &impl Columns, list: Column) -> Result<Vec<String>> {
    column(list.name, serde_json::from_str(&row.text(list)?))
}

fn micros(row: &impl Columns, time: Column) -> Result<Option<Timestamp>> {
    Ok(row.optional_integer(time)?.map(Timestamp::from_unix_micros))
}

pub(crate) fn record_from_row(row: &impl Columns) -> Result<TokenRecord> {
    let user_id = row.optional_text(USER_ID)?;
    let project = row.optional_text(PROJECT)?;
    Ok(TokenRecord {
        id: column("id", TokenId::parse(&row.text(ID)?))?,
        name: column("name", TokenName::parse(&row.text(NAME)?))?,
        owner: column("owner", OwnerName::parse(&row.text(OWNER)?))?,
        user_id: column("user_id", user_id.as_deref().map(UserId::parse).transpose())?,
        project: column("project", project.as_deref().map(ProjectName::parse).transpose())?,
        permission: column("permission", row.text(PERMISSION)?.parse::<Permission>())?,
        scopes: column("scopes", json_list(row, SCOPES)?.iter().map(|scope| Scope::parse(scope)).collect())?,
        allowed_tools: column("allowed_tools", ToolList::parse(&json_list(row, ALLOWED_TOOLS)?))?,
        ip_allow: column("ip_allow", IpAllowList::parse(&json_list(row, IP_ALLOW)?))?,
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
    })
}

/// Decodes a [`BY_HASH`] row.
pub(crate) fn lookup_from_row(row: &impl Columns) -> Result<TokenLookup> {
    let matched = if row.integer(CURRENT)? == 1 { HashMatch::Current } else { HashMatch::Previous };
    Ok(TokenLookup { record: record_from_row(row)?, matched })
}

fn json_text<S: serde::Serialize + ?Sized>(value: &S) -> String {
    serde_json::to_string(value).expect("lists of strings always serialize")
}

async fn fetch_for_update(connection: &mut SqliteConnection, id: &TokenId) -> Result<TokenRecord> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM tokens WHERE id = ?"))
        .bind(id.to_string())
        .fetch_optional(&mut *connection)
        .await
        .store()?
        .ok_or(StoreError::NotFound { entity: "token" })?;
    record_from_row(&row)
}

/// Reads the changed token back, appends its audit event and commits: the tail of every token write.
async fn commit_with_audit(
    mut transaction: Transaction<'static, Sqlite>,
    id: &TokenId,
    audit: &AuditEvent,
) -> Result<TokenRecord> {
    let record = fetch_for_update(&mut transaction, id).await?;
    append(&mut transaction, audit).await?;
    transaction.commit().await.store()?;
    Ok(record)
}

#[async_trait]
impl TokenStore for SqliteStore {
    async fn insert_token(&self, insert: &TokenInsert, audit: &AuditEvent) -> Result<TokenRecord> {
        let token = &insert.token;
        let mut transaction = self.write().await?;
        sqlx::query(
            "INSERT INTO tokens (id, name, owner, user_id, project, permission, scopes, allowed_tools, ip_allow,
                expires_at, description, hash, key_id, display_hint, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(insert.id.to_string())
        .bind(token.name.as_str())
        .bind(token.owner.as_str())
        .bind(token.user_id.map(|id| id.to_string()))
        .bind(token.project.as_ref().map(ProjectName::as_str))
        .bind(token.permission.as_str())
        .bind(json_text(&token.scopes))
        .bind(json_text(&token.allowed_tools))
        .bind(json_text(&token.ip_allow))
        .bind(token.expires_at.map(Timestamp::unix_micros))
        .bind(token.description.as_str())
        .bind(insert.hash.as_bytes().as_slice())
        .bind(i64::from(insert.key_id.0))
        .bind(&insert.display_hint)
        .bind(insert.created_at.unix_micros())
        .bind(insert.created_at.unix_micros())
        .execute(&mut *transaction)
        .await
        .store()?;
        commit_with_audit(transaction, &insert.id, audit).await
    }

    async fn token_by_hash(&self, hash: &TokenHash, now: Timestamp) -> Result<Option<TokenLookup>> {
        if let Some(reader) = &self.hash_reader {
            return reader.token_by_hash(hash, now);
        }
        let row = sqlx::query(BY_HASH)
            .bind(hash.as_bytes().as_slice())
            .bind(now.unix_micros())
            .fetch_optional(&self.reader)
            .await
            .store()?;
        row.as_ref().map(lookup_from_row).transpose()
    }

    async fn token(&self, id: &TokenId) -> Result<TokenRecord> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM tokens WHERE id = ?"))
            .bind(id.to_string())
            .fetch_optional(&self.reader)
            .await
            .store()?
            .ok_or(StoreError::NotFound { entity: "token" })?;
        record_from_row(&row)
    }

    async fn list_tokens(&self, filter: &TokenFilter, page: &PageRequest, now: Timestamp) -> Result<Page<TokenRecord>> {
        let before = match &page.cursor {
            Some(cursor) => TokenId::parse(cursor).map_err(|_| StoreError::InvalidCursor)?.to_string(),
            None => "~".to_owned(), // sorts after every `tok_…` id
        };
        let status = match filter.status {
            StatusFilter::Active => "revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?5)",
            StatusFilter::Revoked => "revoked_at IS NOT NULL AND ?5 IS NOT NULL",
            StatusFilter::Expired => "revoked_at IS NULL AND expires_at <= ?5",
            StatusFilter::All => "?5 IS NOT NULL",
        };
        let sql = format!(
            "SELECT {COLUMNS} FROM tokens
             WHERE id < ?1 AND (?2 IS NULL OR owner = ?2) AND (?3 IS NULL OR project = ?3) AND (?4 IS NULL OR user_id = ?4)
               AND {status}
             ORDER BY id DESC LIMIT ?6"
        );
        let rows = sqlx::query(&sql)
            .bind(before)
            .bind(filter.owner.as_ref().map(OwnerName::as_str))
            .bind(filter.project.as_ref().map(ProjectName::as_str))
            .bind(filter.user_id.map(|id| id.to_string()))
            .bind(now.unix_micros())
            .bind(i64::from(page.limit) + 1)
            .fetch_all(&self.reader)
            .await
            .store()?;
        let items = rows.iter().map(record_from_row).collect::<Result<Vec<_>>>()?;
        Ok(Page::from_overfetch(items, page.limit, |record| record.id.to_string()))
    }

    async fn revoke_token(&self, id: &TokenId, reason: Option<&str>, audit: &AuditEvent) -> Result<TokenRecord> {
        let mut transaction = self.write().await?;
        let current = fetch_for_update(&mut transaction, id).await?;
        if current.revoked_at.is_some() {
            return Ok(current);
        }
        sqlx::query(
            "UPDATE tokens SET revoked_at = ?, revoke_reason = ?, updated_at = ?, previous_hash = NULL,
                previous_key_id = NULL, previous_valid_until = NULL
             WHERE id = ?",
        )
        .bind(audit.at.unix_micros())
        .bind(reason)
        .bind(audit.at.unix_micros())
        .bind(id.to_string())
        .execute(&mut *transaction)
        .await
        .store()?;
        commit_with_audit(transaction, id, audit).await
    }

    async fn rotate_token(&self, rotation: &SecretRotation, audit: &AuditEvent) -> Result<TokenRecord> {
        let mut transaction = self.write().await?;
        let current = fetch_for_update(&mut transaction, &rotation.id).await?;
        if current.revoked_at.is_some() {
            return Err(StoreError::Conflict("token is revoked".to_owned()));
        }
        // A grace period that has already ended keeps no previous secret at all.
        let grace = rotation.previous_valid_until.filter(|until| *until > rotation.at);
        sqlx::query(
            "UPDATE tokens SET
                previous_hash = CASE WHEN ?1 IS NULL THEN NULL ELSE hash END,
                previous_key_id = CASE WHEN ?1 IS NULL THEN NULL ELSE key_id END,
                previous_valid_until = ?1,
                hash = ?2, key_id = ?3, display_hint = ?4, rotated_at = ?5, updated_at = ?5
             WHERE id = ?6 AND revoked_at IS NULL",
        )
        .bind(grace.map(Timestamp::unix_micros))
        .bind(rotation.hash.as_bytes().as_slice())
        .bind(i64::from(rotation.key_id.0))
        .bind(&rotation.display_hint)
        .bind(rotation.at.unix_micros())
        .bind(rotation.id.to_string())
        .execute(&mut *transaction)
        .await
        .store()?;
        commit_with_audit(transaction, &rotation.id, audit).await
    }

    async fn update_token(
        &self,
        id: &TokenId,
        patch: &TokenPatch,
        at: Timestamp,
        audit: &AuditEvent,
    ) -> Result<TokenRecord> {
        let mut transaction = self.write().await?;
        let current = fetch_for_update(&mut transaction, id).await?;
        if current.revoked_at.is_some() {
            return Err(StoreError::Conflict("token is revoked".to_owned()));
        }
        let expires_at = patch.expires_at.unwrap_or(current.expires_at);
        sqlx::query(
            "UPDATE tokens SET name = ?, description = ?, allowed_tools = ?, ip_allow = ?, expires_at = ?, updated_at = ?
             WHERE id = ?",
        )
        .bind(patch.name.as_ref().unwrap_or(&current.name).as_str())
        .bind(patch.description.as_ref().unwrap_or(&current.description).as_str())
        .bind(json_text(patch.allowed_tools.as_ref().unwrap_or(&current.allowed_tools)))
        .bind(json_text(patch.ip_allow.as_ref().unwrap_or(&current.ip_allow)))
        .bind(expires_at.map(Timestamp::unix_micros))
        .bind(at.unix_micros())
        .bind(id.to_string())
        .execute(&mut *transaction)
        .await
        .store()?;
        commit_with_audit(transaction, id, audit).await
    }

    async fn touch_tokens(&self, uses: &[(TokenId, Timestamp)]) -> Result<()> {
        if uses.is_empty() {
            return Ok(());
        }
        let mut transaction = self.write().await?;
        for (id, at) in uses {
            sqlx::query(
                "UPDATE tokens SET last_used_at = ?1 WHERE id = ?2 AND (last_used_at IS NULL OR last_used_at < ?1)",
            )
            .bind(at.unix_micros())
            .bind(id.to_string())
            .execute(&mut *transaction)
            .await
            .store()?;
        }
        transaction.commit().await.store()
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
            OWNER,
            USER_ID,
            PROJECT,
            PERMISSION,
            SCOPES,
            ALLOWED_TOOLS,
            IP_ALLOW,
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
            CURRENT,
        ];
        assert_eq!(positions.len(), names.len());
        for position in positions {
            assert_eq!(names[position.index], position.name);
        }
    }
}
