//! Conformance cases for [`DumpStore`](crate::DumpStore): the list of tables covers the schema in
//! foreign-key order, a load refuses what the schema does not have, and a dump loaded into an empty
//! store dumps the same, with its audit chain intact and the store working on.

use std::collections::BTreeSet;

use serde_json::json;
use tollgate_types::{AUDIT_GENESIS_HASH, EventId, Role};

use super::dump_content::fill;
use super::fixtures::{at, audit, create_user, insert};
use super::usage::{event, item};
use crate::{
    AllocationChange, ColumnKind, DUMP_BOOLEAN_COLUMNS, DUMP_JSON_VALUE_COLUMNS, DUMP_TABLES, DeadLetter, DumpRow,
    Store, StoreError, UsageBatch,
};

/// Every row of `table`, read `page` rows at a time.
async fn rows_of(store: &dyn Store, table: &str, page: u32) -> Vec<DumpRow> {
    let mut rows = Vec::new();
    let mut after = None;
    loop {
        let (mut batch, next) = store.dump_rows(table, after.as_ref(), page).await.expect("dump a page");
        assert!(batch.len() <= page as usize, "{table}: a page of {page} held {}", batch.len());
        rows.append(&mut batch);
        match next {
            Some(cursor) => after = Some(cursor),
            None => return rows,
        }
    }
}

/// Every table's rows, in [`DUMP_TABLES`] order.
async fn dump_all(store: &dyn Store, page: u32) -> Vec<(&'static str, Vec<DumpRow>)> {
    let mut tables = Vec::new();
    for table in DUMP_TABLES {
        tables.push((*table, rows_of(store, table, page).await));
    }
    tables
}

/// [`DUMP_TABLES`] names every table of the schema and no other, each after the tables its foreign
/// keys name; every table has a primary key to page by; the boolean and JSON-value columns are the
/// ones the catalog shows (PostgreSQL) or at least exist with a fitting type (SQLite).
pub async fn dump_tables_cover_the_schema(store: &dyn Store) {
    let schema = store.dump_schema().await.expect("read the catalog");
    let in_schema: BTreeSet<&str> = schema.iter().map(|table| table.name()).collect();
    let listed: BTreeSet<&str> = DUMP_TABLES.iter().copied().collect();
    let missing: Vec<_> = in_schema.difference(&listed).collect();
    assert!(missing.is_empty(), "tables of the schema that DUMP_TABLES does not list: {missing:?}");
    let unknown: Vec<_> = listed.difference(&in_schema).collect();
    assert!(unknown.is_empty(), "DUMP_TABLES lists tables the schema does not have: {unknown:?}");
    assert_eq!(store.dump_tables(), DUMP_TABLES);
    let position = |name: &str| DUMP_TABLES.iter().position(|table| *table == name).expect("listed");
    for table in &schema {
        assert!(!table.key().is_empty(), "{} has no primary key to page by", table.name());
        for referenced in table.references().iter().filter(|referenced| *referenced != table.name()) {
            assert!(
                position(referenced) < position(table.name()),
                "{} refers to {referenced}, which DUMP_TABLES lists after it",
                table.name()
            );
        }
        for column in table.columns() {
            let pair = (table.name(), column.name.as_str());
            let boolean = DUMP_BOOLEAN_COLUMNS.contains(&pair);
            assert_eq!(column.kind == ColumnKind::Boolean, boolean, "{pair:?} is {:?}", column.kind);
            let json_value = DUMP_JSON_VALUE_COLUMNS.contains(&pair);
            assert_eq!(column.kind == ColumnKind::JsonValue, json_value, "{pair:?} is {:?}", column.kind);
        }
    }
}

/// A load names the table or column it refuses (never a value: it may be a hash): a table a dump
/// does not hold, a column the table lacks or does not have, a value of another type; it writes
/// nothing then, and a stored row loaded again conflicts.
pub async fn loads_refuse_what_the_schema_does_not_have(store: &dyn Store) {
    create_user(store, "root", Role::Admin).await;
    let rows = rows_of(store, "users", 10).await;
    assert_eq!(rows.len(), 1);
    for table in ["no_such_table", "_tollgate_migrations", "sqlite_master", "users; DROP TABLE users"] {
        let error = store.load_rows(table, &rows).await.unwrap_err();
        assert!(matches!(error, StoreError::Conflict(_)) && error.to_string().contains(table), "{error}");
        let error = store.dump_rows(table, None, 10).await.unwrap_err();
        assert!(error.to_string().contains(table), "{error}");
    }
    let changed = |column: &str, value: Option<serde_json::Value>| {
        let mut row = rows[0].clone();
        match value {
            Some(value) => row.insert(column.to_owned(), value),
            None => row.remove(column),
        };
        row
    };
    for (bad, named) in [
        (changed("role\"; DROP TABLE users; --", Some(json!("admin"))), "DROP TABLE users"),
        (changed("email", None), "users.email"),
        (changed("failed_logins", Some(json!("$2b$04$secret-looking"))), "users.failed_logins"),
        (changed("must_change_password", Some(json!(1))), "users.must_change_password"),
        (changed("id", Some(json!({ "$bytes": "00" }))), "users.id"),
    ] {
        let error = store.load_rows("users", &[bad]).await.unwrap_err();
        let message = error.to_string();
        assert!(matches!(error, StoreError::Conflict(_)) && message.contains(named), "{message}");
        assert!(!message.contains("secret-looking"), "{message}");
    }
    assert_eq!(rows_of(store, "users", 10).await, rows, "nothing refused was written");
    let duplicate = store.load_rows("users", &rows).await.unwrap_err();
    assert!(matches!(duplicate, StoreError::Conflict(_)), "{duplicate:?}");
    assert_eq!(store.load_rows("users", &[]).await.unwrap(), 0);
}

/// Everything dumped from a store with a row in every table, in pages of any size, loads into an
/// empty store (in batches, with owners suspended and members gone since their tokens were issued)
/// and dumps the same. Its audit chain verifies, and it works on: tokens are found by their hashes,
/// the chain goes on, new rows take ids after the loaded ones, and new tokens follow the rules again.
pub async fn a_dump_loads_into_an_empty_store_unchanged(source: &dyn Store, target: &dyn Store) {
    let content = fill(source).await;
    let paged = dump_all(source, 2).await;
    for (table, rows) in &paged {
        assert!(!rows.is_empty(), "the case's content leaves {table} empty, so it no longer covers it");
    }
    assert_eq!(dump_all(source, 1_000).await, paged, "pages of any size cover every row once, in key order");
    for table in DUMP_TABLES {
        assert!(rows_of(target, table, 1).await.is_empty(), "{table} of a fresh store is empty");
    }
    for (table, rows) in &paged {
        for batch in rows.chunks(3) {
            let loaded = target.load_rows(table, batch).await.unwrap_or_else(|error| panic!("load {table}: {error}"));
            assert_eq!(loaded, batch.len() as u64, "{table}");
        }
    }
    assert_eq!(dump_all(target, 1_000).await, paged, "the loaded store dumps as the original");

    let chain = target.audit_chain(0, 1_000).await.unwrap();
    assert_eq!(chain, source.audit_chain(0, 1_000).await.unwrap());
    let mut previous = AUDIT_GENESIS_HASH;
    for entry in &chain {
        assert_eq!(entry.previous_hash, previous, "entry {}", entry.sequence);
        assert_eq!(entry.event.chain_hash(entry.sequence, &previous), entry.hash, "entry {}", entry.sequence);
        previous = entry.hash;
    }
    assert_eq!(target.check_budgets().await.unwrap(), None);

    for hash in &content.hashes {
        assert!(target.token_by_hash(hash, at(100)).await.unwrap().is_some(), "a loaded token is found by its hash");
    }
    let next = target.append_audit(&audit("dump.check", "store", at(200))).await.unwrap();
    assert_eq!((next.sequence, next.previous_hash), (i64::try_from(chain.len()).unwrap() + 1, previous));
    let token_id = insert("after", &content.leaver, None, at(201));
    target.insert_token(&token_id, &audit("token.create", token_id.id, at(201))).await.unwrap();
    let mut fresh = event(token_id.id, 202, "brand-new-model", 1, 1, 1);
    fresh.event_id = Some(EventId::parse("after-load").unwrap());
    target.record_usage(UsageBatch { events: &[item(fresh.clone(), &[])], ..UsageBatch::default() }).await.unwrap();
    let letter = DeadLetter { event: fresh, reason: "after the load".to_owned(), failed_at: at(203) };
    target.add_dead_letters(&[letter]).await.unwrap();
    let change = AllocationChange {
        agent: content.spender,
        allocated: 5_000,
        actor: "cli".to_owned(),
        reason: None,
        request: None,
        at: at(204),
    };
    target.set_allocation(&change, &audit("budget.allocate", content.spender, at(204))).await.unwrap();
    assert_eq!(target.check_budgets().await.unwrap(), None);

    let suspended = insert("late", &content.suspended, None, at(205));
    let refused = target.insert_token(&suspended, &audit("token.create", suspended.id, at(205))).await;
    assert!(refused.is_err(), "a suspended owner gets no new token after a load: {refused:?}");
    let outsider = insert("late", &content.leaver, Some(&content.project), at(206));
    let refused = target.insert_token(&outsider, &audit("token.create", outsider.id, at(206))).await;
    assert!(refused.is_err(), "an owner outside a project gets no token bound to it after a load: {refused:?}");
}
