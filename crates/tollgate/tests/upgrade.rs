//! Upgrading a database made by the previous release (tests/fixtures/previous_release, seeded from
//! tests/fixtures/seed.json): every token, limit, counter, usage row and audit entry survives the
//! migrations, the audit chain still verifies, owner names became users or service accounts, the
//! project name became a project with its token owners as members, and the tokens still verify with
//! the secrets they were issued with.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rusqlite::Connection;
use tollgate::{
    AuditLog, KeyId, LimitSubject, ManualClock, OwnerId, Principal, ProjectRole, SqliteOptions, SqliteStore, Store,
    Timestamp, TokenManager, TokenStatus, VerifyRequest,
};

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/previous_release")
}

/// Counts and sums that must not change: (what, value).
fn ledger(connection: &Connection) -> Vec<(&'static str, i64)> {
    let value = |sql: &str| connection.query_row(sql, [], |row| row.get::<_, i64>(0)).unwrap();
    vec![
        ("tokens", value("SELECT count(*) FROM tokens")),
        ("revoked tokens", value("SELECT count(*) FROM tokens WHERE revoked_at IS NOT NULL")),
        ("users", value("SELECT count(*) FROM users")),
        ("limits", value("SELECT count(*) FROM quota_limits")),
        ("limit maxima", value("SELECT coalesce(sum(maximum), 0) FROM quota_limits")),
        ("counters", value("SELECT count(*) FROM quota_counters")),
        ("counted", value("SELECT coalesce(sum(used), 0) FROM quota_counters")),
        ("raw events", value("SELECT coalesce(sum(events), 0) FROM usage_event_blocks")),
        ("rollups", value("SELECT count(*) FROM usage_rollups")),
        ("rolled-up cost", value("SELECT coalesce(sum(cost_micros), 0) FROM usage_rollups")),
        ("rolled-up tokens", value("SELECT coalesce(sum(input_tokens + output_tokens), 0) FROM usage_rollups")),
        ("audit entries", value("SELECT count(*) FROM audit_log")),
    ]
}

#[tokio::test]
async fn a_previous_release_database_upgrades_without_losing_anything() {
    let directory = tempfile::tempdir().unwrap();
    let db = directory.path().join("tollgate.db");
    std::fs::copy(fixture_dir().join("tollgate.db"), &db).unwrap();
    let before = {
        let connection = Connection::open(&db).unwrap();
        let version: i64 =
            connection.query_row("SELECT max(version) FROM _tollgate_migrations", [], |row| row.get(0)).unwrap();
        assert_eq!(version, 3, "the fixture is the previous release's schema");
        ledger(&connection)
    };
    assert!(before.iter().all(|(what, value)| *value > 0 || *what == "revoked tokens"), "{before:?}");

    let store = SqliteStore::open(&db, &SqliteOptions::default()).await.expect("the upgrade applies");
    let store: Arc<dyn Store> = Arc::new(store);
    let after = ledger(&Connection::open(&db).unwrap());
    assert_eq!(before, after, "nothing lost or doubled");
    let connection = Connection::open(&db).unwrap();
    let check = |sql: &str| connection.query_row(sql, [], |row| row.get::<_, String>(0)).unwrap();
    assert_eq!(check("PRAGMA integrity_check"), "ok");
    let broken: i64 =
        connection.query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |row| row.get(0)).unwrap();
    assert_eq!(broken, 0);
    let leftovers: i64 = connection
        .query_row("SELECT count(*) FROM sqlite_master WHERE name LIKE '\\_upgrade%' ESCAPE '\\'", [], |row| row.get(0))
        .unwrap();
    assert_eq!(leftovers, 0, "the upgrade's working tables are gone");

    // The audit chain still verifies, entry by entry.
    let audit = AuditLog::new(Arc::clone(&store));
    let report = audit.verify(&Principal::Operator).await.unwrap();
    assert!(report.intact && report.first_broken.is_none(), "{report:?}");
    let entries = after.iter().find(|(what, _)| *what == "audit entries").unwrap().1;
    assert_eq!(i64::try_from(report.entries_checked).unwrap(), entries);

    // Owners: tokens of users belong to those users (with their role); the bare owner name became a
    // service account; the project name became a project whose members are its tokens' owners.
    let developer = store.user_credentials(&tollgate::Username::parse("developer").unwrap()).await.unwrap().unwrap();
    let admin = store.user_credentials(&tollgate::Username::parse("admin").unwrap()).await.unwrap().unwrap();
    let dashboard = store.owner_by_name(&tollgate::Username::parse("usage-dashboard").unwrap()).await.unwrap().unwrap();
    assert!(matches!(dashboard.id, OwnerId::ServiceAccount(_)) && dashboard.active, "{dashboard:?}");
    let token = |text: &str| tollgate::TokenId::parse(text).unwrap();
    let expected = [
        ("tok_00000000000070008000000000000001", OwnerId::User(developer.record.id), true),
        ("tok_00000000000070008000000000000002", OwnerId::User(admin.record.id), false),
        ("tok_00000000000070008000000000000003", OwnerId::User(developer.record.id), true),
        ("tok_00000000000070008000000000000004", OwnerId::User(developer.record.id), true),
        ("tok_00000000000070008000000000000005", dashboard.id, false),
    ];
    let search = store.project_by_name(&tollgate::ProjectName::parse("search").unwrap()).await.unwrap().unwrap();
    for (id, owner, in_search) in expected {
        let record = store.token(&token(id)).await.unwrap();
        assert_eq!(record.owner, owner, "{id}");
        assert_eq!(
            record.owner_role,
            match owner {
                OwnerId::User(user) => Some(store.user(&user).await.unwrap().role),
                OwnerId::ServiceAccount(_) => None,
            }
        );
        assert_eq!(record.project, in_search.then_some(search.id), "{id}");
    }
    let members = store.project_members(&search.id).await.unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!((members[0].member, members[0].role), (OwnerId::User(developer.record.id), ProjectRole::Member));

    // Limits now name their subjects by id.
    let tiers = [
        LimitSubject::Token(token("tok_00000000000070008000000000000005")),
        LimitSubject::Project(search.id),
        LimitSubject::Owner(OwnerId::User(admin.record.id)),
    ];
    for subject in tiers {
        assert_eq!(store.limits(Some(&subject)).await.unwrap().len(), 3, "{subject}");
    }

    // The tokens still verify with the secrets they were issued with, in their states.
    let key = tollgate::load_or_create_key_file(&fixture_dir().join("tollgate.db.key")).unwrap();
    assert_eq!(key.key_id, KeyId(1));
    let seed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture_dir().join("../seed.json")).unwrap()).unwrap();
    // Verified at the seed anchor (the fixture's development marker), when the states were true.
    let anchor = Timestamp::parse_rfc3339("anchor", "2026-12-01T22:23:00Z").unwrap();
    let tokens = TokenManager::builder(Arc::clone(&store), key.hasher().unwrap())
        .clock(Arc::new(ManualClock::new(anchor)))
        .build();
    for fixture in seed["tokens"].as_array().unwrap() {
        let verified = tokens.verify(fixture["secret"].as_str().unwrap(), &VerifyRequest::default()).await;
        let state = fixture["state"].as_str().unwrap();
        match (state, verified) {
            ("active", Ok(context)) => assert_eq!(context.token_id.to_string(), fixture["id"].as_str().unwrap()),
            ("revoked", Err(tollgate::Error::Refused(refusal))) => assert_eq!(refusal.code.as_str(), "revoked"),
            ("expired", Err(tollgate::Error::Refused(refusal))) => assert_eq!(refusal.code.as_str(), "expired"),
            (state, other) => panic!("{} in state {state}: {other:?}", fixture["id"]),
        }
        let record = store.token(&token(fixture["id"].as_str().unwrap())).await.unwrap();
        let expected = match state {
            "active" => TokenStatus::Active,
            "revoked" => TokenStatus::Revoked,
            _ => TokenStatus::Expired,
        };
        assert_eq!(record.status(anchor), expected);
    }
}
