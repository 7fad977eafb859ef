//! A subscriber that joins a running publisher, fed by an initial sync:
//! the sync's baseline starts its counters where the publisher stood, so it
//! catches up at the speed of the sync, with no operation waited for in
//! vain, while the publisher keeps writing; a subscriber that was there all
//! along is left as it was. In causal and global order.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use promiscuous::core::error::chain;
use promiscuous::core::testkit::eventually;
use promiscuous::memory::{InProcessBroker, MemoryClock, MemoryLock, MemoryStorage};
use promiscuous::{Error, Filter, Mode, Promiscuous, Publish, Storage, Subscribe};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// Records the publisher holds before the new subscriber joins
/// (`PROMISCUOUS_BOOTSTRAP_RECORDS` to measure with more).
fn records() -> i64 {
    std::env::var("PROMISCUOUS_BOOTSTRAP_RECORDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(5_000)
}

/// The publisher's account.
#[derive(Debug, Clone, Serialize, Deserialize, Publish)]
pub struct Account {
    /// The id.
    pub id: i64,
    /// Changes at every write.
    #[publish]
    pub balance: i64,
}

/// The subscribers' copy.
#[derive(Debug, Clone, Serialize, Deserialize, Subscribe)]
#[subscribe(as = "Account")]
pub struct AccountCopy {
    /// The publisher's id.
    pub id: i64,
    /// The replicated balance.
    #[subscribe]
    pub balance: i64,
}

async fn balances(storage: &dyn Storage, model: &str) -> Vec<(i64, i64)> {
    let mut all: Vec<(i64, i64)> = storage
        .find(model, &Filter::default(), usize::MAX)
        .await
        .unwrap()
        .iter()
        .map(|r| (r["id"].as_i64().unwrap(), r["balance"].as_i64().unwrap()))
        .collect();
    all.sort_unstable();
    all
}

async fn subscriber(
    name: &str,
    broker: &Arc<InProcessBroker>,
    clock: &Arc<MemoryClock>,
    replica: &Arc<MemoryStorage>,
    mode: Mode,
    reported: &Arc<Mutex<Vec<String>>>,
) -> Promiscuous {
    let reported = reported.clone();
    Promiscuous::configure()
        .app(name)
        .broker(broker.clone())
        .clock(clock.clone())
        .lock(Arc::new(MemoryLock::new()))
        .storage(replica.clone())
        .subscriber::<AccountCopy>()
        .mode(mode)
        .recovery_timeout(Duration::from_secs(2))
        .error_notifier(move |e: &Error| reported.lock().unwrap().push(chain(e)))
        .build()
        .await
        .unwrap()
}

async fn a_joining_subscriber_catches_up_from_a_sync(mode: Mode) {
    let records = records();
    let broker = Arc::new(InProcessBroker::new());
    let clock = Arc::new(MemoryClock::new());
    let source = Arc::new(MemoryStorage::new());
    let reported = Arc::new(Mutex::new(Vec::new()));
    let publisher = Promiscuous::configure()
        .app("bank")
        .broker(broker.clone())
        .clock(clock.clone())
        .lock(Arc::new(MemoryLock::new()))
        .storage(source.clone())
        .no_subscribers()
        .build()
        .await
        .unwrap();
    // One subscriber is there from the start.
    let early_replica = Arc::new(MemoryStorage::new());
    let early = subscriber("ledger", &broker, &clock, &early_replica, mode, &reported).await;
    let mut early_worker = early.subscribe().await.unwrap();
    for id in 0..records {
        publisher.create(&Account { id, balance: 0 }).await.unwrap();
    }
    for id in (0..records).step_by(3) {
        publisher.update(&Account { id, balance: 1 }).await.unwrap();
    }
    for id in (0..records).step_by(7) {
        publisher
            .destroy(&Account { id, balance: 0 })
            .await
            .unwrap();
    }
    let expected = balances(source.as_ref(), "Account").await;
    assert!(
        eventually(Duration::from_secs(120), || async {
            balances(early_replica.as_ref(), "AccountCopy").await == expected
        })
        .await,
        "the early subscriber follows: {:?}",
        early_worker.stats()
    );

    // A new subscriber joins while the publisher keeps writing.
    let replica = Arc::new(MemoryStorage::new());
    let joining = subscriber("audit", &broker, &clock, &replica, mode, &reported).await;
    let mut worker = joining.subscribe().await.unwrap();
    let writing = Arc::new(AtomicBool::new(true));
    let live = Arc::new(AtomicU64::new(0));
    let writer = tokio::spawn({
        let (publisher, source, writing, live) = (
            publisher.clone(),
            source.clone(),
            writing.clone(),
            live.clone(),
        );
        async move {
            let mut id = 1;
            while writing.load(Ordering::SeqCst) {
                id = (id * 7919 + 13) % records;
                let exists = !source
                    .find("Account", &Filter::eq("id", json!(id)), 1)
                    .await
                    .unwrap()
                    .is_empty();
                if exists {
                    publisher
                        .update(&Account {
                            id,
                            balance: id + 1000,
                        })
                        .await
                        .unwrap();
                } else {
                    publisher
                        .create(&Account { id, balance: -id })
                        .await
                        .unwrap();
                }
                live.fetch_add(1, Ordering::SeqCst);
                tokio::task::yield_now().await;
            }
        }
    });
    let started = Instant::now();
    let report = publisher.sync_all::<Account>().run().await.unwrap();
    let synced_in = started.elapsed();
    writing.store(false, Ordering::SeqCst);
    writer.await.unwrap();

    let expected = balances(source.as_ref(), "Account").await;
    let caught_up = eventually(Duration::from_secs(120), || async {
        balances(replica.as_ref(), "AccountCopy").await == expected
    })
    .await;
    let stats = worker.stats();
    println!(
        "{mode:?}: {} records synced in {:.1} s to a joining subscriber, caught up in {:.1} s, {} live writes meanwhile, {} counters seeded, stalls {}",
        report.published,
        synced_in.as_secs_f64(),
        started.elapsed().as_secs_f64(),
        live.load(Ordering::SeqCst),
        stats.seeded,
        worker.stalls(Duration::ZERO).len()
    );
    assert!(
        caught_up,
        "the joining subscriber ends equal to the publisher: {stats:?}"
    );
    assert!(
        stats.seeded > 0,
        "the baseline seeded its counters: {stats:?}"
    );
    assert_eq!(stats.recovered, 0, "nothing skipped: {stats:?}");
    let stalled: Vec<String> = reported
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.contains("waiting for a missing operation"))
        .cloned()
        .collect();
    assert!(
        stalled.is_empty(),
        "no operation was waited for in vain: {stalled:?}"
    );
    assert!(
        eventually(Duration::from_secs(60), || async {
            balances(early_replica.as_ref(), "AccountCopy").await == expected
        })
        .await,
        "the early subscriber still follows"
    );
    assert_eq!(
        early_worker.stats().seeded,
        0,
        "a subscriber that received everything ignores the baseline"
    );
    worker.shutdown().await;
    early_worker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joining_subscriber_catches_up_from_a_sync_in_causal_order() {
    a_joining_subscriber_catches_up_from_a_sync(Mode::Causal).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joining_subscriber_catches_up_from_a_sync_in_global_order() {
    a_joining_subscriber_catches_up_from_a_sync(Mode::Global).await;
}
