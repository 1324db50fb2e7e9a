//! Metering through the public facade, over a real SQLite file per test: quotas in the verify path,
//! the write-behind recorder, prices, reports, administration, and limits and reports by owner id.

#[path = "../owners/mod.rs"]
mod owners;

mod admin;
mod ownership;
mod quotas;
mod rates;
mod recorder;
mod reports;

use std::sync::Arc;
use std::time::Duration;

use tollgate::{
    KeyId, LimitKey, LimitSpec, LimitSubject, ManualClock, Metering, MeteringBuilder, Metric, Microdollars, ModelName,
    NewToken, OwnerId, Principal, ProjectId, ProjectRole, ProviderName, QuotaMode, SqliteOptions, SqliteStore, Store,
    Timestamp, TokenHasher, TokenManager, TokenName, TokenRecord, UsageEvent, UserService, Window,
};

/// A database, a manual clock, metering, a token manager that enforces its quotas, and the user
/// service that creates the tokens' owners and projects.
pub(crate) struct Fixture {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) clock: Arc<ManualClock>,
    pub(crate) metering: Metering,
    pub(crate) tokens: TokenManager,
    pub(crate) users: UserService,
    _directory: tempfile::TempDir,
}

pub(crate) fn at(text: &str) -> Timestamp {
    Timestamp::parse_rfc3339("at", text).expect("test time")
}

/// 2026-03-10T12:00:00Z: mid-month, mid-day, on the hour.
pub(crate) const START: &str = "2026-03-10T12:00:00Z";

impl Fixture {
    pub(crate) async fn new() -> Self {
        Self::with(QuotaMode::Local, |builder| builder).await
    }

    pub(crate) async fn with(mode: QuotaMode, configure: impl FnOnce(MeteringBuilder) -> MeteringBuilder) -> Self {
        let directory = tempfile::tempdir().expect("temporary directory");
        let path = directory.path().join("metering.db");
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(&path, &SqliteOptions::default()).await.expect("open the database"));
        let clock = Arc::new(ManualClock::new(at(START)));
        let metering = Self::metering_over(&store, &clock, mode, configure).await;
        let tokens = Self::tokens_over(&store, &clock, &metering);
        let users = owners::user_service(&tokens);
        Self { store, clock, metering, tokens, users, _directory: directory }
    }

    /// Another metering over the same database (a second process, or a restart).
    pub(crate) async fn metering_over(
        store: &Arc<dyn Store>,
        clock: &Arc<ManualClock>,
        mode: QuotaMode,
        configure: impl FnOnce(MeteringBuilder) -> MeteringBuilder,
    ) -> Metering {
        let builder = Metering::builder(Arc::clone(store))
            .clock(Arc::clone(clock) as Arc<dyn tollgate::Clock>)
            .quota_mode(mode)
            // Nothing is written on a timer during a test: only on size, flush and shutdown.
            .flush_interval(Duration::from_secs(3_600))
            .refresh_interval(Duration::from_secs(3_600));
        configure(builder).start().await.expect("start metering")
    }

    pub(crate) fn tokens_over(store: &Arc<dyn Store>, clock: &Arc<ManualClock>, metering: &Metering) -> TokenManager {
        let hasher = TokenHasher::new(KeyId(1), &[7u8; 32]).expect("test key");
        TokenManager::builder(Arc::clone(store), hasher)
            .clock(Arc::clone(clock) as Arc<dyn tollgate::Clock>)
            .metering(metering.clone())
            .build()
    }

    /// The service account `name` (created on first use).
    pub(crate) async fn owner(&self, name: &str) -> OwnerId {
        owners::service_account(&self.users, name).await
    }

    /// The project `name` (created on first use).
    pub(crate) async fn project(&self, name: &str) -> ProjectId {
        owners::project(&self.tokens, &self.users, name).await
    }

    /// Creates a token of the service account `owner` in `project` (each created on first use, the
    /// owner made a member of the project); returns its secret and record.
    pub(crate) async fn token(&self, owner: &str, project: Option<&str>) -> (String, TokenRecord) {
        let owner = self.owner(owner).await;
        let mut token = NewToken::new(TokenName::parse("metered").unwrap(), owner);
        if let Some(project) = project {
            let project = self.project(project).await;
            owners::join(&self.users, project, owner, ProjectRole::Member).await;
            token.project = Some(project);
        }
        let created = self.tokens.create(&Principal::Operator, token).await.expect("create a token");
        (created.secret.expose().to_owned(), created.record)
    }

    /// Sets a limit as the operator.
    pub(crate) async fn limit(&self, subject: LimitSubject, metric: Metric, window: Window, max: u64, shadow: bool) {
        let spec = LimitSpec::new(LimitKey { subject, metric, window }, max, shadow).unwrap();
        self.metering.set_limit(&Principal::Operator, spec).await.expect("set a limit");
    }

    pub(crate) fn advance(&self, seconds: u64) {
        self.clock.advance(Duration::from_secs(seconds));
    }
}

/// An event of `provider/model` now, with the given tokens and no cost (priced from the table).
pub(crate) fn event(fixture: &Fixture, token: &TokenRecord, model: &str, input: u32, output: u32) -> UsageEvent {
    let (provider, model) = model.split_once('/').expect("provider/model");
    let mut event = UsageEvent::new(
        token.id,
        tollgate::Clock::now(fixture.clock.as_ref()),
        ProviderName::parse(provider).unwrap(),
        ModelName::parse(model).unwrap(),
    );
    event.input_tokens = input;
    event.output_tokens = output;
    event
}

pub(crate) fn dollars(text: &str) -> Microdollars {
    Microdollars::parse_dollars("amount", text).unwrap()
}
