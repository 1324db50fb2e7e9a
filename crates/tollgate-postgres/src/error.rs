//! Maps sqlx errors to the portable [`StoreError`], in one place.

use sqlx::error::DatabaseError;
use sqlx::postgres::PgDatabaseError;
use tollgate_store::StoreError;

/// Converts a driver error:
/// - unique violations become `Conflict`, and so do foreign-key, check and not-null violations and
///   the refusals of our triggers (SQLSTATE 23000), with a message naming the constraint (or the
///   trigger's rule), never a value;
/// - a lost or refused connection, a pool timeout, a server shutting down or out of resources, a
///   deadlock or serialization failure (once retries ran out), a lock or statement timeout, a
///   read-only server: `Unavailable`, the backend's state rather than the operation's;
/// - a value that does not decode: `Corrupt`; everything else is boxed for logs.
pub(crate) fn map_error(error: sqlx::Error) -> StoreError {
    match &error {
        sqlx::Error::Database(database) => {
            if let Some(conflict) = conflict(database.as_ref()) {
                return conflict;
            }
            if database.code().as_deref().is_some_and(is_unavailable_code) {
                return StoreError::unavailable(error);
            }
            StoreError::backend(error)
        }
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => StoreError::unavailable(error),
        sqlx::Error::ColumnDecode { index, .. } => StoreError::Corrupt(format!("column {index} does not decode")),
        sqlx::Error::Decode(_) => StoreError::Corrupt("a stored value does not decode".to_owned()),
        _ => StoreError::backend(error),
    }
}

/// The `Conflict` a constraint violation or a trigger's refusal stands for.
fn conflict(database: &dyn DatabaseError) -> Option<StoreError> {
    let code = database.code()?;
    let constraint = database.constraint().unwrap_or("a constraint");
    let message = match code.as_ref() {
        "23505" => format!("an entry with the same key already exists ({constraint})"),
        "23503" => format!("a referenced entry does not exist ({constraint})"),
        "23514" | "23P01" => format!("the database refused the value ({constraint})"),
        "23502" => {
            let column = database.try_downcast_ref::<PgDatabaseError>().and_then(PgDatabaseError::column);
            format!("the database refused the value ({} is required)", column.unwrap_or("a column"))
        }
        // Raised by our triggers: the message states the rule (they never interpolate a value).
        "23000" => database.message().to_owned(),
        _ => return None,
    };
    Some(StoreError::Conflict(message))
}

/// SQLSTATEs that describe the server's state, not the statement.
fn is_unavailable_code(code: &str) -> bool {
    // 08: connection exception; 53: insufficient resources; 57: operator intervention (shutdown,
    // statement timeout); 58: system error (I/O).
    ["08", "53", "57", "58"].iter().any(|class| code.starts_with(class))
        || matches!(code, "40001" | "40P01" | "55P03" | "25006")
}

/// Whether running the whole transaction again may succeed: the server aborted it to break a
/// deadlock, or (under a stricter isolation) for a serialization failure.
pub(crate) fn is_retryable(error: &StoreError) -> bool {
    let StoreError::Unavailable(source) = error else { return false };
    let Some(sqlx::Error::Database(database)) = source.downcast_ref::<sqlx::Error>() else { return false };
    matches!(database.code().as_deref(), Some("40001" | "40P01"))
}

/// `?`-friendly conversion for sqlx results.
pub(crate) trait PgResultExt<T> {
    /// Maps the error with [`map_error`].
    fn store(self) -> Result<T, StoreError>;
}

impl<T> PgResultExt<T> for Result<T, sqlx::Error> {
    fn store(self) -> Result<T, StoreError> {
        self.map_err(map_error)
    }
}

/// A stored value that no longer parses: the row was edited outside tollgate.
pub(crate) fn corrupt(what: &str, error: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_states_are_unavailable_and_statement_errors_are_not() {
        for code in ["08006", "53300", "57P01", "57014", "58030", "40P01", "40001", "55P03", "25006"] {
            assert!(is_unavailable_code(code), "{code}");
        }
        for code in ["42601", "22003", "23505", "XX000"] {
            assert!(!is_unavailable_code(code), "{code}");
        }
        assert!(map_error(sqlx::Error::PoolTimedOut).is_unavailable());
        assert!(map_error(sqlx::Error::PoolClosed).is_unavailable());
        assert!(!map_error(sqlx::Error::RowNotFound).is_unavailable());
    }
}
