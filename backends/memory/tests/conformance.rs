//! Runs the `promiscuous_core::testkit` conformance suites against every
//! in-memory implementation, and checks the registered URL factories.

use std::sync::Arc;

use promiscuous_core::backend::factory_for;
use promiscuous_core::testkit::{self, broker, clock, lock, storage};
use promiscuous_core::traits::{Broker, Clock, Lock, Storage};
use promiscuous_memory::{
    named, InProcessBroker, MemoryClock, MemoryLock, MemoryStorage, NullBroker,
};

async fn in_process() -> Arc<dyn Broker> {
    Arc::new(InProcessBroker::new())
}

async fn null() -> Arc<dyn Broker> {
    Arc::new(NullBroker::new())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn in_process_broker_conforms() {
    broker::run_all(in_process).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn null_broker_conforms() {
    broker::run_all(null).await;
}

/// The suite's functions are independent: run them all at once on one broker,
/// as they will run against a shared server.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn in_process_broker_conforms_in_parallel() {
    let shared = InProcessBroker::new();
    let b: &dyn Broker = &shared;
    tokio::join!(
        broker::reports_name_and_health(b),
        broker::publish_then_consume(b),
        broker::routes_by_pattern(b),
        broker::every_subscription_gets_a_copy(b),
        broker::unbound_endpoint_drops_silently(b),
        broker::ack_removes(b),
        broker::nack_requeue_redelivers(b),
        broker::nack_retry_redelivers_after_delay(b),
        broker::nack_dead_letter_does_not_redeliver(b),
        broker::prefetch_limits_unacknowledged(b),
        broker::preserves_publish_order(b),
        broker::subscribe_is_idempotent(b),
    );
    broker::close_ends_consumers(&InProcessBroker::new()).await;
}

#[tokio::test]
async fn in_process_broker_dead_letters_are_inspectable() {
    // The conformance suite cannot see dead letters; the in-process broker can.
    let b = InProcessBroker::new();
    broker::nack_dead_letter_does_not_redeliver(&b).await;
    let queues = b.queue_names();
    assert_eq!(queues.len(), 1);
    let parked = b.dead_letters(&queues[0]);
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].payload, b"poison");
    assert_eq!(parked[0].attempts, 1);
    assert!(parked[0].reason.contains("on purpose"));
    assert_eq!((b.queue_len(&queues[0]), b.unacked(&queues[0])), (0, 0));
}

#[tokio::test]
async fn null_broker_records_what_the_suite_published() {
    let b = NullBroker::new();
    broker::publish_then_consume(&b).await;
    let published = b.take_published();
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].payload, b"pretend");
    assert!(b.published().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_clock_conforms() {
    clock::run_all(Arc::new(MemoryClock::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_lock_conforms() {
    lock::run_all(&MemoryLock::new()).await;
}

#[tokio::test]
async fn memory_storage_conforms() {
    storage::run_all(&MemoryStorage::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_url_backends_conform_and_are_shared() {
    let name = testkit::unique("conformance");
    let url = format!("memory://{name}");
    let factory = factory_for(&url).expect("the memory scheme is registered");
    let (make_broker, make_clock, make_lock) = (
        factory.broker.expect("memory provides a broker"),
        factory.clock.expect("memory provides a clock"),
        factory.lock.expect("memory provides a lock"),
    );

    let clock: Arc<dyn Clock> = make_clock(&url).await.unwrap();
    clock::run_all(Arc::clone(&clock)).await;
    let again: Arc<dyn Clock> = make_clock(&url).await.unwrap();
    let key = testkit::unique("k");
    clock.tick(std::slice::from_ref(&key)).await.unwrap();
    assert_eq!(
        again.read(std::slice::from_ref(&key)).await.unwrap(),
        vec![1]
    );
    assert_eq!(named::clock(&name).get(&key), 1);

    let lock: Arc<dyn Lock> = make_lock(&url).await.unwrap();
    lock::run_all(lock.as_ref()).await;
    let key = testkit::unique("k");
    assert!(lock
        .try_acquire(&key, "a", std::time::Duration::from_secs(60), b"")
        .await
        .unwrap()
        .is_some());
    assert_eq!(named::lock(&name).owner(&key).as_deref(), Some("a"));

    let url_for_suite = url.clone();
    broker::run_all(move || {
        let url = url_for_suite.clone();
        async move { make_broker(&url).await.unwrap() }
    })
    .await;
    // run_all closed the shared broker: the next lookup gets a fresh one.
    let fresh = make_broker(&url).await.unwrap();
    assert!(fresh.healthy());
    let first = make_broker(&url).await.unwrap();
    let second = make_broker(&url).await.unwrap();
    assert!(
        Arc::ptr_eq(&first, &second),
        "memory://{name} must be one shared broker"
    );
    named::forget(&name);
}

#[tokio::test]
async fn null_url_backend_conforms() {
    let factory = factory_for("null://").expect("the null scheme is registered");
    assert!(factory.clock.is_none() && factory.lock.is_none());
    let make = factory.broker.expect("null provides a broker");
    let name = testkit::unique("null");
    broker::run_all(|| {
        let url = format!("null://{name}");
        async move { make(&url).await.unwrap() }
    })
    .await;
}

#[tokio::test]
async fn eventually_polls_inspection_helpers() {
    let b = InProcessBroker::new();
    b.inject("q", "app/user", b"x");
    let probe = b.clone();
    assert!(testkit::eventually(testkit::QUIET, || async { probe.queue_len("q") == 1 }).await);
    let _: &dyn Storage = &MemoryStorage::new();
}

/// The memory store as a storage adapter, on in-process backends.
struct MemoryAdapter;

#[async_trait::async_trait]
impl testkit::adapter::AdapterFixture for MemoryAdapter {
    async fn store(&self, _label: &str) -> Arc<dyn Storage> {
        Arc::new(MemoryStorage::new())
    }

    fn backends(&self) -> testkit::adapter::Backends {
        testkit::adapter::Backends {
            broker: Arc::new(InProcessBroker::new()),
            clock: Arc::new(MemoryClock::new()),
            lock: Arc::new(MemoryLock::new()),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_storage_conforms_as_an_adapter() {
    testkit::adapter::run_all(&MemoryAdapter).await;
}
