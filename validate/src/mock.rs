//! Mock publishers: operations on mock models, delivered synchronously to a
//! subscriber, without a broker.

use std::sync::{Arc, Mutex, PoisonError};

use promiscuous_core::model::{published_attributes, Publish};
use promiscuous_core::publisher::PendingWrite;
use promiscuous_core::subscriber::WorkerStats;
use promiscuous_core::wire::{Message, OperationKind};
use promiscuous_core::{Error, Promiscuous, Result};
use promiscuous_memory::{MemoryLock, NullBroker, PublishedMessage};

/// Sends the operations a publisher app would send, straight into a
/// subscriber's pipeline.
///
/// Each [`create`](Self::create), [`update`](Self::update) or
/// [`destroy`](Self::destroy) of a model (usually a mock from an exported
/// mocks file) runs the real publisher pipeline of app `app` (lock, version
/// counters, payload) with a broker that only records, then hands the message
/// to [`Promiscuous::deliver`], which applies it as the subscriber's worker
/// would: ordering, storage, callbacks with their changes. It returns when the
/// subscriber is done, with what it did.
///
/// The version counters live in the subscriber's clock, as they would in a
/// shared Redis, so several mock publishers of one app (or one per test)
/// keep each record's operations in order.
#[derive(Debug)]
pub struct MockPublisher {
    publisher: Promiscuous,
    broker: Arc<NullBroker>,
    subscriber: Promiscuous,
    /// One operation at a time, so each takes exactly its own messages.
    turn: tokio::sync::Mutex<()>,
    sent: Mutex<Vec<PublishedMessage>>,
}

impl MockPublisher {
    /// A mock of publisher app `app` (the mocks file's `APP`) delivering to `subscriber`.
    ///
    /// Fails when `app` is not a valid application name.
    pub async fn new(app: &str, subscriber: &Promiscuous) -> Result<Self> {
        let broker = Arc::new(NullBroker::new());
        let config = subscriber.config();
        let publisher = Promiscuous::configure()
            .app(app)
            .broker(broker.clone())
            .clock(subscriber.clock().clone())
            .lock(Arc::new(MemoryLock::new()))
            .no_subscribers()
            .hash_size(config.hash_size)
            .generation(config.generation)
            .host("mock")
            .build()
            .await?;
        Ok(Self {
            publisher,
            broker,
            subscriber: subscriber.clone(),
            turn: tokio::sync::Mutex::new(()),
            sent: Mutex::new(Vec::new()),
        })
    }

    /// Sends the create of `model` (for an ephemeral: its publication).
    pub async fn create<M: Publish>(&self, model: &M) -> Result<WorkerStats> {
        self.send(OperationKind::Create, model).await
    }

    /// Sends the update of `model`: its published attributes as they are now.
    pub async fn update<M: Publish>(&self, model: &M) -> Result<WorkerStats> {
        self.send(OperationKind::Update, model).await
    }

    /// Sends the destroy of `model`.
    pub async fn destroy<M: Publish>(&self, model: &M) -> Result<WorkerStats> {
        self.send(OperationKind::Destroy, model).await
    }

    /// Sends the publication of an ephemeral model, like `Promiscuous::publish`.
    pub async fn publish<M: Publish>(&self, event: &M) -> Result<WorkerStats> {
        let def = M::definition();
        if !def.ephemeral {
            return Err(Error::Definition {
                model: def.model.to_owned(),
                problem: "is not ephemeral: send it with create/update/destroy".to_owned(),
            });
        }
        self.send(OperationKind::Create, event).await
    }

    /// The messages sent so far, decoded, in order.
    pub fn sent(&self) -> Vec<Message> {
        self.sent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter_map(|m| m.message().ok())
            .collect()
    }

    /// The publisher-only instance that builds the messages.
    pub fn publisher(&self) -> &Promiscuous {
        &self.publisher
    }

    async fn send<M: Publish>(&self, kind: OperationKind, model: &M) -> Result<WorkerStats> {
        let def = M::definition();
        let id = model.id();
        if def.ephemeral && kind != OperationKind::Create {
            return Err(Error::Definition {
                model: def.model.to_owned(),
                problem: format!(
                    "is ephemeral: it is only published, never {}d; send it with create or publish",
                    kind.as_str()
                ),
            });
        }
        if !def.ephemeral && id.is_null() {
            return Err(Error::Definition {
                model: def.model.to_owned(),
                problem: "has a null id; published records need an id".to_owned(),
            });
        }
        let _turn = self.turn.lock().await;
        let published = self
            .publisher
            .publish_writes(vec![PendingWrite::of::<M>(kind, id)], || async move {
                let attributes = match kind {
                    OperationKind::Destroy => None,
                    _ => Some(published_attributes(model)?),
                };
                Ok(((), vec![attributes]))
            })
            .await;
        // Deliver whatever was published, a noop after a failure included, so
        // the subscriber's counters stay in step with the publisher's.
        let messages = self.broker.take_published();
        self.sent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(messages.iter().cloned());
        let mut total = WorkerStats::default();
        let mut failure = None;
        for message in &messages {
            match self.subscriber.deliver(&message.payload).await {
                Ok(stats) => add(&mut total, stats),
                Err(error) => {
                    failure.get_or_insert(error);
                }
            }
        }
        published?;
        match failure {
            Some(error) => Err(error),
            None => Ok(total),
        }
    }
}

/// Adds the counters of `more` to `total`.
fn add(total: &mut WorkerStats, more: WorkerStats) {
    total.received += more.received;
    total.applied += more.applied;
    total.duplicates += more.duplicates;
    total.skipped += more.skipped;
    total.failed += more.failed;
    total.dead_lettered += more.dead_lettered;
    total.recovered += more.recovered;
    total.deferred += more.deferred;
}
