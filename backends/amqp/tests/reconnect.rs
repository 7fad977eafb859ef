//! A lost connection is noticed and re-established, and publishing and
//! consuming carry on: the connection of one broker instance is force-closed
//! from the server side with `rabbitmqctl close_connection` (RabbitMQ itself
//! keeps running, so tests sharing it are not disturbed). Needs a running
//! RabbitMQ (`amqp://guest:guest@127.0.0.1:5672/%2f`, or
//! `PROMISCUOUS_AMQP_URL`) and its `rabbitmqctl` on the PATH.

use std::process::Command;
use std::time::Duration;

use promiscuous_amqp::AmqpBroker;
use promiscuous_core::testkit::{eventually, unique, PATIENCE, QUIET};
use promiscuous_core::traits::{Broker, Subscription};
use promiscuous_core::wire::EndpointPattern;

const DEFAULT_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// How long the broker may take to come back: the supervisor's first pause
/// is 2 s, plus noticing the loss and connecting.
const RECOVERY: Duration = Duration::from_secs(12);

fn url() -> String {
    std::env::var("PROMISCUOUS_AMQP_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

fn rabbitmqctl(args: &[&str]) -> String {
    let output = Command::new("rabbitmqctl")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("this test needs rabbitmqctl on the PATH: {e}"));
    assert!(
        output.status.success(),
        "rabbitmqctl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The Erlang pid of the connection whose `connection_name` is `name`.
async fn connection_pid(name: &str) -> String {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let listing = tokio::task::spawn_blocking(|| {
            rabbitmqctl(&["-q", "list_connections", "pid", "client_properties"])
        })
        .await
        .expect("rabbitmqctl task");
        let found = listing
            .lines()
            .find(|line| line.contains(name))
            .and_then(|line| line.split_whitespace().next())
            .map(str::to_owned);
        if let Some(pid) = found {
            return pid;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no RabbitMQ connection named {name} (is PROMISCUOUS_AMQP_URL on this host?); rabbitmqctl listed:\n{listing}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_connection_closed_by_the_server_is_re_established() {
    let name = unique("promiscuous-reconnect");
    let broker = AmqpBroker::builder(url())
        .connection_name(name.clone())
        .connect()
        .await
        .unwrap_or_else(|e| {
            panic!("this test needs a running RabbitMQ (set PROMISCUOUS_AMQP_URL): {e}")
        });
    let endpoint = format!("{}/{}", unique("app"), unique("user"));
    let queue = unique("q");
    let mut consumer = broker
        .subscribe(&Subscription {
            queue: queue.clone(),
            bindings: vec![EndpointPattern::parse(&endpoint).expect("pattern")],
            prefetch: 10,
        })
        .await
        .expect("subscribe");
    for payload in ["1", "2", "held"] {
        broker
            .publish(&endpoint, payload.as_bytes())
            .await
            .expect("publish");
    }
    for expected in ["1", "2"] {
        let delivery = tokio::time::timeout(PATIENCE, consumer.next())
            .await
            .expect("delivery in time")
            .expect("consumer open")
            .expect("delivery");
        assert_eq!(delivery.payload, expected.as_bytes());
        delivery.ack().await.expect("ack");
    }
    let held = tokio::time::timeout(PATIENCE, consumer.next())
        .await
        .expect("delivery in time")
        .expect("consumer open")
        .expect("delivery");
    assert_eq!(held.payload, b"held");

    // Force-close this broker's connection from the server side.
    let pid = connection_pid(&name).await;
    tokio::task::spawn_blocking(move || {
        rabbitmqctl(&["-q", "close_connection", &pid, "promiscuous reconnect test"])
    })
    .await
    .expect("rabbitmqctl task");
    assert!(
        eventually(PATIENCE, || async { !broker.healthy() }).await,
        "healthy() stayed true after the server closed the connection"
    );

    // A publish while disconnected waits for the reconnection.
    let publishing = {
        let broker = broker.clone();
        let endpoint = endpoint.clone();
        tokio::spawn(async move { broker.publish(&endpoint, b"during").await })
    };
    assert!(
        eventually(RECOVERY, || async { broker.healthy() }).await,
        "healthy() did not come back within {RECOVERY:?}"
    );
    tokio::time::timeout(RECOVERY, publishing)
        .await
        .expect("the publish made during the outage returned")
        .expect("publish task")
        .expect("the publish made during the outage succeeds after the reconnection");

    // The delivery of the lost channel cannot be settled: it comes back.
    let err = held
        .ack()
        .await
        .expect_err("acking a delivery of a lost channel");
    assert!(err.is_temporary(), "{err}");

    let mut received = Vec::new();
    let mut reported = 0;
    while received.len() < 2 {
        match tokio::time::timeout(RECOVERY, consumer.next()).await {
            Ok(Some(Ok(delivery))) => {
                received.push((
                    String::from_utf8_lossy(&delivery.payload).into_owned(),
                    delivery.attempt,
                ));
                delivery.ack().await.expect("ack after the reconnection");
            }
            Ok(Some(Err(e))) => {
                reported += 1;
                assert!(e.is_temporary(), "{e}");
                assert!(reported <= 1, "the loss was reported more than once: {e}");
            }
            Ok(None) => panic!("the consumer ended, though the broker is open"),
            Err(_) => panic!("the consumer did not resume within {RECOVERY:?}; got {received:?}"),
        }
    }
    received.sort();
    assert_eq!(
        received,
        vec![("during".to_owned(), 0), ("held".to_owned(), 1)],
        "the unacked message is redelivered (attempt 1) and the one published during the outage arrives"
    );

    broker
        .publish(&endpoint, b"after")
        .await
        .expect("publish after");
    let after = tokio::time::timeout(PATIENCE, consumer.next())
        .await
        .expect("delivery in time")
        .expect("consumer open")
        .expect("delivery");
    assert_eq!(
        (after.payload.as_slice(), after.attempt),
        (b"after".as_slice(), 0)
    );
    after.ack().await.expect("ack");
    assert!(
        tokio::time::timeout(QUIET, consumer.next()).await.is_err(),
        "nothing else must come"
    );

    drop(consumer);
    broker.delete_subscription(&queue).await.expect("clean up");
    broker.close().await.expect("close");
}
