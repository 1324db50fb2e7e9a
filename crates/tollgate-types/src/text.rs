//! Validated free-text fields: token names, owners, projects and descriptions.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ValidationError;

/// Checks human text: trimmed non-empty (unless `allow_empty`), at most `max` characters, no control characters.
fn check_text(field: &'static str, text: &str, max: usize, allow_empty: bool) -> Result<String, ValidationError> {
    if !allow_empty && text.trim().is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    if text.chars().count() > max {
        return Err(ValidationError::new(field, format!("must be at most {max} characters")));
    }
    if text.chars().any(char::is_control) {
        return Err(ValidationError::new(field, "must not contain control characters (including NUL)"));
    }
    Ok(text.to_owned())
}

macro_rules! define_text {
    ($(#[$meta:meta])* $name:ident, $field:literal, $max:literal, $allow_empty:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The longest accepted value, in characters.
            pub const MAX_CHARS: usize = $max;

            /// Validates the text, naming the field on failure.
            pub fn parse(text: &str) -> Result<Self, ValidationError> {
                check_text($field, text, $max, $allow_empty).map(Self)
            }

            /// The text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                Self::parse(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}

define_text!(
    /// A token's human name (1–128 characters).
    TokenName, "name", 128, false
);
define_text!(
    /// Who a token belongs to: a username or a service name (1–128 characters).
    OwnerName, "owner", 128, false
);
define_text!(
    /// The project a token is for (1–128 characters).
    ProjectName, "project", 128, false
);
define_text!(
    /// An agent's human name (1–128 characters).
    AgentName, "name", 128, false
);
define_text!(
    /// Free-form notes (0–1024 characters).
    Description, "description", 1024, true
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_fields_refuse_empty_long_and_control_characters() {
        assert!(TokenName::parse("ci deploy").is_ok());
        assert_eq!(TokenName::parse("").unwrap_err().reason, "must not be empty");
        assert_eq!(TokenName::parse("  ").unwrap_err().field, "name");
        assert!(TokenName::parse(&"x".repeat(10_000)).unwrap_err().reason.contains("at most 128"));
        assert!(OwnerName::parse("a\0b").unwrap_err().reason.contains("NUL"));
        assert!(Description::parse("").is_ok());
    }
}
