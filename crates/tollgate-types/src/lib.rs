//! Domain types for tollgate: pure values with their invariants, no I/O.
//!
//! Everything that crosses a crate boundary is parsed into one of these types at the edge
//! (CLI flags, HTTP bodies, database rows) and trusted afterwards.

mod agent;
mod analytics;
mod audit;
mod base62;
mod budget;
mod clock;
mod duration;
mod error;
mod estimate;
mod id;
mod limits;
mod money;
mod owner;
mod password;
mod period;
mod permission;
mod price;
mod principal;
mod provider_key;
mod quota;
mod random_keys;
mod scan;
mod session;
mod text;
mod token;
mod token_hash;
mod token_record;
mod trace;
mod usage;
mod user;
mod verify;

pub use agent::{AgentPatch, AgentRecord, AgentStatus, Metadata, NewAgent, ProviderList};
pub use analytics::{
    AnalyticsEvent, AnalyticsEventInput, AnalyticsEventType, MAX_AGENT_EVENT_ID_CHARS, MAX_ERROR_CODE_CHARS,
    MAX_ERROR_MESSAGE_CHARS,
};
pub use audit::{AUDIT_GENESIS_HASH, Actor, AuditEntry, AuditEvent};
pub use budget::{BudgetAccount, BudgetRequestRecord, LeaseRecord, LeaseState, LedgerEntry, LedgerKind, RequestState};
pub use clock::{Clock, ManualClock, SystemClock, Timestamp};
pub use duration::parse_duration;
pub use error::ValidationError;
pub use estimate::{Estimate, EstimateInput};
pub use id::{
    AgentId, AuditId, BudgetRequestId, HolderId, LeaseId, ProjectId, ProviderKeyId, ReservationId, ServiceAccountId,
    SessionId, TokenId, TraceId, UserId,
};
pub use limits::{IpAllowList, ToolList};
pub use money::Microdollars;
pub use owner::{
    AccountStatus, NewProject, NewServiceAccount, OwnerId, OwnerRecord, ProjectMember, ProjectRecord, ProjectRole,
    ServiceAccountRecord,
};
pub use password::Password;
pub use period::Period;
pub use permission::{Permission, Scope};
pub use price::ModelPrice;
pub use principal::{Principal, Role};
pub use provider_key::{
    BaseUrl, KNOWN_PROVIDERS, NewProviderKey, ProviderKeyPatch, ProviderKeyRecord, ProviderSecret, check_base_url,
};
pub use quota::{CounterKey, LimitKey, LimitRecord, LimitSpec, LimitSubject, Metric, RateLimitSpec, Window};
pub use random_keys::{RandomKeyHasher, RandomKeys};
pub use scan::{Found, SecretScanner};
pub use session::SessionRecord;
pub use text::{AgentName, Description, OwnerName, ProjectName, TokenName};
pub use token::{PresentedSecret, TokenFormatError, TokenPrefix, TokenSecret};
pub use token_hash::{KeyId, TokenHash, TokenHasher};
pub use token_record::{AgentBinding, Imposed, NewToken, TokenPatch, TokenRecord, TokenStatus};
pub use trace::{MAX_TRACE_PAYLOAD_BYTES, NewTrace, TraceInput, TraceRecord};
pub use usage::{
    Endpoint, EventId, LATENCY_BUCKET_BOUNDS_MS, LATENCY_BUCKETS, LatencyHistogram, MAX_CLOCK_SKEW, MAX_COST_PER_EVENT,
    MAX_LATENCY_MS, MAX_REQUESTS_PER_EVENT, MAX_TOKENS_PER_EVENT, ModelName, Outcome, ProviderName, UsageEvent,
    UsageInput, parse_count,
};
pub use user::{Email, NewUser, PasswordHash, UserRecord, UserStatus, Username};
pub use verify::{Refusal, RefusalCode, VerifyRequest};
