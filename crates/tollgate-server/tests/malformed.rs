//! Malformed input of every kind answers problem+json 4xx naming the field, never a 5xx or a
//! plain-text rejection.

mod support;

use axum::body::Body;
use axum::http::{Method, Request};
use serde_json::json;
use support::Fixture;
use tollgate::Permission;
use tollgate_server::ServerSettings;

fn raw(method: Method, path: &str, bearer: &str, content_type: Option<&str>, body: impl Into<Body>) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(path).header("authorization", format!("Bearer {bearer}"));
    if let Some(content_type) = content_type {
        builder = builder.header("content-type", content_type);
    }
    builder.body(body.into()).unwrap()
}

/// A name, the request, the expected status and code, and the field the problem must name.
type Case<'a> = (&'a str, Request<Body>, u16, &'a str, Option<&'a str>);

#[tokio::test]
async fn bad_bodies_are_400_415_or_413() {
    let mut settings = ServerSettings::default();
    settings.body_limit = 1024;
    let fixture = Fixture::with_settings(settings, "192.0.2.10:1").await;
    let (admin, _) = fixture.token("root", Permission::Admin).await;
    let json = Some("application/json");
    let post =
        |content_type: Option<&str>, body: &str| raw(Method::POST, "/v1/tokens", &admin, content_type, body.to_owned());
    let cases: Vec<Case> = vec![
        ("syntax", post(json, r#"{"name": "x","#), 400, "invalid_body", None),
        ("trailing", post(json, r#"{"name": "x", "owner": "a"} {}"#), 400, "invalid_body", None),
        ("array", post(json, r#"[{"name": "x"}]"#), 400, "invalid_body", None),
        ("empty", post(json, ""), 400, "invalid_body", None),
        ("not utf-8", raw(Method::POST, "/v1/tokens", &admin, json, vec![b'{', 0xff, b'}']), 400, "invalid_body", None),
        ("no content type", post(None, r#"{"name": "x", "owner": "a"}"#), 415, "unsupported_media_type", None),
        ("text/plain", post(Some("text/plain"), r#"{"name": "x", "owner": "a"}"#), 415, "unsupported_media_type", None),
        (
            "too large",
            post(json, &format!(r#"{{"name": "{}", "owner": "a"}}"#, "x".repeat(2048))),
            413,
            "body_too_large",
            None,
        ),
        ("missing field", post(json, r#"{"owner": "a"}"#), 400, "invalid_field", Some("name")),
        // An unknown key is not repeated back (it may be a secret pasted in the wrong place).
        (
            "unknown field",
            post(json, r#"{"name": "x", "owner": "a", "admin": true}"#),
            400,
            "invalid_field",
            Some("body"),
        ),
        ("wrong type", post(json, r#"{"name": 5, "owner": "a"}"#), 400, "invalid_field", Some("name")),
        ("empty name", post(json, r#"{"name": " ", "owner": "a"}"#), 400, "invalid_field", Some("name")),
        ("nul", post(json, r#"{"name": "a\u0000b", "owner": "a"}"#), 400, "invalid_field", Some("name")),
        (
            "permission",
            post(json, r#"{"name": "x", "owner": "a", "permission": "root"}"#),
            400,
            "invalid_field",
            Some("permission"),
        ),
        (
            "scope",
            post(json, r#"{"name": "x", "owner": "a", "scopes": ["ok", "Not OK"]}"#),
            400,
            "invalid_field",
            Some("scopes[1]"),
        ),
        (
            "cidr",
            post(json, r#"{"name": "x", "owner": "a", "ip_allow": ["10.0.0.0/33"]}"#),
            400,
            "invalid_field",
            Some("ip_allow"),
        ),
        (
            "tool",
            post(json, r#"{"name": "x", "owner": "a", "allowed_tools": ["A B"]}"#),
            400,
            "invalid_field",
            Some("allowed_tools"),
        ),
        (
            "time",
            post(json, r#"{"name": "x", "owner": "a", "expires_at": "tomorrow"}"#),
            400,
            "invalid_field",
            Some("expires_at"),
        ),
        (
            "negative",
            post(json, r#"{"name": "x", "owner": "a", "expires_in_seconds": -1}"#),
            400,
            "invalid_field",
            Some("expires_in_seconds"),
        ),
        (
            "zero",
            post(json, r#"{"name": "x", "owner": "a", "expires_in_seconds": 0}"#),
            400,
            "invalid_field",
            Some("expires_in_seconds"),
        ),
        (
            "huge",
            post(json, r#"{"name": "x", "owner": "a", "expires_in_seconds": 1e30}"#),
            400,
            "invalid_field",
            Some("expires_in_seconds"),
        ),
        (
            "overflow",
            post(json, r#"{"name": "x", "owner": "a", "expires_in_seconds": 18446744073709551616}"#),
            400,
            "invalid_field",
            Some("expires_in_seconds"),
        ),
    ];
    for (name, request, status, code, field) in cases {
        let reply = fixture.send(request).await;
        let problem = reply.problem(status, code);
        if let Some(field) = field {
            assert_eq!(problem["field"], field, "{name}: {}", reply.text());
        }
    }
    let listed = fixture.get("/v1/tokens?status=all", Some(&admin)).await;
    assert_eq!(listed.json["items"].as_array().unwrap().len(), 1, "nothing was stored");
}

#[tokio::test]
async fn bad_queries_paths_and_routes_are_4xx() {
    let fixture = Fixture::new().await;
    let (admin, _) = fixture.token("root", Permission::Admin).await;
    let user = tollgate::UserId::generate();
    let cases: Vec<(&str, u16, &str, Option<&str>)> = vec![
        ("/v1/tokens?limit=abc", 400, "invalid_field", Some("limit")),
        ("/v1/tokens?limit=-1", 400, "invalid_field", Some("limit")),
        ("/v1/tokens?limit=99999999999", 400, "invalid_field", Some("limit")),
        ("/v1/tokens?limit=5000", 400, "invalid_field", Some("limit")),
        ("/v1/tokens?status=deleted", 400, "invalid_field", Some("status")),
        ("/v1/tokens?owner=", 400, "invalid_field", Some("owner")),
        ("/v1/tokens?colour=red", 400, "invalid_field", Some("query")),
        ("/v1/tokens?limit=1&limit=2", 400, "invalid_field", Some("limit")),
        ("/v1/tokens/nope", 400, "invalid_field", Some("id")),
        ("/v1/tokens/tok_0192F3A4B5C6D7E8F90A1B2C3D4E5F60", 400, "invalid_field", Some("id")),
        ("/v1/tokens/%FF", 400, "invalid_field", Some("id")),
        ("/v1/nothing-here", 404, "route_not_found", None),
    ];
    let mut cases = cases;
    let user_path = format!("/v1/tokens/{user}");
    cases.push((&user_path, 400, "invalid_field", Some("id")));
    for (path, status, code, field) in cases {
        let reply = fixture.get(path, Some(&admin)).await;
        let problem = reply.problem(status, code);
        if let Some(field) = field {
            assert_eq!(problem["field"], field, "{path}: {}", reply.text());
        }
    }
    let wrong_method = fixture.send(raw(Method::DELETE, "/v1/tokens", &admin, None, Body::empty())).await;
    wrong_method.problem(405, "method_not_allowed");
    let allow = wrong_method.headers["allow"].to_str().unwrap().to_owned();
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
}

#[tokio::test]
async fn bad_patch_and_action_bodies_name_the_field() {
    let fixture = Fixture::new().await;
    let (admin, id) = fixture.token("root", Permission::Admin).await;
    let patch = format!("/v1/tokens/{id}");
    let reply = fixture.patch(&patch, Some(&admin), json!({ "owner": "mallory" })).await;
    let problem = reply.problem(400, "invalid_field");
    assert_eq!(problem["field"], "body", "owner cannot be patched");
    assert!(problem["detail"].as_str().unwrap().contains("expected one of"), "{problem}");
    let reply = fixture.patch(&patch, Some(&admin), json!({ "ip_allow": "10.0.0.0/8" })).await;
    assert_eq!(reply.problem(400, "invalid_field")["field"], "ip_allow");
    let rotate = format!("/v1/tokens/{id}/rotate");
    let reply = fixture.post(&rotate, Some(&admin), json!({ "grace_seconds": "soon" })).await;
    assert_eq!(reply.problem(400, "invalid_field")["field"], "grace_seconds");
    let revoke = format!("/v1/tokens/{id}/revoke");
    let reply = fixture.send(raw(Method::POST, &revoke, &admin, Some("text/plain"), "because")).await;
    reply.problem(415, "unsupported_media_type");
    let reply = fixture.post(&revoke, Some(&admin), json!({ "reason": "a\u{0}b" })).await;
    assert_eq!(reply.problem(400, "invalid_field")["field"], "reason");
    fixture.get("/v1/auth/verify", Some(&admin)).await.ok(200);
}
