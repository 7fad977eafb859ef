//! The pipeline every published write goes through.

use std::future::Future;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

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

/// A failed pipeline run, and whether the lock must be left to expire.
struct Failure {
    error: Error,
    keep_lock: bool,
}

impl Failure {
    fn released(error: Error) -> Self {
        Self {
            error,
            keep_lock: false,
        }
    }
}

/// The versions taken for one operation.
struct Versions {
    own: Dependency,
    endpoint: Dependency,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

impl Runtime {
    fn clock_key(&self, counter: &str) -> String {
        format!("p:{}:{counter}", self.config.generation)
    }

    /// Takes the record's lock, waiting up to `lock_timeout`.
    async fn acquire(&self, key: &str, owner: &str, recovery: &[u8]) -> Result<()> {
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

    /// Advances the record's counter and the endpoint's counter in one step.
    async fn tick(&self, endpoint: &str, id: &Value, with_object: bool) -> Result<Versions> {
        let endpoint_key = endpoint.to_owned();
        let object_key = object_counter(endpoint, id, self.config.hash_size);
        let mut keys = vec![self.clock_key(&endpoint_key)];
        if with_object {
            keys.push(self.clock_key(&object_key));
        }
        let values = self.clock.tick(&keys).await?;
        let endpoint_dep = Dependency::new(endpoint_key, values.first().copied().unwrap_or(1));
        let own = match values.get(1) {
            Some(&v) => Dependency::new(object_key, v),
            None => endpoint_dep.clone(),
        };
        Ok(Versions {
            own,
            endpoint: endpoint_dep,
        })
    }

    fn message(&self, operation: Operation) -> Message {
        Message {
            format: FORMAT_VERSION,
            app: self.config.app.clone(),
            generation: self.config.generation,
            timestamp: now_ms(),
            host: Some(self.config.host.clone()),
            operations: vec![operation],
        }
    }

    /// Publishes, retrying temporary failures until the lock would expire.
    async fn send(&self, endpoint: &str, message: &Message) -> Result<()> {
        let payload = message.encode();
        let deadline = Instant::now() + self.config.lock_ttl;
        let mut pause = Duration::from_millis(100);
        loop {
            match self.broker.publish(endpoint, &payload).await {
                Ok(()) => return Ok(()),
                Err(e) if e.is_temporary() && Instant::now() + pause < deadline => {
                    tracing::warn!(endpoint, error = %e, "publish failed, retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

impl Promiscuous {
    /// Runs `write` inside the publisher pipeline and publishes its result.
    ///
    /// Steps: take the record's lock, advance its version counters, run
    /// `write` (which performs the database write and returns the record read
    /// back, or `None` for a destroy), build the payload from the published
    /// attributes, publish and wait for the broker's confirmation, release the
    /// lock. If `write` fails after the versions were taken, a `noop` operation
    /// is published so subscribers do not wait for it. If publishing fails, the
    /// lock is left to expire, which marks the record for recovery.
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
        let rt = &self.inner;
        rt.ensure_open()?;
        let def = pending.definition;
        let endpoint = def.endpoint(&rt.config.app);
        let types: Vec<String> = def.types().into_iter().map(str::to_owned).collect();
        let fail = |source: Error| Error::Publisher {
            model: def.model.to_owned(),
            id: pending.id.to_string(),
            operation: pending.operation.as_str(),
            source: Box::new(source),
        };
        let has_lock = !pending.id.is_null();
        let key = lock_key(&endpoint, &pending.id);
        let sequence = rt
            .lock_sequence
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let owner = format!("{}:{sequence}", rt.owner);
        if has_lock {
            let recovery = serde_json::json!({
                "endpoint": endpoint, "id": pending.id, "operation": pending.operation.as_str(), "types": types,
            });
            rt.acquire(&key, &owner, recovery.to_string().as_bytes())
                .await
                .map_err(fail)?;
        }
        let (outcome, keep_lock) = match self
            .write_and_publish(&pending, &endpoint, &types, write)
            .await
        {
            Ok(written) => (Ok(written), false),
            Err(Failure { error, keep_lock }) => (Err(error), keep_lock),
        };
        // A write that happened but was not published keeps its lock until it
        // expires: that is what marks the record for recovery.
        if has_lock && !keep_lock {
            if let Err(e) = rt.lock.release(&key, &owner).await {
                rt.report(&Error::from(e));
            }
        }
        outcome.map_err(|e| {
            let error = fail(e);
            rt.report(&error);
            error
        })
    }

    async fn write_and_publish<M, F, Fut>(
        &self,
        pending: &PendingWrite,
        endpoint: &str,
        types: &[String],
        write: F,
    ) -> std::result::Result<Option<M>, Failure>
    where
        M: Publish,
        F: FnOnce() -> Fut + Send,
        Fut: Future<Output = std::result::Result<Option<M>, BoxError>> + Send,
    {
        let rt = &self.inner;
        let versions = rt
            .tick(endpoint, &pending.id, !pending.id.is_null())
            .await
            .map_err(Failure::released)?;
        let mut operation = Operation {
            operation: pending.operation,
            endpoint: endpoint.to_owned(),
            types: types.to_vec(),
            id: pending.id.clone(),
            attributes: None,
            dependencies: Dependencies {
                write: vec![versions.own],
                read: Vec::new(),
                endpoint: Some(versions.endpoint),
            },
        };
        let written = match write().await {
            Ok(written) => written,
            Err(source) => {
                self.publish_noop(operation).await;
                return Err(Failure::released(Error::Write {
                    model: pending.definition.model.to_owned(),
                    id: pending.id.to_string(),
                    source,
                }));
            }
        };
        if pending.operation != OperationKind::Destroy {
            let attributes = match written.as_ref().map(published_attributes) {
                Some(Ok(attributes)) => attributes,
                Some(Err(e)) => {
                    self.publish_noop(operation).await;
                    return Err(Failure::released(e));
                }
                None => {
                    self.publish_noop(operation).await;
                    return Err(Failure::released(Error::Write {
                        model: pending.definition.model.to_owned(),
                        id: pending.id.to_string(),
                        source: "the record was not found when read back after writing it".into(),
                    }));
                }
            };
            operation.attributes = Some(attributes);
        }
        rt.send(endpoint, &rt.message(operation))
            .await
            .map_err(|error| Failure {
                error,
                keep_lock: true,
            })?;
        Ok(written)
    }

    /// Tells subscribers that the versions of a failed write carry nothing.
    async fn publish_noop(&self, mut operation: Operation) {
        operation.operation = OperationKind::Noop;
        operation.attributes = None;
        let rt = &self.inner;
        let endpoint = operation.endpoint.clone();
        if let Err(e) = rt.send(&endpoint, &rt.message(operation)).await {
            rt.report(&e);
        }
    }
}
