//! Decides when a received message may be applied.
//!
//! Each relevant operation contributes *gates* on the subscriber's version
//! counters, chosen by the mode. A message is *ready* when every write gate's
//! counter is at `version - 1` (or beyond, for a re-delivery) and every read
//! gate's counter is at least its version; a *duplicate* when every write gate
//! is already at its version; otherwise it *waits*. Messages touching the same
//! counters never run at once (the in-flight guard), so a duplicate delivered
//! while the original is being applied waits and is then recognised.

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{watch, Notify};

use super::epochs::{Epochs, Era};
use super::recovery::{alert, skip, Stalls};
use super::stats::Counters;
use super::window::Window;
use crate::config::Mode;
use crate::dependency::weak_counter;
use crate::error::{Error, Result};
use crate::runtime::Runtime;
use crate::wire::{Message, Operation};

/// A counter that must reach `from` before, and is raised to `to` after, applying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WriteGate {
    pub key: String,
    pub from: u64,
    pub to: u64,
}

/// The gates of one message.
#[derive(Debug, Default, Clone)]
pub(crate) struct Gates {
    /// Whose counters they are.
    pub era: Era,
    pub writes: Vec<WriteGate>,
    pub reads: Vec<(String, u64)>,
    /// Per operation (in order), the write gates it provides and its version
    /// on each: an operation whose gates are all already at its versions was
    /// applied before (or passed by recovery) and must not be applied again.
    pub provides: Vec<Vec<(usize, u64)>>,
}

/// The state of a message against the counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Readiness {
    Ready,
    Duplicate,
    Waiting { key: String, have: u64, need: u64 },
}

impl Gates {
    /// The gates of `ops` (the relevant operations of `message`) under `mode`,
    /// with counter keys namespaced for subscriber app `app`. Read
    /// dependencies on endpoints this subscriber does not `listen` to are
    /// ignored: it never receives what would advance them.
    pub fn of(
        mode: Mode,
        app: &str,
        message: &Message,
        ops: &[&Operation],
        listens: &dyn Fn(&str) -> bool,
    ) -> Self {
        let era = Era::of(message);
        let namespace = era.namespace(app);
        let ns = |key: &str| format!("{namespace}:{key}");
        let mut gates = Gates {
            era,
            ..Gates::default()
        };
        let mut reads = Vec::new();
        for op in ops {
            let deps = &op.dependencies;
            let mut provides = Vec::new();
            match mode {
                Mode::Unordered => {}
                Mode::Causal => {
                    for dep in &deps.write {
                        provides.push(gates.add_write(ns(&dep.key), dep.version));
                    }
                    for dep in &deps.read {
                        let endpoint = dep.key.split('#').next().unwrap_or_default();
                        if listens(endpoint) {
                            reads.push((ns(&dep.key), dep.version));
                        }
                    }
                }
                Mode::Global => {
                    if let Some(dep) = deps.endpoint.as_ref().or(deps.write.first()) {
                        provides.push(gates.add_write(ns(&dep.key), dep.version));
                    }
                }
                // Weak mode compares versions of one record; ephemerals without
                // id are not a record, so nothing is stale.
                Mode::Weak if op.id.is_null() => {}
                Mode::Weak => {
                    if let Some(own) = op.own_version() {
                        let key = ns(&weak_counter(&op.endpoint, &op.id));
                        provides.push(gates.add_gate(key, 0, own.version));
                    }
                }
            }
            gates.provides.push(provides);
        }
        // A read of a counter the message itself writes is covered by the
        // write gate; several reads of one counter need the largest version.
        for (key, version) in reads {
            if gates.writes.iter().any(|g| g.key == key) {
                continue;
            }
            match gates.reads.iter_mut().find(|(k, _)| *k == key) {
                Some((_, need)) => *need = (*need).max(version),
                None => gates.reads.push((key, version)),
            }
        }
        gates
    }

    fn add_write(&mut self, key: String, version: u64) -> (usize, u64) {
        self.add_gate(key, version.saturating_sub(1), version)
    }

    /// Adds (or widens) a write gate; returns its index and the version provided.
    fn add_gate(&mut self, key: String, from: u64, to: u64) -> (usize, u64) {
        // Two operations of one message on one counter: the message needs the
        // earliest and provides the latest.
        if let Some(index) = self.writes.iter().position(|g| g.key == key) {
            let gate = &mut self.writes[index];
            gate.from = gate.from.min(from);
            gate.to = gate.to.max(to);
            (index, to)
        } else {
            self.writes.push(WriteGate { key, from, to });
            (self.writes.len() - 1, to)
        }
    }

    /// Whether operation `index` was already applied (or passed by recovery),
    /// given the current `values` of [`keys`](Self::keys).
    pub fn already_applied(&self, index: usize, values: &[u64]) -> bool {
        self.provides.get(index).is_some_and(|provided| {
            !provided.is_empty()
                && provided
                    .iter()
                    .all(|&(gate, version)| values.get(gate).is_some_and(|&v| v >= version))
        })
    }

    /// Every counter key, writes first, in order.
    pub fn keys(&self) -> Vec<String> {
        self.writes
            .iter()
            .map(|g| g.key.clone())
            .chain(self.reads.iter().map(|(k, _)| k.clone()))
            .collect()
    }

    /// The counter targets to advance to once applied.
    pub fn targets(&self) -> Vec<(String, u64)> {
        self.writes.iter().map(|g| (g.key.clone(), g.to)).collect()
    }

    /// Classifies the message given the current `values` of [`keys`](Self::keys).
    pub fn readiness(&self, values: &[u64]) -> Readiness {
        let (write_values, read_values) = values.split_at(self.writes.len().min(values.len()));
        for (gate, &have) in self.writes.iter().zip(write_values) {
            if have < gate.from {
                return Readiness::Waiting {
                    key: gate.key.clone(),
                    have,
                    need: gate.from,
                };
            }
        }
        for ((key, need), &have) in self.reads.iter().zip(read_values) {
            if have < *need {
                return Readiness::Waiting {
                    key: key.clone(),
                    have,
                    need: *need,
                };
            }
        }
        let all_done = !self.writes.is_empty()
            && self
                .writes
                .iter()
                .zip(write_values)
                .all(|(gate, &have)| have >= gate.to);
        if all_done {
            Readiness::Duplicate
        } else {
            Readiness::Ready
        }
    }
}

/// What to do with a message, as the synchronizer decided.
#[derive(Debug)]
pub(crate) enum Decision<'a> {
    /// Apply it now. `values` are the counters' values (in the order of
    /// [`Gates::keys`]); `guard` keeps other messages on its write counters
    /// out until it is dropped, after the counters advanced.
    Apply {
        values: Vec<u64>,
        guard: InFlightGuard<'a>,
    },
    /// It was applied before: acknowledge it.
    Duplicate,
    /// The window starved: step aside so what it waits for can come in.
    Defer,
    /// The worker stops: hand it back.
    Stop,
    /// Its publisher's clock started a later epoch: it cannot be ordered
    /// any more (see `epochs`).
    Superseded {
        /// The later epoch.
        latest: u64,
    },
}

/// Decides when each message may be applied: waits for its dependencies,
/// alerts on missing ones, keeps messages on the same counters apart, and
/// watches the window for starvation.
#[derive(Debug)]
pub(crate) struct Synchronizer {
    in_flight: InFlight,
    pub stalls: Stalls,
    pub window: Window,
    pub epochs: Epochs,
}

impl Synchronizer {
    pub fn new(prefetch: u16) -> Self {
        Self {
            in_flight: InFlight::default(),
            stalls: Stalls::default(),
            window: Window::new(prefetch),
            epochs: Epochs::default(),
        }
    }

    /// Waits until the message whose gates are `gates` may be applied, is
    /// found applied before, must step aside, or the worker stops.
    ///
    /// `endpoint` names the message in alerts. With `in_window` false (a
    /// message delivered inline, outside any window), a dependency missing
    /// for `recovery_timeout` fails with [`Error::Stalled`] instead of
    /// waiting on.
    pub async fn admit<'a>(
        &'a self,
        rt: &Runtime,
        gates: &Gates,
        endpoint: &str,
        mut stop: watch::Receiver<bool>,
        in_window: bool,
        counters: &Counters,
    ) -> Result<Decision<'a>> {
        let keys = gates.keys();
        let every = rt.config.recovery_timeout;
        let mut waiting = None;
        loop {
            let epoch_changed = self.epochs.changed.notified();
            tokio::pin!(epoch_changed);
            epoch_changed.as_mut().enable();
            if let Some(latest) = self.epochs.superseding(&gates.era) {
                return Ok(Decision::Superseded { latest });
            }
            let guard = self.in_flight.enter(&keys[..gates.writes.len()]).await;
            let values = if keys.is_empty() {
                Vec::new()
            } else {
                rt.clock.read(&keys).await?
            };
            let (key, have, need) = match gates.readiness(&values) {
                Readiness::Duplicate => return Ok(Decision::Duplicate),
                Readiness::Ready => return Ok(Decision::Apply { values, guard }),
                Readiness::Waiting { key, have, need } => (key, have, need),
            };
            drop(guard);
            // A counter never touched may have been lost with the clock's
            // state: the database says where it stood.
            if have == 0 && waiting.is_none() && super::restore::from_storage(rt, &key).await? {
                continue;
            }
            let (waited, due) = self.stalls.waiting(&key, have, need, endpoint, every);
            if rt
                .config
                .skip_missing_after
                .is_some_and(|after| waited >= after)
            {
                // Skip only the operations that never arrived: up to the
                // first one that did, not to what this message needs.
                let first_arrived = self.stalls.needed(&key).unwrap_or(need);
                let skipped = skip(rt, &key, first_arrived, waited).await?;
                counters.add(&counters.recovered, skipped);
                self.stalls.moved([key.as_str()]);
                continue;
            }
            if due {
                alert(rt, &key, have, need, waited, endpoint);
            }
            if !in_window && waited >= every {
                return Err(Error::Stalled {
                    key,
                    applied: have,
                    needed: need,
                    waited,
                    endpoint: endpoint.to_owned(),
                });
            }
            if waiting.is_none() {
                waiting = Some(self.window.wait());
            }
            let until_alert = every.saturating_sub(Duration::from_nanos(
                (waited.as_nanos() % every.as_nanos().max(1)) as u64,
            ));
            let until_skip = rt
                .config
                .skip_missing_after
                .map_or(until_alert, |after| after.saturating_sub(waited));
            let until_alert = until_alert.min(until_skip).max(Duration::from_millis(1));
            tokio::select! {
                _ = stop.wait_for(|stopped| *stopped) => return Ok(Decision::Stop),
                _ = self.window.starved(), if in_window => return Ok(Decision::Defer),
                _ = &mut epoch_changed => {}
                woken = rt.clock.wait_until(&key, need, until_alert) => { woken?; }
            }
        }
    }
}

/// Counter keys being applied right now, so that two messages on the same
/// counters never overlap.
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    keys: Mutex<HashSet<String>>,
    released: Notify,
}

/// Holds keys in flight; releases them when dropped.
#[derive(Debug)]
pub(crate) struct InFlightGuard<'a> {
    owner: &'a InFlight,
    keys: Vec<String>,
}

impl InFlight {
    /// Waits until none of `keys` is in flight, then marks them.
    pub async fn enter(&self, keys: &[String]) -> InFlightGuard<'_> {
        loop {
            let released = self.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            {
                let mut held = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
                if keys.iter().all(|k| !held.contains(k)) {
                    held.extend(keys.iter().cloned());
                    return InFlightGuard {
                        owner: self,
                        keys: keys.to_vec(),
                    };
                }
            }
            released.await;
        }
    }
}

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        let mut held = self
            .owner
            .keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for key in &self.keys {
            held.remove(key);
        }
        drop(held);
        self.owner.released.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gates(writes: &[(u64, u64)], reads: &[u64]) -> Gates {
        Gates {
            era: Era::default(),
            provides: Vec::new(),
            writes: writes
                .iter()
                .enumerate()
                .map(|(i, &(from, to))| WriteGate {
                    key: format!("w{i}"),
                    from,
                    to,
                })
                .collect(),
            reads: reads
                .iter()
                .enumerate()
                .map(|(i, &v)| (format!("r{i}"), v))
                .collect(),
        }
    }

    #[test]
    fn write_gates_wait_apply_or_detect_duplicates() {
        let g = gates(&[(4, 5)], &[]);
        assert!(matches!(
            g.readiness(&[3]),
            Readiness::Waiting {
                need: 4,
                have: 3,
                ..
            }
        ));
        assert_eq!(g.readiness(&[4]), Readiness::Ready);
        assert_eq!(g.readiness(&[5]), Readiness::Duplicate);
        assert_eq!(g.readiness(&[9]), Readiness::Duplicate);
    }

    #[test]
    fn read_gates_need_at_least_their_version() {
        let g = gates(&[(0, 1)], &[3]);
        assert!(matches!(
            g.readiness(&[0, 2]),
            Readiness::Waiting { need: 3, .. }
        ));
        assert_eq!(g.readiness(&[0, 3]), Readiness::Ready);
    }

    #[test]
    fn no_gates_is_always_ready() {
        assert_eq!(Gates::default().readiness(&[]), Readiness::Ready);
    }

    #[tokio::test]
    async fn in_flight_keys_exclude_each_other() {
        let flight = InFlight::default();
        let a = flight.enter(&["k".into()]).await;
        let waiting = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            flight.enter(&["k".into(), "j".into()]),
        )
        .await;
        assert!(waiting.is_err(), "second entry must wait for the first");
        let _other = flight.enter(&["j".into()]).await;
        drop(a);
    }
}
