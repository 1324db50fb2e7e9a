//! The PostgreSQL backend for tollgate (sqlx, no TLS): shared state for many server nodes.
//!
//! It implements every `tollgate-store` trait with the behaviour of the SQLite backend (the
//! conformance suite runs on both), over a connection pool where SQLite has one writer thread.
//! What the single writer gives SQLite for free, this backend gets from PostgreSQL's locks:
//!
//! - **Isolation.** Every write is one READ COMMITTED transaction that locks the rows it decides
//!   on before reading them (`SELECT … FOR UPDATE`), so a check and the change it allows cannot be
//!   split by another writer. Counters, rollups and idempotency keys are written with
//!   `INSERT … ON CONFLICT`: a transaction that meets a row another one is writing waits for it and
//!   then works on the committed row. Where one transaction locks several rows of a kind it locks
//!   them in key order, so writers wait in one order; a deadlock or serialization failure the
//!   server reports anyway is retried a few times from scratch (`store::retrying`).
//! - **Invariants across rows.** The last active admin: a change that could take one away locks
//!   every active admin's row first, in id order. An owner's suspension against a token insert:
//!   the schema's insert trigger reads the owner `FOR SHARE`, so either the insert sees the owner
//!   suspended, or the suspension waits for the insert and then revokes the new token with the
//!   others; logins lock the user's row as suspensions do. One namespace of owner names: both
//!   insert triggers take one advisory lock per name. Quotas: a reservation locks every counter it
//!   holds on before checking any, a lease locks its counter, so concurrent callers never pass a
//!   maximum.
//! - **The audit chain.** Each transaction queues its audit events and appends them last, right
//!   before `COMMIT`, under `LOCK TABLE audit_log IN SHARE ROW EXCLUSIVE MODE` (conflicting only
//!   with other appenders): sequence numbers are gap-free and follow commit order, each hash
//!   (computed in Rust by `AuditEvent::chain_hash`) covers the entry before, and the lock is never
//!   held while waiting for another.
//! - **Budgets.** Every movement of an agent's budget locks its account row first, then the
//!   leases it closes or reports against, and writes its ledger row in the same transaction.
//! - **Numbers.** Times are BIGINT microseconds and money BIGINT microdollars, as on SQLite; sums
//!   are computed as NUMERIC and capped at the largest BIGINT, counters saturate at both ends.
//!
//! Errors are mapped in one place (`error`): constraint violations and the schema triggers'
//! refusals are `Conflict`, a lost connection or an exhausted pool is `Unavailable`.

mod accounts;
mod agents;
mod audit;
mod budget_ledger;
mod budget_requests;
mod budget_store;
mod budgets;
mod counters;
mod dead_letters;
mod dump;
mod error;
mod events;
mod limits;
mod migrate;
mod notify;
mod prices;
mod projects;
mod provider_keys;
mod quota;
mod record;
mod reservations;
mod rows;
#[cfg(feature = "scratch")]
pub mod scratch;
mod sessions;
mod store;
mod throttle;
mod tokens;
mod traces;
mod usage;
mod user_email;
mod users;

pub use migrate::{AppliedMigration, MIGRATIONS, Migration};
pub use store::{PgOptions, PgStore};
