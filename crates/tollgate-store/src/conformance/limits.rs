//! Conformance cases for [`LimitStore`](crate::LimitStore) and [`PriceStore`](crate::PriceStore).

use tollgate_types::{
    CounterKey, LimitKey, LimitSpec, LimitSubject, Metric, Microdollars, ModelName, ModelPrice, OwnerId, ProjectId,
    ProviderName, RateLimitSpec, TokenId, UserId, Window,
};

use super::fixtures::{T0, at, audit, counter, hold, owner, project, reservation, some_owner};
use super::usage::{event, item, record, token};
use crate::{AuditFilter, CounterDelta, PageRequest, ReserveOutcome, ShadowHit, Store, StoreError, UsageBatch};

fn key(subject: LimitSubject, metric: Metric, window: Window) -> LimitKey {
    LimitKey { subject, metric, window }
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

/// Many limits are put in one call, each audited, and come back in the order given.
pub async fn many_limits_are_put_in_one_transaction(store: &dyn Store) {
    let subject = some_owner();
    let keys =
        [key(subject.clone(), Metric::Requests, Window::Day), key(subject.clone(), Metric::Tokens, Window::Month)];
    let changes: Vec<(LimitSpec, tollgate_types::AuditEvent)> = keys
        .iter()
        .enumerate()
        .map(|(n, key)| {
            (LimitSpec::new(key.clone(), 10 + n as u64, false).unwrap(), audit("limit.set", &subject, at(1)))
        })
        .collect();
    let records = store.put_limits(&changes, at(1)).await.unwrap();
    let maxima: Vec<u64> = records.iter().map(|record| record.spec.max()).collect();
    assert_eq!(maxima, [10, 11]);
    assert_eq!(store.limits(Some(&subject)).await.unwrap().len(), 2);
    assert_eq!(actions(store).await, ["limit.set", "limit.set"]);
    assert!(store.put_limits(&[], at(2)).await.unwrap().is_empty(), "nothing to put is not an error");
}

/// Deleting a limit removes it but keeps its counters: set again mid-window, it continues from
/// what was used. Deleting a missing one is `NotFound` and writes nothing.
pub async fn deleting_a_limit_keeps_its_counters(store: &dyn Store) {
    let daily = key(some_owner(), Metric::Requests, Window::Day);
    let spec = LimitSpec::new(daily.clone(), 10, false).unwrap();
    store.put_limit(&spec, T0, &audit("limit.set", "x", T0)).await.unwrap();
    let counter = CounterKey::at(daily.clone(), at(5));
    let held = store.reserve(&reservation(TokenId::generate(), vec![hold(&counter, 4, Some(10))], 5)).await.unwrap();
    assert_eq!(held, ReserveOutcome::Held(vec![4]));
    let deleted = store.delete_limit(&daily, &audit("limit.remove", "x", at(6))).await.unwrap();
    assert_eq!(deleted.spec.max(), 10);
    assert!(store.limits(None).await.unwrap().is_empty());
    assert_eq!(
        store.counter_values(std::slice::from_ref(&counter)).await.unwrap(),
        [4],
        "the counter outlives its limit"
    );
    let missing = store.delete_limit(&daily, &audit("limit.remove", "x", at(7))).await.unwrap_err();
    assert!(matches!(missing, StoreError::NotFound { entity: "limit" }), "{missing:?}");
    store.put_limit(&spec, at(8), &audit("limit.set", "x", at(8))).await.unwrap();
    let again = store.reserve(&reservation(TokenId::generate(), vec![hold(&counter, 7, Some(10))], 9)).await.unwrap();
    assert_eq!(again, ReserveOutcome::Refused { index: 0, used: 4 }, "set again, the limit counts what was used");
    assert_eq!(actions(store).await, ["limit.set", "limit.remove", "limit.set"]);
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

/// A counter of tokens or cost over an hour, a day or a month that does not exist yet reads as the
/// usage already rolled up in its window; requests and minute windows read zero. Reading creates
/// nothing, so a missing counter follows later rollups; a delta creates it, seeded from the rollups
/// before its batch, and from then on only deltas change it.
pub async fn new_counters_start_from_rolled_up_usage(store: &dyn Store) {
    let alice_owner = owner(store, "alice").await;
    let search = project(store, "search").await;
    let alice = token(store, &alice_owner, Some(&search)).await;
    record(store, &[event(alice, 10, "gpt-4o", 100, 20, 300), event(alice, 90_000, "gpt-4o", 7, 0, 1)]).await;
    let token = LimitSubject::Token(alice);
    let daily_tokens = counter(&token, Metric::Tokens, Window::Day, 60);
    let monthly_tokens = counter(&token, Metric::Tokens, Window::Month, 60);
    let keys = [
        daily_tokens.clone(),
        counter(&token, Metric::Cost, Window::Month, 60),
        counter(&LimitSubject::Owner(alice_owner.id), Metric::Cost, Window::Hour, 60),
        counter(&LimitSubject::Project(search.id), Metric::Tokens, Window::Month, 60),
        counter(&token, Metric::Tokens, Window::Minute, 60),
        counter(&token, Metric::Requests, Window::Day, 60),
        counter(&some_owner(), Metric::Cost, Window::Day, 60),
    ];
    assert_eq!(store.counter_values(&keys).await.unwrap(), [120, 301, 300, 127, 0, 0, 0]);
    let values = |keys: [CounterKey; 2]| async move { store.counter_values(&keys).await.unwrap() };
    // Reading created nothing: usage rolled up since is read too.
    record(store, &[event(alice, 20, "gpt-4o", 1_000, 0, 1)]).await;
    assert_eq!(values([daily_tokens.clone(), monthly_tokens.clone()]).await, [1_120, 1_127]);
    // A delta creates the counter: the rollups before its batch plus the delta.
    let delta = CounterDelta { key: daily_tokens.clone(), delta: 5 };
    let events = [item(event(alice, 30, "gpt-4o", 5, 0, 1), &[delta])];
    let written = store.record_usage(UsageBatch { events: &events, ..UsageBatch::default() }).await.unwrap();
    assert_eq!(written.totals, [(daily_tokens.clone(), 1_125)]);
    // Created, it is no longer seeded: usage recorded without a delta reaches only missing counters.
    record(store, &[event(alice, 40, "gpt-4o", 50, 0, 1)]).await;
    assert_eq!(values([daily_tokens, monthly_tokens]).await, [1_125, 1_182]);
}

/// A reservation holds every amount or none; a zero hold asks whether anything is left; a hold
/// without a maximum always applies.
pub async fn reservations_are_all_or_nothing(store: &dyn Store) {
    let alice = some_owner();
    let minute = counter(&alice, Metric::Requests, Window::Minute, 1);
    let day = counter(&alice, Metric::Requests, Window::Day, 1);
    let reserve = |holds: Vec<crate::Hold>| async move {
        let insert = reservation(TokenId::generate(), holds, 1);
        let outcome = store.reserve(&insert).await.unwrap();
        (outcome, store.reservation(&insert.id).await.is_ok())
    };
    let both = |amount| vec![hold(&minute, amount, Some(10)), hold(&day, amount, Some(3))];
    assert_eq!(reserve(both(2)).await, (ReserveOutcome::Held(vec![2, 2]), true));
    assert_eq!(reserve(both(2)).await, (ReserveOutcome::Refused { index: 1, used: 2 }, false), "and not stored");
    let values = || async { store.counter_values(&[minute.clone(), day.clone()]).await.unwrap() };
    assert_eq!(values().await, [2, 2], "the refused reservation held nothing");
    assert_eq!(reserve(both(1)).await.0, ReserveOutcome::Held(vec![3, 3]));
    assert_eq!(reserve(both(0)).await.0, ReserveOutcome::Refused { index: 1, used: 3 });
    assert_eq!(reserve(vec![hold(&minute, 0, Some(10))]).await.0, ReserveOutcome::Held(vec![3]));
    assert_eq!(reserve(vec![hold(&day, 5, None)]).await.0, ReserveOutcome::Held(vec![8]));
    assert_eq!(
        reserve(vec![hold(&minute, 7, Some(10)), hold(&day, 1, None)]).await.0,
        ReserveOutcome::Held(vec![10, 9])
    );
    assert_eq!(values().await, [10, 9]);
}

/// Concurrent reservations against a maximum of ten holds' worth get exactly ten.
pub async fn concurrent_reservations_never_pass_the_maximum(store: &dyn Store) {
    let counter = counter(&some_owner(), Metric::Cost, Window::Month, 1);
    let inserts: Vec<_> =
        (0..64).map(|_| reservation(TokenId::generate(), vec![hold(&counter, 250_000, Some(2_500_000))], 1)).collect();
    let outcomes = super::fixtures::join_all(inserts.iter().map(|insert| store.reserve(insert)).collect()).await;
    let held = outcomes.into_iter().filter(|outcome| matches!(outcome, Ok(ReserveOutcome::Held(_)))).count();
    assert_eq!(held, 10);
    assert_eq!(store.counter_values(std::slice::from_ref(&counter)).await.unwrap(), [2_500_000]);
}

/// Each window start is its own counter, and counters are purged once their window has ended.
pub async fn counters_are_per_window_and_purged_after_they_end(store: &dyn Store) {
    let subject = some_owner();
    let first = counter(&subject, Metric::Requests, Window::Minute, 10);
    let second = counter(&subject, Metric::Requests, Window::Minute, 70);
    assert_ne!(first, second);
    let reserve = |key: CounterKey| async move {
        store.reserve(&reservation(TokenId::generate(), vec![hold(&key, 1, Some(1))], 70)).await
    };
    assert_eq!(reserve(first.clone()).await.unwrap(), ReserveOutcome::Held(vec![1]));
    assert_eq!(reserve(second.clone()).await.unwrap(), ReserveOutcome::Held(vec![1]), "a new window starts afresh");
    assert_eq!(reserve(first.clone()).await.unwrap(), ReserveOutcome::Refused { index: 0, used: 1 });
    assert_eq!(store.purge_counters(at(60)).await.unwrap(), 0, "a window ending exactly then is kept");
    assert_eq!(store.purge_counters(at(61)).await.unwrap(), 1);
    assert_eq!(store.counter_values(&[first, second]).await.unwrap(), [0, 1]);
}

/// A usage batch applies counter deltas (creating counters, one total per counter) and shadow hits.
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
    let written =
        store.record_usage(UsageBatch { counters: &deltas, shadow_hits: &hits, ..UsageBatch::default() }).await;
    let written = written.unwrap();
    assert_eq!((written.outcomes.len(), written.totals), (0, vec![(counter.clone(), 1_200)]));
    let hits = [ShadowHit { limit: daily.clone(), hits: 1, last_at: at(7) }];
    let written = store.record_usage(UsageBatch { shadow_hits: &hits, ..UsageBatch::default() }).await.unwrap();
    assert!(written.totals.is_empty(), "{written:?}");
    let record = store.limits(None).await.unwrap().remove(0);
    assert_eq!((record.shadow_hits, record.last_shadow_hit_at), (3, Some(at(8))));
    assert_eq!(store.counter_values(std::slice::from_ref(&counter)).await.unwrap(), [1_200]);
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
