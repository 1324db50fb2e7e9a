//! What the usage writer holds between receiving batches and storing them: the events in arrival
//! order, what became of each one so far, and who waits for which.
//!
//! A write may store part of what is held (a batch split to find the event the store refuses, or
//! a store that fails midway through the splits); each event's outcome is kept, so an event stored
//! once is never sent again and a waiter is answered only when every one of its events has an outcome.

use std::ops::Range;
use std::sync::atomic::Ordering;

use tollgate_store::EventToRecord;

use super::recorder::{Batch, OutcomesReply, RecorderStats, UsageOutcome};
use crate::Error;

#[derive(Debug)]
struct Waiter {
    range: Range<usize>,
    /// `None`: fire-and-forget.
    reply: Option<OutcomesReply>,
    /// The batch's number in the order sent (flushes wait for numbers up to theirs).
    seq: u64,
    /// Write attempts that failed while this batch waited.
    failures: u32,
}

#[derive(Debug, Default)]
pub(crate) struct Pending {
    pub(crate) events: Vec<EventToRecord>,
    outcomes: Vec<Option<UsageOutcome>>,
    waiters: Vec<Waiter>,
    /// Events without an outcome.
    unwritten: usize,
}

impl Pending {
    pub(crate) fn push(&mut self, batch: Batch, seq: u64) {
        let start = self.events.len();
        self.outcomes.resize(start + batch.events.len(), None);
        self.unwritten += batch.events.len();
        self.events.extend(batch.events);
        self.waiters.push(Waiter { range: start..self.events.len(), reply: batch.reply, seq, failures: 0 });
    }

    /// Events held (stored or not).
    pub(crate) fn len(&self) -> usize {
        self.events.len()
    }

    /// Events without an outcome yet.
    pub(crate) fn unwritten(&self) -> usize {
        self.unwritten
    }

    /// Whether a caller waits for a write (a durable batch).
    pub(crate) fn has_durable(&self) -> bool {
        self.waiters.iter().any(|waiter| waiter.reply.is_some())
    }

    /// The number of the oldest batch still held.
    pub(crate) fn oldest_seq(&self) -> Option<u64> {
        self.waiters.first().map(|waiter| waiter.seq)
    }

    /// The runs of consecutive events without an outcome, in order.
    pub(crate) fn unwritten_runs(&self) -> Vec<Range<usize>> {
        let mut runs = Vec::new();
        let mut start = None;
        for (index, outcome) in self.outcomes.iter().enumerate() {
            match (outcome, start) {
                (None, None) => start = Some(index),
                (Some(_), Some(from)) => {
                    runs.push(from..index);
                    start = None;
                }
                _ => {}
            }
        }
        if let Some(from) = start {
            runs.push(from..self.outcomes.len());
        }
        runs
    }

    pub(crate) fn set(&mut self, index: usize, outcome: UsageOutcome, stats: &RecorderStats) {
        let counter = match outcome {
            UsageOutcome::Recorded => &stats.written,
            UsageOutcome::Duplicate => &stats.duplicates,
            UsageOutcome::DeadLettered => &stats.dead_letters,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if self.outcomes[index].replace(outcome).is_none() {
            self.unwritten -= 1;
        }
    }

    /// After a write attempt failed: every waiting batch counts a failure, and durable batches that
    /// reached `max_failures` are answered with `reason` (not acknowledged, so their unwritten
    /// events are dropped: the caller retries them, safely with event ids).
    pub(crate) fn count_failure(&mut self, max_failures: u32, reason: &str, stats: &RecorderStats) {
        for waiter in &mut self.waiters {
            waiter.failures += 1;
        }
        self.settle(stats, |waiter| waiter.reply.is_some() && waiter.failures >= max_failures, reason);
    }

    /// Answers every batch whose events all have an outcome, and forgets them.
    pub(crate) fn answer_complete(&mut self, stats: &RecorderStats) {
        self.settle(stats, |_| false, "");
    }

    /// Answers every durable batch left with `reason` and forgets everything (the last step of a
    /// shutdown); returns how many events were never written.
    pub(crate) fn abandon(&mut self, reason: &str, stats: &RecorderStats) -> usize {
        let unwritten = self.unwritten();
        self.settle(stats, |_| true, reason);
        unwritten
    }

    /// Answers complete batches, and refuses those `refuse` picks; keeps the rest (compacted).
    fn settle(&mut self, stats: &RecorderStats, refuse: impl Fn(&Waiter) -> bool, reason: &str) {
        let mut events = std::mem::take(&mut self.events).into_iter();
        let mut outcomes = std::mem::take(&mut self.outcomes).into_iter();
        for mut waiter in std::mem::take(&mut self.waiters) {
            let count = waiter.range.len();
            let mine: Vec<Option<UsageOutcome>> = outcomes.by_ref().take(count).collect();
            let unwritten = mine.iter().filter(|outcome| outcome.is_none()).count();
            let complete = unwritten == 0;
            if complete || refuse(&waiter) {
                events.by_ref().take(count).for_each(drop);
                self.unwritten -= unwritten;
                stats.refused.fetch_add(unwritten as u64, Ordering::Relaxed);
                if let Some(reply) = waiter.reply.take() {
                    let answer = if complete {
                        Ok(mine.into_iter().flatten().collect())
                    } else {
                        Err(Error::Unavailable(reason.to_owned()))
                    };
                    let _ = reply.send(answer);
                }
                continue;
            }
            let start = self.events.len();
            self.events.extend(events.by_ref().take(count));
            self.outcomes.extend(mine);
            waiter.range = start..self.events.len();
            self.waiters.push(waiter);
        }
    }
}

#[cfg(test)]
mod tests {
    use tollgate_types::{ModelName, ProviderName, Timestamp, TokenId, UsageEvent};

    use super::*;

    fn batch(
        count: usize,
        durable: bool,
    ) -> (Batch, Option<tokio::sync::oneshot::Receiver<crate::Result<Vec<UsageOutcome>>>>) {
        let event = UsageEvent::new(
            TokenId::generate(),
            Timestamp::from_unix_micros(0),
            ProviderName::parse("openai").unwrap(),
            ModelName::parse("gpt-4o").unwrap(),
        );
        let events = vec![EventToRecord { event, counters: Vec::new(), agent: None }; count];
        if durable {
            let (reply, answer) = tokio::sync::oneshot::channel();
            (Batch { events, reply: Some(reply) }, Some(answer))
        } else {
            (Batch { events, reply: None }, None)
        }
    }

    #[test]
    fn a_waiter_is_answered_only_when_each_of_its_events_has_an_outcome() {
        let stats = RecorderStats::default();
        let mut pending = Pending::default();
        let (first, first_answer) = batch(3, true);
        let (second, _) = batch(2, false);
        pending.push(first, 1);
        pending.push(second, 2);
        assert_eq!(pending.unwritten_runs(), vec![0..5]);
        pending.set(0, UsageOutcome::Recorded, &stats);
        pending.set(2, UsageOutcome::DeadLettered, &stats);
        pending.set(3, UsageOutcome::Recorded, &stats);
        pending.set(4, UsageOutcome::Duplicate, &stats);
        assert_eq!(pending.unwritten_runs(), vec![1..2]);
        pending.answer_complete(&stats);
        // The fire-and-forget batch is done and gone; the durable one still waits for event 1.
        assert_eq!((pending.len(), pending.oldest_seq()), (3, Some(1)));
        let mut first_answer = first_answer.unwrap();
        assert!(first_answer.try_recv().is_err());
        pending.set(1, UsageOutcome::Recorded, &stats);
        pending.answer_complete(&stats);
        let outcomes = first_answer.try_recv().unwrap().unwrap();
        assert_eq!(outcomes, [UsageOutcome::Recorded, UsageOutcome::Recorded, UsageOutcome::DeadLettered]);
        assert_eq!(pending.len(), 0);
    }

    #[test]
    fn durable_batches_are_refused_after_repeated_failures_and_background_ones_kept() {
        let stats = RecorderStats::default();
        let mut pending = Pending::default();
        let (durable, answer) = batch(2, true);
        let (background, _) = batch(1, false);
        pending.push(durable, 1);
        pending.push(background, 2);
        pending.set(0, UsageOutcome::Recorded, &stats);
        pending.count_failure(2, "down", &stats);
        assert_eq!(pending.len(), 3, "one failure is not enough");
        pending.count_failure(2, "down", &stats);
        assert!(matches!(answer.unwrap().try_recv().unwrap(), Err(Error::Unavailable(_))));
        assert_eq!(pending.len(), 1, "the background event waits for the store to come back");
        assert_eq!(stats.refused.load(Ordering::Relaxed), 1, "only the unwritten event is refused");
        assert_eq!(pending.abandon("stopping", &stats), 1);
    }
}
