//! Conformance cases for [`AuditStore`](crate::AuditStore) and the audit entries other stores write.

use tollgate_types::{AUDIT_GENESIS_HASH, Actor, AuditEvent};

use super::fixtures::{at, audit, insert};
use crate::{AuditFilter, PageRequest, Store};

/// Token changes append entries in order, each linked to the one before.
pub async fn every_token_change_appends_a_chained_entry(store: &dyn Store) {
    let token = insert("one", "alice", None, at(0));
    store.insert_token(&token, &audit("token.create", token.id, at(0))).await.unwrap();
    store.revoke_token(&token.id, Some("done"), &audit("token.revoke", token.id, at(1))).await.unwrap();
    let mut login = AuditEvent::new(Actor::id("usr_x"), "user.login_failed", "usr_x", at(2));
    login.ip = Some("192.0.2.1".parse().unwrap());
    let appended = store.append_audit(&login).await.unwrap();
    assert_eq!(appended.event, login);

    let chain = store.audit_chain(0, 100).await.unwrap();
    let actions: Vec<_> = chain.iter().map(|entry| entry.event.action.as_str()).collect();
    assert_eq!(actions, ["token.create", "token.revoke", "user.login_failed"]);
    let mut previous = AUDIT_GENESIS_HASH;
    for (index, entry) in chain.iter().enumerate() {
        assert_eq!(entry.sequence, index as i64 + 1);
        assert!(entry.is_intact_after(&previous), "entry {} breaks the chain", entry.sequence);
        previous = entry.hash;
    }
    assert_eq!(store.audit_chain(2, 100).await.unwrap().len(), 1);
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
