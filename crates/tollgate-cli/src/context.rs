//! Opening what commands need: the database, the hashing key, the token manager.

use std::path::PathBuf;

use anyhow::Context as _;
use tollgate::{Metering, TokenManager, ValidationError};

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

/// The database commands open: `--database-url`, else `sqlite://<--db>`.
pub(crate) fn database_url(global: &GlobalArgs) -> Result<String, ValidationError> {
    match &global.database_url {
        Some(_) if !global.db_is_default => {
            Err(ValidationError::new("database_url", "give either --db or --database-url"))
        }
        Some(url) => Ok(url.clone()),
        None if global.db.as_os_str().is_empty() => Err(ValidationError::new("db", "must not be empty")),
        None => Ok(format!("sqlite://{}", global.db.display())),
    }
}

/// `<database file><suffix>` beside a SQLite database; any other database needs the key file named
/// (`field` is its flag), since there is no file to put it beside.
pub(crate) fn beside_database(
    database_url: &str,
    field: &'static str,
    suffix: &str,
) -> Result<PathBuf, ValidationError> {
    let path = database_url
        .strip_prefix("sqlite://")
        .or_else(|| database_url.strip_prefix("sqlite:"))
        .filter(|path| !path.is_empty() && !path.starts_with(':'))
        .ok_or_else(|| ValidationError::new(field, "must be given for a database that is not a SQLite file"))?;
    Ok(PathBuf::from(format!("{path}{suffix}")))
}

fn key_file(
    global: &GlobalArgs,
    flag: &Option<PathBuf>,
    field: &'static str,
    suffix: &str,
) -> Result<PathBuf, ValidationError> {
    match flag {
        Some(path) => Ok(path.clone()),
        None => beside_database(&database_url(global)?, field, suffix),
    }
}

/// The token hashing key file: `--key-file`, else `<database>.key` beside a SQLite database.
pub(crate) fn key_file_path(global: &GlobalArgs) -> Result<PathBuf, ValidationError> {
    key_file(global, &global.key_file, "key_file", ".key")
}

/// The access-token signing key file: `--jwt-key-file`, else `<database>.jwt.key`.
pub(crate) fn jwt_key_file_path(global: &GlobalArgs) -> Result<PathBuf, ValidationError> {
    key_file(global, &global.jwt_key_file, "jwt_key_file", ".jwt.key")
}

/// The vault master key file: `--vault-key-file`, else `<database>.vault.key`.
pub(crate) fn vault_key_file_path(global: &GlobalArgs) -> Result<PathBuf, ValidationError> {
    key_file(global, &global.vault_key_file, "vault_key_file", ".vault.key")
}

/// The usage-receipt signing key file: `--receipt-key-file`, else `<database>.receipt.key`.
pub(crate) fn receipt_key_file_path(global: &GlobalArgs) -> Result<PathBuf, ValidationError> {
    key_file(global, &global.receipt_key_file, "receipt_key_file", ".receipt.key")
}

/// Opens what [`open`] does and the agent service over the vault key file (created on first use).
pub(crate) async fn open_agents(global: &GlobalArgs) -> CliResult<(Context, tollgate::AgentService)> {
    let context = open(global).await?;
    let vault = tollgate::MasterKeys::load_or_create(&vault_key_file_path(global)?)?;
    let agents = tollgate::AgentService::builder(&context.tokens, vault).build();
    Ok((context, agents))
}

/// Opens the database (creating the schema in a new one; an older schema is refused: upgrading
/// is `tollgate migrate`) and the key file (creating it on first use).
pub(crate) async fn open(global: &GlobalArgs) -> CliResult<Context> {
    open_with(global, tollgate::MigratePolicy::NewDatabaseOnly).await
}

/// [`open`], applying migrations as `migrate` says.
pub(crate) async fn open_with(global: &GlobalArgs, migrate: tollgate::MigratePolicy) -> CliResult<Context> {
    let url = database_url(global)?;
    let mut options = tollgate::StoreOptions::default();
    options.migrate = migrate;
    let store = tollgate::open_with(&url, &options)
        .await
        .with_context(|| format!("while opening {}", tollgate::redact_database_url(&url)))?;
    let key_file = tollgate::load_or_create_key_file(&key_file_path(global)?)?;
    let metering = Metering::builder(std::sync::Arc::clone(&store)).start().await?;
    let tokens = TokenManager::builder(store, key_file.hasher()?).metering(metering.clone()).build();
    Ok(Context { tokens, metering })
}
