//! What a verify call is asked and how it refuses: stable codes that the CLI and HTTP API show as they are.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use serde::Serialize;

use crate::Timestamp;

/// The circumstances of one verify: where the request comes from and which tool it calls.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyRequest {
    /// The client's address, when known.
    pub ip: Option<IpAddr>,
    /// The tool or endpoint being called, when the caller restricts tools.
    pub tool: Option<String>,
}

/// The stable machine code of a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RefusalCode {
    /// Not a token of this format, or its checksum is wrong.
    Malformed,
    /// Well-formed but unknown (or its grace period after rotation has ended).
    NotFound,
    /// Revoked.
    Revoked,
    /// Past its expiry.
    Expired,
    /// The client's IP is outside the token's allow-list.
    IpNotAllowed,
    /// The tool is not in the token's allowed tools.
    ToolNotAllowed,
    /// Over the token's rate limit.
    RateLimited,
    /// Over a quota.
    QuotaExceeded,
    /// Login refused: unknown user, wrong password, locked or inactive account — deliberately one
    /// code for all, so the answer does not tell which accounts exist.
    InvalidCredentials,
    /// The password was right but must be changed before the account can log in.
    PasswordChangeRequired,
    /// An agent credential whose agent is paused.
    AgentPaused,
    /// An agent credential whose agent is disabled.
    AgentDisabled,
}

impl RefusalCode {
    /// The code as shown to users and machines.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::NotFound => "not_found",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
            Self::IpNotAllowed => "ip_not_allowed",
            Self::ToolNotAllowed => "tool_not_allowed",
            Self::RateLimited => "rate_limited",
            Self::QuotaExceeded => "quota_exceeded",
            Self::InvalidCredentials => "invalid_credentials",
            Self::PasswordChangeRequired => "password_change_required",
            Self::AgentPaused => "agent_paused",
            Self::AgentDisabled => "agent_disabled",
        }
    }
}

impl fmt::Display for RefusalCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused verify: the code, plus when trying again may help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("token refused: {code}")]
pub struct Refusal {
    /// Why.
    pub code: RefusalCode,
    /// For `rate_limited`: how long until a retry can succeed.
    pub retry_after: Option<Duration>,
    /// For `quota_exceeded`: which limit (e.g. `requests_per_day`).
    pub limit: Option<String>,
    /// For `quota_exceeded`: when the window resets.
    pub resets_at: Option<Timestamp>,
}

impl Refusal {
    /// A refusal with no further detail.
    pub const fn new(code: RefusalCode) -> Self {
        Self { code, retry_after: None, limit: None, resets_at: None }
    }
}

impl From<RefusalCode> for Refusal {
    fn from(code: RefusalCode) -> Self {
        Self::new(code)
    }
}
