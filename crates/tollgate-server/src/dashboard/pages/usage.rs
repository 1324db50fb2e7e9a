//! Usage charts (hourly for 24 hours, daily for 30 days), limit meters, the limits page and the
//! usage explorer. Every figure comes from `Metering::usage` and `Metering::limit_status`, scoped
//! by the facade to what the signed-in user may see.

use std::time::Duration;

use axum::extract::State;
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;
use tollgate::{
    LimitStatus, LimitSubject, Metric, Operation, OwnerId, PageRequest, Period, ProjectId, Timestamp, TokenId,
    UsageFilter, UsageGroup, UsageGroupBy, UsageScope, UsageTotals, Window,
};

use crate::dashboard::charts::{Bar, bar_chart, count};
use crate::dashboard::error::HtmlError;
use crate::dashboard::extract::{Query, blank};
use crate::dashboard::layout::{Section, dollars, page, table, time};
use crate::dashboard::session::Session;
use crate::state::AppState;

const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);
/// A limit this full (or fuller) is "near its cap" on the overview.
const NEAR_CAP: f64 = 0.8;

/// A range of usage hour by hour, read in one query: the charts and the overview's figures all
/// come from it (each summary query scans the range's rollups once).
pub(crate) struct Series {
    now: Timestamp,
    by_hour: Vec<(Timestamp, UsageTotals)>,
}

/// Reads `base`'s usage hour by hour over the last 30 days and this month (whichever starts first).
pub(crate) async fn series(state: &AppState, session: &Session, base: &UsageFilter) -> Result<Series, HtmlError> {
    let now = state.tokens().clock().now();
    let (days_since, until) = Period::Last30Days.range(now);
    let (month_since, _) = Period::ThisMonth.range(now);
    let filter = UsageFilter { since: days_since.min(month_since), until, ..base.clone() };
    let hours = state
        .metering()
        .usage_breakdown(
            session.principal(),
            &filter,
            Some(UsageGroupBy::Hour),
            &PageRequest::first(PageRequest::MAX_LIMIT),
        )
        .await?;
    Ok(Series { now, by_hour: hourly(hours.items) })
}

fn hourly(groups: Vec<UsageGroup>) -> Vec<(Timestamp, UsageTotals)> {
    groups
        .into_iter()
        .filter_map(|group| Some((Timestamp::parse_rfc3339("hour", group.key.as_deref()?).ok()?, group.totals)))
        .collect()
}

fn label(at: Timestamp, hour: bool) -> String {
    let text = at.to_rfc3339();
    let range = if hour { 11..16 } else { 5..10 };
    text.get(range).unwrap_or_default().to_owned()
}

fn requests(totals: &UsageTotals) -> i64 {
    i64::try_from(totals.requests).unwrap_or(i64::MAX)
}

fn spend(totals: &UsageTotals) -> i64 {
    totals.cost.micros()
}

impl Series {
    /// The sums of the hours in `[since, until)`.
    pub(crate) fn between(&self, since: Timestamp, until: Timestamp) -> UsageTotals {
        let mut sum = UsageTotals::default();
        for (_, totals) in self.by_hour.iter().filter(|(at, _)| *at >= since && *at < until) {
            sum.merge(totals);
        }
        sum
    }

    /// The sums of `period`.
    pub(crate) fn period(&self, period: Period) -> UsageTotals {
        let (since, until) = period.range(self.now);
        self.between(since, until)
    }

    /// `steps` buckets of `step` from `since`, each as a bar of `value`.
    fn bars(
        &self,
        since: Timestamp,
        step: Duration,
        steps: u32,
        hour: bool,
        value: fn(&UsageTotals) -> i64,
    ) -> Vec<Bar> {
        (0..steps)
            .map(|index| {
                let start = since.saturating_add(step * index);
                Bar { label: label(start, hour), value: value(&self.between(start, start.saturating_add(step))) }
            })
            .collect()
    }

    /// Four charts: requests and spend, hourly for 24 hours and daily for 30 days.
    pub(crate) fn charts(&self, id: &str) -> Markup {
        let hours_since = Window::Hour.end_of(self.now).saturating_sub(DAY);
        let (days_since, _) = Period::Last30Days.range(self.now);
        html! {
            div.charts {
                (bar_chart(&format!("{id}-requests-24h"), "Requests, last 24 hours (hourly)", &self.bars(hours_since, HOUR, 24, true, requests), count))
                (bar_chart(&format!("{id}-spend-24h"), "Spend, last 24 hours (hourly)", &self.bars(hours_since, HOUR, 24, true, spend), dollars))
                (bar_chart(&format!("{id}-requests-30d"), "Requests, last 30 days (daily)", &self.bars(days_since, DAY, 30, false, requests), count))
                (bar_chart(&format!("{id}-spend-30d"), "Spend, last 30 days (daily)", &self.bars(days_since, DAY, 30, false, spend), dollars))
            }
        }
    }
}

/// How full a limit is, 0 to 1 and beyond.
fn fill(status: &LimitStatus) -> f64 {
    let max = status.limit.spec.max();
    if max == 0 { 1.0 } else { status.used.max(0) as f64 / max as f64 }
}

fn amount(metric: Metric, value: i64) -> String {
    match metric {
        Metric::Cost => dollars(value),
        _ => count(value),
    }
}

/// Limits with used/max meters and reset times.
pub(crate) fn limit_meters(caption: &str, items: &[LimitStatus]) -> Markup {
    let rows = html! {
        @for status in items {
            @let key = status.limit.spec.key();
            @let max = i64::try_from(status.limit.spec.max()).unwrap_or(i64::MAX);
            tr {
                td { (key.subject.to_string()) }
                td { (key.name()) @if status.limit.spec.shadow() { " " span.badge { "shadow" } } }
                td {
                    meter min="0" max=(max) value=(status.used.clamp(0, max)) low=(max * 8 / 10) high=(max * 95 / 100)
                        optimum="0" aria-label=(format!("{} used", key.name())) {}
                    " " (amount(key.metric, status.used)) " / " (amount(key.metric, max))
                    " (" (format!("{:.0}", fill(status) * 100.0)) " %)"
                }
                td { (time(status.resets_at)) }
            }
        }
    };
    html! {
        @if items.is_empty() { p { "No limits." } }
        @else { (table(caption, &["Subject", "Limit", "Used / max", "Resets"], rows)) }
    }
}

/// The limits at or past [`NEAR_CAP`].
pub(crate) fn near_cap(items: Vec<LimitStatus>) -> Vec<LimitStatus> {
    let mut near: Vec<LimitStatus> = items.into_iter().filter(|status| fill(status) >= NEAR_CAP).collect();
    near.sort_by(|a, b| fill(b).total_cmp(&fill(a)));
    near
}

/// The limits the user may read: everybody's for an admin, else those on the user as an owner
/// (a token's own limits are on its page).
pub(crate) async fn visible_limits(state: &AppState, session: &Session) -> Result<Vec<LimitStatus>, HtmlError> {
    let subject = match session.principal().owner_id() {
        Some(owner) if !session.can(Operation::ReadUsage { scope: UsageScope::Everything }) => {
            Some(LimitSubject::Owner(owner))
        }
        _ => None,
    };
    Ok(state.metering().limit_status(session.principal(), subject.as_ref()).await?)
}

/// `GET /dashboard/limits`.
pub(crate) async fn limits(State(state): State<AppState>, session: Session) -> Result<Response, HtmlError> {
    let items = visible_limits(&state, &session).await?;
    let body = html! {
        h1 { "Limits" }
        p { "Each limit's use in its current window. Set limits with " code { "tollgate limit set" } " or " code { "PUT /v1/limits" } "." }
        (limit_meters("Limits and their use", &items))
    };
    Ok(page(&session, Section::Limits, "Limits", body))
}

/// `GET /dashboard/usage?group_by=&period=&token=&owner=&project=`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExplorerQuery {
    #[serde(default)]
    group_by: Option<String>,
    #[serde(default)]
    period: Option<String>,
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    owner: Option<String>,
    #[serde(default)]
    project: Option<String>,
}

const GROUPINGS: [(&str, &str, UsageGroupBy); 6] = [
    ("token", "Token", UsageGroupBy::Token),
    ("owner", "Owner", UsageGroupBy::Owner),
    ("project", "Project", UsageGroupBy::Project),
    ("model", "Model", UsageGroupBy::Model),
    ("provider", "Provider", UsageGroupBy::Provider),
    ("agent", "Agent", UsageGroupBy::Agent),
];

const PERIODS: [(&str, &str, Period); 6] = [
    ("today", "Today", Period::Today),
    ("yesterday", "Yesterday", Period::Yesterday),
    ("last-7-days", "Last 7 days", Period::Last7Days),
    ("last-30-days", "Last 30 days", Period::Last30Days),
    ("this-month", "This month", Period::ThisMonth),
    ("last-month", "Last month", Period::LastMonth),
];

/// `GET /dashboard/usage`.
pub(crate) async fn explorer(
    State(state): State<AppState>,
    session: Session,
    Query(query): Query<ExplorerQuery>,
) -> Result<Response, HtmlError> {
    let group_name = blank(&query.group_by).unwrap_or_else(|| "token".to_owned());
    let grouping = GROUPINGS.iter().find(|(name, _, _)| *name == group_name).ok_or_else(|| {
        crate::error::ApiError::invalid_field("group_by", "must be token, owner, project, model, provider or agent")
    })?;
    let period = match blank(&query.period) {
        Some(text) => text.parse::<Period>().map_err(crate::error::ApiError::from)?,
        None => Period::Last7Days,
    };
    let (since, until) = period.range(state.tokens().clock().now());
    let mut filter = UsageFilter::between(since, until);
    let (token, owner, project) = (blank(&query.token), blank(&query.owner), blank(&query.project));
    filter.token_id = token
        .as_deref()
        .map(|text| TokenId::parse(text).map_err(|error| error.renamed("token")))
        .transpose()
        .map_err(crate::error::ApiError::from)?;
    filter.owner = owner.as_deref().map(OwnerId::parse).transpose().map_err(crate::error::ApiError::from)?;
    filter.project = project.as_deref().map(ProjectId::parse).transpose().map_err(crate::error::ApiError::from)?;
    let metering = state.metering();
    let groups =
        metering.usage_breakdown(session.principal(), &filter, Some(grouping.2), &PageRequest::first(100)).await?;
    // The groups are the whole range unless there are more of them than one page shows.
    let totals = match groups.next_cursor {
        None => groups.items.iter().fold(UsageTotals::default(), |mut sum, group| {
            sum.merge(&group.totals);
            sum
        }),
        Some(_) => {
            let total = metering.usage_breakdown(session.principal(), &filter, None, &PageRequest::first(1)).await?;
            total.items.first().map(|group| group.totals).unwrap_or_default()
        }
    };
    let rows = html! {
        @for group in &groups.items {
            tr {
                td { (group.key.as_deref().unwrap_or("(none)")) }
                td.num { (count(i64::try_from(group.totals.requests).unwrap_or(i64::MAX))) }
                td.num { (count(i64::try_from(group.totals.input_tokens).unwrap_or(i64::MAX))) }
                td.num { (count(i64::try_from(group.totals.output_tokens).unwrap_or(i64::MAX))) }
                td.num { (dollars(group.totals.cost.micros())) }
                td.num { (count(i64::try_from(group.totals.errors).unwrap_or(i64::MAX))) }
            }
        }
    };
    let body = html! {
        h1 { "Usage" }
        form.filters method="get" action="/dashboard/usage" {
            label { "Group by " select name="group_by" {
                @for (name, text, _) in GROUPINGS { option value=(name) selected[name == group_name] { (text) } }
            } }
            label { "Period " select name="period" {
                @for (name, text, value) in PERIODS { option value=(name) selected[value == period] { (text) } }
            } }
            label { "Token id " input name="token" value=(token.as_deref().unwrap_or_default()) placeholder="tok_…" maxlength="64"; }
            label { "Owner id " input name="owner" value=(owner.as_deref().unwrap_or_default()) placeholder="usr_… or svc_…" maxlength="64"; }
            label { "Project id " input name="project" value=(project.as_deref().unwrap_or_default()) placeholder="prj_…" maxlength="64"; }
            button type="submit" { "Show" }
        }
        p { "From " (time(since)) " to " (time(until)) ": "
            strong { (count(i64::try_from(totals.requests).unwrap_or(i64::MAX))) } " requests, "
            strong { (dollars(totals.cost.micros())) } " spent." }
        @if groups.next_cursor.is_some() { p.hint { "The 100 largest groups are shown." } }
        (table(&format!("Usage by {}", grouping.1.to_lowercase()), &["Key", "Requests", "Input tokens", "Output tokens", "Cost", "Errors"], rows))
    };
    Ok(page(&session, Section::Usage, "Usage", body))
}
