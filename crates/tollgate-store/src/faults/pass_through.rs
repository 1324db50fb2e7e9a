//! The capabilities `FaultyStore` leaves alone: each method passed to the wrapped store unchanged.

use async_trait::async_trait;
use tollgate_types::{
    AccountStatus, AgentId, AgentPatch, AgentRecord, AgentStatus, AuditEntry, AuditEvent, BudgetAccount,
    BudgetRequestId, BudgetRequestRecord, CounterKey, Email, HolderId, LeaseId, LeaseRecord, LedgerEntry, LimitKey,
    LimitRecord, LimitSpec, LimitSubject, ModelName, ModelPrice, OwnerId, OwnerRecord, ProjectId, ProjectMember,
    ProjectName, ProjectRecord, ProjectRole, ProviderKeyId, ProviderKeyPatch, ProviderKeyRecord, ProviderName,
    RateLimitSpec, ReservationId, Role, ServiceAccountId, ServiceAccountRecord, SessionId, SessionRecord, Timestamp,
    TokenHash, TokenId, TokenPatch, TokenRecord, UserId, UserRecord, Username,
};

use crate::throttle::{LoginSlot, LoginThrottleStore};
use crate::traces::TraceStore;
use crate::{
    AccountStatusChanged, AccountStore, AgentFilter, AgentInsert, AgentStore, AllocationChange, AuditFilter,
    AuditStore, BudgetDecision, BudgetRequestFilter, BudgetRequestInsert, BudgetStore, Delivery, DumpCursor, DumpRow,
    DumpStore, EventToRecord, LeaseClose, LeaseFilter, LeaseGrant, LeaseOpen, LeaseOpened, LeaseReport, LeaseRequest,
    LeaseReturn, LeaseSummary, LeaseUse, LimitStore, LoginFailure, MemberRemoved, NewSecret, Page, PageRequest,
    PasswordChange, PriceRecord, PriceStore, ProjectInsert, ProjectStore, ProviderKeyFilter, ProviderKeyInsert,
    ProviderKeyStore, QuotaStore, RateLimitRecord, RefreshLookup, RefreshOutcome, RefreshRotation, Reported,
    ReservationInsert, ReservationRecord, ReserveOutcome, Result, Rewrap, SealedKey, SecretRotation,
    ServiceAccountInsert, SessionStart, SessionStore, SessionWithUser, Settled, StatusChange, StatusChanged,
    StoreAdmin, TableSchema, TokenFilter, TokenInsert, TokenLookup, TokenStore, UserCredentials, UserFilter,
    UserInsert, UserStore,
};

use super::FaultyStore;

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
    fn put_limits(&self, changes: &[(LimitSpec, AuditEvent)], at: Timestamp) -> Result<Vec<LimitRecord>>;
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
