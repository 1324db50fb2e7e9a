//! The audit log end to end: who may read and verify it, and `verify` finding tampering done with
//! raw SQL on the database file (after dropping the append-only triggers, as an intruder would).

mod identity_common;
use identity_common as common;

use common::{Fixture, operator, password};
use sqlx::{Row, SqlitePool};
use tollgate::{AuditFilter, AuditLog, Error, PageRequest, Role, Timestamp, verify_audit_chain};

async fn raw(fx: &Fixture) -> SqlitePool {
    SqlitePool::connect(&format!("sqlite://{}", fx.path.display())).await.expect("open the file directly")
}

async fn drop_triggers(pool: &SqlitePool) {
    sqlx::raw_sql("DROP TRIGGER audit_log_refuses_update; DROP TRIGGER audit_log_refuses_delete;")
        .execute(pool)
        .await
        .expect("an intruder with file access can drop triggers");
}

/// A log of six entries: admin created (1), alice created (2), role changes (3, 4), bob created (5),
/// a failed login (6).
async fn six_entries(fx: &Fixture) {
    let alice = fx.user("alice", Role::User).await;
    fx.users.set_role(&fx.as_admin(), &alice.id, Role::Viewer).await.unwrap();
    fx.users.set_role(&fx.as_admin(), &alice.id, Role::User).await.unwrap();
    fx.user("bob", Role::User).await;
    fx.users.login("alice", common::presented("wrong password"), None).await.unwrap_err();
    assert_eq!(fx.store.audit_chain(0, 100).await.unwrap().len(), 6);
}

#[tokio::test]
async fn an_intact_log_verifies_and_reports_its_head() {
    let fx = Fixture::new().await;
    six_entries(&fx).await;
    let report = AuditLog::new(fx.store.clone()).verify(&fx.admin.principal()).await.unwrap();
    assert!(report.intact, "{report:?}");
    assert_eq!((report.entries_checked, report.last_sequence, &report.first_broken), (6, 6, &None));
    let last = fx.store.audit_chain(5, 1).await.unwrap().remove(0);
    let hex: String = last.hash.iter().map(|byte| format!("{byte:02x}")).collect();
    assert_eq!(report.head_hash, hex);
    // Small pages walk the same chain.
    assert_eq!(verify_audit_chain(fx.store.as_ref(), 2).await.unwrap(), report);
}

#[tokio::test]
async fn only_admins_read_and_verify_the_log() {
    let fx = Fixture::new().await;
    let viewer = fx.user("viewer", Role::Viewer).await;
    let log = AuditLog::new(fx.store.clone());
    assert!(matches!(log.verify(&viewer.principal()).await, Err(Error::Forbidden(_))));
    let filter = AuditFilter::default();
    assert!(matches!(log.list(&viewer.principal(), &filter, &PageRequest::default()).await, Err(Error::Forbidden(_))));
    let by_operator = AuditFilter { actor: Some("cli".into()), ..AuditFilter::default() };
    let page = log.list(&fx.admin.principal(), &by_operator, &PageRequest::default()).await.unwrap();
    assert_eq!(page.items.len(), 2);
    assert!(page.items.iter().all(|entry| entry.event.action == "user.create"));
}

#[tokio::test]
async fn an_edited_entry_is_named() {
    let fx = Fixture::new().await;
    six_entries(&fx).await;
    let pool = raw(&fx).await;
    drop_triggers(&pool).await;
    sqlx::query("UPDATE audit_log SET reason = 'nothing happened' WHERE sequence = 3").execute(&pool).await.unwrap();
    let report = verify_audit_chain(fx.store.as_ref(), 1000).await.unwrap();
    assert!(!report.intact);
    let broken = report.first_broken.expect("a broken entry");
    assert_eq!(broken.sequence, 3);
    assert!(broken.problem.contains("edited"), "{}", broken.problem);
    assert_eq!((report.entries_checked, report.last_sequence), (2, 2));
}

#[tokio::test]
async fn an_edit_with_a_recomputed_hash_breaks_the_next_link() {
    let fx = Fixture::new().await;
    six_entries(&fx).await;
    let pool = raw(&fx).await;
    drop_triggers(&pool).await;
    let mut entry = fx.store.audit_chain(2, 1).await.unwrap().remove(0);
    entry.event.at = Timestamp::from_unix_micros(0);
    let forged = entry.event.chain_hash(entry.sequence, &entry.previous_hash);
    sqlx::query("UPDATE audit_log SET at = 0, hash = ? WHERE sequence = 3")
        .bind(forged.as_slice())
        .execute(&pool)
        .await
        .unwrap();
    let broken = verify_audit_chain(fx.store.as_ref(), 1000).await.unwrap().first_broken.unwrap();
    assert_eq!(broken.sequence, 4);
    assert!(broken.problem.contains("does not link"), "{}", broken.problem);
}

#[tokio::test]
async fn a_deleted_entry_is_found() {
    let fx = Fixture::new().await;
    six_entries(&fx).await;
    let pool = raw(&fx).await;
    drop_triggers(&pool).await;
    sqlx::query("DELETE FROM audit_log WHERE sequence = 2").execute(&pool).await.unwrap();
    let broken = verify_audit_chain(fx.store.as_ref(), 1000).await.unwrap().first_broken.unwrap();
    assert_eq!(broken.sequence, 3);
    assert!(broken.problem.contains("expected entry 2"), "{}", broken.problem);
}

#[tokio::test]
async fn reordered_entries_are_found() {
    let fx = Fixture::new().await;
    six_entries(&fx).await;
    let pool = raw(&fx).await;
    drop_triggers(&pool).await;
    sqlx::raw_sql(
        "UPDATE audit_log SET sequence = 1000 WHERE sequence = 4;
         UPDATE audit_log SET sequence = 4 WHERE sequence = 5;
         UPDATE audit_log SET sequence = 5 WHERE sequence = 1000;",
    )
    .execute(&pool)
    .await
    .unwrap();
    let broken = verify_audit_chain(fx.store.as_ref(), 1000).await.unwrap().first_broken.unwrap();
    assert_eq!(broken.sequence, 4);
}

#[tokio::test]
async fn an_unreadable_entry_is_named() {
    let fx = Fixture::new().await;
    six_entries(&fx).await;
    let pool = raw(&fx).await;
    drop_triggers(&pool).await;
    sqlx::query("UPDATE audit_log SET ip = 'not an address' WHERE sequence = 5").execute(&pool).await.unwrap();
    let broken = verify_audit_chain(fx.store.as_ref(), 1000).await.unwrap().first_broken.unwrap();
    assert_eq!(broken.sequence, 5);
    assert!(broken.problem.starts_with("unreadable"), "{}", broken.problem);
}

#[tokio::test]
async fn the_triggers_refuse_update_and_delete_on_the_real_file() {
    let fx = Fixture::new().await;
    fx.users.create(&operator(), common::new_user("alice", Role::User), password(common::PASSWORD)).await.unwrap();
    let pool = raw(&fx).await;
    let update = sqlx::query("UPDATE audit_log SET reason = 'x' WHERE sequence = 1").execute(&pool).await.unwrap_err();
    assert!(update.to_string().contains("append-only: UPDATE refused"), "{update}");
    let delete = sqlx::query("DELETE FROM audit_log").execute(&pool).await.unwrap_err();
    assert!(delete.to_string().contains("append-only: DELETE refused"), "{delete}");
    let count: i64 = sqlx::query("SELECT count(*) FROM audit_log").fetch_one(&pool).await.unwrap().get(0);
    assert_eq!(count, 2);
    assert!(verify_audit_chain(fx.store.as_ref(), 1000).await.unwrap().intact);
    // Users are soft-deleted only; the last active admin survives even raw SQL.
    let delete_user = sqlx::query("DELETE FROM users").execute(&pool).await.unwrap_err();
    assert!(delete_user.to_string().contains("soft-deleted"), "{delete_user}");
    let demote = sqlx::query("UPDATE users SET role = 'viewer' WHERE role = 'admin'").execute(&pool).await.unwrap_err();
    assert!(demote.to_string().contains("last active admin"), "{demote}");
}
