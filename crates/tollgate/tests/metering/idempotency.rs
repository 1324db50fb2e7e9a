//! Idempotency keys: (token, event_id) is stored and counted once, whether the repeat comes later,
//! at the same time, inside one batch, through the background queue or after a restart; the same
//! key on another token is another event.

use tollgate::{
    EventId, LimitSubject, Metric, Principal, TokenRecord, UsageEvent, UsageFilter, UsageInput, UsageOutcome, Window,
};

use crate::{Fixture, at, counter, event};

/// A token whose tokens are counted (a daily tokens limit and a monthly cost limit nobody reaches).
async fn counted_token(fixture: &Fixture, owner: &str) -> TokenRecord {
    let (_, token) = fixture.token(owner, None).await;
    let subject = LimitSubject::Token(token.id);
    fixture.limit(subject.clone(), Metric::Tokens, Window::Day, 100_000_000, false).await;
    fixture.limit(subject, Metric::Cost, Window::Month, 100_000_000, false).await;
    token
}

/// 1,000 input tokens of gpt-4o-mini ($0.15 per million: 150 µ$), with `id`.
fn keyed(fixture: &Fixture, token: &TokenRecord, id: &str) -> UsageEvent {
    let mut usage = event(fixture, token, "openai/gpt-4o-mini", 1_000, 0);
    usage.event_id = Some(EventId::parse(id).unwrap());
    usage
}

/// (events stored, events in reports, tokens counted, cost counted) for `token`.
async fn counted(fixture: &Fixture, token: &TokenRecord) -> (u64, u64, i64, i64) {
    let day = UsageFilter::between(at("2026-03-10T00:00:00Z"), at("2026-03-11T00:00:00Z"));
    let filter = UsageFilter { token_id: Some(token.id), ..day };
    let report =
        fixture.metering.usage(&Principal::Operator, &filter, None, &tollgate::PageRequest::first(1)).await.unwrap();
    let subject = LimitSubject::Token(token.id);
    (
        fixture.store.count_usage_events().await.unwrap(),
        report.totals.events,
        counter(fixture, subject.clone(), Metric::Tokens, Window::Day).await,
        counter(fixture, subject, Metric::Cost, Window::Month).await,
    )
}

#[tokio::test]
async fn the_same_event_id_twice_is_recorded_then_a_duplicate_and_counted_once() {
    let fixture = Fixture::new().await;
    let token = counted_token(&fixture, "alice").await;
    assert_eq!(fixture.metering.record(keyed(&fixture, &token, "req-1")).await.unwrap(), UsageOutcome::Recorded);
    assert_eq!(fixture.metering.record(keyed(&fixture, &token, "req-1")).await.unwrap(), UsageOutcome::Duplicate);
    assert_eq!(counted(&fixture, &token).await, (1, 1, 1_000, 150));
    let stats = fixture.metering.stats();
    assert_eq!((stats.accepted_events, stats.written_events, stats.duplicate_events), (2, 1, 1));

    // Without an id nothing can tell a repeat from a second call: both count.
    let unkeyed = event(&fixture, &token, "openai/gpt-4o-mini", 1_000, 0);
    fixture.metering.record(unkeyed.clone()).await.unwrap();
    assert_eq!(fixture.metering.record(unkeyed).await.unwrap(), UsageOutcome::Recorded);
    assert_eq!(counted(&fixture, &token).await, (3, 3, 3_000, 450));
}

/// A repeat is the first event again, whatever else it says: its numbers are not counted either.
#[tokio::test]
async fn a_repeat_with_other_numbers_keeps_the_first() {
    let fixture = Fixture::new().await;
    let token = counted_token(&fixture, "alice").await;
    fixture.metering.record(keyed(&fixture, &token, "req-1")).await.unwrap();
    let mut bigger = keyed(&fixture, &token, "req-1");
    bigger.input_tokens = 50_000;
    assert_eq!(fixture.metering.record(bigger).await.unwrap(), UsageOutcome::Duplicate);
    assert_eq!(counted(&fixture, &token).await, (1, 1, 1_000, 150));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_concurrent_records_of_one_event_id_count_once() {
    let fixture = Fixture::new().await;
    let token = counted_token(&fixture, "alice").await;
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let metering = fixture.metering.clone();
        let usage = keyed(&fixture, &token, "req-concurrent");
        tasks.push(tokio::spawn(async move { metering.record(usage).await.unwrap() }));
    }
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }
    let recorded = outcomes.iter().filter(|&&outcome| outcome == UsageOutcome::Recorded).count();
    let duplicates = outcomes.iter().filter(|&&outcome| outcome == UsageOutcome::Duplicate).count();
    assert_eq!((recorded, duplicates), (1, 15));
    assert_eq!(counted(&fixture, &token).await, (1, 1, 1_000, 150));
}

#[tokio::test]
async fn repeats_inside_one_batch_count_once() {
    use UsageOutcome::{Duplicate, Recorded};
    let fixture = Fixture::new().await;
    let token = counted_token(&fixture, "alice").await;
    let batch = vec![
        keyed(&fixture, &token, "req-a"),
        keyed(&fixture, &token, "req-b"),
        keyed(&fixture, &token, "req-a"),
        keyed(&fixture, &token, "req-a"),
    ];
    let outcomes = fixture.metering.record_many(batch).await.unwrap();
    assert_eq!(outcomes, [Recorded, Recorded, Duplicate, Duplicate]);
    assert_eq!(counted(&fixture, &token).await, (2, 2, 2_000, 300));
}

#[tokio::test]
async fn the_same_event_id_on_two_tokens_is_two_events() {
    let fixture = Fixture::new().await;
    let alice = counted_token(&fixture, "alice").await;
    let bob = counted_token(&fixture, "bob").await;
    let batch = vec![keyed(&fixture, &alice, "req-1"), keyed(&fixture, &bob, "req-1")];
    assert_eq!(fixture.metering.record_many(batch).await.unwrap(), [UsageOutcome::Recorded; 2]);
    assert_eq!(counted(&fixture, &alice).await, (2, 1, 1_000, 150));
    assert_eq!(counted(&fixture, &bob).await, (2, 1, 1_000, 150));
}

/// A gateway that queued an event in the background and then retries it durably is counted once.
#[tokio::test]
async fn a_background_event_and_its_durable_retry_count_once() {
    let fixture = Fixture::new().await;
    let token = counted_token(&fixture, "alice").await;
    fixture.metering.record_background(keyed(&fixture, &token, "req-1")).await.unwrap();
    assert_eq!(fixture.metering.record(keyed(&fixture, &token, "req-1")).await.unwrap(), UsageOutcome::Duplicate);
    fixture.metering.record_background(keyed(&fixture, &token, "req-1")).await.unwrap();
    fixture.metering.flush().await.unwrap();
    assert_eq!(counted(&fixture, &token).await, (1, 1, 1_000, 150));
    assert_eq!(fixture.metering.stats().duplicate_events, 2);
}

/// Keys live in the store: a restarted process still knows them.
#[tokio::test]
async fn an_event_id_is_remembered_across_a_restart() {
    let fixture = Fixture::new().await;
    let token = counted_token(&fixture, "alice").await;
    fixture.metering.record(keyed(&fixture, &token, "req-1")).await.unwrap();
    fixture.metering.shutdown().await.unwrap();
    let restarted = Fixture::metering_over(&fixture.store, &fixture.clock, |builder| builder).await;
    assert_eq!(restarted.record(keyed(&fixture, &token, "req-1")).await.unwrap(), UsageOutcome::Duplicate);
    assert_eq!(counted(&fixture, &token).await, (1, 1, 1_000, 150));
}

/// The API path: `event_id` in the input is validated and answered per event.
#[tokio::test]
async fn recorded_inputs_report_duplicates_per_event() {
    let fixture = Fixture::new().await;
    let token = counted_token(&fixture, "alice").await;
    let input = |event_id: &str| UsageInput {
        event_id: Some(event_id.to_owned()),
        token_id: token.id.to_string(),
        provider: "openai".into(),
        model: "gpt-4o-mini".into(),
        input_tokens: 1_000,
        ..UsageInput::default()
    };
    let first = fixture.metering.record_inputs(&Principal::Operator, &[input("req-1")]).await.unwrap();
    let again = fixture.metering.record_inputs(&Principal::Operator, &[input("req-2"), input("req-1")]).await.unwrap();
    let outcomes: Vec<_> = first.iter().chain(&again).map(|recorded| recorded.outcome).collect();
    assert_eq!(outcomes, [UsageOutcome::Recorded, UsageOutcome::Recorded, UsageOutcome::Duplicate]);
    assert_eq!(again[1].event.event_id.as_ref().map(EventId::as_str), Some("req-1"));
    assert_eq!(counted(&fixture, &token).await, (2, 2, 2_000, 300));

    let error = fixture.metering.record_inputs(&Principal::Operator, &[input("not a key")]).await.unwrap_err();
    assert!(matches!(error, tollgate::Error::Validation(ref invalid) if invalid.field == "event_id"), "{error}");
}
