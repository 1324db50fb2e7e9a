//! Conformance cases for agents' usage and paged summaries: rollups attributed to the agent of a
//! credential, event ids unique per agent across its credentials, and group pages that cover every
//! group exactly once.

use tollgate_types::{EventId, OwnerRecord, TokenId};

use super::agents::{agent, credential};
use super::fixtures::{T0, at, audit, owner, project};
use super::usage::{event, item, keys_and_costs, record, summary, token};
use crate::{
    AgentScope, EventToRecord, PageRequest, RecordOutcome, Store, StoreError, UsageBatch, UsageFilter, UsageGroup,
    UsageGroupBy,
};

async fn insert_credential(store: &dyn Store, owner: &OwnerRecord, agent: tollgate_types::AgentId) -> TokenId {
    let insert = credential(owner, agent);
    store.insert_token(&insert, &audit("agent.credential.create", insert.id, at(2))).await.unwrap().id
}

fn keyed(mut item: EventToRecord, key: &str, agent: Option<tollgate_types::AgentId>) -> EventToRecord {
    item.event.event_id = Some(EventId::parse(key).unwrap());
    item.agent = agent;
    item
}

/// An agent's events are attributed to it in the rollups (filter and group by agent, API tokens
/// left out), and an event id is unique per agent across its credentials but per token otherwise.
pub async fn agent_usage_is_attributed_and_deduplicated_per_agent(store: &dyn Store) {
    let alice = owner(store, "alice").await;
    let worker = agent(store, &alice, None).await;
    let other = agent(store, &alice, None).await;
    let (first, second) =
        (insert_credential(store, &alice, worker).await, insert_credential(store, &alice, worker).await);
    let others = insert_credential(store, &alice, other).await;
    let api = token(store, &alice, None).await;
    let batch = vec![
        keyed(item(event(first, 10, "gpt-4o", 10, 1, 300), &[]), "call-1", Some(worker)),
        // The same call reported through the agent's other credential, and again in the batch.
        keyed(item(event(second, 11, "gpt-4o", 10, 1, 300), &[]), "call-1", Some(worker)),
        keyed(item(event(first, 12, "gpt-4o-mini", 5, 1, 20), &[]), "call-2", Some(worker)),
        // Another agent's and an API token's keys are theirs.
        keyed(item(event(others, 13, "gpt-4o", 1, 1, 7), &[]), "call-1", Some(other)),
        keyed(item(event(api, 14, "gpt-4o", 1, 1, 1_000), &[]), "call-1", None),
    ];
    let written = store.record_usage(UsageBatch { events: &batch, ..UsageBatch::default() }).await.unwrap();
    use RecordOutcome::{Duplicate, Recorded};
    assert_eq!(written.outcomes, [Recorded, Duplicate, Recorded, Recorded, Recorded]);
    let again = [keyed(item(event(second, 20, "gpt-4o", 10, 1, 300), &[]), "call-2", Some(worker))];
    let written = store.record_usage(UsageBatch { events: &again, ..UsageBatch::default() }).await.unwrap();
    assert_eq!(written.outcomes, [Duplicate], "a later batch through another credential is a duplicate too");

    let everything = UsageFilter::between(T0, at(3_600));
    let agents_only = UsageFilter { agent: Some(AgentScope::Any), ..everything.clone() };
    let by_agent = summary(store, &agents_only, Some(UsageGroupBy::Agent)).await;
    assert_eq!(keys_and_costs(&by_agent), [(Some(worker.to_string()), 320), (Some(other.to_string()), 7)]);
    let worker_only = UsageFilter { agent: Some(AgentScope::One(worker)), ..everything.clone() };
    let by_model = summary(store, &worker_only, Some(UsageGroupBy::Model)).await;
    assert_eq!(
        keys_and_costs(&by_model),
        [(Some("openai/gpt-4o".into()), 300), (Some("openai/gpt-4o-mini".into()), 20)]
    );
    let all = summary(store, &everything, Some(UsageGroupBy::Agent)).await;
    assert_eq!(keys_and_costs(&all)[0], (None, 1_000), "API tokens' usage is the keyless group");
}

/// Pages of groups, highest cost first then by key, cover every group exactly once whatever the
/// page size, ties in cost and the keyless group included; a malformed cursor is refused.
pub async fn usage_groups_page_through_every_group_once(store: &dyn Store) {
    let alice = owner(store, "alice").await;
    let search = project(store, "search").await;
    let chat = project(store, "chat").await;
    let mut events = Vec::new();
    for (index, (project, cost)) in
        [(Some(&search), 50), (Some(&chat), 50), (None, 50), (Some(&search), 10), (None, 5)].into_iter().enumerate()
    {
        let member = token(store, &alice, project).await;
        let seconds = i64::try_from(index).unwrap() * 3_600;
        events.push(event(member, seconds, &format!("model-{index}"), 1, 1, cost));
        events.push(event(member, seconds + 1, "shared", 1, 1, cost * 2));
    }
    record(store, &events).await;
    let filter = UsageFilter::between(T0, at(5 * 3_600));
    for group_by in [UsageGroupBy::Token, UsageGroupBy::Project, UsageGroupBy::Model, UsageGroupBy::Hour] {
        let whole = summary(store, &filter, Some(group_by)).await;
        for limit in [1, 2, 3, whole.len() as u32] {
            let mut paged: Vec<UsageGroup> = Vec::new();
            let mut page = PageRequest::first(limit);
            loop {
                let found = store.usage_groups(&filter, Some(group_by), &page).await.unwrap();
                assert!(found.items.len() <= limit as usize);
                paged.extend(found.items);
                match found.next_cursor {
                    Some(cursor) => page = PageRequest::after(limit, cursor),
                    None => break,
                }
                assert!(paged.len() <= whole.len(), "{group_by:?} by {limit}: pages repeat groups");
            }
            assert_eq!(paged, whole, "{group_by:?} by {limit}");
        }
    }
    for cursor in ["", "x", "12", "-1.-", "5.k", "5.zz", "9999999999999999999999.-"] {
        let refused = store.usage_groups(&filter, Some(UsageGroupBy::Model), &PageRequest::after(2, cursor)).await;
        assert!(matches!(refused, Err(StoreError::InvalidCursor)), "{cursor:?}: {refused:?}");
    }
}

/// Groups summed without latency are the groups with latency, their histograms left empty: the
/// same keys, sums, order and pages, for every grouping.
pub async fn usage_groups_without_latency_are_the_same_groups_without_histograms(store: &dyn Store) {
    let alice = owner(store, "alice").await;
    let search = project(store, "search").await;
    let mut events = Vec::new();
    for index in 0..6i64 {
        let member = token(store, &alice, (index % 2 == 0).then_some(&search)).await;
        let mut timed = event(member, index * 3_600, &format!("model-{}", index % 3), 10, 5, 40 + index);
        timed.latency_ms = Some(u32::try_from(index * 70 + 3).unwrap());
        events.push(timed);
    }
    record(store, &events).await;
    let filter = UsageFilter::between(T0, at(6 * 3_600));
    let groupings = [
        None,
        Some(UsageGroupBy::Token),
        Some(UsageGroupBy::Owner),
        Some(UsageGroupBy::Project),
        Some(UsageGroupBy::Provider),
        Some(UsageGroupBy::Model),
        Some(UsageGroupBy::Hour),
        Some(UsageGroupBy::Agent),
    ];
    for group_by in groupings {
        for limit in [1, 2, 100] {
            let mut page = PageRequest::first(limit);
            loop {
                let with = store.usage_groups(&filter, group_by, &page).await.unwrap();
                let without = store.usage_groups_without_latency(&filter, group_by, &page).await.unwrap();
                assert_eq!(without.next_cursor, with.next_cursor, "{group_by:?} by {limit}");
                let mut expected = with.items.clone();
                for group in &mut expected {
                    group.totals.latency = tollgate_types::LatencyHistogram::default();
                }
                assert_eq!(without.items, expected, "{group_by:?} by {limit}");
                assert!(
                    with.items.iter().any(|group| group.totals.latency != expected[0].totals.latency),
                    "latency was recorded"
                );
                match with.next_cursor {
                    Some(cursor) => page = PageRequest::after(limit, cursor),
                    None => break,
                }
            }
        }
    }
}
