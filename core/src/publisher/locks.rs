//! The locks of one publication, and the one keeper that keeps them alive.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::intent::{lock_data, publication_of};
use crate::error::{Error, Result};
use crate::runtime::Runtime;
use crate::traits::Acquisition;

/// The locks a publication holds, extended every third of `lock_ttl` by a
/// background task for as long as the publication runs (however long its
/// database transaction stays open).
///
/// Dropping it stops the keeper and leaves the locks to expire: a
/// publication that stops half-way is recovered from its expired locks.
/// [`release`](Self::release) gives them back.
pub(crate) struct HeldLocks {
    rt: Arc<Runtime>,
    /// The owner tag: the publication's id.
    owner: String,
    keys: Arc<Mutex<Vec<String>>>,
    /// Set by the keeper when a lock could not be extended: recovery may
    /// have taken the publication over.
    lost: Arc<AtomicBool>,
    keeper: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for HeldLocks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeldLocks")
            .field("owner", &self.owner)
            .field("keys", &self.keys())
            .finish()
    }
}

impl HeldLocks {
    pub fn new(rt: Arc<Runtime>, owner: String) -> Self {
        Self {
            rt,
            owner,
            keys: Arc::default(),
            lost: Arc::default(),
            keeper: None,
        }
    }

    /// The keys held, in the order taken.
    pub fn keys(&self) -> Vec<String> {
        self.keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn holds(&self, key: &str) -> bool {
        self.keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .any(|k| k == key)
    }

    /// Whether a lock could not be extended while held.
    pub fn lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    /// Takes `key` (kept when already held), waiting up to `lock_timeout`.
    /// Returns the publication of a previous owner that let the lock expire,
    /// which the caller must see recovered.
    pub async fn take(&mut self, key: &str, doing: &str) -> Result<Option<String>> {
        if self.holds(key) {
            return Ok(None);
        }
        let data = lock_data(&self.owner, doing);
        let inherited = acquire(&self.rt, key, &self.owner, &data).await?;
        self.keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(key.to_owned());
        if self.keeper.is_none() {
            self.keeper = Some(tokio::spawn(keep_alive(
                self.rt.clone(),
                self.owner.clone(),
                self.keys.clone(),
                self.lost.clone(),
            )));
        }
        Ok(inherited)
    }

    /// Extends every lock held now; returns whether all were still held
    /// (false also sets [`lost`](Self::lost)).
    pub async fn verify(&self) -> bool {
        for key in self.keys() {
            match self
                .rt
                .lock
                .extend(&key, &self.owner, self.rt.config.lock_ttl)
                .await
            {
                Ok(true) => {}
                Ok(false) | Err(_) => {
                    self.lost.store(true, Ordering::SeqCst);
                    return false;
                }
            }
        }
        true
    }

    /// Stops extending the locks and returns the keys held.
    fn surrender(&mut self) -> Vec<String> {
        if let Some(keeper) = self.keeper.take() {
            keeper.abort();
        }
        std::mem::take(&mut *self.keys.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Releases every lock held.
    pub async fn release(&mut self) {
        let keys = self.surrender();
        release_all(&self.rt, &keys, &self.owner).await;
    }

    /// Releases every lock held, in the background (from a `Drop`).
    pub fn release_later(&mut self) {
        let keys = self.surrender();
        if keys.is_empty() {
            return;
        }
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let rt = self.rt.clone();
            let owner = self.owner.clone();
            handle.spawn(async move { release_all(&rt, &keys, &owner).await });
        }
    }

    /// Stops extending the locks and leaves them to expire, so a recovery
    /// worker finishes the publication.
    pub fn abandon(&mut self) {
        let keys = self.surrender();
        if !keys.is_empty() {
            tracing::warn!(publication = %self.owner, locks = ?keys, "publication left to recovery; its locks expire after lock_ttl");
        }
    }
}

impl Drop for HeldLocks {
    fn drop(&mut self) {
        // Whoever dropped it decided: released already, or left to expire.
        if let Some(keeper) = self.keeper.take() {
            keeper.abort();
        }
    }
}

/// Extends the held locks every third of their time to live.
async fn keep_alive(
    rt: Arc<Runtime>,
    owner: String,
    keys: Arc<Mutex<Vec<String>>>,
    lost: Arc<AtomicBool>,
) {
    let period = refresh_period(&rt);
    loop {
        tokio::time::sleep(period).await;
        let held = keys.lock().unwrap_or_else(PoisonError::into_inner).clone();
        for key in held {
            match rt.lock.extend(&key, &owner, rt.config.lock_ttl).await {
                Ok(true) => {}
                Ok(false) => {
                    lost.store(true, Ordering::SeqCst);
                    rt.report(&Error::LockUnavailable {
                        key,
                        waited: rt.config.lock_ttl,
                    });
                }
                Err(e) => rt.report(&Error::from(e)),
            }
        }
    }
}

/// How often held locks are extended: every third of `lock_ttl`.
fn refresh_period(rt: &Runtime) -> Duration {
    (rt.config.lock_ttl / 3).max(Duration::from_millis(1))
}

/// Releases `keys` held by `owner`, reporting failures.
pub(crate) async fn release_all(rt: &Runtime, keys: &[String], owner: &str) {
    for key in keys {
        if let Err(e) = rt.lock.release(key, owner).await {
            rt.report(&Error::from(e));
        }
    }
}

/// Takes one lock for `owner`, waiting up to `lock_timeout`; returns the
/// publication of a previous owner that let it expire.
pub(crate) async fn acquire(
    rt: &Runtime,
    key: &str,
    owner: &str,
    data: &[u8],
) -> Result<Option<String>> {
    let started = Instant::now();
    let mut pauses =
        crate::backoff::exponential(Duration::from_millis(2), Duration::from_millis(100));
    loop {
        match rt
            .lock
            .try_acquire(key, owner, rt.config.lock_ttl, data)
            .await?
        {
            Some(Acquisition::Free) => return Ok(None),
            Some(Acquisition::TookOverExpired(expired)) => {
                rt.report(&Error::LockExpired {
                    key: expired.key,
                    owner: expired.owner,
                    recovery: String::from_utf8_lossy(&expired.recovery).into_owned(),
                });
                return Ok(publication_of(&expired.recovery));
            }
            None if started.elapsed() >= rt.config.lock_timeout => {
                return Err(Error::LockUnavailable {
                    key: key.to_owned(),
                    waited: started.elapsed(),
                })
            }
            None => {
                let pause = pauses.next().unwrap_or(Duration::from_millis(100));
                tokio::time::sleep(pause).await;
            }
        }
    }
}
