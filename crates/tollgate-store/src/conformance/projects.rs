//! Conformance cases for [`ProjectStore`](crate::ProjectStore): projects, their members, and the
//! tokens a removed member loses.

use std::collections::HashSet;

use tollgate_types::{
    OwnerId, ProjectId, ProjectMember, ProjectName, ProjectRecord, ProjectRole, Role, ServiceAccountId, TokenStatus,
    UserId,
};

use super::fixtures::{
    T0, at, audit, create_token, create_user, insert, owner, project, project_insert, refuses_missing, sorted,
    user_owner,
};
use crate::{PageRequest, Store, StoreError};

async fn put_member(
    store: &dyn Store,
    project: &ProjectRecord,
    member: OwnerId,
    role: ProjectRole,
    seconds: i64,
) -> crate::Result<ProjectMember> {
    let event = audit("project.put_member", project.id, at(seconds));
    store.put_project_member(&project.id, &member, role, at(seconds), &event).await
}

async fn audit_count(store: &dyn Store) -> usize {
    store.audit_chain(0, 1_000).await.unwrap().len()
}

/// Every field survives a round trip; lookups by id and by name (in any case) agree; the creation
/// is audited; unknown ids are `NotFound` and unknown names `None`.
pub async fn project_insert_and_get_round_trip(store: &dyn Store) {
    let insert = project_insert("Search", at(2));
    let created = store.insert_project(&insert, &audit("project.create", insert.id, at(2))).await.unwrap();
    assert_eq!(created.id, insert.id);
    assert_eq!((created.name.as_str(), created.description.as_str()), ("Search", "the Search project"));
    assert_eq!((created.created_at, created.updated_at), (at(2), at(2)));
    assert_eq!(store.project(&insert.id).await.unwrap(), created);
    for spelling in ["Search", "search", "SEARCH"] {
        let found = store.project_by_name(&ProjectName::parse(spelling).unwrap()).await.unwrap();
        assert_eq!(found.as_ref(), Some(&created), "{spelling}");
    }
    assert_eq!(store.project_by_name(&ProjectName::parse("Sear").unwrap()).await.unwrap(), None);
    let missing = store.project(&ProjectId::generate()).await;
    assert!(matches!(missing, Err(StoreError::NotFound { entity: "project" })), "{missing:?}");
    let chain = store.audit_chain(0, 10).await.unwrap();
    let entries: Vec<_> = chain.iter().map(|entry| (entry.event.action.as_str(), entry.event.target.clone())).collect();
    assert_eq!(entries, [("project.create", insert.id.to_string())]);
}

/// A project name is unique whatever its case; a refused project stores and audits nothing.
pub async fn project_names_are_unique_case_insensitively(store: &dyn Store) {
    let search = project(store, "search").await;
    for taken in ["search", "Search", "SEARCH"] {
        let again = project_insert(taken, at(1));
        let error = store.insert_project(&again, &audit("project.create", again.id, at(1))).await;
        assert!(matches!(error, Err(StoreError::Conflict(_))), "{taken}: {error:?}");
        assert!(matches!(store.project(&again.id).await, Err(StoreError::NotFound { .. })));
    }
    let all = store.list_projects(None, &PageRequest::first(10)).await.unwrap();
    assert_eq!(all.items, [search]);
    assert_eq!(audit_count(store).await, 1);
}

/// Projects list newest first, all of them or those an owner is a member of (in any role), page by
/// page with cursors; a cursor no page handed out is refused.
pub async fn list_projects_pages_all_and_by_member(store: &dyn Store) {
    let alice = owner(store, "alice").await;
    let bob = user_owner(&create_user(store, "bob", Role::User).await);
    let mut all = Vec::new();
    for index in 0..5 {
        let created = project(store, &format!("project {index}")).await;
        if index % 2 == 0 {
            let role = if index == 2 { ProjectRole::Viewer } else { ProjectRole::Member };
            put_member(store, &created, alice.id, role, index).await.unwrap();
        }
        all.push(created.id);
    }
    let walk = |member: Option<OwnerId>| async move {
        let (mut seen, mut pages, mut page) = (Vec::new(), 0, PageRequest::first(2));
        loop {
            let result = store.list_projects(member.as_ref(), &page).await.unwrap();
            assert!(result.items.len() <= 2);
            pages += 1;
            seen.extend(result.items.iter().map(|project| project.id));
            match result.next_cursor {
                Some(cursor) => page = PageRequest::after(2, cursor),
                None => return (seen, pages),
            }
        }
    };
    all.reverse();
    let (seen, pages) = walk(None).await;
    assert_eq!((seen.clone(), pages), (all.clone(), 3));
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 5);
    assert_eq!(walk(Some(alice.id)).await, (vec![all[0], all[2], all[4]], 2));
    assert_eq!(walk(Some(bob.id)).await, (Vec::new(), 1));
    let bad = store.list_projects(None, &PageRequest::after(2, "svc_nope")).await.unwrap_err();
    assert!(matches!(bad, StoreError::InvalidCursor), "{bad:?}");
}

/// Putting a member adds it or changes its role, audited once per real change; putting the role it
/// has changes nothing and writes nothing. Roles and members (with names, by name) read back.
pub async fn put_member_adds_and_changes_roles(store: &dyn Store) {
    let search = project(store, "search").await;
    let zed = user_owner(&create_user(store, "zed", Role::User).await);
    let bot = owner(store, "bot").await;
    let count = audit_count(store).await;

    let added = put_member(store, &search, zed.id, ProjectRole::Viewer, 1).await.unwrap();
    let expected = ProjectMember {
        project_id: search.id,
        member: zed.id,
        member_name: zed.name.clone(),
        role: ProjectRole::Viewer,
        updated_at: at(1),
    };
    assert_eq!(added, expected);
    assert_eq!(audit_count(store).await, count + 1);
    let same = put_member(store, &search, zed.id, ProjectRole::Viewer, 2).await.unwrap();
    assert_eq!(same, expected, "the same role again is a no-op");
    assert_eq!(audit_count(store).await, count + 1, "a no-op writes nothing");
    let promoted = put_member(store, &search, zed.id, ProjectRole::Member, 3).await.unwrap();
    assert_eq!((promoted.role, promoted.updated_at), (ProjectRole::Member, at(3)));
    assert_eq!(audit_count(store).await, count + 2);
    let bot_member = put_member(store, &search, bot.id, ProjectRole::Viewer, 4).await.unwrap();

    assert_eq!(store.project_role(&search.id, &zed.id).await.unwrap(), Some(ProjectRole::Member));
    assert_eq!(store.project_role(&search.id, &bot.id).await.unwrap(), Some(ProjectRole::Viewer));
    let stranger = OwnerId::User(UserId::generate());
    assert_eq!(store.project_role(&search.id, &stranger).await.unwrap(), None);
    assert_eq!(store.project_role(&ProjectId::generate(), &zed.id).await.unwrap(), None);
    // By name: the service account "bot" before the user "zed".
    assert_eq!(store.project_members(&search.id).await.unwrap(), [bot_member, promoted]);
    let empty = project(store, "empty").await;
    assert!(store.project_members(&empty.id).await.unwrap().is_empty());
}

/// A member needs an existing project and an existing owner: `NotFound` naming which, and nothing
/// is stored or audited.
pub async fn members_need_an_existing_project_and_owner(store: &dyn Store) {
    let search = project(store, "search").await;
    let alice = owner(store, "alice").await;
    let count = audit_count(store).await;
    let ghost_project = ProjectRecord { id: ProjectId::generate(), ..search.clone() };
    let error = put_member(store, &ghost_project, alice.id, ProjectRole::Member, 1).await;
    assert!(matches!(error, Err(StoreError::NotFound { entity: "project" })), "{error:?}");
    for ghost in [OwnerId::User(UserId::generate()), OwnerId::ServiceAccount(ServiceAccountId::generate())] {
        let error = put_member(store, &search, ghost, ProjectRole::Member, 1).await;
        assert!(matches!(error, Err(StoreError::NotFound { entity: "owner" })), "{ghost}: {error:?}");
        assert_eq!(store.project_role(&search.id, &ghost).await.unwrap(), None);
    }
    assert!(store.project_members(&search.id).await.unwrap().is_empty());
    assert_eq!(audit_count(store).await, count);
}

/// Removing a member revokes its live tokens bound to that project, and only those: other members'
/// tokens there and its own tokens elsewhere stay live. Each is returned and audited after the
/// removal. Removing someone who is not a member is `NotFound` and writes nothing.
pub async fn removing_a_member_revokes_only_its_tokens_in_the_project(store: &dyn Store) {
    let (search, chat) = (project(store, "search").await, project(store, "chat").await);
    let alice = user_owner(&create_user(store, "alice", Role::User).await);
    let bot = owner(store, "bot").await;
    for (project, member) in [(&search, alice.id), (&search, bot.id), (&chat, alice.id)] {
        put_member(store, project, member, ProjectRole::Member, 1).await.unwrap();
    }
    let in_search = create_token(store, "in search", &alice, Some(&search), 2).await;
    let also_in_search = create_token(store, "also in search", &alice, Some(&search), 3).await;
    let revoked_before = create_token(store, "revoked before", &alice, Some(&search), 4).await;
    store
        .revoke_token(&revoked_before.id, Some("old"), &audit("token.revoke", revoked_before.id, at(5)))
        .await
        .unwrap();
    let in_chat = create_token(store, "in chat", &alice, Some(&chat), 6).await;
    let unbound = create_token(store, "unbound", &alice, None, 7).await;
    let bots = create_token(store, "bot's", &bot, Some(&search), 8).await;
    let count = audit_count(store).await;

    let event = audit("project.remove_member", search.id, at(10));
    let removed = store.remove_project_member(&search.id, &alice.id, &event).await.unwrap();
    assert_eq!((removed.member.project_id, removed.member.member), (search.id, alice.id));
    assert_eq!((removed.member.member_name.clone(), removed.member.role), (alice.name.clone(), ProjectRole::Member));
    assert_eq!(sorted(removed.revoked_tokens.clone()), sorted(vec![in_search.id, also_in_search.id]));
    for id in [in_search.id, also_in_search.id] {
        let token = store.token(&id).await.unwrap();
        assert_eq!((token.status(at(11)), token.revoked_at), (TokenStatus::Revoked, Some(at(10))));
    }
    assert_eq!(store.token(&revoked_before.id).await.unwrap().revoke_reason.as_deref(), Some("old"));
    for kept in [in_chat.id, unbound.id, bots.id] {
        assert_eq!(store.token(&kept).await.unwrap().status(at(11)), TokenStatus::Active);
    }
    let chain = store.audit_chain(0, 1_000).await.unwrap();
    let tail: Vec<_> = chain[count..].iter().map(|entry| (entry.event.action.as_str(), &entry.event.target)).collect();
    assert_eq!(tail.len(), 3, "{tail:?}");
    assert_eq!(tail[0], ("project.remove_member", &search.id.to_string()));
    assert!(tail[1..].iter().all(|(action, _)| *action == "token.revoke"), "{tail:?}");
    let targets = tail[1..].iter().map(|(_, target)| target.parse().unwrap()).collect();
    assert_eq!(sorted(targets), sorted(vec![in_search.id, also_in_search.id]));

    assert_eq!(store.project_role(&search.id, &alice.id).await.unwrap(), None);
    assert_eq!(store.project_role(&chat.id, &alice.id).await.unwrap(), Some(ProjectRole::Member));
    let members: Vec<_> = store.project_members(&search.id).await.unwrap().into_iter().map(|m| m.member).collect();
    assert_eq!(members, [bot.id]);
    let never = owner(store, "never").await;
    let count = audit_count(store).await;
    let event = audit("project.remove_member", search.id, at(12));
    for not_a_member in [alice.id, never.id] {
        let error = store.remove_project_member(&search.id, &not_a_member, &event).await;
        assert!(matches!(error, Err(StoreError::NotFound { entity: "member" })), "{not_a_member}: {error:?}");
    }
    assert_eq!(audit_count(store).await, count, "refusals write nothing");
}

/// A member made a viewer may no longer spend the project: its live tokens bound there are
/// revoked with the change (audited after it); its tokens elsewhere stay live.
pub async fn making_a_member_a_viewer_revokes_its_tokens_in_the_project(store: &dyn Store) {
    let (search, chat) = (project(store, "search").await, project(store, "chat").await);
    let alice = owner(store, "alice").await;
    for project in [&search, &chat] {
        put_member(store, project, alice.id, ProjectRole::Member, 1).await.unwrap();
    }
    let in_search = create_token(store, "in search", &alice, Some(&search), 2).await;
    let in_chat = create_token(store, "in chat", &alice, Some(&chat), 3).await;
    let count = audit_count(store).await;
    let member = put_member(store, &search, alice.id, ProjectRole::Viewer, 10).await.unwrap();
    assert_eq!(member.role, ProjectRole::Viewer);
    assert_eq!(store.token(&in_search.id).await.unwrap().status(at(11)), TokenStatus::Revoked);
    assert_eq!(store.token(&in_chat.id).await.unwrap().status(at(11)), TokenStatus::Active);
    let chain = store.audit_chain(0, 1_000).await.unwrap();
    let tail: Vec<_> = chain[count..].iter().map(|entry| entry.event.action.as_str()).collect();
    assert_eq!(tail, ["project.put_member", "token.revoke"]);
    // Back to member: nothing comes back to life, nothing more is revoked.
    put_member(store, &search, alice.id, ProjectRole::Member, 12).await.unwrap();
    assert_eq!(store.token(&in_search.id).await.unwrap().status(at(13)), TokenStatus::Revoked);
}

/// A token can only be bound to a project that exists; nothing is stored otherwise.
pub async fn tokens_need_an_existing_project(store: &dyn Store) {
    let search = project(store, "search").await;
    let alice = owner(store, "alice").await;
    let count = audit_count(store).await;
    let ghost = ProjectRecord { id: ProjectId::generate(), ..search };
    let orphan = insert("orphan", &alice, Some(&ghost), T0);
    let error = store.insert_token(&orphan, &audit("token.create", orphan.id, T0)).await.unwrap_err();
    assert!(refuses_missing(&error, "project"), "{error:?}");
    assert!(matches!(store.token(&orphan.id).await, Err(StoreError::NotFound { .. })));
    assert_eq!(audit_count(store).await, count);
}
