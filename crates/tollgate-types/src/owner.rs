//! Who owns things: one namespace of principals by id (users `usr_…` and service accounts `svc_…`),
//! service accounts themselves, and projects (`prj_…`) with their members.
//!
//! Names are for people to read; every decision (authorization, limits, reports, suspension sweeps)
//! is made on ids, so a name that collides or is reused can never hand anything over.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{Description, ProjectId, ProjectName, ServiceAccountId, Timestamp, UserId, Username, ValidationError};

/// The owner of a token (and later of agents and provider keys): a user or a service account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OwnerId {
    /// A person's account.
    User(UserId),
    /// A service account.
    ServiceAccount(ServiceAccountId),
}

impl OwnerId {
    /// Parses `usr_…` or `svc_…`, naming `field` on failure.
    pub fn parse_field(field: &'static str, text: &str) -> Result<Self, ValidationError> {
        if text.starts_with(UserId::PREFIX) {
            UserId::parse(text).map(Self::User).map_err(|_| ValidationError::new(field, "is not a valid user id"))
        } else if text.starts_with(ServiceAccountId::PREFIX) {
            ServiceAccountId::parse(text)
                .map(Self::ServiceAccount)
                .map_err(|_| ValidationError::new(field, "is not a valid service account id"))
        } else {
            Err(ValidationError::new(field, "must be a user id (usr_…) or a service account id (svc_…)"))
        }
    }

    /// Parses `usr_…` or `svc_…` (field `owner`).
    ///
    /// ```
    /// # use tollgate_types::{OwnerId, UserId};
    /// let user = UserId::generate();
    /// assert_eq!(OwnerId::parse(&user.to_string()).unwrap(), OwnerId::User(user));
    /// assert_eq!(OwnerId::parse("alice").unwrap_err().field, "owner");
    /// ```
    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        Self::parse_field("owner", text)
    }

    /// `user` or `service_account`.
    pub const fn kind(&self) -> &'static str {
        match self {
            Self::User(_) => "user",
            Self::ServiceAccount(_) => "service_account",
        }
    }

    /// The user, when the owner is one.
    pub fn user(&self) -> Option<UserId> {
        match self {
            Self::User(id) => Some(*id),
            Self::ServiceAccount(_) => None,
        }
    }
}

impl From<UserId> for OwnerId {
    fn from(id: UserId) -> Self {
        Self::User(id)
    }
}

impl From<ServiceAccountId> for OwnerId {
    fn from(id: ServiceAccountId) -> Self {
        Self::ServiceAccount(id)
    }
}

impl fmt::Display for OwnerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::User(id) => fmt::Display::fmt(id, f),
            Self::ServiceAccount(id) => fmt::Display::fmt(id, f),
        }
    }
}

impl FromStr for OwnerId {
    type Err = ValidationError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl Serialize for OwnerId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::User(id) => id.serialize(serializer),
            Self::ServiceAccount(id) => id.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for OwnerId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// An owner as the stores know it: its id, its name and whether it may act now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OwnerRecord {
    /// The id.
    pub id: OwnerId,
    /// Its username or service account name (one namespace).
    pub name: Username,
    /// Whether it is active (tokens of an inactive owner are refused).
    pub active: bool,
    /// A user's role now; `None` for a service account (its tokens carry their own level).
    pub role: Option<crate::Role>,
}

/// Whether a service account may act.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountStatus {
    /// Its tokens work.
    Active,
    /// Its tokens were revoked when it was suspended; new ones cannot be issued.
    Suspended,
}

impl AccountStatus {
    /// The stable name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
        }
    }
}

impl fmt::Display for AccountStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AccountStatus {
    type Err = ValidationError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "active" => Ok(Self::Active),
            "suspended" => Ok(Self::Suspended),
            _ => Err(ValidationError::new("status", "must be one of active, suspended")),
        }
    }
}

/// A validated request to create a service account. Its name follows the username rules and
/// shares their namespace: no user and no service account can have the same name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewServiceAccount {
    /// The name.
    pub name: Username,
    /// What it is for.
    pub description: Description,
}

/// A service account as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceAccountRecord {
    /// Its id.
    pub id: ServiceAccountId,
    /// Its name.
    pub name: Username,
    /// What it is for.
    pub description: Description,
    /// Whether it may act.
    pub status: AccountStatus,
    /// Why it was suspended, when it is.
    pub status_reason: Option<String>,
    /// When it was created.
    pub created_at: Timestamp,
    /// Its last change.
    pub updated_at: Timestamp,
}

/// What a member may do in a project.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProjectRole {
    /// Reads the project's usage and limits.
    Viewer,
    /// Also binds its tokens to the project (spending the project's quotas).
    Member,
}

impl ProjectRole {
    /// The stable name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Member => "member",
        }
    }
}

impl fmt::Display for ProjectRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ProjectRole {
    type Err = ValidationError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "member" => Ok(Self::Member),
            "viewer" => Ok(Self::Viewer),
            _ => Err(ValidationError::new("role", "must be one of member, viewer")),
        }
    }
}

/// A validated request to create a project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewProject {
    /// Its name (unique, case-insensitively).
    pub name: ProjectName,
    /// What it is for.
    pub description: Description,
}

/// A project as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProjectRecord {
    /// Its id.
    pub id: ProjectId,
    /// Its name.
    pub name: ProjectName,
    /// What it is for.
    pub description: Description,
    /// When it was created.
    pub created_at: Timestamp,
    /// Its last change.
    pub updated_at: Timestamp,
}

/// A member of a project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProjectMember {
    /// The project.
    pub project_id: ProjectId,
    /// The user or service account.
    pub member: OwnerId,
    /// The member's name.
    pub member_name: Username,
    /// What the member may do.
    pub role: ProjectRole,
    /// When the member was added or their role last changed.
    pub updated_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_ids_round_trip_and_name_their_kind() {
        let user = OwnerId::User(UserId::generate());
        let service = OwnerId::ServiceAccount(ServiceAccountId::generate());
        for owner in [user, service] {
            assert_eq!(OwnerId::parse(&owner.to_string()).unwrap(), owner);
        }
        assert_eq!((user.kind(), service.kind()), ("user", "service_account"));
        assert_eq!(
            user.user(),
            match user {
                OwnerId::User(id) => Some(id),
                OwnerId::ServiceAccount(_) => None,
            }
        );
        for bad in ["", "ops", "tok_0192f3a4b5c6d7e8f90a1b2c3d4e5f60", "usr_xyz", "svc_"] {
            assert_eq!(OwnerId::parse(bad).unwrap_err().field, "owner", "{bad:?}");
        }
    }

    #[test]
    fn roles_and_statuses_parse() {
        assert_eq!("member".parse::<ProjectRole>().unwrap(), ProjectRole::Member);
        assert!(ProjectRole::Viewer < ProjectRole::Member);
        assert_eq!("owner".parse::<ProjectRole>().unwrap_err().field, "role");
        assert_eq!("suspended".parse::<AccountStatus>().unwrap(), AccountStatus::Suspended);
        assert_eq!("deleted".parse::<AccountStatus>().unwrap_err().field, "status");
    }
}
