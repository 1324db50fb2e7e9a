//! Shared fixtures for the facade's token tests: a real SQLite file, a manual clock, a token manager
//! and the user service that creates the tokens' owners.

#![allow(dead_code, unreachable_pub)]

#[path = "../owners/mod.rs"]
pub mod owners;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tollgate::{
    KeyId, ManualClock, NewToken, OwnerId, Principal, Role, SqliteOptions, SqliteStore, Timestamp, TokenHasher,
    TokenManager, TokenName, UserRecord, UserService,
};

/// 2026-01-01T00:00:00Z.
pub const START: Timestamp = Timestamp::from_unix_micros(1_767_225_600_000_000);

/// A token manager over a fresh SQLite file, with a clock that moves only when told.
pub struct Fixture {
    pub manager: TokenManager,
    pub users: UserService,
    pub clock: Arc<ManualClock>,
    pub store: SqliteStore,
    pub path: PathBuf,
    _directory: tempfile::TempDir,
}

impl Fixture {
    pub async fn new() -> Self {
        Self::with_cache_ttl(Duration::from_secs(2)).await
    }

    pub async fn with_cache_ttl(ttl: Duration) -> Self {
        let directory = tempfile::tempdir().expect("temporary directory");
        let path = directory.path().join("tollgate.db");
        let store = SqliteStore::open(&path, &SqliteOptions::default()).await.expect("open database");
        let clock = Arc::new(ManualClock::new(START));
        let hasher = TokenHasher::new(KeyId(1), &[42u8; 32]).expect("valid key");
        let manager =
            TokenManager::builder(Arc::new(store.clone()), hasher).clock(clock.clone()).cache_ttl(ttl).build();
        let users = owners::user_service(&manager);
        Self { manager, users, clock, store, path, _directory: directory }
    }

    pub fn advance(&self, seconds: u64) {
        self.clock.advance(Duration::from_secs(seconds));
    }

    /// The service account `name` (created on first use): an owner with no role of its own.
    pub async fn owner(&self, name: &str) -> OwnerId {
        owners::service_account(&self.users, name).await
    }

    /// A new user `name` with `role`.
    pub async fn user(&self, name: &str, role: Role) -> UserRecord {
        owners::user(&self.users, name, role).await
    }

    /// A minimal token request for the service account `owner` (created on first use).
    pub async fn new_token(&self, name: &str, owner: &str) -> NewToken {
        new_token(name, self.owner(owner).await)
    }
}

/// A minimal token request.
pub fn new_token(name: &str, owner: OwnerId) -> NewToken {
    NewToken::new(TokenName::parse(name).expect("valid name"), owner)
}

pub const OPERATOR: Principal = Principal::Operator;
