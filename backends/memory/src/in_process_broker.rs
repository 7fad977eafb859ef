//! A broker inside the process: queues, bindings, prefetch, acknowledgements,
//! retries and dead letters, for tests and single-process deployments.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use promiscuous_core::dead_letter::{DeadLetter, DeadLetterStore, Selection};
use promiscuous_core::traits::{
    Acknowledge, Broker, BrokerCapabilities, Consumer, Delivery, Disposition, QueueDepth,
    Subscription,
};
use promiscuous_core::wire::EndpointPattern;
use promiscuous_core::BackendError;
use tokio::sync::Notify;

/// What the in-process broker does: it delivers, redelivers and delays, in memory.
const CAPABILITIES: BrokerCapabilities = BrokerCapabilities {
    delivers: true,
    redelivers_on_nack: true,
    delayed_retry: true,
    persistent: false,
};

const NAME: &str = "in-process";

/// A broker living in the process.
///
/// Queues are declared by [`Broker::subscribe`] and bound to endpoint patterns;
/// a published message is copied to every queue with a matching binding (once
/// per queue, however many of its bindings match) and dropped when there is
/// none. Consumers of one queue compete for its messages; each holds at most
/// `prefetch` unacknowledged deliveries (0 means no limit). Nacks requeue at
/// the front, retry at the back after the delay, or park the message in the
/// queue's dead letters; every redelivery has its attempt increased by one. A
/// delivery dropped without being settled is requeued at the front, as when an
/// AMQP channel closes. Nothing persists beyond the process.
///
/// Clones share the same broker. Besides the [`Broker`] trait it offers
/// inspection for tests: [`queue_len`](Self::queue_len),
/// [`unacked`](Self::unacked), [`dead_letters`](Self::dead_letters) and
/// [`inject`](Self::inject).
#[derive(Debug, Clone, Default)]
pub struct InProcessBroker {
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[derive(Debug, Default)]
struct State {
    closed: bool,
    queues: HashMap<String, Queue>,
    /// Dead letters by the name of the queue they came from.
    dead_letters: HashMap<String, Vec<DeadLetter>>,
}

#[derive(Debug, Default)]
struct Queue {
    bindings: Vec<EndpointPattern>,
    ready: VecDeque<Message>,
    unacked: usize,
    /// Woken whenever a message becomes ready, a delivery is settled or the broker closes.
    changed: Arc<Notify>,
}

impl Queue {
    fn push_back(&mut self, message: Message) {
        self.ready.push_back(message);
        self.changed.notify_waiters();
    }
}

#[derive(Debug, Clone)]
struct Message {
    endpoint: String,
    payload: Vec<u8>,
    attempt: u32,
}

impl Message {
    fn redelivery(self) -> Self {
        Self {
            attempt: self.attempt.saturating_add(1),
            ..self
        }
    }
}

impl InProcessBroker {
    /// A new, empty broker.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many messages wait in `queue`, not counting unacknowledged deliveries
    /// (0 for an undeclared queue).
    pub fn queue_len(&self, queue: &str) -> usize {
        self.shared
            .lock()
            .queues
            .get(queue)
            .map_or(0, |q| q.ready.len())
    }

    /// How many deliveries of `queue` are delivered but not yet settled.
    pub fn unacked(&self, queue: &str) -> usize {
        self.shared
            .lock()
            .queues
            .get(queue)
            .map_or(0, |q| q.unacked)
    }

    /// The messages dead-lettered from `queue`, oldest first: the contents of
    /// `<queue>.error`. `queue` may be given with or without the `.error` suffix.
    pub fn dead_letters(&self, queue: &str) -> Vec<DeadLetter> {
        let state = self.shared.lock();
        state
            .dead_letters
            .get(queue)
            .or_else(|| {
                queue
                    .strip_suffix(".error")
                    .and_then(|q| state.dead_letters.get(q))
            })
            .cloned()
            .unwrap_or_default()
    }

    /// Puts a raw payload at the back of `queue` (declaring the queue, without
    /// bindings, if needed), as if it had been published to `endpoint`,
    /// bypassing routing: for tests delivering reordered, duplicated or
    /// malformed messages. Does nothing once the broker is closed.
    pub fn inject(&self, queue: &str, endpoint: &str, payload: &[u8]) {
        let mut state = self.shared.lock();
        if state.closed {
            return;
        }
        state
            .queues
            .entry(queue.to_owned())
            .or_default()
            .push_back(Message {
                endpoint: endpoint.to_owned(),
                payload: payload.to_vec(),
                attempt: 0,
            });
    }

    /// The names of the declared queues, sorted.
    pub fn queue_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.shared.lock().queues.keys().cloned().collect();
        names.sort();
        names
    }

    /// Whether [`close`](Broker::close) was called.
    pub fn is_closed(&self) -> bool {
        self.shared.lock().closed
    }
}

impl InProcessBroker {
    /// Takes the selected dead letters of `queue` out, keeping the others in order.
    fn take_selected(state: &mut State, queue: &str, which: &Selection) -> Vec<DeadLetter> {
        let Some(parked) = state.dead_letters.get_mut(queue) else {
            return Vec::new();
        };
        let (taken, kept) = std::mem::take(parked)
            .into_iter()
            .partition(|letter| which.takes(letter));
        *parked = kept;
        taken
    }
}

#[async_trait]
impl DeadLetterStore for InProcessBroker {
    async fn list(&self, queue: &str) -> Result<Vec<DeadLetter>, BackendError> {
        Ok(self.dead_letters(queue))
    }

    async fn replay(&self, queue: &str, which: &Selection) -> Result<usize, BackendError> {
        let queue = queue.strip_suffix(".error").unwrap_or(queue);
        let mut state = self.shared.lock();
        if state.closed {
            return Err(BackendError::new(
                NAME,
                "replay",
                queue,
                "the broker is closed",
            ));
        }
        let taken = Self::take_selected(&mut state, queue, which);
        let count = taken.len();
        let target = state.queues.entry(queue.to_owned()).or_default();
        for letter in taken {
            target.push_back(Message {
                endpoint: letter.endpoint,
                payload: letter.payload,
                attempt: 0,
            });
        }
        Ok(count)
    }

    async fn purge(&self, queue: &str, which: &Selection) -> Result<usize, BackendError> {
        let queue = queue.strip_suffix(".error").unwrap_or(queue);
        let mut state = self.shared.lock();
        Ok(Self::take_selected(&mut state, queue, which).len())
    }
}

#[async_trait]
impl Broker for InProcessBroker {
    fn name(&self) -> &'static str {
        NAME
    }

    fn capabilities(&self) -> BrokerCapabilities {
        CAPABILITIES
    }

    fn dead_letter_store(&self) -> Option<&dyn DeadLetterStore> {
        Some(self)
    }

    /// `<queue>.error` names the dead letters of `<queue>`.
    async fn queue_depth(&self, queue: &str) -> Result<Option<QueueDepth>, BackendError> {
        let state = self.shared.lock();
        if let Some(of) = queue.strip_suffix(".error") {
            if let Some(letters) = state.dead_letters.get(of) {
                return Ok(Some(QueueDepth {
                    ready: letters.len() as u64,
                    unacked: Some(0),
                    consumers: Some(0),
                }));
            }
        }
        Ok(state.queues.get(queue).map(|q| QueueDepth {
            ready: q.ready.len() as u64,
            unacked: Some(q.unacked as u64),
            consumers: None,
        }))
    }

    async fn publish(&self, endpoint: &str, payload: &[u8]) -> Result<(), BackendError> {
        let mut state = self.shared.lock();
        if state.closed {
            return Err(BackendError::new(
                NAME,
                "publish",
                endpoint,
                "the broker is closed",
            ));
        }
        for queue in state.queues.values_mut() {
            if queue.bindings.iter().any(|b| b.matches_str(endpoint)) {
                queue.push_back(Message {
                    endpoint: endpoint.to_owned(),
                    payload: payload.to_vec(),
                    attempt: 0,
                });
            }
        }
        Ok(())
    }

    async fn subscribe(
        &self,
        subscription: &Subscription,
    ) -> Result<Box<dyn Consumer>, BackendError> {
        let name = &subscription.queue;
        if name.is_empty() {
            return Err(BackendError::new(
                NAME,
                "subscribe",
                "(empty queue name)",
                "the subscription's queue name is empty",
            ));
        }
        let mut state = self.shared.lock();
        if state.closed {
            return Err(BackendError::new(
                NAME,
                "subscribe",
                name.as_str(),
                "the broker is closed",
            ));
        }
        let queue = state.queues.entry(name.clone()).or_default();
        for binding in &subscription.bindings {
            if !queue.bindings.contains(binding) {
                queue.bindings.push(binding.clone());
            }
        }
        Ok(Box::new(InProcessConsumer {
            shared: Arc::clone(&self.shared),
            queue: name.clone(),
            changed: Arc::clone(&queue.changed),
            prefetch: usize::from(subscription.prefetch),
            in_flight: Arc::new(AtomicUsize::new(0)),
        }))
    }

    fn healthy(&self) -> bool {
        !self.is_closed()
    }

    async fn close(&self) -> Result<(), BackendError> {
        let mut state = self.shared.lock();
        state.closed = true;
        for queue in state.queues.values() {
            queue.changed.notify_waiters();
        }
        Ok(())
    }
}

/// Consumes one queue of an [`InProcessBroker`].
#[derive(Debug)]
struct InProcessConsumer {
    shared: Arc<Shared>,
    queue: String,
    changed: Arc<Notify>,
    /// Maximum unacknowledged deliveries; 0 for no limit.
    prefetch: usize,
    /// Unsettled deliveries of this consumer; changed only under the state lock.
    in_flight: Arc<AtomicUsize>,
}

impl InProcessConsumer {
    /// Takes the next ready message if the broker is open and prefetch allows.
    fn poll_ready(&self) -> Option<Option<Delivery>> {
        let mut state = self.shared.lock();
        if state.closed {
            return Some(None);
        }
        let queue = state.queues.get_mut(&self.queue)?;
        if self.prefetch != 0 && self.in_flight.load(Ordering::SeqCst) >= self.prefetch {
            return None;
        }
        let message = queue.ready.pop_front()?;
        queue.unacked += 1;
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        Some(Some(Delivery {
            payload: message.payload.clone(),
            endpoint: message.endpoint.clone(),
            attempt: message.attempt,
            acker: Box::new(InProcessAcker {
                shared: Arc::clone(&self.shared),
                queue: self.queue.clone(),
                in_flight: Arc::clone(&self.in_flight),
                message: Some(message),
            }),
        }))
    }
}

#[async_trait]
impl Consumer for InProcessConsumer {
    async fn next(&mut self) -> Option<Result<Delivery, BackendError>> {
        loop {
            // Register for wake-ups before looking, so a change between the
            // look and the wait is not missed.
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if let Some(outcome) = self.poll_ready() {
                return outcome.map(Ok);
            }
            changed.await;
        }
    }
}

/// Settles one delivery of an [`InProcessBroker`]; requeues it when dropped unsettled.
#[derive(Debug)]
struct InProcessAcker {
    shared: Arc<Shared>,
    queue: String,
    in_flight: Arc<AtomicUsize>,
    /// The delivered message; `None` once settled.
    message: Option<Message>,
}

enum Settle {
    Ack,
    Requeue,
    DeadLetter(String),
    /// Settled now; the message is put back later by a timer task.
    Retry,
    /// Back of the queue, attempt unchanged.
    Defer,
}

impl InProcessAcker {
    /// Settles the delivery; returns the message when it must be retried later.
    fn settle(&mut self, how: Settle) -> Option<Message> {
        let message = self.message.take()?;
        let mut state = self.shared.lock();
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        if let Some(queue) = state.queues.get_mut(&self.queue) {
            queue.unacked = queue.unacked.saturating_sub(1);
            match how {
                Settle::Ack | Settle::Retry | Settle::DeadLetter(_) => {}
                Settle::Requeue => queue.ready.push_front(message.clone().redelivery()),
                Settle::Defer => queue.ready.push_back(message.clone()),
            }
            queue.changed.notify_waiters();
        }
        match how {
            Settle::Ack | Settle::Requeue | Settle::Defer => None,
            Settle::Retry => Some(message.redelivery()),
            Settle::DeadLetter(reason) => {
                state
                    .dead_letters
                    .entry(self.queue.clone())
                    .or_default()
                    .push(DeadLetter {
                        attempts: message.attempt.saturating_add(1),
                        endpoint: message.endpoint,
                        payload: message.payload,
                        reason,
                    });
                None
            }
        }
    }
}

fn requeue_later(shared: Arc<Shared>, queue: String, message: Message, delay: Duration) {
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        let mut state = shared.lock();
        if state.closed {
            return;
        }
        if let Some(queue) = state.queues.get_mut(&queue) {
            queue.push_back(message);
        }
    });
}

#[async_trait]
impl Acknowledge for InProcessAcker {
    async fn ack(mut self: Box<Self>) -> Result<(), BackendError> {
        self.settle(Settle::Ack);
        Ok(())
    }

    async fn nack(mut self: Box<Self>, disposition: Disposition) -> Result<(), BackendError> {
        match disposition {
            Disposition::Requeue => {
                self.settle(Settle::Requeue);
            }
            Disposition::DeadLetter { reason } => {
                self.settle(Settle::DeadLetter(reason));
            }
            Disposition::Defer => {
                self.settle(Settle::Defer);
            }
            Disposition::Retry { delay } => {
                if let Some(message) = self.settle(Settle::Retry) {
                    requeue_later(Arc::clone(&self.shared), self.queue.clone(), message, delay);
                }
            }
        }
        Ok(())
    }
}

impl Drop for InProcessAcker {
    fn drop(&mut self) {
        self.settle(Settle::Requeue);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subscription(queue: &str, patterns: &[&str], prefetch: u16) -> Subscription {
        Subscription {
            queue: queue.to_owned(),
            bindings: patterns
                .iter()
                .map(|p| EndpointPattern::parse(p).unwrap())
                .collect(),
            prefetch,
        }
    }

    #[tokio::test]
    async fn inspection_counts_ready_and_unacked() {
        let broker = InProcessBroker::new();
        let mut consumer = broker
            .subscribe(&subscription("q", &["app/*"], 0))
            .await
            .unwrap();
        broker.publish("app/user", b"1").await.unwrap();
        broker.publish("app/user", b"2").await.unwrap();
        broker.publish("other/user", b"x").await.unwrap();
        assert_eq!(broker.queue_len("q"), 2);
        assert_eq!(broker.unacked("q"), 0);
        let first = consumer.next().await.unwrap().unwrap();
        assert_eq!((broker.queue_len("q"), broker.unacked("q")), (1, 1));
        first.ack().await.unwrap();
        assert_eq!((broker.queue_len("q"), broker.unacked("q")), (1, 0));
        assert_eq!(broker.queue_len("unknown"), 0);
        assert_eq!(broker.queue_names(), vec!["q".to_owned()]);
    }

    #[tokio::test]
    async fn dead_letters_keep_reason_and_attempts() {
        let broker = InProcessBroker::new();
        let mut consumer = broker
            .subscribe(&subscription("q", &["app/user"], 10))
            .await
            .unwrap();
        broker.publish("app/user", b"bad").await.unwrap();
        let first = consumer.next().await.unwrap().unwrap();
        first.nack(Disposition::Requeue).await.unwrap();
        let second = consumer.next().await.unwrap().unwrap();
        assert_eq!(second.attempt, 1);
        second
            .nack(Disposition::DeadLetter {
                reason: "malformed".into(),
            })
            .await
            .unwrap();
        let expected = vec![DeadLetter {
            endpoint: "app/user".into(),
            payload: b"bad".to_vec(),
            reason: "malformed".into(),
            attempts: 2,
        }];
        assert_eq!(broker.dead_letters("q"), expected);
        assert_eq!(broker.dead_letters("q.error"), expected);
        assert!(broker.dead_letters("other").is_empty());
        assert_eq!((broker.queue_len("q"), broker.unacked("q")), (0, 0));
    }

    #[tokio::test]
    async fn dead_letters_are_the_shared_core_type() {
        let broker = InProcessBroker::new();
        let mut consumer = broker
            .subscribe(&subscription("q", &["app/*"], 1))
            .await
            .unwrap();
        broker.publish("app/user", b"{}").await.unwrap();
        broker.publish("app/user", b"[]").await.unwrap();
        for reason in ["first", "second"] {
            let delivery = consumer.next().await.unwrap().unwrap();
            delivery
                .nack(Disposition::DeadLetter {
                    reason: reason.into(),
                })
                .await
                .unwrap();
        }
        let letters: Vec<promiscuous_core::dead_letter::DeadLetter> = broker.dead_letters("q");
        let letter = |payload: &[u8], reason: &str| crate::DeadLetter {
            endpoint: "app/user".into(),
            payload: payload.to_vec(),
            reason: reason.into(),
            attempts: 1,
        };
        assert_eq!(
            letters,
            vec![letter(b"{}", "first"), letter(b"[]", "second")]
        );
    }

    #[tokio::test]
    async fn inject_bypasses_routing_and_declares_the_queue() {
        let broker = InProcessBroker::new();
        broker.inject("q", "any/thing", b"not json");
        broker.inject("q", "any/thing", b"not json");
        assert_eq!(broker.queue_len("q"), 2);
        let mut consumer = broker.subscribe(&subscription("q", &[], 0)).await.unwrap();
        for _ in 0..2 {
            let delivery = consumer.next().await.unwrap().unwrap();
            assert_eq!(
                (delivery.endpoint.as_str(), delivery.payload.as_slice()),
                ("any/thing", b"not json".as_slice())
            );
            delivery.ack().await.unwrap();
        }
        broker.close().await.unwrap();
        broker.inject("q", "any/thing", b"late");
        assert_eq!(broker.queue_len("q"), 0);
    }

    #[tokio::test]
    async fn dropped_delivery_is_requeued_at_the_front() {
        let broker = InProcessBroker::new();
        let mut consumer = broker
            .subscribe(&subscription("q", &["app/user"], 1))
            .await
            .unwrap();
        broker.publish("app/user", b"1").await.unwrap();
        broker.publish("app/user", b"2").await.unwrap();
        drop(consumer.next().await.unwrap().unwrap());
        assert_eq!((broker.queue_len("q"), broker.unacked("q")), (2, 0));
        let again = consumer.next().await.unwrap().unwrap();
        assert_eq!(
            (again.payload.as_slice(), again.attempt),
            (b"1".as_slice(), 1)
        );
    }

    #[tokio::test]
    async fn publish_and_subscribe_after_close_fail() {
        let broker = InProcessBroker::new();
        broker.close().await.unwrap();
        let err = broker.publish("app/user", b"x").await.unwrap_err();
        assert_eq!((err.backend, err.operation), ("in-process", "publish"));
        assert!(broker.subscribe(&subscription("q", &[], 1)).await.is_err());
        assert!(broker.is_closed() && !broker.healthy());
    }
}
