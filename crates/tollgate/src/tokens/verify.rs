//! The verify path: parse → checksum → HMAC → cache → store by hash → checks.
//! Malformed tokens are refused before any hashing or storage access.

use std::sync::Arc;

use serde::Serialize;
use tollgate_store::HashMatch;
use tollgate_types::{Refusal, RefusalCode, Timestamp, TokenId, TokenRecord, TokenSecret, TokenStatus, VerifyRequest};

use super::manager::TokenManager;
use crate::{Error, Result};

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
}

impl TokenManager {
    /// Verifies a presented token for a request. A refusal is `Error::Refused` with a stable code.
    pub async fn verify(&self, presented: &str, request: &VerifyRequest) -> Result<TokenContext> {
        let secret = TokenSecret::parse(&self.prefix, presented).map_err(|_| Refusal::new(RefusalCode::Malformed))?;
        let now = self.now();
        let (record, matched) = self.lookup(&secret, now).await?;
        check(&record, matched, request, now)?;
        self.last_used.record(record.id, now);
        Ok(TokenContext { token_id: record.id, record, via_previous_secret: matched == HashMatch::Previous })
    }

    /// Finds the token for a secret: the cache first, then the store under the current key, then older keys.
    async fn lookup(&self, secret: &TokenSecret, now: Timestamp) -> Result<(Arc<TokenRecord>, HashMatch)> {
        let hash = self.hasher.hash(secret);
        if let Some(cached) = self.cache.get(&hash, now) {
            return Ok((cached.record, cached.matched));
        }
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
            self.cache.insert(hash, Arc::clone(&record), lookup.matched, now);
        }
        Ok((record, lookup.matched))
    }
}

/// The identity checks, in the order the design gives.
fn check(record: &TokenRecord, matched: HashMatch, request: &VerifyRequest, now: Timestamp) -> Result<(), Error> {
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
