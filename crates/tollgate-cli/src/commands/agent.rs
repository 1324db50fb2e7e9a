//! `tollgate agent …`: AI agents and their credentials, managed as the operator.

use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;
use tollgate::{
    AgentFilter, AgentId, AgentName, AgentPatch, AgentRecord, AgentService, AgentStatus, Caller, Description, Metadata,
    NewAgent, PageRequest, Principal, ProviderKeyId, ProviderList, StatusFilter, TokenId, TokenName, ValidationError,
    parse_duration,
};

use crate::cli::GlobalArgs;
use crate::commands::token::{StatusArg, print_created, print_token_rows};
use crate::context;
use crate::exit::CliResult;
use crate::output::{or_dash, print_fields, print_json, print_table};

#[derive(Debug, Subcommand)]
pub(crate) enum AgentCommand {
    /// Register an agent.
    Create {
        /// Its name.
        #[arg(long)]
        name: String,
        /// Its owner: a user or service account, by id or name.
        #[arg(long)]
        owner: String,
        /// The project it works for (id or name); the owner must be a member.
        #[arg(long)]
        project: Option<String>,
        /// A provider it may use (repeat; none: any).
        #[arg(long = "provider")]
        providers: Vec<String>,
        /// The provider key (pk_…) to give it.
        #[arg(long)]
        provider_key: Option<ProviderKeyId>,
        /// Notes.
        #[arg(long)]
        description: Option<String>,
        /// Free-form JSON object.
        #[arg(long)]
        metadata: Option<String>,
    },
    /// List agents, newest first.
    List {
        /// Only this owner's (id or name).
        #[arg(long)]
        owner: Option<String>,
        /// Only those with this status.
        #[arg(long)]
        status: Option<String>,
        /// Page size (1–1000).
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// The cursor printed by the previous page.
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Show one agent.
    Show {
        /// The agent (agt_…).
        agent: AgentId,
    },
    /// Change an agent's name, providers, provider key, description or metadata.
    Update {
        /// The agent (agt_…).
        agent: AgentId,
        /// New name.
        #[arg(long)]
        name: Option<String>,
        /// The providers it may use (repeat; replaces the list).
        #[arg(long = "provider")]
        providers: Vec<String>,
        /// Give it this provider key (pk_…).
        #[arg(long, conflicts_with = "no_provider_key")]
        provider_key: Option<ProviderKeyId>,
        /// Take its provider key away.
        #[arg(long)]
        no_provider_key: bool,
        /// New notes.
        #[arg(long)]
        description: Option<String>,
        /// New metadata (a JSON object; replaces the old).
        #[arg(long)]
        metadata: Option<String>,
    },
    /// Pause an agent: its credentials are refused until it is resumed.
    Pause {
        /// The agent (agt_…).
        agent: AgentId,
        /// Why (recorded in the audit log).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Resume a paused (or disabled) agent.
    Resume {
        /// The agent (agt_…).
        agent: AgentId,
    },
    /// Disable an agent: its credentials are refused and no new one is issued.
    Disable {
        /// The agent (agt_…).
        agent: AgentId,
        /// Why (recorded in the audit log).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Delete an agent: its credentials are revoked.
    Delete {
        /// The agent (agt_…).
        agent: AgentId,
    },
    /// Issue, list, rotate and revoke an agent's credentials.
    #[command(subcommand)]
    Credential(CredentialCommand),
}

#[derive(Debug, Subcommand)]
pub(crate) enum CredentialCommand {
    /// Issue a credential (tga_…); the secret is printed once.
    Create {
        /// The agent (agt_…).
        agent: AgentId,
        /// A name for it.
        #[arg(long)]
        name: Option<String>,
        /// Its lifetime, e.g. 7d [default: 30d; at most 90d].
        #[arg(long)]
        expires_in: Option<String>,
    },
    /// List an agent's credentials.
    List {
        /// The agent (agt_…).
        agent: AgentId,
        /// Which ones.
        #[arg(long, value_enum, default_value = "active")]
        status: StatusArg,
    },
    /// Revoke a credential.
    Revoke {
        /// The agent (agt_…).
        agent: AgentId,
        /// The credential (tok_…).
        credential: TokenId,
        /// Why (recorded in the audit log).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Issue a new secret for a credential; the old one keeps working for the grace period.
    Rotate {
        /// The agent (agt_…).
        agent: AgentId,
        /// The credential (tok_…).
        credential: TokenId,
        /// How long the old secret keeps working, e.g. 10m [default: 0s].
        #[arg(long)]
        grace: Option<String>,
    },
}

fn metadata(text: Option<&str>) -> CliResult<Option<Metadata>> {
    let Some(text) = text else { return Ok(None) };
    let value = serde_json::from_str(text).map_err(|_| ValidationError::new("metadata", "is not JSON"))?;
    Ok(Some(Metadata::parse(value)?))
}

/// A page of `limit` items (1 to 1000) after `cursor`.
pub(crate) fn page(limit: u32, cursor: Option<String>) -> CliResult<PageRequest> {
    if !(1..=PageRequest::MAX_LIMIT).contains(&limit) {
        return Err(ValidationError::new("limit", "must be between 1 and 1000").into());
    }
    Ok(match cursor {
        Some(cursor) => PageRequest::after(limit, cursor),
        None => PageRequest::first(limit),
    })
}

/// Runs one agent command as the operator.
pub(crate) async fn run(global: &GlobalArgs, command: AgentCommand) -> CliResult {
    let (context, agents) = context::open_agents(global).await?;
    let operator = Caller::operator();
    let principal = Principal::Operator;
    let tokens = &context.tokens;
    let record = match command {
        AgentCommand::Create { name, owner, project, providers, provider_key, description, metadata: meta } => {
            let agent = NewAgent {
                name: AgentName::parse(&name)?,
                owner: tokens.resolve_owner(&principal, &owner).await?,
                project: match project {
                    Some(project) => Some(tokens.resolve_project(&principal, &project).await?),
                    None => None,
                },
                providers: ProviderList::parse(&providers)?,
                provider_key,
                description: description.as_deref().map(Description::parse).transpose()?.unwrap_or_default(),
                metadata: metadata(meta.as_deref())?.unwrap_or_default(),
            };
            agents.create_agent(&operator, agent).await?
        }
        AgentCommand::List { owner, status, limit, cursor } => {
            let filter = AgentFilter {
                owner: match owner {
                    Some(owner) => Some(tokens.resolve_owner(&principal, &owner).await?),
                    None => None,
                },
                project: None,
                status: status.as_deref().map(str::parse::<AgentStatus>).transpose()?,
            };
            let page = agents.list_agents(&principal, &filter, &page(limit, cursor)?).await?;
            if global.json {
                print_json(&page);
            } else {
                let rows: Vec<Vec<String>> = page.items.iter().map(agent_row).collect();
                print_table(&["ID", "NAME", "OWNER", "STATUS", "PROVIDER KEY", "CREATED"], &rows);
                if let Some(cursor) = page.next_cursor {
                    eprintln!("more: --cursor {cursor}");
                }
            }
            return Ok(ExitCode::SUCCESS);
        }
        AgentCommand::Show { agent } => agents.agent(&principal, &agent).await?,
        AgentCommand::Update { agent, name, providers, provider_key, no_provider_key, description, metadata: meta } => {
            let patch = AgentPatch {
                name: name.as_deref().map(AgentName::parse).transpose()?,
                providers: (!providers.is_empty()).then(|| ProviderList::parse(&providers)).transpose()?,
                provider_key: if no_provider_key { Some(None) } else { provider_key.map(Some) },
                description: description.as_deref().map(Description::parse).transpose()?,
                metadata: metadata(meta.as_deref())?,
            };
            agents.update_agent(&operator, &agent, &patch).await?
        }
        AgentCommand::Pause { agent, reason } => {
            agents.set_agent_status(&operator, &agent, AgentStatus::Paused, reason.as_deref()).await?
        }
        AgentCommand::Resume { agent } => agents.set_agent_status(&operator, &agent, AgentStatus::Active, None).await?,
        AgentCommand::Disable { agent, reason } => {
            agents.set_agent_status(&operator, &agent, AgentStatus::Disabled, reason.as_deref()).await?
        }
        AgentCommand::Delete { agent } => {
            agents.delete_agent(&operator, &agent).await?;
            if global.json {
                print_json(&serde_json::json!({ "deleted": agent }));
            } else {
                say!("deleted agent {agent}; its credentials are revoked");
            }
            return Ok(ExitCode::SUCCESS);
        }
        AgentCommand::Credential(command) => return credential(global, &agents, command).await,
    };
    print_agent(global, &record);
    Ok(ExitCode::SUCCESS)
}

async fn credential(global: &GlobalArgs, agents: &AgentService, command: CredentialCommand) -> CliResult {
    let operator = Caller::operator();
    let now = agents.tokens().clock().now();
    match command {
        CredentialCommand::Create { agent, name, expires_in } => {
            let ttl = expires_in.as_deref().map(|text| parse_duration("expires_in", text)).transpose()?;
            let name = name.as_deref().map(TokenName::parse).transpose()?;
            let created = agents.create_credential(&operator, &agent, name, ttl).await?;
            print_created(global, &created, now);
        }
        CredentialCommand::List { agent, status } => {
            let status: StatusFilter = status.into();
            let page = agents.credentials(&Principal::Operator, &agent, status, &PageRequest::first(1000)).await?;
            if global.json {
                print_json(&page);
            } else {
                print_token_rows(&page.items, now);
            }
        }
        CredentialCommand::Revoke { agent, credential, reason } => {
            let record = agents.revoke_credential(&operator, &agent, &credential, reason.as_deref()).await?;
            if global.json {
                print_json(&record);
            } else {
                say!("revoked credential {}", record.id);
            }
        }
        CredentialCommand::Rotate { agent, credential, grace } => {
            let grace = grace.as_deref().map(|text| parse_duration("grace", text)).transpose()?;
            let rotated =
                agents.rotate_credential(&operator, &agent, &credential, grace.unwrap_or(Duration::ZERO)).await?;
            print_created(global, &rotated, now);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn agent_row(agent: &AgentRecord) -> Vec<String> {
    vec![
        agent.id.to_string(),
        agent.name.to_string(),
        agent.owner_name.to_string(),
        agent.status.to_string(),
        or_dash(agent.provider_key),
        agent.created_at.to_string(),
    ]
}

fn print_agent(global: &GlobalArgs, agent: &AgentRecord) {
    if global.json {
        print_json(agent);
        return;
    }
    let providers: Vec<&str> = agent.providers.as_slice().iter().map(|name| name.as_str()).collect();
    print_fields(&[
        ("id", agent.id.to_string()),
        ("name", agent.name.to_string()),
        ("owner", format!("{} ({})", agent.owner_name, agent.owner)),
        ("project", or_dash(agent.project)),
        ("providers", if providers.is_empty() { "any".to_owned() } else { providers.join(", ") }),
        ("provider key", or_dash(agent.provider_key)),
        ("status", agent.status.to_string()),
        ("created", agent.created_at.to_string()),
        ("updated", agent.updated_at.to_string()),
        ("description", agent.description.to_string()),
        ("metadata", agent.metadata.to_json_text()),
    ]);
}
