//! Hints that the audit log grew: every transaction that appends to it also sends a NOTIFY on one
//! channel (delivered at commit, collapsed within a transaction), and a listener connection of the
//! store's wakes whoever asked. NOTIFY is lost while the listener's connection is down, so these
//! are only hints: followers poll too, and every reconnect wakes them once in case one was missed.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tollgate_store::AuditWaker;

/// The channel audit appends notify.
pub(crate) const CHANNEL: &str = "tollgate_audit";

/// The wakers of one store, and whether its listener runs.
pub(crate) struct AuditWatch {
    wakers: Mutex<Vec<AuditWaker>>,
    listening: std::sync::Once,
}

impl Default for AuditWatch {
    fn default() -> Self {
        Self { wakers: Mutex::new(Vec::new()), listening: std::sync::Once::new() }
    }
}

impl std::fmt::Debug for AuditWatch {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let wakers = self.wakers.lock().map_or(0, |wakers| wakers.len());
        formatter.debug_struct("AuditWatch").field("wakers", &wakers).finish()
    }
}

impl AuditWatch {
    /// Adds `wake` and starts the listener on first use (needs a Tokio runtime).
    pub(crate) fn add(self: &Arc<Self>, pool: &PgPool, wake: AuditWaker) -> bool {
        if tokio::runtime::Handle::try_current().is_err() {
            return false;
        }
        self.wakers.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(wake);
        self.listening.call_once(|| {
            tokio::spawn(listen(Arc::downgrade(self), pool.clone()));
        });
        true
    }

    fn wake_all(&self) {
        let wakers = self.wakers.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
        for wake in wakers {
            wake();
        }
    }
}

/// Listens until the store is gone or its pool closed, reconnecting after failures.
async fn listen(watch: std::sync::Weak<AuditWatch>, pool: PgPool) {
    let mut listener: Option<PgListener> = None;
    loop {
        if pool.is_closed() {
            return;
        }
        let Some(active) = listener.as_mut() else {
            match PgListener::connect_with(&pool).await {
                Ok(mut connected) => match connected.listen(CHANNEL).await {
                    Ok(()) => {
                        listener = Some(connected);
                        // Anything appended while nobody listened would be missed: look once.
                        let Some(watch) = watch.upgrade() else { return };
                        watch.wake_all();
                    }
                    Err(error) => retry_later(&error).await,
                },
                Err(error) => retry_later(&error).await,
            }
            continue;
        };
        match active.try_recv().await {
            Ok(Some(_)) => {
                let Some(watch) = watch.upgrade() else { return };
                watch.wake_all();
            }
            Ok(None) => {
                // The connection was lost and will be re-established: notifications may be missed.
                let Some(watch) = watch.upgrade() else { return };
                watch.wake_all();
            }
            Err(error) => {
                listener = None;
                retry_later(&error).await;
            }
        }
    }
}

async fn retry_later(error: &sqlx::Error) {
    tracing::debug!(error = %error, "audit notifications: listener unavailable; retrying");
    tokio::time::sleep(Duration::from_millis(250)).await;
}
