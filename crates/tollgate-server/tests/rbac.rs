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
/// those owners), the body, and the expected status.
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
        (Admin, Method::GET, "/v1/tokens?owner=bob", None, 200),
        (Standard, Method::GET, "/v1/tokens", None, 200),
        (Standard, Method::GET, "/v1/tokens?owner=alice", None, 200),
        (Standard, Method::GET, "/v1/tokens?owner=bob", None, 403),
        (ReadOnly, Method::GET, "/v1/tokens", None, 200),
        (ReadOnly, Method::GET, "/v1/tokens?owner=bob", None, 403),
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
        reply.json["items"].as_array().unwrap().iter().map(|item| item["owner"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(owners(&fixture.get("/v1/tokens", Some(&alice)).await), ["alice", "alice"]);
    assert_eq!(owners(&fixture.get("/v1/tokens", Some(&admin)).await).len(), 4);
}

#[tokio::test]
async fn a_token_restricted_to_tools_cannot_administer() {
    let fixture = Fixture::new().await;
    let mut token = tollgate::NewToken::new(
        tollgate::TokenName::parse("tool-bound admin").unwrap(),
        tollgate::OwnerName::parse("root").unwrap(),
    );
    token.permission = Permission::Admin;
    token.allowed_tools = tollgate::ToolList::parse(&["search"]).unwrap();
    let (secret, _) = fixture.create(token).await;
    fixture.get("/v1/tokens", Some(&secret)).await.problem(403, "tool_not_allowed");
}
