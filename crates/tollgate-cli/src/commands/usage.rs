//! `tollgate usage …`: record usage by hand, show usage from the hourly rollups, purge raw events.

use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use tollgate::{
    MAX_LATENCY_MS, MAX_REQUESTS_PER_EVENT, MAX_TOKENS_PER_EVENT, Microdollars, ModelName, Principal, ProviderName,
    Timestamp, TokenId, UsageFilter, UsageGroup, UsageGroupBy, UsageInput, UsageTotals, parse_count, parse_duration,
};

use crate::cli::GlobalArgs;
use crate::context;
use crate::exit::CliResult;
use crate::output::{print_fields, print_json, print_table};

#[derive(Debug, Subcommand)]
pub(crate) enum UsageCommand {
    /// Record one usage event (priced from the price table unless --cost is given).
    Record(RecordArgs),
    /// Show usage totals and a breakdown over a time range, from the hourly rollups.
    Show(ShowArgs),
    /// Delete raw usage events older than --older-than (reports keep them: they read rollups).
    Purge {
        /// Age, e.g. 90d.
        #[arg(long)]
        older_than: String,
    },
}

#[derive(Debug, Args)]
pub(crate) struct RecordArgs {
    /// The token that made the call (tok_…).
    #[arg(long)]
    token_id: String,
    /// LLM provider, e.g. openai.
    #[arg(long)]
    provider: String,
    /// Model, e.g. gpt-4o-mini.
    #[arg(long)]
    model: String,
    /// Prompt tokens.
    #[arg(long, default_value = "0", allow_hyphen_values = true)]
    input_tokens: String,
    /// Completion tokens.
    #[arg(long, default_value = "0", allow_hyphen_values = true)]
    output_tokens: String,
    /// Requests this event stands for.
    #[arg(long, default_value = "1", allow_hyphen_values = true)]
    requests: String,
    /// Cost in dollars (e.g. 0.0125); default: from the price table.
    #[arg(long, allow_hyphen_values = true)]
    cost: Option<String>,
    /// Endpoint or tool called.
    #[arg(long)]
    endpoint: Option<String>,
    /// success or error.
    #[arg(long)]
    outcome: Option<String>,
    /// Latency in milliseconds.
    #[arg(long, allow_hyphen_values = true)]
    latency_ms: Option<String>,
    /// Client IP.
    #[arg(long)]
    ip: Option<String>,
    /// When (RFC 3339); default now.
    #[arg(long)]
    at: Option<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum GroupArg {
    Token,
    Owner,
    Project,
    Provider,
    Model,
    Hour,
}

#[derive(Debug, Args)]
pub(crate) struct ShowArgs {
    /// Only this token.
    #[arg(long)]
    token_id: Option<String>,
    /// Only tokens of this owner (a user or a service account, by id or name).
    #[arg(long)]
    owner: Option<String>,
    /// Only tokens bound to this project (by id or name).
    #[arg(long)]
    project: Option<String>,
    /// Only this provider.
    #[arg(long)]
    provider: Option<String>,
    /// Only this model.
    #[arg(long)]
    model: Option<String>,
    /// How far back, e.g. 24h, 7d.
    #[arg(long, default_value = "24h")]
    since: String,
    /// Breakdown.
    #[arg(long, value_enum, default_value = "model")]
    by: GroupArg,
    /// Rows in the breakdown.
    #[arg(long, default_value_t = 20)]
    limit: u32,
}

fn count(field: &'static str, text: &str, max: u32) -> Result<i64, tollgate::ValidationError> {
    parse_count(field, text, u64::from(max)).map(|value| value.try_into().unwrap_or(i64::MAX))
}

fn input(args: &RecordArgs) -> Result<UsageInput, tollgate::ValidationError> {
    Ok(UsageInput {
        token_id: args.token_id.clone(),
        at: args.at.as_deref().map(|at| Timestamp::parse_rfc3339("at", at)).transpose()?,
        provider: args.provider.clone(),
        model: args.model.clone(),
        input_tokens: count("input_tokens", &args.input_tokens, MAX_TOKENS_PER_EVENT)?,
        output_tokens: count("output_tokens", &args.output_tokens, MAX_TOKENS_PER_EVENT)?,
        requests: Some(count("requests", &args.requests, MAX_REQUESTS_PER_EVENT)?),
        cost_micros: args
            .cost
            .as_deref()
            .map(|cost| Microdollars::parse_dollars("cost", cost).map(Microdollars::micros))
            .transpose()?,
        endpoint: args.endpoint.clone(),
        outcome: args.outcome.clone(),
        latency_ms: args
            .latency_ms
            .as_deref()
            .map(|latency| count("latency_ms", latency, MAX_LATENCY_MS))
            .transpose()?,
        ip: args.ip.clone(),
    })
}

async fn filter(args: &ShowArgs, tokens: &tollgate::TokenManager, now: Timestamp) -> CliResult<UsageFilter> {
    let since = now.saturating_sub(parse_duration("since", &args.since)?);
    let (owner, project) = super::token::resolve(tokens, args.owner.as_deref(), args.project.as_deref()).await?;
    Ok(UsageFilter {
        since,
        until: now.saturating_add(std::time::Duration::from_micros(1)),
        token_id: args.token_id.as_deref().map(TokenId::parse).transpose()?,
        owner,
        project,
        provider: args.provider.as_deref().map(ProviderName::parse).transpose()?,
        model: args.model.as_deref().map(ModelName::parse).transpose()?,
    })
}

fn group_by(arg: GroupArg) -> UsageGroupBy {
    match arg {
        GroupArg::Token => UsageGroupBy::Token,
        GroupArg::Owner => UsageGroupBy::Owner,
        GroupArg::Project => UsageGroupBy::Project,
        GroupArg::Provider => UsageGroupBy::Provider,
        GroupArg::Model => UsageGroupBy::Model,
        GroupArg::Hour => UsageGroupBy::Hour,
    }
}

/// One table row of sums: key, events, requests, input, output, cost, errors, p50, p95.
pub(crate) fn totals_row(key: String, totals: &UsageTotals) -> Vec<String> {
    let percentile =
        |percent| totals.latency.percentile(percent).map_or_else(|| "-".to_owned(), |ms| format!("{ms}ms"));
    vec![
        key,
        totals.events.to_string(),
        totals.requests.to_string(),
        totals.input_tokens.to_string(),
        totals.output_tokens.to_string(),
        totals.cost.to_string(),
        totals.errors.to_string(),
        percentile(50),
        percentile(95),
    ]
}

/// Headers matching [`totals_row`].
pub(crate) const TOTALS_HEADERS: [&str; 9] =
    ["KEY", "EVENTS", "REQUESTS", "INPUT", "OUTPUT", "COST", "ERRORS", "P50", "P95"];

/// Prints groups as a table; a group without a key shows as `-`.
pub(crate) fn print_groups(groups: &[UsageGroup]) {
    let rows: Vec<Vec<String>> = groups
        .iter()
        .map(|group| totals_row(group.key.clone().unwrap_or_else(|| "-".to_owned()), &group.totals))
        .collect();
    print_table(&TOTALS_HEADERS, &rows);
}

/// Runs one usage command as the operator.
pub(crate) async fn run(global: &GlobalArgs, command: UsageCommand) -> CliResult {
    let context = context::open(global).await?;
    let metering = &context.metering;
    let operator = Principal::Operator;
    match command {
        UsageCommand::Record(args) => {
            let recorded = metering.record_inputs(&operator, &[input(&args)?]).await?;
            metering.shutdown().await?;
            let event = &recorded[0];
            if global.json {
                print_json(event);
            } else {
                let cost = event.cost.unwrap_or(Microdollars::ZERO);
                say!(
                    "recorded {} {}/{}: {} input + {} output tokens, {cost}",
                    event.token_id,
                    event.provider,
                    event.model,
                    event.input_tokens,
                    event.output_tokens
                );
            }
        }
        UsageCommand::Show(args) => {
            let now = metering.clock().now();
            let filter = filter(&args, &context.tokens, now).await?;
            let report = metering.usage(&operator, &filter, Some(group_by(args.by)), args.limit.max(1)).await?;
            metering.shutdown().await?;
            if global.json {
                print_json(&report);
            } else {
                print_fields(&[
                    ("since", report.since.to_string()),
                    ("events", report.totals.events.to_string()),
                    ("requests", report.totals.requests.to_string()),
                    ("tokens", format!("{} in, {} out", report.totals.input_tokens, report.totals.output_tokens)),
                    ("cost", report.totals.cost.to_string()),
                    ("errors", report.totals.errors.to_string()),
                ]);
                say!();
                print_groups(&report.groups);
            }
        }
        UsageCommand::Purge { older_than } => {
            let older_than = parse_duration("older_than", &older_than)?;
            let purged = metering.purge_usage_events(&operator, older_than).await?;
            metering.shutdown().await?;
            if global.json {
                print_json(&serde_json::json!({ "purged": purged }));
            } else {
                say!("purged {purged} raw usage events");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
