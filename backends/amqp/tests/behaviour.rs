//! RabbitMQ-specific behaviour of [`AmqpBroker`] beyond the conformance suite:
//! the topology (routing keys, retry and error queues), dead letters,
//! pipelined confirms and error messages. Needs a running RabbitMQ
//! (`amqp://guest:guest@127.0.0.1:5672/%2f`, or `PROMISCUOUS_AMQP_URL`).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use lapin::options::{
    BasicGetOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use promiscuous_amqp::{AmqpBroker, DeadLetter};
use promiscuous_core::testkit::{eventually, unique, PATIENCE, QUIET};
use promiscuous_core::traits::{Broker, Consumer, Delivery, Disposition, Subscription};
use promiscuous_core::wire::EndpointPattern;
use tokio::time::Instant;

const DEFAULT_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

fn url() -> String {
    std::env::var("PROMISCUOUS_AMQP_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

fn with_query(url: &str, query: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}{query}")
}

async fn connect() -> AmqpBroker {
    AmqpBroker::connect(&url()).await.unwrap_or_else(|e| {
        panic!("these tests need a running RabbitMQ (set PROMISCUOUS_AMQP_URL to use another): {e}")
    })
}

/// A plain lapin connection, to look at what the broker did.
async fn raw() -> Connection {
    Connection::connect(&url(), ConnectionProperties::default())
        .await
        .expect("raw lapin connection to RabbitMQ")
}

fn subscription(queue: &str, patterns: &[&str], prefetch: u16) -> Subscription {
    Subscription {
        queue: queue.to_owned(),
        bindings: patterns
            .iter()
            .map(|p| EndpointPattern::parse(p).expect("valid pattern"))
            .collect(),
        prefetch,
    }
}

async fn next(consumer: &mut dyn Consumer, what: &str) -> Delivery {
    match tokio::time::timeout(PATIENCE, consumer.next()).await {
        Ok(Some(Ok(delivery))) => delivery,
        Ok(other) => panic!("expected {what}, got {other:?}"),
        Err(_) => panic!("expected {what}, nothing came within {PATIENCE:?}"),
    }
}

async fn nothing(consumer: &mut dyn Consumer, why: &str) {
    if let Ok(got) = tokio::time::timeout(QUIET + QUIET, consumer.next()).await {
        panic!("{why}, yet next() returned {got:?}");
    }
}

/// Whether `queue` exists, by a passive declaration on a throwaway channel.
async fn queue_exists(connection: &Connection, queue: &str) -> bool {
    let channel = connection.create_channel().await.expect("channel");
    let passive = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    let exists = channel
        .queue_declare(queue.into(), passive, FieldTable::default())
        .await
        .is_ok();
    if exists {
        channel
            .close(200, "OK".into())
            .await
            .expect("close channel");
    }
    exists
}

/// Closes a raw connection. (lapin 4 reports an error when a dropped
/// channel's automatic close is still in flight; the connection closes anyway.)
/// A fresh endpoint and queue name for one test.
fn names() -> (String, String) {
    (format!("{}/{}", unique("app"), unique("user")), unique("q"))
}

/// Deletes the test's queues and closes its broker.
/// A broker, an endpoint and a queue of their own, and a consumer of the
/// queue bound to the endpoint with `prefetch`.
async fn subscribed(prefetch: u16) -> (AmqpBroker, String, String, Box<dyn Consumer>) {
    let broker = connect().await;
    let (endpoint, queue) = names();
    let consumer = broker
        .subscribe(&subscription(&queue, &[&endpoint], prefetch))
        .await
        .expect("subscribe");
    (broker, endpoint, queue, consumer)
}

async fn finish(broker: &AmqpBroker, queue: &str) {
    broker.delete_subscription(queue).await.expect("clean up");
    broker.close().await.expect("close");
}

async fn close_raw(raw: Connection) {
    let _ = raw.close(200, "OK".into()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn endpoints_route_with_dotted_keys_and_patterns() {
    let broker = connect().await;
    let (app, model) = (unique("a"), unique("user"));
    let endpoint = format!("{app}/{model}");
    let queue = unique("q");
    let mut consumer = broker
        .subscribe(&subscription(&queue, &[&format!("*/{model}")], 10))
        .await
        .expect("subscribe");

    // A raw queue bound with the exact routing key we expect.
    let raw = raw().await;
    let channel = raw.create_channel().await.expect("raw channel");
    let raw_queue = channel
        .queue_declare(
            "".into(),
            QueueDeclareOptions::exclusive().auto_delete(),
            FieldTable::default(),
        )
        .await
        .expect("raw queue");
    channel
        .queue_bind(
            raw_queue.name().clone(),
            "promiscuous".into(),
            format!("{app}.{model}").into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("raw binding");

    broker.publish(&endpoint, b"{}").await.expect("publish");
    broker
        .publish(&format!("{app}/{}", unique("post")), b"not for */user")
        .await
        .expect("publish elsewhere");

    let delivery = next(consumer.as_mut(), "the message routed by */user").await;
    assert_eq!(delivery.endpoint, endpoint);
    assert_eq!(delivery.payload, b"{}");
    assert_eq!(delivery.attempt, 0);
    delivery.ack().await.expect("ack");
    nothing(
        consumer.as_mut(),
        "the other endpoint does not match */user",
    )
    .await;

    let mut got = None;
    let deadline = Instant::now() + PATIENCE;
    while got.is_none() && Instant::now() < deadline {
        got = channel
            .basic_get(raw_queue.name().clone(), BasicGetOptions { no_ack: true })
            .await
            .expect("basic.get");
        if got.is_none() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let message = got
        .expect("the raw queue bound to app.model got the message")
        .delivery;
    assert_eq!(message.routing_key.as_str(), format!("{app}.{model}"));
    assert_eq!(message.exchange.as_str(), "promiscuous");
    assert_eq!(message.properties.delivery_mode(), &Some(2), "persistent");
    assert_eq!(
        message
            .properties
            .content_type()
            .as_ref()
            .map(|c| c.as_str()),
        Some("application/json")
    );

    drop(consumer);
    finish(&broker, &queue).await;
    close_raw(raw).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retry_waits_the_delay_and_counts_attempts() {
    let (broker, endpoint, queue, mut consumer) = subscribed(10).await;
    broker.publish(&endpoint, b"later").await.expect("publish");
    let delay = Duration::from_millis(300);

    let mut delivery = next(consumer.as_mut(), "the message").await;
    assert_eq!(delivery.attempt, 0);
    for attempt in 1..=2 {
        let nacked_at = Instant::now();
        delivery
            .nack(Disposition::Retry { delay })
            .await
            .expect("nack Retry");
        delivery = next(consumer.as_mut(), &format!("retry {attempt}")).await;
        let waited = nacked_at.elapsed();
        assert!(
            waited >= Duration::from_millis(250),
            "retry {attempt} came back after only {waited:?}"
        );
        assert_eq!(delivery.attempt, attempt, "attempt of retry {attempt}");
        assert_eq!(
            delivery.endpoint, endpoint,
            "a retried copy keeps its endpoint"
        );
        assert_eq!(delivery.payload, b"later");
    }
    delivery.ack().await.expect("ack");
    nothing(consumer.as_mut(), "the retried message was acknowledged").await;

    let retry_queue = format!("{queue}.retry.300");
    let raw = raw().await;
    assert!(
        queue_exists(&raw, &retry_queue).await,
        "{retry_queue} declared on demand"
    );
    assert_eq!(ready(&broker, &retry_queue).await, 0);
    drop(consumer);
    broker.delete_subscription(&queue).await.expect("clean up");
    for name in [queue.clone(), format!("{queue}.error"), retry_queue] {
        assert!(!queue_exists(&raw, &name).await, "{name} must be deleted");
    }
    broker.close().await.expect("close");
    close_raw(raw).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dead_letters_are_parked_with_reason_and_attempts() {
    let (broker, endpoint, queue, mut consumer) = subscribed(10).await;
    broker.publish(&endpoint, b"poison").await.expect("publish");

    let first = next(consumer.as_mut(), "the message").await;
    first.nack(Disposition::Requeue).await.expect("requeue");
    let second = next(consumer.as_mut(), "the requeued message").await;
    assert_eq!(second.attempt, 1);
    second
        .nack(Disposition::DeadLetter {
            reason: "malformed: expected a JSON object".into(),
        })
        .await
        .expect("dead-letter");
    nothing(consumer.as_mut(), "a dead letter is not redelivered").await;

    let expected = vec![DeadLetter {
        endpoint: endpoint.clone(),
        payload: b"poison".to_vec(),
        reason: "malformed: expected a JSON object".into(),
        attempts: 2,
    }];
    assert_eq!(
        broker.dead_letters(&queue).await.expect("dead letters"),
        expected
    );
    // Reading leaves them in place; the `.error` suffix is accepted.
    assert_eq!(
        broker
            .dead_letters(&format!("{queue}.error"))
            .await
            .expect("dead letters again"),
        expected
    );
    assert!(
        eventually(PATIENCE, || async {
            ready(&broker, &format!("{queue}.error")).await == 1
        })
        .await,
        "the dead letter must stay in {queue}.error after being read"
    );
    assert_eq!(
        broker.take_dead_letters(&queue).await.expect("take"),
        expected
    );
    assert!(broker
        .dead_letters(&queue)
        .await
        .expect("after take")
        .is_empty());
    assert!(broker
        .dead_letters(&unique("never-declared"))
        .await
        .expect("a missing error queue reads as empty")
        .is_empty());

    drop(consumer);
    finish(&broker, &queue).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn defer_moves_the_message_behind_the_others_without_counting_an_attempt() {
    let (broker, endpoint, queue, mut consumer) = subscribed(10).await;
    broker.publish(&endpoint, b"first").await.expect("publish");
    broker.publish(&endpoint, b"second").await.expect("publish");
    let first = next(consumer.as_mut(), "the first message").await;
    assert_eq!(first.payload, b"first");
    first.nack(Disposition::Defer).await.expect("defer");
    let second = next(consumer.as_mut(), "the second message").await;
    assert_eq!(
        second.payload, b"second",
        "the deferred message goes behind"
    );
    second.ack().await.expect("ack");
    let again = next(consumer.as_mut(), "the deferred message").await;
    assert_eq!(
        (
            again.payload.as_slice(),
            again.endpoint.as_str(),
            again.attempt
        ),
        (b"first".as_slice(), endpoint.as_str(), 0),
        "a deferred message keeps its endpoint and attempt"
    );
    again.ack().await.expect("ack");
    nothing(consumer.as_mut(), "both messages were acknowledged").await;

    drop(consumer);
    finish(&broker, &queue).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn messages_published_before_any_subscription_are_dropped() {
    let broker = connect().await;
    let endpoint = format!("{}/{}", unique("app"), unique("nobody"));
    let queue = unique("q");
    broker
        .publish(&endpoint, b"dropped")
        .await
        .expect("publishing to an unbound endpoint succeeds");
    let mut consumer = broker
        .subscribe(&subscription(&queue, &[&endpoint], 10))
        .await
        .expect("subscribe");
    assert_eq!(ready(&broker, &queue).await, 0);
    nothing(
        consumer.as_mut(),
        "the message came before the queue existed",
    )
    .await;
    broker.publish(&endpoint, b"kept").await.expect("publish");
    let delivery = next(consumer.as_mut(), "the message published after subscribing").await;
    assert_eq!(delivery.payload, b"kept");
    delivery.ack().await.expect("ack");

    drop(consumer);
    finish(&broker, &queue).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn concurrent_publishes_are_all_confirmed_and_delivered_once() {
    const TASKS: usize = 8;
    const PER_TASK: usize = 250;
    let broker = Arc::new(connect().await);
    let (endpoint, queue) = names();
    let mut consumer = broker
        .subscribe(&subscription(&queue, &[&endpoint], 200))
        .await
        .expect("subscribe");

    let started = Instant::now();
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let broker = broker.clone();
        let endpoint = endpoint.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..PER_TASK {
                broker
                    .publish(&endpoint, format!("{task}-{i}").as_bytes())
                    .await
                    .unwrap_or_else(|e| panic!("publish {task}-{i}: {e}"));
            }
        }));
    }
    for task in tasks {
        task.await.expect("publishing task");
    }
    let published_in = started.elapsed();

    let mut seen = HashSet::new();
    for n in 0..TASKS * PER_TASK {
        let delivery = next(consumer.as_mut(), &format!("delivery {n}")).await;
        let payload = String::from_utf8(delivery.payload.clone()).expect("utf-8");
        assert!(seen.insert(payload.clone()), "{payload} delivered twice");
        delivery.ack().await.expect("ack");
    }
    nothing(consumer.as_mut(), "every message was delivered").await;
    assert_eq!(seen.len(), TASKS * PER_TASK);
    // Reported, not asserted: speed is the benchmark's business.
    println!("2,000 confirmed publishes from {TASKS} tasks in {published_in:?}");

    drop(consumer);
    finish(&broker, &queue).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dropped_delivery_is_requeued() {
    let (broker, endpoint, queue, mut consumer) = subscribed(1).await;
    broker.publish(&endpoint, b"1").await.expect("publish");
    broker.publish(&endpoint, b"2").await.expect("publish");
    drop(next(consumer.as_mut(), "message 1").await);
    let again = next(consumer.as_mut(), "message 1 again").await;
    assert_eq!(
        (again.payload.as_slice(), again.attempt),
        (b"1".as_slice(), 1)
    );
    again.ack().await.expect("ack");
    let two = next(consumer.as_mut(), "message 2").await;
    assert_eq!(two.payload, b"2");
    two.ack().await.expect("ack");

    drop(consumer);
    finish(&broker, &queue).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_exchange_and_timeout_come_from_the_url_or_the_builder() {
    let exchange = unique("x");
    let from_url = AmqpBroker::connect(&with_query(
        &url(),
        &format!("exchange={exchange}&publish_timeout_ms=3000"),
    ))
    .await
    .expect("connect with options in the URL");
    assert_eq!(from_url.exchange(), exchange);
    assert_eq!(from_url.publish_timeout(), Duration::from_secs(3));
    let from_builder = AmqpBroker::builder(url())
        .exchange(exchange.clone())
        .publish_timeout(Duration::from_millis(2500))
        .connect()
        .await
        .expect("connect with the builder");
    assert_eq!(from_builder.exchange(), exchange);
    assert_eq!(from_builder.publish_timeout(), Duration::from_millis(2500));
    let default = connect().await;
    assert_eq!(default.exchange(), "promiscuous");
    assert_eq!(default.publish_timeout(), Duration::from_secs(10));

    let endpoint = format!("{}/{}", unique("app"), unique("user"));
    let (queue, other_queue) = (unique("q"), unique("q"));
    let mut consumer = from_builder
        .subscribe(&subscription(&queue, &[&endpoint], 10))
        .await
        .expect("subscribe on the custom exchange");
    let mut other = default
        .subscribe(&subscription(&other_queue, &[&endpoint], 10))
        .await
        .expect("subscribe on the default exchange");
    from_url
        .publish(&endpoint, b"custom")
        .await
        .expect("publish");
    let delivery = next(consumer.as_mut(), "the message on the custom exchange").await;
    assert_eq!(delivery.payload, b"custom");
    delivery.ack().await.expect("ack");
    nothing(other.as_mut(), "a queue on another exchange gets nothing").await;

    drop((consumer, other));
    from_builder
        .delete_subscription(&queue)
        .await
        .expect("clean up");
    default
        .delete_subscription(&other_queue)
        .await
        .expect("clean up");
    let raw = raw().await;
    let channel = raw.create_channel().await.expect("channel");
    channel
        .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
        .await
        .expect("delete the test exchange");
    channel
        .close(200, "OK".into())
        .await
        .expect("close channel");
    close_raw(raw).await;
    for broker in [from_url, from_builder, default] {
        broker.close().await.expect("close");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn errors_name_the_url_but_not_the_password() {
    for (url, password) in [
        ("amqp://guest:guest@127.0.0.1:1/%2f", ":guest@"),
        ("amqp://guest:s3cret-pw@127.0.0.1:1/%2f", "s3cret-pw"),
    ] {
        let err = AmqpBroker::connect(url)
            .await
            .expect_err("nothing listens on port 1");
        let text = err.to_string();
        assert!(
            err.is_temporary(),
            "a refused connection is temporary: {text}"
        );
        assert_eq!((err.backend, err.operation), ("amqp", "connect"));
        assert!(
            text.contains("127.0.0.1:1"),
            "the error names the URL: {text}"
        );
        assert!(
            !text.contains(password),
            "the error shows the password: {text}"
        );
        assert!(text.contains("guest:***@"), "{text}");
        let debug = format!("{:?}", AmqpBroker::builder(url));
        assert!(!debug.contains(password), "{debug}");
    }
    let broker = connect().await;
    let debug = format!("{broker:?}");
    let redacted = promiscuous_core::backend::redact_url(&url());
    assert!(
        debug.contains(&redacted),
        "Debug shows the redacted URL: {debug}"
    );
    assert!(!debug.contains(":guest@"), "{debug}");
    broker.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_names_are_refused_permanently() {
    let broker = connect().await;
    let err = broker
        .publish("not-an-endpoint", b"x")
        .await
        .expect_err("an endpoint must be app/model");
    assert!(!err.is_temporary(), "{err}");
    let err = broker
        .publish(&format!("a/{}", "m".repeat(300)), b"x")
        .await
        .expect_err("a routing key is at most 255 bytes");
    assert!(
        !err.is_temporary() && err.to_string().contains("255"),
        "{err}"
    );
    let err = broker
        .subscribe(&subscription("", &["a/b"], 1))
        .await
        .expect_err("a queue needs a name");
    assert!(!err.is_temporary(), "{err}");
    assert!(broker.healthy(), "refusals do not hurt the connection");
    broker.close().await.expect("close");
    assert!(!broker.healthy());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn settling_after_close_fails_and_consumers_end() {
    let (broker, endpoint, queue, mut consumer) = subscribed(10).await;
    broker.publish(&endpoint, b"x").await.expect("publish");
    let delivery = next(consumer.as_mut(), "the message").await;
    broker.close().await.expect("close");
    let err = delivery.ack().await.expect_err("ack after close");
    assert!(err.is_temporary(), "the message comes back: {err}");
    assert!(consumer.next().await.is_none());
    let cleaner = connect().await;
    cleaner.delete_subscription(&queue).await.expect("clean up");
    cleaner.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refused_credentials_are_a_permanent_error() {
    let wrong = url().replacen("guest:guest@", "guest:wr0ng-pw@", 1);
    if wrong == url() {
        return; // PROMISCUOUS_AMQP_URL has other credentials: nothing to falsify here.
    }
    let err = AmqpBroker::connect(&wrong)
        .await
        .expect_err("a wrong password is refused");
    let text = err.to_string();
    assert!(
        !err.is_temporary(),
        "refused credentials are permanent: {text}"
    );
    assert!(!text.contains("wr0ng-pw"), "{text}");
}

/// RabbitMQ closes a channel that looks up a missing queue (404); lapin
/// reports that on the connection's event stream, which must not be taken
/// for a lost connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn channel_errors_do_not_disturb_the_connection() {
    let (broker, endpoint, queue, mut consumer) = subscribed(10).await;
    for i in 0..20 {
        let missing = unique("missing");
        assert_eq!(
            broker
                .queue_depth(&missing)
                .await
                .expect("depth of a missing queue"),
            None
        );
        assert!(broker
            .dead_letters(&missing)
            .await
            .expect("dead letters")
            .is_empty());
        assert!(
            broker.healthy(),
            "a refused lookup made the broker unhealthy (round {i})"
        );
        broker
            .publish(&endpoint, i.to_string().as_bytes())
            .await
            .expect("publish");
        let delivery = next(consumer.as_mut(), &format!("message {i}")).await;
        assert_eq!(delivery.payload, i.to_string().as_bytes());
        delivery.ack().await.expect("ack");
    }
    drop(consumer);
    finish(&broker, &queue).await;
}

/// Messages ready in `queue` (0 for a missing one).
async fn ready(broker: &AmqpBroker, queue: &str) -> u64 {
    broker
        .queue_depth(queue)
        .await
        .expect("queue depth")
        .map_or(0, |depth| depth.ready)
}
