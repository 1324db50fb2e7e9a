//! Login policies (account lockout, per-client-IP failure limit) and the per-IP limiter, whose
//! counts live in the store (shared by every process and node).
//!
//! Lockout is counted per account in the store. On its own it would let one attacker lock out every
//! account by guessing against each; so failures are also counted per client address, and an address
//! over its limit is refused *before* its attempts reach (and count against) any account.

use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tollgate_store::{LoginSlot, Store};
use tollgate_types::{Refusal, RefusalCode, Timestamp};

use crate::{Error, Result};

/// Account lockout: `max_failures` failed logins in a row lock the account for `lock_for`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// The failure that reaches this count locks the account (at least 1).
    pub max_failures: u32,
    /// For how long.
    pub lock_for: Duration,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        Self { max_failures: 5, lock_for: Duration::from_secs(15 * 60) }
    }
}

/// Per-client limit: after `max_failures` failed logins within `window`, further logins from the same
/// address (an IPv6 /64 counts as one address) are refused until the window ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpThrottlePolicy {
    /// Failures allowed per window (at least 1).
    pub max_failures: u32,
    /// The window, starting at the first failure.
    pub window: Duration,
}

impl Default for IpThrottlePolicy {
    fn default() -> Self {
        Self { max_failures: 20, window: Duration::from_secs(15 * 60) }
    }
}

/// Failure slots per client address, kept in the store so that every process and node counts
/// against one limit. A slot is taken *before* the password is checked (so concurrent attempts from
/// one address cannot all pass the check) and given back when the login succeeds.
#[derive(Debug)]
pub(crate) struct IpThrottle {
    policy: IpThrottlePolicy,
    store: Arc<dyn Store>,
    /// Slots taken since start; every `PURGE_EVERY`th also deletes ended windows.
    taken: AtomicU64,
}

/// A slot held for one attempt.
#[derive(Debug)]
pub(crate) struct ThrottleSlot {
    client: String,
    window_started: Timestamp,
}

/// How many takes between purges of ended windows.
const PURGE_EVERY: u64 = 1_024;

/// The address a failure counts against: IPv4 as is (also when IPv4-mapped), IPv6 by its /64,
/// because one IPv6 client usually holds a whole /64.
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::V6(Ipv6Addr::from(segments))
            }
        },
    }
}

impl IpThrottle {
    pub(crate) fn new(policy: IpThrottlePolicy, store: Arc<dyn Store>) -> Self {
        let policy = IpThrottlePolicy { max_failures: policy.max_failures.max(1), ..policy };
        Self { policy, store, taken: AtomicU64::new(0) }
    }

    /// Takes a failure slot for an attempt from `ip`: `rate_limited` with the time until the
    /// window ends when every slot is taken.
    pub(crate) async fn take(&self, ip: IpAddr, now: Timestamp) -> Result<ThrottleSlot> {
        let client = client_key(ip).to_string();
        if self.taken.fetch_add(1, Ordering::Relaxed) % PURGE_EVERY == PURGE_EVERY - 1 {
            let ended = now.saturating_sub(self.policy.window);
            if let Err(error) = self.store.purge_login_slots(ended).await {
                tracing::warn!(error = %error, "purging ended login throttle windows failed");
            }
        }
        let slot = self.store.take_login_slot(&client, now, self.policy.window, self.policy.max_failures).await?;
        match slot {
            LoginSlot::Taken { window_started } => Ok(ThrottleSlot { client, window_started }),
            LoginSlot::Full { retry_at } => {
                let mut refusal = Refusal::new(RefusalCode::RateLimited);
                refusal.retry_after = Some(retry_at.duration_since(now).max(Duration::from_secs(1)));
                Err(Error::Refused(refusal))
            }
        }
    }

    /// Gives a slot back: the attempt succeeded. A failure to write it only keeps the slot taken.
    pub(crate) async fn give_back(&self, slot: ThrottleSlot) {
        if let Err(error) = self.store.return_login_slot(&slot.client, slot.window_started).await {
            tracing::warn!(error = %error, "giving back a login throttle slot failed");
        }
    }
}

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use super::*;

    const T: Timestamp = Timestamp::from_unix_micros(1_000_000_000_000);

    fn later(seconds: u64) -> Timestamp {
        T.saturating_add(Duration::from_secs(seconds))
    }

    async fn throttle(max_failures: u32) -> IpThrottle {
        let store = tollgate_sqlite::SqliteStore::open_in_memory().await.unwrap();
        IpThrottle::new(IpThrottlePolicy { max_failures, window: Duration::from_secs(60) }, Arc::new(store))
    }

    fn retry_after(result: Result<ThrottleSlot>) -> Option<Duration> {
        match result {
            Ok(_) => None,
            Err(Error::Refused(refusal)) => refusal.retry_after,
            Err(other) => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn an_address_over_its_limit_waits_for_the_window_to_end() {
        let throttle = throttle(3).await;
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for second in 0..3 {
            assert!(throttle.take(ip, later(second)).await.is_ok());
        }
        assert_eq!(retry_after(throttle.take(ip, later(10)).await), Some(Duration::from_secs(50)));
        assert!(throttle.take("192.0.2.2".parse().unwrap(), later(10)).await.is_ok());
        assert!(throttle.take(ip, later(60)).await.is_ok());
    }

    #[tokio::test]
    async fn a_slot_given_back_is_free_again() {
        let throttle = throttle(1).await;
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let slot = throttle.take(ip, T).await.unwrap();
        assert!(throttle.take(ip, T).await.is_err());
        throttle.give_back(slot).await;
        assert!(throttle.take(ip, later(1)).await.is_ok());
    }

    #[tokio::test]
    async fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let throttle = throttle(2).await;
        assert!(throttle.take("2001:db8::1".parse().unwrap(), T).await.is_ok());
        assert!(throttle.take("2001:db8::ffff:2".parse().unwrap(), T).await.is_ok());
        assert!(throttle.take("2001:db8::9".parse().unwrap(), T).await.is_err());
        assert!(throttle.take("2001:db8:0:1::9".parse().unwrap(), T).await.is_ok());
        assert!(throttle.take("::ffff:192.0.2.5".parse().unwrap(), T).await.is_ok());
        assert!(throttle.take("192.0.2.5".parse().unwrap(), T).await.is_ok());
        assert!(throttle.take("192.0.2.5".parse().unwrap(), T).await.is_err());
    }
}
