//! `GET /v1/auth/verify` and `POST /v1/tokens/verify`: every refusal code with its status, the
//! client address (socket peer, trusted proxies) and the tool header.

mod support;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request};
use serde_json::json;
use support::{Fixture, request};
use tollgate::{IpAllowList, NewToken, Permission, TokenName, ToolList};
use tollgate_server::{ServerSettings, TrustedProxies};

async fn restricted(fixture: &Fixture, ip_allow: &[&str], tools: &[&str]) -> NewToken {
    let mut token = NewToken::new(TokenName::parse("gw").unwrap(), fixture.owner("alice").await);
    token.ip_allow = IpAllowList::parse(ip_allow).unwrap();
    token.allowed_tools = ToolList::parse(tools).unwrap();
    token
}

fn with_tool(secret: &str, tool: &str) -> Request<Body> {
    let mut request = request(Method::GET, "/v1/auth/verify", Some(secret), None);
    request.headers_mut().insert("x-tollgate-tool", tool.parse().unwrap());
    request
}

#[tokio::test]
async fn a_valid_token_answers_its_context() {
    let fixture = Fixture::new().await;
    let (secret, id) = fixture.token("alice", Permission::Standard).await;
    let reply = fixture.get("/v1/auth/verify", Some(&secret)).await;
    let context = reply.ok(200);
    assert_eq!(context["valid"], true);
    assert_eq!(context["code"], "valid");
    assert_eq!(context["token_id"], id.to_string());
    assert_eq!(context["owner"], fixture.owner("alice").await.to_string());
    assert_eq!(context["owner_name"], "alice");
    assert_eq!(context["permission"], "standard");
    assert!(context["expires_at"].is_null());
    assert!(context["scopes"].is_array());
    assert!(!reply.text().contains(&secret));
}

#[tokio::test]
async fn the_answer_follows_changes_to_the_token_and_its_owner_at_once() {
    // The body of a valid verify is kept per token record: a rename, a demotion or a rotation
    // grace must show on the very next verify, by either endpoint.
    let fixture = Fixture::new().await;
    let (admin, _) = fixture.token("ops", Permission::Admin).await;
    let (gateway, _) = fixture.verifier("gateway").await;
    let bob = fixture.user("bob", tollgate::Role::User).await;
    let (secret, id) = fixture.user_token(bob, Permission::Standard).await;
    let by_gateway = || fixture.post("/v1/tokens/verify", Some(&gateway), json!({ "token": secret }));
    for _ in 0..2 {
        assert_eq!(fixture.get("/v1/auth/verify", Some(&secret)).await.ok(200)["permission"], "standard");
        assert_eq!(by_gateway().await.ok(200)["name"], "mine");
    }

    fixture.patch(&format!("/v1/users/{bob}"), Some(&admin), json!({ "role": "viewer" })).await.ok(200);
    assert_eq!(fixture.get("/v1/auth/verify", Some(&secret)).await.ok(200)["permission"], "read_only");
    assert_eq!(by_gateway().await.ok(200)["permission"], "read_only");

    fixture.patch(&format!("/v1/tokens/{id}"), Some(&admin), json!({ "name": "renamed" })).await.ok(200);
    assert_eq!(fixture.get("/v1/auth/verify", Some(&secret)).await.ok(200)["name"], "renamed");
    assert_eq!(by_gateway().await.ok(200)["name"], "renamed");

    let rotated = fixture.post(&format!("/v1/tokens/{id}/rotate"), Some(&admin), json!({ "grace_seconds": 60 })).await;
    let fresh = rotated.ok(201)["token"].as_str().expect("the new secret").to_owned();
    let old = fixture.get("/v1/auth/verify", Some(&secret)).await;
    assert_eq!(old.ok(200)["via_previous_secret"], true);
    let new = fixture.get("/v1/auth/verify", Some(&fresh)).await;
    assert_eq!(new.ok(200)["via_previous_secret"], false);
}

#[tokio::test]
async fn every_refusal_has_its_code_and_status() {
    let fixture = Fixture::new().await;
    let (revoked, revoked_id) = fixture.token("alice", Permission::Standard).await;
    fixture.tokens.revoke(&tollgate::Principal::Operator, &revoked_id, None).await.unwrap();
    let mut expiring = NewToken::new(TokenName::parse("short").unwrap(), fixture.owner("alice").await);
    expiring.expires_at = Some(support::START.saturating_add(Duration::from_secs(10)));
    let (expired, _) = fixture.create(expiring).await;
    fixture.clock.advance(Duration::from_secs(11));
    let (elsewhere, _) = fixture.create(restricted(&fixture, &["10.0.0.0/8"], &[]).await).await;
    let (tool_bound, _) = fixture.create(restricted(&fixture, &[], &["search"]).await).await;
    let (valid, _) = fixture.token("alice", Permission::Standard).await;
    let unknown = tollgate::TokenSecret::generate(&tollgate::TokenPrefix::default()).unwrap();
    let mut flipped = valid.clone().into_bytes();
    let last = flipped.len() - 1;
    flipped[last] = if flipped[last] == b'a' { b'b' } else { b'a' };
    let flipped = String::from_utf8(flipped).unwrap();

    let cases: [(&str, Request<Body>, u16, &str); 9] = [
        ("garbage", request(Method::GET, "/v1/auth/verify", Some("not-a-token"), None), 401, "malformed"),
        ("bad checksum", request(Method::GET, "/v1/auth/verify", Some(&flipped), None), 401, "malformed"),
        ("unknown", request(Method::GET, "/v1/auth/verify", Some(unknown.expose()), None), 401, "not_found"),
        ("revoked", request(Method::GET, "/v1/auth/verify", Some(&revoked), None), 401, "revoked"),
        ("expired", request(Method::GET, "/v1/auth/verify", Some(&expired), None), 401, "expired"),
        ("ip", request(Method::GET, "/v1/auth/verify", Some(&elsewhere), None), 403, "ip_not_allowed"),
        ("no tool", request(Method::GET, "/v1/auth/verify", Some(&tool_bound), None), 403, "tool_not_allowed"),
        ("wrong tool", with_tool(&tool_bound, "browse"), 403, "tool_not_allowed"),
        ("no header", request(Method::GET, "/v1/auth/verify", None, None), 401, "missing_credential"),
    ];
    for (name, request, status, code) in cases {
        let reply = fixture.send(request).await;
        assert_eq!(reply.json["code"], code, "{name}: {}", reply.text());
        reply.problem(status, code);
        if status == 401 {
            assert!(reply.headers["www-authenticate"].to_str().unwrap().starts_with("Bearer"), "{name}");
        }
    }
    fixture.send(with_tool(&tool_bound, "search")).await.ok(200);
    let mut basic = request(Method::GET, "/v1/auth/verify", None, None);
    basic.headers_mut().insert("authorization", "Basic dXNlcjpwYXNz".parse().unwrap());
    fixture.send(basic).await.problem(401, "invalid_credential");
    let long_tool = with_tool(&tool_bound, &"t".repeat(129));
    assert_eq!(fixture.send(long_tool).await.problem(400, "invalid_field")["field"], "X-Tollgate-Tool");
}

#[tokio::test]
async fn the_client_address_is_the_peer_unless_a_trusted_proxy_forwards() {
    let forwarded = |secret: &str| {
        let mut request = request(Method::GET, "/v1/auth/verify", Some(secret), None);
        request.headers_mut().insert("x-forwarded-for", "203.0.113.7".parse().unwrap());
        request
    };

    // Peer 10.0.0.5 is not trusted: its X-Forwarded-For is ignored.
    let untrusted = Fixture::with_settings(ServerSettings::default(), "10.0.0.5:1234").await;
    let (secret, _) = untrusted.create(restricted(&untrusted, &["203.0.113.0/24"], &[]).await).await;
    untrusted.send(forwarded(&secret)).await.problem(403, "ip_not_allowed");

    let mut settings = ServerSettings::default();
    settings.trusted_proxies = TrustedProxies::parse(&["10.0.0.0/8"]).unwrap();
    let behind_proxy = Fixture::with_settings(settings, "10.0.0.5:1234").await;
    let (secret, _) = behind_proxy.create(restricted(&behind_proxy, &["203.0.113.0/24"], &[]).await).await;
    behind_proxy.send(forwarded(&secret)).await.ok(200);
    behind_proxy.get("/v1/auth/verify", Some(&secret)).await.problem(403, "ip_not_allowed");
}

#[tokio::test]
async fn gateways_verify_callers_and_always_get_200() {
    let fixture = Fixture::new().await;
    let (gateway, _) = fixture.verifier("gateway").await;
    let (caller, caller_id) = fixture.token("alice", Permission::Standard).await;
    let (office, _) = fixture.create(restricted(&fixture, &["203.0.113.0/24"], &["search"]).await).await;
    let (revoked, revoked_id) = fixture.token("bob", Permission::Standard).await;
    fixture.tokens.revoke(&tollgate::Principal::Operator, &revoked_id, None).await.unwrap();

    let verdict = fixture.post("/v1/tokens/verify", Some(&gateway), json!({ "token": caller })).await;
    let verdict = verdict.ok(200);
    assert_eq!((verdict["valid"].clone(), verdict["code"].clone()), (json!(true), json!("valid")));
    assert_eq!(verdict["token_id"], caller_id.to_string());

    let cases = [
        (json!({ "token": "garbage" }), "malformed"),
        (json!({ "token": revoked }), "revoked"),
        (json!({ "token": office, "ip": "198.51.100.1", "tool": "search" }), "ip_not_allowed"),
        (json!({ "token": office, "ip": "203.0.113.9", "tool": "browse" }), "tool_not_allowed"),
        (json!({ "token": office, "ip": "203.0.113.9", "tool": "search", "cost": 1 }), "valid"),
    ];
    for (body, code) in cases {
        let reply = fixture.post("/v1/tokens/verify", Some(&gateway), body.clone()).await;
        let verdict = reply.ok(200);
        assert_eq!(verdict["code"], code, "{body}");
        assert_eq!(verdict["valid"], code == "valid");
        assert!(!reply.text().contains(body["token"].as_str().unwrap()), "the token is never echoed");
    }
    let bad_ip = fixture.post("/v1/tokens/verify", Some(&gateway), json!({ "token": caller, "ip": "nope" })).await;
    assert_eq!(bad_ip.problem(400, "invalid_field")["field"], "ip");
    let bad_cost = fixture.post("/v1/tokens/verify", Some(&gateway), json!({ "token": caller, "cost": 0 })).await;
    assert_eq!(bad_cost.problem(400, "invalid_field")["field"], "cost");
}

#[tokio::test]
async fn verifying_others_needs_the_scope_or_admin() {
    let fixture = Fixture::new().await;
    let (caller, _) = fixture.token("alice", Permission::Standard).await;
    let (admin, _) = fixture.token("root", Permission::Admin).await;
    let (plain, _) = fixture.token("gateway", Permission::Standard).await;
    let body = json!({ "token": caller });
    fixture.post("/v1/tokens/verify", Some(&plain), body.clone()).await.problem(403, "forbidden");
    fixture.post("/v1/tokens/verify", Some(&admin), body.clone()).await.ok(200);
    fixture.post("/v1/tokens/verify", None, body).await.problem(401, "missing_credential");
}
