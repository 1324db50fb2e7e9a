//! Audit log entries and their hash chain: each entry's hash covers the previous entry's hash and
//! the entry itself, so an edited, deleted or reordered row breaks the chain at that row.

use std::net::IpAddr;

use ring::digest;
use serde::Serialize;

use crate::Timestamp;

/// Who did something: a user, a token, or the operator at the command line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Actor(String);

impl Actor {
    /// The operator at the shell (`tollgate` CLI with direct database access).
    pub fn cli() -> Self {
        Self("cli".to_owned())
    }

    /// tollgate itself (background work such as cleanup).
    pub fn system() -> Self {
        Self("system".to_owned())
    }

    /// A user or token, by its public id.
    pub fn id(id: impl std::fmt::Display) -> Self {
        Self(id.to_string())
    }

    /// The actor as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// An actor read back from storage.
    pub fn from_stored(text: String) -> Self {
        Self(text)
    }
}

/// A change to record, written in the same transaction as the change itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEvent {
    /// Who.
    pub actor: Actor,
    /// What, as `<entity>.<verb>`: `token.create`, `token.revoke`, `user.suspend`, …
    pub action: String,
    /// The public id of what was changed.
    pub target: String,
    /// The state before (no secrets, no hashes).
    pub before: Option<serde_json::Value>,
    /// The state after (no secrets, no hashes).
    pub after: Option<serde_json::Value>,
    /// Why, when the actor said.
    pub reason: Option<String>,
    /// The client's address, when known.
    pub ip: Option<IpAddr>,
    /// When.
    pub at: Timestamp,
}

impl AuditEvent {
    /// An event with no before/after state, reason or address.
    pub fn new(actor: Actor, action: &str, target: impl std::fmt::Display, at: Timestamp) -> Self {
        Self {
            actor,
            action: action.to_owned(),
            target: target.to_string(),
            before: None,
            after: None,
            reason: None,
            ip: None,
            at,
        }
    }

    /// The chain hash of this event stored at position `sequence` after an entry whose hash is `previous`.
    ///
    /// The encoding is canonical JSON of the fields in a fixed order, so every backend and
    /// `audit verify` compute the same bytes.
    pub fn chain_hash(&self, sequence: i64, previous: &[u8; 32]) -> [u8; 32] {
        let canonical = serde_json::json!([
            sequence,
            self.actor.as_str(),
            self.action,
            self.target,
            self.before,
            self.after,
            self.reason,
            self.ip.map(|ip| ip.to_string()),
            self.at.unix_micros(),
        ]);
        let mut context = digest::Context::new(&digest::SHA256);
        context.update(previous);
        context.update(canonical.to_string().as_bytes());
        let mut hash = [0u8; 32];
        hash.copy_from_slice(context.finish().as_ref());
        hash
    }
}

/// The hash that the first entry of a chain links to.
pub const AUDIT_GENESIS_HASH: [u8; 32] = [0; 32];

/// An entry as stored, with its place in the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    /// Position in the log, starting at 1, without gaps.
    pub sequence: i64,
    /// The event.
    #[serde(flatten)]
    pub event: AuditEvent,
    /// The previous entry's hash (zeros for the first).
    #[serde(skip)]
    pub previous_hash: [u8; 32],
    /// This entry's hash.
    #[serde(skip)]
    pub hash: [u8; 32],
}

impl AuditEntry {
    /// Whether the stored hash matches the event and the given previous hash.
    pub fn is_intact_after(&self, previous: &[u8; 32]) -> bool {
        self.previous_hash == *previous && self.event.chain_hash(self.sequence, previous) == self.hash
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_edit_changes_the_hash() {
        let event = AuditEvent::new(Actor::cli(), "token.revoke", "tok_1", Timestamp::from_unix_micros(5));
        let hash = event.chain_hash(1, &AUDIT_GENESIS_HASH);
        let mut edited = event.clone();
        edited.reason = Some("oops".into());
        assert_ne!(edited.chain_hash(1, &AUDIT_GENESIS_HASH), hash);
        assert_ne!(event.chain_hash(2, &AUDIT_GENESIS_HASH), hash);
        assert_ne!(event.chain_hash(1, &[1; 32]), hash);
        let entry = AuditEntry { sequence: 1, event, previous_hash: AUDIT_GENESIS_HASH, hash };
        assert!(entry.is_intact_after(&AUDIT_GENESIS_HASH));
    }
}
