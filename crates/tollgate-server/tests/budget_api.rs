//! The budget control protocol and the operators' budget routes over the HTTP API.

mod support;

use serde_json::{Value, json};
use support::Fixture;
use tollgate::{Permission, Role};

const KEY: &str = "sk-budget-http-0123456789abcdef";

/// An admin token; alice (a user) with a JWT, her key, her agent (allocated `allocated`) and its credential.
struct Setup {
    admin: String,
    alice: String,
    agent: String,
    credential: String,
}

async fn setup(fixture: &Fixture, allocated: i64) -> Setup {
    let (admin, _) = fixture.token("root", Permission::Admin).await;
    let (_, alice) = fixture.user_jwt("alice", Role::User).await;
    let key = fixture.post("/v1/provider-keys", Some(&alice), json!({ "provider": "openai", "secret": KEY })).await;
    let key = key.ok(201)["id"].as_str().unwrap().to_owned();
    let agent = fixture.post("/v1/agents", Some(&alice), json!({ "name": "runner", "provider_key_id": key })).await;
    let agent = agent.ok(201)["id"].as_str().unwrap().to_owned();
    let body = json!({ "allocated_microdollars": allocated, "reason": "launch" });
    fixture.put(&format!("/v1/agents/{agent}/budget"), Some(&admin), body).await.ok(200);
    let issued = fixture.post(&format!("/v1/agents/{agent}/credentials"), Some(&alice), json!({})).await;
    let credential = issued.ok(201)["token"].as_str().unwrap().to_owned();
    Setup { admin, alice, agent, credential }
}

fn amount(value: &Value, field: &str) -> i64 {
    value[field].as_i64().unwrap_or_else(|| panic!("{field} in {value}"))
}

#[tokio::test]
async fn an_agent_leases_reports_refreshes_and_returns() {
    let fixture = Fixture::new().await;
    let setup = setup(&fixture, 10_000).await;
    let handshake = json!({ "provider": "openai", "requested_microdollars": 4_000, "ttl_seconds": 600 });
    let granted = fixture.post("/v1/budget/handshake", Some(&setup.credential), handshake).await;
    assert_eq!(granted.headers["cache-control"], "no-store");
    let granted = granted.ok(200).clone();
    assert_eq!((amount(&granted, "granted"), amount(&granted, "available_after")), (4_000, 6_000));
    assert_eq!(granted["provider_key"]["secret"], KEY);
    let lease = granted["lease_id"].as_str().unwrap().to_owned();

    let report = json!({ "request_id": "call-1", "cost_microdollars": 1_500, "input_tokens": 900, "output_tokens": 200, "model": "gpt-4o" });
    let reported =
        fixture.post(&format!("/v1/budget/leases/{lease}/report"), Some(&setup.credential), report.clone()).await;
    assert_eq!(amount(reported.ok(200), "remaining"), 2_500);
    let again = fixture.post(&format!("/v1/budget/leases/{lease}/report"), Some(&setup.credential), report).await;
    assert_eq!(amount(again.ok(200), "remaining"), 2_500, "a repeated request_id changes nothing");
    let too_much = json!({ "request_id": "call-2", "cost_microdollars": 3_000, "model": "gpt-4o" });
    let refused = fixture.post(&format!("/v1/budget/leases/{lease}/report"), Some(&setup.credential), too_much).await;
    assert_eq!(amount(refused.problem(409, "lease_exhausted"), "remaining_microdollars"), 2_500);

    let refreshed = fixture
        .post(
            &format!("/v1/budget/leases/{lease}/refresh"),
            Some(&setup.credential),
            json!({ "requested_microdollars": 5_000 }),
        )
        .await;
    let refreshed = refreshed.ok(200).clone();
    assert_eq!((amount(&refreshed, "granted"), refreshed["refreshed_from"].as_str()), (5_000, Some(lease.as_str())));
    let new_lease = refreshed["id"].as_str().unwrap().to_owned();
    let budget = fixture.get(&format!("/v1/agents/{}/budget", setup.agent), Some(&setup.alice)).await.ok(200).clone();
    assert_eq!(
        (amount(&budget, "reserved"), amount(&budget, "spent"), amount(&budget, "available")),
        (5_000, 1_500, 3_500)
    );

    let returned =
        fixture.post(&format!("/v1/budget/leases/{new_lease}/return"), Some(&setup.credential), json!({})).await;
    let returned = returned.ok(200).clone();
    assert_eq!((returned["state"].as_str(), amount(&returned, "returned_now")), (Some("returned"), 5_000));
    let twice =
        fixture.post(&format!("/v1/budget/leases/{new_lease}/return"), Some(&setup.credential), json!({})).await;
    assert_eq!(amount(twice.ok(200), "returned_now"), 0);
    let closed = json!({ "request_id": "late", "cost_microdollars": 1, "model": "gpt-4o" });
    fixture
        .post(&format!("/v1/budget/leases/{new_lease}/report"), Some(&setup.credential), closed)
        .await
        .problem(409, "lease_closed");

    // The report is a usage event of the credential, in the same analytics.
    let usage = fixture.get("/v1/usage", Some(&setup.admin)).await.ok(200).clone();
    assert!(usage.to_string().contains("1500"), "{usage}");
}

#[tokio::test]
async fn an_exhausted_budget_is_402_with_the_amounts_and_pauses_the_agent() {
    let fixture = Fixture::new().await;
    let setup = setup(&fixture, 500).await;
    let handshake = json!({ "provider": "openai", "requested_microdollars": 500 });
    fixture.post("/v1/budget/handshake", Some(&setup.credential), handshake.clone()).await.ok(200);
    let refused = fixture.post("/v1/budget/handshake", Some(&setup.credential), handshake).await;
    let problem = refused.problem(402, "budget_exhausted").clone();
    assert_eq!((amount(&problem, "available_microdollars"), amount(&problem, "needed_microdollars")), (0, 500));
    let budget = fixture.get(&format!("/v1/agents/{}/budget", setup.agent), Some(&setup.alice)).await.ok(200).clone();
    assert_eq!(budget["status"], "paused_for_budget");
    // Raising the allocation resumes it.
    let raise = json!({ "allocated_microdollars": 5_000 });
    let budget =
        fixture.put(&format!("/v1/agents/{}/budget", setup.agent), Some(&setup.admin), raise).await.ok(200).clone();
    assert_eq!(budget["status"], "ok");
}

#[tokio::test]
async fn only_the_agent_speaks_the_protocol_and_only_admins_set_budgets() {
    let fixture = Fixture::new().await;
    let setup = setup(&fixture, 10_000).await;
    let handshake = json!({ "provider": "openai" });
    fixture.post("/v1/budget/handshake", Some(&setup.alice), handshake.clone()).await.problem(401, "malformed");
    fixture.post("/v1/budget/handshake", Some(&setup.admin), handshake.clone()).await.problem(401, "malformed");
    let lease = fixture.post("/v1/budget/handshake", Some(&setup.credential), handshake).await.ok(200)["lease_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Another agent's credential does not reach this lease.
    let other = fixture.post(&format!("/v1/agents/{}/credentials", setup.agent), Some(&setup.alice), json!({})).await;
    let _ = other;
    let (bob_id, bob) = fixture.user_jwt("bob", Role::User).await;
    let _ = bob_id;
    let bob_agent =
        fixture.post("/v1/agents", Some(&bob), json!({ "name": "b" })).await.ok(201)["id"].as_str().unwrap().to_owned();
    let bob_credential =
        fixture.post(&format!("/v1/agents/{bob_agent}/credentials"), Some(&bob), json!({})).await.ok(201)["token"]
            .as_str()
            .unwrap()
            .to_owned();
    let report = json!({ "request_id": "x", "cost_microdollars": 1, "model": "gpt-4o" });
    fixture
        .post(&format!("/v1/budget/leases/{lease}/report"), Some(&bob_credential), report)
        .await
        .problem(404, "lease_not_found");
    fixture
        .post(&format!("/v1/budget/leases/{lease}/return"), Some(&bob_credential), json!({}))
        .await
        .problem(404, "lease_not_found");

    // Setting a budget and revoking a lease are admins' alone; owners read theirs.
    let set = json!({ "allocated_microdollars": 1 });
    fixture.put(&format!("/v1/agents/{}/budget", setup.agent), Some(&setup.alice), set).await.problem(403, "forbidden");
    fixture.get(&format!("/v1/agents/{}/budget", setup.agent), Some(&bob)).await.problem(404, "agent_not_found");
    fixture
        .post(&format!("/v1/budget/leases/{lease}/revoke"), Some(&setup.alice), json!({}))
        .await
        .problem(403, "forbidden");
    let leases = fixture.get("/v1/budget/leases", Some(&bob)).await.ok(200).clone();
    assert!(leases["items"].as_array().unwrap().is_empty(), "bob sees no lease of alice's");
    let leases = fixture.get("/v1/budget/leases?state=open", Some(&setup.alice)).await.ok(200).clone();
    assert_eq!(leases["items"][0]["id"], lease.as_str());
    let revoked = fixture
        .post(&format!("/v1/budget/leases/{lease}/revoke"), Some(&setup.admin), json!({ "reason": "drill" }))
        .await;
    assert_eq!(revoked.ok(200)["state"], "revoked");
}

#[tokio::test]
async fn change_requests_are_decided_by_an_admin_other_than_the_requester() {
    let fixture = Fixture::new().await;
    let setup = setup(&fixture, 1_000).await;
    let (_, other_admin) = fixture.user_jwt("grace", Role::Admin).await;
    let body =
        json!({ "agent_id": setup.agent, "requested_allocation_microdollars": 1_500, "justification": "more traffic" });
    let request = fixture.post("/v1/budget/requests", Some(&setup.alice), body).await.ok(201).clone();
    let id = request["id"].as_str().unwrap().to_owned();
    assert_eq!(request["state"], "pending");
    fixture
        .patch(&format!("/v1/budget/requests/{id}/approve"), Some(&setup.alice), json!({}))
        .await
        .problem(403, "forbidden");
    let approved = fixture
        .patch(&format!("/v1/budget/requests/{id}/approve"), Some(&other_admin), json!({ "reason": "ok" }))
        .await;
    assert_eq!(approved.ok(200)["state"], "approved");
    fixture
        .patch(&format!("/v1/budget/requests/{id}/approve"), Some(&other_admin), json!({}))
        .await
        .problem(409, "conflict");
    // An admin's own request needs another admin.
    let body = json!({ "agent_id": setup.agent, "requested_allocation_microdollars": 2_000, "justification": "mine" });
    let own =
        fixture.post("/v1/budget/requests", Some(&other_admin), body).await.ok(201)["id"].as_str().unwrap().to_owned();
    fixture
        .patch(&format!("/v1/budget/requests/{own}/approve"), Some(&other_admin), json!({}))
        .await
        .problem(403, "forbidden");
    fixture.patch(&format!("/v1/budget/requests/{own}/approve"), Some(&setup.admin), json!({})).await.ok(200);

    let history =
        fixture.get(&format!("/v1/agents/{}/budget/history", setup.agent), Some(&setup.alice)).await.ok(200).clone();
    let after: Vec<i64> =
        history["items"].as_array().unwrap().iter().map(|entry| amount(entry, "allocated_after")).collect();
    assert_eq!(after, [2_000, 1_500, 1_000]);
    assert_eq!(history["items"][1]["request"], id.as_str());
    let listed = fixture.get("/v1/budget/requests?state=approved", Some(&setup.alice)).await.ok(200).clone();
    assert_eq!(listed["items"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn a_child_agent_spends_a_lease_delegated_by_its_parent() {
    let fixture = Fixture::new().await;
    let setup = setup(&fixture, 10_000).await;
    let child = fixture.post("/v1/agents", Some(&setup.alice), json!({ "name": "child" })).await.ok(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let child_credential =
        fixture.post(&format!("/v1/agents/{child}/credentials"), Some(&setup.alice), json!({})).await;
    let child_credential = child_credential.ok(201)["token"].as_str().unwrap().to_owned();
    let handshake = json!({ "provider": "openai", "requested_microdollars": 3_000 });
    let lease = fixture.post("/v1/budget/handshake", Some(&setup.credential), handshake).await.ok(200)["lease_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let body = json!({ "agent_id": child, "requested_microdollars": 1_000 });
    let delegated = fixture.post(&format!("/v1/budget/leases/{lease}/delegate"), Some(&setup.credential), body).await;
    let delegated = delegated.ok(201).clone();
    assert_eq!(
        (delegated["parent"].as_str(), delegated["account"].as_str()),
        (Some(lease.as_str()), Some(setup.agent.as_str()))
    );
    let child_lease = delegated["id"].as_str().unwrap().to_owned();
    let report = json!({ "request_id": "c1", "cost_microdollars": 400, "model": "gpt-4o" });
    let reported =
        fixture.post(&format!("/v1/budget/leases/{child_lease}/report"), Some(&child_credential), report).await;
    assert_eq!(amount(reported.ok(200), "remaining"), 600);
    // The parent's return closes the child first and gives back all that is unspent.
    let returned = fixture.post(&format!("/v1/budget/leases/{lease}/return"), Some(&setup.credential), json!({})).await;
    assert_eq!(amount(returned.ok(200), "returned_now"), 2_600);
    let budget = fixture.get(&format!("/v1/agents/{}/budget", setup.agent), Some(&setup.alice)).await.ok(200).clone();
    assert_eq!((amount(&budget, "spent"), amount(&budget, "reserved")), (400, 0));
    let late = json!({ "request_id": "c2", "cost_microdollars": 1, "model": "gpt-4o" });
    fixture
        .post(&format!("/v1/budget/leases/{child_lease}/report"), Some(&child_credential), late)
        .await
        .problem(409, "lease_closed");
}
