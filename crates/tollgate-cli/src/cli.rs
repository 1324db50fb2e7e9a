//! Command-line flags (clap). Every flag that has an environment variable names it here.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::commands::analytics::AnalyticsArgs;
use crate::commands::dev::DevCommand;
use crate::commands::limit::LimitCommand;
use crate::commands::price::PriceCommand;
use crate::commands::token::TokenCommand;
use crate::commands::usage::UsageCommand;

/// tollgate: API tokens, users, usage and limits — on an embedded SQLite database by default.
#[derive(Debug, Parser)]
#[command(name = "tollgate", version, about)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: GlobalArgs,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Flags every command takes.
#[derive(Debug, Args)]
pub(crate) struct GlobalArgs {
    /// The SQLite database file (created when missing).
    #[arg(long, global = true, env = "TOLLGATE_DB", default_value = "./tollgate.db")]
    pub(crate) db: PathBuf,
    /// The token hashing key file (created beside the database, mode 0600, when missing).
    #[arg(long, global = true, env = "TOLLGATE_KEY_FILE")]
    pub(crate) key_file: Option<PathBuf>,
    /// Print machine-readable JSON instead of tables.
    #[arg(long, global = true)]
    pub(crate) json: bool,
}

// Parsed once per process, so the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create, list, inspect, verify, revoke, rotate and clean up API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Create or upgrade the database schema.
    Migrate,
    /// Development helpers (hidden): used by `cargo xtask seed`.
    #[command(subcommand, hide = true)]
    Dev(DevCommand),
    /// Record usage, show usage over a time range, purge raw events.
    #[command(subcommand)]
    Usage(UsageCommand),
    /// Quotas (requests, tokens, cost per minute/hour/day/month) and per-token rate limits.
    #[command(subcommand)]
    Limit(LimitCommand),
    /// Totals, error rate, latency percentiles and top spenders over recent hours.
    Analytics(AnalyticsArgs),
    /// Model prices per million tokens: list, set, remove.
    #[command(subcommand)]
    Price(PriceCommand),
}
