//! Raw usage on SQLite keeps every field of an event: read back one row per event through the
//! `usage_events` view, and the idempotency key beside it.

use tollgate_sqlite::{SqliteOptions, SqliteStore};
use tollgate_store::{EventToRecord, RecordOutcome, UsageBatch, UsageStore};
use tollgate_types::{
    Endpoint, EventId, Microdollars, ModelName, Outcome, ProviderName, Timestamp, TokenId, UsageEvent,
};

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
    full.event_id = Some(EventId::parse("req_01HV6Z8X2W").unwrap());
    let mut bare =
        UsageEvent::new(token_id, Timestamp::from_unix_micros(5), provider, ModelName::parse("gpt-4o").unwrap());
    bare.ip = Some("192.0.2.9".parse().unwrap());
    let same_series = UsageEvent { at: Timestamp::from_unix_micros(6), ip: None, ..bare.clone() };
    let events: Vec<EventToRecord> = [full, bare, same_series]
        .into_iter()
        .map(|event| EventToRecord { event, counters: Vec::new(), agent: None })
        .collect();
    let written = store.record_usage(UsageBatch { events: &events, ..UsageBatch::default() }).await.unwrap();
    assert_eq!(written.outcomes, [RecordOutcome::Recorded; 3]);

    let reader = rusqlite::Connection::open(&path).unwrap();
    let mut statement = reader
        .prepare(
            "SELECT token_id, at, provider, model, endpoint, input_tokens, output_tokens, requests, cost_micros,
                latency_ms, outcome, ip
             FROM usage_events ORDER BY block, position",
        )
        .unwrap();
    type EventRow = (String, i64, String, String, Option<String>, [i64; 5], String, Option<String>);
    let rows: Vec<EventRow> = statement
        .query_map([], |row| {
            Ok((
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
                row.get(4)?,
                [row.get(5)?, row.get(6)?, row.get(7)?, row.get(8)?, row.get::<_, Option<i64>>(9)?.unwrap_or(-1)],
                row.get(10)?,
                row.get(11)?,
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows.len(), 3);
    let first = &rows[0];
    assert_eq!(first.0, token_id.to_string());
    assert_eq!(first.1, 1_767_225_600_000_001);
    assert_eq!((first.2.as_str(), first.3.as_str()), ("openai", "gpt-4o"));
    assert_eq!(first.4.as_deref(), Some("/v1/chat/completions"));
    assert_eq!(first.5, [1_200, 345, 2, 6_450, 812]);
    assert_eq!(first.6, "error");
    assert_eq!(first.7.as_deref(), Some("2001:db8::7"));
    let second = &rows[1];
    assert_eq!((second.4.as_deref(), second.6.as_str()), (None, "success"));
    assert_eq!(second.7.as_deref(), Some("192.0.2.9"));
    assert_eq!(second.5[3], 0, "an unpriced event is stored as costing nothing");
    assert_eq!(rows[2].7, None);
    let blocks: i64 = reader.query_row("SELECT count(*) FROM usage_event_blocks", [], |row| row.get(0)).unwrap();
    assert_eq!(blocks, 2, "one block per token and series in a batch");
    let series: i64 = reader.query_row("SELECT count(*) FROM usage_series", [], |row| row.get(0)).unwrap();
    assert_eq!(series, 2, "events with the same provider, model and endpoint share one series row");
    let keys: Vec<(Vec<u8>, String, i64)> = reader
        .prepare("SELECT token_id, event_id, at FROM usage_event_ids")
        .unwrap()
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        keys,
        [(token_id.as_bytes().to_vec(), "req_01HV6Z8X2W".to_owned(), 1_767_225_600_000_001)],
        "only events with a key store one, at the event's time (purged with it)"
    );
}
