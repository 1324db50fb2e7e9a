//! The SQLite backend for tollgate (rusqlite on the bundled libsqlite3): the embedded default.
//!
//! One writer thread owns the write connection and commits in groups (see `writer`): concurrent
//! writes share one fsync'd commit and are acknowledged only once it is on disk. Reads run on a
//! small pool of read-only connections in WAL mode, point lookups right on the calling task.

mod accounts;
mod agents;
mod audit;
mod backup;
mod batch;
mod budget_leases;
mod budget_ledger;
mod budget_requests;
mod budgets;
mod checkpointer;
mod columns;
mod dead_letters;
mod dump;
mod error;
mod events;
mod limits;
mod migrate;
mod prices;
mod projects;
mod provider_keys;
mod quota;
mod readers;
mod record;
mod sessions;
mod store;
mod summaries;
mod syncer;
mod throttle;
mod tokens;
mod traces;
mod usage;
mod user_email;
mod users;
mod writer;

pub use migrate::{AppliedMigration, MIGRATIONS, Migration};
pub use store::{Durability, SqliteOptions, SqliteStore};
