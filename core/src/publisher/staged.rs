//! Writes made in the caller's own database transaction, published as one
//! message once that transaction commits: the publish protocol for an
//! adapter whose transaction learns its ids as it goes (an insert learns its
//! id from the database).
//!
//! [`Staged::lock`] after each write (nothing is visible before the commit,
//! so locking after the write still comes before anyone can see it),
//! [`Staged::prepare`] (versions and intent, message) just before the
//! commit, the message stored in the outbox in the same transaction,
//! [`Staged::publish`] after the commit, or [`Staged::abandon`] after a
//! rollback.

use serde_json::{Map, Value};

use super::intent::{IntentKind, Recorded};
use super::pipeline::{PendingWrite, Produced};
use super::publication::Publication;
use crate::error::{Error, Result};
use crate::runtime::Promiscuous;
use crate::traits::Outbox;
use crate::wire::{Message, OperationKind};

/// The message of a staged transaction, with its versions taken: store
/// [`payload`](Prepared::payload) in the outbox under
/// [`publication`](Prepared::publication) with the writes, before
/// committing, then hand it to [`Staged::publish`].
#[derive(Debug, Clone)]
pub struct Prepared {
    message: Message,
    publication: String,
}

impl Prepared {
    /// The message as it goes on the wire.
    pub fn payload(&self) -> Vec<u8> {
        self.message.encode()
    }

    /// The message.
    pub fn message(&self) -> &Message {
        &self.message
    }

    /// The publication's id: the outbox entry's `intent`.
    pub fn publication(&self) -> &str {
        &self.publication
    }
}

/// Writes staged in the caller's database transaction, published as one
/// message after it commits. Made by [`Promiscuous::stage`].
///
/// Steps, in the order the caller must follow:
/// 1. [`lock`](Self::lock) each record right after writing it;
/// 2. [`push`](Self::push) each write with its published attributes, read
///    back inside the transaction;
/// 3. [`prepare`](Self::prepare) takes the versions (recording the intent)
///    and builds the message; store its payload in the outbox in the same
///    transaction, then commit;
/// 4. [`publish`](Self::publish) once the commit succeeded;
///    [`abandon`](Self::abandon) when the transaction rolled back;
///    [`settle_unknown`](Self::settle_unknown) when the commit's answer was lost.
///
/// Dropped after `prepare` without any of the three, it leaves the
/// publication to recovery, which reads the outbox to tell.
///
/// A process that stops anywhere in between leaves expired locks, and the
/// recovery worker settles the publication from the outbox: the entry if the
/// transaction committed, a noop that fences it off if not.
///
/// Locks are taken as the writes come, not in sorted order: two transactions
/// writing the same records in opposite orders wait for each other until
/// `lock_timeout` (or the database's deadlock detection), and one fails.
#[derive(Debug)]
pub struct Staged {
    publication: Publication,
    produced: Produced,
}

impl Promiscuous {
    /// Starts staging the writes of a database transaction that stores its
    /// message in `outbox`; see [`Staged`].
    pub fn stage(&self, outbox: std::sync::Arc<dyn Outbox>) -> Result<Staged> {
        self.inner.attach_outbox(outbox.clone());
        Ok(Staged {
            publication: Publication::new(&self.inner, IntentKind::Outbox)?
                .with_outbox(Some(outbox)),
            produced: Vec::new(),
        })
    }
}

impl Staged {
    /// Takes the lock of the record `pending` writes, waiting up to
    /// `lock_timeout`; a lock already held by this transaction is kept.
    pub async fn lock(&mut self, pending: &PendingWrite) -> Result<()> {
        match self.publication.lock(pending).await {
            Ok(()) => Ok(()),
            Err(error) => Err(self.publication.failed(error)),
        }
    }

    /// Adds a write to the message, with its published attributes (`None` for
    /// a destroy). Writes are published in the order pushed.
    pub fn push(&mut self, pending: PendingWrite, attributes: Option<Map<String, Value>>) {
        let is_destroy = pending.operation == OperationKind::Destroy;
        self.publication.push(pending, Recorded::Nothing);
        self.produced.push(attributes.filter(|_| !is_destroy));
    }

    /// How many writes are staged.
    pub fn len(&self) -> usize {
        self.publication.writes().len()
    }

    /// Whether no write is staged.
    pub fn is_empty(&self) -> bool {
        self.publication.writes().is_empty()
    }

    /// Takes any lock still missing, then the versions of every staged write
    /// in one clock step that records the intent, and returns the message to
    /// store in the outbox before committing.
    pub async fn prepare(&mut self) -> Result<Prepared> {
        if self.is_empty() {
            return Err(self.publication.failed(Error::NothingToPublish {
                operation: "Staged::prepare",
            }));
        }
        if let Err(error) = self.publication.take_versions().await {
            return Err(self.publication.failed(error));
        }
        let message = match self.publication.message(std::mem::take(&mut self.produced)) {
            Ok(message) => message,
            Err(error) => return Err(self.publication.failed(error)),
        };
        Ok(Prepared {
            message,
            publication: self.publication.id().to_owned(),
        })
    }

    /// Publishes the prepared message once the transaction committed, waits
    /// for the broker's confirmation and releases the locks.
    ///
    /// On failure the locks are released all the same and the entry is left
    /// unclaimed in the outbox, where the relay finds it at once.
    pub async fn publish(self, prepared: &Prepared) -> Result<()> {
        let Staged { publication, .. } = self;
        publication.publish(&prepared.message).await.map(|_| ())
    }

    /// Gives the transaction up (it rolled back): publishes a noop when
    /// versions were already taken, so subscribers do not wait for them, and
    /// releases the locks. When it is not known whether the commit happened,
    /// use [`settle_unknown`](Self::settle_unknown) instead.
    pub async fn abandon(self) {
        self.publication.publish_noop().await;
    }

    /// The commit's outcome is unknown (its answer was lost): settles the
    /// publication from the outbox now, as recovery would: the entry if the
    /// commit happened, a noop that fences it off if not.
    pub async fn settle_unknown(self) {
        self.publication.resolve_now().await;
    }
}
