//! `tollgate service-account …`: owners that are not people, managed as the operator. Names share
//! one namespace with usernames.

use std::process::ExitCode;

use clap::Subcommand;
use tollgate::{
    Caller, Description, NewServiceAccount, PageRequest, Principal, ServiceAccountRecord, Username, ValidationError,
};

use super::identity;
use crate::cli::GlobalArgs;
use crate::exit::CliResult;
use crate::output::{or_dash, print_fields, print_json, print_table};

#[derive(Debug, Subcommand)]
pub(crate) enum ServiceAccountCommand {
    /// Create a service account (its name must be free among users and service accounts).
    Create {
        /// The name: 3–64 of a-z 0-9 . _ - (stored lowercase).
        #[arg(long)]
        name: String,
        /// What it is for.
        #[arg(long)]
        description: Option<String>,
    },
    /// List service accounts, newest first.
    List {
        /// Page size (1–1000).
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// The cursor printed by the previous page.
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Show one service account.
    Show {
        /// The service account: id (svc_…) or name.
        account: String,
    },
    /// Suspend a service account: its tokens are revoked at once.
    Suspend {
        /// The service account: id or name.
        account: String,
        /// Why (required; recorded on the account and in the audit log).
        #[arg(long)]
        reason: String,
    },
    /// Activate a suspended service account (revoked tokens stay revoked).
    Activate {
        /// The service account: id or name.
        account: String,
    },
}

/// Runs one service-account command as the operator.
pub(crate) async fn run(global: &GlobalArgs, command: ServiceAccountCommand) -> CliResult {
    let (_context, users) = identity::open(global).await?;
    let operator = Caller::operator();
    let principal = Principal::Operator;
    let record = match command {
        ServiceAccountCommand::Create { name, description } => {
            let account = NewServiceAccount {
                name: Username::parse_field("name", &name)?,
                description: description.as_deref().map(Description::parse).transpose()?.unwrap_or_default(),
            };
            users.create_service_account(&operator, account).await?
        }
        ServiceAccountCommand::List { limit, cursor } => {
            if !(1..=PageRequest::MAX_LIMIT).contains(&limit) {
                return Err(ValidationError::new("limit", "must be between 1 and 1000").into());
            }
            let page = match cursor {
                Some(cursor) => PageRequest::after(limit, cursor),
                None => PageRequest::first(limit),
            };
            let page = users.list_service_accounts(&principal, &page).await?;
            if global.json {
                print_json(&page);
            } else {
                let rows: Vec<Vec<String>> = page
                    .items
                    .iter()
                    .map(|account| {
                        vec![
                            account.id.to_string(),
                            account.name.to_string(),
                            account.status.to_string(),
                            account.created_at.to_string(),
                            account.description.to_string(),
                        ]
                    })
                    .collect();
                print_table(&["ID", "NAME", "STATUS", "CREATED", "DESCRIPTION"], &rows);
                if let Some(cursor) = page.next_cursor {
                    eprintln!("more: --cursor {cursor}");
                }
            }
            return Ok(ExitCode::SUCCESS);
        }
        ServiceAccountCommand::Show { account } => users.find_service_account(&principal, &account).await?,
        ServiceAccountCommand::Suspend { account, reason } => {
            let found = users.find_service_account(&principal, &account).await?;
            users.suspend_service_account(&operator, &found.id, &reason).await?
        }
        ServiceAccountCommand::Activate { account } => {
            let found = users.find_service_account(&principal, &account).await?;
            users.activate_service_account(&operator, &found.id).await?
        }
    };
    print_account(global, &record);
    Ok(ExitCode::SUCCESS)
}

fn print_account(global: &GlobalArgs, account: &ServiceAccountRecord) {
    if global.json {
        print_json(account);
        return;
    }
    print_fields(&[
        ("id", account.id.to_string()),
        ("name", account.name.to_string()),
        ("status", account.status.to_string()),
        ("status reason", or_dash(account.status_reason.as_ref())),
        ("created", account.created_at.to_string()),
        ("updated", account.updated_at.to_string()),
        ("description", account.description.to_string()),
    ]);
}
