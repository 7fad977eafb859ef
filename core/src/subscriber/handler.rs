//! Applying one operation to one subscribed model: find, merge, callbacks, store.

use std::marker::PhantomData;

use async_trait::async_trait;
use futures::future::BoxFuture;
use serde_json::{Map, Value};

use crate::dependency::version_stamp;
use crate::error::{BoxError, Error, Result};
use crate::model::{from_record, to_record, Changes, Context, Subscribe, SubscriberDef};
use crate::traits::{Filter, Record, Storage, Versioned, VersionedWrite};
use crate::wire::{Message, Operation, OperationKind};

/// What applying an operation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// A record was created (or an observer saw a create).
    Created,
    /// A record was updated (or an observer saw an update).
    Updated,
    /// A record was deleted (or an observer saw a destroy).
    Destroyed,
    /// Nothing to do: destroy of a missing record, or a noop.
    Nothing,
    /// Not applied: the storage holds the record at a newer version (another
    /// subscriber process applied a later operation first).
    Stale,
}

/// A callback to run once the change is committed
/// ([`Callbacks::after_commit`](crate::model::Callbacks::after_commit)).
pub struct AfterCommit(Box<dyn FnOnce() -> BoxFuture<'static, Result<()>> + Send>);

impl AfterCommit {
    /// Runs the callback.
    pub async fn run(self) -> Result<()> {
        (self.0)().await
    }
}

impl std::fmt::Debug for AfterCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AfterCommit")
    }
}

/// What applying an operation did, and what to run once it is committed.
#[derive(Debug)]
pub struct Outcome {
    /// What changed.
    pub applied: Applied,
    /// The model's `after_commit`, to run after the storage commits.
    pub after_commit: Option<AfterCommit>,
}

impl Outcome {
    fn nothing(applied: Applied) -> Self {
        Self {
            applied,
            after_commit: None,
        }
    }
}

/// Applies operations to one subscribed model; generated per model by the derive macros.
#[async_trait]
pub trait SubscriberHandler: Send + Sync + 'static {
    /// The model's definition.
    fn definition(&self) -> &'static SubscriberDef;

    /// Applies `op` (from `message`) to the model, using `storage` unless it
    /// is an observer; with `ordered`, writes are conditioned on the version
    /// kept with the record when the storage can (not in `unordered` mode,
    /// which applies as delivered).
    async fn apply(
        &self,
        storage: Option<&dyn Storage>,
        message: &Message,
        op: &Operation,
        ordered: bool,
    ) -> Result<Outcome>;
}

/// The [`SubscriberHandler`] of a typed model.
pub struct TypedHandler<M>(PhantomData<fn() -> M>);

impl<M> TypedHandler<M> {
    /// The handler value, usable in a `static`.
    pub const NEW: Self = TypedHandler(PhantomData);
}

impl<M> std::fmt::Debug for TypedHandler<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TypedHandler")
    }
}

fn callback_failed(def: &SubscriberDef, op: &Operation, name: &str, source: BoxError) -> Error {
    Error::Subscriber {
        model: def.model.to_owned(),
        id: op.id_text(),
        operation: op.operation.as_str(),
        endpoint: op.endpoint.clone(),
        attributes: Box::default(),
        source: format!("callback {name} failed: {source}").into(),
    }
}

/// Runs one callback, naming it in the error when it fails.
macro_rules! callback {
    ($def:expr, $op:expr, $model:ident . $name:ident ($ctx:expr)) => {
        $model
            .$name($ctx)
            .await
            .map_err(|e| callback_failed($def, $op, stringify!($name), e))?
    };
}

fn subscriber_error(def: &SubscriberDef, op: &Operation, problem: String) -> Error {
    Error::Subscriber {
        model: def.model.to_owned(),
        id: op.id_text(),
        operation: op.operation.as_str(),
        endpoint: op.endpoint.clone(),
        attributes: Box::default(),
        source: problem.into(),
    }
}

/// A storage failure applying `op`, with the operation and its received
/// attributes, so that a value the store refuses (too long for its column,
/// say) shows in the error and the dead letter's reason.
pub(crate) fn storage_failed(model: &str, op: &Operation, error: Error) -> Error {
    if !matches!(error, Error::Backend(_)) {
        return error;
    }
    Error::Subscriber {
        model: model.to_owned(),
        id: op.id_text(),
        operation: op.operation.as_str(),
        endpoint: op.endpoint.clone(),
        attributes: op
            .attributes
            .as_ref()
            .map(attributes_excerpt)
            .unwrap_or_default()
            .into_boxed_str(),
        source: Box::new(error),
    }
}

/// `name = value, …`, each value cut to 80 characters, at most 20 attributes.
fn attributes_excerpt(attributes: &serde_json::Map<String, serde_json::Value>) -> String {
    const VALUE: usize = 80;
    const COUNT: usize = 20;
    let mut shown: Vec<String> = attributes
        .iter()
        .take(COUNT)
        .map(|(name, value)| {
            let text = value.to_string();
            let length = text.chars().count();
            if length > VALUE {
                let cut: String = text.chars().take(VALUE).collect();
                format!("{name} = {cut}… ({length} characters)")
            } else {
                format!("{name} = {text}")
            }
        })
        .collect();
    if attributes.len() > COUNT {
        shown.push(format!("… ({} attributes)", attributes.len()));
    }
    shown.join(", ")
}

/// Turns an embedded document `{"types","id","attributes"}` (or an array or null of them)
/// into the plain object the subscriber's struct deserialises: attributes plus `id`.
fn unwrap_embedded(value: Value) -> Value {
    match value {
        Value::Array(items) => Value::Array(items.into_iter().map(unwrap_embedded).collect()),
        Value::Object(mut doc) if doc.contains_key("attributes") && doc.contains_key("types") => {
            let mut attributes = match doc.remove("attributes") {
                Some(Value::Object(map)) => map,
                _ => Map::new(),
            };
            if let Some(id) = doc.remove("id") {
                attributes.entry("id").or_insert(id);
            }
            Value::Object(
                attributes
                    .into_iter()
                    .map(|(k, v)| (k, unwrap_embedded(v)))
                    .collect(),
            )
        }
        other => other,
    }
}

/// The subscribed attributes of `op`, unwrapped; fails when one is missing.
fn incoming_attributes(def: &SubscriberDef, op: &Operation) -> Result<Record> {
    let attributes = op.attributes.as_ref();
    let mut record = Record::new();
    for attr in def.all_attributes() {
        let value = attributes.and_then(|a| a.get(attr.name)).cloned().ok_or_else(|| {
            subscriber_error(
                def,
                op,
                format!(
                    "the message has no attribute `{}`, which {} subscribes; deploy the publisher that publishes it before this subscriber, or stop subscribing it",
                    attr.name, def.model
                ),
            )
        })?;
        let value = if attr.embedded {
            unwrap_embedded(value)
        } else {
            value
        };
        record.insert(attr.name.to_owned(), value);
    }
    Ok(record)
}

fn to_model<M: Subscribe>(record: &Record, direction: &'static str) -> Result<M> {
    from_record(M::definition().model, record, direction)
}

fn stored<M: Subscribe>(model: &M) -> Result<Record> {
    to_record(M::definition().model, model)
}

fn context(
    message: &Message,
    op: &Operation,
    operation: OperationKind,
    changes: Changes,
) -> Context {
    Context {
        operation,
        app: message.app.clone(),
        endpoint: op.endpoint.clone(),
        types: op.types.clone(),
        id: op.id.clone(),
        changes,
        message_id: message.id.clone(),
        published_at: message.timestamp,
        versions: op.dependencies.clone(),
        sync: op.sync,
    }
}

/// `model.after_commit(ctx)`, to run later.
fn after_commit<M: Subscribe>(model: M, ctx: Context, op: &Operation) -> Option<AfterCommit> {
    let def = M::definition();
    let op = op.clone();
    Some(AfterCommit(Box::new(move || {
        Box::pin(async move {
            model
                .after_commit(&ctx)
                .await
                .map_err(|e| callback_failed(def, &op, "after_commit", e))
        })
    })))
}

/// The version the record is written with on a storage with versioned
/// writes: the publication's generation and endpoint version.
fn stamp(message: &Message, op: &Operation) -> Option<u128> {
    let version = op
        .dependencies
        .endpoint
        .as_ref()
        .or(op.dependencies.write.first())?
        .version;
    version_stamp(message.generation, message.epoch, version)
}

/// How the handler writes to a storage: versioned (conditioned on the
/// version kept with the record, so two subscriber processes cannot apply
/// out of order) when the storage has versioned writes and the record is
/// found by the storage's own key; plain otherwise.
enum Writer<'a> {
    Versioned {
        storage: &'a dyn Storage,
        stamp: u128,
    },
    Plain(&'a dyn Storage),
}

impl Writer<'_> {
    /// Stores a record that was not found; `Stale` when a newer version is
    /// stored (versioned), `Created` otherwise.
    async fn create(&self, model: &str, key: &Value, record: Record) -> Result<Applied> {
        match self {
            Writer::Versioned { storage, stamp } => Ok(versioned(
                storage
                    .write_versioned(model, key, VersionedWrite::Upsert(record), *stamp)
                    .await?,
                Applied::Created,
            )),
            Writer::Plain(storage) => {
                // Not found a moment ago: a plain insert (an upsert would
                // lock a gap on MySQL and deadlock concurrent creates); a
                // racing insert of the same key fails and is retried.
                storage.insert(model, &record).await?;
                Ok(Applied::Created)
            }
        }
    }

    /// Sets the record's attributes.
    async fn update(
        &self,
        model: &str,
        filter: &Filter,
        key: &Value,
        record: Record,
    ) -> Result<Applied> {
        match self {
            Writer::Versioned { storage, stamp } => Ok(versioned(
                storage
                    .write_versioned(model, key, VersionedWrite::Update(record), *stamp)
                    .await?,
                Applied::Updated,
            )),
            Writer::Plain(storage) => {
                storage.update(model, filter, &record).await?;
                Ok(Applied::Updated)
            }
        }
    }

    /// Deletes the record.
    async fn delete(&self, model: &str, filter: &Filter, key: &Value) -> Result<Applied> {
        match self {
            Writer::Versioned { storage, stamp } => Ok(versioned(
                storage
                    .write_versioned(model, key, VersionedWrite::Delete, *stamp)
                    .await?,
                Applied::Destroyed,
            )),
            Writer::Plain(storage) => {
                storage.delete(model, filter).await?;
                Ok(Applied::Destroyed)
            }
        }
    }
}

/// What a versioned write did, as `done` when it was written.
fn versioned(outcome: Versioned, done: Applied) -> Applied {
    match outcome {
        Versioned::Written => done,
        Versioned::Stale { .. } => Applied::Stale,
        Versioned::Missing | Versioned::Exists => Applied::Nothing,
    }
}

fn changes_between(
    def: &SubscriberDef,
    before: Option<&Record>,
    after: Option<&Record>,
) -> Changes {
    let mut changes = Changes::default();
    for attr in def.all_attributes() {
        let previous = before.and_then(|r| r.get(attr.name)).cloned();
        let current = after.and_then(|r| r.get(attr.name)).cloned();
        changes.record(attr.name, previous, current);
    }
    changes
}

impl<M: Subscribe> TypedHandler<M> {
    async fn observe(&self, message: &Message, op: &Operation) -> Result<Outcome> {
        let def = M::definition();
        if matches!(op.operation, OperationKind::Noop | OperationKind::Baseline) {
            return Ok(Outcome::nothing(Applied::Nothing));
        }
        let mut record = match op.operation {
            OperationKind::Destroy => Record::new(),
            _ => incoming_attributes(def, op)?,
        };
        record.insert(def.key_field().to_owned(), op.id.clone());
        let changes = changes_between(def, None, Some(&record));
        let mut model: M = to_model(&record, "from the received attributes")?;
        let ctx = context(message, op, op.operation, changes);
        let applied = match op.operation {
            OperationKind::Create => {
                callback!(def, op, model.before_create(&ctx));
                callback!(def, op, model.after_create(&ctx));
                Applied::Created
            }
            OperationKind::Update => {
                callback!(def, op, model.before_update(&ctx));
                callback!(def, op, model.after_update(&ctx));
                Applied::Updated
            }
            OperationKind::Destroy => {
                callback!(def, op, model.before_destroy(&ctx));
                callback!(def, op, model.after_destroy(&ctx));
                Applied::Destroyed
            }
            OperationKind::Noop | OperationKind::Baseline => {
                return Ok(Outcome::nothing(Applied::Nothing))
            }
        };
        Ok(Outcome {
            applied,
            after_commit: after_commit(model, ctx, op),
        })
    }

    async fn store(
        &self,
        storage: &dyn Storage,
        message: &Message,
        op: &Operation,
        ordered: bool,
    ) -> Result<Outcome> {
        let def = M::definition();
        let storage_key = storage.key_field(def.model);
        let key_field = def.foreign_key().unwrap_or(&storage_key).to_owned();
        let filter = Filter::eq(key_field.as_str(), op.id.clone());
        let writer = match stamp(message, op) {
            Some(stamp)
                if ordered
                    && storage.capabilities().versioned_writes
                    && key_field == storage_key =>
            {
                Writer::Versioned { storage, stamp }
            }
            _ => Writer::Plain(storage),
        };
        let mut found = storage.find(def.model, &filter, 2).await?;
        if found.len() > 1 {
            return Err(subscriber_error(
                def,
                op,
                format!(
                    "several {} records have {filter}; the key field must be unique",
                    def.model
                ),
            ));
        }
        let existing = found.pop();
        let (kind, mut model, ctx) = match (op.operation, existing) {
            (OperationKind::Noop | OperationKind::Baseline, _) => {
                return Ok(Outcome::nothing(Applied::Nothing))
            }
            (OperationKind::Destroy, None) => {
                tracing::warn!(model = def.model, id = %op.id_text(), endpoint = %op.endpoint, "destroy of a missing record ignored");
                return Ok(Outcome::nothing(Applied::Nothing));
            }
            (OperationKind::Destroy, Some(before)) => {
                let model: M = to_model(&before, "from the stored record")?;
                let ctx = context(
                    message,
                    op,
                    OperationKind::Destroy,
                    changes_between(def, Some(&before), None),
                );
                (OperationKind::Destroy, model, ctx)
            }
            (kind, None) => {
                if kind == OperationKind::Update {
                    tracing::warn!(model = def.model, id = %op.id_text(), endpoint = %op.endpoint, "update of a missing record: creating it");
                }
                let mut record = incoming_attributes(def, op)?;
                record.insert(key_field.clone(), op.id.clone());
                let model: M = to_model(&record, "from the received attributes")?;
                let ctx = context(
                    message,
                    op,
                    OperationKind::Create,
                    changes_between(def, None, Some(&record)),
                );
                (OperationKind::Create, model, ctx)
            }
            (kind, Some(before)) => {
                if kind == OperationKind::Create {
                    tracing::warn!(model = def.model, id = %op.id_text(), endpoint = %op.endpoint, "create of an existing record: updating it");
                }
                let mut merged = before.clone();
                merged.extend(incoming_attributes(def, op)?);
                let model: M = to_model(&merged, "from the received attributes")?;
                let ctx = context(
                    message,
                    op,
                    OperationKind::Update,
                    changes_between(def, Some(&before), Some(&merged)),
                );
                (OperationKind::Update, model, ctx)
            }
        };
        let applied = match kind {
            OperationKind::Create => {
                callback!(def, op, model.before_create(&ctx));
                let written = writer.create(def.model, &op.id, stored(&model)?).await?;
                if written != Applied::Created {
                    return Ok(Outcome::nothing(written));
                }
                callback!(def, op, model.after_create(&ctx));
                written
            }
            OperationKind::Update => {
                callback!(def, op, model.before_update(&ctx));
                let written = writer
                    .update(def.model, &filter, &op.id, stored(&model)?)
                    .await?;
                if written != Applied::Updated {
                    return Ok(Outcome::nothing(written));
                }
                callback!(def, op, model.after_update(&ctx));
                written
            }
            _ => {
                callback!(def, op, model.before_destroy(&ctx));
                let written = writer.delete(def.model, &filter, &op.id).await?;
                if written != Applied::Destroyed {
                    return Ok(Outcome::nothing(written));
                }
                callback!(def, op, model.after_destroy(&ctx));
                written
            }
        };
        Ok(Outcome {
            applied,
            after_commit: after_commit(model, ctx, op),
        })
    }
}

#[async_trait]
impl<M: Subscribe> SubscriberHandler for TypedHandler<M> {
    fn definition(&self) -> &'static SubscriberDef {
        M::definition()
    }

    async fn apply(
        &self,
        storage: Option<&dyn Storage>,
        message: &Message,
        op: &Operation,
        ordered: bool,
    ) -> Result<Outcome> {
        let def = M::definition();
        if def.is_observer() {
            return self.observe(message, op).await;
        }
        match storage {
            Some(storage) => self.store(storage, message, op, ordered).await,
            None => Err(Error::config(
                "storage",
                format!("{} is a stored subscriber but no storage is configured; call .storage(...) or make it an observer", def.model),
            )),
        }
    }
}
