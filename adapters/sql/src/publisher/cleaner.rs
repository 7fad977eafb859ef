//! Removal of published outbox rows, in batches and off the write path: a
//! commit does not wait for a second write (and a second fsync) of its own.

use std::sync::OnceLock;

use promiscuous_core::{Error as CoreError, Promiscuous};
use sea_orm::DatabaseConnection;
use tokio::sync::{mpsc, oneshot};

use crate::outbox;

/// Rows removed per statement at most.
const BATCH: usize = 500;

enum Request {
    Remove(i64),
    Flush(oneshot::Sender<()>),
}

/// Queues outbox rows for removal; a background task removes them.
///
/// A row whose removal was queued but not done when the process stops is
/// published again by a relay once its claim expired; subscribers recognise
/// the duplicate.
#[derive(Debug, Default)]
pub(crate) struct OutboxCleaner {
    queue: OnceLock<mpsc::UnboundedSender<Request>>,
}

impl OutboxCleaner {
    fn queue(
        &self,
        db: &DatabaseConnection,
        promiscuous: &Promiscuous,
    ) -> &mpsc::UnboundedSender<Request> {
        self.queue.get_or_init(|| {
            let (sender, receiver) = mpsc::unbounded_channel();
            tokio::spawn(clean(db.clone(), promiscuous.clone(), receiver));
            sender
        })
    }

    /// Queues the removal of a published row.
    pub(crate) fn remove(&self, db: &DatabaseConnection, promiscuous: &Promiscuous, row: i64) {
        // The task ends only when this sender is dropped, so sending succeeds.
        let _ = self.queue(db, promiscuous).send(Request::Remove(row));
    }

    /// Waits until every removal queued before this call is done.
    pub(crate) async fn flush(&self, db: &DatabaseConnection, promiscuous: &Promiscuous) {
        let (done, wait) = oneshot::channel();
        if self
            .queue(db, promiscuous)
            .send(Request::Flush(done))
            .is_ok()
        {
            let _ = wait.await;
        }
    }
}

/// Removes queued rows in batches until every sender is gone.
async fn clean(
    db: DatabaseConnection,
    promiscuous: Promiscuous,
    mut requests: mpsc::UnboundedReceiver<Request>,
) {
    while let Some(first) = requests.recv().await {
        let mut rows = Vec::new();
        let mut flushes = Vec::new();
        let mut next = Some(first);
        while let Some(request) = next.take() {
            match request {
                Request::Remove(row) => rows.push(row),
                Request::Flush(done) => flushes.push(done),
            }
            if rows.len() < BATCH {
                next = requests.try_recv().ok();
            }
        }
        if !rows.is_empty() {
            if let Err(e) = outbox::delete_all(&db, &rows).await {
                // Harmless: a relay publishes them again, subscribers ack the duplicates.
                promiscuous.report(&CoreError::from(e));
            }
        }
        for done in flushes {
            let _ = done.send(());
        }
    }
}
