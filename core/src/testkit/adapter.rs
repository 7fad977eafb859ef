//! Conformance suite for storage adapters: the publish protocol end to end
//! over a store, as a publisher and a subscriber app use it.
//!
//! Every adapter runs it (memory, SQL on three databases, MongoDB): publish
//! then replicate; a publisher killed at each step of a publication and
//! recovered by another process, with nothing lost; replays not applied
//! twice; two subscriber processes racing on one record; an initial sync
//! of 10,000 records while writers run. The fixture gives fresh stores
//! that hold the suite's two models ([`ITEM_COLUMNS`]), and the broker, clock
//! and lock the processes of one test share (in-process ones are best).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::kill::{KillAt, Process};
use super::storage::ColumnKind;
use super::{eventually, unique, PATIENCE};
use crate::error::{BackendError, BoxError};
use crate::model::{Callbacks, Context};
use crate::runtime::Promiscuous;
use crate::subscriber::Worker;
use crate::traits::{
    Broker, BrokerCapabilities, Clock, Consumer, Filter, Lock, Record, Storage, Subscription,
};

/// The model the suite's publisher writes (`SuiteItem`).
pub const PUBLISHER_MODEL: &str = "SuiteItem";
/// The model the suite's subscriber stores (`SuiteReplica`).
pub const SUBSCRIBER_MODEL: &str = "SuiteReplica";
/// The columns of both models: `id` is the key, assigned by the suite.
pub const ITEM_COLUMNS: &[(&str, ColumnKind)] = &[
    ("id", ColumnKind::Integer),
    ("name", ColumnKind::Text),
    ("n", ColumnKind::Integer),
];

/// The suite's published model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, promiscuous_derive::Publish)]
#[publish(
    crate = "crate::testkit::facade",
    to = "suite/item",
    model = "SuiteItem",
    internal
)]
pub struct SuiteItem {
    /// The key.
    pub id: i64,
    /// A name.
    #[publish]
    pub name: String,
    /// A number.
    #[publish]
    pub n: i64,
}

/// The suite's subscribed model: records each change it commits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, promiscuous_derive::Subscribe)]
#[subscribe(
    crate = "crate::testkit::facade",
    from = "suite/item",
    as = "SuiteItem",
    model = "SuiteReplica",
    callbacks,
    internal
)]
pub struct SuiteReplica {
    /// The publisher's key.
    pub id: i64,
    /// The name.
    #[subscribe]
    pub name: String,
    /// The number.
    #[subscribe]
    pub n: i64,
}

/// Committed changes: (publisher app, record id, endpoint version, the
/// operation and the state it left: one message may change a record twice).
type Committed = (String, i64, u64, String);
static COMMITTED: Mutex<Vec<Committed>> = Mutex::new(Vec::new());

#[async_trait]
impl Callbacks for SuiteReplica {
    async fn after_commit(&self, ctx: &Context) -> Result<(), BoxError> {
        let version = ctx.versions.endpoint.as_ref().map_or(0, |d| d.version);
        COMMITTED
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((
                ctx.app.clone(),
                self.id,
                version,
                format!("{} {} {}", ctx.operation.as_str(), self.name, self.n),
            ));
        Ok(())
    }
}

/// The changes of `app`'s publications a subscriber committed more than once.
fn applied_twice(app: &str) -> Vec<(i64, u64)> {
    let committed = COMMITTED.lock().unwrap_or_else(PoisonError::into_inner);
    let mut seen = std::collections::BTreeSet::new();
    committed
        .iter()
        .filter(|(a, ..)| a == app)
        .filter(|(_, id, version, change)| !seen.insert((*id, *version, change.clone())))
        .map(|(_, id, version, _)| (*id, *version))
        .collect()
}

/// The broker, clock and lock the processes of one test share.
#[derive(Debug, Clone)]
pub struct Backends {
    /// The broker (it must deliver).
    pub broker: Arc<dyn Broker>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// The lock.
    pub lock: Arc<dyn Lock>,
}

/// A storage adapter under test.
#[async_trait]
pub trait AdapterFixture: Send + Sync {
    /// A new, empty store (a database of its own) where the suite's two
    /// models can be written: [`PUBLISHER_MODEL`] and [`SUBSCRIBER_MODEL`],
    /// each with [`ITEM_COLUMNS`]. `label` names it in errors.
    async fn store(&self, label: &str) -> Arc<dyn Storage>;

    /// Another handle on `store`, as a second process opens it (its own
    /// connections); the same `Arc` is fine for a store in memory.
    async fn reopen(&self, store: &Arc<dyn Storage>) -> Arc<dyn Storage> {
        store.clone()
    }

    /// A fresh broker, clock and lock.
    fn backends(&self) -> Backends;
}

/// How long a lock lives in the suite: a publisher that stops is recovered
/// soon after.
const LOCK_TTL: Duration = Duration::from_millis(150);

/// A publisher app, a subscriber app with its worker, on fresh stores.
struct Env {
    app: String,
    backends: Backends,
    source: Arc<dyn Storage>,
    replica: Arc<dyn Storage>,
    publisher: Promiscuous,
    subscriber: Promiscuous,
    worker: Worker,
}

fn item(id: i64, name: &str, n: i64) -> SuiteItem {
    SuiteItem {
        id,
        name: name.to_owned(),
        n,
    }
}

/// A publisher instance of `app` over the given backends; it recovers only
/// when the suite asks.
async fn publisher(app: &str, backends: &Backends, storage: Arc<dyn Storage>) -> Promiscuous {
    Promiscuous::configure()
        .app(app)
        .broker(backends.broker.clone())
        .clock(backends.clock.clone())
        .lock(backends.lock.clone())
        .storage(storage)
        .no_subscribers()
        .no_recovery_worker()
        .lock_ttl(LOCK_TTL)
        .lock_timeout(Duration::from_secs(5))
        .build()
        .await
        .expect("the suite's publisher configuration is valid")
}

/// A subscriber instance over `replica`, sharing `clock`.
async fn subscriber(
    backends: &Backends,
    clock: Arc<dyn Clock>,
    replica: Arc<dyn Storage>,
) -> Promiscuous {
    Promiscuous::configure()
        .app("suite-subscriber")
        .broker(backends.broker.clone())
        .clock(clock)
        .lock(backends.lock.clone())
        .storage(replica)
        .subscriber::<SuiteReplica>()
        .no_recovery_worker()
        .retry_backoff(Duration::from_millis(10))
        .recovery_timeout(Duration::from_secs(2))
        .build()
        .await
        .expect("the suite's subscriber configuration is valid")
}

impl Env {
    async fn new(fixture: &dyn AdapterFixture, label: &str) -> Self {
        let app = unique("suite");
        let backends = fixture.backends();
        let source = fixture.store(&format!("{label}-source")).await;
        let replica = fixture.store(&format!("{label}-replica")).await;
        let publisher = publisher(&app, &backends, source.clone()).await;
        let subscriber = subscriber(&backends, backends.clock.clone(), replica.clone()).await;
        let worker = subscriber
            .subscribe()
            .await
            .expect("the suite's worker starts");
        Self {
            app,
            backends,
            source,
            replica,
            publisher,
            subscriber,
            worker,
        }
    }

    /// A publisher instance of the same app whose backends die with `process`.
    async fn doomed(&self, process: &Process) -> Promiscuous {
        let backends = Backends {
            broker: process.broker(self.backends.broker.clone()),
            clock: process.clock(self.backends.clock.clone()),
            lock: process.lock(self.backends.lock.clone()),
        };
        publisher(&self.app, &backends, process.storage(self.source.clone())).await
    }

    /// Runs recovery passes until the subscriber's records equal the
    /// publisher's and the worker holds nothing; panics with both after
    /// `PATIENCE * 2`.
    async fn converge(&self, context: &str) {
        let equal = eventually(PATIENCE * 2, || async {
            if let Err(e) = self.publisher.recovery().run_once().await {
                tracing::debug!(error = %crate::error::chain(&e), "recovery pass failed; tried again");
            }
            let stats = self.worker.stats();
            stats.in_flight == 0
                && items(self.source.as_ref(), PUBLISHER_MODEL).await
                    == items(self.replica.as_ref(), SUBSCRIBER_MODEL).await
        })
        .await;
        if !equal {
            panic!(
                "{}: {context}: the subscriber did not end equal to the publisher\n  publisher:  {:?}\n  subscriber: {:?}\n  worker: {:?}\n  stalls: {:?}",
                self.source.name(),
                items(self.source.as_ref(), PUBLISHER_MODEL).await,
                items(self.replica.as_ref(), SUBSCRIBER_MODEL).await,
                self.worker.stats(),
                self.worker.stalls(Duration::ZERO),
            );
        }
        let twice = applied_twice(&self.app);
        assert!(
            twice.is_empty(),
            "{}: {context}: changes (id, version) applied twice: {twice:?}",
            self.source.name()
        );
    }

    async fn shutdown(mut self) {
        self.worker.shutdown().await;
        let _ = self.subscriber.shutdown().await;
        let _ = self.publisher.shutdown().await;
    }
}

/// The records of `model` as `id → (name, n)`.
async fn items(storage: &dyn Storage, model: &str) -> BTreeMap<i64, (String, i64)> {
    let mut all = BTreeMap::new();
    let mut after: Option<Value> = None;
    loop {
        let page = match storage
            .scan(model, &Filter::default(), after.as_ref(), 1000)
            .await
        {
            Ok(page) => page,
            Err(e) => panic!("{}: scan of {model} failed: {e}", storage.name()),
        };
        for record in &page {
            let id = record.get("id").and_then(Value::as_i64).unwrap_or_default();
            let name = record
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let n = record.get("n").and_then(Value::as_i64).unwrap_or_default();
            all.insert(id, (name, n));
        }
        match page.last() {
            Some(last) if page.len() == 1000 => after = last.get("id").cloned(),
            _ => return all,
        }
    }
}

/// Publishes creates, updates, a destroy and a transaction; the subscriber
/// ends equal, each change applied once, its context carrying the message.
pub async fn publish_then_replicate(fixture: &dyn AdapterFixture) {
    let env = Env::new(fixture, "replicate").await;
    let p = &env.publisher;
    for id in 1..=3 {
        p.create(&item(id, &format!("item {id}"), id))
            .await
            .expect("create");
    }
    p.update(&item(2, "second", 20)).await.expect("update");
    p.destroy(&item(3, "", 0)).await.expect("destroy");
    let mut tx = p.transaction();
    tx.update(&item(1, "first", 10))
        .expect("transaction update");
    tx.create(&item(4, "fourth", 40))
        .expect("transaction create");
    tx.commit().await.expect("transaction");
    let mut tx = p.transaction();
    tx.create(&item(5, "fifth", 5)).expect("transaction create");
    tx.update(&item(5, "fifth, twice", 55))
        .expect("transaction update of the same record");
    tx.commit()
        .await
        .expect("a transaction writing one record twice");
    env.converge("after creates, updates, a destroy and transactions")
        .await;
    assert_eq!(
        items(env.replica.as_ref(), SUBSCRIBER_MODEL).await,
        [
            (1, ("first".to_owned(), 10)),
            (2, ("second".to_owned(), 20)),
            (4, ("fourth".to_owned(), 40)),
            (5, ("fifth, twice".to_owned(), 55)),
        ]
        .into(),
    );
    env.shutdown().await;
}

/// One of the publications the kill test makes, on records `base + 1`
/// (existing) and `base + 2` (new).
async fn publication(promiscuous: &Promiscuous, kind: u64, base: i64) -> crate::Result<()> {
    let (existing, new) = (base + 1, base + 2);
    match kind {
        0 => promiscuous
            .create(&item(new, "created", 2))
            .await
            .map(|_| ()),
        1 => promiscuous
            .update(&item(existing, "updated", 3))
            .await
            .map(|_| ()),
        2 => promiscuous.destroy(&item(existing, "", 0)).await,
        _ => {
            let mut tx = promiscuous.transaction();
            tx.update(&item(existing, "in a transaction", 7))?;
            tx.create(&item(new, "in a transaction", 8))?;
            tx.commit().await
        }
    }
}

/// A publisher killed at each backend call of a publication (before the
/// call, and after it with its answer lost) is recovered by another process
/// of the app: the subscriber ends equal to the publisher's store, nothing
/// lost, nothing applied twice, no message left waiting. Creates, updates,
/// destroys and transactions; one deployment for all the kills.
pub async fn publisher_killed_at_each_step_is_recovered(fixture: &dyn AdapterFixture) {
    let env = Env::new(fixture, "kill").await;
    let mut base = 0;
    for kind in 0..4u64 {
        for after in [false, true] {
            for call in 0.. {
                base += 10;
                env.publisher
                    .create(&item(base + 1, "existing", 1))
                    .await
                    .expect("seed the existing record");
                let at = if after {
                    KillAt::After(call)
                } else {
                    KillAt::Before(call)
                };
                let process = Process::dying(at);
                let doomed = env.doomed(&process).await;
                let finished = tokio::select! {
                    done = tokio::time::timeout(PATIENCE, publication(&doomed, kind, base)) => done.is_ok(),
                    () = process.killed() => false,
                };
                let killed = process.is_killed();
                assert!(
                    killed || finished,
                    "{}: publication {kind} hung without being killed, after {:?}",
                    env.source.name(),
                    process.calls()
                );
                drop(doomed);
                let context = format!(
                    "publication {kind} on records {} and {} killed at {at:?} (calls: {:?})",
                    base + 1,
                    base + 2,
                    process.calls()
                );
                env.converge(&context).await;
                if !killed {
                    break;
                }
                assert!(call < 64, "a publication makes fewer than 64 backend calls");
            }
        }
    }
    env.shutdown().await;
}

/// A broker that keeps a copy of what is published.
#[derive(Debug)]
struct Recording {
    inner: Arc<dyn Broker>,
    published: Mutex<Vec<Vec<u8>>>,
}

impl Recording {
    /// `backends` whose broker records what it publishes, and the recording.
    fn wrap(backends: &Backends) -> (Arc<Self>, Backends) {
        let recording = Arc::new(Recording {
            inner: backends.broker.clone(),
            published: Mutex::default(),
        });
        let recorded = Backends {
            broker: recording.clone(),
            ..backends.clone()
        };
        (recording, recorded)
    }

    fn payloads(&self) -> Vec<Vec<u8>> {
        self.published
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

#[async_trait]
impl Broker for Recording {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn capabilities(&self) -> BrokerCapabilities {
        self.inner.capabilities()
    }
    async fn publish(&self, endpoint: &str, payload: &[u8]) -> Result<(), BackendError> {
        self.published
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(payload.to_vec());
        self.inner.publish(endpoint, payload).await
    }
    async fn subscribe(
        &self,
        subscription: &Subscription,
    ) -> Result<Box<dyn Consumer>, BackendError> {
        self.inner.subscribe(subscription).await
    }
    fn dead_letter_store(&self) -> Option<&dyn crate::dead_letter::DeadLetterStore> {
        self.inner.dead_letter_store()
    }

    fn healthy(&self) -> bool {
        self.inner.healthy()
    }
    async fn close(&self) -> Result<(), BackendError> {
        self.inner.close().await
    }
}

/// Delivers `payload` inline, trying again on failures (a worker would
/// retry them; a conflict with another process is one).
async fn deliver(subscriber: &Promiscuous, payload: &[u8]) {
    let mut last = None;
    for _ in 0..50 {
        match subscriber.deliver(payload).await {
            Ok(_) => return,
            Err(e) => last = Some(crate::error::chain(&e)),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("a delivery kept failing: {last:?}");
}

/// Messages delivered again, to the same subscriber and to a restarted one
/// whose clock forgot them (a crash between applying and advancing), are
/// recognised from the store: not applied twice.
pub async fn replays_are_not_applied_twice(fixture: &dyn AdapterFixture) {
    let mut env = Env::new(fixture, "replay").await;
    let (recording, backends) = Recording::wrap(&env.backends);
    let p = publisher(&env.app, &backends, env.source.clone()).await;
    p.create(&item(1, "one", 1)).await.expect("create");
    p.update(&item(1, "uno", 2)).await.expect("update");
    env.converge("after the first deliveries").await;
    env.worker.shutdown().await;
    for payload in recording.payloads() {
        deliver(&env.subscriber, &payload).await;
    }
    let forgetful_clock = fixture.backends().clock;
    let restarted = subscriber(
        &env.backends,
        forgetful_clock,
        fixture.reopen(&env.replica).await,
    )
    .await;
    for payload in recording.payloads() {
        deliver(&restarted, &payload).await;
    }
    assert_eq!(
        items(env.replica.as_ref(), SUBSCRIBER_MODEL).await,
        [(1, ("uno".to_owned(), 2))].into(),
        "{}: replays changed nothing",
        env.source.name()
    );
    let twice = applied_twice(&env.app);
    assert!(
        twice.is_empty(),
        "{}: replays were applied again: {twice:?}",
        env.source.name()
    );
    let _ = p.shutdown().await;
    env.shutdown().await;
}

/// Two subscriber processes applying copies of one record's messages at
/// once (one of them slow) end with the newest state.
pub async fn racing_subscribers_end_in_the_newest_state(fixture: &dyn AdapterFixture) {
    let mut env = Env::new(fixture, "race").await;
    env.worker.shutdown().await;
    let (recording, backends) = Recording::wrap(&env.backends);
    let p = publisher(&env.app, &backends, env.source.clone()).await;
    p.create(&item(1, "old", 1)).await.expect("create");
    p.update(&item(1, "new", 2)).await.expect("update");
    let payloads = recording.payloads();
    let slow = Process::slow(Duration::from_millis(300));
    let slow_replica = slow.storage(fixture.reopen(&env.replica).await);
    let a = subscriber(&env.backends, env.backends.clock.clone(), slow_replica).await;
    let b = env.subscriber.clone();
    let first = payloads[0].clone();
    let slow_copy = tokio::spawn({
        let a = a.clone();
        let first = first.clone();
        async move { deliver(&a, &first).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    deliver(&b, &first).await;
    deliver(&b, &payloads[1]).await;
    slow_copy.await.expect("the slow delivery ends");
    assert_eq!(
        items(env.replica.as_ref(), SUBSCRIBER_MODEL).await,
        [(1, ("new".to_owned(), 2))].into(),
        "{}: the slow copy of the first message must not overwrite the newer state",
        env.source.name()
    );
    let _ = a.shutdown().await;
    let _ = p.shutdown().await;
    env.shutdown().await;
}

/// How many records the initial sync publishes.
const SYNC_RECORDS: i64 = 10_000;

/// An initial sync of 10,000 records while another task updates some of
/// them ends with the subscriber equal to the publisher.
pub async fn initial_sync_under_writers_ends_equal(fixture: &dyn AdapterFixture) {
    let env = Env::new(fixture, "sync").await;
    let records: Vec<Record> = (1..=SYNC_RECORDS)
        .map(
            |id| match json!({"id": id, "name": format!("item {id}"), "n": id}) {
                Value::Object(record) => record,
                _ => Record::new(),
            },
        )
        .collect();
    let transaction = env.source.begin().await.expect("begin");
    let target: &dyn Storage = match &transaction {
        Some(tx) => tx.storage(),
        None => env.source.as_ref(),
    };
    for record in &records {
        target
            .insert(PUBLISHER_MODEL, record)
            .await
            .expect("insert a record to sync");
    }
    if let Some(tx) = transaction {
        tx.commit().await.expect("commit the records to sync");
    }
    let writer = {
        let p = env.publisher.clone();
        tokio::spawn(async move {
            for step in 0..200i64 {
                let id = (step * 7919) % SYNC_RECORDS + 1;
                p.update(&item(id, &format!("updated {step}"), -step))
                    .await
                    .expect("a concurrent update");
            }
        })
    };
    let report = env
        .publisher
        .sync_all::<SuiteItem>()
        .batch_size(200)
        .run()
        .await
        .expect("the initial sync runs");
    writer.await.expect("the writer ends");
    assert_eq!(report.published, SYNC_RECORDS as u64, "{report:?}");
    env.converge("after the initial sync").await;
    env.shutdown().await;
}

/// Runs every function of this suite against `fixture`.
pub async fn run_all(fixture: &dyn AdapterFixture) {
    publish_then_replicate(fixture).await;
    replays_are_not_applied_twice(fixture).await;
    racing_subscribers_end_in_the_newest_state(fixture).await;
    publisher_killed_at_each_step_is_recovered(fixture).await;
    initial_sync_under_writers_ends_equal(fixture).await;
}
