//! What every handler shares: the facade's managers, the server settings and the metrics registry.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tollgate::{
    AgentService, AuditLog, ChangeFollower, FollowSettings, HubSettings, IpAllowList, LiveHub, LiveTail, Metering,
    PageRequest, ReceiptSigner, TailSettings, TokenManager, TraceService, TraceSettings, UserService, ValidationError,
};

use crate::metrics::Metrics;

/// Proxies whose `X-Forwarded-For` is believed. Empty (the default) believes nobody: the client
/// address is the socket peer.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(IpAllowList);

impl TrustedProxies {
    /// Parses CIDR ranges or addresses, e.g. `["10.0.0.0/8", "127.0.0.1"]`.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, ValidationError> {
        IpAllowList::parse(entries).map(Self).map_err(|error| ValidationError::new("trusted_proxies", error.reason))
    }

    /// Whether `ip` is a trusted proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        !self.0.is_unrestricted() && self.0.allows(Some(ip))
    }

    /// Whether no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.0.is_unrestricted()
    }
}

/// How the server treats requests. `Default` gives the documented defaults.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerSettings {
    /// How long a handler may run before the request is answered 503 `timeout` (default 10 s).
    pub request_timeout: Duration,
    /// The largest request body accepted, in bytes (default 64 KiB).
    pub body_limit: usize,
    /// Proxies whose `X-Forwarded-For` header names the client (default: none).
    pub trusted_proxies: TrustedProxies,
    /// The page size of lists when the client asks for none (default 50).
    pub default_page_size: u32,
    /// The largest page a client may ask for (default and at most 1000).
    pub max_page_size: u32,
    /// The live event hub's buffers and per-principal stream cap.
    pub live: HubSettings,
    /// How often an idle event stream gets a heartbeat (default 15 s).
    pub heartbeat: Duration,
    /// What request traces keep (payload capture is off by default).
    pub traces: TraceSettings,
    /// How long a session that ended (signed out, revoked or expired) is kept, for the user's list
    /// of sessions, before `serve`'s housekeeping deletes it (default 30 days).
    pub session_retention: Duration,
    /// Signs a usage receipt into every metered response (settle, report, usage) when set
    /// (default: none, and responses carry no `receipt`).
    pub receipts: Option<ReceiptSigner>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(10),
            body_limit: 64 * 1024,
            trusted_proxies: TrustedProxies::default(),
            default_page_size: PageRequest::DEFAULT_LIMIT,
            max_page_size: PageRequest::MAX_LIMIT,
            live: HubSettings::default(),
            heartbeat: Duration::from_secs(15),
            traces: TraceSettings::default(),
            session_retention: Duration::from_secs(30 * 86_400),
            receipts: None,
        }
    }
}

/// The state behind every route: cheap to clone (one `Arc`).
///
/// ```no_run
/// # async fn example() -> Result<(), tollgate::Error> {
/// let store = tollgate::open("sqlite://tollgate.db").await?;
/// let key = tollgate::load_or_create_key_file("tollgate.db.key".as_ref())?;
/// let metering = tollgate::Metering::builder(store.clone()).start().await?;
/// let tokens = tollgate::TokenManager::builder(store, key.hasher()?).metering(metering.clone()).build();
/// let jwt_key = tollgate::load_or_create_key_file("tollgate.db.jwt.key".as_ref())?;
/// let users = tollgate::UserService::builder(&tokens, tollgate::JwtKeys::from_key_file(&jwt_key)?, key.hasher()?)
///     .build()?;
/// let router = tollgate_server::app(tollgate_server::AppState::new(tokens, users, metering));
/// # drop(router); Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    tokens: TokenManager,
    users: UserService,
    audit: AuditLog,
    metering: Metering,
    agents: Option<AgentService>,
    settings: ServerSettings,
    metrics: Metrics,
    live: LiveHub,
    traces: TraceService,
    /// The dashboard's session renewals in flight.
    dashboard_renewals: crate::dashboard::Renewals,
    /// Valid-verify bodies, serialized once per token record.
    verify_bodies: crate::resources::VerifyBodies,
}

impl AppState {
    /// State over a token manager, the user service built beside it (`UserService::builder(&tokens, …)`)
    /// and the metering the token manager enforces (`TokenManager::builder(…).metering(…)`), all over
    /// one store, with default settings. The audit log is read from the same store.
    pub fn new(tokens: TokenManager, users: UserService, metering: Metering) -> Self {
        Self::with_settings(tokens, users, metering, ServerSettings::default())
    }

    /// State with explicit settings.
    pub fn with_settings(
        tokens: TokenManager,
        users: UserService,
        metering: Metering,
        settings: ServerSettings,
    ) -> Self {
        Self::build(tokens, users, metering, None, settings)
    }

    /// State that also serves agents, their credentials and the provider-key vault
    /// (`AgentService::builder(&tokens, …)`); without it those routes answer 503.
    pub fn with_agents(
        tokens: TokenManager,
        users: UserService,
        metering: Metering,
        agents: AgentService,
        settings: ServerSettings,
    ) -> Self {
        Self::build(tokens, users, metering, Some(agents), settings)
    }

    fn build(
        tokens: TokenManager,
        users: UserService,
        metering: Metering,
        agents: Option<AgentService>,
        mut settings: ServerSettings,
    ) -> Self {
        settings.max_page_size = settings.max_page_size.clamp(1, PageRequest::MAX_LIMIT);
        settings.default_page_size = settings.default_page_size.clamp(1, settings.max_page_size);
        let audit = AuditLog::new(Arc::clone(users.store()));
        let live = LiveHub::new(settings.live, tokens.clock().now());
        let traces = TraceService::new(&tokens, settings.traces);
        let metrics = Metrics::default();
        let dashboard_renewals = crate::dashboard::Renewals::default();
        let inner = Inner {
            tokens,
            users,
            audit,
            metering,
            agents,
            settings,
            metrics,
            live,
            traces,
            dashboard_renewals,
            verify_bodies: crate::resources::VerifyBodies::default(),
        };
        Self { inner: Arc::new(inner) }
    }

    /// The bodies of valid verifies, kept per token record.
    pub(crate) fn verify_bodies(&self) -> &crate::resources::VerifyBodies {
        &self.inner.verify_bodies
    }

    /// The dashboard's session renewals (one per refresh token at a time).
    pub(crate) fn dashboard_renewals(&self) -> &crate::dashboard::Renewals {
        &self.inner.dashboard_renewals
    }

    /// Request traces.
    pub fn traces(&self) -> &TraceService {
        &self.inner.traces
    }

    /// The live event hub behind `GET /v1/events` and `/v1/events/ws`.
    pub fn live(&self) -> &LiveHub {
        &self.inner.live
    }

    /// Starts feeding the hub from the audit log's tail and the metering state; stop the tail
    /// (or drop it) at shutdown, after [`LiveHub::close`].
    pub async fn start_live_tail(&self, settings: TailSettings) -> tollgate::Result<LiveTail> {
        self.start_relayed_live_tail(settings, None).await
    }

    /// [`AppState::start_live_tail`], also relaying this node's metering samples to other nodes
    /// (and theirs into this hub) through `relay`.
    pub async fn start_relayed_live_tail(
        &self,
        settings: TailSettings,
        relay: Option<tollgate::LiveRelay>,
    ) -> tollgate::Result<LiveTail> {
        let store = Arc::clone(self.inner.users.store());
        let clock = Arc::clone(self.inner.tokens.clock());
        let metering = Some(self.inner.metering.clone());
        LiveTail::start(self.inner.live.clone(), store, metering, clock, settings, relay).await
    }

    /// Starts applying changes other processes and nodes make (revocations, suspensions, limits) to
    /// this process's caches, within `settings.bound` (see [`ChangeFollower`]).
    pub async fn start_change_follower(&self, settings: FollowSettings) -> tollgate::Result<ChangeFollower> {
        let store = Arc::clone(self.inner.users.store());
        ChangeFollower::start(store, self.inner.tokens.clone(), Some(self.inner.metering.clone()), settings).await
    }

    /// The agent service, when this state serves agents.
    pub fn agents(&self) -> Option<&AgentService> {
        self.inner.agents.as_ref()
    }

    /// The user service (users, logins, sessions).
    pub fn users(&self) -> &UserService {
        &self.inner.users
    }

    /// Usage recording, quotas, prices and analytics.
    pub fn metering(&self) -> &Metering {
        &self.inner.metering
    }

    /// The audit log.
    pub fn audit(&self) -> &AuditLog {
        &self.inner.audit
    }

    /// The token manager.
    pub fn tokens(&self) -> &TokenManager {
        &self.inner.tokens
    }

    /// The settings in force.
    pub fn settings(&self) -> &ServerSettings {
        &self.inner.settings
    }

    pub(crate) fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A state over `store` with small keys and the default facade settings.
    pub(crate) async fn state_over(store: std::sync::Arc<dyn tollgate::Store>, settings: ServerSettings) -> AppState {
        let metering = tollgate::Metering::builder(store.clone()).start().await.unwrap();
        let hasher = tollgate::TokenHasher::new(tollgate::KeyId(1), &[1u8; 32]).unwrap();
        let tokens = tollgate::TokenManager::builder(store, hasher).metering(metering.clone()).build();
        let keys = tollgate::JwtKeys::new("k1", &[2u8; 32]).unwrap();
        let hasher = tollgate::TokenHasher::new(tollgate::KeyId(1), &[1u8; 32]).unwrap();
        let users = tollgate::UserService::builder(&tokens, keys, hasher).build().unwrap();
        AppState::with_settings(tokens, users, metering, settings)
    }

    #[test]
    fn no_proxy_is_trusted_by_default() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(!TrustedProxies::default().contains(ip));
        let proxies = TrustedProxies::parse(&["127.0.0.0/8"]).unwrap();
        assert!(proxies.contains(ip));
        assert!(!proxies.contains("10.0.0.1".parse().unwrap()));
        assert_eq!(TrustedProxies::parse(&["nope"]).unwrap_err().field, "trusted_proxies");
    }
}
