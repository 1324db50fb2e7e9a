//! tollgate: issue, verify, meter and govern API tokens.
//!
//! The facade users depend on. Open a store with [`open`] (SQLite by default) and build a
//! [`TokenManager`] over it:
//!
//! ```no_run
//! # async fn example() -> Result<(), tollgate::Error> {
//! use tollgate::{NewToken, Principal, TokenManager, TokenName, VerifyRequest};
//!
//! let store = tollgate::open("sqlite://tollgate.db").await?;
//! let hasher = tollgate::TokenHasher::new(tollgate::KeyId(1), &[7u8; 32])?;
//! let manager = TokenManager::builder(store, hasher).build();
//! // Every token belongs to an existing user or service account, named here by name or id.
//! let owner = manager.resolve_owner(&Principal::Operator, "alice").await?;
//! let created = manager.create(&Principal::Operator, NewToken::new(TokenName::parse("ci")?, owner)).await?;
//! println!("shown once: {}", created.secret.expose());
//! let context = manager.verify(created.secret.expose(), &VerifyRequest::default()).await?;
//! assert_eq!(context.token_id, created.record.id);
//! # Ok(()) }
//! ```

mod agents;
mod audit_log;
mod authz;
mod caller;
mod error;
mod follow;
mod keys;
mod leaks;
mod live;
mod metering;
mod open;
mod receipts;
mod sessions;
mod tokens;
mod traces;
mod users;
mod vault;

pub use agents::{
    AgentService, AgentServiceBuilder, BudgetSettings, BudgetStatus, BudgetView, DeliveredKey, Handshake,
    IngestedEvent, LeaseReportInput, MasterKeyRotation, RiskLevel, SpendingFigures, SpendingGroup, SpendingReport,
    VaultStatus,
};
pub use audit_log::{AuditLog, AuditReport, BrokenEntry, verify_audit_chain};
pub use authz::{Operation, UsageScope, authorize};
pub use caller::Caller;
pub use error::{Error, Result};
pub use follow::{ChangeFollower, FollowSettings};
pub use keys::{KeyFile, load_or_create_key_file};
pub use leaks::{LEAKED, LeakState, LeakedSecret, SecretKind};
pub use live::{
    HubSettings, LiveEvent, LiveHub, LiveRelay, LiveTail, NewLiveEvent, Resume, Subscription, TailSettings, Visibility,
};
pub use metering::{
    Admission, AnalyticsReport, LimitStatus, Metering, MeteringBuilder, MeteringStats, PriceEntry, PriceSource,
    QuotaRefusals, QuotaReservation, RateLimitStatus, RecordedUsage, Reservation, Settlement, UnpricedModels,
    UsageOutcome, UsageReport, parse_price_toml,
};
pub use open::{MigratePolicy, StoreOptions, open, open_with};
pub use receipts::{
    RECEIPT_ALGORITHM, RECEIPT_VERSION, Receipt, ReceiptContent, ReceiptKind, ReceiptPublicKey, ReceiptSigner,
    Verification, rotate_receipt_key_file,
};

/// The youngest age an irreversible bulk delete (token cleanup, usage purge) accepts without `force`.
pub const MIN_DELETE_AGE: std::time::Duration = std::time::Duration::from_secs(3_600);

/// Refuses a bulk delete of things younger than [`MIN_DELETE_AGE`] unless forced.
fn check_delete_age(older_than: std::time::Duration, force: bool) -> Result<()> {
    if older_than < MIN_DELETE_AGE && !force {
        return Err(ValidationError::new(
            "older_than",
            "must be at least 1h: the delete cannot be undone (force it to delete younger ones)",
        )
        .into());
    }
    Ok(())
}
pub use sessions::{AccessClaims, AccessContext, AccessToken, JwtCodec, JwtKeys, SessionTokens};
pub use tokens::{AgentCredentialContext, CacheStats, CreatedToken, TokenContext, TokenManager, TokenManagerBuilder};
pub use traces::{REDACTED, TraceService, TraceSettings, redact};
pub use users::{IpThrottlePolicy, LockoutPolicy, UserService, UserServiceBuilder};
pub use vault::{MasterKeyId, MasterKeys, SealedSecret, VaultError};

pub use tollgate_store::{AccountStore, ProjectStore, ServiceAccountInsert, SessionStore, UserFilter, UserStore};
pub use tollgate_store::{AgentFilter, AgentStore, BudgetStore, LeaseFilter, ProviderKeyFilter, ProviderKeyStore};
pub use tollgate_store::{
    AgentScope, LimitStore, PriceRecord, PriceStore, RateLimitRecord, UsageFilter, UsageGroup, UsageGroupBy,
    UsageStore, UsageTotals,
};
pub use tollgate_store::{
    AuditFilter, AuditStore, Page, PageRequest, StatusFilter, Store, StoreAdmin, StoreError, TokenFilter, TokenStore,
};
pub use tollgate_store::{DeadLetterRecord, QuotaStore, ReservationRecord, ReservationState};
pub use tollgate_store::{TraceFilter, TraceStore, TracesPurged};
pub use tollgate_types::{
    AccountStatus, Imposed, NewProject, NewServiceAccount, OwnerId, OwnerRecord, ProjectId, ProjectMember,
    ProjectRecord, ProjectRole, ServiceAccountId, ServiceAccountRecord,
};
pub use tollgate_types::{
    Actor, AuditEntry, AuditEvent, Clock, Description, IpAllowList, KeyId, ManualClock, NewToken, OwnerName,
    Permission, PresentedSecret, Principal, ProjectName, Refusal, RefusalCode, Role, Scope, SystemClock, Timestamp,
    TokenFormatError, TokenHasher, TokenId, TokenName, TokenPatch, TokenPrefix, TokenRecord, TokenSecret, TokenStatus,
    ToolList, UserId, ValidationError, VerifyRequest, parse_duration,
};
pub use tollgate_types::{
    AgentBinding, AgentId, AgentName, AgentPatch, AgentRecord, AgentStatus, BaseUrl, KNOWN_PROVIDERS, Metadata,
    NewAgent, NewProviderKey, ProviderKeyId, ProviderKeyPatch, ProviderKeyRecord, ProviderList, ProviderSecret,
};
pub use tollgate_types::{AnalyticsEvent, AnalyticsEventInput, AnalyticsEventType, Period};
pub use tollgate_types::{
    BudgetAccount, BudgetRequestId, BudgetRequestRecord, LeaseId, LeaseRecord, LeaseState, LedgerEntry, LedgerKind,
    RequestState,
};
pub use tollgate_types::{
    CounterKey, Endpoint, Estimate, EstimateInput, EventId, HolderId, LatencyHistogram, LimitKey, LimitRecord,
    LimitSpec, LimitSubject, MAX_COST_PER_EVENT, MAX_LATENCY_MS, MAX_REQUESTS_PER_EVENT, MAX_TOKENS_PER_EVENT, Metric,
    Microdollars, ModelName, ModelPrice, Outcome, ProviderName, RateLimitSpec, ReservationId, UsageEvent, UsageInput,
    Window, parse_count,
};
pub use tollgate_types::{
    Email, NewUser, Password, PasswordHash, SessionId, SessionRecord, UserRecord, UserStatus, Username,
};
pub use tollgate_types::{Found, SecretScanner};
pub use tollgate_types::{MAX_TRACE_PAYLOAD_BYTES, NewTrace, TraceId, TraceInput, TraceRecord};

pub use tollgate_ratelimit::{
    BackgroundTask, Decision, FallbackConfig, FallbackLimiter, LiveNodes, LocalLimiter, NodeRegistry, RateKey,
    RateLimitStats, RateLimiter, RateQuota, RedisLimiter, RedisLimiterConfig,
};

#[cfg(feature = "sqlite")]
pub use tollgate_sqlite::{Durability, SqliteOptions, SqliteStore};

#[cfg(feature = "postgres")]
pub use tollgate_postgres::{PgOptions, PgStore};

pub use open::redact_database_url;
