//! In-memory backends for promiscuous: the Null and in-process brokers, and
//! memory clock, lock and storage.
//!
//! - [`NullBroker`] (`null://`): pretend mode. Publishing is accepted and
//!   recorded for inspection; nothing is delivered.
//! - [`InProcessBroker`] (`memory://name`): queues, pattern bindings, prefetch,
//!   acknowledgements, delayed retries and dead letters inside the process,
//!   with inspection helpers for tests.
//! - [`MemoryClock`] and [`MemoryLock`] (`memory://name`): version counters and
//!   expiring locks for a single process.
//! - [`MemoryStorage`]: records of each model in insertion order.
//!
//! The crate registers a [`BackendFactory`] for the `memory` scheme (broker,
//! clock and lock) and for `null` (broker). Every `memory://name` URL of the
//! process reaches the same instance (see [`named`]), so two app instances
//! configured with `memory://bus1` talk to each other.
//!
//! ```
//! use std::sync::Arc;
//!
//! use promiscuous_core::backend::factory_for;
//! use promiscuous_core::traits::{Broker, Clock, Subscription};
//! use promiscuous_core::wire::EndpointPattern;
//! use promiscuous_memory::{named, InProcessBroker};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let broker = InProcessBroker::new();
//! let mut consumer = broker
//!     .subscribe(&Subscription {
//!         queue: "analytics".into(),
//!         bindings: vec![EndpointPattern::parse("*/user")?],
//!         prefetch: 10,
//!     })
//!     .await?;
//! broker.publish("crowdtap/user", br#"{"format":1}"#).await?;
//! broker.publish("crowdtap/post", b"not routed to analytics").await?;
//!
//! let delivery = consumer.next().await.ok_or("the broker was closed")??;
//! assert_eq!(delivery.endpoint, "crowdtap/user");
//! assert_eq!(delivery.attempt, 0);
//! delivery.ack().await?;
//! assert_eq!(broker.queue_len("analytics"), 0);
//!
//! // URLs name shared instances: both configurations get the same clock.
//! let factory = factory_for("memory://bus1").ok_or("memory scheme not registered")?;
//! let build_clock = factory.clock.ok_or("no clock")?;
//! let clock: Arc<dyn Clock> = build_clock("memory://bus1").await?;
//! clock.tick(&["crowdtap/user#1".to_owned()]).await?;
//! assert_eq!(named::clock("bus1").get("crowdtap/user#1"), 1);
//! # Ok(())
//! # }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use promiscuous_core::backend::{BackendFactory, BrokerFactory, ClockFactory, LockFactory};
use promiscuous_core::traits::{Broker, Clock, Lock};
use promiscuous_core::BackendError;

mod clock;
mod in_process_broker;
mod lock;
pub mod named;
mod null_broker;
mod storage;

pub use clock::MemoryClock;
pub use in_process_broker::InProcessBroker;
pub use lock::MemoryLock;
pub use null_broker::{NullBroker, PublishedMessage};
pub use promiscuous_core::dead_letter::DeadLetter;
pub use storage::MemoryStorage;

/// What a factory returns: a ready future, as building in memory never waits.
type Built<T> = Pin<Box<dyn Future<Output = Result<Arc<T>, BackendError>> + Send + 'static>>;

fn ready<T: ?Sized + Send + Sync + 'static>(value: Arc<T>) -> Built<T> {
    Box::pin(std::future::ready(Ok(value)))
}

fn memory_broker(url: &str) -> Built<dyn Broker> {
    ready(named::broker(named::name_of(url)) as Arc<dyn Broker>)
}

fn memory_clock(url: &str) -> Built<dyn Clock> {
    ready(named::clock(named::name_of(url)) as Arc<dyn Clock>)
}

fn memory_lock(url: &str) -> Built<dyn Lock> {
    ready(named::lock(named::name_of(url)) as Arc<dyn Lock>)
}

fn null_broker(url: &str) -> Built<dyn Broker> {
    ready(named::null_broker(named::name_of(url)) as Arc<dyn Broker>)
}

inventory::submit! {
    BackendFactory {
        scheme: "memory",
        feature: "memory",
        broker: Some(memory_broker as BrokerFactory),
        clock: Some(memory_clock as ClockFactory),
        lock: Some(memory_lock as LockFactory),
    }
}

inventory::submit! {
    BackendFactory {
        scheme: "null",
        feature: "memory",
        broker: Some(null_broker as BrokerFactory),
        clock: None,
        lock: None,
    }
}
