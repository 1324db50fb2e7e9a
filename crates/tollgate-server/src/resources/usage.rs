//! `GET /v1/usage` and `/v1/analytics`: usage read back by filters and groups, and the operator's
//! overview of a time range (reporting usage is `usage_record`).

use std::time::Duration;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tollgate::{
    AgentId, AgentScope, AnalyticsReport, ModelName, OwnerId, PageRequest, Period, ProjectId, ProviderName, Timestamp,
    TokenId, UsageFilter, UsageGroupBy, UsageReport, Window,
};

use super::users::page_request;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::Query;
use crate::openapi::{ApiSchema, Components, group_cursor, identifier, model, timestamp};
use crate::routes::{Doc, Routes};
use crate::state::AppState;

/// The longest range a report covers when asked by `hours` (a year).
const MAX_HOURS: u64 = 366 * 24;

pub(super) fn routes() -> Routes {
    Routes::new()
        .get(
            "/v1/usage",
            Doc::new("getUsage", "usage", "Usage totals over a range, optionally grouped")
                .describe("Non-admins see only their own tokens' usage.")
                .bearer()
                .query::<UsageQuery>()
                .response::<ReportView<UsageReport>>(200, "The report")
                .problems(&[400, 403, 404]),
            usage,
        )
        .get(
            "/v1/analytics",
            Doc::new("getAnalytics", "usage", "Totals, error rate, latency percentiles and breakdowns (admins only)")
                .bearer()
                .query::<AnalyticsQuery>()
                .response::<ReportView<AnalyticsReport>>(200, "The overview")
                .problems(&[400, 403]),
            analytics,
        )
}

/// The range of a report: a named `period`, or `since` and `until`, or the last `hours`, or the
/// last 24 hours.
pub(super) fn report_range(
    period: Option<&str>,
    since: Option<Timestamp>,
    until: Option<Timestamp>,
    hours: Option<u64>,
    now: Timestamp,
) -> Result<(Timestamp, Timestamp), ApiError> {
    let Some(period) = period else { return range(since, until, hours, now) };
    if since.is_some() || until.is_some() || hours.is_some() {
        return Err(ApiError::invalid_field("period", "give either period or since/until/hours"));
    }
    Ok(period.parse::<Period>()?.range(now))
}

/// The range of a report: `since` and `until`, or the last `hours`, or the last 24 hours.
fn range(
    since: Option<Timestamp>,
    until: Option<Timestamp>,
    hours: Option<u64>,
    now: Timestamp,
) -> Result<(Timestamp, Timestamp), ApiError> {
    if hours.is_some() && (since.is_some() || until.is_some()) {
        return Err(ApiError::invalid_field("hours", "give either hours or since/until"));
    }
    let hours = hours.unwrap_or(24);
    if !(1..=MAX_HOURS).contains(&hours) {
        return Err(ApiError::invalid_field("hours", format!("must be between 1 and {MAX_HOURS}")));
    }
    // Rollups are hourly: by default the range ends with the current hour, so it counts.
    let until = until.unwrap_or_else(|| Window::Hour.end_of(now));
    let since = since.unwrap_or_else(|| until.saturating_sub(Duration::from_secs(hours * 3600)));
    if since >= until {
        return Err(ApiError::invalid_field("since", "must be before until"));
    }
    Ok((since, until))
}

pub(super) fn range_properties() -> Value {
    json!({
        "period": {
            "type": "string",
            "enum": Period::ALL.iter().map(|period| period.as_str()).collect::<Vec<_>>(),
            "description": "A named UTC range (instead of since/until/hours).",
        },
        "since": timestamp("From (rounded down to the hour)."),
        "until": timestamp("Until (exclusive); default the end of the current hour."),
        "hours": { "type": "integer", "minimum": 1, "maximum": MAX_HOURS, "description": "The last N hours (default 24)." },
    })
}

pub(super) fn merged(mut base: Value, extra: Value) -> Value {
    if let (Some(base), Value::Object(extra)) = (base.as_object_mut(), extra) {
        base.extend(extra);
    }
    base
}

/// `GET /v1/usage`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UsageQuery {
    #[serde(default)]
    period: Option<String>,
    #[serde(default)]
    since: Option<Timestamp>,
    #[serde(default)]
    until: Option<Timestamp>,
    #[serde(default)]
    hours: Option<u64>,
    #[serde(default)]
    token_id: Option<String>,
    #[serde(default)]
    owner: Option<String>,
    #[serde(default)]
    project: Option<String>,
    #[serde(default)]
    provider: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    agent: Option<String>,
    #[serde(default)]
    group_by: Option<String>,
    #[serde(default)]
    limit: Option<u32>,
    #[serde(default)]
    cursor: Option<String>,
}

impl ApiSchema for UsageQuery {
    const NAME: &'static str = "UsageQuery";
    fn schema(_: &mut Components) -> Value {
        let filters = json!({
            "token_id": { "type": "string", "pattern": "^tok_[0-9a-f]{32}$" },
            "owner": { "type": "string", "pattern": "^(usr|svc)_[0-9a-f]{32}$", "description": "A user's or service account's tokens." },
            "project": { "type": "string", "pattern": "^prj_[0-9a-f]{32}$", "description": "A project's tokens (its members may read it)." },
            "provider": identifier(64, "Only this provider."),
            "model": model("Only this model."),
            "agent": { "type": "string", "pattern": "^agt_[0-9a-f]{32}$", "description": "One agent's usage." },
            "group_by": group_by_schema(),
            "limit": { "type": "integer", "minimum": 1, "maximum": 1000, "default": 100, "description": "Groups per page." },
            "cursor": group_cursor(),
        });
        json!({ "type": "object", "additionalProperties": false, "properties": merged(range_properties(), filters) })
    }
}

const GROUPS: [(&str, UsageGroupBy); 7] = [
    ("token", UsageGroupBy::Token),
    ("owner", UsageGroupBy::Owner),
    ("project", UsageGroupBy::Project),
    ("provider", UsageGroupBy::Provider),
    ("model", UsageGroupBy::Model),
    ("hour", UsageGroupBy::Hour),
    ("agent", UsageGroupBy::Agent),
];

pub(super) fn group_by_schema() -> Value {
    json!({ "type": "string", "enum": GROUPS.iter().map(|(name, _)| *name).collect::<Vec<_>>() })
}

pub(super) fn group_by(text: &str) -> Result<UsageGroupBy, ApiError> {
    GROUPS.iter().find(|(name, _)| *name == text).map(|(_, group_by)| *group_by).ok_or_else(|| {
        ApiError::invalid_field("group_by", "must be one of token, owner, project, provider, model, hour, agent")
    })
}

/// The page of groups a query asks for: `limit` 1–1000 (default 100) after `cursor`, which pages
/// groups and so needs a `group_by`.
pub(super) fn group_page(
    grouping: Option<UsageGroupBy>,
    limit: Option<u32>,
    cursor: Option<String>,
) -> Result<PageRequest, ApiError> {
    if grouping.is_none() && cursor.is_some() {
        return Err(ApiError::invalid_field("cursor", "pages groups: give group_by"));
    }
    page_request(limit, cursor, 100, 1000)
}

/// A report, serialized as the facade shapes it.
#[derive(Debug, Serialize)]
#[serde(transparent)]
struct ReportView<T>(T);

impl ApiSchema for ReportView<UsageReport> {
    const NAME: &'static str = "UsageReport";
    fn schema(_: &mut Components) -> Value {
        json!({
            "type": "object",
            "required": ["since", "until", "group_by", "totals", "groups", "next_cursor"],
            "properties": {
                "since": timestamp("From."),
                "until": timestamp("Until (exclusive)."),
                "group_by": { "type": ["string", "null"] },
                "totals": { "type": "object", "description": "events, requests, input_tokens, output_tokens, cost_micros, errors, latency" },
                "groups": { "type": "array", "items": { "type": "object", "description": "`key` plus the totals." } },
                "next_cursor": { "type": ["string", "null"], "description": "The next page of groups; null on the last." },
            }
        })
    }
}

impl ApiSchema for ReportView<AnalyticsReport> {
    const NAME: &'static str = "AnalyticsReport";
    fn schema(_: &mut Components) -> Value {
        let breakdown = json!({ "type": "array", "items": { "type": "object" } });
        json!({
            "type": "object",
            "required": ["since", "until", "totals", "total_tokens", "error_rate"],
            "properties": {
                "since": timestamp("From."),
                "until": timestamp("Until (exclusive)."),
                "totals": { "type": "object" },
                "total_tokens": { "type": "integer" },
                "error_rate": { "type": "number", "minimum": 0, "maximum": 1 },
                "latency_p50_ms": { "type": ["integer", "null"] },
                "latency_p95_ms": { "type": ["integer", "null"] },
                "by_provider": breakdown,
                "by_model": breakdown,
                "by_project": breakdown,
                "by_owner": breakdown,
                "top_tokens": breakdown,
            }
        })
    }
}

async fn usage(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<UsageQuery>,
) -> Result<Response, ApiError> {
    let now = state.tokens().clock().now();
    let (since, until) = report_range(query.period.as_deref(), query.since, query.until, query.hours, now)?;
    let mut filter = UsageFilter::between(since, until);
    filter.token_id = query.token_id.as_deref().map(TokenId::parse).transpose()?;
    filter.owner = query.owner.as_deref().map(OwnerId::parse).transpose()?;
    filter.project = query.project.as_deref().map(ProjectId::parse).transpose()?;
    filter.provider = query.provider.as_deref().map(ProviderName::parse).transpose()?;
    filter.model = query.model.as_deref().map(ModelName::parse).transpose()?;
    filter.agent = query
        .agent
        .as_deref()
        .map(|agent| AgentId::parse(agent).map_err(|error| error.renamed("agent")))
        .transpose()?
        .map(AgentScope::One);
    let grouping = query.group_by.as_deref().map(group_by).transpose()?;
    let page = group_page(grouping, query.limit, query.cursor)?;
    let report = state.metering().usage(&caller.principal, &filter, grouping, &page).await?;
    Ok(axum::Json(ReportView(report)).into_response())
}

/// `GET /v1/analytics`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AnalyticsQuery {
    #[serde(default)]
    period: Option<String>,
    #[serde(default)]
    since: Option<Timestamp>,
    #[serde(default)]
    until: Option<Timestamp>,
    #[serde(default)]
    hours: Option<u64>,
    #[serde(default)]
    top: Option<u32>,
}

impl ApiSchema for AnalyticsQuery {
    const NAME: &'static str = "AnalyticsQuery";
    fn schema(_: &mut Components) -> Value {
        let top = json!({ "top": { "type": "integer", "minimum": 1, "maximum": 100, "default": 10 } });
        json!({ "type": "object", "additionalProperties": false, "properties": merged(range_properties(), top) })
    }
}

async fn analytics(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<AnalyticsQuery>,
) -> Result<Response, ApiError> {
    let now = state.tokens().clock().now();
    let (since, until) = report_range(query.period.as_deref(), query.since, query.until, query.hours, now)?;
    let top = query.top.unwrap_or(10);
    if !(1..=100).contains(&top) {
        return Err(ApiError::invalid_field("top", "must be between 1 and 100"));
    }
    let report = state.metering().analytics(&caller.principal, since, until, top).await?;
    Ok(axum::Json(ReportView(report)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openapi::conformance::check_request;

    #[test]
    fn query_schemas_match_their_types() {
        check_request::<UsageQuery>();
        check_request::<AnalyticsQuery>();
    }

    #[test]
    fn ranges_are_checked() {
        let now = Timestamp::from_unix_micros(10_000_000_000_000);
        let (since, until) = range(None, None, None, now).unwrap();
        assert_eq!(until, Window::Hour.end_of(now));
        assert_eq!(since, until.saturating_sub(Duration::from_secs(86_400)));
        assert_eq!(range(None, None, Some(0), now).unwrap_err().field(), Some("hours"));
        assert_eq!(range(Some(now), None, Some(2), now).unwrap_err().field(), Some("hours"));
        assert_eq!(range(Some(now), Some(now), None, now).unwrap_err().field(), Some("since"));
        assert_eq!(report_range(Some("today"), None, None, Some(2), now).unwrap_err().field(), Some("period"));
        assert_eq!(report_range(Some("fortnight"), None, None, None, now).unwrap_err().field(), Some("period"));
        assert_eq!(report_range(Some("today"), None, None, None, now).unwrap(), Period::Today.range(now));
    }
}
