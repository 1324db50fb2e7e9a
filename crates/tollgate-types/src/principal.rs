//! Who is acting: the operator at the shell, a logged-in user, or an API token.
//! Authorization decisions (in the facade's `authz` module) are made from this alone.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{Actor, AgentId, OwnerId, Permission, TokenId, UserId, Username, ValidationError};

/// A user's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads only.
    Viewer,
    /// Manages their own tokens.
    User,
    /// Manages everything.
    Admin,
}

impl Role {
    /// The stable name (`viewer`, `user`, `admin`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::User => "user",
            Self::Admin => "admin",
        }
    }

    /// All roles, least privileged first.
    pub const ALL: [Role; 3] = [Self::Viewer, Self::User, Self::Admin];

    /// The highest token permission a holder of this role may have or grant.
    pub const fn max_permission(self) -> Permission {
        match self {
            Self::Viewer => Permission::ReadOnly,
            Self::User => Permission::Standard,
            Self::Admin => Permission::Admin,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = ValidationError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|role| role.as_str() == text)
            .ok_or_else(|| ValidationError::new("role", "must be one of admin, user, viewer"))
    }
}

/// The party performing an operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// Someone with direct access to the database (the `tollgate` CLI): may do everything.
    Operator,
    /// A logged-in user (an access JWT).
    User {
        /// Their id: what they own is owned by this id.
        id: UserId,
        /// Their username (for display; never compared to decide anything).
        username: Username,
        /// Their role now (checked on every request, not taken from the JWT).
        role: Role,
    },
    /// An API token used against the control API.
    Token {
        /// The token.
        id: TokenId,
        /// Its owner: the principal it acts for.
        owner: OwnerId,
        /// Its effective permission: the lower of its own level and its owner's current role.
        permission: Permission,
    },
    /// An AI agent, authenticated by one of its agent credentials. It acts for nobody: it may only
    /// receive what is assigned to it (its provider key, its budget), never manage anything.
    Agent {
        /// The agent.
        id: AgentId,
        /// The credential it presented.
        credential: TokenId,
    },
}

impl Principal {
    /// The actor recorded in the audit log.
    pub fn actor(&self) -> Actor {
        match self {
            Self::Operator => Actor::cli(),
            Self::User { id, .. } => Actor::id(id),
            Self::Token { id, .. } => Actor::id(id),
            Self::Agent { id, .. } => Actor::id(id),
        }
    }

    /// The effective permission level: what this principal may do at most.
    pub fn level(&self) -> Permission {
        match self {
            Self::Operator => Permission::Admin,
            Self::User { role, .. } => role.max_permission(),
            Self::Token { permission, .. } => *permission,
            Self::Agent { .. } => Permission::ReadOnly,
        }
    }

    /// The owner this principal acts for (`None` for the operator): a user, or a token's owner.
    pub fn owner_id(&self) -> Option<OwnerId> {
        match self {
            Self::Operator | Self::Agent { .. } => None,
            Self::User { id, .. } => Some(OwnerId::User(*id)),
            Self::Token { owner, .. } => Some(*owner),
        }
    }

    /// The user this principal acts for, when there is one.
    pub fn user_id(&self) -> Option<UserId> {
        self.owner_id().and_then(|owner| owner.user())
    }
}
