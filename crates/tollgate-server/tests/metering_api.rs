//! Metering over HTTP: usage reported (one event or a batch, answered once durable) and read back, analytics,
//! quotas set and enforced on verify (429 with Retry-After), rate-limit headers, prices, metrics.

mod support;

use serde_json::json;
use support::Fixture;
use tollgate::{Permission, Principal, RateLimitSpec};

fn event(token: &str, model: &str, input: u64) -> serde_json::Value {
    json!({ "token_id": token, "provider": "openai", "model": model, "input_tokens": input, "output_tokens": 10 })
}

#[tokio::test]
async fn usage_is_recorded_durably_and_reported() {
    let fixture = Fixture::new().await;
    let (admin, _) = fixture.token("root", Permission::Admin).await;
    let (alice, alice_id) = fixture.token("alice", Permission::Standard).await;
    let id = alice_id.to_string();
    let one = fixture.post("/v1/usage", Some(&alice), event(&id, "gpt-4o-mini", 1000)).await;
    assert_eq!(one.ok(200)["recorded"], 1);
    assert_eq!(one.ok(200)["events"][0]["outcome"], "recorded");
    let batch = json!({ "events": [event(&id, "gpt-4o", 500), event(&id, "gpt-4o-mini", 250)] });
    assert_eq!(fixture.post("/v1/usage", Some(&admin), batch).await.ok(200)["recorded"], 2);
    // Answered means written: the report sees it without a flush.

    let report = fixture.get(&format!("/v1/usage?token_id={id}&group_by=model&hours=2"), Some(&alice)).await;
    let report = report.ok(200).clone();
    assert_eq!(report["totals"]["input_tokens"], 1750, "{report}");
    assert_eq!(report["groups"].as_array().unwrap().len(), 2, "{report}");
    assert!(report["totals"]["cost_micros"].as_i64().unwrap() > 0, "priced from the table: {report}");
    let overview = fixture.get("/v1/analytics?hours=1", Some(&admin)).await.ok(200).clone();
    assert_eq!(overview["total_tokens"], 1780, "{overview}");
    fixture.get("/v1/analytics", Some(&alice)).await.problem(403, "forbidden");

    // Somebody else's token: not found (as an unknown one would be, so ids cannot be probed), nothing queued.
    let (bob, bob_id) = fixture.token("bob", Permission::Standard).await;
    let bob_id = bob_id.to_string();
    fixture.post("/v1/usage", Some(&bob), event(&id, "gpt-4o", 1)).await.problem(404, "token_not_found");
    let unknown = tollgate::TokenId::generate().to_string();
    fixture.post("/v1/usage", Some(&bob), event(&unknown, "gpt-4o", 1)).await.problem(404, "token_not_found");
    // Every distinct token of a batch is authorized, not just the first: bob's own event first, then alice's.
    let mixed =
        json!({ "events": [event(&bob_id, "gpt-4o", 1), event(&bob_id, "gpt-4o", 1), event(&id, "gpt-4o", 1)] });
    fixture.post("/v1/usage", Some(&bob), mixed).await.problem(404, "token_not_found");
    // One bad event in a batch stores nothing and names the event's field.
    let bad = json!({ "events": [event(&id, "gpt-4o", 1), event(&id, "Not A Model", 1)] });
    let reply = fixture.post("/v1/usage", Some(&alice), bad).await;
    assert!(reply.problem(400, "invalid_field")["field"].as_str().unwrap().contains("model"), "{}", reply.text());
    let reply = fixture.post("/v1/usage", Some(&alice), json!({ "events": [] })).await;
    assert_eq!(reply.problem(400, "invalid_field")["field"], "events");
    let reply = fixture.post("/v1/usage", Some(&alice), json!({ "token_id": id, "provider": "openai" })).await;
    assert_eq!(reply.problem(400, "invalid_field")["field"], "model");
    fixture.get("/v1/usage?group_by=colour", Some(&alice)).await.problem(400, "invalid_field");
    let after = fixture.get(&format!("/v1/usage?token_id={id}"), Some(&alice)).await.ok(200).clone();
    assert_eq!(after["totals"]["events"], 3, "{after}");

    let metrics = fixture.get("/metrics", None).await;
    assert!(metrics.text().contains("tollgate_usage_queue_depth 0"), "{}", metrics.text());
    assert!(metrics.text().contains("tollgate_usage_events_written_total 3"), "{}", metrics.text());
}

#[tokio::test]
async fn quotas_are_set_enforced_on_verify_and_removed() {
    let fixture = Fixture::new().await;
    let (admin, _) = fixture.token("root", Permission::Admin).await;
    let (alice, alice_id) = fixture.token("alice", Permission::Standard).await;
    let path = format!("/v1/limits/token/{alice_id}/requests_per_day");
    fixture.put(&path, Some(&alice), json!({ "max": 100 })).await.problem(403, "forbidden");
    let set = fixture.put(&path, Some(&admin), json!({ "max": 2 })).await.ok(200).clone();
    assert_eq!(
        (set["metric"].clone(), set["window"].clone(), set["max"].clone()),
        (json!("requests"), json!("day"), json!(2))
    );
    fixture.get("/v1/auth/verify", Some(&alice)).await.ok(200);
    fixture.get("/v1/auth/verify", Some(&alice)).await.ok(200);
    let refused = fixture.get("/v1/auth/verify", Some(&alice)).await;
    refused.problem(429, "quota_exceeded");
    assert!(refused.headers.contains_key("retry-after"), "{:?}", refused.headers);

    // Every authenticated request of the token counts, control-API calls included: read as admin.
    fixture.get(&format!("/v1/limits/token/{alice_id}"), Some(&alice)).await.problem(429, "quota_exceeded");
    let own = fixture.get(&format!("/v1/limits/token/{alice_id}"), Some(&admin)).await.ok(200).clone();
    assert_eq!(own["items"][0]["used"], 2, "{own}");
    assert_eq!(fixture.get("/v1/limits", Some(&admin)).await.ok(200)["items"].as_array().unwrap().len(), 1);
    fixture.delete(&path, Some(&admin)).await.ok(200);
    fixture.get("/v1/auth/verify", Some(&alice)).await.ok(200);
    fixture.get("/v1/limits", Some(&alice)).await.problem(403, "forbidden");

    // Users and projects have limits too; bad segments name themselves.
    let user = fixture.user("carol", tollgate::Role::User).await;
    fixture
        .put(&format!("/v1/limits/user/{user}/cost_per_month"), Some(&admin), json!({ "max": 50_000_000 }))
        .await
        .ok(200);
    let search = fixture.project("search").await;
    fixture
        .put(
            &format!("/v1/limits/project/{search}/tokens_per_hour"),
            Some(&admin),
            json!({ "max": 1000, "shadow": true }),
        )
        .await
        .ok(200);
    let unknown_project = tollgate::ProjectId::generate();
    fixture
        .put(&format!("/v1/limits/project/{unknown_project}/tokens_per_hour"), Some(&admin), json!({ "max": 1 }))
        .await
        .problem(404, "project_not_found");
    let field = |reply: support::Reply| reply.problem(400, "invalid_field")["field"].clone();
    assert_eq!(
        field(fixture.put("/v1/limits/team/x/requests_per_day", Some(&admin), json!({ "max": 1 })).await),
        "kind"
    );
    assert_eq!(
        field(fixture.put("/v1/limits/token/nope/requests_per_day", Some(&admin), json!({ "max": 1 })).await),
        "id"
    );
    assert_eq!(
        field(
            fixture.put(&format!("/v1/limits/user/{user}/requests_per_week"), Some(&admin), json!({ "max": 1 })).await
        ),
        "name"
    );
    assert_eq!(
        field(
            fixture.put(&format!("/v1/limits/user/{user}/requests_per_day"), Some(&admin), json!({ "max": -1 })).await
        ),
        "max"
    );
}

#[tokio::test]
async fn rate_limits_show_in_headers_and_refuse_with_retry_after() {
    let fixture = Fixture::new().await;
    let (alice, alice_id) = fixture.token("alice", Permission::Standard).await;
    let spec = RateLimitSpec::new(60, 2).unwrap();
    fixture.metering.set_rate_limit(&Principal::Operator, &alice_id, spec).await.unwrap();
    let first = fixture.get("/v1/auth/verify", Some(&alice)).await;
    first.ok(200);
    assert_eq!(first.headers["ratelimit-limit"], "2");
    assert_eq!(first.headers["ratelimit-remaining"], "1");
    assert!(first.headers.contains_key("ratelimit-reset"));
    fixture.get("/v1/auth/verify", Some(&alice)).await.ok(200);
    let refused = fixture.get("/v1/auth/verify", Some(&alice)).await;
    refused.problem(429, "rate_limited");
    assert!(refused.headers["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
}

#[tokio::test]
async fn prices_are_listed_and_overridden() {
    let fixture = Fixture::new().await;
    let (admin, _) = fixture.token("root", Permission::Admin).await;
    let (alice, _) = fixture.token("alice", Permission::Standard).await;
    let prices = fixture.get("/v1/prices", Some(&alice)).await.ok(200).clone();
    assert!(prices["items"].as_array().unwrap().iter().any(|price| price["model"] == "gpt-4o-mini"), "{prices}");
    let body = json!({ "input_per_million": "2.50", "output_per_million": "10" });
    fixture.put("/v1/prices/acme/tiny-1", Some(&alice), body.clone()).await.problem(403, "forbidden");
    let set = fixture.put("/v1/prices/acme/tiny-1", Some(&admin), body).await.ok(200).clone();
    assert_eq!(
        (set["input_per_million_micros"].clone(), set["source"].clone()),
        (json!(2_500_000), json!("stored")),
        "{set}"
    );
    let slash = json!({ "input_per_million": "1", "output_per_million": "1" });
    assert_eq!(fixture.put("/v1/prices/acme/org%2Fmodel", Some(&admin), slash).await.ok(200)["model"], "org/model");
    let bad = json!({ "input_per_million": "1.5e3", "output_per_million": "1" });
    let reply = fixture.put("/v1/prices/acme/tiny-1", Some(&admin), bad).await;
    assert_eq!(reply.problem(400, "invalid_field")["field"], "input_per_million");
    let reply = fixture
        .put("/v1/prices/ACME/tiny-1", Some(&admin), json!({ "input_per_million": "1", "output_per_million": "1" }))
        .await;
    assert_eq!(reply.problem(400, "invalid_field")["field"], "provider");
}

/// Reading limits writes nothing, for an admin or a viewer, whatever counters the limits have.
#[tokio::test]
async fn reading_limits_writes_nothing() {
    let fixture = Fixture::new().await;
    let (admin, _) = fixture.token("root", Permission::Admin).await;
    let (alice, alice_id) = fixture.token("alice", Permission::ReadOnly).await;
    for name in ["requests_per_day", "tokens_per_hour", "cost_per_month"] {
        let path = format!("/v1/limits/token/{alice_id}/{name}");
        fixture.put(&path, Some(&admin), json!({ "max": 1_000_000 })).await.ok(200);
    }
    // Both credentials verified once (the viewer's verify leases its request quota: a write).
    fixture.get("/v1/limits", Some(&admin)).await.ok(200);
    fixture.get(&format!("/v1/limits/token/{alice_id}"), Some(&alice)).await.ok(200);
    let support::Backend::Sqlite(sqlite) = &fixture.backend else { return }; // counts SQLite's write jobs
    let writes = sqlite.commit_stats().1;
    for _ in 0..3 {
        let all = fixture.get("/v1/limits", Some(&admin)).await.ok(200).clone();
        assert_eq!(all["items"].as_array().unwrap().len(), 3, "{all}");
        fixture.get(&format!("/v1/limits/token/{alice_id}"), Some(&admin)).await.ok(200);
    }
    assert_eq!(sqlite.commit_stats().1, writes, "no write job ran for a read");
}

#[tokio::test]
async fn a_price_override_is_removed_and_the_shipped_price_applies_again() {
    let fixture = Fixture::new().await;
    let (admin, _) = fixture.token("root", Permission::Admin).await;
    let (alice, _) = fixture.token("alice", Permission::Standard).await;
    let shipped = fixture.get("/v1/prices", Some(&admin)).await.ok(200).clone();
    let shipped =
        shipped["items"].as_array().unwrap().iter().find(|price| price["model"] == "gpt-4o-mini").unwrap().clone();
    let body = json!({ "input_per_million": "99", "output_per_million": "99" });
    fixture.put("/v1/prices/openai/gpt-4o-mini", Some(&admin), body).await.ok(200);
    fixture.delete("/v1/prices/openai/gpt-4o-mini", Some(&alice)).await.problem(403, "forbidden");
    let restored = fixture.delete("/v1/prices/openai/gpt-4o-mini", Some(&admin)).await.ok(200).clone();
    assert_eq!(restored["input_per_million_micros"], shipped["input_per_million_micros"], "{restored}");
    assert_ne!(restored["source"], "stored");
    // A custom model has nothing to fall back to: 204, and it is gone.
    let body = json!({ "input_per_million": "1", "output_per_million": "1" });
    fixture.put("/v1/prices/acme/tiny-1", Some(&admin), body).await.ok(200);
    assert_eq!(fixture.delete("/v1/prices/acme/tiny-1", Some(&admin)).await.status.as_u16(), 204);
    let prices = fixture.get("/v1/prices", Some(&admin)).await.ok(200).clone();
    assert!(!prices.to_string().contains("tiny-1"), "{prices}");
}
