//! Conformance cases for the leases of [`QuotaStore`](crate::QuotaStore): blocks of request quotas
//! granted to holders, reported, returned, summarised; and the purge of ended quota state.

use tollgate_types::{CounterKey, HolderId, Metric, TokenId, Window};

use super::fixtures::{at, counter, hold, join_all, refuses_missing, reservation, some_owner};
use crate::{
    CounterDelta, LeaseGrant, LeaseRequest, LeaseReturn, LeaseSummary, LeaseUse, ReservationState, Store, StoreError,
    UsageBatch,
};

/// A holder registered at `at(seconds)`.
pub(crate) async fn holder(store: &dyn Store, seconds: i64) -> HolderId {
    let holder = HolderId::generate();
    store.register_holder(&holder, at(seconds)).await.expect("register a holder");
    holder
}

pub(crate) async fn lease(store: &dyn Store, holder: &HolderId, key: &CounterKey, want: u64, max: u64) -> LeaseGrant {
    let request = LeaseRequest { key: key.clone(), want, max };
    store.lease(holder, &request, at(1)).await.expect("lease")
}

async fn value(store: &dyn Store, key: &CounterKey) -> i64 {
    store.counter_values(std::slice::from_ref(key)).await.expect("counter values")[0]
}

async fn report(store: &dyn Store, holder: &HolderId, key: &CounterKey, consumed: u64, seconds: i64) {
    let uses = [LeaseUse { key: key.clone(), consumed }];
    store.report_leases(holder, &uses, at(seconds)).await.expect("report leases");
}

async fn give_back(store: &dyn Store, holder: &HolderId, key: &CounterKey, unused: u64, seconds: i64) {
    let returns = [LeaseReturn { key: key.clone(), unused }];
    store.return_leases(holder, &returns, at(seconds)).await.expect("return leases");
}

async fn summary(store: &dyn Store, key: &CounterKey, except: &HolderId, live_since: i64) -> LeaseSummary {
    let keys = std::slice::from_ref(key);
    store.lease_summaries(keys, except, at(live_since)).await.expect("lease summaries")[0]
}

/// A lease grants what is wanted while the maximum allows, then the rest, then nothing; the
/// counter (created by the first lease) counts every unit granted and never passes the maximum.
pub async fn leases_never_pass_the_maximum(store: &dyn Store) {
    let holder = holder(store, 0).await;
    let key = counter(&some_owner(), Metric::Requests, Window::Minute, 1);
    assert_eq!(lease(store, &holder, &key, 4, 10).await, LeaseGrant { granted: 4, used: 4 });
    assert_eq!(lease(store, &holder, &key, 5, 10).await, LeaseGrant { granted: 5, used: 9 });
    assert_eq!(lease(store, &holder, &key, 5, 10).await, LeaseGrant { granted: 1, used: 10 });
    assert_eq!(lease(store, &holder, &key, 5, 10).await, LeaseGrant { granted: 0, used: 10 });
    assert_eq!(lease(store, &holder, &key, 0, 100).await, LeaseGrant { granted: 0, used: 10 });
    assert_eq!(value(store, &key).await, 10);
    // A counter already past the maximum (unconditional shadow counts) grants nothing and stays.
    let shadow = [CounterDelta { key: key.clone(), delta: 5 }];
    store.record_usage(UsageBatch { counters: &shadow, ..UsageBatch::default() }).await.unwrap();
    assert_eq!(lease(store, &holder, &key, 5, 12).await, LeaseGrant { granted: 0, used: 15 });
    let empty = counter(&some_owner(), Metric::Requests, Window::Day, 1);
    assert_eq!(lease(store, &holder, &empty, 5, 0).await, LeaseGrant { granted: 0, used: 0 });
    assert_eq!(lease(store, &holder, &empty, 7, 3).await, LeaseGrant { granted: 3, used: 3 });
    assert_eq!(value(store, &key).await, 15);
}

/// 64 holders leasing at once, wanting more than the maximum together, share exactly the maximum.
pub async fn concurrent_leases_share_exactly_the_maximum(store: &dyn Store) {
    let key = counter(&some_owner(), Metric::Requests, Window::Day, 1);
    let holders = join_all((0..64).map(|_| holder(store, 0)).collect()).await;
    let grants = join_all(holders.iter().map(|holder| lease(store, holder, &key, 30, 1_000)).collect()).await;
    let granted: Vec<u64> = grants.iter().map(|grant| grant.granted).collect();
    assert_eq!(granted.iter().sum::<u64>(), 1_000, "{granted:?}");
    assert!(granted.iter().all(|units| *units <= 30), "{granted:?}");
    assert!(granted.iter().filter(|units| **units > 0).count() >= 34, "{granted:?}");
    assert!(grants.iter().all(|grant| grant.used <= 1_000), "{grants:?}");
    assert_eq!(value(store, &key).await, 1_000);
    let others = summary(store, &key, &holders[0], 0).await;
    assert_eq!(others, LeaseSummary { leased: 1_000 - granted[0], stranded: 0 });
}

/// A lease needs a registered holder; a refused lease takes nothing from the counter.
pub async fn leases_need_a_registered_holder(store: &dyn Store) {
    let key = counter(&some_owner(), Metric::Requests, Window::Day, 1);
    let request = LeaseRequest { key: key.clone(), want: 5, max: 10 };
    let refused = store.lease(&HolderId::generate(), &request, at(1)).await.unwrap_err();
    assert!(refuses_missing(&refused, "holder"), "{refused:?}");
    assert_eq!(value(store, &key).await, 0);
    let registered = holder(store, 0).await;
    assert_eq!(lease(store, &registered, &key, 5, 10).await, LeaseGrant { granted: 5, used: 5 });
}

/// Reports are cumulative (a stale lower one changes nothing); a return gives back at most what
/// was granted and not reported consumed, the counter dropping by exactly that, and stops the
/// holder; units of a key never leased are not given back.
pub async fn returns_give_back_only_unused_units(store: &dyn Store) {
    let (alice, bob) = (holder(store, 0).await, holder(store, 0).await);
    let key = counter(&some_owner(), Metric::Requests, Window::Day, 1);
    assert_eq!(lease(store, &alice, &key, 10, 100).await.used, 10);
    assert_eq!(lease(store, &alice, &key, 5, 100).await, LeaseGrant { granted: 5, used: 15 }, "blocks add up");
    report(store, &alice, &key, 6, 10).await;
    assert_eq!(summary(store, &key, &bob, 0).await, LeaseSummary { leased: 9, stranded: 0 });
    report(store, &alice, &key, 4, 11).await;
    assert_eq!(summary(store, &key, &bob, 0).await.leased, 9, "what was admitted stays admitted");
    give_back(store, &alice, &key, 100, 20).await;
    assert_eq!(value(store, &key).await, 6, "15 granted, 6 consumed: 9 back, not 100");
    assert_eq!(summary(store, &key, &bob, 0).await, LeaseSummary::default(), "a stopped holder holds nothing");
    give_back(store, &alice, &key, 9, 21).await;
    assert_eq!(value(store, &key).await, 6, "returned once");

    assert_eq!(lease(store, &bob, &key, 3, 100).await, LeaseGrant { granted: 3, used: 9 });
    report(store, &bob, &key, 1, 30).await;
    let never_leased = counter(&some_owner(), Metric::Requests, Window::Day, 1);
    let returns = [LeaseReturn { key: key.clone(), unused: 1 }, LeaseReturn { key: never_leased.clone(), unused: 5 }];
    store.return_leases(&bob, &returns, at(31)).await.unwrap();
    assert_eq!(value(store, &key).await, 8, "the counter drops by what is returned");
    assert_eq!(value(store, &never_leased).await, 0);
}

/// Other holders' unused units are leased while they reported since `live_since`, stranded when
/// they went quiet before it, and nothing once they returned them; the asker's own are left out.
pub async fn summaries_tell_leased_units_from_stranded_ones(store: &dyn Store) {
    let me = holder(store, 0).await;
    let (live, crashed, stopped) = (holder(store, 0).await, holder(store, 0).await, holder(store, 0).await);
    let key = counter(&some_owner(), Metric::Requests, Window::Day, 1);
    for holder in [&me, &live, &crashed, &stopped] {
        assert_eq!(lease(store, holder, &key, 10, 1_000).await.granted, 10);
    }
    report(store, &crashed, &key, 3, 5).await;
    report(store, &live, &key, 4, 100).await;
    report(store, &stopped, &key, 2, 100).await;
    give_back(store, &stopped, &key, 8, 100).await;
    let other = counter(&some_owner(), Metric::Requests, Window::Day, 1);
    let summaries = store.lease_summaries(&[key.clone(), other], &me, at(50)).await.unwrap();
    assert_eq!(summaries, [LeaseSummary { leased: 6, stranded: 7 }, LeaseSummary::default()]);
    assert_eq!(summary(store, &key, &me, 0).await, LeaseSummary { leased: 13, stranded: 0 });
    assert_eq!(summary(store, &key, &me, 101).await, LeaseSummary { leased: 0, stranded: 13 });
    assert_eq!(summary(store, &key, &live, 50).await, LeaseSummary { leased: 0, stranded: 17 }, "me never reported");
    assert_eq!(value(store, &key).await, 32, "stranded units stay counted: 40 leased, 8 returned");
    // Across every quota: the quiet holders' unreported units (me: 10, crashed: 7), until the window ends.
    assert_eq!(store.stranded_units(at(50), at(60)).await.unwrap(), 17);
    assert_eq!(store.stranded_units(at(0), at(60)).await.unwrap(), 0, "everyone counts as alive");
    assert_eq!(store.stranded_units(at(50), key.window_end()).await.unwrap(), 0, "the window ended");
}

/// Purging deletes leases whose window ended and reservations closed before the cutoff, and keeps
/// current leases and every held reservation (expired or not, until expiry closes it).
pub async fn purging_quota_state_deletes_only_what_ended(store: &dyn Store) {
    let (me, other) = (holder(store, 0).await, holder(store, 0).await);
    let minute = counter(&some_owner(), Metric::Requests, Window::Minute, 1);
    let day = counter(&some_owner(), Metric::Requests, Window::Day, 1);
    lease(store, &other, &minute, 5, 10).await;
    lease(store, &other, &day, 5, 10).await;
    report(store, &other, &day, 0, 500).await;
    report(store, &me, &day, 0, 500).await;
    let cost = counter(&some_owner(), Metric::Cost, Window::Day, 1);
    let token_id = TokenId::generate();
    let lasting =
        || crate::ReservationInsert { expires_at: at(1_000), ..reservation(token_id, vec![hold(&cost, 1, None)], 1) };
    let (released_early, released_late) = (lasting(), lasting());
    let held = reservation(token_id, vec![hold(&cost, 1, None)], 1);
    for insert in [&released_early, &released_late, &held] {
        store.reserve(insert).await.unwrap();
    }
    store.release_reservation(&released_early.id, at(10)).await.unwrap();
    store.release_reservation(&released_late.id, at(200)).await.unwrap();

    assert_eq!(store.purge_quota_state(at(100)).await.unwrap(), 2, "the minute's lease and one reservation");
    let gone = store.reservation(&released_early.id).await.unwrap_err();
    assert!(matches!(gone, StoreError::NotFound { .. }), "{gone:?}");
    assert_eq!(store.reservation(&released_late.id).await.unwrap().state, ReservationState::Released);
    assert_eq!(store.reservation(&held.id).await.unwrap().state, ReservationState::Held, "expired, still held");
    assert_eq!(summary(store, &minute, &me, 0).await, LeaseSummary::default());
    assert_eq!(summary(store, &day, &me, 0).await, LeaseSummary { leased: 5, stranded: 0 });
    assert_eq!(store.purge_quota_state(at(100)).await.unwrap(), 0);
    assert_eq!(value(store, &cost).await, 1, "purging gives nothing back");
}
