//! One quota counter in memory: an atomic total that admissions change with compare-and-swap, and
//! the part of it not yet written to the store.

use std::sync::atomic::{AtomicI64, Ordering};

use tollgate_types::Timestamp;

/// Whether adding `amount` to `used` stays within `max`. A zero amount asks whether anything is left
/// (a request whose tokens or cost are not known up front may start only while the cap is not spent).
pub(crate) fn fits(used: i64, amount: i64, max: i64) -> bool {
    if amount == 0 { used < max } else { used.checked_add(amount).is_some_and(|total| total <= max) }
}

/// A counter for one limit and one window.
///
/// `used` is this process's best knowledge of the total: the store's value when last read, plus
/// every local change since. `pending` is the local change not yet written. `persisted` is the
/// store's value as of the last write, so a write's result shows what other processes added.
#[derive(Debug)]
pub(crate) struct Counter {
    used: AtomicI64,
    pending: AtomicI64,
    persisted: AtomicI64,
    window_end: Timestamp,
}

impl Counter {
    /// A counter loaded from the store with value `used`.
    pub(crate) fn new(used: i64, window_end: Timestamp) -> Self {
        Self { used: AtomicI64::new(used), pending: AtomicI64::new(0), persisted: AtomicI64::new(used), window_end }
    }

    /// The current total.
    pub(crate) fn used(&self) -> i64 {
        self.used.load(Ordering::Acquire)
    }

    /// When its window ends.
    pub(crate) fn window_end(&self) -> Timestamp {
        self.window_end
    }

    /// Adds `amount` only if the total stays within `max` (see [`fits`]): `Ok(total after)` or
    /// `Err(total now)`. The compare-and-swap makes concurrent callers unable to pass `max` together.
    pub(crate) fn try_add(&self, amount: i64, max: i64) -> Result<i64, i64> {
        let mut current = self.used.load(Ordering::Acquire);
        loop {
            if !fits(current, amount, max) {
                return Err(current);
            }
            if amount == 0 {
                return Ok(current);
            }
            match self.used.compare_exchange_weak(current, current + amount, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => {
                    self.pending.fetch_add(amount, Ordering::AcqRel);
                    return Ok(current + amount);
                }
                Err(actual) => current = actual,
            }
        }
    }

    /// Adds `amount` unconditionally (usage that already happened, a returned reservation);
    /// returns the total before.
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

    /// After a write of `written` left the store's counter at `total`: whatever else the store
    /// gained (other processes, store-mode admissions) is added to the local total.
    /// Only the recorder's single writer task calls this, so `persisted` has one writer.
    pub(crate) fn reconcile(&self, written: i64, total: i64) {
        let expected = self.persisted.load(Ordering::Acquire).saturating_add(written);
        self.persisted.store(total, Ordering::Release);
        let external = total.saturating_sub(expected);
        if external != 0 {
            self.used.fetch_add(external, Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditional_adds_stop_at_the_maximum() {
        let counter = Counter::new(0, Timestamp::from_unix_micros(0));
        assert_eq!(counter.try_add(4, 10), Ok(4));
        assert_eq!(counter.try_add(7, 10), Err(4));
        assert_eq!(counter.try_add(6, 10), Ok(10));
        assert_eq!(counter.try_add(0, 10), Err(10), "nothing is left");
        assert_eq!(counter.add(-3), 10);
        assert_eq!(counter.try_add(0, 10), Ok(7));
        assert_eq!(counter.take_pending(), 7);
        assert!(!counter.has_pending());
    }

    #[test]
    fn reconcile_adds_what_others_wrote() {
        let counter = Counter::new(100, Timestamp::from_unix_micros(0));
        counter.add(5);
        let written = counter.take_pending();
        counter.add(2); // after the write was taken: stays pending
        // Another process added 30 meanwhile: the store now holds 100 + 5 + 30.
        counter.reconcile(written, 135);
        assert_eq!(counter.used(), 137);
        assert_eq!(counter.take_pending(), 2);
        counter.reconcile(2, 137);
        assert_eq!(counter.used(), 137);
    }

    #[test]
    fn threads_racing_for_the_last_units_never_pass_the_maximum() {
        let counter = std::sync::Arc::new(Counter::new(0, Timestamp::from_unix_micros(0)));
        let admitted: usize = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    let counter = &counter;
                    scope.spawn(move || (0..10_000).filter(|_| counter.try_add(3, 9_999).is_ok()).count())
                })
                .collect();
            handles.into_iter().map(|handle| handle.join().unwrap()).sum()
        });
        assert_eq!(admitted, 3_333);
        assert_eq!(counter.used(), 9_999);
    }
}
