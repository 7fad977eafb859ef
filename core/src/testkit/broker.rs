//! Conformance suite for [`Broker`] implementations.
//!
//! Every function takes the broker under test, declares its own queues and
//! publishes to its own endpoints (named with [`unique`]), so the functions can
//! run in parallel against one shared server. Only
//! [`close_ends_consumers`] closes the broker: give it a dedicated instance.
//!
//! The suite adapts to [`Broker::capabilities`]: for a broker that does not
//! deliver (the Null broker) each delivery check becomes "publish succeeds and
//! the consumer gets nothing"; redelivery checks are skipped when
//! `redelivers_on_nack` is false, and the timing of retries when
//! `delayed_retry` is false.
//!
//! The suite relies on [`Consumer::next`] being cancel safe: a `next()` future
//! dropped before it completes (at a timeout) loses no delivery.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::{unique, PATIENCE, QUIET};
use crate::dead_letter::{DeadLetter, Selection};
use crate::traits::{Broker, Consumer, Delivery, Disposition, Subscription};
use crate::wire::EndpointPattern;

/// A subscription to `queue` binding `patterns` (which must parse).
fn subscription(queue: &str, patterns: &[&str], prefetch: u16) -> Subscription {
    Subscription {
        queue: queue.to_owned(),
        bindings: patterns
            .iter()
            .map(|p| {
                EndpointPattern::parse(p)
                    .unwrap_or_else(|e| panic!("testkit built a bad pattern: {e}"))
            })
            .collect(),
        prefetch,
    }
}

async fn subscribe(broker: &dyn Broker, subscription: &Subscription) -> Box<dyn Consumer> {
    match tokio::time::timeout(PATIENCE, broker.subscribe(subscription)).await {
        Ok(Ok(consumer)) => consumer,
        Ok(Err(e)) => panic!(
            "{}: subscribe to queue {} failed: {e}",
            broker.name(),
            subscription.queue
        ),
        Err(_) => panic!(
            "{}: subscribe to queue {} did not return within {PATIENCE:?}",
            broker.name(),
            subscription.queue
        ),
    }
}

async fn publish(broker: &dyn Broker, endpoint: &str, payload: &[u8]) {
    match tokio::time::timeout(PATIENCE, broker.publish(endpoint, payload)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("{}: publish to {endpoint} failed: {e}", broker.name()),
        Err(_) => panic!(
            "{}: publish to {endpoint} was not confirmed within {PATIENCE:?}",
            broker.name()
        ),
    }
}

/// The next delivery, which must come within [`PATIENCE`].
async fn next_delivery(consumer: &mut dyn Consumer, what: &str) -> Delivery {
    match tokio::time::timeout(PATIENCE, consumer.next()).await {
        Ok(Some(Ok(delivery))) => delivery,
        Ok(Some(Err(e))) => panic!("expected {what}, the consumer returned an error: {e}"),
        Ok(None) => panic!("expected {what}, the consumer ended"),
        Err(_) => panic!("expected {what}, nothing was delivered within {PATIENCE:?}"),
    }
}

/// Checks that nothing is delivered during `window`.
async fn assert_nothing(consumer: &mut dyn Consumer, window: Duration, why: &str) {
    match tokio::time::timeout(window, consumer.next()).await {
        Err(_) => {}
        Ok(Some(Ok(delivery))) => panic!(
            "{why}, yet {} was delivered (payload {:?}, attempt {})",
            delivery.endpoint,
            String::from_utf8_lossy(&delivery.payload),
            delivery.attempt
        ),
        Ok(Some(Err(e))) => panic!("{why}; the consumer returned an error instead: {e}"),
        Ok(None) => panic!("{why}; the consumer ended instead, though the broker is open"),
    }
}

async fn ack(delivery: Delivery) {
    let what = format!("ack of {}", delivery.endpoint);
    match tokio::time::timeout(PATIENCE, delivery.ack()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("{what} failed: {e}"),
        Err(_) => panic!("{what} did not return within {PATIENCE:?}"),
    }
}

async fn nack(delivery: Delivery, disposition: Disposition) {
    let what = format!("nack {disposition:?} of {}", delivery.endpoint);
    match tokio::time::timeout(PATIENCE, delivery.nack(disposition)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("{what} failed: {e}"),
        Err(_) => panic!("{what} did not return within {PATIENCE:?}"),
    }
}

/// Receives `count` deliveries, acknowledging each, then checks nothing more
/// comes during [`QUIET`]; returns `(endpoint, payload)` pairs in delivery order.
async fn receive_exactly(
    consumer: &mut dyn Consumer,
    count: usize,
    what: &str,
) -> Vec<(String, String)> {
    let mut received = Vec::with_capacity(count);
    for i in 0..count {
        let delivery =
            next_delivery(consumer, &format!("delivery {} of {count} ({what})", i + 1)).await;
        received.push((
            delivery.endpoint.clone(),
            String::from_utf8_lossy(&delivery.payload).into_owned(),
        ));
        ack(delivery).await;
    }
    assert_nothing(
        consumer,
        QUIET,
        &format!("{what}: expected exactly {count} deliveries, received {received:?}"),
    )
    .await;
    received
}

fn delivers(broker: &dyn Broker) -> bool {
    broker.capabilities().delivers
}

fn redelivers(broker: &dyn Broker) -> bool {
    let caps = broker.capabilities();
    caps.delivers && caps.redelivers_on_nack
}

/// The broker has a name and is healthy once built.
pub async fn reports_name_and_health(broker: &dyn Broker) {
    assert!(!broker.name().is_empty(), "Broker::name must not be empty");
    assert!(
        broker.healthy(),
        "{}: healthy() must be true for an open broker",
        broker.name()
    );
}

/// For a broker whose capabilities say it does not deliver: publishing succeeds
/// and a consumer of a queue bound to the endpoint gets nothing. Does nothing
/// for a delivering broker.
pub async fn accepts_without_delivering(broker: &dyn Broker) {
    if delivers(broker) {
        return;
    }
    let endpoint = format!("{}/{}", unique("app"), unique("model"));
    let mut consumer = subscribe(broker, &subscription(&unique("q"), &[&endpoint], 10)).await;
    publish(broker, &endpoint, b"pretend").await;
    assert_nothing(
        consumer.as_mut(),
        QUIET,
        &format!("{} does not deliver (capabilities)", broker.name()),
    )
    .await;
}

/// A published message reaches a bound queue's consumer with its payload and
/// endpoint intact and attempt 0.
pub async fn publish_then_consume(broker: &dyn Broker) {
    if !delivers(broker) {
        return accepts_without_delivering(broker).await;
    }
    let endpoint = format!("{}/{}", unique("app"), unique("user"));
    let mut consumer = subscribe(broker, &subscription(&unique("q"), &[&endpoint], 10)).await;
    let payload: Vec<u8> = [b"{\"json\":\"\xc3\xa9\"} ".as_slice(), &[0, 1, 255]].concat();
    publish(broker, &endpoint, &payload).await;
    let delivery = next_delivery(consumer.as_mut(), "the published message").await;
    assert_eq!(
        delivery.endpoint, endpoint,
        "delivery endpoint differs from the published one"
    );
    assert_eq!(
        delivery.payload, payload,
        "delivery payload differs from the published bytes"
    );
    assert_eq!(delivery.attempt, 0, "a first delivery must have attempt 0");
    ack(delivery).await;
    assert_nothing(consumer.as_mut(), QUIET, "one message was published").await;
}

/// Queues get exactly the messages whose endpoint matches one of their
/// bindings: `*/user` gets `a/user` and `b/user` but not `a/post`; `a/*` gets
/// `a/user` and `a/post`; `a/user` only `a/user`.
pub async fn routes_by_pattern(broker: &dyn Broker) {
    if !delivers(broker) {
        return accepts_without_delivering(broker).await;
    }
    let (a, b) = (unique("a"), unique("b"));
    let (user, post) = (unique("user"), unique("post"));
    let a_user = format!("{a}/{user}");
    let b_user = format!("{b}/{user}");
    let a_post = format!("{a}/{post}");
    let any_app = format!("*/{user}");
    let any_model = format!("{a}/*");
    let mut by_model = subscribe(broker, &subscription(&unique("q"), &[&any_app], 10)).await;
    let mut by_app = subscribe(broker, &subscription(&unique("q"), &[&any_model], 10)).await;
    let mut exact = subscribe(broker, &subscription(&unique("q"), &[&a_user], 10)).await;
    for endpoint in [&a_user, &b_user, &a_post] {
        publish(broker, endpoint, endpoint.as_bytes()).await;
    }
    let endpoints = |received: Vec<(String, String)>| {
        let mut endpoints: Vec<String> = received.into_iter().map(|(e, _)| e).collect();
        endpoints.sort();
        endpoints
    };
    let mut expected = vec![a_user.clone(), b_user.clone()];
    expected.sort();
    assert_eq!(
        endpoints(receive_exactly(by_model.as_mut(), 2, &any_app).await),
        expected,
        "queue bound to {any_app} got the wrong messages"
    );
    let mut expected = vec![a_user.clone(), a_post.clone()];
    expected.sort();
    assert_eq!(
        endpoints(receive_exactly(by_app.as_mut(), 2, &any_model).await),
        expected,
        "queue bound to {any_model} got the wrong messages"
    );
    assert_eq!(
        endpoints(receive_exactly(exact.as_mut(), 1, &a_user).await),
        vec![a_user.clone()],
        "queue bound to {a_user} got the wrong messages"
    );
}

/// Two subscriptions (two queues) bound to the same endpoint each get a copy.
pub async fn every_subscription_gets_a_copy(broker: &dyn Broker) {
    if !delivers(broker) {
        return accepts_without_delivering(broker).await;
    }
    let endpoint = format!("{}/{}", unique("app"), unique("user"));
    let mut first = subscribe(broker, &subscription(&unique("q"), &[&endpoint], 10)).await;
    let mut second = subscribe(broker, &subscription(&unique("q"), &[&endpoint], 10)).await;
    publish(broker, &endpoint, b"copy").await;
    let expected = vec![(endpoint.clone(), "copy".to_owned())];
    assert_eq!(
        receive_exactly(first.as_mut(), 1, "first queue").await,
        expected
    );
    assert_eq!(
        receive_exactly(second.as_mut(), 1, "second queue").await,
        expected
    );
}

/// Publishing to an endpoint no queue is bound to succeeds, and the message is
/// discarded: a queue bound afterwards does not get it.
pub async fn unbound_endpoint_drops_silently(broker: &dyn Broker) {
    let endpoint = format!("{}/{}", unique("app"), unique("nobody"));
    publish(broker, &endpoint, b"dropped").await;
    if !delivers(broker) {
        return accepts_without_delivering(broker).await;
    }
    let mut consumer = subscribe(broker, &subscription(&unique("q"), &[&endpoint], 10)).await;
    publish(broker, &endpoint, b"kept").await;
    assert_eq!(
        receive_exactly(consumer.as_mut(), 1, "queue bound after the first publish").await,
        vec![(endpoint, "kept".to_owned())],
        "a message published before any queue was bound must be discarded"
    );
}

/// An acknowledged delivery is gone: the next delivery is the next message and
/// the acknowledged one never comes back.
pub async fn ack_removes(broker: &dyn Broker) {
    if !delivers(broker) {
        return accepts_without_delivering(broker).await;
    }
    let endpoint = format!("{}/{}", unique("app"), unique("user"));
    let mut consumer = subscribe(broker, &subscription(&unique("q"), &[&endpoint], 10)).await;
    publish(broker, &endpoint, b"one").await;
    publish(broker, &endpoint, b"two").await;
    let one = next_delivery(consumer.as_mut(), "message one").await;
    assert_eq!(
        one.payload, b"one",
        "messages of one publisher come in order"
    );
    ack(one).await;
    let two = next_delivery(consumer.as_mut(), "message two").await;
    assert_eq!(
        two.payload, b"two",
        "an acknowledged message was delivered again"
    );
    ack(two).await;
    assert_nothing(consumer.as_mut(), QUIET, "both messages were acknowledged").await;
}

/// `nack(Requeue)` delivers the message again, with its attempt increased by one.
pub async fn nack_requeue_redelivers(broker: &dyn Broker) {
    if !delivers(broker) {
        return accepts_without_delivering(broker).await;
    }
    let endpoint = format!("{}/{}", unique("app"), unique("user"));
    let mut consumer = subscribe(broker, &subscription(&unique("q"), &[&endpoint], 10)).await;
    publish(broker, &endpoint, b"again").await;
    let first = next_delivery(consumer.as_mut(), "the message").await;
    assert_eq!(first.attempt, 0, "a first delivery must have attempt 0");
    nack(first, Disposition::Requeue).await;
    if !redelivers(broker) {
        return;
    }
    let second = next_delivery(consumer.as_mut(), "the requeued message").await;
    assert_eq!(
        second.payload, b"again",
        "the requeued message's payload changed"
    );
    assert_eq!(
        second.endpoint, endpoint,
        "the requeued message's endpoint changed"
    );
    assert_eq!(second.attempt, 1, "a requeued delivery must have attempt 1");
    ack(second).await;
    assert_nothing(
        consumer.as_mut(),
        QUIET,
        "the requeued message was acknowledged",
    )
    .await;
}

/// `nack(Retry { delay })` delivers the message again, with its attempt
/// increased by one, about `delay` later (not before 3/4 of it) when the
/// broker has `delayed_retry`.
pub async fn nack_retry_redelivers_after_delay(broker: &dyn Broker) {
    if !delivers(broker) {
        return accepts_without_delivering(broker).await;
    }
    let delay = Duration::from_millis(400);
    let endpoint = format!("{}/{}", unique("app"), unique("user"));
    let mut consumer = subscribe(broker, &subscription(&unique("q"), &[&endpoint], 10)).await;
    publish(broker, &endpoint, b"later").await;
    let first = next_delivery(consumer.as_mut(), "the message").await;
    let nacked_at = tokio::time::Instant::now();
    nack(first, Disposition::Retry { delay }).await;
    if !redelivers(broker) {
        return;
    }
    let second = match tokio::time::timeout(delay + PATIENCE, consumer.next()).await {
        Ok(Some(Ok(delivery))) => delivery,
        Ok(Some(Err(e))) => panic!("expected the retried message, got an error: {e}"),
        Ok(None) => panic!("expected the retried message, the consumer ended"),
        Err(_) => panic!(
            "the retried message did not come back within {:?}",
            delay + PATIENCE
        ),
    };
    let waited = nacked_at.elapsed();
    assert_eq!(
        second.payload, b"later",
        "the retried message's payload changed"
    );
    assert_eq!(second.attempt, 1, "a retried delivery must have attempt 1");
    if broker.capabilities().delayed_retry {
        assert!(
            waited >= delay * 3 / 4,
            "Retry {{ delay: {delay:?} }} redelivered after only {waited:?}"
        );
    }
    ack(second).await;
    assert_nothing(
        consumer.as_mut(),
        QUIET,
        "the retried message was acknowledged",
    )
    .await;
}

/// `nack(DeadLetter)` does not deliver the message again; later messages still
/// come. (Where the parked message can be inspected is broker specific.)
pub async fn nack_dead_letter_does_not_redeliver(broker: &dyn Broker) {
    if !delivers(broker) {
        return accepts_without_delivering(broker).await;
    }
    let endpoint = format!("{}/{}", unique("app"), unique("user"));
    let mut consumer = subscribe(broker, &subscription(&unique("q"), &[&endpoint], 10)).await;
    publish(broker, &endpoint, b"poison").await;
    let poison = next_delivery(consumer.as_mut(), "the message").await;
    nack(
        poison,
        Disposition::DeadLetter {
            reason: "testkit: dead-lettered on purpose".to_owned(),
        },
    )
    .await;
    assert_nothing(consumer.as_mut(), QUIET, "the message was dead-lettered").await;
    publish(broker, &endpoint, b"healthy").await;
    assert_eq!(
        receive_exactly(consumer.as_mut(), 1, "after a dead-letter").await,
        vec![(endpoint, "healthy".to_owned())],
        "only the message published after the dead-letter must come"
    );
}

/// Dead letters are listed with their endpoint, reason and attempts, in
/// order; a purge deletes the selected ones, a replay delivers them again to
/// the queue's consumer, and the others stay parked, in order.
pub async fn dead_letters_are_listed_replayed_and_purged(broker: &dyn Broker) {
    let Some(store) = broker.dead_letter_store() else {
        assert!(
            !delivers(broker),
            "{}: a broker that delivers, and so dead-letters, must offer its dead letters (Broker::dead_letter_store)",
            broker.name()
        );
        return;
    };
    let endpoint = format!("{}/{}", unique("app"), unique("user"));
    let queue = unique("q");
    let mut consumer = subscribe(broker, &subscription(&queue, &[&endpoint], 10)).await;
    for body in ["one", "two", "three"] {
        publish(broker, &endpoint, body.as_bytes()).await;
        let delivery = next_delivery(consumer.as_mut(), body).await;
        nack(
            delivery,
            Disposition::DeadLetter {
                reason: format!("testkit: {body} parked"),
            },
        )
        .await;
    }
    let bodies = |letters: &[DeadLetter]| -> Vec<String> {
        letters
            .iter()
            .map(|l| String::from_utf8_lossy(&l.payload).into_owned())
            .collect()
    };
    let parked = store.list(&queue).await.expect("list");
    assert_eq!(bodies(&parked), ["one", "two", "three"], "oldest first");
    assert!(parked.iter().all(|l| l.endpoint == endpoint), "{parked:?}");
    assert_eq!(parked[1].reason, "testkit: two parked");
    assert_eq!(parked[1].attempts, 1);
    assert_eq!(
        bodies(&store.list(&queue).await.expect("list again")),
        ["one", "two", "three"],
        "listing leaves them in place"
    );

    let two = Selection::Ids(vec![parked[1].id()]);
    assert_eq!(store.purge(&queue, &two).await.expect("purge"), 1);
    assert_eq!(bodies(&store.list(&queue).await.unwrap()), ["one", "three"]);

    let three = Selection::Ids(vec![parked[2].id()]);
    assert_eq!(store.replay(&queue, &three).await.expect("replay"), 1);
    assert_eq!(
        receive_exactly(consumer.as_mut(), 1, "the replayed dead letter").await,
        vec![(endpoint.clone(), "three".to_owned())]
    );
    assert_eq!(bodies(&store.list(&queue).await.unwrap()), ["one"]);

    assert_eq!(store.replay(&queue, &Selection::All).await.unwrap(), 1);
    assert_eq!(
        receive_exactly(consumer.as_mut(), 1, "the last dead letter, replayed").await,
        vec![(endpoint, "one".to_owned())]
    );
    assert!(store.list(&queue).await.unwrap().is_empty());
    assert_eq!(store.purge(&queue, &Selection::All).await.unwrap(), 0);
}

/// With `prefetch` N and N + 1 messages queued, the consumer gets N deliveries;
/// its next `next()` does not return until one of them is acknowledged.
pub async fn prefetch_limits_unacknowledged(broker: &dyn Broker) {
    if !delivers(broker) {
        return accepts_without_delivering(broker).await;
    }
    const PREFETCH: u16 = 3;
    let endpoint = format!("{}/{}", unique("app"), unique("user"));
    let mut consumer = subscribe(broker, &subscription(&unique("q"), &[&endpoint], PREFETCH)).await;
    for i in 0..=PREFETCH {
        publish(broker, &endpoint, i.to_string().as_bytes()).await;
    }
    let mut held = Vec::new();
    for i in 0..PREFETCH {
        let delivery =
            next_delivery(consumer.as_mut(), &format!("delivery {i} within prefetch")).await;
        assert_eq!(
            delivery.payload,
            i.to_string().as_bytes(),
            "deliveries out of order"
        );
        held.push(delivery);
    }
    {
        let mut pending = consumer.next();
        match tokio::time::timeout(QUIET, &mut pending).await {
            Err(_) => {}
            Ok(Some(Ok(d))) => panic!(
                "prefetch {PREFETCH}: delivery {:?} came while {PREFETCH} were unacknowledged",
                String::from_utf8_lossy(&d.payload)
            ),
            Ok(other) => panic!("prefetch {PREFETCH}: next() returned {other:?} while waiting"),
        }
        let first = held.remove(0);
        ack(first).await;
        match tokio::time::timeout(PATIENCE, pending).await {
            Ok(Some(Ok(d))) => {
                assert_eq!(
                    d.payload,
                    PREFETCH.to_string().as_bytes(),
                    "the delivery after an ack must be the last message"
                );
                held.push(d);
            }
            Ok(other) => panic!("after an ack, next() returned {other:?}"),
            Err(_) => panic!("after an ack freed prefetch room, nothing came within {PATIENCE:?}"),
        }
    }
    for delivery in held {
        ack(delivery).await;
    }
    assert_nothing(consumer.as_mut(), QUIET, "every message was acknowledged").await;
}

/// 100 messages from one publisher are delivered in publish order.
pub async fn preserves_publish_order(broker: &dyn Broker) {
    if !delivers(broker) {
        return accepts_without_delivering(broker).await;
    }
    const COUNT: usize = 100;
    let endpoint = format!("{}/{}", unique("app"), unique("user"));
    let mut consumer = subscribe(broker, &subscription(&unique("q"), &[&endpoint], 10)).await;
    for i in 0..COUNT {
        publish(broker, &endpoint, i.to_string().as_bytes()).await;
    }
    let received: Vec<String> = receive_exactly(consumer.as_mut(), COUNT, "ordered messages")
        .await
        .into_iter()
        .map(|(_, payload)| payload)
        .collect();
    let expected: Vec<String> = (0..COUNT).map(|i| i.to_string()).collect();
    assert_eq!(
        received, expected,
        "messages of one publisher were reordered"
    );
}

/// 100 publishers publishing 100 messages each, all at once: every one of
/// the 10,000 messages is delivered (at least once), none is lost.
pub async fn concurrent_publishers_lose_nothing(broker: &dyn Broker) {
    if !delivers(broker) {
        return accepts_without_delivering(broker).await;
    }
    const PUBLISHERS: usize = 100;
    const EACH: usize = 100;
    let endpoint = format!("{}/{}", unique("app"), unique("user"));
    let mut consumer = subscribe(broker, &subscription(&unique("q"), &[&endpoint], 1000)).await;
    let publishers = (0..PUBLISHERS).map(|publisher| {
        let endpoint = endpoint.clone();
        async move {
            for i in 0..EACH {
                publish(broker, &endpoint, format!("{publisher}-{i}").as_bytes()).await;
            }
        }
    });
    let consume = async {
        let mut seen = std::collections::HashSet::new();
        while seen.len() < PUBLISHERS * EACH {
            let delivery = next_delivery(consumer.as_mut(), "one of 10,000 messages").await;
            seen.insert(delivery.payload.clone());
            ack(delivery).await;
        }
        seen.len()
    };
    let (_, received) = futures::join!(futures::future::join_all(publishers), consume);
    assert_eq!(
        received,
        PUBLISHERS * EACH,
        "{}: messages published at once were lost",
        broker.name()
    );
}

/// A delivery still unacknowledged when its consumer goes away (a worker
/// that crashed) is delivered again to the next consumer of the queue.
pub async fn unacknowledged_delivery_is_redelivered(broker: &dyn Broker) {
    if !delivers(broker) || !redelivers(broker) {
        return;
    }
    let endpoint = format!("{}/{}", unique("app"), unique("user"));
    let subscription = subscription(&unique("q"), &[&endpoint], 10);
    let mut consumer = subscribe(broker, &subscription).await;
    publish(broker, &endpoint, b"unsettled").await;
    let delivery = next_delivery(consumer.as_mut(), "the message").await;
    drop(delivery);
    drop(consumer);
    let mut again = subscribe(broker, &subscription).await;
    let redelivered = next_delivery(again.as_mut(), "the unacknowledged message").await;
    assert_eq!(
        redelivered.payload,
        b"unsettled",
        "{}: an unacknowledged message must come back",
        broker.name()
    );
    ack(redelivered).await;
}

/// Declaring is idempotent: subscribing twice with the same subscription, whose
/// bindings repeat and overlap (`*/m`, `a/m`, `*/m`), leaves one queue that
/// gets one copy of each message. Both consumers consume that queue, so a
/// message published once is delivered exactly once in total.
pub async fn subscribe_is_idempotent(broker: &dyn Broker) {
    if !delivers(broker) {
        return accepts_without_delivering(broker).await;
    }
    let (app, model) = (unique("app"), unique("user"));
    let endpoint = format!("{app}/{model}");
    let any_app = format!("*/{model}");
    let sub = subscription(&unique("q"), &[&any_app, &endpoint, &any_app], 10);
    let mut first = subscribe(broker, &sub).await;
    let mut second = subscribe(broker, &sub).await;
    publish(broker, &endpoint, b"once").await;
    let (which, delivery) = tokio::select! {
        d = tokio::time::timeout(PATIENCE, first.next()) => (1, d),
        d = tokio::time::timeout(PATIENCE, second.next()) => (2, d),
    };
    let delivery = match delivery {
        Ok(Some(Ok(delivery))) => delivery,
        Ok(other) => panic!("expected the message on either consumer, got {other:?}"),
        Err(_) => panic!("the message reached neither consumer within {PATIENCE:?}"),
    };
    assert_eq!(delivery.payload, b"once");
    ack(delivery).await;
    let why = format!(
        "one message was published to queue {} (received by consumer {which})",
        sub.queue
    );
    tokio::join!(
        assert_nothing(first.as_mut(), QUIET, &why),
        assert_nothing(second.as_mut(), QUIET, &why)
    );
}

/// Closing ends consumers: a consumer waiting in `next()` and later calls get
/// `None`. Closing again succeeds; afterwards the broker is not healthy and
/// publish and subscribe fail. Closes `broker`: give it a dedicated instance.
pub async fn close_ends_consumers(broker: &dyn Broker) {
    let endpoint = format!("{}/{}", unique("app"), unique("user"));
    let sub = subscription(&unique("q"), &[&endpoint], 10);
    let mut waiting = subscribe(broker, &sub).await;
    let mut idle = subscribe(broker, &subscription(&unique("q"), &[&endpoint], 10)).await;
    let waiter = tokio::spawn(async move {
        let result = waiting.next().await;
        (result.map(|r| r.map(|d| d.endpoint)), waiting)
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    match tokio::time::timeout(PATIENCE, broker.close()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("{}: close failed: {e}", broker.name()),
        Err(_) => panic!(
            "{}: close did not return within {PATIENCE:?}",
            broker.name()
        ),
    }
    let mut waiting = match tokio::time::timeout(PATIENCE, waiter).await {
        Ok(Ok((None, consumer))) => consumer,
        Ok(Ok((Some(other), _))) => {
            panic!("a consumer waiting when the broker closed must get None, got {other:?}")
        }
        Ok(Err(e)) => panic!("the waiting consumer's task failed: {e}"),
        Err(_) => panic!("a consumer waiting in next() was not ended by close within {PATIENCE:?}"),
    };
    for (name, consumer) in [("waiting", &mut waiting), ("idle", &mut idle)] {
        match tokio::time::timeout(PATIENCE, consumer.next()).await {
            Ok(None) => {}
            Ok(Some(other)) => panic!("the {name} consumer of a closed broker returned {other:?}"),
            Err(_) => panic!("the {name} consumer of a closed broker kept waiting"),
        }
    }
    match tokio::time::timeout(PATIENCE, broker.close()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("{}: closing twice must succeed: {e}", broker.name()),
        Err(_) => panic!("{}: the second close hung", broker.name()),
    }
    assert!(
        !broker.healthy(),
        "{}: a closed broker must not be healthy",
        broker.name()
    );
    assert!(
        broker.publish(&endpoint, b"late").await.is_err(),
        "{}: publish after close must fail, not drop the message",
        broker.name()
    );
    assert!(
        broker.subscribe(&sub).await.is_err(),
        "{}: subscribe after close must fail",
        broker.name()
    );
}

/// Runs every function of this suite. `make` builds a broker; it is called
/// once for the checks that share a broker and once for
/// [`close_ends_consumers`], which closes its broker.
pub async fn run_all<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Broker>>,
{
    let broker = make().await;
    let b = broker.as_ref();
    reports_name_and_health(b).await;
    accepts_without_delivering(b).await;
    publish_then_consume(b).await;
    routes_by_pattern(b).await;
    every_subscription_gets_a_copy(b).await;
    unbound_endpoint_drops_silently(b).await;
    ack_removes(b).await;
    nack_requeue_redelivers(b).await;
    nack_retry_redelivers_after_delay(b).await;
    nack_dead_letter_does_not_redeliver(b).await;
    dead_letters_are_listed_replayed_and_purged(b).await;
    prefetch_limits_unacknowledged(b).await;
    preserves_publish_order(b).await;
    concurrent_publishers_lose_nothing(b).await;
    unacknowledged_delivery_is_redelivered(b).await;
    subscribe_is_idempotent(b).await;
    close_ends_consumers(make().await.as_ref()).await;
}
