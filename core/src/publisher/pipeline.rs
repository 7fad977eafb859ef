//! The pipeline every published write goes through: lock, clock, write, read
//! back, publish, unlock.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

use super::scope;
use crate::dependency::{lock_key, object_counter};
use crate::error::{BoxError, Error, Result};
use crate::model::{published_attributes, Publish, PublisherDef};
use crate::runtime::{Promiscuous, Runtime};
use crate::traits::Acquisition;
use crate::wire::{Dependencies, Dependency, Message, Operation, OperationKind, FORMAT_VERSION};

/// A write about to be published: which model, which record, which operation.
#[derive(Debug, Clone)]
pub struct PendingWrite {
    /// The published model's definition.
    pub definition: &'static PublisherDef,
    /// The operation.
    pub operation: OperationKind,
    /// The record id (`null` for an ephemeral without id).
    pub id: Value,
}

impl PendingWrite {
    /// A pending write of model `M`.
    pub fn of<M: Publish>(operation: OperationKind, id: Value) -> Self {
        Self {
            definition: M::definition(),
            operation,
            id,
        }
    }
}

/// The published attributes each pending write produced, in order (`None`
/// for a destroy).
pub type Produced = Vec<Option<Map<String, Value>>>;

/// A failed pipeline run, and whether the locks must be left to expire.
struct Failure {
    error: Error,
    keep_locks: bool,
}

impl Failure {
    fn released(error: Error) -> Self {
        Self {
            error,
            keep_locks: false,
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// Pushes `item` unless already present, keeping first-seen order.
fn push_unique(list: &mut Vec<String>, item: String) {
    if !list.contains(&item) {
        list.push(item);
    }
}

/// The operations of one message before their versions are known.
pub(super) struct Plan {
    pub(super) operations: Vec<Operation>,
    /// Distinct endpoints, in order: the message goes to each.
    pub(super) endpoints: Vec<String>,
    pub(super) locks: BTreeSet<String>,
    /// Counter keys to tick: endpoint counters, then record counters.
    increments: Vec<String>,
    /// Counter keys to read: records the task depends on.
    reads: Vec<String>,
}

impl Runtime {
    /// A lock owner tag unique to one publish of this process.
    pub(super) fn next_owner(&self) -> String {
        let sequence = self
            .lock_sequence
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("{}:{sequence}", self.owner)
    }

    fn clock_key(&self, counter: &str) -> String {
        format!("p:{}:{counter}", self.config.generation)
    }

    pub(super) fn plan(&self, writes: &[PendingWrite]) -> Plan {
        let app = &self.config.app;
        let hash_size = self.config.hash_size;
        let mut plan = Plan {
            operations: Vec::with_capacity(writes.len()),
            endpoints: Vec::new(),
            locks: BTreeSet::new(),
            increments: Vec::new(),
            reads: Vec::new(),
        };
        for write in writes {
            let endpoint = write.definition.endpoint(app);
            push_unique(&mut plan.increments, endpoint.clone());
            if !write.id.is_null() {
                plan.locks.insert(lock_key(&endpoint, &write.id));
                push_unique(
                    &mut plan.increments,
                    object_counter(&endpoint, &write.id, hash_size),
                );
            }
            push_unique(&mut plan.endpoints, endpoint.clone());
            plan.operations.push(Operation {
                operation: write.operation,
                endpoint,
                types: write
                    .definition
                    .types()
                    .into_iter()
                    .map(str::to_owned)
                    .collect(),
                id: write.id.clone(),
                attributes: None,
                dependencies: Dependencies::default(),
            });
        }
        for (endpoint, id) in scope::recorded() {
            let key = object_counter(&endpoint, &id, hash_size);
            if !plan.increments.contains(&key) {
                push_unique(&mut plan.reads, key);
            }
        }
        plan
    }

    /// Takes every lock of a plan, in sorted order, waiting up to `lock_timeout`;
    /// on failure releases the ones taken.
    async fn acquire_all(
        &self,
        keys: &BTreeSet<String>,
        owner: &str,
        recovery: &[u8],
    ) -> Result<()> {
        let mut taken = Vec::with_capacity(keys.len());
        for key in keys {
            if let Err(e) = self.acquire(key, owner, recovery).await {
                self.release_all(&taken, owner).await;
                return Err(e);
            }
            taken.push(key.clone());
        }
        Ok(())
    }

    /// Runs `work` while extending `locks` every third of `lock_ttl`, so a slow
    /// database write or a publish waiting for a reconnection never lets
    /// another writer take the records over in the middle.
    async fn keeping_locks<T>(
        &self,
        locks: &[String],
        owner: &str,
        work: impl Future<Output = T>,
    ) -> T {
        if locks.is_empty() {
            return work.await;
        }
        let period = self.lock_refresh_period();
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        tokio::pin!(work);
        loop {
            tokio::select! {
                done = &mut work => return done,
                _ = ticker.tick() => self.extend_locks(locks, owner).await,
            }
        }
    }

    /// How often held locks are extended: every third of `lock_ttl`.
    pub(super) fn lock_refresh_period(&self) -> Duration {
        (self.config.lock_ttl / 3).max(Duration::from_millis(1))
    }

    /// Extends `locks` by `lock_ttl`, reporting those lost or failing.
    pub(super) async fn extend_locks(&self, locks: &[String], owner: &str) {
        for key in locks {
            match self.lock.extend(key, owner, self.config.lock_ttl).await {
                Ok(true) => {}
                Ok(false) => self.report(&Error::LockUnavailable {
                    key: key.clone(),
                    waited: self.config.lock_ttl,
                }),
                Err(e) => self.report(&Error::from(e)),
            }
        }
    }

    pub(super) async fn release_all(&self, keys: &[String], owner: &str) {
        for key in keys {
            if let Err(e) = self.lock.release(key, owner).await {
                self.report(&Error::from(e));
            }
        }
    }

    /// Takes one lock, waiting up to `lock_timeout`.
    pub(super) async fn acquire(&self, key: &str, owner: &str, recovery: &[u8]) -> Result<()> {
        let started = Instant::now();
        let mut pause = Duration::from_millis(2);
        loop {
            match self
                .lock
                .try_acquire(key, owner, self.config.lock_ttl, recovery)
                .await?
            {
                Some(Acquisition::Free) => return Ok(()),
                Some(Acquisition::TookOverExpired(expired)) => {
                    self.report(&Error::LockExpired {
                        key: expired.key,
                        owner: expired.owner,
                        recovery: String::from_utf8_lossy(&expired.recovery).into_owned(),
                    });
                    return Ok(());
                }
                None if started.elapsed() >= self.config.lock_timeout => {
                    return Err(Error::LockUnavailable {
                        key: key.to_owned(),
                        waited: started.elapsed(),
                    })
                }
                None => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(100));
                }
            }
        }
    }

    /// Takes the versions of a plan in one clock step and fills the dependencies.
    pub(super) async fn take_versions(&self, plan: &mut Plan) -> Result<()> {
        let increments: Vec<String> = plan.increments.iter().map(|k| self.clock_key(k)).collect();
        let reads: Vec<String> = plan.reads.iter().map(|k| self.clock_key(k)).collect();
        let (ticked, read) = self.clock.tick_and_read(&increments, &reads).await?;
        let versions: BTreeMap<&str, u64> = plan
            .increments
            .iter()
            .map(String::as_str)
            .zip(ticked)
            .collect();
        let read: Vec<Dependency> = plan
            .reads
            .iter()
            .zip(read)
            .filter(|(_, version)| *version > 0)
            .map(|(key, version)| Dependency::new(key.clone(), version))
            .collect();
        let hash_size = self.config.hash_size;
        for op in &mut plan.operations {
            let endpoint = Dependency::new(
                op.endpoint.clone(),
                versions.get(op.endpoint.as_str()).copied().unwrap_or(1),
            );
            let own = if op.id.is_null() {
                endpoint.clone()
            } else {
                let key = object_counter(&op.endpoint, &op.id, hash_size);
                let version = versions.get(key.as_str()).copied().unwrap_or(1);
                Dependency::new(key, version)
            };
            op.dependencies = Dependencies {
                write: vec![own],
                read: read.clone(),
                endpoint: Some(endpoint),
            };
        }
        Ok(())
    }

    pub(super) fn message(&self, operations: Vec<Operation>) -> Message {
        Message {
            format: FORMAT_VERSION,
            app: self.config.app.clone(),
            generation: self.config.generation,
            timestamp: now_ms(),
            host: Some(self.config.host.clone()),
            operations,
        }
    }

    /// Publishes to every endpoint, retrying temporary failures until the locks would expire.
    pub(super) async fn send(&self, endpoints: &[String], message: &Message) -> Result<()> {
        let payload = message.encode();
        let deadline = Instant::now() + self.config.lock_ttl;
        for endpoint in endpoints {
            let mut pause = Duration::from_millis(100);
            loop {
                match self.broker.publish(endpoint, &payload).await {
                    Ok(()) => break,
                    Err(e) if e.is_temporary() && Instant::now() + pause < deadline => {
                        tracing::warn!(endpoint = %endpoint, error = %e, "publish failed, retrying");
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(Duration::from_secs(2));
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(())
    }

    /// Tells subscribers that the versions of a failed write carry nothing.
    pub(super) async fn publish_noop(&self, plan: &Plan) {
        let operations = plan
            .operations
            .iter()
            .map(|op| Operation {
                operation: OperationKind::Noop,
                attributes: None,
                ..op.clone()
            })
            .collect();
        if let Err(e) = self.send(&plan.endpoints, &self.message(operations)).await {
            self.report(&e);
        }
    }
}

impl Promiscuous {
    /// Runs `write` inside the publisher pipeline and publishes its result.
    ///
    /// Steps: take the record's lock, advance its version counters (and read
    /// those of the records the current [causal scope](super::causal_scope)
    /// depends on), run `write` (which performs the database write and returns
    /// the record read back, or `None` for a destroy), build the payload from
    /// the published attributes, publish and wait for the broker's
    /// confirmation, release the lock. If `write` fails after the versions were
    /// taken, a `noop` operation is published so subscribers do not wait for
    /// it. If publishing fails, the lock is left to expire, which marks the
    /// record for recovery.
    pub async fn publish_write<M, F, Fut>(
        &self,
        pending: PendingWrite,
        write: F,
    ) -> Result<Option<M>>
    where
        M: Publish,
        F: FnOnce() -> Fut + Send,
        Fut: Future<Output = std::result::Result<Option<M>, BoxError>> + Send,
    {
        let definition = pending.definition;
        let operation = pending.operation;
        let id = pending.id.clone();
        self.publish_writes(vec![pending], || async move {
            let written = write().await.map_err(|source| Error::Write {
                model: definition.model.to_owned(),
                id: id.to_string(),
                source,
            })?;
            let attributes = match (&written, operation) {
                (_, OperationKind::Destroy) => None,
                (Some(model), _) => Some(published_attributes(model)?),
                (None, _) => {
                    return Err(Error::Write {
                        model: definition.model.to_owned(),
                        id: id.to_string(),
                        source: "the record was not found when read back after writing it".into(),
                    })
                }
            };
            Ok((written, vec![attributes]))
        })
        .await
    }

    /// Runs `perform` inside the pipeline for several writes, published as one
    /// message whose operations subscribers apply together.
    ///
    /// `perform` does the database writes (in one transaction, when the
    /// database has them) and returns a value plus the published attributes of
    /// each pending write, in order. Locks are taken in sorted order, all
    /// versions in one clock step.
    pub async fn publish_writes<T, F, Fut>(
        &self,
        writes: Vec<PendingWrite>,
        perform: F,
    ) -> Result<T>
    where
        F: FnOnce() -> Fut + Send,
        Fut: Future<Output = Result<(T, Produced)>> + Send,
    {
        let rt = &self.inner;
        rt.ensure_open()?;
        let described = writes.first().map(|w| {
            (
                w.definition.model.to_owned(),
                w.id.to_string(),
                w.operation.as_str(),
            )
        });
        let (model, id, operation) =
            described.unwrap_or_else(|| (String::new(), String::new(), "write"));
        let fail = |source: Error| Error::Publisher {
            model: model.clone(),
            id: id.clone(),
            operation,
            source: Box::new(source),
        };
        if writes.is_empty() {
            return Err(fail(Error::Definition {
                model: "(none)".into(),
                problem: "a publish needs at least one write".into(),
            }));
        }
        let mut plan = rt.plan(&writes);
        let owner = rt.next_owner();
        let recovery = serde_json::json!({
            "operations": plan.operations.iter().map(|op| serde_json::json!({
                "endpoint": op.endpoint, "id": op.id, "operation": op.operation.as_str(),
            })).collect::<Vec<_>>(),
        });
        rt.acquire_all(&plan.locks, &owner, recovery.to_string().as_bytes())
            .await
            .map_err(|e| {
                let error = fail(e);
                rt.report(&error);
                error
            })?;
        let locks: Vec<String> = plan.locks.iter().cloned().collect();
        let outcome = rt
            .keeping_locks(&locks, &owner, self.run_locked(&mut plan, perform))
            .await;
        let keep_locks = matches!(
            &outcome,
            Err(Failure {
                keep_locks: true,
                ..
            })
        );
        // A write that happened but was not published keeps its locks until they
        // expire: that is what marks the records for recovery.
        if !keep_locks {
            rt.release_all(&locks, &owner).await;
        }
        outcome.map_err(|Failure { error, .. }| {
            let error = fail(error);
            rt.report(&error);
            error
        })
    }

    async fn run_locked<T, F, Fut>(
        &self,
        plan: &mut Plan,
        perform: F,
    ) -> std::result::Result<T, Failure>
    where
        F: FnOnce() -> Fut + Send,
        Fut: Future<Output = Result<(T, Produced)>> + Send,
    {
        let rt = &self.inner;
        rt.take_versions(plan).await.map_err(Failure::released)?;
        let (value, produced) = match perform().await {
            Ok(done) if done.1.len() == plan.operations.len() => done,
            Ok(done) => {
                rt.publish_noop(plan).await;
                return Err(Failure::released(Error::Definition {
                    model: "(publish_writes)".into(),
                    problem: format!(
                        "perform returned {} attribute sets for {} writes",
                        done.1.len(),
                        plan.operations.len()
                    ),
                }));
            }
            Err(error) => {
                rt.publish_noop(plan).await;
                return Err(Failure::released(error));
            }
        };
        for (op, attributes) in plan.operations.iter_mut().zip(produced) {
            op.attributes = attributes;
        }
        let message = rt.message(plan.operations.clone());
        rt.send(&plan.endpoints, &message)
            .await
            .map_err(|error| Failure {
                error,
                keep_locks: true,
            })?;
        for op in &plan.operations {
            scope::record(&op.endpoint, &op.id);
        }
        Ok(value)
    }
}
