//! Operating the server: health, metrics, the OpenAPI document, and 5xx answers that never show
//! internals. (The handler timeout is tested beside the middleware, with a handler that never ends.)

mod support;

use axum::http::Method;
use support::Fixture;
use tollgate::Permission;

#[tokio::test]
async fn health_checks_the_database() {
    let fixture = Fixture::new().await;
    let reply = fixture.get("/health", None).await;
    assert_eq!(reply.ok(200)["status"], "ok");
    assert_eq!(reply.json["database"], "ok");
    fixture.close_store().await;
    let reply = fixture.get("/health", None).await;
    let problem = reply.problem(503, "unavailable");
    assert!(!problem.to_string().to_lowercase().contains("pool"), "no driver detail: {problem}");
}

#[tokio::test]
async fn an_unavailable_store_is_503_without_internals() {
    let fixture = Fixture::new().await;
    let (admin, _) = fixture.token("root", Permission::Admin).await;
    // Verified once, the admin token is served from the cache after the database goes away.
    fixture.get("/v1/auth/verify", Some(&admin)).await.ok(200);
    fixture.close_store().await;
    let reply = fixture.get("/v1/tokens", Some(&admin)).await;
    // A store that cannot answer is the service's state, not a bug: retry later.
    let problem = reply.problem(503, "unavailable");
    let text = reply.text().to_lowercase();
    for leak in ["sqlx", "sqlite", "pool", "closed", "select"] {
        assert!(!text.contains(leak), "{leak} leaked: {problem}");
    }
}

#[tokio::test]
async fn metrics_count_requests_verify_outcomes_and_cache_hits() {
    let fixture = Fixture::new().await;
    let (secret, _) = fixture.token("alice", Permission::Standard).await;
    for _ in 0..3 {
        fixture.get("/v1/auth/verify", Some(&secret)).await.ok(200);
    }
    fixture.get("/v1/auth/verify", Some("tg_nope")).await.problem(401, "malformed");
    fixture.get("/nowhere", None).await.problem(404, "route_not_found");
    let reply = fixture.get("/metrics", None).await;
    assert_eq!(reply.status, 200);
    assert!(reply.headers["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = reply.text();
    for expected in [
        r#"tollgate_http_requests_total{route="/v1/auth/verify",method="GET",status="200"} 3"#,
        r#"tollgate_http_requests_total{route="/v1/auth/verify",method="GET",status="401"} 1"#,
        r#"tollgate_http_requests_total{route="unmatched",method="GET",status="404"} 1"#,
        r#"tollgate_http_request_duration_seconds_count{route="/v1/auth/verify",method="GET"} 4"#,
        r#"tollgate_verify_total{code="valid"} 3"#,
        r#"tollgate_verify_total{code="malformed"} 1"#,
        "tollgate_verify_cache_hits_total 2",
        "tollgate_verify_cache_misses_total 1",
        "tollgate_http_requests_in_flight 1",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
}

/// Every path of the contract, as the issue lists it; each must be routed and documented.
const CONTRACT: [(&str, &str); 38] = [
    ("get", "/health"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
    ("get", "/v1/auth/verify"),
    ("post", "/v1/tokens/verify"),
    ("post", "/v1/tokens"),
    ("get", "/v1/tokens"),
    ("get", "/v1/tokens/{id}"),
    ("patch", "/v1/tokens/{id}"),
    ("post", "/v1/tokens/{id}/revoke"),
    ("post", "/v1/tokens/{id}/rotate"),
    ("post", "/v1/users"),
    ("get", "/v1/users"),
    ("get", "/v1/users/{id}"),
    ("patch", "/v1/users/{id}"),
    ("delete", "/v1/users/{id}"),
    ("post", "/v1/users/{id}/suspend"),
    ("post", "/v1/users/{id}/activate"),
    ("post", "/v1/users/{id}/unlock"),
    ("post", "/v1/users/{id}/reset-password"),
    ("post", "/v1/auth/login"),
    ("post", "/v1/auth/refresh"),
    ("post", "/v1/auth/logout"),
    ("get", "/v1/audit"),
    ("get", "/v1/audit/verify"),
    ("post", "/v1/usage"),
    ("get", "/v1/usage"),
    ("get", "/v1/analytics"),
    ("get", "/v1/limits"),
    ("get", "/v1/limits/{kind}/{id}"),
    ("put", "/v1/limits/{kind}/{id}/{name}"),
    ("delete", "/v1/limits/{kind}/{id}/{name}"),
    ("get", "/v1/prices"),
    ("put", "/v1/prices/{provider}/{model}"),
    ("get", "/v1/rate-limits"),
    ("get", "/v1/tokens/{id}/rate-limit"),
    ("put", "/v1/tokens/{id}/rate-limit"),
    ("delete", "/v1/tokens/{id}/rate-limit"),
];

#[tokio::test]
async fn the_openapi_document_covers_every_route() {
    let fixture = Fixture::new().await;
    let reply = fixture.get("/openapi.json", None).await;
    let document = reply.ok(200);
    assert_eq!(document["openapi"], "3.1.0");
    let paths = document["paths"].as_object().unwrap();
    for (method, path) in CONTRACT {
        assert!(paths.get(path).and_then(|item| item.get(method)).is_some(), "{method} {path} undocumented");
    }
    // And every documented operation is routed: no 404 route_not_found, no 405.
    let tok = tollgate::TokenId::generate().to_string();
    let mut operations = 0;
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            operations += 1;
            let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap();
            let concrete = path.replace("{id}", &tok);
            let reply = fixture.send(support::request(method.clone(), &concrete, None, None)).await;
            assert_ne!(reply.json["code"], "route_not_found", "{method} {path}");
            assert_ne!(reply.status, 405, "{method} {path}");
        }
    }
    assert!(operations >= 38);
    // Bearer-protected operations say so.
    assert_eq!(paths["/v1/tokens"]["post"]["security"][0]["bearer"], serde_json::json!([]));
    assert_eq!(paths["/health"]["get"]["security"], serde_json::json!([]));
}
