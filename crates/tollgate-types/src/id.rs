//! Typed, prefixed, time-ordered public ids (`tok_…`, `usr_…`): UUIDv7 in lowercase hex, so that
//! sorting ids sorts by creation time and lists paginate by id.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ValidationError;

macro_rules! define_id {
    ($(#[$meta:meta])* $name:ident, $prefix:literal, $field:literal) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(uuid::Uuid);

        impl $name {
            /// The id's prefix, including the underscore.
            pub const PREFIX: &'static str = $prefix;

            /// A fresh id, ordered after every id made before it in this process.
            pub fn generate() -> Self {
                Self(uuid::Uuid::now_v7())
            }

            /// Parses `tok_<32 hex>`-style text, naming the field on failure.
            pub fn parse(text: &str) -> Result<Self, ValidationError> {
                let hex = text.strip_prefix($prefix).ok_or_else(|| {
                    ValidationError::new($field, concat!("must start with ", $prefix))
                })?;
                if hex.len() != 32 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
                    return Err(ValidationError::new($field, concat!("must be ", $prefix, " followed by 32 lowercase hex digits")));
                }
                uuid::Uuid::parse_str(hex)
                    .map(Self)
                    .map_err(|_| ValidationError::new($field, "is not a valid id"))
            }

            /// The 16 raw bytes, for backends that store ids in binary form.
            pub fn as_bytes(&self) -> &[u8; 16] {
                self.0.as_bytes()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}{}", $prefix, self.0.simple())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }

        impl FromStr for $name {
            type Err = ValidationError;
            fn from_str(text: &str) -> Result<Self, Self::Err> {
                Self::parse(text)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                // Formatted on the stack: `collect_str` goes through `fmt` and an escaping
                // adapter, a measurable share of every verify answer.
                let mut text = [0u8; $prefix.len() + uuid::fmt::Simple::LENGTH];
                text[..$prefix.len()].copy_from_slice($prefix.as_bytes());
                let hex = self.0.simple().encode_lower(&mut text[$prefix.len()..]).len();
                let text = std::str::from_utf8(&text[..$prefix.len() + hex]).map_err(serde::ser::Error::custom)?;
                serializer.serialize_str(text)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                Self::parse(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}

define_id!(
    /// The public id of an API token (`tok_…`). Stable across rotation.
    TokenId, "tok_", "token_id"
);
define_id!(
    /// The public id of a user (`usr_…`).
    UserId, "usr_", "user_id"
);
define_id!(
    /// The public id of a service account (`svc_…`): an owner that is not a person.
    ServiceAccountId, "svc_", "service_account_id"
);
define_id!(
    /// The public id of a project (`prj_…`).
    ProjectId, "prj_", "project_id"
);
define_id!(
    /// A reservation against tokens and cost limits (`rsv_…`), settled with a call's actual usage.
    ReservationId, "rsv_", "reservation_id"
);
define_id!(
    /// A process that leases blocks of request quotas (`hld_…`), new at every start.
    HolderId, "hld_", "holder_id"
);
define_id!(
    /// The id of a login session (`ses_…`): one refresh-token family.
    SessionId, "ses_", "session_id"
);
define_id!(
    /// The public id of an AI agent (`agt_…`).
    AgentId, "agt_", "agent_id"
);
define_id!(
    /// The public id of a provider API key held in the vault (`pk_…`).
    ProviderKeyId, "pk_", "provider_key_id"
);
define_id!(
    /// A lease of an agent's budget (`bls_…`).
    LeaseId, "bls_", "lease_id"
);
define_id!(
    /// A request to change an agent's budget (`brq_…`).
    BudgetRequestId, "brq_", "request_id"
);
define_id!(
    /// A request trace (`trc_…`).
    TraceId, "trc_", "trace_id"
);
define_id!(
    /// The id of an audit log entry (`aud_…`).
    AuditId, "aud_", "audit_id"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_sort_by_time() {
        let first = TokenId::generate();
        let second = TokenId::generate();
        assert!(first.to_string() < second.to_string());
        assert_eq!(TokenId::parse(&first.to_string()).unwrap(), first);
        assert!(first.to_string().starts_with("tok_"));
    }

    #[test]
    fn wrong_prefix_or_shape_is_refused() {
        let user = UserId::generate().to_string();
        assert_eq!(TokenId::parse(&user).unwrap_err().field, "token_id");
        assert!(TokenId::parse("tok_xyz").is_err());
        assert!(TokenId::parse("tok_0192F3A4B5C6D7E8F90A1B2C3D4E5F60").is_err());
    }

    #[test]
    fn ids_serialize_as_their_display_text() {
        let token = TokenId::generate();
        assert_eq!(serde_json::to_string(&token).unwrap(), format!("\"{token}\""));
        let owner = crate::OwnerId::ServiceAccount(ServiceAccountId::generate());
        assert_eq!(serde_json::to_string(&owner).unwrap(), format!("\"{owner}\""));
    }
}
