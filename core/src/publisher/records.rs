//! Writes of published models through the configured Storage: `create`,
//! `update`, `destroy`, `update_where`, `destroy_where`, and the writes of a
//! [`Transaction`](super::Transaction); plus `publish` (ephemerals), `sync`
//! and `find`.
//!
//! How a write is made crash safe depends on what the storage can do:
//!
//! | storage | the write | recovery of a stopped publisher |
//! | --- | --- | --- |
//! | transactions (SQL) | in a transaction that stores the message in the outbox | publishes the entry if it committed, else fences it off with a noop |
//! | versioned writes (memory, MongoDB) | one single-record write at the publication's version | fences each record: what landed is published as stored, what did not becomes a noop |
//! | neither | a plain write | publishes each record as stored then |

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::intent::{IntentKind, Recorded};
use super::pipeline::publish_or_leave;
use super::publication::Publication;
use super::{PendingWrite, Produced};
use crate::error::{Error, Result};
use crate::model::{from_record, published_attributes, to_record, Publish};
use crate::runtime::Promiscuous;
use crate::traits::{Filter, Record, Storage, Versioned, VersionedWrite};
use crate::wire::OperationKind;

/// What the storage must do for one write.
#[derive(Debug, Clone)]
pub(super) enum StoreWrite {
    /// Insert the record.
    Insert(Record),
    /// Set these attributes on the record.
    Update(Record),
    /// Delete the record.
    Delete,
}

/// One write of a publication through the storage.
#[derive(Debug, Clone)]
pub(super) struct Write {
    /// What is published.
    pub pending: PendingWrite,
    /// What is written (`None` for an ephemeral, which only is published).
    pub store: Option<StoreWrite>,
    /// Where the published attributes come from.
    pub attributes: Attributes,
}

/// Where the published attributes of a write come from.
#[derive(Debug, Clone)]
pub(super) enum Attributes {
    /// Known before the write (an ephemeral, or a transaction, which
    /// publishes the models it was given).
    Given(Map<String, Value>),
    /// From the record read back after the write, through the model.
    ReadBack(fn(&Record) -> Result<Map<String, Value>>),
}

/// The published attributes of `M` read from a stored record.
pub(super) fn attributes_from<M: Publish + DeserializeOwned>(
    record: &Record,
) -> Result<Map<String, Value>> {
    let model: M = from_record(M::definition().model, record, "from the stored record")?;
    published_attributes(&model)
}

fn how_to_recover(storage: &dyn Storage) -> IntentKind {
    let capabilities = storage.capabilities();
    if capabilities.transactions {
        IntentKind::Outbox
    } else if capabilities.versioned_writes {
        IntentKind::Versioned
    } else {
        IntentKind::Unfenced
    }
}

/// Writes the failed `write` of `model` `id` names.
fn write_failed(pending: &PendingWrite, source: impl Into<crate::BoxError>) -> Error {
    Error::Write {
        model: pending.definition.model.to_owned(),
        id: pending.id.to_string(),
        source: source.into(),
    }
}

impl Promiscuous {
    pub(super) fn publisher_storage<M: Publish>(&self) -> Result<Arc<dyn Storage>> {
        let def = M::definition();
        if def.ephemeral {
            return Err(Error::Definition {
                model: def.model.to_owned(),
                problem: "is ephemeral: it is never stored; publish it with .publish(&event)"
                    .to_owned(),
            });
        }
        self.storage_for(def.model)
    }

    fn storage_for(&self, model: &str) -> Result<Arc<dyn Storage>> {
        self.inner.storage.clone().ok_or_else(|| {
            Error::config(
                "storage",
                format!("writing {model} needs a storage; call .storage(...) or use publish_write with your own database write"),
            )
        })
    }

    fn record_id<M: Publish>(model: &M) -> Result<Value> {
        let id = model.id();
        if id.is_null() {
            return Err(Error::Definition {
                model: M::definition().model.to_owned(),
                problem: "has a null id; published records need an id".to_owned(),
            });
        }
        Ok(id)
    }

    /// Writes `writes` through `storage` and publishes them as one message,
    /// following the publish protocol; returns each write's record as read
    /// back after the write (`None` for a destroy or an ephemeral).
    pub(super) async fn write_through(
        &self,
        storage: Arc<dyn Storage>,
        writes: Vec<Write>,
    ) -> Result<Vec<Option<Record>>> {
        let kind = how_to_recover(storage.as_ref());
        let mut publication = Publication::new(&self.inner, kind)?.with_outbox(storage.outbox());
        for write in &writes {
            let recorded = match (&write.attributes, &write.store) {
                (Attributes::Given(attributes), None) => Recorded::Attributes(attributes.clone()),
                _ => Recorded::Nothing,
            };
            publication.push(write.pending.clone(), recorded);
        }
        if kind == IntentKind::Outbox {
            return self
                .write_in_transaction(storage, publication, writes)
                .await;
        }
        if let Err(error) = publication.take_versions().await {
            return Err(publication.failed(error));
        }
        self.write_one_by_one(storage, publication, writes, kind)
            .await
    }

    /// Transactions: the writes and their read back, then the locks and the
    /// versions, then the message, all in one transaction; published after
    /// the commit. Writing first, as a database transaction of the SQL
    /// adapter does, means every writer of a row takes the row's database
    /// lock before its promiscuous lock: they cannot wait on each other in
    /// opposite orders.
    async fn write_in_transaction(
        &self,
        storage: Arc<dyn Storage>,
        mut publication: Publication,
        writes: Vec<Write>,
    ) -> Result<Vec<Option<Record>>> {
        let staged = async {
            let transaction = storage.begin().await?.ok_or_else(|| {
                Error::config(
                    "storage",
                    format!(
                        "{} says it has transactions but begin() gave none",
                        storage.name()
                    ),
                )
            })?;
            let mut read_back = Vec::with_capacity(writes.len());
            for write in &writes {
                read_back.push(apply_plain(transaction.storage(), write).await?);
            }
            let produced = produced(&writes, &read_back)?;
            publication.take_versions().await?;
            let message = publication.message(produced)?;
            transaction
                .stage_message(
                    &self.inner.config.app,
                    publication.id(),
                    &message.encode(),
                    self.inner.config.outbox_claim,
                )
                .await?;
            Ok::<_, Error>((transaction, read_back, message))
        };
        let (transaction, read_back, message) = match staged.await {
            Ok(staged) => staged,
            Err(error) => {
                // Rolled back (the transaction was dropped): nothing happened.
                let error = publication.failed(error);
                publication.publish_noop().await;
                return Err(error);
            }
        };
        if let Err(error) = transaction.commit().await {
            // Committed or not, recovery finds out from the outbox.
            let error = publication.failed(error.into());
            publication.resolve_now().await;
            return Err(error);
        }
        publish_or_leave(publication, &message).await;
        Ok(read_back)
    }

    /// Versioned (or plain) single-record writes, one after the other.
    async fn write_one_by_one(
        &self,
        storage: Arc<dyn Storage>,
        publication: Publication,
        writes: Vec<Write>,
        kind: IntentKind,
    ) -> Result<Vec<Option<Record>>> {
        let mut read_back = Vec::with_capacity(writes.len());
        // A record written twice by one publication carries its version
        // after the first write: the later ones are plain (its lock is held).
        let mut stamped = std::collections::HashSet::new();
        for (index, write) in writes.iter().enumerate() {
            let first = stamped.insert((
                write.pending.definition.model,
                crate::dependency::id_json(&write.pending.id),
            ));
            let done = if kind == IntentKind::Versioned && first {
                match publication.stamp(index) {
                    Ok(stamp) => {
                        apply_versioned(storage.as_ref(), write, stamp, publication.id()).await
                    }
                    Err(error) => Err(error),
                }
            } else {
                apply_plain(storage.as_ref(), write).await
            };
            match done {
                Ok(record) => read_back.push(record),
                Err(error @ Error::Fenced { .. }) => {
                    // Recovery settled the publication already.
                    let error = publication.failed(error);
                    publication.leave();
                    return Err(error);
                }
                Err(error) => {
                    // What landed is published, what did not becomes a noop.
                    let error = publication.failed(error);
                    publication.resolve_now().await;
                    return Err(error);
                }
            }
        }
        let message = match produced(&writes, &read_back).and_then(|p| publication.message(p)) {
            Ok(message) => message,
            Err(error) => {
                let error = publication.failed(error);
                publication.resolve_now().await;
                return Err(error);
            }
        };
        publish_or_leave(publication, &message).await;
        Ok(read_back)
    }
}

/// The published attributes of each write: given, or from its record as
/// read back (through the model, for its virtual attributes).
fn produced(writes: &[Write], read_back: &[Option<Record>]) -> Result<Produced> {
    writes
        .iter()
        .zip(read_back)
        .map(|(write, record)| match (&write.attributes, record) {
            _ if write.pending.operation == OperationKind::Destroy => Ok(None),
            (Attributes::Given(attributes), _) => Ok(Some(attributes.clone())),
            (Attributes::ReadBack(read), Some(record)) => read(record).map(Some),
            (Attributes::ReadBack(_), None) => Err(write_failed(
                &write.pending,
                "the record was not found when read back after writing it",
            )),
        })
        .collect()
}

fn key_filter(storage: &dyn Storage, write: &Write) -> Filter {
    let model = write.pending.definition.model;
    Filter::eq(storage.key_field(model), write.pending.id.clone())
}

async fn read_back(storage: &dyn Storage, write: &Write) -> Result<Option<Record>> {
    let model = write.pending.definition.model;
    Ok(storage
        .find(model, &key_filter(storage, write), 1)
        .await?
        .pop())
}

/// A plain write, then its record read back.
async fn apply_plain(storage: &dyn Storage, write: &Write) -> Result<Option<Record>> {
    let model = write.pending.definition.model;
    let filter = key_filter(storage, write);
    let failed = |e: crate::BackendError| write_failed(&write.pending, e);
    match &write.store {
        None => return Ok(None),
        Some(StoreWrite::Insert(record)) => storage.insert(model, record).await.map_err(failed)?,
        Some(StoreWrite::Update(record)) => {
            if storage
                .update(model, &filter, record)
                .await
                .map_err(failed)?
                == 0
            {
                return Err(write_failed(
                    &write.pending,
                    format!("no {model} with id {} to update", write.pending.id),
                ));
            }
        }
        Some(StoreWrite::Delete) => {
            storage.delete(model, &filter).await.map_err(failed)?;
            return Ok(None);
        }
    }
    read_back(storage, write).await
}

/// A versioned write at `stamp`, then its record read back.
async fn apply_versioned(
    storage: &dyn Storage,
    write: &Write,
    stamp: u128,
    publication: &str,
) -> Result<Option<Record>> {
    let model = write.pending.definition.model;
    let id = &write.pending.id;
    let versioned = match &write.store {
        None => return Ok(None),
        Some(StoreWrite::Insert(record)) => VersionedWrite::Insert(record.clone()),
        Some(StoreWrite::Update(record)) => VersionedWrite::Update(record.clone()),
        Some(StoreWrite::Delete) => VersionedWrite::Delete,
    };
    let outcome = storage
        .write_versioned(model, id, versioned, stamp)
        .await
        .map_err(|e| write_failed(&write.pending, e))?;
    match (outcome, &write.store) {
        (Versioned::Written, Some(StoreWrite::Delete))
        | (Versioned::Missing, Some(StoreWrite::Delete)) => Ok(None),
        (Versioned::Written, _) => read_back(storage, write).await,
        (Versioned::Stale { .. }, _) => Err(Error::Fenced {
            model: model.to_owned(),
            id: id.to_string(),
            publication: publication.to_owned(),
        }),
        (Versioned::Exists, _) => Err(write_failed(
            &write.pending,
            format!("a {model} with id {id} exists already"),
        )),
        (Versioned::Missing, _) => Err(write_failed(
            &write.pending,
            format!("no {model} with id {id} to update"),
        )),
    }
}

fn typed<M: Publish + DeserializeOwned>(record: Option<Record>) -> Result<M> {
    let def = M::definition();
    match record {
        Some(record) => from_record(def.model, &record, "from the stored record"),
        None => Err(Error::Write {
            model: def.model.to_owned(),
            id: String::new(),
            source: "the record was not found when read back after writing it".into(),
        }),
    }
}

impl Promiscuous {
    pub(super) async fn write_one<M: Publish + DeserializeOwned>(
        &self,
        operation: OperationKind,
        id: Value,
        store: StoreWrite,
    ) -> Result<Option<Record>> {
        let storage = self.publisher_storage::<M>()?;
        let write = Write {
            pending: PendingWrite::of::<M>(operation, id),
            store: Some(store),
            attributes: Attributes::ReadBack(attributes_from::<M>),
        };
        Ok(self
            .write_through(storage, vec![write])
            .await?
            .into_iter()
            .next()
            .flatten())
    }

    /// `model`'s id and record, once `M` is known to be written through the storage.
    fn keyed<M: Publish>(&self, model: &M) -> Result<(Value, Record)> {
        self.publisher_storage::<M>()?;
        Ok((
            Self::record_id(model)?,
            to_record(M::definition().model, model)?,
        ))
    }

    /// Inserts `model` into the storage and publishes a create; returns it as read back.
    pub async fn create<M: Publish + DeserializeOwned>(&self, model: &M) -> Result<M> {
        let (id, record) = self.keyed(model)?;
        typed(
            self.write_one::<M>(OperationKind::Create, id, StoreWrite::Insert(record))
                .await?,
        )
    }

    /// Writes `model` over the stored record with its id and publishes an update.
    pub async fn update<M: Publish + DeserializeOwned>(&self, model: &M) -> Result<M> {
        let (id, record) = self.keyed(model)?;
        typed(
            self.write_one::<M>(OperationKind::Update, id, StoreWrite::Update(record))
                .await?,
        )
    }

    /// Deletes the stored record with `model`'s id and publishes a destroy.
    pub async fn destroy<M: Publish + DeserializeOwned>(&self, model: &M) -> Result<()> {
        let (id, _) = self.keyed(model)?;
        self.write_one::<M>(OperationKind::Destroy, id, StoreWrite::Delete)
            .await?;
        Ok(())
    }

    /// The key of the one record matching `filter`, refusing when several match.
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
        let key_field = storage.key_field(def.model);
        Ok(found
            .into_iter()
            .next()
            .and_then(|r| r.get(&key_field).cloned()))
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
        let record = self
            .write_one::<M>(OperationKind::Update, id, StoreWrite::Update(changes))
            .await?;
        typed(record).map(Some)
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
        self.write_one::<M>(OperationKind::Destroy, id, StoreWrite::Delete)
            .await?;
        Ok(true)
    }

    /// Publishes the `attributes` of records without writing anything: what
    /// `publish` (ephemerals) and `sync` run. Once the versions are taken the
    /// publication is durable: should the broker refuse it, or this process
    /// stop before the broker confirmed, recovery publishes the same
    /// attributes (the refusal is reported, not returned).
    pub(crate) async fn publish_recorded(
        &self,
        writes: Vec<(PendingWrite, serde_json::Map<String, Value>)>,
        sync: bool,
    ) -> Result<()> {
        let mut publication = Publication::new(&self.inner, IntentKind::Recorded)?;
        if sync {
            publication.republishing_states();
        }
        let mut produced = Vec::with_capacity(writes.len());
        for (pending, attributes) in writes {
            produced.push(Some(attributes.clone()));
            publication.push(pending, Recorded::Attributes(attributes));
        }
        if let Err(error) = publication.take_versions().await {
            return Err(publication.failed(error));
        }
        let message = match publication.message(produced) {
            Ok(message) => message,
            Err(error) => {
                let error = publication.failed(error);
                publication.resolve_now().await;
                return Err(error);
            }
        };
        // Refused by the broker: recovery publishes the recorded attributes.
        if let Err(error) = publication.publish(&message).await {
            self.inner.report(&error);
        }
        Ok(())
    }

    /// Publishes an ephemeral model (published, never stored) as a create.
    pub async fn publish<M: Publish>(&self, event: &M) -> Result<()> {
        let def = M::definition();
        if !def.ephemeral {
            return Err(Error::Definition {
                model: def.model.to_owned(),
                problem: "is not ephemeral: write it with create/update/destroy, or use sync to republish its state".to_owned(),
            });
        }
        let attributes = published_attributes(event)?;
        self.publish_recorded(
            vec![(
                PendingWrite::of::<M>(OperationKind::Create, event.id()),
                attributes,
            )],
            false,
        )
        .await
    }

    /// Republishes the current state of a record as an update, under its lock,
    /// without writing it (the initial sync of a new subscriber; the Ruby gem's
    /// `promiscuous_sync`).
    pub async fn sync<M: Publish>(&self, model: &M) -> Result<()> {
        let id = Self::record_id(model)?;
        let attributes = published_attributes(model)?;
        self.publish_recorded(
            vec![(PendingWrite::of::<M>(OperationKind::Update, id), attributes)],
            true,
        )
        .await
    }

    /// Reads a record of `M` by id from the storage; inside a
    /// [causal scope](crate::publisher::causal_scope), the following publishes
    /// depend on it.
    pub async fn find<M: Publish + DeserializeOwned>(&self, id: Value) -> Result<Option<M>> {
        let def = M::definition();
        let storage = self.publisher_storage::<M>()?;
        let filter = Filter::eq(storage.key_field(def.model), id.clone());
        let found = storage.find(def.model, &filter, 1).await?.pop();
        let Some(record) = found else {
            return Ok(None);
        };
        let model = from_record(def.model, &record, "from the stored record")?;
        super::scope::record(&def.endpoint(self.app()), &id);
        Ok(Some(model))
    }

    /// Inside a [causal scope](crate::publisher::causal_scope), makes the
    /// following publishes depend on `model`: subscribers apply them only after
    /// everything published for `model` before. Does nothing outside a scope.
    pub fn depends_on<M: Publish>(&self, model: &M) {
        super::scope::record(&M::definition().endpoint(self.app()), &model.id());
    }
}
