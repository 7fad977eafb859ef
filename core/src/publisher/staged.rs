//! Writes made in the caller's own database transaction, published as one
//! message once that transaction commits.
//!
//! The pipeline of [`Promiscuous::publish_writes`] needs every written id up
//! front. A database transaction discovers them as it goes (an insert learns
//! its id from the database), so this splits the same steps across the
//! transaction's life: [`Staged::lock`] before each write, [`Staged::prepare`]
//! (versions, message) just before commit, [`Staged::publish`] after it, or
//! [`Staged::abandon`] after a rollback.

use std::sync::{Arc, Mutex, PoisonError};

use serde_json::{Map, Value};

use super::pipeline::{PendingWrite, Plan, Produced};
use super::scope;
use crate::dependency::lock_key;
use crate::error::{Error, Result};
use crate::runtime::{Promiscuous, Runtime};
use crate::wire::{Message, OperationKind};

/// The message of a staged transaction, with its versions taken: store
/// [`payload`](Prepared::payload) with the writes (an outbox row) before
/// committing, then hand it to [`Staged::publish`].
#[derive(Debug, Clone)]
pub struct Prepared {
    message: Message,
    endpoints: Vec<String>,
}

impl Prepared {
    /// The message as it goes on the wire.
    pub fn payload(&self) -> Vec<u8> {
        self.message.encode()
    }

    /// The message.
    pub fn message(&self) -> &Message {
        &self.message
    }
}

/// Locks held by a staged transaction, kept alive by a background task.
struct HeldLocks {
    rt: Arc<Runtime>,
    owner: String,
    keys: Arc<Mutex<Vec<String>>>,
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
    fn keys(&self) -> Vec<String> {
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

    async fn take(&mut self, key: String, recovery: &[u8]) -> Result<()> {
        if self.holds(&key) {
            return Ok(());
        }
        self.rt.acquire(&key, &self.owner, recovery).await?;
        self.keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(key);
        if self.keeper.is_none() {
            self.keeper = Some(tokio::spawn(keep_alive(
                self.rt.clone(),
                self.owner.clone(),
                self.keys.clone(),
            )));
        }
        Ok(())
    }

    /// Stops extending the locks and gives up the keys held, to be released.
    fn surrender(&mut self) -> Vec<String> {
        if let Some(keeper) = self.keeper.take() {
            keeper.abort();
        }
        std::mem::take(&mut *self.keys.lock().unwrap_or_else(PoisonError::into_inner))
    }

    async fn release(&mut self) {
        let keys = self.surrender();
        self.rt.release_all(&keys, &self.owner).await;
    }
}

impl Drop for HeldLocks {
    fn drop(&mut self) {
        let keys = self.surrender();
        if keys.is_empty() {
            return;
        }
        // Dropped without publish or abandon (a panic, a cancelled task): hand
        // the locks back if a runtime is there to do it, else they expire.
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let rt = self.rt.clone();
            let owner = self.owner.clone();
            handle.spawn(async move { rt.release_all(&keys, &owner).await });
        }
    }
}

/// Extends the held locks every third of their time to live, for as long as
/// the transaction is open.
async fn keep_alive(rt: Arc<Runtime>, owner: String, keys: Arc<Mutex<Vec<String>>>) {
    loop {
        tokio::time::sleep(rt.lock_refresh_period()).await;
        let held = keys.lock().unwrap_or_else(PoisonError::into_inner).clone();
        rt.extend_locks(&held, &owner).await;
    }
}

/// Writes staged in the caller's database transaction, published as one
/// message after it commits. Made by [`Promiscuous::stage`].
///
/// Steps, in the order the caller must follow:
/// 1. [`lock`](Self::lock) each record before writing it (an update or
///    destroy), or right after (a create whose id the database assigns);
/// 2. [`push`](Self::push) each write with its published attributes, read
///    back inside the transaction;
/// 3. [`prepare`](Self::prepare) takes the versions and builds the message;
///    store its payload in the same transaction (the outbox), then commit;
/// 4. [`committed`](Self::committed) as soon as the commit succeeded, then
///    [`publish`](Self::publish); or
///    [`abandon`](Self::abandon) when the transaction rolled back.
///
/// Locks are taken as the writes come, not in sorted order: two transactions
/// writing the same records in opposite orders wait for each other until
/// `lock_timeout`, and the second one fails with `LockUnavailable`.
pub struct Staged {
    promiscuous: Promiscuous,
    locks: HeldLocks,
    writes: Vec<PendingWrite>,
    produced: Produced,
    /// The plan whose versions were taken: from then on, an abandoned
    /// transaction must publish a noop so subscribers do not wait for it.
    prepared: Option<Plan>,
}

impl std::fmt::Debug for Staged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Staged")
            .field("locks", &self.locks)
            .field("writes", &self.writes)
            .field("prepared", &self.prepared.is_some())
            .finish()
    }
}

impl Promiscuous {
    /// Starts staging the writes of a database transaction; see [`Staged`].
    pub fn stage(&self) -> Result<Staged> {
        let rt = &self.inner;
        rt.ensure_open()?;
        Ok(Staged {
            promiscuous: self.clone(),
            locks: HeldLocks {
                rt: rt.clone(),
                owner: rt.next_owner(),
                keys: Arc::default(),
                keeper: None,
            },
            writes: Vec::new(),
            produced: Vec::new(),
            prepared: None,
        })
    }

    /// Publishes a message prepared earlier (by [`Staged::prepare`]) and
    /// stored, as it was: what an outbox relay calls for rows left behind by
    /// a process that stopped between its commit and its publish.
    ///
    /// The message keeps its versions, so subscribers apply it in its place,
    /// or recognise it as a duplicate when the original did go out.
    pub async fn republish(&self, payload: &[u8]) -> Result<()> {
        let rt = &self.inner;
        rt.ensure_open()?;
        let message = Message::decode(payload).map_err(Error::Wire)?;
        let mut endpoints: Vec<String> = Vec::new();
        for op in &message.operations {
            if !endpoints.contains(&op.endpoint) {
                endpoints.push(op.endpoint.clone());
            }
        }
        rt.send(&endpoints, &message).await
    }
}

impl Staged {
    fn failed(&self, error: Error) -> Error {
        let (model, id, operation) = self.writes.first().map_or_else(
            || ("(transaction)".to_owned(), String::new(), "write"),
            |w| {
                (
                    w.definition.model.to_owned(),
                    w.id.to_string(),
                    w.operation.as_str(),
                )
            },
        );
        let error = Error::Publisher {
            model,
            id,
            operation,
            source: Box::new(error),
        };
        self.promiscuous.inner.report(&error);
        error
    }

    /// Takes the lock of the record `pending` writes, waiting up to
    /// `lock_timeout`; a lock already held by this transaction is kept.
    pub async fn lock(&mut self, pending: &PendingWrite) -> Result<()> {
        if pending.id.is_null() {
            return Ok(());
        }
        let endpoint = pending
            .definition
            .endpoint(&self.promiscuous.inner.config.app);
        self.take_lock(lock_key(&endpoint, &pending.id)).await
    }

    async fn take_lock(&mut self, key: String) -> Result<()> {
        // What an operator finds on a lock left expired: the record's key,
        // and that its operation is in the outbox of the writer's database.
        let recovery = serde_json::json!({ "outbox": true, "key": key }).to_string();
        match self.locks.take(key, recovery.as_bytes()).await {
            Ok(()) => Ok(()),
            Err(e) => Err(self.failed(e)),
        }
    }

    /// Adds a write to the message, with its published attributes (`None` for
    /// a destroy). Writes are published in the order pushed.
    pub fn push(&mut self, pending: PendingWrite, attributes: Option<Map<String, Value>>) {
        let is_destroy = pending.operation == OperationKind::Destroy;
        self.writes.push(pending);
        self.produced.push(attributes.filter(|_| !is_destroy));
    }

    /// How many writes are staged.
    pub fn len(&self) -> usize {
        self.writes.len()
    }

    /// Whether no write is staged.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    /// Takes any lock still missing, advances the clock for every staged
    /// write in one step, and returns the message to store before committing.
    pub async fn prepare(&mut self) -> Result<Prepared> {
        if self.writes.is_empty() {
            return Err(self.failed(Error::Definition {
                model: "(transaction)".into(),
                problem: "nothing to publish: no write was staged".into(),
            }));
        }
        let rt = self.promiscuous.inner.clone();
        let mut plan = rt.plan(&self.writes);
        for key in &plan.locks {
            self.take_lock(key.clone()).await?;
        }
        if let Err(e) = rt.take_versions(&mut plan).await {
            return Err(self.failed(e));
        }
        for (op, attributes) in plan.operations.iter_mut().zip(self.produced.drain(..)) {
            op.attributes = attributes;
        }
        let prepared = Prepared {
            message: rt.message(plan.operations.clone()),
            endpoints: plan.endpoints.clone(),
        };
        self.prepared = Some(plan);
        Ok(prepared)
    }

    /// Says the transaction committed: the message is stored, so from now on
    /// it must go out as it is and never be replaced by a noop, even if this
    /// value is dropped before [`publish`](Self::publish).
    pub fn committed(&mut self) {
        self.prepared = None;
    }

    /// Publishes the prepared message once the transaction committed, waits
    /// for the broker's confirmation and releases the locks.
    ///
    /// On failure the locks are released all the same: the message is in the
    /// outbox, where the relay finds it.
    pub async fn publish(mut self, prepared: &Prepared) -> Result<()> {
        let rt = self.promiscuous.inner.clone();
        let sent = rt.send(&prepared.endpoints, &prepared.message).await;
        self.prepared = None;
        self.locks.release().await;
        match sent {
            Ok(()) => {
                for op in &prepared.message.operations {
                    scope::record(&op.endpoint, &op.id);
                }
                Ok(())
            }
            Err(e) => Err(self.failed(e)),
        }
    }

    /// Gives the transaction up (it rolled back, or its commit failed):
    /// publishes a noop when versions were already taken, so subscribers do
    /// not wait for them, and releases the locks.
    pub async fn abandon(mut self) {
        if let Some(plan) = self.prepared.take() {
            self.promiscuous.inner.publish_noop(&plan).await;
        }
        self.locks.release().await;
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        let Some(plan) = self.prepared.take() else {
            return;
        };
        // Dropped after its versions were taken, without publish or abandon:
        // subscribers would wait for them until the recovery timeout.
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let rt = self.promiscuous.inner.clone();
            handle.spawn(async move { rt.publish_noop(&plan).await });
        }
    }
}
