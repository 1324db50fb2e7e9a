//! `/v1/limits`: quotas of a token, a user, a service account or a project — list them with their use in the
//! current window, set (`PUT`) and remove (`DELETE`) one. A limit is named `<metric>_per_<window>`
//! (`requests_per_day`, `cost_per_month`).

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tollgate::{LimitKey, LimitRecord, LimitSpec, LimitStatus, LimitSubject, Metric, Window};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{Json, Query};
use crate::openapi::{ApiSchema, Components};
use crate::routes::{Doc, Routes};
use crate::state::AppState;

const KIND: &str = "token, user, service_account or project";
const ID: &str = "The subject's id: tok_…, usr_…, svc_… or prj_…";
const NAME: &str =
    "`<metric>_per_<window>`: metric requests, tokens or cost (microdollars); window minute, hour, day or month";

pub(super) fn routes() -> Routes {
    let subject = |doc: Doc| doc.bearer().path_param("kind", KIND).path_param("id", ID);
    Routes::new()
        .get(
            "/v1/limits",
            Doc::new("listLimits", "limits", "Every limit with its use in the current window (admins only)")
                .bearer()
                .query::<NoQuery>()
                .response::<LimitList>(200, "The limits")
                .problems(&[403]),
            list_all,
        )
        .get(
            "/v1/limits/{kind}/{id}",
            subject(Doc::new("getLimits", "limits", "The limits of one subject, with their use now"))
                .response::<LimitList>(200, "The limits")
                .problems(&[400, 403, 404]),
            list_subject,
        )
        .put(
            "/v1/limits/{kind}/{id}/{name}",
            subject(Doc::new("setLimit", "limits", "Create or replace one limit (admins only; audited)"))
                .path_param("name", NAME)
                .body::<LimitBody>()
                .response::<LimitView>(200, "The limit")
                .problems(&[400, 403, 404, 413, 415]),
            set,
        )
        .delete(
            "/v1/limits/{kind}/{id}/{name}",
            subject(Doc::new("removeLimit", "limits", "Remove one limit (admins only; audited)"))
                .path_param("name", NAME)
                .response::<LimitView>(200, "The removed limit")
                .problems(&[400, 403, 404]),
            remove,
        )
}

/// Path segments, refused as 400 naming the segment.
#[derive(Debug)]
struct LimitPath {
    subject: LimitSubject,
    name: Option<(Metric, Window)>,
}

impl FromRequestParts<AppState> for LimitPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Path(segments) = Path::<Vec<String>>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::invalid_field("id", "is not a valid path segment"))?;
        let (kind, id) = match segments.as_slice() {
            [kind, id, ..] => (kind, id),
            _ => return Err(ApiError::invalid_field("kind", "missing")),
        };
        let subject = LimitSubject::parse(kind, id).map_err(|error| {
            let field = if error.field == "subject" { "kind" } else { "id" };
            ApiError::invalid_field(field, error.reason)
        })?;
        let name = segments.get(2).map(|name| parse_name(name)).transpose()?;
        Ok(Self { subject, name })
    }
}

fn parse_name(name: &str) -> Result<(Metric, Window), ApiError> {
    let invalid = || ApiError::invalid_field("name", "must be <metric>_per_<window>, e.g. requests_per_day");
    let (metric, window) = name.split_once("_per_").ok_or_else(invalid)?;
    Ok((metric.parse().map_err(|_| invalid())?, window.parse().map_err(|_| invalid())?))
}

impl LimitPath {
    fn key(self) -> Result<LimitKey, ApiError> {
        let (metric, window) = self.name.ok_or_else(|| ApiError::invalid_field("name", "missing"))?;
        Ok(LimitKey { subject: self.subject, metric, window })
    }
}

/// `GET /v1/limits` takes no parameters.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NoQuery {}

impl ApiSchema for NoQuery {
    const NAME: &'static str = "NoQuery";
    fn schema(_: &mut Components) -> Value {
        json!({ "type": "object", "additionalProperties": false, "properties": {} })
    }
}

/// `PUT /v1/limits/{kind}/{id}/{name}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitBody {
    max: u64,
    #[serde(default)]
    shadow: bool,
}

impl ApiSchema for LimitBody {
    const NAME: &'static str = "SetLimit";
    fn schema(_: &mut Components) -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["max"],
            "properties": {
                "max": { "type": "integer", "minimum": 0, "maximum": LimitSpec::MAX_VALUE, "description": "Per window; cost in microdollars." },
                "shadow": { "type": "boolean", "default": false, "description": "Count, refuse nobody, tally would-be refusals." },
            }
        })
    }
}

fn limit_properties() -> Value {
    json!({
        "subject": {
            "type": "object", "required": ["kind", "id"],
            "properties": { "kind": { "type": "string" }, "id": { "type": "string" } },
        },
        "metric": { "type": "string", "enum": ["requests", "tokens", "cost"] },
        "window": { "type": "string", "enum": ["minute", "hour", "day", "month"] },
        "max": { "type": "integer" },
        "shadow": { "type": "boolean" },
        "created_at": { "type": "string", "format": "date-time" },
        "updated_at": { "type": "string", "format": "date-time" },
        "shadow_hits": { "type": "integer" },
        "last_shadow_hit_at": { "type": ["string", "null"], "format": "date-time" },
    })
}

/// One limit.
#[derive(Debug, Serialize)]
#[serde(transparent)]
struct LimitView(LimitRecord);

impl ApiSchema for LimitView {
    const NAME: &'static str = "Limit";
    fn schema(_: &mut Components) -> Value {
        json!({ "type": "object", "properties": limit_properties() })
    }
}

/// Limits with their use now.
#[derive(Debug, Serialize)]
struct LimitList {
    items: Vec<LimitStatus>,
}

impl ApiSchema for LimitList {
    const NAME: &'static str = "LimitList";
    fn schema(_: &mut Components) -> Value {
        let mut properties = limit_properties();
        if let Some(properties) = properties.as_object_mut() {
            properties.insert(
                "used".into(),
                json!({ "type": "integer", "description": "Used in the current window: admitted, held by reservations, and (requests) leased or stranded." }),
            );
            properties.insert(
                "leased".into(),
                json!({ "type": "integer", "minimum": 0, "description": "Requests: leased to running processes, not admitted yet." }),
            );
            properties.insert(
                "stranded".into(),
                json!({ "type": "integer", "minimum": 0, "description": "Requests: lost with crashed processes; back when the window ends." }),
            );
            properties.insert("window_start".into(), json!({ "type": "string", "format": "date-time" }));
            properties.insert("resets_at".into(), json!({ "type": "string", "format": "date-time" }));
        }
        json!({
            "type": "object",
            "required": ["items"],
            "properties": { "items": { "type": "array", "items": { "type": "object", "properties": properties } } }
        })
    }
}

async fn list_all(
    State(state): State<AppState>,
    caller: Caller,
    Query(_): Query<NoQuery>,
) -> Result<Response, ApiError> {
    let items = state.metering().limit_status(&caller.principal, None).await?;
    Ok(axum::Json(LimitList { items }).into_response())
}

async fn list_subject(State(state): State<AppState>, caller: Caller, path: LimitPath) -> Result<Response, ApiError> {
    let items = state.metering().limit_status(&caller.principal, Some(&path.subject)).await?;
    Ok(axum::Json(LimitList { items }).into_response())
}

async fn set(
    State(state): State<AppState>,
    caller: Caller,
    path: LimitPath,
    Json(body): Json<LimitBody>,
) -> Result<Response, ApiError> {
    let spec = LimitSpec::new(path.key()?, body.max, body.shadow)?;
    let record = state.metering().set_limit(&caller.principal, spec).await?;
    Ok(axum::Json(LimitView(record)).into_response())
}

async fn remove(State(state): State<AppState>, caller: Caller, path: LimitPath) -> Result<Response, ApiError> {
    let record = state.metering().remove_limit(&caller.principal, &path.key()?).await?;
    Ok(axum::Json(LimitView(record)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openapi::conformance::check_request;

    #[test]
    fn names_parse_and_schemas_match() {
        assert_eq!(parse_name("cost_per_month").unwrap(), (Metric::Cost, Window::Month));
        for bad in ["cost", "cost_per_week", "money_per_day", "_per_"] {
            assert_eq!(parse_name(bad).unwrap_err().field(), Some("name"), "{bad}");
        }
        check_request::<LimitBody>();
        check_request::<NoQuery>();
    }
}
