//! Maps sqlx errors to the portable [`StoreError`].

use tollgate_store::StoreError;

/// Converts a driver error: unique/primary-key violations become `Conflict`, the rest is boxed.
pub(crate) fn map_error(error: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(database_error) = &error {
        match database_error.kind() {
            sqlx::error::ErrorKind::UniqueViolation => {
                return StoreError::Conflict("an entry with the same key already exists".to_owned());
            }
            sqlx::error::ErrorKind::CheckViolation | sqlx::error::ErrorKind::NotNullViolation => {
                return StoreError::Conflict(format!("the database refused the value: {}", database_error.message()));
            }
            sqlx::error::ErrorKind::ForeignKeyViolation => {
                return StoreError::Conflict("a referenced entry does not exist".to_owned());
            }
            _ => {}
        }
        // SQLITE_CONSTRAINT_TRIGGER: one of our triggers refused the change with its own message.
        if database_error.code().as_deref() == Some("1811") {
            return StoreError::Conflict(database_error.message().to_owned());
        }
    }
    StoreError::backend(error)
}

/// `?`-friendly conversion for sqlx results.
pub(crate) trait SqlxResultExt<T> {
    /// Maps the error with [`map_error`].
    fn store(self) -> Result<T, StoreError>;
}

impl<T> SqlxResultExt<T> for Result<T, sqlx::Error> {
    fn store(self) -> Result<T, StoreError> {
        self.map_err(map_error)
    }
}

/// A stored value that no longer parses: the row was edited outside tollgate.
pub(crate) fn corrupt(what: &str, error: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {error}"))
}
