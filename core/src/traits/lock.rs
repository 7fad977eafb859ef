//! Expiring, owner-tagged locks with recovery data.

use std::fmt::Debug;
use std::time::Duration;

use async_trait::async_trait;

use crate::error::BackendError;

/// A lock whose owner let it expire without releasing it (a crashed publisher).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiredLock {
    /// The lock key.
    pub key: String,
    /// The owner that let it expire.
    pub owner: String,
    /// The recovery data that owner attached.
    pub recovery: Vec<u8>,
}

/// How a lock was acquired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acquisition {
    /// The lock was free.
    Free,
    /// The lock had expired in another owner's hands: its data is handed over
    /// so the new owner can finish or undo the previous owner's work.
    TookOverExpired(ExpiredLock),
}

/// Expiring locks on keys.
#[async_trait]
pub trait Lock: Send + Sync + Debug + 'static {
    /// Short name for logs and errors (`memory`, `redis`).
    fn name(&self) -> &'static str;

    /// Tries once to take `key` for `owner` during `ttl`, attaching `recovery` data.
    ///
    /// Behaviour: returns `None` while another owner holds an unexpired lock;
    /// `Some(Free)` when it was free or released; `Some(TookOverExpired)` when it
    /// had expired unreleased, which also removes it from [`expired`](Lock::expired).
    async fn try_acquire(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
        recovery: &[u8],
    ) -> Result<Option<Acquisition>, BackendError>;

    /// Releases `key` if `owner` holds it; returns whether it did.
    ///
    /// Behaviour: a lock that expired, or that another owner took over, is not
    /// released and `false` is returned.
    async fn release(&self, key: &str, owner: &str) -> Result<bool, BackendError>;

    /// Extends `owner`'s lock on `key` to `ttl` from now; returns whether it did.
    async fn extend(&self, key: &str, owner: &str, ttl: Duration) -> Result<bool, BackendError>;

    /// Locks whose keys start with `prefix` that expired without being released,
    /// oldest first, at most `limit`.
    async fn expired(&self, prefix: &str, limit: usize) -> Result<Vec<ExpiredLock>, BackendError>;
}
