//! The adapter conformance suite of `promiscuous-core` (the publish
//! protocol over a store: replication, publisher kills, replays, racing
//! subscribers, initial sync) on SQLite, PostgreSQL and MariaDB.

use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use promiscuous_core::testkit::adapter::{
    self, AdapterFixture, Backends, ITEM_COLUMNS, PUBLISHER_MODEL, SUBSCRIBER_MODEL,
};
use promiscuous_core::traits::Storage;
use promiscuous_memory::{InProcessBroker, MemoryClock, MemoryLock};
use promiscuous_sql::testkit::{suite_table, Engine, TestDatabase};
use promiscuous_sql::SqlStorage;
use sea_orm::ConnectionTrait;

/// Each store a database of its own, kept for the test's life.
struct SqlAdapter {
    engine: Engine,
    databases: Mutex<Vec<(Arc<dyn Storage>, TestDatabase)>>,
}

impl SqlAdapter {
    fn new(engine: Engine) -> Self {
        Self {
            engine,
            databases: Mutex::default(),
        }
    }

    /// The suite's two tables, registered on a storage over `db`.
    fn storage(db: sea_orm::DatabaseConnection) -> SqlStorage {
        SqlStorage::new(db)
            .table(PUBLISHER_MODEL, suite_table("suite_item", ITEM_COLUMNS))
            .table(SUBSCRIBER_MODEL, suite_table("suite_replica", ITEM_COLUMNS))
    }
}

#[async_trait]
impl AdapterFixture for SqlAdapter {
    async fn store(&self, label: &str) -> Arc<dyn Storage> {
        let db = TestDatabase::create(self.engine, label).await;
        promiscuous_sql::migrate(db.connection())
            .await
            .expect("the adapter's tables are created");
        for table in ["suite_item", "suite_replica"] {
            db.connection()
                .execute(&suite_table(table, ITEM_COLUMNS).create_table())
                .await
                .unwrap_or_else(|e| panic!("cannot create the table {table}: {e}"));
        }
        let store: Arc<dyn Storage> = Arc::new(Self::storage(db.connection().clone()));
        self.databases
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((store.clone(), db));
        store
    }

    async fn reopen(&self, store: &Arc<dyn Storage>) -> Arc<dyn Storage> {
        let url = self
            .databases
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find(|(s, _)| Arc::ptr_eq(s, store))
            .map(|(_, db)| db.url().to_owned())
            .expect("a store of this fixture");
        let connection = sea_orm::Database::connect(url.as_str())
            .await
            .unwrap_or_else(|e| panic!("cannot reconnect to {url}: {e}"));
        Arc::new(Self::storage(connection))
    }

    fn backends(&self) -> Backends {
        Backends {
            broker: Arc::new(InProcessBroker::new()),
            clock: Arc::new(MemoryClock::new()),
            lock: Arc::new(MemoryLock::new()),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_conforms_as_an_adapter() {
    adapter::run_all(&SqlAdapter::new(Engine::Sqlite)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_conforms_as_an_adapter() {
    adapter::run_all(&SqlAdapter::new(Engine::Postgres)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_conforms_as_an_adapter() {
    adapter::run_all(&SqlAdapter::new(Engine::MariaDb)).await;
}
