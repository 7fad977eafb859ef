//! Applying the operations of a ready message to the storage.

use super::handler::AfterCommit;
use super::stats::Counters;
use super::synchronizer::Gates;
use super::worker::State;
use super::Applied;
use crate::error::Result;
use crate::wire::{Message, Operation, OperationKind};

/// Applies the operations of a ready message, except those already applied
/// (a message some of whose counters were passed, by another copy or by an
/// operator's skip); returns the `after_commit` callbacks to run.
///
/// With a storage that has transactions, the operations and the versions they
/// bring are committed together, and versions recorded in the database count
/// as applied: a message redelivered after a crash between the commit and the
/// clock's advance is recognised there and not applied twice; two processes
/// applying the same counters take turns on their rows.
pub(crate) async fn apply(
    state: &State,
    message: &Message,
    ops: &[&Operation],
    gates: &Gates,
    values: &[u64],
) -> Result<Vec<AfterCommit>> {
    let rt = &state.rt;
    let handlers: Vec<_> = ops
        .iter()
        .map(|op| match op.operation {
            OperationKind::Noop | OperationKind::Baseline => None,
            _ => rt.router.route(op),
        })
        .collect();
    let stores = handlers
        .iter()
        .flatten()
        .any(|handler| !handler.definition().is_observer());
    let transaction = match rt.storage.as_deref() {
        Some(storage) if stores => storage.begin().await?,
        _ => None,
    };
    let merged;
    let values = match &transaction {
        Some(tx) => {
            let keys: Vec<String> = gates.writes.iter().map(|g| g.key.clone()).collect();
            let recorded = tx.applied_versions(&keys).await?;
            let mut replayed = false;
            merged = values
                .iter()
                .zip(recorded.into_iter().chain(std::iter::repeat(0)))
                .map(|(&value, recorded)| {
                    replayed |= recorded > value;
                    value.max(recorded)
                })
                .collect::<Vec<u64>>();
            if replayed {
                // Counted per operation below (`AlreadyApplied`), once committed.
                Counters::bump(&state.counters.duplicates);
                tracing::info!(app = %message.app, "operations already committed in the database (a replay after a crash) are not applied again");
            }
            &merged[..]
        }
        None => values,
    };
    let storage = match &transaction {
        Some(tx) => Some(tx.storage()),
        None => rt.storage.as_deref(),
    };
    let mut after_commit = Vec::new();
    // Counted once committed: a rolled-back attempt applied nothing.
    let mut outcomes = Vec::with_capacity(ops.len());
    // A record written twice by one message carries the message's version
    // after the first write: the later writes are not conditioned on it.
    let mut written = std::collections::HashSet::new();
    for (index, (op, handler)) in ops.iter().zip(handlers).enumerate() {
        if matches!(op.operation, OperationKind::Noop | OperationKind::Baseline) {
            outcomes.push((Applied::Nothing, None));
            continue;
        }
        if gates.already_applied(index, values) {
            outcomes.push((Applied::Nothing, Some(Counted::AlreadyApplied)));
            continue;
        }
        let Some(handler) = handler else {
            tracing::debug!(endpoint = %op.endpoint, types = ?op.types, "no subscribed model for this type; skipped");
            outcomes.push((Applied::Nothing, Some(Counted::Unsubscribed)));
            continue;
        };
        let first = written.insert((
            handler.definition().model,
            crate::dependency::id_json(&op.id),
        ));
        let ordered = rt.config.mode != crate::Mode::Unordered && first;
        let outcome = handler
            .apply(storage, message, op, ordered)
            .await
            .map_err(|e| super::handler::storage_failed(handler.definition().model, op, e))?;
        outcomes.push((
            outcome.applied,
            Some(Counted::Model(handler.definition().model)),
        ));
        after_commit.extend(outcome.after_commit);
    }
    if let Some(tx) = transaction {
        tx.record_applied(&gates.targets()).await?;
        tx.commit().await?;
    }
    let app = &rt.config.app;
    for ((applied, what), op) in outcomes.into_iter().zip(ops) {
        let counter = match (applied, what) {
            (Applied::Nothing, what) => {
                match what {
                    Some(Counted::AlreadyApplied) => crate::metrics::duplicate(app, &op.endpoint),
                    Some(Counted::Unsubscribed) => {
                        crate::metrics::skipped(app, &op.endpoint, "unsubscribed")
                    }
                    _ => {}
                }
                &state.counters.skipped
            }
            (Applied::Stale, _) => {
                crate::metrics::duplicate(app, &op.endpoint);
                &state.counters.duplicates
            }
            (_, what) => {
                if let Some(Counted::Model(model)) = what {
                    crate::metrics::applied(app, &op.endpoint, model);
                }
                &state.counters.applied
            }
        };
        Counters::bump(counter);
    }
    Ok(after_commit)
}

/// What an operation's outcome is counted as, in the metrics.
#[derive(Clone, Copy)]
enum Counted {
    /// Applied by model (or found stale).
    Model(&'static str),
    /// A counter of the message was already past this operation.
    AlreadyApplied,
    /// No model of this app subscribes to its type.
    Unsubscribed,
}
