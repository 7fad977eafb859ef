//! Initial sync over any [`Storage`]: publishes the current state of a
//! model's records, in batches, under their locks.

use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::intent::{IntentKind, Recorded};
use super::publication::Publication;
use super::records::attributes_from;
use super::PendingWrite;
use crate::dependency::{fnv1a64, id_json, lock_key};
use crate::error::{Error, Result};
use crate::model::Publish;
use crate::runtime::Promiscuous;
use crate::traits::{Filter, Storage};
use crate::wire::OperationKind;

/// Records per batch (one message each) by default.
const DEFAULT_BATCH: usize = 100;

/// Where an initial sync stands, handed to [`InitialSync::on_progress`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncProgress {
    /// Records read so far (by this worker, when partitioned: its share and
    /// the others it skipped).
    pub scanned: u64,
    /// Records to read in all, when the storage counted them first.
    pub total: Option<u64>,
    /// Records published so far.
    pub published: u64,
    /// Batches (messages) published so far.
    pub batches: u64,
    /// Records deleted between being scanned and being locked, left out.
    pub vanished: u64,
}

/// What an initial sync did.
pub type SyncReport = SyncProgress;

/// Publishes the current state of the records of `M` kept in the storage:
/// the initial sync of a new subscriber (the Ruby gem's `promiscuous
/// publish`). Made by [`Promiscuous::sync_all`].
///
/// It scans the records in key order; each batch takes the locks of its
/// records, reads them again under those locks (so a concurrent write is
/// never overtaken by an older state), and publishes them as one message of
/// updates. A sync carries state, not changes: subscribers apply it like any
/// update. [`partition`](Self::partition) shares the records among workers.
pub struct InitialSync<M> {
    promiscuous: Promiscuous,
    filter: Filter,
    batch_size: usize,
    partition: Option<(u64, u64)>,
    on_progress: Option<Arc<dyn Fn(SyncProgress) + Send + Sync>>,
    model: PhantomData<fn() -> M>,
}

impl<M> std::fmt::Debug for InitialSync<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InitialSync")
            .field("filter", &self.filter)
            .field("batch_size", &self.batch_size)
            .field("partition", &self.partition)
            .finish_non_exhaustive()
    }
}

impl Promiscuous {
    /// An initial sync of the records of `M` in the configured storage.
    pub fn sync_all<M: Publish + DeserializeOwned>(&self) -> InitialSync<M> {
        InitialSync {
            promiscuous: self.clone(),
            filter: Filter::default(),
            batch_size: DEFAULT_BATCH,
            partition: None,
            on_progress: None,
            model: PhantomData,
        }
    }
}

impl<M: Publish + DeserializeOwned> InitialSync<M> {
    /// Only the records matching `filter`.
    pub fn filter(mut self, filter: Filter) -> Self {
        self.filter = filter;
        self
    }

    /// Records per message (default 100, at least 1).
    pub fn batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size.max(1);
        self
    }

    /// Only the records of partition `index` of `count` (by a hash of the
    /// id), so `count` workers share the sync.
    pub fn partition(mut self, index: u64, count: u64) -> Self {
        self.partition = Some((index, count.max(1)));
        self
    }

    /// Called after each batch with the progress so far.
    pub fn on_progress(mut self, report: impl Fn(SyncProgress) + Send + Sync + 'static) -> Self {
        self.on_progress = Some(Arc::new(report));
        self
    }

    fn mine(&self, id: &Value) -> bool {
        match self.partition {
            Some((index, count)) => fnv1a64(id_json(id).as_bytes()) % count == index,
            None => true,
        }
    }

    /// Runs the sync to the end.
    pub async fn run(self) -> Result<SyncReport> {
        if let Some((index, count)) = self.partition {
            if index >= count {
                return Err(Error::config(
                    "partition",
                    format!("partition {index} of {count} does not exist; partitions are numbered from 0"),
                ));
            }
        }
        let storage = self.promiscuous.publisher_storage::<M>()?;
        let model = M::definition().model;
        let key_field = storage.key_field(model);
        self.promiscuous.publish_baseline(M::definition()).await?;
        let mut progress = SyncProgress::default();
        let mut after: Option<Value> = None;
        loop {
            let page = storage
                .scan(model, &self.filter, after.as_ref(), self.batch_size)
                .await?;
            let Some(last) = page.last() else {
                break;
            };
            after = last.get(&key_field).cloned();
            progress.scanned += page.len() as u64;
            let ids: Vec<Value> = page
                .iter()
                .filter_map(|record| record.get(&key_field).cloned())
                .filter(|id| self.mine(id))
                .collect();
            if !ids.is_empty() {
                self.publish_batch(storage.as_ref(), &key_field, ids, &mut progress)
                    .await?;
            }
            if let Some(report) = &self.on_progress {
                report(progress);
            }
            if page.len() < self.batch_size {
                break;
            }
        }
        tracing::info!(app = %self.promiscuous.app(), model, published = progress.published, batches = progress.batches, "initial sync done");
        Ok(progress)
    }

    async fn publish_batch(
        &self,
        storage: &dyn Storage,
        key_field: &str,
        ids: Vec<Value>,
        progress: &mut SyncProgress,
    ) -> Result<()> {
        let model = M::definition().model;
        let writes: Vec<PendingWrite> = ids
            .iter()
            .map(|id| PendingWrite::of::<M>(OperationKind::Update, id.clone()))
            .collect();
        let asked = writes.len();
        let published = self
            .promiscuous
            .publish_states(writes, || async {
                let mut states = Vec::with_capacity(ids.len());
                for id in &ids {
                    let filter = Filter::eq(key_field, id.clone());
                    states.push(match storage.find(model, &filter, 1).await?.pop() {
                        Some(record) => Some(attributes_from::<M>(&record)?),
                        None => None,
                    });
                }
                Ok(states)
            })
            .await?;
        progress.vanished += (asked - published) as u64;
        if published > 0 {
            progress.published += published as u64;
            progress.batches += 1;
        }
        Ok(())
    }
}

impl Promiscuous {
    /// Publishes the current state of records, read under their locks: the
    /// step of an initial sync, for each batch.
    ///
    /// Takes the locks of `writes` (updates of the records), in sorted
    /// order; runs `read`, which returns each record's published attributes
    /// in the same order (`None` for a record that no longer exists, which is
    /// left out); publishes the others as one message; returns how many.
    /// Reading under the locks means a write running at the same time is
    /// never overtaken by an older state. Should this process stop before
    /// the broker confirmed, recovery publishes the same states.
    pub async fn publish_states<F, Fut>(&self, writes: Vec<PendingWrite>, read: F) -> Result<usize>
    where
        F: FnOnce() -> Fut + Send,
        Fut: Future<Output = Result<Vec<Option<Map<String, Value>>>>> + Send,
    {
        let rt = &self.inner;
        let mut publication = Publication::new(rt, IntentKind::Recorded)?;
        publication.republishing_states();
        let mut order: Vec<(String, usize)> = writes
            .iter()
            .enumerate()
            .map(|(index, w)| {
                (
                    lock_key(&w.definition.endpoint(&rt.config.app), &w.id),
                    index,
                )
            })
            .collect();
        order.sort();
        for (_, index) in &order {
            if let Err(error) = publication.lock(&writes[*index]).await {
                return Err(publication.failed(error));
            }
        }
        let states = match read().await {
            Ok(states) if states.len() == writes.len() => states,
            Ok(states) => {
                publication.release().await;
                return Err(Error::Definition {
                    model: writes.first().map_or("", |w| w.definition.model).to_owned(),
                    problem: format!(
                        "publish_states read {} states for {} records",
                        states.len(),
                        writes.len()
                    ),
                });
            }
            Err(error) => {
                publication.release().await;
                return Err(error);
            }
        };
        let mut produced = Vec::with_capacity(writes.len());
        for (write, state) in writes.into_iter().zip(states) {
            if let Some(attributes) = state {
                produced.push(Some(attributes.clone()));
                publication.push(write, Recorded::Attributes(attributes));
            }
        }
        let count = produced.len();
        if count == 0 {
            publication.release().await;
            return Ok(0);
        }
        if let Err(error) = publication.take_versions().await {
            return Err(publication.failed(error));
        }
        let message = publication.message(produced)?;
        publication.publish(&message).await?;
        Ok(count)
    }
}
