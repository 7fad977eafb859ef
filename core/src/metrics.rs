//! The metrics promiscuous records, through the [`metrics`](https://docs.rs/metrics)
//! facade: nothing is kept unless the application installs a recorder (the
//! `cli` feature's Prometheus exporter, or any `metrics` recorder).
//!
//! Every metric carries the label `app` (the app that records it); the
//! others are listed with each name. `docs/operations.md` says what each
//! one means and what to alert on.

use std::time::Duration;

use ::metrics::{counter, gauge, histogram};

/// Operations whose message the broker confirmed, however published (a
/// write, the outbox relay, recovery, a sync); `noop`s and baselines left
/// out (`endpoint`, `model`).
pub const PUBLISHED: &str = "promiscuous_operations_published_total";
/// Time a publisher waited for the locks of a write, in seconds.
pub const LOCK_WAIT: &str = "promiscuous_publish_lock_wait_seconds";
/// Time from handing a message to the broker to its confirmation, in seconds.
pub const CONFIRM: &str = "promiscuous_publish_confirm_seconds";
/// Messages a subscriber worker received.
pub const RECEIVED: &str = "promiscuous_messages_received_total";
/// Operations a subscriber applied to its storage or callbacks (`endpoint`, `model`).
pub const APPLIED: &str = "promiscuous_operations_applied_total";
/// Messages or operations recognised as already applied and acknowledged
/// without applying (`endpoint`).
pub const DUPLICATE: &str = "promiscuous_operations_duplicate_total";
/// Operations acknowledged without applying: no subscribed model, or a
/// generation older than the subscriber's (`endpoint`, `reason`).
pub const SKIPPED: &str = "promiscuous_operations_skipped_total";
/// Versions a subscriber skipped because they never arrived: recovery
/// (`skip_missing_after`) or an operator's `skip_missing` (`endpoint`).
pub const RECOVERY_SKIPPED: &str = "promiscuous_versions_skipped_by_recovery_total";
/// Messages whose processing failed and that will be delivered again (`endpoint`).
pub const RETRIED: &str = "promiscuous_messages_retried_total";
/// Messages sent to the dead-letter queue `<app>.error` (`endpoint`).
pub const DEAD_LETTERED: &str = "promiscuous_messages_dead_lettered_total";
/// Waiting messages sent to the back of the queue because they starved the
/// prefetch window.
pub const DEFERRED: &str = "promiscuous_messages_deferred_total";
/// Apply time minus the message's publish timestamp, in seconds (`endpoint`).
pub const LATENCY: &str = "promiscuous_replication_latency_seconds";
/// Time to apply one ready message (storage writes and callbacks), in seconds.
pub const APPLY_DURATION: &str = "promiscuous_apply_duration_seconds";
/// Deliveries a worker holds now (received, not yet acknowledged).
pub const IN_FLIGHT: &str = "promiscuous_messages_in_flight";
/// Of those, the ones waiting for a dependency now.
pub const WAITING: &str = "promiscuous_messages_waiting";
/// Errors reported through the error notifier (`kind`: the [`ErrorKind`](crate::ErrorKind)).
pub const ERRORS: &str = "promiscuous_errors_total";
/// 1 while [`Promiscuous::healthy`](crate::Promiscuous::healthy) is true, else 0
/// (set by whoever exports the metrics, at each scrape).
pub const HEALTHY: &str = "promiscuous_healthy";

/// Every metric name, for exporters and documentation checks.
pub const ALL: &[&str] = &[
    PUBLISHED,
    LOCK_WAIT,
    CONFIRM,
    RECEIVED,
    APPLIED,
    DUPLICATE,
    SKIPPED,
    RECOVERY_SKIPPED,
    RETRIED,
    DEAD_LETTERED,
    DEFERRED,
    LATENCY,
    APPLY_DURATION,
    IN_FLIGHT,
    WAITING,
    ERRORS,
    HEALTHY,
];

/// The histograms, in seconds.
pub const HISTOGRAMS: &[&str] = &[LOCK_WAIT, CONFIRM, LATENCY, APPLY_DURATION];

pub(crate) fn published(app: &str, endpoint: &str, model: &str) {
    counter!(PUBLISHED, "app" => app.to_owned(), "endpoint" => endpoint.to_owned(), "model" => model.to_owned())
        .increment(1);
}

pub(crate) fn lock_wait(app: &str, waited: Duration) {
    histogram!(LOCK_WAIT, "app" => app.to_owned()).record(waited.as_secs_f64());
}

pub(crate) fn confirm(app: &str, took: Duration) {
    histogram!(CONFIRM, "app" => app.to_owned()).record(took.as_secs_f64());
}

pub(crate) fn received(app: &str) {
    counter!(RECEIVED, "app" => app.to_owned()).increment(1);
}

pub(crate) fn applied(app: &str, endpoint: &str, model: &'static str) {
    counter!(APPLIED, "app" => app.to_owned(), "endpoint" => endpoint.to_owned(), "model" => model)
        .increment(1);
}

pub(crate) fn duplicate(app: &str, endpoint: &str) {
    counter!(DUPLICATE, "app" => app.to_owned(), "endpoint" => endpoint.to_owned()).increment(1);
}

pub(crate) fn skipped(app: &str, endpoint: &str, reason: &'static str) {
    counter!(SKIPPED, "app" => app.to_owned(), "endpoint" => endpoint.to_owned(), "reason" => reason)
        .increment(1);
}

pub(crate) fn recovery_skipped(app: &str, endpoint: &str, versions: u64) {
    counter!(RECOVERY_SKIPPED, "app" => app.to_owned(), "endpoint" => endpoint.to_owned())
        .increment(versions);
}

pub(crate) fn retried(app: &str, endpoint: &str) {
    counter!(RETRIED, "app" => app.to_owned(), "endpoint" => endpoint.to_owned()).increment(1);
}

pub(crate) fn dead_lettered(app: &str, endpoint: &str) {
    counter!(DEAD_LETTERED, "app" => app.to_owned(), "endpoint" => endpoint.to_owned())
        .increment(1);
}

pub(crate) fn deferred(app: &str) {
    counter!(DEFERRED, "app" => app.to_owned()).increment(1);
}

/// Records the replication latency of a message published at
/// `published_ms` (milliseconds since the Unix epoch), now applied.
pub(crate) fn latency(app: &str, endpoint: &str, published_ms: u64) {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    // A publisher's clock ahead of ours would read as a negative latency.
    let seconds = now_ms.saturating_sub(published_ms) as f64 / 1000.0;
    histogram!(LATENCY, "app" => app.to_owned(), "endpoint" => endpoint.to_owned()).record(seconds);
}

pub(crate) fn apply_duration(app: &str, took: Duration) {
    histogram!(APPLY_DURATION, "app" => app.to_owned()).record(took.as_secs_f64());
}

pub(crate) fn window(app: &str, in_flight: usize, waiting: usize) {
    gauge!(IN_FLIGHT, "app" => app.to_owned()).set(in_flight as f64);
    gauge!(WAITING, "app" => app.to_owned()).set(waiting as f64);
}

pub(crate) fn error(app: &str, kind: crate::ErrorKind) {
    counter!(ERRORS, "app" => app.to_owned(), "kind" => kind.to_string()).increment(1);
}

/// Sets [`HEALTHY`] for `app`; exporters call it before each scrape.
pub fn set_healthy(app: &str, healthy: bool) {
    gauge!(HEALTHY, "app" => app.to_owned()).set(if healthy { 1.0 } else { 0.0 });
}
