//! `/v1/service-accounts`: owners that are not people. Admins create, list, suspend and activate
//! them; a service account's own token may read it. Suspending one revokes its tokens at once.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tollgate::{Description, NewServiceAccount, Page, ServiceAccountId, ServiceAccountRecord, Username};

use super::users::PageQuery;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{Json, PathId, Query};
use crate::openapi::{ApiSchema, Components, id, notes, text, timestamp};
use crate::routes::{Doc, Routes};
use crate::state::AppState;

const ID: &str = "The service account id (svc_…)";

pub(super) fn routes() -> Routes {
    let account = |operation_id, summary| {
        Doc::new(operation_id, "service accounts", summary)
            .bearer()
            .path_param("id", ID)
            .response::<AccountView<'static>>(200, "The service account")
    };
    Routes::new()
        .post(
            "/v1/service-accounts",
            Doc::new("createServiceAccount", "service accounts", "Create a service account (admins only)")
                .describe("Its name shares one namespace with usernames: 409 when a user or an account has it.")
                .bearer()
                .body::<CreateAccountBody>()
                .response::<AccountView<'static>>(201, "Created")
                .response_headers(&["Location"])
                .problems(&[400, 403, 409, 413, 415]),
            create,
        )
        .get(
            "/v1/service-accounts",
            Doc::new("listServiceAccounts", "service accounts", "List service accounts, newest first (admins only)")
                .bearer()
                .query::<PageQuery>()
                .response::<AccountPage<'static>>(200, "One page")
                .problems(&[400, 403]),
            list,
        )
        .get(
            "/v1/service-accounts/{id}",
            account("getServiceAccount", "Show a service account (admins, or its own tokens)").problems(&[400, 404]),
            show,
        )
        .post(
            "/v1/service-accounts/{id}/suspend",
            account("suspendServiceAccount", "Suspend a service account: its tokens are revoked at once")
                .body::<SuspendAccountBody>()
                .problems(&[400, 403, 404, 413, 415]),
            suspend,
        )
        .post(
            "/v1/service-accounts/{id}/activate",
            account("activateServiceAccount", "Activate a suspended service account (revoked tokens stay revoked)")
                .problems(&[400, 403, 404]),
            activate,
        )
}

/// `POST /v1/service-accounts`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateAccountBody {
    name: String,
    #[serde(default)]
    description: Option<Description>,
}

impl ApiSchema for CreateAccountBody {
    const NAME: &'static str = "CreateServiceAccount";
    fn schema(_: &mut Components) -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["name"],
            "properties": {
                "name": {
                    "type": "string", "pattern": "^[A-Za-z0-9._-]{3,64}$",
                    "description": "Stored lowercase; unique among users and service accounts.",
                },
                "description": notes(1024, ""),
            }
        })
    }
}

/// `POST /v1/service-accounts/{id}/suspend`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SuspendAccountBody {
    reason: String,
}

impl ApiSchema for SuspendAccountBody {
    const NAME: &'static str = "SuspendServiceAccount";
    fn schema(_: &mut Components) -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["reason"],
            "properties": { "reason": text(1024, "Why (audited).") }
        })
    }
}

/// A service account as the API shows it.
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub(crate) struct AccountView<'a>(&'a ServiceAccountRecord);

impl ApiSchema for AccountView<'_> {
    const NAME: &'static str = "ServiceAccount";
    fn schema(_: &mut Components) -> Value {
        json!({
            "type": "object",
            "required": ["id", "name", "description", "status", "status_reason", "created_at", "updated_at"],
            "properties": {
                "id": id("svc_", "Public id."),
                "name": { "type": "string" },
                "description": { "type": "string" },
                "status": { "type": "string", "enum": ["active", "suspended"] },
                "status_reason": { "type": ["string", "null"] },
                "created_at": timestamp("Creation time."),
                "updated_at": timestamp("Last change."),
            }
        })
    }
}

/// A page of service accounts.
#[derive(Debug, Serialize)]
pub(crate) struct AccountPage<'a> {
    items: Vec<AccountView<'a>>,
    next_cursor: Option<&'a str>,
}

impl ApiSchema for AccountPage<'_> {
    const NAME: &'static str = "ServiceAccountPage";
    fn schema(components: &mut Components) -> Value {
        json!({
            "type": "object",
            "required": ["items", "next_cursor"],
            "properties": {
                "items": { "type": "array", "items": Components::reference::<AccountView<'static>>(components) },
                "next_cursor": { "type": ["string", "null"], "description": "Pass as `cursor` for the next page." },
            }
        })
    }
}

fn account_response(status: StatusCode, record: &ServiceAccountRecord) -> Response {
    (status, axum::Json(AccountView(record))).into_response()
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<CreateAccountBody>,
) -> Result<Response, ApiError> {
    let account = NewServiceAccount {
        name: Username::parse_field("name", &body.name)?,
        description: body.description.unwrap_or_default(),
    };
    let record = state.users().create_service_account(&caller.audited(), account).await?;
    let mut response = account_response(StatusCode::CREATED, &record);
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/service-accounts/{}", record.id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<PageQuery>,
) -> Result<Response, ApiError> {
    let settings = state.settings();
    let page = query.into_page(settings.default_page_size, settings.max_page_size)?;
    let page: Page<ServiceAccountRecord> = state.users().list_service_accounts(&caller.principal, &page).await?;
    let view =
        AccountPage { items: page.items.iter().map(AccountView).collect(), next_cursor: page.next_cursor.as_deref() };
    Ok(axum::Json(view).into_response())
}

async fn show(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<ServiceAccountId>,
) -> Result<Response, ApiError> {
    let record = state.users().service_account(&caller.principal, &id).await?;
    Ok(account_response(StatusCode::OK, &record))
}

async fn suspend(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<ServiceAccountId>,
    Json(body): Json<SuspendAccountBody>,
) -> Result<Response, ApiError> {
    let record = state.users().suspend_service_account(&caller.audited(), &id, &body.reason).await?;
    Ok(account_response(StatusCode::OK, &record))
}

async fn activate(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<ServiceAccountId>,
) -> Result<Response, ApiError> {
    let record = state.users().activate_service_account(&caller.audited(), &id).await?;
    Ok(account_response(StatusCode::OK, &record))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openapi::conformance::{check_request, check_response};

    #[test]
    fn schemas_match_their_types() {
        check_request::<CreateAccountBody>();
        check_request::<SuspendAccountBody>();
        check_request::<PageQuery>();
        let now = tollgate::Timestamp::from_unix_micros(0);
        let record = ServiceAccountRecord {
            id: ServiceAccountId::generate(),
            name: Username::parse_field("name", "ci-runner").unwrap(),
            description: Description::parse("builds").unwrap(),
            status: tollgate::AccountStatus::Suspended,
            status_reason: Some("moved".to_owned()),
            created_at: now,
            updated_at: now,
        };
        check_response(&AccountView(&record));
        check_response(&AccountPage { items: vec![AccountView(&record)], next_cursor: None });
    }
}
