//! What the Redis clock and lock promise beyond the conformance suites:
//! wake-ups across processes, atomicity across instances, state-loss
//! detection, locks across instances, and errors that name the URL.

mod common;

use std::sync::Arc;
use std::time::Duration;

use promiscuous_core::backend::{factory_for, redact_url};
use promiscuous_core::testkit::unique;
use promiscuous_core::traits::{Acquisition, Clock, ExpiredLock, Lock};
use promiscuous_redis::{RedisClock, RedisLock};
use redis::AsyncCommands;

#[tokio::test(flavor = "multi_thread")]
async fn a_waiter_is_woken_by_an_advance_in_another_instance() {
    let (url, _) = common::unique_url("wake");
    let waiting_side = common::clock(&url).await;
    let advancing_side = common::clock(&url).await;
    let key = unique("counter");

    let timeout = Duration::from_secs(10);
    let started = tokio::time::Instant::now();
    let waiter = waiting_side.wait_until(&key, 3, timeout);
    let advancer = async {
        tokio::time::sleep(Duration::from_millis(150)).await;
        advancing_side.advance(&[(key.clone(), 1)]).await?;
        tokio::time::sleep(Duration::from_millis(100)).await;
        advancing_side.advance(&[(key.clone(), 3)]).await
    };
    let (waited, advanced) = tokio::join!(waiter, advancer);
    advanced.expect("advance");
    let elapsed = started.elapsed();
    assert_eq!(waited.expect("wait_until"), 3);
    assert!(
        elapsed >= Duration::from_millis(200),
        "wait_until(3) returned after {elapsed:?}, before the advance to 3"
    );
    assert!(
        elapsed < Duration::from_secs(2),
        "wait_until took {elapsed:?} to notice another instance's advance (timeout {timeout:?}): \
         the pub/sub wake-up did not arrive"
    );

    // Nothing happens: the waiter times out with the current value.
    let timeout = Duration::from_millis(400);
    let started = tokio::time::Instant::now();
    let value = waiting_side
        .wait_until(&key, 10, timeout)
        .await
        .expect("wait_until");
    let elapsed = started.elapsed();
    assert_eq!(value, 3, "a timed-out wait_until returns the current value");
    assert!(
        elapsed >= timeout * 3 / 4 && elapsed < timeout + Duration::from_secs(2),
        "wait_until with a timeout of {timeout:?} returned after {elapsed:?}"
    );

    // An advance of another key does not end the wait.
    let other = unique("other");
    let started = tokio::time::Instant::now();
    let (value, advanced) = tokio::join!(
        waiting_side.wait_until(&key, 4, Duration::from_millis(500)),
        async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            advancing_side.advance(&[(other.clone(), 9)]).await
        }
    );
    advanced.expect("advance");
    assert_eq!(value.expect("wait_until"), 3);
    assert!(started.elapsed() >= Duration::from_millis(375));
}

#[tokio::test(flavor = "multi_thread")]
async fn ticks_from_two_instances_are_atomic() {
    const TASKS: usize = 8;
    const TICKS: usize = 100;
    let (url, _) = common::unique_url("atomic");
    let instances: [Arc<dyn Clock>; 2] = [
        Arc::new(common::clock(&url).await),
        Arc::new(common::clock(&url).await),
    ];
    let base = unique("atomic");
    let keys: Arc<Vec<String>> = Arc::new((0..3).map(|i| format!("{base}#{i}")).collect());
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let clock = Arc::clone(&instances[task % 2]);
            let keys = Arc::clone(&keys);
            tokio::spawn(async move {
                let mut ticks = Vec::with_capacity(TICKS);
                for _ in 0..TICKS {
                    ticks.push(clock.tick(&keys).await.expect("tick"));
                }
                ticks
            })
        })
        .collect();
    let mut seen = std::collections::HashSet::new();
    for task in tasks {
        for values in tokio::time::timeout(Duration::from_secs(60), task)
            .await
            .expect("ticking took over a minute")
            .expect("a ticking task panicked")
        {
            assert_eq!(values.len(), 3);
            assert!(
                values[0] == values[1] && values[1] == values[2],
                "one tick of three keys returned {values:?}: another tick was seen in between"
            );
            assert!(seen.insert(values[0]), "tick returned {} twice", values[0]);
        }
    }
    let total = (TASKS * TICKS) as u64;
    assert_eq!(seen.len() as u64, total);
    for clock in &instances {
        assert_eq!(
            clock.read(&keys).await.expect("read"),
            vec![total; 3],
            "after {TASKS} × {TICKS} ticks every counter is at {total}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn losing_the_epoch_is_detected_and_not_repaired() {
    let (url, prefix) = common::unique_url("epoch");
    let clock = common::clock(&url).await;
    let key = unique("counter");
    let keys = [key.clone()];
    assert_eq!(clock.tick(&keys).await.expect("tick"), vec![1]);
    let mut raw = common::raw().await;
    let epoch_key = format!("{prefix}epoch");
    let stored: Option<String> = raw.get(&epoch_key).await.expect("GET epoch");
    assert_eq!(
        stored.as_deref(),
        Some(clock.epoch()),
        "connect stores the epoch"
    );

    // As if the server restarted without persistence.
    let _: () = raw.del(&epoch_key).await.expect("DEL epoch");
    let failures = [
        ("tick", clock.tick(&keys).await.map(drop)),
        ("read", clock.read(&keys).await.map(drop)),
        ("advance", clock.advance(&[(key.clone(), 5)]).await),
        (
            "wait_until",
            clock
                .wait_until(&key, 1, Duration::from_secs(1))
                .await
                .map(drop),
        ),
    ];
    for (operation, result) in failures {
        let error = result.expect_err(&format!("{operation} must fail once the epoch is gone"));
        assert!(error.is_state_lost(), "{operation}: {error}");
        assert!(
            !error.is_temporary(),
            "{operation}: state loss is permanent"
        );
        assert_eq!(error.operation, operation);
        let text = error.to_string();
        assert!(
            text.contains(&redact_url(&url)) && text.contains(&redact_url(&common::redis_url())),
            "{operation}: the error must name the URL: {text}"
        );
        assert!(
            text.contains("generation") && text.contains("lost its state"),
            "{operation}: the error must say what to do: {text}"
        );
    }
    let exists: bool = raw.exists(&epoch_key).await.expect("EXISTS");
    assert!(!exists, "a failing call must not recreate the epoch");
    let counter: Option<u64> = raw
        .get(format!("{prefix}clock:{key}"))
        .await
        .expect("GET counter");
    assert_eq!(counter, Some(1), "a failing call must change nothing");

    // A clock connected afterwards makes a new epoch and works.
    let reconnected = common::clock(&url).await;
    assert_ne!(reconnected.epoch(), clock.epoch());
    assert_eq!(reconnected.tick(&keys).await.expect("tick"), vec![2]);
    assert!(
        clock.read(&keys).await.unwrap_err().is_state_lost(),
        "the old clock stays failed: its versions belong to the lost state"
    );

    // A different epoch (another server, or flushed and re-created) is a loss too.
    let _: () = raw
        .set(&epoch_key, "someone-else")
        .await
        .expect("SET epoch");
    assert!(reconnected.read(&keys).await.unwrap_err().is_state_lost());
}

#[tokio::test(flavor = "multi_thread")]
async fn two_clocks_connecting_at_once_agree_on_the_epoch() {
    let (url, _) = common::unique_url("epoch-race");
    let (a, b) = tokio::join!(common::clock(&url), common::clock(&url));
    assert_eq!(a.epoch(), b.epoch());
    let key = vec![unique("counter")];
    a.tick(&key).await.expect("tick");
    assert_eq!(b.read(&key).await.expect("read"), vec![1]);
}

#[tokio::test(flavor = "multi_thread")]
async fn counters_are_exact_up_to_the_largest_redis_integer() {
    let (url, _) = common::unique_url("large");
    let clock = common::clock(&url).await;
    let key = unique("large");
    let other = unique("other");
    let big = (1_u64 << 60) + 3; // beyond what a Lua number holds exactly
    clock.advance(&[(key.clone(), big)]).await.expect("advance");
    assert_eq!(
        clock.read(std::slice::from_ref(&key)).await.expect("read"),
        vec![big]
    );
    clock
        .advance(&[(key.clone(), big - 1)])
        .await
        .expect("advance");
    assert_eq!(
        clock.tick(std::slice::from_ref(&key)).await.expect("tick"),
        vec![big + 1]
    );

    let max = i64::MAX as u64;
    clock.advance(&[(key.clone(), max)]).await.expect("advance");
    let error = clock
        .tick(&[other.clone(), key.clone()])
        .await
        .expect_err("a counter at Redis' largest integer cannot be ticked");
    assert!(!error.is_temporary() && !error.is_state_lost());
    assert!(error.message.contains(&key), "{error}");
    assert_eq!(
        clock.read(&[other, key]).await.expect("read"),
        vec![0, max],
        "a failed tick changes no counter"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn locks_are_shared_between_instances() {
    let (url, _) = common::unique_url("lock");
    let a = common::lock(&url).await;
    let b = common::lock(&url).await;
    let prefix = format!("{}/", unique("models"));
    let key = format!("{prefix}user/1");
    let short = Duration::from_millis(200);
    let long = Duration::from_secs(60);

    assert_eq!(
        a.try_acquire(&key, "owner-a", short, b"\x00binary\xffdata")
            .await
            .expect("try_acquire"),
        Some(Acquisition::Free)
    );
    assert_eq!(
        b.try_acquire(&key, "owner-b", long, b"b")
            .await
            .expect("try_acquire"),
        None,
        "another instance cannot take a held lock"
    );
    assert!(
        b.expired(&prefix, 10).await.expect("expired").is_empty(),
        "a held lock is not expired"
    );

    tokio::time::sleep(Duration::from_millis(400)).await;
    let expired = ExpiredLock {
        key: key.clone(),
        owner: "owner-a".to_owned(),
        recovery: b"\x00binary\xffdata".to_vec(),
    };
    assert_eq!(
        b.expired(&prefix, 10).await.expect("expired"),
        vec![expired.clone()],
        "an expired lock is listed once"
    );
    assert!(
        b.expired(&unique("elsewhere"), 10)
            .await
            .expect("expired")
            .is_empty(),
        "only locks under the prefix are listed"
    );
    assert!(
        !a.release(&key, "owner-a").await.expect("release"),
        "an expired lock is not released"
    );
    assert_eq!(
        b.try_acquire(&key, "owner-b", long, b"b")
            .await
            .expect("try_acquire"),
        Some(Acquisition::TookOverExpired(expired)),
        "after expiry the other instance takes over with the previous owner's data"
    );
    assert!(
        a.expired(&prefix, 10).await.expect("expired").is_empty(),
        "a lock taken over is no longer listed"
    );
    assert!(!a.extend(&key, "owner-a", long).await.expect("extend"));
    assert!(b.extend(&key, "owner-b", long).await.expect("extend"));
    assert!(b.release(&key, "owner-b").await.expect("release"));
    assert!(
        a.expired(&prefix, 10).await.expect("expired").is_empty(),
        "a released lock is never listed"
    );
    assert_eq!(
        a.try_acquire(&key, "owner-a", long, b"")
            .await
            .expect("try_acquire"),
        Some(Acquisition::Free)
    );
    assert!(a.release(&key, "owner-a").await.expect("release"));
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_live_under_the_prefix() {
    let (url, prefix) = common::unique_url("layout");
    let clock = common::clock(&url).await;
    let lock = common::lock(&url).await;
    let key = unique("counter");
    clock.tick(std::slice::from_ref(&key)).await.expect("tick");
    lock.try_acquire("m/1", "me", Duration::from_secs(60), b"data")
        .await
        .expect("try_acquire");
    let mut raw = common::raw().await;
    let counter: Option<String> = raw.get(format!("{prefix}clock:{key}")).await.expect("GET");
    assert_eq!(counter.as_deref(), Some("1"));
    let holder: Option<String> = raw.get(format!("{prefix}lock:m/1")).await.expect("GET");
    assert_eq!(holder.as_deref(), Some("me"));
    let owner: Option<String> = raw
        .hget(format!("{prefix}lock-owner"), "m/1")
        .await
        .expect("HGET");
    assert_eq!(owner.as_deref(), Some("me"));
    let data: Option<Vec<u8>> = raw
        .hget(format!("{prefix}lock-data"), "m/1")
        .await
        .expect("HGET");
    assert_eq!(data.as_deref(), Some(&b"data"[..]));
    let deadline: Option<f64> = raw
        .zscore(format!("{prefix}lock-expiry"), "m/1")
        .await
        .expect("ZSCORE");
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as f64;
    let deadline = deadline.expect("the lock's deadline is in the expiry set");
    assert!(
        (deadline - (now_ms + 60_000.0)).abs() < 10_000.0,
        "the deadline is in ms, about a minute from now: {deadline} vs now {now_ms}"
    );
    assert!(lock.release("m/1", "me").await.expect("release"));
    let exists: bool = raw
        .exists(format!("{prefix}lock:m/1"))
        .await
        .expect("EXISTS");
    assert!(!exists);
    let owner: Option<String> = raw
        .hget(format!("{prefix}lock-owner"), "m/1")
        .await
        .expect("HGET");
    assert_eq!(owner, None, "release clears the owner entry");

    // The default prefix applies without a `prefix` parameter.
    assert!(format!("{clock:?}").contains(&prefix));
    assert!(format!("{lock:?}").contains(&prefix));
}

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_servers_fail_with_a_temporary_error_naming_the_url() {
    let url = "redis://127.0.0.1:1/";
    let started = tokio::time::Instant::now();
    let error = RedisClock::connect(url)
        .await
        .expect_err("nothing listens on port 1");
    assert!(error.is_temporary(), "{error}");
    assert!(!error.is_state_lost());
    assert_eq!(error.backend, "redis");
    assert!(error.to_string().contains("127.0.0.1:1"), "{error}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "connecting to a closed port took {:?}",
        started.elapsed()
    );

    let error = RedisLock::connect(url)
        .await
        .expect_err("nothing listens on port 1");
    assert!(error.is_temporary(), "{error}");
    assert!(error.to_string().contains("127.0.0.1:1"), "{error}");

    let factory = factory_for("rediss://127.0.0.1:1/").expect("rediss falls back to redis");
    let build_clock = factory.clock.expect("clock");
    let error = build_clock(url)
        .await
        .expect_err("nothing listens on port 1");
    assert!(error.to_string().contains("127.0.0.1:1"), "{error}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_urls_fail_permanently() {
    for url in [
        "redis://127.0.0.1:6379/not-a-db",
        "redis://127.0.0.1:6379/?prefix=a&prefix=b",
        "http://127.0.0.1:6379/",
    ] {
        let error = RedisClock::connect(url).await.expect_err(url);
        assert!(!error.is_temporary(), "{url}: {error}");
        assert_eq!(error.target, url, "the error names the URL");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn passwords_are_never_shown() {
    let (url, _) = common::unique_url("pw");
    let url = url.replacen("redis://", "redis://:secret@", 1);
    match RedisClock::connect(&url).await {
        Ok(clock) => {
            let shown = format!("{clock:?}");
            assert!(!shown.contains("secret"), "{shown}");
            assert!(shown.contains(":***@"), "{shown}");
        }
        Err(error) => {
            let shown = format!("{error} / {error:?}");
            assert!(!shown.contains("secret"), "{shown}");
            assert!(error.target.contains(":***@"), "{}", error.target);
        }
    }
    match RedisLock::connect(&url).await {
        Ok(lock) => assert!(!format!("{lock:?}").contains("secret")),
        Err(error) => assert!(!format!("{error} / {error:?}").contains("secret")),
    }
    let error = RedisClock::connect("redis://:secret@127.0.0.1:1/")
        .await
        .expect_err("nothing listens on port 1");
    let shown = format!("{error} / {error:?}");
    assert!(!shown.contains("secret"), "{shown}");
}
