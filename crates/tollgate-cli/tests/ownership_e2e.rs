//! Ownership by id, end to end: the six findings that showed tokens were not bound to their owners,
//! each replayed against the real `tollgate serve` over a real socket, the way a user or an attacker
//! would. Every one of them succeeded before ownership became ids; each must be refused now.

mod support;

use serde_json::{Value, json};
use support::{Reply, Server, create_token, workspace};

const PASSWORD: &str = "correct horse battery staple";

/// A running server with a bootstrap admin token (owned by the `ops` service account).
struct World {
    server: Server,
    admin: String,
    _directory: tempfile::TempDir,
}

impl World {
    fn new() -> Self {
        let (directory, db) = workspace();
        let (admin, _) = create_token(directory.path(), &db, "ops", "admin");
        let db = db.to_str().unwrap().to_owned();
        let server = Server::start(directory.path(), &["--db", &db, "--bcrypt-cost", "10"], &[]);
        Self { server, admin, _directory: directory }
    }

    fn call(&self, method: &str, path: &str, bearer: &str, body: Option<Value>) -> Reply {
        let body = body.map(|body| body.to_string());
        self.server.request(method, path, Some(bearer), body.as_deref())
    }

    /// Creates a user with `role` (as the bootstrap admin) and logs it in; returns (id, access JWT).
    fn user(&self, name: &str, role: &str) -> (String, String) {
        let body =
            json!({ "username": name, "email": format!("{name}@example.com"), "role": role, "password": PASSWORD });
        let created = self.call("POST", "/v1/users", &self.admin, Some(body));
        assert_eq!(created.status, 201, "{}", created.body);
        let login = json!({ "username": name, "password": PASSWORD }).to_string();
        let session = self.server.request("POST", "/v1/auth/login", None, Some(&login));
        assert_eq!(session.status, 200, "{}", session.body);
        (created.json()["id"].as_str().unwrap().to_owned(), session.json()["access_token"].as_str().unwrap().to_owned())
    }

    /// Creates a token with `bearer` (its owner is the caller unless `body` names one); returns (secret, id).
    fn token(&self, bearer: &str, body: Value) -> (String, String) {
        let created = self.call("POST", "/v1/tokens", bearer, Some(body));
        assert_eq!(created.status, 201, "{}", created.body);
        let created = created.json();
        (created["token"].as_str().unwrap().to_owned(), created["id"].as_str().unwrap().to_owned())
    }
}

#[track_caller]
fn status(reply: &Reply, expected: u16) -> Value {
    assert_eq!(reply.status, expected, "{}", reply.body);
    if reply.body.is_empty() { Value::Null } else { reply.json() }
}

/// 1. An admin who made a token for himself and was demoted to viewer cannot use it to stay admin.
#[test]
fn demotion_reaches_the_demoted_users_tokens() {
    let world = World::new();
    world.user("root", "admin"); // bob is not the last admin, so he can be demoted
    let (bob, bob_jwt) = world.user("bob", "admin");
    // No owner named: the token belongs to the logged-in caller, always.
    let (bob_token, bob_token_id) = world.token(&bob_jwt, json!({ "name": "mine", "permission": "admin" }));
    let shown = status(&world.call("GET", &format!("/v1/tokens/{bob_token_id}"), &world.admin, None), 200);
    assert_eq!((shown["owner"].as_str(), shown["owner_name"].as_str()), (Some(bob.as_str()), Some("bob")));
    status(&world.call("GET", "/v1/users", &bob_token, None), 200);

    status(&world.call("PATCH", &format!("/v1/users/{bob}"), &world.admin, Some(json!({ "role": "viewer" }))), 200);
    // The very next request acts as a viewer: no user list, no promotion back, no token changes, no usage.
    status(&world.call("GET", "/v1/users", &bob_token, None), 403);
    status(&world.call("PATCH", &format!("/v1/users/{bob}"), &bob_token, Some(json!({ "role": "admin" }))), 403);
    status(&world.call("POST", "/v1/tokens", &bob_token, Some(json!({ "name": "more" }))), 403);
    status(&world.call("POST", &format!("/v1/tokens/{bob_token_id}/rotate"), &bob_token, None), 403);
    status(&world.call("POST", &format!("/v1/tokens/{bob_token_id}/revoke"), &bob_token, None), 403);
    let event = json!({ "token_id": bob_token_id, "provider": "openai", "model": "gpt-4o", "input_tokens": 1 });
    status(&world.call("POST", "/v1/usage", &bob_token, Some(event)), 403);
    let me = status(&world.call("GET", "/v1/me", &bob_token, None), 200);
    assert_eq!((me["role"].as_str(), me["permission"].as_str()), (Some("viewer"), Some("read_only")));
    let verified = status(&world.call("GET", "/v1/auth/verify", &bob_token, None), 200);
    assert_eq!(verified["permission"], "read_only", "the gateway sees the effective permission");
    let user = status(&world.call("GET", &format!("/v1/users/{bob}"), &world.admin, None), 200);
    assert_eq!(user["role"], "viewer", "bob did not get back in");
}

/// 2. A limit on a user governs the tokens that user creates, and usage reports by user are filled.
#[test]
fn user_limits_govern_the_users_tokens() {
    let world = World::new();
    let (alice, alice_jwt) = world.user("alice", "user");
    let (alice_token, alice_token_id) = world.token(&alice_jwt, json!({ "name": "gateway" }));
    let limit = json!({ "max": 2 });
    status(&world.call("PUT", &format!("/v1/limits/user/{alice}/requests_per_day"), &world.admin, Some(limit)), 200);
    for _ in 0..2 {
        status(&world.call("GET", "/v1/auth/verify", &alice_token, None), 200);
    }
    let refused = status(&world.call("GET", "/v1/auth/verify", &alice_token, None), 429);
    assert_eq!(refused["code"], "quota_exceeded");
    let limits = status(&world.call("GET", &format!("/v1/limits/user/{alice}"), &world.admin, None), 200);
    assert_eq!(limits["items"][0]["used"], 2, "{limits}");

    let event = json!({ "token_id": alice_token_id, "provider": "openai", "model": "gpt-4o", "input_tokens": 100 });
    // Answered means written: the report sees it at once.
    status(&world.call("POST", "/v1/usage", &world.admin, Some(event)), 200);
    let report = status(&world.call("GET", &format!("/v1/usage?owner={alice}&hours=1"), &alice_jwt, None), 200);
    assert_eq!(report["totals"]["input_tokens"], 100, "{report}");
    let by_owner = status(&world.call("GET", "/v1/usage?group_by=owner&hours=1", &world.admin, None), 200);
    assert_eq!(by_owner["groups"][0]["key"], alice.as_str(), "{by_owner}");
}

/// 3. A user named like the bootstrap token's owner gets nothing of it: the name cannot even be taken.
#[test]
fn a_name_collision_hands_nothing_over() {
    let world = World::new();
    let listed = status(&world.call("GET", "/v1/tokens", &world.admin, None), 200);
    let admin_token = listed["items"][0]["id"].as_str().unwrap().to_owned();
    let taken = json!({ "username": "ops", "email": "ops@example.com", "role": "user", "password": PASSWORD });
    let refused = status(&world.call("POST", "/v1/users", &world.admin, Some(taken)), 409);
    assert!(refused["detail"].as_str().unwrap().contains("taken"), "{refused}");
    // Someone else entirely sees nothing of it and cannot rotate it.
    let (_, eve_jwt) = world.user("eve", "user");
    status(&world.call("GET", &format!("/v1/tokens/{admin_token}"), &eve_jwt, None), 404);
    status(&world.call("POST", &format!("/v1/tokens/{admin_token}/rotate"), &eve_jwt, None), 404);
    let own = status(&world.call("GET", "/v1/tokens", &eve_jwt, None), 200);
    assert!(own["items"].as_array().unwrap().is_empty(), "{own}");
    // Naming another owner as a non-admin is refused without saying whether it exists.
    let forged = json!({ "name": "mine now", "owner": "ops", "permission": "admin" });
    status(&world.call("POST", "/v1/tokens", &eve_jwt, Some(forged)), 403);
    let nobody = json!({ "name": "x", "owner": "nobody-at-all" });
    status(&world.call("POST", "/v1/tokens", &eve_jwt, Some(nobody)), 403);
}

/// 4. A project is an entity: only its members bind tokens to it and spend its quota.
#[test]
fn only_members_bind_tokens_to_a_project() {
    let world = World::new();
    let (carol, carol_jwt) = world.user("carol", "user");
    let (_, mallory_jwt) = world.user("mallory", "user");
    let project = status(&world.call("POST", "/v1/projects", &world.admin, Some(json!({ "name": "search" }))), 201);
    let search = project["id"].as_str().unwrap().to_owned();
    let member = json!({ "role": "member" });
    status(&world.call("PUT", &format!("/v1/projects/{search}/members/{carol}"), &world.admin, Some(member)), 200);
    status(
        &world.call(
            "PUT",
            &format!("/v1/limits/project/{search}/requests_per_day"),
            &world.admin,
            Some(json!({ "max": 1 })),
        ),
        200,
    );

    // By name or by id, a non-member is told the project does not exist, and nothing is stored.
    status(&world.call("POST", "/v1/tokens", &mallory_jwt, Some(json!({ "name": "x", "project": "search" }))), 404);
    status(&world.call("POST", "/v1/tokens", &mallory_jwt, Some(json!({ "name": "x", "project": search }))), 404);
    status(&world.call("POST", "/v1/tokens", &mallory_jwt, Some(json!({ "name": "x", "project": "no-such" }))), 404);
    let mine = status(&world.call("GET", "/v1/tokens", &mallory_jwt, None), 200);
    assert!(mine["items"].as_array().unwrap().is_empty());
    status(&world.call("GET", &format!("/v1/projects/{search}"), &mallory_jwt, None), 404);
    status(&world.call("GET", &format!("/v1/usage?project={search}&hours=1"), &mallory_jwt, None), 404);

    // The member's token spends the project's quota; the project's report is the member's usage only.
    let (carol_token, _) = world.token(&carol_jwt, json!({ "name": "search", "project": "search" }));
    status(&world.call("GET", "/v1/auth/verify", &carol_token, None), 200);
    status(&world.call("GET", "/v1/auth/verify", &carol_token, None), 429);
    let projects = status(&world.call("GET", "/v1/projects", &carol_jwt, None), 200);
    assert_eq!(projects["items"][0]["id"], search.as_str());
    // Removing the member revokes its tokens bound to the project.
    status(&world.call("DELETE", &format!("/v1/projects/{search}/members/{carol}"), &world.admin, None), 200);
    let revoked = status(&world.call("GET", "/v1/auth/verify", &carol_token, None), 401);
    assert_eq!(revoked["code"], "revoked");
}

/// 5. Constraints an admin set on someone's token can be tightened by that owner, never loosened.
#[test]
fn owners_only_tighten_what_an_admin_imposed() {
    let world = World::new();
    let (_, alice_jwt) = world.user("alice", "user");
    let (_, id) = world.token(
        &world.admin,
        json!({ "name": "office", "owner": "alice", "ip_allow": ["10.1.2.0/24"], "allowed_tools": ["search"], "expires_in_seconds": 3600 }),
    );
    let path = format!("/v1/tokens/{id}");
    for loosening in [
        json!({ "ip_allow": [] }),
        json!({ "ip_allow": ["10.0.0.0/8"] }),
        json!({ "allowed_tools": [] }),
        json!({ "allowed_tools": ["search", "shell"] }),
        json!({ "expires_at": null }),
        json!({ "expires_in_seconds": 7200 }),
    ] {
        let refused = status(&world.call("PATCH", &path, &alice_jwt, Some(loosening.clone())), 403);
        assert!(refused["detail"].as_str().unwrap().contains("only an admin"), "{loosening}: {refused}");
    }
    let tightened = json!({ "ip_allow": ["10.1.2.0/25"], "expires_in_seconds": 600, "name": "office (tighter)" });
    let token = status(&world.call("PATCH", &path, &alice_jwt, Some(tightened)), 200);
    assert_eq!(token["ip_allow"], json!(["10.1.2.0/25"]));
    assert_eq!(token["allowed_tools"], json!(["search"]));
    assert!(token["expires_at"].is_string());
    // The admin may still loosen them.
    status(&world.call("PATCH", &path, &world.admin, Some(json!({ "ip_allow": [] }))), 200);
}

/// 6. The smaller ones: no token-id oracle in usage, no echo of rejected input, and `GET /v1/me`.
#[test]
fn refusals_reveal_nothing_and_callers_can_ask_who_they_are() {
    let world = World::new();
    let (alice, alice_jwt) = world.user("alice", "user");
    let (bob_token, _) = {
        let (_, bob_jwt) = world.user("bob", "user");
        world.token(&bob_jwt, json!({ "name": "bob's" }))
    };
    let (_, alice_token_id) = world.token(&alice_jwt, json!({ "name": "alice's" }));
    let event = |token: &str| json!({ "token_id": token, "provider": "openai", "model": "gpt-4o", "input_tokens": 1 });
    let foreign = status(&world.call("POST", "/v1/usage", &bob_token, Some(event(&alice_token_id))), 404);
    let unknown =
        status(&world.call("POST", "/v1/usage", &bob_token, Some(event("tok_0192f3a4b5c6d7e8f90a1b2c3d4e5f60"))), 404);
    assert_eq!(foreign, unknown, "someone else's token and no token answer alike");

    let secret = "hunter2-is-my-password";
    let role =
        status(&world.call("PATCH", &format!("/v1/users/{alice}"), &world.admin, Some(json!({ "role": secret }))), 400);
    let key =
        status(&world.call("PATCH", &format!("/v1/users/{alice}"), &world.admin, Some(json!({ secret: 1 }))), 400);
    let cost = json!({ "token_id": alice_token_id, "provider": "openai", "model": "gpt-4o", "cost_micros": secret });
    let money = status(&world.call("POST", "/v1/usage", &world.admin, Some(cost)), 400);
    for problem in [&role, &key, &money] {
        assert!(!problem.to_string().contains("hunter2"), "echoed: {problem}");
    }
    assert_eq!(role["field"], "role");

    let me = status(&world.call("GET", "/v1/me", &alice_jwt, None), 200);
    assert_eq!(
        (me["kind"].as_str(), me["owner"].as_str(), me["role"].as_str()),
        (Some("user"), Some(alice.as_str()), Some("user"))
    );
    let as_token = status(&world.call("GET", "/v1/me", &bob_token, None), 200);
    assert_eq!((as_token["kind"].as_str(), as_token["permission"].as_str()), (Some("token"), Some("standard")));
    assert!(as_token["token"]["id"].is_string());
    // A JWT is no API token: the gateway's verify route says so rather than pretending.
    status(&world.call("GET", "/v1/auth/verify", &alice_jwt, None), 401);
}
