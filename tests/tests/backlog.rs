//! A subscriber started after its publishers finds a backlog much larger than
//! its prefetch window, all of it on a few hot records: 100,000 messages on
//! 5 records through the in-process broker, and 10,000 through RabbitMQ, in
//! causal and in global mode. Messages that wait for their predecessors keep
//! their place in the window (their predecessors are in it too), so the
//! backlog drains in order: nothing lost, nothing skipped, and hardly a
//! message sent to the back of the queue.

mod common;
#[cfg(feature = "amqp")]
#[path = "common/services.rs"]
mod services;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::fresh;
use promiscuous::core::dependency::object_counter;
use promiscuous::core::testkit::eventually;
use promiscuous::core::wire::{Dependencies, Dependency, Message, Operation, FORMAT_VERSION};
use promiscuous::memory::{InProcessBroker, MemoryClock, MemoryLock, MemoryStorage};
use promiscuous::{Broker, Mode, OperationKind, Promiscuous};
use serde_json::json;

mod models {
    use promiscuous::Subscribe;
    use serde::{Deserialize, Serialize};

    pub mod source {
        use promiscuous::Publish;
        use serde::{Deserialize, Serialize};

        /// What the publishers of the end-to-end backlog write.
        #[derive(Debug, Clone, Serialize, Deserialize, Publish)]
        pub struct HotRecord {
            pub id: i64,
            #[publish]
            pub n: i64,
        }
    }

    #[derive(Debug, Clone, Serialize, Deserialize, Subscribe)]
    #[subscribe(from = "*/hot_record")]
    pub struct HotRecord {
        pub id: i64,
        #[subscribe]
        pub n: i64,
    }
}

const RECORDS: usize = 5;
const HASH_SIZE: u64 = 1 << 20;

/// The messages a publisher app with many concurrent writers produces for
/// `count` writes spread over `RECORDS` records, in the order they reach
/// the queue: each record's in version order (its lock is held until the
/// broker confirmed), different records' interleaved and now and then
/// swapped (concurrent writers confirm out of endpoint order). Returns the
/// payloads and each record's last version.
fn backlog(app: &str, count: usize) -> (Vec<Vec<u8>>, [i64; RECORDS]) {
    let endpoint = format!("{app}/hot_record");
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = || {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        seed >> 33
    };
    let mut versions = [0i64; RECORDS];
    let mut messages: Vec<(usize, Vec<u8>)> = Vec::with_capacity(count);
    for endpoint_version in 1..=count as u64 {
        let record = (next() % RECORDS as u64) as usize;
        versions[record] += 1;
        let id = json!(record);
        let op = Operation {
            operation: if versions[record] == 1 {
                OperationKind::Create
            } else {
                OperationKind::Update
            },
            endpoint: endpoint.clone(),
            types: vec!["HotRecord".into()],
            id: id.clone(),
            attributes: json!({"n": versions[record]}).as_object().cloned(),
            dependencies: Dependencies {
                write: vec![Dependency::new(
                    object_counter(&endpoint, &id, HASH_SIZE),
                    versions[record] as u64,
                )],
                read: Vec::new(),
                endpoint: Some(Dependency::new(endpoint.clone(), endpoint_version)),
            },
            sync: false,
        };
        let message = Message {
            format: FORMAT_VERSION,
            app: app.to_owned(),
            generation: 0,
            epoch: 0,
            timestamp: 0,
            host: None,
            id: Some(format!("backlog-{endpoint_version}")),
            operations: vec![op],
        };
        messages.push((record, message.encode()));
    }
    // Concurrent writers: a neighbour of another record may overtake.
    for i in 1..messages.len() {
        if messages[i].0 != messages[i - 1].0 && next() % 3 == 0 {
            messages.swap(i, i - 1);
        }
    }
    (messages.into_iter().map(|(_, m)| m).collect(), versions)
}

/// Drains a backlog through `broker` in `mode`; checks nothing is lost or
/// skipped and the window was hardly ever starved.
async fn drains(
    broker: Arc<dyn Broker>,
    inject: impl FnOnce(&str, &[Vec<u8>]),
    count: usize,
    mode: Mode,
    label: &str,
) {
    let publisher_app = fresh("backlog");
    let subscriber_app = fresh("backlog-sub");
    let (payloads, finals) = backlog(&publisher_app, count);
    let replica = Arc::new(MemoryStorage::new());
    let subscriber = Promiscuous::configure()
        .app(&subscriber_app)
        .broker(broker)
        .clock(Arc::new(MemoryClock::new()))
        .lock(Arc::new(MemoryLock::new()))
        .storage(replica.clone())
        .subscriber::<models::HotRecord>()
        .mode(mode)
        .no_recovery_worker()
        .build()
        .await
        .expect("the subscriber is configured");
    // The queue exists before the publishers run; the worker comes later.
    let mut declare = subscriber.subscribe().await.expect("the queue is declared");
    declare.shutdown().await;
    inject(&subscriber_app, &payloads);
    let started = Instant::now();
    let mut worker = subscriber.subscribe().await.expect("the worker starts");
    let drained = eventually(Duration::from_secs(600), || async {
        worker.stats().applied >= count as u64
    })
    .await;
    let stats = worker.stats();
    let elapsed = started.elapsed();
    assert!(drained, "{label}: the backlog did not drain: {stats:?}");
    println!(
        "{label}: {count} messages on {RECORDS} records drained in {elapsed:?} ({:.0}/s), {} deferrals",
        count as f64 / elapsed.as_secs_f64(),
        stats.deferred
    );
    let records = replica.records("HotRecord");
    let states: Vec<(i64, i64)> = {
        let mut s: Vec<(i64, i64)> = records
            .iter()
            .map(|r| {
                (
                    r["id"].as_i64().unwrap_or(-1),
                    r["n"].as_i64().unwrap_or(-1),
                )
            })
            .collect();
        s.sort_unstable();
        s
    };
    let expected: Vec<(i64, i64)> = finals
        .iter()
        .enumerate()
        .map(|(id, n)| (id as i64, *n))
        .collect();
    assert_eq!(
        states, expected,
        "{label}: every record ends at its last version"
    );
    assert_eq!(
        (
            stats.applied,
            stats.duplicates,
            stats.recovered,
            stats.failed,
            stats.dead_lettered
        ),
        (count as u64, 0, 0, 0, 0),
        "{label}: each message applied once, none skipped: {stats:?}"
    );
    assert!(
        stats.deferred <= count as u64 / 100,
        "{label}: waiting messages kept their place in the window: {} deferrals for {count} messages",
        stats.deferred
    );
    worker.shutdown().await;
    let _ = subscriber.shutdown().await;
}

/// [`drains`] 100,000 messages injected into the in-process broker's queue.
async fn drains_in_process(mode: Mode, label: &str) {
    let broker = Arc::new(InProcessBroker::new());
    let into = broker.clone();
    drains(
        broker,
        move |queue, payloads| {
            for payload in payloads {
                into.inject(queue, "", payload);
            }
        },
        100_000,
        mode,
        label,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_of_100_000_on_5_hot_records_drains_in_causal_mode() {
    drains_in_process(Mode::Causal, "in-process, causal").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_of_100_000_on_5_hot_records_drains_in_global_mode() {
    drains_in_process(Mode::Global, "in-process, global").await;
}

#[cfg(feature = "amqp")]
mod rabbitmq {
    use super::*;
    use crate::services;
    use promiscuous::amqp::AmqpBroker;

    /// Their subscribers all bind `*/hot_record` on the shared exchange: one
    /// at a time.
    static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

    async fn through_rabbitmq(mode: Mode, label: &str) {
        let _alone = ONE_AT_A_TIME.lock().await;
        let broker = Arc::new(
            AmqpBroker::connect(&services::amqp_url())
                .await
                .expect("RabbitMQ is reachable: is it running?"),
        );
        let publisher = broker.clone();
        let runtime = tokio::runtime::Handle::current();
        drains(
            broker,
            move |_queue, payloads| {
                // Published for real, in order, before the worker starts.
                tokio::task::block_in_place(|| {
                    runtime.block_on(async {
                        for payload in payloads {
                            let message = Message::decode(payload).expect("a valid message");
                            let endpoint = &message.operations[0].endpoint;
                            publisher
                                .publish(endpoint, payload)
                                .await
                                .expect("published");
                        }
                    })
                })
            },
            10_000,
            mode,
            label,
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_backlog_on_hot_records_drains_through_rabbitmq_in_causal_mode() {
        through_rabbitmq(Mode::Causal, "RabbitMQ, causal").await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_backlog_on_hot_records_drains_through_rabbitmq_in_global_mode() {
        through_rabbitmq(Mode::Global, "RabbitMQ, global").await;
    }

    /// As it was reported: 64 publisher tasks write 3,000 updates of 5
    /// records through RabbitMQ and Redis before the subscriber starts, which
    /// then drains them with `recovery_timeout` at 2 s (the operations guide
    /// advised it for catching up): nothing is lost.
    #[cfg(feature = "redis")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_backlog_written_by_64_publishers_drains_with_a_short_recovery_timeout() {
        use promiscuous::memory::MemoryStorage;
        const WRITES: i64 = 3_000;
        let _alone = ONE_AT_A_TIME.lock().await;
        let app = fresh("hot");
        let prefix = fresh("hot");
        let source = Arc::new(MemoryStorage::new());
        let publisher = Promiscuous::configure()
            .app(&app)
            .broker_url(services::amqp_url())
            .redis_url(services::redis_url(&prefix))
            .storage(source.clone())
            .no_subscribers()
            .build()
            .await
            .expect("RabbitMQ and Redis are reachable: are they running?");
        let replica = Arc::new(MemoryStorage::new());
        let subscriber = Promiscuous::configure()
            .app(fresh("hot-sub"))
            .broker_url(services::amqp_url())
            .redis_url(services::redis_url(&prefix))
            .storage(replica.clone())
            .subscriber::<models::HotRecord>()
            .recovery_timeout(Duration::from_secs(2))
            .build()
            .await
            .unwrap();
        let mut declare = subscriber.subscribe().await.unwrap();
        declare.shutdown().await;
        for id in 0..RECORDS as i64 {
            publisher
                .create(&models::source::HotRecord { id, n: 0 })
                .await
                .unwrap();
        }
        let tasks: Vec<_> = (0..64)
            .map(|task| {
                let publisher = publisher.clone();
                tokio::spawn(async move {
                    for i in 0..WRITES / 64 + 1 {
                        let n = task * 1000 + i;
                        let id = (task + i) % RECORDS as i64;
                        publisher
                            .update(&models::source::HotRecord { id, n })
                            .await
                            .expect("a write");
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let written = (WRITES / 64 + 1) * 64 + RECORDS as i64;
        let mut worker = subscriber.subscribe().await.unwrap();
        let drained = eventually(Duration::from_secs(300), || async {
            worker.stats().applied >= written as u64
        })
        .await;
        let stats = worker.stats();
        assert!(drained, "the backlog did not drain: {stats:?}");
        let states = |records: Vec<promiscuous::Record>| {
            let mut s: Vec<(i64, i64)> = records
                .iter()
                .map(|r| {
                    (
                        r["id"].as_i64().unwrap_or(-1),
                        r["n"].as_i64().unwrap_or(-1),
                    )
                })
                .collect();
            s.sort_unstable();
            s
        };
        assert_eq!(
            states(replica.records("HotRecord")),
            states(source.records("HotRecord")),
            "the subscriber ends equal to the publisher"
        );
        assert_eq!(
            (stats.applied, stats.recovered, stats.dead_lettered),
            (written as u64, 0, 0),
            "{stats:?}"
        );
        assert!(
            stats.deferred <= written as u64 / 100,
            "hardly any deferral: {stats:?}"
        );
        println!("64 publishers, {written} writes on {RECORDS} records, drained: {stats:?}");
        worker.shutdown().await;
    }
}
