//! `tollgate events`: tails the live event stream of a running server (`GET /v1/events`), one line
//! per event (`--json`: one JSON object per line). The credential comes from `--token-file` or `TOLLGATE_TOKEN`, never from argv.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use tollgate::ValidationError;
use tollgate_server::{EventClient, EventClientError};
use zeroize::Zeroizing;

use crate::cli::GlobalArgs;
use crate::exit::{CliError, CliResult};
use crate::output::print_json_line;

#[derive(Debug, Args)]
pub(crate) struct EventsArgs {
    /// The server (plain http://host:port).
    #[arg(long, env = "TOLLGATE_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// A file holding the bearer credential (an API token or an access JWT); without it, the
    /// TOLLGATE_TOKEN environment variable.
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Only events of this type (repeatable), e.g. token.revoked.
    #[arg(long = "type")]
    types: Vec<String>,
    /// Only events about this subject (tok_…, agt_…, bls_…, usr_…).
    #[arg(long)]
    subject: Option<String>,
    /// Resume after this event id.
    #[arg(long)]
    last_event_id: Option<u64>,
    /// Stop after this many events.
    #[arg(long)]
    count: Option<u64>,
}

fn credential(args: &EventsArgs) -> CliResult<Zeroizing<String>> {
    let text = match &args.token_file {
        Some(path) => {
            Zeroizing::new(std::fs::read_to_string(path).with_context(|| format!("while reading {}", path.display()))?)
        }
        None => Zeroizing::new(std::env::var("TOLLGATE_TOKEN").map_err(|_| {
            ValidationError::new("token_file", "give --token-file or set TOLLGATE_TOKEN (never on the command line)")
        })?),
    };
    let trimmed = Zeroizing::new(text.trim().to_owned());
    if trimmed.is_empty() {
        return Err(ValidationError::new("token_file", "holds no credential").into());
    }
    Ok(trimmed)
}

/// The query string; values are checked so nothing but ids and type names reach the request line.
fn query(args: &EventsArgs) -> CliResult<String> {
    let plain = |text: &str| !text.is_empty() && text.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    let mut parts = Vec::new();
    if !args.types.is_empty() {
        if !args.types.iter().all(|kind| plain(kind)) {
            return Err(ValidationError::new("type", "must be an event type such as token.revoked").into());
        }
        parts.push(format!("types={}", args.types.join(",")));
    }
    if let Some(subject) = &args.subject {
        if !plain(subject) {
            return Err(ValidationError::new("subject", "must be an id such as tok_…").into());
        }
        parts.push(format!("subject={subject}"));
    }
    Ok(parts.join("&"))
}

/// Tails the stream until it ends, `--count` events were printed, or the server drops the subscriber.
pub(crate) async fn run(global: &GlobalArgs, args: EventsArgs) -> CliResult {
    let query = query(&args)?;
    let bearer = credential(&args)?;
    let connect = EventClient::connect(&args.url, &bearer, &query, args.last_event_id, Duration::from_secs(10));
    let mut client = match connect.await {
        Ok(client) => client,
        Err(EventClientError::Url(reason)) => return Err(ValidationError::new("url", reason).into()),
        Err(error) => {
            return Err(CliError::Failed(anyhow::Error::new(error).context("while opening the event stream")));
        }
    };
    let mut printed = 0u64;
    while args.count.is_none_or(|count| printed < count) {
        let Some(event) = client.next().await.map_err(|error| CliError::Failed(error.into()))? else {
            return Err(CliError::Failed(anyhow::anyhow!("the server ended the stream")));
        };
        if global.json {
            print_json_line(&serde_json::json!({ "id": event.id, "event": event.event, "data": event.data }));
        } else {
            let field = |name: &str| event.data[name].as_str().unwrap_or("-").to_owned();
            let id = event.id.map_or_else(|| "-".to_owned(), |id| id.to_string());
            say!("{id}  {}  {}  {}", event.event, field("subject"), field("at"));
        }
        match event.event.as_str() {
            "closed" => return Ok(ExitCode::SUCCESS),
            "lagged" | "unauthorized" => {
                return Err(CliError::Failed(anyhow::anyhow!("the server dropped this stream ({})", event.event)));
            }
            _ => printed += 1,
        }
    }
    Ok(ExitCode::SUCCESS)
}
