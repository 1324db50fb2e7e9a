//! Identity benchmarks (criterion): access-JWT validation (pure, and the full access check with the
//! session/user read), login at bcrypt cost 12 (and bcrypt alone), and what the audit append adds to
//! the token write it accompanies.
//!
//! Run: `cargo bench -p tollgate --bench identity -- --warm-up-time 1 --measurement-time 3`

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use sqlx::Row;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use tollgate::{
    Actor, AuditEvent, Caller, Email, KeyId, NewToken, NewUser, OwnerId, Password, Principal, Role, SqliteOptions,
    SqliteStore, Store, SystemClock, TokenHasher, TokenManager, TokenName, TokenPatch, UserService, Username,
};
use tollgate::{Clock, JwtKeys};

const PASSWORD: &str = "correct horse battery staple";

struct Setup {
    _directory: tempfile::TempDir,
    path: std::path::PathBuf,
    store: Arc<dyn Store>,
    tokens: TokenManager,
    users: UserService,
    /// The admin `bench`, owner of the benchmark token.
    owner: OwnerId,
}

fn users(tokens: &TokenManager, cost: u32) -> UserService {
    UserService::builder(
        tokens,
        JwtKeys::new("k1", &[9; 32]).expect("valid key"),
        TokenHasher::new(KeyId(1), &[7; 32]).expect("valid key"),
    )
    .insecure_bcrypt_cost_for_tests(cost)
    .build()
    .expect("valid settings")
}

async fn setup() -> Setup {
    let directory = tempfile::tempdir().expect("temporary directory");
    let path = directory.path().join("bench.db");
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path, &SqliteOptions::default()).await.expect("open"));
    let tokens = TokenManager::builder(Arc::clone(&store), TokenHasher::new(KeyId(1), &[7; 32]).expect("key")).build();
    let users = users(&tokens, 12);
    let user = NewUser::new(
        Username::parse("bench").expect("valid"),
        Email::parse("bench@example.com").expect("valid"),
        Role::Admin,
    );
    let user = users.create(&Caller::operator(), user, Password::new(PASSWORD.to_owned()).expect("valid")).await;
    let owner = OwnerId::User(user.expect("user").id);
    Setup { _directory: directory, path, store, tokens, users, owner }
}

fn identity(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let setup = runtime.block_on(setup());
    let login = || Password::presented(PASSWORD.to_owned()).expect("valid");
    let session = runtime.block_on(setup.users.login("bench", login(), None)).expect("login");
    let access = session.access_token.expose().to_owned();

    let mut jwt = c.benchmark_group("jwt");
    jwt.bench_function("validate (signature + claims, no I/O)", |b| {
        b.iter(|| setup.users.jwt().validate(&access, SystemClock.now()).expect("valid"))
    });
    jwt.bench_function("authenticate_access (validate + session/user read)", |b| {
        b.iter(|| runtime.block_on(setup.users.authenticate_access(&access)).expect("valid"))
    });
    jwt.finish();

    let mut login_group = c.benchmark_group("login");
    login_group.sample_size(10).measurement_time(Duration::from_secs(5));
    login_group.bench_function("login at bcrypt cost 12", |b| {
        b.iter(|| runtime.block_on(setup.users.login("bench", login(), None)).expect("login"))
    });
    let hash = bcrypt::hash(PASSWORD, 12).expect("hash");
    login_group.bench_function("bcrypt verify alone at cost 12", |b| {
        b.iter(|| bcrypt::verify(PASSWORD, &hash).expect("verify"))
    });
    login_group.finish();

    audit_overhead(c, &runtime, &setup);
}

/// A token update through the store (update + its audit append, one transaction) against the same
/// statements without the append, on the same database file.
fn audit_overhead(c: &mut Criterion, runtime: &tokio::runtime::Runtime, setup: &Setup) {
    let token = NewToken::new(TokenName::parse("bench").expect("valid"), setup.owner);
    let created = runtime.block_on(setup.tokens.create(&Principal::Operator, token)).expect("token");
    let id = created.record.id;
    let raw = runtime.block_on(async {
        let options = SqliteConnectOptions::new()
            .filename(&setup.path)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        SqlitePoolOptions::new().max_connections(1).connect_with(options).await.expect("raw pool")
    });
    let mut counter = 0u64;
    let mut group = c.benchmark_group("audit");
    group.bench_function("token update with audit append (store)", |b| {
        b.iter(|| {
            counter += 1;
            let at = SystemClock.now();
            let patch = TokenPatch {
                name: Some(TokenName::parse(&format!("bench {counter}")).expect("valid")),
                ..TokenPatch::default()
            };
            let event = AuditEvent::new(Actor::cli(), "token.update", id, at);
            runtime.block_on(setup.store.update_token(&id, &patch, at, &event)).expect("update")
        })
    });
    for with_append in [false, true] {
        let name = if with_append {
            "token update, raw SQL, plus the same append (tail read, SHA-256, insert)"
        } else {
            "token update, raw SQL, no append"
        };
        group.bench_function(name, |b| {
            b.iter(|| {
                counter += 1;
                runtime.block_on(raw_update(&raw, id, &format!("bench {counter}"), with_append));
            })
        });
    }
    group.bench_function("audit append alone (its own transaction)", |b| {
        b.iter(|| {
            let event = AuditEvent::new(Actor::cli(), "token.update", id, SystemClock.now());
            runtime.block_on(setup.store.append_audit(&event)).expect("append")
        })
    });
    group.finish();
}

/// The statements `update_token` runs (read, update, read back) on a raw connection, optionally with
/// the statements `append` runs for its audit entry, in one `BEGIN IMMEDIATE` transaction.
async fn raw_update(raw: &sqlx::SqlitePool, id: tollgate::TokenId, name: &str, with_append: bool) {
    let mut transaction = raw.begin_with("BEGIN IMMEDIATE").await.expect("begin");
    let select =
        "SELECT id, name, description, allowed_tools, ip_allow, expires_at, revoked_at FROM tokens WHERE id = ?";
    let row = sqlx::query(select).bind(id.to_string()).fetch_one(&mut *transaction).await.expect("read");
    assert!(row.get::<Option<i64>, _>("revoked_at").is_none());
    let now = SystemClock.now();
    sqlx::query(
        "UPDATE tokens SET name = ?, description = ?, allowed_tools = ?, ip_allow = ?, expires_at = ?, updated_at = ?
         WHERE id = ?",
    )
    .bind(name)
    .bind(row.get::<String, _>("description"))
    .bind(row.get::<String, _>("allowed_tools"))
    .bind(row.get::<String, _>("ip_allow"))
    .bind(row.get::<Option<i64>, _>("expires_at"))
    .bind(now.unix_micros())
    .bind(id.to_string())
    .execute(&mut *transaction)
    .await
    .expect("update");
    sqlx::query(select).bind(id.to_string()).fetch_one(&mut *transaction).await.expect("read back");
    if with_append {
        let event = AuditEvent::new(Actor::cli(), "token.update", id, now);
        let last = sqlx::query("SELECT sequence, hash FROM audit_log ORDER BY sequence DESC LIMIT 1")
            .fetch_one(&mut *transaction)
            .await
            .expect("tail");
        let sequence = last.get::<i64, _>("sequence") + 1;
        let previous: [u8; 32] = last.get::<Vec<u8>, _>("hash").try_into().expect("32 bytes");
        let hash = event.chain_hash(sequence, &previous);
        sqlx::query(
            "INSERT INTO audit_log (sequence, actor, action, target, before, after, reason, ip, at, previous_hash, hash)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(sequence)
        .bind(event.actor.as_str())
        .bind(&event.action)
        .bind(&event.target)
        .bind(event.before.as_ref().map(ToString::to_string))
        .bind(event.after.as_ref().map(ToString::to_string))
        .bind(event.reason.as_deref())
        .bind(event.ip.map(|ip| ip.to_string()))
        .bind(event.at.unix_micros())
        .bind(previous.as_slice())
        .bind(hash.as_slice())
        .execute(&mut *transaction)
        .await
        .expect("append");
    }
    transaction.commit().await.expect("commit");
}

criterion_group!(benches, identity);
criterion_main!(benches);
