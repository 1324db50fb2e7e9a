//! Raw usage events in blocks, as every backend stores them: the events of one token and series
//! (provider, model, endpoint) in one batch share a row, as a JSON array
//! `[[at,input,output,requests,cost,failed,latency|null,ip|null],…]`. One row write per block instead
//! of per event is what lets one writer take hundreds of thousands of events a second. The encoding
//! is backend-neutral, so it lives here once.

use std::collections::HashMap;
use std::fmt::Write as _;

use tollgate_types::{Endpoint, Microdollars, Outcome, Timestamp, TokenId, UsageEvent};

/// The most events in one block (keeps a row around 50 KB).
pub const MAX_EVENTS_PER_BLOCK: usize = 1_024;

/// What an event was for: provider, model and endpoint (`""` for none).
pub type SeriesKey = (String, String, String);

fn series_key(event: &UsageEvent) -> SeriesKey {
    (
        event.provider.as_str().to_owned(),
        event.model.as_str().to_owned(),
        event.endpoint.as_ref().map_or("", Endpoint::as_str).to_owned(),
    )
}

/// Appends one event as `[at,input,output,requests,cost,failed,latency|null,ip|null]`.
fn encode(event: &UsageEvent, data: &mut String) {
    let cost = event.cost.unwrap_or(Microdollars::ZERO).micros();
    let failed = u8::from(event.outcome == Outcome::Error);
    // Writing to a String cannot fail.
    let _ = write!(
        data,
        "[{},{},{},{},{},{},",
        event.at.unix_micros(),
        event.input_tokens,
        event.output_tokens,
        event.requests,
        cost,
        failed
    );
    let _ = match event.latency_ms {
        Some(latency) => write!(data, "{latency},"),
        None => write!(data, "null,"),
    };
    // An IP address's text form has no characters that JSON would need to escape.
    let _ = match event.ip {
        Some(ip) => write!(data, "\"{ip}\"]"),
        None => write!(data, "null]"),
    };
}

/// One block row, encoded before it reaches the writer (so the writer thread only writes).
#[derive(Debug)]
pub struct Block {
    /// The token.
    pub token_id: TokenId,
    /// Provider, model and endpoint.
    pub series: SeriesKey,
    /// The earliest event's time.
    pub first_at: Timestamp,
    /// The latest event's time.
    pub last_at: Timestamp,
    /// How many events.
    pub events: usize,
    /// The events, as a JSON array.
    pub data: String,
}

impl Block {
    fn encode(token_id: TokenId, series: SeriesKey, events: &[&UsageEvent]) -> Self {
        let mut data = String::with_capacity(events.len() * 48 + 2);
        data.push('[');
        for (index, event) in events.iter().enumerate() {
            if index > 0 {
                data.push(',');
            }
            encode(event, &mut data);
        }
        data.push(']');
        let first_at = events.iter().map(|event| event.at).min().unwrap_or(Timestamp::from_unix_micros(0));
        let last_at = events.iter().map(|event| event.at).max().unwrap_or(first_at);
        Self { token_id, series, first_at, last_at, events: events.len(), data }
    }
}

/// Groups `events` into blocks per token and series, in the order each group first appears.
pub fn encode_blocks<'a>(events: impl IntoIterator<Item = &'a UsageEvent>) -> Vec<Block> {
    let mut order: Vec<(TokenId, SeriesKey)> = Vec::new();
    let mut groups: HashMap<(TokenId, SeriesKey), Vec<&UsageEvent>> = HashMap::new();
    for event in events {
        let key = (event.token_id, series_key(event));
        groups
            .entry(key.clone())
            .or_insert_with(|| {
                order.push(key);
                Vec::new()
            })
            .push(event);
    }
    order
        .into_iter()
        .flat_map(|key| {
            let grouped = groups.remove(&key).unwrap_or_default();
            grouped
                .chunks(MAX_EVENTS_PER_BLOCK)
                .map(|events| Block::encode(key.0, key.1.clone(), events))
                .collect::<Vec<_>>()
        })
        .collect()
}
