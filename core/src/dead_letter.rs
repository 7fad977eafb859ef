//! The messages a broker parks with [`Disposition::DeadLetter`], and the
//! operator's tools on them: list, replay, purge.
//!
//! Every broker that keeps dead letters (the in-process broker, RabbitMQ's
//! `<queue>.error` queues) reads them as one type and offers the same tools
//! ([`DeadLetterStore`], through [`Broker::dead_letter_store`]), so tests and
//! operators work the same with any broker.
//!
//! [`Disposition::DeadLetter`]: crate::traits::Disposition::DeadLetter
//! [`Broker::dead_letter_store`]: crate::traits::Broker::dead_letter_store

use std::sync::Arc;

use async_trait::async_trait;

use crate::dependency::fnv1a64;
use crate::error::{BackendError, Error, Result};
use crate::runtime::Promiscuous;
use crate::traits::Broker;

/// A message parked in `<queue>.error` by
/// [`Disposition::DeadLetter`](crate::traits::Disposition::DeadLetter).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The endpoint the message was published to.
    pub endpoint: String,
    /// The message body.
    pub payload: Vec<u8>,
    /// The reason given to the dead-letter nack.
    pub reason: String,
    /// How many times the message was delivered, the last one included (1 when
    /// it was dead-lettered on its first delivery).
    pub attempts: u32,
}

impl DeadLetter {
    /// How operators name this dead letter: 16 hex digits of a hash of its
    /// body (FNV-1a), the same in every listing and on every broker.
    /// Identical bodies share an id, and are replayed or purged together.
    pub fn id(&self) -> String {
        format!("{:016x}", fnv1a64(&self.payload))
    }
}

/// Which dead letters a [`DeadLetterStore`] operation takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Every dead letter of the queue.
    All,
    /// The dead letters with these [ids](DeadLetter::id).
    Ids(Vec<String>),
}

impl Selection {
    /// Whether `letter` is selected.
    pub fn takes(&self, letter: &DeadLetter) -> bool {
        match self {
            Selection::All => true,
            Selection::Ids(ids) => ids.contains(&letter.id()),
        }
    }
}

/// The dead letters a broker keeps, for operators: what is parked, and
/// moving it back or away. `queue` is a subscriber app's queue (its name;
/// the dead letters are in `<queue>.error`).
#[async_trait]
pub trait DeadLetterStore: Send + Sync {
    /// The dead letters of `queue`, oldest first, left in place.
    async fn list(&self, queue: &str) -> Result<Vec<DeadLetter>, BackendError>;

    /// Moves the selected dead letters of `queue` back to `queue`, oldest
    /// first, and returns how many. Each is delivered again as if new (its
    /// attempts count from the start); one that was already applied is
    /// recognised by its versions. The others stay parked, in order.
    ///
    /// Behaviour: a replayed message is in `queue` before it leaves the dead
    /// letters (at least once: a crash in between leaves it in both).
    async fn replay(&self, queue: &str, which: &Selection) -> Result<usize, BackendError>;

    /// Deletes the selected dead letters of `queue` for good, and returns how many.
    async fn purge(&self, queue: &str, which: &Selection) -> Result<usize, BackendError>;
}

/// The dead letters of an app's queue (`<app>.error`), from
/// [`Promiscuous::dead_letters`]: what the worker parked and why, and the
/// operator's way to move it back once the cause is fixed, or to drop it.
#[derive(Debug, Clone)]
pub struct DeadLetters {
    broker: Arc<dyn Broker>,
    queue: String,
}

impl DeadLetters {
    fn store(&self) -> Result<&dyn DeadLetterStore> {
        self.broker.dead_letter_store().ok_or_else(|| {
            Error::config(
                "broker",
                format!(
                    "the {} broker keeps no dead letters (pretend mode delivers nothing, so nothing is parked)",
                    self.broker.name()
                ),
            )
        })
    }

    /// The queue whose dead letters these are (the app's name).
    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// The dead letters, oldest first, left in place.
    pub async fn list(&self) -> Result<Vec<DeadLetter>> {
        Ok(self.store()?.list(&self.queue).await?)
    }

    /// Moves the selected dead letters back to the app's queue, where the
    /// worker takes them as new deliveries; returns how many. An operation
    /// already applied is recognised by its versions and not applied twice.
    pub async fn replay(&self, which: &Selection) -> Result<usize> {
        let count = self.store()?.replay(&self.queue, which).await?;
        tracing::info!(queue = %self.queue, count, ?which, "dead letters replayed");
        Ok(count)
    }

    /// Deletes the selected dead letters for good; returns how many.
    ///
    /// What they carried is lost to this subscriber: a sync of the records
    /// concerned brings it back in line.
    pub async fn purge(&self, which: &Selection) -> Result<usize> {
        let count = self.store()?.purge(&self.queue, which).await?;
        tracing::warn!(queue = %self.queue, count, ?which, "dead letters purged");
        Ok(count)
    }
}

impl Promiscuous {
    /// The dead letters of this app's queue: list, replay, purge.
    pub fn dead_letters(&self) -> DeadLetters {
        DeadLetters {
            broker: self.broker().clone(),
            queue: self.app().to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter(payload: &[u8]) -> DeadLetter {
        DeadLetter {
            endpoint: "a/b".into(),
            payload: payload.to_vec(),
            reason: "r".into(),
            attempts: 1,
        }
    }

    #[test]
    fn ids_name_the_body() {
        assert_eq!(letter(b"x").id(), letter(b"x").id());
        assert_ne!(letter(b"x").id(), letter(b"y").id());
        assert_eq!(letter(b"x").id().len(), 16);
        let chosen = Selection::Ids(vec![letter(b"x").id()]);
        assert!(chosen.takes(&letter(b"x")));
        assert!(!chosen.takes(&letter(b"y")));
        assert!(Selection::All.takes(&letter(b"y")));
    }
}
