//! Records in memory.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use promiscuous_core::traits::{Filter, Record, Storage, StorageCapabilities};
use promiscuous_core::BackendError;

/// Records of each model in insertion order, in a map behind a mutex.
///
/// Queries scan the model's records with [`Filter::matches`]; a model nothing
/// was written to has no records. Meant for tests and examples.
#[derive(Debug, Default)]
pub struct MemoryStorage {
    models: Mutex<HashMap<String, Vec<Record>>>,
}

impl MemoryStorage {
    /// An empty storage.
    pub fn new() -> Self {
        Self::default()
    }

    fn models(&self) -> MutexGuard<'_, HashMap<String, Vec<Record>>> {
        self.models.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every record of `model`, in insertion order.
    pub fn records(&self, model: &str) -> Vec<Record> {
        self.models().get(model).cloned().unwrap_or_default()
    }

    /// The names of the models written to, sorted.
    pub fn model_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.models().keys().cloned().collect();
        names.sort();
        names
    }

    /// Removes every record of every model.
    pub fn clear(&self) {
        self.models().clear();
    }
}

#[async_trait]
impl Storage for MemoryStorage {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn capabilities(&self) -> StorageCapabilities {
        StorageCapabilities {
            transactions: false,
        }
    }

    async fn find(
        &self,
        model: &str,
        filter: &Filter,
        limit: usize,
    ) -> Result<Vec<Record>, BackendError> {
        Ok(self
            .models()
            .get(model)
            .map(|records| {
                records
                    .iter()
                    .filter(|r| filter.matches(r))
                    .take(limit)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn insert(&self, model: &str, record: &Record) -> Result<(), BackendError> {
        self.models()
            .entry(model.to_owned())
            .or_default()
            .push(record.clone());
        Ok(())
    }

    async fn update(
        &self,
        model: &str,
        filter: &Filter,
        record: &Record,
    ) -> Result<u64, BackendError> {
        let mut models = self.models();
        let Some(records) = models.get_mut(model) else {
            return Ok(0);
        };
        let mut count = 0;
        for stored in records.iter_mut().filter(|r| filter.matches(r)) {
            for (field, value) in record {
                stored.insert(field.clone(), value.clone());
            }
            count += 1;
        }
        Ok(count)
    }

    async fn delete(&self, model: &str, filter: &Filter) -> Result<u64, BackendError> {
        let mut models = self.models();
        let Some(records) = models.get_mut(model) else {
            return Ok(0);
        };
        let before = records.len();
        records.retain(|r| !filter.matches(r));
        Ok((before - records.len()) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn inspection_lists_records_and_models() {
        let storage = MemoryStorage::new();
        let record = json!({"id": 1}).as_object().cloned().unwrap();
        storage.insert("user", &record).await.unwrap();
        assert_eq!(storage.records("user"), vec![record]);
        assert!(storage.records("post").is_empty());
        assert_eq!(storage.model_names(), vec!["user".to_owned()]);
        storage.clear();
        assert!(storage.model_names().is_empty());
    }
}
