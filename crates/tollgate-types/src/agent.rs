//! AI agents: who owns one, what it may use, and whether its credentials work now.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{
    AgentId, AgentName, Description, OwnerId, OwnerName, ProjectId, ProviderKeyId, ProviderName, Timestamp,
    ValidationError,
};

/// Whether an agent's credentials work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentStatus {
    /// Its credentials work.
    Active,
    /// Stopped for now: its credentials are refused until it is resumed.
    Paused,
    /// Stopped for good: its credentials are refused and no new one is issued (an admin may still
    /// resume it).
    Disabled,
}

impl AgentStatus {
    /// The stable name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Paused => "paused",
            Self::Disabled => "disabled",
        }
    }
}

impl fmt::Display for AgentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AgentStatus {
    type Err = ValidationError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "active" => Ok(Self::Active),
            "paused" => Ok(Self::Paused),
            "disabled" => Ok(Self::Disabled),
            _ => Err(ValidationError::new("status", "must be one of active, paused, disabled")),
        }
    }
}

/// Free-form JSON metadata: an object of at most [`Metadata::MAX_BYTES`] bytes when serialized.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Metadata(serde_json::Map<String, serde_json::Value>);

impl Metadata {
    /// The largest accepted metadata, serialized.
    pub const MAX_BYTES: usize = 4096;

    /// Validates a JSON value as metadata.
    pub fn parse(value: serde_json::Value) -> Result<Self, ValidationError> {
        let serde_json::Value::Object(map) = value else {
            return Err(ValidationError::new("metadata", "must be a JSON object"));
        };
        let size = serde_json::to_string(&map).map(|text| text.len()).unwrap_or(usize::MAX);
        if size > Self::MAX_BYTES {
            return Err(ValidationError::new("metadata", format!("must be at most {} bytes", Self::MAX_BYTES)));
        }
        Ok(Self(map))
    }

    /// Metadata read back from storage (JSON text).
    pub fn from_json_text(text: &str) -> Result<Self, ValidationError> {
        let value = serde_json::from_str(text).map_err(|_| ValidationError::new("metadata", "is not JSON"))?;
        Self::parse(value)
    }

    /// The JSON text to store.
    pub fn to_json_text(&self) -> String {
        serde_json::to_string(&self.0).expect("a JSON map always serializes")
    }

    /// The entries.
    pub fn as_map(&self) -> &serde_json::Map<String, serde_json::Value> {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Metadata {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Self::parse(serde_json::Value::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

/// The providers an agent may use: sorted, without duplicates, at most 32; empty means any.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ProviderList(Vec<ProviderName>);

impl ProviderList {
    /// Validates provider names.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, ValidationError> {
        if entries.len() > 32 {
            return Err(ValidationError::new("providers", "must name at most 32 providers"));
        }
        let mut names = entries
            .iter()
            .map(|entry| ProviderName::parse(entry.as_ref().trim()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| ValidationError::new("providers", error.reason))?;
        names.sort();
        names.dedup();
        Ok(Self(names))
    }

    /// Whether the agent may use `provider`.
    pub fn allows(&self, provider: &ProviderName) -> bool {
        self.0.is_empty() || self.0.contains(provider)
    }

    /// The names.
    pub fn as_slice(&self) -> &[ProviderName] {
        &self.0
    }
}

/// A validated request to register an agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAgent {
    /// Its name.
    pub name: AgentName,
    /// Who owns it: a user or a service account.
    pub owner: OwnerId,
    /// The project it works for.
    pub project: Option<ProjectId>,
    /// The providers it may use.
    pub providers: ProviderList,
    /// The provider key it is given, if any.
    pub provider_key: Option<ProviderKeyId>,
    /// Notes.
    pub description: Description,
    /// Free-form metadata.
    pub metadata: Metadata,
}

/// An agent as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgentRecord {
    /// Its id.
    pub id: AgentId,
    /// Its name.
    pub name: AgentName,
    /// Its owner, by id.
    pub owner: OwnerId,
    /// The owner's name when the agent was registered, for display.
    pub owner_name: OwnerName,
    /// The project it works for.
    pub project: Option<ProjectId>,
    /// The providers it may use; empty means any.
    pub providers: ProviderList,
    /// The provider key assigned to it.
    pub provider_key: Option<ProviderKeyId>,
    /// Whether its credentials work.
    pub status: AgentStatus,
    /// Notes.
    pub description: Description,
    /// Free-form metadata.
    pub metadata: Metadata,
    /// When it was registered.
    pub created_at: Timestamp,
    /// Its last change.
    pub updated_at: Timestamp,
}

/// A change to an agent. `None` leaves a field as it is; `Some(None)` clears an optional one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentPatch {
    /// New name.
    pub name: Option<AgentName>,
    /// New providers.
    pub providers: Option<ProviderList>,
    /// Another provider key, or `Some(None)` for none.
    pub provider_key: Option<Option<ProviderKeyId>>,
    /// New notes.
    pub description: Option<Description>,
    /// New metadata (replaces the old).
    pub metadata: Option<Metadata>,
}

impl AgentPatch {
    /// Whether the patch changes nothing.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_must_be_a_small_object() {
        assert!(Metadata::parse(serde_json::json!({"team": "search"})).is_ok());
        assert_eq!(Metadata::parse(serde_json::json!([1])).unwrap_err().field, "metadata");
        let big = serde_json::json!({ "x": "y".repeat(5000) });
        assert!(Metadata::parse(big).unwrap_err().reason.contains("4096"));
    }

    #[test]
    fn provider_lists_are_sorted_and_checked() {
        let list = ProviderList::parse(&["openai", "anthropic", "openai"]).unwrap();
        assert_eq!(list.as_slice().len(), 2);
        assert!(list.allows(&ProviderName::parse("openai").unwrap()));
        assert!(!list.allows(&ProviderName::parse("google").unwrap()));
        assert!(ProviderList::default().allows(&ProviderName::parse("google").unwrap()));
        assert_eq!(ProviderList::parse(&[""]).unwrap_err().field, "providers");
    }

    #[test]
    fn statuses_parse() {
        for status in [AgentStatus::Active, AgentStatus::Paused, AgentStatus::Disabled] {
            assert_eq!(status.as_str().parse::<AgentStatus>().unwrap(), status);
        }
        assert_eq!("gone".parse::<AgentStatus>().unwrap_err().field, "status");
    }
}
