//! Token permission levels and scopes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ValidationError;

/// What a token may do, from least to most. Ordered: `ReadOnly < Standard < Admin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// Reads only.
    ReadOnly,
    /// Normal use of the API it guards.
    Standard,
    /// Administration of tollgate itself.
    Admin,
}

impl Permission {
    /// The stable name (`read_only`, `standard`, `admin`), as stored and shown.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ReadOnly => "read_only",
            Self::Standard => "standard",
            Self::Admin => "admin",
        }
    }

    /// All levels, lowest first.
    pub const ALL: [Permission; 3] = [Self::ReadOnly, Self::Standard, Self::Admin];
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Permission {
    type Err = ValidationError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|level| level.as_str() == text)
            .ok_or_else(|| ValidationError::new("permission", "must be one of read_only, standard, admin"))
    }
}

/// A scope granted to a token, e.g. `tokens:verify` or `chat:write`: 1–64 characters of `a-z 0-9 : _ . -`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Scope(String);

impl Scope {
    /// Validates a scope.
    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        parse_identifier("scopes", text, 64).map(Self)
    }

    /// The scope text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Checks a machine identifier: non-empty, at most `max` characters of `a-z 0-9 : _ . / -`.
pub(crate) fn parse_identifier(field: &'static str, text: &str, max: usize) -> Result<String, ValidationError> {
    if text.is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    if text.len() > max {
        return Err(ValidationError::new(field, format!("must be at most {max} characters")));
    }
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, ':' | '_' | '.' | '-' | '/');
    if !text.chars().all(allowed) {
        return Err(ValidationError::new(field, "may contain only a-z, 0-9, ':', '_', '.', '/', '-'"));
    }
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_parse_and_order() {
        assert_eq!("admin".parse::<Permission>().unwrap(), Permission::Admin);
        assert!(Permission::ReadOnly < Permission::Standard && Permission::Standard < Permission::Admin);
        assert_eq!("root".parse::<Permission>().unwrap_err().field, "permission");
    }

    #[test]
    fn scopes_are_checked() {
        assert!(Scope::parse("tokens:verify").is_ok());
        for bad in ["", "Tokens", "a b", "x\0", &"s".repeat(65)] {
            assert!(Scope::parse(bad).is_err(), "{bad:?}");
        }
    }
}
