//! Conformance cases for [`AgentStore`](crate::AgentStore) and
//! [`ProviderKeyStore`](crate::ProviderKeyStore): agents, the status their credentials carry, and
//! provider-key rows with their ciphertext.

use tollgate_types::{
    AgentId, AgentName, AgentPatch, AgentStatus, Description, Metadata, NewAgent, NewProviderKey, OwnerRecord,
    ProviderKeyId, ProviderKeyPatch, ProviderList, ProviderName, TokenStatus,
};

use super::fixtures::{T0, at, audit, chain_actions, insert, owner, refuses_missing};
use crate::{
    AgentFilter, AgentInsert, NewSecret, PageRequest, ProviderKeyFilter, ProviderKeyInsert, Rewrap, SealedKey,
    StatusFilter, Store, StoreError, TokenFilter,
};

/// Bytes shaped like a real ciphertext (the store never looks inside).
fn sealed(tag: u8, master_key_id: u32) -> SealedKey {
    SealedKey { ciphertext: vec![tag; 40], nonce: vec![tag; 12], wrapped_key: vec![tag; 60], master_key_id }
}

pub(crate) async fn key(store: &dyn Store, owner: &OwnerRecord, tag: u8) -> ProviderKeyId {
    let insert = ProviderKeyInsert {
        id: ProviderKeyId::generate(),
        key: NewProviderKey {
            provider: ProviderName::parse("openai").unwrap(),
            base_url: None,
            description: Description::default(),
            owner: owner.id,
            project: None,
            balance: None,
            metadata: Metadata::default(),
        },
        owner_name: owner.name.to_owner(),
        masked: format!("sk-…{tag:04}"),
        sealed: sealed(tag, 1),
        created_at: T0,
    };
    store.insert_provider_key(&insert, &audit("provider_key.create", insert.id, T0)).await.unwrap().id
}

pub(crate) async fn agent(store: &dyn Store, owner: &OwnerRecord, key: Option<ProviderKeyId>) -> AgentId {
    let insert = AgentInsert {
        id: AgentId::generate(),
        agent: NewAgent {
            name: AgentName::parse("worker").unwrap(),
            owner: owner.id,
            project: None,
            providers: ProviderList::parse(&["openai"]).unwrap(),
            provider_key: key,
            description: Description::default(),
            metadata: Metadata::parse(serde_json::json!({ "team": "search" })).unwrap(),
        },
        owner_name: owner.name.to_owner(),
        created_at: at(1),
    };
    store.insert_agent(&insert, &audit("agent.create", insert.id, at(1))).await.unwrap().id
}

/// A credential of `agent`: a token insert bound to it.
pub(crate) fn credential(owner: &OwnerRecord, agent: AgentId) -> crate::TokenInsert {
    crate::TokenInsert { agent: Some(agent), ..insert("credential", owner, None, at(2)) }
}

/// Agents round-trip, list by owner and status, change, and are audited; deleted ones are gone.
pub async fn agents_round_trip_list_and_change(store: &dyn Store) {
    let alice = owner(store, "alice").await;
    let bob = owner(store, "bob").await;
    let key = key(store, &alice, 1).await;
    let first = agent(store, &alice, Some(key)).await;
    let second = agent(store, &bob, None).await;
    let read = store.agent(&first).await.unwrap();
    assert_eq!((read.owner, read.provider_key, read.status), (alice.id, Some(key), AgentStatus::Active));
    assert_eq!(read.metadata.as_map()["team"], "search");
    let of_alice = AgentFilter { owner: Some(alice.id), ..AgentFilter::default() };
    let listed = store.list_agents(&of_alice, &PageRequest::first(10)).await.unwrap();
    assert_eq!(listed.items.iter().map(|agent| agent.id).collect::<Vec<_>>(), [first]);
    let all = store.list_agents(&AgentFilter::default(), &PageRequest::first(1)).await.unwrap();
    assert_eq!((all.items[0].id, all.next_cursor.is_some()), (second, true), "newest first, paged");

    let patch = AgentPatch {
        name: Some(AgentName::parse("renamed").unwrap()),
        provider_key: Some(None),
        ..AgentPatch::default()
    };
    let changed = store.update_agent(&first, &patch, at(5), &audit("agent.update", first, at(5))).await.unwrap();
    assert_eq!((changed.name.as_str(), changed.provider_key, changed.updated_at), ("renamed", None, at(5)));
    assert_eq!(changed.providers, read.providers, "fields not in the patch stay");
    let missing = AgentPatch { provider_key: Some(Some(ProviderKeyId::generate())), ..AgentPatch::default() };
    let error = store.update_agent(&first, &missing, at(6), &audit("agent.update", first, at(6))).await.unwrap_err();
    assert!(refuses_missing(&error, "provider_key"), "{error:?}");

    store.delete_agent(&second, at(7), &audit("agent.delete", second, at(7))).await.unwrap();
    assert!(matches!(store.agent(&second).await, Err(StoreError::NotFound { .. })));
    assert!(matches!(
        store.delete_agent(&second, at(8), &audit("agent.delete", second, at(8))).await,
        Err(StoreError::NotFound { .. })
    ));
    let actions = chain_actions(store).await;
    assert_eq!(actions.iter().filter(|action| action.starts_with("agent.")).count(), 4, "{actions:?}");
}

/// A credential carries its agent's status, kept current in the same transaction as the change;
/// deleting the agent revokes it; a disabled or deleted agent gets no new credential.
pub async fn credentials_follow_their_agent(store: &dyn Store) {
    let alice = owner(store, "alice").await;
    let agent = agent(store, &alice, None).await;
    let insert = credential(&alice, agent);
    let created = store.insert_token(&insert, &audit("agent.credential.create", insert.id, at(2))).await.unwrap();
    assert_eq!(created.agent.map(|binding| (binding.id, binding.status)), Some((agent, AgentStatus::Active)));
    for status in [AgentStatus::Paused, AgentStatus::Disabled, AgentStatus::Active] {
        store.set_agent_status(&agent, status, at(3), &audit("agent.status", agent, at(3))).await.unwrap();
        let found = store.token_by_hash(&insert.hash, at(3)).await.unwrap().unwrap();
        assert_eq!(found.record.agent.unwrap().status, status);
    }
    let before = chain_actions(store).await.len();
    store.set_agent_status(&agent, AgentStatus::Active, at(4), &audit("agent.resume", agent, at(4))).await.unwrap();
    assert_eq!(chain_actions(store).await.len(), before, "setting the status it has writes nothing");

    // API-token lists leave credentials out; the agent's list has only them.
    let plain = insert_api_token(store, &alice).await;
    let tokens = store.list_tokens(&TokenFilter::default(), &PageRequest::first(10), at(4)).await.unwrap();
    assert_eq!(tokens.items.iter().map(|token| token.id).collect::<Vec<_>>(), [plain]);
    let of_agent = TokenFilter { agent: Some(agent), status: StatusFilter::All, ..TokenFilter::default() };
    let credentials = store.list_tokens(&of_agent, &PageRequest::first(10), at(4)).await.unwrap();
    assert_eq!(credentials.items.iter().map(|token| token.id).collect::<Vec<_>>(), [insert.id]);

    store.set_agent_status(&agent, AgentStatus::Disabled, at(5), &audit("agent.disable", agent, at(5))).await.unwrap();
    let refused = credential(&alice, agent);
    let error = store.insert_token(&refused, &audit("agent.credential.create", refused.id, at(5))).await.unwrap_err();
    assert!(matches!(error, StoreError::Conflict(_)), "{error:?}");
    let revoked = store.delete_agent(&agent, at(6), &audit("agent.delete", agent, at(6))).await.unwrap();
    assert_eq!(revoked, [insert.id]);
    assert_eq!(store.token(&insert.id).await.unwrap().status(at(6)), TokenStatus::Revoked);
    let late = credential(&alice, agent);
    let error = store.insert_token(&late, &audit("agent.credential.create", late.id, at(7))).await.unwrap_err();
    assert!(refuses_missing(&error, "agent"), "{error:?}");
}

async fn insert_api_token(store: &dyn Store, owner: &OwnerRecord) -> tollgate_types::TokenId {
    let token = insert("api", owner, None, at(2));
    store.insert_token(&token, &audit("token.create", token.id, at(2))).await.unwrap().id
}

/// Provider keys round-trip without their ciphertext, list by owner, change (a new secret replaces
/// the old), and a deleted one loses its ciphertext and its agents in one step.
pub async fn provider_keys_round_trip_change_and_delete(store: &dyn Store) {
    let alice = owner(store, "alice").await;
    let bob = owner(store, "bob").await;
    let first = key(store, &alice, 1).await;
    let _other = key(store, &bob, 2).await;
    let read = store.provider_key(&first).await.unwrap();
    assert_eq!((read.owner, read.enabled, read.masked.as_str(), read.master_key_id), (alice.id, true, "sk-…0001", 1));
    let of_alice = ProviderKeyFilter { owner: Some(alice.id), ..ProviderKeyFilter::default() };
    let listed = store.list_provider_keys(&of_alice, &PageRequest::first(10)).await.unwrap();
    assert_eq!(listed.items.iter().map(|key| key.id).collect::<Vec<_>>(), [first]);

    let patch = ProviderKeyPatch { enabled: Some(false), ..ProviderKeyPatch::default() };
    let secret = NewSecret { masked: "sk-…9999".to_owned(), sealed: sealed(9, 2) };
    let event = audit("provider_key.update", first, at(3));
    let changed = store.update_provider_key(&first, &patch, Some(&secret), at(3), &event).await.unwrap();
    assert_eq!((changed.enabled, changed.masked.as_str(), changed.master_key_id), (false, "sk-…9999", 2));
    let stored = store.sealed_provider_keys().await.unwrap();
    assert_eq!(stored.iter().find(|(id, _)| *id == first).unwrap().1, sealed(9, 2));

    let holder = agent(store, &alice, Some(first)).await;
    let lost = store.delete_provider_key(&first, at(4), &audit("provider_key.delete", first, at(4))).await.unwrap();
    assert_eq!(lost, [holder]);
    assert_eq!(store.agent(&holder).await.unwrap().provider_key, None);
    assert!(refuses_missing(&store.provider_key(&first).await.unwrap_err(), "provider_key"));
    assert!(store.sealed_provider_keys().await.unwrap().iter().all(|(id, _)| *id != first), "its ciphertext is erased");
    let error =
        store.delete_provider_key(&first, at(5), &audit("provider_key.delete", first, at(5))).await.unwrap_err();
    assert!(refuses_missing(&error, "provider_key"));
}

/// The delivery read: the agent and its enabled key with the ciphertext, else nothing.
pub async fn delivery_reads_the_agent_and_its_enabled_key(store: &dyn Store) {
    let alice = owner(store, "alice").await;
    let key = key(store, &alice, 7).await;
    let with_key = agent(store, &alice, Some(key)).await;
    let without = agent(store, &alice, None).await;
    let delivery = store.delivery(&with_key).await.unwrap().unwrap();
    assert_eq!((delivery.agent.id, delivery.key.id, delivery.sealed.clone()), (with_key, key, sealed(7, 1)));
    assert!(store.delivery(&without).await.unwrap().is_none());
    assert!(refuses_missing(&store.delivery(&AgentId::generate()).await.unwrap_err(), "agent"));
    let disable = ProviderKeyPatch { enabled: Some(false), ..ProviderKeyPatch::default() };
    let event = audit("provider_key.disable", key, at(3));
    store.update_provider_key(&key, &disable, None, at(3), &event).await.unwrap();
    assert!(store.delivery(&with_key).await.unwrap().is_none(), "a disabled key is not delivered");
}

/// Re-wrapping replaces wrapped keys in one transaction, skipping rows that moved since they were
/// read; the counts by master key follow.
pub async fn rewrapping_swaps_only_rows_still_under_the_old_key(store: &dyn Store) {
    let alice = owner(store, "alice").await;
    let first = key(store, &alice, 1).await;
    let second = key(store, &alice, 2).await;
    assert_eq!(store.provider_keys_by_master_key().await.unwrap(), [(1, 2)]);
    let rewraps = [
        Rewrap { id: first, from: 1, wrapped_key: vec![0xAB; 60], master_key_id: 2 },
        Rewrap { id: second, from: 5, wrapped_key: vec![0xCD; 60], master_key_id: 2 },
    ];
    let changed = store.rewrap_provider_keys(&rewraps, &audit("vault.rewrap", "master_key:2", at(2))).await.unwrap();
    assert_eq!(changed, 1, "the second row was not under master key 5");
    assert_eq!(store.provider_keys_by_master_key().await.unwrap(), [(1, 1), (2, 1)]);
    let stored = store.sealed_provider_keys().await.unwrap();
    let first_sealed = &stored.iter().find(|(id, _)| *id == first).unwrap().1;
    assert_eq!((first_sealed.wrapped_key.clone(), first_sealed.ciphertext.clone()), (vec![0xAB; 60], vec![1; 40]));
    assert_eq!(chain_actions(store).await.last().map(String::as_str), Some("vault.rewrap"));
}
