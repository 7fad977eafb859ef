//! The subscriber worker: pump → synchronizer → runners → advance → ack.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use super::apply::apply;
use super::epochs::Era;
use super::recovery::{skip, Stall};
use super::retry::{disposition, retry_delay, will_retry};
use super::stats::{Counters, WorkerStats};
use super::synchronizer::{Decision, Gates, Synchronizer};
use super::window::Window;
use crate::error::{Error, Result};
use crate::runtime::{Promiscuous, Runtime};
use crate::traits::{Delivery, Disposition, Subscription};
use crate::wire::{Message, Operation};

/// Longest pause between reconnection attempts of the consumer.
const MAX_RECONNECT_PAUSE: Duration = Duration::from_secs(30);
/// First pause after the consumer reports a lost connection.
const FIRST_RECONNECT_PAUSE: Duration = Duration::from_secs(2);

pub(crate) struct State {
    pub rt: Arc<Runtime>,
    runners: Semaphore,
    pub sync: Synchronizer,
    pub counters: Counters,
    stop: watch::Receiver<bool>,
    /// Lets a handler stop the whole worker (when the clock lost its state).
    halt: Arc<watch::Sender<bool>>,
    /// Whether messages are held in a prefetch window (not for inline
    /// deliveries, which wait for a missing dependency only so long).
    in_window: bool,
    /// Why the worker stopped by itself, if it did.
    fatal: std::sync::Mutex<Option<String>>,
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
        tracing::info!(
            app = %rt.config.app,
            queue = %subscription.queue,
            bindings = %subscription
                .bindings
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            mode = ?rt.config.mode,
            prefetch = rt.config.prefetch,
            runners = rt.config.runners,
            "subscriber worker started"
        );
        let (state, stop_tx) = State::new(rt, true);
        let state = Arc::new(state);
        let pump = tokio::spawn(pump(state.clone(), consumer));
        Ok(Worker {
            state,
            stop: stop_tx,
            pump: Some(pump),
        })
    }

    /// Processes one message now, in this task, exactly as the worker would
    /// (ordering, duplicates, callbacks, counters), without a broker; returns
    /// what it did. Used by mock publishers in subscriber tests.
    ///
    /// A message that must wait for a missing dependency waits up to the
    /// recovery timeout, then fails with [`Error::Stalled`]. Errors are
    /// returned (and reported), not retried.
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
        match process(&state, &message).await {
            Ok(_) => Ok(state.stats()),
            Err(error) => {
                state.rt.report(&error);
                Err(error)
            }
        }
    }
}

impl State {
    fn new(rt: Arc<Runtime>, in_window: bool) -> (Self, Arc<watch::Sender<bool>>) {
        let (stop_tx, stop_rx) = watch::channel(false);
        let stop_tx = Arc::new(stop_tx);
        let state = State {
            halt: stop_tx.clone(),
            runners: Semaphore::new(rt.config.runners),
            sync: Synchronizer::new(rt.config.prefetch),
            counters: Counters::default(),
            stop: stop_rx,
            in_window,
            fatal: std::sync::Mutex::new(None),
            rt,
        };
        (state, stop_tx)
    }

    /// Stops the worker by itself, for `reason` (the first reason wins).
    fn halt(&self, reason: String) {
        self.fatal
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get_or_insert(reason);
        let _ = self.halt.send(true);
    }

    /// The error saying why the worker stopped by itself, if it did.
    fn stopped_by_itself(&self) -> Option<Error> {
        let reason = self
            .fatal
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()?;
        Some(Error::WorkerStopped {
            app: self.rt.config.app.clone(),
            reason,
        })
    }

    fn stats(&self) -> WorkerStats {
        let window: &Window = &self.sync.window;
        self.counters
            .snapshot(window.held() as u64, window.waiting() as u64)
    }
}

impl Worker {
    /// What the worker has done so far, and what it holds now.
    pub fn stats(&self) -> WorkerStats {
        self.state.stats()
    }

    /// Whether the worker is still consuming.
    pub fn is_running(&self) -> bool {
        self.pump.as_ref().is_some_and(|p| !p.is_finished())
    }

    /// The counters that messages held by this worker have waited on for at
    /// least `at_least`, longest first: the operations that are missing.
    pub fn stalls(&self, at_least: Duration) -> Vec<Stall> {
        self.state.sync.stalls.list(at_least)
    }

    /// Skips missing operations as an operator (see
    /// [`Promiscuous::skip_missing`]); counted in [`WorkerStats::recovered`].
    pub async fn skip_missing(&self, key: &str, to: u64) -> Result<u64> {
        let waited = self
            .stalls(Duration::ZERO)
            .into_iter()
            .find(|s| s.key == key)
            .map_or(Duration::ZERO, |s| s.waited);
        let skipped = skip(&self.state.rt, key, to, waited).await?;
        self.state
            .counters
            .add(&self.state.counters.recovered, skipped);
        Ok(skipped)
    }

    /// Waits until the worker stops, by [`shutdown`](Self::shutdown) (then
    /// `Ok`) or by itself: the clock lost its state, or the broker closed
    /// its consumer for good. Then it fails with [`Error::WorkerStopped`],
    /// saying why (reported through the error notifier and logged at ERROR
    /// when it happened). A service's `main` can end with it, so that the
    /// process exits (and is restarted) instead of running with no consumer.
    ///
    /// Cancel safe: dropped before the worker stopped (in a `select!` with a
    /// signal, say), it leaves the worker running, and
    /// [`shutdown`](Self::shutdown) still waits for it.
    pub async fn wait(&mut self) -> Result<()> {
        if let Some(pump) = self.pump.as_mut() {
            let joined = pump.await;
            self.pump = None;
            if let Err(e) = joined {
                let error = Error::WorkerStopped {
                    app: self.state.rt.config.app.clone(),
                    reason: format!("its task failed: {e}"),
                };
                self.state.rt.report(&error);
                return Err(error);
            }
        }
        match self.state.stopped_by_itself() {
            Some(error) => Err(error),
            None => Ok(()),
        }
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
    let mut pauses = crate::backoff::exponential(FIRST_RECONNECT_PAUSE, MAX_RECONNECT_PAUSE);
    let mut faulted = state.rt.fault.subscribe();
    let mut check = tokio::time::interval(Window::check_period());
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        while tasks.try_join_next().is_some() {}
        let next = tokio::select! {
            _ = stop.wait_for(|stopped| *stopped) => break,
            _ = faulted.wait_for(|faulted| *faulted) => {
                state.halt(format!(
                    "its clock ({}) lost its state; restart the app (see the error reported before)",
                    state.rt.clock.name()
                ));
                break;
            }
            _ = check.tick() => {
                state.sync.window.check();
                state.sync.window.export_gauges(&state.rt.config.app);
                continue;
            }
            next = consumer.next() => next,
        };
        match next {
            None => {
                // Ended by `Promiscuous::shutdown` (the broker closed) or by
                // the worker's own shutdown: a normal stop.
                let asked =
                    *stop.borrow() || state.rt.closed.load(std::sync::atomic::Ordering::SeqCst);
                if !asked {
                    state.halt(format!(
                        "the broker ({}) ended the consumer of queue {}",
                        state.rt.broker.name(),
                        state.rt.config.app
                    ));
                }
                break;
            }
            Some(Ok(delivery)) => {
                pauses = crate::backoff::exponential(FIRST_RECONNECT_PAUSE, MAX_RECONNECT_PAUSE);
                Counters::bump(&state.counters.received);
                crate::metrics::received(&state.rt.config.app);
                tasks.spawn(handle(state.clone(), delivery));
            }
            Some(Err(e)) => {
                state.rt.report(&Error::Connection(e));
                let pause = pauses.next().unwrap_or(MAX_RECONNECT_PAUSE);
                tokio::select! {
                    _ = stop.wait_for(|stopped| *stopped) => break,
                    _ = tokio::time::sleep(pause) => {}
                }
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
    match state.stopped_by_itself() {
        Some(error) => state.rt.report(&error),
        None => tracing::info!(app = %state.rt.config.app, "subscriber worker stopped"),
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

/// Handles one delivery. The in-flight and waiting gauges are exported by
/// the pump's window check (every 100 ms), not per delivery.
async fn handle(state: Arc<State>, delivery: Delivery) {
    let _held = state.sync.window.hold();
    let state = state.as_ref();
    let app = state.rt.config.app.clone();
    let message = match Message::decode(&delivery.payload) {
        Ok(message) => message,
        Err(e) => {
            let error = Error::Wire(e);
            state.rt.report(&error);
            Counters::bump(&state.counters.dead_lettered);
            crate::metrics::dead_lettered(&app, &delivery.endpoint);
            let reason = crate::error::chain(&error);
            settle(state, delivery, Some(Disposition::DeadLetter { reason })).await;
            return;
        }
    };
    let span = tracing::info_span!(
        "promiscuous.receive",
        app = %app,
        from = %message.app,
        message = message.id.as_deref().unwrap_or(""),
        endpoint = %delivery.endpoint,
        model = tracing::field::Empty,
        id = tracing::field::Empty,
        version = tracing::field::Empty,
        operations = message.operations.len(),
        attempt = delivery.attempt,
    );
    message.describe_in(&span);
    let processed = tracing::Instrument::instrument(process(state, &message), span).await;
    match processed {
        Ok(Processed::Done) => {
            settle(state, delivery, None).await;
            state.sync.window.progressed();
        }
        Ok(Processed::Stopped) => settle(state, delivery, Some(Disposition::Requeue)).await,
        Ok(Processed::Deferred) => {
            Counters::bump(&state.counters.deferred);
            crate::metrics::deferred(&app);
            settle(state, delivery, Some(Disposition::Defer)).await
        }
        Err(error) if error.is_state_lost() => {
            // Nothing can be ordered any more: hand the message back and stop
            // until an operator restarts with a bumped generation.
            state.rt.report(&error);
            settle(state, delivery, Some(Disposition::Requeue)).await;
            state.halt(crate::error::chain(&error));
        }
        Err(error) => {
            Counters::bump(&state.counters.failed);
            state.rt.report(&error);
            let config = &state.rt.config;
            let disposition = disposition(config, delivery.attempt, &error);
            if matches!(disposition, Disposition::DeadLetter { .. }) {
                Counters::bump(&state.counters.dead_lettered);
                crate::metrics::dead_lettered(&app, &delivery.endpoint);
            } else if will_retry(config, delivery.attempt, &error) {
                crate::metrics::retried(&app, &delivery.endpoint);
                tracing::debug!(delay = ?retry_delay(config, delivery.attempt), "message retried later");
            }
            settle(state, delivery, Some(disposition)).await;
        }
    }
}

enum Processed {
    Done,
    Stopped,
    /// The window starved: step aside so the messages behind (which may be
    /// what the waiting ones wait for) can be delivered.
    Deferred,
}

async fn process(state: &State, message: &Message) -> Result<Processed> {
    let rt = &state.rt;
    if message.generation < rt.config.generation {
        Counters::bump(&state.counters.skipped);
        for op in message
            .operations
            .iter()
            .filter(|op| rt.router.listens_to(&op.endpoint))
        {
            crate::metrics::skipped(&rt.config.app, &op.endpoint, "stale_generation");
        }
        rt.report(&Error::StaleGeneration {
            app: message.app.clone(),
            generation: message.generation,
            current: rt.config.generation,
        });
        return Ok(Processed::Done);
    }
    let era = Era::of(message);
    if let Some(latest) = state.sync.epochs.observe(rt, &era).await? {
        return Err(era.superseded(latest));
    }
    let ops: Vec<&Operation> = message
        .operations
        .iter()
        .filter(|op| rt.router.listens_to(&op.endpoint))
        .collect();
    if !ops.is_empty()
        && ops
            .iter()
            .all(|op| op.operation == crate::wire::OperationKind::Baseline)
    {
        super::baseline::seed(state, &era, &ops).await?;
        return Ok(Processed::Done);
    }
    let listens = |endpoint: &str| rt.router.listens_to(endpoint);
    let gates = Gates::of(rt.config.mode, &rt.config.app, message, &ops, &listens);
    let endpoint = ops
        .first()
        .copied()
        .or(message.operations.first())
        .map_or("", |op| op.endpoint.as_str());
    let decision = state
        .sync
        .admit(
            rt,
            &gates,
            endpoint,
            state.stop.clone(),
            state.in_window,
            &state.counters,
        )
        .await?;
    let (values, guard) = match decision {
        Decision::Duplicate => {
            Counters::bump(&state.counters.duplicates);
            for op in &ops {
                crate::metrics::duplicate(&rt.config.app, &op.endpoint);
            }
            tracing::debug!(app = %message.app, "duplicate message acknowledged without applying");
            return Ok(Processed::Done);
        }
        Decision::Defer => return Ok(Processed::Deferred),
        Decision::Superseded { latest } => return Err(gates.era.superseded(latest)),
        Decision::Stop => return Ok(Processed::Stopped),
        Decision::Apply { values, guard } => (values, guard),
    };
    let runner = state
        .runners
        .acquire()
        .await
        .map_err(|_| Error::Shutdown("the worker's runner pool is closed"))?;
    let started = std::time::Instant::now();
    let after_commit = apply(state, message, &ops, &gates, &values).await?;
    if !ops.is_empty() {
        crate::metrics::apply_duration(&rt.config.app, started.elapsed());
        crate::metrics::latency(&rt.config.app, endpoint, message.timestamp);
    }
    let targets = gates.targets();
    rt.clock.advance(&targets).await?;
    state
        .sync
        .stalls
        .moved(targets.iter().map(|(key, _)| key.as_str()));
    drop(guard);
    drop(runner);
    for callback in after_commit {
        if let Err(error) = callback.run().await {
            // The change is committed; the callback is not retried.
            rt.report(&error);
        }
    }
    Ok(Processed::Done)
}
