//! The prefetch window: how many deliveries the worker holds, how many of
//! them wait, and whether waiting has starved it.
//!
//! A message that waits keeps its slot in the window. That is right while
//! what it waits for is in the window too (a record's earlier operation,
//! being applied or about to be): it will come. It starves the worker only
//! when every held message waits and nothing was applied for a while: then
//! what they wait for is outside the window (a message retried with
//! backoff, or behind them in the queue), and they must step aside so it can
//! come in. Stepping aside (a deferral) sends them to the back of the queue,
//! so it is kept for that case only: counting waiting messages alone, as a
//! message just woken still counts as waiting, made windows full of ready
//! chains step aside over and over and scrambled the queue.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// How long every held message must have waited, with nothing applied,
/// before the window counts as starved.
const STARVATION_GRACE: Duration = Duration::from_millis(500);

/// The worker's window. See the module docs.
#[derive(Debug)]
pub(crate) struct Window {
    /// The prefetch: how many deliveries the broker hands out at once.
    capacity: usize,
    /// Deliveries being handled.
    held: AtomicUsize,
    /// Of those, the ones waiting for a dependency.
    waiting: AtomicUsize,
    /// When a message was last applied or acknowledged.
    progress: Mutex<Instant>,
    /// Wakes the waiting messages when the window starved.
    starved: Notify,
}

impl Window {
    pub fn new(capacity: u16) -> Self {
        Self {
            capacity: usize::from(capacity),
            held: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            progress: Mutex::new(Instant::now()),
            starved: Notify::new(),
        }
    }

    /// Counts a delivery as held while the guard lives.
    pub fn hold(&self) -> Held<'_> {
        self.held.fetch_add(1, Ordering::SeqCst);
        Held(self)
    }

    /// Counts a held message as waiting while the guard lives.
    pub fn wait(&self) -> Waiting<'_> {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        Waiting(self)
    }

    /// Notes that a message was applied or acknowledged.
    pub fn progressed(&self) {
        *self.progress.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
    }

    /// Sets the in-flight and waiting gauges of `app` to what the window holds.
    pub fn export_gauges(&self, app: &str) {
        crate::metrics::window(app, self.held(), self.waiting());
    }

    /// Deliveries held now.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::SeqCst)
    }

    /// Held messages waiting now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    /// Whether the window is full of messages that all waited, with nothing
    /// applied, for longer than the grace period.
    pub fn is_starved(&self) -> bool {
        let held = self.held();
        held >= self.capacity
            && self.waiting() >= held
            && self
                .progress
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .elapsed()
                >= STARVATION_GRACE
    }

    /// Resolves when the window starved (see [`check`](Self::check)).
    pub async fn starved(&self) {
        self.starved.notified().await;
    }

    /// Wakes the waiting messages when the window starved; the worker's
    /// pump calls it periodically.
    pub fn check(&self) {
        if self.is_starved() {
            self.starved.notify_waiters();
            // Whoever steps aside restarts the grace period.
            self.progressed();
        }
    }

    /// How often [`check`](Self::check) should run.
    pub fn check_period() -> Duration {
        STARVATION_GRACE / 5
    }
}

/// A delivery held by the worker; released when dropped.
#[derive(Debug)]
pub(crate) struct Held<'a>(&'a Window);

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.0.held.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A held message waiting for a dependency; released when dropped.
#[derive(Debug)]
pub(crate) struct Waiting<'a>(&'a Window);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starved_only_when_full_of_waiting_messages_without_progress() {
        let window = Window::new(2);
        let _a = window.hold();
        let _wa = window.wait();
        assert!(!window.is_starved(), "not full");
        let _b = window.hold();
        assert!(!window.is_starved(), "one message does not wait");
        let _wb = window.wait();
        *window.progress.lock().unwrap() = Instant::now() - STARVATION_GRACE * 2;
        assert!(window.is_starved());
        window.progressed();
        assert!(!window.is_starved(), "something was just applied");
    }
}
