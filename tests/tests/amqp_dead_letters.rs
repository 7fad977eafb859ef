//! Through the real RabbitMQ: a malformed message lands in `<app>.error` with
//! its reason while the worker keeps going, and a message that keeps failing
//! is retried with backoff through the delay queues, then parked there too.
#![cfg(all(feature = "amqp", feature = "redis"))]

#[path = "common/services.rs"]
mod services;

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use promiscuous::amqp::AmqpBroker;
use promiscuous::core::testkit::{eventually, unique};
use promiscuous::memory::MemoryStorage;
use promiscuous::{Broker, Promiscuous, Selection};

static FAILURES: AtomicU32 = AtomicU32::new(0);
/// The fix an operator deploys before replaying: negative weights are accepted.
static NEGATIVE_ACCEPTED: AtomicBool = AtomicBool::new(false);

mod models {
    use super::*;
    use promiscuous::{BoxError, Callbacks, Context, Publish, Subscribe};
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Clone, Serialize, Deserialize, Publish)]
    pub struct Parcel {
        pub id: i64,
        #[publish]
        pub weight: i64,
    }

    #[derive(Debug, Serialize, Deserialize, Subscribe)]
    #[subscribe(as = "Parcel", callbacks)]
    pub struct ParcelCopy {
        pub id: i64,
        #[subscribe]
        pub weight: i64,
    }

    #[promiscuous::async_trait]
    impl Callbacks for ParcelCopy {
        async fn before_create(&mut self, _ctx: &Context) -> Result<(), BoxError> {
            if self.weight < 0 && !NEGATIVE_ACCEPTED.load(Ordering::SeqCst) {
                FAILURES.fetch_add(1, Ordering::SeqCst);
                return Err(format!("a parcel cannot weigh {}", self.weight).into());
            }
            Ok(())
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_failing_messages_are_parked_with_their_reason() {
    let (publisher_app, subscriber_app) = (unique("dl-pub"), unique("dl-sub"));
    let prefix = unique("dl");
    let broker = Arc::new(
        AmqpBroker::connect(&services::amqp_url())
            .await
            .expect("RabbitMQ is running"),
    );
    let replica = Arc::new(MemoryStorage::new());
    let subscriber = Promiscuous::configure()
        .app(&subscriber_app)
        .broker(broker.clone())
        .redis_url(services::redis_url(&prefix))
        .storage(replica.clone())
        .subscriber::<models::ParcelCopy>()
        .max_attempts(3)
        .retry_backoff(Duration::from_millis(200))
        .build()
        .await
        .expect("Redis is running");
    let publisher = Promiscuous::configure()
        .app(&publisher_app)
        .broker_url(services::amqp_url())
        .redis_url(services::redis_url(&prefix))
        .storage(Arc::new(MemoryStorage::new()))
        .no_subscribers()
        .build()
        .await
        .unwrap();
    let mut worker = subscriber.subscribe().await.unwrap();

    let endpoint = format!("{publisher_app}/parcel");
    broker.publish(&endpoint, b"\x00garbage").await.unwrap();
    publisher
        .create(&models::Parcel { id: 1, weight: -5 })
        .await
        .unwrap();
    publisher
        .create(&models::Parcel { id: 2, weight: 3 })
        .await
        .unwrap();

    let parked = eventually(Duration::from_secs(30), || async {
        broker
            .dead_letters(&subscriber_app)
            .await
            .map(|d| d.len())
            .unwrap_or(0)
            == 2
    })
    .await;
    let dead = broker.dead_letters(&subscriber_app).await.unwrap();
    assert!(parked, "two messages are parked: {dead:?}");
    let malformed = dead
        .iter()
        .find(|d| d.payload == b"\x00garbage")
        .expect("the malformed message is parked");
    assert!(
        malformed.reason.contains("malformed message"),
        "{}",
        malformed.reason
    );
    assert_eq!(malformed.endpoint, endpoint);
    let failing = dead.iter().find(|d| d.payload != b"\x00garbage").unwrap();
    assert!(
        failing.reason.contains("failed 3 times") && failing.reason.contains("cannot weigh -5"),
        "{}",
        failing.reason
    );
    assert_eq!(failing.attempts, 3);
    assert_eq!(
        FAILURES.load(Ordering::SeqCst),
        3,
        "tried three times, through the delay queues"
    );

    assert_eq!(
        replica.records("ParcelCopy").len(),
        1,
        "the worker kept going"
    );
    assert!(worker.is_running());

    // The operator's way out: drop what can never be applied, fix the cause
    // of the rest, move it back; the worker applies it.
    let dead_letters = subscriber.dead_letters();
    assert_eq!(dead_letters.list().await.unwrap(), dead);
    let garbage = Selection::Ids(vec![malformed.id()]);
    assert_eq!(dead_letters.purge(&garbage).await.unwrap(), 1);
    NEGATIVE_ACCEPTED.store(true, Ordering::SeqCst);
    assert_eq!(dead_letters.replay(&Selection::All).await.unwrap(), 1);
    let replayed = eventually(Duration::from_secs(30), || async {
        replica.records("ParcelCopy").len() == 2
    })
    .await;
    assert!(
        replayed,
        "the replayed parcel is applied: {:?}",
        replica.records("ParcelCopy")
    );
    assert!(dead_letters.list().await.unwrap().is_empty());
    assert_eq!(worker.stats().dead_lettered, 2, "nothing parked again");

    worker.shutdown().await;
    broker.delete_subscription(&subscriber_app).await.unwrap();
}
