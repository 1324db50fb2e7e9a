//! Shared fixture for the facade's integration tests: a real SQLite file, a manual clock, a token
//! manager and a user service (bcrypt at the test-only cost 4), and a first admin.
#![allow(dead_code)]

#[path = "../owners/mod.rs"]
pub(crate) mod owners;

pub(crate) use owners::{PASSWORD, new_user, password};

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tollgate::{
    Caller, KeyId, ManualClock, NewToken, OwnerId, Password, Principal, Role, SqliteOptions, SqliteStore, Store,
    Timestamp, TokenHasher, TokenManager, TokenName, UserRecord, UserService, UserServiceBuilder,
};

/// 2026-01-01T00:00:00Z.
pub(crate) const T0: Timestamp = Timestamp::from_unix_micros(1_767_225_600_000_000);

pub(crate) struct Fixture {
    pub(crate) directory: tempfile::TempDir,
    pub(crate) path: PathBuf,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) clock: Arc<ManualClock>,
    pub(crate) tokens: TokenManager,
    pub(crate) users: UserService,
    pub(crate) admin: UserRecord,
}

pub(crate) fn presented(text: &str) -> Password {
    Password::presented(text.to_owned()).expect("test password is presentable")
}

pub(crate) fn operator() -> Caller {
    Caller::operator()
}

impl Fixture {
    pub(crate) async fn new() -> Self {
        Self::with(|builder| builder).await
    }

    pub(crate) async fn with(configure: impl FnOnce(UserServiceBuilder) -> UserServiceBuilder) -> Self {
        let directory = tempfile::tempdir().expect("temporary directory");
        let path = directory.path().join("tollgate.db");
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(&path, &SqliteOptions::default()).await.expect("open a fresh database"));
        let clock = Arc::new(ManualClock::new(T0));
        let hasher = TokenHasher::new(KeyId(1), &[7; 32]).expect("valid key");
        let tokens = TokenManager::builder(Arc::clone(&store), hasher).clock(clock.clone()).build();
        let users = configure(owners::user_service_builder(&tokens)).build().expect("valid settings");
        let admin = users
            .create(&operator(), new_user("root", Role::Admin), password(PASSWORD))
            .await
            .expect("the operator creates the first admin");
        Self { directory, path, store, clock, tokens, users, admin }
    }

    pub(crate) async fn user(&self, name: &str, role: Role) -> UserRecord {
        owners::user(&self.users, name, role).await
    }

    /// The service account `name` (created on first use).
    pub(crate) async fn service_account(&self, name: &str) -> OwnerId {
        owners::service_account(&self.users, name).await
    }

    /// A standard token request for `owner`.
    pub(crate) fn new_token(&self, name: &str, owner: impl Into<OwnerId>) -> NewToken {
        NewToken::new(TokenName::parse(name).expect("valid token name"), owner.into())
    }

    pub(crate) fn as_admin(&self) -> Caller {
        Caller::new(self.admin.principal())
    }

    pub(crate) fn now(&self) -> Timestamp {
        tollgate::Clock::now(self.clock.as_ref())
    }

    pub(crate) fn advance(&self, seconds: u64) {
        self.clock.advance(Duration::from_secs(seconds));
    }

    /// Awaits a login attempt that must be refused, asserting that it cost exactly one bcrypt run and
    /// one audited write whatever the account (the no-enumeration rule); returns the refusal.
    pub(crate) async fn refused_at_login_cost<T: std::fmt::Debug>(
        &self,
        label: &str,
        attempt: impl std::future::Future<Output = tollgate::Result<T>>,
    ) -> tollgate::Error {
        let bcrypt_before = self.users.password_verifications();
        let audit_before = self.audit_actions().await.len();
        let error = attempt.await.expect_err(label);
        assert_eq!(self.users.password_verifications(), bcrypt_before + 1, "{label}: exactly one bcrypt run");
        assert_eq!(self.audit_actions().await.len(), audit_before + 1, "{label}: exactly one audited write");
        error
    }

    pub(crate) async fn audit_actions(&self) -> Vec<String> {
        let chain = self.store.audit_chain(0, 1000).await.expect("audit chain reads");
        chain.into_iter().map(|entry| entry.event.action).collect()
    }
}

pub(crate) fn principal(user: &UserRecord) -> Principal {
    user.principal()
}
