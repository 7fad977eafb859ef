//! Consuming a subscription's queue, and resuming after a reconnection.
//!
//! Each consumer has its own channel with `basic_qos(prefetch)` and manual
//! acknowledgements. When its stream ends or fails while the broker is open,
//! the consumer reports the loss once, waits for the supervisor's
//! reconnection, declares its queue and bindings again and consumes anew;
//! RabbitMQ redelivers what the lost channel had not acknowledged.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicQosOptions};
use lapin::types::{FieldTable, ShortString};
use lapin::Channel;
use promiscuous_core::error::chain;
use promiscuous_core::traits::{Consumer, Delivery};
use promiscuous_core::BackendError;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::acker::AmqpAcker;
use crate::connection::{bounded, Shared, Unavailable};
use crate::error;
use crate::headers::{self, HEADER_ATTEMPT, HEADER_ENDPOINT};
use crate::topology::{self, SubscriptionPlan};

/// Pause before starting again after a failed start, so a caller looping on
/// `next()` does not hammer RabbitMQ.
const RESTART_PAUSE: Duration = Duration::from_secs(1);

/// How often a waiting consumer checks that its channel is still open.
const CHANNEL_CHECK: Duration = Duration::from_secs(1);

/// What a consumer consumes.
#[derive(Debug)]
pub(crate) struct Target {
    /// The queue name as subscribed.
    pub(crate) queue: String,
    /// The checked names to declare.
    pub(crate) plan: SubscriptionPlan,
    /// The prefetch given to `basic_qos`.
    pub(crate) prefetch: u16,
}

/// A consuming channel.
pub(crate) struct Active {
    channel: Channel,
    stream: lapin::Consumer,
}

/// Opens a channel, declares the queue and its bindings, sets the prefetch
/// and starts consuming. Waits for a usable session until `deadline` (or
/// forever), but not before `not_before`.
pub(crate) async fn start(
    shared: Arc<Shared>,
    target: Arc<Target>,
    deadline: Option<Instant>,
    not_before: Option<Instant>,
) -> Result<Active, BackendError> {
    let queue = target.queue.as_str();
    if let Some(not_before) = not_before {
        tokio::time::sleep_until(not_before).await;
    }
    let session = match shared.session(deadline).await {
        Ok(session) => session,
        Err(Unavailable::Closed) => return Err(error::closed("subscribe", queue)),
        Err(Unavailable::TimedOut) => {
            return Err(error::temporary(
                "subscribe",
                queue,
                format!(
                    "not connected to RabbitMQ ({}), and the reconnection did not happen in time",
                    shared.options.url
                ),
            ))
        }
    };
    let failed = |context: &str, e: lapin::Error| error::from_lapin("subscribe", queue, context, e);
    let channel = session
        .open_channel()
        .await
        .map_err(|e| failed("cannot open a channel", e))?;
    bounded(target.plan.declare(&channel, &shared.options.exchange))
        .await
        .map_err(|e| {
            failed(
                &format!(
                    "cannot declare the queue or bind it on exchange {:?}",
                    shared.options.exchange
                ),
                e,
            )
        })?;
    bounded(channel.basic_qos(target.prefetch, BasicQosOptions { global: false }))
        .await
        .map_err(|e| failed("cannot set the prefetch", e))?;
    let stream = bounded(channel.basic_consume(
        target.plan.queue.clone(),
        ShortString::from(""),
        BasicConsumeOptions::default(),
        FieldTable::default(),
    ))
    .await
    .map_err(|e| failed("cannot start consuming", e))?;
    Ok(Active { channel, stream })
}

/// Consumes one subscription of an [`AmqpBroker`](crate::AmqpBroker).
pub(crate) struct AmqpConsumer {
    shared: Arc<Shared>,
    target: Arc<Target>,
    active: Option<Active>,
    /// A start in progress, in its own task so dropping `next()` loses nothing.
    starting: Option<JoinHandle<Result<Active, BackendError>>>,
    /// Whether the current loss was already reported by `next()`.
    reported_loss: bool,
    /// When the next start may begin (after a failed one).
    restart_at: Option<Instant>,
}

impl fmt::Debug for AmqpConsumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AmqpConsumer")
            .field("queue", &self.target.queue)
            .field("prefetch", &self.target.prefetch)
            .field("consuming", &self.active.is_some())
            .finish_non_exhaustive()
    }
}

impl AmqpConsumer {
    pub(crate) fn new(shared: Arc<Shared>, target: Arc<Target>, active: Active) -> Self {
        Self {
            shared,
            target,
            active: Some(active),
            starting: None,
            reported_loss: false,
            restart_at: None,
        }
    }

    /// Lets go of the channel and any start in progress.
    fn stop(&mut self) {
        self.active = None;
        if let Some(starting) = self.starting.take() {
            starting.abort();
        }
    }

    /// Turns a lapin delivery into ours.
    fn delivery(&self, delivery: lapin::message::Delivery, channel: &Channel) -> Delivery {
        let lapin::message::Delivery {
            routing_key,
            redelivered,
            properties,
            data,
            acker,
            ..
        } = delivery;
        let endpoint = headers::text(&properties, HEADER_ENDPOINT)
            .unwrap_or_else(|| topology::endpoint_of(routing_key.as_str()));
        let attempt = headers::count(&properties, HEADER_ATTEMPT)
            .unwrap_or(0)
            .saturating_add(u32::from(redelivered));
        Delivery {
            payload: data.clone(),
            endpoint: endpoint.clone(),
            attempt,
            acker: Box::new(AmqpAcker {
                shared: self.shared.clone(),
                queue: self.target.queue.clone(),
                channel: channel.clone(),
                acker: Some(acker),
                endpoint,
                payload: data,
                properties,
                attempt,
            }),
        }
    }

    /// The loss of the consuming channel, as reported once by `next()`.
    fn loss(&mut self, cause: Option<lapin::Error>) -> Option<Result<Delivery, BackendError>> {
        self.active = None;
        if self.reported_loss {
            return None;
        }
        self.reported_loss = true;
        let queue = self.target.queue.as_str();
        let context = "the consumer stopped (connection or channel lost, or the queue was deleted); it resumes by itself once RabbitMQ is reachable";
        let error = match cause {
            Some(e) => error::from_lapin("consume", queue, context, e).temporary(),
            None => error::temporary("consume", queue, context),
        };
        tracing::warn!(queue, error = %chain(&error), "consumer interrupted");
        Some(Err(error))
    }
}

#[async_trait]
impl Consumer for AmqpConsumer {
    async fn next(&mut self) -> Option<Result<Delivery, BackendError>> {
        loop {
            if self.shared.is_closed() {
                self.stop();
                return None;
            }
            if self.active.is_none() {
                let shared = self.shared.clone();
                let target = self.target.clone();
                let not_before = self.restart_at;
                let starting = self.starting.get_or_insert_with(|| {
                    shared
                        .runtime
                        .clone()
                        .spawn(start(shared, target, None, not_before))
                });
                let joined = tokio::select! {
                    biased;
                    () = self.shared.closed() => None,
                    joined = starting => Some(joined),
                };
                self.starting = None;
                let Some(joined) = joined else {
                    self.stop();
                    return None;
                };
                let started = joined.unwrap_or_else(|e| {
                    Err(error::temporary(
                        "consume",
                        &self.target.queue,
                        format!("the task resuming the consumer failed: {e}"),
                    ))
                });
                match started {
                    Ok(active) => {
                        tracing::info!(queue = %self.target.queue, "consumer resumed");
                        self.active = Some(active);
                        self.reported_loss = false;
                        self.restart_at = None;
                    }
                    Err(e) => {
                        if self.shared.is_closed() {
                            self.stop();
                            return None;
                        }
                        self.restart_at = Some(Instant::now() + RESTART_PAUSE);
                        return Some(Err(e));
                    }
                }
            }
            let Some(active) = self.active.as_mut() else {
                continue;
            };
            let shared = &self.shared;
            let item = loop {
                tokio::select! {
                    biased;
                    () = shared.closed() => break None,
                    item = active.stream.next() => break Some(item),
                    // A safety net: should lapin miss ending the stream of a
                    // dead channel, notice it from the channel's status.
                    () = tokio::time::sleep(CHANNEL_CHECK) => {
                        if !active.channel.status().connected() {
                            break Some(None);
                        }
                    }
                }
            };
            match item {
                None => {
                    self.stop();
                    return None;
                }
                Some(Some(Ok(delivery))) => {
                    let channel = active.channel.clone();
                    return Some(Ok(self.delivery(delivery, &channel)));
                }
                Some(Some(Err(e))) => {
                    if self.shared.is_closed() {
                        self.stop();
                        return None;
                    }
                    if let Some(report) = self.loss(Some(e)) {
                        return Some(report);
                    }
                }
                Some(None) => {
                    if self.shared.is_closed() {
                        self.stop();
                        return None;
                    }
                    if let Some(report) = self.loss(None) {
                        return Some(report);
                    }
                }
            }
        }
    }
}

impl Drop for AmqpConsumer {
    fn drop(&mut self) {
        if let Some(starting) = self.starting.take() {
            starting.abort();
        }
    }
}
