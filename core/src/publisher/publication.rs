//! The one publish protocol every way of publishing runs (docs/ordering.md,
//! "The publish protocol").
//!
//! 1. **Lock** each record the publication writes (`app/model/id`), sorted
//!    when the ids are known up front; one keeper extends them all.
//! 2. **Take versions**: one clock step ticks the counters, reads the read
//!    dependencies and records the *intent* (the plan, and what recovery
//!    needs) with the versions.
//! 3. **Write** so that the write can be fenced: in a transaction that also
//!    stores the message in the outbox, or as versioned single-record writes.
//!    (A database transaction that learns its ids as it goes writes first and
//!    locks each record after its write: nothing is visible before the
//!    commit, so the intent still comes first.)
//! 4. **Publish** the message and wait for the broker's confirmation.
//! 5. **Settle**: release the locks, forget the intent and the outbox entry.
//!
//! A publisher that stops anywhere after step 2 leaves an intent; the
//! recovery worker of any process of the app finishes it (`recovery.rs`).

use std::sync::Arc;

use super::intent::{IntentData, IntentKind, Recorded};
use super::locks::HeldLocks;
use super::plan::{message, Plan};
use super::{recovery, scope, PendingWrite, Produced};
use crate::dependency::{lock_key, version_stamp};
use crate::error::{Error, Result};
use crate::runtime::Runtime;
use crate::traits::{IntentRecord, Outbox, Step};
use crate::wire::Message;

/// What [`Publication::publish`] found out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Published {
    /// A write that cannot be fenced was made while one of its locks had
    /// expired: recovery may have published the records' older state with
    /// the same versions, so the state must go out again, with new ones.
    pub overtaken: bool,
}

/// One publication: the writes of one message, its locks and its versions.
///
/// Dropped before its versions are taken, it releases its locks; after, it
/// leaves them to expire so that recovery settles it (whether its write
/// happened is for recovery to find out).
pub(crate) struct Publication {
    rt: Arc<Runtime>,
    id: String,
    kind: IntentKind,
    locks: HeldLocks,
    writes: Vec<PendingWrite>,
    /// Per write: what recovery needs beyond the store.
    recorded: Vec<Recorded>,
    /// Publications of stopped publishers whose locks this one took over.
    inherits: Vec<String>,
    /// The plan, once its versions are taken.
    taken: Option<Plan>,
    /// Set while the clock step runs: its outcome is unknown until it
    /// answers (it may have taken the versions and lost the answer).
    taking: bool,
    /// It republishes states (an initial sync): its operations say so.
    sync: bool,
    /// The outbox its message is stored in, for an outbox publication.
    outbox: Option<Arc<dyn Outbox>>,
    settled: bool,
}

impl std::fmt::Debug for Publication {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publication")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("locks", &self.locks)
            .field("writes", &self.writes)
            .field("taken", &self.taken.is_some())
            .finish()
    }
}

impl Publication {
    /// A new publication of `rt`, finished by recovery as `kind` says.
    pub fn new(rt: &Arc<Runtime>, kind: IntentKind) -> Result<Self> {
        rt.ensure_open()?;
        let id = rt.next_owner();
        Ok(Self {
            rt: rt.clone(),
            locks: HeldLocks::new(rt.clone(), id.clone()),
            id,
            kind,
            writes: Vec::new(),
            recorded: Vec::new(),
            inherits: Vec::new(),
            taken: None,
            taking: false,
            sync: false,
            outbox: None,
            settled: false,
        })
    }

    /// The publication's id (its locks' owner, its intent's key, its
    /// message's id, its outbox entry's intent).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Stores its message in `outbox` (an outbox publication): where its
    /// entry is unclaimed or removed.
    pub fn with_outbox(mut self, outbox: Option<Arc<dyn Outbox>>) -> Self {
        self.outbox = outbox;
        self
    }

    /// The runtime it publishes through.
    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.rt
    }

    /// Adds a write, with what recovery needs for it beyond the store.
    pub fn push(&mut self, pending: PendingWrite, recorded: Recorded) {
        self.writes.push(pending);
        self.recorded.push(recorded);
    }

    /// The writes, in order.
    pub fn writes(&self) -> &[PendingWrite] {
        &self.writes
    }

    /// Each write as `create User 1`.
    fn described(&self) -> Vec<String> {
        self.writes
            .iter()
            .map(|w| format!("{} {} {}", w.operation.as_str(), w.definition.model, w.id))
            .collect()
    }

    /// Wraps `error` with what was being published, and reports it.
    pub fn failed(&self, error: Error) -> Error {
        let error = match self.writes.as_slice() {
            [] => error,
            [write] => Error::Publisher {
                model: write.definition.model.to_owned(),
                id: write.id.to_string(),
                operation: write.operation.as_str(),
                source: Box::new(error),
            },
            _ => Error::Transaction {
                writes: self.described(),
                source: Box::new(error),
            },
        };
        self.rt.report(&error);
        error
    }

    /// Takes the lock of the record `pending` writes (kept when held).
    pub async fn lock(&mut self, pending: &PendingWrite) -> Result<()> {
        if pending.id.is_null() {
            return Ok(());
        }
        let endpoint = pending.definition.endpoint(&self.rt.config.app);
        let doing = format!(
            "{} {} {}",
            pending.operation.as_str(),
            pending.definition.model,
            pending.id
        );
        self.take_lock(&lock_key(&endpoint, &pending.id), &doing)
            .await
    }

    async fn take_lock(&mut self, key: &str, doing: &str) -> Result<()> {
        let started = std::time::Instant::now();
        let taken = self.locks.take(key, doing).await;
        // Recorded for a wait that timed out too: those matter most.
        crate::metrics::lock_wait(&self.rt.config.app, started.elapsed());
        let previous = taken?;
        if let Some(previous) = previous {
            // A stopped publisher's publication: recover it now, and with
            // this one should this one stop too.
            recovery::resolve_later(&self.rt, previous.clone());
            self.inherits.push(previous);
        }
        Ok(())
    }

    /// Takes the locks of every write, in sorted order.
    pub async fn lock_all(&mut self) -> Result<()> {
        let plan = self.plan();
        let doing = self.described().join(", ");
        for key in &plan.locks {
            self.take_lock(key, &doing).await?;
        }
        Ok(())
    }

    fn plan(&self) -> Plan {
        let config = &self.rt.config;
        Plan::new(
            &config.app,
            config.hash_size,
            &self.writes,
            &scope::recorded(),
        )
    }

    /// Marks the publication as republishing states (an initial sync).
    pub fn republishing_states(&mut self) {
        self.sync = true;
    }

    /// Takes any lock still missing, then the versions of every write in one
    /// clock step that records the intent.
    pub async fn take_versions(&mut self) -> Result<()> {
        if self.writes.is_empty() {
            return Err(Error::NothingToPublish {
                operation: "a publication",
            });
        }
        self.lock_all().await?;
        let rt = self.rt.clone();
        let mut plan = self.plan();
        for op in &mut plan.operations {
            op.sync = self.sync;
        }
        let intent = IntentData {
            app: rt.config.app.clone(),
            generation: rt.config.generation,
            epoch: rt.clock.epoch(),
            kind: self.kind,
            plan: plan.clone(),
            recorded: self.recorded.clone(),
            inherits: self.inherits.clone(),
        }
        .encode();
        let increments: Vec<String> = plan.increments.iter().map(|k| rt.clock_key(k)).collect();
        let reads: Vec<String> = plan.reads.iter().map(|k| rt.clock_key(k)).collect();
        self.taking = true;
        let versions = rt
            .clock
            .take(&Step {
                increments: &increments,
                reads: &reads,
                intent: Some(IntentRecord {
                    id: &self.id,
                    scope: &rt.config.app,
                    data: &intent,
                }),
            })
            .await?;
        plan.fill(&versions);
        self.taken = Some(plan);
        self.taking = false;
        Ok(())
    }

    /// The version the record of write `index` is written with (see
    /// `Storage::write_versioned`), once the versions are taken.
    pub fn stamp(&self, index: usize) -> Result<u128> {
        let op = self
            .taken
            .as_ref()
            .and_then(|plan| plan.operations.get(index))
            .ok_or(Error::NothingToPublish {
                operation: "a versioned write before its versions were taken",
            })?;
        let version = op
            .dependencies
            .endpoint
            .as_ref()
            .map_or(0, |dep| dep.version);
        let generation = self.rt.config.generation;
        version_stamp(generation, self.rt.clock.epoch(), version).ok_or_else(|| {
            Error::Definition {
                model: op.endpoint.clone(),
                problem: format!(
                    "generation {generation} does not fit a record version (generations go up to 65535)"
                ),
            }
        })
    }

    /// The message, with each write's published attributes (`None` for a destroy).
    pub fn message(&self, attributes: Produced) -> Result<Message> {
        let plan = self.taken.as_ref().ok_or(Error::NothingToPublish {
            operation: "a message before its versions were taken",
        })?;
        if attributes.len() != plan.operations.len() {
            return Err(Error::Definition {
                model: plan.models.join(", "),
                problem: format!(
                    "{} attribute sets were given for {} writes",
                    attributes.len(),
                    plan.operations.len()
                ),
            });
        }
        let config = &self.rt.config;
        Ok(message(
            &config.app,
            config.generation,
            self.rt.clock.epoch(),
            &config.host,
            &self.id,
            plan.operations_with(attributes),
        ))
    }

    /// Publishes `message` and settles: releases the locks and forgets the
    /// intent (and the outbox entry). When the broker refuses it, a
    /// publication in an outbox is left to the relay (its entry is unclaimed);
    /// any other is left to recovery, which publishes it from the intent.
    pub async fn publish(mut self, message: &Message) -> Result<Published> {
        let rt = self.rt.clone();
        let endpoints = self
            .taken
            .as_ref()
            .map(|plan| plan.endpoints.clone())
            .unwrap_or_default();
        // A write that cannot be fenced, made while a lock expired: recovery
        // may have published the records' older state with these versions.
        let overtaken = self.kind == IntentKind::Unfenced && !self.locks.verify().await;
        let span = tracing::info_span!(
            "promiscuous.publish",
            app = %rt.config.app,
            message = %self.id,
            model = tracing::field::Empty,
            id = tracing::field::Empty,
            version = tracing::field::Empty,
            operations = message.operations.len(),
        );
        message.describe_in(&span);
        match tracing::Instrument::instrument(rt.send(&endpoints, message), span).await {
            Ok(()) => {
                for op in &message.operations {
                    scope::record(&op.endpoint, &op.id);
                }
                self.settle(true).await;
                Ok(Published { overtaken })
            }
            Err(error) if self.kind == IntentKind::Outbox => {
                if let Some(outbox) = &self.outbox {
                    if let Err(e) = outbox.unclaim(std::slice::from_ref(&self.id)).await {
                        rt.report(&Error::from(e));
                    }
                }
                // The entry is the durable copy now: the relay publishes it.
                self.settle(false).await;
                Err(error)
            }
            Err(error) => {
                self.leave();
                Err(error)
            }
        }
    }

    /// Publishes a noop for the versions taken (the write failed, or its
    /// transaction rolled back) and settles.
    pub async fn publish_noop(mut self) {
        let Some(plan) = self.taken.as_ref() else {
            self.release().await;
            return;
        };
        let config = &self.rt.config;
        let noop = message(
            &config.app,
            config.generation,
            self.rt.clock.epoch(),
            &config.host,
            &self.id,
            plan.noops(),
        );
        let endpoints = plan.endpoints.clone();
        match self.rt.send(&endpoints, &noop).await {
            Ok(()) => self.settle(true).await,
            Err(error) => {
                // Recovery fences the write and publishes the noop.
                self.rt.report(&error);
                self.leave();
            }
        }
    }

    /// Releases the locks of a publication that took no versions (when its
    /// clock step failed without an answer, they are left to expire instead:
    /// the step may have taken versions, which recovery then publishes).
    pub async fn release(mut self) {
        self.settled = true;
        if self.taking {
            self.locks.abandon();
        } else {
            self.locks.release().await;
        }
    }

    /// Settles the publication now as recovery would (a write failed half
    /// way, or its fate is unknown): what landed is published, what did not
    /// becomes a noop; then the locks are released. When that fails too, the
    /// publication is left to the recovery worker.
    pub async fn resolve_now(mut self) {
        let rt = self.rt.clone();
        if self.taken.is_none() {
            self.release().await;
            return;
        }
        match recovery::resolve(&rt, &self.id).await {
            Ok(_) => {
                self.settled = true;
                self.locks.release().await;
            }
            Err(error) => {
                rt.report(&error);
                self.leave();
            }
        }
    }

    /// Stops here and leaves the publication to recovery: its locks expire,
    /// and a recovery worker finishes it from its intent.
    pub fn leave(mut self) {
        self.settled = true;
        self.locks.abandon();
    }

    async fn settle(&mut self, sent: bool) {
        self.settled = true;
        self.locks.release().await;
        if self.locks.lost() && sent {
            tracing::warn!(publication = %self.id, "a lock of this publication expired while it ran; recovery may have published it too (subscribers recognise the copy)");
        }
        let outbox = self.outbox.clone().filter(|_| sent);
        self.rt
            .sweeper
            .settled(&self.rt, std::mem::take(&mut self.id), outbox);
    }
}

impl Drop for Publication {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        if self.taken.is_some() || self.taking {
            // Stopped after its versions were taken (or maybe taken):
            // recovery settles it.
            self.locks.abandon();
        } else {
            self.locks.release_later();
        }
    }
}
