//! `serve --redis-url`: rate limits shared by every node through Redis, with the fallback to this
//! node's share of each policy while Redis is away, and this node's heartbeat so the others know
//! how many share the policy. The same Redis carries node-local live events between nodes.

use std::num::NonZeroUsize;
use std::sync::Arc;

use tollgate::{
    BackgroundTask, FallbackConfig, FallbackLimiter, LiveNodes, LocalLimiter, NodeRegistry, RateLimiter, RedisLimiter,
    RedisLimiterConfig, ValidationError,
};

/// The shared limiter and the tasks that keep it (heartbeat, recovery); drop the tasks at exit.
pub(super) struct SharedLimits {
    pub(super) limiter: Arc<dyn RateLimiter>,
    pub(super) tasks: Vec<BackgroundTask>,
}

/// A name for this node, unique among the nodes sharing a Redis (process id and start time).
pub(super) fn node_id() -> String {
    let started = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    format!("{}-{:x}", std::process::id(), started.as_nanos())
}

/// Keys held in memory by the local fallback.
const LOCAL_KEYS: usize = 100_000;

/// Connects lazily (a Redis that is down at start means the node starts degraded, not that it
/// refuses to start); `url` is never logged or echoed: it may hold a password.
pub(super) fn start(url: &str, prefix: &str, node_id: &str) -> Result<SharedLimits, ValidationError> {
    if !(url.starts_with("redis://") || url.starts_with("unix://") || url.starts_with("redis+unix://")) {
        return Err(ValidationError::new("redis_url", "must be a redis:// URL (TLS is not supported)"));
    }
    let config = RedisLimiterConfig::new(url).with_key_prefix(prefix);
    let redis = RedisLimiter::new(config).map_err(|_| ValidationError::new("redis_url", "is not a valid Redis URL"))?;
    let nodes = LiveNodes::new(1);
    let heartbeat = NodeRegistry::new(&redis, node_id, nodes.clone());
    let local = LocalLimiter::new(NonZeroUsize::new(LOCAL_KEYS).expect("not zero"));
    let limiter = Arc::new(FallbackLimiter::new(redis, local, nodes, FallbackConfig::default()));
    let spawn = |task: Result<BackgroundTask, _>| {
        task.map_err(|_| ValidationError::new("redis_url", "cannot start the shared rate limiter's tasks"))
    };
    let tasks = vec![spawn(heartbeat.spawn())?, spawn(limiter.spawn_recovery())?];
    Ok(SharedLimits { limiter, tasks })
}
