//! A model an operator can sync by name (the CLI's `publish MODEL`): the
//! application registers one [`SyncSource`] per model it publishes, each
//! reading its own store.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;

use super::SyncProgress;
use super::SyncReport;
use crate::error::Result;
use crate::runtime::Promiscuous;

/// What an operator asked of one sync.
#[derive(Clone, Default)]
pub struct SyncRequest {
    /// Only the records matching this condition, in the source's own
    /// language (see [`SyncSource::filter_syntax`]).
    pub filter: Option<String>,
    /// Only partition `i` of `n` (`(i, n)`, `0 <= i < n`), so `n` workers
    /// share the sync.
    pub partition: Option<(u64, u64)>,
    /// Records per message, when not the source's default.
    pub batch_size: Option<u64>,
    /// Called after each batch with the progress so far.
    pub on_progress: Option<Arc<dyn Fn(SyncProgress) + Send + Sync>>,
}

impl std::fmt::Debug for SyncRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncRequest")
            .field("filter", &self.filter)
            .field("partition", &self.partition)
            .field("batch_size", &self.batch_size)
            .finish_non_exhaustive()
    }
}

impl SyncRequest {
    /// Calls the progress callback, if any.
    pub fn report(&self, progress: SyncProgress) {
        if let Some(on_progress) = &self.on_progress {
            on_progress(progress);
        }
    }
}

/// Publishes the current state of one model's records on request: an
/// initial sync an operator starts by the model's name.
#[async_trait]
pub trait SyncSource: Send + Sync + Debug {
    /// The published model's name (`User`), as operators type it.
    fn model(&self) -> &'static str;

    /// What a [`SyncRequest::filter`] is for this source, for help and
    /// errors (`an SQL condition on table users`); `None` when the source
    /// takes no filter.
    fn filter_syntax(&self) -> Option<String> {
        None
    }

    /// Runs the sync through `promiscuous` to the end.
    ///
    /// Behaviour: publishes each matching record's current state under its
    /// lock, as [`Promiscuous::publish_states`] does; a request with a
    /// filter the source cannot take fails before publishing anything.
    async fn sync(&self, promiscuous: &Promiscuous, request: SyncRequest) -> Result<SyncReport>;
}

/// The [`SyncSource`] of model `M` in the app's configured storage
/// ([`Promiscuous::sync_all`]): for apps whose records live in a
/// [`Storage`](crate::traits::Storage) of promiscuous's (memory, or one of
/// your own). It takes no filter.
pub struct StorageSync<M>(std::marker::PhantomData<fn() -> M>);

impl<M> StorageSync<M> {
    /// The sync of model `M`.
    pub fn new() -> Self {
        Self(std::marker::PhantomData)
    }
}

impl<M> Default for StorageSync<M> {
    fn default() -> Self {
        Self::new()
    }
}

impl<M: crate::model::Publish> std::fmt::Debug for StorageSync<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("StorageSync")
            .field(&M::definition().model)
            .finish()
    }
}

#[async_trait]
impl<M> SyncSource for StorageSync<M>
where
    M: crate::model::Publish + serde::de::DeserializeOwned,
{
    fn model(&self) -> &'static str {
        M::definition().model
    }

    async fn sync(&self, promiscuous: &Promiscuous, request: SyncRequest) -> Result<SyncReport> {
        if let Some(filter) = &request.filter {
            return Err(crate::Error::config(
                "filter",
                format!(
                    "{} syncs from the app's storage, which takes no filter ({filter:?})",
                    M::definition().model
                ),
            ));
        }
        let mut sync = promiscuous.sync_all::<M>();
        if let Some((index, count)) = request.partition {
            sync = sync.partition(index, count);
        }
        if let Some(batch) = request.batch_size {
            sync = sync.batch_size(usize::try_from(batch).unwrap_or(usize::MAX));
        }
        if let Some(on_progress) = request.on_progress {
            sync = sync.on_progress(move |progress| on_progress(progress));
        }
        sync.run().await
    }
}
