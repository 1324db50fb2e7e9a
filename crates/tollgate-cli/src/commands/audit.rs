//! `tollgate audit …`: read the audit log and verify its hash chain (exit 0 intact, 1 broken).

use std::process::ExitCode;

use clap::{Args, Subcommand};
use tollgate::{AuditFilter, AuditLog, PageRequest, Principal, Timestamp, ValidationError};

use crate::cli::GlobalArgs;
use crate::context;
use crate::exit::CliResult;
use crate::output::{or_dash, print_json, print_table};

#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {
    /// List entries, newest first.
    List(ListArgs),
    /// Walk the hash chain: exit 0 when intact, 1 naming the first broken entry.
    Verify,
}

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// Only entries by this actor (`cli`, a user id or a token id).
    #[arg(long)]
    actor: Option<String>,
    /// Only entries about this target (a user id, a token id, …).
    #[arg(long)]
    target: Option<String>,
    /// Only entries at or after this time (RFC 3339).
    #[arg(long)]
    since: Option<String>,
    /// Page size (1–1000).
    #[arg(long, default_value_t = 50)]
    limit: u32,
    /// The cursor printed by the previous page.
    #[arg(long)]
    cursor: Option<String>,
}

/// Runs one audit command as the operator.
pub(crate) async fn run(global: &GlobalArgs, command: AuditCommand) -> CliResult {
    let context = context::open(global).await?;
    let log = AuditLog::new(context.tokens.store().clone());
    let operator = Principal::Operator;
    match command {
        AuditCommand::List(args) => {
            let filter = AuditFilter {
                actor: args.actor,
                target: args.target,
                since: args.since.as_deref().map(|text| Timestamp::parse_rfc3339("since", text)).transpose()?,
            };
            if !(1..=PageRequest::MAX_LIMIT).contains(&args.limit) {
                return Err(ValidationError::new("limit", "must be between 1 and 1000").into());
            }
            let page = match args.cursor {
                Some(cursor) => PageRequest::after(args.limit, cursor),
                None => PageRequest::first(args.limit),
            };
            let page = log.list(&operator, &filter, &page).await?;
            if global.json {
                print_json(&page);
            } else {
                let rows: Vec<Vec<String>> = page
                    .items
                    .iter()
                    .map(|entry| {
                        vec![
                            entry.sequence.to_string(),
                            entry.event.at.to_string(),
                            entry.event.actor.as_str().to_owned(),
                            entry.event.action.clone(),
                            entry.event.target.clone(),
                            or_dash(entry.event.ip),
                            or_dash(entry.event.reason.as_ref()),
                        ]
                    })
                    .collect();
                print_table(&["SEQ", "AT", "ACTOR", "ACTION", "TARGET", "IP", "REASON"], &rows);
                if let Some(cursor) = page.next_cursor {
                    eprintln!("more: --cursor {cursor}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Verify => {
            let report = log.verify(&operator).await?;
            if global.json {
                print_json(&report);
            } else if let Some(broken) = &report.first_broken {
                say!("audit log BROKEN at entry {}: {}", broken.sequence, broken.problem);
                say!("{} entries before it are intact", report.entries_checked);
            } else {
                say!("audit log intact: {} entries, head {}", report.entries_checked, report.head_hash);
            }
            Ok(if report.intact { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
    }
}
