//! The SQL scenarios, run on every engine: a publisher app writing sea-orm
//! entities through `SqlPublisher`, a subscriber app storing them through
//! `SqlStorage`, each with a database of its own, on the in-process broker
//! and memory clock (the broker and clock are not what is tested here).
#![allow(dead_code)]

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use promiscuous::core::testkit::eventually;
use promiscuous::memory::{InProcessBroker, MemoryClock, MemoryLock, NullBroker};
use promiscuous::sql::testkit::{Engine, TestDatabase};
use promiscuous::sql::{SqlError, SqlPublisher, SqlStorage};
use promiscuous::{BackendError, Broker, Error, Promiscuous, Worker, WorkerStats};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter,
    QueryOrder,
};
use serde_json::json;

use super::entities::{self, account, member, note, replica_user, user, Account, PUBLISHER_APP};

/// Long enough for the slowest engine in a debug build.
pub const WAIT: Duration = Duration::from_secs(60);

/// Errors reported through the error notifier.
#[derive(Clone, Default)]
pub struct Reported(Arc<Mutex<Vec<String>>>);

impl Reported {
    pub fn all(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn notifier(&self) -> impl Fn(&Error) + Send + Sync + 'static {
        let seen = self.0.clone();
        move |e: &Error| {
            seen.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(promiscuous::core::error::chain(e))
        }
    }
}

/// A publisher app and a subscriber app, each on its own database.
pub struct Pair {
    pub source: TestDatabase,
    pub replica: TestDatabase,
    pub broker: Arc<InProcessBroker>,
    pub clock: Arc<MemoryClock>,
    pub lock: Arc<MemoryLock>,
    pub publisher: SqlPublisher,
    pub subscriber: Promiscuous,
    pub reported: Reported,
}

/// A broker whose publishes fail, as when RabbitMQ is down.
#[derive(Debug)]
pub struct DownBroker;

#[async_trait]
impl Broker for DownBroker {
    fn name(&self) -> &'static str {
        "down"
    }
    fn capabilities(&self) -> promiscuous::core::traits::BrokerCapabilities {
        NullBroker::new().capabilities()
    }
    fn healthy(&self) -> bool {
        false
    }
    async fn publish(&self, endpoint: &str, _payload: &[u8]) -> Result<(), BackendError> {
        Err(BackendError::new(
            "down",
            "publish",
            endpoint,
            "the broker is down",
        ))
    }
    async fn subscribe(
        &self,
        subscription: &promiscuous::core::traits::Subscription,
    ) -> Result<Box<dyn promiscuous::core::traits::Consumer>, BackendError> {
        Err(BackendError::new(
            "down",
            "subscribe",
            &subscription.queue,
            "the broker is down",
        ))
    }
    async fn close(&self) -> Result<(), BackendError> {
        Ok(())
    }
}

impl Pair {
    /// Both databases with their schemas, and both apps.
    pub async fn new(engine: Engine, label: &str) -> Self {
        let source = TestDatabase::create(engine, &format!("{label}_pub")).await;
        let replica = TestDatabase::create(engine, &format!("{label}_sub")).await;
        entities::publisher_schema(source.connection())
            .await
            .unwrap();
        entities::subscriber_schema(replica.connection())
            .await
            .unwrap();
        let broker = Arc::new(InProcessBroker::new());
        let clock = Arc::new(MemoryClock::new());
        let lock = Arc::new(MemoryLock::new());
        let reported = Reported::default();
        let publisher = Self::publisher_on(&source, broker.clone(), &clock, &lock, &reported).await;
        let storage =
            SqlStorage::new(replica.connection().clone()).subscribed::<replica_user::Entity>();
        let subscriber = Promiscuous::configure()
            .app("warehouse")
            .broker(broker.clone())
            .clock(clock.clone())
            .lock(lock.clone())
            .storage(Arc::new(storage))
            .subscriber::<replica_user::Model>()
            .retry_backoff(Duration::from_millis(20))
            .error_notifier(reported.notifier())
            .build()
            .await
            .expect("subscriber configuration is valid");
        Pair {
            source,
            replica,
            broker,
            clock,
            lock,
            publisher,
            subscriber,
            reported,
        }
    }

    /// A publisher app writing to `source` and publishing through `broker`.
    pub async fn publisher_on(
        source: &TestDatabase,
        broker: Arc<dyn Broker>,
        clock: &Arc<MemoryClock>,
        lock: &Arc<MemoryLock>,
        reported: &Reported,
    ) -> SqlPublisher {
        let promiscuous = Promiscuous::configure()
            .app(PUBLISHER_APP)
            .broker(broker)
            .clock(clock.clone())
            .lock(lock.clone())
            .no_subscribers()
            .lock_timeout(Duration::from_secs(2))
            .error_notifier(reported.notifier())
            // Scenarios run the relay and recovery passes themselves.
            .no_recovery_worker()
            .build()
            .await
            .expect("publisher configuration is valid");
        SqlPublisher::builder(promiscuous, source.connection().clone())
            .entity::<user::Entity>()
            .entity::<member::Entity>()
            .claim(Duration::from_millis(300))
            .build()
            .expect("the published entities are valid")
    }

    /// Starts the subscriber's worker (it declares the queue first).
    pub async fn worker(&self) -> Worker {
        self.subscriber
            .subscribe()
            .await
            .expect("the worker starts")
    }

    /// The subscriber's users, by id.
    pub async fn replica_users(&self) -> Vec<replica_user::Model> {
        replica_user::Entity::find()
            .order_by_asc(replica_user::Column::Id)
            .all(self.replica.connection())
            .await
            .unwrap()
    }

    /// The publisher's users, as the subscriber should have them.
    pub async fn source_users(&self) -> Vec<replica_user::Model> {
        user::Entity::find()
            .order_by_asc(user::Column::Id)
            .all(self.source.connection())
            .await
            .unwrap()
            .into_iter()
            .map(copy_of)
            .collect()
    }

    /// Waits until the subscriber's users equal `expected`.
    pub async fn assert_replica(&self, expected: &[replica_user::Model]) {
        let reached = eventually(WAIT, || async { self.replica_users().await == expected }).await;
        assert!(
            reached,
            "the subscriber's users differ from the expected ones:\n  have {:?}\n  want {:?}\n  errors: {:?}",
            self.replica_users().await,
            expected,
            self.reported.all()
        );
    }
}

/// The worker's counters once `applied` operations are counted: they are
/// recorded just after the commit the replica already shows.
pub async fn stats_after(worker: &Worker, applied: u64) -> WorkerStats {
    eventually(WAIT, || async { worker.stats().applied >= applied }).await;
    worker.stats()
}

/// What the subscriber should hold for a publisher's user.
pub fn copy_of(user: user::Model) -> replica_user::Model {
    replica_user::Model {
        id: user.id,
        name: user.name,
        email: user.email,
        active: user.active,
        profile: user.profile,
    }
}

/// A new user's active model.
pub fn new_user(name: &str) -> user::ActiveModel {
    user::ActiveModel {
        name: Set(name.to_owned()),
        email: Set(format!("{}@example.com", name.to_lowercase())),
        active: Set(true),
        profile: Set(Some(json!({"city": "Paris", "tags": [name]}))),
        password: Set("secret".to_owned()),
        ..Default::default()
    }
}

/// Creates, updates and destroys a user; the subscriber follows each step.
pub async fn create_update_destroy(engine: Engine) {
    let pair = Pair::new(engine, "crud").await;
    let mut worker = pair.worker().await;
    let ada = pair.publisher.insert(new_user("Ada")).await.unwrap();
    pair.assert_replica(&[copy_of(ada.clone())]).await;

    let mut edit = ada.clone().into_active_model();
    edit.name = Set("Ada Lovelace".into());
    edit.active = Set(false);
    edit.profile = Set(None);
    let ada = pair.publisher.update(edit).await.unwrap();
    assert_eq!(ada.name, "Ada Lovelace");
    pair.assert_replica(&[copy_of(ada.clone())]).await;

    pair.publisher.delete(ada).await.unwrap();
    pair.assert_replica(&[]).await;
    assert_eq!(
        pair.publisher.outbox_len().await.unwrap(),
        0,
        "published rows leave the outbox"
    );
    let stats = stats_after(&worker, 3).await;
    assert_eq!((stats.applied, stats.failed), (3, 0), "{stats:?}");
    worker.shutdown().await;
}

/// A member (child model) is stored by a subscriber of users as a user.
pub async fn polymorphism(engine: Engine) {
    let pair = Pair::new(engine, "poly").await;
    let mut worker = pair.worker().await;
    let member = member::ActiveModel {
        id: Set(1_000_001),
        name: Set("Grace".into()),
        email: Set("grace@example.com".into()),
        active: Set(true),
        profile: Set(None),
        level: Set(7),
    };
    let member = pair.publisher.insert(member).await.unwrap();
    let expected = replica_user::Model {
        id: member.id,
        name: member.name.clone(),
        email: member.email.clone(),
        active: true,
        profile: None,
    };
    pair.assert_replica(&[expected]).await;
    worker.shutdown().await;
}

/// A subscriber keyed by a foreign key keeps its own ids.
pub async fn foreign_key(engine: Engine) {
    let pair = Pair::new(engine, "fkey").await;
    let storage =
        SqlStorage::new(pair.replica.connection().clone()).entity::<account::Entity>("Account");
    let accounts = Promiscuous::configure()
        .app("billing")
        .broker(pair.broker.clone())
        .clock(pair.clock.clone())
        .lock(pair.lock.clone())
        .storage(Arc::new(storage))
        .subscriber::<Account>()
        .error_notifier(pair.reported.notifier())
        .build()
        .await
        .unwrap();
    let mut worker = accounts.subscribe().await.unwrap();
    let db = pair.replica.connection();
    // By the publisher's id: the two creates are applied in parallel, so the
    // local ids may come in either order.
    let rows = || async {
        account::Entity::find()
            .order_by_asc(account::Column::UserId)
            .all(db)
            .await
            .unwrap()
    };
    let bob = pair.publisher.insert(new_user("Bob")).await.unwrap();
    let cy = pair.publisher.insert(new_user("Cy")).await.unwrap();
    assert!(
        eventually(WAIT, || async { rows().await.len() == 2 }).await,
        "{:?}",
        pair.reported.all()
    );
    let before = rows().await;
    assert_eq!(
        before
            .iter()
            .map(|a| (a.user_id, a.name.as_str()))
            .collect::<Vec<_>>(),
        vec![(bob.id, "Bob"), (cy.id, "Cy")]
    );
    let mut edit = bob.clone().into_active_model();
    edit.name = Set("Robert".into());
    pair.publisher.update(edit).await.unwrap();
    assert!(
        eventually(WAIT, || async {
            rows().await.iter().any(|a| a.name == "Robert")
        })
        .await,
        "{:?}",
        pair.reported.all()
    );
    let after = rows().await;
    assert_eq!(
        after.iter().map(|a| a.id).collect::<Vec<_>>(),
        before.iter().map(|a| a.id).collect::<Vec<_>>(),
        "an update keeps the subscriber's own ids"
    );
    pair.publisher.delete(cy).await.unwrap();
    assert!(eventually(WAIT, || async { rows().await.len() == 1 }).await);
    assert_eq!(rows().await[0].user_id, bob.id);
    worker.shutdown().await;
}

/// A rolled-back or dropped transaction writes nothing and publishes nothing.
pub async fn rollback_publishes_nothing(engine: Engine) {
    let pair = Pair::new(engine, "rollback").await;
    let mut worker = pair.worker().await;
    let mut tx = pair.publisher.begin().await.unwrap();
    tx.insert(new_user("Ghost")).await.unwrap();
    tx.rollback().await.unwrap();
    {
        let mut dropped = pair.publisher.begin().await.unwrap();
        dropped.insert(new_user("Phantom")).await.unwrap();
    }
    assert!(
        pair.source_users().await.is_empty(),
        "rolled back rows are not written"
    );
    // A committed write after them arrives alone.
    let real = pair.publisher.insert(new_user("Real")).await.unwrap();
    pair.assert_replica(&[copy_of(real)]).await;
    let stats = worker.stats();
    assert_eq!(
        stats.received, 1,
        "only the committed transaction is published: {stats:?}"
    );
    assert_eq!(pair.publisher.outbox_len().await.unwrap(), 0);
    worker.shutdown().await;
}

/// All the writes of a transaction go out as one message, applied together.
pub async fn transaction_is_one_message(engine: Engine) {
    let pair = Pair::new(engine, "onemsg").await;
    let mut worker = pair.worker().await;
    let mut tx = pair.publisher.begin().await.unwrap();
    let dan = tx.insert(new_user("Dan")).await.unwrap();
    let eve = tx.insert(new_user("Eve")).await.unwrap();
    let mut edit = dan.into_active_model();
    edit.name = Set("Daniel".into());
    let dan = tx.update(edit).await.unwrap();
    note::ActiveModel {
        body: Set("not published".into()),
        ..Default::default()
    }
    .insert(tx.connection())
    .await
    .unwrap();
    assert_eq!(tx.len(), 3);
    tx.commit().await.unwrap();
    pair.assert_replica(&[copy_of(dan), copy_of(eve)]).await;
    let stats = stats_after(&worker, 3).await;
    assert_eq!((stats.received, stats.applied), (1, 3), "{stats:?}");
    worker.shutdown().await;
}

/// Multi-row writes are refused on published entities, allowed on others.
pub async fn multi_row_writes_refused(engine: Engine) {
    let pair = Pair::new(engine, "multirow").await;
    let fay = pair.publisher.insert(new_user("Fay")).await.unwrap();
    let tx = pair.publisher.begin().await.unwrap();
    let update = user::Entity::update_many()
        .col_expr(user::Column::Active, sea_orm::sea_query::Expr::value(false))
        .filter(user::Column::Active.eq(true));
    let refused = tx.update_many(update).await.unwrap_err();
    assert!(
        matches!(
            refused,
            SqlError::MultiRowWrite {
                operation: "update",
                ..
            }
        ),
        "{refused}"
    );
    let text = refused.to_string();
    assert!(
        text.contains("User") && text.contains("one by one"),
        "the error explains what to do: {text}"
    );
    let refused = tx
        .delete_many(user::Entity::delete_many().filter(user::Column::Id.eq(fay.id)))
        .await
        .unwrap_err();
    assert!(
        matches!(
            refused,
            SqlError::MultiRowWrite {
                operation: "delete",
                ..
            }
        ),
        "{refused}"
    );
    for body in ["a", "b"] {
        note::ActiveModel {
            body: Set(body.into()),
            ..Default::default()
        }
        .insert(tx.connection())
        .await
        .unwrap();
    }
    let done = tx
        .update_many(note::Entity::update_many().col_expr(
            note::Column::Body,
            sea_orm::sea_query::Expr::value("edited"),
        ))
        .await
        .unwrap();
    assert_eq!(done.rows_affected, 2, "unpublished entities are updated");
    tx.commit().await.unwrap();
    assert_eq!(
        pair.source_users().await,
        vec![copy_of(fay)],
        "the refused writes changed nothing"
    );
    assert!(
        pair.reported.all().iter().any(|e| e.contains("one by one")),
        "the refusal is reported"
    );
}

/// A message replayed after a crash between the subscriber's commit and its
/// clock's advance is recognised from the database and not applied again.
pub async fn replay_after_crash_is_detected(engine: Engine) {
    let pair = Pair::new(engine, "replay").await;
    let recorder = Arc::new(NullBroker::new());
    let publisher = Pair::publisher_on(
        &pair.source,
        recorder.clone(),
        &pair.clock,
        &pair.lock,
        &pair.reported,
    )
    .await;
    let gus = publisher.insert(new_user("Gus")).await.unwrap();
    let payload = recorder.published()[0].payload.clone();

    let first = pair.subscriber.deliver(&payload).await.unwrap();
    assert_eq!(first.applied, 1);
    pair.assert_replica(&[copy_of(gus.clone())]).await;
    // A local change the replay would overwrite if it applied again.
    let mut local = replica_user::Entity::find_by_id(gus.id)
        .one(pair.replica.connection())
        .await
        .unwrap()
        .unwrap()
        .into_active_model();
    local.name = Set("changed locally".into());
    local.update(pair.replica.connection()).await.unwrap();

    // The same database with a clock that never saw the first apply: what
    // a crash between the commit and the clock's advance leaves.
    let restarted = Promiscuous::configure()
        .app("warehouse")
        .broker(Arc::new(NullBroker::new()))
        .clock(Arc::new(MemoryClock::new()))
        .lock(Arc::new(MemoryLock::new()))
        .storage(Arc::new(
            SqlStorage::new(pair.replica.connection().clone()).subscribed::<replica_user::Entity>(),
        ))
        .subscriber::<replica_user::Model>()
        .build()
        .await
        .unwrap();
    let replay = restarted.deliver(&payload).await.unwrap();
    assert_eq!((replay.applied, replay.duplicates), (0, 1), "{replay:?}");
    let names: Vec<String> = pair
        .replica_users()
        .await
        .into_iter()
        .map(|u| u.name)
        .collect();
    assert_eq!(
        names,
        vec!["changed locally".to_owned()],
        "the replay did not apply again"
    );
}

/// A commit whose publish failed stays in the outbox; the relay publishes it
/// once, in order, and a second pass finds nothing.
pub async fn relay_publishes_leftovers(engine: Engine) {
    let pair = Pair::new(engine, "relay").await;
    let mut worker = pair.worker().await;
    let down = Pair::publisher_on(
        &pair.source,
        Arc::new(DownBroker),
        &pair.clock,
        &pair.lock,
        &pair.reported,
    )
    .await;
    let hal = down
        .insert(new_user("Hal"))
        .await
        .expect("the commit succeeds while the broker is down");
    let mut edit = hal.clone().into_active_model();
    edit.name = Set("Hal 9000".into());
    let hal = down.update(edit).await.unwrap();
    assert_eq!(
        pair.publisher.outbox_len().await.unwrap(),
        2,
        "both messages wait in the outbox"
    );

    // Another publisher process on the same database and app relays them:
    // the writer gave up its claims when the broker refused the messages,
    // so the first pass takes them.
    let relay = pair.publisher.relay();
    let pass = relay.run_once().await.unwrap();
    assert_eq!(pass.published, 2, "{pass:?}");
    pair.assert_replica(&[copy_of(hal)]).await;
    assert_eq!(relay.run_once().await.unwrap().published, 0);
    assert_eq!(pair.publisher.outbox_len().await.unwrap(), 0);
    let stats = stats_after(&worker, 2).await;
    assert_eq!((stats.applied, stats.duplicates), (2, 0), "{stats:?}");
    worker.shutdown().await;
}

/// The key of the `n`th row of the sync scenario: some negative, as
/// partitions must cover those too (never 0, which MySQL takes for "assign").
fn sync_id(n: i64) -> i64 {
    if n <= 50 {
        -n
    } else {
        n
    }
}

/// Rows written before subscribers existed reach them through an initial
/// sync, shared by two workers, while another task keeps updating some.
pub async fn initial_sync_with_concurrent_updates(engine: Engine) {
    const ROWS: i64 = 10_000;
    let pair = Pair::new(engine, "sync").await;
    let db = pair.source.connection();
    for chunk in (1..=ROWS).collect::<Vec<_>>().chunks(500) {
        let models = chunk.iter().map(|&i| {
            let mut model = new_user(&format!("User{i}"));
            model.id = Set(sync_id(i));
            model
        });
        user::Entity::insert_many(models).exec(db).await.unwrap();
    }
    let mut worker = pair.worker().await;
    let updater = {
        let publisher = pair.publisher.clone();
        tokio::spawn(async move {
            for step in 0..200i64 {
                let id = sync_id((step * 7919) % ROWS + 1);
                let row = user::Entity::find_by_id(id)
                    .one(publisher.connection())
                    .await
                    .unwrap()
                    .unwrap();
                let mut edit = row.into_active_model();
                edit.name = Set(format!("updated {step}"));
                publisher.update(edit).await.unwrap();
            }
        })
    };
    let workers: Vec<_> = (0..2)
        .map(|index| {
            let sync = pair
                .publisher
                .sync::<user::Entity>()
                .batch_size(250)
                .partition(index, 2)
                .progress(false);
            tokio::spawn(sync.run())
        })
        .collect();
    let (mut scanned, mut published) = (0, 0);
    for task in workers {
        let report = task.await.unwrap().unwrap();
        assert!(
            report.published > ROWS as u64 / 4,
            "each worker does a share: {report:?}"
        );
        scanned += report.scanned;
        published += report.published;
    }
    assert_eq!(
        (scanned, published),
        (ROWS as u64, ROWS as u64),
        "the partitions cover every row once, and each worker reads only its own"
    );
    updater.await.unwrap();
    let expected = pair.source_users().await;
    assert_eq!(expected.len(), ROWS as usize);
    pair.assert_replica(&expected).await;
    assert_eq!(worker.stats().failed, 0, "{:?}", pair.reported.all());
    worker.shutdown().await;
}

/// A filtered sync publishes only the selected rows.
pub async fn filtered_sync(engine: Engine) {
    let pair = Pair::new(engine, "filtered").await;
    let db = pair.source.connection();
    let mut expected = Vec::new();
    for (i, active) in [(1, true), (2, false), (3, true)] {
        let mut model = new_user(&format!("F{i}"));
        model.id = Set(i);
        model.active = Set(active);
        let row = seed(db, model).await;
        if active {
            expected.push(copy_of(row));
        }
    }
    let mut worker = pair.worker().await;
    let report = pair
        .publisher
        .sync::<user::Entity>()
        .filter(user::Column::Active.eq(true))
        .progress(false)
        .run()
        .await
        .unwrap();
    assert_eq!((report.scanned, report.published), (2, 2));
    pair.assert_replica(&expected).await;
    worker.shutdown().await;
}

/// Entities that cannot be published are refused when the publisher is built.
pub async fn unregistered_entity_is_refused(engine: Engine) {
    let pair = Pair::new(engine, "unregistered").await;
    let only_users = SqlPublisher::builder(
        pair.publisher.promiscuous().clone(),
        pair.source.connection().clone(),
    )
    .entity::<user::Entity>()
    .build()
    .unwrap();
    let member = member::ActiveModel {
        id: Set(5),
        name: Set("M".into()),
        email: Set("m@x".into()),
        active: Set(true),
        profile: Set(None),
        level: Set(1),
    };
    let refused = only_users.insert(member).await.unwrap_err();
    assert!(
        refused.to_string().contains(".entity::<members::Entity>()"),
        "{refused}"
    );
    assert!(member::Entity::find()
        .all(pair.source.connection())
        .await
        .unwrap()
        .is_empty());
}

/// A write the database refuses fails with the model named, is reported,
/// and publishes nothing; the transaction rolls back cleanly.
pub async fn refused_write_is_reported(engine: Engine) {
    let pair = Pair::new(engine, "refused").await;
    let mut worker = pair.worker().await;
    let member = |name: &str| member::ActiveModel {
        id: Set(2_000_001),
        name: Set(name.into()),
        email: Set("x@example.com".into()),
        active: Set(true),
        profile: Set(None),
        level: Set(1),
    };
    let first = pair.publisher.insert(member("First")).await.unwrap();
    let mut tx = pair.publisher.begin().await.unwrap();
    let refused = tx.insert(member("Second")).await.unwrap_err();
    assert!(
        matches!(
            refused,
            SqlError::Database {
                operation: "insert",
                ..
            }
        ),
        "{refused}"
    );
    assert!(refused.to_string().contains("Member"), "{refused}");
    tx.rollback().await.unwrap();
    assert!(
        pair.reported
            .all()
            .iter()
            .any(|e| e.contains("Member") && e.contains("insert")),
        "the refused write is reported: {:?}",
        pair.reported.all()
    );
    pair.assert_replica(&[replica_user::Model {
        id: first.id,
        name: "First".into(),
        email: first.email,
        active: true,
        profile: None,
    }])
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        worker.stats().received,
        1,
        "only the first insert was published"
    );
    worker.shutdown().await;
}

/// A transaction open longer than the lock's time to live keeps its locks
/// (extended in the background), and releases them once published.
pub async fn long_transaction_keeps_its_locks(engine: Engine) {
    use promiscuous::core::dependency::lock_key;
    use promiscuous::Lock;

    let pair = Pair::new(engine, "longtx").await;
    let mut worker = pair.worker().await;
    let promiscuous = Promiscuous::configure()
        .app(PUBLISHER_APP)
        .broker(pair.broker.clone())
        .clock(pair.clock.clone())
        .lock(pair.lock.clone())
        .no_subscribers()
        .lock_ttl(Duration::from_millis(300))
        .error_notifier(pair.reported.notifier())
        .build()
        .await
        .unwrap();
    let publisher = SqlPublisher::builder(promiscuous, pair.source.connection().clone())
        .entity::<user::Entity>()
        .build()
        .unwrap();
    let mut tx = publisher.begin().await.unwrap();
    let ivy = tx.insert(new_user("Ivy")).await.unwrap();
    let key = lock_key("shop/user", &json!(ivy.id));
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let taken = pair
        .lock
        .try_acquire(&key, "another writer", Duration::from_secs(1), b"")
        .await
        .unwrap();
    assert!(
        taken.is_none(),
        "after three times its TTL the lock is still held"
    );
    tx.commit().await.unwrap();
    pair.assert_replica(&[copy_of(ivy)]).await;
    let taken = pair
        .lock
        .try_acquire(&key, "another writer", Duration::from_secs(1), b"")
        .await
        .unwrap();
    assert!(taken.is_some(), "the lock is released after the publish");
    assert!(
        pair.reported.all().is_empty(),
        "no lock expired: {:?}",
        pair.reported.all()
    );
    worker.shutdown().await;
}

/// The core `transaction()` API on a `SqlStorage` writes all or nothing.
pub async fn core_transaction_is_atomic_on_sql_storage(engine: Engine) {
    let pair = Pair::new(engine, "coretx").await;
    let storage = SqlStorage::new(pair.source.connection().clone()).entity::<user::Entity>("User");
    let promiscuous = Promiscuous::configure()
        .app(PUBLISHER_APP)
        .broker(Arc::new(NullBroker::new()))
        .clock(pair.clock.clone())
        .lock(pair.lock.clone())
        .storage(Arc::new(storage))
        .no_subscribers()
        .build()
        .await
        .unwrap();
    let user = |id: i64, name: &str| user::Model {
        id,
        name: name.into(),
        email: format!("{name}@example.com"),
        active: true,
        profile: None,
        password: "x".into(),
    };
    let mut tx = promiscuous.transaction();
    tx.create(&user(10, "Jo")).unwrap();
    tx.create(&user(11, "Kim")).unwrap();
    tx.commit().await.unwrap();
    let mut tx = promiscuous.transaction();
    tx.create(&user(12, "Lee")).unwrap();
    tx.create(&user(10, "Duplicate")).unwrap();
    let failed = tx.commit().await.unwrap_err();
    assert!(failed.to_string().contains("User"), "{failed}");
    let names: Vec<String> = pair
        .source_users()
        .await
        .into_iter()
        .map(|u| u.name)
        .collect();
    assert_eq!(names, ["Jo", "Kim"], "the failed transaction wrote nothing");
}

/// An initial sync waits for a writer holding a record's lock, and then
/// publishes what it committed, not the older state.
pub async fn sync_waits_for_a_locked_record(engine: Engine) {
    let pair = Pair::new(engine, "synclock").await;
    let db = pair.source.connection();
    let mut rows = Vec::new();
    for i in 1..=3 {
        let mut model = new_user(&format!("S{i}"));
        model.id = Set(i);
        rows.push(seed(db, model).await);
    }
    let mut worker = pair.worker().await;
    let mut tx = pair.publisher.begin().await.unwrap();
    let mut edit = rows[1].clone().into_active_model();
    edit.name = Set("edited while syncing".into());
    tx.update(edit).await.unwrap();
    let sync = tokio::spawn(pair.publisher.sync::<user::Entity>().progress(false).run());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!sync.is_finished(), "the sync waits for the record's lock");
    tx.commit().await.unwrap();
    let report = sync.await.unwrap().unwrap();
    assert_eq!(report.published, 3);
    let expected = pair.source_users().await;
    assert_eq!(expected[1].name, "edited while syncing");
    pair.assert_replica(&expected).await;
    worker.shutdown().await;
}

/// Errors that cannot succeed on retry go to the dead-letter queue at once,
/// with the model, the id, the attribute and the value in the reason: a
/// value of the wrong JSON type (every engine), a value too long for its
/// column (PostgreSQL and MariaDB; SQLite does not enforce lengths).
pub async fn permanent_errors_are_dead_lettered_at_once(engine: Engine) {
    use sea_orm::ConnectionTrait;
    let pair = Pair::new(engine, "permanent").await;
    let narrow = match engine {
        Engine::Postgres => Some("ALTER TABLE users ALTER COLUMN name TYPE varchar(10)"),
        Engine::MariaDb => Some("ALTER TABLE users MODIFY name varchar(10) NOT NULL"),
        Engine::Sqlite => None,
    };
    if let Some(statement) = narrow {
        pair.replica
            .connection()
            .execute_unprepared(statement)
            .await
            .unwrap();
    }
    let mut worker = pair.worker().await;
    let wrong_type = json!({
        "format": 1, "app": PUBLISHER_APP, "generation": 0, "timestamp": 0,
        "operations": [{
            "operation": "create", "endpoint": "shop/user", "types": ["User"], "id": 4242,
            "attributes": {"name": ["a", "b"], "email": "e@x", "active": true, "profile": null}
        }]
    });
    pair.broker
        .inject("warehouse", "shop/user", wrong_type.to_string().as_bytes());
    let mut expected = 1;
    if narrow.is_some() {
        pair.publisher
            .insert(user::ActiveModel {
                name: Set("y".repeat(200)),
                email: Set("long@example.com".into()),
                active: Set(true),
                profile: Set(None),
                password: Set("secret".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        expected += 1;
    }
    let parked = eventually(WAIT, || async {
        pair.broker.dead_letters("warehouse").len() == expected
    })
    .await;
    let letters = pair.broker.dead_letters("warehouse");
    assert!(parked, "{letters:?} {:?}", worker.stats());
    assert!(
        letters.iter().all(|l| l.attempts == 1),
        "dead-lettered on the first delivery, not retried: {:?}",
        letters.iter().map(|l| l.attempts).collect::<Vec<_>>()
    );
    let reasons: Vec<&str> = letters.iter().map(|l| l.reason.as_str()).collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("User 4242") && r.contains(r#"`name` is ["a","b"]"#)),
        "the reason names the record, the attribute and the value: {reasons:?}"
    );
    if narrow.is_some() {
        assert!(
            reasons.iter().any(|r| r.contains("User")
                && r.contains("name = \"yyyy")
                && r.contains("(202 characters)")),
            "the reason names the record and shows the value: {reasons:?}"
        );
    }
    assert_eq!(worker.stats().failed, expected as u64);
    worker.shutdown().await;
}

/// A published entity with `published_writes_only!` refuses writes made
/// without the publisher (on the connection, or inside the publisher's own
/// transaction), saying what to use; the publisher's writes go through.
pub async fn writes_bypassing_the_publisher_are_refused(engine: Engine) {
    let pair = Pair::new(engine, "bypass").await;
    let mut worker = pair.worker().await;
    let ada = || user::ActiveModel {
        name: Set("Ada".into()),
        email: Set("ada@example.com".into()),
        active: Set(true),
        profile: Set(None),
        password: Set("secret".into()),
        ..Default::default()
    };
    let refused = ada()
        .insert(pair.source.connection())
        .await
        .expect_err("an insert on the connection is refused");
    let shown = refused.to_string();
    assert!(
        shown.contains("User") && shown.contains("SqlPublisher::insert"),
        "{shown}"
    );
    let tx = pair.publisher.begin().await.unwrap();
    let refused = ada()
        .insert(tx.connection())
        .await
        .expect_err("an insert on the transaction's connection is refused");
    assert!(
        refused.to_string().contains("outside SqlPublisher"),
        "{refused}"
    );
    tx.rollback().await.unwrap();
    assert!(
        user::Entity::find()
            .all(pair.source.connection())
            .await
            .unwrap()
            .is_empty(),
        "nothing was written"
    );

    let stored = pair.publisher.insert(ada()).await.unwrap();
    let mut renamed = stored.clone().into_active_model();
    renamed.name = Set("Ada L.".into());
    let refused = renamed
        .clone()
        .update(pair.source.connection())
        .await
        .expect_err("an update on the connection is refused");
    assert!(refused.to_string().contains("update"), "{refused}");
    let refused = stored
        .clone()
        .into_active_model()
        .delete(pair.source.connection())
        .await
        .expect_err("a delete on the connection is refused");
    assert!(refused.to_string().contains("delete"), "{refused}");
    pair.publisher.update(renamed).await.unwrap();
    pair.assert_replica(&[replica_user::Model {
        id: stored.id,
        name: "Ada L.".into(),
        email: stored.email.clone(),
        active: true,
        profile: None,
    }])
    .await;
    let renamed = user::Entity::find_by_id(stored.id)
        .one(pair.source.connection())
        .await
        .unwrap()
        .unwrap();
    pair.publisher.delete(renamed).await.unwrap();
    pair.assert_replica(&[]).await;
    worker.shutdown().await;
}

/// Writes a user that existed before publishing started (a statement, which
/// runs no `ActiveModelBehavior` hook: the guard does not see it).
async fn seed(db: &sea_orm::DatabaseConnection, model: user::ActiveModel) -> user::Model {
    user::Entity::insert(model)
        .exec_with_returning(db)
        .await
        .unwrap()
}

/// A subscriber that joins after the publisher wrote for a while catches
/// up from the initial sync: its baseline starts the new subscriber's
/// counters where the publisher stood, so nothing waits for history it
/// never received.
pub async fn a_joining_subscriber_catches_up_from_a_sync(engine: Engine) {
    let pair = Pair::new(engine, "joining").await;
    // Written before the subscriber's queue exists: it never receives these.
    let mut stored = Vec::new();
    for i in 0..30 {
        stored.push(
            pair.publisher
                .insert(new_user(&format!("J{i}")))
                .await
                .unwrap(),
        );
    }
    for user in stored.iter().step_by(2) {
        let mut edit = user.clone().into_active_model();
        edit.name = Set(format!("{} edited", user.name));
        pair.publisher.update(edit).await.unwrap();
    }
    pair.publisher.delete(stored[1].clone()).await.unwrap();
    let mut worker = pair.worker().await;
    let report = pair
        .publisher
        .sync::<user::Entity>()
        .progress(false)
        .run()
        .await
        .unwrap();
    assert_eq!(report.published, 29);
    let expected = pair.source_users().await;
    pair.assert_replica(&expected).await;
    let stats = worker.stats();
    assert!(
        stats.seeded > 0,
        "the baseline seeded the counters: {stats:?}"
    );
    assert!(
        !pair
            .reported
            .all()
            .iter()
            .any(|e| e.contains("waiting for a missing operation")),
        "nothing waited for history: {:?}",
        pair.reported.all()
    );
    worker.shutdown().await;
}

/// A subscriber whose clock lost its state (its Redis restarted empty, here
/// a fresh clock) while its database kept the versions it applied goes on
/// from where the database stands: it neither waits for operations it
/// applied long ago nor takes a later baseline for a fresh start.
pub async fn a_subscriber_that_lost_its_clock_resumes_from_its_database(engine: Engine) {
    let pair = Pair::new(engine, "lostclock").await;
    let mut worker = pair.worker().await;
    let mut stored = Vec::new();
    for i in 0..10 {
        stored.push(
            pair.publisher
                .insert(new_user(&format!("L{i}")))
                .await
                .unwrap(),
        );
    }
    pair.assert_replica(&pair.source_users().await).await;
    worker.shutdown().await;
    // Written while the subscriber is down: they wait in its queue.
    for user in &stored {
        let mut edit = user.clone().into_active_model();
        edit.name = Set(format!("{} again", user.name));
        pair.publisher.update(edit).await.unwrap();
    }
    let storage =
        SqlStorage::new(pair.replica.connection().clone()).subscribed::<replica_user::Entity>();
    let restarted = Promiscuous::configure()
        .app("warehouse")
        .broker(pair.broker.clone())
        .clock(Arc::new(MemoryClock::new()))
        .lock(pair.lock.clone())
        .storage(Arc::new(storage))
        .subscriber::<replica_user::Model>()
        .error_notifier(pair.reported.notifier())
        .build()
        .await
        .unwrap();
    let mut worker = restarted.subscribe().await.unwrap();
    pair.publisher
        .sync::<user::Entity>()
        .progress(false)
        .run()
        .await
        .unwrap();
    pair.assert_replica(&pair.source_users().await).await;
    let stats = worker.stats();
    assert_eq!(
        stats.seeded, 0,
        "the database, not the baseline, says where it stands: {stats:?}"
    );
    assert!(
        !pair
            .reported
            .all()
            .iter()
            .any(|e| e.contains("waiting for a missing operation")),
        "nothing waited for what was applied before: {:?}",
        pair.reported.all()
    );
    worker.shutdown().await;
}
