//! A publisher process dies between its commit and its publish (and, in a
//! second run, between its publish and the removal of its outbox row); a
//! restarted publisher's relay publishes what it left, and the subscriber
//! applies each operation once. With the default settings (outbox claim,
//! lock time-to-live, recovery timeout), a publisher that dies after its
//! commit, or whose publish the broker refuses, loses nothing either: the
//! subscriber waits for the operation, which recovery or the relay publishes,
//! and applies what came after it in its place. Real RabbitMQ and Redis,
//! SQLite files.
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

/// The scenarios publish to the same endpoints and their subscribers bind
/// them all: one at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
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
    publisher_with(broker, prefix, source_url, Some(Duration::from_secs(1))).await
}

/// A publisher with the given outbox claim (`None`: the default), and every
/// other setting at its default.
async fn publisher_with(
    broker: Arc<dyn Broker>,
    prefix: &str,
    source_url: &str,
    claim: Option<Duration>,
) -> SqlPublisher {
    let promiscuous = Promiscuous::configure()
        .app(PUBLISHER_APP)
        .broker(broker)
        .redis_url(services::redis_url(prefix))
        .no_subscribers()
        .build()
        .await
        .expect("the publisher connects to Redis");
    let db = sea_orm::Database::connect(source_url).await.unwrap();
    let builder = SqlPublisher::builder(promiscuous, db).entity::<user::Entity>();
    match claim {
        Some(claim) => builder.claim(claim),
        None => builder,
    }
    .build()
    .unwrap()
}

/// The dying publisher: inserts one user and dies while publishing it.
async fn dying_publisher() {
    let prefix = std::env::var("REDIS_PREFIX").unwrap();
    let source_url = std::env::var("SOURCE_URL").unwrap();
    let publish_first = std::env::var("PUBLISH_FIRST").as_deref() == Ok("yes");
    let default_claim = std::env::var("DEFAULT_CLAIM").as_deref() == Ok("yes");
    let name = std::env::var("USER_NAME").unwrap();
    let inner = AmqpBroker::connect(&services::amqp_url()).await.unwrap();
    let broker = Arc::new(DyingBroker {
        inner,
        publish_first,
    });
    let claim = (!default_claim).then_some(Duration::from_secs(1));
    let publisher = publisher_with(broker, &prefix, &source_url, claim).await;
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
    run_dying(TEST, prefix, source, name, publish_first, false).await
}

/// Runs test `test` as the dying publisher.
async fn run_dying(
    test: &str,
    prefix: &str,
    source: &TestDatabase,
    name: &str,
    publish_first: bool,
    default_claim: bool,
) -> i32 {
    let child = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(ROLE, "dying-publisher")
        .env("DEFAULT_CLAIM", if default_claim { "yes" } else { "no" })
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
    let _alone = ONE_AT_A_TIME.lock().await;
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

/// The two apps of the default-settings scenarios, on fresh SQLite files.
struct Deployment {
    prefix: String,
    source: TestDatabase,
    replica: TestDatabase,
    subscriber: Promiscuous,
}

impl Deployment {
    async fn new(label: &str) -> Self {
        let prefix = unique(label);
        let source = TestDatabase::create(Engine::Sqlite, &format!("{label}_pub")).await;
        let replica = TestDatabase::create(Engine::Sqlite, &format!("{label}_sub")).await;
        entities::publisher_schema(source.connection())
            .await
            .unwrap();
        entities::subscriber_schema(replica.connection())
            .await
            .unwrap();
        // Every setting at its default: recovery_timeout 10 s, no skipping.
        let subscriber = Promiscuous::configure()
            .app(unique(&format!("{label}-sub")))
            .broker_url(services::amqp_url())
            .redis_url(services::redis_url(&prefix))
            .storage(Arc::new(
                SqlStorage::new(replica.connection().clone()).subscribed::<replica_user::Entity>(),
            ))
            .subscriber::<replica_user::Model>()
            .build()
            .await
            .expect("the subscriber connects to RabbitMQ and Redis: are they running?");
        Self {
            prefix,
            source,
            replica,
            subscriber,
        }
    }

    async fn users(&self, db: &TestDatabase) -> Vec<(i64, String)> {
        let mut users: Vec<(i64, String)> = replica_user::Entity::find()
            .all(db.connection())
            .await
            .unwrap()
            .into_iter()
            .map(|u| (u.id, u.name))
            .collect();
        users.sort();
        users
    }

    /// Waits until the subscriber's users equal the publisher's, each of the
    /// `writes` applied once and nothing skipped; stops the worker.
    async fn ends_equal(&self, worker: &mut promiscuous::Worker, writes: u64) {
        let expected = self.source_users().await;
        let equal = eventually(Duration::from_secs(40), || async {
            self.users(&self.replica).await == expected
        })
        .await;
        assert!(
            equal,
            "the subscriber ends equal: {:?} vs {expected:?}; {:?}",
            self.users(&self.replica).await,
            worker.stats()
        );
        let stats = worker.stats();
        assert_eq!(
            (stats.applied, stats.recovered, stats.failed),
            (writes, 0, 0),
            "each write applied once, in order; nothing skipped: {stats:?}"
        );
        worker.shutdown().await;
    }

    async fn source_users(&self) -> Vec<(i64, String)> {
        let mut users: Vec<(i64, String)> = user::Entity::find()
            .all(self.source.connection())
            .await
            .unwrap()
            .into_iter()
            .map(|u| (u.id, u.name))
            .collect();
        users.sort();
        users
    }
}

const KILLED_AFTER_COMMIT: &str =
    "a_publisher_killed_after_commit_loses_nothing_with_default_settings";

/// The publisher dies after its commit, before its publish; another process
/// of the app (default settings) writes the same record right away. Its
/// write waits for the dead writer's lock, takes it over, and the dead
/// writer's committed message is published from the outbox first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_killed_after_commit_loses_nothing_with_default_settings() {
    if std::env::var(ROLE).as_deref() == Ok("dying-publisher") {
        dying_publisher().await;
        return;
    }
    let _alone = ONE_AT_A_TIME.lock().await;
    let deployment = Deployment::new("killed_commit").await;
    let mut worker = deployment.subscriber.subscribe().await.unwrap();
    let code = run_dying(
        KILLED_AFTER_COMMIT,
        &deployment.prefix,
        &deployment.source,
        "ann",
        false,
        true,
    )
    .await;
    assert_eq!(code, DIED_BEFORE_PUBLISH);
    let broker = Arc::new(AmqpBroker::connect(&services::amqp_url()).await.unwrap());
    let survivor = publisher_with(broker, &deployment.prefix, deployment.source.url(), None).await;
    let ann = user::Entity::find()
        .one(survivor.connection())
        .await
        .unwrap()
        .expect("the dead writer committed");
    let mut edit: user::ActiveModel = ann.clone().into();
    edit.name = Set("ann, renamed".into());
    survivor
        .update(edit)
        .await
        .expect("the update waits for the lock, then goes on");
    deployment.ends_equal(&mut worker, 2).await;
}

/// RabbitMQ, except that the first publishes are refused.
#[derive(Debug)]
struct RefusingBroker {
    inner: AmqpBroker,
    refusals: std::sync::atomic::AtomicU32,
}

#[async_trait]
impl Broker for RefusingBroker {
    fn name(&self) -> &'static str {
        "refusing"
    }
    fn capabilities(&self) -> BrokerCapabilities {
        self.inner.capabilities()
    }
    fn healthy(&self) -> bool {
        self.inner.healthy()
    }
    async fn publish(&self, endpoint: &str, payload: &[u8]) -> Result<(), BackendError> {
        use std::sync::atomic::Ordering;
        if self.refusals.load(Ordering::SeqCst) > 0 {
            self.refusals.fetch_sub(1, Ordering::SeqCst);
            return Err(BackendError::new(
                "refusing",
                "publish",
                endpoint,
                "the broker refused the message",
            ));
        }
        self.inner.publish(endpoint, payload).await
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

/// The broker refuses a committed message; the next writes of the record
/// (and a write that read it) are published at once. The subscriber waits
/// for the refused one, which the relay publishes, and applies everything in
/// order: the subscriber ends equal to the publisher.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_publish_loses_nothing_with_default_settings() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let deployment = Deployment::new("refused").await;
    let mut worker = deployment.subscriber.subscribe().await.unwrap();
    let broker = Arc::new(RefusingBroker {
        inner: AmqpBroker::connect(&services::amqp_url()).await.unwrap(),
        refusals: std::sync::atomic::AtomicU32::new(1),
    });
    let publisher = publisher_with(broker, &deployment.prefix, deployment.source.url(), None).await;
    let new_user = |name: &str| user::ActiveModel {
        name: Set(name.into()),
        email: Set(format!("{name}@example.com")),
        active: Set(true),
        profile: Set(None),
        password: Set("x".into()),
        ..Default::default()
    };
    let ann = publisher
        .insert(new_user("ann"))
        .await
        .expect("committed, though the broker refused the message");
    promiscuous::causal_scope(async {
        let mut edit: user::ActiveModel = ann.clone().into();
        edit.name = Set("ann, renamed".into());
        let ann = publisher.update(edit).await.unwrap();
        publisher.promiscuous().depends_on(&ann);
        publisher.insert(new_user("cy")).await.unwrap();
    })
    .await;
    deployment.ends_equal(&mut worker, 3).await;
}
