//! `GET /dashboard`: requests, spend and error rate today and this month, the usage charts, the top
//! tokens and agents by spend, limits near their cap, budget risk and the usage writer's health.

use axum::extract::State;
use axum::response::Response;
use maud::{Markup, html};
use tollgate::{
    AgentFilter, PageRequest, Period, RiskLevel, TokenId, UsageFilter, UsageGroup, UsageGroupBy, UsageTotals,
};

use super::usage::{limit_meters, near_cap, series, visible_limits};
use crate::dashboard::charts::count;
use crate::dashboard::error::HtmlError;
use crate::dashboard::layout::{Section, badge, dollars, page, table};
use crate::dashboard::session::Session;
use crate::state::AppState;

/// How many tokens and agents the top lists show.
const TOP: u32 = 5;

fn error_rate(totals: &UsageTotals) -> String {
    if totals.events == 0 {
        return "—".to_owned();
    }
    format!("{:.1} %", totals.errors as f64 * 100.0 / totals.events as f64)
}

fn figures(title: &str, totals: &UsageTotals) -> Markup {
    html! {
        section.figures aria-label=(title) {
            h2 { (title) }
            dl {
                div { dt { "Requests" } dd { (count(i64::try_from(totals.requests).unwrap_or(i64::MAX))) } }
                div { dt { "Spend" } dd { (dollars(totals.cost.micros())) } }
                div { dt { "Error rate" } dd { (error_rate(totals)) } }
            }
        }
    }
}

/// A top list: each row's key (already rendered) and its sums.
fn top_table(caption: &str, key_head: &str, rows: &[(Markup, UsageTotals)]) -> Markup {
    let body = html! {
        @for (key, totals) in rows {
            tr {
                td { (key) }
                td.num { (count(i64::try_from(totals.requests).unwrap_or(i64::MAX))) }
                td.num { (dollars(totals.cost.micros())) }
            }
        }
    };
    html! {
        @if rows.is_empty() { p { "No usage this month." } }
        @else { (table(caption, &[key_head, "Requests", "Spend"], body)) }
    }
}

/// The top tokens, each named and linked (a token the user may no longer read shows its id).
async fn named_tokens(state: &AppState, session: &Session, groups: Vec<UsageGroup>) -> Vec<(Markup, UsageTotals)> {
    let mut rows = Vec::with_capacity(groups.len());
    for group in groups {
        let key = match group.key.as_deref().map(TokenId::parse) {
            Some(Ok(id)) => {
                let name = match state.tokens().show(session.principal(), &id).await {
                    Ok(record) => record.name.as_str().to_owned(),
                    Err(_) => id.to_string(),
                };
                html! { a href=(format!("/dashboard/tokens/{id}")) { (name) } }
            }
            _ => html! { "(none)" },
        };
        rows.push((key, group.totals));
    }
    rows
}

fn agent_rows(groups: Vec<UsageGroup>) -> Vec<(Markup, UsageTotals)> {
    groups
        .into_iter()
        .map(|group| {
            let key = match group.key {
                Some(agent) => html! { code { (agent) } },
                None => html! { "API tokens (no agent)" },
            };
            (key, group.totals)
        })
        .collect()
}

pub(crate) async fn show(State(state): State<AppState>, session: Session) -> Result<Response, HtmlError> {
    let metering = state.metering();
    let principal = session.principal();
    let now = state.tokens().clock().now();
    let (since, until) = Period::ThisMonth.range(now);
    let month_filter = UsageFilter::between(since, until);
    let (top, unfiltered) = (PageRequest::first(TOP), UsageFilter::between(now, now));
    // The reads are independent, and the three usage scans each take milliseconds at a month's
    // scale: they run at once, on the store's pool of readers.
    let (charts, top_tokens, top_agents, near, budgets) = tokio::try_join!(
        series(&state, &session, &unfiltered),
        async {
            let groups = metering.usage_breakdown(principal, &month_filter, Some(UsageGroupBy::Token), &top).await?;
            Ok::<_, HtmlError>(named_tokens(&state, &session, groups.items).await)
        },
        async {
            let groups = metering.usage_breakdown(principal, &month_filter, Some(UsageGroupBy::Agent), &top).await?;
            Ok::<_, HtmlError>(agent_rows(groups.items))
        },
        async { Ok::<_, HtmlError>(near_cap(visible_limits(&state, &session).await?)) },
        async {
            let Some(agents) = state.agents() else { return Ok::<_, HtmlError>(None) };
            let page = PageRequest::first(100);
            Ok(Some(agents.budget_statuses(principal, &AgentFilter::default(), &page).await?.items))
        },
    )?;
    let (today, month) = (charts.period(Period::Today), charts.period(Period::ThisMonth));
    let writer = metering.degraded();
    let body = html! {
        h1 { "Overview" }
        div.cards {
            (figures("Today", &today))
            (figures("This month", &month))
            section.figures aria-label="Health" {
                h2 { "Health" }
                p #writer-health {
                    "Usage writer: "
                    @match &writer { None => (badge("healthy")), Some(reason) => { (badge("degraded")) " " (reason) } }
                }
            }
        }
        (charts.charts("overview"))
        div.columns {
            section { h2 { "Top tokens by spend this month" } (top_table("Top tokens", "Token", &top_tokens)) }
            section { h2 { "Top agents by spend this month" } (top_table("Top agents", "Agent", &top_agents)) }
        }
        section {
            h2 { "Limits near their cap" }
            (limit_meters("Limits at 80 % or more", &near))
        }
        @if let Some(budgets) = budgets {
            section {
                h2 { "Budget risk" }
                @let risky: Vec<_> = budgets.iter().filter(|status| status.risk >= RiskLevel::High).collect();
                p {
                    @for level in [RiskLevel::Low, RiskLevel::Medium, RiskLevel::High, RiskLevel::Critical, RiskLevel::Exhausted] {
                        (badge(level.as_str())) " " (budgets.iter().filter(|status| status.risk == level).count()) " "
                    }
                }
                @if !risky.is_empty() {
                    ul { @for status in risky {
                        li { (status.name.as_str()) ": " (format!("{:.0}", status.percent_used)) " % spent " (badge(status.risk.as_str())) }
                    } }
                }
            }
        }
    };
    Ok(page(&session, Section::Overview, "Overview", body))
}
