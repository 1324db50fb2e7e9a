//! `POST /v1/tokens/import`: storing a token whose id and secret the caller already has — moving
//! tokens from another deployment without re-issuing them (admins only; audited). The secret is
//! hashed like a generated one and never echoed back.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use tollgate::{TokenId, TokenSecret};

use super::body::CreateTokenBody;
use super::view::TokenView;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::Json;
use crate::openapi::{ApiSchema, Components};
use crate::resources::token_verify::PresentedToken;
use crate::routes::{Doc, Routes};
use crate::state::AppState;

pub(super) fn routes() -> Routes {
    Routes::new().post(
        "/v1/tokens/import",
        Doc::new("importToken", "tokens", "Store a token with a known id and secret (admins only; audited)")
            .describe(
                "For moving tokens from another deployment: the secret must be in this server's token format \
                 (prefix included); it is stored as its HMAC and never returned. 409 when the id or the secret \
                 is already stored.",
            )
            .bearer()
            .body::<ImportTokenBody>()
            .response::<TokenView<'static>>(201, "Imported")
            .response_headers(&["Location"])
            .problems(&[400, 403, 404, 409, 413, 415]),
        import,
    )
}

/// `POST /v1/tokens/import`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportTokenBody {
    id: TokenId,
    secret: PresentedToken,
    token: CreateTokenBody,
}

impl ApiSchema for ImportTokenBody {
    const NAME: &'static str = "ImportToken";
    fn schema(components: &mut Components) -> Value {
        let token = Components::reference::<CreateTokenBody>(components);
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["id", "secret", "token"],
            "properties": {
                "id": { "type": "string", "pattern": "^tok_[0-9a-f]{32}$" },
                "secret": { "type": "string", "minLength": 1, "maxLength": 128, "writeOnly": true,
                            "description": "The token as its holder presents it." },
                "token": token,
            }
        })
    }
}

async fn import(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<ImportTokenBody>,
) -> Result<Response, ApiError> {
    let tokens = state.tokens();
    let ImportTokenBody { id, secret, token: body } = body;
    let secret = TokenSecret::parse(tokens.prefix(), secret.expose())
        .map_err(|_| ApiError::invalid_field("secret", "is not a token of this deployment"))?;
    let token = super::new_token(&state, &caller, body, "token.owner").await?;
    let record = tokens.import(&caller.principal, id, token, &secret).await?;
    let mut response = (StatusCode::CREATED, axum::Json(TokenView::new(&record, tokens.clock().now()))).into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/tokens/{}", record.id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openapi::conformance::check_request;

    #[test]
    fn the_request_schema_matches_the_type() {
        check_request::<ImportTokenBody>();
    }
}
