//! Messages stored with the data that produced them (a transactional
//! outbox), so that a crash between a commit and its publish loses nothing.

use std::fmt::Debug;
use std::time::Duration;

use async_trait::async_trait;

use crate::error::BackendError;

/// One message waiting in an outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    /// The entry's id in its store.
    pub id: String,
    /// The publication it belongs to.
    pub intent: String,
    /// The message, as it goes on the wire.
    pub payload: Vec<u8>,
    /// Until when (milliseconds since the Unix epoch) its claim holds; also
    /// the token [`Outbox::claim`] compares, so only one caller wins a claim.
    pub claimed_until: i64,
}

/// The outcome of [`Outbox::fence`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fence {
    /// The publication's own transaction committed: its entry, to publish.
    Committed(OutboxEntry),
    /// The publication's transaction never committed and now never will:
    /// the entry stored in its place (a `noop` for its versions), claimed
    /// by the caller, to publish.
    Fenced(OutboxEntry),
}

/// The outbox of a store with transactions.
///
/// A publisher stores its message in the outbox in the transaction of its
/// writes ([`StorageTransaction::stage_message`](super::StorageTransaction::stage_message)),
/// claimed by itself for a while; after the commit it publishes the message
/// and [`remove`](Outbox::remove)s the entry. The relay publishes entries
/// whose claim expired (their writer died, or the broker refused them), and
/// the recovery worker [`fence`](Outbox::fence)s the publications of dead
/// writers.
#[async_trait]
pub trait Outbox: Send + Sync + Debug + 'static {
    /// Short name for logs and errors (`sea-orm`).
    fn name(&self) -> &'static str;

    /// Up to `limit` entries of `app` whose claim expired, oldest first.
    async fn unclaimed(&self, app: &str, limit: usize) -> Result<Vec<OutboxEntry>, BackendError>;

    /// Claims `entry` for `duration` if nobody claimed it since it was read;
    /// returns whether this caller got it.
    async fn claim(&self, entry: &OutboxEntry, duration: Duration) -> Result<bool, BackendError>;

    /// Gives up the claim of the entries of publications `intents`, so the
    /// relay takes them at once (their publish failed).
    async fn unclaim(&self, intents: &[String]) -> Result<(), BackendError>;

    /// Removes the entries of publications `intents`, once published;
    /// unknown ones are ignored.
    async fn remove(&self, intents: &[String]) -> Result<(), BackendError>;

    /// Settles publication `intent` of `app`, whose writer died: returns its
    /// entry if its transaction committed; otherwise stores `noop` in its
    /// place, claimed by the caller for `claim`, so that its transaction can
    /// no longer commit.
    ///
    /// Behaviour: atomic against the writer's transaction: while that
    /// transaction is open, this waits for it (or fails with a temporary
    /// error, to be tried again); afterwards, exactly one of the two entries
    /// exists.
    async fn fence(
        &self,
        app: &str,
        intent: &str,
        noop: &[u8],
        claim: Duration,
    ) -> Result<Fence, BackendError>;

    /// How many entries of `app` wait.
    async fn len(&self, app: &str) -> Result<u64, BackendError>;
}
