//! Conformance cases for [`AccountStore`](crate::AccountStore): service accounts, the one namespace
//! of owner names, and owners of either kind.

use std::collections::HashSet;

use tollgate_types::{
    AccountStatus, OwnerId, OwnerRecord, Role, ServiceAccountId, ServiceAccountRecord, TokenStatus, UserId, UserStatus,
    Username,
};

use super::fixtures::{
    T0, at, audit, chain_actions, create_service_account, create_token, create_user, insert, owner, project,
    refuses_missing, service_account_insert, sorted, user_insert, user_owner,
};
use crate::{AccountStatusChanged, PageRequest, StatusChange, StatusFilter, Store, StoreError, TokenFilter};

fn name(text: &str) -> Username {
    Username::parse_field("name", text).unwrap()
}

async fn set_status(
    store: &dyn Store,
    account: &ServiceAccountRecord,
    status: AccountStatus,
    seconds: i64,
) -> crate::Result<AccountStatusChanged> {
    let event = audit(&format!("service_account.{status}"), account.id, at(seconds));
    store.set_service_account_status(&account.id, status, Some("rotating keys"), &event).await
}

fn account_owner(account: &ServiceAccountRecord) -> OwnerRecord {
    OwnerRecord { id: account.id.into(), name: account.name.clone(), active: true, role: None }
}

/// Every field survives a round trip, the creation is audited, and unknown ids are `NotFound`.
pub async fn service_account_insert_and_get_round_trip(store: &dyn Store) {
    let insert = service_account_insert("Deploy-Bot", at(3));
    let created =
        store.insert_service_account(&insert, &audit("service_account.create", insert.id, at(3))).await.unwrap();
    assert_eq!(created.id, insert.id);
    assert_eq!(created.name.as_str(), "deploy-bot", "names are stored lowercased, as usernames are");
    assert_eq!(created.description.as_str(), "Deploy-Bot runs unattended");
    assert_eq!((created.status, created.status_reason.clone()), (AccountStatus::Active, None));
    assert_eq!((created.created_at, created.updated_at), (at(3), at(3)));
    assert_eq!(store.service_account(&insert.id).await.unwrap(), created);
    let chain = store.audit_chain(0, 10).await.unwrap();
    assert_eq!(chain.len(), 1);
    assert_eq!(
        (chain[0].event.action.as_str(), chain[0].event.target.clone()),
        ("service_account.create", insert.id.to_string())
    );

    let unknown = ServiceAccountId::generate();
    let missing = store.service_account(&unknown).await;
    assert!(matches!(missing, Err(StoreError::NotFound { entity: "service account" })), "{missing:?}");
    let event = audit("service_account.suspended", unknown, at(4));
    let missing = store.set_service_account_status(&unknown, AccountStatus::Suspended, None, &event).await;
    assert!(matches!(missing, Err(StoreError::NotFound { entity: "service account" })), "{missing:?}");
    assert_eq!(store.audit_chain(0, 10).await.unwrap().len(), 1, "a refused change writes nothing");
}

/// Service accounts list newest first, page by page with cursors, each exactly once; a cursor no
/// page handed out is refused.
pub async fn list_service_accounts_pages_newest_first(store: &dyn Store) {
    let mut created = Vec::new();
    for index in 0..5 {
        created.push(create_service_account(store, &format!("bot-{index}")).await.id);
    }
    create_user(store, "alice", Role::User).await; // users are not service accounts
    let mut seen = Vec::new();
    let mut pages = 0;
    let mut page = PageRequest::first(2);
    loop {
        let result = store.list_service_accounts(&page).await.unwrap();
        assert!(result.items.len() <= 2);
        pages += 1;
        seen.extend(result.items.iter().map(|account| account.id));
        match result.next_cursor {
            Some(cursor) => page = PageRequest::after(2, cursor),
            None => break,
        }
    }
    created.reverse();
    assert_eq!(seen, created);
    assert_eq!((pages, seen.iter().collect::<HashSet<_>>().len()), (3, 5));
    let all = store.list_service_accounts(&PageRequest::first(10)).await.unwrap();
    assert_eq!((all.items.len(), all.next_cursor), (5, None));
    let bad = store.list_service_accounts(&PageRequest::after(2, "usr_nope")).await.unwrap_err();
    assert!(matches!(bad, StoreError::InvalidCursor), "{bad:?}");
}

/// Usernames and service account names are one namespace, whatever the case and in both directions,
/// deleted users included; a refused name stores and audits nothing.
pub async fn owner_names_are_one_namespace(store: &dyn Store) {
    let ops = create_user(store, "ops", Role::User).await;
    create_service_account(store, "deploy-bot").await;
    let count = store.audit_chain(0, 100).await.unwrap().len();

    let clash = service_account_insert("OPS", T0);
    let error = store.insert_service_account(&clash, &audit("service_account.create", clash.id, T0)).await;
    assert!(matches!(error, Err(StoreError::Conflict(_))), "a user's name: {error:?}");
    let twice = service_account_insert("Deploy-Bot", T0);
    let error = store.insert_service_account(&twice, &audit("service_account.create", twice.id, T0)).await;
    assert!(matches!(error, Err(StoreError::Conflict(_))), "another account's name: {error:?}");
    let user_clash = user_insert("DEPLOY-BOT", Role::User, T0);
    let error = store.insert_user(&user_clash, &audit("user.create", user_clash.id, T0)).await;
    assert!(matches!(error, Err(StoreError::Conflict(_))), "an account's name for a user: {error:?}");
    for refused in [clash.id, twice.id] {
        assert!(matches!(store.service_account(&refused).await, Err(StoreError::NotFound { .. })));
    }
    assert!(matches!(store.user(&user_clash.id).await, Err(StoreError::NotFound { .. })));

    // A deleted user keeps the name.
    let deletion = StatusChange { id: ops.id, status: UserStatus::Deleted, reason: None, at: at(1) };
    store.set_user_status(&deletion, &audit("user.delete", ops.id, at(1))).await.unwrap();
    let count = count + 1;
    let after_deletion = service_account_insert("ops", T0);
    let event = audit("service_account.create", after_deletion.id, T0);
    let error = store.insert_service_account(&after_deletion, &event).await;
    assert!(matches!(error, Err(StoreError::Conflict(_))), "a deleted user's name: {error:?}");
    assert_eq!(store.list_service_accounts(&PageRequest::first(10)).await.unwrap().items.len(), 1);
    assert_eq!(store.audit_chain(0, 100).await.unwrap().len(), count, "refusals write nothing");
}

/// Suspending revokes the account's live tokens (and only those) in the same transaction: each is
/// returned and gets a `token.revoke` entry after the suspension's. Repeating a status writes
/// nothing; activating brings the account back but not its tokens.
pub async fn suspending_a_service_account_revokes_its_live_tokens(store: &dyn Store) {
    let bot = create_service_account(store, "deploy-bot").await;
    let search = project(store, "search").await;
    let plain = create_token(store, "plain", &account_owner(&bot), None, 1).await;
    let in_project = create_token(store, "in project", &account_owner(&bot), Some(&search), 2).await;
    let already = create_token(store, "already revoked", &account_owner(&bot), None, 3).await;
    store.revoke_token(&already.id, Some("old"), &audit("token.revoke", already.id, at(4))).await.unwrap();
    let others = create_token(store, "others", &owner(store, "other-bot").await, None, 5).await;
    let count = store.audit_chain(0, 100).await.unwrap().len();

    let changed = set_status(store, &bot, AccountStatus::Suspended, 10).await.unwrap();
    assert_eq!(changed.record.status, AccountStatus::Suspended);
    assert_eq!(changed.record.status_reason.as_deref(), Some("rotating keys"));
    assert_eq!(changed.record.updated_at, at(10));
    assert_eq!(store.service_account(&bot.id).await.unwrap(), changed.record);
    assert_eq!(sorted(changed.revoked_tokens.clone()), sorted(vec![plain.id, in_project.id]));
    for id in [plain.id, in_project.id] {
        let token = store.token(&id).await.unwrap();
        assert_eq!((token.status(at(11)), token.revoked_at), (TokenStatus::Revoked, Some(at(10))));
        assert!(token.revoke_reason.as_deref().is_some_and(|reason| reason.contains("suspended")), "{token:?}");
    }
    assert_eq!(store.token(&already.id).await.unwrap().revoke_reason.as_deref(), Some("old"));
    assert_eq!(store.token(&others.id).await.unwrap().status(at(11)), TokenStatus::Active);
    let chain = store.audit_chain(0, 100).await.unwrap();
    let tail: Vec<_> = chain[count..].iter().map(|entry| (entry.event.action.as_str(), &entry.event.target)).collect();
    assert_eq!(tail.len(), 3, "{tail:?}");
    assert_eq!(tail[0], ("service_account.suspended", &bot.id.to_string()));
    assert!(tail[1..].iter().all(|(action, _)| *action == "token.revoke"), "{tail:?}");
    let targets = tail[1..].iter().map(|(_, target)| target.parse().unwrap()).collect();
    assert_eq!(sorted(targets), sorted(vec![plain.id, in_project.id]));

    let again = set_status(store, &bot, AccountStatus::Suspended, 12).await.unwrap();
    assert_eq!((again.record, again.revoked_tokens), (changed.record.clone(), Vec::new()));
    assert_eq!(store.audit_chain(0, 100).await.unwrap().len(), chain.len(), "a repeated status writes nothing");
    let active = set_status(store, &bot, AccountStatus::Active, 13).await.unwrap();
    assert_eq!((active.record.status, active.revoked_tokens), (AccountStatus::Active, Vec::new()));
    assert_eq!(store.token(&plain.id).await.unwrap().status(at(14)), TokenStatus::Revoked, "not un-revoked");
    assert_eq!(chain_actions(store).await.last().map(String::as_str), Some("service_account.active"));
}

/// A token is refused for a suspended service account and for an owner that does not exist, of
/// either kind, and nothing is stored; once active again the account can be issued tokens.
pub async fn tokens_need_an_existing_active_owner(store: &dyn Store) {
    let bot = create_service_account(store, "deploy-bot").await;
    set_status(store, &bot, AccountStatus::Suspended, 1).await.unwrap();
    let count = store.audit_chain(0, 100).await.unwrap().len();
    let suspended = insert("suspended", &account_owner(&bot), None, at(2));
    let error = store.insert_token(&suspended, &audit("token.create", suspended.id, at(2))).await.unwrap_err();
    assert!(matches!(error, StoreError::Conflict(_)), "{error:?}");
    for missing in [OwnerId::ServiceAccount(ServiceAccountId::generate()), OwnerId::User(UserId::generate())] {
        let mut orphan = insert("orphan", &account_owner(&bot), None, at(2));
        orphan.token.owner = missing;
        orphan.owner_role = missing.user().map(|_| Role::User);
        let error = store.insert_token(&orphan, &audit("token.create", orphan.id, at(2))).await.unwrap_err();
        assert!(refuses_missing(&error, "owner"), "{missing}: {error:?}");
        assert!(matches!(store.token(&orphan.id).await, Err(StoreError::NotFound { .. })));
    }
    assert!(matches!(store.token(&suspended.id).await, Err(StoreError::NotFound { .. })));
    assert_eq!(store.audit_chain(0, 100).await.unwrap().len(), count, "refused tokens write nothing");

    set_status(store, &bot, AccountStatus::Active, 3).await.unwrap();
    let issued = create_token(store, "issued", &account_owner(&bot), None, 4).await;
    assert_eq!((issued.owner, issued.owner_name.as_str(), issued.owner_role), (bot.id.into(), "deploy-bot", None));
}

/// Owners resolve by id and by name, whichever kind: name, whether active now, and a role for users only.
pub async fn owners_resolve_by_id_and_by_name(store: &dyn Store) {
    let alice = create_user(store, "alice", Role::Admin).await;
    let viewer = create_user(store, "vera", Role::Viewer).await;
    let bot = create_service_account(store, "deploy-bot").await;
    let alice_owner = store.owner(&alice.id.into()).await.unwrap();
    assert_eq!(alice_owner, user_owner(&alice));
    assert_eq!(
        alice_owner,
        OwnerRecord { id: alice.id.into(), name: name("alice"), active: true, role: Some(Role::Admin) }
    );
    let bot_owner = store.owner(&bot.id.into()).await.unwrap();
    assert_eq!(bot_owner, OwnerRecord { id: bot.id.into(), name: name("deploy-bot"), active: true, role: None });
    assert_eq!(store.owner_by_name(&name("ALICE")).await.unwrap(), Some(alice_owner));
    assert_eq!(store.owner_by_name(&name("deploy-bot")).await.unwrap(), Some(bot_owner));
    assert_eq!(store.owner_by_name(&name("nobody")).await.unwrap(), None);
    assert_eq!(store.owner_by_name(&name("deploy")).await.unwrap(), None, "no partial match");

    let suspension = StatusChange { id: viewer.id, status: UserStatus::Suspended, reason: None, at: at(1) };
    store.set_user_status(&suspension, &audit("user.suspend", viewer.id, at(1))).await.unwrap();
    set_status(store, &bot, AccountStatus::Suspended, 1).await.unwrap();
    let viewer_owner = store.owner_by_name(&name("vera")).await.unwrap().expect("found while suspended");
    assert_eq!(
        (viewer_owner.id, viewer_owner.active, viewer_owner.role),
        (viewer.id.into(), false, Some(Role::Viewer))
    );
    let bot_owner = store.owner(&bot.id.into()).await.unwrap();
    assert_eq!((bot_owner.active, bot_owner.role), (false, None));

    for unknown in [OwnerId::User(UserId::generate()), OwnerId::ServiceAccount(ServiceAccountId::generate())] {
        let missing = store.owner(&unknown).await;
        assert!(matches!(missing, Err(StoreError::NotFound { entity: "owner" })), "{unknown}: {missing:?}");
    }
}

/// A token insert racing the suspension of its owner never leaves a live token behind: either the
/// insert is refused or the suspension revokes (and reports) the new token.
pub async fn concurrent_suspend_and_token_insert_leave_no_live_token(store: &dyn Store) {
    for round in 0..10 {
        let bot = create_service_account(store, &format!("racer-{round}")).await;
        let token = insert("racing", &account_owner(&bot), None, at(1));
        let create_event = audit("token.create", token.id, at(1));
        let suspend_event = audit("service_account.suspended", bot.id, at(1));
        let (created, suspended) = tokio::join!(
            store.insert_token(&token, &create_event),
            store.set_service_account_status(&bot.id, AccountStatus::Suspended, None, &suspend_event),
        );
        let suspended = suspended.unwrap();
        match created {
            Ok(_) => assert_eq!(suspended.revoked_tokens, [token.id], "round {round}"),
            Err(error) => {
                assert!(matches!(error, StoreError::Conflict(_)), "round {round}: {error:?}");
                assert!(suspended.revoked_tokens.is_empty(), "round {round}");
            }
        }
        let live = TokenFilter { owner: Some(bot.id.into()), status: StatusFilter::Active, ..TokenFilter::default() };
        let page = store.list_tokens(&live, &PageRequest::first(10), at(2)).await.unwrap();
        assert!(page.items.is_empty(), "round {round}: {page:?}");
    }
}
