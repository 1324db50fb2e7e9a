//! Conformance cases for [`UsageStore`](crate::UsageStore): raw events, hourly rollups, summaries, purge.

use tollgate_types::{Microdollars, ModelName, Outcome, OwnerRecord, ProjectRecord, ProviderName, TokenId, UsageEvent};

use super::fixtures::{T0, at, audit, create_token, owner, project};
use crate::{BatchWritten, CounterDelta, EventToRecord, Store, UsageBatch, UsageFilter, UsageGroup, UsageGroupBy};

/// A stored token of `owner` in `project`, created at `T0`.
pub(crate) async fn token(store: &dyn Store, owner: &OwnerRecord, project: Option<&ProjectRecord>) -> TokenId {
    create_token(store, "metered", owner, project, 0).await.id
}

/// An event of `openai/<model>` at `T0 + seconds`.
pub(crate) fn event(token_id: TokenId, seconds: i64, model: &str, input: u32, output: u32, cost: i64) -> UsageEvent {
    let mut event = UsageEvent::new(
        token_id,
        at(seconds),
        ProviderName::parse("openai").expect("fixture provider"),
        ModelName::parse(model).expect("fixture model"),
    );
    event.input_tokens = input;
    event.output_tokens = output;
    event.cost = Some(Microdollars::from_micros(cost));
    event
}

/// `event` to record with what it adds to `counters`.
pub(crate) fn item(event: UsageEvent, counters: &[CounterDelta]) -> EventToRecord {
    EventToRecord { event, counters: counters.to_vec(), agent: None }
}

/// Events to record, adding to no counter.
pub(crate) fn items(events: &[UsageEvent]) -> Vec<EventToRecord> {
    events.iter().map(|event| item(event.clone(), &[])).collect()
}

/// Records `events` in one batch, adding to no counter.
pub(crate) async fn record(store: &dyn Store, events: &[UsageEvent]) -> BatchWritten {
    store.record_usage(UsageBatch { events: &items(events), ..UsageBatch::default() }).await.expect("record usage")
}

pub(crate) async fn summary(
    store: &dyn Store,
    filter: &UsageFilter,
    group_by: Option<UsageGroupBy>,
) -> Vec<UsageGroup> {
    store.usage_summary(filter, group_by, 100).await.expect("usage summary")
}

pub(crate) fn keys_and_costs(groups: &[UsageGroup]) -> Vec<(Option<String>, i64)> {
    groups.iter().map(|group| (group.key.clone(), group.totals.cost.micros())).collect()
}

/// Events are stored one row each and summed per hour, token and model; summaries group and
/// filter by every attribute (owners and projects by id), highest cost first.
pub async fn usage_is_appended_and_rolled_up_hourly(store: &dyn Store) {
    let (alice_owner, bob_owner) = (owner(store, "alice").await, owner(store, "bob").await);
    let search = project(store, "search").await;
    let alice = token(store, &alice_owner, Some(&search)).await;
    let bob = token(store, &bob_owner, None).await;
    let mut events = vec![
        event(alice, 10, "gpt-4o", 100, 50, 1_000),
        event(alice, 20, "gpt-4o", 200, 100, 2_000),
        event(alice, 3_700, "gpt-4o-mini", 10, 5, 7),
        event(bob, 30, "gpt-4o", 1, 1, 13),
    ];
    events[0].latency_ms = Some(900);
    events[1].latency_ms = Some(40);
    events[1].outcome = Outcome::Error;
    events[3].requests = 3;
    record(store, &events).await;
    // An event without a cost is stored as costing nothing (the facade prices events before this).
    let mut unpriced = event(bob, 40, "gpt-4o", 0, 0, 0);
    unpriced.cost = None;
    record(store, &[unpriced]).await;
    assert_eq!(store.count_usage_events().await.unwrap(), 5);

    let everything = UsageFilter::between(T0, at(7_200));
    let total = summary(store, &everything, None).await;
    assert_eq!(total.len(), 1);
    assert_eq!(total[0].key, None);
    let totals = total[0].totals;
    assert_eq!(
        (totals.events, totals.requests, totals.input_tokens, totals.output_tokens, totals.errors),
        (5, 7, 311, 156, 1)
    );
    assert_eq!(totals.cost.micros(), 3_020);
    assert_eq!(totals.total_tokens(), 467);
    assert_eq!(totals.latency.total(), 2);
    assert_eq!((totals.latency.percentile(50), totals.latency.percentile(100)), (Some(50), Some(1_000)));

    let by_token = summary(store, &everything, Some(UsageGroupBy::Token)).await;
    assert_eq!(keys_and_costs(&by_token), [(Some(alice.to_string()), 3_007), (Some(bob.to_string()), 13)]);
    let by_model = summary(store, &everything, Some(UsageGroupBy::Model)).await;
    assert_eq!(
        keys_and_costs(&by_model),
        [(Some("openai/gpt-4o".into()), 3_013), (Some("openai/gpt-4o-mini".into()), 7)]
    );
    let by_provider = summary(store, &everything, Some(UsageGroupBy::Provider)).await;
    assert_eq!(keys_and_costs(&by_provider), [(Some("openai".into()), 3_020)]);
    let by_hour = summary(store, &everything, Some(UsageGroupBy::Hour)).await;
    assert_eq!(
        keys_and_costs(&by_hour),
        [(Some("2026-01-01T00:00:00Z".into()), 3_013), (Some("2026-01-01T01:00:00Z".into()), 7)]
    );
    let by_owner = summary(store, &everything, Some(UsageGroupBy::Owner)).await;
    assert_eq!(
        keys_and_costs(&by_owner),
        [(Some(alice_owner.id.to_string()), 3_007), (Some(bob_owner.id.to_string()), 13)]
    );
    let by_project = summary(store, &everything, Some(UsageGroupBy::Project)).await;
    assert_eq!(keys_and_costs(&by_project), [(Some(search.id.to_string()), 3_007), (None, 13)]);

    let only_bob = UsageFilter { owner: Some(bob_owner.id), ..everything.clone() };
    assert_eq!(summary(store, &only_bob, None).await[0].totals.events, 2);
    let only_search = UsageFilter { project: Some(search.id), ..everything.clone() };
    assert_eq!(summary(store, &only_search, None).await[0].totals.events, 3);
    let only_mini = UsageFilter { model: Some(ModelName::parse("gpt-4o-mini").unwrap()), ..everything.clone() };
    assert_eq!(summary(store, &only_mini, None).await[0].totals.cost.micros(), 7);
    let only_alice = UsageFilter { token_id: Some(alice), ..everything.clone() };
    assert_eq!(summary(store, &only_alice, Some(UsageGroupBy::Model)).await.len(), 2);
    let no_such_provider = UsageFilter { provider: Some(ProviderName::parse("google").unwrap()), ..everything };
    assert_eq!(summary(store, &no_such_provider, None).await[0].totals.events, 0);
}

/// A second batch adds to the same rollup rows instead of replacing them.
pub async fn later_batches_add_to_existing_rollups(store: &dyn Store) {
    let alice = token(store, &owner(store, "alice").await, None).await;
    record(store, &[event(alice, 1, "gpt-4o", 10, 1, 5)]).await;
    record(store, &[event(alice, 2, "gpt-4o", 20, 2, 6), event(alice, 3, "gpt-4o", 30, 3, 7)]).await;
    let groups = summary(store, &UsageFilter::between(T0, at(3_600)), Some(UsageGroupBy::Token)).await;
    assert_eq!(groups.len(), 1);
    let totals = groups[0].totals;
    assert_eq!((totals.events, totals.input_tokens, totals.output_tokens, totals.cost.micros()), (3, 60, 6, 18));
}

/// Summaries cover whole hours (since rounded down, until rounded up) and return at most `limit` groups.
pub async fn summaries_cover_whole_hours_and_respect_the_limit(store: &dyn Store) {
    let alice = token(store, &owner(store, "alice").await, None).await;
    let bob = token(store, &owner(store, "bob").await, None).await;
    record(store, &[event(alice, 10, "gpt-4o", 1, 0, 100), event(bob, 3_700, "gpt-4o", 1, 0, 50)]).await;
    let events_between = |since: i64, until: i64| async move {
        summary(store, &UsageFilter::between(at(since), at(until)), None).await[0].totals.events
    };
    assert_eq!(events_between(1_800, 3_601).await, 2);
    assert_eq!(events_between(1_800, 3_600).await, 1);
    assert_eq!(events_between(3_600, 3_600).await, 0);
    assert_eq!(events_between(7_200, 10_800).await, 0);
    let top = store.usage_summary(&UsageFilter::between(T0, at(7_200)), Some(UsageGroupBy::Token), 1).await.unwrap();
    assert_eq!(keys_and_costs(&top), [(Some(alice.to_string()), 100)]);
}

/// Purging removes exactly the raw events older than the cutoff, however the backend stores them;
/// the rollups (and so every report) keep them.
pub async fn purge_removes_old_raw_events_and_keeps_rollups(store: &dyn Store) {
    let alice = token(store, &owner(store, "alice").await, None).await;
    let bob = token(store, &owner(store, "bob").await, None).await;
    let events: Vec<_> = (0..25).map(|second| event(alice, second * 10, "gpt-4o", 1, 1, 1)).collect();
    record(store, &events).await;
    // Later batches, interleaving tokens and models, some entirely before and some after the cutoffs.
    let early: Vec<_> =
        (0..6).map(|second| event(bob, second, if second % 2 == 0 { "a" } else { "b" }, 1, 1, 1)).collect();
    record(store, &early).await;
    let late: Vec<_> = (0..4).map(|second| event(bob, 1_000 + second, "a", 1, 1, 1)).collect();
    record(store, &late).await;
    assert_eq!(store.count_usage_events().await.unwrap(), 35);
    assert_eq!(store.purge_usage_events(at(100)).await.unwrap(), 16, "10 of alice's, all 6 early ones of bob");
    assert_eq!(store.count_usage_events().await.unwrap(), 19);
    assert_eq!(store.purge_usage_events(at(100)).await.unwrap(), 0);
    assert_eq!(store.purge_usage_events(at(1_002)).await.unwrap(), 17, "the rest of alice's, 2 of bob's late ones");
    assert_eq!(store.count_usage_events().await.unwrap(), 2);
    let totals = summary(store, &UsageFilter::between(T0, at(3_600)), None).await[0].totals;
    assert_eq!(totals.events, 35);
}

/// Rollups keep the owner and project of a token that was later deleted; usage of a token that
/// never existed is kept without attribution.
pub async fn rollups_keep_attribution_after_token_deletion(store: &dyn Store) {
    let alice_owner = owner(store, "alice").await;
    let search = project(store, "search").await;
    let alice = token(store, &alice_owner, Some(&search)).await;
    record(store, &[event(alice, 1, "gpt-4o", 1, 1, 10)]).await;
    store.revoke_token(&alice, None, &audit("token.revoke", alice, at(2))).await.unwrap();
    store.delete_inactive_tokens(at(10), &audit("token.cleanup", "tokens", at(10))).await.unwrap();
    assert!(store.token(&alice).await.is_err());
    let stranger = TokenId::generate();
    record(store, &[event(alice, 20, "gpt-4o", 1, 1, 20), event(stranger, 30, "gpt-4o", 1, 1, 5)]).await;
    let by_owner = summary(store, &UsageFilter::between(T0, at(3_600)), Some(UsageGroupBy::Owner)).await;
    assert_eq!(keys_and_costs(&by_owner), [(Some(alice_owner.id.to_string()), 30), (None, 5)]);
    let by_project = summary(store, &UsageFilter::between(T0, at(3_600)), Some(UsageGroupBy::Project)).await;
    assert_eq!(keys_and_costs(&by_project), [(Some(search.id.to_string()), 30), (None, 5)]);
}

/// Many batches written at once all land, each exactly once.
pub async fn concurrent_batches_all_land(store: &dyn Store) {
    let alice = token(store, &owner(store, "alice").await, None).await;
    let batches: Vec<Vec<EventToRecord>> = (0..16)
        .map(|batch| {
            items(&(0..50).map(|index| event(alice, batch * 50 + index, "gpt-4o", 1, 0, 1)).collect::<Vec<_>>())
        })
        .collect();
    let writes = batches.iter().map(|events| store.record_usage(UsageBatch { events, ..UsageBatch::default() }));
    for written in super::fixtures::join_all(writes.collect()).await {
        assert_eq!(written.unwrap().outcomes.len(), 50);
    }
    assert_eq!(store.count_usage_events().await.unwrap(), 800);
    let totals = summary(store, &UsageFilter::between(T0, at(3_600)), None).await[0].totals;
    assert_eq!((totals.events, totals.cost.micros()), (800, 800));
}
