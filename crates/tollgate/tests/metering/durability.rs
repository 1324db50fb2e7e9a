//! Durable and background recording: a durable record is in reports, in the quota counters and in
//! the database file when it returns (no flush); background records are written by `flush`, by
//! `shutdown`, and with the next durable write.

use std::time::Duration;

use tollgate::{LimitSubject, Metric, Principal, TokenRecord, UsageFilter, UsageInput, UsageOutcome, Window};

use crate::{Fixture, at, counter, event};

fn day() -> UsageFilter {
    UsageFilter::between(at("2026-03-10T00:00:00Z"), at("2026-03-11T00:00:00Z"))
}

/// A token whose tokens (daily) and cost (monthly) are counted, under limits nobody reaches.
async fn counted_token(fixture: &Fixture) -> TokenRecord {
    let (_, token) = fixture.token("alice", None).await;
    let subject = LimitSubject::Token(token.id);
    fixture.limit(subject.clone(), Metric::Tokens, Window::Day, 100_000_000, false).await;
    fixture.limit(subject, Metric::Cost, Window::Month, 100_000_000, false).await;
    token
}

/// (events in reports, tokens counted, cost counted in µ$).
async fn seen(fixture: &Fixture, token: &TokenRecord) -> (u64, i64, i64) {
    let report =
        fixture.metering.usage(&Principal::Operator, &day(), None, &tollgate::PageRequest::first(1)).await.unwrap();
    let subject = LimitSubject::Token(token.id);
    let tokens = counter(fixture, subject.clone(), Metric::Tokens, Window::Day).await;
    let cost = counter(fixture, subject, Metric::Cost, Window::Month).await;
    (report.totals.events, tokens, cost)
}

#[tokio::test]
async fn a_durable_record_is_in_reports_counters_and_the_file_when_it_returns() {
    let fixture = Fixture::new().await;
    let token = counted_token(&fixture).await;
    // gpt-4o-mini: $0.15 in, $0.60 out per million: 600 × 0.15 + 400 × 0.60 = 330 µ$.
    let outcome = fixture.metering.record(event(&fixture, &token, "openai/gpt-4o-mini", 600, 400)).await.unwrap();
    assert_eq!(outcome, UsageOutcome::Recorded);
    assert_eq!(seen(&fixture, &token).await, (1, 1_000, 330));
    let statuses = fixture.metering.limit_status(&Principal::Operator, None).await.unwrap();
    assert_eq!(statuses.iter().map(|status| status.used).collect::<Vec<_>>(), [1_000, 330]);

    let batch = vec![
        event(&fixture, &token, "openai/gpt-4o-mini", 100, 0),
        event(&fixture, &token, "openai/gpt-4o-mini", 0, 100),
    ];
    assert_eq!(fixture.metering.record_many(batch).await.unwrap(), [UsageOutcome::Recorded; 2]);
    // 100 × 0.15 = 15 µ$, 100 × 0.60 = 60 µ$.
    assert_eq!(seen(&fixture, &token).await, (3, 1_200, 405));

    let input = UsageInput {
        token_id: token.id.to_string(),
        provider: "openai".into(),
        model: "gpt-4o-mini".into(),
        input_tokens: 1_000,
        ..UsageInput::default()
    };
    let recorded = fixture.metering.record_inputs(&Principal::Operator, &[input]).await.unwrap();
    assert_eq!(recorded[0].outcome, UsageOutcome::Recorded);
    assert_eq!(seen(&fixture, &token).await, (4, 2_200, 555));

    // Another process reading the file sees every event: they are committed, not held in memory.
    let reader = fixture.open_again().await;
    assert_eq!(reader.count_usage_events().await.unwrap(), 4);
    assert_eq!(fixture.metering.stats().queued_events, 0);
}

#[tokio::test]
async fn background_records_are_written_by_flush() {
    let fixture = Fixture::new().await;
    let token = counted_token(&fixture).await;
    let batch: Vec<_> = (0..5).map(|_| event(&fixture, &token, "openai/gpt-4o-mini", 100, 0)).collect();
    fixture.metering.record_many_background(batch).await.unwrap();
    fixture.metering.record_background(event(&fixture, &token, "openai/gpt-4o-mini", 0, 100)).await.unwrap();
    let stats = fixture.metering.stats();
    assert_eq!((stats.accepted_events, stats.written_events, stats.queued_events), (6, 0, 6), "queued, not written");
    assert_eq!(seen(&fixture, &token).await, (0, 0, 0));

    fixture.metering.flush().await.unwrap();
    // 5 × 15 µ$ + 60 µ$.
    assert_eq!(seen(&fixture, &token).await, (6, 600, 135));
    let stats = fixture.metering.stats();
    assert_eq!((stats.accepted_events, stats.written_events, stats.queued_events), (6, 6, 0));
}

#[tokio::test]
async fn background_records_are_written_by_shutdown() {
    let fixture = Fixture::new().await;
    let token = counted_token(&fixture).await;
    for _ in 0..1_000 {
        fixture.metering.record_background(event(&fixture, &token, "openai/gpt-4o-mini", 10, 0)).await.unwrap();
    }
    assert_eq!(fixture.metering.stats().queued_events, 1_000);
    fixture.metering.shutdown().await.unwrap();
    let reader = fixture.open_again().await;
    assert_eq!(reader.count_usage_events().await.unwrap(), 1_000);
    // 10 × 0.15 = 1.5 µ$ each, rounded up to 2.
    assert_eq!(seen(&fixture, &token).await, (1_000, 10_000, 2_000));
}

/// The group commit: a durable record takes whatever was queued before it into its transaction.
#[tokio::test]
async fn a_durable_record_carries_the_background_events_queued_before_it() {
    let fixture = Fixture::new().await;
    let token = counted_token(&fixture).await;
    for _ in 0..3 {
        fixture.metering.record_background(event(&fixture, &token, "openai/gpt-4o-mini", 100, 0)).await.unwrap();
    }
    fixture.metering.record(event(&fixture, &token, "openai/gpt-4o-mini", 0, 100)).await.unwrap();
    assert_eq!(seen(&fixture, &token).await, (4, 400, 105));
    assert_eq!(fixture.metering.stats().queued_events, 0);
}

/// A queue that fills before a transaction does is written then, not at the next tick: otherwise
/// `record_background` (and `record`, behind it) waits for the flush interval.
#[tokio::test]
async fn a_full_queue_is_written_without_waiting_for_the_flush_interval() {
    let fixture = Fixture::with(|builder| builder.queue_capacity(100).batch_size(1_000)).await;
    let token = counted_token(&fixture).await;
    let sent = tokio::time::timeout(Duration::from_secs(5), async {
        for _ in 0..300 {
            fixture.metering.record_background(event(&fixture, &token, "openai/gpt-4o-mini", 1, 0)).await.unwrap();
        }
    })
    .await;
    assert!(sent.is_ok(), "300 events, a queue of 100: recording stalled ({:?})", fixture.metering.stats());
    fixture.metering.flush().await.unwrap();
    assert_eq!(seen(&fixture, &token).await.0, 300);
}
