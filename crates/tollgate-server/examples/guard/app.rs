//! The application the `guard` example serves: a public route, and routes guarded in process by
//! tollgate tokens. `tests/guard.rs` drives this same router.

use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use tollgate::TokenManager;
use tollgate_server::{GuardLayer, VerifiedToken};

/// `/` is public; `/me` needs any valid token; `/search` needs a token allowed to call `search`.
pub(crate) fn app(tokens: TokenManager) -> Router {
    let me = Router::new().route("/me", get(me)).route_layer(GuardLayer::new(tokens.clone()));
    let search = Router::new().route("/search", get(search)).route_layer(GuardLayer::new(tokens).tool("search"));
    Router::new()
        .route("/", get(|| async { "public: try /me and /search with a bearer token\n" }))
        .merge(me)
        .merge(search)
}

async fn me(VerifiedToken(context): VerifiedToken) -> String {
    format!("hello, {} ({})\n", context.record.owner_name, context.token_id)
}

async fn search(VerifiedToken(context): VerifiedToken) -> Json<Value> {
    Json(json!({ "results": [], "searched_for": context.record.owner_name }))
}
