//! The recorder: durable batches, background recording written at shutdown, pricing and bad input.

use std::time::Duration;

use tollgate::{Error, Principal, UsageFilter, UsageInput, UsageOutcome};

use crate::{Fixture, at, event};

fn whole_day() -> UsageFilter {
    UsageFilter::between(at("2026-03-10T00:00:00Z"), at("2026-03-11T00:00:00Z"))
}

/// 100,000 events recorded in the background and still queued when shutdown starts are all
/// written: count the rows afterwards. Durable recording is then refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_graceful_shutdown_with_100_000_background_events_loses_none() {
    // Nothing may write before the shutdown: no batch fills, the queue never fills (a full queue
    // triggers a write), and the flush interval does not come round however slow the machine is.
    let fixture = Fixture::with(|builder| {
        builder.batch_size(200_000).queue_capacity(200_000).flush_interval(Duration::from_secs(3_600))
    })
    .await;
    let (_, token) = fixture.token("alice", Some("search")).await;
    let mut writers = Vec::new();
    for writer in 0..10u32 {
        let metering = fixture.metering.clone();
        let template = event(&fixture, &token, "openai/gpt-4o-mini", writer + 1, 1);
        writers.push(tokio::spawn(async move {
            for _ in 0..10_000 {
                metering.record_background(template.clone()).await.expect("accepted");
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    let stats = fixture.metering.stats();
    assert_eq!(
        (stats.accepted_events, stats.written_events, stats.queued_events),
        (100_000, 0, 100_000),
        "all still queued (no durable record, no flush, batch not full)"
    );
    fixture.metering.shutdown().await.unwrap();
    assert_eq!(fixture.store.count_usage_events().await.unwrap(), 100_000);
    let report = fixture
        .metering
        .usage(&Principal::Operator, &whole_day(), None, &tollgate::PageRequest::first(1))
        .await
        .unwrap();
    assert_eq!(report.totals.events, 100_000);
    // Σ (writer + 1) × 10,000 for writers 0..10.
    assert_eq!(report.totals.input_tokens, 550_000);
    let error = fixture.metering.record(event(&fixture, &token, "openai/gpt-4o", 1, 1)).await.unwrap_err();
    assert!(matches!(error, Error::Unavailable(_)), "{error}");
    let error = fixture.metering.record_background(event(&fixture, &token, "openai/gpt-4o", 1, 1)).await.unwrap_err();
    assert!(matches!(error, Error::Unavailable(_)), "{error}");
    assert!(fixture.metering.flush().await.is_ok(), "nothing left to flush");
    assert_eq!(fixture.store.count_usage_events().await.unwrap(), 100_000, "nothing after the shutdown was stored");
}

/// A durable batch larger than a transaction is written in several, all before it returns.
#[tokio::test]
async fn a_durable_batch_larger_than_a_transaction_is_written_before_it_returns() {
    let fixture = Fixture::with(|builder| builder.batch_size(100)).await;
    let (_, token) = fixture.token("alice", None).await;
    let events: Vec<_> = (0..250).map(|_| event(&fixture, &token, "openai/gpt-4o", 10, 10)).collect();
    let outcomes = fixture.metering.record_many(events).await.unwrap();
    assert_eq!(outcomes, vec![UsageOutcome::Recorded; 250]);
    assert_eq!(fixture.store.count_usage_events().await.unwrap(), 250, "no flush needed");
    assert_eq!(fixture.metering.stats().queued_events, 0);
    tokio::time::timeout(Duration::from_secs(30), fixture.metering.shutdown()).await.unwrap().unwrap();
}

/// An event without a cost is priced from the table and rounded up; a reported cost is kept.
#[tokio::test]
async fn events_are_priced_from_the_table_and_rounded_up() {
    let fixture = Fixture::new().await;
    let (_, token) = fixture.token("alice", None).await;
    // gpt-4o: $2.50 in / $10.00 out per million: 1 input token = 2.5 µ$ → 3 µ$.
    fixture.metering.record(event(&fixture, &token, "openai/gpt-4o", 1, 0)).await.unwrap();
    // 1,000 in + 500 out = 2,500 + 5,000 = 7,500 µ$.
    fixture.metering.record(event(&fixture, &token, "openai/gpt-4o", 1_000, 500)).await.unwrap();
    let mut reported = event(&fixture, &token, "openai/gpt-4o", 1_000_000, 0);
    reported.cost = Some(tollgate::Microdollars::from_micros(11));
    fixture.metering.record(reported).await.unwrap();
    fixture.metering.flush().await.unwrap();
    let report = fixture
        .metering
        .usage(&Principal::Operator, &whole_day(), None, &tollgate::PageRequest::first(1))
        .await
        .unwrap();
    assert_eq!(report.totals.cost.micros(), 3 + 7_500 + 11);
}

/// Bad input is refused with an error naming the field, and nothing of the batch is stored.
#[tokio::test]
async fn bad_usage_input_names_the_field_and_stores_nothing() {
    let fixture = Fixture::new().await;
    let (_, token) = fixture.token("alice", None).await;
    let good = UsageInput {
        token_id: token.id.to_string(),
        provider: "openai".into(),
        model: "gpt-4o".into(),
        input_tokens: 10,
        output_tokens: 5,
        ..UsageInput::default()
    };
    let cases = [
        ("input_tokens", UsageInput { input_tokens: -1, ..good.clone() }),
        ("output_tokens", UsageInput { output_tokens: i64::MAX, ..good.clone() }),
        ("model", UsageInput { model: String::new(), ..good.clone() }),
        ("provider", UsageInput { provider: "Open AI".into(), ..good.clone() }),
        ("cost", UsageInput { cost_micros: Some(-5), ..good.clone() }),
        ("token_id", UsageInput { token_id: "tok_nope".into(), ..good.clone() }),
    ];
    for (field, bad) in cases {
        let error = fixture.metering.record_inputs(&Principal::Operator, &[good.clone(), bad]).await.unwrap_err();
        match error {
            Error::Validation(invalid) => assert_eq!(invalid.field, field),
            other => panic!("{field}: {other}"),
        }
    }
    let stranger = UsageInput { token_id: tollgate::TokenId::generate().to_string(), ..good.clone() };
    let error = fixture.metering.record_inputs(&Principal::Operator, &[stranger]).await.unwrap_err();
    assert!(matches!(error, Error::NotFound { entity: "token" }), "{error}");
    fixture.metering.flush().await.unwrap();
    assert_eq!(fixture.store.count_usage_events().await.unwrap(), 0);
    let recorded = fixture.metering.record_inputs(&Principal::Operator, &[good]).await.unwrap();
    assert_eq!(recorded[0].event.cost.map(|cost| cost.micros()), Some(75));
    assert_eq!(recorded[0].outcome, UsageOutcome::Recorded);
}
