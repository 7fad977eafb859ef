//! Dropped connections: the clock's pub/sub listener resubscribes and wakes
//! every waiter; the command connection reconnects by itself.
//!
//! One test in its own binary: it finds the clock's connections by listing
//! the server's clients before and after connecting, so nothing else of this
//! process may connect meanwhile.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use promiscuous_core::testkit::{eventually, unique};
use promiscuous_core::traits::Clock;
use redis::aio::MultiplexedConnection;
use redis::AsyncCommands;

/// The ids of the server's clients of `kind` (`pubsub` or `normal`).
async fn client_ids(raw: &mut MultiplexedConnection, kind: &str) -> HashSet<u64> {
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .arg("TYPE")
        .arg(kind)
        .query_async(raw)
        .await
        .expect("CLIENT LIST");
    list.lines()
        .filter_map(|line| {
            line.split_whitespace()
                .find_map(|field| field.strip_prefix("id="))
                .and_then(|id| id.parse().ok())
        })
        .collect()
}

async fn kill(raw: &mut MultiplexedConnection, ids: &HashSet<u64>) {
    for id in ids {
        let _: redis::Value = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("ID")
            .arg(*id)
            .query_async(raw)
            .await
            .expect("CLIENT KILL");
    }
}

async fn subscribers(raw: &mut MultiplexedConnection, channel: &str) -> u64 {
    let (_, count): (String, u64) = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(channel)
        .query_async(raw)
        .await
        .expect("PUBSUB NUMSUB");
    count
}

#[tokio::test(flavor = "multi_thread")]
async fn dropped_connections_are_recovered() {
    let (url, prefix) = common::unique_url("reconnect");
    let channel = format!("{prefix}advanced");
    let mut raw = common::raw().await;
    let pubsub_before = client_ids(&mut raw, "pubsub").await;
    let normal_before = client_ids(&mut raw, "normal").await;
    let clock = common::clock(&url).await;
    let ours_pubsub: HashSet<u64> = &client_ids(&mut raw, "pubsub").await - &pubsub_before;
    let ours_normal: HashSet<u64> = &client_ids(&mut raw, "normal").await - &normal_before;
    assert!(
        !ours_pubsub.is_empty(),
        "connecting a clock opens a pub/sub connection"
    );
    assert!(
        !ours_normal.is_empty(),
        "connecting a clock opens a command connection"
    );
    assert_eq!(subscribers(&mut raw, &channel).await, 1);

    // A waiter whose counter changes without a message (a raw SET) while the
    // pub/sub connection is down is woken when the listener resubscribes.
    let key = unique("counter");
    let waiter = clock.wait_until(&key, 1, Duration::from_secs(20));
    let started = tokio::time::Instant::now();
    let damage = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let _: () = raw
            .clone()
            .set(format!("{prefix}clock:{key}"), 1)
            .await
            .expect("SET");
        kill(&mut raw.clone(), &ours_pubsub).await;
    };
    let (woken, ()) = tokio::join!(waiter, damage);
    assert_eq!(woken.expect("wait_until"), 1);
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "the waiter took {:?}: resubscribing must wake every waiter",
        started.elapsed()
    );
    assert!(
        eventually(Duration::from_secs(5), || {
            let mut raw = raw.clone();
            let channel = channel.clone();
            async move { subscribers(&mut raw, &channel).await == 1 }
        })
        .await,
        "the listener must resubscribe"
    );

    // Wake-ups from another instance work again after the reconnection.
    let other = common::clock(&url).await;
    let started = tokio::time::Instant::now();
    let (woken, advanced) =
        tokio::join!(clock.wait_until(&key, 2, Duration::from_secs(20)), async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            other.advance(&[(key.clone(), 2)]).await
        });
    advanced.expect("advance");
    assert_eq!(woken.expect("wait_until"), 2);
    assert!(started.elapsed() < Duration::from_secs(3));

    // The command connection: a call may fail (temporarily) once, then the
    // connection manager reconnects.
    kill(&mut raw, &ours_normal).await;
    let keys = [key.clone()];
    let mut failures = 0;
    let value = loop {
        match clock.read(&keys).await {
            Ok(values) => break values,
            Err(e) => {
                assert!(e.is_temporary(), "a dropped connection is temporary: {e}");
                failures += 1;
                assert!(failures < 20, "the clock never reconnected: {e}");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    };
    assert_eq!(value, vec![2]);
    assert_eq!(clock.tick(&keys).await.expect("tick"), vec![3]);

    // Dropping the clock ends its listener (and unsubscribes).
    drop(clock);
    drop(other);
    assert!(
        eventually(Duration::from_secs(5), || {
            let mut raw = raw.clone();
            let channel = channel.clone();
            async move { subscribers(&mut raw, &channel).await == 0 }
        })
        .await,
        "dropping the clocks must stop their listeners"
    );
}
