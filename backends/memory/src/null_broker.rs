//! The Null broker of pretend mode: publishing is accepted and recorded, nothing is delivered.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use promiscuous_core::traits::{Broker, BrokerCapabilities, Consumer, Delivery, Subscription};
use promiscuous_core::wire::{Message, WireError};
use promiscuous_core::BackendError;
use tokio::sync::watch;

/// What the Null broker does: it records, and delivers nothing.
const CAPABILITIES: BrokerCapabilities = BrokerCapabilities {
    delivers: false,
    redelivers_on_nack: false,
    delayed_retry: false,
    persistent: false,
};

const NAME: &str = "null";

/// One message accepted by a [`NullBroker`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedMessage {
    /// The endpoint it was published to.
    pub endpoint: String,
    /// The message body.
    pub payload: Vec<u8>,
}

impl PublishedMessage {
    /// Decodes the payload as a wire-format [`Message`].
    pub fn message(&self) -> Result<Message, WireError> {
        Message::decode(&self.payload)
    }
}

/// A broker that accepts every message and delivers none (pretend mode).
///
/// Published messages are recorded in order, for tests to inspect with
/// [`published`](Self::published), [`published_messages`](Self::published_messages)
/// and [`take_published`](Self::take_published). Its consumers deliver nothing
/// and end once the broker is closed; after closing, publish and subscribe fail.
/// Clones share the same broker.
#[derive(Debug, Clone)]
pub struct NullBroker {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    published: Mutex<Vec<PublishedMessage>>,
    closed: watch::Sender<bool>,
}

impl Default for NullBroker {
    fn default() -> Self {
        Self {
            shared: Arc::new(Shared {
                published: Mutex::new(Vec::new()),
                closed: watch::Sender::new(false),
            }),
        }
    }
}

impl NullBroker {
    /// A new broker with nothing published.
    pub fn new() -> Self {
        Self::default()
    }

    fn log(&self) -> MutexGuard<'_, Vec<PublishedMessage>> {
        self.shared
            .published
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Every message published so far, in publish order.
    pub fn published(&self) -> Vec<PublishedMessage> {
        self.log().clone()
    }

    /// Every message published so far, decoded; fails on the first payload
    /// that is not a valid wire-format message.
    pub fn published_messages(&self) -> Result<Vec<Message>, WireError> {
        self.log().iter().map(PublishedMessage::message).collect()
    }

    /// Returns the messages published so far and forgets them.
    pub fn take_published(&self) -> Vec<PublishedMessage> {
        std::mem::take(&mut *self.log())
    }

    /// Forgets the messages published so far.
    pub fn clear(&self) {
        self.log().clear();
    }

    /// Whether [`close`](Broker::close) was called.
    pub fn is_closed(&self) -> bool {
        *self.shared.closed.borrow()
    }
}

#[async_trait]
impl Broker for NullBroker {
    fn name(&self) -> &'static str {
        NAME
    }

    fn capabilities(&self) -> BrokerCapabilities {
        CAPABILITIES
    }

    async fn publish(&self, endpoint: &str, payload: &[u8]) -> Result<(), BackendError> {
        if self.is_closed() {
            return Err(BackendError::new(
                NAME,
                "publish",
                endpoint,
                "the broker is closed",
            ));
        }
        self.log().push(PublishedMessage {
            endpoint: endpoint.to_owned(),
            payload: payload.to_vec(),
        });
        Ok(())
    }

    async fn subscribe(
        &self,
        subscription: &Subscription,
    ) -> Result<Box<dyn Consumer>, BackendError> {
        if self.is_closed() {
            return Err(BackendError::new(
                NAME,
                "subscribe",
                subscription.queue.as_str(),
                "the broker is closed",
            ));
        }
        Ok(Box::new(NullConsumer {
            closed: self.shared.closed.subscribe(),
        }))
    }

    fn healthy(&self) -> bool {
        !self.is_closed()
    }

    async fn close(&self) -> Result<(), BackendError> {
        self.shared.closed.send_replace(true);
        Ok(())
    }
}

/// A consumer that never delivers and ends when its [`NullBroker`] closes.
#[derive(Debug)]
struct NullConsumer {
    closed: watch::Receiver<bool>,
}

#[async_trait]
impl Consumer for NullConsumer {
    async fn next(&mut self) -> Option<Result<Delivery, BackendError>> {
        // An error means the broker is gone, which also ends the consumer.
        let _ = self.closed.wait_for(|closed| *closed).await;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use promiscuous_core::wire::{Dependencies, Operation, OperationKind, FORMAT_VERSION};

    fn message() -> Message {
        Message {
            format: FORMAT_VERSION,
            app: "crowdtap".into(),
            generation: 0,
            epoch: 0,
            timestamp: 1,
            host: None,
            id: None,
            operations: vec![Operation {
                operation: OperationKind::Create,
                endpoint: "crowdtap/user".into(),
                types: vec!["User".into()],
                id: serde_json::json!(1),
                attributes: Some(serde_json::Map::new()),
                dependencies: Dependencies::default(),
                sync: false,
            }],
        }
    }

    #[tokio::test]
    async fn records_decodes_takes_and_clears() {
        let broker = NullBroker::new();
        broker
            .publish("crowdtap/user", &message().encode())
            .await
            .unwrap();
        broker.publish("crowdtap/post", b"raw").await.unwrap();
        let published = broker.published();
        assert_eq!(published.len(), 2);
        assert_eq!(published[0].endpoint, "crowdtap/user");
        assert_eq!(published[0].message().unwrap(), message());
        assert_eq!(published[1].payload, b"raw");
        assert!(published[1].message().is_err());
        assert!(broker.published_messages().is_err());
        assert_eq!(broker.take_published(), published);
        assert!(broker.published().is_empty());
        broker
            .publish("crowdtap/user", &message().encode())
            .await
            .unwrap();
        assert_eq!(broker.published_messages().unwrap(), vec![message()]);
        broker.clear();
        assert!(broker.published().is_empty());
    }

    #[tokio::test]
    async fn consumers_end_when_closed() {
        let broker = NullBroker::new();
        let sub = Subscription {
            queue: "q".into(),
            bindings: vec![],
            prefetch: 1,
        };
        let mut consumer = broker.subscribe(&sub).await.unwrap();
        broker.close().await.unwrap();
        assert!(consumer.next().await.is_none());
        assert!(broker.publish("a/b", b"").await.is_err());
        assert!(broker.subscribe(&sub).await.is_err());
        assert!(!broker.healthy());
    }
}
