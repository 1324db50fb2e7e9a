//! Agents, budgets (with their risk, and change requests to approve or reject: never shown to their
//! requester as decidable), and provider keys (masked; the vault never hands a key to a page).

use axum::extract::State;
use axum::response::Response;
use maud::html;
use tollgate::{AgentFilter, AgentService, BudgetRequestId, Operation, PageRequest, ProviderKeyFilter, RequestState};

use crate::dashboard::error::HtmlError;
use crate::dashboard::extract::{IdAction, ListQuery, Query};
use crate::dashboard::layout::{Section, badge, csrf_field, dollars, notice, page, pager, see_other, table, time};
use crate::dashboard::session::{Form, Session};
use crate::error::ApiError;
use crate::state::AppState;

pub(crate) fn agents_of(state: &AppState) -> Result<&AgentService, HtmlError> {
    state.agents().ok_or_else(|| ApiError::agents_not_configured().into())
}

pub(crate) async fn agents(
    State(state): State<AppState>,
    session: Session,
    Query(query): Query<ListQuery>,
) -> Result<Response, HtmlError> {
    let found =
        agents_of(&state)?.list_agents(session.principal(), &AgentFilter::default(), &query.page(&state)).await?;
    let rows = html! {
        @for agent in &found.items {
            tr {
                td { a href=(format!("/dashboard/agents/{}", agent.id)) { (agent.name.as_str()) } }
                td { code { (agent.id.to_string()) } }
                td { (agent.owner_name.as_str()) }
                td { (badge(agent.status.as_str())) }
                td { (agent.providers.as_slice().iter().map(|provider| provider.as_str()).collect::<Vec<_>>().join(", ")) }
                td { (agent.provider_key.as_ref().map(ToString::to_string).unwrap_or_else(|| "—".to_owned())) }
                td { (time(agent.created_at)) }
            }
        }
    };
    let body = html! {
        h1 { "Agents" }
        p { "Register agents with " code { "tollgate agent create" } " or " code { "POST /v1/agents" } "; an agent's page creates and revokes its credentials." }
        (table("Agents", &["Name", "Id", "Owner", "Status", "Providers", "Provider key", "Created"], rows))
        (pager("/dashboard/agents", "", found.next_cursor.as_deref()))
    };
    Ok(page(&session, Section::Agents, "Agents", body))
}

pub(crate) async fn budgets(
    State(state): State<AppState>,
    session: Session,
    Query(query): Query<ListQuery>,
) -> Result<Response, HtmlError> {
    let agents = agents_of(&state)?;
    let statuses = agents.budget_statuses(session.principal(), &AgentFilter::default(), &query.page(&state)).await?;
    let requests =
        agents.budget_requests(session.principal(), Some(RequestState::Pending), &PageRequest::first(100)).await?;
    let budget_rows = html! {
        @for status in &statuses.items {
            @let account = &status.budget.account;
            tr {
                td { (status.name.as_str()) }
                td { (dollars(account.allocated)) }
                td { (dollars(account.reserved)) }
                td { (dollars(account.spent)) }
                td { (dollars(status.budget.available)) }
                td {
                    meter min="0" max="100" value=(status.percent_used.clamp(0.0, 100.0)) low="50" high="80" optimum="0"
                        aria-label=(format!("{} spent", status.name.as_str())) {}
                    " " (format!("{:.0}", status.percent_used)) " %"
                }
                td { (badge(status.risk.as_str())) }
            }
        }
    };
    let request_rows = html! {
        @for request in &requests.items {
            @let decidable = !request.is_requested_by(session.principal())
                && session.can(Operation::DecideBudgetRequest { own_request: false });
            tr {
                td { code { (request.agent.to_string()) } }
                td { (request.requester) }
                td { (dollars(request.requested_allocation)) }
                td { (request.justification) }
                td { (time(request.created_at)) }
                td.actions {
                    @if decidable {
                        @for (decision, label) in [("approve", "Approve"), ("reject", "Reject")] {
                            form.inline method="post" action=(format!("/dashboard/budgets/requests/{}/{decision}", request.id)) {
                                (csrf_field(&session))
                                label { span.visually-hidden { "Reason to " (decision) } input name="reason" maxlength="1024" placeholder="reason"; }
                                button type="submit" { (label) }
                            }
                        }
                    } @else { "waiting for another admin" }
                }
            }
        }
    };
    let body = html! {
        h1 { "Budgets" }
        (notice(query.done.as_deref().map(|_| "Done.")))
        (table("Budgets", &["Agent", "Allocated", "Reserved", "Spent", "Available", "Used", "Risk"], budget_rows))
        (pager("/dashboard/budgets", "", statuses.next_cursor.as_deref()))
        section #budget-requests {
            h2 { "Pending change requests" }
            @if requests.items.is_empty() { p { "None." } }
            @else { (table("Pending change requests", &["Agent", "Requester", "Asked for", "Why", "Made", "Decision"], request_rows)) }
        }
    };
    Ok(page(&session, Section::Budgets, "Budgets", body))
}

/// `POST /dashboard/budgets/requests/{id}/{approve|reject}`.
pub(crate) async fn decide(
    State(state): State<AppState>,
    session: Session,
    IdAction(id, decision): IdAction<BudgetRequestId>,
    form: Form,
) -> Result<Response, HtmlError> {
    let approve = match decision.as_str() {
        "approve" => true,
        "reject" => false,
        _ => return Err(ApiError::route_not_found().into()),
    };
    agents_of(&state)?.decide_budget_request(&session.caller.audited(), &id, approve, form.get("reason")).await?;
    Ok(see_other(&session, &format!("/dashboard/budgets?done={decision}")))
}

pub(crate) async fn provider_keys(
    State(state): State<AppState>,
    session: Session,
    Query(query): Query<ListQuery>,
) -> Result<Response, HtmlError> {
    let found = agents_of(&state)?
        .list_provider_keys(session.principal(), &ProviderKeyFilter::default(), &query.page(&state))
        .await?;
    let rows = html! {
        @for key in &found.items {
            tr {
                td { code { (key.id.to_string()) } }
                td { (key.provider.as_str()) }
                td { code { (key.masked) } }
                td { (key.owner_name.as_str()) }
                td { (badge(if key.enabled { "enabled" } else { "disabled" })) }
                td { (key.balance.map(|balance| dollars(balance.micros())).unwrap_or_else(|| "—".to_owned())) }
                td { (key.description.as_str()) }
            }
        }
    };
    let body = html! {
        h1 { "Provider keys" }
        p { "Keys are sealed in the vault and shown masked. Assign one to an agent with " code { "tollgate agent update --provider-key" } "." }
        (table("Provider keys", &["Id", "Provider", "Key", "Owner", "State", "Balance", "Description"], rows))
        (pager("/dashboard/provider-keys", "", found.next_cursor.as_deref()))
    };
    Ok(page(&session, Section::ProviderKeys, "Provider keys", body))
}
