//! Agent credentials: tokens of their own prefix, bound to one agent, on the same verify path as
//! API tokens (checksum, HMAC, cache, revocation evicting at once) but never accepted in their place.

use std::sync::Arc;

use tollgate_store::TokenInsert;
use tollgate_types::{
    AgentId, AgentRecord, AgentStatus, AuditEvent, NewToken, Permission, PresentedSecret, Principal, Refusal,
    RefusalCode, Timestamp, TokenId, TokenName, TokenRecord, TokenSecret, VerifyRequest,
};

use super::manager::{CreatedToken, TokenManager};
use crate::{Error, Result};

/// A verified agent credential: the agent it authenticates, as a principal.
#[derive(Debug, Clone)]
pub struct AgentCredentialContext {
    /// The agent.
    pub agent: AgentId,
    /// The credential presented.
    pub credential: TokenId,
    /// The credential's metadata.
    pub record: Arc<TokenRecord>,
}

impl AgentCredentialContext {
    /// The principal the agent acts as.
    pub fn principal(&self) -> Principal {
        Principal::Agent { id: self.agent, credential: self.credential }
    }
}

impl TokenManager {
    /// Verifies an agent credential. Refused (`Error::Refused`) like an API token — `malformed`,
    /// `not_found`, `revoked`, `expired`, `ip_not_allowed` — and with `agent_paused` or
    /// `agent_disabled` when its agent may not act now. An API token is `malformed` here.
    pub async fn verify_agent_credential(
        &self,
        presented: &str,
        request: &VerifyRequest,
    ) -> Result<AgentCredentialContext> {
        let secret =
            PresentedSecret::parse(&self.agent_prefix, presented).map_err(|_| Refusal::new(RefusalCode::Malformed))?;
        let now = self.now();
        let (record, matched) = self.lookup(secret, now).await?;
        let Some(agent) = record.agent else {
            return Err(Refusal::new(RefusalCode::NotFound).into());
        };
        super::verify::check(&record, matched, request, now)?;
        match agent.status {
            AgentStatus::Active => {}
            AgentStatus::Paused => return Err(Refusal::new(RefusalCode::AgentPaused).into()),
            AgentStatus::Disabled => return Err(Refusal::new(RefusalCode::AgentDisabled).into()),
        }
        self.last_used.record(record.id, now);
        Ok(AgentCredentialContext { agent: agent.id, credential: record.id, record })
    }

    /// Issues a credential for `agent`, expiring at `expires_at`. The caller (the agent service) has
    /// authorized it; the store refuses a deleted or disabled agent.
    pub(crate) async fn issue_credential(
        &self,
        principal: &Principal,
        agent: &AgentRecord,
        name: TokenName,
        expires_at: Timestamp,
    ) -> Result<CreatedToken> {
        let now = self.now();
        let owner = self.store.owner(&agent.owner).await?;
        if !owner.active {
            return Err(Error::Conflict("the agent's owner is not active".to_owned()));
        }
        let project_name = match agent.project {
            Some(project) => Some(self.store.project(&project).await?.name),
            None => None,
        };
        let secret = TokenSecret::generate(&self.agent_prefix)
            .map_err(|error| Error::Config(format!("cannot generate a credential: {error}")))?;
        let mut token = NewToken::new(name, agent.owner);
        token.project = agent.project;
        token.permission = Permission::ReadOnly;
        token.expires_at = Some(expires_at);
        let insert = TokenInsert {
            id: TokenId::generate(),
            owner_name: owner.name.to_owner(),
            owner_role: owner.role,
            project_name,
            imposed: tollgate_types::Imposed::ALL,
            token,
            hash: self.hasher.hash(&secret),
            key_id: self.hasher.current_key_id(),
            display_hint: secret.display_hint(),
            created_at: now,
            agent: Some(agent.id),
        };
        let mut event = AuditEvent::new(principal.actor(), "agent.credential.create", insert.id, now);
        event.after = Some(serde_json::json!({
            "agent": agent.id,
            "name": insert.token.name,
            "expires_at": expires_at,
            "display_hint": insert.display_hint,
        }));
        let record = self.store.insert_token(&insert, &event).await?;
        Ok(CreatedToken { secret, record })
    }
}
