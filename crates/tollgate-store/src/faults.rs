//! Test support: a store that wraps a real one and injects faults into usage writes, so callers'
//! tests can prove what happens when a batch is refused, the store is down, or a commit's answer is
//! lost. Every other call is passed through unchanged.
//!
//! ```ignore
//! let faulty = Arc::new(FaultyStore::new(sqlite_store));
//! faulty.refuse_event(EventId::parse("poison")?); // any batch holding it is refused (`Backend`)
//! faulty.fail_next(2); // the next two usage writes answer `Unavailable`
//! let store: Arc<dyn Store> = faulty.clone();
//! ```
//!
//! Not for production: it exists for tests, behind the `conformance` feature.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use tollgate_types::{
    AccountStatus, AgentId, AgentPatch, AgentRecord, AgentStatus, AuditEntry, AuditEvent, BudgetAccount,
    BudgetRequestId, BudgetRequestRecord, CounterKey, Email, EventId, HolderId, LeaseId, LeaseRecord, LedgerEntry,
    LimitKey, LimitRecord, LimitSpec, LimitSubject, ModelName, ModelPrice, OwnerId, OwnerRecord, ProjectId,
    ProjectMember, ProjectName, ProjectRecord, ProjectRole, ProviderKeyId, ProviderKeyPatch, ProviderKeyRecord,
    ProviderName, RateLimitSpec, ReservationId, Role, ServiceAccountId, ServiceAccountRecord, SessionId, SessionRecord,
    Timestamp, TokenHash, TokenId, TokenPatch, TokenRecord, UserId, UserRecord, Username,
};

use crate::throttle::{LoginSlot, LoginThrottleStore};
use crate::traces::TraceStore;
use crate::{
    AccountStatusChanged, AccountStore, AgentFilter, AgentInsert, AgentStore, AllocationChange, AuditFilter,
    AuditStore, BatchWritten, BudgetDecision, BudgetRequestFilter, BudgetRequestInsert, BudgetStore, DeadLetter,
    DeadLetterRecord, Delivery, DumpCursor, DumpRow, DumpStore, EventToRecord, LeaseClose, LeaseFilter, LeaseGrant,
    LeaseOpen, LeaseOpened, LeaseReport, LeaseRequest, LeaseReturn, LeaseSummary, LeaseUse, LimitStore, LoginFailure,
    MemberRemoved, NewSecret, Page, PageRequest, PasswordChange, PriceRecord, PriceStore, ProjectInsert, ProjectStore,
    ProviderKeyFilter, ProviderKeyInsert, ProviderKeyStore, QuotaStore, RateLimitRecord, RefreshLookup, RefreshOutcome,
    RefreshRotation, Reported, ReservationInsert, ReservationRecord, ReserveOutcome, Result, Rewrap, SealedKey,
    SecretRotation, ServiceAccountInsert, SessionStart, SessionStore, SessionWithUser, Settled, StatusChange,
    StatusChanged, Store, StoreAdmin, StoreError, TableSchema, TokenFilter, TokenInsert, TokenLookup, TokenStore,
    UsageBatch, UsageFilter, UsageGroup, UsageGroupBy, UsageStore, UserCredentials, UserFilter, UserInsert, UserStore,
};

/// The error behind every injected failure (its message says which fault it was).
#[derive(Debug, thiserror::Error)]
#[error("injected fault: {0}")]
struct InjectedFault(&'static str);

/// How long usage writes fail with [`StoreError::Unavailable`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Outage {
    #[default]
    None,
    /// For this many more calls.
    Calls(u32),
    /// Until [`FaultyStore::set_unavailable`] switches it off.
    UntilRestored,
}

impl Outage {
    /// Whether this call fails, counting it.
    fn take(&mut self) -> bool {
        match *self {
            Self::None => false,
            Self::Calls(left) => {
                *self = if left > 1 { Self::Calls(left - 1) } else { Self::None };
                true
            }
            Self::UntilRestored => true,
        }
    }
}

#[derive(Debug, Default)]
struct Faults {
    refused_tokens: HashSet<TokenId>,
    refused_events: HashSet<EventId>,
    outage: Outage,
    lost_acknowledgements: u32,
    dead_letters_unavailable: bool,
}

/// What `record_usage` does with a call, decided before the inner store is asked.
enum Verdict {
    Pass,
    Unavailable,
    Refuse,
    LoseAcknowledgement,
}

/// Counts of the calls the faults apply to.
#[derive(Debug, Default)]
struct Calls {
    record_usage: AtomicU64,
    refused: AtomicU64,
    unavailable: AtomicU64,
    add_dead_letters: AtomicU64,
}

/// A store that passes every call to `inner`, except the usage writes it was told to break.
///
/// Faults, checked in this order on each `record_usage` call:
/// - an outage ([`fail_next`](Self::fail_next), [`set_unavailable`](Self::set_unavailable)):
///   [`StoreError::Unavailable`], nothing written;
/// - a refused token or event id ([`refuse_token`](Self::refuse_token),
///   [`refuse_event`](Self::refuse_event)): any batch holding one is refused with
///   [`StoreError::Backend`] (as a store refuses a row it cannot take), nothing written;
/// - a lost acknowledgement ([`lose_next_acknowledgements`](Self::lose_next_acknowledgements)):
///   the batch **is committed**, then the call answers `Unavailable`, as when a connection drops
///   between the commit and its answer. This is the fault idempotency keys exist for: a writer
///   that retries must not count the batch twice.
///
/// [`set_dead_letters_unavailable`](Self::set_dead_letters_unavailable) makes `add_dead_letters`
/// fail too.
#[derive(Debug)]
pub struct FaultyStore {
    inner: Arc<dyn Store>,
    faults: Mutex<Faults>,
    calls: Calls,
}

impl FaultyStore {
    /// A wrapper around `inner` with no fault set.
    pub fn new(inner: Arc<dyn Store>) -> Self {
        Self { inner, faults: Mutex::default(), calls: Calls::default() }
    }

    /// The wrapped store (to read what was really written).
    pub fn inner(&self) -> &Arc<dyn Store> {
        &self.inner
    }

    fn faults(&self) -> std::sync::MutexGuard<'_, Faults> {
        self.faults.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Refuses every batch holding an event of `token_id`.
    pub fn refuse_token(&self, token_id: TokenId) {
        self.faults().refused_tokens.insert(token_id);
    }

    /// Refuses every batch holding an event with `event_id`.
    pub fn refuse_event(&self, event_id: EventId) {
        self.faults().refused_events.insert(event_id);
    }

    /// Stops refusing any token or event.
    pub fn stop_refusing(&self) {
        let mut faults = self.faults();
        faults.refused_tokens.clear();
        faults.refused_events.clear();
    }

    /// The next `calls` usage writes fail with `Unavailable` (0: none).
    pub fn fail_next(&self, calls: u32) {
        self.faults().outage = if calls == 0 { Outage::None } else { Outage::Calls(calls) };
    }

    /// Usage writes fail with `Unavailable` from now until this is called with `false`.
    pub fn set_unavailable(&self, unavailable: bool) {
        self.faults().outage = if unavailable { Outage::UntilRestored } else { Outage::None };
    }

    /// The next `calls` usage writes commit, then answer `Unavailable`.
    pub fn lose_next_acknowledgements(&self, calls: u32) {
        self.faults().lost_acknowledgements = calls;
    }

    /// `add_dead_letters` fails with `Unavailable` while this is `true`.
    pub fn set_dead_letters_unavailable(&self, unavailable: bool) {
        self.faults().dead_letters_unavailable = unavailable;
    }

    /// `record_usage` calls so far, whatever they answered.
    pub fn record_usage_calls(&self) -> u64 {
        self.calls.record_usage.load(Ordering::Relaxed)
    }

    /// `record_usage` calls refused for a refused token or event id.
    pub fn refused_calls(&self) -> u64 {
        self.calls.refused.load(Ordering::Relaxed)
    }

    /// `record_usage` and `add_dead_letters` calls answered `Unavailable` (lost acknowledgements included).
    pub fn unavailable_calls(&self) -> u64 {
        self.calls.unavailable.load(Ordering::Relaxed)
    }

    /// `add_dead_letters` calls so far, whatever they answered.
    pub fn add_dead_letters_calls(&self) -> u64 {
        self.calls.add_dead_letters.load(Ordering::Relaxed)
    }

    fn verdict(&self, batch: &UsageBatch<'_>) -> Verdict {
        let mut faults = self.faults();
        if faults.outage.take() {
            return Verdict::Unavailable;
        }
        let refused = batch.events.iter().map(|item| &item.event).any(|event| {
            faults.refused_tokens.contains(&event.token_id)
                || event.event_id.as_ref().is_some_and(|id| faults.refused_events.contains(id))
        });
        if refused {
            return Verdict::Refuse;
        }
        if faults.lost_acknowledgements > 0 {
            faults.lost_acknowledgements -= 1;
            return Verdict::LoseAcknowledgement;
        }
        Verdict::Pass
    }

    fn unavailable(&self, what: &'static str) -> StoreError {
        self.calls.unavailable.fetch_add(1, Ordering::Relaxed);
        StoreError::unavailable(InjectedFault(what))
    }
}

#[async_trait]
impl UsageStore for FaultyStore {
    async fn record_usage(&self, batch: UsageBatch<'_>) -> Result<BatchWritten> {
        self.calls.record_usage.fetch_add(1, Ordering::Relaxed);
        match self.verdict(&batch) {
            Verdict::Pass => self.inner.record_usage(batch).await,
            Verdict::Unavailable => Err(self.unavailable("storage is down")),
            Verdict::Refuse => {
                self.calls.refused.fetch_add(1, Ordering::Relaxed);
                Err(StoreError::backend(InjectedFault("the batch holds a refused event")))
            }
            Verdict::LoseAcknowledgement => {
                self.inner.record_usage(batch).await?;
                Err(self.unavailable("the connection dropped after the commit"))
            }
        }
    }

    async fn add_dead_letters(&self, letters: &[DeadLetter]) -> Result<()> {
        self.calls.add_dead_letters.fetch_add(1, Ordering::Relaxed);
        if self.faults().dead_letters_unavailable {
            return Err(self.unavailable("the dead-letter table is down"));
        }
        self.inner.add_dead_letters(letters).await
    }

    async fn dead_letters(&self, page: &PageRequest) -> Result<Page<DeadLetterRecord>> {
        self.inner.dead_letters(page).await
    }

    async fn count_dead_letters(&self) -> Result<u64> {
        self.inner.count_dead_letters().await
    }

    async fn usage_groups(
        &self,
        filter: &UsageFilter,
        group_by: Option<UsageGroupBy>,
        page: &crate::PageRequest,
    ) -> Result<crate::Page<UsageGroup>> {
        self.inner.usage_groups(filter, group_by, page).await
    }

    async fn count_usage_events(&self) -> Result<u64> {
        self.inner.count_usage_events().await
    }

    async fn purge_usage_events(&self, before: Timestamp) -> Result<u64> {
        self.inner.purge_usage_events(before).await
    }
}

/// Implements a capability by passing each listed method to `self.inner`.
macro_rules! pass_through {
    ($capability:ident { $(fn $method:ident(&self $(, $arg:ident: $type:ty)*) -> $output:ty;)* }) => {
        #[async_trait]
        impl $capability for FaultyStore {
            $(
                async fn $method(&self $(, $arg: $type)*) -> $output {
                    self.inner.$method($($arg),*).await
                }
            )*
        }
    };
}

pass_through!(StoreAdmin {
    fn migrate(&self) -> Result<usize>;
    fn schema_version(&self) -> Result<i64>;
    fn ping(&self) -> Result<()>;
    fn close(&self) -> ();
});

pass_through!(TokenStore {
    fn insert_token(&self, insert: &TokenInsert, audit: &AuditEvent) -> Result<TokenRecord>;
    fn token_by_hash(&self, hash: &TokenHash, now: Timestamp) -> Result<Option<TokenLookup>>;
    fn token(&self, id: &TokenId) -> Result<TokenRecord>;
    fn list_tokens(&self, filter: &TokenFilter, page: &PageRequest, now: Timestamp) -> Result<Page<TokenRecord>>;
    fn revoke_token(&self, id: &TokenId, reason: Option<&str>, audit: &AuditEvent) -> Result<TokenRecord>;
    fn rotate_token(&self, rotation: &SecretRotation, audit: &AuditEvent) -> Result<TokenRecord>;
    fn update_token(
        &self,
        id: &TokenId,
        patch: &TokenPatch,
        at: Timestamp,
        audit: &AuditEvent
    ) -> Result<TokenRecord>;
    fn touch_tokens(&self, uses: &[(TokenId, Timestamp)]) -> Result<()>;
    fn delete_inactive_tokens(&self, cutoff: Timestamp, audit: &AuditEvent) -> Result<u64>;
});

pass_through!(AuditStore {
    fn append_audit(&self, event: &AuditEvent) -> Result<AuditEntry>;
    fn list_audit(&self, filter: &AuditFilter, page: &PageRequest) -> Result<Page<AuditEntry>>;
    fn audit_chain(&self, after_sequence: i64, limit: u32) -> Result<Vec<AuditEntry>>;
});

pass_through!(UserStore {
    fn insert_user(&self, insert: &UserInsert, audit: &AuditEvent) -> Result<UserRecord>;
    fn user(&self, id: &UserId) -> Result<UserRecord>;
    fn user_credentials(&self, username: &Username) -> Result<Option<UserCredentials>>;
    fn user_by_email(&self, email: &Email) -> Result<Option<UserCredentials>>;
    fn list_users(&self, filter: &UserFilter, page: &PageRequest) -> Result<Page<UserRecord>>;
    fn set_user_status(&self, change: &StatusChange, audit: &AuditEvent) -> Result<StatusChanged>;
    fn set_user_role(&self, id: &UserId, role: Role, at: Timestamp, audit: &AuditEvent) -> Result<UserRecord>;
    fn set_user_email(&self, id: &UserId, email: &Email, at: Timestamp, audit: &AuditEvent) -> Result<UserRecord>;
    fn set_password(&self, change: &PasswordChange, audit: &AuditEvent) -> Result<UserRecord>;
    fn unlock_user(&self, id: &UserId, at: Timestamp, audit: &AuditEvent) -> Result<UserRecord>;
    fn record_login_failure(&self, failure: &LoginFailure, audit: &AuditEvent) -> Result<UserRecord>;
    fn rehash_password(
        &self,
        id: &UserId,
        old: &tollgate_types::PasswordHash,
        new: &tollgate_types::PasswordHash,
        audit: &AuditEvent
    ) -> Result<bool>;
});

pass_through!(AccountStore {
    fn insert_service_account(
        &self,
        insert: &ServiceAccountInsert,
        audit: &AuditEvent
    ) -> Result<ServiceAccountRecord>;
    fn service_account(&self, id: &ServiceAccountId) -> Result<ServiceAccountRecord>;
    fn list_service_accounts(&self, page: &PageRequest) -> Result<Page<ServiceAccountRecord>>;
    fn set_service_account_status(
        &self,
        id: &ServiceAccountId,
        status: AccountStatus,
        reason: Option<&str>,
        audit: &AuditEvent
    ) -> Result<AccountStatusChanged>;
    fn owner(&self, id: &OwnerId) -> Result<OwnerRecord>;
    fn owner_by_name(&self, name: &Username) -> Result<Option<OwnerRecord>>;
});

pass_through!(ProjectStore {
    fn insert_project(&self, insert: &ProjectInsert, audit: &AuditEvent) -> Result<ProjectRecord>;
    fn project(&self, id: &ProjectId) -> Result<ProjectRecord>;
    fn project_by_name(&self, name: &ProjectName) -> Result<Option<ProjectRecord>>;
    fn list_projects(&self, member: Option<&OwnerId>, page: &PageRequest) -> Result<Page<ProjectRecord>>;
    fn put_project_member(
        &self,
        project: &ProjectId,
        member: &OwnerId,
        role: ProjectRole,
        at: Timestamp,
        audit: &AuditEvent
    ) -> Result<ProjectMember>;
    fn remove_project_member(
        &self,
        project: &ProjectId,
        member: &OwnerId,
        audit: &AuditEvent
    ) -> Result<MemberRemoved>;
    fn project_members(&self, project: &ProjectId) -> Result<Vec<ProjectMember>>;
    fn project_role(&self, project: &ProjectId, member: &OwnerId) -> Result<Option<ProjectRole>>;
});

pass_through!(SessionStore {
    fn start_session(&self, start: &SessionStart, audit: &AuditEvent) -> Result<SessionRecord>;
    fn session(&self, id: &SessionId) -> Result<SessionRecord>;
    fn session_with_user(&self, id: &SessionId) -> Result<Option<SessionWithUser>>;
    fn refresh_token(&self, hash: &TokenHash) -> Result<Option<RefreshLookup>>;
    fn rotate_refresh(
        &self,
        rotation: &RefreshRotation,
        rotated: &AuditEvent,
        reused: &AuditEvent
    ) -> Result<RefreshOutcome>;
    fn revoke_session(&self, id: &SessionId, reason: &str, audit: &AuditEvent) -> Result<SessionRecord>;
    fn list_sessions(&self, user_id: &UserId, page: &PageRequest) -> Result<Page<SessionRecord>>;
    fn delete_ended_sessions(&self, cutoff: Timestamp, audit: &AuditEvent) -> Result<u64>;
});

pass_through!(LimitStore {
    fn put_limit(&self, spec: &LimitSpec, at: Timestamp, audit: &AuditEvent) -> Result<LimitRecord>;
    fn delete_limit(&self, key: &LimitKey, audit: &AuditEvent) -> Result<LimitRecord>;
    fn limits(&self, subject: Option<&LimitSubject>) -> Result<Vec<LimitRecord>>;
    fn purge_counters(&self, before: Timestamp) -> Result<u64>;
    fn put_rate_limit(
        &self,
        token_id: &TokenId,
        spec: &RateLimitSpec,
        at: Timestamp,
        audit: &AuditEvent
    ) -> Result<RateLimitRecord>;
    fn delete_rate_limit(&self, token_id: &TokenId, audit: &AuditEvent) -> Result<RateLimitRecord>;
    fn rate_limits(&self) -> Result<Vec<RateLimitRecord>>;
});

pass_through!(PriceStore {
    fn put_price(&self, price: &ModelPrice, at: Timestamp, audit: &AuditEvent) -> Result<PriceRecord>;
    fn delete_price(&self, provider: &ProviderName, model: &ModelName, audit: &AuditEvent) -> Result<PriceRecord>;
    fn prices(&self) -> Result<Vec<PriceRecord>>;
});

pass_through!(QuotaStore {
    fn register_holder(&self, holder: &HolderId, at: Timestamp) -> Result<()>;
    fn lease(&self, holder: &HolderId, request: &LeaseRequest, at: Timestamp) -> Result<LeaseGrant>;
    fn report_leases(&self, holder: &HolderId, uses: &[LeaseUse], at: Timestamp) -> Result<()>;
    fn return_leases(&self, holder: &HolderId, returns: &[LeaseReturn], at: Timestamp) -> Result<()>;
    fn stranded_units(&self, live_since: Timestamp, now: Timestamp) -> Result<u64>;
    fn lease_summaries(
        &self,
        keys: &[CounterKey],
        except: &HolderId,
        live_since: Timestamp
    ) -> Result<Vec<LeaseSummary>>;
    fn reserve(&self, insert: &ReservationInsert) -> Result<ReserveOutcome>;
    fn settle_reservation(&self, id: &ReservationId, usage: &EventToRecord, at: Timestamp) -> Result<Settled>;
    fn release_reservation(&self, id: &ReservationId, at: Timestamp) -> Result<ReservationRecord>;
    fn expire_reservations(&self, now: Timestamp) -> Result<u64>;
    fn reservation(&self, id: &ReservationId) -> Result<ReservationRecord>;
    fn counter_values(&self, keys: &[CounterKey]) -> Result<Vec<i64>>;
    fn purge_quota_state(&self, before: Timestamp) -> Result<u64>;
});

pass_through!(AgentStore {
    fn insert_agent(&self, insert: &AgentInsert, audit: &AuditEvent) -> Result<AgentRecord>;
    fn agent(&self, id: &AgentId) -> Result<AgentRecord>;
    fn list_agents(&self, filter: &AgentFilter, page: &PageRequest) -> Result<Page<AgentRecord>>;
    fn update_agent(&self, id: &AgentId, patch: &AgentPatch, at: Timestamp, audit: &AuditEvent) -> Result<AgentRecord>;
    fn set_agent_status(
        &self,
        id: &AgentId,
        status: AgentStatus,
        at: Timestamp,
        audit: &AuditEvent
    ) -> Result<AgentRecord>;
    fn delete_agent(&self, id: &AgentId, at: Timestamp, audit: &AuditEvent) -> Result<Vec<TokenId>>;
});

pass_through!(ProviderKeyStore {
    fn insert_provider_key(&self, insert: &ProviderKeyInsert, audit: &AuditEvent) -> Result<ProviderKeyRecord>;
    fn provider_key(&self, id: &ProviderKeyId) -> Result<ProviderKeyRecord>;
    fn list_provider_keys(&self, filter: &ProviderKeyFilter, page: &PageRequest) -> Result<Page<ProviderKeyRecord>>;
    fn update_provider_key(
        &self,
        id: &ProviderKeyId,
        patch: &ProviderKeyPatch,
        secret: Option<&NewSecret>,
        at: Timestamp,
        audit: &AuditEvent
    ) -> Result<ProviderKeyRecord>;
    fn delete_provider_key(&self, id: &ProviderKeyId, at: Timestamp, audit: &AuditEvent) -> Result<Vec<AgentId>>;
    fn delivery(&self, agent: &AgentId) -> Result<Option<Delivery>>;
    fn sealed_provider_keys(&self) -> Result<Vec<(ProviderKeyId, SealedKey)>>;
    fn rewrap_provider_keys(&self, rewraps: &[Rewrap], audit: &AuditEvent) -> Result<u64>;
    fn provider_keys_by_master_key(&self) -> Result<Vec<(u32, u64)>>;
});

pass_through!(BudgetStore {
    fn budget_account(&self, agent: &AgentId) -> Result<BudgetAccount>;
    fn set_allocation(&self, change: &AllocationChange, audit: &AuditEvent) -> Result<BudgetAccount>;
    fn open_lease(&self, open: &LeaseOpen, audits: &[AuditEvent]) -> Result<LeaseOpened>;
    fn report_lease(&self, report: &LeaseReport, audit: &AuditEvent) -> Result<Reported>;
    fn close_lease(
        &self,
        lease: &LeaseId,
        agent: Option<&AgentId>,
        how: LeaseClose,
        at: Timestamp,
        audit: &AuditEvent
    ) -> Result<(LeaseRecord, i64)>;
    fn expire_leases(&self, now: Timestamp) -> Result<u64>;
    fn budget_lease(&self, id: &LeaseId, now: Timestamp) -> Result<LeaseRecord>;
    fn list_leases(&self, filter: &LeaseFilter, page: &PageRequest) -> Result<Page<LeaseRecord>>;
    fn ledger(&self, agent: &AgentId, allocations_only: bool, page: &PageRequest) -> Result<Page<LedgerEntry>>;
    fn insert_budget_request(&self, insert: &BudgetRequestInsert, audit: &AuditEvent) -> Result<BudgetRequestRecord>;
    fn budget_request(&self, id: &BudgetRequestId) -> Result<BudgetRequestRecord>;
    fn list_budget_requests(
        &self,
        filter: &BudgetRequestFilter,
        page: &PageRequest
    ) -> Result<Page<BudgetRequestRecord>>;
    fn decide_budget_request(&self, decision: &BudgetDecision, audit: &AuditEvent) -> Result<BudgetRequestRecord>;
    fn check_budgets(&self) -> Result<Option<String>>;
});

pass_through!(TraceStore {
    fn insert_trace(&self, insert: &crate::TraceInsert) -> Result<tollgate_types::TraceRecord>;
    fn trace(&self, id: &tollgate_types::TraceId) -> Result<tollgate_types::TraceRecord>;
    fn list_traces(&self, filter: &crate::TraceFilter, page: &PageRequest) -> Result<Page<tollgate_types::TraceRecord>>;
    fn purge_traces(&self, before: Timestamp, max_payload_bytes: u64) -> Result<crate::TracesPurged>;
    fn trace_payload_bytes(&self) -> Result<u64>;
});

pass_through!(LoginThrottleStore {
    fn take_login_slot(&self, client: &str, now: Timestamp, window: std::time::Duration, max: u32) -> Result<LoginSlot>;
    fn return_login_slot(&self, client: &str, window_started: Timestamp) -> Result<()>;
    fn purge_login_slots(&self, before: Timestamp) -> Result<u64>;
});

pass_through!(DumpStore {
    fn dump_schema(&self) -> Result<Vec<TableSchema>>;
    fn dump_rows(
        &self,
        table: &str,
        after: Option<&DumpCursor>,
        limit: u32
    ) -> Result<(Vec<DumpRow>, Option<DumpCursor>)>;
    fn load_rows(&self, table: &str, rows: &[DumpRow]) -> Result<u64>;
});
