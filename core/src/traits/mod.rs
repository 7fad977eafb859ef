//! The backend traits. Each is small, async, object safe and used as
//! `Arc<dyn Trait>`, so the backend is chosen at run time from configuration.
//! Every method documents its behaviour; `testkit` checks it for each backend.

mod broker;
mod clock;
mod lock;
mod outbox;
mod storage;

pub use broker::{
    Acknowledge, Broker, BrokerCapabilities, Consumer, Delivery, Disposition, QueueDepth,
    Subscription,
};
pub use clock::{
    fresh_epoch, Clock, IntentRecord, RecordedIntent, Step, Versions, INTENT_RETENTION,
};
pub use lock::{Acquisition, ExpiredLock, Lock};
pub use outbox::{Fence, Outbox, OutboxEntry};
pub use storage::{
    compare_keys, Filter, Record, Storage, StorageCapabilities, StorageTransaction, Versioned,
    VersionedWrite,
};
