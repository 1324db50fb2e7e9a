//! A pooled HTTP/1.1 client keeps working on one keep-alive connection whatever the server refuses:
//! a refusal before the body is read (401, 415, 413) either reads past the body or says
//! `Connection: close`, so the client's next request never meets a closed socket.

mod support;

use std::time::Duration;

use support::Fixture;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;
use tollgate::Permission;

/// One keep-alive connection, reopened only when the server said it would close it.
struct PooledClient {
    address: std::net::SocketAddr,
    connection: Option<BufReader<TcpStream>>,
    reconnects: u32,
}

/// What went wrong on the wire (never an HTTP status: those are answers).
struct TransportError(String);

impl std::fmt::Debug for TransportError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&self.0)
    }
}

impl PooledClient {
    /// Sends one request; returns the status. A server that closes a connection it did not
    /// announce as closing is a transport error, as a pooled client would see it.
    async fn send(&mut self, head: &str, body: &[u8]) -> Result<u16, TransportError> {
        if self.connection.is_none() {
            let stream = TcpStream::connect(self.address).await.map_err(|error| TransportError(error.to_string()))?;
            self.connection = Some(BufReader::new(stream));
            self.reconnects += 1;
        }
        let connection = self.connection.as_mut().unwrap();
        let request = format!("{head}Host: tollgate\r\nContent-Length: {}\r\n\r\n", body.len());
        let wrote = async {
            connection.get_mut().write_all(request.as_bytes()).await?;
            connection.get_mut().write_all(body).await
        };
        wrote.await.map_err(|error| TransportError(format!("write: {error}")))?;
        let mut status_line = String::new();
        let read =
            connection.read_line(&mut status_line).await.map_err(|error| TransportError(format!("read: {error}")))?;
        if read == 0 {
            return Err(TransportError("the connection closed without an answer".to_owned()));
        }
        let status: u16 = status_line.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap();
        let (mut length, mut closing) = (0usize, false);
        loop {
            let mut line = String::new();
            connection.read_line(&mut line).await.map_err(|error| TransportError(format!("headers: {error}")))?;
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').unwrap();
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().unwrap(),
                "connection" => closing = value.trim().eq_ignore_ascii_case("close"),
                _ => {}
            }
        }
        let mut answer = vec![0; length];
        connection.read_exact(&mut answer).await.map_err(|error| TransportError(format!("body: {error}")))?;
        if closing {
            self.connection = None;
        }
        Ok(status)
    }
}

#[tokio::test]
async fn a_thousand_mixed_requests_on_one_connection_meet_no_transport_error() {
    let fixture = Fixture::new().await;
    let (admin, _) = fixture.token("ops", Permission::Admin).await;
    let (valid, _) = fixture.token("alice", Permission::Standard).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let router = fixture.router();
    tokio::spawn(async move { axum::serve(listener, axum::ServiceExt::into_make_service(router)).await.unwrap() });

    let usage = serde_json::json!({ "events": (0..40).map(|index| serde_json::json!({
        "token_id": "tok_00000000000000000000000000000000", "event_id": format!("e{index}"),
        "provider": "openai", "model": "gpt-4o", "input_tokens": 1, "output_tokens": 1,
    })).collect::<Vec<_>>() })
    .to_string();
    let oversized = vec![b' '; 70 * 1024];
    let mut client = PooledClient { address, connection: None, reconnects: 0 };
    let mut errors = Vec::new();
    let mut statuses = std::collections::BTreeMap::<u16, u32>::new();
    for round in 0..1_000 {
        let (head, body): (String, &[u8]) = match round % 5 {
            // Refused at authentication, before the body is read.
            0 => (
                "POST /v1/usage HTTP/1.1\r\nAuthorization: Bearer tg_not-a-token\r\nContent-Type: application/json\r\n"
                    .to_owned(),
                usage.as_bytes(),
            ),
            // Refused for its media type.
            1 => (
                format!("POST /v1/tokens HTTP/1.1\r\nAuthorization: Bearer {admin}\r\nContent-Type: text/plain\r\n"),
                usage.as_bytes(),
            ),
            // Too large (every 25th round), else a good verify.
            2 if round % 25 == 2 => (
                format!(
                    "POST /v1/usage HTTP/1.1\r\nAuthorization: Bearer {admin}\r\nContent-Type: application/json\r\n"
                ),
                &oversized,
            ),
            _ => (format!("GET /v1/auth/verify HTTP/1.1\r\nAuthorization: Bearer {valid}\r\n"), b""),
        };
        match tokio::time::timeout(Duration::from_secs(10), client.send(&head, body)).await {
            Ok(Ok(status)) => *statuses.entry(status).or_default() += 1,
            Ok(Err(error)) => {
                errors.push((round, error));
                client.connection = None;
            }
            Err(_) => panic!("round {round} hung"),
        }
    }
    eprintln!("statuses {statuses:?}, reconnects {}, transport errors {}", client.reconnects, errors.len());
    assert!(errors.is_empty(), "transport errors: {errors:?}");
    assert_eq!(statuses.get(&200).copied().unwrap_or(0), 1_000 - 200 - 200 - 40);
    assert_eq!(statuses.get(&401).copied(), Some(200));
    assert_eq!(statuses.get(&415).copied(), Some(200));
    assert_eq!(statuses.get(&413).copied(), Some(40));
}
