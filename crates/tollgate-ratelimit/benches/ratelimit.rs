//! Cost of one check on the in-process limiter: one hot key, 100,000 keys, a refused key, and through the
//! async trait object; and one round trip of the shared limiter when `TOLLGATE_TEST_REDIS_URL` names a Redis.
//! Run with `cargo bench -p tollgate-ratelimit -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use tollgate_ratelimit::{Decision, LocalLimiter, RateKey, RateLimiter, RateQuota};

const MANY_KEYS: u32 = 100_000;

fn key(n: u32) -> RateKey {
    let mut bytes = [0; 16];
    bytes[..4].copy_from_slice(&n.to_le_bytes());
    RateKey::from_bytes(bytes)
}

fn limiter() -> LocalLimiter {
    LocalLimiter::new(NonZeroUsize::new(1_000_000).expect("non-zero"))
}

/// A quota the benchmark never exhausts, so every check takes the allow path and writes the state.
fn generous() -> RateQuota {
    RateQuota::new(1_000_000_000, Duration::from_secs(1), 1_000_000_000).expect("valid quota")
}

fn check(c: &mut Criterion) {
    let mut group = c.benchmark_group("check");
    let quota = generous();
    let hot_key = key(1);

    let one_key = limiter();
    group.bench_function("1_key_allowed", |b| {
        b.iter(|| one_key.check(black_box(&hot_key), &quota, 1).expect("valid cost"))
    });

    let spent_key = limiter();
    let stingy = RateQuota::new(1, Duration::from_secs(3_600), 1).expect("valid quota");
    group.bench_function("1_key_limited", |b| {
        b.iter(|| spent_key.check(black_box(&hot_key), &stingy, 1).expect("valid cost"))
    });

    let many = limiter();
    let keys: Vec<RateKey> = (0..MANY_KEYS).map(key).collect();
    for key in &keys {
        many.check(key, &quota, 1).expect("valid cost");
    }
    assert_eq!(many.len(), MANY_KEYS as usize);
    let mut next = 0;
    group.bench_function("100k_keys_allowed", |b| {
        b.iter(|| {
            next = (next + 1) % keys.len();
            many.check(black_box(&keys[next]), &quota, 1).expect("valid cost")
        })
    });

    let shared: Arc<dyn RateLimiter> = Arc::new(limiter());
    let mut context = Context::from_waker(Waker::noop());
    group.bench_function("1_key_via_dyn_trait", |b| {
        b.iter(|| {
            let mut pending = shared.check(black_box(&hot_key), &quota, 1);
            match pending.as_mut().poll(&mut context) {
                Poll::Ready(decision) => decision.expect("valid cost"),
                Poll::Pending => panic!("the in-process limiter never waits"),
            }
        })
    });
    group.finish();

    assert!(matches!(one_key.check(&hot_key, &quota, 1), Ok(Decision::Allowed { .. })));
}

/// One check on the Redis limiter: a round trip and the script, on a current-thread runtime.
#[cfg(feature = "redis")]
fn redis_check(c: &mut Criterion) {
    let Ok(url) = std::env::var("TOLLGATE_TEST_REDIS_URL") else {
        eprintln!("SKIPPED: TOLLGATE_TEST_REDIS_URL not set, no redis benchmark");
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
    let prefix = format!("tollgate-bench:{}:", std::process::id());
    let config = tollgate_ratelimit::RedisLimiterConfig::new(url).with_key_prefix(prefix);
    let limiter = runtime.block_on(tollgate_ratelimit::RedisLimiter::connect(config)).expect("redis answers");
    let quota = generous();
    let hot_key = key(1);
    c.bench_function("redis/1_key_allowed", |b| {
        b.iter(|| runtime.block_on(limiter.check(black_box(&hot_key), &quota, 1)).expect("redis answers"))
    });
    // The key expires by itself once its bucket is full again (at once, for this quota).
}

#[cfg(not(feature = "redis"))]
fn redis_check(_: &mut Criterion) {}

criterion_group!(benches, check, redis_check);
criterion_main!(benches);
