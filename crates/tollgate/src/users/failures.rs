//! Bounding the audit log's growth under a password-guessing flood: per account (or "unknown") and
//! client address, the first [`DETAILED_PER_MINUTE`] failed logins of each minute are written in
//! full; the rest are counted and written as one `user.login_failed_repeated` entry for that minute
//! (with the count and the reason of the first), when the minute is over. Lockout counting is not
//! affected: a suppressed failure of a known account still counts against it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use serde_json::json;
use tollgate_types::{Actor, AuditEvent, Timestamp};

/// Failures written in full per account, address and minute.
pub(crate) const DETAILED_PER_MINUTE: u32 = 10;
/// Accounts × addresses tracked at most; when full, every summary is written and tracking starts over.
const CAPACITY: usize = 10_000;
const MINUTE_MICROS: i64 = 60_000_000;

#[derive(Debug)]
struct Bucket {
    minute: i64,
    written: u32,
    suppressed: u32,
    reason: String,
}

/// Whether a failure's own event is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Detail {
    /// Write it.
    Write,
    /// Count it into the minute's summary.
    Suppress,
}

/// The failed logins seen per account and address in the current minute.
#[derive(Debug, Default)]
pub(crate) struct FailureDigest {
    buckets: Mutex<HashMap<(String, Option<IpAddr>), Bucket>>,
}

fn minute_of(at: Timestamp) -> i64 {
    at.unix_micros().div_euclid(MINUTE_MICROS)
}

fn summary(target: &str, ip: Option<IpAddr>, bucket: &Bucket, at: Timestamp) -> AuditEvent {
    let mut event = AuditEvent::new(Actor::id("anonymous"), "user.login_failed_repeated", target, at);
    event.ip = ip;
    event.reason = Some(bucket.reason.clone());
    let minute = Timestamp::from_unix_micros(bucket.minute * MINUTE_MICROS);
    event.after = Some(json!({ "count": bucket.suppressed, "minute": minute }));
    event
}

impl FailureDigest {
    /// Notes a failure of `target` from `ip` at `now`; returns whether its event is written, and
    /// the summaries now due (minutes that ended with suppressed failures).
    pub(crate) fn note(
        &self,
        target: &str,
        ip: Option<IpAddr>,
        reason: &str,
        now: Timestamp,
    ) -> (Detail, Vec<AuditEvent>) {
        let minute = minute_of(now);
        let mut buckets = self.buckets.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut due = Vec::new();
        let key = (target.to_owned(), ip);
        if !buckets.contains_key(&key) && buckets.len() >= CAPACITY {
            due.extend(drain(&mut buckets, |_| true, now));
        }
        let bucket = buckets.entry(key).or_insert_with(|| Bucket {
            minute,
            written: 0,
            suppressed: 0,
            reason: reason.to_owned(),
        });
        if bucket.minute != minute {
            if bucket.suppressed > 0 {
                due.push(summary(target, ip, bucket, now));
            }
            *bucket = Bucket { minute, written: 0, suppressed: 0, reason: reason.to_owned() };
        }
        let detail = if bucket.written < DETAILED_PER_MINUTE {
            bucket.written += 1;
            Detail::Write
        } else {
            bucket.suppressed += 1;
            Detail::Suppress
        };
        (detail, due)
    }

    /// The summaries of minutes that have ended (all of them with `everything`, at shutdown), and
    /// forgets those buckets.
    pub(crate) fn take(&self, now: Timestamp, everything: bool) -> Vec<AuditEvent> {
        let minute = minute_of(now);
        let mut buckets = self.buckets.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        drain(&mut buckets, |bucket| everything || bucket.minute < minute, now)
    }
}

/// Removes the buckets `done` selects; returns the summaries of those with suppressed failures.
fn drain(
    buckets: &mut HashMap<(String, Option<IpAddr>), Bucket>,
    done: impl Fn(&Bucket) -> bool,
    now: Timestamp,
) -> Vec<AuditEvent> {
    let mut due = Vec::new();
    buckets.retain(|(target, ip), bucket| {
        if !done(bucket) {
            return true;
        }
        if bucket.suppressed > 0 {
            due.push(summary(target, *ip, bucket, now));
        }
        false
    });
    due
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timestamp = Timestamp::from_unix_micros(1_800_000_000_000_000);

    #[test]
    fn the_first_failures_of_a_minute_are_detailed_and_the_rest_summarized() {
        let digest = FailureDigest::default();
        let ip = Some("203.0.113.5".parse().unwrap());
        let details: Vec<Detail> = (0..25).map(|_| digest.note("usr_a", ip, "wrong password", T).0).collect();
        assert_eq!(details.iter().filter(|detail| **detail == Detail::Write).count(), DETAILED_PER_MINUTE as usize);
        assert!(digest.take(T, false).is_empty(), "the minute is not over");
        assert_eq!(digest.note("usr_b", ip, "wrong password", T).0, Detail::Write, "another account");
        let next_minute = T.saturating_add(std::time::Duration::from_secs(60));
        let (detail, due) = digest.note("usr_a", ip, "wrong password", next_minute);
        assert_eq!(detail, Detail::Write, "a new minute starts detailed");
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].action, "user.login_failed_repeated");
        assert_eq!(due[0].after.as_ref().unwrap()["count"], 15);
        assert_eq!(due[0].ip, ip);
        for _ in 0..12 {
            digest.note("usr_a", ip, "wrong password", next_minute);
        }
        let flushed = digest.take(next_minute, true);
        assert_eq!(flushed.len(), 1, "usr_b had nothing suppressed");
        assert_eq!(flushed[0].after.as_ref().unwrap()["count"], 3);
    }
}
