//! The audit log (admins): entries newest first with actor, target and time filters, and a button
//! that verifies the whole hash chain and shows its head hash.

use axum::extract::State;
use axum::response::Response;
use maud::html;
use serde::Deserialize;
use tollgate::{AuditFilter, Operation, Timestamp};

use crate::dashboard::error::HtmlError;
use crate::dashboard::extract::{Query, blank, encoded, page_after};
use crate::dashboard::layout::{Section, badge, csrf_field, page, pager, table, time};
use crate::dashboard::session::{Form, Session};
use crate::state::AppState;

/// `GET /dashboard/audit?actor=&target=&since=&cursor=`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    #[serde(default)]
    actor: Option<String>,
    #[serde(default)]
    target: Option<String>,
    #[serde(default)]
    since: Option<String>,
    #[serde(default)]
    cursor: Option<String>,
}

async fn render(
    state: &AppState,
    session: &Session,
    query: &ListQuery,
    verified: Option<tollgate::AuditReport>,
) -> Result<Response, HtmlError> {
    let (actor, target, since) = (blank(&query.actor), blank(&query.target), blank(&query.since));
    let since_at = since
        .as_deref()
        .map(|text| Timestamp::parse_rfc3339("since", text))
        .transpose()
        .map_err(crate::error::ApiError::from)?;
    let filter = AuditFilter { actor: actor.clone(), target: target.clone(), since: since_at };
    let page_request = page_after(state, &query.cursor);
    let found = state.audit().list(session.principal(), &filter, &page_request).await?;
    let encoded = encoded(&[("actor", &actor), ("target", &target), ("since", &since)]);
    let rows = html! {
        @for entry in &found.items {
            tr {
                td.num { (entry.sequence) }
                td { (time(entry.event.at)) }
                td { (entry.event.actor.as_str()) }
                td { code { (entry.event.action) } }
                td { (entry.event.target) }
                td { (entry.event.reason.as_deref().unwrap_or("")) }
                td { (entry.event.ip.map(|ip| ip.to_string()).unwrap_or_default()) }
            }
        }
    };
    let body = html! {
        h1 { "Audit log" }
        @if let Some(report) = &verified {
            div.verified #chain-report role="status" {
                @if report.intact { p { (badge("intact")) " The chain of " (report.entries_checked) " entries is intact." } }
                @else {
                    p { (badge("broken")) " The chain is broken"
                        @if let Some(broken) = &report.first_broken { " at entry " (broken.sequence) ": " (broken.problem) } "." }
                }
                p { "Head hash: " code #head-hash { (report.head_hash) } " (entry " (report.last_sequence) ")" }
            }
        }
        @if session.can(Operation::VerifyAudit) {
            form.inline method="post" action="/dashboard/audit/verify" {
                (csrf_field(session))
                button type="submit" { "Verify chain" }
            }
        }
        form.filters method="get" action="/dashboard/audit" role="search" {
            label { "Actor " input name="actor" value=(actor.as_deref().unwrap_or_default()) maxlength="128"; }
            label { "Target " input name="target" value=(target.as_deref().unwrap_or_default()) maxlength="128"; }
            label { "Since (RFC 3339) " input name="since" value=(since.as_deref().unwrap_or_default()) placeholder="2030-01-01T00:00:00Z" maxlength="64"; }
            button type="submit" { "Filter" }
        }
        (table("Audit entries", &["#", "When", "Actor", "Action", "Target", "Reason", "IP"], rows))
        (pager("/dashboard/audit", &encoded, found.next_cursor.as_deref()))
    };
    Ok(page(session, Section::Audit, "Audit log", body))
}

pub(crate) async fn list(
    State(state): State<AppState>,
    session: Session,
    Query(query): Query<ListQuery>,
) -> Result<Response, HtmlError> {
    render(&state, &session, &query, None).await
}

/// `POST /dashboard/audit/verify`: verifies the chain and shows the log with the report.
pub(crate) async fn verify(
    State(state): State<AppState>,
    session: Session,
    _form: Form,
) -> Result<Response, HtmlError> {
    let report = state.audit().verify(session.principal()).await?;
    let query = ListQuery { actor: None, target: None, since: None, cursor: None };
    render(&state, &session, &query, Some(report)).await
}
