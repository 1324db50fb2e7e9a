//! Users: the account lifecycle, passwords (bcrypt off the async runtime), login with lockout and a
//! per-client failure limit.

mod accounts;
mod email;
mod failures;
mod login;
mod passwords;
mod projects;
mod service;
mod throttle;

pub(crate) use service::check_reason;
pub use service::{UserService, UserServiceBuilder};
pub use throttle::{IpThrottlePolicy, LockoutPolicy};
