//! Conformance suites for backend implementations (cargo feature `testkit`).
//!
//! Modelled on object_store's `integration.rs` and Watermill's universal
//! pub/sub tests: each module ([`broker`], [`clock`], [`lock`], [`storage`],
//! and [`adapter`] for the publish protocol over a storage adapter)
//! has one public async function per behaviour of its trait, checking exactly
//! what the trait methods' "Behaviour" paragraphs promise, and a `run_all` that
//! calls every function of the module. A backend crate runs them from its own
//! tests:
//!
//! ```text
//! #[tokio::test(flavor = "multi_thread")]
//! async fn clock_conforms() {
//!     let clock: Arc<dyn Clock> = Arc::new(MyClock::connect(URL).await?);
//!     promiscuous_core::testkit::clock::run_all(clock).await;
//! }
//! ```
//!
//! The functions panic with an assertion message on failure (they are test
//! code), bound every wait with a timeout so a broken backend fails instead
//! of hanging, and name their queues, endpoints, keys and models with
//! [`unique`], so they can run in parallel against one shared server.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub mod adapter;
pub mod broker;
pub mod clock;
pub mod kill;
pub mod lock;
pub mod storage;

/// What the derive macros name in the suite's own models (`crate = ...`).
#[doc(hidden)]
pub mod facade {
    /// The paths generated code uses.
    pub mod __private {
        pub use crate as core;
        pub use async_trait::async_trait;
        pub use inventory;
        pub use serde;
        pub use serde_json;
    }
}

/// How long a suite waits for something that must happen (a delivery, a wake-up).
pub const PATIENCE: Duration = Duration::from_secs(5);

/// How long a suite watches for something that must not happen (a redelivery).
pub const QUIET: Duration = Duration::from_millis(300);

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A name no other call returns, in this process or another one:
/// `prefix-<pid>-<nanos>-<counter>`, made of `[A-Za-z0-9_-]` when `prefix` is,
/// so it is valid as a queue name, a key, a model name and an endpoint segment.
pub fn unique(prefix: &str) -> String {
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() % 1_000_000_000_000)
        .unwrap_or_default();
    format!("{prefix}-{}-{nanos:x}-{count}", std::process::id())
}

/// Polls `condition` every 10 ms until it is true or `timeout` passes; returns
/// whether it became true. Tests assert on the result with their own message:
///
/// ```text
/// assert!(eventually(PATIENCE, || async { broker.queue_len("q") == 0 }).await, "queue never drained");
/// ```
pub async fn eventually<F, Fut>(timeout: Duration, mut condition: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if condition().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_differ_and_are_valid_segments() {
        let a = unique("q");
        let b = unique("q");
        assert_ne!(a, b);
        assert!(a.starts_with("q-"));
        assert!(
            crate::wire::Endpoint::parse(&format!("{a}/{b}")).is_ok(),
            "{a}"
        );
    }

    #[tokio::test]
    async fn eventually_reports_success_and_timeout() {
        let mut calls = 0;
        assert!(
            eventually(Duration::from_secs(1), || {
                calls += 1;
                let done = calls >= 3;
                async move { done }
            })
            .await
        );
        assert!(!eventually(Duration::from_millis(30), || async { false }).await);
    }
}
