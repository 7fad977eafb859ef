//! The publisher side: one publish protocol (`publication`) that every way
//! of publishing runs, the recovery worker that finishes the publications of
//! publishers that stopped, and the outbox relay.
//!
//! - `create`/`update`/`destroy`/`update_where`/`destroy_where` and
//!   [`Transaction`] write through the configured [`Storage`](crate::traits::Storage);
//! - [`Promiscuous::publish_write`](crate::Promiscuous::publish_write) wraps
//!   a write made by your own code;
//! - [`Staged`] serves adapters whose database transaction learns its ids
//!   as it goes (the SQL adapter);
//! - `publish` (ephemerals), `sync` and [`InitialSync`] publish state
//!   without writing.

mod baseline;
mod intent;
mod locks;
mod pipeline;
mod plan;
mod publication;
mod records;
mod recovery;
mod relay;
mod scope;
mod send;
mod staged;
mod sweeper;
mod sync;
mod sync_source;
mod transaction;

pub use pipeline::{PendingWrite, Produced};
pub use recovery::{Recovery, RecoveryPass};
pub use relay::{Relay, RelayPass, RunningRelay};
pub use scope::{causal_scope, in_causal_scope};
pub use staged::{Prepared, Staged};
pub use sync::{InitialSync, SyncProgress, SyncReport};
pub use sync_source::{StorageSync, SyncRequest, SyncSource};
pub use transaction::Transaction;

pub(crate) use recovery::run_in_background as run_recovery;
pub(crate) use sweeper::Sweeper;
