//! Request traces: what a gateway saw of one call through a token (endpoint, provider, model,
//! status, latency, tokens, cost) and, when capture is on, its request and response bodies —
//! redacted by pattern (`redact.rs`), then cut to a byte budget per trace and per day — kept for a
//! retention period and up to a total size.

mod redact;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tollgate_store::{Page, PageRequest, Store, TraceFilter, TraceInsert, TracesPurged};
use tollgate_types::{Clock, Principal, TraceId, TraceInput, TraceRecord, Window};

pub use redact::{REDACTED, redact};

use crate::agents::hidden;
use crate::authz::{Operation, UsageScope, authorize};
use crate::{Error, Result, TokenManager};

/// What traces keep. `Default` gives the documented defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceSettings {
    /// Whether request and response bodies are kept (default off: only the call's figures).
    pub capture_payloads: bool,
    /// The most payload bytes one trace keeps, request and response together (default 8 KiB).
    pub max_payload_bytes: usize,
    /// The most payload bytes this process keeps per UTC day (default 256 MiB); past it, traces
    /// keep their figures and drop their bodies.
    pub max_payload_bytes_per_day: u64,
    /// How long traces are kept (default 7 days).
    pub retention: Duration,
    /// The most payload bytes kept in all (default 1 GiB); the oldest traces go first.
    pub max_total_payload_bytes: u64,
}

impl Default for TraceSettings {
    fn default() -> Self {
        Self {
            capture_payloads: false,
            max_payload_bytes: 8 * 1024,
            max_payload_bytes_per_day: 256 << 20,
            retention: Duration::from_secs(7 * 86_400),
            max_total_payload_bytes: 1 << 30,
        }
    }
}

/// Recording, reading and purging traces. Cheap to clone.
#[derive(Debug, Clone)]
pub struct TraceService {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    settings: TraceSettings,
    /// The UTC day (its start, in microseconds) and the payload bytes kept on it.
    today: Arc<Mutex<(i64, u64)>>,
}

impl TraceService {
    /// Traces over the token manager's store and clock.
    pub fn new(tokens: &TokenManager, settings: TraceSettings) -> Self {
        Self {
            store: Arc::clone(tokens.store()),
            clock: Arc::clone(tokens.clock()),
            settings,
            today: Arc::new(Mutex::new((0, 0))),
        }
    }

    /// The settings.
    pub fn settings(&self) -> &TraceSettings {
        &self.settings
    }

    /// Records a trace of a call through `input.token_id`, for a principal that may record usage
    /// for that token (another owner's token is `NotFound`, like one that does not exist).
    pub async fn record(&self, principal: &Principal, input: &TraceInput) -> Result<TraceRecord> {
        let now = self.clock.now();
        let mut trace = input.parse(now)?;
        let token = self.store.token(&trace.token_id).await.map_err(hidden("token"))?;
        authorize(principal, Operation::ReadTokens { owner: Some(token.owner) })
            .map_err(|_| Error::NotFound { entity: "token" })?;
        authorize(principal, Operation::RecordUsage { owner: token.owner })?;
        let mut truncated = false;
        if self.settings.capture_payloads {
            // Redacted before they are cut, so no secret is kept in part.
            let request = trace.request.take().map(|text| redact(&text));
            let response = trace.response.take().map(|text| redact(&text));
            let mut today = self.today.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let day = Window::Day.start_of(now).unix_micros();
            if today.0 != day {
                *today = (day, 0);
            }
            let left_today = self.settings.max_payload_bytes_per_day.saturating_sub(today.1);
            let mut budget = self.settings.max_payload_bytes.min(usize::try_from(left_today).unwrap_or(usize::MAX));
            for (payload, text) in [(&mut trace.request, request), (&mut trace.response, response)] {
                let Some(text) = text else { continue };
                let (kept, cut) = redact::cut(&text, budget);
                truncated |= cut;
                budget -= kept.len();
                today.1 = today.1.saturating_add(kept.len() as u64);
                *payload = (!kept.is_empty() || !cut).then(|| kept.to_owned());
            }
        } else {
            trace.request = None;
            trace.response = None;
        }
        let insert = TraceInsert { id: TraceId::generate(), trace, truncated };
        self.store.insert_trace(&insert).await.map_err(hidden("token"))
    }

    /// A trace the principal may read (its own, or any for admins); another's is `NotFound`.
    pub async fn trace(&self, principal: &Principal, id: &TraceId) -> Result<TraceRecord> {
        let trace = self.store.trace(id).await.map_err(hidden("trace"))?;
        let allowed = match trace.owner {
            Some(owner) => authorize(principal, Operation::ReadUsage { scope: UsageScope::Owner(owner) }),
            None => authorize(principal, Operation::ReadUsage { scope: UsageScope::Everything }),
        };
        allowed.map_err(|_| Error::NotFound { entity: "trace" })?;
        Ok(trace)
    }

    /// Traces matching `filter`, newest first: every trace for admins, else the principal's own.
    pub async fn list(
        &self,
        principal: &Principal,
        filter: &TraceFilter,
        page: &PageRequest,
    ) -> Result<Page<TraceRecord>> {
        let mut filter = filter.clone();
        if authorize(principal, Operation::ReadUsage { scope: UsageScope::Everything }).is_err() {
            let own = principal.owner_id().ok_or_else(|| Error::Forbidden("reading traces".to_owned()))?;
            authorize(principal, Operation::ReadUsage { scope: UsageScope::Owner(own) })?;
            filter.owner = Some(own);
        }
        Ok(self.store.list_traces(&filter, page).await?)
    }

    /// Deletes traces past the retention period, then the oldest until the payloads fit the total.
    pub async fn purge(&self) -> Result<TracesPurged> {
        let before = self.clock.now().saturating_sub(self.settings.retention);
        Ok(self.store.purge_traces(before, self.settings.max_total_payload_bytes).await?)
    }
}
