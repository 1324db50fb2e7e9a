//! Conformance cases for the reservations of [`QuotaStore`](crate::QuotaStore): holds taken all or
//! none, settled once with the actual usage, released, expired.

use tollgate_types::{CounterKey, EventId, LimitSubject, Metric, TokenId, UsageEvent, Window};

use super::fixtures::{T0, at, counter, hold, join_all, owner, reservation, some_owner};
use super::usage::{event, item, summary, token};
use crate::{
    CounterDelta, RecordOutcome, ReservationInsert, ReservationState, ReserveOutcome, Settled, Store, StoreError,
    UsageBatch, UsageFilter,
};

async fn values(store: &dyn Store, keys: &[CounterKey]) -> Vec<i64> {
    store.counter_values(keys).await.expect("counter values")
}

async fn reserve(store: &dyn Store, insert: &ReservationInsert) -> ReserveOutcome {
    store.reserve(insert).await.expect("reserve")
}

/// Settles `reserved` at `at(seconds)` with `event` and what it adds to the counters.
async fn settle(
    store: &dyn Store,
    reserved: &ReservationInsert,
    event: UsageEvent,
    deltas: &[CounterDelta],
    seconds: i64,
) -> Settled {
    store.settle_reservation(&reserved.id, &item(event, deltas), at(seconds)).await.expect("settle")
}

fn sorted(mut totals: Vec<(CounterKey, i64)>) -> Vec<(CounterKey, i64)> {
    totals.sort();
    totals
}

/// The usage recorded in the first hour: events and cost.
async fn recorded(store: &dyn Store) -> (u64, i64) {
    let totals = summary(store, &UsageFilter::between(T0, at(3_600)), None).await[0].totals;
    (totals.events, totals.cost.micros())
}

/// A token's cost and tokens counters for the first day.
fn daily(token_id: TokenId) -> (CounterKey, CounterKey) {
    let subject = LimitSubject::Token(token_id);
    (counter(&subject, Metric::Cost, Window::Day, 0), counter(&subject, Metric::Tokens, Window::Day, 0))
}

/// What a call of `cost` and `tokens` adds to the [`daily`] counters.
fn deltas(keys: &(CounterKey, CounterKey), cost: i64, tokens: i64) -> [CounterDelta; 2] {
    [CounterDelta { key: keys.0.clone(), delta: cost }, CounterDelta { key: keys.1.clone(), delta: tokens }]
}

/// Holds of one reservation on one counter add up against its maximum; a refused reservation
/// leaves no trace, not even a counter (a missing counter still reads the usage rolled up since).
pub async fn holds_on_one_counter_add_up_and_refusals_leave_no_trace(store: &dyn Store) {
    let alice = token(store, &owner(store, "alice").await, None).await;
    let (cost, tokens) = daily(alice);
    let twice = |amount| vec![hold(&cost, amount, Some(10)), hold(&cost, amount, Some(10))];
    assert_eq!(reserve(store, &reservation(alice, twice(6), 1)).await, ReserveOutcome::Refused { index: 1, used: 0 });
    assert_eq!(reserve(store, &reservation(alice, twice(5), 1)).await, ReserveOutcome::Held(vec![5, 10]));
    let refused = reservation(alice, vec![hold(&tokens, 100, Some(1_000)), hold(&cost, 1, Some(10))], 2);
    assert_eq!(reserve(store, &refused).await, ReserveOutcome::Refused { index: 1, used: 10 });
    super::usage::record(store, &[event(alice, 3, "gpt-4o", 40, 2, 0)]).await;
    assert_eq!(values(store, &[tokens, cost]).await, [42, 10], "the tokens counter was never created");
}

/// A reservation with an id already stored is a conflict and holds nothing.
pub async fn a_reservation_id_is_stored_once(store: &dyn Store) {
    let key = counter(&some_owner(), Metric::Cost, Window::Day, 0);
    let first = reservation(TokenId::generate(), vec![hold(&key, 3, Some(100))], 1);
    assert_eq!(reserve(store, &first).await, ReserveOutcome::Held(vec![3]));
    let again = ReservationInsert { holds: vec![hold(&key, 4, Some(100))], ..first.clone() };
    let conflict = store.reserve(&again).await.unwrap_err();
    assert!(matches!(conflict, StoreError::Conflict(_)), "{conflict:?}");
    assert_eq!(values(store, std::slice::from_ref(&key)).await, [3]);
    assert_eq!(store.reservation(&first.id).await.unwrap().holds, [(key, 3)]);
}

/// Settling replaces the holds by the call's actual usage and records its event, in one step:
/// afterwards the counters hold exactly the usage, and the reservation reads settled.
pub async fn settling_replaces_holds_with_actual_usage(store: &dyn Store) {
    let alice = token(store, &owner(store, "alice").await, None).await;
    let keys = daily(alice);
    let insert = reservation(alice, vec![hold(&keys.0, 500, Some(1_000)), hold(&keys.1, 300, Some(1_000))], 1);
    assert_eq!(reserve(store, &insert).await, ReserveOutcome::Held(vec![500, 300]));
    let held = store.reservation(&insert.id).await.unwrap();
    assert_eq!((held.state, held.closed_at, held.token_id), (ReservationState::Held, None, alice));
    assert_eq!(
        (held.holds.clone(), held.created_at, held.expires_at),
        (vec![(keys.0.clone(), 500), (keys.1.clone(), 300)], at(1), at(61))
    );
    let crowded = reservation(alice, vec![hold(&keys.0, 600, Some(1_000))], 2);
    assert_eq!(reserve(store, &crowded).await, ReserveOutcome::Refused { index: 0, used: 500 }, "holds count");

    let settled = settle(store, &insert, event(alice, 2, "gpt-4o", 60, 20, 120), &deltas(&keys, 120, 80), 3).await;
    assert_eq!(settled.recorded, Some(RecordOutcome::Recorded));
    assert_eq!(sorted(settled.totals), sorted(vec![(keys.0.clone(), 120), (keys.1.clone(), 80)]));
    assert_eq!((settled.reservation.state, settled.reservation.closed_at), (ReservationState::Settled, Some(at(3))));
    assert_eq!(settled.reservation.holds, held.holds, "the record keeps what was held");
    assert_eq!(store.reservation(&insert.id).await.unwrap(), settled.reservation);
    assert_eq!(values(store, &[keys.0, keys.1]).await, [120, 80]);
    assert_eq!(recorded(store).await, (1, 120));
}

/// Settling again changes nothing, whatever event it carries: the usage is counted once.
pub async fn settling_twice_counts_once(store: &dyn Store) {
    let alice = token(store, &owner(store, "alice").await, None).await;
    let keys = daily(alice);
    let insert = reservation(alice, vec![hold(&keys.0, 500, Some(1_000))], 1);
    reserve(store, &insert).await;
    let mut call = event(alice, 2, "gpt-4o", 60, 20, 120);
    call.event_id = Some(EventId::parse("req-1").unwrap());
    let first = settle(store, &insert, call.clone(), &deltas(&keys, 120, 80), 3).await;
    assert_eq!(first.recorded, Some(RecordOutcome::Recorded));
    let again = settle(store, &insert, call, &deltas(&keys, 120, 80), 4).await;
    assert_eq!((again.recorded, again.totals.is_empty()), (Some(RecordOutcome::Duplicate), true));
    assert_eq!(again.reservation, first.reservation);
    let other = settle(store, &insert, event(alice, 5, "gpt-4o", 1, 1, 7), &deltas(&keys, 7, 2), 5).await;
    assert_eq!((other.recorded, other.totals.is_empty()), (Some(RecordOutcome::Duplicate), true));
    assert_eq!(values(store, &[keys.0, keys.1]).await, [120, 80]);
    assert_eq!(recorded(store).await, (1, 120));
}

/// A released reservation gives its holds back once; settling it afterwards records nothing.
pub async fn settling_a_released_reservation_records_nothing(store: &dyn Store) {
    let alice = token(store, &owner(store, "alice").await, None).await;
    let keys = daily(alice);
    let other = reservation(alice, vec![hold(&keys.0, 50, Some(1_000))], 1);
    let insert = reservation(alice, vec![hold(&keys.0, 500, Some(1_000))], 1);
    reserve(store, &other).await;
    reserve(store, &insert).await;
    let released = store.release_reservation(&insert.id, at(5)).await.unwrap();
    assert_eq!((released.state, released.closed_at), (ReservationState::Released, Some(at(5))));
    assert_eq!(values(store, std::slice::from_ref(&keys.0)).await, [50]);
    assert_eq!(store.release_reservation(&insert.id, at(6)).await.unwrap(), released, "released once");
    assert_eq!(values(store, std::slice::from_ref(&keys.0)).await, [50]);
    let settled = settle(store, &insert, event(alice, 2, "gpt-4o", 60, 20, 120), &deltas(&keys, 120, 80), 7).await;
    assert_eq!((settled.recorded, settled.totals.is_empty()), (None, true));
    assert_eq!(settled.reservation, released);
    assert_eq!(values(store, &[keys.0, keys.1]).await, [50, 0]);
    assert_eq!(store.count_usage_events().await.unwrap(), 0);
}

/// Settling with an event whose id was already recorded for the token gives the holds back and
/// counts nothing again; the reservation is settled.
pub async fn settling_with_a_recorded_event_id_only_returns_the_holds(store: &dyn Store) {
    let alice = token(store, &owner(store, "alice").await, None).await;
    let keys = daily(alice);
    let mut call = event(alice, 2, "gpt-4o", 10, 0, 50);
    call.event_id = Some(EventId::parse("req-7").unwrap());
    let items = [item(call.clone(), &deltas(&keys, 50, 10))];
    store.record_usage(UsageBatch { events: &items, ..UsageBatch::default() }).await.unwrap();
    let insert = reservation(alice, vec![hold(&keys.0, 400, Some(1_000))], 3);
    assert_eq!(reserve(store, &insert).await, ReserveOutcome::Held(vec![450]));
    let settled = settle(store, &insert, call, &deltas(&keys, 999, 999), 4).await;
    assert_eq!(settled.recorded, Some(RecordOutcome::Duplicate));
    assert_eq!(settled.totals, [(keys.0.clone(), 50)]);
    assert_eq!(settled.reservation.state, ReservationState::Settled);
    assert_eq!(values(store, &[keys.0, keys.1]).await, [50, 10]);
    assert_eq!(recorded(store).await, (1, 50));
}

/// Settling usage of another token is a conflict that changes nothing; unknown ids are `NotFound`.
pub async fn settling_checks_the_token_and_the_id(store: &dyn Store) {
    let alice_owner = owner(store, "alice").await;
    let (alice, bob) = (token(store, &alice_owner, None).await, token(store, &alice_owner, None).await);
    let keys = daily(alice);
    let insert = reservation(alice, vec![hold(&keys.0, 500, Some(1_000))], 1);
    reserve(store, &insert).await;
    let wrong = item(event(bob, 2, "gpt-4o", 1, 1, 120), &deltas(&keys, 120, 2));
    let conflict = store.settle_reservation(&insert.id, &wrong, at(3)).await.unwrap_err();
    assert!(matches!(conflict, StoreError::Conflict(_)), "{conflict:?}");
    assert_eq!(store.reservation(&insert.id).await.unwrap().state, ReservationState::Held);
    assert_eq!(values(store, &[keys.0.clone(), keys.1]).await, [500, 0]);
    assert_eq!(store.count_usage_events().await.unwrap(), 0);
    let unknown = reservation(alice, Vec::new(), 1).id;
    let not_found = |result: Result<(), StoreError>| matches!(result, Err(StoreError::NotFound { .. }));
    let right = item(event(alice, 2, "gpt-4o", 1, 1, 1), &[]);
    assert!(not_found(store.settle_reservation(&unknown, &right, at(3)).await.map(drop)));
    assert!(not_found(store.release_reservation(&unknown, at(3)).await.map(drop)));
    assert!(not_found(store.reservation(&unknown).await.map(drop)));
}

/// Expiry gives back the holds of every reservation held at or past its `expires_at`, once; an
/// expired reservation settles as plain usage, whether it was swept or only ran out of time.
pub async fn expired_reservations_return_their_holds(store: &dyn Store) {
    let alice = token(store, &owner(store, "alice").await, None).await;
    let keys = daily(alice);
    let short = reservation(alice, vec![hold(&keys.0, 300, Some(1_000))], 0);
    let long =
        ReservationInsert { expires_at: at(600), ..reservation(alice, vec![hold(&keys.0, 200, Some(1_000))], 0) };
    reserve(store, &short).await;
    reserve(store, &long).await;
    assert_eq!(store.expire_reservations(at(59)).await.unwrap(), 0);
    assert_eq!(store.expire_reservations(at(60)).await.unwrap(), 1);
    assert_eq!(store.expire_reservations(at(60)).await.unwrap(), 0, "expired once");
    let expired = store.reservation(&short.id).await.unwrap();
    assert_eq!((expired.state, expired.closed_at), (ReservationState::Expired, Some(at(60))));
    assert_eq!(values(store, std::slice::from_ref(&keys.0)).await, [200]);

    let late = settle(store, &short, event(alice, 30, "gpt-4o", 1, 0, 120), &deltas(&keys, 120, 1), 70).await;
    assert_eq!((late.recorded, late.reservation.state), (Some(RecordOutcome::Recorded), ReservationState::Settled));
    assert_eq!(values(store, std::slice::from_ref(&keys.0)).await, [320], "the usage counts, the hold does not");
    let unswept = settle(store, &long, event(alice, 40, "gpt-4o", 1, 0, 80), &deltas(&keys, 80, 1), 700).await;
    assert_eq!(unswept.recorded, Some(RecordOutcome::Recorded));
    assert_eq!(values(store, &[keys.0.clone(), keys.1.clone()]).await, [200, 2]);
    let gone = ReservationInsert { expires_at: at(10), ..reservation(alice, vec![hold(&keys.0, 70, None)], 0) };
    reserve(store, &gone).await;
    let released = store.release_reservation(&gone.id, at(20)).await.unwrap();
    assert!(matches!(released.state, ReservationState::Released | ReservationState::Expired), "{released:?}");
    assert_eq!(values(store, std::slice::from_ref(&keys.0)).await, [200]);
    assert_eq!(store.expire_reservations(at(10_000)).await.unwrap(), 0);
    assert_eq!(recorded(store).await, (2, 200));
}

/// One sweep expires every reservation past its expiry, however many there are.
pub async fn expiry_covers_every_reservation(store: &dyn Store) {
    let key = counter(&some_owner(), Metric::Cost, Window::Day, 0);
    let inserts: Vec<_> = (0..1_001).map(|_| reservation(TokenId::generate(), vec![hold(&key, 1, None)], 0)).collect();
    let outcomes = join_all(inserts.iter().map(|insert| store.reserve(insert)).collect()).await;
    assert!(outcomes.iter().all(|outcome| matches!(outcome, Ok(ReserveOutcome::Held(_)))));
    assert_eq!(values(store, std::slice::from_ref(&key)).await, [1_001]);
    assert_eq!(store.expire_reservations(at(60)).await.unwrap(), 1_001);
    assert_eq!(values(store, std::slice::from_ref(&key)).await, [0]);
}
