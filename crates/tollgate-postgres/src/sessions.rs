//! Session storage on PostgreSQL: login sessions and their refresh-token families.
//!
//! A login locks the user's row, as a suspension does, so one of them runs after the other: a
//! suspension that commits first makes the login refuse, and one that commits second sees (and
//! revokes) the new session. A refresh locks its session's row, so two exchanges of one token
//! cannot both rotate it: the second one finds it used, which is reuse.

use async_trait::async_trait;
use sqlx::PgConnection;
use sqlx::postgres::PgRow;
use tollgate_store::{
    Page, PageRequest, RefreshLookup, RefreshOutcome, RefreshRotation, RefreshTokenInsert, Result, SessionStart,
    SessionStore, SessionWithUser, StoreError,
};
use tollgate_types::{AuditEvent, SessionId, SessionRecord, Timestamp, TokenHash, UserId, UserStatus};

use crate::PgStore;
use crate::audit::delete_before_with_audit;
use crate::error::PgResultExt;
use crate::rows::{get, optional_time, parsed, time};
use crate::store::{PgTx, retrying};
use crate::users::{fetch_user, user_columns, user_from_row};

const COLUMNS: &str = "sessions.id, sessions.user_id, sessions.generation, sessions.created_at, sessions.refreshed_at, \
     sessions.expires_at, sessions.revoked_at, sessions.revoke_reason, sessions.ip";
const TABLE: &str = "sessions";

fn session_from_row(row: &PgRow) -> Result<SessionRecord> {
    let ip: Option<String> = get(row, TABLE, "ip")?;
    Ok(SessionRecord {
        id: parsed(TABLE, "id", SessionId::parse(&get::<String>(row, TABLE, "id")?))?,
        user_id: parsed(TABLE, "user_id", UserId::parse(&get::<String>(row, TABLE, "user_id")?))?,
        generation: parsed(TABLE, "generation", u32::try_from(get::<i64>(row, TABLE, "generation")?))?,
        created_at: time(row, TABLE, "created_at")?,
        refreshed_at: optional_time(row, TABLE, "refreshed_at")?,
        expires_at: time(row, TABLE, "expires_at")?,
        revoked_at: optional_time(row, TABLE, "revoked_at")?,
        revoke_reason: get(row, TABLE, "revoke_reason")?,
        ip: parsed(TABLE, "ip", ip.as_deref().map(str::parse).transpose())?,
    })
}

async fn fetch_session(connection: &mut PgConnection, id: &SessionId, lock: bool) -> Result<SessionRecord> {
    let sql = format!("SELECT {COLUMNS} FROM sessions WHERE id = $1{}", if lock { " FOR UPDATE" } else { "" });
    let row = sqlx::query(&sql).bind(id.to_string()).fetch_optional(connection).await.store()?;
    row.as_ref().map(session_from_row).transpose()?.ok_or(StoreError::NotFound { entity: "session" })
}

async fn insert_refresh(
    connection: &mut PgConnection,
    refresh: &RefreshTokenInsert,
    session: &SessionId,
    generation: u32,
    at: Timestamp,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO refresh_tokens (hash, key_id, session_id, generation, issued_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(refresh.hash.as_bytes().as_slice())
    .bind(i64::from(refresh.key_id.0))
    .bind(session.to_string())
    .bind(i64::from(generation))
    .bind(at.unix_micros())
    .bind(refresh.expires_at.unix_micros())
    .execute(connection)
    .await
    .store()
    .map(drop)
}

async fn revoke(connection: &mut PgConnection, id: &SessionId, reason: &str, at: Timestamp) -> Result<()> {
    sqlx::query("UPDATE sessions SET revoked_at = $1, revoke_reason = $2 WHERE id = $3 AND revoked_at IS NULL")
        .bind(at.unix_micros())
        .bind(reason)
        .bind(id.to_string())
        .execute(connection)
        .await
        .store()
        .map(drop)
}

/// Reads the session back, queues its audit event and commits: the tail of every session write.
async fn finish(mut tx: PgTx, id: &SessionId, audit: &AuditEvent) -> Result<SessionRecord> {
    let session = fetch_session(tx.conn(), id, false).await?;
    tx.audit(audit.clone());
    tx.commit().await?;
    Ok(session)
}

async fn start(store: &PgStore, start: &SessionStart, audit: &AuditEvent) -> Result<SessionRecord> {
    let mut tx = store.begin().await?;
    let row = sqlx::query("SELECT status, locked_until, password_hash FROM users WHERE id = $1 FOR UPDATE")
        .bind(start.user_id.to_string())
        .fetch_optional(tx.conn())
        .await
        .store()?
        .ok_or(StoreError::NotFound { entity: "user" })?;
    let status: String = get(&row, "users", "status")?;
    let locked_until: Option<i64> = get(&row, "users", "locked_until")?;
    let hash: String = get(&row, "users", "password_hash")?;
    let locked = locked_until.is_some_and(|until| until > start.created_at.unix_micros());
    if status != UserStatus::Active.as_str() || locked || hash != start.checked_password_hash.as_str() {
        return Err(StoreError::Conflict("the user cannot log in now".to_owned()));
    }
    sqlx::query(
        "INSERT INTO sessions (id, user_id, generation, created_at, expires_at, ip) VALUES ($1, $2, 1, $3, $4, $5)",
    )
    .bind(start.id.to_string())
    .bind(start.user_id.to_string())
    .bind(start.created_at.unix_micros())
    .bind(start.refresh.expires_at.unix_micros())
    .bind(start.ip.map(|ip| ip.to_string()))
    .execute(tx.conn())
    .await
    .store()?;
    insert_refresh(tx.conn(), &start.refresh, &start.id, 1, start.created_at).await?;
    sqlx::query("UPDATE users SET failed_logins = 0, locked_until = NULL, last_login_at = $1 WHERE id = $2")
        .bind(start.created_at.unix_micros())
        .bind(start.user_id.to_string())
        .execute(tx.conn())
        .await
        .store()?;
    finish(tx, &start.id, audit).await
}

async fn rotate(
    store: &PgStore,
    rotation: &RefreshRotation,
    rotated: &AuditEvent,
    reused: &AuditEvent,
) -> Result<RefreshOutcome> {
    let mut tx = store.begin().await?;
    let presented = rotation.presented.as_bytes().as_slice();
    let session_id: String = sqlx::query_scalar("SELECT session_id FROM refresh_tokens WHERE hash = $1")
        .bind(presented)
        .fetch_optional(tx.conn())
        .await
        .store()?
        .ok_or(StoreError::NotFound { entity: "refresh token" })?;
    let session_id = parsed("refresh_tokens", "session_id", SessionId::parse(&session_id))?;
    let session = fetch_session(tx.conn(), &session_id, true).await?;
    // Read under the session's lock: an exchange that committed meanwhile has marked it used.
    let (token_expires_at, used_at): (i64, Option<i64>) =
        sqlx::query_as("SELECT expires_at, used_at FROM refresh_tokens WHERE hash = $1")
            .bind(presented)
            .fetch_optional(tx.conn())
            .await
            .store()?
            .ok_or(StoreError::NotFound { entity: "refresh token" })?;
    if session.revoked_at.is_some() {
        tx.rollback().await?;
        return Ok(RefreshOutcome::Ended { session });
    }
    if used_at.is_some() {
        revoke(tx.conn(), &session_id, "refresh token reused", rotation.at).await?;
        let session = finish(tx, &session_id, reused).await?;
        return Ok(RefreshOutcome::Reused { session });
    }
    let user = fetch_user(tx.conn(), &session.user_id, false).await?;
    if token_expires_at <= rotation.at.unix_micros()
        || !session.is_live(rotation.at)
        || user.status != UserStatus::Active
    {
        tx.rollback().await?;
        return Ok(RefreshOutcome::Ended { session });
    }
    sqlx::query("UPDATE refresh_tokens SET used_at = $1 WHERE hash = $2 AND used_at IS NULL")
        .bind(rotation.at.unix_micros())
        .bind(presented)
        .execute(tx.conn())
        .await
        .store()?;
    let generation = session.generation.saturating_add(1);
    insert_refresh(tx.conn(), &rotation.next, &session_id, generation, rotation.at).await?;
    sqlx::query("UPDATE sessions SET generation = $1, refreshed_at = $2, expires_at = $3 WHERE id = $4")
        .bind(i64::from(generation))
        .bind(rotation.at.unix_micros())
        .bind(rotation.next.expires_at.unix_micros())
        .bind(session_id.to_string())
        .execute(tx.conn())
        .await
        .store()?;
    let session = finish(tx, &session_id, rotated).await?;
    Ok(RefreshOutcome::Rotated { session, user })
}

async fn revoke_one(store: &PgStore, id: &SessionId, reason: &str, audit: &AuditEvent) -> Result<SessionRecord> {
    let mut tx = store.begin().await?;
    let current = fetch_session(tx.conn(), id, true).await?;
    if current.revoked_at.is_some() {
        tx.rollback().await?;
        return Ok(current);
    }
    revoke(tx.conn(), id, reason, audit.at).await?;
    finish(tx, id, audit).await
}

#[async_trait]
impl SessionStore for PgStore {
    async fn start_session(&self, start_: &SessionStart, audit: &AuditEvent) -> Result<SessionRecord> {
        retrying(move || start(self, start_, audit)).await
    }

    async fn session(&self, id: &SessionId) -> Result<SessionRecord> {
        let mut connection = self.pool().acquire().await.store()?;
        fetch_session(&mut connection, id, false).await
    }

    async fn session_with_user(&self, id: &SessionId) -> Result<Option<SessionWithUser>> {
        let sql = format!(
            "SELECT {COLUMNS}, {} FROM sessions JOIN users ON users.id = sessions.user_id WHERE sessions.id = $1",
            user_columns("user_")
        );
        let row = sqlx::query(&sql).bind(id.to_string()).fetch_optional(self.pool()).await.store()?;
        row.map(|row| Ok(SessionWithUser { session: session_from_row(&row)?, user: user_from_row(&row, "user_")? }))
            .transpose()
    }

    async fn refresh_token(&self, hash: &TokenHash) -> Result<Option<RefreshLookup>> {
        let sql = format!(
            "SELECT {COLUMNS}, refresh_tokens.generation AS token_generation,
                refresh_tokens.expires_at AS token_expires_at, refresh_tokens.used_at AS token_used_at
             FROM refresh_tokens JOIN sessions ON sessions.id = refresh_tokens.session_id
             WHERE refresh_tokens.hash = $1"
        );
        let row = sqlx::query(&sql).bind(hash.as_bytes().as_slice()).fetch_optional(self.pool()).await.store()?;
        let Some(row) = row else { return Ok(None) };
        let generation: i64 = get(&row, "refresh_tokens", "token_generation")?;
        Ok(Some(RefreshLookup {
            session: session_from_row(&row)?,
            generation: parsed("refresh_tokens", "generation", u32::try_from(generation))?,
            expires_at: time(&row, "refresh_tokens", "token_expires_at")?,
            used_at: optional_time(&row, "refresh_tokens", "token_used_at")?,
        }))
    }

    async fn rotate_refresh(
        &self,
        rotation: &RefreshRotation,
        rotated: &AuditEvent,
        reused: &AuditEvent,
    ) -> Result<RefreshOutcome> {
        retrying(move || rotate(self, rotation, rotated, reused)).await
    }

    async fn revoke_session(&self, id: &SessionId, reason: &str, audit: &AuditEvent) -> Result<SessionRecord> {
        retrying(move || revoke_one(self, id, reason, audit)).await
    }

    async fn list_sessions(&self, user_id: &UserId, page: &PageRequest) -> Result<Page<SessionRecord>> {
        let before = match &page.cursor {
            Some(cursor) => SessionId::parse(cursor).map_err(|_| StoreError::InvalidCursor)?.to_string(),
            None => "~".to_owned(), // sorts after every `ses_…` id (ids are in the "C" collation)
        };
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM sessions WHERE user_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3"
        ))
        .bind(user_id.to_string())
        .bind(before)
        .bind(i64::from(page.limit) + 1)
        .fetch_all(self.pool())
        .await
        .store()?;
        let items = rows.iter().map(session_from_row).collect::<Result<Vec<_>>>()?;
        Ok(Page::from_overfetch(items, page.limit, |session| session.id.to_string()))
    }

    async fn delete_ended_sessions(&self, cutoff: Timestamp, audit: &AuditEvent) -> Result<u64> {
        let sql = "DELETE FROM sessions WHERE revoked_at < $1 OR expires_at < $1";
        delete_before_with_audit(self, sql, cutoff, audit).await
    }
}
