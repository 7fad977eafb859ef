//! Publishing a write made by the caller's own code: `publish_write` and
//! `publish_writes`.

use std::future::Future;

use serde_json::{Map, Value};

use super::intent::{IntentKind, Recorded};
use super::publication::Publication;
use crate::error::{BoxError, Error, Result};
use crate::model::{published_attributes, Publish, PublisherDef};
use crate::runtime::Promiscuous;
use crate::wire::OperationKind;

/// A write about to be published: which model, which record, which operation.
#[derive(Debug, Clone)]
pub struct PendingWrite {
    /// The published model's definition.
    pub definition: &'static PublisherDef,
    /// The operation.
    pub operation: OperationKind,
    /// The record id (`null` for an ephemeral without id).
    pub id: Value,
}

impl PendingWrite {
    /// A pending write of model `M`.
    pub fn of<M: Publish>(operation: OperationKind, id: Value) -> Self {
        Self {
            definition: M::definition(),
            operation,
            id,
        }
    }

    /// `create User 1`, for errors and logs.
    pub fn describe(&self) -> String {
        format!(
            "{} {} {}",
            self.operation.as_str(),
            self.definition.model,
            self.id
        )
    }
}

/// The published attributes each pending write produced, in order (`None`
/// for a destroy).
pub type Produced = Vec<Option<Map<String, Value>>>;

impl Promiscuous {
    /// Runs `write` inside the publish protocol and publishes its result.
    ///
    /// Steps: take the record's lock, take its versions (reading those of the
    /// records the current [causal scope](super::causal_scope) depends on),
    /// run `write` (which performs the database write and returns the record
    /// read back, or `None` for a destroy), build the payload from the
    /// published attributes, publish and wait for the broker's confirmation,
    /// release the lock. If `write` fails, a `noop` is published so
    /// subscribers do not wait for the versions.
    ///
    /// Crash safety: `write` runs in your own code, which promiscuous cannot
    /// fence. If the process stops between the write and the publish, the
    /// recovery worker publishes the record as the configured
    /// [`storage`](crate::ConfigBuilder::storage) reads it then; without a
    /// storage that reads the model, the publication cannot be finished and
    /// is reported until an operator syncs the record. Prefer
    /// `create`/`update`/`destroy` (through a storage) or an adapter
    /// (`SqlPublisher`), whose writes are fenced.
    pub async fn publish_write<M, F, Fut>(
        &self,
        pending: PendingWrite,
        write: F,
    ) -> Result<Option<M>>
    where
        M: Publish,
        F: FnOnce() -> Fut + Send,
        Fut: Future<Output = std::result::Result<Option<M>, BoxError>> + Send,
    {
        let definition = pending.definition;
        let operation = pending.operation;
        let id = pending.id.clone();
        self.publish_writes(vec![pending], || async move {
            let written = write().await.map_err(|source| Error::Write {
                model: definition.model.to_owned(),
                id: id.to_string(),
                source,
            })?;
            let attributes = match (&written, operation) {
                (_, OperationKind::Destroy) => None,
                (Some(model), _) => Some(published_attributes(model)?),
                (None, _) => {
                    return Err(Error::Write {
                        model: definition.model.to_owned(),
                        id: id.to_string(),
                        source: "the record was not found when read back after writing it".into(),
                    })
                }
            };
            Ok((written, vec![attributes]))
        })
        .await
    }

    /// Runs `perform` inside the publish protocol for several writes,
    /// published as one message whose operations subscribers apply together.
    ///
    /// `perform` does the database writes (in one transaction, when the
    /// database has them) and returns a value plus the published attributes
    /// of each pending write, in order. Locks are taken in sorted order, all
    /// versions in one clock step. Crash safety as for
    /// [`publish_write`](Self::publish_write).
    pub async fn publish_writes<T, F, Fut>(
        &self,
        writes: Vec<PendingWrite>,
        perform: F,
    ) -> Result<T>
    where
        F: FnOnce() -> Fut + Send,
        Fut: Future<Output = Result<(T, Produced)>> + Send,
    {
        let mut publication = Publication::new(&self.inner, IntentKind::Unfenced)?;
        for write in writes {
            publication.push(write, Recorded::Nothing);
        }
        if let Err(error) = publication.take_versions().await {
            return Err(publication.failed(error));
        }
        let (value, produced) = match perform().await {
            Ok(done) => done,
            Err(error) => {
                let error = publication.failed(error);
                publication.publish_noop().await;
                return Err(error);
            }
        };
        let message = match publication.message(produced) {
            Ok(message) => message,
            Err(error) => {
                let error = publication.failed(error);
                publication.publish_noop().await;
                return Err(error);
            }
        };
        publish_or_leave(publication, &message).await;
        Ok(value)
    }
}

/// Publishes a message whose write is done; a failure is reported, and
/// recovery (or the relay) publishes it later: the write stands. A write
/// that cannot be fenced and was overtaken by recovery is published again,
/// as a new publication of its state.
pub(crate) async fn publish_or_leave(publication: Publication, message: &crate::wire::Message) {
    let rt = publication.runtime().clone();
    let writes = publication.writes().to_vec();
    match publication.publish(message).await {
        Ok(published) if published.overtaken => {
            tracing::warn!(app = %rt.config.app, "a lock expired during a write that cannot be fenced: its state is published again");
            let states = writes
                .into_iter()
                .zip(&message.operations)
                .map(|(write, op)| (write, op.attributes.clone().unwrap_or_default()))
                .collect();
            let promiscuous = Promiscuous { inner: rt.clone() };
            if let Err(error) = promiscuous.publish_recorded(states, false).await {
                rt.report(&error);
            }
        }
        Ok(_) => {}
        Err(error) => {
            let described = message
                .operations
                .iter()
                .map(|op| format!("{} {} {}", op.operation.as_str(), op.endpoint, op.id))
                .collect::<Vec<_>>()
                .join(", ");
            tracing::warn!(app = %rt.config.app, operations = %described, error = %crate::error::chain(&error), "written but not published yet; recovery publishes it");
            rt.report(&error);
        }
    }
}
