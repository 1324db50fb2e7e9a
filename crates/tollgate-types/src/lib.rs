//! Domain types for tollgate: pure values with their invariants, no I/O.
//!
//! Everything that crosses a crate boundary is parsed into one of these types at the edge
//! (CLI flags, HTTP bodies, database rows) and trusted afterwards.

mod audit;
mod base62;
mod clock;
mod duration;
mod error;
mod id;
mod limits;
mod password;
mod permission;
mod principal;
mod session;
mod text;
mod token;
mod token_hash;
mod token_record;
mod user;
mod verify;

pub use audit::{AUDIT_GENESIS_HASH, Actor, AuditEntry, AuditEvent};
pub use clock::{Clock, ManualClock, SystemClock, Timestamp};
pub use duration::parse_duration;
pub use error::ValidationError;
pub use id::{AuditId, SessionId, TokenId, UserId};
pub use limits::{IpAllowList, ToolList};
pub use password::Password;
pub use permission::{Permission, Scope};
pub use principal::{Principal, Role};
pub use session::SessionRecord;
pub use text::{Description, OwnerName, ProjectName, TokenName};
pub use token::{TokenFormatError, TokenPrefix, TokenSecret};
pub use token_hash::{KeyId, TokenHash, TokenHasher};
pub use token_record::{NewToken, TokenPatch, TokenRecord, TokenStatus};
pub use user::{Email, NewUser, PasswordHash, UserRecord, UserStatus, Username};
pub use verify::{Refusal, RefusalCode, VerifyRequest};
