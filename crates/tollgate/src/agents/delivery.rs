//! Delivering a provider key: decrypted only for the agent it is assigned to, authenticated by its
//! own credential, and audited (agent, key, credential, client address) before it leaves.

use std::fmt;

use serde::Serialize;
use tollgate_types::{
    AgentId, AgentStatus, AuditEvent, BaseUrl, ProviderKeyId, ProviderName, ProviderSecret, Refusal, RefusalCode,
};

use super::AgentService;
use crate::authz::{Operation, authorize};
use crate::{Caller, Error, Result};

/// A provider key on its way to its agent. `Debug` is redacted; the secret is zeroized on drop.
#[derive(Serialize)]
pub struct DeliveredKey {
    /// Which key.
    pub provider_key_id: ProviderKeyId,
    /// Its provider.
    pub provider: ProviderName,
    /// Where the provider's API lives, when the key names it.
    pub base_url: Option<BaseUrl>,
    /// The key itself.
    #[serde(skip)]
    pub secret: ProviderSecret,
}

impl fmt::Debug for DeliveredKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeliveredKey")
            .field("provider_key_id", &self.provider_key_id)
            .field("provider", &self.provider)
            .finish_non_exhaustive()
    }
}

/// The one answer for every refusal after authentication: another agent's id, no key assigned, a
/// disabled or deleted key. It never tells which, so it never tells whether a key exists.
fn no_key() -> Error {
    Error::NotFound { entity: "provider_key" }
}

impl AgentService {
    /// Delivers the provider key assigned to `agent` to that agent (the caller's principal must be
    /// `Principal::Agent` for the same id, from [`AgentService::authenticate`]). The agent's status,
    /// the assignment and the key are read fresh from the store; the delivery is audited before the
    /// key is returned.
    pub async fn deliver_provider_key(&self, caller: &Caller, agent: &AgentId) -> Result<DeliveredKey> {
        authorize(&caller.principal, Operation::ReceiveProviderKey { agent: *agent }).map_err(|_| no_key())?;
        let delivered = self.unseal_assigned_key(agent, None).await?;
        let event = self.delivery_event(caller, agent, &delivered, None);
        self.store.append_audit(&event).await?;
        Ok(delivered)
    }

    /// Reads and decrypts the key assigned to `agent` (of `provider`, when named), checking the
    /// agent's status and the assignment; delivers nothing and audits nothing by itself.
    pub(super) async fn unseal_assigned_key(
        &self,
        agent: &AgentId,
        provider: Option<&ProviderName>,
    ) -> Result<DeliveredKey> {
        let delivery = self.store.delivery(agent).await.map_err(|_| no_key())?.ok_or_else(no_key)?;
        match delivery.agent.status {
            AgentStatus::Active => {}
            AgentStatus::Paused => return Err(Refusal::new(RefusalCode::AgentPaused).into()),
            AgentStatus::Disabled => return Err(Refusal::new(RefusalCode::AgentDisabled).into()),
        }
        let key = &delivery.key;
        let assignment_holds = delivery.agent.providers.allows(&key.provider)
            && (key.project.is_none() || key.project == delivery.agent.project)
            && provider.is_none_or(|provider| *provider == key.provider);
        if !assignment_holds {
            return Err(no_key());
        }
        let plaintext = self.keys.open(&key.id.to_string(), &delivery.sealed.into())?;
        let secret = ProviderSecret::from_decrypted(plaintext)
            .map_err(|_| Error::Config(format!("provider key {} decrypts to text that is not UTF-8", key.id)))?;
        Ok(DeliveredKey {
            provider_key_id: key.id,
            provider: key.provider.clone(),
            base_url: key.base_url.clone(),
            secret,
        })
    }

    /// The audit entry of a delivery: agent, key, credential, client address and lease.
    pub(super) fn delivery_event(
        &self,
        caller: &Caller,
        agent: &AgentId,
        delivered: &DeliveredKey,
        lease: Option<tollgate_types::LeaseId>,
    ) -> AuditEvent {
        let principal = &caller.principal;
        let mut event =
            AuditEvent::new(principal.actor(), "provider_key.deliver", delivered.provider_key_id, self.now());
        event.ip = caller.ip;
        event.after = Some(serde_json::json!({
            "agent": agent,
            "credential": match principal {
                tollgate_types::Principal::Agent { credential, .. } => Some(credential),
                _ => None,
            },
            "lease": lease,
        }));
        event
    }
}
