//! Leak response: which stored secret a found one is (API token, refresh token, agent credential),
//! by hash lookup through the same stores verify and refresh use, and revoking it with reason `leaked`.
//! Admins only (`Operation::HandleLeaks`): the answer names ids.

use serde::Serialize;
use tollgate_types::{AgentId, OwnerId, SecretScanner, TokenHash, TokenSecret, TokenStatus, UserId};

use crate::authz::{Operation, authorize};
use crate::tokens::Kind;
use crate::{Caller, Result, UserService};

/// The reason revocations of found secrets carry.
pub const LEAKED: &str = "leaked";

/// Which kind of tollgate secret, by its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretKind {
    /// An API token.
    ApiToken,
    /// A login session's refresh token.
    RefreshToken,
    /// An agent credential.
    AgentCredential,
}

/// What a found secret is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LeakState {
    /// It works: revoke it.
    Active,
    /// A refresh token already exchanged; presenting it would end its session.
    Used,
    /// Revoked (before, or by this call).
    Revoked,
    /// Expired.
    Expired,
    /// No stored secret has this hash: another deployment's, deleted, or rotated past its grace.
    NotFound,
}

/// One found secret, classified. Never holds the secret: only its masked hint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeakedSecret {
    /// The masked hint (prefix, first and last four characters).
    pub hint: String,
    /// Its kind, by prefix.
    pub kind: SecretKind,
    /// The token or credential id (`tok_…`), or the session id of a refresh token.
    pub id: Option<String>,
    /// The owner of a token or credential.
    pub owner: Option<OwnerId>,
    /// The user of a refresh token's session.
    pub user: Option<UserId>,
    /// The agent of a credential.
    pub agent: Option<AgentId>,
    /// Its state after this call.
    pub state: LeakState,
    /// Whether this call revoked it.
    pub revoked_now: bool,
}

impl UserService {
    /// A scanner for every prefix this deployment issues: API tokens, refresh tokens, agent credentials.
    pub fn secret_scanner(&self) -> SecretScanner {
        let tokens = &self.inner.tokens;
        SecretScanner::new(vec![
            tokens.prefix().clone(),
            self.inner.refresh_prefix.clone(),
            tokens.agent_prefix().clone(),
        ])
    }

    /// Classifies found secrets and, with `revoke`, revokes every one not already revoked (reason
    /// `leaked`, audited as any revocation: `token.revoke`, `session.revoke`). Secrets of a prefix this
    /// deployment does not issue are left out. Admins only.
    #[tracing::instrument(skip_all, fields(found = secrets.len(), revoke))]
    pub async fn classify_leaks(
        &self,
        caller: &Caller,
        secrets: &[TokenSecret],
        revoke: bool,
    ) -> Result<Vec<LeakedSecret>> {
        authorize(&caller.principal, Operation::HandleLeaks)?;
        let mut classified = Vec::with_capacity(secrets.len());
        for secret in secrets {
            let prefix = secret.expose().split_once('_').map_or("", |(prefix, _)| prefix);
            let tokens = &self.inner.tokens;
            let leaked = if prefix == self.inner.refresh_prefix.as_str() {
                self.refresh_leak(caller, secret, revoke).await?
            } else if prefix == tokens.prefix().as_str() || prefix == tokens.agent_prefix().as_str() {
                self.token_leak(caller, secret, prefix == tokens.agent_prefix().as_str(), revoke).await?
            } else {
                continue;
            };
            if leaked.revoked_now {
                tracing::warn!(kind = ?leaked.kind, id = leaked.id.as_deref().unwrap_or("-"), "leaked secret revoked");
            }
            classified.push(leaked);
        }
        Ok(classified)
    }

    /// Hashes under the current key, then the older ones.
    fn hashes(&self, secret: &TokenSecret, refresh: bool) -> Vec<TokenHash> {
        let hasher = if refresh { &self.inner.refresh_hasher } else { &*self.inner.tokens.hasher };
        std::iter::once(hasher.hash(secret)).chain(hasher.previous_hashes(secret).map(|(_, hash)| hash)).collect()
    }

    async fn token_leak(
        &self,
        caller: &Caller,
        secret: &TokenSecret,
        agent_prefix: bool,
        revoke: bool,
    ) -> Result<LeakedSecret> {
        let tokens = &self.inner.tokens;
        let now = self.inner.clock.now();
        let mut found = None;
        for hash in self.hashes(secret, false) {
            found = tokens.store().token_by_hash(&hash, now).await?;
            if found.is_some() {
                break;
            }
        }
        let kind = if agent_prefix { SecretKind::AgentCredential } else { SecretKind::ApiToken };
        let mut leaked = unknown(secret, kind);
        let Some(found) = found else { return Ok(leaked) };
        let mut record = found.record;
        let token_kind = if record.agent.is_some() { Kind::Credential } else { Kind::ApiToken };
        if revoke && record.revoked_at.is_none() {
            record = tokens.revoke_kind(&caller.principal, &record.id, Some(LEAKED), token_kind).await?;
            leaked.revoked_now = true;
        }
        leaked.kind = if record.agent.is_some() { SecretKind::AgentCredential } else { SecretKind::ApiToken };
        leaked.id = Some(record.id.to_string());
        leaked.owner = Some(record.owner);
        leaked.agent = record.agent.map(|binding| binding.id);
        leaked.state = match record.status(now) {
            TokenStatus::Active => LeakState::Active,
            TokenStatus::Revoked => LeakState::Revoked,
            TokenStatus::Expired => LeakState::Expired,
        };
        Ok(leaked)
    }

    async fn refresh_leak(&self, caller: &Caller, secret: &TokenSecret, revoke: bool) -> Result<LeakedSecret> {
        let mut found = None;
        for hash in self.hashes(secret, true) {
            found = self.inner.store.refresh_token(&hash).await?;
            if found.is_some() {
                break;
            }
        }
        let mut leaked = unknown(secret, SecretKind::RefreshToken);
        let Some(found) = found else { return Ok(leaked) };
        let mut session = found.session;
        if revoke && session.revoked_at.is_none() {
            session = self.revoke_session(caller, &session.id, Some(LEAKED)).await?;
            leaked.revoked_now = true;
        }
        let now = self.inner.clock.now();
        leaked.id = Some(session.id.to_string());
        leaked.user = Some(session.user_id);
        leaked.state = if session.revoked_at.is_some() {
            LeakState::Revoked
        } else if found.expires_at <= now || session.expires_at <= now {
            LeakState::Expired
        } else if found.used_at.is_some() {
            LeakState::Used
        } else {
            LeakState::Active
        };
        Ok(leaked)
    }
}

fn unknown(secret: &TokenSecret, kind: SecretKind) -> LeakedSecret {
    LeakedSecret {
        hint: secret.display_hint(),
        kind,
        id: None,
        owner: None,
        user: None,
        agent: None,
        state: LeakState::NotFound,
        revoked_now: false,
    }
}
