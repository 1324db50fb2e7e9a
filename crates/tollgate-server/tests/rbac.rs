//! The permission matrix over HTTP: admin, standard and read_only tokens against every token
//! endpoint, on their own tokens and on somebody else's. The facade decides (authz.rs); this
//! checks that the server passes the right principal and maps each decision to its status.

mod support;

use axum::http::Method;
use serde_json::{Value, json};
use support::{Fixture, request};
use tollgate::Permission;

/// Who calls: the admin `root`, the standard `alice` or the read-only `vera`.
#[derive(Debug, Clone, Copy)]
enum Actor {
    Admin,
    Standard,
    ReadOnly,
}

/// One cell: the actor, the method, the path (`{alice}`, `{vera}`, `{bob}` are fresh tokens of
/// those owners, `{owner:bob}` is bob's owner id), the body, and the expected status.
type Cell = (Actor, Method, &'static str, Option<Value>, u16);

fn cells() -> Vec<Cell> {
    use Actor::*;
    let own = |owner: &str, permission: &str| Some(json!({ "name": "t", "owner": owner, "permission": permission }));
    let rename = || Some(json!({ "name": "renamed" }));
    vec![
        // Create.
        (Admin, Method::POST, "/v1/tokens", own("bob", "admin"), 201),
        (Standard, Method::POST, "/v1/tokens", own("alice", "standard"), 201),
        (Standard, Method::POST, "/v1/tokens", own("alice", "read_only"), 201),
        (Standard, Method::POST, "/v1/tokens", own("alice", "admin"), 403),
        (Standard, Method::POST, "/v1/tokens", own("bob", "standard"), 403),
        (ReadOnly, Method::POST, "/v1/tokens", own("vera", "read_only"), 403),
        // List.
        (Admin, Method::GET, "/v1/tokens?owner={owner:bob}", None, 200),
        (Standard, Method::GET, "/v1/tokens", None, 200),
        (Standard, Method::GET, "/v1/tokens?owner={owner:alice}", None, 200),
        (Standard, Method::GET, "/v1/tokens?owner={owner:bob}", None, 403),
        (ReadOnly, Method::GET, "/v1/tokens", None, 200),
        (ReadOnly, Method::GET, "/v1/tokens?owner={owner:bob}", None, 403),
        // Show.
        (Admin, Method::GET, "/v1/tokens/{bob}", None, 200),
        (Standard, Method::GET, "/v1/tokens/{alice}", None, 200),
        (Standard, Method::GET, "/v1/tokens/{bob}", None, 404),
        (ReadOnly, Method::GET, "/v1/tokens/{vera}", None, 200),
        (ReadOnly, Method::GET, "/v1/tokens/{bob}", None, 404),
        // Update.
        (Admin, Method::PATCH, "/v1/tokens/{bob}", rename(), 200),
        (Standard, Method::PATCH, "/v1/tokens/{alice}", rename(), 200),
        (Standard, Method::PATCH, "/v1/tokens/{bob}", rename(), 404),
        (ReadOnly, Method::PATCH, "/v1/tokens/{vera}", rename(), 403),
        (ReadOnly, Method::PATCH, "/v1/tokens/{bob}", rename(), 404),
        // Revoke.
        (Admin, Method::POST, "/v1/tokens/{bob}/revoke", None, 200),
        (Standard, Method::POST, "/v1/tokens/{alice}/revoke", None, 200),
        (Standard, Method::POST, "/v1/tokens/{bob}/revoke", None, 404),
        (ReadOnly, Method::POST, "/v1/tokens/{vera}/revoke", None, 403),
        // Rotate.
        (Admin, Method::POST, "/v1/tokens/{bob}/rotate", None, 201),
        (Standard, Method::POST, "/v1/tokens/{alice}/rotate", None, 201),
        (Standard, Method::POST, "/v1/tokens/{bob}/rotate", None, 404),
        (ReadOnly, Method::POST, "/v1/tokens/{vera}/rotate", None, 403),
        // Verify others' tokens: admin (or the tokens:verify scope) only.
        (Admin, Method::POST, "/v1/tokens/verify", Some(json!({ "token": "tg_x" })), 200),
        (Standard, Method::POST, "/v1/tokens/verify", Some(json!({ "token": "tg_x" })), 403),
        (ReadOnly, Method::POST, "/v1/tokens/verify", Some(json!({ "token": "tg_x" })), 403),
        // Everyone may verify their own bearer token.
        (Admin, Method::GET, "/v1/auth/verify", None, 200),
        (Standard, Method::GET, "/v1/auth/verify", None, 200),
        (ReadOnly, Method::GET, "/v1/auth/verify", None, 200),
    ]
}

#[tokio::test]
async fn every_cell_of_the_matrix() {
    let fixture = Fixture::new().await;
    let (admin, _) = fixture.token("root", Permission::Admin).await;
    let (standard, _) = fixture.token("alice", Permission::Standard).await;
    let (read_only, _) = fixture.token("vera", Permission::ReadOnly).await;
    for (actor, method, template, body, expected) in cells() {
        // Fresh targets per cell, so that a revoke in one cell cannot decide another.
        let mut path = template.to_owned();
        for owner in ["alice", "vera", "bob"] {
            path = path.replace(&format!("{{owner:{owner}}}"), &fixture.owner(owner).await.to_string());
            let placeholder = format!("{{{owner}}}");
            if path.contains(&placeholder) {
                let (_, id) = fixture.token(owner, Permission::ReadOnly).await;
                path = path.replace(&placeholder, &id.to_string());
            }
        }
        let bearer = match actor {
            Actor::Admin => &admin,
            Actor::Standard => &standard,
            Actor::ReadOnly => &read_only,
        };
        let reply = fixture.send(request(method.clone(), &path, Some(bearer), body)).await;
        assert_eq!(reply.status.as_u16(), expected, "{actor:?} {method} {template}: {}", reply.text());
        if expected >= 400 {
            let code = if expected == 404 { "token_not_found" } else { "forbidden" };
            reply.problem(expected, code);
        }
    }
}

#[tokio::test]
async fn non_admins_list_only_their_own_tokens() {
    let fixture = Fixture::new().await;
    let (alice, _) = fixture.token("alice", Permission::Standard).await;
    fixture.token("alice", Permission::ReadOnly).await;
    fixture.token("bob", Permission::Standard).await;
    let (admin, _) = fixture.token("root", Permission::Admin).await;
    let owners = |reply: &support::Reply| -> Vec<String> {
        let items = reply.json["items"].as_array().unwrap();
        items.iter().map(|item| item["owner_name"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(owners(&fixture.get("/v1/tokens", Some(&alice)).await), ["alice", "alice"]);
    assert_eq!(owners(&fixture.get("/v1/tokens", Some(&admin)).await).len(), 4);
}

#[tokio::test]
async fn a_token_restricted_to_tools_cannot_administer() {
    let fixture = Fixture::new().await;
    let mut token =
        tollgate::NewToken::new(tollgate::TokenName::parse("tool-bound admin").unwrap(), fixture.owner("root").await);
    token.permission = Permission::Admin;
    token.allowed_tools = tollgate::ToolList::parse(&["search"]).unwrap();
    let (secret, _) = fixture.create(token).await;
    fixture.get("/v1/tokens", Some(&secret)).await.problem(403, "tool_not_allowed");
}

/// Who calls the user and audit routes: users by access JWT (admin, user, viewer) and tokens
/// (admin, standard, read_only, owned by no user).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    AdminJwt,
    UserJwt,
    ViewerJwt,
    AdminToken,
    StandardToken,
    ReadOnlyToken,
}

const EVERYONE: [Who; 6] =
    [Who::AdminJwt, Who::UserJwt, Who::ViewerJwt, Who::AdminToken, Who::StandardToken, Who::ReadOnlyToken];

fn is_admin(who: Who) -> bool {
    matches!(who, Who::AdminJwt | Who::AdminToken)
}

/// One route for everyone: `{bob}` is a fresh user, `{self}` the caller's own user (JWT callers),
/// `{n}` a fresh number. Admins get `admin_status`; the others `other_status`.
type UserCell = (Method, &'static str, Option<Value>, u16, u16);

fn user_cells() -> Vec<UserCell> {
    let body = |value: Value| Some(value);
    vec![
        (
            Method::POST,
            "/v1/users",
            body(
                json!({ "username": "new{n}", "email": "new{n}@example.com", "role": "user", "password": support::PASSWORD }),
            ),
            201,
            403,
        ),
        (Method::GET, "/v1/users", None, 200, 403),
        (Method::GET, "/v1/users/{bob}", None, 200, 404),
        (Method::PATCH, "/v1/users/{bob}", body(json!({ "role": "viewer" })), 200, 403),
        (Method::POST, "/v1/users/{bob}/suspend", body(json!({ "reason": "test" })), 200, 403),
        (Method::POST, "/v1/users/{bob}/unlock", None, 200, 403),
        (
            Method::POST,
            "/v1/users/{bob}/reset-password",
            body(json!({ "password": "another long password" })),
            200,
            403,
        ),
        (Method::DELETE, "/v1/users/{bob}", None, 200, 403),
        (Method::GET, "/v1/audit", None, 200, 403),
        (Method::GET, "/v1/audit/verify", None, 200, 403),
    ]
}

#[tokio::test]
async fn users_and_audit_for_every_kind_of_caller() {
    use tollgate::Role;
    let fixture = Fixture::new().await;
    let (admin_id, admin_jwt) = fixture.user_jwt("root", Role::Admin).await;
    let (user_id, user_jwt) = fixture.user_jwt("ursula", Role::User).await;
    let (viewer_id, viewer_jwt) = fixture.user_jwt("victor", Role::Viewer).await;
    let (admin_token, _) = fixture.token("ops", Permission::Admin).await;
    let (standard_token, _) = fixture.token("alice", Permission::Standard).await;
    let (read_only_token, _) = fixture.token("vera", Permission::ReadOnly).await;
    let mut n = 0;
    for (method, template, body, admin_status, other_status) in user_cells() {
        for who in EVERYONE {
            n += 1;
            let mut path = template.to_owned();
            if path.contains("{bob}") {
                let bob = fixture.user(&format!("bob{n}"), Role::User).await;
                path = path.replace("{bob}", &bob.to_string());
            }
            let body = body
                .clone()
                .map(|body| serde_json::from_str(&body.to_string().replace("{n}", &n.to_string())).unwrap());
            let bearer = match who {
                Who::AdminJwt => &admin_jwt,
                Who::UserJwt => &user_jwt,
                Who::ViewerJwt => &viewer_jwt,
                Who::AdminToken => &admin_token,
                Who::StandardToken => &standard_token,
                Who::ReadOnlyToken => &read_only_token,
            };
            let expected = if is_admin(who) { admin_status } else { other_status };
            let reply = fixture.send(request(method.clone(), &path, Some(bearer), body)).await;
            assert_eq!(reply.status.as_u16(), expected, "{who:?} {method} {template}: {}", reply.text());
            if expected == 403 {
                reply.problem(403, "forbidden");
            } else if expected == 404 {
                reply.problem(404, "user_not_found");
            }
        }
    }
    // Everyone with a user may read themselves; a user may not suspend or promote themselves.
    for (id, jwt) in [(admin_id, &admin_jwt), (user_id, &user_jwt), (viewer_id, &viewer_jwt)] {
        fixture.get(&format!("/v1/users/{id}"), Some(jwt)).await.ok(200);
    }
    let own = format!("/v1/users/{user_id}");
    fixture.patch(&own, Some(&user_jwt), json!({ "role": "admin" })).await.problem(403, "forbidden");
    fixture.post(&format!("{own}/suspend"), Some(&user_jwt), json!({ "reason": "x" })).await.problem(403, "forbidden");
    // An admin cannot lock themselves out.
    let own_admin = format!("/v1/users/{admin_id}");
    fixture
        .post(&format!("{own_admin}/suspend"), Some(&admin_jwt), json!({ "reason": "x" }))
        .await
        .problem(403, "forbidden");
}

#[tokio::test]
async fn a_token_never_has_more_rights_than_its_owner_has_now() {
    use tollgate::Role;
    let fixture = Fixture::new().await;
    let (_, admin_jwt) = fixture.user_jwt("root", Role::Admin).await;
    let viewer = fixture.user("victor", Role::Viewer).await;
    let (token, _) = fixture.user_token(viewer, Permission::Admin).await;
    // An admin token of a viewer acts as read_only.
    fixture.get("/v1/users", Some(&token)).await.problem(403, "forbidden");
    fixture.get(&format!("/v1/users/{viewer}"), Some(&token)).await.ok(200);
    // Promoted: the same token is an admin token from the next request on.
    fixture.patch(&format!("/v1/users/{viewer}"), Some(&admin_jwt), json!({ "role": "admin" })).await.ok(200);
    fixture.get("/v1/users", Some(&token)).await.ok(200);
}
