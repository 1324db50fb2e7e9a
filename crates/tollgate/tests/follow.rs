//! Changes made by another process reach this one's verify cache through the change follower,
//! within its bound; without a confirmed look the cache reads through. Two managers over one
//! SQLite file stand for two processes (or nodes on one PostgreSQL): the cache TTL is far longer
//! than the test and the clock never moves, so only the follower can make a cached token stale.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Fixture, OPERATOR, owners};
use tollgate::{
    Caller, ChangeFollower, Error, FollowSettings, KeyId, RefusalCode, ServiceAccountId, SqliteOptions, SqliteStore,
    Store, TokenHasher, TokenManager, VerifyRequest,
};

const SETTINGS: FollowSettings = FollowSettings { poll: Duration::from_millis(20), bound: Duration::from_millis(500) };

/// A fixture whose cache keeps tokens for an hour, and a second manager ("another process") on its file.
async fn two_processes() -> (Fixture, TokenManager) {
    let fixture = Fixture::with_cache_ttl(Duration::from_secs(3_600)).await;
    let other = SqliteStore::open(&fixture.path, &SqliteOptions::default()).await.unwrap();
    let hasher = TokenHasher::new(KeyId(1), &[42u8; 32]).unwrap();
    let elsewhere = TokenManager::builder(Arc::new(other), hasher).clock(fixture.clock.clone()).build();
    (fixture, elsewhere)
}

async fn follow(fixture: &Fixture) -> ChangeFollower {
    let store: Arc<dyn Store> = Arc::new(fixture.store.clone());
    ChangeFollower::start(store, fixture.manager.clone(), None, SETTINGS).await.unwrap()
}

fn code(result: Result<tollgate::TokenContext, Error>) -> Option<RefusalCode> {
    match result {
        Ok(_) => None,
        Err(Error::Refused(refusal)) => Some(refusal.code),
        Err(other) => panic!("expected a verify answer, got {other:?}"),
    }
}

/// How long until `secret` is refused by `manager`, polling; panics after ten seconds.
async fn refused_after(manager: &TokenManager, secret: &str, since: Instant) -> (Duration, RefusalCode) {
    loop {
        if let Some(code) = code(manager.verify(secret, &VerifyRequest::default()).await) {
            return (since.elapsed(), code);
        }
        assert!(since.elapsed() < Duration::from_secs(10), "never refused");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test]
async fn a_revocation_elsewhere_is_refused_here_within_the_bound() {
    let (fixture, elsewhere) = two_processes().await;
    let _follower = follow(&fixture).await;
    let token = fixture.new_token("ci", "ops").await;
    let created = fixture.manager.create(&OPERATOR, token).await.unwrap();
    let secret = created.secret.expose().to_owned();
    assert!(code(fixture.manager.verify(&secret, &VerifyRequest::default()).await).is_none());
    assert_eq!(fixture.manager.cached_tokens(), 1, "served from memory from now on");

    let revoked = Instant::now();
    elsewhere.revoke(&OPERATOR, &created.record.id, Some("leaked")).await.unwrap();
    let (took, refusal) = refused_after(&fixture.manager, &secret, revoked).await;
    assert_eq!(refusal, RefusalCode::Revoked);
    assert!(took < SETTINGS.bound, "refused after {took:?}");
    assert_eq!(fixture.manager.cached_tokens(), 0);
}

#[tokio::test]
async fn an_owner_suspended_elsewhere_takes_its_cached_tokens_with_it() {
    let (fixture, elsewhere) = two_processes().await;
    let _follower = follow(&fixture).await;
    let token = fixture.new_token("ci", "robot").await;
    let created = fixture.manager.create(&OPERATOR, token).await.unwrap();
    let secret = created.secret.expose().to_owned();
    assert!(code(fixture.manager.verify(&secret, &VerifyRequest::default()).await).is_none());

    let users = owners::user_service(&elsewhere);
    let account = ServiceAccountId::parse(&created.record.owner.to_string()).unwrap();
    let suspended = Instant::now();
    users.suspend_service_account(&Caller::operator(), &account, "offboarded").await.unwrap();
    let (took, refusal) = refused_after(&fixture.manager, &secret, suspended).await;
    assert_eq!(refusal, RefusalCode::Revoked, "the suspension revoked the token");
    assert!(took < SETTINGS.bound, "refused after {took:?}");
}

#[tokio::test]
async fn without_a_confirmed_look_verifies_read_through_to_the_store() {
    let (fixture, elsewhere) = two_processes().await;
    let follower = follow(&fixture).await;
    let token = fixture.new_token("ci", "ops").await;
    let created = fixture.manager.create(&OPERATOR, token).await.unwrap();
    let secret = created.secret.expose().to_owned();
    assert!(code(fixture.manager.verify(&secret, &VerifyRequest::default()).await).is_none());
    let age = fixture.manager.cache_stats().confirmation_age.expect("a follower is attached");
    assert!(age < SETTINGS.bound, "{age:?}");

    // The follower stops (as if its database connection were gone): past the bound, nothing is
    // served from memory, so a revocation elsewhere is refused on the very next verify.
    follower.stop().await;
    tokio::time::sleep(SETTINGS.bound + Duration::from_millis(50)).await;
    elsewhere.revoke(&OPERATOR, &created.record.id, None).await.unwrap();
    let verified = fixture.manager.verify(&secret, &VerifyRequest::default()).await;
    assert_eq!(code(verified), Some(RefusalCode::Revoked));
    let stats = fixture.manager.cache_stats();
    assert!(stats.unconfirmed >= 1, "{stats:?}");
    assert!(stats.confirmation_age.unwrap() >= SETTINGS.bound);
}

#[tokio::test]
async fn without_a_follower_the_ttl_alone_bounds_staleness() {
    // The contrast that makes the tests above meaningful: the same revocation elsewhere is not seen
    // while the cached entry lives.
    let (fixture, elsewhere) = two_processes().await;
    let token = fixture.new_token("ci", "ops").await;
    let created = fixture.manager.create(&OPERATOR, token).await.unwrap();
    let secret = created.secret.expose().to_owned();
    assert!(code(fixture.manager.verify(&secret, &VerifyRequest::default()).await).is_none());
    elsewhere.revoke(&OPERATOR, &created.record.id, None).await.unwrap();
    tokio::time::sleep(SETTINGS.bound).await;
    assert!(code(fixture.manager.verify(&secret, &VerifyRequest::default()).await).is_none(), "still cached");
    assert!(fixture.manager.cache_stats().confirmation_age.is_none());
}
