//! Users and the audit log over HTTP: the lifecycle an admin drives, audited with the client
//! address, and bad input answered 4xx naming the field.

mod support;

use serde_json::json;
use support::{Fixture, PASSWORD};
use tollgate::Role;

#[tokio::test]
async fn an_admin_runs_a_users_lifecycle() {
    let fixture = Fixture::new().await;
    let (_, admin) = fixture.user_jwt("root", Role::Admin).await;
    let reply = fixture
        .post(
            "/v1/users",
            Some(&admin),
            json!({ "username": "Dana", "email": "dana@example.com", "role": "viewer", "password": PASSWORD }),
        )
        .await;
    let created = reply.ok(201).clone();
    assert!(!reply.text().contains(PASSWORD) && !reply.text().contains("$2"), "{}", reply.text());
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(reply.headers["location"], format!("/v1/users/{id}"));
    assert_eq!(created["username"], "dana");
    let path = format!("/v1/users/{id}");
    assert_eq!(fixture.get(&path, Some(&admin)).await.ok(200)["role"], "viewer");
    assert_eq!(fixture.patch(&path, Some(&admin), json!({ "role": "user" })).await.ok(200)["role"], "user");

    // Paging and filters.
    let page = fixture.get("/v1/users?role=user&limit=1", Some(&admin)).await.ok(200).clone();
    assert_eq!(page["items"][0]["id"], id.as_str());
    let all = fixture.get("/v1/users?limit=1", Some(&admin)).await.ok(200).clone();
    let cursor = all["next_cursor"].as_str().unwrap();
    let next = fixture.get(&format!("/v1/users?limit=1&cursor={cursor}"), Some(&admin)).await.ok(200).clone();
    assert_ne!(next["items"][0]["id"], all["items"][0]["id"]);

    // Failed logins lock; unlock clears.
    for _ in 0..5 {
        fixture.post("/v1/auth/login", None, json!({ "username": "dana", "password": "wrong wrong" })).await;
    }
    assert!(fixture.get(&path, Some(&admin)).await.ok(200)["locked_until"].is_string());
    assert_eq!(fixture.post(&format!("{path}/unlock"), Some(&admin), json!({})).await.ok(200)["failed_logins"], 0);

    // Reset: the new password must be changed at the next login.
    let reset = json!({ "password": "a brand new password" });
    assert_eq!(
        fixture.post(&format!("{path}/reset-password"), Some(&admin), reset).await.ok(200)["must_change_password"],
        true
    );
    fixture
        .post("/v1/auth/login", None, json!({ "username": "dana", "password": "a brand new password" }))
        .await
        .problem(403, "password_change_required");

    // Suspend, activate, delete.
    let suspended = fixture.post(&format!("{path}/suspend"), Some(&admin), json!({ "reason": "audit" })).await;
    assert_eq!(suspended.ok(200)["status"], "suspended");
    assert_eq!(fixture.post(&format!("{path}/activate"), Some(&admin), json!({})).await.ok(200)["status"], "active");
    let deleted = fixture.delete(&format!("{path}?reason=left"), Some(&admin)).await;
    assert_eq!(deleted.ok(200)["status"], "deleted");
    assert_eq!(fixture.get(&path, Some(&admin)).await.ok(200)["status_reason"], "left");
}

#[tokio::test]
async fn mutations_are_audited_with_the_client_address_and_the_chain_verifies() {
    let fixture = Fixture::new().await;
    let (admin_id, admin) = fixture.user_jwt("root", Role::Admin).await;
    let bob = fixture.user("bob", Role::User).await;
    fixture.post(&format!("/v1/users/{bob}/suspend"), Some(&admin), json!({ "reason": "tests" })).await.ok(200);
    let entries = fixture.get(&format!("/v1/audit?target={bob}&actor={admin_id}"), Some(&admin)).await.ok(200).clone();
    let entry = &entries["items"][0];
    assert_eq!(entry["action"], "user.suspend");
    assert_eq!(entry["ip"], "192.0.2.10");
    assert_eq!(entry["reason"], "tests");
    assert_eq!(entries["items"].as_array().unwrap().len(), 1);
    let later = fixture.get("/v1/audit?since=2999-01-01T00:00:00Z", Some(&admin)).await.ok(200).clone();
    assert!(later["items"].as_array().unwrap().is_empty());
    let report = fixture.get("/v1/audit/verify", Some(&admin)).await.ok(200).clone();
    assert_eq!(report["intact"], true);
    assert!(report["entries_checked"].as_u64().unwrap() >= 4);
}

#[tokio::test]
async fn bad_user_input_names_the_field() {
    let fixture = Fixture::new().await;
    let (_, admin) = fixture.user_jwt("root", Role::Admin).await;
    let bob = fixture.user("bob", Role::User).await;
    let user = |username: &str, email: &str, role: &str, password: &str| json!({ "username": username, "email": email, "role": role, "password": password });
    let cases = [
        ("/v1/users", user("x", "x@example.com", "user", PASSWORD), "username"),
        ("/v1/users", user("xavier", "not-an-email", "user", PASSWORD), "email"),
        ("/v1/users", user("xavier", "x@example.com", "owner", PASSWORD), "role"),
        ("/v1/users", user("xavier", "x@example.com", "user", "short"), "password"),
        ("/v1/users", json!({ "username": "xavier" }), "email"),
    ];
    for (path, body, field) in cases {
        let reply = fixture.post(path, Some(&admin), body.clone()).await;
        assert_eq!(reply.problem(400, "invalid_field")["field"], field, "{body}");
    }
    let path = format!("/v1/users/{bob}");
    #[track_caller]
    fn field(reply: support::Reply) -> serde_json::Value {
        reply.problem(400, "invalid_field")["field"].clone()
    }
    assert_eq!(field(fixture.patch(&path, Some(&admin), json!({ "email": "not-an-email" })).await), "email");
    assert_eq!(
        field(fixture.patch(&path, Some(&admin), json!({ "email": "b@example.com", "role": "x" })).await),
        "role"
    );
    assert_eq!(field(fixture.patch(&path, Some(&admin), json!({})).await), "body");
    assert_eq!(field(fixture.patch(&path, Some(&admin), json!({ "role": 3 })).await), "role");
    assert_eq!(field(fixture.post(&format!("{path}/suspend"), Some(&admin), json!({})).await), "reason");
    assert_eq!(field(fixture.post(&format!("{path}/suspend"), Some(&admin), json!({ "reason": " " })).await), "reason");
    assert_eq!(field(fixture.get("/v1/users/tok_123", Some(&admin)).await), "id");
    assert_eq!(field(fixture.get("/v1/users?limit=0", Some(&admin)).await), "limit");
    assert_eq!(field(fixture.get("/v1/audit?since=yesterday", Some(&admin)).await), "since");
    assert_eq!(
        field(fixture.get("/v1/audit?colour=red", Some(&admin)).await),
        "query",
        "an unknown key is not repeated"
    );
    // A duplicate username is a conflict, and nothing was stored by the refusals above.
    let taken = fixture.post("/v1/users", Some(&admin), user("bob", "other@example.com", "user", PASSWORD)).await;
    taken.problem(409, "conflict");
    let listed = fixture.get("/v1/users", Some(&admin)).await.ok(200).clone();
    assert_eq!(listed["items"].as_array().unwrap().len(), 2);
    // Unknown users are 404.
    let unknown = format!("/v1/users/{}", tollgate::UserId::generate());
    fixture.get(&unknown, Some(&admin)).await.problem(404, "user_not_found");
}

#[tokio::test]
async fn admins_change_emails_and_the_new_address_logs_in() {
    let fixture = Fixture::new().await;
    let (admin_id, admin) = fixture.user_jwt("root", Role::Admin).await;
    let (bob, bob_jwt) = fixture.user_jwt("bob", Role::User).await;
    let carol = fixture.user("carol", Role::User).await;
    let bob_path = format!("/v1/users/{bob}");

    // Users do not move their own login name.
    fixture.patch(&bob_path, Some(&bob_jwt), json!({ "email": "bob@mine.example" })).await.problem(403, "forbidden");
    let changed = fixture.patch(&bob_path, Some(&admin), json!({ "email": "Bob@New.Example" })).await.ok(200).clone();
    assert_eq!(changed["email"], "bob@new.example");
    let login = json!({ "email": "BOB@new.example", "password": PASSWORD });
    assert_eq!(fixture.post("/v1/auth/login", None, login).await.ok(200)["user_id"], bob.to_string());
    let old = json!({ "email": "bob@example.com", "password": PASSWORD });
    fixture.post("/v1/auth/login", None, old).await.problem(401, "invalid_credentials");

    // Taken in any case: 409, nothing changed.
    let carol_path = format!("/v1/users/{carol}");
    let taken = fixture.patch(&carol_path, Some(&admin), json!({ "email": "BOB@NEW.example" })).await;
    taken.problem(409, "conflict");
    assert_eq!(fixture.get(&carol_path, Some(&admin)).await.ok(200)["email"], "carol@example.com");
    // Both fields at once.
    let both = fixture.patch(&carol_path, Some(&admin), json!({ "email": "c@example.org", "role": "viewer" })).await;
    let both = both.ok(200).clone();
    assert_eq!((both["email"].clone(), both["role"].clone()), (json!("c@example.org"), json!("viewer")));

    let entries = fixture.get(&format!("/v1/audit?target={bob}&actor={admin_id}"), Some(&admin)).await.ok(200).clone();
    let entry = &entries["items"][0];
    assert_eq!((entry["action"].clone(), entry["ip"].clone()), (json!("user.set_email"), json!("192.0.2.10")));
    assert_eq!(entry["before"]["email"], "bob@example.com");
    assert_eq!(entry["after"]["email"], "bob@new.example");
}
