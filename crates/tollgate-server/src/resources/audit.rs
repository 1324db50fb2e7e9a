//! `/v1/audit`: read the audit log (filtered, paged, newest first) and verify its hash chain. Admins only.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tollgate::{AuditEntry, AuditFilter, AuditReport, Page, Timestamp};

use super::users::{page_request, paging_properties};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::Query;
use crate::openapi::{ApiSchema, Components, identifier, nullable, timestamp};
use crate::routes::{Doc, Routes};
use crate::state::AppState;

pub(super) fn routes() -> Routes {
    Routes::new()
        .get(
            "/v1/audit",
            Doc::new("listAudit", "audit", "Audit entries, newest first (admins only)")
                .bearer()
                .query::<AuditQuery>()
                .response::<AuditPage<'static>>(200, "One page")
                .problems(&[400, 403]),
            list,
        )
        .get(
            "/v1/audit/verify",
            Doc::new("verifyAudit", "audit", "Walk the hash chain and report the first broken entry (admins only)")
                .describe("Keep `head_hash` elsewhere and compare later to detect a rewrite of the chain's tail.")
                .bearer()
                .response::<ReportView<'static>>(200, "The report")
                .problems(&[403]),
            verify,
        )
}

/// `GET /v1/audit`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    #[serde(default)]
    actor: Option<String>,
    #[serde(default)]
    target: Option<String>,
    #[serde(default)]
    since: Option<Timestamp>,
    #[serde(default)]
    limit: Option<u32>,
    #[serde(default)]
    cursor: Option<String>,
}

impl ApiSchema for AuditQuery {
    const NAME: &'static str = "ListAuditQuery";
    fn schema(_: &mut Components) -> Value {
        let mut properties = json!({
            "actor": identifier(128, "Actor equals (`usr_…`, `tok_…`, `cli`, `anonymous`)."),
            "target": identifier(128, "Target equals (a public id)."),
            "since": timestamp("Entries at or after this time."),
        });
        if let (Some(properties), Value::Object(paging)) = (properties.as_object_mut(), paging_properties()) {
            properties.extend(paging);
        }
        json!({ "type": "object", "additionalProperties": false, "properties": properties })
    }
}

fn check_text(field: &'static str, value: Option<&String>) -> Result<(), ApiError> {
    match value {
        Some(text) if text.is_empty() || text.chars().count() > 256 || text.chars().any(char::is_control) => {
            Err(ApiError::invalid_field(field, "must be 1 to 256 characters without control characters"))
        }
        _ => Ok(()),
    }
}

/// One entry (its hashes stay in the database; `GET /v1/audit/verify` checks them).
#[derive(Debug, Serialize)]
#[serde(transparent)]
struct EntryView<'a>(&'a AuditEntry);

impl ApiSchema for EntryView<'_> {
    const NAME: &'static str = "AuditEntry";
    fn schema(_: &mut Components) -> Value {
        json!({
            "type": "object",
            "required": ["sequence", "actor", "action", "target", "before", "after", "reason", "ip", "at"],
            "properties": {
                "sequence": { "type": "integer", "description": "Position in the chain, from 1, without gaps." },
                "actor": { "type": "string" },
                "action": { "type": "string", "description": "`<entity>.<verb>`, e.g. `user.suspend`." },
                "target": { "type": "string" },
                "before": { "description": "State before (no secrets)." },
                "after": { "description": "State after (no secrets)." },
                "reason": { "type": ["string", "null"] },
                "ip": { "type": ["string", "null"] },
                "at": timestamp("When."),
            }
        })
    }
}

/// A page of entries.
#[derive(Debug, Serialize)]
struct AuditPage<'a> {
    items: Vec<EntryView<'a>>,
    next_cursor: Option<&'a str>,
}

impl ApiSchema for AuditPage<'_> {
    const NAME: &'static str = "AuditPage";
    fn schema(components: &mut Components) -> Value {
        json!({
            "type": "object",
            "required": ["items", "next_cursor"],
            "properties": {
                "items": { "type": "array", "items": Components::reference::<EntryView<'static>>(components) },
                "next_cursor": { "type": ["string", "null"] },
            }
        })
    }
}

/// The chain report.
#[derive(Debug, Serialize)]
#[serde(transparent)]
struct ReportView<'a>(&'a AuditReport);

impl ApiSchema for ReportView<'_> {
    const NAME: &'static str = "AuditReport";
    fn schema(_: &mut Components) -> Value {
        json!({
            "type": "object",
            "required": ["intact", "entries_checked", "first_broken", "last_sequence", "head_hash"],
            "properties": {
                "intact": { "type": "boolean" },
                "entries_checked": { "type": "integer" },
                "first_broken": nullable(json!({
                    "type": "object",
                    "required": ["sequence", "problem"],
                    "properties": { "sequence": { "type": "integer" }, "problem": { "type": "string" } },
                })),
                "last_sequence": { "type": "integer" },
                "head_hash": { "type": "string", "description": "Hex SHA-256 of the last intact entry." },
            }
        })
    }
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<AuditQuery>,
) -> Result<Response, ApiError> {
    check_text("actor", query.actor.as_ref())?;
    check_text("target", query.target.as_ref())?;
    let settings = state.settings();
    let page = page_request(query.limit, query.cursor, settings.default_page_size, settings.max_page_size)?;
    let filter = AuditFilter { actor: query.actor, target: query.target, since: query.since };
    let found: Page<AuditEntry> = state.audit().list(&caller.principal, &filter, &page).await?;
    let view =
        AuditPage { items: found.items.iter().map(EntryView).collect(), next_cursor: found.next_cursor.as_deref() };
    Ok(axum::Json(view).into_response())
}

async fn verify(State(state): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    let report = state.audit().verify(&caller.principal).await?;
    Ok(axum::Json(ReportView(&report)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openapi::conformance::{check_request, check_response};

    #[test]
    fn schemas_match_their_types() {
        check_request::<AuditQuery>();
        let report = AuditReport {
            intact: false,
            entries_checked: 1,
            first_broken: Some(tollgate::BrokenEntry { sequence: 2, problem: "edited".to_owned() }),
            last_sequence: 1,
            head_hash: "00".to_owned(),
        };
        check_response(&ReportView(&report));
        let event =
            tollgate::AuditEvent::new(tollgate::Actor::cli(), "user.create", "usr_x", Timestamp::from_unix_micros(0));
        let entry = AuditEntry { sequence: 1, event, previous_hash: [0; 32], hash: [0; 32] };
        check_response(&EntryView(&entry));
        check_response(&AuditPage { items: vec![EntryView(&entry)], next_cursor: None });
    }
}
