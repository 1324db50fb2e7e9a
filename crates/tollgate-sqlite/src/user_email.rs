//! Users by email on SQLite: the login lookup (one probe of the case-insensitive unique index on
//! `users.email`, never a scan) and the audited email change.

use sqlx::Row;
use tollgate_store::{Result, StoreError, UserCredentials};
use tollgate_types::{AuditEvent, Email, PasswordHash, Timestamp, UserId, UserStatus};

use crate::SqliteStore;
use crate::error::SqlxResultExt;
use crate::users::{column, commit_user_with_audit, fetch_user, user_columns, user_from_row};

/// Which unique column a credentials lookup goes through. Both are `COLLATE NOCASE UNIQUE`, so an
/// equality on either is answered from its index.
#[derive(Debug, Clone, Copy)]
pub(crate) enum UniqueColumn {
    Username,
    Email,
}

/// The user whose `column` equals `value`, with the password hash; `None` when there is none.
pub(crate) async fn credentials_by(
    store: &SqliteStore,
    by: UniqueColumn,
    value: &str,
) -> Result<Option<UserCredentials>> {
    let name = match by {
        UniqueColumn::Username => "username",
        UniqueColumn::Email => "email",
    };
    let sql = format!("SELECT {}, password_hash FROM users WHERE {name} = ?", user_columns("users", ""));
    let row = sqlx::query(&sql).bind(value).fetch_optional(&store.reader).await.store()?;
    row.map(|row| {
        let hash: String = row.get("password_hash");
        Ok(UserCredentials {
            record: user_from_row(&row, "")?,
            password_hash: column("password_hash", PasswordHash::parse(&hash))?,
        })
    })
    .transpose()
}

/// Changes a user's email in one transaction with its audit event (before/after read inside it).
pub(crate) async fn set_user_email(
    store: &SqliteStore,
    id: &UserId,
    email: &Email,
    at: Timestamp,
    audit: &AuditEvent,
) -> Result<tollgate_types::UserRecord> {
    let mut transaction = store.write().await?;
    let current = fetch_user(&mut transaction, id).await?;
    if current.status == UserStatus::Deleted {
        return Err(StoreError::Conflict("user is deleted".to_owned()));
    }
    if current.email == *email {
        return Ok(current);
    }
    // The unique index would refuse it too; asking first gives the conflict a message that names the field.
    let taken: Option<i64> = sqlx::query_scalar("SELECT 1 FROM users WHERE email = ? AND id <> ?")
        .bind(email.as_str())
        .bind(id.to_string())
        .fetch_optional(&mut *transaction)
        .await
        .store()?;
    if taken.is_some() {
        return Err(StoreError::Conflict("email is already taken".to_owned()));
    }
    sqlx::query("UPDATE users SET email = ?, updated_at = ? WHERE id = ?")
        .bind(email.as_str())
        .bind(at.unix_micros())
        .bind(id.to_string())
        .execute(&mut *transaction)
        .await
        .store()?;
    let mut event = audit.clone();
    event.before = Some(serde_json::json!({ "email": current.email }));
    event.after = Some(serde_json::json!({ "email": email }));
    commit_user_with_audit(transaction, id, &event).await
}
