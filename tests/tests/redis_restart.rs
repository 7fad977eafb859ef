//! Redis restarted (without persistence) in the middle of a stream.
//!
//! Running processes refuse to go on with a clear state-lost error (nothing
//! is written or applied out of order), idle ones notice within
//! `clock_check_interval`, and the worker stops and says why. Restarted as
//! usual, with the same generation, the apps continue in a new clock epoch
//! and no update is dropped as a duplicate of one from the lost state
//! (PostgreSQL subscriber); a generation bump with a sync still works too.
//! Its own test binary: it restarts the shared server, one test at a time.
#![cfg(all(feature = "amqp", feature = "redis", feature = "sql"))]

#[path = "common/counters.rs"]
mod counters;
#[path = "common/services.rs"]
mod services;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use counters::{
    assert_caught_up, create_counters, increment, increment_many, states, sync_counters,
    CounterCopy,
};
use promiscuous::core::error::chain;
use promiscuous::core::testkit::{eventually, unique};
use promiscuous::memory::MemoryStorage;
use promiscuous::sql::testkit::{Engine, TestDatabase};
use promiscuous::sql::SqlStorage;
use promiscuous::{Error, Promiscuous, Storage};
use sea_orm::{ConnectionTrait, Schema};

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

/// Tests restarting the shared server run one at a time.
static RESTARTS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Clears the journal of applied states (each test has its own records).
fn forget_observed() {
    counters::OBSERVED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clear();
}

/// The subscriber's table of counters.
mod counter_copy {
    use sea_orm::entity::prelude::*;

    /// A counter as the subscriber keeps it.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "counter_copy")]
    pub struct Model {
        /// The publisher's id.
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: i64,
        /// The replicated value.
        pub n: i64,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_stops_safely_and_a_generation_bump_with_a_sync_catches_up() {
    let _serial = RESTARTS.lock().await;
    forget_observed();
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
    create_counters(&publisher, OBJECTS).await;
    increment_many(&publisher, &source, 200, OBJECTS).await;

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
    assert!(chain(&refused).contains("restart"), "{refused}");
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
    sync_counters(&publisher, source.as_ref()).await;
    increment_many(&publisher, &source, 200, OBJECTS).await;
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

/// What the error notifier of an app received, as text.
#[derive(Debug, Clone, Default)]
struct Reported(Arc<Mutex<Vec<String>>>);

impl Reported {
    fn notifier(&self) -> impl Fn(&Error) + Send + Sync + 'static {
        let seen = self.0.clone();
        move |error| seen.lock().unwrap().push(chain(error))
    }
    fn all(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restarted_empty_loses_no_update_when_the_apps_restart_with_the_same_generation() {
    let _serial = RESTARTS.lock().await;
    forget_observed();
    let prefix = unique("redis-epoch");
    let (publisher_app, subscriber_app) = (unique("re-pub"), unique("re-sub"));
    let source: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    let database = TestDatabase::create(Engine::Postgres, "redis_epoch").await;
    let db = database.connection();
    db.execute(
        &Schema::new(db.get_database_backend()).create_table_from_entity(counter_copy::Entity),
    )
    .await
    .expect("the replica table is created");
    promiscuous::sql::migrate(db).await.unwrap();
    let replica: Arc<dyn Storage> =
        Arc::new(SqlStorage::new(db.clone()).entity::<counter_copy::Entity>("CounterCopy"));
    let reported = Reported::default();
    let build = |app: String, storage: Arc<dyn Storage>| {
        let redis = services::redis_url(&prefix);
        let notifier = reported.notifier();
        async move {
            Promiscuous::configure()
                .app(app)
                .broker_url(services::amqp_url())
                .redis_url(redis)
                .storage(storage)
                .subscriber::<CounterCopy>()
                .clock_check_interval(Duration::from_millis(500))
                .error_notifier(notifier)
                .build()
                .await
                .expect("RabbitMQ and Redis are running")
        }
    };
    let subscriber = build(subscriber_app.clone(), replica.clone()).await;
    let publisher = build(publisher_app.clone(), source.clone()).await;
    let mut worker = subscriber.subscribe().await.unwrap();
    create_counters(&publisher, OBJECTS).await;
    increment_many(&publisher, &source, 200, OBJECTS).await;
    assert_caught_up(
        source.as_ref(),
        replica.as_ref(),
        &worker,
        Duration::from_secs(60),
    )
    .await;

    restart_redis();

    // Idle, both notice: unhealthy, and the worker stops saying why.
    let noticed = eventually(Duration::from_secs(30), || async {
        !subscriber.healthy() && !publisher.healthy()
    })
    .await;
    assert!(noticed, "idle apps notice that their clock lost its state");
    let stopped = tokio::time::timeout(Duration::from_secs(30), worker.wait())
        .await
        .expect("the worker stops by itself");
    let reason = stopped.expect_err("a worker stopped by a lost clock says so");
    assert!(
        matches!(reason, Error::WorkerStopped { .. }) && chain(&reason).contains("lost its state"),
        "{reason}"
    );
    assert!(
        reported.all().iter().any(|e| e.contains("stopped")),
        "the stop is reported: {:?}",
        reported.all()
    );

    // Restarted as usual: same generation, no operator step.
    subscriber.shutdown().await.unwrap();
    publisher.shutdown().await.unwrap();
    let subscriber = build(subscriber_app, replica.clone()).await;
    let publisher = build(publisher_app, source.clone()).await;
    let mut worker = subscriber.subscribe().await.unwrap();
    let before = worker.stats();
    const UPDATES: u64 = 1000;
    increment_many(&publisher, &source, UPDATES as i64, OBJECTS).await;
    assert_caught_up(
        source.as_ref(),
        replica.as_ref(),
        &worker,
        Duration::from_secs(120),
    )
    .await;
    let stats = worker.stats();
    assert_eq!(
        stats.applied - before.applied,
        UPDATES,
        "every update applied: {stats:?}"
    );
    assert_eq!(
        stats.duplicates, 0,
        "none taken for a duplicate of the lost state: {stats:?}"
    );
    assert_eq!(
        stats.skipped + stats.failed + stats.dead_lettered,
        0,
        "{stats:?}"
    );
    assert!(subscriber.healthy() && publisher.healthy());
    assert_eq!(
        states(replica.as_ref(), "CounterCopy")
            .await
            .values()
            .sum::<i64>(),
        1200,
        "200 increments before the loss, 1000 after"
    );
    worker.shutdown().await;
    subscriber.shutdown().await.unwrap();
    publisher.shutdown().await.unwrap();
}
