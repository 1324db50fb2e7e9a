//! Login sessions: one per successful login, one refresh-token family each. The refresh secrets
//! themselves are stored only as hashes, in the backend, and never appear in a record.

use std::net::IpAddr;

use serde::Serialize;

use crate::{SessionId, Timestamp, UserId};

/// A session as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionRecord {
    /// Public id (`ses_…`), also the `sid` claim of its access tokens.
    pub id: SessionId,
    /// Whose session.
    pub user_id: UserId,
    /// How many refresh tokens the family has had (1 after login, +1 per refresh).
    pub generation: u32,
    /// Login time.
    pub created_at: Timestamp,
    /// Last refresh, if any.
    pub refreshed_at: Option<Timestamp>,
    /// When the current refresh token expires; the session ends then unless refreshed.
    pub expires_at: Timestamp,
    /// When it was revoked (logout, refresh-token reuse, the user suspended, …).
    pub revoked_at: Option<Timestamp>,
    /// Why it was revoked.
    pub revoke_reason: Option<String>,
    /// The client address at login, when known.
    pub ip: Option<IpAddr>,
}

impl SessionRecord {
    /// Whether the session still grants access at `now`.
    pub fn is_live(&self, now: Timestamp) -> bool {
        self.revoked_at.is_none() && self.expires_at > now
    }
}
