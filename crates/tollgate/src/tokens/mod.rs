//! The token lifecycle: create, verify, list, show, update, revoke, rotate, clean up.

mod cache;
mod import;
mod last_used;
mod manager;
mod owners;
mod verify;

pub use cache::CacheStats;
pub use manager::{CreatedToken, TokenManager, TokenManagerBuilder};
pub use verify::TokenContext;
