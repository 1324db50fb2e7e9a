//! Storage traits for tollgate, split by capability, and the conformance suite every backend runs.
//!
//! Backends (SQLite and PostgreSQL) implement these traits and call
//! `conformance_tests!` from one integration test, so a case added here runs on every backend.
//! Nothing here names a database: no SQL types, no sqlx errors.

mod accounts;
mod admin;
mod agents;
mod audit;
mod budgets;
mod dump;
mod dump_value;
mod error;
pub mod event_blocks;
mod limits;
mod migration;
mod page;
mod projects;
mod quota;
mod sessions;
mod throttle;
mod tokens;
mod traces;
mod usage;
mod users;

#[cfg(feature = "conformance")]
pub mod conformance;
#[cfg(feature = "conformance")]
pub mod faults;

pub use accounts::{AccountStatusChanged, AccountStore, ServiceAccountInsert};
pub use admin::StoreAdmin;
pub use agents::{
    AgentFilter, AgentInsert, AgentStore, Delivery, NewSecret, ProviderKeyFilter, ProviderKeyInsert, ProviderKeyStore,
    Rewrap, SealedKey,
};
pub use audit::{AuditFilter, AuditStore, AuditWaker};
pub use budgets::{
    AllocationChange, BudgetDecision, BudgetRequestFilter, BudgetRequestInsert, BudgetStore, LeaseClose, LeaseFilter,
    LeaseOpen, LeaseOpened, LeaseReport, Reported,
};
pub use dump::{
    ColumnSchema, DUMP_BOOLEAN_COLUMNS, DUMP_JSON_VALUE_COLUMNS, DUMP_TABLES, DumpCursor, DumpRow, DumpStore,
    TableSchema, dump_table,
};
pub use dump_value::{ColumnKind, DumpValue};
pub use error::{Result, StoreError};
pub use limits::{LimitStore, PriceRecord, PriceStore, RateLimitRecord};
pub use migration::{AppliedMigration, Migration};
pub use page::{Page, PageRequest};
pub use projects::{MemberRemoved, ProjectInsert, ProjectStore};
pub use quota::{
    Hold, LeaseGrant, LeaseRequest, LeaseReturn, LeaseSummary, LeaseUse, QuotaStore, ReservationInsert,
    ReservationRecord, ReservationState, ReserveOutcome, Settled, decode_holds, encode_holds,
};
pub use sessions::{
    RefreshLookup, RefreshOutcome, RefreshRotation, RefreshTokenInsert, SessionStart, SessionStore, SessionWithUser,
};
pub use throttle::{LoginSlot, LoginThrottleStore};
pub use tokens::{HashMatch, SecretRotation, StatusFilter, TokenFilter, TokenInsert, TokenLookup, TokenStore};
pub use traces::{TraceFilter, TraceInsert, TraceStore, TracesPurged};
pub use usage::{
    AgentScope, BatchWritten, CounterDelta, DeadLetter, DeadLetterRecord, EventToRecord, GroupCursor, RecordOutcome,
    RollupKey, ShadowHit, UsageBatch, UsageFilter, UsageGroup, UsageGroupBy, UsageStore, UsageTotals, group_page,
    hourly_rollups,
};
pub use users::{
    LoginFailure, PasswordChange, StatusChange, StatusChanged, UserCredentials, UserFilter, UserInsert, UserStore,
};

/// Everything a full tollgate deployment stores. Backends implement each capability; this
/// super-trait exists for consumers (the facade) that need all of them behind one `Arc<dyn Store>`.
pub trait Store:
    StoreAdmin
    + TokenStore
    + AuditStore
    + UserStore
    + AccountStore
    + ProjectStore
    + SessionStore
    + UsageStore
    + LimitStore
    + QuotaStore
    + PriceStore
    + AgentStore
    + ProviderKeyStore
    + BudgetStore
    + TraceStore
    + LoginThrottleStore
    + DumpStore
    + std::fmt::Debug
{
}

impl<
    T: StoreAdmin
        + TokenStore
        + AuditStore
        + UserStore
        + AccountStore
        + ProjectStore
        + SessionStore
        + UsageStore
        + LimitStore
        + QuotaStore
        + PriceStore
        + AgentStore
        + ProviderKeyStore
        + BudgetStore
        + TraceStore
        + LoginThrottleStore
        + DumpStore
        + std::fmt::Debug,
> Store for T
{
}
