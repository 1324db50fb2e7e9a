//! Sessions: access JWTs and their attacks, refresh rotation and reuse detection, logout, and
//! access that follows the user's current status and role.

mod identity_common;
use identity_common as common;

use std::sync::Arc;
use std::time::Duration;

use common::{Fixture, PASSWORD, operator, presented};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::hmac;
use tollgate::{
    Caller, Error, JwtCodec, JwtKeys, PageRequest, Principal, RefusalCode, Role, SessionTokens, UserRecord,
};

fn code(error: &Error) -> Option<RefusalCode> {
    match error {
        Error::Refused(refusal) => Some(refusal.code),
        _ => None,
    }
}

async fn refused_access(fx: &Fixture, token: &str) -> RefusalCode {
    let error = fx.users.authenticate_access(token).await.unwrap_err();
    code(&error).unwrap_or_else(|| panic!("not a refusal: {error:?}"))
}

async fn login(fx: &Fixture, user: &UserRecord) -> SessionTokens {
    fx.users.login(user.username.as_str(), presented(PASSWORD), None).await.expect("login succeeds")
}

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

/// A JWT with any header and claims, signed with HMAC-SHA256 under `key` (or unsigned when `None`).
fn forge(header: serde_json::Value, claims: &serde_json::Value, key: Option<&[u8]>) -> String {
    let message = format!("{}.{}", base64url(header.to_string().as_bytes()), base64url(claims.to_string().as_bytes()));
    let signature = key.map_or_else(String::new, |key| {
        base64url(hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), message.as_bytes()).as_ref())
    });
    format!("{message}.{signature}")
}

fn claims_for(fx: &Fixture, tokens: &SessionTokens) -> serde_json::Value {
    let now = fx.now().unix_seconds();
    serde_json::json!({
        "iss": "tollgate", "aud": "tollgate-api", "sub": tokens.user.id.to_string(), "sid": tokens.session.id.to_string(),
        "token_use": "access", "iat": now, "nbf": now, "exp": now + 600,
    })
}

const KEY: [u8; 32] = [9; 32];

#[tokio::test]
async fn login_hands_out_tokens_that_authenticate_the_user() {
    let fx = Fixture::new().await;
    let alice = fx.user("alice", Role::User).await;
    let tokens = login(&fx, &alice).await;
    assert_eq!(tokens.expires_in, 900);
    assert_eq!(tokens.refresh_expires_at, fx.now().saturating_add(Duration::from_secs(7 * 86_400)));
    assert!(tokens.refresh_token.expose().starts_with("tgr_"));
    let context = fx.users.authenticate_access(tokens.access_token.expose()).await.unwrap();
    assert_eq!(context.principal, alice.principal());
    assert_eq!(context.session.id, tokens.session.id);
    assert_eq!(fx.users.principal_for_access(tokens.access_token.expose()).await.unwrap(), alice.principal());
    let debug = format!("{tokens:?}");
    assert!(!debug.contains(tokens.access_token.expose()) && !debug.contains(tokens.refresh_token.expose()));
    assert_eq!(fx.store.user(&alice.id).await.unwrap().last_login_at, Some(fx.now()));
}

#[tokio::test]
async fn forged_and_misused_tokens_are_refused() {
    let fx = Fixture::new().await;
    let alice = fx.user("alice", Role::User).await;
    let tokens = login(&fx, &alice).await;
    let claims = claims_for(&fx, &tokens);
    let hs256 = serde_json::json!({ "alg": "HS256", "typ": "JWT", "kid": "k1" });
    // The forging helper is right: with the real key and header, the forged token passes.
    assert!(fx.users.authenticate_access(&forge(hs256.clone(), &claims, Some(&KEY))).await.is_ok());

    let none = forge(serde_json::json!({ "alg": "none", "typ": "JWT", "kid": "k1" }), &claims, None);
    assert_eq!(refused_access(&fx, &none).await, RefusalCode::Malformed, "alg none");
    let none_signed = forge(serde_json::json!({ "alg": "none", "kid": "k1" }), &claims, Some(&KEY));
    assert_eq!(refused_access(&fx, &none_signed).await, RefusalCode::Malformed, "alg none with a signature");
    // Algorithm confusion: a token claiming RS256 (what a confused verifier would check with the
    // HMAC key as an RSA public key, or the reverse) is refused because only HS256 is accepted.
    let rs256 = forge(serde_json::json!({ "alg": "RS256", "typ": "JWT", "kid": "k1" }), &claims, Some(&KEY));
    assert_eq!(refused_access(&fx, &rs256).await, RefusalCode::Malformed, "RS256 header");
    let hs384 = jsonwebtoken::encode(
        &Header { kid: Some("k1".into()), ..Header::new(Algorithm::HS384) },
        &claims,
        &EncodingKey::from_secret(&KEY),
    )
    .unwrap();
    assert_eq!(refused_access(&fx, &hs384).await, RefusalCode::Malformed, "another HMAC algorithm");
    let wrong_key = forge(hs256.clone(), &claims, Some(&[8; 32]));
    assert_eq!(refused_access(&fx, &wrong_key).await, RefusalCode::Malformed, "wrong key");
    let no_kid = forge(serde_json::json!({ "alg": "HS256" }), &claims, Some(&KEY));
    assert_eq!(refused_access(&fx, &no_kid).await, RefusalCode::Malformed, "no kid");
    let unknown_kid = forge(serde_json::json!({ "alg": "HS256", "kid": "k9" }), &claims, Some(&KEY));
    assert_eq!(refused_access(&fx, &unknown_kid).await, RefusalCode::Malformed, "unknown kid");

    for (field, value, why) in [
        ("aud", serde_json::json!("someone-else"), "wrong audience"),
        ("iss", serde_json::json!("evil"), "wrong issuer"),
        ("token_use", serde_json::json!("refresh"), "not an access token"),
        ("nbf", serde_json::json!(fx.now().unix_seconds() + 60), "not yet valid"),
        ("sub", serde_json::json!(fx.admin.id.to_string()), "someone else's session"),
        ("sid", serde_json::json!("ses_0"), "bad session id"),
    ] {
        let mut changed = claims.clone();
        changed[field] = value;
        assert_eq!(
            refused_access(&fx, &forge(hs256.clone(), &changed, Some(&KEY))).await,
            RefusalCode::Malformed,
            "{why}"
        );
    }
    for missing in ["exp", "nbf", "iss", "aud", "sub"] {
        let mut changed = claims.clone();
        changed.as_object_mut().unwrap().remove(missing);
        assert_eq!(
            refused_access(&fx, &forge(hs256.clone(), &changed, Some(&KEY))).await,
            RefusalCode::Malformed,
            "no {missing}"
        );
    }
    // A token minted for another audience by a correctly keyed codec is still refused.
    let other = JwtCodec::new(
        JwtKeys::new("k1", &KEY).unwrap(),
        "tollgate",
        "other-api",
        Duration::from_secs(900),
        Duration::ZERO,
    );
    let (foreign, _) = other.issue(alice.id, tokens.session.id, fx.now()).unwrap();
    assert_eq!(refused_access(&fx, foreign.expose()).await, RefusalCode::Malformed, "other audience");

    // A refresh token is not an access token, and the reverse.
    assert_eq!(refused_access(&fx, tokens.refresh_token.expose()).await, RefusalCode::Malformed);
    let error = fx.users.refresh(tokens.access_token.expose(), None).await.unwrap_err();
    assert_eq!(code(&error), Some(RefusalCode::Malformed));
    let tampered = format!("{}x", tokens.access_token.expose());
    assert_eq!(refused_access(&fx, &tampered).await, RefusalCode::Malformed);
    assert_eq!(refused_access(&fx, &"a".repeat(10_000)).await, RefusalCode::Malformed);
}

#[tokio::test]
async fn access_tokens_expire_after_fifteen_minutes() {
    let fx = Fixture::new().await;
    let alice = fx.user("alice", Role::User).await;
    let tokens = login(&fx, &alice).await;
    fx.advance(899);
    fx.users.authenticate_access(tokens.access_token.expose()).await.unwrap();
    fx.advance(1);
    assert_eq!(refused_access(&fx, tokens.access_token.expose()).await, RefusalCode::Expired);
    // The refresh token still works and brings a fresh access token.
    let renewed = fx.users.refresh(tokens.refresh_token.expose(), None).await.unwrap();
    fx.users.authenticate_access(renewed.access_token.expose()).await.unwrap();
    // A refresh token past its own expiry is refused.
    fx.advance(7 * 86_400);
    let error = fx.users.refresh(renewed.refresh_token.expose(), None).await.unwrap_err();
    assert_eq!(code(&error), Some(RefusalCode::Expired));
}

#[tokio::test]
async fn refresh_rotates_and_a_reused_refresh_token_revokes_the_family() {
    let fx = Fixture::new().await;
    let alice = fx.user("alice", Role::User).await;
    let first = login(&fx, &alice).await;
    fx.advance(60);
    let second = fx.users.refresh(first.refresh_token.expose(), None).await.unwrap();
    assert_ne!(second.refresh_token.expose(), first.refresh_token.expose());
    assert_eq!((second.session.id, second.session.generation), (first.session.id, 2));
    let third = fx.users.refresh(second.refresh_token.expose(), None).await.unwrap();
    fx.users.authenticate_access(third.access_token.expose()).await.unwrap();

    // An attacker replays the first (stolen) refresh token: the whole family dies.
    let attacker_ip = Some("203.0.113.9".parse().unwrap());
    let error = fx.users.refresh(first.refresh_token.expose(), attacker_ip).await.unwrap_err();
    assert_eq!(code(&error), Some(RefusalCode::Revoked));
    assert_eq!(refused_access(&fx, third.access_token.expose()).await, RefusalCode::Revoked);
    let error = fx.users.refresh(third.refresh_token.expose(), None).await.unwrap_err();
    assert_eq!(code(&error), Some(RefusalCode::Revoked));
    let chain = fx.store.audit_chain(0, 1000).await.unwrap();
    let reuse = chain.iter().find(|entry| entry.event.action == "session.reuse_detected").expect("reuse audited");
    assert_eq!(reuse.event.ip, attacker_ip);
    assert_eq!(reuse.event.target, alice.id.to_string());
    // Other sessions of the same user are untouched.
    let other = login(&fx, &alice).await;
    fx.users.authenticate_access(other.access_token.expose()).await.unwrap();
    let unknown = fx.users.refresh("tgr_0000000000000000000000000000000000000000000000000", None).await.unwrap_err();
    assert!(matches!(code(&unknown), Some(RefusalCode::Malformed | RefusalCode::NotFound)));
}

#[tokio::test]
async fn logout_ends_the_session_at_once() {
    let fx = Fixture::new().await;
    let alice = fx.user("alice", Role::User).await;
    let bob = fx.user("bob", Role::User).await;
    let tokens = login(&fx, &alice).await;
    let ended = fx.users.logout(tokens.refresh_token.expose(), None).await.unwrap();
    assert!(ended.revoked_at.is_some());
    assert_eq!(refused_access(&fx, tokens.access_token.expose()).await, RefusalCode::Revoked);
    assert_eq!(
        code(&fx.users.refresh(tokens.refresh_token.expose(), None).await.unwrap_err()),
        Some(RefusalCode::Revoked)
    );
    fx.users.logout(tokens.refresh_token.expose(), None).await.unwrap();

    // Logging out with an access token: revoke its own session; nobody else's.
    let again = login(&fx, &alice).await;
    let context = fx.users.authenticate_access(again.access_token.expose()).await.unwrap();
    let as_bob = fx.users.revoke_session(&Caller::new(bob.principal()), &context.session.id, None).await.unwrap_err();
    assert!(matches!(as_bob, Error::NotFound { .. }), "{as_bob:?}");
    fx.users.authenticate_access(again.access_token.expose()).await.unwrap();
    fx.users.revoke_session(&Caller::new(context.principal.clone()), &context.session.id, None).await.unwrap();
    assert_eq!(refused_access(&fx, again.access_token.expose()).await, RefusalCode::Revoked);
    let sessions = fx.users.list_sessions(&alice.principal(), &alice.id, &PageRequest::default()).await.unwrap();
    assert_eq!(sessions.items.len(), 2);
    assert!(fx.users.list_sessions(&bob.principal(), &alice.id, &PageRequest::default()).await.is_err());
}

#[tokio::test]
async fn suspension_deletion_and_demotion_apply_on_the_next_request() {
    let fx = Fixture::new().await;
    let alice = fx.user("alice", Role::Admin).await;
    let tokens = login(&fx, &alice).await;
    assert_eq!(fx.users.principal_for_access(tokens.access_token.expose()).await.unwrap(), alice.principal());
    fx.users.set_role(&fx.as_admin(), &alice.id, Role::Viewer).await.unwrap();
    let demoted = fx.users.principal_for_access(tokens.access_token.expose()).await.unwrap();
    assert!(matches!(demoted, Principal::User { role: Role::Viewer, .. }), "{demoted:?}");

    fx.users.suspend(&fx.as_admin(), &alice.id, "investigation").await.unwrap();
    assert_eq!(refused_access(&fx, tokens.access_token.expose()).await, RefusalCode::Revoked);
    assert_eq!(
        code(&fx.users.refresh(tokens.refresh_token.expose(), None).await.unwrap_err()),
        Some(RefusalCode::Revoked)
    );
    fx.users.activate(&fx.as_admin(), &alice.id).await.unwrap();
    assert_eq!(refused_access(&fx, tokens.access_token.expose()).await, RefusalCode::Revoked, "sessions stay ended");

    let bob = fx.user("bob", Role::User).await;
    let bobs = login(&fx, &bob).await;
    fx.users.delete(&fx.as_admin(), &bob.id, Some("left")).await.unwrap();
    assert_eq!(refused_access(&fx, bobs.access_token.expose()).await, RefusalCode::Revoked);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_suspend_and_login_leave_no_session_behind() {
    let fx = Arc::new(Fixture::new().await);
    for round in 0..8 {
        let user = fx.user(&format!("racer{round}"), Role::User).await;
        let login = {
            let fx = Arc::clone(&fx);
            let name = user.username.as_str().to_owned();
            tokio::spawn(async move { fx.users.login(&name, presented(PASSWORD), None).await })
        };
        let suspend = {
            let fx = Arc::clone(&fx);
            tokio::spawn(async move { fx.users.suspend(&operator(), &user.id, "race").await })
        };
        let (login, suspend) = (login.await.unwrap(), suspend.await.unwrap());
        suspend.unwrap();
        if let Ok(tokens) = &login {
            assert_eq!(refused_access(&fx, tokens.access_token.expose()).await, RefusalCode::Revoked, "round {round}");
        }
        let sessions = fx.store.list_sessions(&user.id, &PageRequest::first(10)).await.unwrap();
        assert!(sessions.items.iter().all(|session| session.revoked_at.is_some()), "round {round}: {sessions:?}");
    }
}

#[tokio::test]
async fn ended_sessions_are_deleted_once_past_their_retention_and_live_ones_are_kept() {
    let fx = Fixture::new().await;
    let alice = fx.user("alice", Role::User).await;
    let signed_out = login(&fx, &alice).await;
    fx.users.logout(signed_out.refresh_token.expose(), None).await.unwrap();
    let live = login(&fx, &alice).await;
    let retention = Duration::from_secs(3_600);
    assert_eq!(fx.users.purge_ended_sessions(retention).await.unwrap(), 0, "ended just now: kept");
    assert!(!fx.audit_actions().await.contains(&"session.cleanup".to_owned()), "nothing deleted, nothing audited");

    fx.advance(3_601);
    assert_eq!(fx.users.purge_ended_sessions(retention).await.unwrap(), 1);
    let left = fx.users.list_sessions(&alice.principal(), &alice.id, &PageRequest::default()).await.unwrap();
    assert_eq!(left.items.iter().map(|session| session.id).collect::<Vec<_>>(), [live.session.id]);
    fx.users.refresh(live.refresh_token.expose(), None).await.expect("the live session still refreshes");
    let cleanup =
        fx.store.audit_chain(0, 1000).await.unwrap().into_iter().find(|entry| entry.event.action == "session.cleanup");
    let cleanup = cleanup.expect("the deletion is audited").event;
    assert_eq!(cleanup.actor.as_str(), "system");
    assert_eq!(cleanup.after.as_ref().and_then(|after| after["deleted"].as_u64()), Some(1));

    // An operator's cleanup is authorized like token cleanup: a user may not run it.
    let refused = fx.users.cleanup_sessions(&Caller::new(alice.principal()), retention).await.unwrap_err();
    assert!(matches!(refused, Error::Forbidden(_)), "{refused:?}");
    assert_eq!(fx.users.cleanup_sessions(&fx.as_admin(), retention).await.unwrap(), 0);
}
