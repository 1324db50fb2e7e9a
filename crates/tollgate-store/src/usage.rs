//! Usage storage: raw events, hourly rollups per token × model, and summaries read from rollups.

use std::collections::HashMap;

use async_trait::async_trait;
use serde::Serialize;
use tollgate_types::{
    AgentId, CounterKey, LatencyHistogram, LimitKey, Microdollars, ModelName, Outcome, OwnerId, ProjectId,
    ProviderName, Timestamp, TokenId, UsageEvent, Window,
};

use crate::{Page, PageRequest, Result, StoreError};

/// A change to a quota counter, written with a usage batch (the write-behind path of the quota engine).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterDelta {
    /// Which counter.
    pub key: CounterKey,
    /// How much to add (negative when a reservation is returned).
    pub delta: i64,
}

/// Requests a shadow-mode limit would have refused since the last batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShadowHit {
    /// Which limit.
    pub limit: LimitKey,
    /// How many requests it would have refused.
    pub hits: u64,
    /// When it last would have refused one.
    pub last_at: Timestamp,
}

/// An event to record, with what it adds to the quota counters that govern its token. The
/// counters change only when the event is new: a repeat of an `event_id` adds nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventToRecord {
    /// The event, already priced (an event without a cost is stored as costing nothing).
    pub event: UsageEvent,
    /// The tokens and cost it adds to each counter (a counter row that does not exist yet is
    /// created, seeded as [`QuotaStore::counter_values`](crate::QuotaStore::counter_values) reads it).
    pub counters: Vec<CounterDelta>,
    /// The agent whose event this is (a budget report or an analytics event): its `event_id` is
    /// then unique per agent, across the agent's credentials, instead of per token.
    pub agent: Option<AgentId>,
}

impl EventToRecord {
    /// The 16 bytes within which the event's `event_id` is unique: its agent's id, else its token's.
    pub fn idempotency_scope(&self) -> &[u8; 16] {
        match &self.agent {
            Some(agent) => agent.as_bytes(),
            None => self.event.token_id.as_bytes(),
        }
    }
}

/// What became of one event of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordOutcome {
    /// Stored and counted.
    Recorded,
    /// Its `event_id` was already stored for its token: nothing was stored or counted again.
    Duplicate,
}

/// What one batch write does in one transaction.
#[derive(Debug, Clone, Copy, Default)]
pub struct UsageBatch<'a> {
    /// Events with their counter changes.
    pub events: &'a [EventToRecord],
    /// Counter changes that apply whatever the events (shadow-mode request counts).
    pub counters: &'a [CounterDelta],
    /// Shadow-mode refusals to add to their limits' tallies (unknown limits are ignored).
    pub shadow_hits: &'a [ShadowHit],
}

/// What a batch write did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchWritten {
    /// One outcome per event, in order.
    pub outcomes: Vec<RecordOutcome>,
    /// Every counter the batch changed (deltas to one counter merged), with its total afterwards,
    /// in no particular order.
    pub totals: Vec<(CounterKey, i64)>,
}

/// An event that could not be stored with its batch, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The event.
    pub event: UsageEvent,
    /// Why it could not be stored (for operators; never shown to the client that sent it).
    pub reason: String,
    /// When it failed.
    pub failed_at: Timestamp,
}

/// A stored dead letter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeadLetterRecord {
    /// Its number.
    pub id: i64,
    /// The event's token, as sent.
    pub token_id: String,
    /// The event as it was to be stored.
    pub event: serde_json::Value,
    /// Why it failed.
    pub reason: String,
    /// When.
    pub failed_at: Timestamp,
}

/// Sums over usage. Latencies are kept as a histogram so percentiles can be read from rollups.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct UsageTotals {
    /// Events recorded.
    pub events: u64,
    /// Requests.
    pub requests: u64,
    /// Input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Cost (microdollars; `cost_micros` in JSON).
    #[serde(rename = "cost_micros")]
    pub cost: Microdollars,
    /// Events whose outcome was an error.
    pub errors: u64,
    /// Latencies of the events that reported one.
    pub latency: LatencyHistogram,
}

impl UsageTotals {
    /// Adds one event (its cost as given; `None` counts as zero). Every sum saturates.
    pub fn add_event(&mut self, event: &UsageEvent) {
        self.events = self.events.saturating_add(1);
        self.requests = self.requests.saturating_add(u64::from(event.requests));
        self.input_tokens = self.input_tokens.saturating_add(u64::from(event.input_tokens));
        self.output_tokens = self.output_tokens.saturating_add(u64::from(event.output_tokens));
        self.cost = self.cost.saturating_add(event.cost.unwrap_or(Microdollars::ZERO));
        if event.outcome == Outcome::Error {
            self.errors = self.errors.saturating_add(1);
        }
        if let Some(latency) = event.latency_ms {
            self.latency.record(latency);
        }
    }

    /// Adds other totals. Every sum saturates.
    pub fn merge(&mut self, other: &Self) {
        self.events = self.events.saturating_add(other.events);
        self.requests = self.requests.saturating_add(other.requests);
        self.input_tokens = self.input_tokens.saturating_add(other.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(other.output_tokens);
        self.cost = self.cost.saturating_add(other.cost);
        self.errors = self.errors.saturating_add(other.errors);
        self.latency.merge(&other.latency);
    }

    /// Input plus output tokens.
    pub fn total_tokens(&self) -> u64 {
        self.input_tokens.saturating_add(self.output_tokens)
    }
}

/// The key of an hourly rollup row, borrowing names from the events it was built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RollupKey<'a> {
    /// Start of the hour.
    pub hour: Timestamp,
    /// The token.
    pub token_id: TokenId,
    /// The provider.
    pub provider: &'a ProviderName,
    /// The model.
    pub model: &'a ModelName,
}

/// Folds events into per-hour × token × provider × model totals: what a backend adds to its rollups.
pub fn hourly_rollups<'a>(events: impl IntoIterator<Item = &'a UsageEvent>) -> Vec<(RollupKey<'a>, UsageTotals)> {
    let mut rollups: HashMap<RollupKey<'a>, UsageTotals> = HashMap::new();
    for event in events {
        let key = RollupKey {
            hour: Window::Hour.start_of(event.at),
            token_id: event.token_id,
            provider: &event.provider,
            model: &event.model,
        };
        rollups.entry(key).or_default().add_event(event);
    }
    rollups.into_iter().collect()
}

/// Which usage a summary covers. Times are rounded to whole hours (rollups are hourly): `since`
/// down to its hour, `until` up to the end of its hour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageFilter {
    /// From (inclusive).
    pub since: Timestamp,
    /// Until (exclusive).
    pub until: Timestamp,
    /// Only this token.
    pub token_id: Option<TokenId>,
    /// Only tokens of this owner (a user or a service account).
    pub owner: Option<OwnerId>,
    /// Only tokens of this project.
    pub project: Option<ProjectId>,
    /// Only this provider.
    pub provider: Option<ProviderName>,
    /// Only this model.
    pub model: Option<ModelName>,
    /// Only agents' usage (their credentials' calls, reports and analytics events), or one agent's.
    pub agent: Option<AgentScope>,
}

impl UsageFilter {
    /// Everything in `[since, until)`.
    pub fn between(since: Timestamp, until: Timestamp) -> Self {
        Self { since, until, token_id: None, owner: None, project: None, provider: None, model: None, agent: None }
    }

    /// The rollup hours the filter covers, as Unix microseconds `[since, until)`: `since` rounded
    /// down to its hour, `until` up (rollups are hourly, so a summary counts every hour it touches).
    pub fn rollup_hours(&self) -> (i64, i64) {
        let since = Window::Hour.start_of(self.since);
        let until_start = Window::Hour.start_of(self.until);
        let until = if until_start == self.until { until_start } else { Window::Hour.end_of(self.until) };
        (since.unix_micros(), until.unix_micros())
    }
}

/// Which agents' usage a filter keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentScope {
    /// Every agent's (no API token's).
    Any,
    /// This agent's.
    One(AgentId),
}

impl AgentScope {
    /// The one agent, if any.
    pub fn agent(self) -> Option<AgentId> {
        match self {
            Self::Any => None,
            Self::One(agent) => Some(agent),
        }
    }
}

/// Where a page of groups ended: the last group's cost and raw key. Groups come highest cost first,
/// then by key (the keyless group first), so the next page starts after this pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupCursor {
    /// The last group's cost, in microdollars.
    pub cost: i64,
    /// The last group's key as stored (`None`: the keyless group).
    pub key: Option<String>,
}

impl GroupCursor {
    /// The cursor as an opaque string: `<cost>.<key>` (`-` for no key).
    pub fn encode(&self) -> String {
        match &self.key {
            Some(key) => format!("{}.k{key}", self.cost),
            None => format!("{}.-", self.cost),
        }
    }

    /// Reads a cursor made by [`GroupCursor::encode`]; anything else is [`StoreError::InvalidCursor`].
    pub fn decode(text: &str) -> Result<Self> {
        let (cost, key) = text.split_once('.').ok_or(StoreError::InvalidCursor)?;
        let cost: i64 = cost.parse().map_err(|_| StoreError::InvalidCursor)?;
        let key = match key {
            "-" => None,
            key => {
                Some(key.strip_prefix('k').filter(|key| !key.is_empty()).ok_or(StoreError::InvalidCursor)?.to_owned())
            }
        };
        if cost < 0 {
            return Err(StoreError::InvalidCursor);
        }
        Ok(Self { cost, key })
    }
}

/// A page of groups from rows fetched with their raw keys (up to `limit + 1` of them): the next
/// cursor is taken from the raw key, then hour keys are shown as RFC 3339.
pub fn group_page(
    rows: Vec<(Option<String>, UsageTotals)>,
    group_by: Option<UsageGroupBy>,
    limit: u32,
) -> Page<UsageGroup> {
    let limit = limit as usize;
    let mut rows = rows;
    let next_cursor = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(|(key, totals)| GroupCursor { cost: totals.cost.micros(), key: key.clone() }.encode())
    } else {
        None
    };
    let items = rows
        .into_iter()
        .map(|(key, totals)| {
            let key = match group_by {
                Some(UsageGroupBy::Hour) => key
                    .and_then(|micros| micros.parse::<i64>().ok())
                    .map(|micros| Timestamp::from_unix_micros(micros).to_rfc3339()),
                _ => key,
            };
            UsageGroup { key, totals }
        })
        .collect();
    Page { items, next_cursor }
}

/// How a summary groups its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UsageGroupBy {
    /// Per token.
    Token,
    /// Per owner (a user or a service account id).
    Owner,
    /// Per project (tokens without one are grouped under no key).
    Project,
    /// Per provider.
    Provider,
    /// Per provider and model (`provider/model`).
    Model,
    /// Per hour (RFC 3339 start of the hour).
    Hour,
    /// Per agent (`agt_…`; API tokens' usage is grouped under no key).
    Agent,
}

/// One row of a summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UsageGroup {
    /// The group's key (`None`: the total, or the group of rows without that attribute).
    pub key: Option<String>,
    /// Its sums.
    #[serde(flatten)]
    pub totals: UsageTotals,
}

/// Usage storage. Writes come in batches from the facade's write-behind queue.
#[async_trait]
pub trait UsageStore: Send + Sync {
    /// In one transaction: skips every event whose `event_id` is already stored for its token (and
    /// repeats within the batch), appends the others, adds them to the hourly rollups (attributing
    /// each rollup row to the token's owner and project as stored now) and their counter deltas to
    /// the counters, then applies the unconditional counter deltas and the shadow hits. Every sum
    /// saturates at `i64::MAX` instead of overflowing.
    async fn record_usage(&self, batch: UsageBatch<'_>) -> Result<BatchWritten>;

    /// Stores events that could not be stored with their batch.
    async fn add_dead_letters(&self, letters: &[DeadLetter]) -> Result<()>;

    /// Dead letters, newest first. The cursor is an id.
    async fn dead_letters(&self, page: &crate::PageRequest) -> Result<crate::Page<DeadLetterRecord>>;

    /// How many dead letters are stored.
    async fn count_dead_letters(&self) -> Result<u64>;

    /// Sums of the rollups matching `filter`: one row without a key when `group_by` is `None`,
    /// else one row per group, highest cost first (then by key), at most `limit` rows. Sums
    /// saturate at `i64::MAX`.
    async fn usage_summary(
        &self,
        filter: &UsageFilter,
        group_by: Option<UsageGroupBy>,
        limit: u32,
    ) -> Result<Vec<UsageGroup>> {
        Ok(self.usage_groups(filter, group_by, &PageRequest::first(limit.max(1))).await?.items)
    }

    /// [`UsageStore::usage_summary`] a page at a time: the groups after `page.cursor` (a
    /// [`GroupCursor`]), every filter applied before paging. A malformed cursor is
    /// [`StoreError::InvalidCursor`].
    async fn usage_groups(
        &self,
        filter: &UsageFilter,
        group_by: Option<UsageGroupBy>,
        page: &PageRequest,
    ) -> Result<Page<UsageGroup>>;

    /// [`UsageStore::usage_groups`] without the latency histograms (left empty): the same groups,
    /// sums, order and cursors, for readers that never show latency (the dashboard). Summing the
    /// six totals instead of the totals and every latency bucket makes the scan several times cheaper.
    async fn usage_groups_without_latency(
        &self,
        filter: &UsageFilter,
        group_by: Option<UsageGroupBy>,
        page: &PageRequest,
    ) -> Result<Page<UsageGroup>> {
        let mut groups = self.usage_groups(filter, group_by, page).await?;
        for group in &mut groups.items {
            group.totals.latency = LatencyHistogram::default();
        }
        Ok(groups)
    }

    /// How many raw events are stored.
    async fn count_usage_events(&self) -> Result<u64>;

    /// Deletes raw events older than `before` (rollups stay), and the idempotency keys of events
    /// that old; returns how many events.
    async fn purge_usage_events(&self, before: Timestamp) -> Result<u64>;
}
