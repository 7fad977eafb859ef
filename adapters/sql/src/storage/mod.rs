//! The subscriber side: [`SqlStorage`] stores the records of subscribed
//! models in the tables of sea-orm entities.

mod applied;
mod registry;
mod session;
pub(crate) mod statements;
mod transaction;

use std::sync::Arc;

use promiscuous_core::model::Subscribe;
use sea_orm::{DatabaseConnection, DbBackend, EntityTrait};

use crate::entity::TableInfo;
use registry::Registry;
use session::{Session, WriteGate};
pub use transaction::SqlTransaction;

/// Implements [`Storage`](promiscuous_core::traits::Storage) for a type whose
/// `session` field does the work.
macro_rules! delegate_storage {
    ($type:ty) => {
        #[async_trait::async_trait]
        impl promiscuous_core::traits::Storage for $type {
            fn name(&self) -> &'static str {
                self.session.name()
            }

            fn capabilities(&self) -> promiscuous_core::traits::StorageCapabilities {
                self.session.capabilities()
            }

            fn key_field(&self, model: &str) -> String {
                self.session.key_field(model)
            }

            async fn scan(
                &self,
                model: &str,
                filter: &promiscuous_core::traits::Filter,
                after: Option<&serde_json::Value>,
                limit: usize,
            ) -> Result<Vec<promiscuous_core::traits::Record>, promiscuous_core::BackendError> {
                self.session.scan(model, filter, after, limit).await
            }

            fn outbox(&self) -> Option<std::sync::Arc<dyn promiscuous_core::traits::Outbox>> {
                self.session.outbox()
            }

            async fn find(
                &self,
                model: &str,
                filter: &promiscuous_core::traits::Filter,
                limit: usize,
            ) -> Result<Vec<promiscuous_core::traits::Record>, promiscuous_core::BackendError> {
                self.session.find(model, filter, limit).await
            }

            async fn insert(
                &self,
                model: &str,
                record: &promiscuous_core::traits::Record,
            ) -> Result<(), promiscuous_core::BackendError> {
                self.session.insert(model, record).await
            }

            async fn update(
                &self,
                model: &str,
                filter: &promiscuous_core::traits::Filter,
                record: &promiscuous_core::traits::Record,
            ) -> Result<u64, promiscuous_core::BackendError> {
                self.session.update(model, filter, record).await
            }

            async fn delete(
                &self,
                model: &str,
                filter: &promiscuous_core::traits::Filter,
            ) -> Result<u64, promiscuous_core::BackendError> {
                self.session.delete(model, filter).await
            }

            async fn begin(
                &self,
            ) -> Result<
                Option<Box<dyn promiscuous_core::traits::StorageTransaction>>,
                promiscuous_core::BackendError,
            > {
                self.session.begin().await
            }
        }
    };
}
use delegate_storage;

/// Stores subscribed models in SQL tables through sea-orm, on SQLite,
/// PostgreSQL and MySQL/MariaDB.
///
/// Each model is registered with its table ([`entity`](Self::entity),
/// [`subscribed`](Self::subscribed), [`table`](Self::table)); JSON attributes
/// are converted to and from each column's SQL type, and a record naming an
/// unknown column is refused. `find` returns rows in primary-key order.
/// Transactions hold the data and the applied versions of each message:
/// run [`promiscuous_sql::migrate`](crate::migrate) once before subscribing.
///
/// On SQLite, which has one writer at a time, the transactions of a storage
/// (and its clones) take turns in the order they began: do not begin a second
/// one while holding one in the same task.
///
/// Clones are cheap and share the connection pool and the registrations.
#[derive(Debug, Clone)]
pub struct SqlStorage {
    session: Arc<Session<DatabaseConnection>>,
}

impl SqlStorage {
    /// A storage on `db` with no model registered yet.
    pub fn new(db: DatabaseConnection) -> Self {
        let gate = (db.get_database_backend() == DbBackend::Sqlite).then(WriteGate::default);
        SqlStorage {
            session: Arc::new(Session {
                outbox: Some(Arc::new(crate::outbox::SqlOutbox::new(db.clone()))),
                conn: db,
                tables: Arc::new(Registry::default()),
                gate,
            }),
        }
    }

    /// Stores `model` in the table of entity `E`.
    pub fn entity<E: EntityTrait>(self, model: impl Into<String>) -> Self {
        self.table(model, TableInfo::of::<E>())
    }

    /// Stores the model that `E::Model` subscribes (named by its
    /// `#[derive(Subscribe)]`) in the table of `E`.
    pub fn subscribed<E>(self) -> Self
    where
        E: EntityTrait,
        E::Model: Subscribe,
    {
        let model = <E::Model as Subscribe>::definition().model;
        self.entity::<E>(model)
    }

    /// Stores `model` in the table described by hand.
    pub fn table(self, model: impl Into<String>, table: TableInfo) -> Self {
        self.register(model, table);
        self
    }

    /// Stores `model` in `table`, for this storage and every clone of it
    /// (for tables created after start-up).
    pub fn register(&self, model: impl Into<String>, table: TableInfo) {
        self.session.tables.register(model.into(), table);
    }

    /// The connection pool.
    pub fn connection(&self) -> &DatabaseConnection {
        &self.session.conn
    }
}

delegate_storage!(SqlStorage);
