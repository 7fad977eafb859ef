//! Version counters in memory.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use promiscuous_core::traits::{Clock, RecordedIntent, Step, Versions};
use promiscuous_core::BackendError;
use tokio::sync::oneshot;
use tokio::time::Instant;

const NAME: &str = "memory";

/// An intent kept: its scope, when it was recorded, and itself.
type Kept = (String, Instant, RecordedIntent);

/// Per counter, the waiters by the value they wait for.
type Waiters = HashMap<String, BTreeMap<u64, Vec<oneshot::Sender<()>>>>;

/// Version counters in a map behind a mutex.
///
/// `tick`, `read` and `advance` are each one atomic step; `wait_until` sleeps
/// until a `tick` or `advance` raises its counter to the value it waits for
/// (no polling; only the waiters whose value was reached are woken, so a
/// thousand messages waiting on one hot counter cost nothing per advance).
#[derive(Debug)]
pub struct MemoryClock {
    /// When this clock was made (its state lives as long as it does).
    epoch: u64,
    counters: Mutex<HashMap<String, u64>>,
    /// Intents by id, with their scope and when they were recorded.
    intents: Mutex<HashMap<String, Kept>>,
    waiters: Mutex<Waiters>,
}

impl Default for MemoryClock {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryClock {
    /// A clock whose counters are all 0, with a new [epoch](Clock::epoch).
    pub fn new() -> Self {
        Self {
            epoch: promiscuous_core::traits::fresh_epoch(),
            counters: Mutex::default(),
            intents: Mutex::default(),
            waiters: Mutex::default(),
        }
    }

    fn counters(&self) -> MutexGuard<'_, HashMap<String, u64>> {
        self.counters.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn waiters(&self) -> MutexGuard<'_, Waiters> {
        self.waiters.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Wakes the waiters of `changed` counters whose value was reached.
    fn wake(&self, changed: &[(String, u64)]) {
        let mut waiters = self.waiters();
        for (key, value) in changed {
            let Some(by_value) = waiters.get_mut(key) else {
                continue;
            };
            let later = by_value.split_off(&value.saturating_add(1));
            for sender in std::mem::replace(by_value, later).into_values().flatten() {
                let _ = sender.send(());
            }
            if by_value.is_empty() {
                waiters.remove(key);
            }
        }
    }

    /// The current value of `key` (0 when never touched).
    pub fn get(&self, key: &str) -> u64 {
        self.counters().get(key).copied().unwrap_or(0)
    }

    /// Every counter ever touched, with its value, sorted by key.
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.counters()
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    }

    /// The ids of the intents kept (publications not settled yet), sorted.
    pub fn intent_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.intents().keys().cloned().collect();
        ids.sort();
        ids
    }

    fn intents(&self) -> MutexGuard<'_, HashMap<String, Kept>> {
        self.intents.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Resets every counter to 0 and forgets every intent, as when the store
    /// holding them is lost.
    pub fn clear(&self) {
        self.counters().clear();
        self.intents().clear();
    }

    /// Adds one to each of `keys` in the locked map, all or nothing.
    fn increment(
        counters: &mut HashMap<String, u64>,
        keys: &[String],
    ) -> Result<Vec<u64>, BackendError> {
        let mut values = Vec::with_capacity(keys.len());
        for key in keys {
            let current = counters.get(key).copied().unwrap_or(0);
            let next = current.checked_add(1).ok_or_else(|| {
                BackendError::new(NAME, "tick", key.as_str(), "the counter is at u64::MAX")
            })?;
            values.push(next);
        }
        for (key, value) in keys.iter().zip(&values) {
            counters.insert(key.clone(), *value);
        }
        Ok(values)
    }
}

#[async_trait]
impl Clock for MemoryClock {
    fn name(&self) -> &'static str {
        NAME
    }

    fn epoch(&self) -> u64 {
        self.epoch
    }

    async fn check(&self) -> Result<(), BackendError> {
        Ok(())
    }

    async fn tick(&self, keys: &[String]) -> Result<Vec<u64>, BackendError> {
        let values = Self::increment(&mut self.counters(), keys)?;
        let changed: Vec<(String, u64)> =
            keys.iter().cloned().zip(values.iter().copied()).collect();
        self.wake(&changed);
        Ok(values)
    }

    async fn take(&self, step: &Step<'_>) -> Result<Versions, BackendError> {
        let mut counters = self.counters();
        let read = step
            .reads
            .iter()
            .map(|key| counters.get(key).copied().unwrap_or(0))
            .collect();
        let ticked = Self::increment(&mut counters, step.increments)?;
        let versions = Versions { ticked, read };
        // Recorded while the counters are still locked: nobody sees the
        // versions without the intent.
        if let Some(intent) = step.intent {
            self.intents().insert(
                intent.id.to_owned(),
                (
                    intent.scope.to_owned(),
                    Instant::now(),
                    RecordedIntent {
                        id: intent.id.to_owned(),
                        data: intent.data.to_vec(),
                        versions: versions.clone(),
                    },
                ),
            );
        }
        drop(counters);
        let changed: Vec<(String, u64)> = step
            .increments
            .iter()
            .cloned()
            .zip(versions.ticked.iter().copied())
            .collect();
        self.wake(&changed);
        Ok(versions)
    }

    async fn intent(&self, id: &str) -> Result<Option<RecordedIntent>, BackendError> {
        Ok(self.intents().get(id).map(|(_, _, intent)| intent.clone()))
    }

    async fn stale_intents(
        &self,
        scope: &str,
        age: Duration,
        limit: usize,
    ) -> Result<Vec<RecordedIntent>, BackendError> {
        let now = Instant::now();
        let intents = self.intents();
        let mut stale: Vec<&Kept> = intents
            .values()
            .filter(|(kept_scope, recorded, _)| {
                kept_scope == scope && now.saturating_duration_since(*recorded) > age
            })
            .collect();
        stale.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.2.id.cmp(&b.2.id)));
        Ok(stale
            .into_iter()
            .take(limit)
            .map(|(_, _, intent)| intent.clone())
            .collect())
    }

    async fn forget(&self, ids: &[String]) -> Result<(), BackendError> {
        let mut intents = self.intents();
        for id in ids {
            intents.remove(id);
        }
        Ok(())
    }

    async fn read(&self, keys: &[String]) -> Result<Vec<u64>, BackendError> {
        let counters = self.counters();
        Ok(keys
            .iter()
            .map(|key| counters.get(key).copied().unwrap_or(0))
            .collect())
    }

    async fn advance(&self, targets: &[(String, u64)]) -> Result<(), BackendError> {
        let mut counters = self.counters();
        let mut changed = Vec::with_capacity(targets.len());
        for (key, target) in targets {
            let counter = counters.entry(key.clone()).or_insert(0);
            if *target > *counter {
                *counter = *target;
                changed.push((key.clone(), *target));
            }
        }
        drop(counters);
        self.wake(&changed);
        Ok(())
    }

    async fn seed(&self, targets: &[(String, u64)]) -> Result<usize, BackendError> {
        let mut counters = self.counters();
        let mut changed = Vec::with_capacity(targets.len());
        for (key, target) in targets {
            let counter = counters.entry(key.clone()).or_insert(0);
            if *counter == 0 && *target > 0 {
                *counter = *target;
                changed.push((key.clone(), *target));
            }
        }
        drop(counters);
        self.wake(&changed);
        Ok(changed.len())
    }

    async fn scan(
        &self,
        prefix: &str,
        cursor: u64,
    ) -> Result<(Vec<(String, u64)>, u64), BackendError> {
        const PAGE: usize = 1000;
        let counters = self.counters();
        let mut matching: Vec<(String, u64)> = counters
            .iter()
            .filter(|(key, _)| key.starts_with(prefix))
            .map(|(key, value)| (key.clone(), *value))
            .collect();
        drop(counters);
        matching.sort();
        let start = usize::try_from(cursor).unwrap_or(usize::MAX);
        let page: Vec<(String, u64)> = matching.iter().skip(start).take(PAGE).cloned().collect();
        let next = start.saturating_add(page.len());
        let next = if next >= matching.len() {
            0
        } else {
            next as u64
        };
        Ok((page, next))
    }

    async fn wait_until(
        &self,
        key: &str,
        value: u64,
        timeout: Duration,
    ) -> Result<u64, BackendError> {
        let reached = {
            // Registered while the counters are locked: a change after the
            // read finds the waiter.
            let counters = self.counters();
            let current = counters.get(key).copied().unwrap_or(0);
            if current >= value {
                return Ok(current);
            }
            let (sender, receiver) = oneshot::channel();
            let mut waiters = self.waiters();
            let same = waiters
                .entry(key.to_owned())
                .or_default()
                .entry(value)
                .or_default();
            // Waiters that timed out are gone: forget them.
            same.retain(|s| !s.is_closed());
            same.push(sender);
            receiver
        };
        match Instant::now().checked_add(timeout) {
            Some(deadline) => {
                let _ = tokio::time::timeout_at(deadline, reached).await;
            }
            None => {
                let _ = reached.await;
            }
        }
        Ok(self.get(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn inspection_and_clear() {
        let clock = MemoryClock::new();
        clock.tick(&["a".into(), "b".into()]).await.unwrap();
        clock.advance(&[("b".into(), 5)]).await.unwrap();
        assert_eq!((clock.get("a"), clock.get("b"), clock.get("c")), (1, 5, 0));
        assert_eq!(
            clock.snapshot().into_iter().collect::<Vec<_>>(),
            vec![("a".to_owned(), 1), ("b".to_owned(), 5)]
        );
        clock.clear();
        assert!(clock.snapshot().is_empty());
        assert_eq!(clock.tick(&["b".into()]).await.unwrap(), vec![1]);
    }

    #[tokio::test]
    async fn tick_is_all_or_nothing_on_overflow() {
        let clock = MemoryClock::new();
        clock.advance(&[("max".into(), u64::MAX)]).await.unwrap();
        let err = clock.tick(&["a".into(), "max".into()]).await.unwrap_err();
        assert_eq!(
            (err.backend, err.operation, err.target.as_str()),
            ("memory", "tick", "max")
        );
        assert_eq!(clock.get("a"), 0);
    }

    #[tokio::test]
    async fn wait_until_without_deadline_is_woken() {
        let clock = std::sync::Arc::new(MemoryClock::new());
        let waiter = {
            let clock = std::sync::Arc::clone(&clock);
            tokio::spawn(async move { clock.wait_until("k", 1, Duration::MAX).await })
        };
        tokio::task::yield_now().await;
        clock.tick(&["k".into()]).await.unwrap();
        assert_eq!(waiter.await.unwrap().unwrap(), 1);
    }
}
