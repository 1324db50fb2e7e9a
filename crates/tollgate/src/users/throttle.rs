//! Login policies (account lockout, per-client-IP failure limit) and the in-memory per-IP limiter.
//!
//! Lockout is counted per account in the store. On its own it would let one attacker lock out every
//! account by guessing against each; so failures are also counted per client address, and an address
//! over its limit is refused *before* its attempts reach (and count against) any account.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::Duration;

use tollgate_types::Timestamp;

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

#[derive(Debug, Clone, Copy)]
struct Window {
    started: Timestamp,
    failures: u32,
}

/// Failure counts per client address, bounded to `capacity` addresses.
#[derive(Debug)]
pub(crate) struct IpThrottle {
    policy: IpThrottlePolicy,
    capacity: usize,
    windows: Mutex<HashMap<IpAddr, Window>>,
}

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
    pub(crate) fn new(policy: IpThrottlePolicy, capacity: usize) -> Self {
        let policy = IpThrottlePolicy { max_failures: policy.max_failures.max(1), ..policy };
        Self { policy, capacity: capacity.max(1), windows: Mutex::new(HashMap::new()) }
    }

    fn ended(&self, window: &Window, now: Timestamp) -> bool {
        now.duration_since(window.started) >= self.policy.window || now < window.started
    }

    /// `Err(retry_after)` when `ip` has used up its failures for the current window.
    pub(crate) fn check(&self, ip: IpAddr, now: Timestamp) -> Result<(), Duration> {
        let windows = self.windows.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match windows.get(&client_key(ip)) {
            Some(window) if !self.ended(window, now) && window.failures >= self.policy.max_failures => {
                Err(self.policy.window.saturating_sub(now.duration_since(window.started)).max(Duration::from_secs(1)))
            }
            _ => Ok(()),
        }
    }

    /// Counts one failed login from `ip`.
    pub(crate) fn record_failure(&self, ip: IpAddr, now: Timestamp) {
        let key = client_key(ip);
        let mut windows = self.windows.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if !windows.contains_key(&key) && windows.len() >= self.capacity {
            windows.retain(|_, window| !self.ended(window, now));
            if windows.len() >= self.capacity {
                // Memory stays bounded; accounts are still protected by their own lockout.
                tracing::warn!(capacity = self.capacity, "login throttle is full; not tracking a new address");
                return;
            }
        }
        let window = windows.entry(key).or_insert(Window { started: now, failures: 0 });
        if self.ended(window, now) {
            *window = Window { started: now, failures: 0 };
        }
        window.failures = window.failures.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timestamp = Timestamp::from_unix_micros(1_000_000_000_000);

    fn later(seconds: u64) -> Timestamp {
        T.saturating_add(Duration::from_secs(seconds))
    }

    #[test]
    fn an_address_over_its_limit_waits_for_the_window_to_end() {
        let throttle = IpThrottle::new(IpThrottlePolicy { max_failures: 3, window: Duration::from_secs(60) }, 100);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for second in 0..3 {
            assert!(throttle.check(ip, later(second)).is_ok());
            throttle.record_failure(ip, later(second));
        }
        assert_eq!(throttle.check(ip, later(10)), Err(Duration::from_secs(50)));
        assert!(throttle.check("192.0.2.2".parse().unwrap(), later(10)).is_ok());
        assert!(throttle.check(ip, later(60)).is_ok());
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let throttle = IpThrottle::new(IpThrottlePolicy { max_failures: 2, window: Duration::from_secs(60) }, 100);
        throttle.record_failure("2001:db8::1".parse().unwrap(), T);
        throttle.record_failure("2001:db8::ffff:2".parse().unwrap(), T);
        assert!(throttle.check("2001:db8::9".parse().unwrap(), T).is_err());
        assert!(throttle.check("2001:db8:0:1::9".parse().unwrap(), T).is_ok());
        throttle.record_failure("::ffff:192.0.2.5".parse().unwrap(), T);
        throttle.record_failure("192.0.2.5".parse().unwrap(), T);
        assert!(throttle.check("192.0.2.5".parse().unwrap(), T).is_err());
    }

    #[test]
    fn memory_is_bounded() {
        let throttle = IpThrottle::new(IpThrottlePolicy { max_failures: 1, window: Duration::from_secs(60) }, 2);
        for last in 1..=3u8 {
            throttle.record_failure(IpAddr::from([192, 0, 2, last]), T);
        }
        assert!(throttle.check("192.0.2.3".parse().unwrap(), T).is_ok(), "the third address was not tracked");
        // Once the old windows end, there is room again.
        throttle.record_failure("192.0.2.3".parse().unwrap(), later(61));
        assert!(throttle.check("192.0.2.3".parse().unwrap(), later(61)).is_err());
    }
}
