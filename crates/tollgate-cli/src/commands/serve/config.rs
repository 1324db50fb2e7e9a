//! `tollgate serve` configuration: flags, then `TOLLGATE_*` environment variables (clap reads
//! both), then the TOML file, then defaults. With nothing configured it serves ./tollgate.db on
//! 127.0.0.1:8080 and creates the schema and the key file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, ValueEnum};
use serde::Deserialize;
use tollgate::{ValidationError, parse_duration};
use tollgate_server::{ServeOptions, ServerSettings, TrustedProxies};

use crate::cli::GlobalArgs;

/// The address served when none is configured.
pub(crate) const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// The database used when none is configured (the global `--db` default).
pub(crate) const DEFAULT_DB: &str = "./tollgate.db";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Flags of `tollgate serve`. Each also reads the environment variable it names.
#[derive(Debug, Default, Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080]; port 0 picks a free port.
    #[arg(long, env = "TOLLGATE_LISTEN")]
    pub(crate) listen: Option<String>,
    /// TOML configuration file (flags and environment variables override it).
    #[arg(long, env = "TOLLGATE_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// Log format [default: text].
    #[arg(long, env = "TOLLGATE_LOG_FORMAT", value_enum)]
    pub(crate) log_format: Option<LogFormat>,
    /// Log filter, tracing's EnvFilter syntax [default: info].
    #[arg(long, env = "TOLLGATE_LOG")]
    pub(crate) log: Option<String>,
    /// Proxies whose X-Forwarded-For names the client, comma-separated CIDRs [default: none].
    #[arg(long, env = "TOLLGATE_TRUSTED_PROXIES", value_delimiter = ',')]
    pub(crate) trusted_proxies: Option<Vec<String>>,
    /// How often batched last-used times are written [default: 5s].
    #[arg(long, env = "TOLLGATE_FLUSH_INTERVAL")]
    pub(crate) flush_interval: Option<String>,
    /// How long a request may take before it is answered 503 [default: 10s].
    #[arg(long, env = "TOLLGATE_REQUEST_TIMEOUT")]
    pub(crate) request_timeout: Option<String>,
    /// How long shutdown may take in all: draining requests, then writing what is queued [default: 30s].
    #[arg(long, env = "TOLLGATE_SHUTDOWN_TIMEOUT")]
    pub(crate) shutdown_timeout: Option<String>,
    /// How long usage recorded in the background waits to share a write, and how often shadow counts
    /// and quota lease reports are written [default: 1s]. Usage over HTTP is always durable.
    #[arg(long, env = "TOLLGATE_USAGE_FLUSH_INTERVAL")]
    pub(crate) usage_flush_interval: Option<String>,
    /// How long a group commit waits for more writes after its first [default: 0s: what queued
    /// while the previous commit was flushed].
    #[arg(long, env = "TOLLGATE_GROUP_COMMIT_WINDOW")]
    pub(crate) group_commit_window: Option<String>,
    /// How long a reservation holds its amounts when neither settled nor released [default: 10m].
    #[arg(long, env = "TOLLGATE_RESERVATION_TTL")]
    pub(crate) reservation_ttl: Option<String>,
    /// Largest request body in bytes [default: 65536].
    #[arg(long, env = "TOLLGATE_BODY_LIMIT")]
    pub(crate) body_limit: Option<usize>,
    /// How long an agent credential lives when its creator names no expiry [default: 30d].
    #[arg(long, env = "TOLLGATE_AGENT_CREDENTIAL_TTL")]
    pub(crate) agent_credential_ttl: Option<String>,
    /// The longest life an agent credential may be given [default: 90d].
    #[arg(long, env = "TOLLGATE_AGENT_CREDENTIAL_MAX_TTL")]
    pub(crate) agent_credential_max_ttl: Option<String>,
    /// How long a budget lease lives when the agent names no TTL [default: 15m].
    #[arg(long, env = "TOLLGATE_LEASE_TTL")]
    pub(crate) lease_ttl: Option<String>,
    /// The longest a budget lease may live [default: 24h].
    #[arg(long, env = "TOLLGATE_LEASE_MAX_TTL")]
    pub(crate) lease_max_ttl: Option<String>,
    /// What a handshake is granted when it asks for no amount, in dollars [default: 1.00].
    #[arg(long, env = "TOLLGATE_LEASE_DEFAULT_GRANT")]
    pub(crate) lease_default_grant: Option<String>,
    /// The least grant worth a lease, in dollars: less available is budget_exhausted [default: 0.001].
    #[arg(long, env = "TOLLGATE_LEASE_MIN_GRANT")]
    pub(crate) lease_min_grant: Option<String>,
    /// Keep request and response bodies in traces (redacted, cut to --trace-payload-bytes) [default: off].
    #[arg(long, env = "TOLLGATE_CAPTURE_TRACE_PAYLOADS")]
    pub(crate) capture_trace_payloads: bool,
    /// The most payload bytes one trace keeps [default: 8192].
    #[arg(long, env = "TOLLGATE_TRACE_PAYLOAD_BYTES")]
    pub(crate) trace_payload_bytes: Option<usize>,
    /// How long traces are kept [default: 7d].
    #[arg(long, env = "TOLLGATE_TRACE_RETENTION")]
    pub(crate) trace_retention: Option<String>,
    /// How long an ended session (signed out, revoked or expired) stays in its user's list before
    /// the server deletes it [default: 30d].
    #[arg(long, env = "TOLLGATE_SESSION_RETENTION")]
    pub(crate) session_retention: Option<String>,
    /// PostgreSQL: the most connections the pool opens [default: 10].
    #[arg(long, env = "TOLLGATE_DB_MAX_CONNECTIONS")]
    pub(crate) db_max_connections: Option<u32>,
    /// PostgreSQL: how long a request waits for a connection before it is answered 503 [default: 30s].
    #[arg(long, env = "TOLLGATE_DB_ACQUIRE_TIMEOUT")]
    pub(crate) db_acquire_timeout: Option<String>,
    /// Apply pending schema migrations on start (a new database always gets its schema; an older
    /// one is otherwise refused, so that upgrading is a step you take: this flag or `tollgate migrate`).
    #[arg(long, env = "TOLLGATE_MIGRATE")]
    pub(crate) migrate: bool,
    /// Sign a usage receipt into every settle, budget report and usage answer, with the key in
    /// --receipt-key-file (created beside the database when missing) [default: off].
    #[arg(long, env = "TOLLGATE_RECEIPTS")]
    pub(crate) receipts: bool,
    /// Redis for rate limits shared by every node (`redis://[:PASSWORD@]HOST:PORT[/DB]`); without it
    /// each node limits alone [default: none].
    #[arg(long, env = "TOLLGATE_REDIS_URL")]
    pub(crate) redis_url: Option<String>,
    /// The prefix of tollgate's keys in Redis [default: tollgate:rl:].
    #[arg(long, env = "TOLLGATE_REDIS_KEY_PREFIX")]
    pub(crate) redis_key_prefix: Option<String>,
    /// How soon a change made by another process or node (a revocation, a suspension, a limit)
    /// applies here; past it, verifies read through to the database [default: 1s].
    #[arg(long, env = "TOLLGATE_REVOCATION_BOUND")]
    pub(crate) revocation_bound: Option<String>,
}

/// The TOML file: the same settings under the same names (snake_case).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileConfig {
    listen: Option<String>,
    db: Option<PathBuf>,
    database_url: Option<String>,
    key_file: Option<PathBuf>,
    jwt_key_file: Option<PathBuf>,
    vault_key_file: Option<PathBuf>,
    receipt_key_file: Option<PathBuf>,
    receipts: Option<bool>,
    log_format: Option<LogFormat>,
    log: Option<String>,
    trusted_proxies: Option<Vec<String>>,
    flush_interval: Option<String>,
    request_timeout: Option<String>,
    shutdown_timeout: Option<String>,
    usage_flush_interval: Option<String>,
    group_commit_window: Option<String>,
    reservation_ttl: Option<String>,
    body_limit: Option<usize>,
    agent_credential_ttl: Option<String>,
    agent_credential_max_ttl: Option<String>,
    lease_ttl: Option<String>,
    lease_max_ttl: Option<String>,
    lease_default_grant: Option<String>,
    lease_min_grant: Option<String>,
    capture_trace_payloads: Option<bool>,
    trace_payload_bytes: Option<usize>,
    trace_retention: Option<String>,
    session_retention: Option<String>,
    revocation_bound: Option<String>,
    migrate: Option<bool>,
    redis_url: Option<String>,
    redis_key_prefix: Option<String>,
    db_max_connections: Option<u32>,
    db_acquire_timeout: Option<String>,
}

impl FileConfig {
    /// Reads and parses a configuration file; errors name the file and what is wrong.
    pub(crate) fn read(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| format!("config: cannot read {}: {error}", path.display()))?;
        toml::from_str(&text).map_err(|error| format!("config: {}: {error}", path.display()))
    }
}

/// Everything `serve` needs, resolved.
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) listen: String,
    pub(crate) database_url: String,
    pub(crate) key_file: PathBuf,
    pub(crate) jwt_key_file: PathBuf,
    pub(crate) vault_key_file: PathBuf,
    /// The receipt signing key file, when receipts are on.
    pub(crate) receipt_key_file: Option<PathBuf>,
    pub(crate) log_format: LogFormat,
    pub(crate) log: String,
    pub(crate) server: ServerSettings,
    pub(crate) serve: ServeOptions,
    pub(crate) store: tollgate::StoreOptions,
    pub(crate) usage_flush_interval: Duration,
    pub(crate) reservation_ttl: Duration,
    pub(crate) agent_credential_ttl: Duration,
    pub(crate) agent_credential_max_ttl: Duration,
    pub(crate) budget: tollgate::BudgetSettings,
    /// Redis for shared rate limits, and the prefix of its keys.
    pub(crate) redis: Option<(String, String)>,
}

/// Resolves flags and environment (`args`, `global`) over the file over the defaults. The
/// global `--db` counts only when given as a flag or in `TOLLGATE_DB`, not as its default.
pub(crate) fn resolve(
    args: &ServeArgs,
    global: &GlobalArgs,
    mut file: FileConfig,
) -> Result<Settings, ValidationError> {
    let lease_file = LeaseFile {
        ttl: file.lease_ttl.take(),
        max_ttl: file.lease_max_ttl.take(),
        default_grant: file.lease_default_grant.take(),
        min_grant: file.lease_min_grant.take(),
    };
    let explicit_db = (!global.db_is_default).then(|| global.db.clone());
    let database_url = match (global.database_url.clone(), explicit_db) {
        (Some(_), Some(_)) => return Err(ValidationError::new("database_url", "give either --db or --database-url")),
        (Some(url), None) => url,
        (None, Some(db)) => sqlite_url(&db)?,
        (None, None) => match (file.database_url, file.db) {
            (Some(_), Some(_)) => {
                return Err(ValidationError::new(
                    "database_url",
                    "the configuration file gives both db and database_url",
                ));
            }
            (Some(url), None) => url,
            (None, Some(db)) => sqlite_url(&db)?,
            (None, None) => sqlite_url(Path::new(DEFAULT_DB))?,
        },
    };
    let key_file = match global.key_file.clone().or(file.key_file) {
        Some(path) => path,
        None => crate::context::beside_database(&database_url, "key_file", ".key")?,
    };
    let jwt_key_file = match global.jwt_key_file.clone().or(file.jwt_key_file) {
        Some(path) => path,
        None => crate::context::beside_database(&database_url, "jwt_key_file", ".jwt.key")?,
    };
    let vault_key_file = match global.vault_key_file.clone().or(file.vault_key_file) {
        Some(path) => path,
        None => crate::context::beside_database(&database_url, "vault_key_file", ".vault.key")?,
    };
    let receipt_key_file = match (args.receipts || file.receipts.unwrap_or(false), global.receipt_key_file.clone()) {
        (false, _) => None,
        (true, Some(path)) => Some(path),
        (true, None) => Some(match file.receipt_key_file {
            Some(path) => path,
            None => crate::context::beside_database(&database_url, "receipt_key_file", ".receipt.key")?,
        }),
    };

    let duration = |field: &'static str, flag: &Option<String>, file: Option<String>, default: u64| {
        let text = flag.clone().or(file);
        let value = text.map(|text| parse_duration(field, &text)).transpose()?;
        let value = value.unwrap_or(Duration::from_secs(default));
        if value.is_zero() {
            return Err(ValidationError::new(field, "must be longer than zero"));
        }
        Ok(value)
    };
    let mut server = ServerSettings::default();
    server.request_timeout = duration("request_timeout", &args.request_timeout, file.request_timeout, 10)?;
    server.body_limit = args.body_limit.or(file.body_limit).unwrap_or(server.body_limit);
    if !(1024..=64 * 1024 * 1024).contains(&server.body_limit) {
        return Err(ValidationError::new("body_limit", "must be between 1024 and 67108864 bytes"));
    }
    if let Some(proxies) = args.trusted_proxies.clone().or(file.trusted_proxies) {
        server.trusted_proxies = TrustedProxies::parse(&proxies)?;
    }
    server.traces.capture_payloads = args.capture_trace_payloads || file.capture_trace_payloads.unwrap_or(false);
    server.traces.max_payload_bytes =
        args.trace_payload_bytes.or(file.trace_payload_bytes).unwrap_or(server.traces.max_payload_bytes);
    if server.traces.max_payload_bytes > tollgate::MAX_TRACE_PAYLOAD_BYTES {
        return Err(ValidationError::new("trace_payload_bytes", "must be at most 1048576"));
    }
    server.traces.retention = duration("trace_retention", &args.trace_retention, file.trace_retention, 7 * 86_400)?;
    server.session_retention =
        duration("session_retention", &args.session_retention, file.session_retention, 30 * 86_400)?;
    let mut serve = ServeOptions::default();
    serve.flush_interval = duration("flush_interval", &args.flush_interval, file.flush_interval, 5)?;
    serve.shutdown_timeout = duration("shutdown_timeout", &args.shutdown_timeout, file.shutdown_timeout, 30)?;
    let bound = duration("revocation_bound", &args.revocation_bound, file.revocation_bound, 1)?;
    if bound < Duration::from_millis(100) || bound > Duration::from_secs(60) {
        return Err(ValidationError::new("revocation_bound", "must be between 100ms and 60s"));
    }
    serve.follow = tollgate::FollowSettings { poll: bound / 10, bound };
    let usage_flush_interval =
        duration("usage_flush_interval", &args.usage_flush_interval, file.usage_flush_interval, 1)?;
    let reservation_ttl = duration("reservation_ttl", &args.reservation_ttl, file.reservation_ttl, 600)?;
    if reservation_ttl < Duration::from_secs(1) || reservation_ttl > Duration::from_secs(7 * 86_400) {
        return Err(ValidationError::new("reservation_ttl", "must be between 1s and 7d"));
    }
    let budget = budget_settings(args, lease_file, &duration)?;
    let agent_credential_ttl =
        duration("agent_credential_ttl", &args.agent_credential_ttl, file.agent_credential_ttl, 30 * 86_400)?;
    let agent_credential_max_ttl = duration(
        "agent_credential_max_ttl",
        &args.agent_credential_max_ttl,
        file.agent_credential_max_ttl,
        90 * 86_400,
    )?;
    if agent_credential_ttl > agent_credential_max_ttl {
        return Err(ValidationError::new("agent_credential_ttl", "must not be longer than agent_credential_max_ttl"));
    }
    let mut store = tollgate::StoreOptions::default();
    if args.migrate || file.migrate.unwrap_or(false) {
        store.migrate = tollgate::MigratePolicy::Always;
    }
    store.max_connections = args.db_max_connections.or(file.db_max_connections);
    if store.max_connections.is_some_and(|max| !(1..=1_000).contains(&max)) {
        return Err(ValidationError::new("db_max_connections", "must be between 1 and 1000"));
    }
    store.acquire_timeout =
        Some(duration("db_acquire_timeout", &args.db_acquire_timeout, file.db_acquire_timeout, 30)?);
    if let Some(text) = args.group_commit_window.clone().or(file.group_commit_window) {
        store.group_commit_window = parse_duration("group_commit_window", &text)?;
        if store.group_commit_window > Duration::from_millis(100) {
            return Err(ValidationError::new("group_commit_window", "must be at most 100ms"));
        }
    }

    let prefix = args.redis_key_prefix.clone().or(file.redis_key_prefix).unwrap_or_else(|| "tollgate:rl:".to_owned());
    if prefix.is_empty() || prefix.len() > 64 || prefix.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(ValidationError::new("redis_key_prefix", "must be 1 to 64 printable characters without spaces"));
    }
    let redis = args.redis_url.clone().or(file.redis_url).map(|url| (url, prefix));
    Ok(Settings {
        listen: args.listen.clone().or(file.listen).unwrap_or_else(|| DEFAULT_LISTEN.to_owned()),
        database_url,
        key_file,
        jwt_key_file,
        vault_key_file,
        receipt_key_file,
        log_format: args.log_format.or(file.log_format).unwrap_or(LogFormat::Text),
        log: args.log.clone().or(file.log).unwrap_or_else(|| "info".to_owned()),
        server,
        serve,
        store,
        usage_flush_interval,
        reservation_ttl,
        agent_credential_ttl,
        agent_credential_max_ttl,
        budget,
        redis,
    })
}

/// Reads a duration setting: its name, the flag, the file's value and the default in seconds.
type DurationSetting = dyn Fn(&'static str, &Option<String>, Option<String>, u64) -> Result<Duration, ValidationError>;

/// The lease settings of the configuration file.
struct LeaseFile {
    ttl: Option<String>,
    max_ttl: Option<String>,
    default_grant: Option<String>,
    min_grant: Option<String>,
}

/// The lease settings: TTLs as durations, grants in dollars.
fn budget_settings(
    args: &ServeArgs,
    file: LeaseFile,
    duration: &DurationSetting,
) -> Result<tollgate::BudgetSettings, ValidationError> {
    let dollars = |field: &'static str, flag: &Option<String>, file: &Option<String>, default: i64| match flag
        .clone()
        .or_else(|| file.clone())
    {
        None => Ok(default),
        Some(text) => {
            let money = tollgate::Microdollars::parse_dollars(field, &text)?;
            if money.micros() < 1 {
                return Err(ValidationError::new(field, "must be at least 0.000001"));
            }
            Ok(money.micros())
        }
    };
    let settings = tollgate::BudgetSettings {
        default_ttl: duration("lease_ttl", &args.lease_ttl, file.ttl, 15 * 60)?,
        max_ttl: duration("lease_max_ttl", &args.lease_max_ttl, file.max_ttl, 24 * 3600)?,
        default_grant: dollars("lease_default_grant", &args.lease_default_grant, &file.default_grant, 1_000_000)?,
        min_grant: dollars("lease_min_grant", &args.lease_min_grant, &file.min_grant, 1_000)?,
    };
    if settings.default_ttl > settings.max_ttl {
        return Err(ValidationError::new("lease_ttl", "must not be longer than lease_max_ttl"));
    }
    Ok(settings)
}

fn sqlite_url(path: &Path) -> Result<String, ValidationError> {
    if path.as_os_str().is_empty() {
        return Err(ValidationError::new("db", "must not be empty"));
    }
    Ok(format!("sqlite://{}", path.display()))
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
