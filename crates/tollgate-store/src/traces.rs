//! Request traces: stored one row each, attributed to their token's owner, project and agent as the
//! token is when the trace is stored, listed newest first, purged by age and by total payload size.

use async_trait::async_trait;
use tollgate_types::{AgentId, ModelName, NewTrace, OwnerId, ProviderName, Timestamp, TraceId, TraceRecord};

use crate::{Page, PageRequest, Result};

/// A trace to store: validated, its payloads already cut to budget and redacted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceInsert {
    /// Its id.
    pub id: TraceId,
    /// The trace (its `request` and `response` are stored as given).
    pub trace: NewTrace,
    /// Whether a payload was cut or dropped.
    pub truncated: bool,
}

impl TraceInsert {
    /// Bytes of payload the row holds.
    pub fn payload_bytes(&self) -> u64 {
        let length = |payload: &Option<String>| payload.as_ref().map_or(0, String::len) as u64;
        length(&self.trace.request) + length(&self.trace.response)
    }
}

/// Trace filters; `None` fields do not filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceFilter {
    /// Token equals.
    pub token_id: Option<tollgate_types::TokenId>,
    /// Owner (as attributed) equals.
    pub owner: Option<OwnerId>,
    /// Agent equals.
    pub agent: Option<AgentId>,
    /// Provider equals.
    pub provider: Option<ProviderName>,
    /// Model equals.
    pub model: Option<ModelName>,
    /// Status at least (e.g. 400 for failures).
    pub min_status: Option<u16>,
    /// Status at most.
    pub max_status: Option<u16>,
    /// At or after.
    pub since: Option<Timestamp>,
    /// Before.
    pub until: Option<Timestamp>,
}

/// What a purge removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TracesPurged {
    /// Traces older than the cutoff.
    pub by_age: u64,
    /// The oldest of the rest, until the total payload fit.
    pub by_size: u64,
}

/// Trace storage.
#[async_trait]
pub trait TraceStore: Send + Sync {
    /// Stores a trace, attributing it to its token's owner, project and agent as stored now.
    /// `NotFound` (`token`) for a token that does not exist.
    async fn insert_trace(&self, insert: &TraceInsert) -> Result<TraceRecord>;

    /// A trace by id; `NotFound` (`trace`).
    async fn trace(&self, id: &TraceId) -> Result<TraceRecord>;

    /// Traces matching `filter`, newest first (by id). The cursor is an id.
    async fn list_traces(&self, filter: &TraceFilter, page: &PageRequest) -> Result<Page<TraceRecord>>;

    /// Deletes traces that happened before `before`, then the oldest others until their payloads
    /// total at most `max_payload_bytes`.
    async fn purge_traces(&self, before: Timestamp, max_payload_bytes: u64) -> Result<TracesPurged>;

    /// Bytes of payload stored.
    async fn trace_payload_bytes(&self) -> Result<u64>;
}
