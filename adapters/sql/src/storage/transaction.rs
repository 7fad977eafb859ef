//! A subscriber's transaction: the data it writes and the versions it
//! applied, committed together.

use async_trait::async_trait;
use promiscuous_core::traits::{Storage, StorageTransaction};
use promiscuous_core::BackendError;
use sea_orm::DatabaseTransaction;
use std::sync::Arc;
use tokio::sync::OwnedMutexGuard;

use super::registry::Registry;
use super::session::Session;
use super::{applied, delegate_storage};
use crate::error::SqlError;

/// An open transaction of a [`SqlStorage`](super::SqlStorage); dropping it
/// without [`commit`](StorageTransaction::commit) rolls it back.
///
/// The applied versions live in `promiscuous_applied`: run
/// [`promiscuous_sql::migrate`](crate::migrate) once before subscribing.
#[derive(Debug)]
pub struct SqlTransaction {
    session: Session<DatabaseTransaction>,
    /// Applied versions read in this transaction (`None`: no row), which
    /// recording checks are unchanged.
    seen: std::sync::Mutex<std::collections::HashMap<String, Option<u64>>>,
    /// SQLite's single writer turn, released after the commit or rollback.
    _turn: Option<OwnedMutexGuard<()>>,
}

impl SqlTransaction {
    pub(crate) fn new(
        conn: DatabaseTransaction,
        tables: Arc<Registry>,
        turn: Option<OwnedMutexGuard<()>>,
        outbox: Option<Arc<dyn promiscuous_core::traits::Outbox>>,
    ) -> Self {
        SqlTransaction {
            session: Session {
                conn,
                tables,
                gate: None,
                outbox,
            },
            seen: std::sync::Mutex::default(),
            _turn: turn,
        }
    }

    /// The sea-orm transaction, to run statements of your own in it.
    pub fn connection(&self) -> &DatabaseTransaction {
        &self.session.conn
    }
}

delegate_storage!(SqlTransaction);

#[async_trait]
impl StorageTransaction for SqlTransaction {
    fn storage(&self) -> &dyn Storage {
        &self.session
    }

    async fn applied_versions(&self, keys: &[String]) -> Result<Vec<u64>, BackendError> {
        let (versions, seen) = applied::read(&self.session.conn, keys).await?;
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend(seen);
        Ok(versions)
    }

    async fn record_applied(&self, targets: &[(String, u64)]) -> Result<(), BackendError> {
        let seen = std::mem::take(
            &mut *self
                .seen
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        Ok(applied::record(&self.session.conn, targets, &seen).await?)
    }

    async fn stage_message(
        &self,
        app: &str,
        intent: &str,
        payload: &[u8],
        claim: std::time::Duration,
    ) -> Result<(), BackendError> {
        crate::outbox::insert(&self.session.conn, app, intent, payload, claim).await?;
        Ok(())
    }

    async fn commit(self: Box<Self>) -> Result<(), BackendError> {
        let SqlTransaction { session, _turn, .. } = *self;
        session
            .conn
            .commit()
            .await
            .map_err(|e| SqlError::database("commit", "transaction", e))?;
        Ok(())
    }
}
