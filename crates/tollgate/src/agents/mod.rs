//! The agent control plane: agents, their credentials, provider keys in the vault, and the
//! delivery of a provider key to the one agent it is assigned to.
//!
//! ```no_run
//! # async fn example() -> Result<(), tollgate::Error> {
//! use tollgate::{AgentService, Caller, MasterKeys, TokenManager};
//!
//! let store = tollgate::open("sqlite://tollgate.db").await?;
//! let key = tollgate::load_or_create_key_file("tollgate.db.key".as_ref())?;
//! let tokens = TokenManager::builder(store, key.hasher()?).build();
//! let vault = MasterKeys::load_or_create("tollgate.db.vault.key".as_ref())?;
//! let agents = AgentService::builder(&tokens, vault).build();
//! # drop(agents); Ok(()) }
//! ```

mod analytics;
mod budget;
mod credentials;
mod delivery;
mod provider_keys;
mod registry;
mod vault_admin;

use std::sync::Arc;
use std::time::Duration;

use tollgate_store::{Store, StoreError};
use tollgate_types::Timestamp;

pub use analytics::{BudgetStatus, IngestedEvent, RiskLevel, SpendingFigures, SpendingGroup, SpendingReport};
pub use budget::{BudgetSettings, BudgetView, Handshake, LeaseReportInput};
pub use delivery::DeliveredKey;
pub use vault_admin::{MasterKeyRotation, VaultStatus};

use crate::vault::KeyRing;
use crate::{Error, MasterKeys, TokenManager};

/// Builds an [`AgentService`]; every setting has a production default.
#[derive(Debug)]
pub struct AgentServiceBuilder {
    tokens: TokenManager,
    keys: MasterKeys,
    credential_ttl: Duration,
    max_credential_ttl: Duration,
    budget: BudgetSettings,
}

impl AgentServiceBuilder {
    /// How budget leases are granted (default: [`BudgetSettings::default`]).
    pub fn budget(mut self, settings: BudgetSettings) -> Self {
        self.budget = settings;
        self
    }

    /// How long a credential lives when its creator names no expiry (default 30 days).
    pub fn credential_ttl(mut self, ttl: Duration) -> Self {
        self.credential_ttl = ttl;
        self
    }

    /// The longest life a credential may be given (default 90 days).
    pub fn max_credential_ttl(mut self, ttl: Duration) -> Self {
        self.max_credential_ttl = ttl;
        self
    }

    /// The service. The default lifetime is capped at the maximum.
    pub fn build(self) -> AgentService {
        let max_credential_ttl = self.max_credential_ttl.max(Duration::from_secs(60));
        AgentService {
            store: Arc::clone(self.tokens.store()),
            tokens: self.tokens,
            keys: Arc::new(KeyRing::new(self.keys)),
            credential_ttl: self.credential_ttl.clamp(Duration::from_secs(60), max_credential_ttl),
            max_credential_ttl,
            budget: self.budget,
        }
    }
}

/// Agents, agent credentials, the provider-key vault and key delivery. Cheap to clone.
///
/// Every operation asks the facade's matrix ([`authorize`](crate::authorize)) first and writes its
/// audit event in the same transaction as its change. A provider key's secret is decrypted only in
/// [`AgentService::deliver_provider_key`], for the agent it is assigned to.
#[derive(Debug, Clone)]
pub struct AgentService {
    tokens: TokenManager,
    store: Arc<dyn Store>,
    keys: Arc<KeyRing>,
    credential_ttl: Duration,
    max_credential_ttl: Duration,
    budget: BudgetSettings,
}

impl AgentService {
    /// Starts building the service beside `tokens` (same store, hasher, cache and clock), with the
    /// vault master keys `keys`.
    pub fn builder(tokens: &TokenManager, keys: MasterKeys) -> AgentServiceBuilder {
        AgentServiceBuilder {
            tokens: tokens.clone(),
            keys,
            credential_ttl: Duration::from_secs(30 * 86_400),
            max_credential_ttl: Duration::from_secs(90 * 86_400),
            budget: BudgetSettings::default(),
        }
    }

    /// The token manager credentials verify through.
    pub fn tokens(&self) -> &TokenManager {
        &self.tokens
    }

    /// The default and the longest credential lifetime.
    pub fn credential_ttls(&self) -> (Duration, Duration) {
        (self.credential_ttl, self.max_credential_ttl)
    }

    fn now(&self) -> Timestamp {
        self.tokens.clock().now()
    }
}

/// Maps a store `NotFound` to the facade's, naming `entity` (hiding which id named nothing).
pub(crate) fn hidden(entity: &'static str) -> impl Fn(StoreError) -> Error {
    move |error| match error {
        StoreError::NotFound { .. } => Error::NotFound { entity },
        other => other.into(),
    }
}
