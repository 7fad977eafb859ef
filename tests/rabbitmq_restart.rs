//! RabbitMQ stopped and started (`rabbitmqctl stop_app` / `start_app`) in the
//! middle of a stream: nothing is lost and the worker resumes by itself.
//! Its own test binary: it disturbs the shared server.
#![cfg(all(feature = "amqp", feature = "redis"))]

#[path = "common/counters.rs"]
mod counters;
#[path = "common/services.rs"]
mod services;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use counters::{assert_caught_up, increment, CounterCopy, ReplicatedCounter};
use promiscuous::core::testkit::{eventually, unique};
use promiscuous::memory::MemoryStorage;
use promiscuous::{Promiscuous, Storage};

const OBJECTS: i64 = 20;
const OPERATIONS: u64 = 1_500;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_loses_nothing_and_the_worker_resumes() {
    let prefix = unique("rmq-restart");
    let amqp = format!("{}?publish_timeout_ms=60000", services::amqp_url());
    let source: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    let replica = Arc::new(MemoryStorage::new());
    let build = |app: String, storage: Arc<dyn Storage>| {
        let (amqp, redis) = (amqp.clone(), services::redis_url(&prefix));
        async move {
            Promiscuous::configure()
                .app(app)
                .broker_url(amqp)
                .redis_url(redis)
                .storage(storage)
                .subscriber::<CounterCopy>()
                .lock_ttl(Duration::from_secs(90))
                .recovery_timeout(Duration::from_secs(20))
                .build()
                .await
                .expect("RabbitMQ and Redis are running")
        }
    };
    let subscriber = build(unique("rmq-sub"), replica.clone()).await;
    let publisher = build(unique("rmq-pub"), source.clone()).await;
    let mut worker = subscriber.subscribe().await.unwrap();
    for id in 0..OBJECTS {
        publisher
            .create(&ReplicatedCounter { id, n: 0 })
            .await
            .unwrap();
    }

    let done = Arc::new(AtomicU64::new(0));
    let saw_unhealthy = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..2)
        .map(|task| {
            let (publisher, source, done) = (publisher.clone(), source.clone(), done.clone());
            tokio::spawn(async move {
                for i in 0..OPERATIONS / 2 {
                    let id = (i as i64 * 3 + task) % OBJECTS;
                    // A publish that failed after its write is not retried by
                    // the library; the next increment carries the newer state.
                    if let Err(e) = increment(&publisher, &source, id).await {
                        eprintln!("increment {id} failed (the next one carries the state): {e}");
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();

    assert!(
        eventually(Duration::from_secs(60), || async {
            done.load(Ordering::Relaxed) >= 300
        })
        .await
    );
    services::run("rabbitmqctl", &["stop_app"]);
    let watcher = {
        let (publisher, saw) = (publisher.clone(), saw_unhealthy.clone());
        tokio::spawn(async move {
            for _ in 0..100 {
                if !publisher.healthy() {
                    saw.store(true, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    services::run("rabbitmqctl", &["start_app"]);
    services::run("rabbitmqctl", &["await_startup"]);
    watcher.await.unwrap();
    assert!(
        saw_unhealthy.load(Ordering::SeqCst),
        "healthy() is false while the broker is away"
    );

    for task in tasks {
        task.await.unwrap();
    }
    assert!(
        eventually(Duration::from_secs(60), || async {
            publisher.healthy() && subscriber.healthy()
        })
        .await
    );
    assert_caught_up(
        source.as_ref(),
        replica.as_ref(),
        &worker,
        Duration::from_secs(120),
    )
    .await;
    assert!(worker.is_running(), "the worker resumed by itself");
    worker.shutdown().await;
}
