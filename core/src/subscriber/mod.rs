//! The subscriber side: applying operations to models, and the worker that
//! pumps, orders and runs them.

mod apply;
mod baseline;
mod epochs;
mod handler;
mod recovery;
mod restore;
mod retry;
mod router;
mod stats;
mod synchronizer;
mod window;
mod worker;

pub use handler::{AfterCommit, Applied, Outcome, SubscriberHandler, TypedHandler};
pub use recovery::Stall;
pub use router::Router;
pub use stats::WorkerStats;
pub use worker::Worker;
