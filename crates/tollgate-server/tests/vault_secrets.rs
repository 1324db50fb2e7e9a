//! The vault keeps provider keys secret: the plaintext key and every agent credential are absent
//! from the database files, the TRACE log, every response but the one delivery, error bodies and
//! the OpenAPI document.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::json;
use support::Fixture;
use tollgate::{Permission, Role};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every file of the SQLite database (main, WAL, shared memory), read raw.
fn database_bytes(fixture: &Fixture) -> Vec<u8> {
    let mut bytes = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        let mut path = fixture.db_file.clone().into_os_string();
        path.push(suffix);
        if let Ok(read) = std::fs::read(&path) {
            bytes.extend(read);
        }
    }
    bytes
}

/// Every stored provider-key, token and audit row, as text (the PostgreSQL counterpart of the files).
async fn postgres_rows(fixture: &Fixture) -> Vec<u8> {
    let mut text = String::new();
    let keys = tollgate::ProviderKeyStore::list_provider_keys(
        fixture.store.as_ref(),
        &tollgate::ProviderKeyFilter::default(),
        &tollgate::PageRequest::first(100),
    )
    .await
    .unwrap();
    text.push_str(&serde_json::to_string(&keys.items).unwrap());
    let sealed = tollgate::ProviderKeyStore::sealed_provider_keys(fixture.store.as_ref()).await.unwrap();
    for (_, sealed) in sealed {
        text.push_str(&String::from_utf8_lossy(&sealed.ciphertext));
        text.push_str(&String::from_utf8_lossy(&sealed.wrapped_key));
    }
    let audit = tollgate::AuditStore::audit_chain(fixture.store.as_ref(), 0, 10_000).await.unwrap();
    text.push_str(&serde_json::to_string(&audit).unwrap());
    text.into_bytes()
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle.as_bytes())
}

#[tokio::test]
async fn no_plaintext_key_or_credential_is_stored_logged_or_shown() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let fixture = Fixture::new().await;
    let (_, jwt) = fixture.user_jwt("alice", Role::User).await;
    let (admin, _) = fixture.token("root", Permission::Admin).await;
    let secret = "sk-live-SECRETPART0123456789abcdef";
    let replacement = "sk-live-REPLACEMENT9876543210fedcba";
    let key = fixture.post("/v1/provider-keys", Some(&jwt), json!({ "provider": "openai", "secret": secret })).await;
    let mut shown = vec![key.text()];
    let key = key.ok(201)["id"].as_str().unwrap().to_owned();
    let agent = json!({ "name": "triage", "provider_key_id": key });
    let agent = fixture.post("/v1/agents", Some(&jwt), agent).await.ok(201)["id"].as_str().unwrap().to_owned();
    let issued = fixture.post(&format!("/v1/agents/{agent}/credentials"), Some(&jwt), json!({})).await;
    let credential = issued.ok(201)["token"].as_str().unwrap().to_owned();
    let delivered = fixture.post(&format!("/v1/agents/{agent}/provider-key"), Some(&credential), json!({})).await;
    assert_eq!(delivered.ok(200)["secret"], secret);
    let patch = json!({ "secret": replacement });
    shown.push(fixture.patch(&format!("/v1/provider-keys/{key}"), Some(&jwt), patch).await.text());
    let delivered = fixture.post(&format!("/v1/agents/{agent}/provider-key"), Some(&credential), json!({})).await;
    assert_eq!(delivered.ok(200)["secret"], replacement);
    for path in ["/v1/provider-keys", &format!("/v1/provider-keys/{key}"), &format!("/v1/audit?target={key}")] {
        shown.push(fixture.get(path, Some(&admin)).await.text());
    }
    shown.push(fixture.get("/v1/openapi.json", None).await.text());
    // A key sent where it does not belong comes back in no error.
    let misplaced = json!({ "provider": secret, "secret": replacement });
    shown.push(fixture.post("/v1/provider-keys", Some(&jwt), misplaced).await.text());
    let misplaced = json!({ "name": "x", "metadata": secret });
    shown.push(fixture.post("/v1/agents", Some(&jwt), misplaced).await.text());
    fixture.post(&format!("/v1/agents/{agent}/pause"), Some(&jwt), json!({})).await.ok(200);
    shown.push(fixture.post(&format!("/v1/agents/{agent}/provider-key"), Some(&credential), json!({})).await.text());
    fixture.tokens.flush().await.unwrap();

    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(log.contains("provider-key"), "the capture covers the routes: {log}");
    // The database files are SQLite's; on PostgreSQL the rows are read back instead.
    let database = match &fixture.backend {
        support::Backend::Sqlite(_) => database_bytes(&fixture),
        support::Backend::Postgres(_) => postgres_rows(&fixture).await,
    };
    assert!(contains(&database, "sk-…cdef") || contains(&database, "sk-…dcba"), "the masked form is stored");
    for plaintext in ["SECRETPART0123456789abcdef", "REPLACEMENT9876543210fedcba", &credential[4..]] {
        assert!(!log.contains(plaintext), "a secret reached the log:\n{log}");
        assert!(!contains(&database, plaintext), "a secret is in the database files");
        for text in &shown {
            assert!(!text.contains(plaintext), "a secret was shown: {text}");
        }
    }
}
