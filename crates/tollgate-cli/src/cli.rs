//! Command-line flags (clap). Every flag that has an environment variable names it here.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::commands::agent::AgentCommand;
use crate::commands::analytics::AnalyticsArgs;
use crate::commands::audit::AuditCommand;
use crate::commands::budget::BudgetCommand;
use crate::commands::dev::DevCommand;
use crate::commands::events::EventsArgs;
use crate::commands::export::ExportArgs;
use crate::commands::import::ImportArgs;
use crate::commands::limit::LimitCommand;
use crate::commands::login::LoginArgs;
use crate::commands::price::PriceCommand;
use crate::commands::project::ProjectCommand;
use crate::commands::provider_key::ProviderKeyCommand;
use crate::commands::receipt::ReceiptCommand;
use crate::commands::scan::ScanArgs;
use crate::commands::serve::ServeArgs;
use crate::commands::service_account::ServiceAccountCommand;
use crate::commands::token::TokenCommand;
use crate::commands::traces::TracesCommand;
use crate::commands::usage::UsageCommand;
use crate::commands::user::UserCommand;
use crate::commands::vault::VaultCommand;

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
    /// A database URL instead of --db: sqlite://PATH or postgres://USER@HOST:PORT/DATABASE (the
    /// key files must then be named, e.g. --key-file, unless it is a SQLite file).
    #[arg(long, global = true, env = "TOLLGATE_DATABASE_URL")]
    pub(crate) database_url: Option<String>,
    /// The token hashing key file (created beside the database, mode 0600, when missing).
    #[arg(long, global = true, env = "TOLLGATE_KEY_FILE")]
    pub(crate) key_file: Option<PathBuf>,
    /// Print machine-readable JSON instead of tables.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// The access-token signing key file (created beside the database, mode 0600, when missing).
    #[arg(long, global = true, env = "TOLLGATE_JWT_KEY_FILE")]
    pub(crate) jwt_key_file: Option<PathBuf>,
    /// The provider-key vault's master key file (created beside the database, mode 0600, when missing).
    #[arg(long, global = true, env = "TOLLGATE_VAULT_KEY_FILE")]
    pub(crate) vault_key_file: Option<PathBuf>,
    /// The usage-receipt signing key file (created beside the database, mode 0600, when missing).
    #[arg(long, global = true, env = "TOLLGATE_RECEIPT_KEY_FILE")]
    pub(crate) receipt_key_file: Option<PathBuf>,
    /// bcrypt cost for new password hashes (10–31).
    #[arg(long, global = true, env = "TOLLGATE_BCRYPT_COST", default_value_t = 12)]
    pub(crate) bcrypt_cost: u32,
    /// Whether `db` is the default (given neither as a flag nor in TOLLGATE_DB); set by main.
    #[arg(skip)]
    pub(crate) db_is_default: bool,
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
    /// Create, list, inspect, suspend, activate, delete and unlock users; set roles and passwords.
    #[command(subcommand)]
    User(UserCommand),
    /// Create, list, inspect, suspend and activate service accounts (owners that are not people).
    #[command(subcommand)]
    ServiceAccount(ServiceAccountCommand),
    /// Create and list projects; add and remove their members.
    #[command(subcommand)]
    Project(ProjectCommand),
    /// Log in (password from the terminal or standard input) and print an access and a refresh token.
    Login(LoginArgs),
    /// List the audit log or verify its hash chain.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Serve the HTTP control API (default 127.0.0.1:8080 over ./tollgate.db).
    Serve(ServeArgs),
    /// Record usage (durably), settle or release reservations, show usage, list dead letters, purge raw events.
    #[command(subcommand)]
    Usage(UsageCommand),
    /// Quotas (requests, tokens, cost per minute/hour/day/month) and per-token rate limits.
    #[command(subcommand)]
    Limit(LimitCommand),
    /// Totals, error rate, latency percentiles and top spenders over recent hours; agents' spending and budgets.
    Analytics(AnalyticsArgs),
    /// Model prices per million tokens: list, set, remove.
    #[command(subcommand)]
    Price(PriceCommand),
    /// Register, list, change, pause, resume, disable and delete AI agents; issue their credentials.
    #[command(subcommand)]
    Agent(AgentCommand),
    /// Provider API keys in the encrypted vault: add, list, show, update, disable, enable, delete.
    #[command(subcommand)]
    ProviderKey(ProviderKeyCommand),
    /// The vault's master keys: status, rotate, re-wrap, retire.
    #[command(subcommand)]
    Vault(VaultCommand),
    /// Agents' budgets: show, set, leases, revoke a lease, history, verify; change requests.
    #[command(subcommand)]
    Budget(BudgetCommand),
    /// Tail a running server's live events (token from --token-file or TOLLGATE_TOKEN).
    Events(EventsArgs),
    /// Signed usage receipts: verify one offline, print or rotate the signing key.
    #[command(subcommand)]
    Receipt(ReceiptCommand),
    /// Request traces: list, show, purge.
    #[command(subcommand)]
    Traces(TracesCommand),
    /// Copy the SQLite database, consistently while it is served, with its key files (all 0600).
    Backup {
        /// The new backup file (its key files go beside it: FILE.key, FILE.jwt.key, FILE.vault.key, FILE.receipt.key).
        #[arg(long)]
        to: PathBuf,
    },
    /// Restore a backup (and the key files beside it) into --db, which must not exist yet.
    Restore {
        /// The backup file.
        backup: PathBuf,
    },
    /// Write every row of the database, SQLite or PostgreSQL, as JSON lines for `import` (hashes and
    /// wrapped keys as stored; no secret). The key files are not included: copy them.
    Export(ExportArgs),
    /// Load an export into an empty database of either backend and verify its audit chain. The key
    /// files are not in an export: copy them beside the new database or name them (--key-file …).
    Import(ImportArgs),
    /// Find tollgate secrets (API tokens, refresh tokens, agent credentials) in files, directories,
    /// standard input (`-`) or git history (--git); with --db, name each one and --revoke it. Exit 1
    /// when anything was found.
    Scan(ScanArgs),
}
