//! The subscriber worker: pump → synchronizer → runners → advance → ack.

use std::sync::Arc;
use std::time::Duration;

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{watch, Notify, Semaphore};
use tokio::task::JoinSet;

use super::stats::{Counters, WorkerStats};
use super::synchronizer::{Failing, Gates, InFlight, Readiness, Stuck};
use super::Applied;
use crate::error::{Error, Result};
use crate::runtime::{Promiscuous, Runtime};
use crate::traits::{Delivery, Disposition, Subscription};
use crate::wire::{Message, Operation, OperationKind};

/// Longest pause between reconnection attempts of the consumer.
const MAX_RECONNECT_PAUSE: Duration = Duration::from_secs(30);
/// First pause after the consumer reports a lost connection.
const FIRST_RECONNECT_PAUSE: Duration = Duration::from_secs(2);
/// Longest delay between two attempts at a failing message.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(300);

struct State {
    rt: Arc<Runtime>,
    runners: Semaphore,
    in_flight: InFlight,
    counters: Counters,
    stop: watch::Receiver<bool>,
    /// Lets a handler stop the whole worker (when the clock lost its state).
    halt: Arc<watch::Sender<bool>>,
    /// Messages waiting for a dependency right now.
    waiting: AtomicUsize,
    /// Signalled when waiting messages fill the prefetch window.
    window_full: Notify,
    /// Whether waiting messages may step aside (not for inline deliveries,
    /// which have no window).
    defers: bool,
    /// Since when each awaited counter has not moved.
    stuck: Stuck,
    /// Counters of messages that failed and will be retried: not to be skipped.
    failing: Failing,
}

/// Counts a message as waiting while it lives.
struct Waiting<'a>(&'a State);

impl<'a> Waiting<'a> {
    /// Counts one more waiting message; returns it and whether the window is now full of them.
    fn enter(state: &'a State) -> (Self, bool) {
        let now = state.waiting.fetch_add(1, Ordering::SeqCst) + 1;
        let full = state.defers && now >= usize::from(state.rt.config.prefetch);
        (Self(state), full)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A running subscriber worker. Stop it with [`shutdown`](Worker::shutdown);
/// dropping it stops it too, without waiting.
#[derive(Debug)]
pub struct Worker {
    state: Arc<State>,
    stop: Arc<watch::Sender<bool>>,
    pump: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerState")
            .field("app", &self.rt.config.app)
            .field("counters", &self.counters)
            .finish()
    }
}

impl Promiscuous {
    /// Declares this app's queue, binds it to the endpoints of its subscribed
    /// models and starts the worker.
    pub async fn subscribe(&self) -> Result<Worker> {
        let rt = self.inner.clone();
        rt.ensure_open()?;
        if rt.router.is_empty() {
            return Err(Error::config(
                "subscriber",
                "no subscribed model: derive Subscribe on a model, or select models with .subscriber::<M>()",
            ));
        }
        let subscription = Subscription {
            queue: rt.config.app.clone(),
            bindings: rt.router.bindings(),
            prefetch: rt.config.prefetch,
        };
        let consumer = rt.broker.subscribe(&subscription).await?;
        tracing::info!(app = %rt.config.app, bindings = ?subscription.bindings, mode = ?rt.config.mode, "subscriber worker started");
        let (state, stop_tx) = State::new(rt, true);
        let state = Arc::new(state);
        let pump = tokio::spawn(pump(state.clone(), consumer));
        Ok(Worker {
            state,
            stop: stop_tx,
            pump: Some(pump),
        })
    }
}

impl State {
    fn new(rt: Arc<Runtime>, defers: bool) -> (Self, Arc<watch::Sender<bool>>) {
        let (stop_tx, stop_rx) = watch::channel(false);
        let stop_tx = Arc::new(stop_tx);
        let state = State {
            halt: stop_tx.clone(),
            waiting: AtomicUsize::new(0),
            window_full: Notify::new(),
            defers,
            stuck: Stuck::default(),
            failing: Failing::default(),
            runners: Semaphore::new(rt.config.runners),
            in_flight: InFlight::default(),
            counters: Counters::default(),
            stop: stop_rx,
            rt,
        };
        (state, stop_tx)
    }
}

impl Promiscuous {
    /// Processes one message now, in this task, exactly as the worker would
    /// (ordering, duplicates, callbacks, counters), without a broker; returns
    /// what it did. Used by mock publishers in subscriber tests.
    ///
    /// A message that must wait for a missing dependency waits, up to the
    /// recovery timeout. Errors are returned (and reported), not retried.
    pub async fn deliver(&self, payload: &[u8]) -> Result<WorkerStats> {
        let rt = self.inner.clone();
        rt.ensure_open()?;
        let message = Message::decode(payload).map_err(|e| {
            let error = Error::Wire(e);
            rt.report(&error);
            error
        })?;
        let (state, _stop) = State::new(rt, false);
        Counters::bump(&state.counters.received);
        match process(&state, &message, 0).await {
            Ok(_) => Ok(state.counters.snapshot()),
            Err(error) => {
                state.rt.report(&error);
                Err(error)
            }
        }
    }
}

impl Worker {
    /// What the worker has done so far.
    pub fn stats(&self) -> WorkerStats {
        self.state.counters.snapshot()
    }

    /// Whether the worker is still consuming.
    pub fn is_running(&self) -> bool {
        self.pump.as_ref().is_some_and(|p| !p.is_finished())
    }

    /// Stops consuming, lets operations being applied finish, hands waiting
    /// messages back to the broker, and returns. Idempotent.
    pub async fn shutdown(&mut self) {
        let _ = self.stop.send(true);
        if let Some(pump) = self.pump.take() {
            if let Err(e) = pump.await {
                tracing::error!(error = %e, "subscriber worker task failed");
            }
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

async fn pump(state: Arc<State>, mut consumer: Box<dyn crate::traits::Consumer>) {
    let mut stop = state.stop.clone();
    let mut tasks = JoinSet::new();
    let mut pause = FIRST_RECONNECT_PAUSE;
    loop {
        while tasks.try_join_next().is_some() {}
        let next = tokio::select! {
            _ = stop.wait_for(|stopped| *stopped) => break,
            next = consumer.next() => next,
        };
        match next {
            None => break,
            Some(Ok(delivery)) => {
                pause = FIRST_RECONNECT_PAUSE;
                Counters::bump(&state.counters.received);
                tasks.spawn(handle(state.clone(), delivery));
            }
            Some(Err(e)) => {
                state.rt.report(&Error::Connection(e));
                tokio::select! {
                    _ = stop.wait_for(|stopped| *stopped) => break,
                    _ = tokio::time::sleep(pause) => {}
                }
                pause = (pause * 2).min(MAX_RECONNECT_PAUSE);
            }
        }
    }
    let grace = state.rt.config.shutdown_timeout;
    let drained =
        tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        // Abandoned deliveries are handed back to the broker when dropped.
        tracing::warn!(app = %state.rt.config.app, pending = tasks.len(), ?grace, "operations still running at shutdown were abandoned");
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
    tracing::info!(app = %state.rt.config.app, "subscriber worker stopped");
}

/// The delay before the next attempt at a message that failed `attempt` times before.
fn retry_delay(config: &crate::config::Config, attempt: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempt.min(20));
    config
        .retry_backoff
        .saturating_mul(factor)
        .min(MAX_RETRY_DELAY)
}

/// Whether a failed message will be retried rather than dead-lettered:
/// failures of a backend that may come back (a clock or database outage)
/// never use up the attempts.
fn will_retry(config: &crate::config::Config, attempt: u32, error: &Error) -> bool {
    error.is_temporary() || attempt + 1 < config.max_attempts
}

fn settle_error(state: &State, delivery: &Delivery, error: &Error) -> Disposition {
    let config = &state.rt.config;
    let attempt = delivery.attempt;
    if will_retry(config, attempt, error) {
        Disposition::Retry {
            delay: retry_delay(config, attempt),
        }
    } else {
        Counters::bump(&state.counters.dead_lettered);
        Disposition::DeadLetter {
            reason: format!("failed {} times, last: {error}", attempt + 1),
        }
    }
}

async fn settle(state: &State, delivery: Delivery, disposition: Option<Disposition>) {
    let result = match disposition {
        None => delivery.ack().await,
        Some(d) => delivery.nack(d).await,
    };
    if let Err(e) = result {
        state.rt.report(&Error::Connection(e));
    }
}

async fn handle(state: Arc<State>, delivery: Delivery) {
    let message = match Message::decode(&delivery.payload) {
        Ok(message) => message,
        Err(e) => {
            let error = Error::Wire(e);
            state.rt.report(&error);
            Counters::bump(&state.counters.dead_lettered);
            let reason = error.to_string();
            settle(&state, delivery, Some(Disposition::DeadLetter { reason })).await;
            return;
        }
    };
    match process(&state, &message, delivery.attempt).await {
        Ok(Processed::Done) => settle(&state, delivery, None).await,
        Ok(Processed::Stopped) => settle(&state, delivery, Some(Disposition::Requeue)).await,
        Ok(Processed::Deferred) => {
            Counters::bump(&state.counters.deferred);
            settle(&state, delivery, Some(Disposition::Defer)).await
        }
        Err(error) if error.is_state_lost() => {
            // Nothing can be ordered any more: hand the message back and stop
            // until an operator restarts with a bumped generation.
            state.rt.report(&error);
            settle(&state, delivery, Some(Disposition::Requeue)).await;
            let _ = state.halt.send(true);
        }
        Err(error) => {
            Counters::bump(&state.counters.failed);
            state.rt.report(&error);
            let disposition = settle_error(&state, &delivery, &error);
            settle(&state, delivery, Some(disposition)).await;
        }
    }
}

enum Processed {
    Done,
    Stopped,
    /// Waiting messages filled the window: step aside so the messages behind
    /// (which may be what they wait for) can be delivered.
    Deferred,
}

async fn process(state: &State, message: &Message, attempt: u32) -> Result<Processed> {
    let rt = &state.rt;
    if message.generation < rt.config.generation {
        Counters::bump(&state.counters.skipped);
        rt.report(&Error::StaleGeneration {
            app: message.app.clone(),
            generation: message.generation,
            current: rt.config.generation,
        });
        return Ok(Processed::Done);
    }
    let ops: Vec<&Operation> = message
        .operations
        .iter()
        .filter(|op| rt.router.listens_to(&op.endpoint))
        .collect();
    let listens = |endpoint: &str| rt.router.listens_to(endpoint);
    let gates = Gates::of(rt.config.mode, &rt.config.app, message, &ops, &listens);
    let keys = gates.keys();
    let mut stop = state.stop.clone();
    let mut waiting: Option<Waiting<'_>> = None;
    loop {
        let guard = state.in_flight.enter(&keys[..gates.writes.len()]).await;
        let values = if keys.is_empty() {
            Vec::new()
        } else {
            rt.clock.read(&keys).await?
        };
        match gates.readiness(&values) {
            Readiness::Duplicate => {
                Counters::bump(&state.counters.duplicates);
                tracing::debug!(app = %message.app, "duplicate message acknowledged without applying");
                return Ok(Processed::Done);
            }
            Readiness::Ready => {
                let _runner = state
                    .runners
                    .acquire()
                    .await
                    .map_err(|_| Error::Shutdown("the worker's runner pool is closed"))?;
                let applied = apply(state, message, &ops, &gates, &values).await;
                if let Err(error) = applied {
                    // The message comes back after its retry delay: until then,
                    // messages waiting on its counters must not skip it.
                    if will_retry(&rt.config, attempt, &error) {
                        let until = retry_delay(&rt.config, attempt) + rt.config.recovery_timeout;
                        state
                            .failing
                            .hold(gates.writes.iter().map(|g| g.key.as_str()), until);
                    }
                    return Err(error);
                }
                let targets = gates.targets();
                rt.clock.advance(&targets).await?;
                state
                    .stuck
                    .clear(targets.iter().map(|(key, _)| key.as_str()));
                drop(guard);
                return Ok(Processed::Done);
            }
            Readiness::Waiting { key, have, need } => {
                drop(guard);
                let (since, first_arrived) = state.stuck.since(&key, have, need);
                let waited = since.elapsed();
                let timeout = rt.config.recovery_timeout;
                let held = state.failing.held(&key);
                if waited >= timeout && held.is_none() {
                    let endpoint = ops
                        .first()
                        .map(|op| op.endpoint.clone())
                        .unwrap_or_default();
                    // Skip only the operations that never arrived: up to the
                    // first one that did, not to what this message needs.
                    rt.report(&Error::Recover {
                        key: key.clone(),
                        applied: have,
                        needed: first_arrived,
                        waited,
                        endpoint,
                    });
                    Counters::bump(&state.counters.recovered);
                    rt.clock.advance(&[(key.clone(), first_arrived)]).await?;
                    state.stuck.clear([key.as_str()]);
                    continue;
                }
                if waiting.is_none() {
                    let (entered, full) = Waiting::enter(state);
                    waiting = Some(entered);
                    if full {
                        state.window_full.notify_waiters();
                        return Ok(Processed::Deferred);
                    }
                }
                tokio::select! {
                    _ = stop.wait_for(|stopped| *stopped) => return Ok(Processed::Stopped),
                    _ = state.window_full.notified() => return Ok(Processed::Deferred),
                    waited = rt.clock.wait_until(&key, need, held.unwrap_or(timeout.saturating_sub(waited)).max(Duration::from_millis(1))) => { waited?; }
                }
            }
        }
    }
}

/// Applies the operations of a ready message, except those already applied
/// (a message some of whose counters were passed, by another copy or by
/// recovery).
///
/// With a storage that has transactions, the operations and the versions they
/// bring are committed together, and versions recorded in the database count
/// as applied: a message redelivered after a crash between the commit and the
/// clock's advance is recognised there and not applied twice.
async fn apply(
    state: &State,
    message: &Message,
    ops: &[&Operation],
    gates: &Gates,
    values: &[u64],
) -> Result<()> {
    let rt = &state.rt;
    let handlers: Vec<_> = ops
        .iter()
        .map(|op| match op.operation {
            OperationKind::Noop => None,
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
    for (index, (op, handler)) in ops.iter().zip(handlers).enumerate() {
        if op.operation == OperationKind::Noop || gates.already_applied(index, values) {
            Counters::bump(&state.counters.skipped);
            continue;
        }
        let Some(handler) = handler else {
            tracing::debug!(endpoint = %op.endpoint, types = ?op.types, "no subscribed model for this type; skipped");
            Counters::bump(&state.counters.skipped);
            continue;
        };
        let applied = handler.apply(storage, message, op).await?;
        let counter = match applied {
            Applied::Nothing => &state.counters.skipped,
            _ => &state.counters.applied,
        };
        Counters::bump(counter);
    }
    if let Some(tx) = transaction {
        tx.record_applied(&gates.targets()).await?;
        tx.commit().await?;
    }
    Ok(())
}
