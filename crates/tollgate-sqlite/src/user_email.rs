//! Users by email on SQLite: the login lookup (one probe of the case-insensitive unique index on
//! `users.email`, never a scan) and the audited email change.

use rusqlite::params;
use tollgate_store::{Result, StoreError, UserCredentials};
use tollgate_types::{AuditEvent, Email, PasswordHash, Timestamp, UserId, UserRecord, UserStatus};

use crate::SqliteStore;
use crate::columns::{Column, Columns, first};
use crate::users::{USER_COLUMNS, column, fetch_user, finish_user_with_audit, user_columns, user_from_row};

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
    let sql = format!("SELECT {}, password_hash FROM users WHERE {name} = ?", user_columns("users"));
    let value = value.to_owned();
    store
        .point(move |connection| {
            first(connection, &sql, [value], |row| {
                let hash = row.text(Column { index: USER_COLUMNS.len(), name: "password_hash" })?;
                Ok(UserCredentials {
                    record: user_from_row(row, 0)?,
                    password_hash: column("password_hash", PasswordHash::parse(&hash))?,
                })
            })
        })
        .await
}

/// Changes a user's email in one write job with its audit event (before/after read inside it).
pub(crate) async fn set_user_email(
    store: &SqliteStore,
    id: &UserId,
    email: &Email,
    at: Timestamp,
    audit: &AuditEvent,
) -> Result<UserRecord> {
    let (id, email, audit) = (*id, email.clone(), audit.clone());
    store
        .write(move |tx| {
            let current = fetch_user(tx.connection, &id)?;
            if current.status == UserStatus::Deleted {
                return Err(StoreError::Conflict("user is deleted".to_owned()));
            }
            if current.email == email {
                return Ok(current);
            }
            // The unique index would refuse it too; asking first gives the conflict a message that names the field.
            let taken = first(
                tx.connection,
                "SELECT 1 FROM users WHERE email = ? AND id <> ?",
                params![email.as_str(), id.to_string()],
                |_| Ok(()),
            )?;
            if taken.is_some() {
                return Err(StoreError::Conflict("email is already taken".to_owned()));
            }
            crate::columns::execute(
                tx.connection,
                "UPDATE users SET email = ?, updated_at = ? WHERE id = ?",
                params![email.as_str(), at.unix_micros(), id.to_string()],
            )?;
            let mut event = audit;
            event.before = Some(serde_json::json!({ "email": current.email }));
            event.after = Some(serde_json::json!({ "email": email }));
            finish_user_with_audit(tx, &id, &event)
        })
        .await
}
