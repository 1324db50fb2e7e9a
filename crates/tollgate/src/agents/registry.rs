//! Registering, reading, changing, pausing and deleting agents.

use tollgate_store::{AgentFilter, AgentInsert, Page, PageRequest};
use tollgate_types::{
    AgentId, AgentPatch, AgentRecord, AgentStatus, AuditEvent, NewAgent, OwnerId, Permission, Principal, ProjectRole,
    ProviderKeyId, ProviderList,
};

use super::{AgentService, hidden};
use crate::authz::{Operation, authorize};
use crate::tokens::check_reason;
use crate::{Caller, Error, Result};

fn snapshot(agent: &AgentRecord) -> serde_json::Value {
    serde_json::to_value(agent).unwrap_or(serde_json::Value::Null)
}

impl AgentService {
    /// Registers an agent for `agent.owner` (a non-admin registers agents only for itself). Bound to
    /// a project, its owner must be a member of it with the member role; given a provider key, the
    /// caller must be allowed to assign that key to it.
    pub async fn create_agent(&self, caller: &Caller, agent: NewAgent) -> Result<AgentRecord> {
        let principal = &caller.principal;
        if principal.level() != Permission::Admin && principal.owner_id() != Some(agent.owner) {
            return Err(Error::Forbidden("you can register agents only for yourself".to_owned()));
        }
        authorize(principal, Operation::CreateAgent { owner: agent.owner })?;
        let owner = self.store.owner(&agent.owner).await.map_err(hidden("owner"))?;
        if !owner.active {
            return Err(Error::Conflict("the owner is not active".to_owned()));
        }
        if let Some(project) = agent.project {
            self.check_membership(principal, project, agent.owner).await?;
        }
        if let Some(key) = agent.provider_key {
            self.check_assignment(principal, key, agent.owner, agent.project, &agent.providers).await?;
        }
        let now = self.now();
        let insert = AgentInsert { id: AgentId::generate(), owner_name: owner.name.to_owner(), agent, created_at: now };
        let mut event = AuditEvent::new(principal.actor(), "agent.create", insert.id, now);
        event.ip = caller.ip;
        event.after = Some(serde_json::json!({
            "name": insert.agent.name,
            "owner": insert.agent.owner,
            "project": insert.agent.project,
            "providers": insert.agent.providers,
            "provider_key": insert.agent.provider_key,
        }));
        Ok(self.store.insert_agent(&insert, &event).await?)
    }

    /// One agent. Agents the principal may not read are `NotFound`.
    pub async fn agent(&self, principal: &Principal, id: &AgentId) -> Result<AgentRecord> {
        let agent = self.store.agent(id).await.map_err(hidden("agent"))?;
        authorize(principal, Operation::ReadAgents { owner: Some(agent.owner) })
            .map_err(|_| Error::NotFound { entity: "agent" })?;
        Ok(agent)
    }

    /// Lists agents, newest first. A principal that may not read everybody's agents sees its own.
    pub async fn list_agents(
        &self,
        principal: &Principal,
        filter: &AgentFilter,
        page: &PageRequest,
    ) -> Result<Page<AgentRecord>> {
        let mut filter = filter.clone();
        if principal.level() != Permission::Admin {
            if filter.owner.is_some() && filter.owner != principal.owner_id() {
                authorize(principal, Operation::ReadAgents { owner: filter.owner })?;
            }
            filter.owner = principal.owner_id();
        }
        authorize(principal, Operation::ReadAgents { owner: filter.owner })?;
        Ok(self.store.list_agents(&filter, page).await?)
    }

    /// An agent the principal may manage (read first, so an unreadable one is `NotFound`).
    pub(super) async fn agent_to_manage(&self, principal: &Principal, id: &AgentId) -> Result<AgentRecord> {
        let agent = self.agent(principal, id).await?;
        authorize(principal, Operation::ManageAgent { owner: agent.owner })?;
        Ok(agent)
    }

    /// Changes an agent's name, providers, provider key, description or metadata.
    pub async fn update_agent(&self, caller: &Caller, id: &AgentId, patch: &AgentPatch) -> Result<AgentRecord> {
        if patch.is_empty() {
            return Err(tollgate_types::ValidationError::new("patch", "names no field to change").into());
        }
        let principal = &caller.principal;
        let before = self.agent_to_manage(principal, id).await?;
        let providers = patch.providers.as_ref().unwrap_or(&before.providers);
        let key = match patch.provider_key {
            Some(key) => key,
            None => before.provider_key,
        };
        if let Some(key) = key
            && (patch.provider_key.is_some() || patch.providers.is_some())
        {
            self.check_assignment(principal, key, before.owner, before.project, providers).await?;
        }
        let now = self.now();
        let mut event = AuditEvent::new(principal.actor(), "agent.update", id, now);
        event.ip = caller.ip;
        event.before = Some(snapshot(&before));
        Ok(self.store.update_agent(id, patch, now, &event).await?)
    }

    /// Pauses, resumes or disables an agent: its credentials are refused (or accepted again) on the
    /// very next request in this process. Only an admin brings back a disabled agent.
    pub async fn set_agent_status(
        &self,
        caller: &Caller,
        id: &AgentId,
        status: AgentStatus,
        reason: Option<&str>,
    ) -> Result<AgentRecord> {
        check_reason(reason)?;
        let principal = &caller.principal;
        let before = self.agent(principal, id).await?;
        authorize(principal, Operation::ChangeAgentStatus { owner: before.owner, from: before.status })?;
        let now = self.now();
        let action = match status {
            AgentStatus::Active => "agent.resume",
            AgentStatus::Paused => "agent.pause",
            AgentStatus::Disabled => "agent.disable",
        };
        let mut event = AuditEvent::new(principal.actor(), action, id, now);
        event.ip = caller.ip;
        event.reason = reason.map(str::to_owned);
        event.before = Some(serde_json::json!({ "status": before.status }));
        let record = self.store.set_agent_status(id, status, now, &event).await;
        // Cached credentials carry the old status: dropping them after the write also drops any
        // lookup that read the old row (the cache's epoch), so the next verify reads the new one.
        self.tokens.invalidate_cache();
        Ok(record?)
    }

    /// Deletes an agent and revokes its credentials.
    pub async fn delete_agent(&self, caller: &Caller, id: &AgentId) -> Result<()> {
        let principal = &caller.principal;
        let before = self.agent_to_manage(principal, id).await?;
        let now = self.now();
        let mut event = AuditEvent::new(principal.actor(), "agent.delete", id, now);
        event.ip = caller.ip;
        event.before = Some(snapshot(&before));
        let result = self.store.delete_agent(id, now, &event).await;
        self.tokens.invalidate_cache();
        result.map(drop).map_err(Into::into)
    }

    /// Checks that `owner` may work for `project`: a member of it with the member role. A project the
    /// principal does not belong to is `NotFound` for a non-admin.
    pub(super) async fn check_membership(
        &self,
        principal: &Principal,
        project: tollgate_types::ProjectId,
        owner: OwnerId,
    ) -> Result<()> {
        self.store.project(&project).await.map_err(hidden("project"))?;
        let role = self.store.project_role(&project, &owner).await?;
        if role != Some(ProjectRole::Member) {
            if principal.level() != Permission::Admin {
                return Err(Error::NotFound { entity: "project" });
            }
            return Err(Error::Conflict(
                "the owner is not a member of the project (add it with the member role first)".to_owned(),
            ));
        }
        Ok(())
    }

    /// Checks that the principal may give provider key `key` to an agent of `agent_owner` in
    /// `project` allowed `providers`: the key's owner (or an admin) assigning to an agent it owns
    /// (or any, for an admin); the key enabled, of an allowed provider, and of the agent's project
    /// when the key is bound to one. A key the principal may not read is `NotFound`.
    pub(super) async fn check_assignment(
        &self,
        principal: &Principal,
        key: ProviderKeyId,
        agent_owner: OwnerId,
        project: Option<tollgate_types::ProjectId>,
        providers: &ProviderList,
    ) -> Result<()> {
        let record = self.provider_key(principal, &key).await?;
        authorize(principal, Operation::AssignProviderKey { key_owner: record.owner, agent_owner })?;
        if !record.enabled {
            return Err(Error::Conflict("the provider key is disabled".to_owned()));
        }
        if !providers.allows(&record.provider) {
            return Err(tollgate_types::ValidationError::new(
                "provider_key_id",
                "is a key of a provider the agent may not use (see providers)",
            )
            .into());
        }
        if record.project.is_some() && record.project != project {
            return Err(Error::Conflict("the provider key is assigned to another project".to_owned()));
        }
        Ok(())
    }
}
