//! [`SqlSync`]: a sea-orm entity an operator can sync by name.

use std::marker::PhantomData;

use async_trait::async_trait;
use promiscuous_core::model::Publish;
use promiscuous_core::publisher::{SyncReport, SyncRequest, SyncSource};
use promiscuous_core::{Promiscuous, Result as CoreResult};
use sea_orm::{DatabaseConnection, EntityTrait};

use crate::publisher::SqlPublisher;

/// The [`SyncSource`] of entity `E` in `db`: registered with the CLI
/// (`cli::App::sync`), it lets `publish User --filter "state = 'banned'"`
/// run [`SqlPublisher::sync`] on that entity. The filter is an SQL boolean
/// expression on the entity's table ([`InitialSync::filter_sql`]).
///
/// [`InitialSync::filter_sql`]: crate::InitialSync::filter_sql
pub struct SqlSync<E> {
    db: DatabaseConnection,
    entity: PhantomData<fn() -> E>,
}

impl<E> std::fmt::Debug for SqlSync<E>
where
    E: EntityTrait,
    E::Model: Publish,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlSync")
            .field("model", &<E::Model as Publish>::definition().model)
            .finish_non_exhaustive()
    }
}

impl<E> SqlSync<E>
where
    E: EntityTrait,
    E::Model: Publish,
{
    /// The sync of entity `E`, reading `db`.
    pub fn new(db: DatabaseConnection) -> Self {
        Self {
            db,
            entity: PhantomData,
        }
    }
}

#[async_trait]
impl<E> SyncSource for SqlSync<E>
where
    E: EntityTrait + Sync,
    E::Model: Publish + Sync,
{
    fn model(&self) -> &'static str {
        <E::Model as Publish>::definition().model
    }

    fn filter_syntax(&self) -> Option<String> {
        Some(format!(
            "an SQL condition on table {} (state = 'banned')",
            E::default().table_name()
        ))
    }

    async fn sync(
        &self,
        promiscuous: &Promiscuous,
        request: SyncRequest,
    ) -> CoreResult<SyncReport> {
        let publisher = SqlPublisher::builder(promiscuous.clone(), self.db.clone())
            .entity::<E>()
            .build()?;
        let mut sync = publisher.sync::<E>().progress(false);
        if let Some(filter) = &request.filter {
            sync = sync.filter_sql(filter);
        }
        if let Some((index, count)) = request.partition {
            sync = sync.partition(index, count);
        }
        if let Some(batch) = request.batch_size {
            sync = sync.batch_size(batch);
        }
        if let Some(on_progress) = request.on_progress.clone() {
            sync = sync.on_progress(move |progress| on_progress(progress));
        }
        Ok(sync.run().await?)
    }
}
