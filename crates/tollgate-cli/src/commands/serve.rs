//! `tollgate serve`: the HTTP control API. Prints the bound address on standard output, logs on
//! standard error (text or JSON), and on SIGINT/SIGTERM drains requests and flushes before exit.

mod config;
mod shared_limits;

use std::io::{IsTerminal as _, Write as _};
use std::process::ExitCode;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tollgate::{Metering, TokenManager};
use tollgate_server::AppState;
use tracing_subscriber::EnvFilter;

pub(crate) use self::config::ServeArgs;
use self::config::{FileConfig, LogFormat, Settings};
use crate::cli::GlobalArgs;
use crate::commands::identity;
use crate::exit::{CliError, CliResult};

/// Runs the server until a shutdown signal.
pub(crate) async fn run(global: &GlobalArgs, args: ServeArgs) -> CliResult {
    let file = match &args.config {
        Some(path) => FileConfig::read(path).map_err(CliError::Invalid)?,
        None => FileConfig::default(),
    };
    let mut settings = config::resolve(&args, global, file)?;
    install_logging(&settings)?;

    let store = tollgate::open_with(&settings.database_url, &settings.store).await.with_context(|| {
        format!("while opening the database {}", tollgate::redact_database_url(&settings.database_url))
    })?;
    let key_file = tollgate::load_or_create_key_file(&settings.key_file)?;
    let mut metering = Metering::builder(std::sync::Arc::clone(&store))
        .flush_interval(settings.usage_flush_interval)
        .reservation_ttl(settings.reservation_ttl);
    // Kept until exit: the heartbeat and recovery tasks stop when dropped.
    let mut _shared_limit_tasks = Vec::new();
    if let Some((url, prefix)) = &settings.redis {
        let node = shared_limits::node_id();
        let shared = shared_limits::start(url, prefix, &node)?;
        let channel = format!("{prefix}events");
        settings.serve.relay = Some(tollgate_server::RelaySettings { url: url.clone(), channel, node });
        metering = metering.rate_limiter(shared.limiter);
        _shared_limit_tasks = shared.tasks;
        tracing::info!(key_prefix = %prefix, "rate limits are shared through Redis");
    }
    let metering = metering.start().await?;
    let tokens = TokenManager::builder(store, key_file.hasher()?).metering(metering.clone()).build();
    let users = identity::user_service(&tokens, &key_file, &settings.jwt_key_file, global.bcrypt_cost)?;
    let vault = tollgate::MasterKeys::load_or_create(&settings.vault_key_file)?;
    let agents = tollgate::AgentService::builder(&tokens, vault)
        .credential_ttl(settings.agent_credential_ttl)
        .max_credential_ttl(settings.agent_credential_max_ttl)
        .budget(settings.budget)
        .build();
    // Every access expires overdue leases; the sweeper returns the remainder of those nobody touches.
    let sweeper = agents.clone();
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(std::time::Duration::from_secs(30));
        loop {
            interval.tick().await;
            if let Err(error) = sweeper.expire_overdue_leases().await {
                tracing::warn!(%error, "could not expire overdue budget leases; retrying");
            }
        }
    });
    if let Some(path) = &settings.receipt_key_file {
        let signer = tollgate::ReceiptSigner::load_or_create(path)?;
        tracing::info!(key_id = %signer.public_key().key_id(), "signing usage receipts");
        settings.server.receipts = Some(signer);
    }
    warn_if_readable_by_others(&settings);
    let state = AppState::with_agents(tokens, users, metering, agents, settings.server);
    if !tollgate_server::admin_exists(&state).await? {
        tracing::warn!(
            "no admin exists yet (no active admin user or token); create the first one from the shell: \
             tollgate user create --role admin --username <you> --email <you@example.com>{db} \
             or tollgate service-account create --name ops{db} and then \
             tollgate token create --permission admin --name admin --owner ops{db}",
            db = db_flag(global, &settings.key_file)
        );
    }

    let listener = TcpListener::bind(&settings.listen)
        .await
        .map_err(|error| CliError::Invalid(format!("listen: cannot bind {}: {error}", settings.listen)))?;
    let address = listener.local_addr().context("while reading the bound address")?;
    let database = tollgate::redact_database_url(&settings.database_url);
    tracing::info!(%address, %database, "serving the control API");
    say!("tollgate listening on http://{address}");
    std::io::stdout().flush().context("while writing to standard output")?;

    tollgate_server::serve(listener, state, settings.serve, shutdown_signal()).await.context("while shutting down")?;
    Ok(ExitCode::SUCCESS)
}

/// Warns about a database or key file that others than its owner may read (hashes, emails, keys).
fn warn_if_readable_by_others(settings: &config::Settings) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let database = settings.database_url.strip_prefix("sqlite://").map(std::path::PathBuf::from);
        let files = [
            Some(settings.key_file.clone()),
            Some(settings.jwt_key_file.clone()),
            Some(settings.vault_key_file.clone()),
            settings.receipt_key_file.clone(),
            database,
        ];
        for file in files.into_iter().flatten() {
            if let Ok(metadata) = std::fs::metadata(&file)
                && metadata.permissions().mode() & 0o077 != 0
            {
                tracing::warn!(file = %file.display(), "readable by others than its owner: chmod 600 it");
            }
        }
    }
    #[cfg(not(unix))]
    let _ = settings;
}

/// The `--db` (or database URL and key file) to repeat in the bootstrap hint, when the operator
/// chose one. A URL is never repeated: it may hold a password.
fn db_flag(global: &GlobalArgs, key_file: &std::path::Path) -> String {
    if global.database_url.is_some() {
        return format!(" --database-url \"$TOLLGATE_DATABASE_URL\" --key-file {}", key_file.display());
    }
    if global.db_is_default { String::new() } else { format!(" --db {}", global.db.display()) }
}

fn install_logging(settings: &Settings) -> CliResult<()> {
    let filter = EnvFilter::try_new(&settings.log)
        .map_err(|error| CliError::Invalid(format!("log: not a log filter ({error})")))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let installed = match settings.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    installed.map_err(|error| CliError::Failed(anyhow::anyhow!("cannot install logging: {error}")))
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}
