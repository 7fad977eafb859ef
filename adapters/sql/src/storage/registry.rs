//! Which table stores which model.

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};

use crate::entity::TableInfo;
use crate::error::SqlError;

/// Model names to table descriptions, shared by a storage, its clones and
/// its transactions.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    tables: RwLock<BTreeMap<String, Arc<TableInfo>>>,
}

impl Registry {
    /// Stores `model` in `table`, replacing an earlier registration.
    pub(crate) fn register(&self, model: String, table: TableInfo) {
        self.tables
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(model, Arc::new(table));
    }

    /// The table of `model`; a model never registered is a configuration mistake.
    pub(crate) fn get(&self, model: &str) -> Result<Arc<TableInfo>, SqlError> {
        let tables = self.tables.read().unwrap_or_else(PoisonError::into_inner);
        match tables.get(model) {
            Some(table) => Ok(Arc::clone(table)),
            None => Err(SqlError::UnknownModel {
                model: model.to_owned(),
                known: if tables.is_empty() {
                    "none".to_owned()
                } else {
                    tables.keys().cloned().collect::<Vec<_>>().join(", ")
                },
            }),
        }
    }
}
