//! The verify path: parse → checksum → HMAC → cache → store by hash → checks → rate limit → quota.
//! Malformed tokens are refused before any hashing or storage access.

use std::sync::Arc;

use serde::Serialize;
use tollgate_store::HashMatch;
use tollgate_types::{
    Permission, PresentedSecret, Refusal, RefusalCode, Timestamp, TokenId, TokenRecord, TokenStatus, VerifyRequest,
};

use super::manager::TokenManager;
use crate::{Error, QuotaReservation, RateLimitStatus, Reservation, Result};

/// What a successful verify knows about the caller.
#[derive(Debug, Clone, Serialize)]
pub struct TokenContext {
    /// The token's id.
    pub token_id: TokenId,
    /// The token's metadata (shared with the cache; no secret, no hash).
    #[serde(flatten)]
    pub record: Arc<TokenRecord>,
    /// Whether the caller used the secret from before the last rotation (still in its grace period).
    pub via_previous_secret: bool,
    /// What the token may do now: the lower of its own level and its owner's current role.
    pub effective_permission: Permission,
    /// The tightest request limit governing the token after this request, for `RateLimit-*`
    /// headers; `None` when no request limit applies (or no metering is attached).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitStatus>,
}

impl TokenManager {
    /// Verifies a presented token for a request. A refusal is `Error::Refused` with a stable code.
    ///
    /// With metering attached, the token's quotas are applied after the identity checks: the
    /// request counts against every request limit, and tokens and cost limits admit it while
    /// anything is left (`quota_exceeded` names the limit and when it resets).
    pub async fn verify(&self, presented: &str, request: &VerifyRequest) -> Result<TokenContext> {
        let (context, _) = self.verify_inner(presented, request, &Reservation::NONE).await?;
        Ok(context)
    }

    /// Verifies like [`TokenManager::verify`] and also holds `reservation` (the most tokens and
    /// money the call may use, e.g. from [`Metering::estimate`](crate::Metering::estimate)) against the
    /// token's tokens and cost limits, refusing when it does not fit. Settle the returned
    /// reservation with the actual usage ([`Metering::settle`](crate::Metering::settle)) or release it.
    pub async fn verify_and_reserve(
        &self,
        presented: &str,
        request: &VerifyRequest,
        reservation: &Reservation,
    ) -> Result<(TokenContext, QuotaReservation)> {
        self.verify_inner(presented, request, reservation).await
    }

    async fn verify_inner(
        &self,
        presented: &str,
        request: &VerifyRequest,
        reservation: &Reservation,
    ) -> Result<(TokenContext, QuotaReservation)> {
        let secret =
            PresentedSecret::parse(&self.prefix, presented).map_err(|_| Refusal::new(RefusalCode::Malformed))?;
        let now = self.now();
        let (record, matched) = self.lookup(secret, now).await?;
        if record.agent.is_some() {
            // An agent credential stored under an API-token prefix (a deployment that changed
            // prefixes): it still authenticates only as its agent.
            return Err(Refusal::new(RefusalCode::NotFound).into());
        }
        check(&record, matched, request, now)?;
        let (rate_limit, held) = match &self.metering {
            Some(metering) => {
                let admission = metering.admit(&record, reservation, now).await?;
                (admission.rate_limit, admission.reservation)
            }
            None => (None, QuotaReservation::empty(record.id)),
        };
        self.last_used.record(record.id, now);
        tracing::trace!(token_id = %record.id, "token verified");
        let context = TokenContext {
            token_id: record.id,
            effective_permission: record.effective_permission(),
            record,
            via_previous_secret: matched == HashMatch::Previous,
            rate_limit,
        };
        Ok((context, held))
    }

    /// Finds the token for a secret: the cache first, then the store under the current key, then older keys.
    pub(super) async fn lookup(
        &self,
        secret: PresentedSecret<'_>,
        now: Timestamp,
    ) -> Result<(Arc<TokenRecord>, HashMatch)> {
        let hash = self.hasher.hash(secret);
        if let Some(cached) = self.cache.get(&hash, now) {
            return Ok((cached.record, cached.matched));
        }
        let epoch = self.cache.epoch();
        let mut found = self.store.token_by_hash(&hash, now).await?;
        if found.is_none() {
            for (_, older) in self.hasher.previous_hashes(secret) {
                found = self.store.token_by_hash(&older, now).await?;
                if found.is_some() {
                    break;
                }
            }
        }
        let lookup = found.ok_or(Refusal::new(RefusalCode::NotFound))?;
        let record = Arc::new(lookup.record);
        if record.status(now) == TokenStatus::Active {
            self.cache.insert(hash, Arc::clone(&record), lookup.matched, now, epoch);
        }
        Ok((record, lookup.matched))
    }
}

/// The identity checks, in the order the design gives.
pub(super) fn check(
    record: &TokenRecord,
    matched: HashMatch,
    request: &VerifyRequest,
    now: Timestamp,
) -> Result<(), Error> {
    let refuse = |code| Err(Error::Refused(Refusal::new(code)));
    match record.status(now) {
        TokenStatus::Revoked => return refuse(RefusalCode::Revoked),
        TokenStatus::Expired => return refuse(RefusalCode::Expired),
        TokenStatus::Active => {}
    }
    if matched == HashMatch::Previous && record.previous_valid_until.is_none_or(|until| until <= now) {
        return refuse(RefusalCode::NotFound);
    }
    if !record.ip_allow.allows(request.ip) {
        return refuse(RefusalCode::IpNotAllowed);
    }
    if !record.allowed_tools.allows(request.tool.as_deref()) {
        return refuse(RefusalCode::ToolNotAllowed);
    }
    Ok(())
}
