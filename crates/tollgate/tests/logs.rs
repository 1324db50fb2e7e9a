//! Captured logs of token operations hold no secret. Alone in its test binary because `tracing`
//! caches per-callsite interest process-wide, and tests on other threads would race the capture.

mod capture;
mod common;

use std::time::Duration;

use capture::capture_logs;
use common::{Fixture, OPERATOR};
use tollgate::VerifyRequest;

fn secret_core(secret: &str) -> &str {
    &secret[8..secret.len() - 5]
}

#[tokio::test]
async fn logs_of_create_verify_rotate_and_revoke_hold_no_secret() {
    let (captured, _guard) = capture_logs();

    let fixture = Fixture::new().await;
    let created = fixture.manager.create(&OPERATOR, fixture.new_token("ci", "alice").await).await.unwrap();
    fixture.manager.verify(created.secret.expose(), &VerifyRequest::default()).await.unwrap();
    let rotated = fixture.manager.rotate(&OPERATOR, &created.record.id, Duration::from_secs(60)).await.unwrap();
    fixture.manager.verify(rotated.secret.expose(), &VerifyRequest::default()).await.unwrap();
    fixture.manager.revoke(&OPERATOR, &created.record.id, None).await.unwrap();
    let _ = fixture.manager.verify(rotated.secret.expose(), &VerifyRequest::default()).await;
    fixture.manager.flush().await.unwrap();

    let logs = captured.text();
    assert!(logs.contains("token created"), "the capture works: {logs}");
    for secret in [created.secret.expose(), rotated.secret.expose()] {
        assert!(!logs.contains(secret_core(secret)), "a secret reached the logs");
    }
}
