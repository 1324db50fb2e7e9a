//! Agents, their credentials and the provider-key vault over the HTTP API: an agent fetches the
//! key assigned to it; every other caller, and every credential that should not work, is refused
//! with its status, and no refusal tells whether a key exists.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{Fixture, Reply};
use tollgate::{Permission, Role};

const ALICE_KEY: &str = "sk-alice-0123456789abcdefWXYZ";
const BOB_KEY: &str = "sk-bob-9876543210zyxwvuABCD";

/// A user with a JWT, an API token of theirs, a provider key, an agent given that key, and a credential.
struct Tenant {
    jwt: String,
    token: String,
    key: String,
    agent: String,
    credential: String,
    credential_id: String,
}

async fn tenant(fixture: &Fixture, name: &str, secret: &str) -> Tenant {
    let (user, jwt) = fixture.user_jwt(name, Role::User).await;
    let (token, _) = fixture.user_token(user, Permission::Standard).await;
    let key = fixture
        .post("/v1/provider-keys", Some(&jwt), json!({ "provider": "openai", "secret": secret, "description": name }))
        .await;
    let key = key.ok(201)["id"].as_str().unwrap().to_owned();
    let agent = fixture
        .post(
            "/v1/agents",
            Some(&jwt),
            json!({ "name": format!("{name}-agent"), "providers": ["openai"], "provider_key_id": key }),
        )
        .await;
    let agent = agent.ok(201)["id"].as_str().unwrap().to_owned();
    let (credential, credential_id) = issue(fixture, &jwt, &agent, json!({})).await;
    Tenant { jwt, token, key, agent, credential, credential_id }
}

async fn issue(fixture: &Fixture, bearer: &str, agent: &str, body: Value) -> (String, String) {
    let reply = fixture.post(&format!("/v1/agents/{agent}/credentials"), Some(bearer), body).await;
    assert_eq!(reply.headers["cache-control"], "no-store");
    let created = reply.ok(201);
    assert!(created["token"].as_str().unwrap().starts_with("tga_"), "{created}");
    (created["token"].as_str().unwrap().to_owned(), created["id"].as_str().unwrap().to_owned())
}

async fn fetch(fixture: &Fixture, agent: &str, bearer: Option<&str>) -> Reply {
    fixture.post(&format!("/v1/agents/{agent}/provider-key"), bearer, json!({})).await
}

/// The one answer for "nothing to deliver", whatever the reason: same status, code and detail.
#[track_caller]
fn no_key(reply: &Reply) -> Value {
    let problem = reply.problem(404, "provider_key_not_found").clone();
    json!({ "detail": problem["detail"], "title": problem["title"] })
}

#[tokio::test]
async fn an_agent_fetches_its_key_and_nothing_else_gets_it() {
    let fixture = Fixture::new().await;
    let alice = tenant(&fixture, "alice", ALICE_KEY).await;
    let bob = tenant(&fixture, "bob", BOB_KEY).await;
    let (admin, _) = fixture.token("root", Permission::Admin).await;

    let delivered = fetch(&fixture, &alice.agent, Some(&alice.credential)).await;
    assert_eq!(delivered.headers["cache-control"], "no-store");
    let body = delivered.ok(200);
    assert_eq!(body["secret"], ALICE_KEY);
    assert_eq!(body["provider"], "openai");
    assert_eq!(body["provider_key_id"], alice.key.as_str());

    // Another agent's id, with a valid credential: the answer does not tell that the key exists.
    let other_agent = no_key(&fetch(&fixture, &bob.agent, Some(&alice.credential)).await);
    let never_existed =
        no_key(&fetch(&fixture, &tollgate::AgentId::generate().to_string(), Some(&alice.credential)).await);
    assert_eq!(other_agent, never_existed);

    // Credentials that are not the agent's own kind are malformed here.
    for bearer in [&alice.token, &alice.jwt, &admin] {
        fetch(&fixture, &alice.agent, Some(bearer)).await.problem(401, "malformed");
    }
    fetch(&fixture, &alice.agent, None).await.problem(401, "missing_credential");
    // And an agent credential is refused on every control route.
    fixture.get("/v1/agents", Some(&alice.credential)).await.problem(401, "malformed");
    fixture.get("/v1/tokens", Some(&alice.credential)).await.problem(401, "malformed");

    // A paused agent is refused until resumed.
    fixture
        .post(&format!("/v1/agents/{}/pause", alice.agent), Some(&alice.jwt), json!({"reason": "drill"}))
        .await
        .ok(200);
    fetch(&fixture, &alice.agent, Some(&alice.credential)).await.problem(403, "agent_paused");
    fixture.post(&format!("/v1/agents/{}/resume", alice.agent), Some(&alice.jwt), json!({})).await.ok(200);
    fetch(&fixture, &alice.agent, Some(&alice.credential)).await.ok(200);

    // A disabled key is not delivered, with the same answer as no key at all.
    let key_path = format!("/v1/provider-keys/{}", alice.key);
    fixture.patch(&key_path, Some(&alice.jwt), json!({ "enabled": false })).await.ok(200);
    assert_eq!(no_key(&fetch(&fixture, &alice.agent, Some(&alice.credential)).await), never_existed);
    fixture.patch(&key_path, Some(&alice.jwt), json!({ "enabled": true })).await.ok(200);
    fetch(&fixture, &alice.agent, Some(&alice.credential)).await.ok(200);

    // A deleted key is gone from every agent at once.
    fixture.delete(&format!("/v1/provider-keys/{}", bob.key), Some(&bob.jwt)).await.ok(204);
    assert_eq!(no_key(&fetch(&fixture, &bob.agent, Some(&bob.credential)).await), never_existed);
    let bob_agent = fixture.get(&format!("/v1/agents/{}", bob.agent), Some(&bob.jwt)).await;
    assert_eq!(bob_agent.ok(200)["provider_key"], Value::Null);
    fixture.get(&format!("/v1/provider-keys/{}", bob.key), Some(&bob.jwt)).await.problem(404, "provider_key_not_found");
}

#[tokio::test]
async fn revoked_expired_and_rotated_out_credentials_are_refused() {
    let fixture = Fixture::new().await;
    let alice = tenant(&fixture, "alice", ALICE_KEY).await;
    let path = |what: &str| format!("/v1/agents/{}/credentials/{}/{what}", alice.agent, alice.credential_id);

    // Rotated with no grace: the old secret is unknown at once, the new one works.
    let rotated = fixture.post(&path("rotate"), Some(&alice.jwt), json!({})).await;
    let new_secret = rotated.ok(200)["token"].as_str().unwrap().to_owned();
    assert!(new_secret.starts_with("tga_"));
    fetch(&fixture, &alice.agent, Some(&alice.credential)).await.problem(401, "not_found");
    fetch(&fixture, &alice.agent, Some(&new_secret)).await.ok(200);

    // Revoked: refused on the very next request.
    fixture.post(&path("revoke"), Some(&alice.jwt), json!({ "reason": "leaked" })).await.ok(200);
    fetch(&fixture, &alice.agent, Some(&new_secret)).await.problem(401, "revoked");

    // Expired.
    let (short, _) = issue(&fixture, &alice.jwt, &alice.agent, json!({ "expires_in_seconds": 60 })).await;
    fetch(&fixture, &alice.agent, Some(&short)).await.ok(200);
    fixture.clock.advance(Duration::from_secs(61));
    fetch(&fixture, &alice.agent, Some(&short)).await.problem(401, "expired");

    // A credential may not outlive the maximum, and a disabled agent gets none.
    let too_long = json!({ "expires_in_seconds": 91 * 86_400 });
    let refused = fixture.post(&format!("/v1/agents/{}/credentials", alice.agent), Some(&alice.jwt), too_long).await;
    assert_eq!(refused.problem(400, "invalid_field")["field"], "expires_in");
    fixture.post(&format!("/v1/agents/{}/disable", alice.agent), Some(&alice.jwt), json!({})).await.ok(200);
    let refused = fixture.post(&format!("/v1/agents/{}/credentials", alice.agent), Some(&alice.jwt), json!({})).await;
    refused.problem(409, "conflict");

    // Listing shows the credentials of the agent, with their status, never a secret.
    let listed = fixture.get(&format!("/v1/agents/{}/credentials?status=all", alice.agent), Some(&alice.jwt)).await;
    let items = listed.ok(200)["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 2);
    assert!(
        items.iter().all(|item| item["agent"]["id"] == alice.agent.as_str() && item["agent"]["status"] == "disabled")
    );
    assert!(!listed.text().contains(&new_secret[4..]) && !listed.text().contains(&short[4..]));
    // Credentials are not API tokens: the token routes neither list nor manage them.
    let tokens = fixture.get("/v1/tokens?status=all", Some(&alice.jwt)).await;
    assert!(!tokens.text().contains(&alice.credential_id), "{}", tokens.text());
    fixture
        .post(&format!("/v1/tokens/{}/revoke", alice.credential_id), Some(&alice.jwt), json!({}))
        .await
        .problem(404, "token_not_found");
}

#[tokio::test]
async fn tenants_cannot_reach_each_other() {
    let fixture = Fixture::new().await;
    let alice = tenant(&fixture, "alice", ALICE_KEY).await;
    let bob = tenant(&fixture, "bob", BOB_KEY).await;

    // Alice cannot give bob's key to her agent (she may not even see it), nor read bob's agent.
    let assign = json!({ "provider_key_id": bob.key });
    let reply = fixture.patch(&format!("/v1/agents/{}", alice.agent), Some(&alice.jwt), assign.clone()).await;
    reply.problem(404, "provider_key_not_found");
    let reply =
        fixture.post("/v1/agents", Some(&alice.jwt), json!({ "name": "thief", "provider_key_id": bob.key })).await;
    reply.problem(404, "provider_key_not_found");
    fixture.get(&format!("/v1/agents/{}", bob.agent), Some(&alice.jwt)).await.problem(404, "agent_not_found");
    fixture
        .get(&format!("/v1/provider-keys/{}", bob.key), Some(&alice.jwt))
        .await
        .problem(404, "provider_key_not_found");
    fixture
        .get(&format!("/v1/agents/{}/credentials", bob.agent), Some(&alice.jwt))
        .await
        .problem(404, "agent_not_found");
    let revoke = format!("/v1/agents/{}/credentials/{}/revoke", bob.agent, bob.credential_id);
    fixture.post(&revoke, Some(&alice.jwt), json!({})).await.problem(404, "agent_not_found");
    fixture
        .post(&format!("/v1/agents/{}/pause", bob.agent), Some(&alice.token), json!({}))
        .await
        .problem(404, "agent_not_found");
    // Nor register an agent or store a key in bob's name.
    let as_bob = json!({ "name": "x", "owner": "bob" });
    fixture.post("/v1/agents", Some(&alice.jwt), as_bob).await.problem(403, "forbidden");
    let as_bob = json!({ "provider": "openai", "secret": "sk-forged-000000000000", "owner": "bob" });
    fixture.post("/v1/provider-keys", Some(&alice.jwt), as_bob).await.problem(403, "forbidden");

    // Lists show only her own; asking for bob's is refused.
    let agents = fixture.get("/v1/agents", Some(&alice.jwt)).await.ok(200).clone();
    let ids: Vec<&str> = agents["items"].as_array().unwrap().iter().map(|item| item["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [alice.agent.as_str()]);
    let keys = fixture.get("/v1/provider-keys", Some(&alice.token)).await.ok(200).clone();
    assert_eq!(keys["items"].as_array().unwrap().len(), 1);
    assert_eq!(keys["items"][0]["masked"], "sk-…WXYZ");
    let bob_owner = fixture.get(&format!("/v1/agents/{}", bob.agent), Some(&bob.jwt)).await.ok(200)["owner"].clone();
    let url = format!("/v1/agents?owner={}", bob_owner.as_str().unwrap());
    fixture.get(&url, Some(&alice.jwt)).await.problem(403, "forbidden");

    // Bob's key never reaches alice's agent: it is still hers that arrives.
    let delivered = fetch(&fixture, &alice.agent, Some(&alice.credential)).await;
    assert_eq!(delivered.ok(200)["secret"], ALICE_KEY);
}

#[tokio::test]
async fn roles_and_status_changes_follow_the_matrix() {
    let fixture = Fixture::new().await;
    let alice = tenant(&fixture, "alice", ALICE_KEY).await;
    let (admin, _) = fixture.token("root", Permission::Admin).await;
    let (viewer_id, viewer) = fixture.user_jwt("vera", Role::Viewer).await;

    // A viewer registers nothing, but reads the agents an admin registered for her.
    fixture.post("/v1/agents", Some(&viewer), json!({ "name": "mine" })).await.problem(403, "forbidden");
    let hers = json!({ "name": "for-vera", "owner": viewer_id.to_string() });
    let agent = fixture.post("/v1/agents", Some(&admin), hers).await.ok(201)["id"].as_str().unwrap().to_owned();
    fixture.get(&format!("/v1/agents/{agent}"), Some(&viewer)).await.ok(200);
    fixture.post(&format!("/v1/agents/{agent}/pause"), Some(&viewer), json!({})).await.problem(403, "forbidden");

    // An owner disables its agent, but only an admin brings it back.
    fixture.post(&format!("/v1/agents/{}/disable", alice.agent), Some(&alice.jwt), json!({})).await.ok(200);
    fetch(&fixture, &alice.agent, Some(&alice.credential)).await.problem(403, "agent_disabled");
    fixture
        .post(&format!("/v1/agents/{}/resume", alice.agent), Some(&alice.jwt), json!({}))
        .await
        .problem(403, "forbidden");
    fixture.post(&format!("/v1/agents/{}/resume", alice.agent), Some(&admin), json!({})).await.ok(200);
    fetch(&fixture, &alice.agent, Some(&alice.credential)).await.ok(200);

    // Deleting an agent revokes its credentials.
    fixture.delete(&format!("/v1/agents/{}", alice.agent), Some(&alice.jwt)).await.ok(204);
    fetch(&fixture, &alice.agent, Some(&alice.credential)).await.problem(401, "revoked");
    fixture.get(&format!("/v1/agents/{}", alice.agent), Some(&alice.jwt)).await.problem(404, "agent_not_found");
}

#[tokio::test]
async fn every_delivery_and_change_is_audited() {
    let fixture = Fixture::new().await;
    let alice = tenant(&fixture, "alice", ALICE_KEY).await;
    let (admin, _) = fixture.token("root", Permission::Admin).await;
    fetch(&fixture, &alice.agent, Some(&alice.credential)).await.ok(200);

    let audit = fixture.get(&format!("/v1/audit?target={}", alice.key), Some(&admin)).await.ok(200).clone();
    let actions: Vec<&str> = audit["items"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["provider_key.deliver", "provider_key.create"]);
    let delivery = &audit["items"][0];
    assert_eq!(delivery["actor"], alice.agent.as_str());
    assert_eq!(delivery["ip"], "192.0.2.10");
    assert_eq!(delivery["after"]["agent"], alice.agent.as_str());
    assert_eq!(delivery["after"]["credential"], alice.credential_id.as_str());
    assert!(!audit.to_string().contains(&ALICE_KEY[3..]), "{audit}");

    let audit = fixture.get(&format!("/v1/audit?target={}", alice.agent), Some(&admin)).await.ok(200).clone();
    let actions: Vec<&str> = audit["items"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["agent.create"]);
}

#[tokio::test]
async fn bad_input_names_the_field_and_echoes_nothing() {
    let fixture = Fixture::new().await;
    let (_, jwt) = fixture.user_jwt("alice", Role::User).await;
    let cases = [
        (json!({ "provider": "openai", "secret": "short" }), "secret"),
        (json!({ "provider": "openai", "secret": "has spaces in the secret" }), "secret"),
        (json!({ "provider": "my-llm", "secret": "sk-0123456789abcdef" }), "base_url"),
        (
            json!({ "provider": "x", "secret": "sk-0123456789abcdef", "base_url": "https://u:sk-0123456789abcdef@h" }),
            "base_url",
        ),
        (json!({ "provider": "Open AI", "secret": "sk-0123456789abcdef" }), "provider"),
        (json!({ "provider": "openai", "secret": "sk-0123456789abcdef", "balance_micros": -1 }), "balance_micros"),
    ];
    for (body, field) in cases {
        let reply = fixture.post("/v1/provider-keys", Some(&jwt), body.clone()).await;
        assert_eq!(reply.problem(400, "invalid_field")["field"], field, "{body}");
        assert!(
            !reply.text().contains("0123456789abcdef") && !reply.text().contains("in the secret"),
            "{}",
            reply.text()
        );
    }
    let reply = fixture.post("/v1/agents", Some(&jwt), json!({ "name": "a", "metadata": [1] })).await;
    assert_eq!(reply.problem(400, "invalid_field")["field"], "metadata");
    let reply = fixture.post("/v1/agents", Some(&jwt), json!({ "name": "a", "providers": ["NOT OK"] })).await;
    assert_eq!(reply.problem(400, "invalid_field")["field"], "providers");
    let reply = fixture.get("/v1/agents/agt_nope", Some(&jwt)).await;
    assert_eq!(reply.problem(400, "invalid_field")["field"], "id");
}
