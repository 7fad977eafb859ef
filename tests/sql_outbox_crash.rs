//! A publisher process dies between its commit and its publish (and, in a
//! second run, between its publish and the removal of its outbox row); a
//! restarted publisher's relay publishes what it left, and the subscriber
//! applies each operation once. Real RabbitMQ and Redis, SQLite files.
#![cfg(all(feature = "sql", feature = "amqp", feature = "redis"))]

#[path = "sql/entities.rs"]
mod entities;
#[path = "common/services.rs"]
mod services;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use entities::{replica_user, user, PUBLISHER_APP};
use promiscuous::amqp::AmqpBroker;
use promiscuous::core::testkit::{eventually, unique};
use promiscuous::core::traits::{BrokerCapabilities, Consumer, Subscription};
use promiscuous::sql::testkit::{Engine, TestDatabase};
use promiscuous::sql::{SqlPublisher, SqlStorage};
use promiscuous::{BackendError, Broker, Promiscuous};
use sea_orm::{ActiveValue::Set, EntityTrait};

const ROLE: &str = "PROMISCUOUS_TEST_ROLE";
const TEST: &str = "a_publisher_dying_between_commit_and_publish_loses_nothing";
/// Exit codes of the dying publisher, one per moment it dies.
const DIED_BEFORE_PUBLISH: i32 = 3;
const DIED_AFTER_PUBLISH: i32 = 4;

/// RabbitMQ, except that the process exits at the first publish: before it
/// (`publish_first == false`) or right after the broker confirmed it.
#[derive(Debug)]
struct DyingBroker {
    inner: AmqpBroker,
    publish_first: bool,
}

#[async_trait]
impl Broker for DyingBroker {
    fn name(&self) -> &'static str {
        "dying"
    }
    fn capabilities(&self) -> BrokerCapabilities {
        self.inner.capabilities()
    }
    fn healthy(&self) -> bool {
        self.inner.healthy()
    }
    async fn publish(&self, endpoint: &str, payload: &[u8]) -> Result<(), BackendError> {
        if !self.publish_first {
            std::process::exit(DIED_BEFORE_PUBLISH);
        }
        self.inner.publish(endpoint, payload).await?;
        std::process::exit(DIED_AFTER_PUBLISH);
    }
    async fn subscribe(
        &self,
        subscription: &Subscription,
    ) -> Result<Box<dyn Consumer>, BackendError> {
        self.inner.subscribe(subscription).await
    }
    async fn close(&self) -> Result<(), BackendError> {
        self.inner.close().await
    }
}

async fn publisher(broker: Arc<dyn Broker>, prefix: &str, source_url: &str) -> SqlPublisher {
    let promiscuous = Promiscuous::configure()
        .app(PUBLISHER_APP)
        .broker(broker)
        .redis_url(services::redis_url(prefix))
        .no_subscribers()
        .build()
        .await
        .expect("the publisher connects to Redis");
    let db = sea_orm::Database::connect(source_url).await.unwrap();
    SqlPublisher::builder(promiscuous, db)
        .entity::<user::Entity>()
        .claim(Duration::from_secs(1))
        .build()
        .unwrap()
}

/// The dying publisher: inserts one user and dies while publishing it.
async fn dying_publisher() {
    let prefix = std::env::var("REDIS_PREFIX").unwrap();
    let source_url = std::env::var("SOURCE_URL").unwrap();
    let publish_first = std::env::var("PUBLISH_FIRST").as_deref() == Ok("yes");
    let name = std::env::var("USER_NAME").unwrap();
    let inner = AmqpBroker::connect(&services::amqp_url()).await.unwrap();
    let broker = Arc::new(DyingBroker {
        inner,
        publish_first,
    });
    let publisher = publisher(broker, &prefix, &source_url).await;
    let user = user::ActiveModel {
        name: Set(name.clone()),
        email: Set(format!("{name}@example.com")),
        active: Set(true),
        profile: Set(None),
        password: Set("x".into()),
        ..Default::default()
    };
    publisher.insert(user).await.unwrap();
    unreachable!("the broker ends the process while publishing");
}

async fn run_dying_publisher(
    prefix: &str,
    source: &TestDatabase,
    name: &str,
    publish_first: bool,
) -> i32 {
    let child = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", TEST, "--nocapture", "--test-threads=1"])
        .env(ROLE, "dying-publisher")
        .env("REDIS_PREFIX", prefix)
        .env("SOURCE_URL", source.url())
        .env("USER_NAME", name)
        .env("PUBLISH_FIRST", if publish_first { "yes" } else { "no" })
        .output()
        .await
        .unwrap();
    child.status.code().unwrap_or_else(|| {
        panic!(
            "the publisher process was killed by a signal:\n{}\n{}",
            String::from_utf8_lossy(&child.stdout),
            String::from_utf8_lossy(&child.stderr)
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_dying_between_commit_and_publish_loses_nothing() {
    if std::env::var(ROLE).as_deref() == Ok("dying-publisher") {
        dying_publisher().await;
        return;
    }
    let prefix = unique("crash");
    let source = TestDatabase::create(Engine::Sqlite, "crash_pub").await;
    let replica = TestDatabase::create(Engine::Sqlite, "crash_sub").await;
    entities::publisher_schema(source.connection())
        .await
        .unwrap();
    entities::subscriber_schema(replica.connection())
        .await
        .unwrap();
    let subscriber = Promiscuous::configure()
        .app(unique("crash-sub"))
        .broker_url(services::amqp_url())
        .redis_url(services::redis_url(&prefix))
        .storage(Arc::new(
            SqlStorage::new(replica.connection().clone()).subscribed::<replica_user::Entity>(),
        ))
        .subscriber::<replica_user::Model>()
        .build()
        .await
        .expect("the subscriber connects to RabbitMQ and Redis: are they running?");
    let mut worker = subscriber.subscribe().await.unwrap();
    let names = || async {
        replica_user::Entity::find()
            .all(replica.connection())
            .await
            .unwrap()
            .into_iter()
            .map(|u| u.name)
            .collect::<Vec<_>>()
    };

    // 1. Dies after the commit, before the publish.
    let code = run_dying_publisher(&prefix, &source, "ann", false).await;
    assert_eq!(code, DIED_BEFORE_PUBLISH);
    let rows = user::Entity::find().all(source.connection()).await.unwrap();
    assert_eq!(rows.len(), 1, "the write was committed");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(worker.stats().received, 0, "nothing was published");

    // The publisher restarts: its relay publishes what was left.
    let broker = Arc::new(AmqpBroker::connect(&services::amqp_url()).await.unwrap());
    let restarted = publisher(broker, &prefix, source.url()).await;
    assert_eq!(
        restarted.outbox_len().await.unwrap(),
        1,
        "the message waits in the outbox"
    );
    let mut relay = restarted.relay().every(Duration::from_millis(100)).start();
    assert!(
        eventually(Duration::from_secs(30), || async {
            names().await == ["ann"]
        })
        .await,
        "the relayed operation reached the subscriber: {:?}",
        worker.stats()
    );

    // 2. Dies after the publish, before removing the outbox row: the relay
    //    publishes it again and the subscriber recognises the duplicate.
    let code = run_dying_publisher(&prefix, &source, "bob", true).await;
    assert_eq!(code, DIED_AFTER_PUBLISH);
    assert!(
        eventually(Duration::from_secs(30), || async {
            restarted.outbox_len().await.unwrap() == 0 && worker.stats().duplicates >= 1
        })
        .await,
        "the relay republished the row and the subscriber saw a duplicate: {:?}",
        worker.stats()
    );
    let mut have = names().await;
    have.sort();
    assert_eq!(have, ["ann", "bob"]);
    let stats = worker.stats();
    assert_eq!(
        (stats.applied, stats.failed),
        (2, 0),
        "each operation applied once: {stats:?}"
    );
    relay.stop().await;
    worker.shutdown().await;
}
