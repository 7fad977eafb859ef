//! Expiring, owner-tagged locks in memory.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use promiscuous_core::traits::{Acquisition, ExpiredLock, Lock};
use promiscuous_core::BackendError;
use tokio::time::Instant;

/// A deadline far enough to never pass, for time-to-lives too large to add.
const FAR_FUTURE: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Expiring locks in a map behind a mutex.
///
/// A lock is held until its owner releases it or its time-to-live passes
/// (measured with `tokio::time`, so paused test clocks apply). An expired lock
/// stays, with its owner and recovery data, until another owner takes it over;
/// [`Lock::expired`] lists those.
#[derive(Debug, Default)]
pub struct MemoryLock {
    locks: Mutex<HashMap<String, Held>>,
}

#[derive(Debug, Clone)]
struct Held {
    owner: String,
    deadline: Instant,
    recovery: Vec<u8>,
}

fn deadline_after(now: Instant, ttl: Duration) -> Instant {
    now.checked_add(ttl)
        .or_else(|| now.checked_add(FAR_FUTURE))
        .unwrap_or(now)
}

impl MemoryLock {
    /// A lock table with every key free.
    pub fn new() -> Self {
        Self::default()
    }

    fn locks(&self) -> MutexGuard<'_, HashMap<String, Held>> {
        self.locks.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The owner currently holding `key`, if it is held and not expired.
    pub fn owner(&self, key: &str) -> Option<String> {
        let now = Instant::now();
        self.locks()
            .get(key)
            .filter(|held| held.deadline > now)
            .map(|held| held.owner.clone())
    }

    /// The recovery data attached to `key` by its holder, expired or not.
    pub fn recovery(&self, key: &str) -> Option<Vec<u8>> {
        self.locks().get(key).map(|held| held.recovery.clone())
    }
}

#[async_trait]
impl Lock for MemoryLock {
    fn name(&self) -> &'static str {
        "memory"
    }

    async fn try_acquire(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
        recovery: &[u8],
    ) -> Result<Option<Acquisition>, BackendError> {
        let now = Instant::now();
        let mut locks = self.locks();
        let acquisition = match locks.get(key) {
            Some(held) if held.deadline > now => return Ok(None),
            Some(expired) => Acquisition::TookOverExpired(ExpiredLock {
                key: key.to_owned(),
                owner: expired.owner.clone(),
                recovery: expired.recovery.clone(),
            }),
            None => Acquisition::Free,
        };
        locks.insert(
            key.to_owned(),
            Held {
                owner: owner.to_owned(),
                deadline: deadline_after(now, ttl),
                recovery: recovery.to_vec(),
            },
        );
        Ok(Some(acquisition))
    }

    async fn release(&self, key: &str, owner: &str) -> Result<bool, BackendError> {
        let now = Instant::now();
        let mut locks = self.locks();
        match locks.get(key) {
            Some(held) if held.owner == owner && held.deadline > now => {
                locks.remove(key);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn extend(&self, key: &str, owner: &str, ttl: Duration) -> Result<bool, BackendError> {
        let now = Instant::now();
        match self.locks().get_mut(key) {
            Some(held) if held.owner == owner && held.deadline > now => {
                held.deadline = deadline_after(now, ttl);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn expired(&self, prefix: &str, limit: usize) -> Result<Vec<ExpiredLock>, BackendError> {
        let now = Instant::now();
        let locks = self.locks();
        let mut expired: Vec<(&String, &Held)> = locks
            .iter()
            .filter(|(key, held)| held.deadline <= now && key.starts_with(prefix))
            .collect();
        expired.sort_by(|a, b| a.1.deadline.cmp(&b.1.deadline).then_with(|| a.0.cmp(b.0)));
        Ok(expired
            .into_iter()
            .take(limit)
            .map(|(key, held)| ExpiredLock {
                key: key.clone(),
                owner: held.owner.clone(),
                recovery: held.recovery.clone(),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn inspection_reports_holder_and_data() {
        let lock = MemoryLock::new();
        assert_eq!(lock.owner("k"), None);
        lock.try_acquire("k", "me", Duration::from_secs(60), b"data")
            .await
            .unwrap();
        assert_eq!(lock.owner("k").as_deref(), Some("me"));
        assert_eq!(lock.recovery("k"), Some(b"data".to_vec()));
        lock.try_acquire("zero", "me", Duration::ZERO, b"z")
            .await
            .unwrap();
        assert_eq!(
            lock.owner("zero"),
            None,
            "a zero time-to-live expires at once"
        );
        assert_eq!(lock.expired("", 10).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn huge_ttl_does_not_overflow() {
        let lock = MemoryLock::new();
        let got = lock
            .try_acquire("k", "me", Duration::MAX, b"")
            .await
            .unwrap();
        assert_eq!(got, Some(Acquisition::Free));
        assert!(lock.extend("k", "me", Duration::MAX).await.unwrap());
        assert_eq!(lock.owner("k").as_deref(), Some("me"));
    }
}
