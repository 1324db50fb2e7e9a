//! Issuing, listing, rotating and revoking an agent's credentials, and authenticating an agent.

use std::time::Duration;

use tollgate_store::{Page, PageRequest, StatusFilter, TokenFilter};
use tollgate_types::{
    AgentId, AgentStatus, Principal, TokenId, TokenName, TokenRecord, ValidationError, VerifyRequest,
};

use super::AgentService;
use crate::authz::{Operation, authorize};
use crate::tokens::Kind;
use crate::{AgentCredentialContext, Caller, CreatedToken, Error, Result};

impl AgentService {
    /// Issues a credential for an agent; the secret (prefix `tga_` by default) is shown once. It
    /// expires after `ttl` (default and maximum: see the builder). A disabled agent gets none.
    pub async fn create_credential(
        &self,
        caller: &Caller,
        agent: &AgentId,
        name: Option<TokenName>,
        ttl: Option<Duration>,
    ) -> Result<CreatedToken> {
        let principal = &caller.principal;
        let record = self.agent_to_manage(principal, agent).await?;
        if record.status == AgentStatus::Disabled {
            return Err(Error::Conflict("the agent is disabled".to_owned()));
        }
        let ttl = ttl.unwrap_or(self.credential_ttl);
        if ttl.is_zero() || ttl > self.max_credential_ttl {
            let days = self.max_credential_ttl.as_secs() / 86_400;
            return Err(
                ValidationError::new("expires_in", format!("must be more than 0 and at most {days} days")).into()
            );
        }
        let name = match name {
            Some(name) => name,
            None => TokenName::parse(&format!("{} credential", record.name))
                .or_else(|_| TokenName::parse("agent credential"))?,
        };
        let expires_at = self.now().saturating_add(ttl);
        self.tokens.issue_credential(principal, &record, name, expires_at).await
    }

    /// The agent's credentials, newest first (`status` as for tokens).
    pub async fn credentials(
        &self,
        principal: &Principal,
        agent: &AgentId,
        status: StatusFilter,
        page: &PageRequest,
    ) -> Result<Page<TokenRecord>> {
        let record = self.agent(principal, agent).await?;
        let filter = TokenFilter { owner: Some(record.owner), project: None, status, agent: Some(record.id) };
        Ok(self.store.list_tokens(&filter, page, self.now()).await?)
    }

    /// A credential of the agent the principal may manage; another agent's is `NotFound`.
    async fn credential_to_manage(&self, principal: &Principal, agent: &AgentId, id: &TokenId) -> Result<()> {
        let record = self.agent_to_manage(principal, agent).await?;
        let credential = self.store.token(id).await.map_err(super::hidden("credential"))?;
        if credential.agent.map(|binding| binding.id) != Some(record.id) {
            return Err(Error::NotFound { entity: "credential" });
        }
        authorize(principal, Operation::ManageAgent { owner: record.owner })
    }

    /// Revokes a credential: refused on the very next verify in this process.
    pub async fn revoke_credential(
        &self,
        caller: &Caller,
        agent: &AgentId,
        id: &TokenId,
        reason: Option<&str>,
    ) -> Result<TokenRecord> {
        self.credential_to_manage(&caller.principal, agent, id).await?;
        self.tokens.revoke_kind(&caller.principal, id, reason, Kind::Credential).await
    }

    /// Rotates a credential: a new secret for the same id; the old one works for `grace`.
    pub async fn rotate_credential(
        &self,
        caller: &Caller,
        agent: &AgentId,
        id: &TokenId,
        grace: Duration,
    ) -> Result<CreatedToken> {
        self.credential_to_manage(&caller.principal, agent, id).await?;
        self.tokens.rotate_kind(&caller.principal, id, grace, Kind::Credential).await
    }

    /// Authenticates an agent by one of its credentials (see
    /// [`TokenManager::verify_agent_credential`](crate::TokenManager::verify_agent_credential)).
    pub async fn authenticate(&self, presented: &str, request: &VerifyRequest) -> Result<AgentCredentialContext> {
        self.tokens.verify_agent_credential(presented, request).await
    }
}
