//! `/v1/tokens`: create, import, list, show, update, revoke and rotate API tokens, and clean up.
//!
//! Every handler passes the caller's principal to the facade, which decides what it may do
//! (`authz.rs`); nothing here repeats that matrix.

mod body;
mod cleanup;
mod import;
mod view;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tollgate::{CreatedToken, TokenId};

pub(crate) use self::body::{CreateTokenBody, ListTokensQuery, PatchTokenBody};
pub(crate) use self::body::{RevokeBody, RotateBody, present};
pub(crate) use self::view::{CreatedTokenView, TokenPage, TokenView};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{Json, OptionalJson, PathId, Query};
use crate::routes::{Doc, Routes};
use crate::state::AppState;

const ID: &str = "The token id (tok_…)";

pub(super) fn routes() -> Routes {
    Routes::new()
        .merge(cleanup::routes())
        .merge(import::routes())
        .post(
            "/v1/tokens",
            Doc::new("createToken", "tokens", "Create a token; the secret is in `token`, shown once")
                .describe(
                    "A token belongs to the caller unless an admin names another owner. Non-admins create tokens only \
                     for themselves, never above their own permission, and bind them only to projects they are a \
                     member of. Constraints an admin sets on someone else's token can only be tightened by its owner.",
                )
                .bearer()
                .body::<CreateTokenBody>()
                .response::<CreatedTokenView<'static>>(201, "Created")
                .response_headers(&["Location"])
                .problems(&[400, 403, 404, 409, 413, 415]),
            create,
        )
        .get(
            "/v1/tokens",
            Doc::new("listTokens", "tokens", "List tokens, newest first")
                .describe("Admins see everybody's tokens; others see their own.")
                .bearer()
                .query::<ListTokensQuery>()
                .response::<TokenPage<'static>>(200, "One page")
                .problems(&[400, 403]),
            list,
        )
        .get(
            "/v1/tokens/{id}",
            Doc::new("getToken", "tokens", "Show a token's metadata")
                .bearer()
                .path_param("id", ID)
                .response::<TokenView<'static>>(200, "The token")
                .problems(&[400, 404]),
            show,
        )
        .patch(
            "/v1/tokens/{id}",
            Doc::new(
                "updateToken",
                "tokens",
                "Change a token's name, description, allowed tools, IP allow-list or expiry",
            )
            .bearer()
            .path_param("id", ID)
            .body::<PatchTokenBody>()
            .response::<TokenView<'static>>(200, "The updated token")
            .problems(&[400, 403, 404, 409, 413, 415]),
            update,
        )
        .post(
            "/v1/tokens/{id}/revoke",
            Doc::new("revokeToken", "tokens", "Revoke a token (idempotent)")
                .describe("The body is optional. A revoked token is refused on the very next verify.")
                .bearer()
                .path_param("id", ID)
                .body::<RevokeBody>()
                .response::<TokenView<'static>>(200, "The revoked token")
                .problems(&[400, 403, 404, 413, 415]),
            revoke,
        )
        .post(
            "/v1/tokens/{id}/rotate",
            Doc::new("rotateToken", "tokens", "Issue a new secret for the same token id")
                .describe("The body is optional. The old secret keeps working for `grace_seconds` (default 0).")
                .bearer()
                .path_param("id", ID)
                .body::<RotateBody>()
                .response::<CreatedTokenView<'static>>(201, "The new secret, shown once")
                .problems(&[400, 403, 404, 409, 413, 415]),
            rotate,
        )
}

/// 201 with the secret: `Location`, and `Cache-Control: no-store` so no cache keeps it.
fn created_response(state: &AppState, created: &CreatedToken) -> Response {
    let now = state.tokens().clock().now();
    let mut response = (StatusCode::CREATED, axum::Json(CreatedTokenView::new(created, now))).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/tokens/{}", created.record.id)) {
        headers.insert(header::LOCATION, location);
    }
    response
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<CreateTokenBody>,
) -> Result<Response, ApiError> {
    let token = new_token(&state, &caller, body, "owner").await?;
    let created = state.tokens().create(&caller.principal, token).await?;
    Ok(created_response(&state, &created))
}

/// The token a creation body asks for: every field checked before anything is looked up, then the
/// owner and project it names resolved (`owner_field` names the owner in errors).
pub(crate) async fn new_token(
    state: &AppState,
    caller: &Caller,
    body: CreateTokenBody,
    owner_field: &'static str,
) -> Result<tollgate::NewToken, ApiError> {
    let tokens = state.tokens();
    let own = caller.principal.owner_id().ok_or_else(|| ApiError::invalid_field(owner_field, "is required"))?;
    let (owner, project) = (body.owner()?.map(str::to_owned), body.project()?.map(str::to_owned));
    let mut token = body.into_new_token(own, None, tokens.clock().now())?;
    if let Some(owner) = owner {
        token.owner = tokens.resolve_owner(&caller.principal, &owner).await?;
    }
    if let Some(project) = project {
        token.project = Some(tokens.resolve_project(&caller.principal, &project).await?);
    }
    Ok(token)
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<ListTokensQuery>,
) -> Result<Response, ApiError> {
    let settings = state.settings();
    let (filter, page) = query.into_parts(settings.default_page_size, settings.max_page_size)?;
    let tokens = state.tokens();
    let page = tokens.list(&caller.principal, &filter, &page).await?;
    Ok(axum::Json(TokenPage::new(&page, tokens.clock().now())).into_response())
}

async fn show(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<TokenId>,
) -> Result<Response, ApiError> {
    let tokens = state.tokens();
    let record = tokens.show(&caller.principal, &id).await?;
    Ok(axum::Json(TokenView::new(&record, tokens.clock().now())).into_response())
}

async fn update(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<TokenId>,
    Json(body): Json<PatchTokenBody>,
) -> Result<Response, ApiError> {
    let tokens = state.tokens();
    let patch = body.into_patch(tokens.clock().now())?;
    let record = tokens.update(&caller.principal, &id, &patch).await?;
    Ok(axum::Json(TokenView::new(&record, tokens.clock().now())).into_response())
}

async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<TokenId>,
    OptionalJson(body): OptionalJson<RevokeBody>,
) -> Result<Response, ApiError> {
    let tokens = state.tokens();
    let record = tokens.revoke(&caller.principal, &id, body.reason.as_deref()).await?;
    Ok(axum::Json(TokenView::new(&record, tokens.clock().now())).into_response())
}

async fn rotate(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<TokenId>,
    OptionalJson(body): OptionalJson<RotateBody>,
) -> Result<Response, ApiError> {
    let rotated = state.tokens().rotate(&caller.principal, &id, body.grace()?).await?;
    Ok(created_response(&state, &rotated))
}

#[cfg(test)]
mod tests {
    use tollgate::{Page, Timestamp, TokenPrefix, TokenSecret};

    use super::*;
    use crate::openapi::conformance::{check_request, check_response, example_record};

    #[test]
    fn request_schemas_match_their_types() {
        check_request::<CreateTokenBody>();
        check_request::<PatchTokenBody>();
        check_request::<RevokeBody>();
        check_request::<RotateBody>();
        check_request::<ListTokensQuery>();
    }

    #[test]
    fn response_schemas_match_their_types() {
        let now = Timestamp::from_unix_micros(0);
        let record = example_record();
        check_response(&TokenView::new(&record, now));
        let page = Page { items: vec![record.clone()], next_cursor: Some("tok_x".to_owned()) };
        check_response(&TokenPage::new(&page, now));
        let created = CreatedToken { secret: TokenSecret::generate(&TokenPrefix::default()).unwrap(), record };
        check_response(&CreatedTokenView::new(&created, now));
    }
}
