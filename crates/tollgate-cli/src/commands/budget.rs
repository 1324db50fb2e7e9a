//! `tollgate budget …`: agents' budgets as the operator — show, set, leases, revoke a lease, verify
//! the ledger — and change requests (`tollgate budget request …`).

use std::process::ExitCode;

use clap::Subcommand;
use tollgate::{
    AgentId, BudgetRequestId, BudgetView, Caller, LeaseFilter, LeaseId, LeaseState, Microdollars, PageRequest,
    Principal, RequestState, ValidationError,
};

use crate::cli::GlobalArgs;
use crate::context;
use crate::exit::{CliError, CliResult};
use crate::output::{or_dash, print_fields, print_json, print_table};

#[derive(Debug, Subcommand)]
pub(crate) enum BudgetCommand {
    /// Show an agent's budget: allocated, reserved, spent, available, status.
    Show {
        /// The agent (agt_…).
        agent: AgentId,
    },
    /// Set an agent's allocation, in dollars (an absolute value; not below what is spent and reserved).
    Set {
        /// The agent (agt_…).
        agent: AgentId,
        /// The allocation in dollars, e.g. 25.00.
        #[arg(long)]
        allocated: String,
        /// Why (recorded in the history and the audit log).
        #[arg(long)]
        reason: Option<String>,
    },
    /// List leases, newest first.
    Leases {
        /// Only this agent's.
        #[arg(long)]
        agent: Option<AgentId>,
        /// Only in this state (open, returned, refreshed, expired, revoked).
        #[arg(long)]
        state: Option<String>,
    },
    /// End a lease; its remainder returns to the account.
    RevokeLease {
        /// The lease (bls_…).
        lease: LeaseId,
        /// Why.
        #[arg(long)]
        reason: Option<String>,
    },
    /// An agent's allocation history (every movement with --all).
    History {
        /// The agent (agt_…).
        agent: AgentId,
        /// Every ledger movement, not only allocation changes.
        #[arg(long)]
        all: bool,
    },
    /// Check every budget invariant; exit 1 naming the first violation.
    Verify,
    /// Change requests: create, list, approve, reject, cancel.
    #[command(subcommand)]
    Request(RequestCommand),
}

#[derive(Debug, Subcommand)]
pub(crate) enum RequestCommand {
    /// Ask for a new allocation (the operator is the requester).
    Create {
        /// The agent (agt_…).
        agent: AgentId,
        /// The allocation asked for, in dollars.
        #[arg(long)]
        allocated: String,
        /// Why.
        #[arg(long)]
        justification: String,
    },
    /// List change requests.
    List {
        /// Only in this state (pending, approved, rejected, cancelled).
        #[arg(long)]
        state: Option<String>,
    },
    /// Approve a request (not one you made).
    Approve {
        /// The request (brq_…).
        request: BudgetRequestId,
        /// Why.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Reject a request (not one you made).
    Reject {
        /// The request (brq_…).
        request: BudgetRequestId,
        /// Why.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Cancel a request you made.
    Cancel {
        /// The request (brq_…).
        request: BudgetRequestId,
    },
}

fn dollars(field: &'static str, text: &str) -> CliResult<i64> {
    let money = Microdollars::parse_dollars(field, text)?;
    if money.is_negative() {
        return Err(ValidationError::new(field, "must not be negative").into());
    }
    Ok(money.micros())
}

fn print_budget(global: &GlobalArgs, budget: &BudgetView) {
    if global.json {
        print_json(budget);
        return;
    }
    let show = |micros: i64| Microdollars::from_micros(micros).to_dollars();
    print_fields(&[
        ("agent", budget.account.agent.to_string()),
        ("allocated", show(budget.account.allocated)),
        ("reserved", show(budget.account.reserved)),
        ("spent", show(budget.account.spent)),
        ("available", show(budget.available)),
        ("status", budget.status.to_owned()),
    ]);
}

/// Runs one budget command as the operator.
pub(crate) async fn run(global: &GlobalArgs, command: BudgetCommand) -> CliResult {
    let (_context, agents) = context::open_agents(global).await?;
    let operator = Caller::operator();
    let principal = Principal::Operator;
    match command {
        BudgetCommand::Show { agent } => print_budget(global, &agents.budget(&principal, &agent).await?),
        BudgetCommand::Set { agent, allocated, reason } => {
            let allocated = dollars("allocated", &allocated)?;
            print_budget(global, &agents.set_budget(&operator, &agent, allocated, reason.as_deref()).await?);
        }
        BudgetCommand::Leases { agent, state } => {
            let filter =
                LeaseFilter { agent, owner: None, state: state.as_deref().map(str::parse::<LeaseState>).transpose()? };
            let page = agents.leases(&principal, &filter, &PageRequest::first(1000)).await?;
            if global.json {
                print_json(&page);
            } else {
                let rows: Vec<Vec<String>> = page
                    .items
                    .iter()
                    .map(|lease| {
                        vec![
                            lease.id.to_string(),
                            lease.agent.to_string(),
                            lease.state.to_string(),
                            lease.granted.to_string(),
                            lease.reported.to_string(),
                            lease.expires_at.to_string(),
                        ]
                    })
                    .collect();
                print_table(&["LEASE", "AGENT", "STATE", "GRANTED", "REPORTED", "EXPIRES"], &rows);
            }
        }
        BudgetCommand::RevokeLease { lease, reason } => {
            let (lease, returned) = agents.revoke_lease(&operator, &lease, reason.as_deref()).await?;
            if global.json {
                print_json(&serde_json::json!({ "lease": lease, "returned_now": returned }));
            } else {
                say!("lease {} is {}; {returned} microdollars returned now", lease.id, lease.state);
            }
        }
        BudgetCommand::History { agent, all } => {
            let page = agents.budget_history(&principal, &agent, all, &PageRequest::first(1000)).await?;
            if global.json {
                print_json(&page);
            } else {
                let rows: Vec<Vec<String>> = page
                    .items
                    .iter()
                    .map(|entry| {
                        vec![
                            entry.at.to_string(),
                            entry.kind.as_str().to_owned(),
                            entry.allocated_after.to_string(),
                            entry.actor.clone(),
                            or_dash(entry.reason.as_ref()),
                            or_dash(entry.request),
                        ]
                    })
                    .collect();
                print_table(&["AT", "KIND", "ALLOCATED AFTER", "ACTOR", "REASON", "REQUEST"], &rows);
            }
        }
        BudgetCommand::Verify => match agents.verify_budgets(&principal).await? {
            None => {
                if global.json {
                    print_json(&serde_json::json!({ "ok": true }));
                } else {
                    say!("every budget invariant holds");
                }
            }
            Some(violation) => {
                if global.json {
                    print_json(&serde_json::json!({ "ok": false, "violation": violation }));
                }
                return Err(CliError::Failed(anyhow::anyhow!("budget invariant broken: {violation}")));
            }
        },
        BudgetCommand::Request(command) => return request(global, &agents, command).await,
    }
    Ok(ExitCode::SUCCESS)
}

async fn request(global: &GlobalArgs, agents: &tollgate::AgentService, command: RequestCommand) -> CliResult {
    let operator = Caller::operator();
    let record = match command {
        RequestCommand::Create { agent, allocated, justification } => {
            agents.request_budget(&operator, &agent, dollars("allocated", &allocated)?, &justification).await?
        }
        RequestCommand::List { state } => {
            let state = state.as_deref().map(str::parse::<RequestState>).transpose()?;
            let page = agents.budget_requests(&Principal::Operator, state, &PageRequest::first(1000)).await?;
            if global.json {
                print_json(&page);
            } else {
                let rows: Vec<Vec<String>> = page
                    .items
                    .iter()
                    .map(|request| {
                        vec![
                            request.id.to_string(),
                            request.agent.to_string(),
                            request.state.to_string(),
                            request.requested_allocation.to_string(),
                            request.requester.clone(),
                        ]
                    })
                    .collect();
                print_table(&["REQUEST", "AGENT", "STATE", "REQUESTED", "REQUESTER"], &rows);
            }
            return Ok(ExitCode::SUCCESS);
        }
        RequestCommand::Approve { request, reason } => {
            agents.decide_budget_request(&operator, &request, true, reason.as_deref()).await?
        }
        RequestCommand::Reject { request, reason } => {
            agents.decide_budget_request(&operator, &request, false, reason.as_deref()).await?
        }
        RequestCommand::Cancel { request } => agents.cancel_budget_request(&operator, &request).await?,
    };
    if global.json {
        print_json(&record);
    } else {
        say!("{} {} (requested {} for {})", record.id, record.state, record.requested_allocation, record.agent);
    }
    Ok(ExitCode::SUCCESS)
}
