//! `tollgate provider-key …`: provider API keys in the vault, as the operator. The secret is read
//! from the terminal (no echo) or standard input, never from the command line, and never printed.

use std::process::ExitCode;

use clap::Subcommand;
use tollgate::{
    BaseUrl, Caller, Description, Metadata, Microdollars, NewProviderKey, PageRequest, Principal, ProviderKeyFilter,
    ProviderKeyId, ProviderKeyPatch, ProviderKeyRecord, ProviderName, ProviderSecret, ValidationError,
};

use super::identity::read_secret;
use crate::cli::GlobalArgs;
use crate::context;
use crate::exit::CliResult;
use crate::output::{or_dash, print_fields, print_json, print_table};

#[derive(Debug, Subcommand)]
pub(crate) enum ProviderKeyCommand {
    /// Store a new provider key; the secret is read from the terminal or the first line of standard input.
    Add {
        /// openai, anthropic, google, azure-openai, or your own name (then --base-url is required).
        #[arg(long)]
        provider: String,
        /// Its owner: a user or service account, by id or name.
        #[arg(long)]
        owner: String,
        /// The provider's API address (https://…).
        #[arg(long)]
        base_url: Option<String>,
        /// Bind it to a project (id or name): only that project's agents may be given it.
        #[arg(long)]
        project: Option<String>,
        /// What is left on the provider account, in dollars (e.g. 120.50).
        #[arg(long)]
        balance: Option<String>,
        /// Notes.
        #[arg(long)]
        description: Option<String>,
        /// Free-form JSON object.
        #[arg(long)]
        metadata: Option<String>,
    },
    /// List provider keys (masked).
    List {
        /// Only this owner's (id or name).
        #[arg(long)]
        owner: Option<String>,
        /// Only this provider's.
        #[arg(long)]
        provider: Option<String>,
    },
    /// Show one provider key (masked).
    Show {
        /// The key (pk_…).
        key: ProviderKeyId,
    },
    /// Change a provider key; --new-secret reads a replacement secret like `add` does.
    Update {
        /// The key (pk_…).
        key: ProviderKeyId,
        /// New notes.
        #[arg(long)]
        description: Option<String>,
        /// New base URL.
        #[arg(long)]
        base_url: Option<String>,
        /// New balance in dollars.
        #[arg(long)]
        balance: Option<String>,
        /// Replace the secret (after rotating it at the provider).
        #[arg(long)]
        new_secret: bool,
    },
    /// Disable a key: no agent receives it until it is enabled.
    Disable {
        /// The key (pk_…).
        key: ProviderKeyId,
    },
    /// Enable a disabled key.
    Enable {
        /// The key (pk_…).
        key: ProviderKeyId,
    },
    /// Delete a key: its ciphertext is erased and every agent loses it.
    Delete {
        /// The key (pk_…).
        key: ProviderKeyId,
    },
}

fn dollars(text: Option<&str>) -> CliResult<Option<Microdollars>> {
    let Some(text) = text else { return Ok(None) };
    let money = Microdollars::parse_dollars("balance", text)?;
    if money.is_negative() {
        return Err(ValidationError::new("balance", "must not be negative").into());
    }
    Ok(Some(money))
}

fn secret() -> CliResult<ProviderSecret> {
    let text = read_secret("Provider API key: ", "secret")?;
    Ok(ProviderSecret::parse(&text)?)
}

/// Runs one provider-key command as the operator.
pub(crate) async fn run(global: &GlobalArgs, command: ProviderKeyCommand) -> CliResult {
    let (context, agents) = context::open_agents(global).await?;
    let operator = Caller::operator();
    let principal = Principal::Operator;
    let tokens = &context.tokens;
    let record = match command {
        ProviderKeyCommand::Add { provider, owner, base_url, project, balance, description, metadata } => {
            let key = NewProviderKey {
                provider: ProviderName::parse(&provider)?,
                base_url: base_url.as_deref().map(BaseUrl::parse).transpose()?,
                description: description.as_deref().map(Description::parse).transpose()?.unwrap_or_default(),
                owner: tokens.resolve_owner(&principal, &owner).await?,
                project: match project {
                    Some(project) => Some(tokens.resolve_project(&principal, &project).await?),
                    None => None,
                },
                balance: dollars(balance.as_deref())?,
                metadata: match metadata {
                    Some(text) => Metadata::parse(
                        serde_json::from_str(&text).map_err(|_| ValidationError::new("metadata", "is not JSON"))?,
                    )?,
                    None => Metadata::default(),
                },
            };
            key.check()?;
            agents.create_provider_key(&operator, key, secret()?).await?
        }
        ProviderKeyCommand::List { owner, provider } => {
            let filter = ProviderKeyFilter {
                owner: match owner {
                    Some(owner) => Some(tokens.resolve_owner(&principal, &owner).await?),
                    None => None,
                },
                provider: provider.as_deref().map(ProviderName::parse).transpose()?,
                project: None,
            };
            let page = agents.list_provider_keys(&principal, &filter, &PageRequest::first(1000)).await?;
            if global.json {
                print_json(&page);
            } else {
                let rows: Vec<Vec<String>> = page.items.iter().map(key_row).collect();
                print_table(&["ID", "PROVIDER", "OWNER", "MASKED", "ENABLED", "MASTER KEY", "CREATED"], &rows);
            }
            return Ok(ExitCode::SUCCESS);
        }
        ProviderKeyCommand::Show { key } => agents.provider_key(&principal, &key).await?,
        ProviderKeyCommand::Update { key, description, base_url, balance, new_secret } => {
            let patch = ProviderKeyPatch {
                description: description.as_deref().map(Description::parse).transpose()?,
                base_url: base_url.as_deref().map(BaseUrl::parse).transpose()?.map(Some),
                balance: dollars(balance.as_deref())?.map(Some),
                ..ProviderKeyPatch::default()
            };
            let secret = if new_secret { Some(secret()?) } else { None };
            agents.update_provider_key(&operator, &key, &patch, secret).await?
        }
        ProviderKeyCommand::Disable { key } | ProviderKeyCommand::Enable { key } => {
            let enabled = matches!(command, ProviderKeyCommand::Enable { .. });
            let patch = ProviderKeyPatch { enabled: Some(enabled), ..ProviderKeyPatch::default() };
            agents.update_provider_key(&operator, &key, &patch, None).await?
        }
        ProviderKeyCommand::Delete { key } => {
            agents.delete_provider_key(&operator, &key).await?;
            if global.json {
                print_json(&serde_json::json!({ "deleted": key }));
            } else {
                say!("deleted provider key {key}; its ciphertext is erased and no agent has it");
            }
            return Ok(ExitCode::SUCCESS);
        }
    };
    print_key(global, &record);
    Ok(ExitCode::SUCCESS)
}

fn key_row(key: &ProviderKeyRecord) -> Vec<String> {
    vec![
        key.id.to_string(),
        key.provider.to_string(),
        key.owner_name.to_string(),
        key.masked.clone(),
        key.enabled.to_string(),
        key.master_key_id.to_string(),
        key.created_at.to_string(),
    ]
}

fn print_key(global: &GlobalArgs, key: &ProviderKeyRecord) {
    if global.json {
        print_json(key);
        return;
    }
    print_fields(&[
        ("id", key.id.to_string()),
        ("provider", key.provider.to_string()),
        ("base url", or_dash(key.base_url.as_ref().map(BaseUrl::as_str))),
        ("owner", format!("{} ({})", key.owner_name, key.owner)),
        ("project", or_dash(key.project)),
        ("secret", key.masked.clone()),
        ("enabled", key.enabled.to_string()),
        ("balance", or_dash(key.balance.map(Microdollars::to_dollars))),
        ("master key", key.master_key_id.to_string()),
        ("created", key.created_at.to_string()),
        ("updated", key.updated_at.to_string()),
        ("description", key.description.to_string()),
    ]);
}
