//! Counters of what the worker did, and gauges of what it holds.

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of the worker's counters and gauges.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerStats {
    /// Deliveries received.
    pub received: u64,
    /// Operations applied to a subscribed model.
    pub applied: u64,
    /// Messages (or operations) recognised as already applied and
    /// acknowledged without applying.
    pub duplicates: u64,
    /// Operations with no subscribed model (or noops), acknowledged.
    pub skipped: u64,
    /// Processing failures (each is retried or dead-lettered).
    pub failed: u64,
    /// Messages sent to the dead-letter queue.
    pub dead_lettered: u64,
    /// Versions skipped by an operator ([`Worker::skip_missing`](super::Worker::skip_missing)).
    pub recovered: u64,
    /// Waiting messages sent to the back of the queue because they starved
    /// the prefetch window.
    pub deferred: u64,
    /// Counters started where an initial sync's baseline said the publisher
    /// stood (this subscriber never received what came before).
    pub seeded: u64,
    /// Deliveries held now (received, not yet acknowledged).
    pub in_flight: u64,
    /// Of those, the ones waiting for a dependency now. With `in_flight`
    /// at 0 the worker is idle.
    pub waiting: u64,
}

impl WorkerStats {
    /// Whether the worker holds no delivery.
    pub fn is_idle(&self) -> bool {
        self.in_flight == 0
    }
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub received: AtomicU64,
    pub applied: AtomicU64,
    pub duplicates: AtomicU64,
    pub skipped: AtomicU64,
    pub failed: AtomicU64,
    pub dead_lettered: AtomicU64,
    pub recovered: AtomicU64,
    pub deferred: AtomicU64,
    pub seeded: AtomicU64,
}

impl Counters {
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn add(&self, counter: &AtomicU64, amount: u64) {
        counter.fetch_add(amount, Ordering::Relaxed);
    }

    pub fn snapshot(&self, in_flight: u64, waiting: u64) -> WorkerStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        WorkerStats {
            received: get(&self.received),
            applied: get(&self.applied),
            duplicates: get(&self.duplicates),
            skipped: get(&self.skipped),
            failed: get(&self.failed),
            dead_lettered: get(&self.dead_lettered),
            recovered: get(&self.recovered),
            deferred: get(&self.deferred),
            seeded: get(&self.seeded),
            in_flight,
            waiting,
        }
    }
}
