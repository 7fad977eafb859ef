//! [`AmqpBroker`]: the [`Broker`] implementation on RabbitMQ.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use promiscuous_core::traits::{Broker, BrokerCapabilities, Consumer, Subscription};
use promiscuous_core::BackendError;

use crate::connection::{deadline_in, Shared};
use crate::consumer::{self, AmqpConsumer, Target};
use crate::error::{self, BACKEND};
use crate::options::{AmqpBrokerBuilder, Options};
use crate::publisher;
use crate::topology::{self, SubscriptionPlan};

/// A RabbitMQ broker: confirmed publishing to a topic exchange, one durable
/// queue per subscription, delayed retries and dead letters (see the crate
/// docs for the topology and the failure handling).
///
/// Clones share the same connection. Build one with [`connect`](Self::connect)
/// or [`builder`](Self::builder); [`close`](Broker::close) it when done.
#[derive(Clone)]
pub struct AmqpBroker {
    pub(crate) shared: Arc<Shared>,
}

impl fmt::Debug for AmqpBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AmqpBroker")
            .field("url", &self.shared.options.url)
            .field("exchange", &self.shared.options.exchange)
            .field("healthy", &self.healthy())
            .finish()
    }
}

impl AmqpBroker {
    /// Connects to the RabbitMQ at `url` with the options it carries.
    ///
    /// See the [crate docs](crate) for the URL's query parameters.
    pub async fn connect(url: &str) -> Result<Self, BackendError> {
        Self::builder(url).connect().await
    }

    /// A builder to set the exchange, publish timeout or connection name in code.
    pub fn builder(url: impl Into<String>) -> AmqpBrokerBuilder {
        AmqpBrokerBuilder::new(url.into())
    }

    pub(crate) async fn start(options: Options) -> Result<Self, BackendError> {
        Ok(Self {
            shared: Shared::connect(options).await?,
        })
    }

    /// The broker's URL with its password redacted.
    pub fn url(&self) -> &str {
        &self.shared.options.url
    }

    /// The topic exchange messages are published to.
    pub fn exchange(&self) -> &str {
        &self.shared.options.exchange
    }

    /// How long a publish waits for a reconnection and for the confirm.
    pub fn publish_timeout(&self) -> Duration {
        self.shared.options.publish_timeout
    }
}

#[async_trait]
impl Broker for AmqpBroker {
    fn name(&self) -> &'static str {
        BACKEND
    }

    fn dead_letter_store(&self) -> Option<&dyn promiscuous_core::dead_letter::DeadLetterStore> {
        Some(self)
    }

    async fn queue_depth(
        &self,
        queue: &str,
    ) -> Result<Option<promiscuous_core::traits::QueueDepth>, BackendError> {
        self.declared_depth(queue).await
    }

    fn capabilities(&self) -> BrokerCapabilities {
        BrokerCapabilities {
            delivers: true,
            redelivers_on_nack: true,
            delayed_retry: true,
            persistent: true,
        }
    }

    async fn publish(&self, endpoint: &str, payload: &[u8]) -> Result<(), BackendError> {
        let routing_key = topology::routing_key(endpoint)
            .map_err(|m| error::permanent("publish", &self.shared.options.url, m))?;
        publisher::publish(&self.shared, endpoint, routing_key, payload).await
    }

    async fn subscribe(
        &self,
        subscription: &Subscription,
    ) -> Result<Box<dyn Consumer>, BackendError> {
        let queue = subscription.queue.as_str();
        if self.shared.is_closed() {
            return Err(error::closed("subscribe", queue));
        }
        let plan = SubscriptionPlan::new(subscription)
            .map_err(|m| error::permanent("subscribe", queue, m))?;
        let target = Arc::new(Target {
            queue: queue.to_owned(),
            plan,
            prefetch: subscription.prefetch,
        });
        let deadline = deadline_in(self.shared.options.publish_timeout);
        // In a task of its own: a subscribe dropped halfway leaves no consumer behind.
        let starting = self.shared.runtime.spawn(consumer::start(
            self.shared.clone(),
            target.clone(),
            Some(deadline),
            None,
        ));
        let active = starting.await.map_err(|e| {
            error::temporary(
                "subscribe",
                queue,
                format!("the task starting the consumer failed: {e}"),
            )
        })??;
        Ok(Box::new(AmqpConsumer::new(
            self.shared.clone(),
            target,
            active,
        )))
    }

    fn healthy(&self) -> bool {
        self.shared.current().is_some()
    }

    async fn close(&self) -> Result<(), BackendError> {
        if let Some(session) = self.shared.close() {
            session.close("promiscuous broker closed").await;
            tracing::info!(url = %self.shared.options.url, "closed the RabbitMQ connection");
        }
        Ok(())
    }
}
