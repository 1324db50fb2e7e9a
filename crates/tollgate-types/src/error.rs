//! The one validation error: which field was wrong and why.

/// Bad input, naming the field and the reason, e.g. `name: must not be empty`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ValidationError {
    /// The field as the user named it (`name`, `ip_allow`, `expires_at`, …).
    pub field: &'static str,
    /// Why it was refused, lowercase, no trailing period.
    pub reason: String,
}

impl ValidationError {
    /// A refusal of `field` for `reason`.
    pub fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self { field, reason: reason.into() }
    }

    /// The same reason under another field name (a query parameter named differently from the
    /// value's own field).
    pub fn renamed(self, field: &'static str) -> Self {
        Self { field, ..self }
    }
}
