//! The recovery worker: finishes the publications of publishers that
//! stopped after taking their versions, so subscribers never wait for a
//! version that no message carries.
//!
//! It finds them two ways: locks that expired without being released (their
//! data names the publication), and intents the clock kept longer than a
//! publication can take (`3 × lock_ttl`), which also catches a publication
//! whose lock another writer took over. Finishing one is idempotent, so
//! several processes (and a writer taking a lock over) may do it at once.

use std::collections::BTreeSet;
use std::sync::{Arc, Weak};
use std::time::Duration;

use serde_json::{Map, Value};

use super::intent::{publication_of, IntentData, IntentKind, Recorded};
use super::plan::message;
use super::relay::Relay;
use crate::dependency::version_stamp;
use crate::error::{Error, Result};
use crate::model::PublisherRegistration;
use crate::runtime::{Promiscuous, Runtime};
use crate::traits::{Fence, Filter, Record, Versioned, VersionedWrite};
use crate::wire::{Operation, OperationKind};

/// Expired locks and stale intents handled per pass and kind, at most.
const BATCH: usize = 100;
/// How deep a chain of inherited publications is followed.
const MAX_INHERITED_DEPTH: usize = 8;

/// What finishing one publication did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Resolution {
    /// Its intent is gone: it was settled (or never took versions).
    Settled,
    /// Another app's publication: left to that app's processes.
    OtherApp,
    /// Its message (operations and noops, as recovery found them) is out.
    Published {
        /// What was published, in words.
        outcome: String,
    },
}

/// What one recovery pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecoveryPass {
    /// Publications finished (their message, or a noop, published).
    pub recovered: u64,
    /// Expired locks cleared.
    pub locks_cleared: u64,
    /// Outbox entries published by the relay.
    pub relayed: u64,
    /// Publications or entries that could not be finished now (tried again
    /// next pass; each failure is reported).
    pub failed: u64,
}

/// Finishes the publications of stopped publishers of one app, and relays
/// its outbox. Made by [`Promiscuous::recovery`]; `build()` starts one in the
/// background (see `recovery_interval`).
#[derive(Debug, Clone)]
pub struct Recovery {
    promiscuous: Promiscuous,
}

impl Promiscuous {
    /// The recovery worker of this app: [`run_once`](Recovery::run_once) runs
    /// one pass now.
    pub fn recovery(&self) -> Recovery {
        Recovery {
            promiscuous: self.clone(),
        }
    }
}

impl Recovery {
    /// One pass: finishes the publications of expired locks and stale
    /// intents, then relays the outbox entries whose claim expired.
    pub async fn run_once(&self) -> Result<RecoveryPass> {
        run_pass(&self.promiscuous.inner).await
    }
}

/// One pass of the recovery worker.
pub(crate) async fn run_pass(rt: &Arc<Runtime>) -> Result<RecoveryPass> {
    let mut pass = RecoveryPass::default();
    let worker = rt.next_owner();
    for endpoint in published_endpoints(&rt.config.app) {
        let expired = match rt.lock.expired(&format!("{endpoint}/"), BATCH).await {
            Ok(expired) => expired,
            Err(e) => {
                pass.failed += 1;
                rt.report(&e.into());
                continue;
            }
        };
        for lock in expired {
            if let Some(publication) = publication_of(&lock.recovery) {
                match resolve(rt, &publication).await {
                    Ok(resolution) => count(&mut pass, &resolution),
                    Err(error) => {
                        pass.failed += 1;
                        rt.report(&error);
                        // Left expired: tried again next pass.
                        continue;
                    }
                }
            }
            // Clear the expired lock: take it over, then release it.
            if rt
                .lock
                .try_acquire(&lock.key, &worker, rt.config.lock_ttl, &lock.recovery)
                .await?
                .is_some()
            {
                rt.lock.release(&lock.key, &worker).await?;
                pass.locks_cleared += 1;
            }
        }
    }
    let stale = rt
        .clock
        .stale_intents(&rt.config.app, rt.config.lock_ttl.saturating_mul(3), BATCH)
        .await?;
    for intent in stale {
        match resolve_abandoned(rt, &worker, &intent).await {
            Ok(resolution) => count(&mut pass, &resolution),
            Err(error) => {
                pass.failed += 1;
                rt.report(&error);
            }
        }
    }
    if let Some(outbox) = rt.outbox() {
        let relayed = Relay::over(rt.clone(), outbox).run_once().await?;
        pass.relayed += relayed.published;
        pass.failed += relayed.failed;
    }
    Ok(pass)
}

/// Finishes a publication found from its old intent, unless its locks are
/// still kept alive by its publisher (a write that takes long): the locks
/// are taken for the time it is finished, so its publisher cannot be in the
/// middle of it.
async fn resolve_abandoned(
    rt: &Arc<Runtime>,
    worker: &str,
    intent: &crate::traits::RecordedIntent,
) -> Result<Resolution> {
    let Ok(data) = IntentData::decode(&intent.data) else {
        return resolve(rt, &intent.id).await;
    };
    if data.app != rt.config.app {
        return Ok(Resolution::OtherApp);
    }
    let lock_data = super::intent::lock_data(&intent.id, "recovery");
    let mut taken = Vec::new();
    let mut alive = false;
    for key in &data.plan.locks {
        match rt
            .lock
            .try_acquire(key, worker, rt.config.lock_ttl, &lock_data)
            .await
        {
            Ok(Some(_)) => taken.push(key.clone()),
            Ok(None) => {
                alive = true;
                break;
            }
            Err(e) => {
                super::locks::release_all(rt, &taken, worker).await;
                return Err(e.into());
            }
        }
    }
    let resolved = if alive {
        Ok(Resolution::Settled)
    } else {
        resolve(rt, &intent.id).await
    };
    super::locks::release_all(rt, &taken, worker).await;
    resolved
}

fn count(pass: &mut RecoveryPass, resolution: &Resolution) {
    if matches!(resolution, Resolution::Published { .. }) {
        pass.recovered += 1;
    }
}

/// The endpoints this app's publishers (linked into the binary, mocks
/// included: they publish through the same protocol) publish to.
fn published_endpoints(app: &str) -> BTreeSet<String> {
    PublisherRegistration::all()
        .into_iter()
        .map(|r| (r.definition)().endpoint(app))
        .collect()
}

/// Finishes `publication` in the background, reporting a failure (the
/// recovery worker tries again later).
pub(crate) fn resolve_later(rt: &Arc<Runtime>, publication: String) {
    let weak = Arc::downgrade(rt);
    tokio::spawn(async move {
        let Some(rt) = weak.upgrade() else {
            return;
        };
        if let Err(error) = resolve(&rt, &publication).await {
            rt.report(&error);
        }
    });
}

/// Finishes publication `id` from its intent, and the publications it inherited.
pub(crate) async fn resolve(rt: &Arc<Runtime>, id: &str) -> Result<Resolution> {
    resolve_chain(rt, id, 0).await
}

fn resolve_chain<'a>(
    rt: &'a Arc<Runtime>,
    id: &'a str,
    depth: usize,
) -> futures::future::BoxFuture<'a, Result<Resolution>> {
    Box::pin(async move {
        let Some(recorded) = rt.clock.intent(id).await? else {
            return Ok(Resolution::Settled);
        };
        let intent = IntentData::decode(&recorded.data).map_err(|e| Error::Definition {
            model: format!("publication {id}"),
            problem: format!("its intent cannot be read ({e}); was it written by another version of promiscuous? Its versions stay unpublished: skip them on subscribers as an operator after checking"),
        })?;
        if intent.app != rt.config.app {
            return Ok(Resolution::OtherApp);
        }
        let mut plan = intent.plan.clone();
        plan.fill(&recorded.versions);
        let operations = match intent.kind {
            IntentKind::Outbox => {
                return finish_outbox(rt, id, &intent, &plan.noops(), &plan.endpoints)
                    .await
                    .map(|outcome| Resolution::Published { outcome })
            }
            IntentKind::Versioned => finish_versioned(rt, &intent, &plan.operations).await?,
            IntentKind::Unfenced => finish_unfenced(rt, &intent, &plan.operations).await?,
            IntentKind::Recorded => finish_recorded(&intent, &plan.operations),
        };
        let outcome = describe(&operations);
        let message = message(
            &intent.app,
            intent.generation,
            intent.epoch,
            &rt.config.host,
            id,
            operations,
        );
        rt.send(&plan.endpoints, &message).await?;
        settle(rt, id, &intent, depth, &outcome).await;
        Ok(Resolution::Published { outcome })
    })
}

/// After its message is out: the inherited publications, then forgetting
/// it; returns whether it was forgotten.
async fn settle(
    rt: &Arc<Runtime>,
    id: &str,
    intent: &IntentData,
    depth: usize,
    outcome: &str,
) -> bool {
    if depth < MAX_INHERITED_DEPTH {
        for inherited in &intent.inherits {
            if let Err(error) = resolve_chain(rt, inherited, depth + 1).await {
                rt.report(&error);
            }
        }
    }
    rt.report(&Error::PublicationRecovered {
        publication: id.to_owned(),
        app: intent.app.clone(),
        outcome: outcome.to_owned(),
    });
    match rt.clock.forget(&[id.to_owned()]).await {
        Ok(()) => true,
        Err(e) => {
            rt.report(&Error::from(e));
            false
        }
    }
}

/// An outbox publication: its entry if its transaction committed, else the
/// noop that fences it off; published, then removed.
async fn finish_outbox(
    rt: &Arc<Runtime>,
    id: &str,
    intent: &IntentData,
    noops: &[Operation],
    endpoints: &[String],
) -> Result<String> {
    let outbox = rt.outbox().ok_or_else(|| {
        Error::config(
            "storage",
            format!("publication {id} of {} waits in the outbox of its database, and this process has none: run recovery in a process configured with that database (its SqlPublisher or SqlStorage)", intent.app),
        )
    })?;
    let noop = message(
        &intent.app,
        intent.generation,
        intent.epoch,
        &rt.config.host,
        id,
        noops.to_vec(),
    );
    let (payload, outcome) = match outbox
        .fence(&intent.app, id, &noop.encode(), rt.config.outbox_claim)
        .await?
    {
        Fence::Committed(entry) => (entry.payload, "its committed outbox entry".to_owned()),
        Fence::Fenced(entry) => (
            entry.payload,
            format!(
                "noop: its transaction never committed ({})",
                intent.plan.describe().join(", ")
            ),
        ),
    };
    let decoded = crate::wire::Message::decode(&payload)?;
    rt.send(endpoints, &decoded).await?;
    // Forgotten before the entry is removed: an entry left without its
    // intent is only relayed again, never fenced.
    if settle(rt, id, intent, 0, &outcome).await {
        outbox.remove(&[id.to_owned()]).await?;
    }
    Ok(outcome)
}

/// The published attributes of a stored record of the publisher model of
/// operation `op`.
fn attributes_of(
    rt: &Runtime,
    model: &str,
    op: &Operation,
    record: &Record,
) -> Result<Map<String, Value>> {
    let registration = PublisherRegistration::find(model, &op.endpoint, &rt.config.app)
        .ok_or_else(|| Error::Definition {
            model: model.to_owned(),
            problem: format!("publication of {model} {} cannot be recovered in this process: the model is not linked into this binary; run recovery in the publisher app's own binary", op.id),
        })?;
    (registration.attributes_of)(record).unwrap_or_else(|| {
        Err(Error::Definition {
            model: model.to_owned(),
            problem: "recovery reads the stored record back into the model, which needs `Deserialize`; derive it".to_owned(),
        })
    })
}

fn storage(rt: &Runtime) -> Result<&Arc<dyn crate::traits::Storage>> {
    rt.storage.as_ref().ok_or_else(|| {
        Error::config(
            "storage",
            "a publication written through the storage is recovered through it: configure the same storage in the process that recovers",
        )
    })
}

fn noop(op: &Operation) -> Operation {
    Operation {
        operation: OperationKind::Noop,
        attributes: None,
        ..op.clone()
    }
}

fn with_attributes(op: &Operation, attributes: Map<String, Value>) -> Operation {
    Operation {
        attributes: Some(attributes),
        ..op.clone()
    }
}

async fn read_back(rt: &Runtime, model: &str, key: &Value) -> Result<Option<Record>> {
    let storage = storage(rt)?;
    let filter = Filter::eq(storage.key_field(model), key.clone());
    Ok(storage.find(model, &filter, 1).await?.pop())
}

/// Versioned writes: fence each record at the publication's version; what
/// landed is published as stored, what did not becomes a noop (a create
/// that did not land leaves a tombstone at its version, so it can no longer
/// land either).
async fn finish_versioned(
    rt: &Arc<Runtime>,
    intent: &IntentData,
    operations: &[Operation],
) -> Result<Vec<Operation>> {
    let storage = storage(rt)?;
    let mut out = Vec::with_capacity(operations.len());
    for (index, op) in operations.iter().enumerate() {
        let model = intent.plan.models.get(index).map_or("", String::as_str);
        let version = op.dependencies.endpoint.as_ref().map_or(0, |d| d.version);
        let stamp = version_stamp(intent.generation, intent.epoch, version).unwrap_or(u128::MAX);
        let recorded = intent.recorded.get(index).cloned().unwrap_or_default();
        if let Recorded::Attributes(attributes) = recorded {
            out.push(as_recorded(op, attributes));
            continue;
        }
        if op.operation == OperationKind::Noop {
            out.push(noop(op));
            continue;
        }
        let fenced = storage
            .write_versioned(model, &op.id, VersionedWrite::Stamp, stamp)
            .await?;
        let finished = match (op.operation, fenced) {
            // At or past its version: the write landed; the record says what it left.
            (kind, Versioned::Stale { .. }) => match (kind, read_back(rt, model, &op.id).await?) {
                (OperationKind::Destroy, None) => op.clone(),
                (OperationKind::Destroy, Some(_)) | (_, None) => noop(op),
                (_, Some(stored)) => with_attributes(op, attributes_of(rt, model, op, &stored)?),
            },
            // Absent: the destroy had landed.
            (OperationKind::Destroy, Versioned::Missing) => op.clone(),
            // Fenced now (an absent record by a tombstone): it can no longer
            // land. A present record with an older version is not a create's.
            _ => noop(op),
        };
        out.push(finished);
    }
    Ok(out)
}

/// Writes that cannot be fenced: each record as stored now.
async fn finish_unfenced(
    rt: &Arc<Runtime>,
    intent: &IntentData,
    operations: &[Operation],
) -> Result<Vec<Operation>> {
    let mut out = Vec::with_capacity(operations.len());
    for (index, op) in operations.iter().enumerate() {
        let model = intent.plan.models.get(index).map_or("", String::as_str);
        if let Some(Recorded::Attributes(attributes)) = intent.recorded.get(index) {
            out.push(as_recorded(op, attributes.clone()));
            continue;
        }
        let stored = match rt.storage {
            Some(_) => read_back(rt, model, &op.id).await?,
            None => {
                return Err(Error::config(
                    "storage",
                    format!("publication of {model} {} was written by your own code and its publisher stopped before publishing; configure a storage that reads {model} so recovery can publish its state, or publish a sync of it", op.id),
                ))
            }
        };
        out.push(match (op.operation, stored) {
            (OperationKind::Destroy, None) => op.clone(),
            (OperationKind::Destroy | OperationKind::Noop, Some(_)) | (_, None) => noop(op),
            (_, Some(stored)) => with_attributes(op, attributes_of(rt, model, op, &stored)?),
        });
    }
    Ok(out)
}

/// Nothing was written: the recorded attributes, as they were.
fn finish_recorded(intent: &IntentData, operations: &[Operation]) -> Vec<Operation> {
    operations
        .iter()
        .enumerate()
        .map(|(index, op)| match intent.recorded.get(index) {
            Some(Recorded::Attributes(attributes)) => as_recorded(op, attributes.clone()),
            _ if op.operation == OperationKind::Destroy => op.clone(),
            _ => noop(op),
        })
        .collect()
}

/// An operation whose attributes were recorded (a destroy carries none).
fn as_recorded(op: &Operation, attributes: Map<String, Value>) -> Operation {
    if op.operation == OperationKind::Destroy {
        op.clone()
    } else {
        with_attributes(op, attributes)
    }
}

fn describe(operations: &[Operation]) -> String {
    operations
        .iter()
        .map(|op| format!("{} {} {}", op.operation.as_str(), op.endpoint, op.id))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Runs recovery passes every `every` until the runtime is gone or shut down.
pub(crate) async fn run_in_background(rt: Weak<Runtime>, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        let Some(rt) = rt.upgrade() else {
            return;
        };
        if rt.is_closed() {
            return;
        }
        if let Err(error) = run_pass(&rt).await {
            rt.report(&error);
        }
    }
}
