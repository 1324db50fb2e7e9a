//! Conformance cases for [`TokenStore`](crate::TokenStore).

use std::collections::HashSet;

use tollgate_types::{
    Description, Imposed, IpAllowList, Permission, Role, Scope, TokenId, TokenName, TokenPatch, TokenRecord,
    TokenStatus, ToolList,
};

use super::fixtures::{
    T0, at, audit, create_token as create, create_user, hash_for, insert, join, owner, project, user_owner,
};
use crate::{HashMatch, PageRequest, SecretRotation, StatusFilter, Store, StoreError, TokenFilter};

/// Every field survives a round trip.
pub async fn insert_and_get_round_trip(store: &dyn Store) {
    // Tokens belong to an existing, active owner; here a user, in an existing project.
    let alice = user_owner(&create_user(store, "alice", Role::User).await);
    let search = project(store, "search").await;
    join(store, &alice, &search, 0).await;
    let mut insert = insert("ci deploy", &alice, Some(&search), T0);
    insert.imposed = Imposed::IP_ALLOW.with(Imposed::EXPIRES_AT);
    insert.token.permission = Permission::Admin;
    insert.token.scopes = vec![Scope::parse("chat:write").unwrap(), Scope::parse("tokens:verify").unwrap()];
    insert.token.allowed_tools = ToolList::parse(&["search", "code:exec"]).unwrap();
    insert.token.ip_allow = IpAllowList::parse(&["10.0.0.0/8", "2001:db8::/32"]).unwrap();
    insert.token.expires_at = Some(at(3_600));
    insert.token.description = Description::parse("deploys from CI — ünïcode ok").unwrap();
    let created = store.insert_token(&insert, &audit("token.create", insert.id, T0)).await.unwrap();
    let fetched = store.token(&insert.id).await.unwrap();
    assert_eq!(created, fetched);
    assert_eq!(fetched.id, insert.id);
    assert_eq!(fetched.name, insert.token.name);
    assert_eq!(fetched.owner, alice.id);
    assert_eq!(fetched.owner_name.as_str(), "alice");
    assert_eq!(fetched.project, Some(search.id));
    assert_eq!(fetched.project_name.as_ref().map(|name| name.as_str()), Some("search"));
    assert_eq!(fetched.imposed, Imposed::IP_ALLOW.with(Imposed::EXPIRES_AT));
    assert_eq!(fetched.permission, Permission::Admin);
    assert_eq!(fetched.scopes, insert.token.scopes);
    assert_eq!(fetched.allowed_tools, insert.token.allowed_tools);
    assert_eq!(fetched.ip_allow, insert.token.ip_allow);
    assert_eq!(fetched.expires_at, Some(at(3_600)));
    assert_eq!(fetched.description, insert.token.description);
    assert_eq!(fetched.display_hint, insert.display_hint);
    assert_eq!(fetched.key_id, insert.key_id);
    assert_eq!(fetched.created_at, T0);
    assert_eq!(fetched.updated_at, T0);
    assert_eq!((fetched.revoked_at, fetched.last_used_at, fetched.rotated_at), (None, None, None));
    assert_eq!(fetched.status(at(10)), TokenStatus::Active);
    assert_eq!(fetched.status(at(3_600)), TokenStatus::Expired);
}

/// A second token with the same id or the same hash is a conflict, and the first is untouched.
pub async fn duplicate_id_or_hash_conflicts(store: &dyn Store) {
    let first = insert("one", &owner(store, "alice").await, None, T0);
    store.insert_token(&first, &audit("token.create", first.id, T0)).await.unwrap();
    let mut same_hash = insert("two", &owner(store, "bob").await, None, T0);
    same_hash.hash = first.hash;
    let error = store.insert_token(&same_hash, &audit("token.create", same_hash.id, T0)).await.unwrap_err();
    assert!(matches!(error, StoreError::Conflict(_)), "{error:?}");
    let mut same_id = insert("three", &owner(store, "carol").await, None, T0);
    same_id.id = first.id;
    let error = store.insert_token(&same_id, &audit("token.create", same_id.id, T0)).await.unwrap_err();
    assert!(matches!(error, StoreError::Conflict(_)), "{error:?}");
    assert_eq!(store.token(&first.id).await.unwrap().name.as_str(), "one");
    assert!(matches!(store.token(&same_hash.id).await, Err(StoreError::NotFound { .. })));
}

/// Unknown ids are `NotFound` for every operation that names one.
pub async fn missing_token_is_not_found(store: &dyn Store) {
    let id = TokenId::generate();
    let event = audit("token.revoke", id, T0);
    assert!(matches!(store.token(&id).await, Err(StoreError::NotFound { entity: "token" })));
    assert!(matches!(store.revoke_token(&id, None, &event).await, Err(StoreError::NotFound { .. })));
    let patch = TokenPatch { name: Some(TokenName::parse("x").unwrap()), ..TokenPatch::default() };
    assert!(matches!(store.update_token(&id, &patch, T0, &event).await, Err(StoreError::NotFound { .. })));
}

/// Lookup by hash finds the current secret and nothing else.
pub async fn lookup_by_hash_finds_only_known_hashes(store: &dyn Store) {
    let created = create(store, "one", &owner(store, "alice").await, None, 0).await;
    let found = store.token_by_hash(&hash_for(&created.id, 0), at(1)).await.unwrap().expect("found");
    assert_eq!(found.record, created);
    assert_eq!(found.matched, HashMatch::Current);
    assert!(store.token_by_hash(&hash_for(&created.id, 9), at(1)).await.unwrap().is_none());
}

/// Filters combine (owner and project by id); status is judged at the time given.
pub async fn list_filters_by_owner_project_and_status(store: &dyn Store) {
    let (alice, bob) = (owner(store, "alice").await, owner(store, "bob").await);
    let (search, chat) = (project(store, "search").await, project(store, "chat").await);
    let alice_search = create(store, "a1", &alice, Some(&search), 0).await;
    let alice_chat = create(store, "a2", &alice, Some(&chat), 1).await;
    let bob_search = create(store, "b1", &bob, Some(&search), 2).await;
    store.revoke_token(&alice_chat.id, Some("leaked"), &audit("token.revoke", alice_chat.id, at(3))).await.unwrap();
    let mut expiring = insert("b2", &bob, None, at(4));
    expiring.token.expires_at = Some(at(100));
    store.insert_token(&expiring, &audit("token.create", expiring.id, at(4))).await.unwrap();

    let ids = |records: Vec<TokenRecord>| records.into_iter().map(|record| record.id).collect::<Vec<_>>();
    let list = |filter: TokenFilter, now| async move {
        ids(store.list_tokens(&filter, &PageRequest::first(100), now).await.unwrap().items)
    };

    let of_alice = TokenFilter { owner: Some(alice.id), ..Default::default() };
    assert_eq!(list(of_alice, at(10)).await, vec![alice_search.id]);
    let all_alice = TokenFilter { owner: Some(alice.id), status: StatusFilter::All, ..Default::default() };
    assert_eq!(list(all_alice, at(10)).await, vec![alice_chat.id, alice_search.id]);
    let in_search = TokenFilter { project: Some(search.id), status: StatusFilter::All, ..Default::default() };
    assert_eq!(list(in_search, at(10)).await, vec![bob_search.id, alice_search.id]);
    let bob_in_search =
        TokenFilter { owner: Some(bob.id), project: Some(search.id), status: StatusFilter::All, agent: None };
    assert_eq!(list(bob_in_search, at(10)).await, vec![bob_search.id]);
    let revoked = TokenFilter { status: StatusFilter::Revoked, ..Default::default() };
    assert_eq!(list(revoked, at(10)).await, vec![alice_chat.id]);
    let active_bob = TokenFilter { owner: Some(bob.id), ..Default::default() };
    assert_eq!(list(active_bob.clone(), at(10)).await, vec![expiring.id, bob_search.id]);
    assert_eq!(list(active_bob, at(100)).await, vec![bob_search.id]);
    let expired = TokenFilter { status: StatusFilter::Expired, ..Default::default() };
    assert_eq!(list(expired.clone(), at(100)).await, vec![expiring.id]);
    assert!(list(expired, at(99)).await.is_empty());
}

/// Walking the pages yields every token exactly once, newest first, and the last page has no cursor.
pub async fn list_pages_cover_everything_once_newest_first(store: &dyn Store) {
    let alice = owner(store, "alice").await;
    let mut created = Vec::new();
    for index in 0..7 {
        created.push(create(store, &format!("t{index}"), &alice, None, index).await.id);
    }
    let filter = TokenFilter { status: StatusFilter::All, ..Default::default() };
    let mut seen = Vec::new();
    let mut page = PageRequest::first(3);
    loop {
        let result = store.list_tokens(&filter, &page, at(100)).await.unwrap();
        assert!(result.items.len() <= 3);
        seen.extend(result.items.iter().map(|record| record.id));
        match result.next_cursor {
            Some(cursor) => page = PageRequest::after(3, cursor),
            None => break,
        }
    }
    created.reverse();
    assert_eq!(seen, created);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 7);
}

/// Revoking twice keeps the first revocation and writes one audit entry.
pub async fn revoke_is_idempotent_and_audited_once(store: &dyn Store) {
    let created = create(store, "one", &owner(store, "alice").await, None, 0).await;
    let first =
        store.revoke_token(&created.id, Some("leaked"), &audit("token.revoke", created.id, at(5))).await.unwrap();
    assert_eq!(first.revoked_at, Some(at(5)));
    assert_eq!(first.revoke_reason.as_deref(), Some("leaked"));
    let second =
        store.revoke_token(&created.id, Some("again"), &audit("token.revoke", created.id, at(9))).await.unwrap();
    assert_eq!(second, first);
    let chain = store.audit_chain(0, 100).await.unwrap();
    let revokes = chain.iter().filter(|entry| entry.event.action == "token.revoke").count();
    assert_eq!(revokes, 1);
    let found = store.token_by_hash(&hash_for(&created.id, 0), at(10)).await.unwrap().expect("still found");
    assert_eq!(found.record.status(at(10)), TokenStatus::Revoked);
}

/// After rotation the new hash is current, the old one works until the grace period ends.
pub async fn rotate_keeps_the_old_secret_for_the_grace_period(store: &dyn Store) {
    let created = create(store, "one", &owner(store, "alice").await, None, 0).await;
    let rotation = SecretRotation {
        id: created.id,
        hash: hash_for(&created.id, 1),
        key_id: created.key_id,
        display_hint: "tg_NeWw…hint".to_owned(),
        previous_valid_until: Some(at(60)),
        at: at(10),
    };
    let rotated = store.rotate_token(&rotation, &audit("token.rotate", created.id, at(10))).await.unwrap();
    assert_eq!(rotated.id, created.id);
    assert_eq!(rotated.rotated_at, Some(at(10)));
    assert_eq!(rotated.previous_valid_until, Some(at(60)));
    assert_eq!(rotated.display_hint, "tg_NeWw…hint");
    let new = store.token_by_hash(&hash_for(&created.id, 1), at(11)).await.unwrap().expect("new secret");
    assert_eq!(new.matched, HashMatch::Current);
    let old = store.token_by_hash(&hash_for(&created.id, 0), at(59)).await.unwrap().expect("old in grace");
    assert_eq!(old.matched, HashMatch::Previous);
    assert!(store.token_by_hash(&hash_for(&created.id, 0), at(60)).await.unwrap().is_none());

    // A second rotation drops the first secret entirely; the second one gets the grace slot.
    let again =
        SecretRotation { hash: hash_for(&created.id, 2), previous_valid_until: Some(at(90)), at: at(20), ..rotation };
    store.rotate_token(&again, &audit("token.rotate", created.id, at(20))).await.unwrap();
    assert!(store.token_by_hash(&hash_for(&created.id, 0), at(21)).await.unwrap().is_none());
    let previous = store.token_by_hash(&hash_for(&created.id, 1), at(21)).await.unwrap().expect("grace");
    assert_eq!(previous.matched, HashMatch::Previous);
}

/// Rotating a revoked token is a conflict and leaves it revoked; a missing one is not found.
pub async fn rotate_of_revoked_or_missing_token_is_refused(store: &dyn Store) {
    let created = create(store, "one", &owner(store, "alice").await, None, 0).await;
    store.revoke_token(&created.id, None, &audit("token.revoke", created.id, at(1))).await.unwrap();
    let rotation = SecretRotation {
        id: created.id,
        hash: hash_for(&created.id, 1),
        key_id: created.key_id,
        display_hint: "tg_x…y".to_owned(),
        previous_valid_until: None,
        at: at(2),
    };
    let error = store.rotate_token(&rotation, &audit("token.rotate", created.id, at(2))).await.unwrap_err();
    assert!(matches!(error, StoreError::Conflict(_)), "{error:?}");
    assert!(store.token_by_hash(&hash_for(&created.id, 1), at(3)).await.unwrap().is_none());
    let missing = SecretRotation { id: TokenId::generate(), ..rotation };
    let error = store.rotate_token(&missing, &audit("token.rotate", missing.id, at(2))).await.unwrap_err();
    assert!(matches!(error, StoreError::NotFound { .. }), "{error:?}");
}

/// A patch changes what it names and nothing else.
pub async fn update_changes_only_the_patched_fields(store: &dyn Store) {
    let search = project(store, "search").await;
    let created = create(store, "one", &owner(store, "alice").await, Some(&search), 0).await;
    let patch = TokenPatch {
        name: Some(TokenName::parse("renamed").unwrap()),
        allowed_tools: Some(ToolList::parse(&["search"]).unwrap()),
        expires_at: Some(Some(at(500))),
        ..TokenPatch::default()
    };
    let updated =
        store.update_token(&created.id, &patch, at(7), &audit("token.update", created.id, at(7))).await.unwrap();
    assert_eq!(updated.name.as_str(), "renamed");
    assert_eq!(updated.allowed_tools.as_slice(), ["search"]);
    assert_eq!(updated.expires_at, Some(at(500)));
    assert_eq!(updated.updated_at, at(7));
    assert_eq!((updated.owner, updated.project, updated.ip_allow), (created.owner, created.project, created.ip_allow));
    assert_eq!((updated.owner_name, updated.project_name), (created.owner_name, created.project_name));
    assert_eq!(updated.imposed, Imposed::NONE, "a patch imposing nothing imposes nothing");
    let clear = TokenPatch { expires_at: Some(None), ..TokenPatch::default() };
    let cleared =
        store.update_token(&created.id, &clear, at(8), &audit("token.update", created.id, at(8))).await.unwrap();
    assert_eq!(cleared.expires_at, None);
    assert_eq!(store.token(&created.id).await.unwrap(), cleared);
}

/// `touch_tokens` sets `last_used_at`, keeps the latest, and ignores unknown ids.
pub async fn touch_records_last_use_and_never_goes_back(store: &dyn Store) {
    let created = create(store, "one", &owner(store, "alice").await, None, 0).await;
    store.touch_tokens(&[(created.id, at(50)), (TokenId::generate(), at(50))]).await.unwrap();
    assert_eq!(store.token(&created.id).await.unwrap().last_used_at, Some(at(50)));
    store.touch_tokens(&[(created.id, at(40))]).await.unwrap();
    assert_eq!(store.token(&created.id).await.unwrap().last_used_at, Some(at(50)));
    store.touch_tokens(&[]).await.unwrap();
}

/// Cleanup removes tokens revoked or expired before the cutoff and keeps everything else.
pub async fn cleanup_deletes_only_long_inactive_tokens(store: &dyn Store) {
    let alice = owner(store, "alice").await;
    let active = create(store, "active", &alice, None, 0).await;
    let revoked_long_ago = create(store, "old revoked", &alice, None, 0).await;
    store.revoke_token(&revoked_long_ago.id, None, &audit("token.revoke", revoked_long_ago.id, at(10))).await.unwrap();
    let revoked_recently = create(store, "new revoked", &alice, None, 0).await;
    store.revoke_token(&revoked_recently.id, None, &audit("token.revoke", revoked_recently.id, at(200))).await.unwrap();
    let mut expired = insert("expired", &alice, None, T0);
    expired.token.expires_at = Some(at(20));
    store.insert_token(&expired, &audit("token.create", expired.id, T0)).await.unwrap();
    let mut expires_later = insert("expires later", &alice, None, T0);
    expires_later.token.expires_at = Some(at(300));
    store.insert_token(&expires_later, &audit("token.create", expires_later.id, T0)).await.unwrap();

    let deleted = store.delete_inactive_tokens(at(100), &audit("token.cleanup", "tokens", at(400))).await.unwrap();
    assert_eq!(deleted, 2);
    for gone in [revoked_long_ago.id, expired.id] {
        assert!(matches!(store.token(&gone).await, Err(StoreError::NotFound { .. })));
    }
    for kept in [active.id, revoked_recently.id, expires_later.id] {
        assert!(store.token(&kept).await.is_ok());
    }
    assert!(store.token_by_hash(&hash_for(&revoked_long_ago.id, 0), at(400)).await.unwrap().is_none());
}
