//! Redis restarted (without persistence) in the middle of a stream. The
//! documented path: publishers and the worker refuse to go on with a clear
//! state-lost error (nothing is written or applied out of order), the apps are
//! restarted with the next `generation`, an initial sync republishes every
//! record, and the subscriber ends equal to the publisher.
//! Its own test binary: it restarts the shared server.
#![cfg(all(feature = "amqp", feature = "redis"))]

#[path = "common/counters.rs"]
mod counters;
#[path = "common/services.rs"]
mod services;

use std::sync::Arc;
use std::time::Duration;

use counters::{assert_caught_up, increment, states, CounterCopy, ReplicatedCounter};
use promiscuous::core::error::chain;
use promiscuous::core::testkit::unique;
use promiscuous::memory::MemoryStorage;
use promiscuous::{Filter, Promiscuous, Storage};

const OBJECTS: i64 = 20;

fn restart_redis() {
    // Same flags as the machine's service and .ci/run: no persistence, so a
    // restart loses every key.
    let _ = std::process::Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", "6379", "shutdown", "nosave"])
        .output();
    services::wait_until("redis stopping", Duration::from_secs(20), || {
        !services::redis_answers()
    });
    std::fs::create_dir_all("/var/lib/redis").unwrap();
    std::fs::create_dir_all("/var/log/redis").unwrap();
    services::run(
        "redis-server",
        &[
            "--daemonize",
            "yes",
            "--bind",
            "127.0.0.1",
            "--port",
            "6379",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            "/var/lib/redis",
            "--logfile",
            "/var/log/redis/ci.log",
        ],
    );
    services::wait_until(
        "redis starting",
        Duration::from_secs(20),
        services::redis_answers,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_stops_safely_and_a_generation_bump_with_a_sync_catches_up() {
    let prefix = unique("redis-restart");
    let (publisher_app, subscriber_app) = (unique("rr-pub"), unique("rr-sub"));
    let source: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    let replica = Arc::new(MemoryStorage::new());
    let build = |app: String, storage: Arc<dyn Storage>, generation: u64| {
        let redis = services::redis_url(&prefix);
        async move {
            Promiscuous::configure()
                .app(app)
                .broker_url(services::amqp_url())
                .redis_url(redis)
                .storage(storage)
                .subscriber::<CounterCopy>()
                .generation(generation)
                .build()
                .await
                .expect("RabbitMQ and Redis are running")
        }
    };
    let subscriber = build(subscriber_app.clone(), replica.clone(), 0).await;
    let publisher = build(publisher_app.clone(), source.clone(), 0).await;
    let mut worker = subscriber.subscribe().await.unwrap();
    for id in 0..OBJECTS {
        publisher
            .create(&ReplicatedCounter { id, n: 0 })
            .await
            .unwrap();
    }
    for i in 0..200 {
        increment(&publisher, &source, i % OBJECTS).await.unwrap();
    }

    restart_redis();

    // Writes are refused, with an error that says what to do; nothing is written.
    let before = states(source.as_ref(), "ReplicatedCounter").await;
    let refused = loop {
        match increment(&publisher, &source, 1).await {
            Err(e) if e.is_state_lost() => break e,
            // The connection may still be coming back.
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            Ok(()) => panic!("a publisher whose clock lost its state must not publish"),
        }
    };
    assert!(chain(&refused).contains("generation"), "{refused}");
    assert!(
        !publisher.healthy(),
        "a publisher whose clock lost its state is unhealthy"
    );
    assert_eq!(
        states(source.as_ref(), "ReplicatedCounter").await,
        before,
        "the refused write did not happen"
    );

    // The documented procedure: restart everything with the next generation,
    // then run an initial sync.
    worker.shutdown().await;
    subscriber.shutdown().await.unwrap();
    publisher.shutdown().await.unwrap();
    let subscriber = build(subscriber_app, replica.clone(), 1).await;
    let publisher = build(publisher_app, source.clone(), 1).await;
    let mut worker = subscriber.subscribe().await.unwrap();
    for record in source
        .find("ReplicatedCounter", &Filter::default(), usize::MAX)
        .await
        .unwrap()
    {
        let counter: ReplicatedCounter =
            serde_json::from_value(serde_json::Value::Object(record)).unwrap();
        publisher.sync(&counter).await.unwrap();
    }
    for i in 0..200 {
        increment(&publisher, &source, i % OBJECTS).await.unwrap();
    }
    assert_caught_up(
        source.as_ref(),
        replica.as_ref(),
        &worker,
        Duration::from_secs(60),
    )
    .await;
    assert!(worker.stats().failed == 0, "{:?}", worker.stats());
    worker.shutdown().await;
}
