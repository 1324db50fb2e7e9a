//! Secrets never reach the database or `Debug` output (logs: see `logs.rs`).

mod common;

use std::time::Duration;

use common::{Fixture, OPERATOR};

/// The part of a secret after its public prefix and hint characters: if any of it shows up, it leaked.
fn secret_core(secret: &str) -> &str {
    &secret[8..secret.len() - 5]
}

#[tokio::test]
async fn the_database_file_never_contains_a_secret() {
    let fixture = Fixture::new().await;
    let mut secrets = Vec::new();
    for index in 0..50 {
        let created =
            fixture.manager.create(&OPERATOR, fixture.new_token(&format!("t{index}"), "alice").await).await.unwrap();
        secrets.push(created.secret.expose().to_owned());
    }
    let rotated = fixture.manager.rotate(&OPERATOR, &fixture_first_id(&fixture).await, Duration::from_secs(60)).await;
    secrets.push(rotated.unwrap().secret.expose().to_owned());
    fixture.manager.flush().await.unwrap();

    let mut bytes = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        let mut path = fixture.path.clone().into_os_string();
        path.push(suffix);
        if let Ok(contents) = std::fs::read(&path) {
            bytes.extend(contents);
        }
    }
    assert!(bytes.len() > 4096, "the database holds data");
    for secret in &secrets {
        let needle = secret_core(secret).as_bytes();
        assert!(!bytes.windows(needle.len()).any(|window| window == needle), "a secret reached the database file");
    }
}

async fn fixture_first_id(fixture: &Fixture) -> tollgate::TokenId {
    let (filter, page) = (tollgate::TokenFilter::default(), tollgate::PageRequest::first(1));
    fixture.manager.list(&OPERATOR, &filter, &page).await.unwrap().items[0].id
}

#[tokio::test]
async fn debug_output_of_created_tokens_is_redacted() {
    let fixture = Fixture::new().await;
    let created = fixture.manager.create(&OPERATOR, fixture.new_token("ci", "alice").await).await.unwrap();
    let debug = format!("{created:?} {:#?}", created);
    assert!(debug.contains("<redacted>"));
    assert!(!debug.contains(secret_core(created.secret.expose())));
}
