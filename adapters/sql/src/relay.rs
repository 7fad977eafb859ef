//! The outbox relay of a [`SqlPublisher`]: the core [`Relay`] over its
//! database's outbox.

use promiscuous_core::publisher::Relay;

use crate::error::Result;
use crate::publisher::SqlPublisher;

impl SqlPublisher {
    /// A relay of this publisher's outbox. The recovery worker of every
    /// process of the app runs one pass each `recovery_interval` already;
    /// run this one to relay more often, or from a process without it.
    pub fn relay(&self) -> Relay {
        self.promiscuous().relay(self.outbox())
    }

    /// How many messages of this app wait in the outbox, once the rows of
    /// the messages already published are removed.
    pub async fn outbox_len(&self) -> Result<u64> {
        Ok(self.relay().len().await?)
    }
}
