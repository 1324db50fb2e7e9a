//! Conformance cases for [`AuditStore`](crate::AuditStore) and the audit entries other stores write.

use tollgate_types::{AUDIT_GENESIS_HASH, AccountStatus, Actor, AuditEntry, AuditEvent, ProjectRole};

use super::fixtures::{at, audit, chain_actions, create_token, insert, owner, project_insert, service_account_insert};
use crate::{AuditFilter, PageRequest, Store};

/// Checks that `chain` starts at the genesis, numbers entries from 1 and links each to the one before.
fn assert_intact(chain: &[AuditEntry]) {
    let mut previous = AUDIT_GENESIS_HASH;
    for (index, entry) in chain.iter().enumerate() {
        assert_eq!(entry.sequence, index as i64 + 1);
        assert!(entry.is_intact_after(&previous), "entry {} breaks the chain", entry.sequence);
        previous = entry.hash;
    }
}

/// Token changes append entries in order, each linked to the one before.
pub async fn every_token_change_appends_a_chained_entry(store: &dyn Store) {
    // The owner's creation is the first entry.
    let token = insert("one", &owner(store, "alice").await, None, at(0));
    store.insert_token(&token, &audit("token.create", token.id, at(0))).await.unwrap();
    store.revoke_token(&token.id, Some("done"), &audit("token.revoke", token.id, at(1))).await.unwrap();
    let mut login = AuditEvent::new(Actor::id("usr_x"), "user.login_failed", "usr_x", at(2));
    login.ip = Some("192.0.2.1".parse().unwrap());
    let appended = store.append_audit(&login).await.unwrap();
    assert_eq!(appended.event, login);

    let chain = store.audit_chain(0, 100).await.unwrap();
    let actions: Vec<_> = chain.iter().map(|entry| entry.event.action.as_str()).collect();
    assert_eq!(actions, ["service_account.create", "token.create", "token.revoke", "user.login_failed"]);
    assert_intact(&chain);
    assert_eq!(store.audit_chain(3, 100).await.unwrap().len(), 1);
    assert_eq!(store.audit_chain(1, 100).await.unwrap()[0].event.target, token.id.to_string());
}

/// Audit lists filter by actor, target and time and page newest first.
pub async fn audit_list_filters_and_pages(store: &dyn Store) {
    for second in 0..5 {
        let actor = if second % 2 == 0 { Actor::cli() } else { Actor::id("usr_admin") };
        store.append_audit(&AuditEvent::new(actor, "user.update", format!("usr_{second}"), at(second))).await.unwrap();
    }
    let by_admin = AuditFilter { actor: Some("usr_admin".into()), ..AuditFilter::default() };
    let page = store.list_audit(&by_admin, &PageRequest::first(10)).await.unwrap();
    assert_eq!(page.items.iter().map(|entry| entry.event.target.as_str()).collect::<Vec<_>>(), ["usr_3", "usr_1"]);
    let since = AuditFilter { since: Some(at(3)), ..AuditFilter::default() };
    assert_eq!(store.list_audit(&since, &PageRequest::first(10)).await.unwrap().items.len(), 2);
    let target = AuditFilter { target: Some("usr_2".into()), ..AuditFilter::default() };
    assert_eq!(store.list_audit(&target, &PageRequest::first(10)).await.unwrap().items.len(), 1);

    let first = store.list_audit(&AuditFilter::default(), &PageRequest::first(3)).await.unwrap();
    assert_eq!(first.items.len(), 3);
    let cursor = first.next_cursor.expect("more pages");
    let second = store.list_audit(&AuditFilter::default(), &PageRequest::after(3, cursor)).await.unwrap();
    assert_eq!(second.items.len(), 2);
    assert!(second.next_cursor.is_none());
    assert!(first.items[2].sequence > second.items[0].sequence);
}

/// Every change to service accounts, projects and memberships appends its own entry, as given, in
/// order and chained; no-ops and refusals append nothing.
pub async fn account_and_project_changes_append_chained_entries(store: &dyn Store) {
    let account = service_account_insert("deploy-bot", at(1));
    let mut created = audit("service_account.create", account.id, at(1));
    created.after = Some(serde_json::json!({ "name": "deploy-bot" }));
    created.ip = Some("192.0.2.7".parse().unwrap());
    store.insert_service_account(&account, &created).await.unwrap();
    let account_id = account.id;
    let status = |status: AccountStatus, seconds| {
        let event = audit(&format!("service_account.{status}"), account_id, at(seconds));
        async move { store.set_service_account_status(&account_id, status, None, &event).await.unwrap() }
    };
    status(AccountStatus::Suspended, 2).await;
    status(AccountStatus::Suspended, 3).await; // no change
    status(AccountStatus::Active, 4).await;
    let bot = store.owner(&account.id.into()).await.unwrap();

    let search = project_insert("search", at(5));
    let search_created = audit("project.create", search.id, at(5));
    let search_record = store.insert_project(&search, &search_created).await.unwrap();
    let (search_id, bot_id) = (search.id, bot.id);
    let member = |role: ProjectRole, seconds| {
        let event = audit("project.put_member", search_id, at(seconds));
        async move { store.put_project_member(&search_id, &bot_id, role, at(seconds), &event).await.unwrap() }
    };
    member(ProjectRole::Viewer, 6).await;
    member(ProjectRole::Viewer, 7).await; // no change
    member(ProjectRole::Member, 8).await;
    let token = create_token(store, "bound", &bot, Some(&search_record), 9).await;
    let removal = audit("project.remove_member", search.id, at(10));
    store.remove_project_member(&search.id, &bot.id, &removal).await.unwrap();

    // Refusals: a taken name, a taken project name, a member that is gone, a token for nobody.
    let twice = service_account_insert("deploy-bot", at(11));
    assert!(store.insert_service_account(&twice, &audit("service_account.create", twice.id, at(11))).await.is_err());
    let again = project_insert("Search", at(11));
    assert!(store.insert_project(&again, &audit("project.create", again.id, at(11))).await.is_err());
    assert!(store.remove_project_member(&search.id, &bot.id, &removal).await.is_err());
    let mut orphan = insert("orphan", &bot, None, at(11));
    orphan.token.owner = tollgate_types::ServiceAccountId::generate().into();
    assert!(store.insert_token(&orphan, &audit("token.create", orphan.id, at(11))).await.is_err());

    assert_eq!(
        chain_actions(store).await,
        [
            "service_account.create",
            "service_account.suspended",
            "service_account.active",
            "project.create",
            "project.put_member",
            "project.put_member",
            "token.create",
            "project.remove_member",
            "token.revoke",
        ]
    );
    let chain = store.audit_chain(0, 100).await.unwrap();
    assert_intact(&chain);
    assert_eq!(chain[0].event, created, "an event is stored as given");
    assert_eq!(chain[3].event, search_created);
    assert_eq!(
        (chain[6].event.target.clone(), chain[8].event.target.clone()),
        (token.id.to_string(), token.id.to_string())
    );
    let about = |target: String| {
        let filter = AuditFilter { target: Some(target), ..AuditFilter::default() };
        async move {
            let page = store.list_audit(&filter, &PageRequest::first(10)).await.unwrap();
            page.items.into_iter().map(|entry| entry.sequence).collect::<Vec<_>>()
        }
    };
    assert_eq!(about(account.id.to_string()).await, [3, 2, 1]);
    assert_eq!(about(search.id.to_string()).await, [8, 6, 5, 4]);
}
