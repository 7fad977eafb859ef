//! Version counters that order operations.

use std::fmt::Debug;
use std::time::Duration;

use async_trait::async_trait;

use crate::error::BackendError;

/// Version counters, keyed by string.
///
/// Publishers [`tick`](Clock::tick) the counters of an operation; subscribers
/// [`read`](Clock::read) theirs to decide whether an operation is ready,
/// [`advance`](Clock::advance) them after applying it, and
/// [`wait_until`](Clock::wait_until) another worker advances them. Keys are
/// namespaced by the caller (app, generation); a counter never touched is 0.
#[async_trait]
pub trait Clock: Send + Sync + Debug + 'static {
    /// Short name for logs and errors (`memory`, `redis`).
    fn name(&self) -> &'static str;

    /// Adds one to every counter in `keys` and returns their new values, in order.
    ///
    /// Behaviour: one atomic step: no other tick or advance is seen between the
    /// counters. Keys are distinct.
    async fn tick(&self, keys: &[String]) -> Result<Vec<u64>, BackendError>;

    /// The current values of `keys`, in order (0 for a counter never touched).
    async fn read(&self, keys: &[String]) -> Result<Vec<u64>, BackendError>;

    /// Ticks `increments` and reads `reads` (the publisher's step for one
    /// operation with read dependencies); returns both lists of values.
    ///
    /// Behaviour: the tick is atomic as in [`tick`](Clock::tick); each read
    /// value is taken no later than the tick, so it never counts an
    /// operation that ticked after this one (dependencies only point to the
    /// past, so they cannot form a cycle). The default runs `read` then
    /// `tick`; backends may override it to do both in one round trip.
    async fn tick_and_read(
        &self,
        increments: &[String],
        reads: &[String],
    ) -> Result<(Vec<u64>, Vec<u64>), BackendError> {
        let read = if reads.is_empty() {
            Vec::new()
        } else {
            self.read(reads).await?
        };
        let ticked = self.tick(increments).await?;
        Ok((ticked, read))
    }

    /// Raises each counter to at least its target, atomically, and wakes waiters.
    ///
    /// Behaviour: a counter already at or above its target is left as it is,
    /// so advancing is idempotent and never moves a counter back.
    async fn advance(&self, targets: &[(String, u64)]) -> Result<(), BackendError>;

    /// Waits until `key` is at least `value`, or `timeout` passes; returns the
    /// value then. Waiters are woken by `advance`, not by polling.
    async fn wait_until(
        &self,
        key: &str,
        value: u64,
        timeout: Duration,
    ) -> Result<u64, BackendError>;
}
