//! The message broker: publish with confirmation, consume with acknowledgement.

use std::fmt::Debug;
use std::time::Duration;

use async_trait::async_trait;

use crate::error::BackendError;
use crate::wire::EndpointPattern;

/// What a broker implementation can do; the conformance suite adapts to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BrokerCapabilities {
    /// Published messages reach subscribers (false for the Null broker).
    pub delivers: bool,
    /// A nacked message with [`Disposition::Requeue`] is delivered again.
    pub redelivers_on_nack: bool,
    /// [`Disposition::Retry`] delays the redelivery.
    pub delayed_retry: bool,
    /// Messages survive a broker restart.
    pub persistent: bool,
}

/// What a subscriber app consumes: one queue bound to endpoint patterns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// The queue name; by convention the subscriber app's name.
    pub queue: String,
    /// The endpoints routed to the queue.
    pub bindings: Vec<EndpointPattern>,
    /// How many unacknowledged deliveries the consumer may hold at once.
    pub prefetch: u16,
}

/// What to do with a delivery that was not processed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Put it back in the queue now.
    Requeue,
    /// Deliver it again after `delay`, with its attempt count increased.
    Retry {
        /// How long to wait before the next attempt.
        delay: Duration,
    },
    /// Put it at the back of the queue now, without counting an attempt: the
    /// worker steps aside so that messages behind it, which it may be waiting
    /// for, can be delivered.
    Defer,
    /// Park it in the dead-letter queue `<queue>.error` with the reason.
    DeadLetter {
        /// Why it was parked.
        reason: String,
    },
}

/// Settles one delivery. Implemented by each broker.
#[async_trait]
pub trait Acknowledge: Send + Sync + Debug {
    /// The delivery was processed: forget it.
    async fn ack(self: Box<Self>) -> Result<(), BackendError>;
    /// The delivery was not processed: requeue, retry later or dead-letter it.
    async fn nack(self: Box<Self>, disposition: Disposition) -> Result<(), BackendError>;
}

/// One message handed to a consumer.
#[derive(Debug)]
pub struct Delivery {
    /// The message body.
    pub payload: Vec<u8>,
    /// The endpoint it was published to.
    pub endpoint: String,
    /// How many times it was delivered before (0 on first delivery).
    pub attempt: u32,
    /// Settles the delivery.
    pub acker: Box<dyn Acknowledge>,
}

impl Delivery {
    /// Acknowledges the delivery.
    pub async fn ack(self) -> Result<(), BackendError> {
        self.acker.ack().await
    }

    /// Rejects the delivery with a disposition.
    pub async fn nack(self, disposition: Disposition) -> Result<(), BackendError> {
        self.acker.nack(disposition).await
    }
}

/// A stream of deliveries from one subscription.
#[async_trait]
pub trait Consumer: Send + Debug {
    /// The next delivery.
    ///
    /// Behaviour: waits while the queue is empty or `prefetch` deliveries are
    /// unacknowledged; returns `None` once the broker was closed; returns an error
    /// when the connection is lost (the caller may call again after reconnecting).
    async fn next(&mut self) -> Option<Result<Delivery, BackendError>>;
}

/// Routes published operations to subscriber queues.
#[async_trait]
pub trait Broker: Send + Sync + Debug + 'static {
    /// Short name for logs and errors (`null`, `in-process`, `amqp`).
    fn name(&self) -> &'static str;

    /// What this broker can do.
    fn capabilities(&self) -> BrokerCapabilities;

    /// Publishes a message to `endpoint` (`app/model`).
    ///
    /// Behaviour: returns only once the broker has taken responsibility for the
    /// message (confirmed), or with an error; never drops it silently. Every
    /// queue whose subscription binds a pattern matching `endpoint` gets a copy;
    /// with no such queue the message is discarded, as in AMQP.
    async fn publish(&self, endpoint: &str, payload: &[u8]) -> Result<(), BackendError>;

    /// Declares the subscription's queue and bindings and starts consuming it.
    ///
    /// Behaviour: declaring is idempotent; messages published to bound endpoints
    /// after this returns are delivered to the consumer, in publish order for a
    /// single publisher, except for redeliveries.
    async fn subscribe(
        &self,
        subscription: &Subscription,
    ) -> Result<Box<dyn Consumer>, BackendError>;

    /// Whether the broker is connected and able to publish and consume.
    fn healthy(&self) -> bool;

    /// Closes connections; consumers end. Idempotent.
    async fn close(&self) -> Result<(), BackendError>;

    /// The operator's tools on the dead letters this broker keeps, if it
    /// keeps any (the Null broker does not).
    fn dead_letter_store(&self) -> Option<&dyn crate::dead_letter::DeadLetterStore> {
        None
    }

    /// How many messages `queue` holds, for operators (`status`).
    ///
    /// Behaviour: `Ok(None)` when the queue does not exist or the broker
    /// keeps no queues (the Null broker); an error when the broker cannot be
    /// asked (not connected).
    async fn queue_depth(&self, queue: &str) -> Result<Option<QueueDepth>, BackendError> {
        let _ = queue;
        Ok(None)
    }
}

/// How many messages a queue holds, as far as its broker tells
/// ([`Broker::queue_depth`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct QueueDepth {
    /// Messages waiting to be delivered.
    pub ready: u64,
    /// Messages delivered and not yet acknowledged, when the broker tells
    /// (RabbitMQ's AMQP interface does not: its management UI does).
    pub unacked: Option<u64>,
    /// Consumers attached now, when the broker tells.
    pub consumers: Option<u64>,
}
