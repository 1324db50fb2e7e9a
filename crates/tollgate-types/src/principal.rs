//! Who is acting: the operator at the shell, a logged-in user, or an API token.
//! Authorization decisions (in the facade's `authz` module) are made from this alone.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{Actor, OwnerName, Permission, TokenId, UserId, ValidationError};

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
        /// Their id.
        id: UserId,
        /// Their username, which is the `owner` of their tokens.
        username: OwnerName,
        /// Their role now (checked on every request, not taken from the JWT).
        role: Role,
    },
    /// An API token used against the control API.
    Token {
        /// The token.
        id: TokenId,
        /// Its owner.
        owner: OwnerName,
        /// The user that owns it, if any.
        user_id: Option<UserId>,
        /// Its effective permission: never more than its owner's role allows.
        permission: Permission,
    },
}

impl Principal {
    /// The actor recorded in the audit log.
    pub fn actor(&self) -> Actor {
        match self {
            Self::Operator => Actor::cli(),
            Self::User { id, .. } => Actor::id(id),
            Self::Token { id, .. } => Actor::id(id),
        }
    }

    /// The effective permission level: what this principal may do at most.
    pub fn level(&self) -> Permission {
        match self {
            Self::Operator => Permission::Admin,
            Self::User { role, .. } => role.max_permission(),
            Self::Token { permission, .. } => *permission,
        }
    }

    /// The owner name this principal acts for (`None` for the operator).
    pub fn owner(&self) -> Option<&OwnerName> {
        match self {
            Self::Operator => None,
            Self::User { username, .. } => Some(username),
            Self::Token { owner, .. } => Some(owner),
        }
    }

    /// The user this principal acts for, when there is one.
    pub fn user_id(&self) -> Option<UserId> {
        match self {
            Self::Operator => None,
            Self::User { id, .. } => Some(*id),
            Self::Token { user_id, .. } => *user_id,
        }
    }
}
