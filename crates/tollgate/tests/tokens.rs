//! The token lifecycle through the facade, over a real SQLite file.

mod common;

use std::time::Duration;

use common::{Fixture, OPERATOR, new_token};
use tollgate::{
    Error, IpAllowList, OwnerId, PageRequest, Permission, Principal, RefusalCode, Role, StatusFilter, Timestamp,
    TokenFilter, TokenPatch, TokenStatus, ToolList, VerifyRequest,
};

fn refusal(result: Result<tollgate::TokenContext, Error>) -> RefusalCode {
    match result {
        Err(Error::Refused(refusal)) => refusal.code,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn created_tokens_verify_with_their_context() {
    let fixture = Fixture::new().await;
    let mut token = fixture.new_token("ci", "alice").await;
    token.permission = Permission::Admin;
    let created = fixture.manager.create(&OPERATOR, token).await.unwrap();
    let context = fixture.manager.verify(created.secret.expose(), &VerifyRequest::default()).await.unwrap();
    assert_eq!(context.token_id, created.record.id);
    assert_eq!(context.record.owner, fixture.owner("alice").await);
    assert_eq!(context.record.owner_name.as_str(), "alice");
    assert_eq!(context.effective_permission, Permission::Admin, "a service account's token keeps its own level");
    assert_eq!(context.record.permission, Permission::Admin);
    assert!(!context.via_previous_secret);
}

#[tokio::test]
async fn every_identity_refusal_has_its_code() {
    let fixture = Fixture::new().await;
    let verify = |secret: String, request: VerifyRequest| {
        let manager = fixture.manager.clone();
        async move { manager.verify(&secret, &request).await }
    };
    assert_eq!(refusal(verify("tg_short".into(), VerifyRequest::default()).await), RefusalCode::Malformed);
    let unknown = tollgate::TokenSecret::generate(&tollgate::TokenPrefix::default()).unwrap();
    assert_eq!(refusal(verify(unknown.expose().into(), VerifyRequest::default()).await), RefusalCode::NotFound);

    let mut restricted = fixture.new_token("restricted", "alice").await;
    restricted.ip_allow = IpAllowList::parse(&["10.0.0.0/8"]).unwrap();
    restricted.allowed_tools = ToolList::parse(&["search"]).unwrap();
    restricted.expires_at = Some(common::START.saturating_add(Duration::from_secs(60)));
    let created = fixture.manager.create(&OPERATOR, restricted).await.unwrap();
    let secret = created.secret.expose().to_owned();
    let inside = VerifyRequest { ip: Some("10.0.0.1".parse().unwrap()), tool: Some("search".into()) };
    assert!(verify(secret.clone(), inside.clone()).await.is_ok());
    let outside = VerifyRequest { ip: Some("192.0.2.1".parse().unwrap()), ..inside.clone() };
    assert_eq!(refusal(verify(secret.clone(), outside).await), RefusalCode::IpNotAllowed);
    let other_tool = VerifyRequest { tool: Some("browse".into()), ..inside.clone() };
    assert_eq!(refusal(verify(secret.clone(), other_tool).await), RefusalCode::ToolNotAllowed);
    fixture.advance(60);
    assert_eq!(refusal(verify(secret.clone(), inside.clone()).await), RefusalCode::Expired);

    let revoked = fixture.manager.create(&OPERATOR, fixture.new_token("revoked", "alice").await).await.unwrap();
    fixture.manager.revoke(&OPERATOR, &revoked.record.id, Some("test")).await.unwrap();
    assert_eq!(refusal(verify(revoked.secret.expose().into(), inside).await), RefusalCode::Revoked);
}

#[tokio::test]
async fn a_revoked_token_is_refused_on_the_very_next_verify_even_when_cached() {
    let fixture = Fixture::with_cache_ttl(Duration::from_secs(3600)).await;
    let created = fixture.manager.create(&OPERATOR, fixture.new_token("ci", "alice").await).await.unwrap();
    let request = VerifyRequest::default();
    fixture.manager.verify(created.secret.expose(), &request).await.unwrap();
    fixture.manager.verify(created.secret.expose(), &request).await.unwrap();
    assert_eq!(fixture.manager.cached_tokens(), 1, "the second verify is served from the cache");
    fixture.manager.revoke(&OPERATOR, &created.record.id, None).await.unwrap();
    assert_eq!(refusal(fixture.manager.verify(created.secret.expose(), &request).await), RefusalCode::Revoked);
}

#[tokio::test]
async fn rotation_keeps_the_id_and_honours_the_grace_period() {
    let fixture = Fixture::with_cache_ttl(Duration::from_secs(3600)).await;
    let created = fixture.manager.create(&OPERATOR, fixture.new_token("ci", "alice").await).await.unwrap();
    let request = VerifyRequest::default();
    fixture.manager.verify(created.secret.expose(), &request).await.unwrap();
    let rotated = fixture.manager.rotate(&OPERATOR, &created.record.id, Duration::from_secs(3600)).await.unwrap();
    assert_eq!(rotated.record.id, created.record.id);
    assert_ne!(rotated.secret.expose(), created.secret.expose());
    let via_old = fixture.manager.verify(created.secret.expose(), &request).await.unwrap();
    assert!(via_old.via_previous_secret);
    assert!(!fixture.manager.verify(rotated.secret.expose(), &request).await.unwrap().via_previous_secret);
    fixture.advance(3599);
    assert!(fixture.manager.verify(created.secret.expose(), &request).await.is_ok());
    fixture.advance(1);
    assert_eq!(refusal(fixture.manager.verify(created.secret.expose(), &request).await), RefusalCode::NotFound);
    assert!(fixture.manager.verify(rotated.secret.expose(), &request).await.is_ok());
}

#[tokio::test]
async fn rotation_grace_never_outlives_the_token_and_zero_grace_ends_at_once() {
    let fixture = Fixture::new().await;
    let mut token = fixture.new_token("short", "alice").await;
    token.expires_at = Some(common::START.saturating_add(Duration::from_secs(600)));
    let created = fixture.manager.create(&OPERATOR, token).await.unwrap();
    let rotated = fixture.manager.rotate(&OPERATOR, &created.record.id, Duration::from_secs(86_400)).await.unwrap();
    assert_eq!(rotated.record.previous_valid_until, created.record.expires_at);

    let other = fixture.manager.create(&OPERATOR, fixture.new_token("other", "alice").await).await.unwrap();
    let again = fixture.manager.rotate(&OPERATOR, &other.record.id, Duration::ZERO).await.unwrap();
    assert_eq!(again.record.previous_valid_until, None);
    let request = VerifyRequest::default();
    assert_eq!(refusal(fixture.manager.verify(other.secret.expose(), &request).await), RefusalCode::NotFound);
}

/// Verifies racing a revoke on other threads: a lookup that read the row before the revoke must not
/// put it back in the cache afterwards (the cache's eviction epoch), so the first verify after the
/// revoke returns is refused, whatever the verifiers were doing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revoke_racing_verifies_is_never_cached_again() {
    let fixture = Fixture::with_cache_ttl(Duration::from_secs(3600)).await;
    let owner = fixture.owner("alice").await;
    for round in 0..200 {
        let created = fixture.manager.create(&OPERATOR, new_token(&format!("race {round}"), owner)).await.unwrap();
        let secret = created.secret.expose().to_owned();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let verifiers: Vec<_> = (0..8)
            .map(|_| {
                let (manager, secret, stop) = (fixture.manager.clone(), secret.clone(), stop.clone());
                tokio::spawn(async move {
                    // Served from the cache until the revoke evicts it; then from the store, racing the write.
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let _ = manager.verify(&secret, &VerifyRequest::default()).await;
                        tokio::task::yield_now().await;
                    }
                })
            })
            .collect();
        tokio::task::yield_now().await;
        fixture.manager.revoke(&OPERATOR, &created.record.id, None).await.unwrap();
        let code = refusal(fixture.manager.verify(&secret, &VerifyRequest::default()).await);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for verifier in verifiers {
            verifier.await.unwrap();
        }
        assert_eq!(code, RefusalCode::Revoked, "round {round}: the first verify after the revoke");
        let again = fixture.manager.verify(&secret, &VerifyRequest::default()).await;
        assert_eq!(refusal(again), RefusalCode::Revoked, "round {round}: and every one after it");
    }
}

#[tokio::test]
async fn concurrent_rotate_and_revoke_leave_a_consistent_state() {
    for _ in 0..10 {
        let fixture = Fixture::with_cache_ttl(Duration::ZERO).await;
        let created = fixture.manager.create(&OPERATOR, fixture.new_token("race", "alice").await).await.unwrap();
        let id = created.record.id;
        let (rotate, revoke) = tokio::join!(
            fixture.manager.rotate(&OPERATOR, &id, Duration::from_secs(60)),
            fixture.manager.revoke(&OPERATOR, &id, Some("race")),
        );
        let revoked = revoke.expect("revoke always succeeds");
        let stored = fixture.manager.show(&OPERATOR, &id).await.unwrap();
        assert_eq!(stored.status(tollgate::Clock::now(fixture.clock.as_ref())), TokenStatus::Revoked);
        assert_eq!(stored.revoked_at, revoked.revoked_at);
        assert_eq!(stored.previous_valid_until, None, "a revoked token keeps no grace secret");
        let request = VerifyRequest::default();
        let old_secret = refusal(fixture.manager.verify(created.secret.expose(), &request).await);
        match rotate {
            // Rotated first: the old secret lost its grace slot when the token was revoked.
            Ok(rotated) => {
                assert_eq!(old_secret, RefusalCode::NotFound);
                let code = refusal(fixture.manager.verify(rotated.secret.expose(), &request).await);
                assert_eq!(code, RefusalCode::Revoked);
            }
            // Revoked first: the rotation was refused and the only secret is the revoked one.
            Err(Error::Conflict(_)) => assert_eq!(old_secret, RefusalCode::Revoked),
            Err(other) => panic!("rotate failed unexpectedly: {other:?}"),
        }
    }
}

#[tokio::test]
async fn bad_input_is_refused_with_the_field_and_nothing_is_stored() {
    let fixture = Fixture::new().await;
    let mut past = fixture.new_token("past", "alice").await;
    past.expires_at = Some(Timestamp::from_unix_micros(common::START.unix_micros() - 1));
    match fixture.manager.create(&OPERATOR, past).await {
        Err(Error::Validation(error)) => assert_eq!(error.field, "expires_at"),
        other => panic!("expected a validation error, got {other:?}"),
    }
    let long_reason = "x".repeat(2_000);
    let created = fixture.manager.create(&OPERATOR, fixture.new_token("ok", "alice").await).await.unwrap();
    match fixture.manager.revoke(&OPERATOR, &created.record.id, Some(&long_reason)).await {
        Err(Error::Validation(error)) => assert_eq!(error.field, "reason"),
        other => panic!("expected a validation error, got {other:?}"),
    }
    let all = TokenFilter { status: StatusFilter::All, ..TokenFilter::default() };
    let listed = fixture.manager.list(&OPERATOR, &all, &PageRequest::default()).await.unwrap();
    assert_eq!(listed.items.len(), 1);
    assert_eq!(listed.items[0].status(common::START), TokenStatus::Active);
    match fixture.manager.update(&OPERATOR, &created.record.id, &TokenPatch::default()).await {
        Err(Error::Validation(error)) => assert_eq!(error.field, "patch"),
        other => panic!("expected a validation error, got {other:?}"),
    }
    let bad_cursor = PageRequest::after(10, "not-a-cursor");
    match fixture.manager.list(&OPERATOR, &all, &bad_cursor).await {
        Err(Error::Validation(error)) => assert_eq!(error.field, "cursor"),
        other => panic!("expected a validation error, got {other:?}"),
    }
}

#[tokio::test]
async fn last_used_is_written_in_batches_on_flush() {
    let fixture = Fixture::new().await;
    let created = fixture.manager.create(&OPERATOR, fixture.new_token("ci", "alice").await).await.unwrap();
    fixture.advance(5);
    fixture.manager.verify(created.secret.expose(), &VerifyRequest::default()).await.unwrap();
    assert_eq!(fixture.manager.show(&OPERATOR, &created.record.id).await.unwrap().last_used_at, None);
    fixture.manager.flush().await.unwrap();
    let stored = fixture.manager.show(&OPERATOR, &created.record.id).await.unwrap();
    assert_eq!(stored.last_used_at, Some(common::START.saturating_add(Duration::from_secs(5))));
}

#[tokio::test]
async fn principals_see_and_manage_only_what_the_matrix_allows() {
    let fixture = Fixture::new().await;
    let alice_user = fixture.user("alice", Role::User).await;
    let alice = alice_user.principal();
    let alice_owner = OwnerId::User(alice_user.id);
    let bob_token = fixture.manager.create(&OPERATOR, fixture.new_token("bob's", "bob").await).await.unwrap();
    let alice_token = fixture.manager.create(&alice, new_token("mine", alice_owner)).await.unwrap();
    assert_eq!(alice_token.record.owner, alice_owner, "a user's own token is owned by their id");

    let mut admin_request = new_token("escalate", alice_owner);
    admin_request.permission = Permission::Admin;
    assert!(matches!(fixture.manager.create(&alice, admin_request).await, Err(Error::Forbidden(_))));
    let for_bob = fixture.new_token("for bob", "bob").await;
    assert!(matches!(fixture.manager.create(&alice, for_bob).await, Err(Error::Forbidden(_))));
    assert!(matches!(fixture.manager.show(&alice, &bob_token.record.id).await, Err(Error::NotFound { .. })));
    assert!(matches!(fixture.manager.revoke(&alice, &bob_token.record.id, None).await, Err(Error::NotFound { .. })));

    let everything = TokenFilter { status: StatusFilter::All, ..TokenFilter::default() };
    let seen = fixture.manager.list(&alice, &everything, &PageRequest::default()).await.unwrap();
    assert_eq!(seen.items.iter().map(|record| record.id).collect::<Vec<_>>(), vec![alice_token.record.id]);

    // Alice acting with the viewer role reads her token but may not manage it.
    let viewer = Principal::User { id: alice_user.id, username: alice_user.username.clone(), role: Role::Viewer };
    assert!(fixture.manager.show(&viewer, &alice_token.record.id).await.is_ok());
    assert!(matches!(fixture.manager.revoke(&viewer, &alice_token.record.id, None).await, Err(Error::Forbidden(_))));
    // Another viewer sees nothing of hers: ownership is the id, never the name.
    let other_viewer = fixture.user("carol", Role::Viewer).await.principal();
    let hidden = fixture.manager.show(&other_viewer, &alice_token.record.id).await;
    assert!(matches!(hidden, Err(Error::NotFound { entity: "token" })), "{hidden:?}");
    assert!(matches!(fixture.manager.cleanup(&alice, Duration::ZERO, true).await, Err(Error::Forbidden(_))));
    assert!(fixture.manager.revoke(&alice, &alice_token.record.id, None).await.is_ok());
}
