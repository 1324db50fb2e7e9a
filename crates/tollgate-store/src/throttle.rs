//! The per-client login throttle's shared state: failure slots per client address and window, in
//! the store so every process and node counts against one limit, taken atomically *before* the
//! password is checked so that concurrent attempts cannot pass the limit together.

use std::time::Duration;

use async_trait::async_trait;
use tollgate_types::Timestamp;

use crate::Result;

/// What asking for a slot decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginSlot {
    /// A slot was taken in the window that started at `window_started`; give it back with
    /// [`LoginThrottleStore::return_login_slot`] when the login succeeds.
    Taken {
        /// When the client's current window began.
        window_started: Timestamp,
    },
    /// Every slot of the current window is taken; the window ends at `retry_at`.
    Full {
        /// When the window ends.
        retry_at: Timestamp,
    },
}

/// Login failure slots per client (an address, or an IPv6 /64, as text of at most 64 characters).
#[async_trait]
pub trait LoginThrottleStore: Send + Sync {
    /// Takes one of `max` slots of `client`'s window (which starts at its first slot and lasts
    /// `window`; an ended window starts again at `now`), atomically across every process.
    async fn take_login_slot(&self, client: &str, now: Timestamp, window: Duration, max: u32) -> Result<LoginSlot>;

    /// Gives back a slot taken in the window that began at `window_started` (the attempt succeeded);
    /// nothing when that window has ended since.
    async fn return_login_slot(&self, client: &str, window_started: Timestamp) -> Result<()>;

    /// Deletes clients whose window began before `before`; returns how many.
    async fn purge_login_slots(&self, before: Timestamp) -> Result<u64>;
}
