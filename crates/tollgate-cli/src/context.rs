//! Opening what commands need: the database, the hashing key, the token manager.

use std::path::PathBuf;

use anyhow::Context as _;
use tollgate::{Metering, TokenManager};

use crate::cli::GlobalArgs;
use crate::exit::CliResult;

/// The open database and managers for one command.
#[derive(Debug)]
pub(crate) struct Context {
    pub(crate) tokens: TokenManager,
    /// Usage, quotas and prices; `tokens` enforces its quotas. Metering commands shut it down
    /// before they exit so queued usage is written.
    pub(crate) metering: Metering,
}

/// The key file path: `--key-file`, else `<database>.key` beside the database.
pub(crate) fn key_file_path(global: &GlobalArgs) -> PathBuf {
    global.key_file.clone().unwrap_or_else(|| {
        let mut path = global.db.clone().into_os_string();
        path.push(".key");
        PathBuf::from(path)
    })
}

/// The vault master key file: `--vault-key-file`, else `<database>.vault.key` beside the database.
pub(crate) fn vault_key_file_path(global: &GlobalArgs) -> PathBuf {
    global.vault_key_file.clone().unwrap_or_else(|| {
        let mut path = global.db.clone().into_os_string();
        path.push(".vault.key");
        PathBuf::from(path)
    })
}

/// Opens what [`open`] does and the agent service over the vault key file (created on first use).
pub(crate) async fn open_agents(global: &GlobalArgs) -> CliResult<(Context, tollgate::AgentService)> {
    let context = open(global).await?;
    let vault = tollgate::MasterKeys::load_or_create(&vault_key_file_path(global))?;
    let agents = tollgate::AgentService::builder(&context.tokens, vault).build();
    Ok((context, agents))
}

/// Opens the database (migrating it) and the key file (creating it on first use).
pub(crate) async fn open(global: &GlobalArgs) -> CliResult<Context> {
    if global.db.as_os_str().is_empty() {
        return Err(tollgate::ValidationError::new("db", "must not be empty").into());
    }
    let url = format!("sqlite://{}", global.db.display());
    let store = tollgate::open(&url).await.with_context(|| format!("while opening {}", global.db.display()))?;
    let key_file = tollgate::load_or_create_key_file(&key_file_path(global))?;
    let metering = Metering::builder(std::sync::Arc::clone(&store)).start().await?;
    let tokens = TokenManager::builder(store, key_file.hasher()?).metering(metering.clone()).build();
    Ok(Context { tokens, metering })
}
