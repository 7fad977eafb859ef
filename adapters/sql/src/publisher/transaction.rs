//! A database transaction whose published writes go out as one message.

use promiscuous_core::model::{published_attributes, Publish};
use promiscuous_core::publisher::{PendingWrite, Staged};
use promiscuous_core::wire::OperationKind;
use promiscuous_core::Error as CoreError;
use sea_orm::{
    ActiveModelBehavior, ActiveModelTrait, DatabaseTransaction, DeleteMany, DeleteResult,
    EntityTrait, IntoActiveModel, ModelTrait, UpdateMany, UpdateResult,
};

use super::{ModelOf, SqlPublisher};
use crate::error::{Result, SqlError};
use crate::outbox;

/// A database transaction of a [`SqlPublisher`].
///
/// Published writes ([`insert`](Self::insert), [`update`](Self::update),
/// [`delete`](Self::delete)) run, then take the record's lock and are staged
/// (the database's row lock, held until the commit, already orders writers of
/// one record; taking the promiscuous lock after it orders their versions the
/// same way and never waits on a writer that waits on us);
/// [`commit`](Self::commit) stores them as one message in the outbox, in the
/// same transaction, commits, then publishes the message and removes it from
/// the outbox. A transaction rolled back, or dropped, publishes nothing.
///
/// Reads and unpublished writes go through [`connection`](Self::connection).
#[derive(Debug)]
pub struct PublishingTransaction {
    publisher: SqlPublisher,
    tx: DatabaseTransaction,
    staged: Staged,
}

impl PublishingTransaction {
    pub(super) fn new(publisher: SqlPublisher, tx: DatabaseTransaction, staged: Staged) -> Self {
        Self {
            publisher,
            tx,
            staged,
        }
    }

    /// The transaction, for reads and writes that are not published.
    pub fn connection(&self) -> &DatabaseTransaction {
        &self.tx
    }

    /// How many published writes are staged.
    pub fn len(&self) -> usize {
        self.staged.len()
    }

    /// Whether no published write is staged.
    pub fn is_empty(&self) -> bool {
        self.staged.is_empty()
    }

    /// The error of a failed database write, reported to the error notifier too.
    fn write_failed<M: Publish>(
        &self,
        operation: &'static str,
        id: Option<&serde_json::Value>,
        source: sea_orm::DbErr,
    ) -> SqlError {
        let model = M::definition().model;
        let target = match id {
            Some(id) => format!("{model} {id}"),
            None => model.to_owned(),
        };
        self.publisher.promiscuous().report(&CoreError::Write {
            model: model.to_owned(),
            id: id.map(ToString::to_string).unwrap_or_default(),
            source: Box::new(SqlError::database(
                operation,
                target.clone(),
                source.clone(),
            )),
        });
        SqlError::database(operation, target, source)
    }

    /// Stages a write of `model` (read back from the database) and locks its record.
    async fn stage<M: Publish>(&mut self, operation: OperationKind, model: &M) -> Result<()> {
        let pending = PendingWrite::of::<M>(operation, model.id());
        self.staged.lock(&pending).await?;
        let attributes = match operation {
            OperationKind::Destroy => None,
            _ => Some(published_attributes(model)?),
        };
        self.staged.push(pending, attributes);
        Ok(())
    }

    /// Inserts a record and stages its create; returns it as stored.
    ///
    /// The record is locked once the database gave it its id: until the
    /// commit nobody else can see it.
    pub async fn insert<A>(&mut self, model: A) -> Result<ModelOf<A>>
    where
        A: ActiveModelTrait + ActiveModelBehavior + Send,
        ModelOf<A>: Publish + IntoActiveModel<A>,
    {
        self.publisher.published::<A::Entity>()?;
        let inserted = crate::guard::through_publisher(model.insert(&self.tx)).await;
        self.staged_write(OperationKind::Create, "insert", inserted)
            .await
    }

    /// Updates a record and stages its update; returns it as stored.
    pub async fn update<A>(&mut self, model: A) -> Result<ModelOf<A>>
    where
        A: ActiveModelTrait + ActiveModelBehavior + Send,
        ModelOf<A>: Publish + IntoActiveModel<A>,
    {
        self.publisher.published::<A::Entity>()?;
        let updated = crate::guard::through_publisher(model.update(&self.tx)).await;
        self.staged_write(OperationKind::Update, "update", updated)
            .await
    }

    /// Stages the create or update a database write (`statement`) returned,
    /// or reports its failure.
    async fn staged_write<M: Publish>(
        &mut self,
        operation: OperationKind,
        statement: &'static str,
        written: std::result::Result<M, sea_orm::DbErr>,
    ) -> Result<M> {
        let written = written.map_err(|e| self.write_failed::<M>(statement, None, e))?;
        self.stage(operation, &written).await?;
        Ok(written)
    }

    /// Deletes a record and stages its destroy.
    pub async fn delete<M>(&mut self, model: M) -> Result<()>
    where
        M: Publish + ModelTrait + IntoActiveModel<<M::Entity as EntityTrait>::ActiveModel>,
        <M::Entity as EntityTrait>::ActiveModel: Send,
    {
        self.publisher.published::<M::Entity>()?;
        let id = model.id();
        let pending = PendingWrite::of::<M>(OperationKind::Destroy, id.clone());
        let deleted = crate::guard::through_publisher(model.into_active_model().delete(&self.tx))
            .await
            .map_err(|e| self.write_failed::<M>("delete", Some(&id), e))?;
        if deleted.rows_affected == 0 {
            return Err(SqlError::Definition {
                model: M::definition().model.to_owned(),
                problem: format!("no row with id {id} to delete; nothing is published"),
            });
        }
        self.staged.lock(&pending).await?;
        self.staged.push(pending, None);
        Ok(())
    }

    /// Runs a multi-row update, refused on a published entity: each published
    /// write must name its record. Unpublished entities are updated.
    pub async fn update_many<E: EntityTrait>(&self, update: UpdateMany<E>) -> Result<UpdateResult> {
        self.refuse_many::<E>("update")?;
        update
            .exec(&self.tx)
            .await
            .map_err(|e| SqlError::database("update", E::default().table_name().to_owned(), e))
    }

    /// Runs a multi-row delete, refused on a published entity: each published
    /// write must name its record. Unpublished entities are deleted from.
    pub async fn delete_many<E: EntityTrait>(&self, delete: DeleteMany<E>) -> Result<DeleteResult> {
        self.refuse_many::<E>("delete")?;
        delete
            .exec(&self.tx)
            .await
            .map_err(|e| SqlError::database("delete", E::default().table_name().to_owned(), e))
    }

    fn refuse_many<E: EntityTrait>(&self, operation: &'static str) -> Result<()> {
        match self.publisher.is_published::<E>() {
            Some(entity) => {
                let error = SqlError::MultiRowWrite {
                    model: entity.definition.model.to_owned(),
                    operation,
                };
                self.publisher.promiscuous().report(&CoreError::Definition {
                    model: entity.definition.model.to_owned(),
                    problem: error.to_string(),
                });
                Err(error)
            }
            None => Ok(()),
        }
    }

    /// Commits, then publishes the staged writes as one message.
    ///
    /// Returns once the broker confirmed, or once the commit succeeded and
    /// the publish failed: the message then stays in the outbox, the error
    /// goes to the error notifier, and the relay publishes it at once. An
    /// error means the transaction did not commit (or, when its answer was
    /// lost, that recovery settled it from the outbox).
    pub async fn commit(self) -> Result<()> {
        let PublishingTransaction {
            publisher,
            tx,
            mut staged,
        } = self;
        if staged.is_empty() {
            return tx
                .commit()
                .await
                .map_err(|e| SqlError::database("commit", "transaction", e));
        }
        let prepared = match staged.prepare().await {
            Ok(prepared) => prepared,
            Err(e) => {
                let _ = tx.rollback().await;
                staged.abandon().await;
                return Err(e.into());
            }
        };
        let shared = &publisher.shared;
        if let Err(e) = outbox::insert(
            &tx,
            shared.promiscuous.app(),
            prepared.publication(),
            &prepared.payload(),
            shared.claim,
        )
        .await
        {
            let _ = tx.rollback().await;
            staged.abandon().await;
            return Err(e);
        }
        if let Err(e) = tx.commit().await {
            // The commit may have happened even though its answer was lost:
            // the outbox tells, and fences the transaction off if not.
            staged.settle_unknown().await;
            return Err(SqlError::database("commit", "transaction", e));
        }
        if let Err(e) = staged.publish(&prepared).await {
            tracing::warn!(publication = %prepared.publication(), error = %promiscuous_core::error::chain(&e), "committed but not published; the outbox relay publishes it");
        }
        Ok(())
    }

    /// Rolls back: nothing is written and nothing published.
    pub async fn rollback(self) -> Result<()> {
        let PublishingTransaction { tx, staged, .. } = self;
        let rolled = tx.rollback().await;
        staged.abandon().await;
        rolled.map_err(|e| SqlError::database("rollback", "transaction", e))
    }
}
