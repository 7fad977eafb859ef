//! Wrappers that implement a backend trait on top of other implementations.

mod sharded_clock;

pub use sharded_clock::ShardedClock;
