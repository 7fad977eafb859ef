//! Several writes published as one message.

use serde::Serialize;

use super::pipeline::{PendingWrite, Produced};
use crate::error::{Error, Result};
use crate::model::{published_attributes, to_record, Publish};
use crate::runtime::Promiscuous;
use crate::traits::{Filter, Record};
use crate::wire::OperationKind;

/// What the storage must do for one write of a transaction.
#[derive(Debug, Clone)]
enum StorageWrite {
    Insert(Record),
    Update(Record),
    Delete,
}

/// Writes of several records published together, as one message that
/// subscribers apply together. Build it with [`Promiscuous::transaction`].
///
/// The published attributes are taken from the models given to
/// `create`/`update`, as they are when added.
#[derive(Debug)]
pub struct Transaction<'a> {
    promiscuous: &'a Promiscuous,
    writes: Vec<PendingWrite>,
    produced: Produced,
    storage: Vec<(&'static str, serde_json::Value, StorageWrite)>,
}

impl Promiscuous {
    /// Starts a transaction: several writes published as one message.
    pub fn transaction(&self) -> Transaction<'_> {
        Transaction {
            promiscuous: self,
            writes: Vec::new(),
            produced: Vec::new(),
            storage: Vec::new(),
        }
    }
}

impl Transaction<'_> {
    fn add<M: Publish + Serialize>(
        &mut self,
        operation: OperationKind,
        model: &M,
    ) -> Result<&mut Self> {
        let def = M::definition();
        let id = model.id();
        if id.is_null() && !def.ephemeral {
            return Err(Error::Definition {
                model: def.model.to_owned(),
                problem: "has a null id; published records need an id".to_owned(),
            });
        }
        let (attributes, write) = match operation {
            OperationKind::Destroy => (None, StorageWrite::Delete),
            OperationKind::Create => (
                Some(published_attributes(model)?),
                StorageWrite::Insert(to_record(def.model, model)?),
            ),
            _ => (
                Some(published_attributes(model)?),
                StorageWrite::Update(to_record(def.model, model)?),
            ),
        };
        self.writes
            .push(PendingWrite::of::<M>(operation, id.clone()));
        self.produced.push(attributes);
        if !def.ephemeral {
            self.storage.push((def.model, id, write));
        }
        Ok(self)
    }

    /// Adds the creation of `model`.
    pub fn create<M: Publish>(&mut self, model: &M) -> Result<&mut Self> {
        self.add(OperationKind::Create, model)
    }

    /// Adds an update of `model`.
    pub fn update<M: Publish>(&mut self, model: &M) -> Result<&mut Self> {
        self.add(OperationKind::Update, model)
    }

    /// Adds the destruction of `model`.
    pub fn destroy<M: Publish>(&mut self, model: &M) -> Result<&mut Self> {
        self.add(OperationKind::Destroy, model)
    }

    /// How many writes the transaction holds.
    pub fn len(&self) -> usize {
        self.writes.len()
    }

    /// Whether the transaction holds no write.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    /// Performs the writes on the configured storage, in order, and publishes
    /// them as one message. Atomic when the storage has transactions (all
    /// writes in one storage transaction); with the memory storage a failed
    /// write leaves the earlier ones in place. A failed commit publishes a
    /// noop.
    pub async fn commit(self) -> Result<()> {
        let storage = self.promiscuous.inner.storage.clone().ok_or_else(|| {
            Error::config(
                "storage",
                "a transaction commits to the storage; call .storage(...) or use commit_with",
            )
        })?;
        let writes = self.storage;
        self.promiscuous
            .publish_writes(self.writes, || async move {
                let failed = |model: &str, id: String, source: crate::BoxError| Error::Write {
                    model: model.to_owned(),
                    id,
                    source,
                };
                let whole = || "(transaction)".to_owned();
                let first = writes.first().map_or("(transaction)", |w| w.0);
                let transaction = storage
                    .begin()
                    .await
                    .map_err(|e| failed(first, whole(), Box::new(e)))?;
                let target = match &transaction {
                    Some(tx) => tx.storage(),
                    None => storage.as_ref(),
                };
                for (model, id, write) in writes {
                    let filter = Filter::eq("id", id.clone());
                    let done = match &write {
                        StorageWrite::Insert(record) => {
                            target.insert(model, record).await.map(|()| 1)
                        }
                        StorageWrite::Update(record) => target.update(model, &filter, record).await,
                        StorageWrite::Delete => target.delete(model, &filter).await,
                    };
                    match done {
                        Ok(0) if matches!(write, StorageWrite::Update(_)) => {
                            let problem = format!("no {model} with id {id} to update");
                            return Err(failed(model, id.to_string(), problem.into()));
                        }
                        Ok(_) => {}
                        Err(e) => return Err(failed(model, id.to_string(), Box::new(e))),
                    }
                }
                if let Some(tx) = transaction {
                    tx.commit()
                        .await
                        .map_err(|e| failed(first, whole(), Box::new(e)))?;
                }
                Ok(((), self.produced))
            })
            .await
    }

    /// Publishes the writes as one message after `write` performed them in
    /// your own database (typically in one database transaction).
    pub async fn commit_with<F, Fut>(self, write: F) -> Result<()>
    where
        F: FnOnce() -> Fut + Send,
        Fut: std::future::Future<Output = std::result::Result<(), crate::BoxError>> + Send,
    {
        let produced = self.produced;
        let model = self
            .writes
            .first()
            .map_or("(none)", |w| w.definition.model)
            .to_owned();
        self.promiscuous
            .publish_writes(self.writes, || async move {
                write().await.map_err(|source| Error::Write {
                    model,
                    id: "(transaction)".into(),
                    source,
                })?;
                Ok(((), produced))
            })
            .await
    }
}
