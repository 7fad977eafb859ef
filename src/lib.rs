//! # Promiscuous
//!
//! Promiscuous replicates application models between services, each with its
//! own database, so a service-oriented system stays loosely coupled without a
//! shared database. A *publisher* app declares which attributes of which
//! models it publishes; every create, update and destroy travels through a
//! broker to every *subscriber* app interested in it, which replays it into
//! its own storage or runs callbacks, and **never sees updates of a record out
//! of order**: version counters (in Redis, or memory) order the operations and
//! duplicates are recognised. A publisher killed at any point loses nothing:
//! every way of publishing runs one protocol whose intent is durable before
//! its write can be seen, and the recovery worker of any process of the app
//! finishes what a stopped publisher left (see `docs/ordering.md`), so a
//! subscriber waits for a missing operation, with alerts, and never skips one
//! by itself.
//!
//! ## Backends
//!
//! Backends are chosen at run time by URL, among those compiled in:
//!
//! | role | URL | crate | cargo feature |
//! | --- | --- | --- | --- |
//! | broker, in-process | `memory://name` | `promiscuous-memory` | always |
//! | broker, pretend mode (records, delivers nothing) | `null://` | `promiscuous-memory` | always |
//! | lock and clock, in memory | `memory://name` | `promiscuous-memory` | always |
//! | storage, in memory | [`memory::MemoryStorage`] | `promiscuous-memory` | always |
//! | broker, RabbitMQ | `amqp://user:pass@host:5672/vhost` | `promiscuous-amqp` | `amqp` |
//! | lock and clock, Redis | `redis://host:6379/?prefix=app:` | `promiscuous-redis` | `redis` |
//! | publishing and storage, sea-orm (SQLite, PostgreSQL, MySQL/MariaDB) | `sql::SqlPublisher`, `sql::SqlStorage` | `promiscuous-sql` | `sql` |
//!
//! Instances created with the same `memory://name` in one process share one
//! broker (or clock, or lock), so two apps can replicate in one test.
//!
//! ## Example
//!
//! ```
//! use std::sync::Arc;
//! use promiscuous::{memory::MemoryStorage, Promiscuous, Publish, Subscribe};
//! use serde::{Deserialize, Serialize};
//!
//! mod publisher {
//!     use super::*;
//!     /// The publisher app's user.
//!     #[derive(Debug, Clone, Serialize, Deserialize, Publish)]
//!     #[publish(to = "crowdtap/user")]
//!     pub struct User {
//!         pub id: i64,
//!         #[publish]
//!         pub name: String,
//!     }
//! }
//!
//! mod subscriber {
//!     use super::*;
//!     /// The subscriber app's copy.
//!     #[derive(Debug, Serialize, Deserialize, Subscribe)]
//!     pub struct User {
//!         pub id: i64,
//!         #[subscribe]
//!         pub name: String,
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> promiscuous::Result<()> {
//! let publisher = Promiscuous::configure()
//!     .app("crowdtap")
//!     .broker_url("memory://crate-doc")
//!     .redis_url("memory://crate-doc")
//!     .storage(Arc::new(MemoryStorage::new()))
//!     .build()
//!     .await?;
//! let replica = Arc::new(MemoryStorage::new());
//! let subscriber = Promiscuous::configure()
//!     .app("mailer")
//!     .broker_url("memory://crate-doc")
//!     .redis_url("memory://crate-doc")
//!     .storage(replica.clone())
//!     .subscriber::<subscriber::User>()
//!     .build()
//!     .await?;
//! let mut worker = subscriber.subscribe().await?;
//!
//! publisher.create(&publisher::User { id: 1, name: "Yoda".into() }).await?;
//!
//! while worker.stats().applied < 1 {
//!     tokio::time::sleep(std::time::Duration::from_millis(5)).await;
//! }
//! assert_eq!(replica.records("User")[0]["name"], "Yoda");
//! worker.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! See `README.md` for the features (attributes, virtual attributes,
//! ephemerals and observers, polymorphism, embedded documents, foreign keys,
//! namespace mapping, the central `define!` block) and `docs/` for the wire
//! format.

/// Attribute macro for implementing [`Callbacks`] (async methods in a trait).
pub use async_trait::async_trait;
pub use promiscuous_core as core;
pub use promiscuous_core::config::{
    Backend, Config, ErrorNotifier, ENV_AMQP_URL, ENV_APP, ENV_REDIS_URL,
};
pub use promiscuous_core::dead_letter::{DeadLetter, DeadLetters, Selection};
pub use promiscuous_core::model::{
    Callbacks, Change, Changes, Context, Publish, RecordId, Subscribe,
};
pub use promiscuous_core::publisher::{
    causal_scope, InitialSync, PendingWrite, Produced, Recovery, RecoveryPass, Relay, RelayPass,
    StorageSync, SyncProgress, SyncReport, SyncRequest, SyncSource, Transaction,
};
pub use promiscuous_core::status::{BrokerStatus, ClockStatus, Status, SubscriptionStatus};
pub use promiscuous_core::subscriber::{Stall, Worker, WorkerStats};
pub use promiscuous_core::traits::{
    Broker, Clock, Filter, Lock, Outbox, QueueDepth, Record, Storage,
};
pub use promiscuous_core::wire::OperationKind;
pub use promiscuous_core::{
    BackendError, BoxError, ConfigBuilder, Error, ErrorKind, Mode, Promiscuous, Result,
};
pub use promiscuous_derive::{define, Publish, Subscribe};
pub use promiscuous_memory as memory;

/// The RabbitMQ broker (feature `amqp`).
#[cfg(feature = "amqp")]
pub use promiscuous_amqp as amqp;
/// The command line an app embeds in its own binary (feature `cli`).
#[cfg(feature = "cli")]
pub use promiscuous_cli as cli;
/// The Redis lock and clock (feature `redis`).
#[cfg(feature = "redis")]
pub use promiscuous_redis as redis;
/// Publishing and subscribing sea-orm entities (feature `sql`).
#[cfg(feature = "sql")]
pub use promiscuous_sql as sql;
/// Contract testing (feature `validate`): mock export, mock publishers, `validate::publishers` / `validate::subscribers`.
#[cfg(feature = "validate")]
pub use promiscuous_validate as validate;

/// Re-exports used by the code the derive macros generate. Not a public API.
#[doc(hidden)]
pub mod __private {
    pub use async_trait::async_trait;
    pub use inventory;
    pub use promiscuous_core as core;
    pub use serde;
    pub use serde_json;
}
