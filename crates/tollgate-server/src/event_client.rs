//! A small client of `GET /v1/events` over plain HTTP/1.1 (no TLS: put tollgate behind a proxy you
//! trust, or run it beside the caller): what `tollgate events` uses to tail a running server.

use std::fmt;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// The longest line of the response head or of a chunk size read before giving up.
const MAX_LINE: usize = 8 * 1024;
/// The largest event accepted.
const MAX_EVENT: usize = 4 * 1024 * 1024;

/// Why the stream could not be opened or read.
#[derive(Debug)]
pub enum EventClientError {
    /// The address is not `http://host:port`.
    Url(&'static str),
    /// The server could not be reached or the connection broke.
    Io(std::io::Error),
    /// The server answered with an error status (the problem document's `code`, if any).
    Refused {
        /// The HTTP status.
        status: u16,
        /// The problem's code.
        code: Option<String>,
    },
    /// The response was not an event stream.
    Protocol(&'static str),
}

impl fmt::Display for EventClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Url(reason) => write!(f, "url: {reason}"),
            Self::Io(error) => write!(f, "connection: {error}"),
            Self::Refused { status, code } => {
                write!(f, "the server answered {status} {}", code.as_deref().unwrap_or(""))
            }
            Self::Protocol(reason) => write!(f, "not an event stream: {reason}"),
        }
    }
}

impl std::error::Error for EventClientError {}

impl From<std::io::Error> for EventClientError {
    fn from(error: std::io::Error) -> Self {
        Self::Io(error)
    }
}

/// One event off the stream.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamEvent {
    /// Its id (notices such as `lagged` have none).
    pub id: Option<u64>,
    /// The SSE event name: the event's type, or `resync`, `lagged`, `unauthorized`, `closed`.
    pub event: String,
    /// The JSON payload.
    pub data: Value,
}

/// An open event stream.
#[derive(Debug)]
pub struct EventClient {
    stream: BufReader<TcpStream>,
    pending: Vec<u8>,
    chunked: bool,
}

/// Splits `http://host:port[/prefix]` into the address and the path prefix.
fn split_url(url: &str) -> Result<(String, String), EventClientError> {
    let rest = url.strip_prefix("http://").ok_or(EventClientError::Url("must start with http:// (no TLS here)"))?;
    let (authority, prefix) = rest.split_once('/').map_or((rest, ""), |(authority, path)| (authority, path));
    if authority.is_empty() || authority.contains('@') {
        return Err(EventClientError::Url("must name a host and port, without credentials"));
    }
    let authority = if authority.contains(':') { authority.to_owned() } else { format!("{authority}:80") };
    let prefix = prefix.trim_matches('/');
    Ok((authority, if prefix.is_empty() { String::new() } else { format!("/{prefix}") }))
}

async fn read_line(stream: &mut BufReader<TcpStream>) -> Result<String, EventClientError> {
    let mut line = Vec::new();
    let read = (&mut *stream).take(MAX_LINE as u64).read_until(b'\n', &mut line).await?;
    if read == 0 {
        return Err(EventClientError::Io(std::io::ErrorKind::UnexpectedEof.into()));
    }
    String::from_utf8(line).map_err(|_| EventClientError::Protocol("a line that is not UTF-8"))
}

impl EventClient {
    /// Opens `GET {url}/v1/events?{query}` with the bearer credential (in a header, never the URL),
    /// resuming after `last_event_id` when given.
    pub async fn connect(
        url: &str,
        bearer: &str,
        query: &str,
        last_event_id: Option<u64>,
        timeout: Duration,
    ) -> Result<Self, EventClientError> {
        let (authority, prefix) = split_url(url)?;
        let connect = TcpStream::connect(&authority);
        let socket = tokio::time::timeout(timeout, connect)
            .await
            .map_err(|_| EventClientError::Io(std::io::ErrorKind::TimedOut.into()))??;
        socket.set_nodelay(true)?;
        let mut stream = BufReader::new(socket);
        let path = if query.is_empty() { format!("{prefix}/v1/events") } else { format!("{prefix}/v1/events?{query}") };
        let resume = last_event_id.map(|id| format!("Last-Event-ID: {id}\r\n")).unwrap_or_default();
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {authority}\r\nAuthorization: Bearer {bearer}\r\nAccept: text/event-stream\r\n{resume}\r\n"
        );
        stream.get_mut().write_all(request.as_bytes()).await?;
        let status_line = read_line(&mut stream).await?;
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|status| status.parse().ok())
            .ok_or(EventClientError::Protocol("no HTTP status line"))?;
        let (mut chunked, mut length) = (false, 0usize);
        loop {
            let line = read_line(&mut stream).await?;
            if line == "\r\n" || line == "\n" {
                break;
            }
            let lower = line.to_ascii_lowercase();
            if let Some(value) = lower.strip_prefix("content-length:") {
                length = value.trim().parse().unwrap_or(0);
            }
            if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
                chunked = true;
            }
        }
        if status != 200 {
            let mut body = vec![0; length.min(64 * 1024)];
            let _ = stream.read_exact(&mut body).await;
            let code = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|problem| problem["code"].as_str().map(str::to_owned));
            return Err(EventClientError::Refused { status, code });
        }
        Ok(Self { stream, pending: Vec::new(), chunked })
    }

    /// Reads more of the body into `pending`; false at its end.
    async fn fill(&mut self) -> Result<bool, EventClientError> {
        if !self.chunked {
            let mut buffer = [0u8; 16 * 1024];
            let read = self.stream.read(&mut buffer).await?;
            self.pending.extend_from_slice(&buffer[..read]);
            return Ok(read > 0);
        }
        let size = match read_line(&mut self.stream).await {
            Ok(size) => size,
            Err(EventClientError::Io(error)) if error.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(false),
            Err(error) => return Err(error),
        };
        let size =
            usize::from_str_radix(size.trim(), 16).map_err(|_| EventClientError::Protocol("a bad chunk size"))?;
        if size == 0 {
            return Ok(false);
        }
        if self.pending.len() + size > MAX_EVENT {
            return Err(EventClientError::Protocol("an event larger than 4 MiB"));
        }
        let mut chunk = vec![0; size + 2];
        self.stream.read_exact(&mut chunk).await?;
        self.pending.extend_from_slice(&chunk[..size]);
        Ok(true)
    }

    /// The next event (heartbeats skipped); `None` when the server ended the stream.
    pub async fn next(&mut self) -> Result<Option<StreamEvent>, EventClientError> {
        loop {
            if let Some(end) = self.pending.windows(2).position(|window| window == b"\n\n") {
                let block: Vec<u8> = self.pending.drain(..end + 2).collect();
                let text =
                    String::from_utf8(block).map_err(|_| EventClientError::Protocol("an event that is not UTF-8"))?;
                let (mut id, mut event, mut data) = (None, "message".to_owned(), String::new());
                for line in text.lines() {
                    if let Some(value) = line.strip_prefix("id:") {
                        id = value.trim().parse().ok();
                    } else if let Some(value) = line.strip_prefix("event:") {
                        value.trim().clone_into(&mut event);
                    } else if let Some(value) = line.strip_prefix("data:") {
                        data.push_str(value.strip_prefix(' ').unwrap_or(value));
                    }
                }
                if data.is_empty() {
                    continue; // a heartbeat
                }
                let data =
                    serde_json::from_str(&data).map_err(|_| EventClientError::Protocol("data that is not JSON"))?;
                return Ok(Some(StreamEvent { id, event, data }));
            }
            if !self.fill().await? {
                return Ok(None);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_plain_http_with_a_host() {
        assert_eq!(split_url("http://127.0.0.1:8080").unwrap(), ("127.0.0.1:8080".to_owned(), String::new()));
        assert_eq!(split_url("http://gate/base/").unwrap(), ("gate:80".to_owned(), "/base".to_owned()));
        assert!(matches!(split_url("https://gate"), Err(EventClientError::Url(_))));
        assert!(matches!(split_url("http://user:pw@gate"), Err(EventClientError::Url(_))));
        assert!(matches!(split_url("http:///v1"), Err(EventClientError::Url(_))));
    }
}
