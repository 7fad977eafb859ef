//! A subscriber process killed with SIGKILL at 20 random moments while it
//! applies a stream of updates into PostgreSQL (`SqlStorage`), restarted
//! each time; RabbitMQ and Redis are real. The publisher keeps writing in
//! the test process. In the end the database equals the publisher's store:
//! nothing lost, nothing applied twice, nothing applied out of order (a
//! trigger logs every committed state of a row into a history table, in
//! commit order).
#![cfg(all(feature = "amqp", feature = "redis", feature = "sql"))]

#[path = "common/services.rs"]
mod services;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use promiscuous::core::testkit::{eventually, unique};
use promiscuous::memory::MemoryStorage;
use promiscuous::sql::testkit::{Engine, TestDatabase};
use promiscuous::sql::SqlStorage;
use promiscuous::{Filter, OperationKind, PendingWrite, Promiscuous, Publish, Storage, Subscribe};
use sea_orm::{ConnectionTrait, Schema};
use serde::{Deserialize, Serialize};
use serde_json::json;

const ROLE: &str = "PROMISCUOUS_SUBSCRIBER_KILL_ROLE";
const TEST: &str = "a_subscriber_killed_20_times_loses_nothing_and_applies_nothing_twice";
/// Kills of the subscriber process.
const KILLS: usize = 20;
/// Records the publisher updates.
const RECORDS: i64 = 30;

/// The publisher's counter.
#[derive(Debug, Clone, Serialize, Deserialize, Publish)]
pub struct Tally {
    /// The id.
    pub id: i64,
    /// Grows by one at every update.
    #[publish]
    pub n: i64,
}

/// The subscriber's copy, in PostgreSQL.
#[derive(Debug, Clone, Serialize, Deserialize, Subscribe)]
#[subscribe(as = "Tally")]
pub struct TallyCopy {
    /// The publisher's id.
    pub id: i64,
    /// The replicated value.
    #[subscribe]
    pub n: i64,
}

/// Every committed state of a row, in commit order (rows of one id are
/// written under the row's lock, so their sequence numbers follow commits).
const HISTORY: &str = "
CREATE TABLE tally_history (seq BIGSERIAL PRIMARY KEY, id BIGINT NOT NULL, n BIGINT NOT NULL);
CREATE FUNCTION tally_log() RETURNS trigger AS $$
BEGIN
  INSERT INTO tally_history (id, n) VALUES (NEW.id, NEW.n);
  RETURN NEW;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER tally_log AFTER INSERT OR UPDATE ON tally_copy
  FOR EACH ROW EXECUTE FUNCTION tally_log();
";

/// The subscriber's table.
mod tally_copy {
    use sea_orm::entity::prelude::*;

    /// A replicated tally.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "tally_copy")]
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

async fn subscriber(app: &str, prefix: &str, database_url: &str) -> Promiscuous {
    let db = sea_orm::Database::connect(database_url)
        .await
        .expect("the replica database is reachable");
    let storage = SqlStorage::new(db).entity::<tally_copy::Entity>("TallyCopy");
    Promiscuous::configure()
        .app(app)
        .broker_url(services::amqp_url())
        .redis_url(services::redis_url(prefix))
        .storage(Arc::new(storage))
        .subscriber::<TallyCopy>()
        .prefetch(50)
        .retry_backoff(Duration::from_millis(20))
        .no_recovery_worker()
        .build()
        .await
        .expect("the subscriber connects to RabbitMQ and Redis")
}

/// The killed process: applies until killed.
async fn apply_until_killed() {
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let app = subscriber(&var("KILL_APP"), &var("KILL_PREFIX"), &var("KILL_DB")).await;
    let mut worker = app.subscribe().await.expect("the worker starts");
    let _ = worker.wait().await;
}

/// Adds one to tally `id` under its lock and publishes it.
async fn increment(
    app: &Promiscuous,
    store: &Arc<dyn Storage>,
    id: i64,
) -> promiscuous::Result<()> {
    let store = store.clone();
    app.publish_write(
        PendingWrite::of::<Tally>(OperationKind::Update, json!(id)),
        || async move {
            let filter = Filter::eq("id", json!(id));
            let n = store.find("Tally", &filter, 1).await?[0]["n"]
                .as_i64()
                .ok_or("no n")?
                + 1;
            store
                .update(
                    "Tally",
                    &filter,
                    &serde_json::Map::from_iter([("n".into(), json!(n))]),
                )
                .await?;
            Ok(Some(Tally { id, n }))
        },
    )
    .await
    .map(|_| ())
}

async fn tallies(storage: &dyn Storage, model: &str) -> BTreeMap<i64, i64> {
    storage
        .find(model, &Filter::default(), usize::MAX)
        .await
        .unwrap_or_else(|e| panic!("cannot read {model}: {e}"))
        .iter()
        .map(|r| (r["id"].as_i64().unwrap(), r["n"].as_i64().unwrap()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_killed_20_times_loses_nothing_and_applies_nothing_twice() {
    if std::env::var(ROLE).as_deref() == Ok("subscriber") {
        apply_until_killed().await;
        return;
    }
    let started = Instant::now();
    let (publisher_app, subscriber_app) = (unique("sk-pub"), unique("sk-sub"));
    let prefix = unique("subscriber-kill");
    let database = TestDatabase::create(Engine::Postgres, "subscriber_kill").await;
    let db = database.connection();
    db.execute(
        &Schema::new(db.get_database_backend()).create_table_from_entity(tally_copy::Entity),
    )
    .await
    .unwrap();
    db.execute_unprepared(HISTORY).await.unwrap();
    promiscuous::sql::migrate(db).await.unwrap();

    // The queue exists before the first write.
    subscriber(&subscriber_app, &prefix, database.url())
        .await
        .subscribe()
        .await
        .unwrap()
        .shutdown()
        .await;

    let source: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    let publisher = Promiscuous::configure()
        .app(&publisher_app)
        .broker_url(services::amqp_url())
        .redis_url(services::redis_url(&prefix))
        .storage(source.clone())
        .no_subscribers()
        .build()
        .await
        .unwrap();
    for id in 1..=RECORDS {
        publisher.create(&Tally { id, n: 0 }).await.unwrap();
    }
    let writing = Arc::new(AtomicBool::new(true));
    let written = Arc::new(AtomicU64::new(0));
    let writer = tokio::spawn({
        let (publisher, source, writing, written) = (
            publisher.clone(),
            source.clone(),
            writing.clone(),
            written.clone(),
        );
        async move {
            let mut i = 0i64;
            while writing.load(Ordering::SeqCst) {
                increment(&publisher, &source, i % RECORDS + 1)
                    .await
                    .unwrap();
                written.fetch_add(1, Ordering::SeqCst);
                i += 1;
            }
        }
    });

    let spawn = || {
        tokio::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", TEST, "--nocapture", "--test-threads=1"])
            .env(ROLE, "subscriber")
            .env("KILL_APP", &subscriber_app)
            .env("KILL_PREFIX", &prefix)
            .env("KILL_DB", database.url())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("the subscriber process starts")
    };
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for kill in 0..KILLS {
        let mut child = spawn();
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
        tokio::time::sleep(Duration::from_millis(400 + (seed >> 33) % 600)).await;
        child.start_kill().expect("SIGKILL");
        let status = child.wait().await.expect("the killed process is reaped");
        assert!(
            !status.success(),
            "kill {kill}: the subscriber was killed, not done"
        );
    }
    writing.store(false, Ordering::SeqCst);
    writer.await.unwrap();

    // A last subscriber process drains the queue.
    let mut last = spawn();
    let replica: Arc<dyn Storage> =
        Arc::new(SqlStorage::new(db.clone()).entity::<tally_copy::Entity>("TallyCopy"));
    let expected = tallies(source.as_ref(), "Tally").await;
    let caught_up = eventually(Duration::from_secs(180), || async {
        tallies(replica.as_ref(), "TallyCopy").await == expected
    })
    .await;
    let _ = last.start_kill();
    let _ = last.wait().await;
    let applied = tallies(replica.as_ref(), "TallyCopy").await;
    let lost: i64 = expected
        .iter()
        .map(|(id, n)| n - applied.get(id).copied().unwrap_or(0))
        .sum();

    // Every committed state, in commit order.
    let history = db
        .query_all_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT id, n FROM tally_history ORDER BY seq",
        ))
        .await
        .unwrap();
    let mut seen: HashMap<(i64, i64), u32> = HashMap::new();
    let mut last_of: HashMap<i64, i64> = HashMap::new();
    let mut out_of_order = 0;
    for row in history {
        let id: i64 = row.try_get("", "id").unwrap();
        let n: i64 = row.try_get("", "n").unwrap();
        *seen.entry((id, n)).or_default() += 1;
        let previous = last_of.insert(id, n).unwrap_or(-1);
        if n <= previous {
            out_of_order += 1;
        }
    }
    let duplicated = seen.values().filter(|&&count| count > 1).count();
    println!(
        "subscriber kill: {KILLS} kills, {} updates written, {} states committed, lost {lost}, duplicated {duplicated}, out of order {out_of_order}, {:.1} s",
        written.load(Ordering::SeqCst),
        seen.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(caught_up, "the database ends equal to the publisher: {lost} updates lost\n  publisher: {expected:?}\n  database:  {applied:?}");
    assert_eq!(duplicated, 0, "states committed twice");
    assert_eq!(out_of_order, 0, "states committed out of order");
    assert!(
        written.load(Ordering::SeqCst) > KILLS as u64,
        "the publisher wrote while the subscriber was being killed"
    );
    let _ = publisher.shutdown().await;
}
