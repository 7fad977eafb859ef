//! Names and declarations: the exchange, subscription queues and their
//! bindings, the error queue and the per-delay retry queues.
//!
//! AMQP topic patterns separate words with dots, and endpoint segments never
//! contain one (`[A-Za-z0-9_-]`), so `app/model` maps to the routing key
//! `app.model` and the pattern `*/model` to the binding key `*.model`.

use std::collections::BTreeSet;
use std::time::Duration;

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, ExchangeKind};
use promiscuous_core::traits::Subscription;
use promiscuous_core::wire::{Endpoint, EndpointPattern};

/// How long a retry queue outlives its last use (its delay comes on top).
pub(crate) const RETRY_QUEUE_IDLE: Duration = Duration::from_secs(30);

/// An AMQP short string (queue, exchange, routing key), or why it cannot be one.
pub(crate) fn short(text: &str, what: &str) -> Result<ShortString, String> {
    ShortString::try_new(text)
        .map_err(|_| format!("{what} {text:?} is longer than the 255 bytes AMQP allows"))
}

/// The routing key of `endpoint` (`app/model` → `app.model`).
pub(crate) fn routing_key(endpoint: &str) -> Result<ShortString, String> {
    let endpoint = Endpoint::parse(endpoint)?;
    short(
        &format!("{}.{}", endpoint.app(), endpoint.model()),
        "routing key",
    )
}

/// The binding key of `pattern` (`*/user` → `*.user`, `crowdtap/*` → `crowdtap.*`).
pub(crate) fn binding_key(pattern: &EndpointPattern) -> Result<ShortString, String> {
    let key = format!(
        "{}.{}",
        pattern.app().unwrap_or("*"),
        pattern.model().unwrap_or("*")
    );
    short(&key, "binding key")
}

/// The endpoint a routing key came from (`app.model` → `app/model`).
pub(crate) fn endpoint_of(routing_key: &str) -> String {
    routing_key.replace('.', "/")
}

/// The dead-letter queue of `queue`.
pub(crate) fn error_queue(queue: &str) -> String {
    format!("{queue}.error")
}

/// The retry queue of `queue` for a delay of `delay_ms`.
pub(crate) fn retry_queue(queue: &str, delay_ms: u32) -> String {
    format!("{queue}.retry.{delay_ms}")
}

/// A delay in whole milliseconds, as RabbitMQ's `x-message-ttl` takes it
/// (at most `u32::MAX`, about 49 days).
pub(crate) fn delay_ms(delay: Duration) -> u32 {
    u32::try_from(delay.as_millis()).unwrap_or(u32::MAX)
}

/// Declares the durable topic exchange.
pub(crate) async fn declare_exchange(channel: &Channel, exchange: &str) -> lapin::Result<()> {
    channel
        .exchange_declare(
            ShortString::try_new(exchange).map_err(|_| too_long())?,
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
}

/// The error to return for a name checked too late (names are checked before).
fn too_long() -> lapin::Error {
    lapin::Error::from(std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        "name longer than 255 bytes",
    ))
}

fn durable() -> QueueDeclareOptions {
    QueueDeclareOptions::durable()
}

/// What a subscription declares, checked before talking to RabbitMQ.
#[derive(Debug, Clone)]
pub(crate) struct SubscriptionPlan {
    /// The queue.
    pub(crate) queue: ShortString,
    /// Its binding keys, without repeats.
    pub(crate) binding_keys: Vec<ShortString>,
}

impl SubscriptionPlan {
    /// Checks the subscription's names.
    pub(crate) fn new(subscription: &Subscription) -> Result<Self, String> {
        if subscription.queue.is_empty() {
            return Err("the subscription's queue name is empty".to_owned());
        }
        // The error and retry queues must fit too.
        short(
            &retry_queue(&subscription.queue, u32::MAX),
            "queue name (with its .retry.<ms> suffix)",
        )?;
        let queue = short(&subscription.queue, "queue name")?;
        let mut seen = BTreeSet::new();
        let mut binding_keys = Vec::new();
        for pattern in &subscription.bindings {
            let key = binding_key(pattern)?;
            if seen.insert(key.as_str().to_owned()) {
                binding_keys.push(key);
            }
        }
        Ok(Self {
            queue,
            binding_keys,
        })
    }

    /// Declares the durable queue and binds it to the exchange with every key.
    pub(crate) async fn declare(&self, channel: &Channel, exchange: &str) -> lapin::Result<()> {
        channel
            .queue_declare(self.queue.clone(), durable(), FieldTable::default())
            .await?;
        let exchange = ShortString::try_new(exchange).map_err(|_| too_long())?;
        for key in &self.binding_keys {
            channel
                .queue_bind(
                    self.queue.clone(),
                    exchange.clone(),
                    key.clone(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
        }
        Ok(())
    }
}

/// Declares the durable dead-letter queue `<queue>.error`.
pub(crate) async fn declare_error_queue(channel: &Channel, queue: &str) -> lapin::Result<()> {
    let name = ShortString::try_new(error_queue(queue)).map_err(|_| too_long())?;
    channel
        .queue_declare(name, durable(), FieldTable::default())
        .await
        .map(drop)
}

/// The arguments of the retry queue of `queue` for `delay_ms`: messages wait
/// `delay_ms`, then go back to `queue` through the default exchange; the
/// queue deletes itself once unused for the delay plus [`RETRY_QUEUE_IDLE`].
pub(crate) fn retry_queue_arguments(queue: &str, delay_ms: u32) -> FieldTable {
    let idle_ms = u64::try_from(RETRY_QUEUE_IDLE.as_millis()).unwrap_or(u64::MAX);
    let expires = u64::from(delay_ms).saturating_add(idle_ms);
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-message-ttl".into(),
        AMQPValue::LongLongInt(delay_ms.into()),
    );
    arguments.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString(LongString::from("")),
    );
    arguments.insert(
        "x-dead-letter-routing-key".into(),
        AMQPValue::LongString(LongString::from(queue)),
    );
    arguments.insert(
        "x-expires".into(),
        AMQPValue::LongLongInt(i64::try_from(expires).unwrap_or(i64::MAX)),
    );
    arguments
}

/// Declares (or renews) the durable retry queue of `queue` for `delay_ms`.
pub(crate) async fn declare_retry_queue(
    channel: &Channel,
    queue: &str,
    delay_ms: u32,
) -> lapin::Result<()> {
    let name = ShortString::try_new(retry_queue(queue, delay_ms)).map_err(|_| too_long())?;
    channel
        .queue_declare(name, durable(), retry_queue_arguments(queue, delay_ms))
        .await
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(text: &str) -> EndpointPattern {
        EndpointPattern::parse(text).unwrap()
    }

    #[test]
    fn endpoints_and_patterns_map_to_dotted_keys() {
        assert_eq!(routing_key("app/model").unwrap().as_str(), "app.model");
        assert_eq!(binding_key(&pattern("*/user")).unwrap().as_str(), "*.user");
        assert_eq!(
            binding_key(&pattern("crowdtap/*")).unwrap().as_str(),
            "crowdtap.*"
        );
        assert_eq!(binding_key(&pattern("*/*")).unwrap().as_str(), "*.*");
        assert_eq!(endpoint_of("crowdtap.user"), "crowdtap/user");
        assert!(routing_key("a.b/c").is_err());
        assert!(routing_key(&format!("a/{}", "m".repeat(300))).is_err());
    }

    #[test]
    fn derived_queue_names() {
        assert_eq!(error_queue("analytics"), "analytics.error");
        assert_eq!(retry_queue("analytics", 300), "analytics.retry.300");
        assert_eq!(delay_ms(Duration::from_millis(1500)), 1500);
        assert_eq!(delay_ms(Duration::from_secs(u64::MAX)), u32::MAX);
    }

    #[test]
    fn plans_dedupe_bindings_and_check_names() {
        let subscription = Subscription {
            queue: "q".into(),
            bindings: vec![pattern("*/m"), pattern("a/m"), pattern("*/m")],
            prefetch: 1,
        };
        let plan = SubscriptionPlan::new(&subscription).unwrap();
        let keys: Vec<&str> = plan.binding_keys.iter().map(|k| k.as_str()).collect();
        assert_eq!(keys, ["*.m", "a.m"]);
        let long = Subscription {
            queue: "q".repeat(250),
            ..subscription.clone()
        };
        assert!(SubscriptionPlan::new(&long).unwrap_err().contains("255"));
        let empty = Subscription {
            queue: String::new(),
            ..subscription
        };
        assert!(SubscriptionPlan::new(&empty).is_err());
    }

    #[test]
    fn retry_queues_flow_back_and_expire() {
        let arguments = retry_queue_arguments("q", 300);
        let get = |key: &str| arguments.inner().get(key).cloned();
        assert_eq!(get("x-message-ttl"), Some(AMQPValue::LongLongInt(300)));
        assert_eq!(
            get("x-dead-letter-routing-key"),
            Some(AMQPValue::LongString("q".into()))
        );
        assert_eq!(
            get("x-dead-letter-exchange"),
            Some(AMQPValue::LongString("".into()))
        );
        assert_eq!(get("x-expires"), Some(AMQPValue::LongLongInt(30_300)));
    }
}
