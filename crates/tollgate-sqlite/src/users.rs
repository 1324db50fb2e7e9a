//! User storage on SQLite: accounts, status changes (revoking sessions and tokens in the same
//! transaction), roles, passwords and failed-login counting.

use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, Sqlite, SqliteConnection, Transaction};
use tollgate_store::{
    LoginFailure, Page, PageRequest, PasswordChange, Result, StatusChange, StatusChanged, StoreError, UserCredentials,
    UserFilter, UserInsert, UserStore,
};
use tollgate_types::{AuditEvent, Email, Role, Timestamp, TokenId, UserId, UserRecord, UserStatus, Username};

use crate::SqliteStore;
use crate::audit::append;
use crate::error::{SqlxResultExt, corrupt};
use crate::user_email::{UniqueColumn, credentials_by, set_user_email};

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

/// `USER_COLUMNS` qualified by `table` and renamed with `prefix`, for SELECT lists and joins.
pub(crate) fn user_columns(table: &str, prefix: &str) -> String {
    USER_COLUMNS.iter().map(|column| format!("{table}.{column} AS {prefix}{column}")).collect::<Vec<_>>().join(", ")
}

pub(crate) fn column<T, E: std::fmt::Display>(name: &str, parsed: std::result::Result<T, E>) -> Result<T> {
    parsed.map_err(|error| corrupt(&format!("users.{name}"), error))
}

/// Reads a user from columns named `<prefix><column>`.
pub(crate) fn user_from_row(row: &SqliteRow, prefix: &str) -> Result<UserRecord> {
    let get_text = |name: &str| -> String { row.get(format!("{prefix}{name}").as_str()) };
    let get_int = |name: &str| -> i64 { row.get(format!("{prefix}{name}").as_str()) };
    let get_micros = |name: &str| -> Option<Timestamp> {
        row.get::<Option<i64>, _>(format!("{prefix}{name}").as_str()).map(Timestamp::from_unix_micros)
    };
    Ok(UserRecord {
        id: column("id", UserId::parse(&get_text("id")))?,
        username: column("username", Username::parse(&get_text("username")))?,
        email: column("email", Email::parse(&get_text("email")))?,
        role: column("role", get_text("role").parse::<Role>())?,
        status: column("status", get_text("status").parse::<UserStatus>())?,
        status_reason: row.get(format!("{prefix}status_reason").as_str()),
        must_change_password: get_int("must_change_password") != 0,
        failed_logins: column("failed_logins", u32::try_from(get_int("failed_logins")))?,
        locked_until: get_micros("locked_until"),
        created_at: Timestamp::from_unix_micros(get_int("created_at")),
        updated_at: Timestamp::from_unix_micros(get_int("updated_at")),
        password_changed_at: Timestamp::from_unix_micros(get_int("password_changed_at")),
        last_login_at: get_micros("last_login_at"),
    })
}

/// The user with `id`, read inside the caller's transaction.
pub(crate) async fn fetch_user(connection: &mut SqliteConnection, id: &UserId) -> Result<UserRecord> {
    let row = sqlx::query(&format!("SELECT {} FROM users WHERE id = ?", user_columns("users", "")))
        .bind(id.to_string())
        .fetch_optional(&mut *connection)
        .await
        .store()?
        .ok_or(StoreError::NotFound { entity: "user" })?;
    user_from_row(&row, "")
}

/// Whether an active admin other than `id` exists (the last-admin rule).
async fn another_active_admin(connection: &mut SqliteConnection, id: &UserId) -> Result<bool> {
    let row = sqlx::query("SELECT EXISTS (SELECT 1 FROM users WHERE role = 'admin' AND status = 'active' AND id <> ?)")
        .bind(id.to_string())
        .fetch_one(&mut *connection)
        .await
        .store()?;
    Ok(row.get::<i64, _>(0) == 1)
}

fn last_admin() -> StoreError {
    StoreError::Conflict("the last active admin cannot be demoted, suspended or deleted".to_owned())
}

/// Revokes every live session of `user_id`; returns how many.
pub(crate) async fn revoke_user_sessions(
    connection: &mut SqliteConnection,
    user_id: &UserId,
    reason: &str,
    at: Timestamp,
) -> Result<u64> {
    Ok(sqlx::query("UPDATE sessions SET revoked_at = ?, revoke_reason = ? WHERE user_id = ? AND revoked_at IS NULL")
        .bind(at.unix_micros())
        .bind(reason)
        .bind(user_id.to_string())
        .execute(&mut *connection)
        .await
        .store()?
        .rows_affected())
}

/// Revokes the live tokens of a user (by `user_id`, or by owner name for tokens issued without one),
/// writing a `token.revoke` event for each.
async fn revoke_user_tokens(
    connection: &mut SqliteConnection,
    user: &UserRecord,
    reason: &str,
    audit: &AuditEvent,
) -> Result<Vec<TokenId>> {
    let rows = sqlx::query(&format!(
        "SELECT {} FROM tokens WHERE revoked_at IS NULL AND (user_id = ?1 OR (user_id IS NULL AND owner = ?2)) ORDER BY id",
        crate::tokens::COLUMNS
    ))
    .bind(user.id.to_string())
    .bind(user.username.as_str())
    .fetch_all(&mut *connection)
    .await
    .store()?;
    let mut revoked = Vec::with_capacity(rows.len());
    for row in &rows {
        let token = crate::tokens::record_from_row(row)?;
        sqlx::query(
            "UPDATE tokens SET revoked_at = ?1, revoke_reason = ?2, updated_at = ?1, previous_hash = NULL,
                previous_key_id = NULL, previous_valid_until = NULL
             WHERE id = ?3",
        )
        .bind(audit.at.unix_micros())
        .bind(reason)
        .bind(token.id.to_string())
        .execute(&mut *connection)
        .await
        .store()?;
        let mut event = AuditEvent::new(audit.actor.clone(), "token.revoke", token.id, audit.at);
        event.before = serde_json::to_value(&token).ok();
        event.reason = Some(reason.to_owned());
        event.ip = audit.ip;
        append(&mut *connection, &event).await?;
        revoked.push(token.id);
    }
    Ok(revoked)
}

/// Reads the changed user back, appends its audit event and commits: the tail of every user write.
pub(crate) async fn commit_user_with_audit(
    mut transaction: Transaction<'static, Sqlite>,
    id: &UserId,
    audit: &AuditEvent,
) -> Result<UserRecord> {
    let record = fetch_user(&mut transaction, id).await?;
    append(&mut transaction, audit).await?;
    transaction.commit().await.store()?;
    Ok(record)
}

#[async_trait]
impl UserStore for SqliteStore {
    async fn insert_user(&self, insert: &UserInsert, audit: &AuditEvent) -> Result<UserRecord> {
        let user = &insert.user;
        let mut transaction = self.write().await?;
        let taken =
            sqlx::query("SELECT username = ?1 AS same_name FROM users WHERE username = ?1 OR email = ?2 LIMIT 1")
                .bind(user.username.as_str())
                .bind(user.email.as_str())
                .fetch_optional(&mut *transaction)
                .await
                .store()?;
        if let Some(row) = taken {
            let what = if row.get::<i64, _>("same_name") == 1 { "username" } else { "email" };
            return Err(StoreError::Conflict(format!("{what} is already taken")));
        }
        let at = insert.created_at.unix_micros();
        sqlx::query(
            "INSERT INTO users (id, username, email, password_hash, role, must_change_password, created_at, updated_at,
                password_changed_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(insert.id.to_string())
        .bind(user.username.as_str())
        .bind(user.email.as_str())
        .bind(insert.password_hash.as_str())
        .bind(user.role.as_str())
        .bind(i64::from(user.must_change_password))
        .bind(at)
        .bind(at)
        .bind(at)
        .execute(&mut *transaction)
        .await
        .store()?;
        commit_user_with_audit(transaction, &insert.id, audit).await
    }

    async fn user(&self, id: &UserId) -> Result<UserRecord> {
        let row = sqlx::query(&format!("SELECT {} FROM users WHERE id = ?", user_columns("users", "")))
            .bind(id.to_string())
            .fetch_optional(&self.reader)
            .await
            .store()?
            .ok_or(StoreError::NotFound { entity: "user" })?;
        user_from_row(&row, "")
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
            user_columns("users", "")
        );
        let rows = sqlx::query(&sql)
            .bind(before)
            .bind(filter.role.map(Role::as_str))
            .bind(filter.status.map(UserStatus::as_str))
            .bind(pattern)
            .bind(i64::from(page.limit) + 1)
            .fetch_all(&self.reader)
            .await
            .store()?;
        let mut items = rows.iter().map(|row| user_from_row(row, "")).collect::<Result<Vec<_>>>()?;
        let next_cursor = if items.len() > page.limit as usize {
            items.truncate(page.limit as usize);
            items.last().map(|record| record.id.to_string())
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }

    async fn set_user_status(&self, change: &StatusChange, audit: &AuditEvent) -> Result<StatusChanged> {
        let mut transaction = self.write().await?;
        let current = fetch_user(&mut transaction, &change.id).await?;
        if current.status == change.status {
            return Ok(StatusChanged { record: current, revoked_tokens: Vec::new(), revoked_sessions: 0 });
        }
        if current.status == UserStatus::Deleted {
            return Err(StoreError::Conflict("user is deleted".to_owned()));
        }
        if current.role == Role::Admin
            && current.status == UserStatus::Active
            && !another_active_admin(&mut transaction, &change.id).await?
        {
            return Err(last_admin());
        }
        sqlx::query("UPDATE users SET status = ?, status_reason = ?, updated_at = ? WHERE id = ?")
            .bind(change.status.as_str())
            .bind(change.reason.as_deref())
            .bind(change.at.unix_micros())
            .bind(change.id.to_string())
            .execute(&mut *transaction)
            .await
            .store()?;
        let record = fetch_user(&mut transaction, &change.id).await?;
        let (revoked_sessions, revoked_tokens) = if change.status == UserStatus::Active {
            append(&mut transaction, audit).await?;
            (0, Vec::new())
        } else {
            let why = format!("user {}", change.status);
            let sessions = revoke_user_sessions(&mut transaction, &change.id, &why, change.at).await?;
            let mut event = audit.clone();
            if let Some(serde_json::Value::Object(after)) = &mut event.after {
                after.insert("sessions_revoked".to_owned(), sessions.into());
            }
            append(&mut transaction, &event).await?;
            let reason = match &change.reason {
                Some(reason) => format!("{why}: {reason}"),
                None => why,
            };
            let reason: String = reason.chars().take(1024).collect();
            (sessions, revoke_user_tokens(&mut transaction, &current, &reason, audit).await?)
        };
        transaction.commit().await.store()?;
        Ok(StatusChanged { record, revoked_tokens, revoked_sessions })
    }

    async fn set_user_role(&self, id: &UserId, role: Role, at: Timestamp, audit: &AuditEvent) -> Result<UserRecord> {
        let mut transaction = self.write().await?;
        let current = fetch_user(&mut transaction, id).await?;
        if current.status == UserStatus::Deleted {
            return Err(StoreError::Conflict("user is deleted".to_owned()));
        }
        if current.role == role {
            return Ok(current);
        }
        if current.role == Role::Admin
            && current.status == UserStatus::Active
            && !another_active_admin(&mut transaction, id).await?
        {
            return Err(last_admin());
        }
        sqlx::query("UPDATE users SET role = ?, updated_at = ? WHERE id = ?")
            .bind(role.as_str())
            .bind(at.unix_micros())
            .bind(id.to_string())
            .execute(&mut *transaction)
            .await
            .store()?;
        commit_user_with_audit(transaction, id, audit).await
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
        let mut transaction = self.write().await?;
        let current = fetch_user(&mut transaction, &change.id).await?;
        if current.status == UserStatus::Deleted {
            return Err(StoreError::Conflict("user is deleted".to_owned()));
        }
        sqlx::query(
            "UPDATE users SET password_hash = ?1, must_change_password = ?2, password_changed_at = ?3, updated_at = ?3
             WHERE id = ?4",
        )
        .bind(change.password_hash.as_str())
        .bind(i64::from(change.must_change_password))
        .bind(change.at.unix_micros())
        .bind(change.id.to_string())
        .execute(&mut *transaction)
        .await
        .store()?;
        revoke_user_sessions(&mut transaction, &change.id, "password changed", change.at).await?;
        commit_user_with_audit(transaction, &change.id, audit).await
    }

    async fn unlock_user(&self, id: &UserId, at: Timestamp, audit: &AuditEvent) -> Result<UserRecord> {
        let mut transaction = self.write().await?;
        let current = fetch_user(&mut transaction, id).await?;
        if current.failed_logins == 0 && current.locked_until.is_none() {
            return Ok(current);
        }
        sqlx::query("UPDATE users SET failed_logins = 0, locked_until = NULL, updated_at = ? WHERE id = ?")
            .bind(at.unix_micros())
            .bind(id.to_string())
            .execute(&mut *transaction)
            .await
            .store()?;
        commit_user_with_audit(transaction, id, audit).await
    }

    async fn record_login_failure(&self, failure: &LoginFailure, audit: &AuditEvent) -> Result<UserRecord> {
        let mut transaction = self.write().await?;
        let current = fetch_user(&mut transaction, &failure.id).await?;
        if current.is_locked(failure.at) {
            append(&mut transaction, audit).await?;
            transaction.commit().await.store()?;
            return Ok(current);
        }
        let failures = current.failed_logins.saturating_add(1);
        let locks = failures >= failure.max_failures.max(1);
        let locked_until = locks.then(|| failure.at.saturating_add(failure.lock_for));
        sqlx::query("UPDATE users SET failed_logins = ?, locked_until = ? WHERE id = ?")
            .bind(if locks { 0 } else { i64::from(failures) })
            .bind(locked_until.map(Timestamp::unix_micros))
            .bind(failure.id.to_string())
            .execute(&mut *transaction)
            .await
            .store()?;
        let record = fetch_user(&mut transaction, &failure.id).await?;
        append(&mut transaction, audit).await?;
        if let Some(until) = locked_until {
            let mut lock = AuditEvent::new(audit.actor.clone(), "user.lock", failure.id, failure.at);
            lock.after = Some(serde_json::json!({ "locked_until": until, "failed_logins": failures }));
            lock.reason = Some(format!("{failures} failed logins"));
            lock.ip = audit.ip;
            append(&mut transaction, &lock).await?;
        }
        transaction.commit().await.store()?;
        Ok(record)
    }
}
