//! Conformance cases for recording usage exactly once: idempotency keys within and across batches
//! and under concurrency, sums that saturate instead of failing, keys purged with their events,
//! and the dead letters of events that could not be stored.

use tollgate_types::{CounterKey, EventId, LimitSubject, Metric, Microdollars, UsageEvent, Window};

use super::fixtures::{T0, at, counter, join_all, owner, some_owner};
use super::usage::{event, item, keys_and_costs, record, summary, token};
use crate::{
    CounterDelta, DeadLetter, PageRequest, RecordOutcome, Store, StoreError, UsageBatch, UsageFilter, UsageGroupBy,
};

use RecordOutcome::{Duplicate, Recorded};

/// `event` with the idempotency key `id`.
fn keyed(mut event: UsageEvent, id: &str) -> UsageEvent {
    event.event_id = Some(EventId::parse(id).expect("fixture event id"));
    event
}

fn delta(key: &CounterKey, delta: i64) -> CounterDelta {
    CounterDelta { key: key.clone(), delta }
}

fn sorted(mut totals: Vec<(CounterKey, i64)>) -> Vec<(CounterKey, i64)> {
    totals.sort();
    totals
}

/// A repeat of an event id for its token, in the same batch or a later one, is a duplicate: no raw
/// event, no rollup, no counter delta. Events without an id are always new; ids are per token;
/// a batch's own counter deltas apply whatever its events.
pub async fn event_ids_count_once_within_and_across_batches(store: &dyn Store) {
    let alice_owner = owner(store, "alice").await;
    let (alice, bob) = (token(store, &alice_owner, None).await, token(store, &alice_owner, None).await);
    let cost = counter(&LimitSubject::Token(alice), Metric::Cost, Window::Day, 0);
    let shadow = counter(&some_owner(), Metric::Requests, Window::Day, 0);
    let first = keyed(event(alice, 1, "gpt-4o", 10, 0, 100), "req-a");
    let plain = event(alice, 3, "gpt-4o", 1, 0, 5);
    let batch = [
        item(first.clone(), &[delta(&cost, 100)]),
        item(keyed(event(alice, 2, "gpt-4o", 99, 0, 999), "req-a"), &[delta(&cost, 999)]),
        item(plain.clone(), &[delta(&cost, 5)]),
        item(keyed(event(bob, 4, "gpt-4o", 1, 0, 7), "req-a"), &[]),
    ];
    let written = store.record_usage(UsageBatch { events: &batch, ..UsageBatch::default() }).await.unwrap();
    assert_eq!(written.outcomes, [Recorded, Duplicate, Recorded, Recorded]);
    assert_eq!(written.totals, [(cost.clone(), 105)]);

    let new = keyed(event(alice, 5, "gpt-4o", 1, 0, 1), "req-b");
    let batch = [
        item(first.clone(), &[delta(&cost, 100)]),
        item(plain, &[delta(&cost, 5)]),
        item(new.clone(), &[delta(&cost, 1)]),
    ];
    let counters = [delta(&shadow, 2)];
    let written = store.record_usage(UsageBatch { events: &batch, counters: &counters, ..UsageBatch::default() }).await;
    let written = written.unwrap();
    assert_eq!(written.outcomes, [Duplicate, Recorded, Recorded]);
    assert_eq!(sorted(written.totals), sorted(vec![(cost.clone(), 111), (shadow.clone(), 2)]));

    let repeats = [item(first, &[delta(&cost, 100)]), item(new, &[delta(&cost, 1)])];
    let counters = [delta(&shadow, 1)];
    let written =
        store.record_usage(UsageBatch { events: &repeats, counters: &counters, ..UsageBatch::default() }).await;
    let written = written.unwrap();
    assert_eq!((written.outcomes, written.totals), (vec![Duplicate, Duplicate], vec![(shadow.clone(), 3)]));

    assert_eq!(store.count_usage_events().await.unwrap(), 5);
    let by_token = summary(store, &UsageFilter::between(T0, at(3_600)), Some(UsageGroupBy::Token)).await;
    assert_eq!(keys_and_costs(&by_token), [(Some(alice.to_string()), 111), (Some(bob.to_string()), 7)]);
    assert_eq!(by_token[0].totals.input_tokens, 13, "the first of the repeated events is the one kept");
    assert_eq!(store.counter_values(&[cost, shadow]).await.unwrap(), [111, 3]);
}

/// Sixteen writers recording the same event at once store and count it once.
pub async fn concurrent_repeats_of_one_event_count_once(store: &dyn Store) {
    let alice = token(store, &owner(store, "alice").await, None).await;
    let cost = counter(&LimitSubject::Token(alice), Metric::Cost, Window::Day, 0);
    let batch = [item(keyed(event(alice, 1, "gpt-4o", 3, 4, 7), "req-once"), &[delta(&cost, 7)])];
    let writes = (0..16).map(|_| store.record_usage(UsageBatch { events: &batch, ..UsageBatch::default() }));
    let outcomes: Vec<RecordOutcome> =
        join_all(writes.collect()).await.into_iter().map(|written| written.unwrap().outcomes[0]).collect();
    assert_eq!(outcomes.iter().filter(|outcome| **outcome == Recorded).count(), 1, "{outcomes:?}");
    assert_eq!(store.count_usage_events().await.unwrap(), 1);
    let totals = summary(store, &UsageFilter::between(T0, at(3_600)), None).await[0].totals;
    assert_eq!((totals.events, totals.total_tokens(), totals.cost.micros()), (1, 7, 7));
    assert_eq!(store.counter_values(&[cost]).await.unwrap(), [7]);
}

/// Costs that sum past `i64::MAX` saturate there, in a rollup and in a counter, and the batch
/// commits; later additions keep them there, and a counter never goes below zero.
pub async fn sums_saturate_instead_of_failing(store: &dyn Store) {
    let alice = token(store, &owner(store, "alice").await, None).await;
    let cost = counter(&LimitSubject::Token(alice), Metric::Cost, Window::Month, 0);
    let half = i64::MAX / 2 + 1;
    let batch = [
        item(event(alice, 1, "gpt-4o", 1, 0, half), &[delta(&cost, half)]),
        item(event(alice, 2, "gpt-4o", 1, 0, half), &[delta(&cost, half)]),
    ];
    let written = store.record_usage(UsageBatch { events: &batch, ..UsageBatch::default() }).await.unwrap();
    assert_eq!((written.outcomes, written.totals), (vec![Recorded, Recorded], vec![(cost.clone(), i64::MAX)]));
    let more = [item(event(alice, 3, "gpt-4o", 1, 0, half), &[delta(&cost, half)])];
    let written = store.record_usage(UsageBatch { events: &more, ..UsageBatch::default() }).await.unwrap();
    assert_eq!(written.totals, [(cost.clone(), i64::MAX)]);
    let everything = UsageFilter::between(T0, at(3_600));
    let totals = summary(store, &everything, None).await[0].totals;
    assert_eq!((totals.events, totals.cost), (3, Microdollars::from_micros(i64::MAX)));
    assert_eq!(store.count_usage_events().await.unwrap(), 3);
    // Summaries over rows that together pass it saturate too, and still order by cost, then key.
    let bob = token(store, &owner(store, "bob").await, None).await;
    let large = (1_i64 << 32) + 1;
    let events = [
        event(alice, 3_700, "gpt-4o", 1, 0, half),
        event(alice, 3_701, "o1", 1, 0, half),
        event(bob, 3_702, "gpt-4o", 1, 0, large),
        event(bob, 3_703, "o1", 1, 0, large),
    ];
    record(store, &events).await;
    let two_hours = UsageFilter::between(T0, at(7_200));
    let totals = summary(store, &two_hours, None).await[0].totals;
    assert_eq!((totals.events, totals.cost), (7, Microdollars::from_micros(i64::MAX)));
    let by_hour = summary(store, &two_hours, Some(UsageGroupBy::Hour)).await;
    let hours = ["2026-01-01T00:00:00Z", "2026-01-01T01:00:00Z"].map(|hour| (Some(hour.to_owned()), i64::MAX));
    assert_eq!(keys_and_costs(&by_hour), hours);
    let by_token = summary(store, &two_hours, Some(UsageGroupBy::Token)).await;
    assert_eq!(keys_and_costs(&by_token), [(Some(alice.to_string()), i64::MAX), (Some(bob.to_string()), 2 * large)]);

    let refund = [delta(&cost, -10)];
    let written = store.record_usage(UsageBatch { counters: &refund, ..UsageBatch::default() }).await.unwrap();
    assert_eq!(written.totals, [(cost.clone(), i64::MAX - 10)]);
    let empty = counter(&some_owner(), Metric::Requests, Window::Day, 0);
    let below = [delta(&empty, -5), delta(&cost, i64::MIN)];
    let written = store.record_usage(UsageBatch { counters: &below, ..UsageBatch::default() }).await.unwrap();
    assert_eq!(sorted(written.totals), sorted(vec![(empty.clone(), 0), (cost.clone(), 0)]));
    assert_eq!(store.counter_values(&[cost, empty]).await.unwrap(), [0, 0]);
}

/// Purging raw events forgets the idempotency keys of the events it deletes, and only those: an
/// old event id can be recorded again, a newer one is still a duplicate.
pub async fn purge_forgets_the_keys_of_purged_events(store: &dyn Store) {
    let alice = token(store, &owner(store, "alice").await, None).await;
    let old = keyed(event(alice, 10, "gpt-4o", 1, 0, 1), "req-old");
    let recent = keyed(event(alice, 200, "gpt-4o", 1, 0, 1), "req-recent");
    assert_eq!(record(store, &[old.clone(), recent.clone()]).await.outcomes, [Recorded, Recorded]);
    assert_eq!(record(store, &[old.clone(), recent.clone()]).await.outcomes, [Duplicate, Duplicate]);
    assert_eq!(store.purge_usage_events(at(100)).await.unwrap(), 1);
    assert_eq!(record(store, &[old, recent]).await.outcomes, [Recorded, Duplicate]);
    assert_eq!(store.count_usage_events().await.unwrap(), 2);
}

/// Dead letters round-trip with their event, token and reason, list newest first in pages, and
/// are counted; a cursor no page handed out is refused.
pub async fn dead_letters_round_trip_and_page(store: &dyn Store) {
    assert_eq!(store.count_dead_letters().await.unwrap(), 0);
    let empty = store.dead_letters(&PageRequest::first(10)).await.unwrap();
    assert!(empty.items.is_empty() && empty.next_cursor.is_none(), "{empty:?}");
    store.add_dead_letters(&[]).await.unwrap();
    let alice = token(store, &owner(store, "alice").await, None).await;
    let letters: Vec<DeadLetter> = (0..5)
        .map(|index| DeadLetter {
            event: keyed(event(alice, index, "gpt-4o", 1, 2, 3), &format!("req-{index}")),
            reason: format!("reason {index}"),
            failed_at: at(100 + index),
        })
        .collect();
    store.add_dead_letters(&letters[..3]).await.unwrap();
    store.add_dead_letters(&letters[3..]).await.unwrap();
    assert_eq!(store.count_dead_letters().await.unwrap(), 5);
    assert_eq!(store.count_usage_events().await.unwrap(), 0, "a dead letter is not usage");

    let mut pages = Vec::new();
    let mut page = PageRequest::first(2);
    loop {
        let listed = store.dead_letters(&page).await.unwrap();
        pages.push(listed.items.iter().map(|record| record.reason.clone()).collect::<Vec<_>>());
        for record in &listed.items {
            let index = letters.iter().position(|letter| letter.reason == record.reason).expect("a stored reason");
            assert_eq!(record.token_id, alice.to_string());
            assert_eq!(record.event, serde_json::to_value(&letters[index].event).unwrap());
            assert_eq!(record.failed_at, letters[index].failed_at);
        }
        match listed.next_cursor {
            Some(cursor) => page = PageRequest::after(2, cursor),
            None => break,
        }
    }
    assert_eq!(pages, [vec!["reason 4", "reason 3"], vec!["reason 2", "reason 1"], vec!["reason 0"]]);
    let all = store.dead_letters(&PageRequest::first(10)).await.unwrap().items;
    assert!(all.windows(2).all(|pair| pair[0].id > pair[1].id), "{all:?}");
    let refused = store.dead_letters(&PageRequest::after(2, "not-a-cursor")).await.unwrap_err();
    assert!(matches!(refused, StoreError::InvalidCursor), "{refused:?}");
}
