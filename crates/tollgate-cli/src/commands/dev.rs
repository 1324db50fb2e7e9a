//! `tollgate dev …` (hidden): helpers for development data sets, used by `cargo xtask seed`.
//! Nothing here is needed to run tollgate; the secret is read from standard input, never from argv.

use std::io::Read;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use tollgate::{
    Description, ManualClock, NewToken, Permission, Principal, Scope, Timestamp, TokenId, TokenManager, TokenName,
    TokenPrefix, TokenSecret, ValidationError,
};

use crate::cli::GlobalArgs;
use crate::context::key_file_path;
use crate::exit::{CliError, CliResult};
use crate::output::print_json;

#[derive(Debug, Subcommand)]
pub(crate) enum DevCommand {
    /// Store a token with a known id and secret (read from standard input), created at --created-at and
    /// optionally revoked at --revoked-at. For development fixtures: a known secret is a public secret.
    ImportToken(ImportArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ImportArgs {
    /// The token id (tok_…).
    #[arg(long)]
    id: String,
    /// Human name.
    #[arg(long)]
    name: String,
    /// Owner: a user or a service account, by id or name (it must exist).
    #[arg(long)]
    owner: String,
    /// Project, by id or name (the owner must be a member of it).
    #[arg(long)]
    project: Option<String>,
    /// Permission level.
    #[arg(long, default_value = "standard")]
    permission: String,
    /// A scope to grant (repeatable).
    #[arg(long = "scope")]
    scopes: Vec<String>,
    /// Free-form notes.
    #[arg(long)]
    description: Option<String>,
    /// Creation time, RFC 3339 (default: now).
    #[arg(long)]
    created_at: Option<String>,
    /// Expiry, RFC 3339 (default: never); must be after the creation time.
    #[arg(long)]
    expires_at: Option<String>,
    /// Revoke the token at this time, RFC 3339 (not before the creation time).
    #[arg(long, requires = "revoke_reason")]
    revoked_at: Option<String>,
    /// Why it was revoked (recorded in the audit log).
    #[arg(long)]
    revoke_reason: Option<String>,
}

/// Runs one dev command as the operator.
pub(crate) async fn run(global: &GlobalArgs, command: DevCommand) -> CliResult {
    match command {
        DevCommand::ImportToken(args) => import_token(global, args).await,
    }
}

async fn import_token(global: &GlobalArgs, args: ImportArgs) -> CliResult {
    let id = TokenId::parse(&args.id)?;
    let time = |field, text: Option<&String>| text.map(|text| Timestamp::parse_rfc3339(field, text)).transpose();
    let created_at =
        time("created_at", args.created_at.as_ref())?.unwrap_or_else(|| tollgate::Clock::now(&tollgate::SystemClock));
    let revoked_at = time("revoked_at", args.revoked_at.as_ref())?;
    if revoked_at.is_some_and(|revoked| revoked < created_at) {
        return Err(ValidationError::new("revoked_at", "must not be before the creation time").into());
    }
    let name = TokenName::parse(&args.name)?;
    let permission = args.permission.parse::<Permission>()?;
    let mut scopes = args.scopes.iter().map(|scope| Scope::parse(scope)).collect::<Result<Vec<_>, _>>()?;
    scopes.sort();
    scopes.dedup();
    let description = args.description.as_deref().map(Description::parse).transpose()?.unwrap_or_default();
    let expires_at = time("expires_at", args.expires_at.as_ref())?;

    let mut input = zeroize::Zeroizing::new(String::new());
    std::io::stdin()
        .take(4096)
        .read_to_string(&mut input)
        .map_err(|error| CliError::Failed(anyhow::anyhow!("cannot read the token from standard input: {error}")))?;
    let secret = TokenSecret::parse(&TokenPrefix::default(), input.trim())
        .map_err(|error| ValidationError::new("token", error.to_string()))?;

    // The manager's clock stands at the creation time, then at the revocation time, so the stored times
    // and the audit log read as if it all happened then.
    let url = crate::context::database_url(global)?;
    let store =
        tollgate::open(&url).await.with_context(|| format!("while opening {}", tollgate::redact_database_url(&url)))?;
    let key_file = tollgate::load_or_create_key_file(&key_file_path(global)?)?;
    let clock = Arc::new(ManualClock::new(created_at));
    let tokens = TokenManager::builder(store, key_file.hasher()?).clock(clock.clone()).build();
    let (owner, project) = super::token::resolve(&tokens, Some(&args.owner), args.project.as_deref()).await?;
    let owner = owner.ok_or_else(|| ValidationError::new("owner", "is required"))?;
    let mut token = NewToken::new(name, owner);
    token.project = project;
    token.permission = permission;
    token.scopes = scopes;
    token.description = description;
    token.expires_at = expires_at;
    let mut record = tokens.import(&Principal::Operator, id, token, &secret).await?;
    if let Some(revoked_at) = revoked_at {
        clock.set(revoked_at);
        record = tokens.revoke(&Principal::Operator, &id, args.revoke_reason.as_deref()).await?;
    }
    if global.json {
        print_json(&serde_json::json!({ "id": record.id, "record": record }));
    } else {
        say!("imported {} ({})", record.id, record.display_hint);
    }
    Ok(ExitCode::SUCCESS)
}
