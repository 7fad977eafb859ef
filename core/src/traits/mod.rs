//! The four backend traits. Each is small, async, object safe and used as
//! `Arc<dyn Trait>`, so the backend is chosen at run time from configuration.
//! Every method documents its behaviour; `testkit` checks it for each backend.

mod broker;
mod clock;
mod lock;
mod storage;

pub use broker::{
    Acknowledge, Broker, BrokerCapabilities, Consumer, Delivery, Disposition, Subscription,
};
pub use clock::Clock;
pub use lock::{Acquisition, ExpiredLock, Lock};
pub use storage::{Filter, Record, Storage, StorageCapabilities, StorageTransaction};
