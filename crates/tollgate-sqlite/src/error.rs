//! Maps rusqlite errors to the portable [`StoreError`].

use rusqlite::ffi;
use tollgate_store::StoreError;

/// Converts a driver error: unique/primary-key violations become `Conflict`, refused values and our
/// triggers' refusals too (with SQLite's message, which names the constraint, never a value); the
/// rest is boxed for logs.
pub(crate) fn map_error(error: rusqlite::Error) -> StoreError {
    if let rusqlite::Error::SqliteFailure(failure, message) = &error {
        match failure.extended_code {
            ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
                return StoreError::Conflict("an entry with the same key already exists".to_owned());
            }
            ffi::SQLITE_CONSTRAINT_CHECK | ffi::SQLITE_CONSTRAINT_NOTNULL => {
                let detail = message.as_deref().unwrap_or("constraint failed");
                return StoreError::Conflict(format!("the database refused the value: {detail}"));
            }
            ffi::SQLITE_CONSTRAINT_FOREIGNKEY => {
                return StoreError::Conflict("a referenced entry does not exist".to_owned());
            }
            ffi::SQLITE_CONSTRAINT_TRIGGER => {
                return StoreError::Conflict(message.clone().unwrap_or_else(|| "refused by a trigger".to_owned()));
            }
            _ => {}
        }
        // The database's state, not the statement: busy, locked, I/O, full, read-only, gone.
        if matches!(
            failure.code,
            rusqlite::ErrorCode::DatabaseBusy
                | rusqlite::ErrorCode::DatabaseLocked
                | rusqlite::ErrorCode::SystemIoFailure
                | rusqlite::ErrorCode::DiskFull
                | rusqlite::ErrorCode::CannotOpen
                | rusqlite::ErrorCode::ReadOnly
                | rusqlite::ErrorCode::OutOfMemory
        ) {
            return StoreError::unavailable(error);
        }
    }
    StoreError::backend(error)
}

/// Whether `error` is SQLite's `sum()` passing `i64::MAX`, which fails the whole query with
/// "integer overflow" (the message is the only mark it has: its code is the generic `SQLITE_ERROR`).
pub(crate) fn is_integer_overflow(error: &StoreError) -> bool {
    let StoreError::Backend(source) = error else { return false };
    matches!(
        source.downcast_ref::<rusqlite::Error>(),
        Some(rusqlite::Error::SqliteFailure(_, Some(message))) if message == "integer overflow"
    )
}

/// `?`-friendly conversion for rusqlite results.
pub(crate) trait SqliteResultExt<T> {
    /// Maps the error with [`map_error`].
    fn store(self) -> Result<T, StoreError>;
}

impl<T> SqliteResultExt<T> for Result<T, rusqlite::Error> {
    fn store(self) -> Result<T, StoreError> {
        self.map_err(map_error)
    }
}

/// A stored value that no longer parses: the row was edited outside tollgate.
pub(crate) fn corrupt(what: &str, error: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {error}"))
}
