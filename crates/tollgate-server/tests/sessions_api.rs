//! Sessions over HTTP: login, refresh with rotation and reuse detection, logout, the one login
//! refusal, the per-address throttle, and suspension taking effect on the very next request.

mod support;

use std::time::Duration;

use axum::http::Method;
use serde_json::json;
use support::{Fixture, PASSWORD, request};
use tollgate::{Permission, Role};
use tollgate_server::ServerSettings;

#[tokio::test]
async fn login_refresh_logout() {
    let fixture = Fixture::new().await;
    let alice = fixture.user("alice", Role::User).await;
    let login = fixture.login("alice").await;
    assert_eq!(login["token_type"], "Bearer");
    assert_eq!(login["expires_in"], 900);
    assert_eq!(login["user_id"], alice.to_string());
    let access = login["access_token"].as_str().unwrap();
    let me = format!("/v1/users/{alice}");
    assert_eq!(fixture.get(&me, Some(access)).await.ok(200)["username"], "alice");

    // Refresh rotates: a new pair, and the access token works.
    let first_refresh = login["refresh_token"].as_str().unwrap();
    let reply = fixture.post("/v1/auth/refresh", None, json!({ "refresh_token": first_refresh })).await;
    assert_eq!(reply.headers["cache-control"], "no-store");
    let rotated = reply.ok(200).clone();
    let second_refresh = rotated["refresh_token"].as_str().unwrap();
    assert_ne!(second_refresh, first_refresh);
    fixture.get(&me, Some(rotated["access_token"].as_str().unwrap())).await.ok(200);

    // Logout ends the session: its refresh and access tokens are refused at once.
    fixture.post("/v1/auth/logout", None, json!({ "refresh_token": second_refresh })).await.ok(204);
    fixture.get(&me, Some(rotated["access_token"].as_str().unwrap())).await.problem(401, "revoked");
    fixture.post("/v1/auth/refresh", None, json!({ "refresh_token": second_refresh })).await.problem(401, "revoked");
}

#[tokio::test]
async fn a_reused_refresh_token_revokes_the_whole_family() {
    let fixture = Fixture::new().await;
    fixture.user("alice", Role::User).await;
    let login = fixture.login("alice").await;
    let stolen = login["refresh_token"].as_str().unwrap();
    let rotated = fixture.post("/v1/auth/refresh", None, json!({ "refresh_token": stolen })).await.ok(200).clone();
    // The used token again: refused, and the legitimate holder's newer tokens die with it.
    fixture.post("/v1/auth/refresh", None, json!({ "refresh_token": stolen })).await.problem(401, "revoked");
    let newer = rotated["refresh_token"].as_str().unwrap();
    fixture.post("/v1/auth/refresh", None, json!({ "refresh_token": newer })).await.problem(401, "revoked");
    fixture.get("/v1/audit", Some(rotated["access_token"].as_str().unwrap())).await.problem(401, "revoked");
    // Unknown and garbage refresh tokens are refused too.
    fixture.post("/v1/auth/refresh", None, json!({ "refresh_token": "nonsense" })).await.problem(401, "malformed");
}

#[tokio::test]
async fn every_account_refusal_is_the_same_401() {
    let fixture = Fixture::new().await;
    let (_, admin) = fixture.user_jwt("root", Role::Admin).await;
    let bob = fixture.user("bob", Role::User).await;
    fixture.post(&format!("/v1/users/{bob}/suspend"), Some(&admin), json!({ "reason": "left" })).await.ok(200);
    fixture.user("carol", Role::User).await;
    let attempts = [
        json!({ "username": "nobody", "password": PASSWORD }),
        json!({ "username": "carol", "password": "wrong password!" }),
        json!({ "username": "bob", "password": PASSWORD }),
        json!({ "email": "nobody@example.com", "password": PASSWORD }),
    ];
    let mut details = Vec::new();
    for body in attempts {
        let reply = fixture.post("/v1/auth/login", None, body.clone()).await;
        details.push(reply.problem(401, "invalid_credentials")["detail"].clone());
        assert!(!reply.text().contains(PASSWORD), "{body}");
    }
    details.dedup();
    assert_eq!(details.len(), 1, "{details:?}");
    // Email login works for a real user.
    let reply =
        fixture.post("/v1/auth/login", None, json!({ "email": "CAROL@example.com", "password": PASSWORD })).await;
    assert!(reply.ok(200)["access_token"].is_string());
}

#[tokio::test]
async fn too_many_failures_from_one_address_are_throttled() {
    let fixture = Fixture::new().await;
    fixture.user("alice", Role::User).await;
    let wrong = json!({ "username": "someone", "password": "not the password" });
    for _ in 0..20 {
        fixture.post("/v1/auth/login", None, wrong.clone()).await.problem(401, "invalid_credentials");
    }
    let reply = fixture.post("/v1/auth/login", None, json!({ "username": "alice", "password": PASSWORD })).await;
    reply.problem(429, "rate_limited");
    let retry: u64 = reply.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry >= 1, "{retry}");
}

#[tokio::test]
async fn a_suspended_users_jwt_and_token_are_refused_on_the_next_request() {
    let fixture = Fixture::new().await;
    let (_, admin) = fixture.user_jwt("root", Role::Admin).await;
    let (bob, bob_jwt) = fixture.user_jwt("bob", Role::User).await;
    let (bob_token, _) = fixture.user_token(bob, Permission::Standard).await;
    let me = format!("/v1/users/{bob}");
    fixture.get(&me, Some(&bob_jwt)).await.ok(200);
    fixture.get("/v1/tokens", Some(&bob_token)).await.ok(200);
    fixture.post(&format!("{me}/suspend"), Some(&admin), json!({ "reason": "abuse" })).await.ok(200);
    fixture.get(&me, Some(&bob_jwt)).await.problem(401, "revoked");
    fixture.get("/v1/tokens", Some(&bob_token)).await.problem(401, "revoked");
    fixture
        .post("/v1/auth/login", None, json!({ "username": "bob", "password": PASSWORD }))
        .await
        .problem(401, "invalid_credentials");
    // A forged or mangled JWT is malformed, not a server error.
    fixture.get(&me, Some("eyJhbGciOiJIUzI1NiJ9.e30.c2ln")).await.problem(401, "malformed");
}

#[tokio::test]
async fn malformed_session_bodies_name_the_field() {
    let fixture = Fixture::new().await;
    let cases = [
        ("/v1/auth/login", json!({ "password": PASSWORD }), "username"),
        ("/v1/auth/login", json!({ "username": "a", "email": "a@example.com", "password": PASSWORD }), "username"),
        ("/v1/auth/login", json!({ "username": "alice" }), "password"),
        ("/v1/auth/login", json!({ "username": "alice", "password": 5 }), "password"),
        ("/v1/auth/login", json!({ "username": "alice", "password": PASSWORD, "otp": 1 }), "body"),
        ("/v1/auth/refresh", json!({}), "refresh_token"),
        ("/v1/auth/logout", json!({ "refresh_token": null }), "refresh_token"),
    ];
    for (path, body, field) in cases {
        let reply = fixture.post(path, None, body.clone()).await;
        assert_eq!(reply.problem(400, "invalid_field")["field"], field, "{path} {body}");
    }
    let mut no_type = request(Method::POST, "/v1/auth/login", None, None);
    *no_type.body_mut() = axum::body::Body::from(r#"{"username":"a","password":"b"}"#);
    fixture.send(no_type).await.problem(415, "unsupported_media_type");
}

#[tokio::test]
async fn users_list_and_end_their_sessions_and_change_their_password() {
    let fixture = Fixture::new().await;
    let alice = fixture.user("alice", Role::User).await;
    let bob = fixture.user("bob", Role::User).await;
    let (admin, _) = fixture.token("root", Permission::Admin).await;
    let first = fixture.login("alice").await;
    let second = fixture.login("alice").await;
    let access = first["access_token"].as_str().unwrap().to_owned();

    let mine = fixture.get("/v1/me/sessions", Some(&access)).await.ok(200).clone();
    assert_eq!(mine["items"].as_array().unwrap().len(), 2);
    let listed = fixture.get(&format!("/v1/users/{alice}/sessions"), Some(&admin)).await.ok(200).clone();
    assert_eq!(listed["items"], mine["items"], "an admin sees the same sessions");
    fixture.get(&format!("/v1/users/{bob}/sessions"), Some(&access)).await.problem(403, "forbidden");

    // Ending the second session refuses its access token at once; bob cannot end alice's.
    let session = second["session_id"].as_str().unwrap();
    let bob_login = fixture.login("bob").await;
    let bob_access = bob_login["access_token"].as_str().unwrap();
    let path = format!("/v1/sessions/{session}/revoke");
    fixture.post(&path, Some(bob_access), json!({})).await.problem(404, "session_not_found");
    let ended = fixture.post(&path, Some(&access), json!({ "reason": "lost laptop" })).await.ok(200).clone();
    assert_eq!(ended["revoke_reason"], "lost laptop");
    let second_access = second["access_token"].as_str().unwrap();
    fixture.get(&format!("/v1/users/{alice}"), Some(second_access)).await.problem(401, "revoked");

    // Changing one's password proves the current one and ends every session.
    let wrong = json!({ "current_password": "not the password at all", "new_password": "a brand new passphrase" });
    fixture.post("/v1/me/password", Some(&access), wrong).await.problem(401, "invalid_credentials");
    let change = json!({ "current_password": PASSWORD, "new_password": "a brand new passphrase" });
    fixture.post("/v1/me/password", Some(&access), change.clone()).await.ok(204);
    fixture.get("/v1/me/sessions", Some(&access)).await.problem(401, "revoked");
    let login = json!({ "username": "alice", "password": "a brand new passphrase" });
    fixture.post("/v1/auth/login", None, login).await.ok(200);
    // A token is not the user: it cannot change the password.
    fixture.post("/v1/me/password", Some(&admin), change).await.problem(403, "forbidden");
}

#[tokio::test]
async fn housekeeping_deletes_sessions_that_ended_past_the_retention() {
    let mut settings = ServerSettings::default();
    settings.session_retention = Duration::from_secs(86_400);
    let fixture = Fixture::with_settings(settings, "192.0.2.10:40000").await;
    fixture.user("alice", Role::User).await;
    let ended = fixture.login("alice").await;
    let kept = fixture.login("alice").await;
    fixture.post("/v1/auth/logout", None, json!({ "refresh_token": ended["refresh_token"] })).await.ok(204);

    tollgate_server::housekeeping(&fixture.state).await;
    let access = kept["access_token"].as_str().unwrap();
    let mine = fixture.get("/v1/me/sessions", Some(access)).await.ok(200).clone();
    assert_eq!(mine["items"].as_array().unwrap().len(), 2, "ended within the retention: still listed");

    fixture.clock.advance(Duration::from_secs(86_401));
    tollgate_server::housekeeping(&fixture.state).await;
    let renewed = fixture.post("/v1/auth/refresh", None, json!({ "refresh_token": kept["refresh_token"] })).await;
    let access = renewed.ok(200)["access_token"].as_str().unwrap().to_owned();
    let mine = fixture.get("/v1/me/sessions", Some(&access)).await.ok(200).clone();
    let ids: Vec<_> = mine["items"].as_array().unwrap().iter().map(|session| session["id"].clone()).collect();
    assert_eq!(ids, [kept["session_id"].clone()], "only the live session is left");
}
