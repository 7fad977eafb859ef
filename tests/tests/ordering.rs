//! Ordering rules of the subscriber, with deliveries reordered, duplicated and
//! dropped on purpose: messages are recorded by a publisher on the Null broker,
//! then injected into the subscriber's queue in the order a test chooses.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{applied, fresh, settled, Apps, Journal};
use promiscuous::core::testkit::{eventually, PATIENCE};
use promiscuous::memory::{MemoryClock, MemoryLock, MemoryStorage, NullBroker};
use promiscuous::{Mode, Promiscuous};
use proptest::prelude::*;

static JOURNAL: Journal = Journal::new();

mod models {
    use super::JOURNAL;
    use promiscuous::{BoxError, Callbacks, Context, Publish, Subscribe};
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Clone, Serialize, Deserialize, Publish)]
    #[publish(to = "crowdtap/counter")]
    pub struct Counter {
        pub id: i64,
        #[publish]
        pub n: i64,
    }

    pub mod replica {
        use super::*;

        /// Journals every state it is given, keyed by the subscriber's tag.
        #[derive(Debug, Serialize, Deserialize, Subscribe)]
        #[subscribe(from = "crowdtap/counter", as = "Counter", callbacks)]
        pub struct Counter {
            pub id: i64,
            #[subscribe]
            pub n: i64,
        }

        /// Record 777 fails this many more times before being created.
        pub static FAILURES_OF_777: std::sync::atomic::AtomicU32 =
            std::sync::atomic::AtomicU32::new(0);

        #[promiscuous::async_trait]
        impl Callbacks for Counter {
            async fn before_create(&mut self, _ctx: &Context) -> Result<(), BoxError> {
                use std::sync::atomic::Ordering;
                if self.id == 777 && FAILURES_OF_777.load(Ordering::SeqCst) > 0 {
                    FAILURES_OF_777.fetch_sub(1, Ordering::SeqCst);
                    return Err("the database is briefly unavailable".into());
                }
                Ok(())
            }
            async fn after_create(&self, ctx: &Context) -> Result<(), BoxError> {
                JOURNAL.push(&ctx.app, format!("{}={}", self.id, self.n));
                Ok(())
            }
            async fn after_update(&self, ctx: &Context) -> Result<(), BoxError> {
                JOURNAL.push(&ctx.app, format!("{}={}", self.id, self.n));
                Ok(())
            }
            async fn after_destroy(&self, ctx: &Context) -> Result<(), BoxError> {
                JOURNAL.push(&ctx.app, format!("{}=destroyed", self.id));
                Ok(())
            }
        }
    }
}

use models::Counter;

/// A publisher whose messages are recorded, not delivered.
struct Recorder {
    app: String,
    null: Arc<NullBroker>,
    publisher: Promiscuous,
}

impl Recorder {
    async fn new(hash_size: u64) -> Self {
        let app = fresh("rec");
        let null = Arc::new(NullBroker::new());
        let publisher = Promiscuous::configure()
            .app(&app)
            .broker(null.clone())
            .clock(Arc::new(MemoryClock::new()))
            .lock(Arc::new(MemoryLock::new()))
            .storage(Arc::new(MemoryStorage::new()))
            .hash_size(hash_size)
            .build()
            .await
            .unwrap();
        Self {
            app,
            null,
            publisher,
        }
    }

    /// Every recorded (endpoint, payload), in publish order.
    fn messages(&self) -> Vec<(String, Vec<u8>)> {
        self.null
            .published()
            .into_iter()
            .map(|m| (m.endpoint, m.payload))
            .collect()
    }
}

/// Injects the recorded messages at `indices` into the subscriber's queue, in that order.
fn deliver(apps: &Apps, messages: &[(String, Vec<u8>)], indices: impl IntoIterator<Item = usize>) {
    for i in indices {
        apps.broker.inject("mailer", &messages[i].0, &messages[i].1);
    }
}

/// A subscriber with a small prefetch window and one runner.
async fn narrow_window(prefetch: u16, recovery_timeout: Duration) -> Apps {
    Apps::new(&fresh("unused"), |b| {
        b.subscriber::<models::replica::Counter>()
            .prefetch(prefetch)
            .runners(1)
            .recovery_timeout(recovery_timeout)
    })
    .await
}

/// Runs a program of writes: `(id, Some(n))` sets counter `id` to `n`
/// (creating it the first time), `(id, None)` destroys it.
async fn run(
    recorder: &Recorder,
    program: &[(i64, Option<i64>)],
) -> std::collections::BTreeMap<i64, i64> {
    let mut state = std::collections::BTreeMap::new();
    for &(id, value) in program {
        match (value, state.contains_key(&id)) {
            (Some(n), false) => {
                recorder.publisher.create(&Counter { id, n }).await.unwrap();
                state.insert(id, n);
            }
            (Some(n), true) => {
                recorder.publisher.update(&Counter { id, n }).await.unwrap();
                state.insert(id, n);
            }
            (None, true) => {
                recorder
                    .publisher
                    .destroy(&Counter { id, n: 0 })
                    .await
                    .unwrap();
                state.remove(&id);
            }
            (None, false) => {}
        }
    }
    state
}

/// Per record, the states observed in order (`"3"`, or `"destroyed"`).
fn observed(app: &str) -> std::collections::BTreeMap<i64, Vec<String>> {
    let mut out: std::collections::BTreeMap<i64, Vec<String>> = Default::default();
    for entry in JOURNAL.entries(app) {
        let (id, state) = entry.split_once('=').unwrap();
        out.entry(id.parse().unwrap())
            .or_default()
            .push(state.to_owned());
    }
    out
}

/// Per record, the states the publisher went through, in order.
fn published_states(
    program: &[(i64, Option<i64>)],
) -> std::collections::BTreeMap<i64, Vec<String>> {
    let mut live = std::collections::BTreeSet::new();
    let mut out: std::collections::BTreeMap<i64, Vec<String>> = Default::default();
    for &(id, value) in program {
        match value {
            Some(n) => {
                live.insert(id);
                out.entry(id).or_default().push(n.to_string());
            }
            None if live.remove(&id) => out.entry(id).or_default().push("destroyed".into()),
            None => {}
        }
    }
    out
}

async fn subscriber_apps(mode: Mode) -> Apps {
    Apps::new(&fresh("unused"), |b| {
        b.subscriber::<models::replica::Counter>()
            .mode(mode)
            .runners(4)
            .recovery_timeout(Duration::from_secs(30))
    })
    .await
}

fn replica_state(apps: &Apps) -> std::collections::BTreeMap<i64, i64> {
    apps.replica
        .records("Counter")
        .iter()
        .map(|r| (r["id"].as_i64().unwrap(), r["n"].as_i64().unwrap()))
        .collect()
}

fn program_strategy() -> impl Strategy<Value = Vec<(i64, Option<i64>)>> {
    prop::collection::vec((1i64..4, prop::option::weighted(0.85, 0i64..1000)), 1..25)
}

/// A delivery plan: a permutation of the messages with some delivered twice.
fn delivery_strategy(len: usize) -> impl Strategy<Value = Vec<usize>> {
    let originals: Vec<usize> = (0..len).collect();
    (
        Just(originals).prop_shuffle(),
        prop::collection::vec(0..len.max(1), 0..len.max(1)),
    )
        .prop_map(|(mut order, dups)| {
            order.extend(dups);
            order
        })
        .prop_shuffle()
}

/// Which clock the subscriber orders with.
#[derive(Debug, Clone, Copy)]
enum ClockKind {
    Memory,
    #[cfg(feature = "redis")]
    Redis,
}

/// Publishes `program`, delivers its messages in `order` (indices past the
/// end are ignored, repeats are duplicates) and checks the mode's guarantees.
fn check(
    mode: Mode,
    clock: ClockKind,
    program: Vec<(i64, Option<i64>)>,
    order: Vec<usize>,
    hash_size: u64,
) -> Result<(), TestCaseError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let recorder = Recorder::new(hash_size).await;
        let expected = run(&recorder, &program).await;
        let messages = recorder.messages();
        let subscriber_clock: Option<Arc<dyn promiscuous::Clock>> = match clock {
            ClockKind::Memory => None,
            #[cfg(feature = "redis")]
            ClockKind::Redis => {
                let base = std::env::var("PROMISCUOUS_REDIS_URL")
                    .unwrap_or_else(|_| "redis://127.0.0.1:6379/".to_owned());
                let url = format!("{base}?prefix={}:", fresh("ordering"));
                Some(Arc::new(
                    promiscuous::redis::RedisClock::connect(&url)
                        .await
                        .expect("Redis is running"),
                ))
            }
        };
        let apps = Apps::new(&fresh("unused"), |b| {
            let b = b
                .subscriber::<models::replica::Counter>()
                .mode(mode)
                .runners(4)
                .recovery_timeout(Duration::from_secs(30));
            match subscriber_clock {
                Some(clock) => b.clock(clock),
                None => b,
            }
        })
        .await;
        let mut worker = apps.worker().await;
        let deliveries: Vec<usize> = order.into_iter().filter(|&i| i < messages.len()).collect();
        for &i in &deliveries {
            let (endpoint, payload) = &messages[i];
            apps.broker.inject("mailer", endpoint, payload);
        }
        settled(&worker, deliveries.len() as u64).await;
        let stats = worker.stats();
        worker.shutdown().await;
        prop_assert_eq!(
            replica_state(&apps),
            expected,
            "the subscriber ends equal to the publisher"
        );
        let seen = observed(&recorder.app);
        let published = published_states(&program);
        if mode == Mode::Weak {
            for (id, states) in &seen {
                let mut rest = published[id].iter();
                prop_assert!(
                    states.iter().all(|s| rest.any(|p| p == s)),
                    "record {}: observed {:?} is not a subsequence of {:?}",
                    id,
                    states,
                    published[id]
                );
            }
        } else {
            prop_assert_eq!(
                seen,
                published,
                "each record's states are observed exactly in publish order, once"
            );
        }
        if mode == Mode::Global {
            prop_assert_eq!(
                JOURNAL.entries(&recorder.app),
                program_states_in_order(&program),
                "one endpoint applies in one total order"
            );
        }
        prop_assert_eq!(stats.recovered, 0);
        prop_assert_eq!(stats.failed, 0);
        Ok(())
    })
}

/// Every state change of `program`, in publish order, as the journal writes them.
fn program_states_in_order(program: &[(i64, Option<i64>)]) -> Vec<String> {
    let mut live = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for &(id, value) in program {
        match value {
            Some(n) => {
                live.insert(id);
                out.push(format!("{id}={n}"));
            }
            None if live.remove(&id) => out.push(format!("{id}=destroyed")),
            None => {}
        }
    }
    out
}

fn cases() -> impl Strategy<Value = (Vec<(i64, Option<i64>)>, Vec<usize>)> {
    program_strategy().prop_flat_map(|p| {
        let len = p.len() * 2; // upper bound on messages; extra indices are filtered out
        (Just(p), delivery_strategy(len))
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    #[test]
    fn causal_order_holds_whatever_the_delivery_order((program, order) in cases()) {
        check(Mode::Causal, ClockKind::Memory, program, order, 1 << 20)?;
    }

    #[test]
    fn causal_order_holds_when_every_record_shares_one_counter((program, order) in cases()) {
        check(Mode::Causal, ClockKind::Memory, program, order, 1)?;
    }

    #[test]
    fn global_order_holds_whatever_the_delivery_order((program, order) in cases()) {
        check(Mode::Global, ClockKind::Memory, program, order, 1 << 20)?;
    }

    #[test]
    fn weak_mode_observes_a_subsequence_and_ends_equal((program, order) in cases()) {
        check(Mode::Weak, ClockKind::Memory, program, order, 1 << 20)?;
    }
}

#[cfg(feature = "redis")]
proptest! {
    #![proptest_config(ProptestConfig { cases: 16, .. ProptestConfig::default() })]

    #[test]
    fn causal_order_holds_with_the_redis_clock((program, order) in cases()) {
        check(Mode::Causal, ClockKind::Redis, program, order, 4)?;
    }

    #[test]
    fn weak_mode_holds_with_the_redis_clock((program, order) in cases()) {
        check(Mode::Weak, ClockKind::Redis, program, order, 4)?;
    }
}

#[tokio::test]
async fn a_duplicate_delivery_is_acknowledged_and_not_applied_again() {
    let recorder = Recorder::new(1 << 20).await;
    run(&recorder, &[(1, Some(1)), (1, Some(2))]).await;
    let messages = recorder.messages();
    let apps = subscriber_apps(Mode::Causal).await;
    let mut worker = apps.worker().await;
    deliver(&apps, &messages, [0, 0, 1, 0, 1, 1]);
    settled(&worker, 6).await;
    let stats = worker.stats();
    assert_eq!(stats.applied, 2);
    assert_eq!(stats.duplicates, 4);
    assert_eq!(observed(&recorder.app)[&1], vec!["1", "2"]);
    worker.shutdown().await;
}

#[tokio::test]
async fn a_missing_operation_is_waited_for_with_alerts_and_applied_when_it_arrives() {
    let recorder = Recorder::new(1 << 20).await;
    run(&recorder, &[(1, Some(1)), (1, Some(2)), (1, Some(3))]).await;
    let messages = recorder.messages();
    let apps = Apps::new(&fresh("unused"), |b| {
        b.subscriber::<models::replica::Counter>()
            .recovery_timeout(Duration::from_millis(200))
    })
    .await;
    let mut worker = apps.worker().await;
    deliver(&apps, &messages, [0, 2]);
    applied(&worker, 1).await;
    let alerted = eventually(PATIENCE, || async {
        apps.errors()
            .iter()
            .filter(|e| e.contains("waiting for a missing operation"))
            .count()
            >= 2
    })
    .await;
    let errors = apps.errors();
    assert!(
        alerted,
        "alerts repeat every recovery_timeout while it waits: {errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("crowdtap/counter#") && e.contains("needs 2")),
        "the alert names the counter and the version needed: {errors:?}"
    );
    let stats = worker.stats();
    assert_eq!(
        (stats.applied, stats.recovered, stats.waiting),
        (1, 0, 1),
        "{stats:?}"
    );
    // The late message arrives: applied in its place, nothing lost.
    deliver(&apps, &messages, [1]);
    applied(&worker, 3).await;
    assert_eq!(observed(&recorder.app)[&1], vec!["1", "2", "3"]);
    assert_eq!(worker.stats().recovered, 0);
    worker.shutdown().await;
}

#[tokio::test]
async fn a_missing_operation_is_skipped_only_by_an_operator_and_reported() {
    let recorder = Recorder::new(1 << 20).await;
    run(&recorder, &[(1, Some(1)), (1, Some(2)), (1, Some(3))]).await;
    let messages = recorder.messages();
    let apps = Apps::new(&fresh("unused"), |b| {
        b.subscriber::<models::replica::Counter>()
            .recovery_timeout(Duration::from_millis(100))
    })
    .await;
    let mut worker = apps.worker().await;
    deliver(&apps, &messages, [0, 2]);
    applied(&worker, 1).await;
    assert!(
        eventually(PATIENCE, || async {
            !worker.stalls(Duration::from_millis(100)).is_empty()
        })
        .await,
        "the stuck counter is listed"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(worker.stats().applied, 1, "nothing is skipped by itself");
    let stall = worker.stalls(Duration::ZERO).remove(0);
    assert!(stall.key.contains("crowdtap/counter#"), "{stall:?}");
    assert_eq!((stall.applied, stall.needed), (1, 2), "{stall:?}");
    let skipped = worker.skip_missing(&stall.key, stall.needed).await.unwrap();
    assert_eq!(skipped, 1);
    applied(&worker, 2).await;
    assert_eq!(worker.stats().recovered, 1);
    assert_eq!(observed(&recorder.app)[&1], vec!["1", "3"]);
    let errors = apps.errors();
    assert!(
        errors
            .iter()
            .any(|e| e.contains("skipped missing operations") && e.contains("raised to 2")),
        "the skip is reported: {errors:?}"
    );
    // The lost message arriving late is recognised as already passed.
    deliver(&apps, &messages, [1]);
    settled(&worker, 3).await;
    assert_eq!(worker.stats().duplicates, 1);
    assert_eq!(replica_state(&apps)[&1], 3);
    worker.shutdown().await;
}

#[tokio::test]
async fn an_update_of_a_missing_record_creates_it_and_a_destroy_of_one_is_a_no_op() {
    let recorder = Recorder::new(1 << 20).await;
    run(
        &recorder,
        &[(1, Some(1)), (1, Some(2)), (2, Some(5)), (2, None)],
    )
    .await;
    let messages = recorder.messages();
    let apps = subscriber_apps(Mode::Causal).await;
    let mut worker = apps.worker().await;
    deliver(&apps, &messages, [0]);
    deliver(&apps, &messages, [2]);
    applied(&worker, 2).await;
    // The subscriber's database loses both records behind promiscuous' back.
    use promiscuous::Storage;
    apps.replica
        .delete("Counter", &promiscuous::Filter::default())
        .await
        .unwrap();
    deliver(&apps, &messages, [1]);
    deliver(&apps, &messages, [3]);
    settled(&worker, 4).await;
    assert_eq!(
        replica_state(&apps),
        [(1, 2)].into(),
        "the update recreated record 1"
    );
    let stats = worker.stats();
    assert_eq!(
        (stats.applied, stats.skipped, stats.failed),
        (3, 1, 0),
        "{stats:?}"
    );
    worker.shutdown().await;
}

#[tokio::test]
async fn weak_mode_drops_stale_operations_and_never_waits() {
    let recorder = Recorder::new(1).await;
    run(
        &recorder,
        &[(1, Some(1)), (2, Some(1)), (1, Some(2)), (1, Some(3))],
    )
    .await;
    let messages = recorder.messages();
    let apps = subscriber_apps(Mode::Weak).await;
    let mut worker = apps.worker().await;
    deliver(&apps, &messages, [3, 1, 2, 0]);
    settled(&worker, 4).await;
    assert_eq!(
        observed(&recorder.app)[&1],
        vec!["3"],
        "older operations of record 1 are dropped"
    );
    assert_eq!(
        observed(&recorder.app)[&2],
        vec!["1"],
        "record 2 shares record 1's counter but is not dropped"
    );
    assert_eq!(replica_state(&apps), [(1, 3), (2, 1)].into());
    assert_eq!(worker.stats().recovered, 0);
    worker.shutdown().await;
}

#[tokio::test]
async fn global_mode_applies_an_endpoint_in_publish_order() {
    let recorder = Recorder::new(1 << 20).await;
    run(&recorder, &[(1, Some(1)), (2, Some(1)), (3, Some(1))]).await;
    let messages = recorder.messages();
    let apps = subscriber_apps(Mode::Global).await;
    let mut worker = apps.worker().await;
    deliver(&apps, &messages, [2, 1, 0]);
    applied(&worker, 3).await;
    assert_eq!(
        JOURNAL.entries(&recorder.app),
        vec!["1=1", "2=1", "3=1"],
        "independent records still apply in publish order"
    );
    worker.shutdown().await;
}

#[tokio::test]
async fn unordered_mode_applies_as_delivered() {
    let recorder = Recorder::new(1 << 20).await;
    run(&recorder, &[(1, Some(1)), (1, Some(2))]).await;
    let messages = recorder.messages();
    let apps = subscriber_apps(Mode::Unordered).await;
    let mut worker = apps.worker().await;
    deliver(&apps, &messages, [1, 0]);
    applied(&worker, 2).await;
    assert_eq!(observed(&recorder.app)[&1], vec!["2", "1"]);
    worker.shutdown().await;
}

#[tokio::test]
async fn operations_of_one_record_wait_for_the_earlier_one_in_real_time() {
    let recorder = Recorder::new(1 << 20).await;
    run(&recorder, &[(1, Some(1)), (1, Some(2))]).await;
    let messages = recorder.messages();
    let apps = subscriber_apps(Mode::Causal).await;
    let mut worker = apps.worker().await;
    deliver(&apps, &messages, [1]);
    let early = eventually(Duration::from_millis(200), || async {
        worker.stats().applied > 0
    })
    .await;
    assert!(!early, "the update must wait for the create");
    deliver(&apps, &messages, [0]);
    applied(&worker, 2).await;
    assert_eq!(observed(&recorder.app)[&1], vec!["1", "2"]);
    let _ = PATIENCE;
    worker.shutdown().await;
}

#[tokio::test]
async fn waiting_messages_that_fill_the_prefetch_window_step_aside_instead_of_deadlocking() {
    let recorder = Recorder::new(1 << 20).await;
    let program: Vec<(i64, Option<i64>)> = (1..=8).map(|n| (1, Some(n))).collect();
    run(&recorder, &program).await;
    let messages = recorder.messages();
    let apps = narrow_window(3, Duration::from_secs(60)).await;
    let mut worker = apps.worker().await;
    // The create comes last: the first three messages fill the window waiting for it.
    deliver(&apps, &messages, (1..messages.len()).chain([0]));
    applied(&worker, 8).await;
    let stats = worker.stats();
    assert!(stats.deferred > 0, "{stats:?}");
    assert_eq!(stats.recovered, 0, "nothing was skipped: {stats:?}");
    assert_eq!(
        observed(&recorder.app)[&1],
        (1..=8).map(|n| n.to_string()).collect::<Vec<_>>()
    );
    worker.shutdown().await;
}

#[tokio::test]
async fn a_joining_subscriber_that_opts_in_skips_the_history_it_never_received() {
    // A subscriber joining a running publisher without an initial sync: the
    // first operation of every record it sees misses its predecessor, and
    // they fill the window. With skip_missing_after, each record's missing
    // history is skipped once, and reported.
    let recorder = Recorder::new(1 << 20).await;
    let program: Vec<(i64, Option<i64>)> = (1..=6)
        .flat_map(|id| [(id, Some(1)), (id, Some(2))])
        .collect();
    run(&recorder, &program).await;
    let messages = recorder.messages();
    let apps = Apps::new(&fresh("unused"), |b| {
        b.subscriber::<models::replica::Counter>()
            .prefetch(2)
            .runners(1)
            .skip_missing_after(Duration::from_millis(300))
    })
    .await;
    let mut worker = apps.worker().await;
    deliver(&apps, &messages, (1..messages.len()).step_by(2));
    let recovered = eventually(Duration::from_secs(10), || async {
        worker.stats().applied == 6
    })
    .await;
    assert!(
        recovered,
        "each record recovers once, despite stepping aside: {:?}",
        worker.stats()
    );
    assert_eq!(worker.stats().recovered, 6);
    assert_eq!(replica_state(&apps), (1..=6).map(|id| (id, 2)).collect());
    let reported = apps
        .errors()
        .iter()
        .filter(|e| e.contains("skipped missing operations"))
        .count();
    assert_eq!(reported, 6, "each skip is reported");
    worker.shutdown().await;
}

#[tokio::test]
async fn a_skip_passes_only_the_missing_operation_when_records_share_a_counter() {
    let recorder = Recorder::new(1).await;
    let program: Vec<(i64, Option<i64>)> = (1..=5).map(|id| (id, Some(id * 10))).collect();
    run(&recorder, &program).await;
    let messages = recorder.messages();
    let apps = Apps::new(&fresh("unused"), |b| {
        b.subscriber::<models::replica::Counter>()
            .skip_missing_after(Duration::from_millis(300))
    })
    .await;
    let mut worker = apps.worker().await;
    // The first message is lost; the others arrive, newest first.
    deliver(&apps, &messages, (1..messages.len()).rev());
    applied(&worker, 4).await;
    let stats = worker.stats();
    assert_eq!((stats.recovered, stats.duplicates), (1, 0), "{stats:?}");
    assert_eq!(
        replica_state(&apps),
        (2..=5).map(|id| (id, id * 10)).collect(),
        "only record 1 is missing"
    );
    worker.shutdown().await;
}

#[tokio::test]
async fn an_operation_of_a_message_whose_record_moved_on_is_not_applied_again() {
    let recorder = Recorder::new(1 << 20).await;
    recorder
        .publisher
        .create(&Counter { id: 1, n: 1 })
        .await
        .unwrap();
    let mut tx = recorder.publisher.transaction();
    tx.update(&Counter { id: 1, n: 2 }).unwrap();
    tx.create(&Counter { id: 2, n: 1 }).unwrap();
    tx.commit().await.unwrap();
    recorder
        .publisher
        .update(&Counter { id: 1, n: 3 })
        .await
        .unwrap();
    let messages = recorder.messages();
    assert_eq!(messages.len(), 3);
    let apps = subscriber_apps(Mode::Weak).await;
    let mut worker = apps.worker().await;
    deliver(&apps, &messages, [0, 2, 1]);
    settled(&worker, 3).await;
    assert_eq!(
        replica_state(&apps),
        [(1, 3), (2, 1)].into(),
        "record 1 keeps its latest state"
    );
    assert_eq!(observed(&recorder.app)[&1], vec!["1", "3"]);
    worker.shutdown().await;
}

#[tokio::test]
async fn a_message_being_retried_is_not_skipped_by_the_recovery_of_its_successors() {
    use std::sync::atomic::Ordering;
    let recorder = Recorder::new(1 << 20).await;
    run(&recorder, &[(777, Some(1)), (777, Some(2))]).await;
    let messages = recorder.messages();
    models::replica::FAILURES_OF_777.store(1, Ordering::SeqCst);
    let apps = Apps::new(&fresh("unused"), |b| {
        b.subscriber::<models::replica::Counter>()
            .recovery_timeout(Duration::from_millis(200))
            .retry_backoff(Duration::from_millis(800))
    })
    .await;
    let mut worker = apps.worker().await;
    for (endpoint, payload) in &messages {
        apps.broker.inject("mailer", endpoint, payload);
    }
    applied(&worker, 2).await;
    let stats = worker.stats();
    assert_eq!((stats.failed, stats.recovered), (1, 0), "{stats:?}");
    assert_eq!(
        observed(&recorder.app)[&777],
        vec!["1", "2"],
        "the retried create is applied, in order"
    );
    worker.shutdown().await;
}
