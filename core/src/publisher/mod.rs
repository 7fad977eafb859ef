//! The publisher side: lock, clock, write, read back, publish, unlock.
//!
//! [`Promiscuous::publish_write`](crate::Promiscuous::publish_write) is the
//! pipeline any adapter wraps its writes in; `records` builds the typed
//! `create`/`update`/`destroy` on top of it for writes through a [`Storage`](crate::traits::Storage).

mod pipeline;
mod records;
mod scope;
mod staged;
mod transaction;

pub use pipeline::{PendingWrite, Produced};
pub use scope::{causal_scope, in_causal_scope};
pub use staged::{Prepared, Staged};
pub use transaction::Transaction;
