//! User storage on PostgreSQL: accounts, status changes (revoking sessions and tokens in the same
//! transaction), roles, passwords and failed-login counting.
//!
//! Every change locks the user's row first (`FOR UPDATE`), so concurrent changes to one user apply
//! one after the other. A change that may take away an active admin locks every active admin's row
//! too, in id order: two admins demoting each other at once cannot both see the other as the one
//! that remains.

use async_trait::async_trait;
use sqlx::PgConnection;
use sqlx::postgres::PgRow;
use tollgate_store::{
    LoginFailure, Page, PageRequest, PasswordChange, Result, StatusChange, StatusChanged, StoreError, UserCredentials,
    UserFilter, UserInsert, UserStore,
};
use tollgate_types::{AuditEvent, Email, PasswordHash, Role, Timestamp, UserId, UserRecord, UserStatus, Username};

use crate::PgStore;
use crate::error::PgResultExt;
use crate::rows::{get, optional_time, parsed, time};
use crate::store::{PgTx, retrying};
use crate::user_email::{UniqueColumn, credentials_by, set_user_email};

/// The user columns, selected from `users` under their own names.
const USER_COLUMNS: [&str; 13] = [
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

/// The user columns of `users`, each aliased `<prefix><column>` (for joins with other tables).
pub(crate) fn user_columns(prefix: &str) -> String {
    USER_COLUMNS.iter().map(|column| format!("users.{column} AS {prefix}{column}")).collect::<Vec<_>>().join(", ")
}

/// Reads a user from the columns [`user_columns`] selected with `prefix`.
pub(crate) fn user_from_row(row: &PgRow, prefix: &str) -> Result<UserRecord> {
    let name = |column: &str| format!("{prefix}{column}");
    let text = |column: &str| -> Result<String> { get(row, "users", &name(column)) };
    Ok(UserRecord {
        id: parsed("users", "id", UserId::parse(&text("id")?))?,
        username: parsed("users", "username", Username::parse(&text("username")?))?,
        email: parsed("users", "email", Email::parse(&text("email")?))?,
        role: parsed("users", "role", text("role")?.parse::<Role>())?,
        status: parsed("users", "status", text("status")?.parse::<UserStatus>())?,
        status_reason: get(row, "users", &name("status_reason"))?,
        must_change_password: get(row, "users", &name("must_change_password"))?,
        failed_logins: parsed(
            "users",
            "failed_logins",
            u32::try_from(get::<i64>(row, "users", &name("failed_logins"))?),
        )?,
        locked_until: optional_time(row, "users", &name("locked_until"))?,
        created_at: time(row, "users", &name("created_at"))?,
        updated_at: time(row, "users", &name("updated_at"))?,
        password_changed_at: time(row, "users", &name("password_changed_at"))?,
        last_login_at: optional_time(row, "users", &name("last_login_at"))?,
    })
}

/// The user with `id` (locked for the transaction with `lock`), or `NotFound`.
pub(crate) async fn fetch_user(connection: &mut PgConnection, id: &UserId, lock: bool) -> Result<UserRecord> {
    let sql = format!("SELECT {} FROM users WHERE id = $1{}", user_columns(""), if lock { " FOR UPDATE" } else { "" });
    let row = sqlx::query(&sql).bind(id.to_string()).fetch_optional(connection).await.store()?;
    row.as_ref().map(|row| user_from_row(row, "")).transpose()?.ok_or(StoreError::NotFound { entity: "user" })
}

/// Locks the rows of every active admin and of `id`, in id order (the last-admin rule reads them).
async fn lock_admins_and(connection: &mut PgConnection, id: &UserId) -> Result<()> {
    sqlx::query("SELECT id FROM users WHERE (role = 'admin' AND status = 'active') OR id = $1 ORDER BY id FOR UPDATE")
        .bind(id.to_string())
        .fetch_all(connection)
        .await
        .store()
        .map(drop)
}

/// Whether an active admin other than `id` exists (the last-admin rule).
async fn another_active_admin(connection: &mut PgConnection, id: &UserId) -> Result<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users WHERE role = 'admin' AND status = 'active' AND id <> $1)")
        .bind(id.to_string())
        .fetch_one(connection)
        .await
        .store()
}

fn last_admin() -> StoreError {
    StoreError::Conflict("the last active admin cannot be demoted, suspended or deleted".to_owned())
}

/// Revokes every live session of `user_id`; returns how many.
pub(crate) async fn revoke_user_sessions(
    connection: &mut PgConnection,
    user_id: &UserId,
    reason: &str,
    at: Timestamp,
) -> Result<u64> {
    let result = sqlx::query(
        "UPDATE sessions SET revoked_at = $1, revoke_reason = $2 WHERE user_id = $3 AND revoked_at IS NULL",
    )
    .bind(at.unix_micros())
    .bind(reason)
    .bind(user_id.to_string())
    .execute(connection)
    .await
    .store()?;
    Ok(result.rows_affected())
}

/// Reads the changed user back, queues its audit event and commits: the tail of every user write.
pub(crate) async fn finish_user(mut tx: PgTx, id: &UserId, audit: AuditEvent) -> Result<UserRecord> {
    let record = fetch_user(tx.conn(), id, false).await?;
    tx.audit(audit);
    tx.commit().await?;
    Ok(record)
}

async fn insert_user(store: &PgStore, insert: &UserInsert, audit: &AuditEvent) -> Result<UserRecord> {
    let mut tx = store.begin().await?;
    let user = &insert.user;
    // The unique indexes refuse it too; asking first gives the conflict a message that names the field.
    let taken: Option<bool> = sqlx::query_scalar(
        "SELECT lower(username) = lower($1) FROM users
         WHERE lower(username) = lower($1) OR lower(email) = lower($2) LIMIT 1",
    )
    .bind(user.username.as_str())
    .bind(user.email.as_str())
    .fetch_optional(tx.conn())
    .await
    .store()?;
    if let Some(same_name) = taken {
        let what = if same_name { "username" } else { "email" };
        return Err(StoreError::Conflict(format!("{what} is already taken")));
    }
    let at = insert.created_at.unix_micros();
    sqlx::query(
        "INSERT INTO users (id, username, email, password_hash, role, must_change_password, created_at,
            updated_at, password_changed_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $7)",
    )
    .bind(insert.id.to_string())
    .bind(user.username.as_str())
    .bind(user.email.as_str())
    .bind(insert.password_hash.as_str())
    .bind(user.role.as_str())
    .bind(user.must_change_password)
    .bind(at)
    .execute(tx.conn())
    .await
    .store()?;
    finish_user(tx, &insert.id, audit.clone()).await
}

async fn set_status(store: &PgStore, change: &StatusChange, audit: &AuditEvent) -> Result<StatusChanged> {
    let mut tx = store.begin().await?;
    lock_admins_and(tx.conn(), &change.id).await?;
    let current = fetch_user(tx.conn(), &change.id, false).await?;
    if current.status == change.status {
        tx.rollback().await?;
        return Ok(StatusChanged { record: current, revoked_tokens: Vec::new(), revoked_sessions: 0 });
    }
    if current.status == UserStatus::Deleted {
        return Err(StoreError::Conflict("user is deleted".to_owned()));
    }
    if current.role == Role::Admin
        && current.status == UserStatus::Active
        && !another_active_admin(tx.conn(), &change.id).await?
    {
        return Err(last_admin());
    }
    sqlx::query("UPDATE users SET status = $1, status_reason = $2, updated_at = $3 WHERE id = $4")
        .bind(change.status.as_str())
        .bind(change.reason.as_deref())
        .bind(change.at.unix_micros())
        .bind(change.id.to_string())
        .execute(tx.conn())
        .await
        .store()?;
    let record = fetch_user(tx.conn(), &change.id, false).await?;
    let (revoked_sessions, revoked_tokens) = if change.status == UserStatus::Active {
        tx.audit(audit.clone());
        (0, Vec::new())
    } else {
        let why = format!("user {}", change.status);
        let sessions = revoke_user_sessions(tx.conn(), &change.id, &why, change.at).await?;
        let mut event = audit.clone();
        if let Some(serde_json::Value::Object(after)) = &mut event.after {
            after.insert("sessions_revoked".to_owned(), sessions.into());
        }
        tx.audit(event);
        let reason = match &change.reason {
            Some(reason) => format!("{why}: {reason}"),
            None => why,
        };
        let reason: String = reason.chars().take(1024).collect();
        let owner = [current.id.to_string()];
        (sessions, crate::tokens::revoke_where(&mut tx, "owner_id = $1", &owner, &reason, audit).await?)
    };
    tx.commit().await?;
    Ok(StatusChanged { record, revoked_tokens, revoked_sessions })
}

async fn set_role(store: &PgStore, id: &UserId, role: Role, at: Timestamp, audit: &AuditEvent) -> Result<UserRecord> {
    let mut tx = store.begin().await?;
    lock_admins_and(tx.conn(), id).await?;
    let current = fetch_user(tx.conn(), id, false).await?;
    if current.status == UserStatus::Deleted {
        return Err(StoreError::Conflict("user is deleted".to_owned()));
    }
    if current.role == role {
        tx.rollback().await?;
        return Ok(current);
    }
    if current.role == Role::Admin
        && current.status == UserStatus::Active
        && !another_active_admin(tx.conn(), id).await?
    {
        return Err(last_admin());
    }
    sqlx::query("UPDATE users SET role = $1, updated_at = $2 WHERE id = $3")
        .bind(role.as_str())
        .bind(at.unix_micros())
        .bind(id.to_string())
        .execute(tx.conn())
        .await
        .store()?;
    finish_user(tx, id, audit.clone()).await
}

async fn set_password(store: &PgStore, change: &PasswordChange, audit: &AuditEvent) -> Result<UserRecord> {
    let mut tx = store.begin().await?;
    let current = fetch_user(tx.conn(), &change.id, true).await?;
    if current.status == UserStatus::Deleted {
        return Err(StoreError::Conflict("user is deleted".to_owned()));
    }
    sqlx::query(
        "UPDATE users SET password_hash = $1, must_change_password = $2, password_changed_at = $3, updated_at = $3
         WHERE id = $4",
    )
    .bind(change.password_hash.as_str())
    .bind(change.must_change_password)
    .bind(change.at.unix_micros())
    .bind(change.id.to_string())
    .execute(tx.conn())
    .await
    .store()?;
    revoke_user_sessions(tx.conn(), &change.id, "password changed", change.at).await?;
    finish_user(tx, &change.id, audit.clone()).await
}

async fn unlock(store: &PgStore, id: &UserId, at: Timestamp, audit: &AuditEvent) -> Result<UserRecord> {
    let mut tx = store.begin().await?;
    let current = fetch_user(tx.conn(), id, true).await?;
    if current.failed_logins == 0 && current.locked_until.is_none() {
        tx.rollback().await?;
        return Ok(current);
    }
    sqlx::query("UPDATE users SET failed_logins = 0, locked_until = NULL, updated_at = $1 WHERE id = $2")
        .bind(at.unix_micros())
        .bind(id.to_string())
        .execute(tx.conn())
        .await
        .store()?;
    finish_user(tx, id, audit.clone()).await
}

async fn login_failure(store: &PgStore, failure: &LoginFailure, audit: &AuditEvent) -> Result<UserRecord> {
    let mut tx = store.begin().await?;
    let current = fetch_user(tx.conn(), &failure.id, true).await?;
    if current.is_locked(failure.at) {
        if !failure.suppressed {
            tx.audit(audit.clone());
        }
        tx.commit().await?;
        return Ok(current);
    }
    let failures = current.failed_logins.saturating_add(1);
    let locks = failures >= failure.max_failures.max(1);
    let locked_until = locks.then(|| failure.at.saturating_add(failure.lock_for));
    sqlx::query("UPDATE users SET failed_logins = $1, locked_until = $2 WHERE id = $3")
        .bind(if locks { 0 } else { i64::from(failures) })
        .bind(locked_until.map(Timestamp::unix_micros))
        .bind(failure.id.to_string())
        .execute(tx.conn())
        .await
        .store()?;
    let record = fetch_user(tx.conn(), &failure.id, false).await?;
    if !failure.suppressed {
        tx.audit(audit.clone());
    }
    if let Some(until) = locked_until {
        let mut lock = AuditEvent::new(audit.actor.clone(), "user.lock", failure.id, failure.at);
        lock.after = Some(serde_json::json!({ "locked_until": until, "failed_logins": failures }));
        lock.reason = Some(format!("{failures} failed logins"));
        lock.ip = audit.ip;
        tx.audit(lock);
    }
    tx.commit().await?;
    Ok(record)
}

#[async_trait]
impl UserStore for PgStore {
    async fn insert_user(&self, insert: &UserInsert, audit: &AuditEvent) -> Result<UserRecord> {
        retrying(move || insert_user(self, insert, audit)).await
    }

    async fn user(&self, id: &UserId) -> Result<UserRecord> {
        let mut connection = self.pool().acquire().await.store()?;
        fetch_user(&mut connection, id, false).await
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
            None => "~".to_owned(), // sorts after every `usr_…` id (ids are in the "C" collation)
        };
        let pattern = filter.search.as_deref().map(|text| {
            let escaped = text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
            format!("%{escaped}%")
        });
        // ILIKE: SQLite's LIKE ignores ASCII case, and so does this search.
        let sql = format!(
            "SELECT {} FROM users
             WHERE id < $1 AND ($2::text IS NULL OR role = $2) AND ($3::text IS NULL OR status = $3)
               AND ($4::text IS NULL OR username ILIKE $4 ESCAPE '\\' OR email ILIKE $4 ESCAPE '\\')
             ORDER BY id DESC LIMIT $5",
            user_columns("")
        );
        let rows = sqlx::query(&sql)
            .bind(before)
            .bind(filter.role.map(Role::as_str))
            .bind(filter.status.map(UserStatus::as_str))
            .bind(pattern)
            .bind(i64::from(page.limit) + 1)
            .fetch_all(self.pool())
            .await
            .store()?;
        let items = rows.iter().map(|row| user_from_row(row, "")).collect::<Result<Vec<_>>>()?;
        Ok(Page::from_overfetch(items, page.limit, |record| record.id.to_string()))
    }

    async fn set_user_status(&self, change: &StatusChange, audit: &AuditEvent) -> Result<StatusChanged> {
        retrying(move || set_status(self, change, audit)).await
    }

    async fn set_user_role(&self, id: &UserId, role: Role, at: Timestamp, audit: &AuditEvent) -> Result<UserRecord> {
        retrying(move || set_role(self, id, role, at, audit)).await
    }

    async fn set_user_email(
        &self,
        id: &UserId,
        email: &Email,
        at: Timestamp,
        audit: &AuditEvent,
    ) -> Result<UserRecord> {
        retrying(move || set_user_email(self, id, email, at, audit)).await
    }

    async fn set_password(&self, change: &PasswordChange, audit: &AuditEvent) -> Result<UserRecord> {
        retrying(move || set_password(self, change, audit)).await
    }

    async fn unlock_user(&self, id: &UserId, at: Timestamp, audit: &AuditEvent) -> Result<UserRecord> {
        retrying(move || unlock(self, id, at, audit)).await
    }

    async fn rehash_password(
        &self,
        id: &UserId,
        old: &PasswordHash,
        new: &PasswordHash,
        audit: &AuditEvent,
    ) -> Result<bool> {
        retrying(move || async move {
            let mut tx = self.begin().await?;
            let replaced = sqlx::query(
                "UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3 AND password_hash = $4",
            )
            .bind(new.as_str())
            .bind(audit.at.unix_micros())
            .bind(id.to_string())
            .bind(old.as_str())
            .execute(tx.conn())
            .await
            .store()?
            .rows_affected()
                == 1;
            if !replaced {
                tx.rollback().await?;
                return Ok(false);
            }
            tx.audit(audit.clone());
            tx.commit().await?;
            Ok(true)
        })
        .await
    }

    async fn record_login_failure(&self, failure: &LoginFailure, audit: &AuditEvent) -> Result<UserRecord> {
        retrying(move || login_failure(self, failure, audit)).await
    }
}
