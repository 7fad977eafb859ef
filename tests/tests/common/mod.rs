//! Shared wiring of the end-to-end tests: a publisher app and a subscriber app
//! on one in-process broker, one memory clock and lock, and two memory storages.
#![allow(dead_code)]

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use promiscuous::core::error::chain;
use promiscuous::core::testkit::{eventually, unique, PATIENCE};
use promiscuous::memory::{InProcessBroker, MemoryClock, MemoryLock, MemoryStorage};
use promiscuous::{ConfigBuilder, Error, Promiscuous, Worker};

/// Two apps wired together in memory.
pub struct Apps {
    pub broker: Arc<InProcessBroker>,
    pub clock: Arc<MemoryClock>,
    pub source: Arc<MemoryStorage>,
    pub replica: Arc<MemoryStorage>,
    pub publisher: Promiscuous,
    pub subscriber: Promiscuous,
    pub errors: Arc<Mutex<Vec<String>>>,
}

impl Apps {
    /// A publisher app `publisher_app` and a subscriber app named `mailer`,
    /// whose builder `configure` completes (usually with `.subscriber::<M>()`).
    pub async fn new(
        publisher_app: &str,
        configure: impl FnOnce(ConfigBuilder) -> ConfigBuilder,
    ) -> Self {
        let broker = Arc::new(InProcessBroker::new());
        let clock = Arc::new(MemoryClock::new());
        let lock = Arc::new(MemoryLock::new());
        let source = Arc::new(MemoryStorage::new());
        let replica = Arc::new(MemoryStorage::new());
        let errors = Arc::new(Mutex::new(Vec::new()));
        let publisher = Promiscuous::configure()
            .app(publisher_app)
            .broker(broker.clone())
            .clock(clock.clone())
            .lock(lock.clone())
            .storage(source.clone())
            .build()
            .await
            .expect("publisher configuration is valid");
        let seen = errors.clone();
        let subscriber = configure(
            Promiscuous::configure()
                .app("mailer")
                .broker(broker.clone())
                .clock(clock.clone())
                .lock(lock)
                .storage(replica.clone())
                .recovery_timeout(Duration::from_secs(30))
                .retry_backoff(Duration::from_millis(10))
                .error_notifier(move |e: &Error| {
                    seen.lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(chain(e))
                }),
        )
        .build()
        .await
        .expect("subscriber configuration is valid");
        Self {
            broker,
            clock,
            source,
            replica,
            publisher,
            subscriber,
            errors,
        }
    }

    /// Starts the subscriber's worker.
    pub async fn worker(&self) -> Worker {
        self.subscriber
            .subscribe()
            .await
            .expect("the worker starts")
    }

    /// The errors reported to the subscriber's notifier so far, each with its chain of sources.
    pub fn errors(&self) -> Vec<String> {
        self.errors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Waits until the worker applied at least `n` operations, or fails the test.
pub async fn applied(worker: &Worker, n: u64) {
    let reached = eventually(PATIENCE, || async { worker.stats().applied >= n }).await;
    assert!(
        reached,
        "worker applied {} operations, expected {n}: {:?}",
        worker.stats().applied,
        worker.stats()
    );
}

/// Waits until the worker acknowledged `n` deliveries in any way.
pub async fn settled(worker: &Worker, n: u64) {
    let done = || {
        let s = worker.stats();
        s.applied + s.duplicates + s.skipped + s.dead_lettered
    };
    let reached = eventually(PATIENCE, || async { done() >= n }).await;
    assert!(
        reached,
        "worker settled {} deliveries, expected {n}: {:?}",
        done(),
        worker.stats()
    );
}

/// A name unique to this test run.
pub fn fresh(prefix: &str) -> String {
    unique(prefix)
}

/// A log of what callbacks observed, shared by the tests of one binary; each
/// test filters it by a key of its own (for example the publisher app name).
pub struct Journal(Mutex<Vec<(String, String)>>);

impl Journal {
    pub const fn new() -> Self {
        Self(Mutex::new(Vec::new()))
    }

    pub fn push(&self, key: &str, entry: impl Into<String>) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((key.to_owned(), entry.into()));
    }

    pub fn entries(&self, key: &str) -> Vec<String> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, e)| e.clone())
            .collect()
    }
}
