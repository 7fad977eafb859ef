//! The outbox relay: publishes the messages a writer committed but did not
//! publish (it crashed, or the broker was down), oldest first.

use std::time::Duration;

use promiscuous_core::Error as CoreError;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::Result;
use crate::outbox;
use crate::publisher::SqlPublisher;

/// Default pause between two passes over the outbox.
const DEFAULT_EVERY: Duration = Duration::from_secs(1);
/// Default number of rows read per query.
const DEFAULT_BATCH: u64 = 100;

/// Publishes outbox rows left behind; made by [`SqlPublisher::relay`].
///
/// A row is taken once its writer's claim expired (see
/// [`SqlPublisherBuilder::claim`](crate::SqlPublisherBuilder::claim)), by one
/// relay only (several processes may run one), published with the versions
/// it was committed with, and removed after the broker confirmed it. A row
/// published twice (a relay stopped between the publish and the removal) is
/// recognised by subscribers as a duplicate.
#[derive(Debug, Clone)]
pub struct Relay {
    publisher: SqlPublisher,
    every: Duration,
    batch: u64,
}

/// What one pass over the outbox did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayPass {
    /// Rows published and removed.
    pub published: u64,
    /// Rows another relay took first.
    pub taken_by_others: u64,
    /// Rows whose publish failed, left for a later pass.
    pub failed: u64,
}

/// A relay running in the background; stops when dropped or [`stop`](Self::stop)ped.
#[derive(Debug)]
pub struct RunningRelay {
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl SqlPublisher {
    /// A relay for this publisher's app and database.
    pub fn relay(&self) -> Relay {
        Relay {
            publisher: self.clone(),
            every: DEFAULT_EVERY,
            batch: DEFAULT_BATCH,
        }
    }

    /// How many messages of this app wait in the outbox, once the rows of
    /// the messages already published are removed.
    pub async fn outbox_len(&self) -> Result<u64> {
        self.flush_outbox().await;
        outbox::pending(self.connection(), self.promiscuous().app()).await
    }
}

impl Relay {
    /// Pause between passes (default 1 s).
    pub fn every(mut self, every: Duration) -> Self {
        self.every = every.max(Duration::from_millis(10));
        self
    }

    /// Rows read per query (default 100).
    pub fn batch(mut self, batch: u64) -> Self {
        self.batch = batch.max(1);
        self
    }

    /// Publishes every unclaimed row once, oldest first; stops at the first
    /// failed publish so that later rows do not overtake it.
    pub async fn run_once(&self) -> Result<RelayPass> {
        let shared = &self.publisher.shared;
        let db = &shared.db;
        let app = shared.promiscuous.app();
        let mut pass = RelayPass::default();
        loop {
            let rows = outbox::unclaimed(db, app, self.batch).await?;
            let full = rows.len() as u64 == self.batch;
            for row in rows {
                if !outbox::claim(db, &row, shared.claim).await? {
                    pass.taken_by_others += 1;
                    continue;
                }
                match shared.promiscuous.republish(row.payload.as_bytes()).await {
                    Ok(()) => {
                        outbox::delete_all(db, &[row.id]).await?;
                        pass.published += 1;
                        tracing::info!(
                            app,
                            outbox_row = row.id,
                            "relayed a message left in the outbox"
                        );
                    }
                    Err(error @ CoreError::Wire(_)) => {
                        // A row that can never be published must not block the others.
                        shared.promiscuous.report(&error);
                        tracing::error!(app, outbox_row = row.id, error = %promiscuous_core::error::chain(&error), "outbox row is not a valid message; left in place for an operator");
                        pass.failed += 1;
                    }
                    Err(e) => {
                        shared.promiscuous.report(&e);
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
                if let Err(e) = self.run_once().await {
                    let error = CoreError::from(e);
                    self.publisher.promiscuous().report(&error);
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
