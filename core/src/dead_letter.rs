//! The messages a broker parks with [`Disposition::DeadLetter`], as its
//! inspection helpers return them.
//!
//! Every broker that keeps dead letters (the in-process broker, RabbitMQ's
//! `<queue>.error` queues) reads them as this one type, so tests and tools
//! that look at them work with any broker.
//!
//! [`Disposition::DeadLetter`]: crate::traits::Disposition::DeadLetter

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
