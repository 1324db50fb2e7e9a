//! `/v1/prices`: the model prices in effect (shipped list, operator file, stored overrides), and
//! setting an override. Amounts are decimal dollar strings per million tokens — never floats.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tollgate::{Microdollars, ModelName, ModelPrice, PriceEntry, ProviderName};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::Json;
use crate::openapi::{ApiSchema, Components, dollars};
use crate::routes::{Doc, Routes};
use crate::state::AppState;

pub(super) fn routes() -> Routes {
    Routes::new()
        .get(
            "/v1/prices",
            Doc::new("listPrices", "prices", "Every model price in effect, with its source")
                .bearer()
                .response::<PriceList>(200, "The prices"),
            list,
        )
        .put(
            "/v1/prices/{provider}/{model}",
            Doc::new("setPrice", "prices", "Store a price override for a model (admins only; audited)")
                .describe("A model name with `/` in it is sent percent-encoded (`%2F`).")
                .bearer()
                .path_param("provider", "e.g. openai")
                .path_param("model", "e.g. gpt-4o-mini")
                .body::<PriceBody>()
                .response::<PriceView>(200, "The price now in effect")
                .problems(&[400, 403, 413, 415]),
            set,
        )
        .delete(
            "/v1/prices/{provider}/{model}",
            Doc::new("removePrice", "prices", "Remove a stored price override (admins only; audited)")
                .describe("The shipped or file price, if any, applies again and is returned; 204 when none does.")
                .bearer()
                .path_param("provider", "e.g. openai")
                .path_param("model", "e.g. gpt-4o-mini")
                .response::<PriceView>(200, "The price now in effect")
                .problems(&[400, 403, 404]),
            remove,
        )
}

/// `PUT /v1/prices/{provider}/{model}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PriceBody {
    input_per_million: String,
    output_per_million: String,
}

impl ApiSchema for PriceBody {
    const NAME: &'static str = "SetPrice";
    fn schema(_: &mut Components) -> Value {
        let dollars = dollars("Dollars per million tokens, e.g. 2.50.");
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["input_per_million", "output_per_million"],
            "properties": { "input_per_million": dollars, "output_per_million": dollars }
        })
    }
}

fn price_properties() -> Value {
    json!({
        "provider": { "type": "string" },
        "model": { "type": "string" },
        "input_per_million_micros": { "type": "integer", "description": "Microdollars per million input tokens." },
        "output_per_million_micros": { "type": "integer", "description": "Microdollars per million output tokens." },
        "source": { "type": "string", "enum": ["shipped", "file", "stored"] },
        "updated_at": { "type": ["string", "null"], "format": "date-time", "description": "Stored overrides only." },
    })
}

/// One price.
#[derive(Debug, Serialize)]
#[serde(transparent)]
struct PriceView(PriceEntry);

impl ApiSchema for PriceView {
    const NAME: &'static str = "Price";
    fn schema(_: &mut Components) -> Value {
        json!({ "type": "object", "properties": price_properties() })
    }
}

/// Every price.
#[derive(Debug, Serialize)]
struct PriceList {
    items: Vec<PriceEntry>,
}

impl ApiSchema for PriceList {
    const NAME: &'static str = "PriceList";
    fn schema(_: &mut Components) -> Value {
        json!({
            "type": "object",
            "required": ["items"],
            "properties": { "items": { "type": "array", "items": { "type": "object", "properties": price_properties() } } }
        })
    }
}

async fn list(State(state): State<AppState>, _caller: Caller) -> Result<Response, ApiError> {
    Ok(axum::Json(PriceList { items: state.metering().prices() }).into_response())
}

async fn set(
    State(state): State<AppState>,
    caller: Caller,
    Path((provider, model)): Path<(String, String)>,
    Json(body): Json<PriceBody>,
) -> Result<Response, ApiError> {
    let provider = ProviderName::parse(&provider).map_err(|error| ApiError::invalid_field("provider", error.reason))?;
    let model = ModelName::parse(&model).map_err(|error| ApiError::invalid_field("model", error.reason))?;
    let input = Microdollars::parse_dollars("input_per_million", &body.input_per_million)?;
    let output = Microdollars::parse_dollars("output_per_million", &body.output_per_million)?;
    let price = ModelPrice::new(provider, model, input, output)?;
    let entry = state.metering().set_price(&caller.principal, price).await?;
    Ok(axum::Json(PriceView(entry)).into_response())
}

async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path((provider, model)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let provider = ProviderName::parse(&provider).map_err(|error| ApiError::invalid_field("provider", error.reason))?;
    let model = ModelName::parse(&model).map_err(|error| ApiError::invalid_field("model", error.reason))?;
    match state.metering().remove_price(&caller.principal, &provider, &model).await? {
        Some(entry) => Ok(axum::Json(PriceView(entry)).into_response()),
        None => Ok(axum::http::StatusCode::NO_CONTENT.into_response()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openapi::conformance::check_request;

    #[test]
    fn schemas_match() {
        check_request::<PriceBody>();
    }
}
