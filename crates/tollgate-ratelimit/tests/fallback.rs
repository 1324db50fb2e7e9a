//! The fallback with no Redis at all (a closed port on this machine), so it runs everywhere: the shared limiter
//! errs, the fallback never does, and it decides in process from the first check on.
#![cfg(feature = "redis")]

use std::net::TcpListener;
use std::num::NonZeroUsize;
use std::time::Duration;

use tollgate_ratelimit::{
    Decision, FakeRelativeClock, FallbackConfig, FallbackLimiter, LiveNodes, LocalLimiter, NodeRegistry, RateKey,
    RateLimitError, RateLimiter, RateQuota, RedisLimiter, RedisLimiterConfig,
};

/// A URL nothing listens on.
fn unreachable_url() -> String {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    format!("redis://127.0.0.1:{port}")
}

#[tokio::test]
async fn without_redis_the_shared_limiter_errs_and_the_fallback_decides_locally() {
    let quota = RateQuota::new(90, Duration::from_secs(60), 9).unwrap();
    let key = RateKey::from_bytes([1; 16]);
    let shared = RedisLimiter::new(RedisLimiterConfig::new(unreachable_url())).unwrap();
    assert!(matches!(shared.check(&key, &quota, 1).await, Err(RateLimitError::Backend { .. })));
    assert!(matches!(shared.check(&key, &quota, 0).await, Err(RateLimitError::ZeroCost)), "checked before redis");
    assert_eq!(shared.stats().backend_errors, 1);
    let registry = NodeRegistry::new(&shared, "node-a", LiveNodes::new(3));
    assert!(registry.heartbeat().await.is_err());
    assert_eq!(registry.nodes().count(), 3, "the last known count stays");

    let local = LocalLimiter::with_clock(NonZeroUsize::new(100).unwrap(), FakeRelativeClock::default());
    let limiter = FallbackLimiter::new(shared, local, LiveNodes::new(3), FallbackConfig::default());
    assert!(!limiter.is_degraded(), "not degraded before anything failed");
    // A third of the policy: 30 a minute, burst 3, one cell every 2 s.
    for remaining in [2, 1, 0] {
        let decision = limiter.check(&key, &quota, 1).await.unwrap();
        assert!(matches!(decision, Decision::Allowed { remaining: r, limit: 3, .. } if r == remaining), "{decision:?}");
    }
    let refused =
        Decision::Limited { retry_after: Duration::from_secs(2), limit: 3, reset_after: Duration::from_secs(6) };
    assert_eq!(limiter.check(&key, &quota, 1).await.unwrap(), refused);
    assert!(limiter.is_degraded());
    assert!(!limiter.probe().await, "no try is due within the retry interval");
    let stats = limiter.stats();
    assert_eq!((stats.fallback_decisions, stats.backend_errors, stats.allowed, stats.limited), (4, 1, 3, 1));
    assert_eq!(RateLimiter::len(&limiter), 1, "the key is held in process");
    assert!(RateLimiter::is_degraded(&limiter));
}

#[tokio::test]
async fn a_url_that_does_not_parse_is_an_error() {
    let error = RedisLimiter::new(RedisLimiterConfig::new("not a url")).unwrap_err();
    assert!(matches!(error, RateLimitError::Backend { .. }), "{error:?}");
}
