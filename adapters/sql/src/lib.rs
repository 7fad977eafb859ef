//! Publishing and subscribing [sea-orm](https://www.sea-ql.org/SeaORM/)
//! entities with promiscuous, on SQLite, PostgreSQL and MySQL/MariaDB.
//! Use it through the facade: `promiscuous = { features = ["sql"] }`, then
//! `promiscuous::sql`.
//!
//! - [`SqlPublisher`]: writes entities in sea-orm transactions
//!   ([`PublishingTransaction`]) and publishes them after the commit, as one
//!   message per transaction, through a transactional outbox: the message is
//!   stored with the data, so a crash between the commit and the publish
//!   loses nothing; the [`Relay`] publishes what was left. Multi-row writes
//!   of published entities are refused.
//! - [`SqlStorage`]: the subscriber's storage; each message is applied in one
//!   database transaction together with the versions it brings, so a replay
//!   after a crash is recognised (exactly-once effect).
//! - [`InitialSync`]: publishes the current state of existing rows, in
//!   batches, under their locks, with a progress bar, partitionable.
//! - [`migrate`]: creates the adapter's tables (`promiscuous_outbox`,
//!   `promiscuous_applied`).
//!
//! The entity's `Model` derives `Publish` (or `Subscribe`) next to sea-orm's
//! derives; `model = "User"` names it on the wire. A complete program is
//! `examples/sql-replication` (`cargo run -p sql-replication`); in short:
//!
//! ```text
//! use promiscuous::sql::{SqlPublisher, SqlStorage};
//! use sea_orm::ActiveValue::Set;
//!
//! // publisher service
//! promiscuous::sql::migrate(&db).await?;
//! let publisher = SqlPublisher::builder(promiscuous, db.clone())
//!     .entity::<user::Entity>()
//!     .build()?;
//! let _relay = publisher.relay().start();
//! let mut tx = publisher.begin().await?;
//! let ada = tx.insert(user::ActiveModel { name: Set("Ada".into()), ..Default::default() }).await?;
//! tx.commit().await?; // published now, once committed
//!
//! // subscriber service
//! let storage = SqlStorage::new(replica_db).subscribed::<replica_user::Entity>();
//! let subscriber = Promiscuous::configure()
//!     .app("newsletter")
//!     .storage(std::sync::Arc::new(storage))
//!     .subscriber::<replica_user::Model>()
//!     .build()
//!     .await?;
//! ```

mod convert;
mod entity;
pub mod error;
mod guard;
pub mod schema;
mod storage;
#[cfg(feature = "testkit")]
pub mod testkit;

pub use entity::{ColumnInfo, TableInfo};
pub use error::{Result, SqlError};
pub use guard::refuse_unpublished_write;
pub use schema::{migrate, unmigrate};
pub use storage::{SqlStorage, SqlTransaction};
mod begin;
mod outbox;
mod publisher;
pub use publisher::{ModelOf, PublishingTransaction, SqlPublisher, SqlPublisherBuilder};
mod relay;
mod sync;
mod sync_source;
pub use outbox::SqlOutbox;
pub use promiscuous_core::publisher::SyncReport;
pub use promiscuous_core::publisher::{Relay, RelayPass, RunningRelay};
pub use sync::InitialSync;
pub use sync_source::SqlSync;

/// What [`published_writes_only!`] expands to needs; not a public API.
#[doc(hidden)]
pub mod __private {
    pub use async_trait::async_trait;
    pub use sea_orm::{ActiveModelBehavior, ConnectionTrait, DbErr};

    /// The published model name of the entity of `A`.
    pub fn model_name<A>() -> &'static str
    where
        A: sea_orm::ActiveModelTrait,
        <A::Entity as sea_orm::EntityTrait>::Model: promiscuous_core::model::Publish,
    {
        <<A::Entity as sea_orm::EntityTrait>::Model as promiscuous_core::model::Publish>::definition()
            .model
    }
}
