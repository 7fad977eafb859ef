//! The outbox relay: publishes the messages a writer committed but did not
//! publish (the broker refused them, or the writer stopped), oldest first.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::{Error, Result};
use crate::runtime::{Promiscuous, Runtime};
use crate::traits::Outbox;
use crate::wire::Message;

/// Default pause between two passes over the outbox.
const DEFAULT_EVERY: Duration = Duration::from_secs(1);
/// Default number of entries read per query.
const DEFAULT_BATCH: usize = 100;

/// Publishes outbox entries left behind.
///
/// An entry is taken once its writer's claim expired, by one relay only
/// (several processes may run one), published as it was stored (same
/// versions), and removed after the broker confirmed it. An entry published
/// twice (a relay stopped between the publish and the removal) is recognised
/// by subscribers as a duplicate. The recovery worker runs a relay pass on
/// the app's outbox; run one yourself for other outboxes.
#[derive(Clone)]
pub struct Relay {
    rt: Arc<Runtime>,
    outbox: Arc<dyn Outbox>,
    every: Duration,
    batch: usize,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("app", &self.rt.config.app)
            .field("outbox", &self.outbox)
            .field("every", &self.every)
            .field("batch", &self.batch)
            .finish()
    }
}

/// What one pass over the outbox did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayPass {
    /// Entries published and removed.
    pub published: u64,
    /// Entries another relay took first.
    pub taken_by_others: u64,
    /// Entries whose publish failed, left for a later pass.
    pub failed: u64,
}

/// A relay running in the background; stops when dropped or [`stop`](Self::stop)ped.
#[derive(Debug)]
pub struct RunningRelay {
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl Promiscuous {
    /// A relay of this app's entries in `outbox`.
    pub fn relay(&self, outbox: Arc<dyn Outbox>) -> Relay {
        Relay::over(self.inner.clone(), outbox)
    }
}

impl Relay {
    pub(crate) fn over(rt: Arc<Runtime>, outbox: Arc<dyn Outbox>) -> Self {
        Self {
            rt,
            outbox,
            every: DEFAULT_EVERY,
            batch: DEFAULT_BATCH,
        }
    }

    /// Pause between passes (default 1 s).
    pub fn every(mut self, every: Duration) -> Self {
        self.every = every.max(Duration::from_millis(10));
        self
    }

    /// Entries read per query (default 100).
    pub fn batch(mut self, batch: usize) -> Self {
        self.batch = batch.max(1);
        self
    }

    /// How many entries of this app wait, once the entries of the messages
    /// already published are removed.
    pub async fn len(&self) -> Result<u64> {
        self.rt.sweeper.flush(&self.rt).await;
        Ok(self.outbox.len(&self.rt.config.app).await?)
    }

    /// Whether no entry of this app waits.
    pub async fn is_empty(&self) -> Result<bool> {
        Ok(self.len().await? == 0)
    }

    /// Publishes every unclaimed entry once, oldest first; stops at the first
    /// failed publish so that later entries do not overtake it.
    pub async fn run_once(&self) -> Result<RelayPass> {
        let app = &self.rt.config.app;
        let claim = self.rt.config.outbox_claim;
        let mut pass = RelayPass::default();
        loop {
            let entries = self.outbox.unclaimed(app, self.batch).await?;
            let full = entries.len() == self.batch;
            for entry in entries {
                if !self.outbox.claim(&entry, claim).await? {
                    pass.taken_by_others += 1;
                    continue;
                }
                let message = match Message::decode(&entry.payload) {
                    Ok(message) => message,
                    Err(error) => {
                        // An entry that can never be published must not block the others.
                        let error = Error::Wire(error);
                        self.rt.report(&error);
                        tracing::error!(app = %app, outbox_entry = %entry.id, error = %crate::error::chain(&error), "outbox entry is not a valid message; left in place for an operator");
                        pass.failed += 1;
                        continue;
                    }
                };
                let endpoints = endpoints_of(&message);
                match self.rt.send(&endpoints, &message).await {
                    Ok(()) => {
                        // The intent first: an entry without its intent is
                        // only relayed again, never fenced.
                        self.rt
                            .clock
                            .forget(std::slice::from_ref(&entry.intent))
                            .await?;
                        self.outbox
                            .remove(std::slice::from_ref(&entry.intent))
                            .await?;
                        pass.published += 1;
                        tracing::info!(app = %app, outbox_entry = %entry.id, publication = %entry.intent, "relayed a message left in the outbox");
                    }
                    Err(error) => {
                        self.rt.report(&error);
                        pass.failed += 1;
                        return Ok(pass);
                    }
                }
            }
            if !full {
                return Ok(pass);
            }
        }
    }

    /// Runs a pass now and then every [`every`](Self::every), in the background.
    pub fn start(self) -> RunningRelay {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            loop {
                if let Err(error) = self.run_once().await {
                    self.rt.report(&error);
                }
                tokio::select! {
                    _ = stopped.wait_for(|s| *s) => break,
                    _ = tokio::time::sleep(self.every) => {}
                }
            }
        });
        RunningRelay {
            stop,
            task: Some(task),
        }
    }
}

/// The distinct endpoints of a message's operations, in order.
pub(crate) fn endpoints_of(message: &Message) -> Vec<String> {
    let mut endpoints: Vec<String> = Vec::new();
    for op in &message.operations {
        if !endpoints.contains(&op.endpoint) {
            endpoints.push(op.endpoint.clone());
        }
    }
    endpoints
}

impl RunningRelay {
    /// Stops after the pass under way. Idempotent.
    pub async fn stop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for RunningRelay {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}
