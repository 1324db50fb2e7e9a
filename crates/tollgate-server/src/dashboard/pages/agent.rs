//! One agent: its fields, its budget with a meter, its credentials (create, with the secret shown
//! once; revoke), its leases and its budget history.

use std::time::Duration;

use axum::extract::State;
use axum::response::Response;
use maud::html;
use serde::Deserialize;
use tollgate::{AgentId, LeaseFilter, Operation, PageRequest, StatusFilter, TokenId, TokenName};

use super::agents::agents_of;
use crate::dashboard::error::HtmlError;
use crate::dashboard::extract::{PathId, PathIds, Query};
use crate::dashboard::layout::{
    Section, badge, csrf_field, dollars, maybe_time, notice, page, see_other, shown_once, table, time,
};
use crate::dashboard::session::{Form, Session};
use crate::error::ApiError;
use crate::state::AppState;

/// How many credentials, leases and history rows the page shows (the newest).
const SHOWN: u32 = 50;
/// The longest credential lifetime the form offers, in days (the API takes seconds).
const MAX_CREDENTIAL_DAYS: u64 = 3660;

/// `?done=`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ShowQuery {
    #[serde(default)]
    done: Option<String>,
}

pub(crate) async fn show(
    State(state): State<AppState>,
    session: Session,
    PathId(id): PathId<AgentId>,
    Query(query): Query<ShowQuery>,
) -> Result<Response, HtmlError> {
    let agents = agents_of(&state)?;
    let principal = session.principal();
    let agent = agents.agent(principal, &id).await?;
    let budget = agents.budget(principal, &id).await?;
    let credentials = agents.credentials(principal, &id, StatusFilter::All, &PageRequest::first(SHOWN)).await?;
    let filter = LeaseFilter { agent: Some(id), ..LeaseFilter::default() };
    let leases = agents.leases(principal, &filter, &PageRequest::first(SHOWN)).await?;
    let history = agents.budget_history(principal, &id, false, &PageRequest::first(SHOWN)).await?;
    let manage = session.can(Operation::ManageAgent { owner: agent.owner });
    let now = state.tokens().clock().now();
    let account = &budget.account;
    let used = account.spent.saturating_add(account.reserved);
    let credential_rows = html! {
        @for credential in &credentials.items {
            @let status = format!("{:?}", credential.status(now)).to_lowercase();
            tr {
                td { (credential.name.as_str()) }
                td { code { (credential.display_hint) } }
                td { (badge(&status)) }
                td { (maybe_time(credential.expires_at)) }
                td { (maybe_time(credential.last_used_at)) }
                td.actions {
                    @if manage && credential.revoked_at.is_none() {
                        form.inline method="post" action=(format!("/dashboard/agents/{id}/credentials/{}/revoke", credential.id))
                            data-confirm="Revoke this credential? The agent stops at once." {
                            (csrf_field(&session))
                            button.danger type="submit" { "Revoke" }
                        }
                    }
                }
            }
        }
    };
    let lease_rows = html! {
        @for lease in &leases.items {
            tr {
                td { code { (lease.id.to_string()) } }
                td { (lease.provider.as_str()) }
                td { (badge(lease.state.as_str())) }
                td.num { (dollars(lease.granted)) }
                td.num { (dollars(lease.reported)) }
                td.num { (dollars(lease.returned)) }
                td { (time(lease.created_at)) }
            }
        }
    };
    let history_rows = html! {
        @for entry in &history.items {
            tr {
                td.num { (entry.sequence) }
                td { (entry.kind.as_str()) }
                td.num { (dollars(entry.allocated_delta)) }
                td.num { (dollars(entry.spent_delta)) }
                td.num { (dollars(entry.allocated_after)) }
                td { (entry.actor) }
                td { (entry.reason.as_deref().unwrap_or("")) }
            }
        }
    };
    let body = html! {
        h1 { "Agent " (agent.name.as_str()) }
        (notice(query.done.as_deref().map(|_| "Done.")))
        dl.details {
            div { dt { "Id" } dd { code { (agent.id.to_string()) } } }
            div { dt { "Owner" } dd { (agent.owner_name.as_str()) } }
            div { dt { "Status" } dd { (badge(agent.status.as_str())) } }
            div { dt { "Provider key" } dd { (agent.provider_key.map(|key| key.to_string()).unwrap_or_else(|| "—".to_owned())) } }
            div { dt { "Budget" } dd {
                meter min="0" max=(account.allocated.max(1)) value=(used.clamp(0, account.allocated.max(1))) aria-label="Budget used" {}
                " " (dollars(used)) " of " (dollars(account.allocated)) " (" (budget.status) ")"
            } }
            div { dt { "Available" } dd { (dollars(budget.available)) } }
            div { dt { "Description" } dd { (agent.description.as_str()) } }
        }
        section #credentials {
            h2 { "Credentials" }
            (table("Credentials", &["Name", "Credential", "Status", "Expires", "Last used", "Actions"], credential_rows))
            @if manage {
                form.stack method="post" action=(format!("/dashboard/agents/{id}/credentials")) {
                    (csrf_field(&session))
                    label for="name" { "Name (optional)" }
                    input #name name="name" maxlength="128";
                    label for="expires_in_days" { "Expires after (days, blank: never)" }
                    input #expires_in_days name="expires_in_days" type="number" min="1" max=(MAX_CREDENTIAL_DAYS);
                    button type="submit" { "Create credential" }
                }
            }
        }
        section #leases { h2 { "Leases" } (table("Leases, newest first", &["Lease", "Provider", "State", "Granted", "Reported", "Returned", "Opened"], lease_rows)) }
        section #history { h2 { "Budget history" } (table("Ledger, newest first", &["#", "Kind", "Allocated Δ", "Spent Δ", "Allocated after", "By", "Reason"], history_rows)) }
    };
    Ok(page(&session, Section::Agents, agent.name.as_str(), body))
}

/// `POST /dashboard/agents/{id}/credentials`: the secret is on the answer, once.
pub(crate) async fn create_credential(
    State(state): State<AppState>,
    session: Session,
    PathId(id): PathId<AgentId>,
    form: Form,
) -> Result<Response, HtmlError> {
    let name =
        form.get("name").map(TokenName::parse).transpose().map_err(|error| ApiError::from(error.renamed("name")))?;
    let ttl = match form.get("expires_in_days") {
        Some(days) => {
            let days: u64 =
                days.parse().ok().filter(|days| (1..=MAX_CREDENTIAL_DAYS).contains(days)).ok_or_else(|| {
                    ApiError::invalid_field("expires_in_days", format!("must be 1 to {MAX_CREDENTIAL_DAYS} days"))
                })?;
            Some(Duration::from_secs(days * 86_400))
        }
        None => None,
    };
    let created = agents_of(&state)?.create_credential(&session.caller.audited(), &id, name, ttl).await?;
    let back = format!("/dashboard/agents/{id}");
    Ok(shown_once(&session, Section::Agents, "Credential created", created.secret.expose(), &back, "Back to the agent"))
}

/// `POST /dashboard/agents/{id}/credentials/{credential}/revoke`.
pub(crate) async fn revoke_credential(
    State(state): State<AppState>,
    session: Session,
    PathIds(id, credential): PathIds<AgentId, TokenId>,
    _form: Form,
) -> Result<Response, HtmlError> {
    agents_of(&state)?.revoke_credential(&session.caller.audited(), &id, &credential, None).await?;
    Ok(see_other(&session, &format!("/dashboard/agents/{id}?done=revoked")))
}
