//! RabbitMQ broker for promiscuous, on [lapin].
//!
//! [`AmqpBroker`] implements [`Broker`]: publishing waits for RabbitMQ's
//! confirm, each subscription consumes one durable queue with manual
//! acknowledgements, failed messages are retried after a delay or parked in a
//! dead-letter queue, and a lost connection is re-established in the
//! background. The crate registers a [`BackendFactory`] for `amqp://` URLs
//! (and, through the core's fallback, `amqps://`).
//!
//! # URL
//!
//! `amqp://user:password@host:port/vhost?options` (the default vhost `/` is
//! written `%2f`). Besides lapin's own options (`heartbeat`, `frame_max`,
//! `channel_max`, `auth_mechanism`) the query may carry:
//!
//! - `exchange`: the topic exchange (default `promiscuous`);
//! - `publish_timeout_ms`: how long a publish waits for a reconnection and
//!   for the confirm (default 10000).
//!
//! These are removed before the URL reaches lapin, and `heartbeat=10` is added
//! when the URL sets no heartbeat. [`AmqpBroker::builder`] sets the same in
//! code. Errors and logs show the URL with its password replaced by `***`.
//!
//! # Topology
//!
//! - **One durable topic exchange**, `promiscuous` by default. A message for
//!   the endpoint `app/model` is published to it, persistent
//!   (`delivery_mode` 2, `content_type` `application/json`), with the routing
//!   key `app.model`: AMQP topic patterns separate words with dots, and
//!   endpoint segments never contain one.
//! - **One durable queue per subscription**, named [`Subscription::queue`]
//!   (by convention the subscriber app), bound to the exchange once per
//!   pattern with the same mapping: `*/user` binds `*.user`, `crowdtap/*`
//!   binds `crowdtap.*`. A message published while no queue is bound to its
//!   endpoint is dropped by RabbitMQ (the publish still succeeds).
//! - Each consumer has its own channel with `basic_qos(prefetch)` (per
//!   consumer) and manual acknowledgements.
//! - **Retry queues** `<queue>.retry.<delay_ms>`, declared on demand, one per
//!   delay value so a long delay never holds up a short one: they have
//!   `x-message-ttl` = the delay, `x-dead-letter-exchange` = `""` and
//!   `x-dead-letter-routing-key` = `<queue>`, so a message flows back to the
//!   main queue when its delay is over, and `x-expires` = the delay + 30 s, so
//!   unused retry queues go away.
//! - **The error queue** `<queue>.error` (durable) holds dead letters.
//!
//! Settling a delivery:
//!
//! | Call | What happens |
//! |------|--------------|
//! | `ack` | `basic.ack` |
//! | `nack(Requeue)` | `basic.nack` with requeue: delivered again at once |
//! | `nack(Retry { delay })` | a copy goes to `<queue>.retry.<delay_ms>` (confirmed), then the original is acked |
//! | `nack(Defer)` | a copy goes to the back of `<queue>` (confirmed), attempt unchanged, then the original is acked |
//! | `nack(DeadLetter { reason })` | a copy goes to `<queue>.error` (confirmed), then the original is acked |
//!
//! Copies go through the default exchange, so they carry their endpoint in
//! the [`HEADER_ENDPOINT`] header and their attempt count in
//! [`HEADER_ATTEMPT`] (a retried copy has the delivery's attempt + 1, a
//! deferred one the same attempt);
//! dead letters also carry [`HEADER_REASON`] and [`HEADER_ATTEMPTS`]. If the
//! copy cannot be published, the original is requeued instead and the nack
//! returns an error: a message is never lost. (If the copy was published but
//! acking the original fails, both come back: subscribers recognise the
//! duplicate.)
//!
//! On delivery, [`Delivery::endpoint`] is the endpoint header if present,
//! else the routing key with its dots turned back into `/`;
//! [`Delivery::attempt`] is the attempt header (0 if absent) plus 1 when
//! RabbitMQ flags the delivery as redelivered. (That flag is a boolean: a
//! message requeued several times counts one redelivery.)
//!
//! # Failure handling
//!
//! - **Publishing** goes through one channel in confirm mode, shared by all
//!   publishers; concurrent publishes pipeline. `publish` returns once
//!   RabbitMQ has confirmed the message. A `nack`, a channel or connection
//!   failure before the confirm, or no confirm within the publish timeout is a
//!   temporary error (the message may then reach RabbitMQ or not: publishing
//!   again may duplicate it, which subscribers recognise). While the broker is
//!   disconnected, `publish` waits for the reconnection up to the publish
//!   timeout and then fails with a temporary error: it never drops a message
//!   silently.
//! - **Connection loss**: a supervisor task notices it (it looks at the
//!   connection and publisher channel status every 100 ms and whenever lapin
//!   reports a connection event; a channel-level error such as a refused
//!   declaration is not a loss), marks the broker unhealthy, and reconnects after 2 s, doubling
//!   the pause after each failure up to 30 s. It re-opens the publisher
//!   channel in confirm mode, declares the exchange again, and marks the
//!   broker healthy.
//! - **Consumers resume by themselves**: when their stream ends or fails and
//!   the broker was not closed, `next()` returns one temporary error to report
//!   the loss, then waits for the reconnection, declares its queue and
//!   bindings again, sets the prefetch and consumes again. RabbitMQ redelivers
//!   the messages the lost channel had not acknowledged; settling a delivery
//!   of a lost channel fails with a temporary error (the message comes back
//!   anyway). `next()` is cancel safe.
//! - [`close`](Broker::close) closes the connection: consumers' `next()`
//!   returns `None`, later publishes and subscribes fail, `healthy()` is false.
//!
//! Every call to RabbitMQ is bounded (15 s for a declaration, an ack or
//! opening a channel; the publish timeout for a publish), so nothing hangs on
//! a dead connection. Connection problems are temporary errors; a bad URL, refused credentials
//! (403), an unknown vhost (530) or a queue declared elsewhere with other
//! arguments (406) are permanent.
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use promiscuous_amqp::AmqpBroker;
//! use promiscuous_core::traits::{Broker, Subscription};
//! use promiscuous_core::wire::EndpointPattern;
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let broker = AmqpBroker::builder("amqp://guest:guest@127.0.0.1:5672/%2f")
//!     .exchange("promiscuous")
//!     .publish_timeout(Duration::from_secs(5))
//!     .connect()
//!     .await?;
//! let mut consumer = broker
//!     .subscribe(&Subscription {
//!         queue: "analytics".into(),
//!         bindings: vec![EndpointPattern::parse("*/user")?],
//!         prefetch: 100,
//!     })
//!     .await?;
//! broker.publish("crowdtap/user", br#"{"format":1}"#).await?; // routing key crowdtap.user
//! if let Some(delivery) = consumer.next().await {
//!     let delivery = delivery?;
//!     assert_eq!(delivery.endpoint, "crowdtap/user");
//!     delivery.ack().await?;
//! }
//! broker.close().await?;
//! # Ok(())
//! # }
//! ```
//!
//! Tests get helpers to look inside RabbitMQ: [`AmqpBroker::dead_letters`],
//! [`AmqpBroker::take_dead_letters`] and [`AmqpBroker::delete_subscription`];
//! operators get a queue's depth from
//! [`Broker::queue_depth`].
//!
//! [`Subscription::queue`]: promiscuous_core::traits::Subscription::queue
//! [`Delivery::endpoint`]: promiscuous_core::traits::Delivery::endpoint
//! [`Delivery::attempt`]: promiscuous_core::traits::Delivery::attempt

use std::sync::Arc;

use futures::future::BoxFuture;
use promiscuous_core::backend::{BackendFactory, BrokerFactory};
use promiscuous_core::traits::Broker;
use promiscuous_core::BackendError;

mod acker;
mod broker;
mod connection;
mod consumer;
mod error;
mod headers;
mod inspect;
mod options;
mod publisher;
mod topology;

pub use broker::AmqpBroker;
pub use headers::{HEADER_ATTEMPT, HEADER_ATTEMPTS, HEADER_ENDPOINT, HEADER_REASON};
pub use options::{
    AmqpBrokerBuilder, DEFAULT_EXCHANGE, DEFAULT_HEARTBEAT_SECS, DEFAULT_PUBLISH_TIMEOUT,
};
pub use promiscuous_core::dead_letter::DeadLetter;

/// Builds an [`AmqpBroker`] for the backend registry.
fn amqp_broker(url: &str) -> BoxFuture<'static, Result<Arc<dyn Broker>, BackendError>> {
    let url = url.to_owned();
    Box::pin(async move { Ok(Arc::new(AmqpBroker::connect(&url).await?) as Arc<dyn Broker>) })
}

inventory::submit! {
    BackendFactory {
        scheme: "amqp",
        feature: "amqp",
        broker: Some(amqp_broker as BrokerFactory),
        clock: None,
        lock: None,
    }
}
