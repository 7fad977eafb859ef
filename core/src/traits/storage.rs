//! Where models are read and written: the subscriber's database, or the
//! publisher's when it writes through promiscuous.

use std::fmt::Debug;

use async_trait::async_trait;
use serde_json::{Map, Value};

use crate::error::BackendError;

/// A record: attribute name to JSON value.
pub type Record = Map<String, Value>;

/// Records whose attributes equal all the given values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    conditions: Vec<(String, Value)>,
}

impl Filter {
    /// A filter on one attribute.
    pub fn eq(field: impl Into<String>, value: Value) -> Self {
        Self::default().and(field, value)
    }

    /// Adds a condition.
    pub fn and(mut self, field: impl Into<String>, value: Value) -> Self {
        self.conditions.push((field.into(), value));
        self
    }

    /// The conditions, in order.
    pub fn conditions(&self) -> &[(String, Value)] {
        &self.conditions
    }

    /// Whether a record satisfies every condition.
    pub fn matches(&self, record: &Record) -> bool {
        self.conditions
            .iter()
            .all(|(field, value)| record.get(field) == Some(value))
    }
}

impl std::fmt::Display for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .conditions
            .iter()
            .map(|(k, v)| format!("{k} = {v}"))
            .collect();
        f.write_str(&parts.join(" and "))
    }
}

/// What a storage implementation can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StorageCapabilities {
    /// Several writes can be committed atomically.
    pub transactions: bool,
}

/// Reads and writes records of models by name.
#[async_trait]
pub trait Storage: Send + Sync + Debug + 'static {
    /// Short name for logs and errors (`memory`, `sea-orm`, `mongodb`).
    fn name(&self) -> &'static str;

    /// What this storage can do.
    fn capabilities(&self) -> StorageCapabilities;

    /// Up to `limit` records of `model` matching `filter`, in insertion order
    /// (a store over tables, which do not keep insertion order, returns them
    /// in primary-key order instead).
    async fn find(
        &self,
        model: &str,
        filter: &Filter,
        limit: usize,
    ) -> Result<Vec<Record>, BackendError>;

    /// Inserts a record.
    ///
    /// Behaviour: once this returns, `find` with a filter the record satisfies
    /// returns it. Uniqueness of keys is the caller's business.
    async fn insert(&self, model: &str, record: &Record) -> Result<(), BackendError>;

    /// Sets the attributes of `record` on every record matching `filter`;
    /// attributes not in `record` are kept. Returns how many records matched.
    async fn update(
        &self,
        model: &str,
        filter: &Filter,
        record: &Record,
    ) -> Result<u64, BackendError>;

    /// Deletes every record matching `filter`; returns how many were deleted.
    async fn delete(&self, model: &str, filter: &Filter) -> Result<u64, BackendError>;

    /// Starts a transaction, when [`capabilities`](Self::capabilities) says
    /// the storage has them.
    ///
    /// Behaviour: `None` when the storage has no transactions (the default).
    /// Otherwise the writes made through [`StorageTransaction::storage`] are
    /// seen by nobody else until [`commit`](StorageTransaction::commit), and
    /// are discarded when the transaction is dropped without committing.
    async fn begin(&self) -> Result<Option<Box<dyn StorageTransaction>>, BackendError> {
        Ok(None)
    }
}

/// An open transaction of a [`Storage`]: the subscriber applies the
/// operations of one message in it, together with the versions it applied,
/// so that a replay after a crash is recognised from the database itself.
#[async_trait]
pub trait StorageTransaction: Send + Sync + Debug {
    /// The storage's operations, inside this transaction.
    fn storage(&self) -> &dyn Storage;

    /// The versions recorded for `keys` in this database, in order (0 for a
    /// key never recorded).
    async fn applied_versions(&self, keys: &[String]) -> Result<Vec<u64>, BackendError>;

    /// Records that the counters `targets` reached their versions.
    ///
    /// Behaviour: a recorded version is never lowered; recording a smaller
    /// one leaves the larger in place.
    async fn record_applied(&self, targets: &[(String, u64)]) -> Result<(), BackendError>;

    /// Makes every write of the transaction visible at once.
    async fn commit(self: Box<Self>) -> Result<(), BackendError>;
}
