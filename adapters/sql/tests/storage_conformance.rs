//! The storage conformance suite of `promiscuous-core` on SQLite,
//! PostgreSQL and MariaDB: each check gets a fresh table with the suite's
//! columns.

use async_trait::async_trait;
use promiscuous_core::testkit::storage::{self, Schema, StorageFixture, COLUMNS};
use promiscuous_core::testkit::unique;
use promiscuous_core::traits::Storage;
use promiscuous_sql::testkit::{Engine, TestDatabase};
use promiscuous_sql::SqlStorage;
use sea_orm::ConnectionTrait;

/// A database of its own, and a table per model the suite asks for.
struct SqlFixture {
    db: TestDatabase,
    storage: SqlStorage,
}

impl SqlFixture {
    async fn new(engine: Engine) -> Self {
        let db = TestDatabase::create(engine, "storage_conformance").await;
        promiscuous_sql::migrate(db.connection())
            .await
            .expect("the adapter's tables are created");
        let storage = SqlStorage::new(db.connection().clone());
        SqlFixture { db, storage }
    }
}

#[async_trait]
impl StorageFixture for SqlFixture {
    fn storage(&self) -> &dyn Storage {
        &self.storage
    }

    async fn model(&self, label: &str) -> String {
        let model = unique(label);
        let table_name = promiscuous_sql::testkit::identifier(&model);
        let table = promiscuous_sql::testkit::suite_table(&table_name, COLUMNS);
        self.db
            .connection()
            .execute(&table.create_table())
            .await
            .unwrap_or_else(|e| panic!("cannot create the table {table_name}: {e}"));
        self.storage.register(model.clone(), table);
        model
    }

    fn schema(&self) -> Schema {
        Schema::Fixed
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_storage_conforms() {
    storage::run_all(&SqlFixture::new(Engine::Sqlite).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_storage_conforms() {
    storage::run_all(&SqlFixture::new(Engine::Postgres).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_storage_conforms() {
    storage::run_all(&SqlFixture::new(Engine::MariaDb).await).await;
}
