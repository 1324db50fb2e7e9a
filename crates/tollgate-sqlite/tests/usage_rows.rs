//! Raw usage on SQLite keeps every field of an event: read back one row per event through the `usage_events` view.

use sqlx::Row;
use tollgate_sqlite::{SqliteOptions, SqliteStore};
use tollgate_store::{UsageBatch, UsageStore};
use tollgate_types::{Endpoint, Microdollars, ModelName, Outcome, ProviderName, Timestamp, TokenId, UsageEvent};

#[tokio::test]
async fn every_event_field_is_stored() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("rows.db");
    let store = SqliteStore::open(&path, &SqliteOptions::default()).await.unwrap();
    let token_id = TokenId::generate();
    let provider = ProviderName::parse("openai").unwrap();
    let mut full = UsageEvent::new(
        token_id,
        Timestamp::from_unix_micros(1_767_225_600_000_001),
        provider.clone(),
        ModelName::parse("gpt-4o").unwrap(),
    );
    full.input_tokens = 1_200;
    full.output_tokens = 345;
    full.requests = 2;
    full.cost = Some(Microdollars::from_micros(6_450));
    full.endpoint = Some(Endpoint::parse("/v1/chat/completions").unwrap());
    full.outcome = Outcome::Error;
    full.latency_ms = Some(812);
    full.ip = Some("2001:db8::7".parse().unwrap());
    let mut bare =
        UsageEvent::new(token_id, Timestamp::from_unix_micros(5), provider, ModelName::parse("gpt-4o").unwrap());
    bare.ip = Some("192.0.2.9".parse().unwrap());
    let same_series = UsageEvent { at: Timestamp::from_unix_micros(6), ip: None, ..bare.clone() };
    store.record_usage(UsageBatch { events: &[full, bare, same_series], ..UsageBatch::default() }).await.unwrap();

    let reader = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display())).await.unwrap();
    let rows = sqlx::query("SELECT * FROM usage_events ORDER BY block, position").fetch_all(&reader).await.unwrap();
    assert_eq!(rows.len(), 3);
    let first = &rows[0];
    assert_eq!(first.get::<String, _>("token_id"), token_id.to_string());
    assert_eq!(first.get::<i64, _>("at"), 1_767_225_600_000_001);
    assert_eq!(
        (first.get::<String, _>("provider"), first.get::<String, _>("model")),
        ("openai".into(), "gpt-4o".into())
    );
    assert_eq!(first.get::<Option<String>, _>("endpoint").as_deref(), Some("/v1/chat/completions"));
    let counts: Vec<i64> = ["input_tokens", "output_tokens", "requests", "cost_micros", "latency_ms"]
        .iter()
        .map(|c| first.get(*c))
        .collect();
    assert_eq!(counts, [1_200, 345, 2, 6_450, 812]);
    assert_eq!(first.get::<String, _>("outcome"), "error");
    assert_eq!(first.get::<String, _>("ip"), "2001:db8::7");
    let second = &rows[1];
    assert_eq!(
        (second.get::<Option<String>, _>("endpoint"), second.get::<String, _>("outcome")),
        (None, "success".into())
    );
    assert_eq!(second.get::<String, _>("ip"), "192.0.2.9");
    assert_eq!(second.get::<i64, _>("cost_micros"), 0, "an unpriced event is stored as costing nothing");
    assert_eq!(rows[2].get::<Option<String>, _>("ip"), None);
    let blocks: i64 = sqlx::query_scalar("SELECT count(*) FROM usage_event_blocks").fetch_one(&reader).await.unwrap();
    assert_eq!(blocks, 2, "one block per token and series in a batch");
    let series: i64 = sqlx::query_scalar("SELECT count(*) FROM usage_series").fetch_one(&reader).await.unwrap();
    assert_eq!(series, 2, "events with the same provider, model and endpoint share one series row");
}
