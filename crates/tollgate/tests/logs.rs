//! Captured logs of token operations hold no secret. Alone in its test binary because `tracing`
//! caches per-callsite interest process-wide, and tests on other threads would race the capture.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Fixture, OPERATOR, new_token};
use tollgate::VerifyRequest;

/// A `tracing` writer that keeps everything written to it.
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

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

fn secret_core(secret: &str) -> &str {
    &secret[8..secret.len() - 5]
}

#[tokio::test]
async fn logs_of_create_verify_rotate_and_revoke_hold_no_secret() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let fixture = Fixture::new().await;
    let created = fixture.manager.create(&OPERATOR, new_token("ci", "alice")).await.unwrap();
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
