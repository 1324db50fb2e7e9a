//! The portable storage error: what a caller can act on, with backend details boxed away.

/// A storage failure, the same for every backend.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The thing asked for does not exist.
    #[error("{entity} not found")]
    NotFound {
        /// What was looked for (`token`, `user`, …).
        entity: &'static str,
    },
    /// The change contradicts what is stored (a duplicate, or a state that forbids it).
    #[error("conflict: {0}")]
    Conflict(String),
    /// A page cursor that no previous page handed out.
    #[error("cursor: not a cursor from a previous page")]
    InvalidCursor,
    /// The stored data breaks an invariant (for example an edited row). Never shown to clients verbatim.
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
    /// The backend failed (a driver error, a statement it refused). The source is for logs, not
    /// for clients.
    #[error("storage backend error")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The backend cannot take the operation now, whatever it is (I/O error, disk full, busy,
    /// closed, a connection lost): retrying later may succeed. The source is for logs.
    #[error("storage is unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Results of storage calls.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

impl StoreError {
    /// A backend failure wrapping any error.
    pub fn backend(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Backend(Box::new(error))
    }

    /// An unavailable backend wrapping any error.
    pub fn unavailable(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Unavailable(Box::new(error))
    }

    /// Whether the failure is the backend's state rather than the operation's content (retry later
    /// instead of setting the operation aside).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}
