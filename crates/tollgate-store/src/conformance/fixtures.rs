//! Builders shared by the conformance cases.

use tollgate_types::{
    Actor, AuditEvent, KeyId, NewToken, OwnerName, ProjectName, Timestamp, TokenHash, TokenId, TokenName,
};

use crate::TokenInsert;

/// A fixed starting time for cases: 2026-01-01T00:00:00Z.
pub const T0: Timestamp = Timestamp::from_unix_micros(1_767_225_600_000_000);

/// `T0` plus `seconds`.
pub fn at(seconds: i64) -> Timestamp {
    Timestamp::from_unix_micros(T0.unix_micros() + seconds * 1_000_000)
}

/// A hash unique to `id` (the cases need distinct hashes, not real HMACs).
pub fn hash_for(id: &TokenId, salt: u8) -> TokenHash {
    let mut bytes = [salt; 32];
    bytes[..16].copy_from_slice(id.as_bytes());
    TokenHash::from_bytes(bytes)
}

/// A token insert for `owner` in `project`, created at `created_at`.
pub fn insert(name: &str, owner: &str, project: Option<&str>, created_at: Timestamp) -> TokenInsert {
    let id = TokenId::generate();
    let mut token = NewToken::new(
        TokenName::parse(name).expect("fixture name is valid"),
        OwnerName::parse(owner).expect("fixture owner is valid"),
    );
    token.project = project.map(|project| ProjectName::parse(project).expect("fixture project is valid"));
    TokenInsert {
        id,
        token,
        hash: hash_for(&id, 0),
        key_id: KeyId(1),
        display_hint: "tg_AbCd…wxyz".to_owned(),
        created_at,
    }
}

/// An audit event by the CLI actor.
pub fn audit(action: &str, target: impl std::fmt::Display, at: Timestamp) -> AuditEvent {
    AuditEvent::new(Actor::cli(), action, target, at)
}
