//! The storage operations on any sea-orm connection: a pool
//! ([`DatabaseConnection`](sea_orm::DatabaseConnection)) or a transaction
//! ([`DatabaseTransaction`]), with one implementation for both.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use promiscuous_core::traits::{Filter, Record, Storage, StorageCapabilities, StorageTransaction};
use promiscuous_core::BackendError;
use sea_orm::{ConnectionTrait, DatabaseTransaction, TransactionTrait};

use super::registry::Registry;
use super::statements::On;
use super::transaction::SqlTransaction;
use crate::convert::read_record;
use crate::entity::TableInfo;
use crate::error::SqlError;

/// Taken by each top-level transaction on SQLite, which has one writer at a
/// time: waiting here is first come, first served, where SQLite's own busy
/// handler lets a transaction starve until it fails with "database is locked".
pub(crate) type WriteGate = Arc<tokio::sync::Mutex<()>>;

/// A connection and the tables of the models.
#[derive(Debug)]
pub(crate) struct Session<C> {
    pub(crate) conn: C,
    pub(crate) tables: Arc<Registry>,
    /// Set on a SQLite pool; not on a transaction (nested ones take no turn).
    pub(crate) gate: Option<WriteGate>,
    /// The database's outbox.
    pub(crate) outbox: Option<Arc<dyn promiscuous_core::traits::Outbox>>,
}

impl<C: ConnectionTrait> Session<C> {
    fn table(&self, model: &str) -> Result<Arc<TableInfo>, SqlError> {
        self.tables.get(model)
    }

    async fn find(
        &self,
        model: &str,
        filter: &Filter,
        limit: usize,
    ) -> Result<Vec<Record>, SqlError> {
        self.select(model, filter, None, limit).await
    }

    async fn select(
        &self,
        model: &str,
        filter: &Filter,
        after: Option<&serde_json::Value>,
        limit: usize,
    ) -> Result<Vec<Record>, SqlError> {
        let table = self.table(model)?;
        let backend = self.conn.get_database_backend();
        let on = On {
            model,
            table: &table,
            backend,
        };
        let rows = self
            .conn
            .query_all(&on.select_after(filter, after, limit)?)
            .await
            .map_err(|e| SqlError::database("find", table.describe(model), e))?;
        rows.iter()
            .map(|row| read_record(model, &table, row, backend))
            .collect()
    }

    async fn insert(&self, model: &str, record: &Record) -> Result<(), SqlError> {
        let table = self.table(model)?;
        let on = On {
            model,
            table: &table,
            backend: self.conn.get_database_backend(),
        };
        self.conn
            .execute(&on.insert(record)?)
            .await
            .map_err(|e| SqlError::database("insert", table.describe(model), e))?;
        Ok(())
    }

    async fn update(&self, model: &str, filter: &Filter, record: &Record) -> Result<u64, SqlError> {
        let table = self.table(model)?;
        let on = On {
            model,
            table: &table,
            backend: self.conn.get_database_backend(),
        };
        let Some(update) = on.update(filter, record)? else {
            // Nothing to set: the answer is still how many rows match.
            return self.count(&on, filter).await;
        };
        // Rows matched, not changed, on MySQL too: sqlx connects with CLIENT_FOUND_ROWS.
        let result = self
            .conn
            .execute(&update)
            .await
            .map_err(|e| SqlError::database("update", table.describe(model), e))?;
        Ok(result.rows_affected())
    }

    async fn count(&self, on: &On<'_>, filter: &Filter) -> Result<u64, SqlError> {
        let failed = |e| SqlError::database("count", on.table.describe(on.model), e);
        let row = self
            .conn
            .query_one(&on.count(filter)?)
            .await
            .map_err(failed)?;
        let count: i64 = match row {
            Some(row) => row.try_get_by("matched").map_err(failed)?,
            None => 0,
        };
        Ok(u64::try_from(count).unwrap_or(0))
    }

    async fn delete(&self, model: &str, filter: &Filter) -> Result<u64, SqlError> {
        let table = self.table(model)?;
        let on = On {
            model,
            table: &table,
            backend: self.conn.get_database_backend(),
        };
        let result = self
            .conn
            .execute(&on.delete(filter)?)
            .await
            .map_err(|e| SqlError::database("delete", table.describe(model), e))?;
        Ok(result.rows_affected())
    }
}

#[async_trait]
impl<C> Storage for Session<C>
where
    C: ConnectionTrait
        + TransactionTrait<Transaction = DatabaseTransaction>
        + Send
        + Sync
        + Debug
        + 'static,
{
    fn name(&self) -> &'static str {
        "sea-orm"
    }

    fn capabilities(&self) -> StorageCapabilities {
        StorageCapabilities {
            transactions: true,
            versioned_writes: false,
        }
    }

    /// The primary-key column of the model's table (`id` when it has none
    /// or is not registered).
    fn key_field(&self, model: &str) -> String {
        self.table(model)
            .ok()
            .and_then(|table| table.primary_key().next().map(|c| c.name.clone()))
            .unwrap_or_else(|| "id".to_owned())
    }

    async fn scan(
        &self,
        model: &str,
        filter: &Filter,
        after: Option<&serde_json::Value>,
        limit: usize,
    ) -> Result<Vec<Record>, BackendError> {
        Ok(Session::select(self, model, filter, after, limit).await?)
    }

    fn outbox(&self) -> Option<Arc<dyn promiscuous_core::traits::Outbox>> {
        self.outbox.clone()
    }

    async fn find(
        &self,
        model: &str,
        filter: &Filter,
        limit: usize,
    ) -> Result<Vec<Record>, BackendError> {
        Ok(Session::find(self, model, filter, limit).await?)
    }

    async fn insert(&self, model: &str, record: &Record) -> Result<(), BackendError> {
        Ok(Session::insert(self, model, record).await?)
    }

    async fn update(
        &self,
        model: &str,
        filter: &Filter,
        record: &Record,
    ) -> Result<u64, BackendError> {
        Ok(Session::update(self, model, filter, record).await?)
    }

    async fn delete(&self, model: &str, filter: &Filter) -> Result<u64, BackendError> {
        Ok(Session::delete(self, model, filter).await?)
    }

    /// A transaction; inside a transaction, a nested one (a savepoint).
    async fn begin(&self) -> Result<Option<Box<dyn StorageTransaction>>, BackendError> {
        let turn = match &self.gate {
            Some(gate) => Some(Arc::clone(gate).lock_owned().await),
            None => None,
        };
        let options = crate::begin::writing(self.conn.get_database_backend());
        let tx = self
            .conn
            .begin_with_options(options)
            .await
            .map_err(|e| SqlError::database("begin", "transaction", e))?;
        Ok(Some(Box::new(SqlTransaction::new(
            tx,
            Arc::clone(&self.tables),
            turn,
            self.outbox.clone(),
        ))))
    }
}
