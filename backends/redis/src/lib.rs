//! Redis clock and lock for promiscuous: version counters and expiring locks
//! shared by every process that uses the same Redis server and prefix.
//!
//! - [`RedisClock`]: the version counters that order operations. `tick`,
//!   `read` and `advance` are each one atomic Lua script; `wait_until` is
//!   woken through Redis pub/sub by an `advance` from any process.
//! - [`RedisLock`]: owner-tagged locks with a time-to-live and recovery data;
//!   a lock that expired unreleased is handed over to the next owner and
//!   listed by [`Lock::expired`].
//!
//! The crate registers a [`BackendFactory`] for the `redis` scheme (clock and
//! lock; `rediss` URLs fall back to it in the core, but TLS needs a TLS
//! feature of the `redis` crate, which this crate does not enable), so
//! `Promiscuous::configure().redis_url("redis://…")` builds both from a URL.
//!
//! # URL
//!
//! `redis://[[user]:password@]host[:port][/db][?prefix=…]`. Everything but
//! `prefix` is the `redis` crate's (other query parameters, such as
//! `protocol=resp3`, are passed on). `prefix` (default [`DEFAULT_PREFIX`],
//! percent-encoded) namespaces every key, so several deployments can share
//! one server. Errors and `Debug` show the URL with its password replaced by
//! `***`.
//!
//! # Keys
//!
//! With the default prefix `promiscuous:`:
//!
//! | Key | Type | Holds |
//! |-----|------|-------|
//! | `promiscuous:clock:<key>` | string | the counter `<key>`, in decimal |
//! | `promiscuous:epoch` | string | the epoch (below) |
//! | `promiscuous:advanced` | pub/sub channel | each `advance`'s raised counter keys (full Redis keys), as a JSON array |
//! | `promiscuous:lock:<key>` | string, with a ms time-to-live | the owner of the held lock `<key>` |
//! | `promiscuous:lock-owner` | hash | lock `<key>` → owner, until released |
//! | `promiscuous:lock-data` | hash | lock `<key>` → recovery data, until released |
//! | `promiscuous:lock-expiry` | sorted set | lock `<key>` scored by its deadline (ms, server `TIME`) |
//!
//! A lock whose `lock:<key>` is gone but which is still in `lock-owner` expired
//! unreleased: its owner crashed or stalled. The scripts read keys they are
//! not given, so the server must be a single Redis (or a primary), not a cluster.
//!
//! # The epoch
//!
//! Counters only go up; if Redis loses them (restarted without persistence,
//! flushed), publishers start again from 1, and subscribers that already
//! applied higher versions must not compare the new versions with the old.
//! So when a [`RedisClock`] connects it reads the key `<prefix>epoch`,
//! creating it when absent (`SET NX`) from the server's time, and every
//! script compares it with the value seen at connect. When it is gone or
//! different, the call changes nothing and fails with a [`BackendError`] for
//! which [`is_state_lost`](BackendError::is_state_lost) is true: the process
//! must restart. Only `connect` creates the epoch: a clock connected after
//! the loss works again, on the new, empty state, under a later
//! [`epoch`](promiscuous_core::traits::Clock::epoch) (the creation time in
//! microseconds) that every message carries, so subscribers keep the new
//! versions apart from the old (see the operations guide). Creating an epoch
//! is logged as a warning: expected on a first start, a sign of a lost state
//! otherwise.
//!
//! # Connections
//!
//! Commands go through one [`redis::aio::ConnectionManager`] per clock or lock,
//! which reconnects by itself after a dropped connection; the call that saw
//! the drop fails with a temporary error (I/O errors, refused or dropped
//! connections, timeouts, a server loading or busy are temporary; the rest is
//! permanent). `connect` checks the server answers a `PING`, so a wrong or
//! unreachable URL fails at start-up with a temporary error naming it. Each
//! clock also runs a listener task with its own pub/sub connection; when that
//! connection drops it reconnects with a backoff (100 ms doubling to 5 s) and
//! then wakes every waiter to re-read, as wake-ups may have been missed. The
//! task stops when the clock is dropped.
//!
//! # Example
//!
//! The `redis` scheme is registered (no server needed):
//!
//! ```
//! use promiscuous_core::backend::factory_for;
//!
//! let factory = factory_for("redis://127.0.0.1:6379/").expect("redis is registered");
//! assert!(factory.clock.is_some() && factory.lock.is_some() && factory.broker.is_none());
//! assert_eq!(
//!     promiscuous_redis::DEFAULT_PREFIX,
//!     "promiscuous:",
//!     "the prefix when the URL has none"
//! );
//! ```
//!
//! Against a running server:
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use promiscuous_core::traits::{Acquisition, Clock, Lock};
//! use promiscuous_redis::{RedisClock, RedisLock};
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let url = "redis://127.0.0.1:6379/?prefix=example:";
//! let clock = RedisClock::connect(url).await?;
//! let key = "crowdtap/user#1".to_owned();
//! let version = clock.tick(&[key.clone()]).await?[0];
//!
//! // Another process (here, another connection) waits for that version.
//! let subscriber = RedisClock::connect(url).await?;
//! let targets = [(key.clone(), version)];
//! let (reached, advanced) = tokio::join!(
//!     subscriber.wait_until(&key, version, Duration::from_secs(5)),
//!     clock.advance(&targets),
//! );
//! advanced?;
//! assert!(reached? >= version);
//!
//! let lock = RedisLock::connect(url).await?;
//! let ttl = Duration::from_secs(10);
//! assert_eq!(
//!     lock.try_acquire("crowdtap/user/1", "worker-1", ttl, b"publishing v1").await?,
//!     Some(Acquisition::Free)
//! );
//! assert_eq!(lock.try_acquire("crowdtap/user/1", "worker-2", ttl, b"").await?, None);
//! assert!(lock.release("crowdtap/user/1", "worker-1").await?);
//! # Ok(())
//! # }
//! ```

use std::sync::Arc;

use futures::future::{BoxFuture, FutureExt};
use promiscuous_core::backend::{BackendFactory, ClockFactory, LockFactory};
use promiscuous_core::traits::{Clock, Lock};
use promiscuous_core::BackendError;

mod clock;
mod connection;
mod lock;
mod scripts;
mod url;
mod waiters;

pub use clock::RedisClock;
pub use lock::RedisLock;
pub use url::DEFAULT_PREFIX;

fn redis_clock(url: &str) -> BoxFuture<'static, Result<Arc<dyn Clock>, BackendError>> {
    let url = url.to_owned();
    async move { Ok(Arc::new(RedisClock::connect(&url).await?) as Arc<dyn Clock>) }.boxed()
}

fn redis_lock(url: &str) -> BoxFuture<'static, Result<Arc<dyn Lock>, BackendError>> {
    let url = url.to_owned();
    async move { Ok(Arc::new(RedisLock::connect(&url).await?) as Arc<dyn Lock>) }.boxed()
}

inventory::submit! {
    BackendFactory {
        scheme: "redis",
        feature: "redis",
        broker: None,
        clock: Some(redis_clock as ClockFactory),
        lock: Some(redis_lock as LockFactory),
    }
}
