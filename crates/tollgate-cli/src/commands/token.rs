//! `tollgate token …`: the token lifecycle from the shell. Secrets are printed once and read
//! from standard input, never from argv.

use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use tollgate::{
    Description, IpAllowList, NewToken, OwnerId, PageRequest, Permission, Principal, ProjectId, Scope, StatusFilter,
    TokenFilter, TokenId, TokenManager, TokenName, TokenRecord, ToolList, ValidationError, parse_duration,
};

use crate::cli::GlobalArgs;
use crate::context;
use crate::exit::CliResult;
use crate::output::{or_dash, print_fields, print_json, print_table};

#[derive(Debug, Subcommand)]
pub(crate) enum TokenCommand {
    /// Create a token and print its secret once.
    Create(Box<CreateArgs>),
    /// List tokens, newest first.
    List(ListArgs),
    /// Show one token's metadata.
    Show {
        /// The token id (tok_…).
        id: String,
    },
    /// Verify a token read from standard input; exit 0 when valid, 1 when refused. With an
    /// estimate (--max-output-tokens, --model, --reserve-cost …) it also holds it and prints the
    /// reservation to settle (`usage settle`) or release.
    Verify(Box<super::token_verify::VerifyArgs>),
    /// Revoke a token (idempotent).
    Revoke {
        /// The token id.
        id: String,
        /// Why (recorded in the audit log).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Issue a new secret for a token; the old one works for the grace period.
    Rotate {
        /// The token id.
        id: String,
        /// How long the old secret keeps working (e.g. 1h; default 0s).
        #[arg(long, default_value = "0s")]
        grace: String,
    },
    /// Delete tokens revoked or expired longer ago than --older-than.
    Cleanup {
        /// Age of revocation or expiry (default 30d; at least 1h unless --force).
        #[arg(long, default_value = "30d")]
        older_than: String,
        /// Allow an age under 1h (the delete cannot be undone).
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Args)]
pub(crate) struct CreateArgs {
    /// Human name.
    #[arg(long)]
    name: String,
    /// Owner: a user or a service account, by id (usr_…, svc_…) or name. It must exist.
    #[arg(long)]
    owner: String,
    /// Project, by id (prj_…) or name; the owner must be a member of it.
    #[arg(long)]
    project: Option<String>,
    /// Permission level.
    #[arg(long, default_value = "standard")]
    permission: String,
    /// A scope to grant (repeatable).
    #[arg(long = "scope")]
    scopes: Vec<String>,
    /// Lifetime, e.g. 30d (default: never expires).
    #[arg(long)]
    expires_in: Option<String>,
    /// Tools the token may call, comma-separated.
    #[arg(long, value_delimiter = ',')]
    allowed_tools: Vec<String>,
    /// CIDR ranges the token may be used from, comma-separated.
    #[arg(long, value_delimiter = ',')]
    ip_allow: Vec<String>,
    /// Free-form notes.
    #[arg(long)]
    description: Option<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum StatusArg {
    Active,
    Revoked,
    Expired,
    All,
}

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// Only tokens of this owner (a user or a service account, by id or name).
    #[arg(long)]
    owner: Option<String>,
    /// Only tokens of this project (by id or name).
    #[arg(long)]
    project: Option<String>,
    /// Which tokens by status.
    #[arg(long, value_enum, default_value = "active")]
    status: StatusArg,
    /// Page size (1–1000).
    #[arg(long, default_value_t = 50)]
    limit: u32,
    /// The cursor printed by the previous page.
    #[arg(long)]
    cursor: Option<String>,
}

/// Runs one token command as the operator.
pub(crate) async fn run(global: &GlobalArgs, command: TokenCommand) -> CliResult {
    let context = context::open(global).await?;
    let tokens = &context.tokens;
    let operator = Principal::Operator;
    match command {
        TokenCommand::Create(args) => {
            // Every flag is checked before the owner and project are looked up.
            let (owner, project) = (args.owner.clone(), args.project.clone());
            let token = new_token(args, tokens.clock().now())?;
            let (owner, project) = resolve(tokens, Some(&owner), project.as_deref()).await?;
            let owner = owner.ok_or_else(|| ValidationError::new("owner", "is required"))?;
            let created = tokens.create(&operator, token(owner, project)).await?;
            print_created(global, &created, tokens.clock().now());
        }
        TokenCommand::List(args) => {
            let (owner, project) = resolve(tokens, args.owner.as_deref(), args.project.as_deref()).await?;
            let filter = TokenFilter { owner, project, status: args.status.into(), agent: None };
            if !(1..=PageRequest::MAX_LIMIT).contains(&args.limit) {
                return Err(ValidationError::new("limit", "must be between 1 and 1000").into());
            }
            let page = match args.cursor {
                Some(cursor) => PageRequest::after(args.limit, cursor),
                None => PageRequest::first(args.limit),
            };
            let page = tokens.list(&operator, &filter, &page).await?;
            if global.json {
                print_json(&page);
            } else {
                print_token_rows(&page.items, tokens.clock().now());
                if let Some(cursor) = page.next_cursor {
                    eprintln!("more: --cursor {cursor}");
                }
            }
        }
        TokenCommand::Show { id } => {
            let record = tokens.show(&operator, &TokenId::parse(&id)?).await?;
            print_record(global, &record, tokens.clock().now());
        }
        TokenCommand::Verify(args) => return super::token_verify::run(global, &context, *args).await,
        TokenCommand::Revoke { id, reason } => {
            let record = tokens.revoke(&operator, &TokenId::parse(&id)?, reason.as_deref()).await?;
            print_record(global, &record, tokens.clock().now());
        }
        TokenCommand::Rotate { id, grace } => {
            let grace = parse_duration("grace", &grace)?;
            let rotated = tokens.rotate(&operator, &TokenId::parse(&id)?, grace).await?;
            print_created(global, &rotated, tokens.clock().now());
        }
        TokenCommand::Cleanup { older_than, force } => {
            let older_than = parse_duration("older_than", &older_than)?;
            let deleted = tokens.cleanup(&operator, older_than, force).await?;
            if global.json {
                print_json(&serde_json::json!({ "deleted": deleted }));
            } else {
                say!("deleted {deleted} tokens");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The owner and project named by id or name (as the operator sees them).
pub(crate) async fn resolve(
    tokens: &TokenManager,
    owner: Option<&str>,
    project: Option<&str>,
) -> CliResult<(Option<OwnerId>, Option<ProjectId>)> {
    let operator = Principal::Operator;
    let owner = match owner {
        Some(owner) => Some(tokens.resolve_owner(&operator, owner).await?),
        None => None,
    };
    let project = match project {
        Some(project) => Some(tokens.resolve_project(&operator, project).await?),
        None => None,
    };
    Ok((owner, project))
}

/// Checks every flag of a creation; the result builds the token once its owner and project are known.
fn new_token(
    args: Box<CreateArgs>,
    now: tollgate::Timestamp,
) -> Result<impl FnOnce(OwnerId, Option<ProjectId>) -> NewToken, ValidationError> {
    let name = TokenName::parse(&args.name)?;
    let mut token = NewToken::new(name, OwnerId::ServiceAccount(tollgate::ServiceAccountId::generate()));
    token.permission = args.permission.parse::<Permission>()?;
    let mut scopes = args.scopes.iter().map(|scope| Scope::parse(scope)).collect::<Result<Vec<_>, _>>()?;
    scopes.sort();
    scopes.dedup();
    token.scopes = scopes;
    token.allowed_tools = ToolList::parse(&args.allowed_tools)?;
    token.ip_allow = IpAllowList::parse(&args.ip_allow)?;
    token.expires_at = args
        .expires_in
        .map(|text| parse_duration("expires_in", &text))
        .transpose()?
        .map(|lifetime| if lifetime.is_zero() { now } else { now.saturating_add(lifetime) });
    if token.expires_at.is_some_and(|expiry| expiry <= now) {
        return Err(ValidationError::new("expires_in", "must be longer than zero"));
    }
    token.description = args.description.as_deref().map(Description::parse).transpose()?.unwrap_or_default();
    Ok(move |owner, project| NewToken { owner, project, ..token })
}

impl From<StatusArg> for StatusFilter {
    fn from(status: StatusArg) -> Self {
        match status {
            StatusArg::Active => Self::Active,
            StatusArg::Revoked => Self::Revoked,
            StatusArg::Expired => Self::Expired,
            StatusArg::All => Self::All,
        }
    }
}

/// Prints a secret just issued (created or rotated): alone on standard output, what it is on
/// standard error, so `$(tollgate token create …)` captures only the secret.
pub(crate) fn print_created(global: &GlobalArgs, created: &tollgate::CreatedToken, now: tollgate::Timestamp) {
    let record = &created.record;
    if global.json {
        print_json(&serde_json::json!({ "token": created.secret.expose(), "id": record.id, "record": record }));
        return;
    }
    say!("{}", created.secret.expose());
    let status = record.status(now).as_str();
    match record.rotated_at {
        Some(_) => eprintln!(
            "rotated {} ({status}); the old secret works until {} — the secret above is shown only once",
            record.id,
            or_dash(record.previous_valid_until)
        ),
        None => eprintln!("created {} ({}) — the secret above is shown only once", record.id, record.display_hint),
    }
}

/// Prints tokens (or credentials) as a table.
pub(crate) fn print_token_rows(records: &[TokenRecord], now: tollgate::Timestamp) {
    let rows: Vec<Vec<String>> = records.iter().map(|record| summary_row(record, now)).collect();
    print_table(&["ID", "NAME", "OWNER", "PROJECT", "PERMISSION", "STATUS", "HINT", "EXPIRES"], &rows);
}

fn summary_row(record: &TokenRecord, now: tollgate::Timestamp) -> Vec<String> {
    vec![
        record.id.to_string(),
        record.name.to_string(),
        record.owner_name.to_string(),
        or_dash(record.project_name.as_ref()),
        record.effective_permission().to_string(),
        record.status(now).as_str().to_owned(),
        record.display_hint.clone(),
        or_dash(record.expires_at),
    ]
}

fn print_record(global: &GlobalArgs, record: &TokenRecord, now: tollgate::Timestamp) {
    if global.json {
        print_json(&serde_json::json!({ "status": record.status(now), "record": record }));
        return;
    }
    let list = |items: Vec<String>| if items.is_empty() { "any".to_owned() } else { items.join(", ") };
    print_fields(&[
        ("id", record.id.to_string()),
        ("name", record.name.to_string()),
        ("owner", format!("{} ({})", record.owner_name, record.owner)),
        ("owner role", or_dash(record.owner_role)),
        (
            "project",
            record.project.map_or("-".to_owned(), |id| format!("{} ({id})", or_dash(record.project_name.as_ref()))),
        ),
        ("permission", record.permission.to_string()),
        ("effective", record.effective_permission().to_string()),
        ("imposed by an admin", {
            let imposed: Vec<&str> = record.imposed.names().collect();
            if imposed.is_empty() { "none".to_owned() } else { imposed.join(", ") }
        }),
        ("status", record.status(now).as_str().to_owned()),
        ("scopes", list(record.scopes.iter().map(|scope| scope.as_str().to_owned()).collect())),
        ("allowed tools", list(record.allowed_tools.as_slice().to_vec())),
        ("ip allow", list(record.ip_allow.to_strings())),
        ("hint", record.display_hint.clone()),
        ("created", record.created_at.to_string()),
        ("expires", or_dash(record.expires_at)),
        ("last used", or_dash(record.last_used_at)),
        ("revoked", or_dash(record.revoked_at)),
        ("revoke reason", or_dash(record.revoke_reason.as_ref())),
        ("rotated", or_dash(record.rotated_at)),
        ("old secret until", or_dash(record.previous_valid_until)),
        ("description", record.description.to_string()),
    ]);
}
