//! Publishing sea-orm entities: [`SqlPublisher`] and its transactions.

mod transaction;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use promiscuous_core::model::{AttributeSource, Publish, PublisherDef};
use promiscuous_core::Promiscuous;
use sea_orm::{
    ActiveModelBehavior, ActiveModelTrait, DatabaseConnection, EntityTrait, IdenStatic,
    IntoActiveModel, Iterable, PrimaryKeyToColumn, TransactionTrait,
};

pub use transaction::PublishingTransaction;

use crate::error::{Result, SqlError};

/// The model of an active model's entity.
pub type ModelOf<A> = <<A as ActiveModelTrait>::Entity as EntityTrait>::Model;

/// How long a writer keeps its outbox row before a relay may publish it.
const DEFAULT_CLAIM: Duration = Duration::from_secs(30);

/// A published entity, as registered.
#[derive(Debug, Clone)]
pub(crate) struct PublishedEntity {
    pub definition: &'static PublisherDef,
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub promiscuous: Promiscuous,
    pub db: DatabaseConnection,
    /// Table name → published entity.
    pub entities: BTreeMap<String, PublishedEntity>,
    pub claim: Duration,
    /// The outbox of `db`, attached to `promiscuous` for recovery and the relay.
    pub outbox: Arc<crate::outbox::SqlOutbox>,
}

/// Writes sea-orm entities and publishes them, through a transactional
/// outbox: the message is stored in the same transaction as the data, so a
/// crash between the commit and the publish loses nothing (the [relay]
/// publishes what was left).
///
/// Cheap to clone. Build it with [`SqlPublisher::builder`].
///
/// [relay]: crate::Relay
#[derive(Debug, Clone)]
pub struct SqlPublisher {
    pub(crate) shared: Arc<Shared>,
}

/// Configures a [`SqlPublisher`]: which entities are published.
#[derive(Debug)]
pub struct SqlPublisherBuilder {
    promiscuous: Promiscuous,
    db: DatabaseConnection,
    entities: BTreeMap<String, PublishedEntity>,
    problems: Vec<String>,
    claim: Duration,
}

fn table_name<E: EntityTrait>() -> String {
    E::default().table_name().to_owned()
}

impl SqlPublisher {
    /// Starts configuring a publisher writing to `db` and publishing through `promiscuous`.
    pub fn builder(promiscuous: Promiscuous, db: DatabaseConnection) -> SqlPublisherBuilder {
        SqlPublisherBuilder {
            promiscuous,
            db,
            entities: BTreeMap::new(),
            problems: Vec::new(),
            claim: DEFAULT_CLAIM,
        }
    }

    /// The database connection (for reads and unpublished writes).
    pub fn connection(&self) -> &DatabaseConnection {
        &self.shared.db
    }

    /// The promiscuous handle it publishes through.
    pub fn promiscuous(&self) -> &Promiscuous {
        &self.shared.promiscuous
    }

    /// Begins a database transaction whose published writes go out as one
    /// message after it commits, and never if it rolls back.
    pub async fn begin(&self) -> Result<PublishingTransaction> {
        let options = crate::begin::writing(self.shared.db.get_database_backend());
        let tx = self
            .shared
            .db
            .begin_with_options(options)
            .await
            .map_err(|e| SqlError::database("begin", "transaction", e))?;
        let staged = self.shared.promiscuous.stage(self.shared.outbox.clone())?;
        Ok(PublishingTransaction::new(self.clone(), tx, staged))
    }

    /// Inserts one record in a transaction of its own and publishes a create.
    pub async fn insert<A>(&self, model: A) -> Result<ModelOf<A>>
    where
        A: ActiveModelTrait + ActiveModelBehavior + Send,
        ModelOf<A>: Publish + IntoActiveModel<A>,
    {
        let mut tx = self.begin().await?;
        let inserted = tx.insert(model).await?;
        tx.commit().await?;
        Ok(inserted)
    }

    /// Updates one record in a transaction of its own and publishes an update.
    pub async fn update<A>(&self, model: A) -> Result<ModelOf<A>>
    where
        A: ActiveModelTrait + ActiveModelBehavior + Send,
        ModelOf<A>: Publish + IntoActiveModel<A>,
    {
        let mut tx = self.begin().await?;
        let updated = tx.update(model).await?;
        tx.commit().await?;
        Ok(updated)
    }

    /// Deletes one record in a transaction of its own and publishes a destroy.
    pub async fn delete<M>(&self, model: M) -> Result<()>
    where
        M: Publish + sea_orm::ModelTrait + IntoActiveModel<<M::Entity as EntityTrait>::ActiveModel>,
        <M::Entity as EntityTrait>::ActiveModel: Send,
    {
        let mut tx = self.begin().await?;
        tx.delete(model).await?;
        tx.commit().await
    }

    /// Waits until the outbox rows of the messages published so far are
    /// removed (they are removed in the background, in batches).
    pub async fn flush_outbox(&self) {
        self.shared.promiscuous.flush().await;
    }

    /// The outbox of this publisher's database.
    pub fn outbox(&self) -> Arc<crate::outbox::SqlOutbox> {
        self.shared.outbox.clone()
    }

    /// The registration of entity `E`, or an error saying how to register it.
    pub(crate) fn published<E: EntityTrait>(&self) -> Result<&PublishedEntity> {
        self.is_published::<E>().ok_or_else(|| {
            let table = table_name::<E>();
            SqlError::Definition {
                model: table.clone(),
                problem: format!(
                    "the entity of table `{table}` is not registered as published; add `.entity::<{table}::Entity>()` to SqlPublisher::builder (registered: {})",
                    self.registered()
                ),
            }
        })
    }

    /// Whether entity `E` is registered as published.
    pub(crate) fn is_published<E: EntityTrait>(&self) -> Option<&PublishedEntity> {
        self.shared.entities.get(&table_name::<E>())
    }

    fn registered(&self) -> String {
        if self.shared.entities.is_empty() {
            "none".to_owned()
        } else {
            self.shared
                .entities
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        }
    }
}

impl SqlPublisherBuilder {
    /// Publishes the writes of entity `E`, whose `Model` derives `Publish`.
    ///
    /// Checked by [`build`](Self::build): the entity has a single-column
    /// primary key, is not ephemeral, and every published field is a column.
    pub fn entity<E>(mut self) -> Self
    where
        E: EntityTrait,
        E::Model: Publish,
    {
        let definition = <E::Model as Publish>::definition();
        let table = table_name::<E>();
        let keys: Vec<String> = E::PrimaryKey::iter()
            .map(|key| key.into_column().as_str().to_owned())
            .collect();
        let columns: Vec<String> = E::Column::iter().map(|c| c.as_str().to_owned()).collect();
        if keys.len() != 1 {
            self.problems.push(format!(
                "{} (table `{table}`): has a primary key of {} columns; published entities need a single-column key, published as the id",
                definition.model,
                keys.len()
            ));
        }
        if definition.ephemeral {
            self.problems.push(format!(
                "{} (table `{table}`): is ephemeral, so never stored; publish it with Promiscuous::publish instead",
                definition.model
            ));
        }
        for attribute in definition.all_attributes() {
            if attribute.source == AttributeSource::Field
                && !columns.iter().any(|c| c == attribute.name)
            {
                self.problems.push(format!(
                    "{} (table `{table}`): publishes `{}`, which is not a column; make it a column or a virtual attribute",
                    definition.model, attribute.name
                ));
            }
        }
        if let Some(existing) = self.entities.get(&table) {
            if existing.definition.model != definition.model {
                self.problems.push(format!(
                    "table `{table}` is registered twice, as {} and {}",
                    existing.definition.model, definition.model
                ));
            }
        }
        self.entities.insert(table, PublishedEntity { definition });
        self
    }

    /// How long a writer keeps its own outbox row before a relay may publish
    /// it instead (default 30 s). Longer than the broker may take to confirm;
    /// shorter means a crashed writer's operations go out sooner.
    pub fn claim(mut self, claim: Duration) -> Self {
        self.claim = claim;
        self
    }

    /// Checks the registrations and builds the publisher.
    pub fn build(self) -> Result<SqlPublisher> {
        if !self.problems.is_empty() {
            return Err(SqlError::Definition {
                model: "SqlPublisher".into(),
                problem: self.problems.join("; "),
            });
        }
        if self.claim.is_zero() {
            return Err(SqlError::Definition {
                model: "SqlPublisher".into(),
                problem:
                    "claim must be longer than zero: it is how long a writer keeps its outbox row"
                        .into(),
            });
        }
        let outbox = Arc::new(crate::outbox::SqlOutbox::new(self.db.clone()));
        self.promiscuous.attach_outbox(outbox.clone());
        Ok(SqlPublisher {
            shared: Arc::new(Shared {
                promiscuous: self.promiscuous,
                db: self.db,
                entities: self.entities,
                claim: self.claim,
                outbox,
            }),
        })
    }
}
