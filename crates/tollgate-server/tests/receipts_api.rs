//! Signed usage receipts over HTTP: settle, budget report and usage answers carry a receipt that
//! verifies under `GET /v1/receipts/key`, a repeat gets the same receipt, and without a signer
//! there is no receipt field and no key.

mod support;

use serde_json::{Value, json};
use support::Fixture;
use tollgate::{Permission, Receipt, ReceiptPublicKey, ReceiptSigner, Role, Verification};
use tollgate_server::ServerSettings;

async fn signing() -> Fixture {
    let mut settings = ServerSettings::default();
    settings.receipts = Some(ReceiptSigner::ephemeral().unwrap());
    Fixture::with_settings(settings, "192.0.2.10:40000").await
}

/// The server's key, as a customer fetches it (no credentials).
async fn server_key(fixture: &Fixture) -> ReceiptPublicKey {
    let answer = fixture.get("/v1/receipts/key", None).await.ok(200).clone();
    assert_eq!(answer["algorithm"], "Ed25519", "{answer}");
    let key = ReceiptPublicKey::parse(answer["public_key"].as_str().unwrap()).unwrap();
    assert_eq!(answer["key_id"], key.key_id(), "{answer}");
    key
}

/// The one receipt in `answer`, checked against `key`.
fn verified(answer: &Value, key: &ReceiptPublicKey) -> Receipt {
    let receipts = Receipt::find_all(answer).unwrap();
    assert_eq!(receipts.len(), 1, "{answer}");
    let receipt = receipts.into_iter().next().unwrap();
    assert!(matches!(receipt.verify(std::slice::from_ref(key)), Verification::Valid { .. }), "{answer}");
    receipt
}

#[tokio::test]
async fn settle_and_usage_answers_carry_receipts_that_verify_and_repeat_unchanged() {
    let fixture = signing().await;
    let key = server_key(&fixture).await;
    let (gateway, _) = fixture.token("gateway", Permission::Admin).await;
    let (secret, token_id) = fixture.token("alice", Permission::Standard).await;

    let verdict = fixture
        .post("/v1/tokens/verify", Some(&gateway), json!({ "token": secret, "reserve": { "cost_micros": 9_000 } }))
        .await
        .ok(200)
        .clone();
    let reservation = verdict["reservation"]["id"].as_str().unwrap().to_owned();
    let actual = json!({ "event_id": "call-1", "provider": "openai", "model": "gpt-4o", "input_tokens": 1200,
                         "output_tokens": 300, "cost_micros": 6_500 });
    let path = format!("/v1/reservations/{reservation}/settle");
    let settled = fixture.post(&path, Some(&gateway), actual.clone()).await.ok(200).clone();
    let receipt = verified(&settled, &key);
    assert_eq!(receipt.kind, tollgate::ReceiptKind::Settle);
    assert_eq!(receipt.token_id, token_id.to_string());
    assert_eq!(receipt.reference.as_deref(), Some(reservation.as_str()));
    assert_eq!(receipt.request_id.as_deref(), Some("call-1"));
    assert_eq!((receipt.input_tokens, receipt.output_tokens, receipt.cost_micros.micros()), (1200, 300, 6_500));
    assert_eq!(receipt.at, settled["reservation"]["closed_at"].as_str().unwrap());
    let again = fixture.post(&path, Some(&gateway), actual).await.ok(200).clone();
    assert_eq!(again["outcome"], "duplicate");
    assert_eq!(again["receipt"], settled["receipt"], "a repeat gets the same receipt");

    // A batch: one receipt per event, each for its own event id; no `at` sent, so the server's time.
    let event = |id: &str, cost: i64| {
        json!({ "event_id": id, "token_id": token_id.to_string(), "provider": "openai", "model": "gpt-4o",
                "input_tokens": 10, "output_tokens": 5, "cost_micros": cost })
    };
    let batch = json!({ "events": [event("u-1", 100), event("u-2", 200)] });
    let recorded = fixture.post("/v1/usage", Some(&gateway), batch.clone()).await.ok(200).clone();
    let receipts = Receipt::find_all(&recorded).unwrap();
    assert_eq!(receipts.len(), 2, "{recorded}");
    for (receipt, (id, cost)) in receipts.iter().zip([("u-1", 100), ("u-2", 200)]) {
        assert!(matches!(receipt.verify(std::slice::from_ref(&key)), Verification::Valid { .. }));
        assert_eq!((receipt.request_id.as_deref(), receipt.cost_micros.micros()), (Some(id), cost));
        assert_eq!(receipt.kind, tollgate::ReceiptKind::Usage);
    }
    // The second event again, alone and later: duplicate, and the receipt it got in the batch.
    let alone = fixture.post("/v1/usage", Some(&gateway), event("u-2", 200)).await.ok(200).clone();
    assert_eq!(alone["events"][0]["outcome"], "duplicate", "{alone}");
    assert_eq!(alone["events"][0]["receipt"], recorded["events"][1]["receipt"]);

    // A changed cost no longer verifies.
    let mut tampered = settled["receipt"].clone();
    tampered["cost_micros"] = json!(1);
    let tampered: Receipt = serde_json::from_value(tampered).unwrap();
    assert!(matches!(tampered.verify(&[key]), Verification::Invalid { .. }));
}

#[tokio::test]
async fn budget_reports_carry_a_receipt_for_the_agent() {
    let fixture = signing().await;
    let key = server_key(&fixture).await;
    let (admin, _) = fixture.token("root", Permission::Admin).await;
    let (_, alice) = fixture.user_jwt("alice", Role::User).await;
    let body = json!({ "provider": "openai", "secret": "sk-receipts-0123456789abcdef" });
    let provider_key = fixture.post("/v1/provider-keys", Some(&alice), body).await.ok(201)["id"].clone();
    let body = json!({ "name": "runner", "provider_key_id": provider_key });
    let agent = fixture.post("/v1/agents", Some(&alice), body).await.ok(201)["id"].as_str().unwrap().to_owned();
    let budget = json!({ "allocated_microdollars": 10_000, "reason": "launch" });
    fixture.put(&format!("/v1/agents/{agent}/budget"), Some(&admin), budget).await.ok(200);
    let issued = fixture.post(&format!("/v1/agents/{agent}/credentials"), Some(&alice), json!({})).await;
    let credential = issued.ok(201)["token"].as_str().unwrap().to_owned();
    let handshake = json!({ "provider": "openai", "requested_microdollars": 4_000 });
    let granted = fixture.post("/v1/budget/handshake", Some(&credential), handshake).await.ok(200).clone();
    let lease = granted["lease_id"].as_str().unwrap().to_owned();

    let report = json!({ "request_id": "call-1", "cost_microdollars": 1_500, "input_tokens": 900,
                         "output_tokens": 200, "model": "gpt-4o" });
    let path = format!("/v1/budget/leases/{lease}/report");
    let reported = fixture.post(&path, Some(&credential), report.clone()).await.ok(200).clone();
    let receipt = verified(&reported, &key);
    assert_eq!(receipt.kind, tollgate::ReceiptKind::Report);
    assert_eq!(receipt.agent_id.as_deref(), Some(agent.as_str()));
    assert_eq!(receipt.token_id, reported["credential"].as_str().unwrap());
    assert_eq!(receipt.reference.as_deref(), Some(lease.as_str()));
    assert_eq!((receipt.provider.as_deref(), receipt.model.as_deref()), (Some("openai"), Some("gpt-4o")));
    assert_eq!((receipt.input_tokens, receipt.output_tokens, receipt.cost_micros.micros()), (900, 200, 1_500));
    let again = fixture.post(&path, Some(&credential), report).await.ok(200).clone();
    assert_eq!(again["receipt"], reported["receipt"], "a repeated request_id gets the same receipt");
}

#[tokio::test]
async fn without_a_signer_there_is_no_receipt_and_no_key() {
    let fixture = Fixture::new().await;
    fixture.get("/v1/receipts/key", None).await.problem(404, "receipt_key_not_found");
    let (gateway, _) = fixture.token("gateway", Permission::Admin).await;
    let (_, token_id) = fixture.token("alice", Permission::Standard).await;
    let event = json!({ "event_id": "u-1", "token_id": token_id.to_string(), "provider": "openai",
                        "model": "gpt-4o", "cost_micros": 10 });
    let recorded = fixture.post("/v1/usage", Some(&gateway), event).await.ok(200).clone();
    assert!(recorded["events"][0].get("receipt").is_none(), "{recorded}");
    assert_eq!(recorded["events"][0]["outcome"], "recorded");
}
