//! Version counters that order operations, and the intents of the
//! publications that took them.

use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;

use crate::error::BackendError;

/// How long a clock keeps an intent that was never forgotten (its publisher
/// died after settling its message but before forgetting it): far longer
/// than any lock lives, so a recovery worker always finds the intents of the
/// locks it recovers.
pub const INTENT_RETENTION: Duration = Duration::from_secs(24 * 3600);

/// A new [epoch](Clock::epoch) from this host's time: microseconds since the
/// Unix epoch, later than any this process made before (for clocks that
/// keep their state in the process).
pub fn fresh_epoch() -> u64 {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX)
        });
    let previous = LAST
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| {
            Some(now.max(last.saturating_add(1)))
        })
        .unwrap_or(now);
    now.max(previous.saturating_add(1))
}

/// What a publication records with its versions: its id (the owner tag of
/// its locks) and what another process needs to finish it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntentRecord<'a> {
    /// The publication's id.
    pub id: &'a str,
    /// Whose it is (the publishing app): [`Clock::stale_intents`] lists one
    /// scope's, so apps sharing a clock do not see each other's.
    pub scope: &'a str,
    /// Opaque to the clock: the publication's plan (see `publisher::intent`).
    pub data: &'a [u8],
}

/// One publisher step: counters to tick, counters to read, and the intent to
/// record with the versions taken.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Step<'a> {
    /// Counters to add one to.
    pub increments: &'a [String],
    /// Counters to read (the publication's read dependencies).
    pub reads: &'a [String],
    /// The intent to record, atomically with the tick.
    pub intent: Option<IntentRecord<'a>>,
}

/// The versions a [`Step`] took.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Versions {
    /// The new values of the ticked counters, in the order of `increments`.
    pub ticked: Vec<u64>,
    /// The values read, in the order of `reads`.
    pub read: Vec<u64>,
}

/// An intent as the clock recorded it, with the versions of its step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedIntent {
    /// The publication's id.
    pub id: String,
    /// The data recorded with it.
    pub data: Vec<u8>,
    /// The versions its step took.
    pub versions: Versions,
}

/// Version counters, keyed by string, and the intents of the publications
/// that advanced them.
///
/// Publishers [`take`](Clock::take) the versions of a publication; subscribers
/// [`read`](Clock::read) theirs to decide whether an operation is ready,
/// [`advance`](Clock::advance) them after applying it, and
/// [`wait_until`](Clock::wait_until) another worker advances them. Keys are
/// namespaced by the caller (app, generation); a counter never touched is 0.
///
/// Every version a publisher takes must end up in a message (the operation,
/// or a `noop`), or subscribers wait for it forever. That is why
/// [`take`](Clock::take) records the publication's *intent* in the same
/// atomic step: if the publisher dies before its message is out, a recovery
/// worker reads the intent back with [`intent`](Clock::intent) and finishes
/// the publication with the same versions.
#[async_trait]
pub trait Clock: Send + Sync + Debug + 'static {
    /// Short name for logs and errors (`memory`, `redis`).
    fn name(&self) -> &'static str;

    /// The identity of the state this clock holds: when that state was
    /// created, in microseconds since the Unix epoch.
    ///
    /// Behaviour: constant for the life of the clock. A state created after
    /// another was lost (a Redis restarted empty, a new process for an
    /// in-memory clock) has a later epoch, so versions of the two states are
    /// never compared: messages carry the epoch and subscribers keep their
    /// applied versions per epoch. Calls after the state was lost fail with a
    /// [state-lost](BackendError::is_state_lost) error.
    fn epoch(&self) -> u64;

    /// Checks that the clock answers and still holds the state of
    /// [`epoch`](Clock::epoch); idle processes call it now and then so they
    /// notice a lost state (or a dead server) before their next operation.
    async fn check(&self) -> Result<(), BackendError>;

    /// Adds one to every counter in `keys` and returns their new values, in order.
    ///
    /// Behaviour: one atomic step: no other tick or advance is seen between the
    /// counters. Keys are distinct.
    async fn tick(&self, keys: &[String]) -> Result<Vec<u64>, BackendError>;

    /// The current values of `keys`, in order (0 for a counter never touched).
    async fn read(&self, keys: &[String]) -> Result<Vec<u64>, BackendError>;

    /// A publisher's step: ticks `step.increments`, reads `step.reads` and
    /// records `step.intent` with the resulting versions.
    ///
    /// Behaviour: one atomic step. The tick is atomic as in
    /// [`tick`](Clock::tick); each read value is taken no later than the
    /// tick, so it never counts an operation that ticked after this one
    /// (dependencies only point to the past, so they cannot form a cycle);
    /// the intent is recorded if and only if the counters moved, and is kept
    /// until [`forget`](Clock::forget)ten (at least [`INTENT_RETENTION`]).
    async fn take(&self, step: &Step<'_>) -> Result<Versions, BackendError>;

    /// The intent recorded under `id`, with its versions, if it is still kept.
    async fn intent(&self, id: &str) -> Result<Option<RecordedIntent>, BackendError>;

    /// Forgets the intents of settled publications; unknown ids are ignored.
    async fn forget(&self, ids: &[String]) -> Result<(), BackendError>;

    /// Intents of `scope` recorded more than `age` ago and not forgotten,
    /// oldest first, at most `limit`: publications whose publisher stopped,
    /// found even when no expired lock names them.
    async fn stale_intents(
        &self,
        scope: &str,
        age: Duration,
        limit: usize,
    ) -> Result<Vec<RecordedIntent>, BackendError>;

    /// Raises each counter to at least its target, atomically, and wakes waiters.
    ///
    /// Behaviour: a counter already at or above its target is left as it is,
    /// so advancing is idempotent and never moves a counter back.
    async fn advance(&self, targets: &[(String, u64)]) -> Result<(), BackendError>;

    /// Sets each counter that was never touched (is 0) to its target, and
    /// wakes its waiters; leaves every other counter as it is. Returns how
    /// many it set.
    ///
    /// Behaviour: per counter, one atomic step ("set if 0"), so a counter
    /// something else advanced meanwhile is never moved. How a subscriber
    /// that joins a running publisher starts where the publisher stood.
    async fn seed(&self, targets: &[(String, u64)]) -> Result<usize, BackendError>;

    /// The counters whose keys start with `prefix`, a page at a time: pass
    /// cursor 0 first, then the cursor returned, until it returns 0.
    ///
    /// Behaviour: every counter that exists for the whole scan and starts
    /// with `prefix` is returned at least once (one may come twice); no other
    /// key is. Not a snapshot: counters may move while the scan runs.
    async fn scan(
        &self,
        prefix: &str,
        cursor: u64,
    ) -> Result<(Vec<(String, u64)>, u64), BackendError>;

    /// Waits until `key` is at least `value`, or `timeout` passes; returns the
    /// value then. Waiters are woken by `advance`, not by polling.
    async fn wait_until(
        &self,
        key: &str,
        value: u64,
        timeout: Duration,
    ) -> Result<u64, BackendError>;
}
