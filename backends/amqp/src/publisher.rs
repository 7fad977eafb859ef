//! Confirmed publishing on the shared confirm-mode channel.
//!
//! Every publish goes through the one publisher channel of the session;
//! lapin numbers the messages and resolves each [`PublisherConfirm`] when
//! RabbitMQ acknowledges it, so concurrent publishes pipeline: nothing is
//! serialized behind a lock held across the confirm.
//!
//! [`PublisherConfirm`]: lapin::PublisherConfirm

use std::time::Duration;

use lapin::options::BasicPublishOptions;
use lapin::types::ShortString;
use lapin::{BasicProperties, Channel, Confirmation};
use promiscuous_core::BackendError;
use tokio::time::Instant;

use crate::connection::{deadline_in, Shared, Unavailable};
use crate::error;
use crate::headers;

/// Pause before trying again a publish that could not be sent, while the
/// supervisor notices the lost channel.
const RESEND_PAUSE: Duration = Duration::from_millis(20);

/// Why a confirmed publish failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The message could not be handed to the connection (channel or connection down).
    NotSent(lapin::Error),
    /// The message was sent, but the channel or connection failed before the confirm.
    Unconfirmed(lapin::Error),
    /// RabbitMQ refused the message (`basic.nack`).
    Nacked,
    /// The channel is not in confirm mode (cannot happen with our sessions).
    NotConfirmed,
    /// The deadline passed before the confirm.
    TimedOut,
}

impl Failure {
    /// The failure as a (temporary) [`BackendError`].
    pub(crate) fn into_error(
        self,
        operation: &'static str,
        target: &str,
        what: &str,
        timeout: Duration,
    ) -> BackendError {
        match self {
            Failure::NotSent(e) => error::from_lapin(
                operation,
                target,
                &format!("{what}: the message could not be sent"),
                e,
            )
            .temporary(),
            Failure::Unconfirmed(e) => error::from_lapin(
                operation,
                target,
                &format!("{what}: the connection failed before RabbitMQ confirmed the message (it may or may not have been taken)"),
                e,
            )
            .temporary(),
            Failure::Nacked => error::temporary(
                operation,
                target,
                format!("{what}: RabbitMQ refused the message (nack)"),
            ),
            Failure::NotConfirmed => error::temporary(
                operation,
                target,
                format!("{what}: the channel is not in confirm mode"),
            ),
            Failure::TimedOut => error::temporary(
                operation,
                target,
                format!("{what}: RabbitMQ did not confirm the message within {timeout:?}"),
            ),
        }
    }
}

/// Publishes one message and waits for RabbitMQ's confirm, until `deadline`.
pub(crate) async fn publish_confirmed(
    channel: &Channel,
    exchange: ShortString,
    routing_key: ShortString,
    payload: &[u8],
    properties: BasicProperties,
    deadline: Instant,
) -> Result<(), Failure> {
    let sending = channel.basic_publish(
        exchange,
        routing_key,
        BasicPublishOptions::default(),
        payload,
        properties,
    );
    let confirm = match tokio::time::timeout_at(deadline, sending).await {
        Err(_) => return Err(Failure::TimedOut),
        Ok(Err(e)) => return Err(Failure::NotSent(e)),
        Ok(Ok(confirm)) => confirm,
    };
    match tokio::time::timeout_at(deadline, confirm).await {
        Err(_) => Err(Failure::TimedOut),
        Ok(Err(e)) => Err(Failure::Unconfirmed(e)),
        Ok(Ok(Confirmation::Ack(_))) => Ok(()),
        Ok(Ok(Confirmation::Nack(_))) => Err(Failure::Nacked),
        Ok(Ok(Confirmation::NotRequested)) => Err(Failure::NotConfirmed),
    }
}

/// Publishes `payload` to the exchange with `routing_key`, waiting for a
/// reconnection and for the confirm up to the publish timeout.
pub(crate) async fn publish(
    shared: &Shared,
    endpoint: &str,
    routing_key: ShortString,
    payload: &[u8],
) -> Result<(), BackendError> {
    let url = shared.options.url.as_str();
    let timeout = shared.options.publish_timeout;
    let what = format!("publish to {endpoint}");
    let exchange = crate::topology::short(&shared.options.exchange, "exchange")
        .map_err(|m| error::permanent("publish", url, m))?;
    let deadline = deadline_in(timeout);
    loop {
        let session = match shared.session(Some(deadline)).await {
            Ok(session) => session,
            Err(Unavailable::Closed) => return Err(error::closed("publish", url)),
            Err(Unavailable::TimedOut) => {
                return Err(error::temporary(
                    "publish",
                    url,
                    format!("{what}: not connected to RabbitMQ, and the reconnection did not happen within the publish timeout of {timeout:?}; the message was not published"),
                ))
            }
        };
        let sent = publish_confirmed(
            &session.publisher,
            exchange.clone(),
            routing_key.clone(),
            payload,
            headers::published(),
            deadline,
        )
        .await;
        match sent {
            Ok(()) => return Ok(()),
            // Not sent: safe to send again once the supervisor has reconnected.
            Err(Failure::NotSent(e)) if Instant::now() + RESEND_PAUSE < deadline => {
                tracing::debug!(endpoint, error = %e, "publish not sent; waiting for the reconnection");
                tokio::time::sleep(RESEND_PAUSE).await;
            }
            Err(failure) => return Err(failure.into_error("publish", url, &what, timeout)),
        }
    }
}
