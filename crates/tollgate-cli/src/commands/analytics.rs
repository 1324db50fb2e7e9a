//! `tollgate analytics`: the overview of recent usage, from the hourly rollups; the agent views
//! (`spending`, `budgets`) are `agent_analytics`.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use tollgate::{Principal, parse_count};

use super::agent_analytics::AgentView;
use super::usage::print_groups;
use crate::cli::GlobalArgs;
use crate::context;
use crate::exit::CliResult;
use crate::output::{print_fields, print_json};

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct AnalyticsArgs {
    /// Without one: the overview of every token's usage.
    #[command(subcommand)]
    view: Option<AgentView>,
    #[command(flatten)]
    overview: OverviewArgs,
}

#[derive(Debug, Args)]
struct OverviewArgs {
    /// How many hours back (1 to 8784, a leap year).
    #[arg(long, default_value = "24")]
    hours: String,
    /// Rows per breakdown.
    #[arg(long, default_value = "10")]
    top: String,
}

/// Runs the overview or one of the agent views.
pub(crate) async fn run(global: &GlobalArgs, args: AnalyticsArgs) -> CliResult {
    match args.view {
        Some(view) => super::agent_analytics::run(global, view).await,
        None => overview(global, args.overview).await,
    }
}

/// Prints totals, error rate, latency percentiles, breakdowns and the top spending tokens.
async fn overview(global: &GlobalArgs, args: OverviewArgs) -> CliResult {
    let hours = parse_count("hours", &args.hours, 8_784)?;
    if hours == 0 {
        return Err(tollgate::ValidationError::new("hours", "must be at least 1").into());
    }
    let top = u32::try_from(parse_count("top", &args.top, 1_000)?.max(1)).unwrap_or(1_000);
    let context = context::open(global).await?;
    let metering = &context.metering;
    let until = metering.clock().now().saturating_add(Duration::from_micros(1));
    let since = until.saturating_sub(Duration::from_secs(hours * 3_600));
    let report = metering.analytics(&Principal::Operator, since, until, top).await?;
    metering.shutdown().await?;
    if global.json {
        print_json(&report);
        return Ok(ExitCode::SUCCESS);
    }
    let milliseconds = |value: Option<u32>| value.map_or_else(|| "-".to_owned(), |ms| format!("≤ {ms} ms"));
    print_fields(&[
        ("since", report.since.to_string()),
        ("events", report.totals.events.to_string()),
        ("requests", report.totals.requests.to_string()),
        (
            "tokens",
            format!("{} ({} in, {} out)", report.total_tokens, report.totals.input_tokens, report.totals.output_tokens),
        ),
        ("cost", report.totals.cost.to_string()),
        ("error rate", format!("{:.2}%", report.error_rate * 100.0)),
        ("latency p50", milliseconds(report.latency_p50_ms)),
        ("latency p95", milliseconds(report.latency_p95_ms)),
    ]);
    for (title, groups) in [
        ("top tokens by spend", &report.top_tokens),
        ("by model", &report.by_model),
        ("by provider", &report.by_provider),
        ("by project", &report.by_project),
        ("by owner", &report.by_owner),
    ] {
        say!("\n{title}");
        print_groups(groups);
    }
    Ok(ExitCode::SUCCESS)
}
