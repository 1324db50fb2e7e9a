//! Quotas in the verify path: exact admission under concurrency, calendar resets, shadow mode,
//! reservations, unpriced models.

use tollgate::{Clock, Error, LimitSubject, Metric, RefusalCode, Reservation, UnpricedModels, VerifyRequest, Window};

use crate::{Fixture, at, counter, dollars, event, hammer};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_tasks_admit_exactly_the_request_cap() {
    let fixture = Fixture::new().await;
    let (secret, token) = fixture.token("alice", None).await;
    fixture.limit(LimitSubject::Token(token.id), Metric::Requests, Window::Day, 50, false).await;
    assert_eq!(hammer(&fixture.tokens, &secret, 64, 1, None).await, 50, "64 tasks, one call each");
    let subject = LimitSubject::Token(token.id);
    assert_eq!(counter(&fixture, subject, Metric::Requests, Window::Day).await, 50, "every leased unit was admitted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_tasks_admit_exactly_the_money_cap() {
    let fixture = Fixture::new().await;
    let (secret, _) = fixture.token("alice", Some("search")).await;
    let project = LimitSubject::Project(fixture.project("search").await);
    fixture.limit(project.clone(), Metric::Cost, Window::Month, dollars("50.00").micros() as u64, false).await;
    let reservation = Reservation { tokens: 0, cost: Some(dollars("1.25")) };
    assert_eq!(hammer(&fixture.tokens, &secret, 64, 1, Some(reservation)).await, 40, "$50.00 / $1.25 = 40");
    assert_eq!(counter(&fixture, project, Metric::Cost, Window::Month).await, dollars("50.00").micros());
}

/// Many calls per task against several limits at once: the tightest one decides, and a refusal by
/// one limit takes back what the others had counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn several_limits_together_never_overspend_any_of_them() {
    let fixture = Fixture::new().await;
    let (secret, token) = fixture.token("alice", Some("search")).await;
    let owner = LimitSubject::Owner(fixture.owner("alice").await);
    fixture.limit(LimitSubject::Token(token.id), Metric::Requests, Window::Hour, 1_000, false).await;
    fixture.limit(owner.clone(), Metric::Cost, Window::Day, 777, false).await;
    let reservation = Reservation { tokens: 0, cost: Some(tollgate::Microdollars::from_micros(1)) };
    assert_eq!(hammer(&fixture.tokens, &secret, 64, 20, Some(reservation)).await, 777);
    assert_eq!(counter(&fixture, owner, Metric::Cost, Window::Day).await, 777);
    // The shutdown gives back what was leased and not admitted: what is left counted is what was admitted.
    fixture.metering.shutdown().await.unwrap();
    let requests = counter(&fixture, LimitSubject::Token(token.id), Metric::Requests, Window::Hour).await;
    assert_eq!(requests, 777, "refused calls gave their request back");
}

/// Two meterings sharing one store share one budget exactly (see `leases` for separate connections).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_meterings_share_one_budget() {
    let fixture = Fixture::new().await;
    let (secret, token) = fixture.token("alice", None).await;
    fixture.limit(LimitSubject::Token(token.id), Metric::Requests, Window::Day, 25, false).await;
    let other_metering = Fixture::metering_over(&fixture.store, &fixture.clock, |builder| builder).await;
    let other = Fixture::tokens_over(&fixture.store, &fixture.clock, &other_metering);
    let (first, second) = tokio::join!(hammer(&fixture.tokens, &secret, 16, 2, None), async {
        let mut admitted = 0;
        for _ in 0..32 {
            admitted += usize::from(other.verify(&secret, &VerifyRequest::default()).await.is_ok());
        }
        admitted
    });
    assert_eq!(first + second, 25);
}

/// A refusal names the limit and when its window resets; the RateLimit state counts down.
#[tokio::test]
async fn refusals_name_the_limit_and_the_reset() {
    let fixture = Fixture::new().await;
    let (secret, token) = fixture.token("alice", None).await;
    fixture.limit(LimitSubject::Token(token.id), Metric::Requests, Window::Minute, 3, false).await;
    fixture.limit(LimitSubject::Token(token.id), Metric::Requests, Window::Day, 100, false).await;
    fixture.advance(15);
    let mut remaining = Vec::new();
    for _ in 0..3 {
        let context = fixture.tokens.verify(&secret, &VerifyRequest::default()).await.unwrap();
        let status = context.rate_limit.expect("request limits report their state");
        assert_eq!((status.limit, status.reset.as_secs()), (3, 45));
        remaining.push(status.remaining);
    }
    assert_eq!(remaining, [2, 1, 0]);
    let Err(Error::Refused(refusal)) = fixture.tokens.verify(&secret, &VerifyRequest::default()).await else {
        panic!("the fourth call in the minute is refused");
    };
    assert_eq!(refusal.code, RefusalCode::QuotaExceeded);
    assert_eq!(refusal.limit.as_deref(), Some("requests_per_minute"));
    assert_eq!(refusal.resets_at, Some(at("2026-03-10T12:01:00Z")));
    assert_eq!(refusal.retry_after, Some(std::time::Duration::from_secs(45)), "measured on the manager's clock");
    fixture.advance(45);
    assert!(fixture.tokens.verify(&secret, &VerifyRequest::default()).await.is_ok(), "a new minute");
}

/// Windows reset at their UTC calendar boundaries, including December → January and February.
#[tokio::test]
async fn windows_reset_at_calendar_boundaries() {
    let cases = [
        (Window::Minute, "2026-03-10T12:00:59.999999Z", "2026-03-10T12:01:00Z"),
        (Window::Hour, "2026-03-10T12:59:59Z", "2026-03-10T13:00:00Z"),
        (Window::Day, "2026-03-10T23:59:59Z", "2026-03-11T00:00:00Z"),
        (Window::Month, "2026-12-31T23:59:59Z", "2027-01-01T00:00:00Z"),
        (Window::Month, "2026-02-28T23:59:59Z", "2026-03-01T00:00:00Z"),
        (Window::Month, "2028-02-29T23:59:59Z", "2028-03-01T00:00:00Z"),
        (Window::Month, "2028-02-01T00:00:00Z", "2028-03-01T00:00:00Z"),
    ];
    for (window, before, boundary) in cases {
        let fixture = Fixture::new().await;
        let (secret, token) = fixture.token("alice", None).await;
        fixture.limit(LimitSubject::Token(token.id), Metric::Requests, window, 2, false).await;
        fixture.clock.set(at(before));
        let request = VerifyRequest::default();
        let verify = || fixture.tokens.verify(&secret, &request);
        assert!(verify().await.is_ok() && verify().await.is_ok(), "{window} {before}");
        let Err(Error::Refused(refusal)) = verify().await else { panic!("{window} {before}: cap reached") };
        assert_eq!(refusal.resets_at, Some(at(boundary)), "{window} {before}");
        fixture.clock.set(at(boundary));
        assert!(verify().await.is_ok(), "{window}: a new window at {boundary}");
        fixture.metering.shutdown().await.unwrap();
    }
}

/// Shadow limits refuse nobody, count who they would have refused, and report it in the limit's record.
#[tokio::test]
async fn shadow_limits_refuse_nobody_and_report_correctly() {
    let fixture = Fixture::new().await;
    let (secret, token) = fixture.token("alice", None).await;
    let (bob_secret, _) = fixture.token("bob", None).await;
    let alice = LimitSubject::Owner(fixture.owner("alice").await);
    fixture.limit(alice.clone(), Metric::Requests, Window::Day, 3, true).await;
    fixture.limit(LimitSubject::Token(token.id), Metric::Requests, Window::Day, 8, false).await;
    for call in 0..8 {
        let context = fixture.tokens.verify(&secret, &VerifyRequest::default()).await;
        assert!(context.is_ok(), "call {call}: a shadow limit refuses nobody");
    }
    assert!(
        fixture.tokens.verify(&secret, &VerifyRequest::default()).await.is_err(),
        "the enforced limit still refuses"
    );
    for _ in 0..4 {
        fixture.tokens.verify(&bob_secret, &VerifyRequest::default()).await.unwrap();
    }
    fixture.tokens.flush().await.unwrap();
    let statuses = fixture.metering.limit_status(&tollgate::Principal::Operator, Some(&alice)).await.unwrap();
    assert_eq!(statuses.len(), 1);
    assert_eq!(statuses[0].limit.shadow_hits, 5, "calls 4 to 8 would have been refused; bob's are not alice's");
    assert_eq!(statuses[0].limit.last_shadow_hit_at, Some(fixture.clock.now()));
    assert_eq!(statuses[0].used, 8, "the ninth, refused by the enforced limit, is not counted");
}

/// Recorded tokens count against token limits; a request is admitted while anything is left.
#[tokio::test]
async fn recorded_usage_counts_against_token_and_cost_limits() {
    let fixture = Fixture::new().await;
    let (secret, token) = fixture.token("alice", None).await;
    fixture.limit(LimitSubject::Token(token.id), Metric::Tokens, Window::Day, 1_000, false).await;
    fixture.limit(LimitSubject::Token(token.id), Metric::Cost, Window::Month, 10_000, false).await;
    fixture.tokens.verify(&secret, &VerifyRequest::default()).await.unwrap();
    fixture.metering.record(event(&fixture, &token, "openai/gpt-4o-mini", 600, 0)).await.unwrap();
    fixture.tokens.verify(&secret, &VerifyRequest::default()).await.unwrap();
    fixture.metering.record(event(&fixture, &token, "openai/gpt-4o-mini", 300, 100)).await.unwrap();
    let Err(Error::Refused(refusal)) = fixture.tokens.verify(&secret, &VerifyRequest::default()).await else {
        panic!("1000 of 1000 tokens used");
    };
    assert_eq!(refusal.limit.as_deref(), Some("tokens_per_day"));
    // 900 input × $0.15 + 100 output × $0.60 per million = 195 µ$.
    let statuses = fixture.metering.limit_status(&tollgate::Principal::Operator, None).await.unwrap();
    let used: Vec<_> = statuses.iter().map(|status| (status.limit.spec.key().metric, status.used)).collect();
    assert_eq!(used, [(Metric::Tokens, 1_000), (Metric::Cost, 195)]);
}

/// A reservation holds the most a call may use; settling replaces it with the actual usage and
/// releasing returns it.
#[tokio::test]
async fn reservations_hold_then_settle_or_release() {
    let fixture = Fixture::new().await;
    let (secret, token) = fixture.token("alice", None).await;
    fixture
        .limit(LimitSubject::Token(token.id), Metric::Cost, Window::Day, dollars("1.00").micros() as u64, false)
        .await;
    let held = Reservation { tokens: 10_000, cost: Some(dollars("0.40")) };
    let request = VerifyRequest::default();
    let (_, first) = fixture.tokens.verify_and_reserve(&secret, &request, &held).await.unwrap();
    let (_, second) = fixture.tokens.verify_and_reserve(&secret, &request, &held).await.unwrap();
    assert_eq!(first.held(Metric::Cost), 400_000);
    assert!(
        fixture.tokens.verify_and_reserve(&secret, &request, &held).await.is_err(),
        "0.80 held, 0.40 more does not fit"
    );
    let mut actual = event(&fixture, &token, "openai/gpt-4o", 1_000, 500);
    actual.cost = Some(dollars("0.10"));
    fixture.metering.settle(first, actual).await.unwrap();
    fixture.metering.release(second).await.unwrap();
    // 0.10 spent: two more reservations of 0.40 fit, a third does not.
    let (_, third) = fixture.tokens.verify_and_reserve(&secret, &request, &held).await.unwrap();
    let (_, _fourth) = fixture.tokens.verify_and_reserve(&secret, &request, &held).await.unwrap();
    assert!(fixture.tokens.verify_and_reserve(&secret, &request, &held).await.is_err());
    let other = fixture.token("bob", None).await.1;
    let wrong = event(&fixture, &other, "openai/gpt-4o", 1, 1);
    let error = fixture.metering.settle(third, wrong).await.unwrap_err();
    assert!(matches!(error, Error::Validation(ref invalid) if invalid.field == "token_id"), "{error}");
    fixture.metering.flush().await.unwrap();
    assert_eq!(fixture.store.count_usage_events().await.unwrap(), 1, "the settled call was recorded");
}

/// A model without a price is refused where an enforced cost limit applies (fail closed), recorded
/// at zero cost elsewhere, and always accepted when the operator says so.
#[tokio::test]
async fn unpriced_models_fail_closed_where_a_cost_cap_applies() {
    let fixture = Fixture::new().await;
    let (capped_secret, capped) = fixture.token("alice", None).await;
    let (_, free) = fixture.token("bob", None).await;
    let (_, shadowed) = fixture.token("carol", None).await;
    fixture.limit(LimitSubject::Token(capped.id), Metric::Cost, Window::Month, 1_000_000, false).await;
    fixture.limit(LimitSubject::Token(shadowed.id), Metric::Cost, Window::Month, 1, true).await;

    let error = fixture.metering.record(event(&fixture, &capped, "acme/mystery-1", 10, 10)).await.unwrap_err();
    assert!(matches!(error, Error::Validation(ref invalid) if invalid.field == "model"), "{error}");
    let mut reported = event(&fixture, &capped, "acme/mystery-1", 10, 10);
    reported.cost = Some(tollgate::Microdollars::from_micros(42));
    fixture.metering.record(reported).await.unwrap();
    fixture.metering.record(event(&fixture, &free, "acme/mystery-1", 10, 10)).await.unwrap();
    fixture.metering.record(event(&fixture, &shadowed, "acme/mystery-1", 10, 10)).await.unwrap();

    let (provider, model) =
        (tollgate::ProviderName::parse("acme").unwrap(), tollgate::ModelName::parse("mystery-1").unwrap());
    let estimate = fixture.metering.estimate(&provider, &model, 100, 100);
    assert_eq!(estimate.cost, None);
    let error =
        fixture.tokens.verify_and_reserve(&capped_secret, &VerifyRequest::default(), &estimate).await.unwrap_err();
    assert!(matches!(error, Error::Validation(ref invalid) if invalid.field == "model"), "{error}");
    assert!(
        fixture.tokens.verify(&capped_secret, &VerifyRequest::default()).await.is_ok(),
        "a plain verify reserves no cost"
    );

    fixture.metering.flush().await.unwrap();
    let report = fixture
        .metering
        .usage(
            &tollgate::Principal::Operator,
            &tollgate::UsageFilter::between(at("2026-03-10T00:00:00Z"), at("2026-03-11T00:00:00Z")),
            None,
            &tollgate::PageRequest::first(10),
        )
        .await
        .unwrap();
    assert_eq!((report.totals.events, report.totals.cost.micros()), (3, 42), "the refused event was not stored");

    let lenient = Fixture::with(|builder| builder.unpriced_models(UnpricedModels::Free)).await;
    let (lenient_secret, token) = lenient.token("alice", None).await;
    lenient.limit(LimitSubject::Token(token.id), Metric::Cost, Window::Month, 1_000, false).await;
    lenient.metering.record(event(&lenient, &token, "acme/mystery-1", 10, 10)).await.unwrap();
    let estimate = lenient.metering.estimate(&provider, &model, 100, 100);
    assert!(lenient.tokens.verify_and_reserve(&lenient_secret, &VerifyRequest::default(), &estimate).await.is_ok());
}

/// Counters persist and a restarted process continues from them.
#[tokio::test]
async fn a_restart_continues_from_the_persisted_counters() {
    let fixture = Fixture::new().await;
    let (secret, token) = fixture.token("alice", None).await;
    fixture.limit(LimitSubject::Token(token.id), Metric::Requests, Window::Day, 5, false).await;
    for _ in 0..3 {
        fixture.tokens.verify(&secret, &VerifyRequest::default()).await.unwrap();
    }
    fixture.metering.shutdown().await.unwrap();
    let restarted = Fixture::metering_over(&fixture.store, &fixture.clock, |builder| builder).await;
    let tokens = Fixture::tokens_over(&fixture.store, &fixture.clock, &restarted);
    let admitted = {
        let mut admitted = 0;
        for _ in 0..5 {
            admitted += usize::from(tokens.verify(&secret, &VerifyRequest::default()).await.is_ok());
        }
        admitted
    };
    assert_eq!(admitted, 2);
}

/// `Metering::admit_request` charges a request to a token outside verify, against the same
/// counters: together they admit exactly the cap, and a refusal spends nothing.
#[tokio::test]
async fn requests_admitted_outside_verify_share_the_quota_with_verify() {
    let fixture = Fixture::new().await;
    let (secret, token) = fixture.token("alice", None).await;
    fixture.limit(LimitSubject::Token(token.id), Metric::Requests, Window::Day, 3, false).await;
    fixture.metering.admit_request(&token, &Reservation::default()).await.unwrap();
    fixture.tokens.verify(&secret, &VerifyRequest::default()).await.unwrap();
    let admission = fixture.metering.admit_request(&token, &Reservation::default()).await.unwrap();
    assert_eq!(admission.rate_limit.map(|limit| limit.remaining), Some(0), "the third of three");
    let refused = fixture.metering.admit_request(&token, &Reservation::default()).await.unwrap_err();
    assert!(matches!(&refused, Error::Refused(refusal) if refusal.code == RefusalCode::QuotaExceeded), "{refused:?}");
    let refused = fixture.tokens.verify(&secret, &VerifyRequest::default()).await.unwrap_err();
    assert!(matches!(&refused, Error::Refused(refusal) if refusal.code == RefusalCode::QuotaExceeded), "{refused:?}");
    fixture.metering.shutdown().await.unwrap();
    assert_eq!(counter(&fixture, LimitSubject::Token(token.id), Metric::Requests, Window::Day).await, 3);
}

/// A metering reads the counters of every tokens and cost limit when it starts, in one read: the
/// first request of an owner in the window is decided without waiting for the database (here, with
/// the database gone, it is still decided).
#[tokio::test]
async fn counters_are_warm_from_the_start() {
    let fixture = Fixture::new().await;
    let (_, token) = fixture.token("alice", None).await;
    let owner = LimitSubject::Owner(token.owner);
    fixture.limit(owner.clone(), Metric::Cost, Window::Day, 1_000, false).await;
    let store = tollgate::SqliteStore::open(&fixture.path, &tollgate::SqliteOptions::default()).await.unwrap();
    let shared: std::sync::Arc<dyn tollgate::Store> = std::sync::Arc::new(store.clone());
    let fresh = Fixture::metering_over(&shared, &fixture.clock, |builder| builder).await;
    store.close().await;
    let admission = fresh.admit_request(&token, &Reservation::default()).await;
    assert!(admission.is_ok(), "decided from the counters read at start: {admission:?}");
}
