//! Quota refusals tallied per token between two reads, for the live `quota.exceeded` events: the
//! verify path adds to a small map (only when it refuses), the live tail takes it every second.

use std::collections::HashMap;
use std::sync::Mutex;

use tollgate_types::{OwnerId, TokenId};

/// The most tokens tallied between two reads; refusals of further tokens are counted as `others`.
const MAX_TOKENS: usize = 1_000;

/// Refusals of one token since the last read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaRefusals {
    /// The token.
    pub token_id: TokenId,
    /// Its owner.
    pub owner: OwnerId,
    /// How many verifies were refused.
    pub refused: u64,
    /// The limit that refused last (`requests_per_day`, …).
    pub limit: Option<String>,
}

#[derive(Debug, Default)]
pub(crate) struct RefusalTally {
    tally: Mutex<(HashMap<TokenId, QuotaRefusals>, u64)>,
}

impl RefusalTally {
    pub(crate) fn note(&self, token_id: TokenId, owner: OwnerId, limit: Option<&str>) {
        let mut tally = self.tally.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let full = tally.0.len() >= MAX_TOKENS;
        match tally.0.get_mut(&token_id) {
            Some(entry) => {
                entry.refused += 1;
                entry.limit = limit.map(str::to_owned);
            }
            None if full => tally.1 += 1,
            None => {
                let entry = QuotaRefusals { token_id, owner, refused: 1, limit: limit.map(str::to_owned) };
                tally.0.insert(token_id, entry);
            }
        }
    }

    /// The tallies since the last call, and the refusals of tokens past the cap.
    pub(crate) fn take(&self) -> (Vec<QuotaRefusals>, u64) {
        let mut tally = self.tally.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (tokens, others) = std::mem::take(&mut *tally);
        (tokens.into_values().collect(), others)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_add_up_per_token_and_overflow_into_others() {
        let tally = RefusalTally::default();
        let owner = OwnerId::User(tollgate_types::UserId::generate());
        let token = TokenId::generate();
        tally.note(token, owner, Some("requests_per_day"));
        tally.note(token, owner, Some("cost_per_month"));
        let (tokens, others) = tally.take();
        assert_eq!(
            (tokens.len(), tokens[0].refused, tokens[0].limit.as_deref(), others),
            (1, 2, Some("cost_per_month"), 0)
        );
        assert_eq!(tally.take(), (Vec::new(), 0), "a read empties the tally");
        for _ in 0..MAX_TOKENS + 3 {
            tally.note(TokenId::generate(), owner, None);
        }
        let (tokens, others) = tally.take();
        assert_eq!((tokens.len(), others), (MAX_TOKENS, 3));
    }
}
