//! The subscriber side: applying operations to models, and the worker that
//! pumps, orders and runs them.

mod handler;
mod router;
mod stats;
mod synchronizer;
mod worker;

pub use handler::{Applied, SubscriberHandler, TypedHandler};
pub use router::Router;
pub use stats::WorkerStats;
pub use worker::Worker;
