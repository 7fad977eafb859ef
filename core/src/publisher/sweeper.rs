//! Forgets settled publications off the write path, in batches: their
//! intents in the clock and their outbox entries.

use std::sync::{Arc, OnceLock, Weak};

use tokio::sync::{mpsc, oneshot};

use crate::error::Error;
use crate::runtime::Runtime;
use crate::traits::Outbox;

/// Publications forgotten per batch at most.
const BATCH: usize = 500;

enum Request {
    Settled {
        publication: String,
        outbox: Option<Arc<dyn Outbox>>,
    },
    Flush(oneshot::Sender<()>),
}

/// Queues settled publications; a background task forgets them in batches.
///
/// A publication queued but not forgotten when the process stops keeps its
/// intent (the clock drops it after a day) and, with an outbox, its entry:
/// the relay publishes that entry again and subscribers recognise the copy.
#[derive(Debug, Default)]
pub(crate) struct Sweeper {
    queue: OnceLock<mpsc::UnboundedSender<Request>>,
}

impl Sweeper {
    fn queue(&self, rt: &Arc<Runtime>) -> &mpsc::UnboundedSender<Request> {
        self.queue.get_or_init(|| {
            let (sender, receiver) = mpsc::unbounded_channel();
            tokio::spawn(sweep(Arc::downgrade(rt), receiver));
            sender
        })
    }

    /// Queues a publication whose message is out.
    pub fn settled(&self, rt: &Arc<Runtime>, publication: String, outbox: Option<Arc<dyn Outbox>>) {
        // The task ends only when the runtime is gone, so sending succeeds.
        let _ = self.queue(rt).send(Request::Settled {
            publication,
            outbox,
        });
    }

    /// Waits until everything queued before this call is forgotten.
    pub async fn flush(&self, rt: &Arc<Runtime>) {
        let (done, wait) = oneshot::channel();
        if self.queue(rt).send(Request::Flush(done)).is_ok() {
            let _ = wait.await;
        }
    }
}

async fn sweep(rt: Weak<Runtime>, mut requests: mpsc::UnboundedReceiver<Request>) {
    while let Some(first) = requests.recv().await {
        let mut intents = Vec::new();
        // Per outbox (by identity), the entries to remove.
        let mut entries: Vec<(Arc<dyn Outbox>, Vec<String>)> = Vec::new();
        let mut flushes = Vec::new();
        let mut next = Some(first);
        while let Some(request) = next.take() {
            match request {
                Request::Settled {
                    publication,
                    outbox,
                } => {
                    if let Some(outbox) = outbox {
                        match entries.iter_mut().find(|(o, _)| Arc::ptr_eq(o, &outbox)) {
                            Some((_, ids)) => ids.push(publication.clone()),
                            None => entries.push((outbox, vec![publication.clone()])),
                        }
                    }
                    intents.push(publication);
                }
                Request::Flush(done) => flushes.push(done),
            }
            if intents.len() < BATCH {
                next = requests.try_recv().ok();
            }
        }
        let Some(rt) = rt.upgrade() else {
            return;
        };
        // Forgotten first: an entry left without its intent is only
        // relayed again (a duplicate); an intent left without its entry
        // would be fenced with a noop over a message already out.
        if !intents.is_empty() {
            if let Err(e) = rt.clock.forget(&intents).await {
                // Kept: recovery finds them settled later (or the clock drops them).
                rt.report(&Error::from(e));
                entries.clear();
            }
        }
        for (outbox, ids) in entries {
            if let Err(e) = outbox.remove(&ids).await {
                // Harmless: the relay publishes them again, subscribers ack the copies.
                rt.report(&Error::from(e));
            }
        }
        drop(rt);
        for done in flushes {
            let _ = done.send(());
        }
    }
}
