//! `tollgate traces list|show|purge`: request traces read from the database as the operator.

use std::process::ExitCode;

use clap::Subcommand;
use tollgate::{
    AgentId, ModelName, Principal, ProviderName, TokenId, TraceFilter, TraceId, TraceRecord, TraceService,
    TraceSettings, parse_duration,
};

use super::agent::page;
use crate::cli::GlobalArgs;
use crate::context;
use crate::exit::CliResult;
use crate::output::{print_fields, print_json, print_table};

#[derive(Debug, Subcommand)]
pub(crate) enum TracesCommand {
    /// Traces, newest first.
    List {
        /// Only this token's (tok_…).
        #[arg(long)]
        token_id: Option<String>,
        /// Only this agent's (agt_…).
        #[arg(long)]
        agent: Option<String>,
        /// Only this provider.
        #[arg(long)]
        provider: Option<String>,
        /// Only this model.
        #[arg(long)]
        model: Option<String>,
        /// Only statuses at least this (400: failures).
        #[arg(long)]
        min_status: Option<u16>,
        /// How many (1 to 1000).
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// `more: --cursor …` of the previous page.
        #[arg(long)]
        cursor: Option<String>,
    },
    /// One trace, with its (redacted) bodies when they were captured.
    Show {
        /// The trace (trc_…).
        id: String,
    },
    /// Delete traces older than --retention, then the oldest until the bodies fit --max-bytes.
    Purge {
        /// Age, e.g. 7d.
        #[arg(long, default_value = "7d")]
        retention: String,
        /// The most body bytes to keep in all.
        #[arg(long, default_value_t = 1 << 30)]
        max_bytes: u64,
    },
}

fn print_trace(global: &GlobalArgs, trace: &TraceRecord) {
    if global.json {
        print_json(trace);
        return;
    }
    let text = |value: Option<String>| value.unwrap_or_else(|| "-".to_owned());
    print_fields(&[
        ("id", trace.id.to_string()),
        ("at", trace.at.to_string()),
        ("token", trace.token_id.to_string()),
        ("agent", text(trace.agent_id.map(|agent| agent.to_string()))),
        ("endpoint", text(trace.endpoint.as_ref().map(ToString::to_string))),
        (
            "model",
            format!(
                "{}/{}",
                text(trace.provider.as_ref().map(ToString::to_string)),
                text(trace.model.as_ref().map(ToString::to_string))
            ),
        ),
        ("status", trace.status.to_string()),
        ("latency", trace.latency_ms.map_or_else(|| "-".to_owned(), |ms| format!("{ms} ms"))),
        ("tokens", format!("{} in, {} out", trace.input_tokens, trace.output_tokens)),
        ("cost", trace.cost.to_string()),
        ("request", text(trace.request.clone())),
        ("response", text(trace.response.clone())),
        ("truncated", trace.truncated.to_string()),
    ]);
}

/// Runs one traces command as the operator.
pub(crate) async fn run(global: &GlobalArgs, command: TracesCommand) -> CliResult {
    let context = context::open(global).await?;
    let operator = Principal::Operator;
    match command {
        TracesCommand::List { token_id, agent, provider, model, min_status, limit, cursor } => {
            let traces = TraceService::new(&context.tokens, TraceSettings::default());
            let filter = TraceFilter {
                token_id: token_id.as_deref().map(TokenId::parse).transpose()?,
                agent: agent.as_deref().map(AgentId::parse).transpose()?,
                provider: provider.as_deref().map(ProviderName::parse).transpose()?,
                model: model.as_deref().map(ModelName::parse).transpose()?,
                min_status,
                ..TraceFilter::default()
            };
            let found = traces.list(&operator, &filter, &page(limit, cursor)?).await?;
            if global.json {
                print_json(&found);
            } else {
                let rows: Vec<Vec<String>> = found
                    .items
                    .iter()
                    .map(|trace| {
                        vec![
                            trace.id.to_string(),
                            trace.at.to_string(),
                            trace.token_id.to_string(),
                            trace.model.as_ref().map_or_else(|| "-".to_owned(), ToString::to_string),
                            trace.status.to_string(),
                            trace.latency_ms.map_or_else(|| "-".to_owned(), |ms| format!("{ms}ms")),
                            trace.cost.to_string(),
                        ]
                    })
                    .collect();
                print_table(&["ID", "AT", "TOKEN", "MODEL", "STATUS", "LATENCY", "COST"], &rows);
                if let Some(cursor) = found.next_cursor {
                    say!("more: --cursor {cursor}");
                }
            }
        }
        TracesCommand::Show { id } => {
            let traces = TraceService::new(&context.tokens, TraceSettings::default());
            print_trace(global, &traces.trace(&operator, &TraceId::parse(&id)?).await?);
        }
        TracesCommand::Purge { retention, max_bytes } => {
            let settings = TraceSettings {
                retention: parse_duration("retention", &retention)?,
                max_total_payload_bytes: max_bytes,
                ..TraceSettings::default()
            };
            let purged = TraceService::new(&context.tokens, settings).purge().await?;
            if global.json {
                print_json(&serde_json::json!({ "by_age": purged.by_age, "by_size": purged.by_size }));
            } else {
                say!("purged {} traces past the retention and {} more to fit the size", purged.by_age, purged.by_size);
            }
        }
    }
    context.metering.shutdown().await?;
    Ok(ExitCode::SUCCESS)
}
