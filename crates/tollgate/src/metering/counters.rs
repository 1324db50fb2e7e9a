//! A shadow-limit counter in memory: what this process counted in a window, and the part of it not
//! yet written to the store.

use std::sync::atomic::{AtomicI64, Ordering};

/// Whether adding `amount` to `used` stays within `max`. A zero amount asks whether anything is left
/// (a request whose tokens or cost are not known up front may start only while the cap is not spent).
pub(crate) fn fits(used: i64, amount: i64, max: i64) -> bool {
    if amount == 0 { used < max } else { used.checked_add(amount).is_some_and(|total| total <= max) }
}

/// A counter for one shadow limit and one window.
#[derive(Debug)]
pub(crate) struct Counter {
    used: AtomicI64,
    pending: AtomicI64,
}

impl Counter {
    /// A counter starting at `used`.
    pub(crate) fn new(used: i64) -> Self {
        Self { used: AtomicI64::new(used), pending: AtomicI64::new(0) }
    }

    /// Adds `amount`; returns the total before.
    pub(crate) fn add(&self, amount: i64) -> i64 {
        self.pending.fetch_add(amount, Ordering::AcqRel);
        self.used.fetch_add(amount, Ordering::AcqRel)
    }

    /// Takes the unwritten change for a write.
    pub(crate) fn take_pending(&self) -> i64 {
        self.pending.swap(0, Ordering::AcqRel)
    }

    /// Whether there is an unwritten change.
    pub(crate) fn has_pending(&self) -> bool {
        self.pending.load(Ordering::Acquire) != 0
    }

    /// Puts back a change whose write failed.
    pub(crate) fn restore_pending(&self, amount: i64) {
        self.pending.fetch_add(amount, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fits_stops_at_the_maximum_and_zero_asks_whether_anything_is_left() {
        assert!(fits(4, 6, 10));
        assert!(!fits(4, 7, 10));
        assert!(fits(9, 0, 10));
        assert!(!fits(10, 0, 10));
        assert!(!fits(i64::MAX - 1, 5, i64::MAX), "no overflow");
    }

    #[test]
    fn pending_changes_are_taken_once_and_restored_after_a_failed_write() {
        let counter = Counter::new(0);
        assert_eq!(counter.add(3), 0);
        assert_eq!(counter.add(2), 3);
        assert_eq!(counter.take_pending(), 5);
        assert!(!counter.has_pending());
        counter.restore_pending(5);
        assert_eq!(counter.take_pending(), 5);
    }
}
