//! What the facade's benchmarks share: a SQLite file in a temporary directory with its runtime (or,
//! with `TOLLGATE_BENCH_PG_URL`, a scratch schema on that PostgreSQL server), the benchmark key, the
//! owner of the benchmark tokens, and polling a future once without a runtime.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use tollgate::{
    Actor, AuditEvent, Clock, Description, KeyId, NewServiceAccount, OwnerId, ServiceAccountId, SqliteOptions,
    SqliteStore, Store, SystemClock, TokenHasher, Username,
};
use tollgate_store::ServiceAccountInsert;

/// A fresh SQLite file (removed on drop), or a PostgreSQL scratch schema when
/// `TOLLGATE_BENCH_PG_URL` names a server, and a two-worker runtime to drive it, with the service
/// account `bench` that owns the benchmark tokens (a token needs an existing owner).
pub(crate) struct BenchStore {
    pub(crate) runtime: tokio::runtime::Runtime,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) owner: OwnerId,
    _directory: tempfile::TempDir,
}

impl BenchStore {
    pub(crate) fn new() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("bench.db");
        let store: Arc<dyn Store> = match std::env::var("TOLLGATE_BENCH_PG_URL") {
            Ok(url) if !url.is_empty() => {
                Arc::new(runtime.block_on(tollgate_postgres::scratch::store(&url, "tollgate_bench_")))
            }
            _ => Arc::new(runtime.block_on(SqliteStore::open(&path, &SqliteOptions::default())).unwrap()),
        };
        let id = ServiceAccountId::generate();
        let account = NewServiceAccount {
            name: Username::parse_field("name", "bench").unwrap(),
            description: Description::default(),
        };
        let insert = ServiceAccountInsert { id, account, created_at: SystemClock.now() };
        let event = AuditEvent::new(Actor::cli(), "service_account.create", id, insert.created_at);
        runtime.block_on(store.insert_service_account(&insert, &event)).unwrap();
        Self { runtime, store, owner: OwnerId::ServiceAccount(id), _directory: directory }
    }
}

/// The hashing key every benchmark uses.
pub(crate) fn hasher() -> TokenHasher {
    TokenHasher::new(KeyId(1), &[9u8; 32]).unwrap()
}

/// Polls `future` once with no runtime overhead (cache hits, refusals, in-memory quota checks). A
/// future that must wait goes to `runtime`; without one, waiting is a bug in the benchmark.
#[allow(dead_code, reason = "not every benchmark polls a future by hand")]
pub(crate) fn ready<F: Future>(runtime: Option<&tokio::runtime::Handle>, future: F) -> F::Output {
    // Inside the runtime's context: a backend that must wait (PostgreSQL's pool) registers with it.
    let _entered = runtime.map(tokio::runtime::Handle::enter);
    let mut future = pin!(future);
    match future.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => match runtime {
            Some(runtime) => runtime.block_on(future),
            None => panic!("the benchmarked path was expected to complete without waiting"),
        },
    }
}
