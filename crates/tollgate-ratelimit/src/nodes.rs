//! How many nodes share the budget: each node heartbeats into one Redis sorted set, and the count of unexpired
//! entries tells the fallback limiter what share of the policy is this node's while Redis is away.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use redis::Script;
use redis::aio::ConnectionManager;
use tokio::time::MissedTickBehavior;

use crate::{BackgroundTask, RateLimitError, RedisLimiter, Result};

/// Registers `ARGV[1]` as live for `ARGV[2]` ms and counts the live nodes, all on Redis's clock and atomically.
/// `KEYS[1]` is a sorted set of node ids scored by the millisecond their registration expires; the set itself
/// expires with its last entry.
const HEARTBEAT_SCRIPT: &str = r"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], last[2])
return redis.call('ZCARD', KEYS[1])
";

/// The number of live nodes sharing a policy, shared between whoever counts them (a [`NodeRegistry`], or the
/// caller) and the [`crate::FallbackLimiter`] that divides by it. Never below 1. Clones share one count.
///
/// ```
/// use tollgate_ratelimit::LiveNodes;
///
/// let nodes = LiveNodes::new(3);
/// let seen_by_the_limiter = nodes.clone();
/// nodes.set(0);
/// assert_eq!(seen_by_the_limiter.count(), 1);
/// ```
#[derive(Clone, Default)]
pub struct LiveNodes(Arc<AtomicU32>);

impl LiveNodes {
    /// A count starting at `count` (at least 1).
    pub fn new(count: u32) -> Self {
        Self(Arc::new(AtomicU32::new(count.max(1))))
    }

    /// The last count, at least 1.
    pub fn count(&self) -> u32 {
        self.0.load(Ordering::Acquire).max(1)
    }

    /// Replaces the count (0 counts as 1) for every clone.
    pub fn set(&self, count: u32) {
        self.0.store(count.max(1), Ordering::Release);
    }
}

impl fmt::Debug for LiveNodes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("LiveNodes").field(&self.count()).finish()
    }
}

/// This node's entry in the shared list of live nodes: the sorted set `prefix + "nodes"` on the limiter's Redis,
/// one member per node id, scored by when its registration expires. Each [`Self::heartbeat`] renews this node,
/// drops expired ones, and stores the live count in its [`LiveNodes`]; while Redis is away the last known count
/// stays. [`Self::spawn`] heartbeats every third of the TTL.
///
/// Node ids must be unique per process (a host name plus a port or pid, say): two processes with one id count
/// once.
pub struct NodeRegistry {
    connection: ConnectionManager,
    script: Script,
    set_key: String,
    node_id: String,
    ttl: Duration,
    nodes: LiveNodes,
}

impl NodeRegistry {
    /// How long a registration lasts without a heartbeat, unless [`Self::with_ttl`] says otherwise.
    pub const DEFAULT_TTL: Duration = Duration::from_secs(5);

    /// Registers `node_id` on `redis`'s connection and key prefix, updating `nodes` (usually the one its
    /// [`crate::FallbackLimiter`] divides by).
    pub fn new(redis: &RedisLimiter, node_id: impl Into<String>, nodes: LiveNodes) -> Self {
        Self {
            connection: redis.connection(),
            script: Script::new(HEARTBEAT_SCRIPT),
            set_key: format!("{}nodes", redis.key_prefix()),
            node_id: node_id.into(),
            ttl: Self::DEFAULT_TTL,
            nodes,
        }
    }

    /// How long a registration lasts without a heartbeat, at least 3 ms (whole milliseconds).
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl.max(Duration::from_millis(3));
        self
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// The Redis key of the sorted set of live nodes.
    pub fn set_key(&self) -> &str {
        &self.set_key
    }

    /// The count this registry updates.
    pub fn nodes(&self) -> &LiveNodes {
        &self.nodes
    }

    /// Renews this node's registration and returns the number of live nodes, also stored in [`Self::nodes`].
    /// On an error the stored count is left as it was.
    pub async fn heartbeat(&self) -> Result<u32> {
        let ttl_ms = u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX);
        let mut connection = self.connection.clone();
        let live: u32 = self
            .script
            .key(&self.set_key)
            .arg(&self.node_id)
            .arg(ttl_ms)
            .invoke_async(&mut connection)
            .await
            .map_err(RateLimitError::backend)?;
        self.nodes.set(live);
        Ok(live)
    }

    /// Removes this node's registration now, instead of letting it expire (for a clean shutdown).
    pub async fn deregister(&self) -> Result<()> {
        let mut connection = self.connection.clone();
        redis::cmd("ZREM")
            .arg(&self.set_key)
            .arg(&self.node_id)
            .query_async::<()>(&mut connection)
            .await
            .map_err(RateLimitError::backend)
    }

    /// Heartbeats now and then every third of the TTL until the handle is dropped (the registration then
    /// expires within one TTL; call [`Self::deregister`] on another registry for an immediate removal). Failures
    /// are logged and keep the last count. Errors outside a Tokio runtime.
    pub fn spawn(self) -> Result<BackgroundTask> {
        BackgroundTask::spawn(self.heartbeat_forever())
    }

    async fn heartbeat_forever(self) {
        let mut interval = tokio::time::interval((self.ttl / 3).max(Duration::from_millis(1)));
        interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            interval.tick().await;
            match self.heartbeat().await {
                Ok(live) if failing => {
                    failing = false;
                    tracing::info!(node_id = %self.node_id, live, "node heartbeat recovered");
                }
                Ok(_) => {}
                Err(error) if !failing => {
                    failing = true;
                    tracing::warn!(
                        node_id = %self.node_id,
                        error = %error.chain(),
                        kept = self.nodes.count(),
                        "node heartbeat failed: keeping the last count of live nodes"
                    );
                }
                Err(error) => tracing::debug!(node_id = %self.node_id, error = %error.chain(), "node heartbeat failed"),
            }
        }
    }
}

impl fmt::Debug for NodeRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeRegistry")
            .field("set_key", &self.set_key)
            .field("node_id", &self.node_id)
            .field("ttl", &self.ttl)
            .field("nodes", &self.nodes)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_count_is_shared_and_never_below_one() {
        let nodes = LiveNodes::new(0);
        assert_eq!(nodes.count(), 1);
        let clone = nodes.clone();
        clone.set(4);
        assert_eq!(nodes.count(), 4);
        assert_eq!(LiveNodes::default().count(), 1);
        assert_eq!(format!("{nodes:?}"), "LiveNodes(4)");
    }
}
