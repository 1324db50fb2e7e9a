//! Users by name or email on PostgreSQL: the login lookup (one probe of the unique index on
//! `lower(…)`, never a scan) and the audited email change.

use sqlx::Row;
use tollgate_store::{Result, StoreError, UserCredentials};
use tollgate_types::{AuditEvent, Email, PasswordHash, Timestamp, UserId, UserRecord, UserStatus};

use crate::PgStore;
use crate::error::PgResultExt;
use crate::rows::parsed;
use crate::users::{fetch_user, finish_user, user_columns, user_from_row};

/// Which unique column a credentials lookup goes through. Both have a unique index on their
/// lowercase form, so an equality on `lower(column)` is answered from it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum UniqueColumn {
    Username,
    Email,
}

/// The user whose `column` equals `value` (whatever its case), with the password hash.
pub(crate) async fn credentials_by(store: &PgStore, by: UniqueColumn, value: &str) -> Result<Option<UserCredentials>> {
    let name = match by {
        UniqueColumn::Username => "username",
        UniqueColumn::Email => "email",
    };
    let sql = format!(
        "SELECT {}, users.password_hash AS password_hash FROM users WHERE lower({name}) = lower($1)",
        user_columns("")
    );
    let row = sqlx::query(&sql).bind(value).fetch_optional(store.pool()).await.store()?;
    let Some(row) = row else { return Ok(None) };
    let hash: String = row.try_get("password_hash").store()?;
    Ok(Some(UserCredentials {
        record: user_from_row(&row, "")?,
        password_hash: parsed("users", "password_hash", PasswordHash::parse(&hash))?,
    }))
}

/// Changes a user's email in one transaction with its audit event (before/after read inside it).
pub(crate) async fn set_user_email(
    store: &PgStore,
    id: &UserId,
    email: &Email,
    at: Timestamp,
    audit: &AuditEvent,
) -> Result<UserRecord> {
    let mut tx = store.begin().await?;
    let current = fetch_user(tx.conn(), id, true).await?;
    if current.status == UserStatus::Deleted {
        return Err(StoreError::Conflict("user is deleted".to_owned()));
    }
    if current.email == *email {
        tx.rollback().await?;
        return Ok(current);
    }
    // The unique index refuses it too (a concurrent change to the same address waits for this one
    // and then fails on the index, its conflict naming `users_email`); asking first gives the
    // conflict a message that names the field.
    let taken: Option<i32> = sqlx::query_scalar("SELECT 1 FROM users WHERE lower(email) = lower($1) AND id <> $2")
        .bind(email.as_str())
        .bind(id.to_string())
        .fetch_optional(tx.conn())
        .await
        .store()?;
    if taken.is_some() {
        return Err(StoreError::Conflict("email is already taken".to_owned()));
    }
    sqlx::query("UPDATE users SET email = $1, updated_at = $2 WHERE id = $3")
        .bind(email.as_str())
        .bind(at.unix_micros())
        .bind(id.to_string())
        .execute(tx.conn())
        .await
        .store()?;
    let mut event = audit.clone();
    event.before = Some(serde_json::json!({ "email": current.email }));
    event.after = Some(serde_json::json!({ "email": email }));
    finish_user(tx, id, event).await
}
