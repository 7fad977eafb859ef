//! A process that can be killed at a chosen backend call, for crash tests.
//!
//! Wrap the backends of an instance with [`Process::storage`],
//! [`Process::clock`], [`Process::lock`] and [`Process::broker`]: every call
//! through them is counted, and from the chosen call on, calls never return,
//! as if the process had stopped right there. Whatever the instance does
//! afterwards (a lock keeper, a `Drop` releasing locks) reaches no backend,
//! exactly as after a `kill -9`. Another instance on the same backends then
//! plays the processes that survive.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use crate::error::BackendError;
use crate::traits::Record;
use crate::traits::{
    Acquisition, Broker, BrokerCapabilities, Clock, Consumer, ExpiredLock, Filter, Lock, Outbox,
    RecordedIntent, Step, Storage, StorageCapabilities, StorageTransaction, Subscription,
    Versioned, VersionedWrite, Versions,
};

/// Where a [`Process`] dies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillAt {
    /// Never.
    Never,
    /// Call `n` (counted from 0) never reaches its backend.
    Before(u64),
    /// Call `n` reaches its backend, but its answer never comes back.
    After(u64),
}

#[derive(Debug)]
struct State {
    at: KillAt,
    /// How long each write to a storage is held after it is made.
    slow_writes: Duration,
    /// Calls that block until the process is resumed.
    stalled_calls: &'static [&'static str],
    resumed: tokio::sync::watch::Sender<bool>,
    calls: AtomicU64,
    killed: AtomicBool,
    died: tokio::sync::Notify,
    log: Mutex<Vec<&'static str>>,
}

/// A process that dies at a chosen backend call. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Process {
    state: Arc<State>,
}

impl Process {
    /// A process that dies as `at` says.
    pub fn dying(at: KillAt) -> Self {
        Self::new(at, Duration::ZERO, &[])
    }

    /// A process that never dies, whose storage writes each take `delay`
    /// longer (held after the write, so its transaction stays open): for
    /// races between processes.
    pub fn slow(delay: Duration) -> Self {
        Self::new(KillAt::Never, delay, &[])
    }

    /// A process that never dies, whose calls named in `calls`
    /// (`"storage.write_versioned"`, `"lock.extend"`...) block until
    /// [`Process::resume`]: a process that pauses (a long garbage
    /// collection, a frozen VM), then comes back.
    pub fn stalling(calls: &'static [&'static str]) -> Self {
        Self::new(KillAt::Never, Duration::ZERO, calls)
    }

    /// Lets the calls of a [`Process::stalling`] through, now and from now on.
    pub fn resume(&self) {
        self.state.resumed.send_replace(true);
    }

    fn new(at: KillAt, slow_writes: Duration, stalled_calls: &'static [&'static str]) -> Self {
        Self {
            state: Arc::new(State {
                at,
                slow_writes,
                stalled_calls,
                resumed: tokio::sync::watch::Sender::new(false),
                calls: AtomicU64::new(0),
                killed: AtomicBool::new(false),
                died: tokio::sync::Notify::new(),
                log: Mutex::default(),
            }),
        }
    }

    /// Whether it died.
    pub fn is_killed(&self) -> bool {
        self.state.killed.load(Ordering::SeqCst)
    }

    /// Resolves once the process died.
    pub async fn killed(&self) {
        loop {
            let died = self.state.died.notified();
            if self.is_killed() {
                return;
            }
            died.await;
        }
    }

    fn die(&self) {
        self.state.killed.store(true, Ordering::SeqCst);
        self.state.died.notify_waiters();
    }

    /// The calls made, in order (`storage.insert`, `clock.take`...), the
    /// fatal one included.
    pub fn calls(&self) -> Vec<&'static str> {
        self.state
            .log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Runs one backend call, or never returns once the process died.
    async fn call<T>(&self, name: &'static str, work: impl Future<Output = T>) -> T {
        if self.is_killed() {
            return std::future::pending().await;
        }
        let n = self.state.calls.fetch_add(1, Ordering::SeqCst);
        self.state
            .log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(name);
        match self.state.at {
            KillAt::Before(k) if n >= k => {
                self.die();
                std::future::pending().await
            }
            KillAt::After(k) if n >= k => {
                let _ = work.await;
                self.die();
                std::future::pending().await
            }
            _ => {
                if self.state.stalled_calls.contains(&name) {
                    // The sender lives in the state, so waiting cannot fail.
                    let _ = self.state.resumed.subscribe().wait_for(|r| *r).await;
                }
                let done = work.await;
                if !self.state.slow_writes.is_zero() && is_write(name) {
                    tokio::time::sleep(self.state.slow_writes).await;
                }
                done
            }
        }
    }

    /// `inner`, dying with this process.
    pub fn storage(&self, inner: Arc<dyn Storage>) -> Arc<dyn Storage> {
        Arc::new(KillableStorage {
            process: self.clone(),
            inner: Inner::Store(inner),
        })
    }

    /// `inner`, dying with this process.
    pub fn clock(&self, inner: Arc<dyn Clock>) -> Arc<dyn Clock> {
        Arc::new(KillableClock {
            process: self.clone(),
            inner,
        })
    }

    /// `inner`, dying with this process.
    pub fn lock(&self, inner: Arc<dyn Lock>) -> Arc<dyn Lock> {
        Arc::new(KillableLock {
            process: self.clone(),
            inner,
        })
    }

    /// `inner`, dying with this process.
    pub fn broker(&self, inner: Arc<dyn Broker>) -> Arc<dyn Broker> {
        Arc::new(KillableBroker {
            process: self.clone(),
            inner,
        })
    }
}

/// Whether a call writes records.
fn is_write(name: &str) -> bool {
    matches!(
        name,
        "storage.insert"
            | "storage.update"
            | "storage.upsert"
            | "storage.delete"
            | "storage.write_versioned"
    )
}

#[derive(Debug)]
struct KillableClock {
    process: Process,
    inner: Arc<dyn Clock>,
}

#[async_trait]
impl Clock for KillableClock {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn epoch(&self) -> u64 {
        self.inner.epoch()
    }
    async fn check(&self) -> Result<(), BackendError> {
        self.process.call("clock.check", self.inner.check()).await
    }
    async fn seed(&self, targets: &[(String, u64)]) -> Result<usize, BackendError> {
        self.process
            .call("clock.seed", self.inner.seed(targets))
            .await
    }
    async fn scan(
        &self,
        prefix: &str,
        cursor: u64,
    ) -> Result<(Vec<(String, u64)>, u64), BackendError> {
        self.process
            .call("clock.scan", self.inner.scan(prefix, cursor))
            .await
    }
    async fn tick(&self, keys: &[String]) -> Result<Vec<u64>, BackendError> {
        self.process.call("clock.tick", self.inner.tick(keys)).await
    }
    async fn read(&self, keys: &[String]) -> Result<Vec<u64>, BackendError> {
        self.process.call("clock.read", self.inner.read(keys)).await
    }
    async fn take(&self, step: &Step<'_>) -> Result<Versions, BackendError> {
        self.process.call("clock.take", self.inner.take(step)).await
    }
    async fn intent(&self, id: &str) -> Result<Option<RecordedIntent>, BackendError> {
        self.process
            .call("clock.intent", self.inner.intent(id))
            .await
    }
    async fn forget(&self, ids: &[String]) -> Result<(), BackendError> {
        self.process
            .call("clock.forget", self.inner.forget(ids))
            .await
    }
    async fn stale_intents(
        &self,
        scope: &str,
        age: Duration,
        limit: usize,
    ) -> Result<Vec<RecordedIntent>, BackendError> {
        self.process
            .call(
                "clock.stale_intents",
                self.inner.stale_intents(scope, age, limit),
            )
            .await
    }
    async fn advance(&self, targets: &[(String, u64)]) -> Result<(), BackendError> {
        self.process
            .call("clock.advance", self.inner.advance(targets))
            .await
    }
    async fn wait_until(
        &self,
        key: &str,
        value: u64,
        timeout: Duration,
    ) -> Result<u64, BackendError> {
        self.process
            .call(
                "clock.wait_until",
                self.inner.wait_until(key, value, timeout),
            )
            .await
    }
}

#[derive(Debug)]
struct KillableLock {
    process: Process,
    inner: Arc<dyn Lock>,
}

#[async_trait]
impl Lock for KillableLock {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    async fn try_acquire(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
        recovery: &[u8],
    ) -> Result<Option<Acquisition>, BackendError> {
        self.process
            .call(
                "lock.try_acquire",
                self.inner.try_acquire(key, owner, ttl, recovery),
            )
            .await
    }
    async fn release(&self, key: &str, owner: &str) -> Result<bool, BackendError> {
        self.process
            .call("lock.release", self.inner.release(key, owner))
            .await
    }
    async fn extend(&self, key: &str, owner: &str, ttl: Duration) -> Result<bool, BackendError> {
        self.process
            .call("lock.extend", self.inner.extend(key, owner, ttl))
            .await
    }
    async fn expired(&self, prefix: &str, limit: usize) -> Result<Vec<ExpiredLock>, BackendError> {
        self.process
            .call("lock.expired", self.inner.expired(prefix, limit))
            .await
    }
}

#[derive(Debug)]
struct KillableBroker {
    process: Process,
    inner: Arc<dyn Broker>,
}

#[async_trait]
impl Broker for KillableBroker {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn capabilities(&self) -> BrokerCapabilities {
        self.inner.capabilities()
    }
    async fn publish(&self, endpoint: &str, payload: &[u8]) -> Result<(), BackendError> {
        self.process
            .call("broker.publish", self.inner.publish(endpoint, payload))
            .await
    }
    async fn subscribe(
        &self,
        subscription: &Subscription,
    ) -> Result<Box<dyn Consumer>, BackendError> {
        self.process
            .call("broker.subscribe", self.inner.subscribe(subscription))
            .await
    }
    fn dead_letter_store(&self) -> Option<&dyn crate::dead_letter::DeadLetterStore> {
        self.inner.dead_letter_store()
    }

    fn healthy(&self) -> bool {
        !self.process.is_killed() && self.inner.healthy()
    }
    async fn close(&self) -> Result<(), BackendError> {
        self.process.call("broker.close", self.inner.close()).await
    }
}

/// A storage, or an open transaction of one.
#[derive(Debug)]
enum Inner {
    Store(Arc<dyn Storage>),
    Transaction(Box<dyn StorageTransaction>),
}

impl Inner {
    fn storage(&self) -> &dyn Storage {
        match self {
            Inner::Store(store) => store.as_ref(),
            Inner::Transaction(tx) => tx.storage(),
        }
    }
}

#[derive(Debug)]
struct KillableStorage {
    process: Process,
    inner: Inner,
}

#[async_trait]
impl Storage for KillableStorage {
    fn name(&self) -> &'static str {
        self.inner.storage().name()
    }
    fn capabilities(&self) -> StorageCapabilities {
        self.inner.storage().capabilities()
    }
    fn key_field(&self, model: &str) -> String {
        self.inner.storage().key_field(model)
    }
    async fn find(
        &self,
        model: &str,
        filter: &Filter,
        limit: usize,
    ) -> Result<Vec<Record>, BackendError> {
        let inner = self.inner.storage();
        self.process
            .call("storage.find", inner.find(model, filter, limit))
            .await
    }
    async fn scan(
        &self,
        model: &str,
        filter: &Filter,
        after: Option<&Value>,
        limit: usize,
    ) -> Result<Vec<Record>, BackendError> {
        let inner = self.inner.storage();
        self.process
            .call("storage.scan", inner.scan(model, filter, after, limit))
            .await
    }
    async fn insert(&self, model: &str, record: &Record) -> Result<(), BackendError> {
        let inner = self.inner.storage();
        self.process
            .call("storage.insert", inner.insert(model, record))
            .await
    }
    async fn update(
        &self,
        model: &str,
        filter: &Filter,
        record: &Record,
    ) -> Result<u64, BackendError> {
        let inner = self.inner.storage();
        self.process
            .call("storage.update", inner.update(model, filter, record))
            .await
    }
    async fn upsert(&self, model: &str, record: &Record) -> Result<bool, BackendError> {
        let inner = self.inner.storage();
        self.process
            .call("storage.upsert", inner.upsert(model, record))
            .await
    }
    async fn delete(&self, model: &str, filter: &Filter) -> Result<u64, BackendError> {
        let inner = self.inner.storage();
        self.process
            .call("storage.delete", inner.delete(model, filter))
            .await
    }
    async fn write_versioned(
        &self,
        model: &str,
        key: &Value,
        write: VersionedWrite,
        version: u128,
    ) -> Result<Versioned, BackendError> {
        let inner = self.inner.storage();
        self.process
            .call(
                "storage.write_versioned",
                inner.write_versioned(model, key, write, version),
            )
            .await
    }
    async fn begin(&self) -> Result<Option<Box<dyn StorageTransaction>>, BackendError> {
        let inner = self.inner.storage();
        let begun = self.process.call("storage.begin", inner.begin()).await?;
        Ok(begun.map(|tx| {
            Box::new(KillableStorage {
                process: self.process.clone(),
                inner: Inner::Transaction(tx),
            }) as Box<dyn StorageTransaction>
        }))
    }
    fn outbox(&self) -> Option<Arc<dyn Outbox>> {
        // Whoever settles the outbox after the process died is another process.
        self.inner.storage().outbox()
    }
}

#[async_trait]
impl StorageTransaction for KillableStorage {
    fn storage(&self) -> &dyn Storage {
        self
    }
    async fn applied_versions(&self, keys: &[String]) -> Result<Vec<u64>, BackendError> {
        let Inner::Transaction(tx) = &self.inner else {
            return Ok(vec![0; keys.len()]);
        };
        self.process
            .call("transaction.applied_versions", tx.applied_versions(keys))
            .await
    }
    async fn record_applied(&self, targets: &[(String, u64)]) -> Result<(), BackendError> {
        let Inner::Transaction(tx) = &self.inner else {
            return Ok(());
        };
        self.process
            .call("transaction.record_applied", tx.record_applied(targets))
            .await
    }
    async fn stage_message(
        &self,
        app: &str,
        intent: &str,
        payload: &[u8],
        claim: Duration,
    ) -> Result<(), BackendError> {
        let Inner::Transaction(tx) = &self.inner else {
            return Ok(());
        };
        self.process
            .call(
                "transaction.stage_message",
                tx.stage_message(app, intent, payload, claim),
            )
            .await
    }
    async fn commit(self: Box<Self>) -> Result<(), BackendError> {
        let KillableStorage { process, inner } = *self;
        let Inner::Transaction(tx) = inner else {
            return Ok(());
        };
        process.call("transaction.commit", tx.commit()).await
    }
}
