//! Session storage on SQLite: login sessions and their refresh-token families.

use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};
use tollgate_store::{
    Page, PageRequest, RefreshLookup, RefreshOutcome, RefreshRotation, RefreshTokenInsert, Result, SessionStart,
    SessionStore, SessionWithUser, StoreError,
};
use tollgate_types::{AuditEvent, SessionId, SessionRecord, Timestamp, TokenHash, UserId, UserStatus};

use crate::SqliteStore;
use crate::audit::{append, delete_before_with_audit};
use crate::error::{SqlxResultExt, corrupt};
use crate::users::{fetch_user, user_columns, user_from_row};

const COLUMNS: &str = "sessions.id, sessions.user_id, sessions.generation, sessions.created_at, sessions.refreshed_at, \
     sessions.expires_at, sessions.revoked_at, sessions.revoke_reason, sessions.ip";

fn column<T, E: std::fmt::Display>(name: &str, parsed: std::result::Result<T, E>) -> Result<T> {
    parsed.map_err(|error| corrupt(&format!("sessions.{name}"), error))
}

fn session_from_row(row: &SqliteRow) -> Result<SessionRecord> {
    let micros = |name: &str| row.get::<Option<i64>, _>(name).map(Timestamp::from_unix_micros);
    let ip: Option<String> = row.get("ip");
    Ok(SessionRecord {
        id: column("id", SessionId::parse(row.get("id")))?,
        user_id: column("user_id", UserId::parse(row.get("user_id")))?,
        generation: column("generation", u32::try_from(row.get::<i64, _>("generation")))?,
        created_at: Timestamp::from_unix_micros(row.get("created_at")),
        refreshed_at: micros("refreshed_at"),
        expires_at: Timestamp::from_unix_micros(row.get("expires_at")),
        revoked_at: micros("revoked_at"),
        revoke_reason: row.get("revoke_reason"),
        ip: column("ip", ip.as_deref().map(str::parse).transpose())?,
    })
}

async fn fetch_session(connection: &mut SqliteConnection, id: &SessionId) -> Result<SessionRecord> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM sessions WHERE id = ?"))
        .bind(id.to_string())
        .fetch_optional(&mut *connection)
        .await
        .store()?
        .ok_or(StoreError::NotFound { entity: "session" })?;
    session_from_row(&row)
}

async fn insert_refresh(
    connection: &mut SqliteConnection,
    refresh: &RefreshTokenInsert,
    session: &SessionId,
    generation: u32,
    at: Timestamp,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO refresh_tokens (hash, key_id, session_id, generation, issued_at, expires_at)
         VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(refresh.hash.as_bytes().as_slice())
    .bind(i64::from(refresh.key_id.0))
    .bind(session.to_string())
    .bind(i64::from(generation))
    .bind(at.unix_micros())
    .bind(refresh.expires_at.unix_micros())
    .execute(&mut *connection)
    .await
    .store()
    .map(drop)
}

async fn revoke(connection: &mut SqliteConnection, id: &SessionId, reason: &str, at: Timestamp) -> Result<()> {
    sqlx::query("UPDATE sessions SET revoked_at = ?, revoke_reason = ? WHERE id = ? AND revoked_at IS NULL")
        .bind(at.unix_micros())
        .bind(reason)
        .bind(id.to_string())
        .execute(&mut *connection)
        .await
        .store()
        .map(drop)
}

#[async_trait]
impl SessionStore for SqliteStore {
    async fn start_session(&self, start: &SessionStart, audit: &AuditEvent) -> Result<SessionRecord> {
        let mut transaction = self.write().await?;
        let row = sqlx::query("SELECT status, locked_until, password_hash FROM users WHERE id = ?")
            .bind(start.user_id.to_string())
            .fetch_optional(&mut *transaction)
            .await
            .store()?
            .ok_or(StoreError::NotFound { entity: "user" })?;
        let status: String = row.get("status");
        let locked =
            row.get::<Option<i64>, _>("locked_until").is_some_and(|until| until > start.created_at.unix_micros());
        let hash: String = row.get("password_hash");
        if status != UserStatus::Active.as_str() || locked || hash != start.checked_password_hash.as_str() {
            return Err(StoreError::Conflict("the user cannot log in now".to_owned()));
        }
        sqlx::query(
            "INSERT INTO sessions (id, user_id, generation, created_at, expires_at, ip) VALUES (?, ?, 1, ?, ?, ?)",
        )
        .bind(start.id.to_string())
        .bind(start.user_id.to_string())
        .bind(start.created_at.unix_micros())
        .bind(start.refresh.expires_at.unix_micros())
        .bind(start.ip.map(|ip| ip.to_string()))
        .execute(&mut *transaction)
        .await
        .store()?;
        insert_refresh(&mut transaction, &start.refresh, &start.id, 1, start.created_at).await?;
        sqlx::query("UPDATE users SET failed_logins = 0, locked_until = NULL, last_login_at = ? WHERE id = ?")
            .bind(start.created_at.unix_micros())
            .bind(start.user_id.to_string())
            .execute(&mut *transaction)
            .await
            .store()?;
        let session = fetch_session(&mut transaction, &start.id).await?;
        append(&mut transaction, audit).await?;
        transaction.commit().await.store()?;
        Ok(session)
    }

    async fn session(&self, id: &SessionId) -> Result<SessionRecord> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM sessions WHERE id = ?"))
            .bind(id.to_string())
            .fetch_optional(&self.reader)
            .await
            .store()?
            .ok_or(StoreError::NotFound { entity: "session" })?;
        session_from_row(&row)
    }

    async fn session_with_user(&self, id: &SessionId) -> Result<Option<SessionWithUser>> {
        let sql = format!(
            "SELECT {COLUMNS}, {} FROM sessions JOIN users ON users.id = sessions.user_id WHERE sessions.id = ?",
            user_columns("users", "u_")
        );
        let row = sqlx::query(&sql).bind(id.to_string()).fetch_optional(&self.reader).await.store()?;
        row.map(|row| Ok(SessionWithUser { session: session_from_row(&row)?, user: user_from_row(&row, "u_")? }))
            .transpose()
    }

    async fn refresh_token(&self, hash: &TokenHash) -> Result<Option<RefreshLookup>> {
        let sql = format!(
            "SELECT {COLUMNS}, refresh_tokens.generation AS r_generation, refresh_tokens.expires_at AS r_expires_at,
                refresh_tokens.used_at AS r_used_at
             FROM refresh_tokens JOIN sessions ON sessions.id = refresh_tokens.session_id
             WHERE refresh_tokens.hash = ?"
        );
        let row = sqlx::query(&sql).bind(hash.as_bytes().as_slice()).fetch_optional(&self.reader).await.store()?;
        row.map(|row| {
            Ok(RefreshLookup {
                session: session_from_row(&row)?,
                generation: column("refresh_tokens.generation", u32::try_from(row.get::<i64, _>("r_generation")))?,
                expires_at: Timestamp::from_unix_micros(row.get("r_expires_at")),
                used_at: row.get::<Option<i64>, _>("r_used_at").map(Timestamp::from_unix_micros),
            })
        })
        .transpose()
    }

    async fn rotate_refresh(
        &self,
        rotation: &RefreshRotation,
        rotated: &AuditEvent,
        reused: &AuditEvent,
    ) -> Result<RefreshOutcome> {
        let mut transaction = self.write().await?;
        let row = sqlx::query("SELECT session_id, expires_at, used_at FROM refresh_tokens WHERE hash = ?")
            .bind(rotation.presented.as_bytes().as_slice())
            .fetch_optional(&mut *transaction)
            .await
            .store()?
            .ok_or(StoreError::NotFound { entity: "refresh token" })?;
        let session_id = column("refresh_tokens.session_id", SessionId::parse(row.get("session_id")))?;
        let token_expires_at = Timestamp::from_unix_micros(row.get("expires_at"));
        let used = row.get::<Option<i64>, _>("used_at").is_some();
        let session = fetch_session(&mut transaction, &session_id).await?;
        if session.revoked_at.is_some() {
            return Ok(RefreshOutcome::Ended { session });
        }
        if used {
            revoke(&mut transaction, &session_id, "refresh token reused", rotation.at).await?;
            let session = fetch_session(&mut transaction, &session_id).await?;
            append(&mut transaction, reused).await?;
            transaction.commit().await.store()?;
            return Ok(RefreshOutcome::Reused { session });
        }
        let user = fetch_user(&mut transaction, &session.user_id).await?;
        if token_expires_at <= rotation.at || !session.is_live(rotation.at) || user.status != UserStatus::Active {
            return Ok(RefreshOutcome::Ended { session });
        }
        sqlx::query("UPDATE refresh_tokens SET used_at = ? WHERE hash = ? AND used_at IS NULL")
            .bind(rotation.at.unix_micros())
            .bind(rotation.presented.as_bytes().as_slice())
            .execute(&mut *transaction)
            .await
            .store()?;
        let generation = session.generation.saturating_add(1);
        insert_refresh(&mut transaction, &rotation.next, &session_id, generation, rotation.at).await?;
        sqlx::query("UPDATE sessions SET generation = ?, refreshed_at = ?, expires_at = ? WHERE id = ?")
            .bind(i64::from(generation))
            .bind(rotation.at.unix_micros())
            .bind(rotation.next.expires_at.unix_micros())
            .bind(session_id.to_string())
            .execute(&mut *transaction)
            .await
            .store()?;
        let session = fetch_session(&mut transaction, &session_id).await?;
        append(&mut transaction, rotated).await?;
        transaction.commit().await.store()?;
        Ok(RefreshOutcome::Rotated { session, user })
    }

    async fn revoke_session(&self, id: &SessionId, reason: &str, audit: &AuditEvent) -> Result<SessionRecord> {
        let mut transaction = self.write().await?;
        let current = fetch_session(&mut transaction, id).await?;
        if current.revoked_at.is_some() {
            return Ok(current);
        }
        revoke(&mut transaction, id, reason, audit.at).await?;
        let session = fetch_session(&mut transaction, id).await?;
        append(&mut transaction, audit).await?;
        transaction.commit().await.store()?;
        Ok(session)
    }

    async fn list_sessions(&self, user_id: &UserId, page: &PageRequest) -> Result<Page<SessionRecord>> {
        let before = match &page.cursor {
            Some(cursor) => SessionId::parse(cursor).map_err(|_| StoreError::InvalidCursor)?.to_string(),
            None => "~".to_owned(), // sorts after every `ses_…` id
        };
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM sessions WHERE user_id = ? AND id < ? ORDER BY id DESC LIMIT ?"
        ))
        .bind(user_id.to_string())
        .bind(before)
        .bind(i64::from(page.limit) + 1)
        .fetch_all(&self.reader)
        .await
        .store()?;
        let mut items = rows.iter().map(session_from_row).collect::<Result<Vec<_>>>()?;
        let next_cursor = if items.len() > page.limit as usize {
            items.truncate(page.limit as usize);
            items.last().map(|session| session.id.to_string())
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }

    async fn delete_ended_sessions(&self, cutoff: Timestamp, audit: &AuditEvent) -> Result<u64> {
        let sql = "DELETE FROM sessions WHERE revoked_at < ?1 OR expires_at < ?1";
        delete_before_with_audit(self, sql, cutoff, audit).await
    }
}
