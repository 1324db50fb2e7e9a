//! The token lifecycle: create, verify, list, show, update, revoke, rotate, clean up.

mod cache;
mod credentials;
mod import;
mod last_used;
mod manager;
mod owners;
mod verify;

pub use cache::CacheStats;
pub use credentials::AgentCredentialContext;
pub use manager::{CreatedToken, TokenManager, TokenManagerBuilder};
pub(crate) use manager::{Kind, check_reason};
pub use verify::TokenContext;
