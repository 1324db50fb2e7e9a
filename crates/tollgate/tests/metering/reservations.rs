//! Reservations held in the store by `verify_and_reserve`: exact under concurrency for cost and
//! tokens caps, settled with the actual usage (once), released, or expired by the writer's refresh
//! tick, after which a late settle records the usage as plain usage.

use std::time::Duration;

use tollgate::{
    Clock, Error, LimitSubject, Metric, Microdollars, Principal, QuotaReservation, RefusalCode, Reservation,
    ReservationState, TokenManager, TokenRecord, UsageEvent, UsageInput, UsageOutcome, VerifyRequest, Window,
};

use crate::{Fixture, counter, dollars, event};

/// Runs `tasks` concurrent `verify_and_reserve` calls holding `reservation`; returns the
/// reservations admitted (every refusal must be `quota_exceeded`).
async fn reserve_concurrently(
    tokens: &TokenManager,
    secret: &str,
    tasks: usize,
    reservation: &Reservation,
) -> Vec<QuotaReservation> {
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let (tokens, secret, reservation) = (tokens.clone(), secret.to_owned(), reservation.clone());
        handles.push(tokio::spawn(async move {
            match tokens.verify_and_reserve(&secret, &VerifyRequest::default(), &reservation).await {
                Ok((_, held)) => Some(held),
                Err(Error::Refused(refusal)) => {
                    assert_eq!(refusal.code, RefusalCode::QuotaExceeded);
                    None
                }
                Err(other) => panic!("unexpected error: {other}"),
            }
        }));
    }
    let mut admitted = Vec::new();
    for handle in handles {
        admitted.extend(handle.await.expect("task completes"));
    }
    admitted
}

fn costing(fixture: &Fixture, token: &TokenRecord, cost: &str) -> UsageEvent {
    let mut usage = event(fixture, token, "openai/gpt-4o", 100, 100);
    usage.cost = Some(dollars(cost));
    usage
}

/// A token with a daily cost cap of `cap` dollars; returns its secret and record.
async fn cost_capped(fixture: &Fixture, cap: &str) -> (String, TokenRecord) {
    let (secret, token) = fixture.token("alice", None).await;
    fixture.limit(LimitSubject::Token(token.id), Metric::Cost, Window::Day, dollars(cap).micros() as u64, false).await;
    (secret, token)
}

async fn spent(fixture: &Fixture, token: &TokenRecord) -> i64 {
    counter(fixture, LimitSubject::Token(token.id), Metric::Cost, Window::Day).await
}

fn held(amount: &str) -> Reservation {
    Reservation { tokens: 0, cost: Some(dollars(amount)) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_reservations_of_ten_cents_fit_a_dollar_ten_times_and_settling_frees_the_rest() {
    let fixture = Fixture::new().await;
    let (secret, token) = cost_capped(&fixture, "1.00").await;
    let admitted = reserve_concurrently(&fixture.tokens, &secret, 64, &held("0.10")).await;
    assert_eq!(admitted.len(), 10);
    assert_eq!(spent(&fixture, &token).await, 1_000_000, "held");
    for reservation in admitted {
        let outcome = fixture.metering.settle(reservation, costing(&fixture, &token, "0.05")).await.unwrap();
        assert_eq!(outcome, UsageOutcome::Recorded);
    }
    assert_eq!(spent(&fixture, &token).await, 500_000, "ten calls of $0.05 spent, nothing held");
    assert_eq!(fixture.store.count_usage_events().await.unwrap(), 10);

    let admitted = reserve_concurrently(&fixture.tokens, &secret, 64, &held("0.05")).await;
    assert_eq!(admitted.len(), 10, "$0.50 left: ten more of $0.05");
    assert_eq!(spent(&fixture, &token).await, 1_000_000);
}

#[tokio::test]
async fn settling_twice_is_a_duplicate_counted_once() {
    let fixture = Fixture::new().await;
    let (secret, token) = cost_capped(&fixture, "1.00").await;
    let (_, reservation) =
        fixture.tokens.verify_and_reserve(&secret, &VerifyRequest::default(), &held("0.40")).await.unwrap();
    let id = reservation.id().expect("a cost cap holds the reservation in the store");
    let outcome = fixture.metering.settle(reservation, costing(&fixture, &token, "0.10")).await.unwrap();
    assert_eq!(outcome, UsageOutcome::Recorded);

    let again = UsageInput {
        provider: "openai".into(),
        model: "gpt-4o".into(),
        cost_micros: Some(100_000),
        ..UsageInput::default()
    };
    let settlement = fixture.metering.settle_reservation(&Principal::Operator, &id, &again).await.unwrap();
    assert_eq!(settlement.outcome, UsageOutcome::Duplicate);
    assert_eq!(settlement.reservation.state, ReservationState::Settled);
    let released = fixture.metering.release_reservation(&Principal::Operator, &id).await.unwrap();
    assert_eq!(released.state, ReservationState::Settled, "a settled reservation cannot be released");
    assert_eq!(spent(&fixture, &token).await, 100_000);
    assert_eq!(fixture.store.count_usage_events().await.unwrap(), 1);
}

#[tokio::test]
async fn releasing_gives_the_hold_back() {
    let fixture = Fixture::new().await;
    let (secret, token) = cost_capped(&fixture, "1.00").await;
    let request = VerifyRequest::default();
    let (_, first) = fixture.tokens.verify_and_reserve(&secret, &request, &held("0.60")).await.unwrap();
    let id = first.id().unwrap();
    let refused = fixture.tokens.verify_and_reserve(&secret, &request, &held("0.60")).await;
    assert!(matches!(refused, Err(Error::Refused(_))), "$0.60 held, $0.60 more does not fit");
    fixture.metering.release(first).await.unwrap();
    assert_eq!(spent(&fixture, &token).await, 0);
    assert_eq!(
        fixture.metering.reservation(&Principal::Operator, &id).await.unwrap().state,
        ReservationState::Released
    );
    let (_, second) = fixture.tokens.verify_and_reserve(&secret, &request, &held("0.60")).await.unwrap();
    assert_eq!(second.held(Metric::Cost), 600_000);

    let late = UsageInput { provider: "openai".into(), model: "gpt-4o".into(), ..UsageInput::default() };
    let error = fixture.metering.settle_reservation(&Principal::Operator, &id, &late).await.unwrap_err();
    assert!(matches!(error, Error::Conflict(_)), "a released reservation records nothing: {error}");
    assert_eq!(fixture.store.count_usage_events().await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_reservation_returns_its_hold_and_a_late_settle_is_plain_usage() {
    let fixture = Fixture::with(|builder| {
        builder
            .reservation_ttl(Duration::from_secs(60))
            .flush_interval(Duration::from_millis(10))
            .refresh_interval(Duration::from_millis(10))
    })
    .await;
    let (secret, token) = cost_capped(&fixture, "1.00").await;
    let request = VerifyRequest::default();
    let (_, reservation) = fixture.tokens.verify_and_reserve(&secret, &request, &held("0.60")).await.unwrap();
    let id = reservation.id().unwrap();
    assert_eq!(reservation.expires_at(), Some(fixture.clock.now().saturating_add(Duration::from_secs(60))));
    assert!(fixture.tokens.verify_and_reserve(&secret, &request, &held("0.60")).await.is_err());

    fixture.advance(61);
    // The writer's refresh tick (every 10 ms here) expires it; nothing else touches it.
    let expired = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let record = fixture.metering.reservation(&Principal::Operator, &id).await.unwrap();
            if record.state != ReservationState::Held {
                return record;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("expired within 5 s");
    assert_eq!(expired.state, ReservationState::Expired);
    assert_eq!(spent(&fixture, &token).await, 0, "the hold is back");
    let (_, next) = fixture.tokens.verify_and_reserve(&secret, &request, &held("0.60")).await.unwrap();

    let outcome = fixture.metering.settle(reservation, costing(&fixture, &token, "0.25")).await.unwrap();
    assert_eq!(outcome, UsageOutcome::Recorded, "the call happened: its usage is recorded");
    assert_eq!(spent(&fixture, &token).await, 850_000, "$0.60 held by the next call and $0.25 spent");
    assert_eq!(fixture.metering.reservation(&Principal::Operator, &id).await.unwrap().state, ReservationState::Settled);
    fixture.metering.release(next).await.unwrap();
    assert_eq!(spent(&fixture, &token).await, 250_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_token_quota_through_reservations_never_overshoots() {
    let fixture = Fixture::new().await;
    let (secret, token) = fixture.token("alice", None).await;
    let subject = LimitSubject::Token(token.id);
    fixture.limit(subject.clone(), Metric::Tokens, Window::Day, 10_000, false).await;
    let estimate = Reservation { tokens: 1_000, cost: None };
    let admitted = reserve_concurrently(&fixture.tokens, &secret, 64, &estimate).await;
    assert_eq!(admitted.len(), 10);
    for reservation in admitted {
        // Each call used 600 of the 1,000 tokens it reserved.
        let mut actual = event(&fixture, &token, "openai/gpt-4o", 400, 200);
        actual.cost = Some(Microdollars::ZERO);
        fixture.metering.settle(reservation, actual).await.unwrap();
    }
    assert_eq!(counter(&fixture, subject.clone(), Metric::Tokens, Window::Day).await, 6_000);
    let admitted = reserve_concurrently(&fixture.tokens, &secret, 64, &estimate).await;
    assert_eq!(admitted.len(), 4, "4,000 tokens left");
    assert_eq!(counter(&fixture, subject, Metric::Tokens, Window::Day).await, 10_000);
}

/// Once this process's own reservations have filled a cap, a plain verify (which admits while the
/// last known total is under the maximum) must be refused. Concurrent reservations report their
/// totals out of order; each day here is one try at that race.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_plain_verify_is_refused_once_concurrent_reservations_filled_the_cap() {
    let fixture = Fixture::new().await;
    let (secret, token) = fixture.token("alice", None).await;
    fixture.limit(LimitSubject::Token(token.id), Metric::Tokens, Window::Day, 16, false).await;
    let mut admitted_after_the_cap = Vec::new();
    for day in 0..20 {
        let admitted = reserve_concurrently(&fixture.tokens, &secret, 16, &Reservation { tokens: 1, cost: None }).await;
        assert_eq!(admitted.len(), 16, "day {day}");
        if fixture.tokens.verify(&secret, &VerifyRequest::default()).await.is_ok() {
            admitted_after_the_cap.push(day);
        }
        fixture.advance(86_400);
    }
    assert_eq!(admitted_after_the_cap, Vec::<i32>::new(), "days a plain verify was admitted with 16 of 16 held");
}

/// What to hold is priced from the table: input tokens plus the most output, at the model's price.
#[tokio::test]
async fn estimates_are_priced_from_the_table() {
    let fixture = Fixture::new().await;
    let (provider, model) =
        (tollgate::ProviderName::parse("openai").unwrap(), tollgate::ModelName::parse("gpt-4o").unwrap());
    // 1,000 × $2.50 + 500 × $10.00 per million = 7,500 µ$.
    let expected = Reservation { tokens: 1_500, cost: Some(Microdollars::from_micros(7_500)) };
    assert_eq!(fixture.metering.estimate(&provider, &model, 1_000, 500), expected);
    let estimate =
        tollgate::Estimate { model: Some((provider, model)), input_tokens: 1_000, output_tokens: 500, cost: None };
    assert_eq!(fixture.metering.reservation_for(&estimate), expected);
    let given = tollgate::Estimate { cost: Some(dollars("0.02")), ..estimate };
    assert_eq!(fixture.metering.reservation_for(&given).cost, Some(dollars("0.02")), "a given cost wins");
}
