//! `tollgate analytics spending|budgets`: agents' spending over a period and each agent's budget
//! status, read as the operator.

use std::process::ExitCode;

use clap::Subcommand;
use tollgate::{
    AgentFilter, AgentId, AgentScope, Microdollars, ModelName, OwnerId, Period, Principal, ProviderName, SpendingGroup,
    UsageFilter,
};

use super::agent::page;
use super::usage::{GroupArg, group_by};
use crate::cli::GlobalArgs;
use crate::context;
use crate::exit::CliResult;
use crate::output::{print_fields, print_json, print_table};

#[derive(Debug, Subcommand)]
pub(crate) enum AgentView {
    /// Agents' spending over a period: totals, success rate, cost per request, and a breakdown.
    Spending {
        /// today, yesterday, last-7-days, last-30-days, this-month, last-month or all-time (UTC).
        #[arg(long, default_value = "this-month")]
        period: String,
        /// Only this agent (agt_…).
        #[arg(long)]
        agent: Option<String>,
        /// Only agents of this owner (usr_… or svc_…).
        #[arg(long)]
        owner: Option<String>,
        /// Only this provider.
        #[arg(long)]
        provider: Option<String>,
        /// Only this model.
        #[arg(long)]
        model: Option<String>,
        /// Breakdown.
        #[arg(long, value_enum, default_value = "agent")]
        by: GroupArg,
        /// Rows per page (1 to 1000).
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// `more: --cursor …` of the previous page.
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Each agent's budget: allocated, spent, reserved, percent used and risk level, newest agent first.
    Budgets {
        /// Only agents of this owner (usr_… or svc_…).
        #[arg(long)]
        owner: Option<String>,
        /// Rows per page (1 to 1000).
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// `more: --cursor …` of the previous page.
        #[arg(long)]
        cursor: Option<String>,
    },
}

fn rate(rate: Option<f64>) -> String {
    rate.map_or_else(|| "-".to_owned(), |rate| format!("{:.2}%", rate * 100.0))
}

fn spending_row(group: &SpendingGroup) -> Vec<String> {
    let figures = &group.figures;
    vec![
        group.key.clone().unwrap_or_else(|| "-".to_owned()),
        figures.totals.requests.to_string(),
        figures.total_tokens.to_string(),
        figures.totals.cost.to_string(),
        rate(figures.success_rate),
        figures
            .average_cost_per_request_micros
            .map_or_else(|| "-".to_owned(), |m| Microdollars::from_micros(m).to_string()),
    ]
}

/// Runs one agent view as the operator.
pub(crate) async fn run(global: &GlobalArgs, view: AgentView) -> CliResult {
    let (context, agents) = context::open_agents(global).await?;
    let operator = Principal::Operator;
    match view {
        AgentView::Spending { period, agent, owner, provider, model, by, limit, cursor } => {
            let (since, until) = period.parse::<Period>()?.range(context.metering.clock().now());
            let mut filter = UsageFilter::between(since, until);
            filter.agent =
                Some(agent.as_deref().map(AgentId::parse).transpose()?.map_or(AgentScope::Any, AgentScope::One));
            filter.owner = owner.as_deref().map(OwnerId::parse).transpose()?;
            filter.provider = provider.as_deref().map(ProviderName::parse).transpose()?;
            filter.model = model.as_deref().map(ModelName::parse).transpose()?;
            let report = agents.spending(&operator, &filter, Some(group_by(by)), &page(limit, cursor)?).await?;
            if global.json {
                print_json(&report);
            } else {
                let totals = &report.totals;
                print_fields(&[
                    ("period", format!("{period} ({} to {})", report.since, report.until)),
                    ("cost", totals.totals.cost.to_string()),
                    ("requests", totals.totals.requests.to_string()),
                    ("tokens", totals.total_tokens.to_string()),
                    ("success rate", rate(totals.success_rate)),
                ]);
                say!();
                let rows: Vec<Vec<String>> = report.groups.iter().map(spending_row).collect();
                print_table(&["KEY", "REQUESTS", "TOKENS", "COST", "SUCCESS", "PER_REQUEST"], &rows);
                if let Some(cursor) = report.next_cursor {
                    say!("more: --cursor {cursor}");
                }
            }
        }
        AgentView::Budgets { owner, limit, cursor } => {
            let filter =
                AgentFilter { owner: owner.as_deref().map(OwnerId::parse).transpose()?, ..AgentFilter::default() };
            let statuses = agents.budget_statuses(&operator, &filter, &page(limit, cursor)?).await?;
            if global.json {
                print_json(&statuses);
            } else {
                let money = |micros: i64| Microdollars::from_micros(micros).to_string();
                let rows: Vec<Vec<String>> = statuses
                    .items
                    .iter()
                    .map(|status| {
                        let account = &status.budget.account;
                        vec![
                            status.agent_id.to_string(),
                            status.name.to_string(),
                            money(account.allocated),
                            money(account.spent),
                            money(account.reserved),
                            format!("{:.2}%", status.percent_used),
                            status.risk.as_str().to_owned(),
                        ]
                    })
                    .collect();
                print_table(&["AGENT", "NAME", "ALLOCATED", "SPENT", "RESERVED", "USED", "RISK"], &rows);
                if let Some(cursor) = statuses.next_cursor {
                    say!("more: --cursor {cursor}");
                }
            }
        }
    }
    context.metering.shutdown().await?;
    Ok(ExitCode::SUCCESS)
}
