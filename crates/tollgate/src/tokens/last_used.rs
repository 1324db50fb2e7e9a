//! `last_used_at` without a database write per verify: uses are collected in memory and written
//! in one batch by [`TokenManager::flush`](crate::TokenManager::flush) (called on an interval by
//! the server and on shutdown).

use std::collections::HashMap;
use std::sync::Mutex;

use tollgate_types::{Timestamp, TokenId};

/// Pending uses, latest time per token. Bounded by the number of distinct tokens used.
#[derive(Debug, Default)]
pub(crate) struct LastUsed(Mutex<HashMap<TokenId, Timestamp>>);

impl LastUsed {
    pub(crate) fn record(&self, id: TokenId, at: Timestamp) {
        let mut pending = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let slot = pending.entry(id).or_insert(at);
        if *slot < at {
            *slot = at;
        }
    }

    pub(crate) fn take(&self) -> Vec<(TokenId, Timestamp)> {
        let mut pending = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        pending.drain().collect()
    }

    /// Puts back uses whose write failed, keeping any newer time recorded meanwhile.
    pub(crate) fn restore(&self, uses: Vec<(TokenId, Timestamp)>) {
        for (id, at) in uses {
            self.record(id, at);
        }
    }
}
