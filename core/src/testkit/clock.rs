//! Conformance suite for [`Clock`] implementations.
//!
//! Every function uses its own keys (named with [`unique`]), so the functions
//! can run in parallel against one shared server.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use super::{unique, PATIENCE};
use crate::traits::{Clock, IntentRecord, RecordedIntent, Step, Versions};

fn keys(prefix: &str, count: usize) -> Vec<String> {
    let base = unique(prefix);
    (0..count).map(|i| format!("{base}#{i}")).collect()
}

/// One value per key from `call` (`tick` or `read`), within [`PATIENCE`].
async fn values(
    clock: &dyn Clock,
    call: &str,
    keys: &[String],
    answer: impl std::future::Future<Output = Result<Vec<u64>, crate::BackendError>>,
) -> Vec<u64> {
    let name = clock.name();
    match tokio::time::timeout(PATIENCE, answer).await {
        Ok(Ok(values)) => {
            let count = keys.len();
            assert_eq!(
                values.len(),
                count,
                "{name}: {call} returned {values:?} for {count} keys"
            );
            values
        }
        Ok(Err(e)) => panic!("{name}: {call} {keys:?} failed: {e}"),
        Err(_) => panic!("{name}: {call} {keys:?} did not return within {PATIENCE:?}"),
    }
}

async fn tick(clock: &dyn Clock, keys: &[String]) -> Vec<u64> {
    values(clock, "tick", keys, clock.tick(keys)).await
}

async fn read(clock: &dyn Clock, keys: &[String]) -> Vec<u64> {
    values(clock, "read", keys, clock.read(keys)).await
}

async fn advance(clock: &dyn Clock, targets: &[(String, u64)]) {
    match tokio::time::timeout(PATIENCE, clock.advance(targets)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("{}: advance {targets:?} failed: {e}", clock.name()),
        Err(_) => panic!(
            "{}: advance {targets:?} did not return within {PATIENCE:?}",
            clock.name()
        ),
    }
}

/// Counters never touched read 0, and reading does not create or change them.
pub async fn fresh_counters_read_zero(clock: &dyn Clock) {
    assert!(!clock.name().is_empty(), "Clock::name must not be empty");
    let keys = keys("fresh", 3);
    assert_eq!(
        read(clock, &keys).await,
        vec![0, 0, 0],
        "fresh counters must read 0"
    );
    assert_eq!(
        read(clock, &keys).await,
        vec![0, 0, 0],
        "reading changed the counters"
    );
    assert_eq!(
        read(clock, &[]).await,
        Vec::<u64>::new(),
        "reading no keys returns nothing"
    );
}

async fn take(
    clock: &dyn Clock,
    increments: &[String],
    reads: &[String],
    intent: Option<(&str, &[u8])>,
) -> Versions {
    let step = Step {
        increments,
        reads,
        intent: intent.map(|(id, data)| IntentRecord {
            id,
            scope: "testkit",
            data,
        }),
    };
    match tokio::time::timeout(PATIENCE, clock.take(&step)).await {
        Ok(Ok(versions)) => versions,
        Ok(Err(e)) => panic!("{}: take {step:?} failed: {e}", clock.name()),
        Err(_) => panic!("{}: take {step:?} hung", clock.name()),
    }
}

/// `take` ticks its increments and reads its reads, the reads taken no
/// later than the tick (a counter both read and ticked reads its old value).
pub async fn take_reads_no_later_than_the_tick(clock: &dyn Clock) {
    let keys = keys("take-read", 3);
    let (a, b, c) = (keys[0].clone(), keys[1].clone(), keys[2].clone());
    clock.advance(&[(a.clone(), 5)]).await.expect("advance");
    let versions = take(
        clock,
        std::slice::from_ref(&b),
        &[a.clone(), c.clone()],
        None,
    )
    .await;
    assert_eq!(
        (versions.ticked, versions.read),
        (vec![1], vec![5, 0]),
        "ticks the increments, reads the reads"
    );
    let versions = take(
        clock,
        std::slice::from_ref(&a),
        std::slice::from_ref(&a),
        None,
    )
    .await;
    assert_eq!(
        (versions.ticked, versions.read),
        (vec![6], vec![5]),
        "a counter read and ticked reads its value before the tick"
    );
    let versions = take(clock, std::slice::from_ref(&c), &[], None).await;
    assert_eq!(
        (versions.ticked, versions.read),
        (vec![1], vec![]),
        "no reads: a plain tick"
    );
    let values = clock.read(&[a, b, c]).await.expect("read");
    assert_eq!(values, vec![6, 1, 1]);
}

/// `take` records its intent with the versions it took; `intent` reads it
/// back until `forget`; unknown ids read `None`.
pub async fn take_records_the_intent_until_forgotten(clock: &dyn Clock) {
    let keys = keys("intent", 2);
    let id = unique("publication");
    let data = br#"{"plan":"anything"}"#;
    clock
        .advance(&[(keys[1].clone(), 3)])
        .await
        .expect("advance");
    let versions = take(clock, &keys[..1], &keys[1..], Some((&id, data))).await;
    let recorded = clock.intent(&id).await.expect("intent");
    assert_eq!(
        recorded,
        Some(RecordedIntent {
            id: id.clone(),
            data: data.to_vec(),
            versions: versions.clone(),
        }),
        "{}: the intent reads back with the versions of its step",
        clock.name()
    );
    assert_eq!(
        versions,
        Versions {
            ticked: vec![1],
            read: vec![3]
        }
    );
    assert_eq!(
        clock.intent(&unique("unknown")).await.expect("intent"),
        None
    );
    clock
        .forget(&[id.clone(), unique("unknown")])
        .await
        .expect("forget");
    assert_eq!(
        clock.intent(&id).await.expect("intent"),
        None,
        "{}: a forgotten intent is gone",
        clock.name()
    );
}

/// `stale_intents` lists intents older than the age asked, and not
/// forgotten ones.
pub async fn stale_intents_are_listed_until_forgotten(clock: &dyn Clock) {
    let keys = keys("stale", 1);
    let id = unique("stale-publication");
    take(clock, &keys, &[], Some((&id, b"{}"))).await;
    let listed = |intents: Vec<RecordedIntent>| intents.iter().any(|i| i.id == id);
    let fresh = clock
        .stale_intents("testkit", Duration::from_secs(3600), 10_000)
        .await
        .expect("stale_intents");
    assert!(
        !listed(fresh),
        "{}: a fresh intent is not stale",
        clock.name()
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    let stale = clock
        .stale_intents("testkit", Duration::from_millis(5), 10_000)
        .await
        .expect("stale_intents");
    assert!(
        listed(stale),
        "{}: an intent older than the age is listed",
        clock.name()
    );
    clock
        .forget(std::slice::from_ref(&id))
        .await
        .expect("forget");
    let after = clock
        .stale_intents("testkit", Duration::from_millis(5), 10_000)
        .await
        .expect("stale_intents");
    assert!(
        !listed(after),
        "{}: a forgotten intent is not listed",
        clock.name()
    );
}

/// `tick` adds one to each key and returns the new values in key order.
pub async fn tick_increments_each_key(clock: &dyn Clock) {
    let keys = keys("tick", 3);
    assert_eq!(
        tick(clock, &keys[..1]).await,
        vec![1],
        "the first tick of a counter returns 1"
    );
    assert_eq!(
        tick(clock, &keys[..1]).await,
        vec![2],
        "the second tick returns 2"
    );
    assert_eq!(
        tick(clock, &keys).await,
        vec![3, 1, 1],
        "tick must return each key's new value, in the order of the keys"
    );
    assert_eq!(
        tick(clock, &[keys[2].clone(), keys[0].clone()]).await,
        vec![2, 4],
        "tick must return values in the order the keys were given"
    );
    assert_eq!(read(clock, &keys).await, vec![4, 1, 2], "read after ticks");
}

/// Many tasks ticking the same keys concurrently lose no increment: 8 tasks ×
/// 50 ticks of two keys return 400 distinct values per key and leave both at
/// 400; and since each tick is one atomic step, both keys of one tick get the
/// same value.
pub async fn concurrent_ticks_lose_nothing(clock: Arc<dyn Clock>) {
    const TASKS: usize = 8;
    const TICKS: usize = 50;
    let keys = Arc::new(keys("concurrent", 2));
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let clock = Arc::clone(&clock);
            let keys = Arc::clone(&keys);
            tokio::spawn(async move {
                let mut values = Vec::with_capacity(TICKS);
                for _ in 0..TICKS {
                    values.push(tick(clock.as_ref(), &keys).await);
                }
                values
            })
        })
        .collect();
    let mut seen = HashSet::new();
    for task in tasks {
        let values = match tokio::time::timeout(PATIENCE * 4, task).await {
            Ok(Ok(values)) => values,
            Ok(Err(e)) => panic!("a ticking task failed: {e}"),
            Err(_) => panic!("{TASKS} × {TICKS} concurrent ticks did not finish in time"),
        };
        for pair in values {
            assert_eq!(
                pair[0],
                pair[1],
                "{}: a tick of two keys (always ticked together) returned {pair:?}: \
                 another tick was seen between them",
                clock.name()
            );
            assert!(
                seen.insert(pair[0]),
                "{}: tick returned {} twice: an increment was lost",
                clock.name(),
                pair[0]
            );
        }
    }
    let total = (TASKS * TICKS) as u64;
    assert_eq!(seen.len() as u64, total);
    assert_eq!(seen.iter().max().copied(), Some(total));
    assert_eq!(
        read(clock.as_ref(), &keys).await,
        vec![total, total],
        "{}: after {TASKS} × {TICKS} ticks the counters must be at {total}",
        clock.name()
    );
}

/// `advance` raises counters to their targets, never lowers them, and is idempotent.
pub async fn advance_raises_never_lowers(clock: &dyn Clock) {
    let keys = keys("advance", 3);
    advance(clock, &[(keys[0].clone(), 5), (keys[1].clone(), 2)]).await;
    assert_eq!(
        read(clock, &keys).await,
        vec![5, 2, 0],
        "advance must raise to the targets"
    );
    advance(clock, &[(keys[0].clone(), 5), (keys[1].clone(), 2)]).await;
    assert_eq!(
        read(clock, &keys).await,
        vec![5, 2, 0],
        "advancing again must change nothing"
    );
    advance(clock, &[(keys[0].clone(), 3), (keys[1].clone(), 7)]).await;
    assert_eq!(
        read(clock, &keys).await,
        vec![5, 7, 0],
        "advance must leave a counter above its target alone and raise the other"
    );
    advance(clock, &[]).await;
    assert_eq!(
        tick(clock, &keys[..1]).await,
        vec![6],
        "tick continues from the advanced value"
    );
}

/// `seed` sets only counters never touched, leaves the others, and wakes
/// the waiters of those it set.
pub async fn seed_sets_only_untouched_counters(clock: &dyn Clock) {
    let keys = keys("seed", 3);
    advance(clock, &[(keys[0].clone(), 4)]).await;
    let waiter =
        async { tokio::time::timeout(PATIENCE, clock.wait_until(&keys[1], 9, PATIENCE)).await };
    let seeding = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        match tokio::time::timeout(
            PATIENCE,
            clock.seed(&[(keys[0].clone(), 10), (keys[1].clone(), 9)]),
        )
        .await
        {
            Ok(Ok(set)) => assert_eq!(set, 1, "{}: seed says how many it set", clock.name()),
            Ok(Err(e)) => panic!("{}: seed failed: {e}", clock.name()),
            Err(_) => panic!("{}: seed did not return within {PATIENCE:?}", clock.name()),
        }
    };
    let (woken, ()) = tokio::join!(waiter, seeding);
    assert!(
        matches!(woken, Ok(Ok(9))),
        "{}: a seed wakes the waiters of the counter: {woken:?}",
        clock.name()
    );
    assert_eq!(
        read(clock, &keys).await,
        vec![4, 9, 0],
        "{}: seed sets a counter at 0 and leaves a moved one alone",
        clock.name()
    );
    assert_eq!(
        tick(clock, &keys[1..2]).await,
        vec![10],
        "{}: tick continues from the seeded value",
        clock.name()
    );
}

/// `scan` pages through every counter under a prefix, and nothing else.
pub async fn scan_lists_the_counters_of_a_prefix(clock: &dyn Clock) {
    let prefix = format!("{}/m", unique("scan"));
    let inside: Vec<String> = (0..2500).map(|i| format!("{prefix}#{i}")).collect();
    let outside = format!("{prefix}x#1");
    for chunk in inside.chunks(500) {
        let targets: Vec<(String, u64)> = chunk
            .iter()
            .map(|key| {
                let bucket: u64 = key
                    .rsplit('#')
                    .next()
                    .and_then(|b| b.parse().ok())
                    .unwrap_or(0);
                (key.clone(), bucket + 1)
            })
            .collect();
        advance(clock, &targets).await;
    }
    advance(clock, &[(outside.clone(), 1)]).await;
    let mut seen = std::collections::BTreeMap::new();
    let mut cursor = 0;
    for _ in 0..10_000 {
        let (page, next) =
            match tokio::time::timeout(PATIENCE, clock.scan(&format!("{prefix}#"), cursor)).await {
                Ok(Ok(answer)) => answer,
                Ok(Err(e)) => panic!("{}: scan failed: {e}", clock.name()),
                Err(_) => panic!("{}: scan did not return within {PATIENCE:?}", clock.name()),
            };
        seen.extend(page);
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    assert_eq!(cursor, 0, "{}: the scan never ended", clock.name());
    assert_eq!(
        seen.len(),
        inside.len(),
        "{}: scan found every counter once",
        clock.name()
    );
    assert!(
        inside.iter().all(|key| {
            let bucket: u64 = key
                .rsplit('#')
                .next()
                .and_then(|b| b.parse().ok())
                .unwrap_or(0);
            seen.get(key) == Some(&(bucket + 1))
        }),
        "{}: scan returns each counter with its value",
        clock.name()
    );
    assert!(
        !seen.contains_key(&outside),
        "{}: scan keeps to its prefix",
        clock.name()
    );
}

/// `wait_until` returns at once, with the current value, when the counter is
/// already at or above the value.
pub async fn wait_until_returns_when_reached(clock: &dyn Clock) {
    let key = unique("reached");
    advance(clock, &[(key.clone(), 4)]).await;
    for wanted in [0, 3, 4] {
        let started = tokio::time::Instant::now();
        match tokio::time::timeout(PATIENCE, clock.wait_until(&key, wanted, PATIENCE * 2)).await {
            Ok(Ok(value)) => assert_eq!(value, 4, "wait_until must return the current value"),
            Ok(Err(e)) => panic!("{}: wait_until failed: {e}", clock.name()),
            Err(_) => panic!(
                "{}: wait_until({wanted}) of a counter at 4 hung",
                clock.name()
            ),
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{}: wait_until({wanted}) of a counter at 4 took {:?}",
            clock.name(),
            started.elapsed()
        );
    }
}

/// A `wait_until` is woken by an `advance` from another task (not by the
/// timeout): an advance short of the value does not end the wait, the one that
/// reaches it does, long before the timeout.
pub async fn wait_until_woken_by_advance(clock: &dyn Clock) {
    let key = unique("woken");
    let timeout = Duration::from_secs(10);
    let started = tokio::time::Instant::now();
    let waiter = async {
        tokio::time::timeout(timeout + PATIENCE, clock.wait_until(&key, 5, timeout)).await
    };
    let advancer = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        advance(clock, &[(key.clone(), 3)]).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        advance(clock, &[(key.clone(), 5)]).await;
    };
    let (waited, ()) = tokio::join!(waiter, advancer);
    let elapsed = started.elapsed();
    match waited {
        Ok(Ok(value)) => assert!(
            value >= 5,
            "{}: wait_until(5) returned {value}, before the counter reached 5",
            clock.name()
        ),
        Ok(Err(e)) => panic!("{}: wait_until failed: {e}", clock.name()),
        Err(_) => panic!("{}: wait_until hung past its own timeout", clock.name()),
    }
    assert!(
        elapsed >= Duration::from_millis(150),
        "{}: wait_until(5) returned after {elapsed:?}, before the advance to 5",
        clock.name()
    );
    assert!(
        elapsed < Duration::from_secs(3),
        "{}: wait_until took {elapsed:?} to notice an advance: waiters must be woken",
        clock.name()
    );
}

/// A `wait_until` nothing satisfies returns the current value after about the timeout.
pub async fn wait_until_times_out(clock: &dyn Clock) {
    let key = unique("timeout");
    advance(clock, &[(key.clone(), 2)]).await;
    let timeout = Duration::from_millis(300);
    let started = tokio::time::Instant::now();
    match tokio::time::timeout(timeout + PATIENCE, clock.wait_until(&key, 5, timeout)).await {
        Ok(Ok(value)) => assert_eq!(
            value,
            2,
            "{}: a timed-out wait_until must return the current value",
            clock.name()
        ),
        Ok(Err(e)) => panic!(
            "{}: a timed-out wait_until must not fail: {e}",
            clock.name()
        ),
        Err(_) => panic!(
            "{}: wait_until hung past its timeout of {timeout:?}",
            clock.name()
        ),
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed >= timeout * 3 / 4,
        "{}: wait_until with a timeout of {timeout:?} returned after {elapsed:?}",
        clock.name()
    );
}

/// Runs every function of this suite against `clock`.
pub async fn run_all(clock: Arc<dyn Clock>) {
    let c = clock.as_ref();
    fresh_counters_read_zero(c).await;
    tick_increments_each_key(c).await;
    take_reads_no_later_than_the_tick(c).await;
    take_records_the_intent_until_forgotten(c).await;
    stale_intents_are_listed_until_forgotten(c).await;
    advance_raises_never_lowers(c).await;
    seed_sets_only_untouched_counters(c).await;
    scan_lists_the_counters_of_a_prefix(c).await;
    wait_until_returns_when_reached(c).await;
    wait_until_woken_by_advance(c).await;
    wait_until_times_out(c).await;
    concurrent_ticks_lose_nothing(clock).await;
}
