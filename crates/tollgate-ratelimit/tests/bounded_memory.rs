//! The key cap: eviction drops idle keys first, never loses the state of an active key needlessly, and the
//! number of keys never passes the cap, even under concurrent new keys.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use common::{key, limiter, per_second};
use tollgate_ratelimit::Decision;

#[test]
fn evict_idle_drops_only_keys_whose_bucket_is_full_again() {
    let (limiter, clock) = limiter(100);
    let (fast, slow) = (per_second(10, 1), per_second(1, 1));
    limiter.check(&key(1), &fast, 1).unwrap(); // full again after 100 ms
    limiter.check(&key(2), &slow, 1).unwrap(); // full again after 1 s
    clock.advance(Duration::from_millis(99));
    assert_eq!(limiter.evict_idle(), 0);
    clock.advance(Duration::from_millis(1));
    assert_eq!(limiter.evict_idle(), 1);
    assert_eq!(limiter.len(), 1);
    assert!(!limiter.check(&key(2), &slow, 1).unwrap().is_allowed(), "the active key kept its state");
    assert_eq!(limiter.stats().evicted_idle, 1);
}

#[test]
fn a_full_map_evicts_idle_keys_before_active_ones() {
    let (limiter, clock) = limiter(10);
    let (fast, slow) = (per_second(10, 1), per_second(1, 1));
    for n in 0..5 {
        limiter.check(&key(n), &fast, 1).unwrap();
        limiter.check(&key(100 + n), &slow, 1).unwrap();
    }
    assert_eq!(limiter.len(), 10);
    clock.advance(Duration::from_millis(500)); // the fast keys are idle, the slow ones still owe 500 ms

    assert!(limiter.check(&key(1_000), &slow, 1).unwrap().is_allowed());
    assert_eq!(limiter.len(), 6);
    let stats = limiter.stats();
    assert_eq!((stats.evicted_idle, stats.evicted_active), (5, 0));
    for n in 0..5 {
        let refused = limiter.check(&key(100 + n), &slow, 1).unwrap();
        assert!(matches!(refused, Decision::Limited { retry_after, .. } if retry_after == Duration::from_millis(500)));
    }
}

#[test]
fn a_map_full_of_active_keys_evicts_some_and_stays_within_the_cap() {
    let (limiter, _clock) = limiter(4);
    let slow = per_second(1, 1);
    for n in 0..20 {
        assert!(limiter.check(&key(n), &slow, 1).unwrap().is_allowed(), "a new key always gets its burst");
        assert!(limiter.len() <= 4, "len {} after key {n}", limiter.len());
    }
    let stats = limiter.stats();
    assert_eq!(stats.evicted_active, 16);
    assert_eq!(stats.untracked, 0);
    assert!(!limiter.check(&key(19), &slow, 1).unwrap().is_allowed(), "the newest key is still tracked");
}

#[test]
fn concurrent_new_keys_never_push_the_count_past_the_cap() {
    const CAP: usize = 64;
    let (limiter, _clock) = limiter(CAP);
    let quota = per_second(1, 1);
    let done = AtomicBool::new(false);
    let most_seen = thread::scope(|scope| {
        let watcher = scope.spawn(|| {
            let mut most_seen = 0;
            while !done.load(Ordering::Acquire) {
                most_seen = most_seen.max(limiter.len());
            }
            most_seen
        });
        let writers: Vec<_> = (0..4u64)
            .map(|thread| {
                let (limiter, quota) = (&limiter, &quota);
                scope.spawn(move || {
                    for n in 0..5_000 {
                        assert!(limiter.check(&key(thread * 1_000_000 + n), quota, 1).unwrap().is_allowed());
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.join().unwrap();
        }
        done.store(true, Ordering::Release);
        watcher.join().unwrap()
    });
    assert!(most_seen <= CAP, "saw {most_seen} keys");
    assert!(limiter.len() <= CAP);
    let stats = limiter.stats();
    assert_eq!(stats.allowed, 20_000);
    assert_eq!(stats.evicted_active + stats.untracked + limiter.len() as u64, 20_000);
}

#[test]
fn concurrent_checks_on_one_key_admit_exactly_the_burst() {
    let (limiter, _clock) = limiter(100);
    let quota = per_second(1, 20);
    let admitted: usize = thread::scope(|scope| {
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (limiter, quota) = (&limiter, &quota);
                scope.spawn(move || (0..100).filter(|_| limiter.check(&key(1), quota, 1).unwrap().is_allowed()).count())
            })
            .collect();
        threads.into_iter().map(|thread| thread.join().unwrap()).sum()
    });
    assert_eq!(admitted, 20);
    assert_eq!((limiter.stats().allowed, limiter.stats().limited), (20, 780));
}
