//! Runs the `promiscuous_core::testkit` broker suite against a real RabbitMQ
//! (`amqp://guest:guest@127.0.0.1:5672/%2f`, or `PROMISCUOUS_AMQP_URL`),
//! once with [`AmqpBroker::connect`] and once through the registered factory.
//! RabbitMQ must be running: these tests fail, they never skip.

use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use promiscuous_amqp::AmqpBroker;
use promiscuous_core::backend::factory_for;
use promiscuous_core::testkit::broker;
use promiscuous_core::traits::{Broker, BrokerCapabilities, Consumer, Subscription};
use promiscuous_core::BackendError;

const DEFAULT_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

fn url() -> String {
    std::env::var("PROMISCUOUS_AMQP_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

async fn connect() -> AmqpBroker {
    AmqpBroker::connect(&url()).await.unwrap_or_else(|e| {
        panic!(
            "these tests need a running RabbitMQ at {} (set PROMISCUOUS_AMQP_URL to use another): {e}",
            promiscuous_core::backend::redact_url(&url())
        )
    })
}

/// Delegates to a broker and records the queues subscribed, for cleanup.
#[derive(Debug)]
struct Recording {
    inner: Arc<dyn Broker>,
    queues: Arc<Mutex<Vec<String>>>,
}

#[async_trait]
impl Broker for Recording {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn capabilities(&self) -> BrokerCapabilities {
        self.inner.capabilities()
    }

    async fn publish(&self, endpoint: &str, payload: &[u8]) -> Result<(), BackendError> {
        self.inner.publish(endpoint, payload).await
    }

    async fn subscribe(
        &self,
        subscription: &Subscription,
    ) -> Result<Box<dyn Consumer>, BackendError> {
        self.queues
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(subscription.queue.clone());
        self.inner.subscribe(subscription).await
    }

    fn dead_letter_store(&self) -> Option<&dyn promiscuous_core::dead_letter::DeadLetterStore> {
        self.inner.dead_letter_store()
    }

    fn healthy(&self) -> bool {
        self.inner.healthy()
    }

    async fn close(&self) -> Result<(), BackendError> {
        self.inner.close().await
    }
}

/// Deletes every queue the suite subscribed, with their error and retry queues.
async fn clean_up(queues: &Mutex<Vec<String>>) {
    let cleaner = connect().await;
    let mut queues = queues
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    queues.sort();
    queues.dedup();
    for queue in queues {
        cleaner
            .delete_subscription(&queue)
            .await
            .unwrap_or_else(|e| panic!("cleaning up queue {queue} failed: {e}"));
    }
    cleaner.close().await.expect("close the cleaner");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn amqp_broker_conforms() {
    let queues = Arc::new(Mutex::new(Vec::new()));
    broker::run_all(|| {
        let queues = queues.clone();
        async move {
            Arc::new(Recording {
                inner: Arc::new(connect().await),
                queues,
            }) as Arc<dyn Broker>
        }
    })
    .await;
    clean_up(&queues).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn amqp_broker_from_the_factory_conforms() {
    let url = url();
    let factory =
        factory_for(&url).expect("the amqp scheme must be registered by promiscuous-amqp");
    assert_eq!((factory.scheme, factory.feature), ("amqp", "amqp"));
    assert!(factory.clock.is_none() && factory.lock.is_none());
    let build = factory.broker.expect("the amqp factory builds brokers");
    let queues = Arc::new(Mutex::new(Vec::new()));
    broker::run_all(|| {
        let queues = queues.clone();
        let url = url.clone();
        async move {
            let inner = build(&url).await.unwrap_or_else(|e| {
                panic!("these tests need a running RabbitMQ (set PROMISCUOUS_AMQP_URL): {e}")
            });
            assert_eq!(inner.name(), "amqp");
            Arc::new(Recording { inner, queues }) as Arc<dyn Broker>
        }
    })
    .await;
    clean_up(&queues).await;
}

#[test]
fn amqps_urls_fall_back_to_the_amqp_factory() {
    let factory = factory_for("amqps://guest:guest@rabbit:5671/%2f").expect("amqps falls back");
    assert_eq!(factory.scheme, "amqp");
}
