//! Session storage: login sessions and their refresh-token families.
//!
//! A refresh token is an opaque random secret stored only as a keyed hash. Each refresh marks the
//! presented token used and adds the next one, atomically; presenting a used token again revokes
//! the whole session (the family), because only a copy of a stolen token can be presented twice.

use std::net::IpAddr;

use async_trait::async_trait;
use tollgate_types::{
    AuditEvent, KeyId, PasswordHash, SessionId, SessionRecord, Timestamp, TokenHash, UserId, UserRecord,
};

use crate::{Page, PageRequest, Result};

/// A refresh token to store (its hash only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshTokenInsert {
    /// Keyed hash of the secret.
    pub hash: TokenHash,
    /// Which key made the hash.
    pub key_id: KeyId,
    /// When it stops working.
    pub expires_at: Timestamp,
}

/// A new session after a successful password check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionStart {
    /// The new id.
    pub id: SessionId,
    /// Whose.
    pub user_id: UserId,
    /// The hash the password was checked against: if it changed meanwhile, no session is started.
    pub checked_password_hash: PasswordHash,
    /// The first refresh token of the family.
    pub refresh: RefreshTokenInsert,
    /// Login time.
    pub created_at: Timestamp,
    /// The client address, when known.
    pub ip: Option<IpAddr>,
}

/// A refresh token found by hash, with its session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshLookup {
    /// The session (family) it belongs to.
    pub session: SessionRecord,
    /// Its place in the family, from 1.
    pub generation: u32,
    /// When it stops working.
    pub expires_at: Timestamp,
    /// When it was exchanged for the next one; `Some` means presenting it again is reuse.
    pub used_at: Option<Timestamp>,
}

/// Exchanging a refresh token for the next one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshRotation {
    /// The hash of the presented token (as found by [`SessionStore::refresh_token`]).
    pub presented: TokenHash,
    /// The next token.
    pub next: RefreshTokenInsert,
    /// When.
    pub at: Timestamp,
}

/// What a refresh did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// The presented token is now used and the next one stored; the user is active.
    Rotated {
        /// The session afterwards.
        session: SessionRecord,
        /// The user now (current role and status).
        user: UserRecord,
    },
    /// The presented token had been used before: the session is now revoked.
    Reused {
        /// The session afterwards (revoked).
        session: SessionRecord,
    },
    /// The session had ended (revoked, expired, its user no longer active) or the token expired:
    /// nothing changed.
    Ended {
        /// The session as it is.
        session: SessionRecord,
    },
}

/// A session with its user, for checking an access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionWithUser {
    /// The session.
    pub session: SessionRecord,
    /// Its user now.
    pub user: UserRecord,
}

/// Session storage. Every mutation writes its audit event in the same transaction.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Starts a session: stores it and its first refresh token, clears the user's failed logins and
    /// sets `last_login_at`. `Conflict` when, at commit time, the user is not active, is locked, or
    /// no longer has `checked_password_hash` (so a login racing a suspension leaves no session).
    async fn start_session(&self, start: &SessionStart, audit: &AuditEvent) -> Result<SessionRecord>;

    /// The session with `id`, or `NotFound`.
    async fn session(&self, id: &SessionId) -> Result<SessionRecord>;

    /// The session with its user in one read; `None` when there is no such session.
    async fn session_with_user(&self, id: &SessionId) -> Result<Option<SessionWithUser>>;

    /// The refresh token whose hash is `hash`, used or not; `None` when there is none.
    async fn refresh_token(&self, hash: &TokenHash) -> Result<Option<RefreshLookup>>;

    /// Exchanges a refresh token atomically (see [`RefreshOutcome`]). Writes `rotated` on rotation,
    /// `reused` when reuse revokes the session, nothing otherwise. `NotFound` for an unknown hash.
    async fn rotate_refresh(
        &self,
        rotation: &RefreshRotation,
        rotated: &AuditEvent,
        reused: &AuditEvent,
    ) -> Result<RefreshOutcome>;

    /// Revokes a session and with it every refresh token of its family. Idempotent: revoking a
    /// revoked session changes nothing and writes no event. `NotFound` when it does not exist.
    async fn revoke_session(&self, id: &SessionId, reason: &str, audit: &AuditEvent) -> Result<SessionRecord>;

    /// A user's sessions, newest first. The cursor is a session id.
    async fn list_sessions(&self, user_id: &UserId, page: &PageRequest) -> Result<Page<SessionRecord>>;

    /// Deletes sessions (and their refresh tokens) that ended before `cutoff`; returns how many.
    async fn delete_ended_sessions(&self, cutoff: Timestamp, audit: &AuditEvent) -> Result<u64>;
}
