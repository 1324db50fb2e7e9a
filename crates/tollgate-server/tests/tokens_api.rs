//! The token lifecycle over HTTP: create, show, list with paging, update, revoke, rotate.

mod support;

use std::time::Duration;

use serde_json::json;
use support::{Fixture, START};
use tollgate::Permission;

#[tokio::test]
async fn create_shows_the_secret_once_and_the_token_verifies() {
    let fixture = Fixture::new().await;
    let (admin, _) = fixture.token("root", Permission::Admin).await;
    let alice = fixture.owner("alice").await;
    let search = fixture.project("search").await;
    fixture
        .users
        .put_project_member(&tollgate::Caller::operator(), &search, &alice, tollgate::ProjectRole::Member)
        .await
        .unwrap();
    let reply = fixture
        .post(
            "/v1/tokens",
            Some(&admin),
            json!({
                "name": "ci deploy", "owner": "alice", "project": "search", "permission": "read_only",
                "scopes": ["chat:write", "chat:write"], "allowed_tools": ["search"], "ip_allow": ["10.0.0.0/8"],
                "expires_in_seconds": 3600, "description": "for CI",
            }),
        )
        .await;
    let created = reply.ok(201);
    let id = created["id"].as_str().unwrap();
    let secret = created["token"].as_str().unwrap();
    assert!(id.starts_with("tok_") && secret.starts_with("tg_"));
    assert_eq!(reply.headers["location"], format!("/v1/tokens/{id}"));
    assert_eq!(reply.headers["cache-control"], "no-store");
    assert_eq!(created["scopes"], json!(["chat:write"]));
    assert_eq!(created["status"], "active");
    assert_eq!(created["permission"], "read_only");
    assert_eq!((&created["owner"], &created["owner_name"]), (&json!(alice.to_string()), &json!("alice")));
    assert_eq!((&created["project"], &created["project_name"]), (&json!(search.to_string()), &json!("search")));
    assert_eq!(
        created["imposed"],
        json!(["ip_allow", "allowed_tools", "scopes", "expires_at"]),
        "set by an admin for alice"
    );
    let expiry = tollgate::Timestamp::parse_rfc3339("t", created["expires_at"].as_str().unwrap()).unwrap();
    assert_eq!(expiry, START.saturating_add(Duration::from_secs(3600)));

    // The secret is never shown again.
    let shown = fixture.get(&format!("/v1/tokens/{id}"), Some(&admin)).await;
    assert_eq!(shown.ok(200)["id"], id);
    assert!(shown.json.get("token").is_none());
    assert!(!shown.text().contains(secret));

    let request = tollgate::VerifyRequest { ip: Some("10.1.2.3".parse().unwrap()), tool: Some("search".into()) };
    let context = fixture.tokens.verify(secret, &request).await.unwrap();
    assert_eq!(context.token_id.to_string(), id);
}

#[tokio::test]
async fn lists_page_through_every_token_exactly_once() {
    let fixture = Fixture::new().await;
    let (admin, admin_id) = fixture.token("root", Permission::Admin).await;
    let mut created = vec![admin_id.to_string()];
    for _ in 0..6 {
        created.push(fixture.token("alice", Permission::Standard).await.1.to_string());
    }
    let mut seen = Vec::new();
    let mut path = "/v1/tokens?limit=3".to_owned();
    let mut pages = 0;
    loop {
        let reply = fixture.get(&path, Some(&admin)).await;
        let page = reply.ok(200);
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 3);
        seen.extend(items.iter().map(|item| item["id"].as_str().unwrap().to_owned()));
        pages += 1;
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/tokens?limit=3&cursor={cursor}"),
            None => break,
        }
    }
    assert!(pages >= 3);
    created.reverse();
    assert_eq!(seen, created, "newest first, no duplicates, nothing missing");

    let alice = fixture.owner("alice").await;
    let alice = fixture.get(&format!("/v1/tokens?owner={alice}&limit=1000"), Some(&admin)).await;
    assert_eq!(alice.ok(200)["items"].as_array().unwrap().len(), 6);
    fixture.get("/v1/tokens?limit=1001", Some(&admin)).await.problem(400, "invalid_field");
    fixture.get("/v1/tokens?limit=0", Some(&admin)).await.problem(400, "invalid_field");
    let bad_cursor = fixture.get("/v1/tokens?cursor=nonsense", Some(&admin)).await;
    assert_eq!(bad_cursor.problem(400, "invalid_field")["field"], "cursor");
}

#[tokio::test]
async fn status_filter_selects_revoked_and_expired_tokens() {
    let fixture = Fixture::new().await;
    let (admin, _) = fixture.token("root", Permission::Admin).await;
    let (_, revoked) = fixture.token("alice", Permission::Standard).await;
    fixture.post(&format!("/v1/tokens/{revoked}/revoke"), Some(&admin), json!({})).await.ok(200);
    let expiring = fixture
        .post("/v1/tokens", Some(&admin), json!({ "name": "short", "owner": "alice", "expires_in_seconds": 60 }))
        .await;
    let expiring = expiring.ok(201)["id"].as_str().unwrap().to_owned();
    fixture.clock.advance(Duration::from_secs(61));
    let ids = |reply: &support::Reply| -> Vec<String> {
        reply.json["items"].as_array().unwrap().iter().map(|item| item["id"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(ids(&fixture.get("/v1/tokens?status=revoked", Some(&admin)).await), [revoked.to_string()]);
    assert_eq!(ids(&fixture.get("/v1/tokens?status=expired", Some(&admin)).await), [expiring.as_str()]);
    assert_eq!(ids(&fixture.get("/v1/tokens?status=all", Some(&admin)).await).len(), 3);
    let shown = fixture.get(&format!("/v1/tokens/{expiring}"), Some(&admin)).await;
    assert_eq!(shown.ok(200)["status"], "expired");
}

#[tokio::test]
async fn patch_changes_only_the_named_fields() {
    let fixture = Fixture::new().await;
    let (admin, _) = fixture.token("root", Permission::Admin).await;
    let (_, id) = fixture.token("alice", Permission::Standard).await;
    let path = format!("/v1/tokens/{id}");
    let reply = fixture
        .patch(&path, Some(&admin), json!({ "name": "renamed", "allowed_tools": ["b", "a"], "expires_in_seconds": 10 }))
        .await;
    let token = reply.ok(200);
    assert_eq!(token["name"], "renamed");
    assert_eq!(token["allowed_tools"], json!(["a", "b"]));
    assert!(token["expires_at"].is_string());
    assert_eq!(token["owner_name"], "alice");
    let cleared = fixture.patch(&path, Some(&admin), json!({ "expires_at": null })).await;
    assert!(cleared.ok(200)["expires_at"].is_null());
    assert_eq!(cleared.json["name"], "renamed");
    fixture.patch(&path, Some(&admin), json!({})).await.problem(400, "invalid_field");
    let past = fixture.patch(&path, Some(&admin), json!({ "expires_at": "2000-01-01T00:00:00Z" })).await;
    assert_eq!(past.problem(400, "invalid_field")["field"], "expires_at");
    let both = json!({ "expires_at": "2031-01-01T00:00:00Z", "expires_in_seconds": 5 });
    fixture.patch(&path, Some(&admin), both).await.problem(400, "invalid_field");
}

#[tokio::test]
async fn revoke_is_immediate_and_idempotent() {
    let fixture = Fixture::new().await;
    let (admin, _) = fixture.token("root", Permission::Admin).await;
    let (secret, id) = fixture.token("alice", Permission::Standard).await;
    fixture.get("/v1/auth/verify", Some(&secret)).await.ok(200);
    let revoke = format!("/v1/tokens/{id}/revoke");
    let reply = fixture.post(&revoke, Some(&admin), json!({ "reason": "leaked" })).await;
    assert_eq!(reply.ok(200)["status"], "revoked");
    assert_eq!(reply.json["revoke_reason"], "leaked");
    fixture.get("/v1/auth/verify", Some(&secret)).await.problem(401, "revoked");
    // No body at all is fine, and revoking again changes nothing.
    let again = fixture.send(support::request(axum::http::Method::POST, &revoke, Some(&admin), None)).await;
    assert_eq!(again.ok(200)["revoke_reason"], "leaked");
    // A revoked token cannot be changed or rotated.
    let rename = fixture.patch(&format!("/v1/tokens/{id}"), Some(&admin), json!({ "name": "x" })).await;
    rename.problem(409, "conflict");
    fixture.post(&format!("/v1/tokens/{id}/rotate"), Some(&admin), json!({})).await.problem(409, "conflict");
}

#[tokio::test]
async fn rotate_keeps_the_id_and_the_old_secret_works_for_the_grace_period() {
    let fixture = Fixture::new().await;
    let (admin, _) = fixture.token("root", Permission::Admin).await;
    let (old_secret, id) = fixture.token("alice", Permission::Standard).await;
    let reply = fixture.post(&format!("/v1/tokens/{id}/rotate"), Some(&admin), json!({ "grace_seconds": 60 })).await;
    let rotated = reply.ok(201);
    assert_eq!(rotated["id"], id.to_string());
    let new_secret = rotated["token"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, old_secret);
    assert_eq!(reply.headers["cache-control"], "no-store");
    let via_old = fixture.get("/v1/auth/verify", Some(&old_secret)).await;
    assert_eq!(via_old.ok(200)["via_previous_secret"], true);
    fixture.clock.advance(Duration::from_secs(61));
    fixture.get("/v1/auth/verify", Some(&old_secret)).await.problem(401, "not_found");
    assert_eq!(fixture.get("/v1/auth/verify", Some(&new_secret)).await.ok(200)["via_previous_secret"], false);
    let rotate = format!("/v1/tokens/{id}/rotate");
    let too_long = fixture.post(&rotate, Some(&admin), json!({ "grace_seconds": 99999999 })).await;
    assert_eq!(too_long.problem(400, "invalid_field")["field"], "grace_seconds");
}

#[tokio::test]
async fn unknown_tokens_are_not_found() {
    let fixture = Fixture::new().await;
    let (admin, _) = fixture.token("root", Permission::Admin).await;
    let missing = tollgate::TokenId::generate();
    fixture.get(&format!("/v1/tokens/{missing}"), Some(&admin)).await.problem(404, "token_not_found");
    fixture
        .post(&format!("/v1/tokens/{missing}/revoke"), Some(&admin), json!({}))
        .await
        .problem(404, "token_not_found");
}

#[tokio::test]
async fn admins_clean_up_long_inactive_tokens() {
    let fixture = Fixture::new().await;
    let (admin, _) = fixture.token("root", Permission::Admin).await;
    let (user, _) = fixture.token("alice", Permission::Standard).await;
    let (_, old) = fixture.token("alice", Permission::Standard).await;
    fixture.post(&format!("/v1/tokens/{old}/revoke"), Some(&admin), serde_json::json!({})).await.ok(200);
    let too_young = serde_json::json!({ "older_than_seconds": 60 });
    let reply = fixture.post("/v1/tokens/cleanup", Some(&admin), too_young).await;
    assert_eq!(reply.problem(400, "invalid_field")["field"], "older_than");
    fixture
        .post("/v1/tokens/cleanup", Some(&user), serde_json::json!({ "older_than_seconds": 0, "force": true }))
        .await
        .problem(403, "forbidden");
    fixture.clock.advance(std::time::Duration::from_secs(2 * 3600));
    let done =
        fixture.post("/v1/tokens/cleanup", Some(&admin), serde_json::json!({ "older_than_seconds": 3600 })).await;
    assert_eq!(done.ok(200)["deleted"], 1);
    fixture.get(&format!("/v1/tokens/{old}"), Some(&admin)).await.problem(404, "token_not_found");
}

/// An admin moves a token in from another deployment with its id and secret: it verifies here, the
/// answer never repeats the secret, and only admins may do it.
#[tokio::test]
async fn an_admin_imports_a_token_with_its_id_and_secret() {
    let fixture = Fixture::new().await;
    let (admin, _) = fixture.token("root", Permission::Admin).await;
    let (standard, _) = fixture.token("alice", Permission::Standard).await;
    fixture.owner("bob").await;
    let secret = tollgate::TokenSecret::generate(&tollgate::TokenPrefix::default()).unwrap();
    let id = tollgate::TokenId::generate();
    let body = json!({ "id": id, "secret": secret.expose(), "token": { "name": "moved", "owner": "bob" } });

    let refused = fixture.post("/v1/tokens/import", Some(&standard), body.clone()).await;
    refused.problem(403, "forbidden");
    let reply = fixture.post("/v1/tokens/import", Some(&admin), body.clone()).await;
    let imported = reply.ok(201);
    assert_eq!(imported["id"], json!(id));
    assert_eq!(reply.headers["location"], format!("/v1/tokens/{id}"));
    assert!(!reply.text().contains(secret.expose()), "the secret is never echoed");
    let verified = fixture.get("/v1/auth/verify", Some(secret.expose())).await;
    assert_eq!(verified.ok(200)["token_id"], json!(id));

    let again = fixture.post("/v1/tokens/import", Some(&admin), body).await;
    again.problem(409, "conflict");
    let foreign = json!({ "id": tollgate::TokenId::generate(), "secret": "sk-not-ours", "token": { "name": "x" } });
    let problem = fixture.post("/v1/tokens/import", Some(&admin), foreign).await;
    assert_eq!(problem.problem(400, "invalid_field")["field"], "secret");
    assert!(!problem.text().contains("sk-not-ours"), "a rejected value is not echoed");
}
