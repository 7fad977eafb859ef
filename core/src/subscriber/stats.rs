//! Counters of what the worker did.

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of the worker's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerStats {
    /// Deliveries received.
    pub received: u64,
    /// Operations applied to a subscribed model.
    pub applied: u64,
    /// Messages recognised as already applied and acknowledged without applying.
    pub duplicates: u64,
    /// Operations with no subscribed model (or noops), acknowledged.
    pub skipped: u64,
    /// Processing failures (each is retried or dead-lettered).
    pub failed: u64,
    /// Messages sent to the dead-letter queue.
    pub dead_lettered: u64,
    /// Missing operations skipped after the recovery timeout.
    pub recovered: u64,
    /// Waiting messages sent to the back of the queue because they filled the prefetch window.
    pub deferred: u64,
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
}

impl Counters {
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> WorkerStats {
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
        }
    }
}
