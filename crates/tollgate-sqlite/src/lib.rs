//! The SQLite backend for tollgate (sqlx): the embedded default.
//!
//! One writer connection (every write is a `BEGIN IMMEDIATE` transaction, so concurrent writers
//! queue instead of failing to upgrade a read lock) and a pool of readers, in WAL mode. The verify
//! lookup by hash reads through synchronous rusqlite connections instead (see `hash_reader`).

mod audit;
mod batch;
mod columns;
mod error;
mod events;
mod hash_reader;
mod limits;
mod migrate;
mod prices;
mod sessions;
mod store;
mod tokens;
mod usage;
mod user_email;
mod users;

pub use migrate::{AppliedMigration, MIGRATIONS, Migration};
pub use store::{SqliteOptions, SqliteStore};
