//! A publisher process killed with SIGKILL at random points while it writes
//! through `Promiscuous::create`/`update`/`destroy`, 50 times over a SQL
//! store (PostgreSQL through `SqlStorage`: the outbox) and 50 times over a
//! store without transactions kept in a file (`MemoryStorage::open`:
//! versioned writes). Locks and clock in Redis, messages through RabbitMQ.
//!
//! The test process plays the rest of the deployment: another process of
//! the publisher app, whose recovery worker finishes what each killed
//! publisher left half done, and the subscriber. In the end the subscriber
//! equals the publisher's store: nothing lost, nothing applied twice,
//! nothing skipped.
#![cfg(all(feature = "amqp", feature = "redis", feature = "sql"))]

#[path = "common/services.rs"]
mod services;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use promiscuous::core::testkit::{eventually, unique};
use promiscuous::memory::MemoryStorage;
use promiscuous::sql::testkit::{suite_table, Engine, TestDatabase};
use promiscuous::sql::SqlStorage;
use promiscuous::{BoxError, Callbacks, Context, Error, Filter, Promiscuous, Storage};
use sea_orm::ConnectionTrait;
use serde_json::{json, Value};

const ROLE: &str = "PROMISCUOUS_KILL_ROLE";
/// Kills per store.
const KILLS: usize = 50;
/// Records the publisher writes.
const RECORDS: i64 = 20;
/// The lock time-to-live of every process of the publisher app.
const LOCK_TTL: Duration = Duration::from_millis(800);

mod models {
    use super::*;
    use promiscuous::{Publish, Subscribe};
    use serde::{Deserialize, Serialize};

    /// Written over SQL.
    #[derive(Debug, Clone, Serialize, Deserialize, Publish)]
    pub struct KilledRow {
        pub id: i64,
        #[publish]
        pub name: String,
        #[publish]
        pub n: i64,
    }

    /// Written into a file.
    #[derive(Debug, Clone, Serialize, Deserialize, Publish)]
    pub struct KilledDoc {
        pub id: i64,
        #[publish]
        pub name: String,
        #[publish]
        pub n: i64,
    }

    #[derive(Debug, Clone, Serialize, Deserialize, Subscribe)]
    #[subscribe(from = "*/killed_row", as = "KilledRow", callbacks)]
    pub struct KilledRowCopy {
        pub id: i64,
        #[subscribe]
        pub name: String,
        #[subscribe]
        pub n: i64,
    }

    #[derive(Debug, Clone, Serialize, Deserialize, Subscribe)]
    #[subscribe(from = "*/killed_doc", as = "KilledDoc", callbacks)]
    pub struct KilledDocCopy {
        pub id: i64,
        #[subscribe]
        pub name: String,
        #[subscribe]
        pub n: i64,
    }

    #[promiscuous::async_trait]
    impl Callbacks for KilledRowCopy {
        async fn after_commit(&self, ctx: &Context) -> Result<(), BoxError> {
            committed(ctx, self.id, &self.name);
            Ok(())
        }
    }

    #[promiscuous::async_trait]
    impl Callbacks for KilledDocCopy {
        async fn after_commit(&self, ctx: &Context) -> Result<(), BoxError> {
            committed(ctx, self.id, &self.name);
            Ok(())
        }
    }
}

use models::{KilledDoc, KilledDocCopy, KilledRow, KilledRowCopy};

/// Every change a subscriber committed: (publisher app, id, endpoint
/// version, name after the change).
static COMMITTED: Mutex<Vec<(String, i64, u64, String)>> = Mutex::new(Vec::new());

fn committed(ctx: &Context, id: i64, name: &str) {
    let version = ctx.versions.endpoint.as_ref().map_or(0, |d| d.version);
    COMMITTED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push((ctx.app.clone(), id, version, name.to_owned()));
}

fn applied_twice(app: &str) -> Vec<(i64, u64)> {
    let committed = COMMITTED.lock().unwrap_or_else(PoisonError::into_inner);
    let mut seen = BTreeSet::new();
    committed
        .iter()
        .filter(|(a, ..)| a == app)
        .filter(|(_, id, version, _)| !seen.insert((*id, *version)))
        .map(|(_, id, version, _)| (*id, *version))
        .collect()
}

/// The states the subscriber saw of `app`'s records: (id, name).
fn seen_states(app: &str) -> BTreeSet<(i64, String)> {
    COMMITTED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .filter(|(a, ..)| a == app)
        .map(|(_, id, _, name)| (*id, name.clone()))
        .collect()
}

/// The store each process of the publisher app opens.
#[derive(Debug, Clone, Copy)]
enum Store {
    Sql,
    File,
}

impl Store {
    fn model(self) -> &'static str {
        match self {
            Store::Sql => "KilledRow",
            Store::File => "KilledDoc",
        }
    }

    /// Opens the store at `location` (a database URL, or a file path).
    async fn open(self, location: &str) -> Arc<dyn Storage> {
        match self {
            Store::Sql => {
                let db = sea_orm::Database::connect(location)
                    .await
                    .unwrap_or_else(|e| panic!("cannot connect to {location}: {e}"));
                Arc::new(SqlStorage::new(db).table(
                    self.model(),
                    suite_table(
                        "killed_rows",
                        promiscuous::core::testkit::adapter::ITEM_COLUMNS,
                    ),
                ))
            }
            Store::File => Arc::new(MemoryStorage::open(location).expect("the store file opens")),
        }
    }
}

/// A publisher process of `app`.
async fn publisher(app: &str, prefix: &str, storage: Arc<dyn Storage>) -> Promiscuous {
    Promiscuous::configure()
        .app(app)
        .broker_url(services::amqp_url())
        .redis_url(services::redis_url(prefix))
        .storage(storage)
        .no_subscribers()
        .lock_ttl(LOCK_TTL)
        .recovery_interval(Duration::from_millis(200))
        .build()
        .await
        .expect("the publisher connects to RabbitMQ and Redis")
}

/// The killed process: writes records for ever, reading each before
/// deciding what to do with it; appends each create or update that returned
/// to `journal` (`id name` lines).
async fn write_until_killed(store: Store, app: &str, prefix: &str, location: &str, journal: &str) {
    use std::io::Write as _;
    let storage = store.open(location).await;
    let p = publisher(app, prefix, storage).await;
    let mut journal = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(journal)
        .expect("the journal opens");
    let mut seed = u64::from(std::process::id()) | 1;
    for step in 0i64.. {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let id = (seed >> 33) as i64 % RECORDS + 1;
        let name = format!("{} step {step}", std::process::id());
        let outcome = match store {
            Store::Sql => {
                write(&p, id, step, |n| KilledRow {
                    id,
                    name: name.clone(),
                    n,
                })
                .await
            }
            Store::File => {
                write(&p, id, step, |n| KilledDoc {
                    id,
                    name: name.clone(),
                    n,
                })
                .await
            }
        };
        match outcome {
            Ok(true) => {
                // One write of the whole line: a kill never leaves half of it.
                let _ = journal.write_all(format!("{id} {name}\n").as_bytes());
            }
            Ok(false) => {}
            Err(e) => eprintln!(
                "write of {id} failed: {}",
                promiscuous::core::error::chain(&e)
            ),
        }
    }
}

/// Creates, updates or destroys record `id`; returns whether its new state
/// holds the name `make` gives.
async fn write<M>(
    p: &Promiscuous,
    id: i64,
    step: i64,
    make: impl Fn(i64) -> M,
) -> Result<bool, Error>
where
    M: promiscuous::Publish + serde::de::DeserializeOwned,
{
    match p.find::<M>(json!(id)).await? {
        None => p.create(&make(step)).await.map(|_| true),
        Some(_) if step % 5 == 0 => p.destroy(&make(0)).await.map(|_| false),
        Some(_) => p.update(&make(step)).await.map(|_| true),
    }
}

/// The records of `model` as `id → (name, n)`.
async fn records(storage: &dyn Storage, model: &str) -> BTreeMap<i64, (String, i64)> {
    storage
        .find(model, &Filter::default(), 10_000)
        .await
        .unwrap_or_else(|e| panic!("cannot read {model}: {e}"))
        .into_iter()
        .map(|r| {
            let id = r.get("id").and_then(Value::as_i64).unwrap_or_default();
            let name = r
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            (
                id,
                (name, r.get("n").and_then(Value::as_i64).unwrap_or_default()),
            )
        })
        .collect()
}

/// Kills `KILLS` publisher processes of one app, then checks that the
/// subscriber ends equal to the store.
async fn killed_publishers_lose_nothing(store: Store, test: &str) {
    let role = std::env::var(ROLE).ok();
    if role.as_deref() == Some("publisher") {
        let var = |name: &str| std::env::var(name).unwrap_or_default();
        write_until_killed(
            store,
            &var("KILL_APP"),
            &var("KILL_PREFIX"),
            &var("KILL_STORE"),
            &var("KILL_JOURNAL"),
        )
        .await;
        return;
    }
    let app = unique("killed");
    let prefix = unique("kill");
    let (location, _database) = match store {
        Store::Sql => {
            let db = TestDatabase::create(Engine::Postgres, "publisher_kill").await;
            promiscuous::sql::migrate(db.connection()).await.unwrap();
            db.connection()
                .execute(
                    &suite_table(
                        "killed_rows",
                        promiscuous::core::testkit::adapter::ITEM_COLUMNS,
                    )
                    .create_table(),
                )
                .await
                .unwrap();
            (db.url().to_owned(), Some(db))
        }
        Store::File => {
            let path = std::env::temp_dir().join(format!("{app}.json"));
            (path.display().to_string(), None)
        }
    };
    let journal = std::env::temp_dir().join(format!("{app}.journal"));
    let storage = store.open(&location).await;
    let replica = Arc::new(MemoryStorage::new());
    let subscriber = Promiscuous::configure()
        .app(unique("kill-sub"))
        .broker_url(services::amqp_url())
        .redis_url(services::redis_url(&prefix))
        .storage(replica.clone());
    // Only this store's model: the other test's publishers run at the same time.
    let subscriber = match store {
        Store::Sql => subscriber.subscriber::<KilledRowCopy>(),
        Store::File => subscriber.subscriber::<KilledDocCopy>(),
    };
    let subscriber = subscriber
        .no_recovery_worker()
        .retry_backoff(Duration::from_millis(20))
        .build()
        .await
        .expect("the subscriber connects to RabbitMQ and Redis: are they running?");
    let mut worker = subscriber.subscribe().await.unwrap();
    // Another process of the publisher app: its recovery worker finishes
    // what each killed publisher left.
    let recovered = Arc::new(AtomicUsize::new(0));
    let counted = recovered.clone();
    let survivor = Promiscuous::configure()
        .app(&app)
        .broker_url(services::amqp_url())
        .redis_url(services::redis_url(&prefix))
        .storage(storage.clone())
        .no_subscribers()
        .lock_ttl(LOCK_TTL)
        .recovery_interval(Duration::from_millis(200))
        .error_notifier(move |e: &Error| {
            if matches!(e, Error::PublicationRecovered { .. }) {
                counted.fetch_add(1, Ordering::SeqCst);
            }
        })
        .build()
        .await
        .unwrap();

    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for kill in 0..KILLS {
        let mut child = tokio::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", test, "--nocapture", "--test-threads=1"])
            .env(ROLE, "publisher")
            .env("KILL_APP", &app)
            .env("KILL_PREFIX", &prefix)
            .env("KILL_STORE", &location)
            .env("KILL_JOURNAL", &journal)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("the publisher process starts");
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
        let runs = Duration::from_millis(150 + (seed >> 33) % 350);
        tokio::time::sleep(runs).await;
        child.start_kill().expect("SIGKILL");
        let status = child.wait().await.expect("the killed process is reaped");
        assert!(
            !status.success(),
            "kill {kill}: the publisher was killed, not done"
        );
    }

    let equal = eventually(Duration::from_secs(120), || async {
        worker.stats().in_flight == 0
            && records(storage.as_ref(), store.model()).await
                == records(replica.as_ref(), &format!("{}Copy", store.model())).await
    })
    .await;
    let written = records(storage.as_ref(), store.model()).await;
    assert!(
        equal,
        "the subscriber did not end equal to the publisher's store\n  store:      {written:?}\n  subscriber: {:?}\n  worker: {:?}\n  stalls: {:?}",
        records(replica.as_ref(), &format!("{}Copy", store.model())).await,
        worker.stats(),
        worker.stalls(Duration::ZERO),
    );
    let twice = applied_twice(&app);
    assert!(twice.is_empty(), "changes applied twice: {twice:?}");
    // Every write a publisher saw succeed reached the subscriber, in its place.
    let seen = seen_states(&app);
    let journal_text = std::fs::read_to_string(&journal).unwrap_or_default();
    let confirmed: Vec<(i64, String)> = journal_text
        .lines()
        .filter_map(|line| {
            let (id, name) = line.split_once(' ')?;
            Some((id.parse().ok()?, name.to_owned()))
        })
        .collect();
    let lost: Vec<&(i64, String)> = confirmed.iter().filter(|w| !seen.contains(w)).collect();
    assert!(
        lost.is_empty(),
        "{} of {} confirmed writes never reached the subscriber: {lost:?}",
        lost.len(),
        confirmed.len()
    );
    let stats = worker.stats();
    assert_eq!(
        (stats.recovered, stats.dead_lettered),
        (0, 0),
        "nothing skipped: {stats:?}"
    );
    assert!(
        stats.applied > KILLS as u64,
        "the publishers wrote between kills: {stats:?}"
    );
    println!(
        "{store:?}: {KILLS} kills, {} confirmed writes all applied, {} operations applied, {} publications finished by the survivor's recovery",
        confirmed.len(),
        stats.applied,
        recovered.load(Ordering::SeqCst)
    );
    assert!(
        recovered.load(Ordering::SeqCst) > 0,
        "some kills landed in the middle of a publication"
    );
    worker.shutdown().await;
    let _ = survivor.shutdown().await;
    let _ = subscriber.shutdown().await;
    let _ = std::fs::remove_file(&journal);
    if let Store::File = store {
        let _ = std::fs::remove_file(&location);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishers_killed_over_sql_lose_nothing() {
    killed_publishers_lose_nothing(Store::Sql, "publishers_killed_over_sql_lose_nothing").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishers_killed_over_a_file_store_lose_nothing() {
    killed_publishers_lose_nothing(
        Store::File,
        "publishers_killed_over_a_file_store_lose_nothing",
    )
    .await;
}
