//! Users: validated usernames and emails, account status, and the stored user record
//! (which never holds the password hash: that travels separately as a [`PasswordHash`]).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{OwnerName, Principal, Role, Timestamp, UserId, ValidationError};

/// A login name: 3–64 characters of `a-z 0-9 . _ -`, stored lowercase (input is lowercased first),
/// so `Alice` and `alice` are the same user.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Username(String);

impl Username {
    /// The shortest accepted username, in characters.
    pub const MIN_CHARS: usize = 3;
    /// The longest accepted username, in characters.
    pub const MAX_CHARS: usize = 64;

    /// Lowercases and validates a username.
    ///
    /// ```
    /// # use tollgate_types::Username;
    /// assert_eq!(Username::parse("Alice.Smith").unwrap().as_str(), "alice.smith");
    /// assert!(Username::parse("al").is_err());
    /// assert!(Username::parse("alice smith").is_err());
    /// ```
    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        Self::parse_field("username", text)
    }

    /// Like [`Username::parse`], naming `field` on failure (a service account's `name` shares the rules
    /// and the namespace).
    pub fn parse_field(field: &'static str, text: &str) -> Result<Self, ValidationError> {
        let length = text.chars().count();
        if !(Self::MIN_CHARS..=Self::MAX_CHARS).contains(&length) {
            return Err(ValidationError::new(field, "must be 3 to 64 characters"));
        }
        let lower = text.to_ascii_lowercase();
        if !lower.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')) {
            return Err(ValidationError::new(field, "may contain only letters a-z, digits 0-9, '.', '_' and '-'"));
        }
        // `user show usr_…` resolves ids first; a name that is also an id would be ambiguous.
        if UserId::parse(&lower).is_ok() || crate::ServiceAccountId::parse(&lower).is_ok() {
            return Err(ValidationError::new(field, "must not look like an id"));
        }
        Ok(Self(lower))
    }

    /// The username.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name as the display name of what it owns.
    pub fn to_owner(&self) -> OwnerName {
        OwnerName::parse(&self.0).expect("a username (3-64 safe ASCII characters) is a valid owner name")
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Username {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Self::parse(&String::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

/// An email address: at most 254 printable ASCII characters shaped `local@domain.tld`, stored lowercase
/// so uniqueness is case-insensitive. Only the shape is checked; deliverability is not.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    /// The longest accepted address (RFC 5321's path limit).
    pub const MAX_CHARS: usize = 254;

    /// Lowercases and checks the shape of an address.
    ///
    /// ```
    /// # use tollgate_types::Email;
    /// assert_eq!(Email::parse("Alice@Example.COM").unwrap().as_str(), "alice@example.com");
    /// assert!(Email::parse("alice@localhost").is_err());
    /// ```
    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        let field = "email";
        let bad = |reason: &str| Err(ValidationError::new(field, reason));
        if text.is_empty() || text.len() > Self::MAX_CHARS {
            return bad("must be 1 to 254 characters");
        }
        if !text.bytes().all(|b| b.is_ascii_graphic()) {
            return bad("must be printable ASCII without spaces");
        }
        let lower = text.to_ascii_lowercase();
        let Some((local, domain)) = lower.split_once('@') else {
            return bad("must look like name@example.com");
        };
        if local.is_empty() || local.len() > 64 || domain.contains('@') {
            return bad("must look like name@example.com");
        }
        let labels: Vec<&str> = domain.split('.').collect();
        if labels.len() < 2 || labels.iter().any(|label| label.is_empty() || label.len() > 63) {
            return bad("must have a domain such as example.com");
        }
        Ok(Self(lower))
    }

    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Email {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Self::parse(&String::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

/// Whether an account may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserStatus {
    /// May log in and use tokens.
    Active,
    /// Blocked by an admin, for a reason; can be activated again.
    Suspended,
    /// Soft-deleted: kept for the audit trail, never usable again, its username and email stay taken.
    Deleted,
}

impl UserStatus {
    /// All statuses.
    pub const ALL: [UserStatus; 3] = [Self::Active, Self::Suspended, Self::Deleted];

    /// The stable name (`active`, `suspended`, `deleted`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
            Self::Deleted => "deleted",
        }
    }
}

impl fmt::Display for UserStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for UserStatus {
    type Err = ValidationError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == text)
            .ok_or_else(|| ValidationError::new("status", "must be one of active, suspended, deleted"))
    }
}

/// A validated request to create a user (the password is hashed separately).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    /// Login name.
    pub username: Username,
    /// Email address.
    pub email: Email,
    /// Role.
    pub role: Role,
    /// Whether the first login must change the password.
    pub must_change_password: bool,
}

impl NewUser {
    /// A user who may keep the password they were given.
    pub fn new(username: Username, email: Email, role: Role) -> Self {
        Self { username, email, role, must_change_password: false }
    }
}

/// A user as stored, without the password hash (so serializing a record can never leak it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserRecord {
    /// Public id.
    pub id: UserId,
    /// Login name (lowercase).
    pub username: Username,
    /// Email (lowercase).
    pub email: Email,
    /// Role now.
    pub role: Role,
    /// Status now.
    pub status: UserStatus,
    /// Why the status was last changed, when the actor said.
    pub status_reason: Option<String>,
    /// Whether the next login must change the password first.
    pub must_change_password: bool,
    /// Failed logins since the last success or lock.
    pub failed_logins: u32,
    /// Until when logins are refused after too many failures.
    pub locked_until: Option<Timestamp>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
    /// When the password was last set.
    pub password_changed_at: Timestamp,
    /// Last successful login.
    pub last_login_at: Option<Timestamp>,
}

impl UserRecord {
    /// Whether logins are refused at `now` because of failed attempts.
    pub fn is_locked(&self, now: Timestamp) -> bool {
        self.locked_until.is_some_and(|until| until > now)
    }

    /// The principal this user acts as, with their current role.
    pub fn principal(&self) -> Principal {
        Principal::User { id: self.id, username: self.username.clone(), role: self.role }
    }
}

/// A bcrypt hash in its modular-crypt text form (`$2b$12$…`). Not a secret, but an offline-guessing
/// target: never serialized, and `Debug` shows only the algorithm and cost.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl PasswordHash {
    /// Wraps a bcrypt hash, refusing anything not shaped like one (`$2a$`/`$2b$`/`$2x$`/`$2y$`, 60 characters).
    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        let bytes = text.as_bytes();
        let shaped = bytes.len() == 60
            && text.starts_with("$2")
            && matches!(bytes[2], b'a' | b'b' | b'x' | b'y')
            && bytes[3] == b'$'
            && bytes[4].is_ascii_digit()
            && bytes[5].is_ascii_digit()
            && bytes[6] == b'$';
        if shaped {
            Ok(Self(text.to_owned()))
        } else {
            Err(ValidationError::new("password_hash", "is not a bcrypt hash"))
        }
    }

    /// The hash text, as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The bcrypt cost the hash was made with.
    pub fn cost(&self) -> u32 {
        self.0[4..6].parse().expect("parse checked two ASCII digits")
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PasswordHash(bcrypt cost {}, <redacted>)", self.cost())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_lowercased_and_checked() {
        assert_eq!(Username::parse("Bob_01").unwrap().as_str(), "bob_01");
        for bad in ["ab", "", "bob smith", "bób", "bob@x", &"a".repeat(65), "usr_0192f3a4b5c6d7e8f90a1b2c3d4e5f60"] {
            assert_eq!(Username::parse(bad).unwrap_err().field, "username", "{bad:?}");
        }
        assert_eq!(Username::parse(&"a".repeat(64)).unwrap().as_str().len(), 64);
        assert_eq!(Username::parse("carol").unwrap().to_owner().as_str(), "carol");
    }

    #[test]
    fn emails_are_lowercased_and_shaped() {
        assert_eq!(Email::parse("Bob@Example.org").unwrap().as_str(), "bob@example.org");
        let long_local = format!("{}@example.com", "a".repeat(65));
        let too_long = format!("a@{}.com", "b".repeat(260));
        for bad in ["", "bob", "bob@", "@example.com", "bob@example", "bob@@example.com", "b ob@x.com", "bob@x..com"] {
            assert_eq!(Email::parse(bad).unwrap_err().field, "email", "{bad:?}");
        }
        assert!(Email::parse(&long_local).is_err());
        assert!(Email::parse(&too_long).is_err());
        assert!(Email::parse("bób@example.com").is_err());
    }

    #[test]
    fn statuses_round_trip() {
        for status in UserStatus::ALL {
            assert_eq!(status.as_str().parse::<UserStatus>().unwrap(), status);
        }
        assert_eq!("gone".parse::<UserStatus>().unwrap_err().field, "status");
    }

    #[test]
    fn password_hashes_are_shaped_and_redacted() {
        let text = "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW";
        let hash = PasswordHash::parse(text).unwrap();
        assert_eq!(hash.cost(), 12);
        let debug = format!("{hash:?}");
        assert!(!debug.contains("R9h"), "{debug}");
        assert!(PasswordHash::parse("plaintext").is_err());
        assert!(PasswordHash::parse(&text.replace("$12$", "$1x$")).is_err());
    }
}
