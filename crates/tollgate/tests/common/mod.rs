//! Shared fixtures for the facade's integration tests: a real SQLite file and a manual clock.

#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tollgate::{
    KeyId, ManualClock, NewToken, OwnerName, Principal, SqliteOptions, SqliteStore, Timestamp, TokenHasher,
    TokenManager, TokenName,
};

/// 2026-01-01T00:00:00Z.
pub const START: Timestamp = Timestamp::from_unix_micros(1_767_225_600_000_000);

/// A token manager over a fresh SQLite file, with a clock that moves only when told.
pub struct Fixture {
    pub manager: TokenManager,
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
        Self { manager, clock, store, path, _directory: directory }
    }

    pub fn advance(&self, seconds: u64) {
        self.clock.advance(Duration::from_secs(seconds));
    }
}

/// A minimal token request.
pub fn new_token(name: &str, owner: &str) -> NewToken {
    NewToken::new(TokenName::parse(name).expect("valid name"), OwnerName::parse(owner).expect("valid owner"))
}

pub const OPERATOR: Principal = Principal::Operator;
