//! Per-token rate limits (GCRA) in the verify path, before quotas.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use tollgate::{
    Error, LimitSubject, LocalLimiter, Metric, Principal, RateLimitSpec, RefusalCode, VerifyRequest, Window,
};
use tollgate_ratelimit::FakeRelativeClock;

use crate::Fixture;

async fn fixture_with_fake_time() -> (Fixture, FakeRelativeClock) {
    let time = FakeRelativeClock::default();
    let limiter = Arc::new(LocalLimiter::with_clock(NonZeroUsize::new(1_000).unwrap(), time.clone()));
    let fixture = Fixture::with(|builder| builder.rate_limiter(limiter)).await;
    (fixture, time)
}

#[tokio::test]
async fn a_token_over_its_rate_is_refused_with_the_exact_retry_after() {
    let (fixture, time) = fixture_with_fake_time().await;
    let (secret, token) = fixture.token("alice", None).await;
    let (other_secret, _) = fixture.token("bob", None).await;
    // 60 a minute, 3 at once: after the burst, one request every second.
    let rate = RateLimitSpec::new(60, 3).unwrap();
    fixture.metering.set_rate_limit(&Principal::Operator, &token.id, rate).await.unwrap();
    let request = VerifyRequest::default();
    let mut remaining = Vec::new();
    for _ in 0..3 {
        let context = fixture.tokens.verify(&secret, &request).await.unwrap();
        let status = context.rate_limit.expect("a rate-limited token reports its state");
        assert_eq!(status.limit, 3);
        remaining.push(status.remaining);
    }
    assert_eq!(remaining, [2, 1, 0]);
    let Err(Error::Refused(refusal)) = fixture.tokens.verify(&secret, &request).await else {
        panic!("the burst is spent");
    };
    assert_eq!(refusal.code, RefusalCode::RateLimited);
    assert_eq!(refusal.retry_after, Some(Duration::from_secs(1)));
    for _ in 0..10 {
        assert!(fixture.tokens.verify(&other_secret, &request).await.is_ok(), "other tokens are not limited");
    }
    time.advance(Duration::from_secs(1));
    assert!(fixture.tokens.verify(&secret, &request).await.is_ok(), "one request came back after a second");
    assert!(fixture.tokens.verify(&secret, &request).await.is_err());

    fixture.metering.remove_rate_limit(&Principal::Operator, &token.id).await.unwrap();
    assert!(fixture.tokens.verify(&secret, &request).await.is_ok(), "no rate once removed");
}

#[tokio::test]
async fn rate_limited_requests_spend_no_quota_and_the_tighter_state_is_reported() {
    let (fixture, _time) = fixture_with_fake_time().await;
    let (secret, token) = fixture.token("alice", None).await;
    fixture
        .metering
        .set_rate_limit(&Principal::Operator, &token.id, RateLimitSpec::new(600, 5).unwrap())
        .await
        .unwrap();
    fixture.limit(LimitSubject::Token(token.id), Metric::Requests, Window::Day, 3, false).await;
    let request = VerifyRequest::default();
    let first = fixture.tokens.verify(&secret, &request).await.unwrap().rate_limit.unwrap();
    assert_eq!((first.limit, first.remaining), (3, 2), "the daily quota (2 left) is tighter than the rate (4 left)");
    fixture.tokens.verify(&secret, &request).await.unwrap();
    fixture.tokens.verify(&secret, &request).await.unwrap();
    // Requests 4 and 5 pass the rate (burst 5) and are refused by the quota; the 6th is over the rate.
    let mut codes = Vec::new();
    for _ in 0..3 {
        let Err(Error::Refused(refusal)) = fixture.tokens.verify(&secret, &request).await else { panic!("refused") };
        codes.push(refusal.code);
    }
    assert_eq!(codes, [RefusalCode::QuotaExceeded, RefusalCode::QuotaExceeded, RefusalCode::RateLimited]);
    let statuses = fixture.metering.limit_status(&Principal::Operator, None).await.unwrap();
    assert_eq!(statuses[0].used, 3, "neither refusal was counted");
}

#[tokio::test]
async fn bad_rates_are_refused_and_need_an_existing_token() {
    let (fixture, _time) = fixture_with_fake_time().await;
    assert_eq!(RateLimitSpec::new(0, 5).unwrap_err().field, "requests_per_minute");
    let stranger = tollgate::TokenId::generate();
    let missing =
        fixture.metering.set_rate_limit(&Principal::Operator, &stranger, RateLimitSpec::new(1, 1).unwrap()).await;
    assert!(matches!(missing, Err(Error::NotFound { entity: "token" })), "{missing:?}");
}

/// A burst no window can refill (a billion at one a minute takes 1,900 years) is refused up front,
/// naming `burst`, and nothing is stored.
#[tokio::test]
async fn a_burst_no_window_can_refill_is_refused_naming_burst() {
    let (fixture, _time) = fixture_with_fake_time().await;
    let (_, token) = fixture.token("alice", None).await;
    let endless = RateLimitSpec::new(1, RateLimitSpec::MAX).unwrap();
    let error = fixture.metering.set_rate_limit(&Principal::Operator, &token.id, endless).await.unwrap_err();
    assert!(matches!(error, Error::Validation(ref invalid) if invalid.field == "burst"), "{error}");
    assert!(fixture.metering.rate_limits(&Principal::Operator).await.unwrap().is_empty());
    let fine = RateLimitSpec::new(RateLimitSpec::MAX, RateLimitSpec::MAX).unwrap();
    assert!(
        fixture.metering.set_rate_limit(&Principal::Operator, &token.id, fine).await.is_ok(),
        "fast enough to refill"
    );
}

mockall::mock! {
    /// A shared limiter that fails on every check, as a remote limiter does when its backend is down.
    BrokenLimiter {}

    #[async_trait::async_trait]
    impl tollgate_ratelimit::RateLimiter for BrokenLimiter {
        async fn check(
            &self,
            key: &tollgate_ratelimit::RateKey,
            quota: &tollgate_ratelimit::RateQuota,
            cost: u32,
        ) -> tollgate_ratelimit::Result<tollgate_ratelimit::Decision>;
        fn len(&self) -> usize;
        fn evict_idle(&self) -> usize;
        fn stats(&self) -> tollgate_ratelimit::RateLimitStats;
    }
}

// The limiter trait requires `Debug`; mockall does not derive it.
impl std::fmt::Debug for MockBrokenLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MockBrokenLimiter")
    }
}

/// Fault injection: when the limiter fails, verify fails closed (an error, not an admission) and the
/// request is not counted against the token's quota; tokens without a rate never ask the limiter.
#[tokio::test]
async fn a_failing_limiter_fails_closed_without_spending_quota() {
    let mut limiter = MockBrokenLimiter::new();
    limiter.expect_check().times(2).returning(|_, _, _| Err(tollgate_ratelimit::RateLimitError::ZeroCost));
    limiter.expect_len().return_const(0usize);
    limiter.expect_evict_idle().return_const(0usize);
    let limiter: Arc<dyn tollgate_ratelimit::RateLimiter> = Arc::new(limiter);
    let fixture = Fixture::with(|builder| builder.rate_limiter(limiter)).await;
    let (secret, token) = fixture.token("alice", None).await;
    let (unlimited_secret, _) = fixture.token("bob", None).await;
    fixture.metering.set_rate_limit(&Principal::Operator, &token.id, RateLimitSpec::new(60, 3).unwrap()).await.unwrap();
    fixture.limit(LimitSubject::Token(token.id), Metric::Requests, Window::Day, 10, false).await;

    let request = VerifyRequest::default();
    for _ in 0..2 {
        match fixture.tokens.verify(&secret, &request).await {
            Err(Error::Refused(refusal)) => panic!("a limiter failure is not a refusal: {refusal:?}"),
            Err(_) => {}
            Ok(_) => panic!("a failing limiter must not admit"),
        }
    }
    assert!(fixture.tokens.verify(&unlimited_secret, &request).await.is_ok(), "no rate, no limiter call");
    let statuses = fixture.metering.limit_status(&Principal::Operator, None).await.unwrap();
    assert_eq!(statuses[0].used, 0, "failed checks spent no quota");
}
