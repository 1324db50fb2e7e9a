//! Command dispatch: one module per command group.

pub(crate) mod agent;
pub(crate) mod agent_analytics;
pub(crate) mod analytics;
pub(crate) mod audit;
pub(crate) mod backup;
pub(crate) mod budget;
pub(crate) mod dev;
pub(crate) mod events;
pub(crate) mod export;
mod export_file;
mod identity;
pub(crate) mod import;
pub(crate) mod limit;
pub(crate) mod login;
pub(crate) mod price;
pub(crate) mod project;
pub(crate) mod provider_key;
pub(crate) mod receipt;
pub(crate) mod scan;
mod scan_sources;
pub(crate) mod serve;
pub(crate) mod service_account;
pub(crate) mod token;
mod token_verify;
pub(crate) mod traces;
pub(crate) mod usage;
mod usage_event;
pub(crate) mod user;
pub(crate) mod vault;

use std::process::ExitCode;

use crate::cli::{Cli, Command};
use crate::context;
use crate::exit::CliResult;

/// Runs the parsed command line.
pub(crate) async fn run(cli: Cli) -> CliResult {
    match cli.command {
        Command::Token(command) => token::run(&cli.global, command).await,
        Command::Dev(command) => dev::run(&cli.global, command).await,
        Command::Serve(args) => serve::run(&cli.global, args).await,
        Command::Usage(command) => usage::run(&cli.global, command).await,
        Command::Limit(command) => limit::run(&cli.global, command).await,
        Command::Analytics(args) => analytics::run(&cli.global, args).await,
        Command::Price(command) => price::run(&cli.global, command).await,
        Command::Migrate => {
            let context = context::open_with(&cli.global, tollgate::MigratePolicy::Always).await?;
            // Opening the database applied pending migrations; this reports where the schema stands.
            let (_, version) = context.tokens.store_migrations().await?;
            if cli.global.json {
                crate::output::print_json(&serde_json::json!({ "database": cli.global.db, "schema_version": version }));
            } else {
                say!("database {} is up to date (schema version {version})", cli.global.db.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::User(command) => user::run(&cli.global, command).await,
        Command::Login(args) => login::run(&cli.global, args).await,
        Command::Audit(command) => audit::run(&cli.global, command).await,
        Command::ServiceAccount(command) => service_account::run(&cli.global, command).await,
        Command::Project(command) => project::run(&cli.global, command).await,
        Command::Agent(command) => agent::run(&cli.global, command).await,
        Command::ProviderKey(command) => provider_key::run(&cli.global, command).await,
        Command::Vault(command) => vault::run(&cli.global, command).await,
        Command::Budget(command) => budget::run(&cli.global, command).await,
        Command::Events(args) => events::run(&cli.global, args).await,
        Command::Receipt(command) => receipt::run(&cli.global, command).await,
        Command::Traces(command) => traces::run(&cli.global, command).await,
        Command::Backup { to } => backup::backup(&cli.global, &to).await,
        Command::Restore { backup: from } => backup::restore(&cli.global, &from).await,
        Command::Export(args) => export::run(&cli.global, args).await,
        Command::Import(args) => import::run(&cli.global, args).await,
        Command::Scan(args) => scan::run(&cli.global, args).await,
    }
}
