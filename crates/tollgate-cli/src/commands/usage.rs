//! `tollgate usage …`: record usage by hand (durably), settle or release reservations, show usage
//! from the hourly rollups, list dead letters, purge raw events.

use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use tollgate::{
    Microdollars, ModelName, PageRequest, Principal, ProviderName, ReservationId, ReservationRecord, Timestamp,
    TokenId, UsageFilter, UsageGroup, UsageGroupBy, UsageOutcome, UsageTotals, parse_duration,
};

use super::usage_event::EventArgs;
use crate::cli::GlobalArgs;
use crate::context;
use crate::exit::CliResult;
use crate::output::{print_fields, print_json, print_table};

#[derive(Debug, Subcommand)]
pub(crate) enum UsageCommand {
    /// Record one usage event, durably (priced from the price table unless --cost is given).
    Record {
        /// The token that made the call (tok_…).
        #[arg(long)]
        token_id: String,
        #[command(flatten)]
        event: Box<EventArgs>,
    },
    /// Settle a reservation (made by `token verify --max-output-tokens …`) with the call's actual usage.
    Settle {
        /// The reservation (rsv_…).
        id: String,
        #[command(flatten)]
        event: Box<EventArgs>,
    },
    /// Release a reservation unused (the call did not happen).
    Release {
        /// The reservation (rsv_…).
        id: String,
    },
    /// Show a reservation.
    Reservation {
        /// The reservation (rsv_…).
        id: String,
    },
    /// Show usage totals and a breakdown over a time range, from the hourly rollups.
    Show(ShowArgs),
    /// List usage events the store refused (kept with the reason), newest first.
    DeadLetters {
        /// How many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// `next_cursor` of the previous page.
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Delete raw usage events older than --older-than (reports keep them: they read rollups).
    Purge {
        /// Age, e.g. 90d (at least 1h unless --force).
        #[arg(long)]
        older_than: String,
        /// Allow an age under 1h (the delete cannot be undone).
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum GroupArg {
    Token,
    Owner,
    Project,
    Provider,
    Model,
    Hour,
    Agent,
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
    /// Rows in the breakdown (1 to 1000).
    #[arg(long, default_value_t = 20)]
    limit: u32,
    /// `more: --cursor …` of the previous page of the breakdown.
    #[arg(long)]
    cursor: Option<String>,
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
        agent: None,
    })
}

pub(crate) fn group_by(arg: GroupArg) -> UsageGroupBy {
    match arg {
        GroupArg::Token => UsageGroupBy::Token,
        GroupArg::Owner => UsageGroupBy::Owner,
        GroupArg::Project => UsageGroupBy::Project,
        GroupArg::Provider => UsageGroupBy::Provider,
        GroupArg::Model => UsageGroupBy::Model,
        GroupArg::Hour => UsageGroupBy::Hour,
        GroupArg::Agent => UsageGroupBy::Agent,
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

fn outcome_word(outcome: UsageOutcome) -> &'static str {
    match outcome {
        UsageOutcome::Recorded => "recorded",
        UsageOutcome::Duplicate => "duplicate (already recorded, counted once)",
        UsageOutcome::DeadLettered => "dead-lettered (the store refused it; see usage dead-letters)",
    }
}

fn print_reservation(global: &GlobalArgs, reservation: &ReservationRecord) {
    if global.json {
        print_json(reservation);
        return;
    }
    print_fields(&[
        ("id", reservation.id.to_string()),
        ("token", reservation.token_id.to_string()),
        ("state", reservation.state.as_str().to_owned()),
        ("expires", reservation.expires_at.to_string()),
        ("closed", reservation.closed_at.map_or_else(|| "-".to_owned(), |at| at.to_string())),
    ]);
    let rows: Vec<Vec<String>> = reservation
        .holds
        .iter()
        .map(|(key, amount)| vec![key.limit.subject.to_string(), key.limit.name(), amount.to_string()])
        .collect();
    print_table(&["SUBJECT", "LIMIT", "HELD"], &rows);
}

/// Runs one usage command as the operator.
pub(crate) async fn run(global: &GlobalArgs, command: UsageCommand) -> CliResult {
    let context = context::open(global).await?;
    let metering = &context.metering;
    let operator = Principal::Operator;
    match command {
        UsageCommand::Record { token_id, event } => {
            let recorded = metering.record_inputs(&operator, &[event.input(token_id)?]).await;
            metering.shutdown().await?;
            let recorded = recorded?;
            let item = &recorded[0];
            if global.json {
                print_json(item);
            } else {
                let event = &item.event;
                say!(
                    "{} {} {}/{}: {} input + {} output tokens, {}",
                    outcome_word(item.outcome),
                    event.token_id,
                    event.provider,
                    event.model,
                    event.input_tokens,
                    event.output_tokens,
                    event.cost.unwrap_or(Microdollars::ZERO)
                );
            }
        }
        UsageCommand::Settle { id, event } => {
            let id = ReservationId::parse(&id)?;
            let settled = metering.settle_reservation(&operator, &id, &event.input(String::new())?).await;
            metering.shutdown().await?;
            let settled = settled?;
            if global.json {
                print_json(&settled);
            } else {
                say!(
                    "settled {id} ({}): {} input + {} output tokens, {}",
                    outcome_word(settled.outcome),
                    settled.event.input_tokens,
                    settled.event.output_tokens,
                    settled.event.cost.unwrap_or(Microdollars::ZERO)
                );
            }
        }
        UsageCommand::Release { id } => {
            let released = metering.release_reservation(&operator, &ReservationId::parse(&id)?).await;
            metering.shutdown().await?;
            print_reservation(global, &released?);
        }
        UsageCommand::Reservation { id } => {
            let found = metering.reservation(&operator, &ReservationId::parse(&id)?).await;
            metering.shutdown().await?;
            print_reservation(global, &found?);
        }
        UsageCommand::DeadLetters { limit, cursor } => {
            let page = match cursor {
                Some(cursor) => PageRequest::after(limit.clamp(1, PageRequest::MAX_LIMIT), cursor),
                None => PageRequest::first(limit.clamp(1, PageRequest::MAX_LIMIT)),
            };
            let found = metering.dead_letters(&operator, &page).await;
            metering.shutdown().await?;
            let found = found?;
            if global.json {
                print_json(&serde_json::json!({ "items": found.items, "next_cursor": found.next_cursor }));
            } else {
                let rows: Vec<Vec<String>> = found
                    .items
                    .iter()
                    .map(|letter| {
                        vec![
                            letter.id.to_string(),
                            letter.failed_at.to_string(),
                            letter.token_id.clone(),
                            letter.reason.clone(),
                        ]
                    })
                    .collect();
                print_table(&["ID", "FAILED_AT", "TOKEN", "REASON"], &rows);
                if let Some(cursor) = found.next_cursor {
                    say!("more: --cursor {cursor}");
                }
            }
        }
        UsageCommand::Show(args) => {
            let now = metering.clock().now();
            let filter = filter(&args, &context.tokens, now).await?;
            let page = super::agent::page(args.limit, args.cursor)?;
            let report = metering.usage(&operator, &filter, Some(group_by(args.by)), &page).await?;
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
                if let Some(cursor) = report.next_cursor {
                    say!("more: --cursor {cursor}");
                }
            }
        }
        UsageCommand::Purge { older_than, force } => {
            let older_than = parse_duration("older_than", &older_than)?;
            let purged = metering.purge_usage_events(&operator, older_than, force).await;
            metering.shutdown().await?;
            let purged = purged?;
            if global.json {
                print_json(&serde_json::json!({ "purged": purged }));
            } else {
                say!("purged {purged} raw usage events");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
