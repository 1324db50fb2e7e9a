//! Conformance cases for [`TraceStore`](crate::TraceStore): attribution, filters, paging, purges.

use tollgate_types::{Microdollars, ModelName, NewTrace, ProviderName, TokenId, TraceId};

use super::agents::{agent, credential};
use super::fixtures::{T0, at, audit, owner, project};
use super::usage::token;
use crate::{PageRequest, Store, StoreError, TraceFilter, TraceInsert};

fn insert(token_id: TokenId, seconds: i64, model: &str, status: u16, payload: Option<&str>) -> TraceInsert {
    TraceInsert {
        id: TraceId::generate(),
        trace: NewTrace {
            token_id,
            at: at(seconds),
            endpoint: None,
            provider: Some(ProviderName::parse("openai").unwrap()),
            model: Some(ModelName::parse(model).unwrap()),
            status,
            latency_ms: Some(120),
            input_tokens: 10,
            output_tokens: 5,
            cost: Microdollars::from_micros(42),
            request: payload.map(str::to_owned),
            response: None,
        },
        truncated: false,
    }
}

/// Traces are attributed to their token's owner, project and agent, read back by id, filtered by
/// every field and paged newest first exactly once; an unknown token or trace is `NotFound`.
pub async fn traces_are_attributed_filtered_and_paged(store: &dyn Store) {
    let alice = owner(store, "alice").await;
    let search = project(store, "search").await;
    let api = token(store, &alice, Some(&search)).await;
    let worker = agent(store, &alice, None).await;
    let credential = credential(&alice, worker);
    store.insert_token(&credential, &audit("agent.credential.create", credential.id, at(2))).await.unwrap();
    let mut ids = Vec::new();
    for (index, (token_id, model, status)) in [
        (api, "gpt-4o", 200),
        (credential.id, "gpt-4o-mini", 200),
        (api, "gpt-4o", 502),
        (credential.id, "gpt-4o", 429),
    ]
    .into_iter()
    .enumerate()
    {
        let seconds = 10 * i64::try_from(index).unwrap();
        let stored = store.insert_trace(&insert(token_id, seconds, model, status, Some("{\"q\":1}"))).await.unwrap();
        assert_eq!((stored.payload_bytes, stored.status), (7, status));
        ids.push(stored.id);
    }
    let first = store.trace(&ids[0]).await.unwrap();
    assert_eq!((first.owner, first.project_id, first.agent_id), (Some(alice.id), Some(search.id), None));
    let second = store.trace(&ids[1]).await.unwrap();
    assert_eq!(second.agent_id, Some(worker));
    assert_eq!(second.request.as_deref(), Some("{\"q\":1}"));
    assert!(matches!(store.trace(&TraceId::generate()).await, Err(StoreError::NotFound { entity: "trace" })));
    let orphan = store.insert_trace(&insert(TokenId::generate(), 0, "gpt-4o", 200, None)).await;
    assert!(matches!(orphan, Err(StoreError::NotFound { entity: "token" })), "{orphan:?}");

    let list = |filter: TraceFilter| async move {
        let page = store.list_traces(&filter, &PageRequest::first(100)).await.unwrap();
        page.items.iter().map(|trace| trace.id).collect::<Vec<_>>()
    };
    let newest_first: Vec<TraceId> = ids.iter().rev().copied().collect();
    assert_eq!(list(TraceFilter::default()).await, newest_first);
    assert_eq!(list(TraceFilter { token_id: Some(api), ..TraceFilter::default() }).await, [ids[2], ids[0]]);
    assert_eq!(list(TraceFilter { agent: Some(worker), ..TraceFilter::default() }).await, [ids[3], ids[1]]);
    assert_eq!(list(TraceFilter { owner: Some(alice.id), ..TraceFilter::default() }).await.len(), 4);
    let mini = TraceFilter { model: Some(ModelName::parse("gpt-4o-mini").unwrap()), ..TraceFilter::default() };
    assert_eq!(list(mini).await, [ids[1]]);
    assert_eq!(list(TraceFilter { min_status: Some(400), ..TraceFilter::default() }).await, [ids[3], ids[2]]);
    assert_eq!(
        list(TraceFilter { min_status: Some(400), max_status: Some(499), ..TraceFilter::default() }).await,
        [ids[3]]
    );
    let window = TraceFilter { since: Some(at(10)), until: Some(at(30)), ..TraceFilter::default() };
    assert_eq!(list(window).await, [ids[2], ids[1]]);

    let mut paged = Vec::new();
    let mut page = PageRequest::first(1);
    loop {
        let found = store.list_traces(&TraceFilter::default(), &page).await.unwrap();
        paged.extend(found.items.iter().map(|trace| trace.id));
        match found.next_cursor {
            Some(cursor) => page = PageRequest::after(1, cursor),
            None => break,
        }
    }
    assert_eq!(paged, newest_first);
    let refused = store.list_traces(&TraceFilter::default(), &PageRequest::after(1, "nonsense")).await;
    assert!(matches!(refused, Err(StoreError::InvalidCursor)));
}

/// A purge removes what is older than the cutoff, then the oldest of the rest until the payloads
/// fit the maximum.
pub async fn purges_go_by_age_then_by_total_size(store: &dyn Store) {
    let alice = owner(store, "alice").await;
    let api = token(store, &alice, None).await;
    let payload = "x".repeat(100);
    let mut ids = Vec::new();
    for seconds in [0, 100, 200, 300, 400] {
        ids.push(store.insert_trace(&insert(api, seconds, "gpt-4o", 200, Some(&payload))).await.unwrap().id);
    }
    assert_eq!(store.trace_payload_bytes().await.unwrap(), 500);
    let purged = store.purge_traces(at(150), 250).await.unwrap();
    assert_eq!((purged.by_age, purged.by_size), (2, 1));
    let left = store.list_traces(&TraceFilter::default(), &PageRequest::first(10)).await.unwrap();
    assert_eq!(left.items.iter().map(|trace| trace.id).collect::<Vec<_>>(), [ids[4], ids[3]]);
    assert_eq!(store.trace_payload_bytes().await.unwrap(), 200);
    let nothing = store.purge_traces(T0, u64::MAX).await.unwrap();
    assert_eq!((nothing.by_age, nothing.by_size), (0, 0));
}
