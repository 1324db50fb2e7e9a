//! User storage on SQLite: accounts, status changes (revoking sessions and tokens in the same
//! transaction), roles, passwords and failed-login counting.

use async_trait::async_trait;
use rusqlite::{Connection, Row, params};
use tollgate_store::{
    LoginFailure, Page, PageRequest, PasswordChange, Result, StatusChange, StatusChanged, StoreError, UserCredentials,
    UserFilter, UserInsert, UserStore,
};
use tollgate_types::{
    AuditEvent, Email, PasswordHash, Role, Timestamp, TokenId, UserId, UserRecord, UserStatus, Username,
};

use crate::SqliteStore;
use crate::audit::append;
use crate::columns::{Column, Columns, collect, execute, first, one, scalar};
use crate::error::corrupt;
use crate::user_email::{UniqueColumn, credentials_by, set_user_email};
use crate::writer::Tx;

/// The user columns, in the order [`user_from_row`] reads them.
pub(crate) const USER_COLUMNS: [&str; 13] = [
    "id",
    "username",
    "email",
    "role",
    "status",
    "status_reason",
    "must_change_password",
    "failed_logins",
    "locked_until",
    "created_at",
    "updated_at",
    "password_changed_at",
    "last_login_at",
];

/// `USER_COLUMNS` qualified by `table`, for SELECT lists and joins; read back with
/// [`user_from_row`] at the position the list starts.
pub(crate) fn user_columns(table: &str) -> String {
    USER_COLUMNS.iter().map(|column| format!("{table}.{column}")).collect::<Vec<_>>().join(", ")
}

pub(crate) fn column<T, E: std::fmt::Display>(name: &str, parsed: std::result::Result<T, E>) -> Result<T> {
    parsed.map_err(|error| corrupt(&format!("users.{name}"), error))
}

/// Reads a user from the [`USER_COLUMNS`] starting at position `offset`.
pub(crate) fn user_from_row(row: &Row<'_>, offset: usize) -> Result<UserRecord> {
    let at = |index: usize| Column { index: offset + index, name: USER_COLUMNS[index] };
    let micros = |index: usize| -> Result<Option<Timestamp>> {
        Ok(row.optional_integer(at(index))?.map(Timestamp::from_unix_micros))
    };
    Ok(UserRecord {
        id: column("id", UserId::parse(&row.text(at(0))?))?,
        username: column("username", Username::parse(&row.text(at(1))?))?,
        email: column("email", Email::parse(&row.text(at(2))?))?,
        role: column("role", row.text(at(3))?.parse::<Role>())?,
        status: column("status", row.text(at(4))?.parse::<UserStatus>())?,
        status_reason: row.optional_text(at(5))?,
        must_change_password: row.integer(at(6))? != 0,
        failed_logins: column("failed_logins", u32::try_from(row.integer(at(7))?))?,
        locked_until: micros(8)?,
        created_at: Timestamp::from_unix_micros(row.integer(at(9))?),
        updated_at: Timestamp::from_unix_micros(row.integer(at(10))?),
        password_changed_at: Timestamp::from_unix_micros(row.integer(at(11))?),
        last_login_at: micros(12)?,
    })
}

/// The user with `id`, read on `connection`.
pub(crate) fn fetch_user(connection: &Connection, id: &UserId) -> Result<UserRecord> {
    let sql = format!("SELECT {} FROM users WHERE id = ?", user_columns("users"));
    one(connection, "user", &sql, [id.to_string()], |row| user_from_row(row, 0))
}

/// Whether an active admin other than `id` exists (the last-admin rule).
fn another_active_admin(connection: &Connection, id: &UserId) -> Result<bool> {
    let exists: i64 = scalar(
        connection,
        "SELECT EXISTS (SELECT 1 FROM users WHERE role = 'admin' AND status = 'active' AND id <> ?)",
        [id.to_string()],
    )?;
    Ok(exists == 1)
}

fn last_admin() -> StoreError {
    StoreError::Conflict("the last active admin cannot be demoted, suspended or deleted".to_owned())
}

/// Revokes every live session of `user_id`; returns how many.
pub(crate) fn revoke_user_sessions(
    connection: &Connection,
    user_id: &UserId,
    reason: &str,
    at: Timestamp,
) -> Result<u64> {
    execute(
        connection,
        "UPDATE sessions SET revoked_at = ?, revoke_reason = ? WHERE user_id = ? AND revoked_at IS NULL",
        params![at.unix_micros(), reason, user_id.to_string()],
    )
}

/// Revokes the live tokens of an owner, writing a `token.revoke` event for each.
fn revoke_user_tokens(tx: &mut Tx<'_>, user: &UserRecord, reason: &str, audit: &AuditEvent) -> Result<Vec<TokenId>> {
    crate::tokens::revoke_where(tx, "owner_id = ?1", &[user.id.to_string()], reason, audit)
}

/// Reads the changed user back and appends its audit event: the tail of every user write.
pub(crate) fn finish_user_with_audit(tx: &mut Tx<'_>, id: &UserId, audit: &AuditEvent) -> Result<UserRecord> {
    let record = fetch_user(tx.connection, id)?;
    append(tx, audit)?;
    Ok(record)
}

#[async_trait]
impl UserStore for SqliteStore {
    async fn insert_user(&self, insert: &UserInsert, audit: &AuditEvent) -> Result<UserRecord> {
        let (insert, audit) = (insert.clone(), audit.clone());
        self.write(move |tx| {
            let user = &insert.user;
            let taken = first(
                tx.connection,
                "SELECT username = ?1 FROM users WHERE username = ?1 OR email = ?2 LIMIT 1",
                params![user.username.as_str(), user.email.as_str()],
                |row| row.value::<i64>(Column { index: 0, name: "same_name" }),
            )?;
            if let Some(same_name) = taken {
                let what = if same_name == 1 { "username" } else { "email" };
                return Err(StoreError::Conflict(format!("{what} is already taken")));
            }
            let at = insert.created_at.unix_micros();
            execute(
                tx.connection,
                "INSERT INTO users (id, username, email, password_hash, role, must_change_password, created_at,
                    updated_at, password_changed_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                params![
                    insert.id.to_string(),
                    user.username.as_str(),
                    user.email.as_str(),
                    insert.password_hash.as_str(),
                    user.role.as_str(),
                    i64::from(user.must_change_password),
                    at,
                    at,
                    at,
                ],
            )?;
            finish_user_with_audit(tx, &insert.id, &audit)
        })
        .await
    }

    async fn user(&self, id: &UserId) -> Result<UserRecord> {
        let id = *id;
        self.point(move |connection| fetch_user(connection, &id)).await
    }

    async fn user_credentials(&self, username: &Username) -> Result<Option<UserCredentials>> {
        credentials_by(self, UniqueColumn::Username, username.as_str()).await
    }

    async fn user_by_email(&self, email: &Email) -> Result<Option<UserCredentials>> {
        credentials_by(self, UniqueColumn::Email, email.as_str()).await
    }

    async fn list_users(&self, filter: &UserFilter, page: &PageRequest) -> Result<Page<UserRecord>> {
        let before = match &page.cursor {
            Some(cursor) => UserId::parse(cursor).map_err(|_| StoreError::InvalidCursor)?.to_string(),
            None => "~".to_owned(), // sorts after every `usr_…` id
        };
        let pattern = filter.search.as_deref().map(|text| {
            let escaped = text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
            format!("%{escaped}%")
        });
        let sql = format!(
            "SELECT {} FROM users
             WHERE id < ?1 AND (?2 IS NULL OR role = ?2) AND (?3 IS NULL OR status = ?3)
               AND (?4 IS NULL OR username LIKE ?4 ESCAPE '\\' OR email LIKE ?4 ESCAPE '\\')
             ORDER BY id DESC LIMIT ?5",
            user_columns("users")
        );
        let (role, status, limit) = (filter.role, filter.status, page.limit);
        let items = self
            .scan(move |connection| {
                collect(
                    connection,
                    &sql,
                    params![
                        before,
                        role.map(Role::as_str),
                        status.map(UserStatus::as_str),
                        pattern,
                        i64::from(limit) + 1
                    ],
                    |row| user_from_row(row, 0),
                )
            })
            .await?;
        Ok(Page::from_overfetch(items, page.limit, |record| record.id.to_string()))
    }

    async fn set_user_status(&self, change: &StatusChange, audit: &AuditEvent) -> Result<StatusChanged> {
        let (change, audit) = (change.clone(), audit.clone());
        self.write(move |tx| {
            let current = fetch_user(tx.connection, &change.id)?;
            if current.status == change.status {
                return Ok(StatusChanged { record: current, revoked_tokens: Vec::new(), revoked_sessions: 0 });
            }
            if current.status == UserStatus::Deleted {
                return Err(StoreError::Conflict("user is deleted".to_owned()));
            }
            if current.role == Role::Admin
                && current.status == UserStatus::Active
                && !another_active_admin(tx.connection, &change.id)?
            {
                return Err(last_admin());
            }
            execute(
                tx.connection,
                "UPDATE users SET status = ?, status_reason = ?, updated_at = ? WHERE id = ?",
                params![
                    change.status.as_str(),
                    change.reason.as_deref(),
                    change.at.unix_micros(),
                    change.id.to_string()
                ],
            )?;
            let record = fetch_user(tx.connection, &change.id)?;
            let (revoked_sessions, revoked_tokens) = if change.status == UserStatus::Active {
                append(tx, &audit)?;
                (0, Vec::new())
            } else {
                let why = format!("user {}", change.status);
                let sessions = revoke_user_sessions(tx.connection, &change.id, &why, change.at)?;
                let mut event = audit.clone();
                if let Some(serde_json::Value::Object(after)) = &mut event.after {
                    after.insert("sessions_revoked".to_owned(), sessions.into());
                }
                append(tx, &event)?;
                let reason = match &change.reason {
                    Some(reason) => format!("{why}: {reason}"),
                    None => why,
                };
                let reason: String = reason.chars().take(1024).collect();
                (sessions, revoke_user_tokens(tx, &current, &reason, &audit)?)
            };
            Ok(StatusChanged { record, revoked_tokens, revoked_sessions })
        })
        .await
    }

    async fn set_user_role(&self, id: &UserId, role: Role, at: Timestamp, audit: &AuditEvent) -> Result<UserRecord> {
        let (id, audit) = (*id, audit.clone());
        self.write(move |tx| {
            let current = fetch_user(tx.connection, &id)?;
            if current.status == UserStatus::Deleted {
                return Err(StoreError::Conflict("user is deleted".to_owned()));
            }
            if current.role == role {
                return Ok(current);
            }
            if current.role == Role::Admin
                && current.status == UserStatus::Active
                && !another_active_admin(tx.connection, &id)?
            {
                return Err(last_admin());
            }
            execute(
                tx.connection,
                "UPDATE users SET role = ?, updated_at = ? WHERE id = ?",
                params![role.as_str(), at.unix_micros(), id.to_string()],
            )?;
            finish_user_with_audit(tx, &id, &audit)
        })
        .await
    }

    async fn set_user_email(
        &self,
        id: &UserId,
        email: &Email,
        at: Timestamp,
        audit: &AuditEvent,
    ) -> Result<UserRecord> {
        set_user_email(self, id, email, at, audit).await
    }

    async fn set_password(&self, change: &PasswordChange, audit: &AuditEvent) -> Result<UserRecord> {
        let (change, audit) = (change.clone(), audit.clone());
        self.write(move |tx| {
            let current = fetch_user(tx.connection, &change.id)?;
            if current.status == UserStatus::Deleted {
                return Err(StoreError::Conflict("user is deleted".to_owned()));
            }
            execute(
                tx.connection,
                "UPDATE users SET password_hash = ?1, must_change_password = ?2, password_changed_at = ?3,
                    updated_at = ?3
                 WHERE id = ?4",
                params![
                    change.password_hash.as_str(),
                    i64::from(change.must_change_password),
                    change.at.unix_micros(),
                    change.id.to_string()
                ],
            )?;
            revoke_user_sessions(tx.connection, &change.id, "password changed", change.at)?;
            finish_user_with_audit(tx, &change.id, &audit)
        })
        .await
    }

    async fn rehash_password(
        &self,
        id: &UserId,
        old: &PasswordHash,
        new: &PasswordHash,
        audit: &AuditEvent,
    ) -> Result<bool> {
        let (id, old, new, audit) = (*id, old.clone(), new.clone(), audit.clone());
        self.write(move |tx| {
            let replaced = execute(
                tx.connection,
                "UPDATE users SET password_hash = ?1, updated_at = ?2 WHERE id = ?3 AND password_hash = ?4",
                params![new.as_str(), audit.at.unix_micros(), id.to_string(), old.as_str()],
            )? == 1;
            if replaced {
                append(tx, &audit)?;
            }
            Ok(replaced)
        })
        .await
    }

    async fn unlock_user(&self, id: &UserId, at: Timestamp, audit: &AuditEvent) -> Result<UserRecord> {
        let (id, audit) = (*id, audit.clone());
        self.write(move |tx| {
            let current = fetch_user(tx.connection, &id)?;
            if current.failed_logins == 0 && current.locked_until.is_none() {
                return Ok(current);
            }
            execute(
                tx.connection,
                "UPDATE users SET failed_logins = 0, locked_until = NULL, updated_at = ? WHERE id = ?",
                params![at.unix_micros(), id.to_string()],
            )?;
            finish_user_with_audit(tx, &id, &audit)
        })
        .await
    }

    async fn record_login_failure(&self, failure: &LoginFailure, audit: &AuditEvent) -> Result<UserRecord> {
        let (failure, audit) = (*failure, audit.clone());
        self.write(move |tx| {
            let current = fetch_user(tx.connection, &failure.id)?;
            if current.is_locked(failure.at) {
                if !failure.suppressed {
                    append(tx, &audit)?;
                }
                return Ok(current);
            }
            let failures = current.failed_logins.saturating_add(1);
            let locks = failures >= failure.max_failures.max(1);
            let locked_until = locks.then(|| failure.at.saturating_add(failure.lock_for));
            execute(
                tx.connection,
                "UPDATE users SET failed_logins = ?, locked_until = ? WHERE id = ?",
                params![
                    if locks { 0 } else { i64::from(failures) },
                    locked_until.map(Timestamp::unix_micros),
                    failure.id.to_string()
                ],
            )?;
            let record = fetch_user(tx.connection, &failure.id)?;
            if !failure.suppressed {
                append(tx, &audit)?;
            }
            if let Some(until) = locked_until {
                let mut lock = AuditEvent::new(audit.actor.clone(), "user.lock", failure.id, failure.at);
                lock.after = Some(serde_json::json!({ "locked_until": until, "failed_logins": failures }));
                lock.reason = Some(format!("{failures} failed logins"));
                lock.ip = audit.ip;
                append(tx, &lock)?;
            }
            Ok(record)
        })
        .await
    }
}
