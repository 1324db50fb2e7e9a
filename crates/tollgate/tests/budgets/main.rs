//! Agent budgets through the facade, over a real SQLite file per test: the protocol's money moves
//! (and the peer system's failures, as regression tests), change requests with separation of
//! duties, and a simulation of thousands of random interleavings with the invariants checked after
//! every step.

#[path = "../owners/mod.rs"]
mod owners;

mod analytics;
mod protocol;
mod requests;
mod simulation;

use std::sync::Arc;
use std::time::Duration;

use tollgate::{
    AgentId, AgentName, AgentService, BudgetSettings, Caller, Description, KeyId, LeaseReportInput, ManualClock,
    MasterKeys, Metadata, Metering, NewAgent, NewProviderKey, OwnerId, ProviderKeyId, ProviderList, ProviderName,
    ProviderSecret, SqliteOptions, SqliteStore, Store, Timestamp, TokenHasher, TokenManager, UserService,
    VerifyRequest,
};

/// 2026-03-10T12:00:00Z.
pub(crate) const START: Timestamp = Timestamp::from_unix_micros(1_773_144_000_000_000);

/// A database, a manual clock, metering, the token manager and the agent service over them.
pub(crate) struct Fixture {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) clock: Arc<ManualClock>,
    pub(crate) agents: AgentService,
    pub(crate) users: UserService,
    pub(crate) owner: OwnerId,
    pub(crate) key: ProviderKeyId,
    pub(crate) path: std::path::PathBuf,
    _metering: Metering,
    _directory: tempfile::TempDir,
}

impl Fixture {
    pub(crate) async fn new() -> Self {
        Self::with(BudgetSettings { min_grant: 1, ..BudgetSettings::default() }).await
    }

    pub(crate) async fn with(settings: BudgetSettings) -> Self {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("tollgate.db");
        let sqlite = SqliteStore::open(&path, &SqliteOptions::default()).await.unwrap();
        let store: Arc<dyn Store> = Arc::new(sqlite);
        let clock = Arc::new(ManualClock::new(START));
        let metering = Metering::builder(Arc::clone(&store)).clock(clock.clone()).start().await.unwrap();
        let hasher = TokenHasher::new(KeyId(1), &[5; 32]).unwrap();
        let tokens =
            TokenManager::builder(Arc::clone(&store), hasher).clock(clock.clone()).metering(metering.clone()).build();
        let users = owners::user_service(&tokens);
        let agents = AgentService::builder(&tokens, MasterKeys::ephemeral().unwrap()).budget(settings).build();
        let owner = owners::service_account(&users, "ops").await;
        let key = NewProviderKey {
            provider: ProviderName::parse("openai").unwrap(),
            base_url: None,
            description: Description::default(),
            owner,
            project: None,
            balance: None,
            metadata: Metadata::default(),
        };
        let secret = ProviderSecret::parse("sk-budget-0123456789abcdef").unwrap();
        let key = agents.create_provider_key(&Caller::operator(), key, secret).await.unwrap().id;
        Self { store, clock, agents, users, owner, key, path, _metering: metering, _directory: directory }
    }

    /// A new agent of `ops` with the provider key and `allocated` microdollars; returns it and the
    /// caller its credential authenticates.
    pub(crate) async fn agent(&self, allocated: i64) -> (AgentId, Caller) {
        let agent = NewAgent {
            name: AgentName::parse("worker").unwrap(),
            owner: self.owner,
            project: None,
            providers: ProviderList::default(),
            provider_key: Some(self.key),
            description: Description::default(),
            metadata: Metadata::default(),
        };
        let operator = Caller::operator();
        let agent = self.agents.create_agent(&operator, agent).await.unwrap().id;
        self.agents.set_budget(&operator, &agent, allocated, Some("test")).await.unwrap();
        let credential = self
            .agents
            .create_credential(&operator, &agent, None, Some(Duration::from_secs(86_400 * 30)))
            .await
            .unwrap();
        let verified = self.agents.authenticate(credential.secret.expose(), &VerifyRequest::default()).await.unwrap();
        (agent, Caller::new(verified.principal()))
    }

    pub(crate) async fn account(&self, agent: &AgentId) -> tollgate::BudgetAccount {
        tollgate::BudgetStore::budget_account(self.store.as_ref(), agent).await.unwrap()
    }

    pub(crate) async fn assert_invariants(&self) {
        let violation = self.agents.verify_budgets(&tollgate::Principal::Operator).await.unwrap();
        assert_eq!(violation, None, "a budget invariant is broken");
    }
}

pub(crate) fn openai() -> ProviderName {
    ProviderName::parse("openai").unwrap()
}

pub(crate) fn report(request_id: &str, cost: i64) -> LeaseReportInput {
    LeaseReportInput {
        request_id: request_id.to_owned(),
        cost,
        input_tokens: 100,
        output_tokens: 50,
        model: "gpt-4o-mini".to_owned(),
    }
}
