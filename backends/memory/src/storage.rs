//! Records in memory, optionally kept in a file.

use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use promiscuous_core::dependency::id_json;
use promiscuous_core::traits::{
    compare_keys, Filter, Record, Storage, StorageCapabilities, Versioned, VersionedWrite,
};
use promiscuous_core::BackendError;
use serde::{Deserialize, Serialize};
use serde_json::Value;

const NAME: &str = "memory";

/// Records of each model in insertion order, in a map behind a mutex, or in
/// a file shared by the processes that open it.
///
/// Queries scan the model's records with [`Filter::matches`], except a
/// filter on the key field, which is looked up. A model nothing was written
/// to has no records. Versioned writes are supported (the version of each
/// record is kept beside it, not in it); transactions are not. Meant for
/// tests and examples.
///
/// [`open`](Self::open) keeps the records in a file instead: every call
/// reads and writes it under an exclusive file lock, so several processes
/// can share it, and what a killed process wrote is there for the next one.
/// Each call costs a read and, for writes, a rewrite of the whole file: keep
/// it to tests of a few thousand records.
#[derive(Debug, Default)]
pub struct MemoryStorage {
    tables: Mutex<Tables>,
    key_fields: HashMap<String, String>,
    file: Option<PathBuf>,
}

/// Every model's table.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Tables {
    models: HashMap<String, Table>,
}

/// One model's records, in insertion order, with an index on the key.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Table {
    next: u64,
    rows: BTreeMap<u64, Record>,
    /// Versions of versioned writes, by the key's JSON text.
    versions: HashMap<String, u128>,
    /// Row numbers by the key's JSON text (rebuilt on load).
    #[serde(skip)]
    index: HashMap<String, Vec<u64>>,
}

impl Table {
    fn reindex(&mut self, key_field: &str) {
        self.index.clear();
        let entries: Vec<(String, u64)> = self
            .rows
            .iter()
            .filter_map(|(&row, record)| record.get(key_field).map(|k| (id_json(k), row)))
            .collect();
        for (key, row) in entries {
            self.index.entry(key).or_default().push(row);
        }
    }

    fn push(&mut self, key_field: &str, record: Record) {
        let row = self.next;
        self.next += 1;
        if let Some(key) = record.get(key_field) {
            self.index.entry(id_json(key)).or_default().push(row);
        }
        self.rows.insert(row, record);
    }

    /// The rows matching `filter`, in insertion order.
    fn matching(&self, key_field: &str, filter: &Filter) -> Vec<u64> {
        match filter.value_of(key_field) {
            Some(key) => self
                .index
                .get(&id_json(key))
                .into_iter()
                .flatten()
                .copied()
                .filter(|row| self.rows.get(row).is_some_and(|r| filter.matches(r)))
                .collect(),
            None => self
                .rows
                .iter()
                .filter(|(_, record)| filter.matches(record))
                .map(|(&row, _)| row)
                .collect(),
        }
    }

    fn remove(&mut self, key_field: &str, row: u64) {
        if let Some(record) = self.rows.remove(&row) {
            if let Some(key) = record.get(key_field) {
                let text = id_json(key);
                if let Some(rows) = self.index.get_mut(&text) {
                    rows.retain(|r| *r != row);
                    if rows.is_empty() {
                        // Its version stays: a stale write cannot bring it back.
                        self.index.remove(&text);
                    }
                }
            }
        }
    }

    fn set(&mut self, key_field: &str, row: u64, changes: &Record) {
        let Some(stored) = self.rows.get_mut(&row) else {
            return;
        };
        // Updates usually carry the key unchanged: the index moves only when
        // the key does (rebuilding it on every write made each one O(rows)).
        let before = changes
            .contains_key(key_field)
            .then(|| stored.get(key_field).map(id_json))
            .flatten();
        for (field, value) in changes {
            stored.insert(field.clone(), value.clone());
        }
        let Some(after) = changes.get(key_field).map(id_json) else {
            return;
        };
        if before.as_deref() == Some(after.as_str()) {
            return;
        }
        if let Some(before) = before {
            if let Some(rows) = self.index.get_mut(&before) {
                rows.retain(|r| *r != row);
                if rows.is_empty() {
                    self.index.remove(&before);
                }
            }
        }
        // Keep each key's rows in insertion order, as a rebuild would.
        let rows = self.index.entry(after).or_default();
        let at = rows.partition_point(|r| *r < row);
        rows.insert(at, row);
    }
}

impl MemoryStorage {
    /// An empty storage.
    pub fn new() -> Self {
        Self::default()
    }

    /// A storage kept in the file at `path` (created when missing), shared
    /// with every process that opens it.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, BackendError> {
        let storage = Self {
            file: Some(path.as_ref().to_owned()),
            ..Self::default()
        };
        storage.with_tables("open", |_| Ok(((), false)))?;
        Ok(storage)
    }

    /// Names `field` the key of `model`'s records (`id` by default), e.g.
    /// `_id` for records shaped like documents.
    pub fn with_key_field(mut self, model: impl Into<String>, field: impl Into<String>) -> Self {
        self.key_fields.insert(model.into(), field.into());
        self
    }

    fn lock(&self) -> MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn key_of(&self, model: &str) -> &str {
        self.key_fields.get(model).map_or("id", String::as_str)
    }

    /// Runs `work` on the tables (read from the file first, when there is
    /// one, and written back when `work` says it changed them).
    fn with_tables<T>(
        &self,
        operation: &'static str,
        work: impl FnOnce(&mut Tables) -> Result<(T, bool), BackendError>,
    ) -> Result<T, BackendError> {
        let mut tables = self.lock();
        let Some(path) = &self.file else {
            return work(&mut tables).map(|(value, _)| value);
        };
        let failed = |e: std::io::Error| {
            BackendError::new(NAME, operation, path.display().to_string(), e.to_string())
                .temporary()
        };
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path.with_extension("lock"))
            .map_err(failed)?;
        lock.lock().map_err(failed)?;
        *tables = match std::fs::read(path) {
            Ok(bytes) if !bytes.is_empty() => serde_json::from_slice(&bytes).map_err(|e| {
                BackendError::new(
                    NAME,
                    operation,
                    path.display().to_string(),
                    format!("the file is not a storage this crate wrote: {e}"),
                )
            })?,
            Ok(_) => Tables::default(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Tables::default(),
            Err(e) => return Err(failed(e)),
        };
        for (model, table) in &mut tables.models {
            table.reindex(self.key_of(model));
        }
        let (value, changed) = work(&mut tables)?;
        if changed {
            let bytes = serde_json::to_vec(&*tables).map_err(|e| {
                BackendError::new(NAME, operation, path.display().to_string(), e.to_string())
            })?;
            let temporary = path.with_extension("tmp");
            let mut file = std::fs::File::create(&temporary).map_err(failed)?;
            file.write_all(&bytes).map_err(failed)?;
            std::fs::rename(&temporary, path).map_err(failed)?;
        }
        // The file lock is released when `lock` is dropped.
        Ok(value)
    }

    /// Every record of `model`, in insertion order.
    pub fn records(&self, model: &str) -> Vec<Record> {
        self.with_tables("records", |tables| {
            Ok((
                tables
                    .models
                    .get(model)
                    .map(|t| t.rows.values().cloned().collect())
                    .unwrap_or_default(),
                false,
            ))
        })
        .unwrap_or_default()
    }

    /// The version kept with the record of `model` whose key is `key` (0
    /// when it was never written with a version).
    pub fn version(&self, model: &str, key: &Value) -> u128 {
        self.with_tables("version", |tables| {
            Ok((
                tables
                    .models
                    .get(model)
                    .and_then(|t| t.versions.get(&id_json(key)).copied())
                    .unwrap_or(0),
                false,
            ))
        })
        .unwrap_or(0)
    }

    /// The names of the models written to, sorted.
    pub fn model_names(&self) -> Vec<String> {
        self.with_tables("model_names", |tables| {
            let mut names: Vec<String> = tables.models.keys().cloned().collect();
            names.sort();
            Ok((names, false))
        })
        .unwrap_or_default()
    }

    /// Removes every record of every model.
    pub fn clear(&self) {
        let _ = self.with_tables("clear", |tables| {
            tables.models.clear();
            Ok(((), true))
        });
    }
}

#[async_trait]
impl Storage for MemoryStorage {
    fn name(&self) -> &'static str {
        NAME
    }

    fn capabilities(&self) -> StorageCapabilities {
        StorageCapabilities {
            transactions: false,
            versioned_writes: true,
        }
    }

    fn key_field(&self, model: &str) -> String {
        self.key_of(model).to_owned()
    }

    async fn find(
        &self,
        model: &str,
        filter: &Filter,
        limit: usize,
    ) -> Result<Vec<Record>, BackendError> {
        let key_field = self.key_of(model);
        self.with_tables("find", |tables| {
            let found = tables.models.get(model).map(|table| {
                table
                    .matching(key_field, filter)
                    .into_iter()
                    .take(limit)
                    .filter_map(|row| table.rows.get(&row).cloned())
                    .collect()
            });
            Ok((found.unwrap_or_default(), false))
        })
    }

    async fn scan(
        &self,
        model: &str,
        filter: &Filter,
        after: Option<&Value>,
        limit: usize,
    ) -> Result<Vec<Record>, BackendError> {
        let key_field = self.key_of(model);
        self.with_tables("scan", |tables| {
            let Some(table) = tables.models.get(model) else {
                return Ok((Vec::new(), false));
            };
            let mut found: Vec<&Record> = table
                .rows
                .values()
                .filter(|record| filter.matches(record))
                .filter(|record| match (after, record.get(key_field)) {
                    (None, _) => true,
                    (Some(after), Some(key)) => compare_keys(key, after).is_gt(),
                    (Some(_), None) => false,
                })
                .collect();
            found.sort_by(|a, b| {
                let none = Value::Null;
                compare_keys(
                    a.get(key_field).unwrap_or(&none),
                    b.get(key_field).unwrap_or(&none),
                )
            });
            Ok((found.into_iter().take(limit).cloned().collect(), false))
        })
    }

    async fn insert(&self, model: &str, record: &Record) -> Result<(), BackendError> {
        let key_field = self.key_of(model);
        self.with_tables("insert", |tables| {
            tables
                .models
                .entry(model.to_owned())
                .or_default()
                .push(key_field, record.clone());
            Ok(((), true))
        })
    }

    async fn update(
        &self,
        model: &str,
        filter: &Filter,
        record: &Record,
    ) -> Result<u64, BackendError> {
        let key_field = self.key_of(model);
        self.with_tables("update", |tables| {
            let Some(table) = tables.models.get_mut(model) else {
                return Ok((0, false));
            };
            let rows = table.matching(key_field, filter);
            for &row in &rows {
                table.set(key_field, row, record);
            }
            Ok((rows.len() as u64, !rows.is_empty()))
        })
    }

    async fn upsert(&self, model: &str, record: &Record) -> Result<bool, BackendError> {
        let key_field = self.key_of(model);
        let key = record.get(key_field).cloned().ok_or_else(|| {
            BackendError::new(
                NAME,
                "upsert",
                model,
                format!("the record has no key field `{key_field}`"),
            )
        })?;
        self.with_tables("upsert", |tables| {
            let table = tables.models.entry(model.to_owned()).or_default();
            let rows = table.matching(key_field, &Filter::eq(key_field, key));
            if rows.is_empty() {
                table.push(key_field, record.clone());
                return Ok((true, true));
            }
            for row in rows {
                table.set(key_field, row, record);
            }
            Ok((false, true))
        })
    }

    async fn delete(&self, model: &str, filter: &Filter) -> Result<u64, BackendError> {
        let key_field = self.key_of(model);
        self.with_tables("delete", |tables| {
            let Some(table) = tables.models.get_mut(model) else {
                return Ok((0, false));
            };
            let rows = table.matching(key_field, filter);
            for &row in &rows {
                table.remove(key_field, row);
            }
            Ok((rows.len() as u64, !rows.is_empty()))
        })
    }

    async fn write_versioned(
        &self,
        model: &str,
        key: &Value,
        write: VersionedWrite,
        version: u128,
    ) -> Result<Versioned, BackendError> {
        let key_field = self.key_of(model);
        self.with_tables("write_versioned", |tables| {
            let table = tables.models.entry(model.to_owned()).or_default();
            let text = id_json(key);
            let rows = table.matching(key_field, &Filter::eq(key_field, key.clone()));
            let stored = table.versions.get(&text).copied().unwrap_or(0);
            if stored >= version {
                return Ok((Versioned::Stale { stored }, false));
            }
            let outcome = match (write, rows.is_empty()) {
                (VersionedWrite::Insert(_), false) => return Ok((Versioned::Exists, false)),
                (VersionedWrite::Update(_) | VersionedWrite::Delete, true) => {
                    return Ok((Versioned::Missing, false))
                }
                (VersionedWrite::Stamp, true) => {
                    // A tombstone: a create at or below the version cannot land.
                    table.versions.insert(text, version);
                    return Ok((Versioned::Missing, true));
                }
                (VersionedWrite::Insert(mut record) | VersionedWrite::Upsert(mut record), true) => {
                    record.insert(key_field.to_owned(), key.clone());
                    table.push(key_field, record);
                    Versioned::Written
                }
                (VersionedWrite::Upsert(record) | VersionedWrite::Update(record), false) => {
                    for row in rows {
                        table.set(key_field, row, &record);
                    }
                    Versioned::Written
                }
                (VersionedWrite::Delete, false) => {
                    for row in rows {
                        table.remove(key_field, row);
                    }
                    Versioned::Written
                }
                (VersionedWrite::Stamp, false) => Versioned::Written,
            };
            table.versions.insert(text, version);
            Ok((outcome, true))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(value: Value) -> Record {
        value.as_object().cloned().unwrap()
    }

    #[tokio::test]
    async fn inspection_lists_records_and_models() {
        let storage = MemoryStorage::new();
        let record = record(json!({"id": 1}));
        storage.insert("user", &record).await.unwrap();
        assert_eq!(storage.records("user"), vec![record]);
        assert!(storage.records("post").is_empty());
        assert_eq!(storage.model_names(), vec!["user".to_owned()]);
        storage.clear();
        assert!(storage.model_names().is_empty());
    }

    #[tokio::test]
    async fn a_file_is_shared_and_outlives_its_storage() {
        let path = std::env::temp_dir().join(format!("memory-storage-{}.json", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let first = MemoryStorage::open(&path).unwrap();
        let second = MemoryStorage::open(&path).unwrap();
        first
            .insert("user", &record(json!({"id": 1, "name": "Ada"})))
            .await
            .unwrap();
        first
            .write_versioned("user", &json!(1), VersionedWrite::Stamp, 7)
            .await
            .unwrap();
        assert_eq!(
            second.records("user"),
            vec![record(json!({"id": 1, "name": "Ada"}))]
        );
        assert_eq!(second.version("user", &json!(1)), 7);
        drop(first);
        drop(second);
        let reopened = MemoryStorage::open(&path).unwrap();
        assert_eq!(
            reopened
                .find("user", &Filter::eq("id", json!(1)), 5)
                .await
                .unwrap()
                .len(),
            1
        );
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_file(path.with_extension("lock"));
    }

    #[tokio::test]
    async fn the_index_follows_a_changed_key_and_only_then() {
        let storage = MemoryStorage::new();
        for (id, n) in [(1, "a"), (2, "b"), (1, "c")] {
            storage
                .insert("m", &record(json!({"id": id, "n": n})))
                .await
                .unwrap();
        }
        let by = |id: i64| Filter::eq("id", json!(id));
        let names = |records: Vec<Record>| -> Vec<Value> {
            records.into_iter().map(|r| r["n"].clone()).collect()
        };
        // The key unchanged: found as before.
        storage
            .update("m", &by(2), &record(json!({"id": 2, "n": "b2"})))
            .await
            .unwrap();
        assert_eq!(
            names(storage.find("m", &by(2), 10).await.unwrap()),
            [json!("b2")]
        );
        // The key changed: found under the new one, in insertion order, and no longer under the old.
        storage
            .update("m", &by(2), &record(json!({"id": 1})))
            .await
            .unwrap();
        assert!(storage.find("m", &by(2), 10).await.unwrap().is_empty());
        assert_eq!(
            names(storage.find("m", &by(1), 10).await.unwrap()),
            [json!("a"), json!("b2"), json!("c")]
        );
    }

    #[tokio::test]
    async fn another_key_field_is_looked_up() {
        let storage = MemoryStorage::new().with_key_field("doc", "_id");
        storage
            .insert(
                "doc",
                &record(json!({"_id": "65a1f0c2e4b0a1b2c3d4e5f6", "n": 1})),
            )
            .await
            .unwrap();
        let found = storage
            .find(
                "doc",
                &Filter::eq("_id", json!("65a1f0c2e4b0a1b2c3d4e5f6")),
                1,
            )
            .await
            .unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(storage.key_field("doc"), "_id");
        assert_eq!(storage.key_field("other"), "id");
    }
}
