//! Live events that only one node knows (metering samples: `requests.completed`, `quota.exceeded`,
//! `writer.degraded`/`recovered`) relayed to every node through Redis pub/sub, so a subscriber sees
//! them whichever node it is connected to. Events derived from the audit log are not relayed: every
//! node derives them itself from the shared log.
//!
//! Best effort, like the events themselves: a relay that cannot reach Redis drops what it cannot
//! send (bounded outbox) and reconnects by itself; nothing else waits on it.

use std::time::Duration;

use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tollgate_types::{OwnerId, Timestamp};

use super::{LiveHub, NewLiveEvent};
use crate::{Error, Result};

/// The kinds a relay carries (and the only ones it accepts from the channel).
const RELAYED: [&str; 4] = ["requests.completed", "quota.exceeded", "writer.degraded", "writer.recovered"];
/// Events waiting to be sent at most.
const OUTBOX: usize = 1_024;
/// The wait before reconnecting after a failure.
const RETRY: Duration = Duration::from_millis(500);

/// An event on the wire, with the node it came from.
#[derive(Debug, Serialize, Deserialize)]
struct Relayed {
    origin: String,
    kind: String,
    at: Timestamp,
    subject: Option<String>,
    data: serde_json::Value,
    owner: Option<OwnerId>,
}

/// The running relay: a publisher and a subscriber task, stopped when dropped.
#[derive(Debug)]
pub struct LiveRelay {
    origin: String,
    outbox: mpsc::Sender<String>,
    tasks: [tokio::task::JoinHandle<()>; 2],
}

impl LiveRelay {
    /// Relays through the Redis at `url` on `channel`, feeding events of other nodes into `hub`.
    /// `node` names this node (events it sent are not fed back). Connects lazily: a Redis that is
    /// away at start is retried.
    pub fn start(hub: LiveHub, url: &str, channel: &str, node: &str) -> Result<Self> {
        let client =
            redis::Client::open(url).map_err(|_| Error::Config("redis_url: not a valid Redis URL".to_owned()))?;
        let (outbox, receiver) = mpsc::channel(OUTBOX);
        let publisher = tokio::spawn(publish(client.clone(), channel.to_owned(), receiver));
        let subscriber = tokio::spawn(subscribe(client, channel.to_owned(), node.to_owned(), hub));
        Ok(Self { origin: node.to_owned(), outbox, tasks: [publisher, subscriber] })
    }

    /// Sends `event` to the other nodes if it is of a relayed kind; drops it when the outbox is full.
    pub(crate) fn forward(&self, event: &NewLiveEvent) {
        if !RELAYED.contains(&event.kind) {
            return;
        }
        let relayed = Relayed {
            origin: self.origin.clone(),
            kind: event.kind.to_owned(),
            at: event.at,
            subject: event.subject.clone(),
            data: event.data.clone(),
            owner: event.owner,
        };
        if let Ok(text) = serde_json::to_string(&relayed) {
            let _ = self.outbox.try_send(text);
        }
    }
}

impl Drop for LiveRelay {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

async fn publish(client: redis::Client, channel: String, mut outbox: mpsc::Receiver<String>) {
    let mut connection = None;
    while let Some(text) = outbox.recv().await {
        if connection.is_none() {
            connection = client.get_multiplexed_async_connection().await.ok();
        }
        let Some(open) = connection.as_mut() else {
            continue; // dropped: Redis is away
        };
        let sent: redis::RedisResult<i64> = redis::cmd("PUBLISH").arg(&channel).arg(&text).query_async(open).await;
        if let Err(error) = sent {
            tracing::debug!(error = %error, "live relay: publishing failed; reconnecting");
            connection = None;
        }
    }
}

async fn subscribe(client: redis::Client, channel: String, node: String, hub: LiveHub) {
    loop {
        match client.get_async_pubsub().await {
            Ok(mut pubsub) => {
                if pubsub.subscribe(&channel).await.is_ok() {
                    let mut messages = pubsub.on_message();
                    while let Some(message) = messages.next().await {
                        let Ok(text) = message.get_payload::<String>() else { continue };
                        if let Some(event) = accepted(&text, &node) {
                            hub.publish(event);
                        }
                    }
                }
            }
            Err(error) => tracing::debug!(error = %error, "live relay: subscribing failed; retrying"),
        }
        tokio::time::sleep(RETRY).await;
    }
}

/// The event in `text`, when it is well formed, of a relayed kind and from another node.
fn accepted(text: &str, node: &str) -> Option<NewLiveEvent> {
    let relayed: Relayed = serde_json::from_str(text).ok()?;
    if relayed.origin == node {
        return None;
    }
    let kind = RELAYED.into_iter().find(|kind| *kind == relayed.kind)?;
    Some(NewLiveEvent { kind, at: relayed.at, subject: relayed.subject, data: relayed.data, owner: relayed.owner })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_relayed_kinds_from_other_nodes_are_accepted() {
        let event = |origin: &str, kind: &str| {
            serde_json::json!({ "origin": origin, "kind": kind, "at": "2026-01-01T00:00:00Z", "subject": null,
                                "data": {}, "owner": null })
            .to_string()
        };
        assert_eq!(accepted(&event("b", "quota.exceeded"), "a").map(|event| event.kind), Some("quota.exceeded"));
        assert!(accepted(&event("a", "quota.exceeded"), "a").is_none(), "its own event");
        assert!(accepted(&event("b", "token.revoked"), "a").is_none(), "derived from the audit log by every node");
        assert!(accepted("not json", "a").is_none());
    }
}
