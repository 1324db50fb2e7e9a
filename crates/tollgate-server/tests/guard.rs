//! The guard layer as another application uses it: the router of `examples/guard`, driven in
//! process. Refusals carry the same problem+json codes and statuses as the control API.

mod support;

#[path = "../examples/guard/app.rs"]
mod guard_app;

use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::Request;
use tollgate::{IpAllowList, NewToken, Permission, TokenName, ToolList};
use tower::ServiceExt as _;

async fn call(router: &axum::Router, path: &str, bearer: Option<&str>) -> (u16, String, serde_json::Value) {
    let mut builder = Request::get(path);
    if let Some(bearer) = bearer {
        builder = builder.header("authorization", format!("Bearer {bearer}"));
    }
    let response = router.clone().oneshot(builder.body(Body::empty()).unwrap()).await.unwrap();
    let status = response.status().as_u16();
    let content_type =
        response.headers().get("content-type").map(|value| value.to_str().unwrap().to_owned()).unwrap_or_default();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
    let json =
        serde_json::from_slice(&body).unwrap_or(serde_json::Value::String(String::from_utf8_lossy(&body).into()));
    (status, content_type, json)
}

#[tokio::test]
async fn the_example_app_admits_valid_tokens_and_refuses_the_rest() {
    let fixture = support::Fixture::new().await;
    let peer: std::net::SocketAddr = "192.0.2.10:5555".parse().unwrap();
    let router = guard_app::app(fixture.tokens.clone()).layer(MockConnectInfo(peer));

    let (plain, plain_id) = fixture.token("alice", Permission::Standard).await;
    let mut search_only = NewToken::new(TokenName::parse("s").unwrap(), fixture.owner("bob").await);
    search_only.allowed_tools = ToolList::parse(&["search"]).unwrap();
    let (search_only, _) = fixture.create(search_only).await;
    let mut office = NewToken::new(TokenName::parse("o").unwrap(), fixture.owner("carol").await);
    office.ip_allow = IpAllowList::parse(&["203.0.113.0/24"]).unwrap();
    let (office, _) = fixture.create(office).await;
    let (revoked, revoked_id) = fixture.token("dave", Permission::Standard).await;
    fixture.tokens.revoke(&tollgate::Principal::Operator, &revoked_id, None).await.unwrap();

    let (status, _, body) = call(&router, "/", None).await;
    assert_eq!(status, 200, "{body}");

    let (status, _, body) = call(&router, "/me", Some(&plain)).await;
    assert_eq!(status, 200);
    assert_eq!(body.as_str().unwrap(), format!("hello, alice ({plain_id})\n"));
    let (status, _, body) = call(&router, "/search", Some(&search_only)).await;
    assert_eq!((status, body["searched_for"].as_str()), (200, Some("bob")));

    let refusals = [
        ("/me", None, 401, "missing_credential"),
        ("/me", Some("tg_garbage"), 401, "malformed"),
        ("/me", Some(revoked.as_str()), 401, "revoked"),
        ("/me", Some(search_only.as_str()), 403, "tool_not_allowed"),
        ("/search", Some(office.as_str()), 403, "ip_not_allowed"),
    ];
    for (path, bearer, status, code) in refusals {
        let (got, content_type, body) = call(&router, path, bearer).await;
        assert_eq!((got, body["code"].as_str()), (status, Some(code)), "{path} {code}");
        assert_eq!(content_type, tollgate_server::PROBLEM_JSON);
    }
}

#[tokio::test]
async fn a_route_without_the_layer_cannot_pretend_to_be_guarded() {
    use axum::routing::get;
    async fn handler(tollgate_server::VerifiedToken(context): tollgate_server::VerifiedToken) -> String {
        context.token_id.to_string()
    }
    let router = axum::Router::new().route("/oops", get(handler));
    let (status, _, body) = call(&router, "/oops", Some("tg_whatever")).await;
    assert_eq!((status, body["code"].as_str()), (500, Some("internal")));
}
