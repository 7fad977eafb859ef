//! RabbitMQ stopped and started (`rabbitmqctl stop_app` / `start_app`) twice
//! in the middle of a stream of 10,000 operations from 100 publisher tasks,
//! at a third and at half of it: nothing is lost, nothing applied twice or
//! out of order, and the worker resumes by itself.
//! Its own test binary: it disturbs the shared server.
#![cfg(all(feature = "amqp", feature = "redis"))]

#[path = "common/counters.rs"]
mod counters;
#[path = "common/services.rs"]
mod services;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use counters::{assert_caught_up, increment, repeats, states, CounterCopy, ReplicatedCounter};
use promiscuous::core::testkit::{eventually, unique};
use promiscuous::memory::MemoryStorage;
use promiscuous::{Promiscuous, Storage};

/// Publisher tasks, each writing a record of its own.
const TASKS: i64 = 100;
const OPERATIONS: u64 = 10_000;

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
    let started = std::time::Instant::now();
    for id in 0..TASKS {
        publisher
            .create(&ReplicatedCounter { id, n: 0 })
            .await
            .unwrap();
    }

    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..TASKS)
        .map(|id| {
            let (publisher, source, done, failed) = (
                publisher.clone(),
                source.clone(),
                done.clone(),
                failed.clone(),
            );
            tokio::spawn(async move {
                for _ in 0..OPERATIONS / TASKS as u64 {
                    // A write whose publish failed is published by recovery
                    // from its intent; a write refused before it happened is
                    // not done, and the next one carries on.
                    if increment(&publisher, &source, id).await.is_err() {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();

    for (restart, at) in [(1, OPERATIONS / 3), (2, OPERATIONS / 2)] {
        assert!(
            eventually(Duration::from_secs(120), || async {
                done.load(Ordering::Relaxed) >= at
            })
            .await,
            "restart {restart}: the publishers reach {at} operations"
        );
        restart_rabbitmq(&publisher, restart == 1).await;
    }

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
        Duration::from_secs(180),
    )
    .await;
    let expected = states(source.as_ref(), "ReplicatedCounter").await;
    let applied = states(replica.as_ref(), "CounterCopy").await;
    let lost: i64 = expected
        .iter()
        .map(|(id, n)| n - applied.get(id).copied().unwrap_or(0))
        .sum();
    let written: i64 = expected.values().sum();
    println!(
        "rabbitmq restarts: 2 restarts, {} operations attempted, {written} written, {} refused before writing, lost {lost}, duplicated {}, out of order 0, {:.1} s",
        done.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
        repeats().len(),
        started.elapsed().as_secs_f64()
    );
    assert_eq!(lost, 0);
    assert_eq!(repeats(), vec![], "no state applied twice");
    assert!(worker.is_running(), "the worker resumed by itself");
    worker.shutdown().await;
}

/// Stops RabbitMQ for 3 s and starts it again; with `watch`, checks that the
/// publisher says it is unhealthy meanwhile.
async fn restart_rabbitmq(publisher: &Promiscuous, watch: bool) {
    let saw_unhealthy = Arc::new(AtomicBool::new(false));
    services::run("rabbitmqctl", &["stop_app"]);
    let watcher = {
        let (publisher, saw) = (publisher.clone(), saw_unhealthy.clone());
        tokio::spawn(async move {
            for _ in 0..60 {
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
    if watch {
        assert!(
            saw_unhealthy.load(Ordering::SeqCst),
            "healthy() is false while the broker is away"
        );
    }
}
