//! Settling deliveries: ack, requeue, delayed retry and dead letter.
//!
//! `Retry`, `Defer` and `DeadLetter` publish a copy (confirmed) through the
//! default exchange to the retry queue, the back of the queue itself or the
//! error queue, then ack the original; if
//! the copy cannot be published the original is requeued instead, so a
//! message is never lost.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use lapin::options::{BasicAckOptions, BasicNackOptions};
use lapin::types::ShortString;
use lapin::{Acker, BasicProperties, Channel};
use promiscuous_core::traits::{Acknowledge, Disposition};
use promiscuous_core::BackendError;

use crate::connection::{bounded, deadline_in, Session, Shared};
use crate::error;
use crate::headers;
use crate::publisher;
use crate::topology;

/// Settles one delivery of an [`AmqpBroker`](crate::AmqpBroker) consumer.
///
/// Dropping it unsettled requeues the delivery (as closing its channel would).
pub(crate) struct AmqpAcker {
    pub(crate) shared: Arc<Shared>,
    /// The subscription queue the delivery came from.
    pub(crate) queue: String,
    /// The consumer's channel, kept open until the delivery is settled.
    pub(crate) channel: Channel,
    /// lapin's handle; `None` once settled.
    pub(crate) acker: Option<Acker>,
    /// What a copy needs: endpoint, body, properties and attempt count.
    pub(crate) endpoint: String,
    pub(crate) payload: Vec<u8>,
    pub(crate) properties: BasicProperties,
    pub(crate) attempt: u32,
}

impl fmt::Debug for AmqpAcker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AmqpAcker")
            .field("queue", &self.queue)
            .field("channel", &self.channel.id())
            .field("endpoint", &self.endpoint)
            .field("attempt", &self.attempt)
            .field("settled", &self.acker.is_none())
            .finish()
    }
}

/// Where a copy goes.
enum Divert<'a> {
    /// To `<queue>.retry.<delay_ms>`, attempt + 1.
    Retry { delay_ms: u32 },
    /// To the back of the subscription's own queue, attempt unchanged.
    Defer,
    /// To `<queue>.error`, with the reason.
    DeadLetter { reason: &'a str },
}

impl AmqpAcker {
    fn lost(&self, operation: &'static str) -> BackendError {
        error::temporary(
            operation,
            &self.queue,
            "the channel this delivery came on is closed (connection lost?); RabbitMQ redelivers the message",
        )
    }

    /// Acks or nacks with lapin; `Ok(false)` from lapin means the channel is gone.
    async fn settle(
        &mut self,
        operation: &'static str,
        requeue: Option<bool>,
    ) -> Result<(), BackendError> {
        let Some(acker) = self.acker.take() else {
            return Ok(());
        };
        if self.shared.is_closed() {
            return Err(self.lost(operation));
        }
        let settled = match requeue {
            None => bounded(acker.ack(BasicAckOptions::default())).await,
            Some(requeue) => {
                bounded(acker.nack(BasicNackOptions {
                    multiple: false,
                    requeue,
                }))
                .await
            }
        };
        match settled {
            Ok(true) => Ok(()),
            Ok(false) => Err(self.lost(operation)),
            Err(e) => Err(error::from_lapin(
                operation,
                &self.queue,
                "settling the delivery failed; RabbitMQ redelivers the message",
                e,
            )
            .temporary()),
        }
    }

    /// Declares the queue a copy goes to (renewing a retry queue's lease).
    async fn declare(
        &self,
        session: &Session,
        copy: &Divert<'_>,
        target: &str,
    ) -> Result<(), BackendError> {
        let queue = self.queue.as_str();
        let channel = || async {
            session.topology_channel().await.map_err(|e| {
                error::from_lapin("nack", queue, "cannot open a channel for declarations", e)
            })
        };
        let declared = match copy {
            // The subscription declared its own queue.
            Divert::Defer => return Ok(()),
            Divert::Retry { delay_ms } => {
                let channel = channel().await?;
                let declared =
                    bounded(topology::declare_retry_queue(&channel, queue, *delay_ms)).await;
                if declared.is_ok() {
                    self.shared.record_retry_queue(queue, *delay_ms);
                }
                declared
            }
            Divert::DeadLetter { .. } => {
                bounded(topology::declare_error_queue(&channel().await?, queue)).await
            }
        };
        declared.map_err(|e| {
            error::from_lapin("nack", queue, &format!("cannot declare queue {target}"), e)
        })
    }

    /// Declares the target queue and publishes the copy, confirmed.
    async fn publish_copy(&self, copy: &Divert<'_>) -> Result<(), BackendError> {
        let operation = "nack";
        let queue = self.queue.as_str();
        let session = self
            .shared
            .current()
            .ok_or_else(|| error::temporary(operation, queue, "not connected to RabbitMQ"))?;
        let (target, properties) = match copy {
            Divert::Retry { delay_ms } => (
                topology::retry_queue(queue, *delay_ms),
                headers::retried(
                    &self.properties,
                    &self.endpoint,
                    self.attempt.saturating_add(1),
                ),
            ),
            Divert::Defer => (
                queue.to_owned(),
                headers::retried(&self.properties, &self.endpoint, self.attempt),
            ),
            Divert::DeadLetter { reason } => (
                topology::error_queue(queue),
                headers::dead_lettered(&self.properties, &self.endpoint, self.attempt, reason),
            ),
        };
        let routing_key = topology::short(&target, "queue name")
            .map_err(|m| error::permanent(operation, queue, m))?;
        self.declare(&session, copy, &target).await?;
        let timeout = self.shared.options.publish_timeout;
        publisher::publish_confirmed(
            &session.publisher,
            ShortString::from(""),
            routing_key,
            &self.payload,
            properties,
            deadline_in(timeout),
        )
        .await
        .map_err(|f| f.into_error(operation, queue, &format!("copy to {target}"), timeout))
    }

    /// Publishes the copy then acks the original, or requeues the original.
    async fn divert(&mut self, copy: Divert<'_>) -> Result<(), BackendError> {
        if !self.channel.status().connected() {
            // The original comes back anyway: a copy would only duplicate it.
            self.acker = None;
            return Err(self.lost("nack"));
        }
        match self.publish_copy(&copy).await {
            Ok(()) => self.settle("nack", None).await,
            Err(e) => {
                let requeued = self.settle("nack", Some(true)).await;
                let outcome = match requeued {
                    Ok(()) => "the delivery was requeued instead",
                    Err(_) => "the delivery could not be requeued either; RabbitMQ redelivers it after the channel closes",
                };
                Err(BackendError {
                    message: format!("{}; {outcome}", e.message),
                    ..e
                })
            }
        }
    }
}

#[async_trait]
impl Acknowledge for AmqpAcker {
    async fn ack(mut self: Box<Self>) -> Result<(), BackendError> {
        self.settle("ack", None).await
    }

    async fn nack(mut self: Box<Self>, disposition: Disposition) -> Result<(), BackendError> {
        match disposition {
            Disposition::Requeue => self.settle("nack", Some(true)).await,
            Disposition::Retry { delay } => {
                self.divert(Divert::Retry {
                    delay_ms: topology::delay_ms(delay),
                })
                .await
            }
            Disposition::Defer => self.divert(Divert::Defer).await,
            Disposition::DeadLetter { reason } => {
                self.divert(Divert::DeadLetter { reason: &reason }).await
            }
        }
    }
}

impl Drop for AmqpAcker {
    fn drop(&mut self) {
        let Some(acker) = self.acker.take() else {
            return;
        };
        if !acker.usable() {
            return;
        }
        // Requeue now rather than when the channel closes. The channel clone
        // keeps the channel open until the nack is sent.
        let channel = self.channel.clone();
        self.shared.runtime.spawn(async move {
            let options = BasicNackOptions {
                multiple: false,
                requeue: true,
            };
            if let Err(e) = bounded(acker.nack(options)).await {
                tracing::debug!(error = %e, "requeueing a dropped delivery failed; RabbitMQ redelivers it when the channel closes");
            }
            drop(channel);
        });
    }
}
