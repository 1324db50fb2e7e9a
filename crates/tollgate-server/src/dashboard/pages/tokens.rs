//! Tokens: the list (search, filters, cursor paging), a token's page (limits, usage charts, the
//! constraints editor, revoke and rotate), and creation, whose secret is shown once on the answer
//! to the form and never again.
//!
//! Forms are turned into the JSON API's request bodies and parsed by them, so every rule (and every
//! error message) is the API's.

use std::time::Duration;

use axum::extract::State;
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Map, Value};
use tollgate::{CreatedToken, LimitSubject, Operation, Permission, TokenId, TokenRecord, UsageFilter};

use super::usage::{limit_meters, series};
use crate::dashboard::error::HtmlError;
use crate::dashboard::extract::{PathId, Query, blank, encoded};
use crate::dashboard::layout::{
    Section, badge, csrf_field, maybe_time, notice, page, pager, see_other, shown_once, table, time,
};
use crate::dashboard::session::{Form, Session};
use crate::error::ApiError;
use crate::extract::from_value;
use crate::resources::tokens::{CreateTokenBody, ListTokensQuery, PatchTokenBody, new_token};
use crate::state::AppState;

/// `GET /dashboard/tokens?q=&owner=&project=&status=&cursor=`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    #[serde(default)]
    q: Option<String>,
    #[serde(default)]
    owner: Option<String>,
    #[serde(default)]
    project: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    cursor: Option<String>,
    #[serde(default)]
    done: Option<String>,
}

/// Puts the non-blank values of `pairs` into a JSON object.
fn object(pairs: &[(&str, Option<Value>)]) -> Value {
    let map: Map<String, Value> =
        pairs.iter().filter_map(|(key, value)| Some(((*key).to_owned(), value.clone()?))).collect();
    Value::Object(map)
}

fn text(value: Option<&str>) -> Option<Value> {
    value.map(|value| Value::String(value.to_owned()))
}

/// A comma- or newline-separated list as a JSON array (blank: absent).
fn array(value: Option<&str>) -> Option<Value> {
    value.map(|value| {
        Value::Array(
            value
                .split([',', '\n'])
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(|item| Value::String(item.to_owned()))
                .collect(),
        )
    })
}

/// A whole number of days as seconds, or the API's "must be a number" on `field`.
fn days(field: &'static str, value: Option<&str>) -> Result<Option<Value>, ApiError> {
    value
        .map(|value| {
            let days: u64 =
                value.parse().map_err(|_| ApiError::invalid_field(field, "must be a whole number of days"))?;
            Ok(Value::from(days.saturating_mul(86_400)))
        })
        .transpose()
}

/// A list shown as text, "any" when empty (no restriction).
fn or_any(joined: &str) -> &str {
    if joined.is_empty() { "any" } else { joined }
}

fn status_word(record: &TokenRecord, now: tollgate::Timestamp) -> String {
    format!("{:?}", record.status(now)).to_lowercase()
}

pub(crate) async fn list(
    State(state): State<AppState>,
    session: Session,
    Query(query): Query<ListQuery>,
) -> Result<Response, HtmlError> {
    let (owner, project, status) = (blank(&query.owner), blank(&query.project), blank(&query.status));
    let api_query: ListTokensQuery = from_value(object(&[
        ("owner", text(owner.as_deref())),
        ("project", text(project.as_deref())),
        ("status", text(status.as_deref())),
        ("cursor", text(blank(&query.cursor).as_deref())),
    ]))?;
    let settings = state.settings();
    let (filter, page_request) = api_query.into_parts(settings.default_page_size, settings.max_page_size)?;
    let found = state.tokens().list(session.principal(), &filter, &page_request).await?;
    let search = blank(&query.q);
    let now = state.tokens().clock().now();
    let shown: Vec<&TokenRecord> = found
        .items
        .iter()
        .filter(|record| {
            search.as_deref().is_none_or(|q| record.name.as_str().to_lowercase().contains(&q.to_lowercase()))
        })
        .collect();
    let encoded = encoded(&[("q", &search), ("owner", &owner), ("project", &project), ("status", &status)]);
    let rows = html! {
        @for record in &shown {
            tr {
                td { a href=(format!("/dashboard/tokens/{}", record.id)) { (record.name.as_str()) } }
                td { code { (record.display_hint) } }
                td { (record.owner_name.as_str()) }
                td { (record.project_name.as_ref().map(|name| name.as_str()).unwrap_or("—")) }
                td { (record.permission.as_str()) }
                td { (badge(&status_word(record, now))) }
                td { (maybe_time(record.expires_at)) }
                td { (maybe_time(record.last_used_at)) }
            }
        }
    };
    let own = session.principal().owner_id();
    let may_create = own.is_some_and(|owner| {
        session.can(Operation::CreateToken { owner, permission: Permission::ReadOnly, project: None })
    });
    let body = html! {
        h1 { "Tokens" }
        (notice(query.done.as_deref().map(|_| "Done.")))
        form.filters method="get" action="/dashboard/tokens" role="search" {
            label { "Name contains " input type="search" name="q" value=(search.as_deref().unwrap_or_default()) maxlength="128"; }
            label { "Owner id " input name="owner" value=(owner.as_deref().unwrap_or_default()) placeholder="usr_… or svc_…" maxlength="64"; }
            label { "Project id " input name="project" value=(project.as_deref().unwrap_or_default()) placeholder="prj_…" maxlength="64"; }
            label { "Status " select name="status" {
                @for word in ["active", "revoked", "expired", "all"] {
                    option value=(word) selected[status.as_deref().unwrap_or("active") == word] { (word) }
                }
            } }
            button type="submit" { "Filter" }
        }
        @if search.is_some() { p.hint { "The name search applies to the page shown." } }
        (table("Tokens", &["Name", "Token", "Owner", "Project", "Permission", "Status", "Expires", "Last used"], rows))
        (pager("/dashboard/tokens", &encoded, found.next_cursor.as_deref()))
        @if may_create { (create_form(&session)) }
    };
    Ok(page(&session, Section::Tokens, "Tokens", body))
}

fn create_form(session: &Session) -> Markup {
    let admin = session.principal().level() == Permission::Admin;
    html! {
        section #create-token {
            h2 { "Create a token" }
            form.stack method="post" action="/dashboard/tokens" {
                (csrf_field(session))
                label for="name" { "Name" }
                input #name name="name" required maxlength="128";
                label for="permission" { "Permission" }
                select #permission name="permission" {
                    option value="standard" selected { "standard" }
                    option value="read_only" { "read_only" }
                    @if admin { option value="admin" { "admin" } }
                }
                @if admin {
                    label for="owner" { "Owner (username, service account or id; blank: you)" }
                    input #owner name="owner" maxlength="128";
                }
                label for="project" { "Project (name or id, optional)" }
                input #project name="project" maxlength="128";
                label for="expires_in_days" { "Expires after (days, blank: never)" }
                input #expires_in_days name="expires_in_days" type="number" min="1" max="36600";
                label for="ip_allow" { "IP allow-list (CIDR ranges, comma-separated; blank: any)" }
                input #ip_allow name="ip_allow" maxlength="4096";
                label for="allowed_tools" { "Allowed tools (comma-separated; blank: any)" }
                input #allowed_tools name="allowed_tools" maxlength="4096";
                label for="description" { "Description" }
                input #description name="description" maxlength="1024";
                button type="submit" { "Create token" }
            }
        }
    }
}

/// The answer that shows a new token's secret, once.
fn secret_page(session: &Session, heading: &str, created: &CreatedToken) -> Response {
    let back = format!("/dashboard/tokens/{}", created.record.id);
    let label = format!("Go to the token {}", created.record.name.as_str());
    shown_once(session, Section::Tokens, heading, created.secret.expose(), &back, &label)
}

pub(crate) async fn create(State(state): State<AppState>, session: Session, form: Form) -> Result<Response, HtmlError> {
    let body: CreateTokenBody = from_value(object(&[
        ("name", text(form.get("name")).or(Some(Value::String(String::new())))),
        ("owner", text(form.get("owner"))),
        ("project", text(form.get("project"))),
        ("permission", text(form.get("permission"))),
        ("expires_in_seconds", days("expires_in_days", form.get("expires_in_days"))?),
        ("ip_allow", array(form.get("ip_allow"))),
        ("allowed_tools", array(form.get("allowed_tools"))),
        ("description", text(form.get("description"))),
    ]))?;
    let token = new_token(&state, &session.caller, body, "owner").await?;
    let created = state.tokens().create(session.principal(), token).await?;
    Ok(secret_page(&session, "Token created", &created))
}

/// `GET /dashboard/tokens/{id}?done=`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ShowQuery {
    #[serde(default)]
    done: Option<String>,
}

pub(crate) async fn show(
    State(state): State<AppState>,
    session: Session,
    PathId(id): PathId<TokenId>,
    Query(query): Query<ShowQuery>,
) -> Result<Response, HtmlError> {
    let tokens = state.tokens();
    let record = tokens.show(session.principal(), &id).await?;
    let now = tokens.clock().now();
    let limits = state.metering().limit_status(session.principal(), Some(&LimitSubject::Token(id))).await?;
    let usage = series(&state, &session, &UsageFilter { token_id: Some(id), ..UsageFilter::between(now, now) }).await?;
    let manage = session.can(Operation::ManageToken { owner: record.owner });
    let active = record.revoked_at.is_none();
    let done = query.done.as_deref().map(|done| match done {
        "revoked" => "The token is revoked.",
        "updated" => "The token is updated.",
        _ => "Done.",
    });
    let body = html! {
        h1 { "Token " (record.name.as_str()) }
        (notice(done))
        dl.details {
            div { dt { "Id" } dd { code { (record.id.to_string()) } } }
            div { dt { "Token" } dd { code { (record.display_hint) } } }
            div { dt { "Status" } dd #token-status { (badge(&status_word(&record, now))) } }
            div { dt { "Owner" } dd { (record.owner_name.as_str()) " (" (record.owner.to_string()) ")" } }
            div { dt { "Project" } dd { (record.project_name.as_ref().map(|name| name.as_str()).unwrap_or("—")) } }
            div { dt { "Permission" } dd { (record.permission.as_str()) } }
            div { dt { "Scopes" } dd { (record.scopes.iter().map(|scope| scope.as_str()).collect::<Vec<_>>().join(", ")) } }
            div { dt { "Allowed tools" } dd { (or_any(&record.allowed_tools.as_slice().join(", "))) } }
            div { dt { "IP allow-list" } dd { (or_any(&record.ip_allow.to_strings().join(", "))) } }
            div { dt { "Expires" } dd { (maybe_time(record.expires_at)) } }
            div { dt { "Created" } dd { (time(record.created_at)) } }
            div { dt { "Last used" } dd { (maybe_time(record.last_used_at)) } }
            @if let Some(reason) = &record.revoke_reason { div { dt { "Revoke reason" } dd { (reason) } } }
            div { dt { "Description" } dd { (record.description.as_str()) } }
        }
        section { h2 { "Limits" } (limit_meters("The token's limits", &limits)) }
        section { h2 { "Usage" } (usage.charts("token")) }
        @if manage && active { (manage_forms(&session, &record)) }
    };
    Ok(page(&session, Section::Tokens, record.name.as_str(), body))
}

fn manage_forms(session: &Session, record: &TokenRecord) -> Markup {
    let base = format!("/dashboard/tokens/{}", record.id);
    html! {
        section #edit-token {
            h2 { "Edit constraints" }
            @if session.principal().level() != Permission::Admin {
                p.hint { "Constraints an admin imposed can only be tightened, not loosened or removed." }
            }
            form.stack method="post" action=(base) {
                (csrf_field(session))
                label for="description" { "Description" }
                input #description name="description" value=(record.description.as_str()) maxlength="1024";
                label for="ip_allow" { "IP allow-list (CIDR ranges, comma-separated; blank: any)" }
                input #ip_allow name="ip_allow" value=(record.ip_allow.to_strings().join(", ")) maxlength="4096";
                label for="allowed_tools" { "Allowed tools (comma-separated; blank: any)" }
                input #allowed_tools name="allowed_tools" value=(record.allowed_tools.as_slice().join(", ")) maxlength="4096";
                label for="expires_in_days" { "Expire after (days from now; blank: keep)" }
                input #expires_in_days name="expires_in_days" type="number" min="1" max="36600";
                button type="submit" { "Save" }
            }
        }
        section #revoke-token {
            h2 { "Revoke" }
            form.stack method="post" action=(format!("{base}/revoke")) data-confirm="Revoke this token? Requests with it stop at once." {
                (csrf_field(session))
                label for="reason" { "Reason (recorded in the audit log)" }
                input #reason name="reason" maxlength="1024";
                button.danger type="submit" { "Revoke token" }
            }
        }
        section #rotate-token {
            h2 { "Rotate" }
            form.stack method="post" action=(format!("{base}/rotate")) {
                (csrf_field(session))
                label for="grace" { "The old secret keeps working for" }
                select #grace name="grace_seconds" {
                    option value="0" { "no time (stops now)" }
                    option value="3600" selected { "1 hour" }
                    option value="86400" { "1 day" }
                    option value="604800" { "7 days" }
                }
                button type="submit" { "Rotate token" }
            }
        }
    }
}

pub(crate) async fn update(
    State(state): State<AppState>,
    session: Session,
    PathId(id): PathId<TokenId>,
    form: Form,
) -> Result<Response, HtmlError> {
    let as_list = |field: &str| Some(array(form.get(field)).unwrap_or(Value::Array(Vec::new())));
    let body: PatchTokenBody = from_value(object(&[
        ("description", Some(Value::String(form.get("description").unwrap_or_default().to_owned()))),
        ("ip_allow", as_list("ip_allow")),
        ("allowed_tools", as_list("allowed_tools")),
        ("expires_in_seconds", days("expires_in_days", form.get("expires_in_days"))?),
    ]))?;
    let tokens = state.tokens();
    let patch = body.into_patch(tokens.clock().now())?;
    tokens.update(session.principal(), &id, &patch).await?;
    Ok(see_other(&session, &format!("/dashboard/tokens/{id}?done=updated")))
}

pub(crate) async fn revoke(
    State(state): State<AppState>,
    session: Session,
    PathId(id): PathId<TokenId>,
    form: Form,
) -> Result<Response, HtmlError> {
    state.tokens().revoke(session.principal(), &id, form.get("reason")).await?;
    Ok(see_other(&session, &format!("/dashboard/tokens/{id}?done=revoked")))
}

pub(crate) async fn rotate(
    State(state): State<AppState>,
    session: Session,
    PathId(id): PathId<TokenId>,
    form: Form,
) -> Result<Response, HtmlError> {
    let seconds: u64 = form
        .get("grace_seconds")
        .unwrap_or("0")
        .parse()
        .map_err(|_| ApiError::invalid_field("grace_seconds", "must be a whole number of seconds"))?;
    let body: crate::resources::tokens::RotateBody =
        from_value(object(&[("grace_seconds", Some(Value::from(seconds)))]))?;
    let grace: Duration = body.grace()?;
    let rotated = state.tokens().rotate(session.principal(), &id, grace).await?;
    Ok(secret_page(&session, "Token rotated", &rotated))
}
