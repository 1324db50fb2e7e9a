//! Token rate limits over HTTP: admins set, read, list and remove them; the limit takes effect on the
//! token's next request (the burst passes, the one after is 429 `rate_limited` with `Retry-After`);
//! changes are audited; non-admins are refused; bad bodies name the field.

mod support;

use serde_json::json;
use support::Fixture;
use tollgate::{Permission, Role, TokenId};

const BURST: u64 = 3;

#[tokio::test]
async fn a_rate_limit_set_over_http_refuses_the_request_after_the_burst() {
    let fixture = Fixture::new().await;
    let (admin, _) = fixture.token("root", Permission::Admin).await;
    let (alice, alice_id) = fixture.token("alice", Permission::Standard).await;
    let path = format!("/v1/tokens/{alice_id}/rate-limit");

    // One a minute sustained, so nothing refills while the test runs: exactly BURST pass.
    let set = fixture.put(&path, Some(&admin), json!({ "requests_per_minute": 1, "burst": BURST })).await;
    let set = set.ok(200).clone();
    assert_eq!(
        (set["token_id"].clone(), set["requests_per_minute"].clone(), set["burst"].clone()),
        (json!(alice_id.to_string()), json!(1), json!(BURST)),
        "{set}"
    );
    for n in 1..=BURST {
        let reply = fixture.get("/v1/auth/verify", Some(&alice)).await;
        reply.ok(200);
        assert_eq!(reply.headers["ratelimit-limit"], BURST.to_string());
        assert_eq!(reply.headers["ratelimit-remaining"], (BURST - n).to_string());
    }
    let refused = fixture.get("/v1/auth/verify", Some(&alice)).await;
    refused.problem(429, "rate_limited");
    let retry_after: u64 = refused.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");

    // Read back (the owner's own reads are requests too, so read as admin), listed, audited.
    assert_eq!(fixture.get(&path, Some(&admin)).await.ok(200)["burst"], BURST);
    let listed = fixture.get("/v1/rate-limits", Some(&admin)).await.ok(200).clone();
    assert_eq!(listed["items"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed["items"][0]["token_id"], alice_id.to_string());
    let audit = fixture.get(&format!("/v1/audit?target={alice_id}"), Some(&admin)).await.ok(200).clone();
    let actions: Vec<&str> = audit["items"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert!(actions.contains(&"rate_limit.set"), "{actions:?}");

    // Removed: the token is unlimited again at once.
    assert_eq!(fixture.delete(&path, Some(&admin)).await.ok(200)["requests_per_minute"], 1);
    fixture.get("/v1/auth/verify", Some(&alice)).await.ok(200);
    fixture.get(&path, Some(&admin)).await.problem(404, "rate_limit_not_found");
    fixture.delete(&path, Some(&admin)).await.problem(404, "rate_limit_not_found");
    let audit = fixture.get(&format!("/v1/audit?target={alice_id}"), Some(&admin)).await.ok(200).clone();
    assert_eq!(audit["items"][0]["action"], "rate_limit.remove", "{audit}");
    assert!(fixture.get("/v1/rate-limits", Some(&admin)).await.ok(200)["items"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn a_gateway_sees_the_request_after_the_burst_refused_as_rate_limited() {
    let fixture = Fixture::new().await;
    let (admin, _) = fixture.token("root", Permission::Admin).await;
    let (gateway, _) = fixture.verifier("gateway").await;
    let (carol, carol_id) = fixture.token("carol", Permission::Standard).await;
    // Burst defaults to the rate.
    let set = fixture
        .put(&format!("/v1/tokens/{carol_id}/rate-limit"), Some(&admin), json!({ "requests_per_minute": 2 }))
        .await;
    assert_eq!(set.ok(200)["burst"], 2);
    let check = json!({ "token": carol });
    for _ in 0..2 {
        assert_eq!(fixture.post("/v1/tokens/verify", Some(&gateway), check.clone()).await.ok(200)["valid"], true);
    }
    let verdict = fixture.post("/v1/tokens/verify", Some(&gateway), check).await.ok(200).clone();
    assert_eq!((verdict["valid"].clone(), verdict["code"].clone()), (json!(false), json!("rate_limited")), "{verdict}");
    assert!(verdict["retry_after_seconds"].as_u64().is_some_and(|seconds| (1..=60).contains(&seconds)), "{verdict}");
}

#[tokio::test]
async fn only_admins_change_rate_limits_and_owners_may_read_theirs() {
    let fixture = Fixture::new().await;
    let (admin, _) = fixture.token("root", Permission::Admin).await;
    let (alice, alice_id) = fixture.token("alice", Permission::Standard).await;
    let (bob, _) = fixture.token("bob", Permission::Standard).await;
    let (_, user_jwt) = fixture.user_jwt("dana", Role::User).await;
    let path = format!("/v1/tokens/{alice_id}/rate-limit");
    let body = json!({ "requests_per_minute": 100, "burst": 10 });
    for credential in [&alice, &bob, &user_jwt] {
        fixture.put(&path, Some(credential), body.clone()).await.problem(403, "forbidden");
        fixture.get("/v1/rate-limits", Some(credential)).await.problem(403, "forbidden");
    }
    fixture.get("/v1/rate-limits", None).await.problem(401, "missing_credential");
    fixture.put(&path, Some(&admin), body.clone()).await.ok(200);
    for credential in [&alice, &bob] {
        fixture.delete(&path, Some(credential)).await.problem(403, "forbidden");
    }
    assert_eq!(fixture.get(&path, Some(&alice)).await.ok(200)["burst"], 10, "the owner reads their own");
    fixture.get(&path, Some(&bob)).await.problem(404, "token_not_found");
    // Unknown tokens are 404, and nothing was stored for them.
    let unknown = format!("/v1/tokens/{}/rate-limit", TokenId::generate());
    fixture.put(&unknown, Some(&admin), body).await.problem(404, "token_not_found");
    assert_eq!(fixture.get("/v1/rate-limits", Some(&admin)).await.ok(200)["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn bad_rate_limit_bodies_name_the_field() {
    let fixture = Fixture::new().await;
    let (admin, _) = fixture.token("root", Permission::Admin).await;
    let (_, alice_id) = fixture.token("alice", Permission::Standard).await;
    let path = format!("/v1/tokens/{alice_id}/rate-limit");
    let cases = [
        (json!({}), "requests_per_minute"),
        (json!({ "requests_per_minute": 0 }), "requests_per_minute"),
        (json!({ "requests_per_minute": -5 }), "requests_per_minute"),
        (json!({ "requests_per_minute": "ten" }), "requests_per_minute"),
        (json!({ "requests_per_minute": 2_000_000_000u64 }), "requests_per_minute"),
        (json!({ "requests_per_minute": 10, "burst": 0 }), "burst"),
        (json!({ "requests_per_minute": 10, "burst": 5_000_000_000u64 }), "burst"),
        // An unknown key is not repeated back: the body is named.
        (json!({ "requests_per_minute": 10, "rate": 1 }), "body"),
    ];
    for (body, field) in cases {
        let reply = fixture.put(&path, Some(&admin), body.clone()).await;
        assert_eq!(reply.problem(400, "invalid_field")["field"], field, "{body}");
    }
    let reply = fixture.put("/v1/tokens/usr_nope/rate-limit", Some(&admin), json!({ "requests_per_minute": 1 })).await;
    assert_eq!(reply.problem(400, "invalid_field")["field"], "id");
    assert!(fixture.get("/v1/rate-limits", Some(&admin)).await.ok(200)["items"].as_array().unwrap().is_empty());
}
