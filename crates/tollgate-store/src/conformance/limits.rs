//! Conformance cases for [`LimitStore`](crate::LimitStore) and [`PriceStore`](crate::PriceStore).

use tollgate_types::{
    CounterKey, LimitKey, LimitSpec, LimitSubject, Metric, Microdollars, ModelName, ModelPrice, OwnerId, ProjectId,
    ProviderName, RateLimitSpec, ServiceAccountId, TokenId, UserId, Window,
};

use super::fixtures::{T0, at, audit, join_all, owner, project};
use super::usage::{event, token};
use crate::{
    AuditFilter, ConsumeOutcome, CounterDelta, CounterIncrement, PageRequest, ShadowHit, Store, StoreError, UsageBatch,
};

fn key(subject: LimitSubject, metric: Metric, window: Window) -> LimitKey {
    LimitKey { subject, metric, window }
}

/// An owner subject for a service account no other case knows: limits and counters name their
/// subjects by id and need no stored owner.
fn some_owner() -> LimitSubject {
    LimitSubject::Owner(OwnerId::ServiceAccount(ServiceAccountId::generate()))
}

async fn actions(store: &dyn Store) -> Vec<String> {
    let entries = store.list_audit(&AuditFilter::default(), &PageRequest::first(100)).await.unwrap().items;
    entries.into_iter().rev().map(|entry| entry.event.action).collect()
}

/// Putting a limit creates it, putting it again replaces max and shadow but keeps its creation
/// time; each change is audited in its transaction.
pub async fn limits_are_created_replaced_and_audited(store: &dyn Store) {
    let daily = key(some_owner(), Metric::Requests, Window::Day);
    let first = LimitSpec::new(daily.clone(), 100, false).unwrap();
    let created = store.put_limit(&first, at(1), &audit("limit.set", &daily.subject, at(1))).await.unwrap();
    assert_eq!((created.spec.clone(), created.created_at, created.updated_at), (first, at(1), at(1)));
    assert_eq!((created.shadow_hits, created.last_shadow_hit_at), (0, None));
    let second = LimitSpec::new(daily.clone(), 50, true).unwrap();
    let replaced = store.put_limit(&second, at(2), &audit("limit.set", &daily.subject, at(2))).await.unwrap();
    assert_eq!((replaced.spec.max(), replaced.spec.shadow()), (50, true));
    assert_eq!((replaced.created_at, replaced.updated_at), (at(1), at(2)));
    assert_eq!(store.limits(None).await.unwrap(), vec![replaced]);
    assert_eq!(actions(store).await, ["limit.set", "limit.set"]);
}

/// Deleting a limit removes it and its counters; deleting a missing one is `NotFound` and writes nothing.
pub async fn deleting_a_limit_removes_its_counters(store: &dyn Store) {
    let daily = key(some_owner(), Metric::Requests, Window::Day);
    store
        .put_limit(&LimitSpec::new(daily.clone(), 10, false).unwrap(), T0, &audit("limit.set", "x", T0))
        .await
        .unwrap();
    let counter = CounterKey::at(daily.clone(), at(5));
    let increment = CounterIncrement { key: counter.clone(), amount: 4, max: Some(10) };
    store.try_consume(std::slice::from_ref(&increment)).await.unwrap();
    let deleted = store.delete_limit(&daily, &audit("limit.remove", "x", at(6))).await.unwrap();
    assert_eq!(deleted.spec.max(), 10);
    assert!(store.limits(None).await.unwrap().is_empty());
    assert_eq!(store.load_counter(&counter).await.unwrap(), 0, "the counter went with its limit");
    let missing = store.delete_limit(&daily, &audit("limit.remove", "x", at(7))).await.unwrap_err();
    assert!(matches!(missing, StoreError::NotFound { entity: "limit" }), "{missing:?}");
    assert_eq!(actions(store).await, ["limit.set", "limit.remove"]);
}

/// Limits list per subject, ordered by subject, metric (requests, tokens, cost) and window (short first).
pub async fn limits_list_by_subject_in_a_stable_order(store: &dyn Store) {
    let token_id = TokenId::generate();
    let user_id = UserId::generate();
    let project = LimitSubject::Project(ProjectId::generate());
    let specs = [
        (LimitSubject::Token(token_id), Metric::Cost, Window::Month),
        (LimitSubject::Token(token_id), Metric::Requests, Window::Day),
        (LimitSubject::Token(token_id), Metric::Requests, Window::Minute),
        (LimitSubject::Owner(OwnerId::User(user_id)), Metric::Tokens, Window::Hour),
        (project.clone(), Metric::Cost, Window::Day),
    ];
    for (subject, metric, window) in specs.iter().cloned() {
        let spec = LimitSpec::new(key(subject, metric, window), 5, false).unwrap();
        store.put_limit(&spec, T0, &audit("limit.set", "x", T0)).await.unwrap();
    }
    let for_token = store.limits(Some(&LimitSubject::Token(token_id))).await.unwrap();
    let shape: Vec<_> = for_token.iter().map(|record| (record.spec.key().metric, record.spec.key().window)).collect();
    assert_eq!(
        shape,
        [(Metric::Requests, Window::Minute), (Metric::Requests, Window::Day), (Metric::Cost, Window::Month)]
    );
    assert_eq!(store.limits(Some(&project)).await.unwrap().len(), 1);
    assert_eq!(store.limits(Some(&LimitSubject::Owner(OwnerId::User(user_id)))).await.unwrap().len(), 1);
    assert_eq!(store.limits(Some(&LimitSubject::Owner(UserId::generate().into()))).await.unwrap().len(), 0);
    assert_eq!(store.limits(None).await.unwrap().len(), 5);
}

/// A new counter of tokens or cost starts from the usage already rolled up in its window (hours,
/// days, months); requests and minute windows start at zero; an existing counter is not re-seeded.
pub async fn new_counters_start_from_rolled_up_usage(store: &dyn Store) {
    let alice_owner = owner(store, "alice").await;
    let search = project(store, "search").await;
    let alice = token(store, &alice_owner, Some(&search)).await;
    let events = [event(alice, 10, "gpt-4o", 100, 20, 300), event(alice, 90_000, "gpt-4o", 7, 0, 1)];
    store.record_usage(UsageBatch { events: &events, ..UsageBatch::default() }).await.unwrap();
    let counter = |subject: LimitSubject, metric, window| CounterKey::at(key(subject, metric, window), at(60));
    let token = LimitSubject::Token(alice);
    let project = LimitSubject::Project(search.id);
    let alice_subject = LimitSubject::Owner(alice_owner.id);
    assert_eq!(store.load_counter(&counter(token.clone(), Metric::Tokens, Window::Day)).await.unwrap(), 120);
    assert_eq!(store.load_counter(&counter(token.clone(), Metric::Cost, Window::Month)).await.unwrap(), 301);
    assert_eq!(store.load_counter(&counter(alice_subject, Metric::Cost, Window::Hour)).await.unwrap(), 300);
    assert_eq!(store.load_counter(&counter(project, Metric::Tokens, Window::Month)).await.unwrap(), 127);
    assert_eq!(store.load_counter(&counter(token.clone(), Metric::Tokens, Window::Minute)).await.unwrap(), 0);
    assert_eq!(store.load_counter(&counter(token.clone(), Metric::Requests, Window::Day)).await.unwrap(), 0);
    assert_eq!(store.load_counter(&counter(some_owner(), Metric::Cost, Window::Day)).await.unwrap(), 0);
    // Seeded once: usage recorded later reaches the counter only through deltas.
    let more = [event(alice, 20, "gpt-4o", 1_000, 0, 1)];
    store.record_usage(UsageBatch { events: &more, ..UsageBatch::default() }).await.unwrap();
    assert_eq!(store.load_counter(&counter(token, Metric::Tokens, Window::Day)).await.unwrap(), 120);
}

/// `try_consume` applies every increment or none; a zero amount asks whether anything is left;
/// an increment without a maximum always applies.
pub async fn consume_is_all_or_nothing(store: &dyn Store) {
    let alice = some_owner();
    let minute = CounterKey::at(key(alice.clone(), Metric::Requests, Window::Minute), at(1));
    let day = CounterKey::at(key(alice, Metric::Requests, Window::Day), at(1));
    let both = |amount| {
        vec![
            CounterIncrement { key: minute.clone(), amount, max: Some(10) },
            CounterIncrement { key: day.clone(), amount, max: Some(3) },
        ]
    };
    assert_eq!(store.try_consume(&both(2)).await.unwrap(), ConsumeOutcome::Applied(vec![2, 2]));
    assert_eq!(store.try_consume(&both(2)).await.unwrap(), ConsumeOutcome::Refused { index: 1, used: 2 });
    assert_eq!(store.load_counter(&minute).await.unwrap(), 2, "the refused batch changed nothing");
    assert_eq!(store.try_consume(&both(1)).await.unwrap(), ConsumeOutcome::Applied(vec![3, 3]));
    assert_eq!(store.try_consume(&both(0)).await.unwrap(), ConsumeOutcome::Refused { index: 1, used: 3 });
    let unconditional = [CounterIncrement { key: day.clone(), amount: 5, max: None }];
    assert_eq!(store.try_consume(&unconditional).await.unwrap(), ConsumeOutcome::Applied(vec![8]));
    let returned = [CounterIncrement { key: day.clone(), amount: -8, max: Some(3) }];
    assert_eq!(store.try_consume(&returned).await.unwrap(), ConsumeOutcome::Applied(vec![0]));
}

/// Concurrent consumers against a maximum of 10 get exactly 10 admissions.
pub async fn concurrent_consumers_never_pass_the_maximum(store: &dyn Store) {
    let counter = CounterKey::at(key(some_owner(), Metric::Cost, Window::Month), at(1));
    let increment = [CounterIncrement { key: counter.clone(), amount: 250_000, max: Some(2_500_000) }];
    let attempts = (0..64).map(|_| store.try_consume(&increment)).collect();
    let admitted = join_all(attempts)
        .await
        .into_iter()
        .filter(|outcome| matches!(outcome, Ok(ConsumeOutcome::Applied(_))))
        .count();
    assert_eq!(admitted, 10);
    assert_eq!(store.load_counter(&counter).await.unwrap(), 2_500_000);
}

/// Each window start is its own counter, and counters are purged once their window has ended.
pub async fn counters_are_per_window_and_purged_after_they_end(store: &dyn Store) {
    let limit = key(some_owner(), Metric::Requests, Window::Minute);
    let first = CounterKey::at(limit.clone(), at(10));
    let second = CounterKey::at(limit.clone(), at(70));
    assert_ne!(first, second);
    store.try_consume(&[CounterIncrement { key: first.clone(), amount: 1, max: Some(1) }]).await.unwrap();
    let fresh = store.try_consume(&[CounterIncrement { key: second.clone(), amount: 1, max: Some(1) }]).await.unwrap();
    assert_eq!(fresh, ConsumeOutcome::Applied(vec![1]));
    assert_eq!(store.purge_counters(at(60)).await.unwrap(), 0, "a window ending exactly then is kept");
    assert_eq!(store.purge_counters(at(61)).await.unwrap(), 1);
    assert_eq!(store.load_counter(&second).await.unwrap(), 1);
}

/// A usage batch applies counter deltas (creating counters) and shadow hits with its events.
pub async fn usage_batches_apply_counter_deltas_and_shadow_hits(store: &dyn Store) {
    let daily = key(some_owner(), Metric::Cost, Window::Day);
    store
        .put_limit(&LimitSpec::new(daily.clone(), 1_000, true).unwrap(), T0, &audit("limit.set", "x", T0))
        .await
        .unwrap();
    let counter = CounterKey::at(daily.clone(), at(5));
    let deltas = [CounterDelta { key: counter.clone(), delta: 700 }, CounterDelta { key: counter.clone(), delta: 500 }];
    let hits = [
        ShadowHit { limit: daily.clone(), hits: 2, last_at: at(8) },
        ShadowHit { limit: key(some_owner(), Metric::Cost, Window::Day), hits: 1, last_at: at(8) },
    ];
    let totals =
        store.record_usage(UsageBatch { counters: &deltas, shadow_hits: &hits, ..UsageBatch::default() }).await;
    assert_eq!(totals.unwrap(), [700, 1_200]);
    let hits = [ShadowHit { limit: daily.clone(), hits: 1, last_at: at(7) }];
    store.record_usage(UsageBatch { shadow_hits: &hits, ..UsageBatch::default() }).await.unwrap();
    let record = store.limits(None).await.unwrap().remove(0);
    assert_eq!((record.shadow_hits, record.last_shadow_hit_at), (3, Some(at(8))));
    assert_eq!(store.load_counter(&counter).await.unwrap(), 1_200);
    assert_eq!(store.limits(None).await.unwrap().len(), 1, "hits for unknown limits create nothing");
}

/// Rate limits round-trip per token, need an existing token, and go with it when it is deleted.
pub async fn rate_limits_round_trip_and_follow_their_token(store: &dyn Store) {
    let alice = token(store, &owner(store, "alice").await, None).await;
    let spec = RateLimitSpec::new(600, 20).unwrap();
    let record = store.put_rate_limit(&alice, &spec, at(1), &audit("rate_limit.set", alice, at(1))).await.unwrap();
    assert_eq!((record.token_id, record.spec, record.updated_at), (alice, spec, at(1)));
    let faster = RateLimitSpec::new(1_200, 40).unwrap();
    store.put_rate_limit(&alice, &faster, at(2), &audit("rate_limit.set", alice, at(2))).await.unwrap();
    assert_eq!(store.rate_limits().await.unwrap().iter().map(|record| record.spec).collect::<Vec<_>>(), [faster]);
    let stranger = TokenId::generate();
    let missing = store.put_rate_limit(&stranger, &spec, at(3), &audit("rate_limit.set", stranger, at(3))).await;
    assert!(matches!(missing, Err(StoreError::NotFound { entity: "token" })), "{missing:?}");
    store.delete_rate_limit(&alice, &audit("rate_limit.remove", alice, at(4))).await.unwrap();
    let again = store.delete_rate_limit(&alice, &audit("rate_limit.remove", alice, at(5))).await;
    assert!(matches!(again, Err(StoreError::NotFound { .. })), "{again:?}");
    store.put_rate_limit(&alice, &spec, at(6), &audit("rate_limit.set", alice, at(6))).await.unwrap();
    store.revoke_token(&alice, None, &audit("token.revoke", alice, at(7))).await.unwrap();
    store.delete_inactive_tokens(at(100), &audit("token.cleanup", "tokens", at(100))).await.unwrap();
    assert!(store.rate_limits().await.unwrap().is_empty());
    let rate_actions: Vec<_> =
        actions(store).await.into_iter().filter(|action| action.starts_with("rate_limit")).collect();
    assert_eq!(rate_actions, ["rate_limit.set", "rate_limit.set", "rate_limit.remove", "rate_limit.set"]);
}

/// Price overrides are created, replaced, listed in order and deleted, each change audited.
pub async fn prices_round_trip_and_are_audited(store: &dyn Store) {
    let price = |provider: &str, model: &str, input: i64, output: i64| {
        ModelPrice::new(
            ProviderName::parse(provider).unwrap(),
            ModelName::parse(model).unwrap(),
            Microdollars::from_micros(input),
            Microdollars::from_micros(output),
        )
        .unwrap()
    };
    store
        .put_price(&price("openai", "gpt-4o", 2_500_000, 10_000_000), at(1), &audit("price.set", "x", at(1)))
        .await
        .unwrap();
    store
        .put_price(&price("anthropic", "claude", 3_000_000, 15_000_000), at(2), &audit("price.set", "x", at(2)))
        .await
        .unwrap();
    let replaced =
        store.put_price(&price("openai", "gpt-4o", 1, 2), at(3), &audit("price.set", "x", at(3))).await.unwrap();
    assert_eq!((replaced.price.input_per_million().micros(), replaced.updated_at), (1, at(3)));
    let listed: Vec<_> = store.prices().await.unwrap().into_iter().map(|record| record.price).collect();
    assert_eq!(listed, [price("anthropic", "claude", 3_000_000, 15_000_000), price("openai", "gpt-4o", 1, 2)]);
    let (provider, model) = (ProviderName::parse("openai").unwrap(), ModelName::parse("gpt-4o").unwrap());
    store.delete_price(&provider, &model, &audit("price.remove", "x", at(4))).await.unwrap();
    let missing = store.delete_price(&provider, &model, &audit("price.remove", "x", at(5))).await;
    assert!(matches!(missing, Err(StoreError::NotFound { entity: "price" })), "{missing:?}");
    assert_eq!(store.prices().await.unwrap().len(), 1);
    assert_eq!(actions(store).await, ["price.set", "price.set", "price.set", "price.remove"]);
}
