//! Fuzzes the audit-chain verifier (`tollgate::verify_audit_chain`) over an in-memory store.
//!
//! The input is a sequence of arbitrary events, a page size and one tampering. The chain built from
//! the events must verify; after the tampering the report must name exactly the entry the tampering
//! broke, except for the two changes the verifier documents it cannot see on its own (losing the
//! newest entries, and rewriting the tail with fresh hashes), which must still verify.

#![no_main]

use std::net::IpAddr;
use std::sync::OnceLock;

use arbitrary::Arbitrary;
use async_trait::async_trait;
use libfuzzer_sys::fuzz_target;
use tollgate_store::{AuditFilter, AuditStore, Page, PageRequest, StoreError};
use tollgate_types::{AUDIT_GENESIS_HASH, Actor, AuditEntry, AuditEvent, Timestamp};

#[derive(Debug, Arbitrary)]
struct FuzzEvent {
    actor: String,
    action: String,
    target: String,
    /// JSON text; not JSON is kept as a JSON string.
    before: Option<String>,
    after: Option<String>,
    reason: Option<String>,
    ip: Option<IpAddr>,
    at: i64,
}

#[derive(Debug, Arbitrary)]
enum Tamper {
    Nothing,
    EditAction {
        index: usize,
        action: String,
    },
    EditReason {
        index: usize,
        reason: Option<String>,
    },
    EditAfter {
        index: usize,
        after: Option<String>,
    },
    EditTime {
        index: usize,
        at: i64,
    },
    EditIp {
        index: usize,
        ip: Option<IpAddr>,
    },
    /// Renumbers a row (to a number no other row has: the column is the primary key).
    EditSequence {
        index: usize,
        sequence: i64,
    },
    FlipHashBit {
        index: usize,
        bit: u8,
    },
    FlipPreviousBit {
        index: usize,
        bit: u8,
    },
    Delete {
        index: usize,
    },
    /// Swaps two rows' contents, each keeping its sequence number.
    Swap {
        first: usize,
        second: usize,
    },
    /// Inserts a forged row at an unused sequence number.
    Insert {
        event: FuzzEvent,
        sequence: i64,
        previous_hash: [u8; 32],
        hash: [u8; 32],
    },
    Unreadable {
        index: usize,
    },
    RewriteTail {
        index: usize,
        reason: String,
    },
}

#[derive(Debug, Arbitrary)]
struct Input {
    events: Vec<FuzzEvent>,
    page_size: u16,
    tamper: Tamper,
}

/// A stored audit log, read like the SQL backends read it: rows in sequence order after
/// `after_sequence`, and one row (by sequence) that no longer parses and fails any page holding it.
#[derive(Debug)]
struct MemoryAudit {
    entries: Vec<AuditEntry>,
    unreadable: Option<i64>,
}

#[async_trait]
impl AuditStore for MemoryAudit {
    async fn append_audit(&self, _event: &AuditEvent) -> tollgate_store::Result<AuditEntry> {
        Err(StoreError::Corrupt("the fuzz store is read-only".into()))
    }

    async fn list_audit(&self, _filter: &AuditFilter, _page: &PageRequest) -> tollgate_store::Result<Page<AuditEntry>> {
        Err(StoreError::Corrupt("the fuzz store only walks the chain".into()))
    }

    async fn audit_chain(&self, after_sequence: i64, limit: u32) -> tollgate_store::Result<Vec<AuditEntry>> {
        let page: Vec<AuditEntry> =
            self.entries.iter().filter(|entry| entry.sequence > after_sequence).take(limit as usize).cloned().collect();
        if page.iter().any(|entry| Some(entry.sequence) == self.unreadable) {
            return Err(StoreError::Corrupt("a column does not parse".into()));
        }
        Ok(page)
    }
}

fn json(text: Option<String>) -> Option<serde_json::Value> {
    text.map(|text| serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)))
}

fn event(fuzz: FuzzEvent) -> AuditEvent {
    AuditEvent {
        actor: Actor::from_stored(fuzz.actor),
        action: fuzz.action,
        target: fuzz.target,
        before: json(fuzz.before),
        after: json(fuzz.after),
        reason: fuzz.reason,
        ip: fuzz.ip,
        at: Timestamp::from_unix_micros(fuzz.at),
    }
}

/// Links `events` into a chain starting at `first_sequence` after an entry hashed `previous`.
fn link(events: Vec<AuditEvent>, first_sequence: i64, mut previous: [u8; 32]) -> Vec<AuditEntry> {
    let mut sequence = first_sequence;
    events
        .into_iter()
        .map(|event| {
            let hash = event.chain_hash(sequence, &previous);
            let entry = AuditEntry { sequence, event, previous_hash: previous, hash };
            previous = hash;
            sequence += 1;
            entry
        })
        .collect()
}

fn verify(mut entries: Vec<AuditEntry>, unreadable: Option<i64>, page_size: u16) -> tollgate::AuditReport {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    let runtime = RUNTIME.get_or_init(|| tokio::runtime::Builder::new_current_thread().build().expect("runtime"));
    entries.sort_by_key(|entry| entry.sequence);
    let store = MemoryAudit { entries, unreadable };
    runtime.block_on(tollgate::verify_audit_chain(&store, u32::from(page_size))).expect("an audit walk over memory")
}

/// Whether an edit changed what the hash covers (`None` and JSON `null` are the same to the hash).
fn same_content(left: &AuditEvent, right: &AuditEvent) -> bool {
    left.chain_hash(1, &AUDIT_GENESIS_HASH) == right.chain_hash(1, &AUDIT_GENESIS_HASH)
}

fn differs(now: &AuditEntry, before: &AuditEntry) -> bool {
    now.sequence != before.sequence
        || now.hash != before.hash
        || now.previous_hash != before.previous_hash
        || !same_content(&now.event, &before.event)
}

fuzz_target!(|input: Input| {
    let events: Vec<AuditEvent> = input.events.into_iter().take(64).map(event).collect();
    let length = events.len();
    let chain = link(events, 1, AUDIT_GENESIS_HASH);
    let report = verify(chain.clone(), None, input.page_size);
    assert!(report.intact, "an untouched chain verifies: {report:?}");
    assert_eq!(report.entries_checked, length as u64);
    assert_eq!(report.last_sequence, length as i64);
    if length == 0 {
        return;
    }
    let mut tampered = chain.clone();
    let at = |index: usize| index % length;
    let unused = |entries: &[AuditEntry], sequence: i64| entries.iter().all(|entry| entry.sequence != sequence);
    match input.tamper {
        Tamper::Nothing => {}
        Tamper::EditAction { index, action } => tampered[at(index)].event.action = action,
        Tamper::EditReason { index, reason } => tampered[at(index)].event.reason = reason,
        Tamper::EditAfter { index, after } => tampered[at(index)].event.after = json(after),
        Tamper::EditTime { index, at: micros } => tampered[at(index)].event.at = Timestamp::from_unix_micros(micros),
        Tamper::EditIp { index, ip } => tampered[at(index)].event.ip = ip,
        Tamper::EditSequence { index, sequence } => {
            if !unused(&tampered, sequence) {
                return;
            }
            tampered[at(index)].sequence = sequence;
        }
        Tamper::FlipHashBit { index, bit } => tampered[at(index)].hash[usize::from(bit / 8)] ^= 1 << (bit % 8),
        Tamper::FlipPreviousBit { index, bit } => {
            tampered[at(index)].previous_hash[usize::from(bit / 8)] ^= 1 << (bit % 8)
        }
        Tamper::Delete { index } => drop(tampered.remove(at(index))),
        Tamper::Swap { first, second } => {
            let (first, second) = (at(first), at(second));
            let first_sequence = tampered[first].sequence;
            tampered.swap(first, second);
            tampered[second].sequence = tampered[first].sequence;
            tampered[first].sequence = first_sequence;
        }
        Tamper::Insert { event: forged, sequence, previous_hash, hash } => {
            if !unused(&tampered, sequence) {
                return;
            }
            tampered.push(AuditEntry { sequence, event: event(forged), previous_hash, hash });
        }
        Tamper::Unreadable { index } => {
            let report = verify(tampered, Some(at(index) as i64 + 1), input.page_size);
            assert!(!report.intact);
            assert_eq!(report.entries_checked, at(index) as u64);
            let broken = report.first_broken.expect("a broken entry");
            assert_eq!(broken.sequence, at(index) as i64 + 1);
            assert!(broken.problem.starts_with("unreadable"));
            return;
        }
        Tamper::RewriteTail { index, reason } => {
            // A rewrite with fresh hashes is invisible to the chain alone (hence `head_hash`).
            let start = at(index);
            let mut events: Vec<AuditEvent> = tampered.drain(start..).map(|entry| entry.event).collect();
            events[0].reason = Some(reason);
            let previous = if start == 0 { AUDIT_GENESIS_HASH } else { tampered[start - 1].hash };
            tampered.extend(link(events, start as i64 + 1, previous));
            let report = verify(tampered, None, input.page_size);
            assert!(report.intact && report.entries_checked == length as u64, "{report:?}");
            return;
        }
    }
    // What the verifier sees, as a backend returns it: the rows numbered above 0, in order. It must
    // stop at the first one that differs from the untouched chain; a view that is a prefix of the
    // chain (the newest entries lost) verifies, which is why reports carry `head_hash`.
    let mut view = tampered.clone();
    view.sort_by_key(|entry| entry.sequence);
    view.retain(|entry| entry.sequence > 0);
    let first_difference = view
        .iter()
        .zip(&chain)
        .position(|(now, before)| differs(now, before))
        .or((view.len() > chain.len()).then_some(chain.len()));
    let report = verify(tampered, None, input.page_size);
    match first_difference {
        Some(intact_before) => {
            assert!(!report.intact, "a tampered chain does not verify: {report:?}");
            assert_eq!(report.entries_checked, intact_before as u64, "{report:?}");
            assert_eq!(report.last_sequence, intact_before as i64);
        }
        None => {
            assert!(report.intact, "{report:?}");
            assert_eq!(report.entries_checked, view.len() as u64);
        }
    }
});
