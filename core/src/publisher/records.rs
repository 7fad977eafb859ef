//! Typed writes of published models through the configured Storage.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::PendingWrite;
use crate::error::{BoxError, Error, Result};
use crate::model::{from_record, to_record, Publish};
use crate::runtime::Promiscuous;
use crate::traits::{Filter, Record, Storage};
use crate::wire::OperationKind;

/// The pipeline refuses a create or update whose record cannot be read back,
/// so this only guards the type system's `Option`.
fn missing_after_write<M: Publish>() -> Error {
    Error::Write {
        model: M::definition().model.to_owned(),
        id: String::new(),
        source: "the record was not found when read back after writing it".into(),
    }
}

async fn read_back<M: Publish + DeserializeOwned>(
    storage: &dyn Storage,
    filter: &Filter,
) -> std::result::Result<Option<M>, BoxError> {
    let def = M::definition();
    let found = storage.find(def.model, filter, 1).await?;
    match found.first() {
        Some(record) => Ok(Some(from_record(
            def.model,
            record,
            "from the stored record",
        )?)),
        None => Ok(None),
    }
}

impl Promiscuous {
    fn publisher_storage<M: Publish>(&self) -> Result<Arc<dyn Storage>> {
        let def = M::definition();
        if def.ephemeral {
            return Err(Error::Definition {
                model: def.model.to_owned(),
                problem: "is ephemeral: it is never stored; publish it with .publish(&event)"
                    .to_owned(),
            });
        }
        self.inner.storage.clone().ok_or_else(|| {
            Error::config(
                "storage",
                format!("writing {} needs a storage; call .storage(...) or use publish_write with your own database write", def.model),
            )
        })
    }

    fn id_filter<M: Publish>(model: &M) -> Result<(Value, Filter)> {
        let id = model.id();
        if id.is_null() {
            return Err(Error::Definition {
                model: M::definition().model.to_owned(),
                problem: "has a null id; published records need an id".to_owned(),
            });
        }
        Ok((id.clone(), Filter::eq("id", id)))
    }

    /// Inserts `model` into the storage and publishes a create; returns it as read back.
    pub async fn create<M: Publish + DeserializeOwned>(&self, model: &M) -> Result<M> {
        let storage = self.publisher_storage::<M>()?;
        let (id, filter) = Self::id_filter(model)?;
        let record = to_record(M::definition().model, model)?;
        let written = self
            .publish_write(
                PendingWrite::of::<M>(OperationKind::Create, id),
                || async move {
                    storage.insert(M::definition().model, &record).await?;
                    read_back::<M>(storage.as_ref(), &filter).await
                },
            )
            .await?;
        written.ok_or_else(|| missing_after_write::<M>())
    }

    /// Writes `model` over the stored record with its id and publishes an update.
    pub async fn update<M: Publish + DeserializeOwned>(&self, model: &M) -> Result<M> {
        let storage = self.publisher_storage::<M>()?;
        let (id, filter) = Self::id_filter(model)?;
        let record = to_record(M::definition().model, model)?;
        let def = M::definition();
        let written = self
            .publish_write(
                PendingWrite::of::<M>(OperationKind::Update, id.clone()),
                || async move {
                    match storage.update(def.model, &filter, &record).await? {
                        0 => Err(format!("no {} with id {id} to update", def.model).into()),
                        _ => read_back::<M>(storage.as_ref(), &filter).await,
                    }
                },
            )
            .await?;
        written.ok_or_else(|| missing_after_write::<M>())
    }

    /// Deletes the stored record with `model`'s id and publishes a destroy.
    pub async fn destroy<M: Publish + DeserializeOwned>(&self, model: &M) -> Result<()> {
        let storage = self.publisher_storage::<M>()?;
        let (id, filter) = Self::id_filter(model)?;
        let def = M::definition();
        self.publish_write::<M, _, _>(
            PendingWrite::of::<M>(OperationKind::Destroy, id),
            || async move {
                storage.delete(def.model, &filter).await?;
                Ok(None)
            },
        )
        .await?;
        Ok(())
    }

    /// Finds the one record matching `filter`, refusing when several match.
    async fn single_match<M: Publish>(
        &self,
        storage: &dyn Storage,
        filter: &Filter,
        operation: &'static str,
    ) -> Result<Option<Value>> {
        let def = M::definition();
        let found = storage.find(def.model, filter, 2).await?;
        if found.len() > 1 {
            return Err(Error::MultiRecordWrite {
                model: def.model.to_owned(),
                operation,
                count: found.len(),
                hint: format!("narrow the filter ({filter}) to one record, or {operation} each record by id in a loop"),
            });
        }
        Ok(found.into_iter().next().and_then(|r| r.get("id").cloned()))
    }

    /// Sets `changes` on the one record matching `filter` and publishes an update.
    ///
    /// Returns `None` when nothing matches; refuses with
    /// [`Error::MultiRecordWrite`] when several records match, because each
    /// published write must touch one record so it can be ordered.
    pub async fn update_where<M: Publish + DeserializeOwned>(
        &self,
        filter: &Filter,
        changes: Record,
    ) -> Result<Option<M>> {
        let storage = self.publisher_storage::<M>()?;
        let Some(id) = self
            .single_match::<M>(storage.as_ref(), filter, "update")
            .await?
        else {
            return Ok(None);
        };
        let by_id = Filter::eq("id", id.clone());
        let def = M::definition();
        self.publish_write(
            PendingWrite::of::<M>(OperationKind::Update, id),
            || async move {
                storage.update(def.model, &by_id, &changes).await?;
                read_back::<M>(storage.as_ref(), &by_id).await
            },
        )
        .await
    }

    /// Deletes the one record matching `filter` and publishes a destroy; returns
    /// whether one matched. Refuses when several match, like [`update_where`](Self::update_where).
    pub async fn destroy_where<M: Publish + DeserializeOwned>(
        &self,
        filter: &Filter,
    ) -> Result<bool> {
        let storage = self.publisher_storage::<M>()?;
        let Some(id) = self
            .single_match::<M>(storage.as_ref(), filter, "destroy")
            .await?
        else {
            return Ok(false);
        };
        let by_id = Filter::eq("id", id.clone());
        let def = M::definition();
        self.publish_write::<M, _, _>(
            PendingWrite::of::<M>(OperationKind::Destroy, id),
            || async move {
                storage.delete(def.model, &by_id).await?;
                Ok(None)
            },
        )
        .await?;
        Ok(true)
    }

    /// Publishes an ephemeral model (published, never stored) as a create.
    pub async fn publish<M: Publish + Clone>(&self, event: &M) -> Result<()> {
        let def = M::definition();
        if !def.ephemeral {
            return Err(Error::Definition {
                model: def.model.to_owned(),
                problem: "is not ephemeral: write it with create/update/destroy, or use sync to republish its state".to_owned(),
            });
        }
        let event = event.clone();
        self.publish_write(
            PendingWrite::of::<M>(OperationKind::Create, event.id()),
            || async move { Ok(Some(event)) },
        )
        .await?;
        Ok(())
    }

    /// Republishes the current state of a record as an update, under its lock,
    /// without writing it (the initial sync of a new subscriber; the Ruby gem's
    /// `promiscuous_sync`).
    pub async fn sync<M: Publish + Clone>(&self, model: &M) -> Result<()> {
        let (id, _) = Self::id_filter(model)?;
        let model = model.clone();
        self.publish_write(
            PendingWrite::of::<M>(OperationKind::Update, id),
            || async move { Ok(Some(model)) },
        )
        .await?;
        Ok(())
    }
}

impl Promiscuous {
    /// Reads a record of `M` by id from the storage; inside a
    /// [causal scope](crate::publisher::causal_scope), the following publishes
    /// depend on it.
    pub async fn find<M: Publish + DeserializeOwned>(&self, id: Value) -> Result<Option<M>> {
        let storage = self.publisher_storage::<M>()?;
        let def = M::definition();
        let found = read_back::<M>(storage.as_ref(), &Filter::eq("id", id.clone()))
            .await
            .map_err(|source| match source.downcast::<Error>() {
                Ok(error) => *error,
                Err(source) => Error::Write {
                    model: def.model.to_owned(),
                    id: id.to_string(),
                    source,
                },
            })?;
        if found.is_some() {
            super::scope::record(&def.endpoint(self.app()), &id);
        }
        Ok(found)
    }

    /// Inside a [causal scope](crate::publisher::causal_scope), makes the
    /// following publishes depend on `model`: subscribers apply them only after
    /// everything published for `model` before. Does nothing outside a scope.
    pub fn depends_on<M: Publish>(&self, model: &M) {
        super::scope::record(&M::definition().endpoint(self.app()), &model.id());
    }
}
