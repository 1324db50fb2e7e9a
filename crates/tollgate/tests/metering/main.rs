//! Metering through the public facade, over a real SQLite file per test: quotas in the verify path
//! (leased request blocks shared by processes, reservations), durable and background recording,
//! idempotency, faults injected into the store, prices, reports, administration, and limits and
//! reports by owner id.

#[path = "../owners/mod.rs"]
mod owners;

mod admin;
mod durability;
mod faults;
mod idempotency;
mod leases;
mod ownership;
mod quotas;
mod rates;
mod recorder;
mod reports;
mod reservations;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tollgate::{
    CounterKey, Error, KeyId, LimitKey, LimitSpec, LimitSubject, ManualClock, Metering, MeteringBuilder, Metric,
    Microdollars, ModelName, NewToken, OwnerId, Principal, ProjectId, ProjectRole, ProviderName, RefusalCode,
    Reservation, SqliteOptions, SqliteStore, Store, Timestamp, TokenHasher, TokenManager, TokenName, TokenRecord,
    UsageEvent, UserService, VerifyRequest, Window,
};

/// A database, a manual clock, metering, a token manager that enforces its quotas, and the user
/// service that creates the tokens' owners and projects.
pub(crate) struct Fixture {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) clock: Arc<ManualClock>,
    pub(crate) metering: Metering,
    pub(crate) tokens: TokenManager,
    pub(crate) users: UserService,
    /// The database file, for opening it again as another process would.
    pub(crate) path: PathBuf,
    _directory: tempfile::TempDir,
}

pub(crate) fn at(text: &str) -> Timestamp {
    Timestamp::parse_rfc3339("at", text).expect("test time")
}

/// 2026-03-10T12:00:00Z: mid-month, mid-day, on the hour.
pub(crate) const START: &str = "2026-03-10T12:00:00Z";

impl Fixture {
    pub(crate) async fn new() -> Self {
        Self::with(|builder| builder).await
    }

    pub(crate) async fn with(configure: impl FnOnce(MeteringBuilder) -> MeteringBuilder) -> Self {
        Self::wrapped(|store| store, configure).await
    }

    /// A fixture whose metering and token manager see the database through `wrap` (a store that
    /// injects faults); `store` is the wrapped one.
    pub(crate) async fn wrapped(
        wrap: impl FnOnce(Arc<dyn Store>) -> Arc<dyn Store>,
        configure: impl FnOnce(MeteringBuilder) -> MeteringBuilder,
    ) -> Self {
        let directory = tempfile::tempdir().expect("temporary directory");
        let path = directory.path().join("metering.db");
        let store = wrap(open_store(&path).await);
        let clock = Arc::new(ManualClock::new(at(START)));
        let metering = Self::metering_over(&store, &clock, configure).await;
        let tokens = Self::tokens_over(&store, &clock, &metering);
        let users = owners::user_service(&tokens);
        Self { store, clock, metering, tokens, users, path, _directory: directory }
    }

    /// Another metering over the same database (a second process, or a restart).
    pub(crate) async fn metering_over(
        store: &Arc<dyn Store>,
        clock: &Arc<ManualClock>,
        configure: impl FnOnce(MeteringBuilder) -> MeteringBuilder,
    ) -> Metering {
        let builder = Metering::builder(Arc::clone(store))
            .clock(Arc::clone(clock) as Arc<dyn tollgate::Clock>)
            // Nothing is written on a timer during a test: only durably, on size, flush and shutdown.
            .flush_interval(Duration::from_secs(3_600))
            .refresh_interval(Duration::from_secs(3_600));
        configure(builder).start().await.expect("start metering")
    }

    /// The database file opened again, with its own connections: what another process would see.
    pub(crate) async fn open_again(&self) -> Arc<dyn Store> {
        open_store(&self.path).await
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

pub(crate) async fn open_store(path: &Path) -> Arc<dyn Store> {
    Arc::new(SqliteStore::open(path, &SqliteOptions::default()).await.expect("open the database"))
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

/// Runs `tasks` tasks, each calling `verify` (or `verify_and_reserve` with `reservation`) `calls`
/// times at once on a multi-threaded runtime; returns how many were admitted. Every refusal must be
/// `quota_exceeded`. Reservations are dropped unsettled: their holds stay counted.
pub(crate) async fn hammer(
    tokens: &TokenManager,
    secret: &str,
    tasks: usize,
    calls: usize,
    reservation: Option<Reservation>,
) -> usize {
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let tokens = tokens.clone();
        let secret = secret.to_owned();
        let reservation = reservation.clone();
        handles.push(tokio::spawn(async move {
            let mut admitted = 0;
            for _ in 0..calls {
                let request = VerifyRequest::default();
                let result = match &reservation {
                    Some(reservation) => tokens.verify_and_reserve(&secret, &request, reservation).await.map(drop),
                    None => tokens.verify(&secret, &request).await.map(drop),
                };
                match result {
                    Ok(()) => admitted += 1,
                    Err(Error::Refused(refusal)) => assert_eq!(refusal.code, RefusalCode::QuotaExceeded),
                    Err(other) => panic!("unexpected error: {other}"),
                }
            }
            admitted
        }));
    }
    let mut admitted = 0;
    for handle in handles {
        admitted += handle.await.expect("task completes");
    }
    admitted
}

/// The stored value of a limit's counter in the current window (for requests: every unit leased).
pub(crate) async fn counter(fixture: &Fixture, subject: LimitSubject, metric: Metric, window: Window) -> i64 {
    let key = CounterKey::at(LimitKey { subject, metric, window }, tollgate::Clock::now(fixture.clock.as_ref()));
    fixture.store.counter_values(&[key]).await.unwrap()[0]
}

pub(crate) fn dollars(text: &str) -> Microdollars {
    Microdollars::parse_dollars("amount", text).unwrap()
}
