//! Where models are read and written: the subscriber's database, or the
//! publisher's when it writes through promiscuous.

use std::cmp::Ordering;
use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Map, Value};

use super::outbox::Outbox;
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

    /// The value the filter requires of `field`, if it has a condition on it.
    pub fn value_of(&self, field: &str) -> Option<&Value> {
        self.conditions
            .iter()
            .find(|(name, _)| name == field)
            .map(|(_, value)| value)
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
        if self.conditions.is_empty() {
            return f.write_str("every record");
        }
        let parts: Vec<String> = self
            .conditions
            .iter()
            .map(|(k, v)| format!("{k} = {v}"))
            .collect();
        f.write_str(&parts.join(" and "))
    }
}

/// The order of keys in a [`scan`](Storage::scan): integers (by value), then
/// strings (by bytes), then anything else (by JSON text).
pub fn compare_keys(a: &Value, b: &Value) -> Ordering {
    fn rank(value: &Value) -> u8 {
        match value {
            Value::Number(_) => 0,
            Value::String(_) => 1,
            _ => 2,
        }
    }
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x.cmp(&y),
            _ => x
                .as_f64()
                .partial_cmp(&y.as_f64())
                .unwrap_or(Ordering::Equal),
        },
        (Value::String(x), Value::String(y)) => x.cmp(y),
        _ => rank(a)
            .cmp(&rank(b))
            .then_with(|| a.to_string().cmp(&b.to_string())),
    }
}

/// What a storage implementation can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StorageCapabilities {
    /// [`begin`](Storage::begin) gives transactions: several writes, the
    /// applied versions and an outbox message committed atomically.
    pub transactions: bool,
    /// [`write_versioned`](Storage::write_versioned) is supported: atomic
    /// single-record writes conditioned on a version kept with the record.
    pub versioned_writes: bool,
}

/// One single-record write of [`Storage::write_versioned`].
#[derive(Debug, Clone, PartialEq)]
pub enum VersionedWrite {
    /// Creates the record; refused when one with the key exists.
    Insert(Record),
    /// Creates the record, or sets these attributes on it (others are kept).
    Upsert(Record),
    /// Sets these attributes on the record (others are kept).
    Update(Record),
    /// Deletes the record.
    Delete,
    /// Only raises the record's version: fences out a write with a version
    /// at or below it that has not landed yet. On an absent record it leaves
    /// a tombstone at the version (and answers [`Versioned::Missing`]), so a
    /// create at or below it cannot land either.
    Stamp,
}

/// The outcome of [`Storage::write_versioned`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Versioned {
    /// The write was made and the record's version is now the one given.
    Written,
    /// Nothing changed: the record carries this version, at or above the
    /// one given (a newer write, or a fence, got there first).
    Stale {
        /// The version stored with the record.
        stored: u128,
    },
    /// An update or delete found no record (nothing changed), or a stamp
    /// found none (a tombstone now holds the version).
    Missing,
    /// Nothing changed: an insert found a record with an older version.
    Exists,
}

/// Reads and writes records of models by name.
///
/// A record's *key* is the attribute named by [`key_field`](Self::key_field)
/// (`id` by default; `_id` for a document store). Keys are JSON strings or
/// integers.
#[async_trait]
pub trait Storage: Send + Sync + Debug + 'static {
    /// Short name for logs and errors (`memory`, `sea-orm`, `mongodb`).
    fn name(&self) -> &'static str;

    /// What this storage can do.
    fn capabilities(&self) -> StorageCapabilities;

    /// The attribute holding the key of `model`'s records.
    ///
    /// Behaviour: stable for a model; `id` unless the store names it otherwise.
    fn key_field(&self, model: &str) -> String {
        let _ = model;
        "id".to_owned()
    }

    /// Up to `limit` records of `model` matching `filter`, in insertion order
    /// (a store over tables, which do not keep insertion order, returns them
    /// in primary-key order instead).
    async fn find(
        &self,
        model: &str,
        filter: &Filter,
        limit: usize,
    ) -> Result<Vec<Record>, BackendError>;

    /// Up to `limit` records of `model` matching `filter` whose key is after
    /// `after` (all when `None`), in key order (see [`compare_keys`]).
    ///
    /// Behaviour: paging with the key of the last record returned visits
    /// every record that exists throughout the scan exactly once; records
    /// written during the scan may or may not be visited.
    async fn scan(
        &self,
        model: &str,
        filter: &Filter,
        after: Option<&Value>,
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

    /// Sets the attributes of `record` on the record with its key, or inserts
    /// it when there is none; returns whether it inserted.
    ///
    /// Behaviour: `record` holds the key. The default updates, then inserts
    /// when nothing matched; stores that can do it in one step override it.
    async fn upsert(&self, model: &str, record: &Record) -> Result<bool, BackendError> {
        let key_field = self.key_field(model);
        let key = record.get(&key_field).cloned().ok_or_else(|| {
            BackendError::new(
                self.name(),
                "upsert",
                model,
                format!("the record has no key field `{key_field}`"),
            )
        })?;
        if self
            .update(model, &Filter::eq(key_field, key), record)
            .await?
            > 0
        {
            return Ok(false);
        }
        self.insert(model, record).await?;
        Ok(true)
    }

    /// Deletes every record matching `filter`; returns how many were deleted.
    async fn delete(&self, model: &str, filter: &Filter) -> Result<u64, BackendError>;

    /// Writes the record with key `key` only if the version kept with it is
    /// below `version`, and keeps `version` with it; in one atomic step.
    ///
    /// Behaviour (when [`capabilities`](Self::capabilities) says
    /// `versioned_writes`): a record never written this way has version 0;
    /// two writers racing on one record cannot both succeed with versions
    /// out of order; a deleted record keeps its version (a tombstone), so a
    /// stale write cannot bring it back, and a stamp of an absent record
    /// leaves one. The default refuses: the store has no versioned writes.
    async fn write_versioned(
        &self,
        model: &str,
        key: &Value,
        write: VersionedWrite,
        version: u128,
    ) -> Result<Versioned, BackendError> {
        let _ = (key, write, version);
        Err(BackendError::new(
            self.name(),
            "write_versioned",
            model,
            "this storage has no versioned writes",
        ))
    }

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

    /// The outbox kept in this store, when it has one (a store with
    /// transactions): where [`StorageTransaction::stage_message`] writes.
    fn outbox(&self) -> Option<Arc<dyn Outbox>> {
        None
    }
}

/// An open transaction of a [`Storage`]: a publisher writes records and its
/// message (the outbox) in it; a subscriber applies the operations of one
/// message in it, together with the versions it applied, so that a replay
/// after a crash is recognised from the database itself.
#[async_trait]
pub trait StorageTransaction: Send + Sync + Debug {
    /// The storage's operations, inside this transaction.
    fn storage(&self) -> &dyn Storage;

    /// The versions recorded for `keys` in this database, in order (0 for a
    /// key never recorded).
    ///
    /// Behaviour: two transactions that read the same keys and then record
    /// them cannot both commit: the second fails with a temporary error (a
    /// conflict) when it records or commits, and its retry reads what the
    /// first recorded.
    async fn applied_versions(&self, keys: &[String]) -> Result<Vec<u64>, BackendError>;

    /// Records that the counters `targets` reached their versions.
    ///
    /// Behaviour: a recorded version is never lowered; recording a smaller
    /// one leaves the larger in place.
    async fn record_applied(&self, targets: &[(String, u64)]) -> Result<(), BackendError>;

    /// Stores the message of publication `intent` of `app` in the outbox,
    /// claimed by its writer for `claim` (see [`Outbox`]).
    ///
    /// Behaviour: the entry is visible once the transaction commits, never
    /// before; an intent has at most one entry (a second one fails). The
    /// default refuses: the store keeps no outbox.
    async fn stage_message(
        &self,
        app: &str,
        intent: &str,
        payload: &[u8],
        claim: std::time::Duration,
    ) -> Result<(), BackendError> {
        let _ = (intent, payload, claim);
        Err(BackendError::new(
            self.storage().name(),
            "stage_message",
            app,
            "this storage keeps no outbox",
        ))
    }

    /// Makes every write of the transaction visible at once.
    async fn commit(self: Box<Self>) -> Result<(), BackendError>;
}
