//! A Tokio task that lives as long as its handle: the shared limiter's heartbeat and recovery probe.

use std::future::Future;

use tokio::task::JoinHandle;

use crate::{RateLimitError, Result};

/// A background task started by this crate ([`crate::NodeRegistry::spawn`],
/// [`crate::FallbackLimiter::spawn_recovery`]). Dropping the handle stops the task, so keep it for as long
/// as the task should run.
#[derive(Debug)]
#[must_use = "the task stops when its handle is dropped"]
pub struct BackgroundTask {
    handle: JoinHandle<()>,
}

impl BackgroundTask {
    /// Spawns `task` on the current Tokio runtime; errors outside one instead of panicking.
    pub(crate) fn spawn(task: impl Future<Output = ()> + Send + 'static) -> Result<Self> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| RateLimitError::InvalidConfig { reason: "a background task needs a tokio runtime" })?;
        Ok(Self { handle: runtime.spawn(task) })
    }

    /// True once the task has stopped by itself (its limiter was dropped).
    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }
}

impl Drop for BackgroundTask {
    fn drop(&mut self) {
        self.handle.abort();
    }
}
