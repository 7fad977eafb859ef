//! Starting a joining subscriber's counters where an initial sync's
//! baseline says the publisher stood (see `publisher::baseline`).

use super::epochs::Era;
use super::worker::State;
use crate::config::Mode;
use crate::error::Result;
use crate::wire::Operation;

/// Seeds the counters a baseline lists that this subscriber never advanced,
/// when it received nothing of the publisher before this era (its queue then
/// holds everything since the baseline's counters, and the sync that
/// follows carries the state of what came before); ignores it otherwise.
pub(crate) async fn seed(state: &State, era: &Era, ops: &[&Operation]) -> Result<()> {
    let rt = &state.rt;
    if !state.sync.epochs.is_first_era(era) {
        tracing::debug!(app = %era.app, "baseline of a later era ignored: this subscriber received everything since");
        return Ok(());
    }
    let namespace = era.namespace(&rt.config.app);
    let targets: Vec<(String, u64)> = match rt.config.mode {
        Mode::Causal => ops
            .iter()
            .flat_map(|op| op.dependencies.write.iter())
            .map(|dep| (format!("{namespace}:{}", dep.key), dep.version))
            .collect(),
        Mode::Global => ops
            .iter()
            .filter_map(|op| op.dependencies.endpoint.as_ref())
            .map(|dep| (format!("{namespace}:{}", dep.key), dep.version))
            .collect(),
        // Nothing waits in these modes.
        Mode::Weak | Mode::Unordered => Vec::new(),
    };
    if targets.is_empty() {
        return Ok(());
    }
    // Counters the database recorded were applied here: where it stands
    // comes from it, never from the baseline (the clock may have lost them).
    let keys: Vec<String> = targets.iter().map(|(key, _)| key.clone()).collect();
    let targets = match super::restore::recorded(rt, &keys).await? {
        Some(recorded) => {
            let restored: Vec<(String, u64)> = keys
                .iter()
                .zip(&recorded)
                .filter(|(_, &version)| version > 0)
                .map(|(key, &version)| (key.clone(), version))
                .collect();
            rt.clock.seed(&restored).await?;
            targets
                .into_iter()
                .zip(recorded)
                .filter(|(_, version)| *version == 0)
                .map(|(target, _)| target)
                .collect()
        }
        None => targets,
    };
    let set = rt.clock.seed(&targets).await?;
    state.counters.add(&state.counters.seeded, set as u64);
    tracing::debug!(app = %era.app, counters = set, "counters seeded from a sync's baseline");
    Ok(())
}
