//! Several writes published as one message.

use super::pipeline::{PendingWrite, Produced};
use super::records::{Attributes, StoreWrite, Write};
use crate::error::{Error, Result};
use crate::model::{published_attributes, to_record, Publish};
use crate::runtime::Promiscuous;
use crate::wire::OperationKind;

/// Writes of several records published together, as one message that
/// subscribers apply together. Build it with [`Promiscuous::transaction`].
///
/// The published attributes are taken from the models given to
/// `create`/`update`, as they are when added.
#[derive(Debug)]
pub struct Transaction<'a> {
    promiscuous: &'a Promiscuous,
    writes: Vec<Write>,
}

impl Promiscuous {
    /// Starts a transaction: several writes published as one message.
    pub fn transaction(&self) -> Transaction<'_> {
        Transaction {
            promiscuous: self,
            writes: Vec::new(),
        }
    }
}

impl Transaction<'_> {
    fn add<M: Publish>(&mut self, operation: OperationKind, model: &M) -> Result<&mut Self> {
        let def = M::definition();
        let id = model.id();
        if id.is_null() && !def.ephemeral {
            return Err(Error::Definition {
                model: def.model.to_owned(),
                problem: "has a null id; published records need an id".to_owned(),
            });
        }
        let store = match operation {
            _ if def.ephemeral => None,
            OperationKind::Destroy => Some(StoreWrite::Delete),
            OperationKind::Create => Some(StoreWrite::Insert(to_record(def.model, model)?)),
            _ => Some(StoreWrite::Update(to_record(def.model, model)?)),
        };
        let attributes = match operation {
            OperationKind::Destroy => serde_json::Map::new(),
            _ => published_attributes(model)?,
        };
        self.writes.push(Write {
            pending: PendingWrite::of::<M>(operation, id),
            store,
            attributes: Attributes::Given(attributes),
        });
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
    /// writes and the message in one storage transaction); otherwise a write
    /// that fails leaves the earlier ones in place, and they are published
    /// (with a noop for the rest), so subscribers end as the storage is.
    pub async fn commit(self) -> Result<()> {
        let storage = self.promiscuous.inner.storage.clone().ok_or_else(|| {
            Error::config(
                "storage",
                "a transaction commits to the storage; call .storage(...) or use commit_with",
            )
        })?;
        if self.writes.is_empty() {
            return Err(Error::NothingToPublish {
                operation: "Transaction::commit",
            });
        }
        self.promiscuous
            .write_through(storage, self.writes)
            .await
            .map(|_| ())
    }

    /// Publishes the writes as one message after `write` performed them in
    /// your own database (typically in one database transaction). Crash
    /// safety as for [`Promiscuous::publish_write`].
    pub async fn commit_with<F, Fut>(self, write: F) -> Result<()>
    where
        F: FnOnce() -> Fut + Send,
        Fut: std::future::Future<Output = std::result::Result<(), crate::BoxError>> + Send,
    {
        let first = self
            .writes
            .first()
            .map(|w| {
                (
                    w.pending.definition.model.to_owned(),
                    w.pending.id.to_string(),
                )
            })
            .unwrap_or_default();
        let (pending, produced): (Vec<PendingWrite>, Produced) = self
            .writes
            .into_iter()
            .map(|w| {
                let attributes = match w.attributes {
                    Attributes::Given(a) if w.pending.operation != OperationKind::Destroy => {
                        Some(a)
                    }
                    _ => None,
                };
                (w.pending, attributes)
            })
            .unzip();
        self.promiscuous
            .publish_writes(pending, || async move {
                write().await.map_err(|source| Error::Write {
                    model: first.0,
                    id: first.1,
                    source,
                })?;
                Ok(((), produced))
            })
            .await
    }
}
