//! A clock that lost its state starts a new epoch: new versions are applied
//! (never taken for duplicates of the lost ones, on a store with versioned
//! writes too), messages of the old epoch still queued behind the new one
//! are dead-lettered loudly instead of waiting forever or being applied out
//! of order, and an initial sync brings the subscriber back in line.

#[path = "common/counters.rs"]
mod counters;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use counters::{create_counters, increment, increment_many, states, sync_counters, CounterCopy};
use promiscuous::core::error::chain;
use promiscuous::core::testkit::eventually;
use promiscuous::memory::{InProcessBroker, MemoryClock, MemoryLock, MemoryStorage};
use promiscuous::{Clock, Error, Promiscuous, Storage};
use serde_json::json;

const OBJECTS: i64 = 10;

/// The backends one "process" holds: a clock of its own lives and dies with it.
async fn app(
    name: &str,
    broker: &Arc<InProcessBroker>,
    clock: Arc<MemoryClock>,
    storage: Arc<dyn Storage>,
    reported: &Arc<Mutex<Vec<String>>>,
) -> Promiscuous {
    let reported = reported.clone();
    Promiscuous::configure()
        .app(name)
        .broker(broker.clone())
        .clock(clock)
        .lock(Arc::new(MemoryLock::new()))
        .storage(storage)
        .subscriber::<CounterCopy>()
        .recovery_timeout(Duration::from_millis(300))
        .error_notifier(move |e: &Error| reported.lock().unwrap().push(chain(e)))
        .build()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_clock_epoch_is_applied_and_the_old_ones_leftovers_are_dead_lettered() {
    let broker = Arc::new(InProcessBroker::new());
    let source: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    let replica = Arc::new(MemoryStorage::new());
    let reported = Arc::new(Mutex::new(Vec::new()));

    let old_clock = Arc::new(MemoryClock::new());
    let publisher = app(
        "epub",
        &broker,
        old_clock.clone(),
        source.clone(),
        &reported,
    )
    .await;
    let subscriber = app(
        "esub",
        &broker,
        Arc::new(MemoryClock::new()),
        replica.clone(),
        &reported,
    )
    .await;
    let mut worker = subscriber.subscribe().await.unwrap();
    create_counters(&publisher, OBJECTS).await;
    increment_many(&publisher, &source, 50, OBJECTS).await;
    let expected = states(source.as_ref(), "ReplicatedCounter").await;
    assert!(
        eventually(Duration::from_secs(20), || async {
            states(replica.as_ref(), "CounterCopy").await == expected
        })
        .await,
        "{:?}",
        worker.stats()
    );
    let old_stamp = replica.version("CounterCopy", &json!(1));
    worker.shutdown().await;
    drop(subscriber);

    // While the subscriber is down, the old epoch's last writes are queued...
    for id in [1, 2, 3] {
        increment(&publisher, &source, id).await.unwrap();
    }
    drop(publisher);
    // ...then the publisher comes back on an empty clock (a new epoch).
    let new_clock = Arc::new(MemoryClock::new());
    assert!(new_clock.epoch() > old_clock.epoch());
    let publisher = app("epub", &broker, new_clock, source.clone(), &reported).await;
    for id in [1, 4] {
        increment(&publisher, &source, id).await.unwrap();
    }

    // The subscriber comes back on an empty clock too (one Redis for both).
    let subscriber = app(
        "esub",
        &broker,
        Arc::new(MemoryClock::new()),
        replica.clone(),
        &reported,
    )
    .await;
    let mut worker = subscriber.subscribe().await.unwrap();
    let settled = eventually(Duration::from_secs(20), || async {
        let stats = worker.stats();
        stats.applied == 2 && stats.dead_lettered == 3 && stats.is_idle()
    })
    .await;
    let stats = worker.stats();
    assert!(
        settled,
        "new epoch applied, old leftovers dead-lettered: {stats:?}"
    );
    assert_eq!(stats.duplicates, 0, "{stats:?}");
    assert!(
        replica.version("CounterCopy", &json!(1)) > old_stamp,
        "the new epoch's write is newer than any of the old one"
    );
    let letters = broker.dead_letters("esub");
    assert_eq!(letters.len(), 3);
    assert!(
        letters.iter().all(|l| l.reason.contains("epoch")
            && l.reason.contains("initial sync")
            && l.attempts == 1),
        "dead-lettered at once, saying why and what to do: {:?}",
        letters.iter().map(|l| &l.reason).collect::<Vec<_>>()
    );
    assert!(
        reported
            .lock()
            .unwrap()
            .iter()
            .any(|e| e.contains("started a new epoch")),
        "the epoch change is reported"
    );
    // Records 2 and 3 miss their last write until a sync.
    assert_ne!(
        states(replica.as_ref(), "CounterCopy").await,
        states(source.as_ref(), "ReplicatedCounter").await
    );
    sync_counters(&publisher, source.as_ref()).await;
    let expected = states(source.as_ref(), "ReplicatedCounter").await;
    assert!(
        eventually(Duration::from_secs(20), || async {
            states(replica.as_ref(), "CounterCopy").await == expected
        })
        .await,
        "a sync brings the subscriber in line: {:?}",
        worker.stats()
    );
    worker.shutdown().await;
}
