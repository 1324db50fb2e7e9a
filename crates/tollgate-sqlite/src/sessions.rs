//! Session storage on SQLite: login sessions and their refresh-token families.

use async_trait::async_trait;
use rusqlite::{Connection, Row, params};
use tollgate_store::{
    Page, PageRequest, RefreshLookup, RefreshOutcome, RefreshRotation, RefreshTokenInsert, Result, SessionStart,
    SessionStore, SessionWithUser, StoreError,
};
use tollgate_types::{AuditEvent, SessionId, SessionRecord, Timestamp, TokenHash, UserId, UserStatus};

use crate::SqliteStore;
use crate::audit::{append, delete_before_with_audit};
use crate::columns::{Column, Columns, collect, execute, first, one};
use crate::error::corrupt;
use crate::users::{fetch_user, user_columns, user_from_row};
use crate::writer::Tx;

/// The session columns, in the order [`session_from_row`] reads them.
const COLUMN_NAMES: [&str; 9] =
    ["id", "user_id", "generation", "created_at", "refreshed_at", "expires_at", "revoked_at", "revoke_reason", "ip"];

const COLUMNS: &str = "sessions.id, sessions.user_id, sessions.generation, sessions.created_at, sessions.refreshed_at, \
     sessions.expires_at, sessions.revoked_at, sessions.revoke_reason, sessions.ip";

fn column<T, E: std::fmt::Display>(name: &str, parsed: std::result::Result<T, E>) -> Result<T> {
    parsed.map_err(|error| corrupt(&format!("sessions.{name}"), error))
}

fn at(index: usize) -> Column {
    Column { index, name: COLUMN_NAMES[index] }
}

fn session_from_row(row: &Row<'_>) -> Result<SessionRecord> {
    let micros = |index: usize| -> Result<Option<Timestamp>> {
        Ok(row.optional_integer(at(index))?.map(Timestamp::from_unix_micros))
    };
    let ip = row.optional_text(at(8))?;
    Ok(SessionRecord {
        id: column("id", SessionId::parse(&row.text(at(0))?))?,
        user_id: column("user_id", UserId::parse(&row.text(at(1))?))?,
        generation: column("generation", u32::try_from(row.integer(at(2))?))?,
        created_at: Timestamp::from_unix_micros(row.integer(at(3))?),
        refreshed_at: micros(4)?,
        expires_at: Timestamp::from_unix_micros(row.integer(at(5))?),
        revoked_at: micros(6)?,
        revoke_reason: row.optional_text(at(7))?,
        ip: column("ip", ip.as_deref().map(str::parse).transpose())?,
    })
}

fn fetch_session(connection: &Connection, id: &SessionId) -> Result<SessionRecord> {
    one(
        connection,
        "session",
        &format!("SELECT {COLUMNS} FROM sessions WHERE id = ?"),
        [id.to_string()],
        session_from_row,
    )
}

fn insert_refresh(
    connection: &Connection,
    refresh: &RefreshTokenInsert,
    session: &SessionId,
    generation: u32,
    at: Timestamp,
) -> Result<()> {
    execute(
        connection,
        "INSERT INTO refresh_tokens (hash, key_id, session_id, generation, issued_at, expires_at)
         VALUES (?, ?, ?, ?, ?, ?)",
        params![
            refresh.hash.as_bytes().as_slice(),
            i64::from(refresh.key_id.0),
            session.to_string(),
            i64::from(generation),
            at.unix_micros(),
            refresh.expires_at.unix_micros(),
        ],
    )
    .map(drop)
}

fn revoke(connection: &Connection, id: &SessionId, reason: &str, at: Timestamp) -> Result<()> {
    execute(
        connection,
        "UPDATE sessions SET revoked_at = ?, revoke_reason = ? WHERE id = ? AND revoked_at IS NULL",
        params![at.unix_micros(), reason, id.to_string()],
    )
    .map(drop)
}

/// Reads the session back and appends its audit event: the tail of every session write.
fn finish_with_audit(tx: &mut Tx<'_>, id: &SessionId, audit: &AuditEvent) -> Result<SessionRecord> {
    let session = fetch_session(tx.connection, id)?;
    append(tx, audit)?;
    Ok(session)
}

/// The refresh token row presented for a rotation: its session, expiry and whether it was used.
fn presented_refresh(connection: &Connection, hash: &TokenHash) -> Result<(SessionId, Timestamp, bool)> {
    one(
        connection,
        "refresh token",
        "SELECT session_id, expires_at, used_at FROM refresh_tokens WHERE hash = ?",
        [hash.as_bytes().as_slice()],
        |row| {
            let session_id = row.text(Column { index: 0, name: "refresh_tokens.session_id" })?;
            Ok((
                column("refresh_tokens.session_id", SessionId::parse(&session_id))?,
                Timestamp::from_unix_micros(row.integer(Column { index: 1, name: "refresh_tokens.expires_at" })?),
                row.optional_integer(Column { index: 2, name: "refresh_tokens.used_at" })?.is_some(),
            ))
        },
    )
}

#[async_trait]
impl SessionStore for SqliteStore {
    async fn start_session(&self, start: &SessionStart, audit: &AuditEvent) -> Result<SessionRecord> {
        let (start, audit) = (start.clone(), audit.clone());
        self.write(move |tx| {
            let (status, locked_until, hash) = one(
                tx.connection,
                "user",
                "SELECT status, locked_until, password_hash FROM users WHERE id = ?",
                [start.user_id.to_string()],
                |row| {
                    Ok((
                        row.text(Column { index: 0, name: "users.status" })?,
                        row.optional_integer(Column { index: 1, name: "users.locked_until" })?,
                        row.text(Column { index: 2, name: "users.password_hash" })?,
                    ))
                },
            )?;
            let locked = locked_until.is_some_and(|until| until > start.created_at.unix_micros());
            if status != UserStatus::Active.as_str() || locked || hash != start.checked_password_hash.as_str() {
                return Err(StoreError::Conflict("the user cannot log in now".to_owned()));
            }
            execute(
                tx.connection,
                "INSERT INTO sessions (id, user_id, generation, created_at, expires_at, ip) VALUES (?, ?, 1, ?, ?, ?)",
                params![
                    start.id.to_string(),
                    start.user_id.to_string(),
                    start.created_at.unix_micros(),
                    start.refresh.expires_at.unix_micros(),
                    start.ip.map(|ip| ip.to_string()),
                ],
            )?;
            insert_refresh(tx.connection, &start.refresh, &start.id, 1, start.created_at)?;
            execute(
                tx.connection,
                "UPDATE users SET failed_logins = 0, locked_until = NULL, last_login_at = ? WHERE id = ?",
                params![start.created_at.unix_micros(), start.user_id.to_string()],
            )?;
            finish_with_audit(tx, &start.id, &audit)
        })
        .await
    }

    async fn session(&self, id: &SessionId) -> Result<SessionRecord> {
        let id = *id;
        self.point(move |connection| fetch_session(connection, &id)).await
    }

    async fn session_with_user(&self, id: &SessionId) -> Result<Option<SessionWithUser>> {
        let sql = format!(
            "SELECT {COLUMNS}, {} FROM sessions JOIN users ON users.id = sessions.user_id WHERE sessions.id = ?",
            user_columns("users")
        );
        let id = *id;
        self.point(move |connection| {
            first(connection, &sql, [id.to_string()], |row| {
                Ok(SessionWithUser { session: session_from_row(row)?, user: user_from_row(row, COLUMN_NAMES.len())? })
            })
        })
        .await
    }

    async fn refresh_token(&self, hash: &TokenHash) -> Result<Option<RefreshLookup>> {
        let sql = format!(
            "SELECT {COLUMNS}, refresh_tokens.generation, refresh_tokens.expires_at, refresh_tokens.used_at
             FROM refresh_tokens JOIN sessions ON sessions.id = refresh_tokens.session_id
             WHERE refresh_tokens.hash = ?"
        );
        let hash = *hash;
        self.point(move |connection| {
            first(connection, &sql, [hash.as_bytes().as_slice()], |row| {
                let base = COLUMN_NAMES.len();
                let generation = row.integer(Column { index: base, name: "refresh_tokens.generation" })?;
                Ok(RefreshLookup {
                    session: session_from_row(row)?,
                    generation: column("refresh_tokens.generation", u32::try_from(generation))?,
                    expires_at: Timestamp::from_unix_micros(
                        row.integer(Column { index: base + 1, name: "refresh_tokens.expires_at" })?,
                    ),
                    used_at: row
                        .optional_integer(Column { index: base + 2, name: "refresh_tokens.used_at" })?
                        .map(Timestamp::from_unix_micros),
                })
            })
        })
        .await
    }

    async fn rotate_refresh(
        &self,
        rotation: &RefreshRotation,
        rotated: &AuditEvent,
        reused: &AuditEvent,
    ) -> Result<RefreshOutcome> {
        let (rotation, rotated, reused) = (rotation.clone(), rotated.clone(), reused.clone());
        self.write(move |tx| {
            let (session_id, token_expires_at, used) = presented_refresh(tx.connection, &rotation.presented)?;
            let session = fetch_session(tx.connection, &session_id)?;
            if session.revoked_at.is_some() {
                return Ok(RefreshOutcome::Ended { session });
            }
            if used {
                revoke(tx.connection, &session_id, "refresh token reused", rotation.at)?;
                let session = finish_with_audit(tx, &session_id, &reused)?;
                return Ok(RefreshOutcome::Reused { session });
            }
            let user = fetch_user(tx.connection, &session.user_id)?;
            if token_expires_at <= rotation.at || !session.is_live(rotation.at) || user.status != UserStatus::Active {
                return Ok(RefreshOutcome::Ended { session });
            }
            execute(
                tx.connection,
                "UPDATE refresh_tokens SET used_at = ? WHERE hash = ? AND used_at IS NULL",
                params![rotation.at.unix_micros(), rotation.presented.as_bytes().as_slice()],
            )?;
            let generation = session.generation.saturating_add(1);
            insert_refresh(tx.connection, &rotation.next, &session_id, generation, rotation.at)?;
            execute(
                tx.connection,
                "UPDATE sessions SET generation = ?, refreshed_at = ?, expires_at = ? WHERE id = ?",
                params![
                    i64::from(generation),
                    rotation.at.unix_micros(),
                    rotation.next.expires_at.unix_micros(),
                    session_id.to_string()
                ],
            )?;
            let session = finish_with_audit(tx, &session_id, &rotated)?;
            Ok(RefreshOutcome::Rotated { session, user })
        })
        .await
    }

    async fn revoke_session(&self, id: &SessionId, reason: &str, audit: &AuditEvent) -> Result<SessionRecord> {
        let (id, reason, audit) = (*id, reason.to_owned(), audit.clone());
        self.write(move |tx| {
            let current = fetch_session(tx.connection, &id)?;
            if current.revoked_at.is_some() {
                return Ok(current);
            }
            revoke(tx.connection, &id, &reason, audit.at)?;
            finish_with_audit(tx, &id, &audit)
        })
        .await
    }

    async fn list_sessions(&self, user_id: &UserId, page: &PageRequest) -> Result<Page<SessionRecord>> {
        let before = match &page.cursor {
            Some(cursor) => SessionId::parse(cursor).map_err(|_| StoreError::InvalidCursor)?.to_string(),
            None => "~".to_owned(), // sorts after every `ses_…` id
        };
        let (user_id, limit) = (*user_id, page.limit);
        let items = self
            .scan(move |connection| {
                collect(
                    connection,
                    &format!("SELECT {COLUMNS} FROM sessions WHERE user_id = ? AND id < ? ORDER BY id DESC LIMIT ?"),
                    params![user_id.to_string(), before, i64::from(limit) + 1],
                    session_from_row,
                )
            })
            .await?;
        Ok(Page::from_overfetch(items, page.limit, |session| session.id.to_string()))
    }

    async fn delete_ended_sessions(&self, cutoff: Timestamp, audit: &AuditEvent) -> Result<u64> {
        let sql = "DELETE FROM sessions WHERE revoked_at < ?1 OR expires_at < ?1";
        delete_before_with_audit(self, sql, cutoff, audit).await
    }
}
