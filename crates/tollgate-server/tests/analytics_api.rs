//! Agent analytics over the HTTP API: ingesting events (idempotent, validated field by field),
//! spending and budget status read back by whoever may read them, and paging at the boundaries.

mod support;

use serde_json::{Value, json};
use support::Fixture;
use tollgate::{Permission, Role};

/// An admin token; alice (a user) with a JWT, her agent with `allocated` and its credential.
struct Setup {
    admin: String,
    alice: String,
    agent: String,
    credential: String,
}

async fn agent_of(fixture: &Fixture, owner_jwt: &str, admin: &str, name: &str, allocated: i64) -> (String, String) {
    let agent = fixture.post("/v1/agents", Some(owner_jwt), json!({ "name": name })).await;
    let agent = agent.ok(201)["id"].as_str().unwrap().to_owned();
    let body = json!({ "allocated_microdollars": allocated, "reason": "launch" });
    fixture.put(&format!("/v1/agents/{agent}/budget"), Some(admin), body).await.ok(200);
    let issued = fixture.post(&format!("/v1/agents/{agent}/credentials"), Some(owner_jwt), json!({})).await;
    (agent, issued.ok(201)["token"].as_str().unwrap().to_owned())
}

async fn setup(fixture: &Fixture) -> Setup {
    let (admin, _) = fixture.token("root", Permission::Admin).await;
    let (_, alice) = fixture.user_jwt("alice", Role::User).await;
    let (agent, credential) = agent_of(fixture, &alice, &admin, "runner", 10_000).await;
    Setup { admin, alice, agent, credential }
}

fn event(event_id: &str, cost: i64) -> Value {
    json!({
        "event_id": event_id, "timestamp": "2026-03-10T12:00:00Z", "type": "llm_request_completed",
        "provider": "openai", "model": "gpt-4o-mini", "input_tokens": 1000, "output_tokens": 200,
        "cost_microdollars": cost, "latency_ms": 850,
    })
}

#[tokio::test]
async fn events_are_stored_once_and_read_back_as_spending() {
    let fixture = Fixture::new().await;
    let setup = setup(&fixture).await;
    let one = fixture.post("/v1/analytics/events", Some(&setup.credential), event("call-1", 400)).await;
    assert_eq!(one.ok(200)["recorded"], 1);
    let mut failed = event("call-2", 0);
    failed["type"] = json!("llm_request_failed");
    failed["error_code"] = json!("rate_limit_exceeded");
    let batch = json!({ "events": [event("call-1", 400), failed, event("call-3", 600)] });
    let batch = fixture.post("/v1/analytics/events", Some(&setup.credential), batch).await;
    let batch = batch.ok(200);
    assert_eq!((batch["recorded"].as_u64(), batch["duplicates"].as_u64()), (Some(2), Some(1)));
    assert_eq!(batch["events"][0], json!({ "event_id": "call-1", "outcome": "duplicate" }));

    let report = fixture.get("/v1/analytics/spending?period=all-time&group_by=agent", Some(&setup.alice)).await;
    let report = report.ok(200);
    let totals = &report["totals"];
    assert_eq!((totals["cost_micros"].as_i64(), totals["events"].as_u64()), (Some(1_000), Some(3)));
    assert_eq!(totals["success_rate"], 0.6666, "errors per event round up, successes down");
    assert_eq!(totals["average_cost_per_request_micros"], 333);
    assert_eq!(totals["total_tokens"], 3_600);
    assert_eq!(report["groups"][0]["key"], setup.agent.as_str());
    let by_model = fixture.get("/v1/analytics/spending?period=all-time&group_by=model", Some(&setup.admin)).await;
    assert_eq!(by_model.ok(200)["groups"][0]["key"], "openai/gpt-4o-mini");
    // The same events are usage of the agent's credential in the usage report.
    let usage = fixture.get(&format!("/v1/usage?period=all-time&agent={}", setup.agent), Some(&setup.alice)).await;
    assert_eq!(usage.ok(200)["totals"]["cost_micros"], 1_000);
}

#[tokio::test]
async fn every_bad_field_is_a_400_naming_it_and_nothing_is_stored() {
    let fixture = Fixture::new().await;
    let setup = setup(&fixture).await;
    let cases: Vec<(&str, Value)> = vec![
        ("event_id", json!("")),
        ("timestamp", json!("2999-01-01T00:00:00Z")),
        ("type", json!("llm_request_started")),
        ("provider", json!("Open AI")),
        ("model", json!("")),
        ("input_tokens", json!(-1)),
        ("output_tokens", json!(-5)),
        ("cost_microdollars", json!(-1)),
        ("latency_ms", json!(-2)),
        ("lease_id", json!("bls_nope")),
        ("error_code", json!("has space")),
        ("error_message", json!("x".repeat(2_000))),
    ];
    for (field, value) in cases {
        let mut bad = event("bad", 1);
        bad[field] = value.clone();
        let single = fixture.post("/v1/analytics/events", Some(&setup.credential), bad.clone()).await;
        assert_eq!(single.problem(400, "invalid_field")["field"], field, "{field}");
        assert!(!single.text().contains("Open AI") && !single.text().contains("has space"), "{field} echoed");
        let batch = json!({ "events": [event("good", 1), bad] });
        let batch = fixture.post("/v1/analytics/events", Some(&setup.credential), batch).await;
        assert_eq!(batch.problem(400, "invalid_field")["field"], format!("events[].{field}"), "{field}");
    }
    let mut unknown = event("x", 1);
    unknown["surprise"] = json!(1);
    fixture.post("/v1/analytics/events", Some(&setup.credential), unknown).await.problem(400, "invalid_field");
    let empty = fixture.post("/v1/analytics/events", Some(&setup.credential), json!({ "events": [] })).await;
    assert_eq!(empty.problem(400, "invalid_field")["field"], "events");
    // 1,001 events pass the default 64 KiB body limit (413); under a larger one the count is refused.
    let many: Vec<Value> = (0..1_001).map(|index| event(&format!("e{index}"), 1)).collect();
    let too_large = fixture.post("/v1/analytics/events", Some(&setup.credential), json!({ "events": many })).await;
    too_large.problem(413, "body_too_large");
    let mut settings = tollgate_server::ServerSettings::default();
    settings.body_limit = 1 << 20;
    let roomy = Fixture::with_settings(settings, "192.0.2.10:40000").await;
    let roomy_setup = self::setup(&roomy).await;
    let many = roomy.post("/v1/analytics/events", Some(&roomy_setup.credential), json!({ "events": many })).await;
    assert_eq!(many.problem(400, "invalid_field")["field"], "events");
    let totals = fixture.get("/v1/analytics/spending?period=all-time", Some(&setup.admin)).await;
    assert_eq!(totals.ok(200)["totals"]["events"], 0, "nothing was stored");
    // Only an agent's credential sends events: a user's JWT and an API token are refused.
    let refused = fixture.post("/v1/analytics/events", Some(&setup.alice), event("x", 1)).await;
    assert!(matches!(refused.status.as_u16(), 401 | 403), "{}", refused.status);
    let refused = fixture.post("/v1/analytics/events", Some(&setup.admin), event("x", 1)).await;
    assert!(matches!(refused.status.as_u16(), 401 | 403), "{}", refused.status);
}

#[tokio::test]
async fn queries_page_at_the_boundaries_and_refuse_bad_paging() {
    let fixture = Fixture::new().await;
    let setup = setup(&fixture).await;
    let mut agents = vec![setup.agent.clone()];
    for (index, cost) in [(0, 300), (1, 300), (2, 100)] {
        let (agent, credential) = agent_of(&fixture, &setup.alice, &setup.admin, &format!("w{index}"), 1_000).await;
        fixture.post("/v1/analytics/events", Some(&credential), event("one", cost)).await.ok(200);
        agents.push(agent);
    }
    fixture.post("/v1/analytics/events", Some(&setup.credential), event("one", 500)).await.ok(200);
    for path in ["/v1/analytics/spending?period=all-time&group_by=agent", "/v1/usage?period=all-time&group_by=agent"] {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let url = match &cursor {
                Some(cursor) => format!("{path}&limit=1&cursor={cursor}"),
                None => format!("{path}&limit=1"),
            };
            let page = fixture.get(&url, Some(&setup.alice)).await;
            let page = page.ok(200).clone();
            assert_eq!(page["totals"]["cost_micros"], 1_200, "{path}: totals cover every page");
            let groups = page["groups"].as_array().unwrap();
            assert_eq!(groups.len(), 1);
            seen.push((groups[0]["key"].as_str().unwrap().to_owned(), groups[0]["cost_micros"].as_i64().unwrap()));
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => break,
            }
        }
        let costs: Vec<i64> = seen.iter().map(|(_, cost)| *cost).collect();
        assert_eq!(costs, [500, 300, 300, 100], "{path}");
        let mut keys: Vec<String> = seen.into_iter().map(|(key, _)| key).collect();
        keys.sort();
        let mut expected = agents.clone();
        expected.sort();
        assert_eq!(keys, expected, "{path}: every agent once");
    }
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=99999999999999", "limit"),
        ("group_by=agent&cursor=nonsense", "cursor"),
        ("group_by=agent&cursor=", "cursor"),
        ("cursor=1.-", "cursor"),
        ("period=fortnight", "period"),
        ("period=today&hours=3", "period"),
        ("group_by=colour", "group_by"),
        ("agent=agt_x", "agent"),
    ] {
        for base in ["/v1/analytics/spending", "/v1/usage"] {
            let reply = fixture.get(&format!("{base}?{query}"), Some(&setup.alice)).await;
            assert_eq!(reply.status, 400, "{base}?{query}: {}", reply.text());
            let problem = &reply.json;
            if problem["field"].is_string() {
                assert_eq!(problem["field"], field, "{base}?{query}");
            }
        }
    }
    let budgets = fixture.get("/v1/analytics/budgets?limit=2", Some(&setup.alice)).await;
    let budgets = budgets.ok(200).clone();
    assert_eq!(budgets["items"].as_array().unwrap().len(), 2);
    let cursor = budgets["next_cursor"].as_str().unwrap();
    let rest = fixture.get(&format!("/v1/analytics/budgets?limit=2&cursor={cursor}"), Some(&setup.alice)).await;
    let rest = rest.ok(200).clone();
    assert_eq!(rest["items"].as_array().unwrap().len(), 2);
    assert!(rest["next_cursor"].is_null());
    fixture.get("/v1/analytics/budgets?limit=0", Some(&setup.alice)).await.problem(400, "invalid_field");
}

#[tokio::test]
async fn each_reader_sees_only_their_own_agents() {
    let fixture = Fixture::new().await;
    let setup = setup(&fixture).await;
    let (_, bob) = fixture.user_jwt("bob", Role::User).await;
    let (bobs, bobs_credential) = agent_of(&fixture, &bob, &setup.admin, "bobs", 1_000).await;
    fixture.post("/v1/analytics/events", Some(&setup.credential), event("a", 9_000)).await.ok(200);
    fixture.post("/v1/analytics/events", Some(&bobs_credential), event("b", 800)).await.ok(200);

    let alices = fixture.get("/v1/analytics/spending?period=all-time&group_by=agent", Some(&setup.alice)).await;
    let alices = alices.ok(200).clone();
    assert_eq!(alices["totals"]["cost_micros"], 9_000);
    assert_eq!(alices["groups"].as_array().unwrap().len(), 1);
    let foreign = fixture.get(&format!("/v1/analytics/spending?agent={bobs}"), Some(&setup.alice)).await;
    foreign.problem(404, "agent_not_found");
    let everyone = fixture.get("/v1/analytics/spending?period=all-time", Some(&setup.admin)).await;
    assert_eq!(everyone.ok(200)["totals"]["cost_micros"], 9_800);

    let budgets = fixture.get("/v1/analytics/budgets", Some(&setup.alice)).await;
    let items = budgets.ok(200)["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["agent_id"], setup.agent.as_str());
    let all = fixture.get("/v1/analytics/budgets", Some(&setup.admin)).await;
    assert_eq!(all.ok(200)["items"].as_array().unwrap().len(), 2);
    // A viewer reads their own (nothing here), never others'.
    let (_, viewer) = fixture.user_jwt("vera", Role::Viewer).await;
    let none = fixture.get("/v1/analytics/spending?period=all-time", Some(&viewer)).await;
    assert_eq!(none.ok(200)["totals"]["cost_micros"], 0);
}

#[tokio::test]
async fn budget_status_shows_spent_reserved_and_risk() {
    let fixture = Fixture::new().await;
    let setup = setup(&fixture).await;
    let key = json!({ "provider": "openai", "secret": "sk-analytics-0123456789abcdef" });
    let key = fixture.post("/v1/provider-keys", Some(&setup.alice), key).await;
    let key = key.ok(201)["id"].as_str().unwrap().to_owned();
    let assign = json!({ "provider_key_id": key });
    fixture.patch(&format!("/v1/agents/{}", setup.agent), Some(&setup.alice), assign).await.ok(200);
    let handshake = json!({ "provider": "openai", "requested_microdollars": 9_000, "ttl_seconds": 600 });
    let handshake = fixture.post("/v1/budget/handshake", Some(&setup.credential), handshake).await;
    let lease = handshake.ok(200)["lease_id"].as_str().unwrap().to_owned();
    let status = || async {
        let statuses = fixture.get("/v1/analytics/budgets", Some(&setup.alice)).await;
        statuses.ok(200)["items"][0].clone()
    };
    let before = status().await;
    assert_eq!((before["allocated"].as_i64(), before["reserved"].as_i64()), (Some(10_000), Some(9_000)));
    assert_eq!((before["percent_used"].as_f64(), before["risk"].as_str()), (Some(0.0), Some("low")));
    let report = json!({ "request_id": "big", "cost_microdollars": 8_500, "model": "gpt-4o" });
    fixture.post(&format!("/v1/budget/leases/{lease}/report"), Some(&setup.credential), report).await.ok(200);
    let after = status().await;
    assert_eq!((after["spent"].as_i64(), after["reserved"].as_i64()), (Some(8_500), Some(500)));
    assert_eq!((after["percent_used"].as_f64(), after["risk"].as_str()), (Some(85.0), Some("high")));
    // The report is spending too, and the same call sent as an event (same lease and id) is a duplicate.
    let mut linked = event("big", 8_500);
    linked["lease_id"] = json!(lease);
    let sent = fixture.post("/v1/analytics/events", Some(&setup.credential), linked).await;
    assert_eq!(sent.ok(200)["duplicates"], 1);
    let spending = fixture.get("/v1/analytics/spending?period=all-time", Some(&setup.alice)).await;
    assert_eq!(spending.ok(200)["totals"]["cost_micros"], 8_500);
}

fn trace(token_id: &str, status: u16, request: &str) -> Value {
    json!({
        "token_id": token_id, "endpoint": "/v1/chat/completions", "provider": "openai", "model": "gpt-4o",
        "status": status, "latency_ms": 420, "input_tokens": 12, "output_tokens": 3, "cost_microdollars": 90,
        "request": request, "response": "{\"choices\":[]}",
    })
}

#[tokio::test]
async fn traces_keep_bodies_only_when_captured_redacted_and_cut() {
    let secret_token = format!("tg_{}", "Q7w8".repeat(12) + "e");
    let provider_key = "sk-proj-SECRETSECRETSECRETSECRET0123";
    let request =
        format!(r#"{{"auth":"Bearer {secret_token}","key":"{provider_key}","prompt":"{}"}}"#, "y".repeat(200));

    // Capture off (the default): the figures only.
    let fixture = Fixture::new().await;
    let (admin, _) = fixture.token("root", Permission::Admin).await;
    let (_, token_id) = fixture.token("alice", Permission::Standard).await;
    let stored = fixture.post("/v1/traces", Some(&admin), trace(&token_id.to_string(), 200, &request)).await;
    let stored = stored.ok(201).clone();
    assert_eq!((stored["request"].clone(), stored["payload_bytes"].clone()), (Value::Null, json!(0)));

    // Capture on, 96 bytes a trace: redacted first, then cut.
    let mut settings = tollgate_server::ServerSettings::default();
    settings.traces.capture_payloads = true;
    settings.traces.max_payload_bytes = 96;
    let fixture = Fixture::with_settings(settings, "192.0.2.10:40000").await;
    let (admin, _) = fixture.token("root", Permission::Admin).await;
    let (_, token_id) = fixture.token("alice", Permission::Standard).await;
    let stored = fixture.post("/v1/traces", Some(&admin), trace(&token_id.to_string(), 502, &request)).await;
    let stored = stored.ok(201).clone();
    let kept = stored["request"].as_str().unwrap();
    assert!(kept.contains("[REDACTED]") && !kept.contains(&secret_token) && !kept.contains("SECRETSECRET"), "{kept}");
    assert_eq!(stored["truncated"], true);
    assert!(stored["payload_bytes"].as_u64().unwrap() <= 96, "{stored}");
    let shown = fixture.get(&format!("/v1/traces/{}", stored["id"].as_str().unwrap()), Some(&admin)).await;
    assert_eq!(shown.ok(200)["request"], kept);
    fixture.close_store().await;
    if matches!(fixture.backend, support::Backend::Sqlite(_)) {
        let bytes = std::fs::read(&fixture.db_file).unwrap();
        let wal = std::fs::read(fixture.db_file.with_extension("db-wal")).unwrap_or_default();
        for secret in [secret_token.as_bytes(), provider_key.as_bytes()] {
            let found = |haystack: &[u8]| haystack.windows(secret.len()).any(|window| window == secret);
            assert!(!found(&bytes) && !found(&wal), "a secret reached the database file");
        }
    }
}

#[tokio::test]
async fn traces_are_validated_scoped_filtered_and_paged() {
    let fixture = Fixture::new().await;
    let (admin, _) = fixture.token("root", Permission::Admin).await;
    let (alice_id, alice) = fixture.user_jwt("alice", Role::User).await;
    let (_, alices_token) = fixture.user_token(alice_id, Permission::Standard).await;
    let (bob_id, bob) = fixture.user_jwt("bob", Role::User).await;
    let (_, bobs_token) = fixture.user_token(bob_id, Permission::Standard).await;
    let alices_token = alices_token.to_string();
    for status in [200, 500, 429] {
        fixture.post("/v1/traces", Some(&alice), trace(&alices_token, status, "{}")).await.ok(201);
    }
    fixture.post("/v1/traces", Some(&bob), trace(&bobs_token.to_string(), 200, "{}")).await.ok(201);
    // Bob cannot report on, list or read alice's traces.
    fixture.post("/v1/traces", Some(&bob), trace(&alices_token, 200, "{}")).await.problem(404, "token_not_found");
    let bobs = fixture.get("/v1/traces", Some(&bob)).await;
    assert_eq!(bobs.ok(200)["items"].as_array().unwrap().len(), 1);
    let alices = fixture.get("/v1/traces", Some(&alice)).await.ok(200).clone();
    let alice_ids: Vec<&str> =
        alices["items"].as_array().unwrap().iter().map(|item| item["id"].as_str().unwrap()).collect();
    assert_eq!(alice_ids.len(), 3);
    fixture.get(&format!("/v1/traces/{}", alice_ids[0]), Some(&bob)).await.problem(404, "trace_not_found");
    let failures = fixture.get("/v1/traces?min_status=400", Some(&alice)).await;
    assert_eq!(failures.ok(200)["items"].as_array().unwrap().len(), 2);
    let all = fixture.get("/v1/traces", Some(&admin)).await;
    assert_eq!(all.ok(200)["items"].as_array().unwrap().len(), 4);
    // Pages of one cover alice's traces once, newest first.
    let mut paged = Vec::new();
    let mut url = "/v1/traces?limit=1".to_owned();
    loop {
        let page = fixture.get(&url, Some(&alice)).await.ok(200).clone();
        paged.push(page["items"][0]["id"].as_str().unwrap().to_owned());
        match page["next_cursor"].as_str() {
            Some(cursor) => url = format!("/v1/traces?limit=1&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(paged, alice_ids);
    for (query, field) in
        [("limit=0", "limit"), ("cursor=nope", "cursor"), ("min_status=42", "min_status"), ("agent=x", "agent")]
    {
        let reply = fixture.get(&format!("/v1/traces?{query}"), Some(&alice)).await;
        assert_eq!(reply.problem(400, "invalid_field")["field"], field, "{query}");
    }
    for (field, value) in [
        ("status", json!(42)),
        ("token_id", json!("tok_x")),
        ("model", json!("GPT 4")),
        ("cost_microdollars", json!(-1)),
    ] {
        let mut bad = trace(&alices_token, 200, "{}");
        bad[field] = value;
        let reply = fixture.post("/v1/traces", Some(&alice), bad).await;
        assert_eq!(reply.problem(400, "invalid_field")["field"], field);
    }
}
