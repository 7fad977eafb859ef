//! Two apps in two processes replicate through the real RabbitMQ and Redis:
//! 10,000 operations on 100 counters from 4 concurrent publisher tasks. The
//! test process is the subscriber; it runs itself again as the publisher.
#![cfg(all(feature = "amqp", feature = "redis"))]

#[path = "common/counters.rs"]
mod counters;
#[path = "common/services.rs"]
mod services;

use std::sync::Arc;
use std::time::Duration;

use counters::{increment, regressions, repeats, states, CounterCopy, ReplicatedCounter};
use promiscuous::core::testkit::{eventually, unique};
use promiscuous::memory::MemoryStorage;
use promiscuous::{Promiscuous, Storage};

const OBJECTS: i64 = 100;
const TASKS: i64 = 4;
const OPERATIONS: i64 = 10_000;
const ROLE: &str = "PROMISCUOUS_TEST_ROLE";
/// Starts the publisher's line with its final states.
const MARKER: &str = "FINAL STATES: ";

/// The publisher process: creates the counters, increments them from 4 tasks,
/// prints the final states as JSON on its last line.
async fn publisher(app: &str, prefix: &str) {
    let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    let publisher = Promiscuous::configure()
        .app(app)
        .broker_url(services::amqp_url())
        .redis_url(services::redis_url(prefix))
        .storage(storage.clone())
        .subscriber::<CounterCopy>()
        .build()
        .await
        .expect("the publisher connects to RabbitMQ and Redis");
    for id in 0..OBJECTS {
        publisher
            .create(&ReplicatedCounter { id, n: 0 })
            .await
            .unwrap();
    }
    let per_task = (OPERATIONS - OBJECTS) / TASKS;
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let publisher = publisher.clone();
            let storage = storage.clone();
            tokio::spawn(async move {
                for i in 0..per_task {
                    // A cheap deterministic spread over the counters.
                    let id = (i * 7 + task * 13 + i / 11) % OBJECTS;
                    increment(&publisher, &storage, id).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let finals = states(storage.as_ref(), "ReplicatedCounter").await;
    println!("\n{MARKER}{}", serde_json::to_string(&finals).unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_operations_replicate_between_two_processes_in_order() {
    if std::env::var(ROLE).as_deref() == Ok("publisher") {
        let app = std::env::var("PUBLISHER_APP").unwrap();
        let prefix = std::env::var("REDIS_PREFIX").unwrap();
        publisher(&app, &prefix).await;
        return;
    }

    let publisher_app = unique("repl-pub");
    let subscriber_app = unique("repl-sub");
    let prefix = unique("repl");
    let replica = Arc::new(MemoryStorage::new());
    let subscriber = Promiscuous::configure()
        .app(&subscriber_app)
        .broker_url(services::amqp_url())
        .redis_url(services::redis_url(&prefix))
        .storage(replica.clone())
        .subscriber::<CounterCopy>()
        .build()
        .await
        .expect("the subscriber connects to RabbitMQ and Redis: are they running?");
    let mut worker = subscriber.subscribe().await.unwrap();

    let child = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "ten_thousand_operations_replicate_between_two_processes_in_order",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ROLE, "publisher")
        .env("PUBLISHER_APP", &publisher_app)
        .env("REDIS_PREFIX", &prefix)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&child.stdout);
    assert!(
        child.status.success(),
        "publisher process failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&child.stderr)
    );
    let finals: std::collections::BTreeMap<i64, i64> = stdout
        .lines()
        .find_map(|line| serde_json::from_str(line.split_once(MARKER)?.1).ok())
        .expect("the publisher printed its final states");
    assert_eq!(finals.values().sum::<i64>(), OPERATIONS - OBJECTS);

    let caught_up = eventually(Duration::from_secs(240), || async {
        worker.stats().applied >= OPERATIONS as u64
    })
    .await;
    assert!(
        caught_up,
        "the subscriber applied {:?} of {OPERATIONS}",
        worker.stats()
    );
    assert_eq!(
        states(replica.as_ref(), "CounterCopy").await,
        finals,
        "the subscriber ends equal to the publisher"
    );
    assert_eq!(
        regressions(),
        vec![],
        "no counter was ever seen going back to an older state"
    );
    assert_eq!(repeats(), vec![], "no operation was applied twice");
    let stats = worker.stats();
    assert_eq!(
        (stats.failed, stats.recovered, stats.dead_lettered),
        (0, 0, 0),
        "{stats:?}"
    );
    worker.shutdown().await;
    subscriber.shutdown().await.unwrap();
}
