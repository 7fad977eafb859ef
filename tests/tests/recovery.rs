//! Recovery in one process, with its moving parts visible: a publisher that
//! stalls past its locks' expiry is fenced off by recovery; callbacks see
//! the message they apply; `after_commit` never runs for a change that was
//! rolled back.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use common::{applied, fresh, Apps};
use promiscuous::core::testkit::kill::Process;
use promiscuous::core::testkit::{eventually, PATIENCE};
use promiscuous::core::traits::{StorageCapabilities, StorageTransaction};
use promiscuous::memory::MemoryStorage;
use promiscuous::{
    BackendError, BoxError, Callbacks, Context, Error, Filter, OperationKind, Promiscuous, Record,
    Storage,
};
use serde_json::Value;

mod models {
    use super::*;
    use promiscuous::{Publish, Subscribe};
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Clone, Serialize, Deserialize, Publish)]
    #[publish(to = "stalls/note")]
    pub struct Note {
        pub id: i64,
        #[publish]
        pub text: String,
    }

    /// Records what its callbacks saw.
    #[derive(Debug, Clone, Serialize, Deserialize, Subscribe)]
    #[subscribe(from = "stalls/note", as = "Note", callbacks)]
    pub struct NoteCopy {
        pub id: i64,
        #[subscribe]
        pub text: String,
    }

    #[promiscuous::async_trait]
    impl Callbacks for NoteCopy {
        async fn after_create(&self, ctx: &Context) -> Result<(), BoxError> {
            seen("after_create", ctx);
            Ok(())
        }
        async fn after_update(&self, ctx: &Context) -> Result<(), BoxError> {
            seen("after_update", ctx);
            Ok(())
        }
        async fn after_commit(&self, ctx: &Context) -> Result<(), BoxError> {
            seen("after_commit", ctx);
            Ok(())
        }
    }
}

use models::{Note, NoteCopy};

/// Callbacks run: (callback, publisher app, operation, message id, published at, endpoint version).
type Seen = (
    &'static str,
    String,
    OperationKind,
    Option<String>,
    u64,
    u64,
);
static SEEN: Mutex<Vec<Seen>> = Mutex::new(Vec::new());

fn seen(callback: &'static str, ctx: &Context) {
    SEEN.lock().unwrap_or_else(PoisonError::into_inner).push((
        callback,
        ctx.app.clone(),
        ctx.operation,
        ctx.message_id.clone(),
        ctx.published_at,
        ctx.versions.endpoint.as_ref().map_or(0, |d| d.version),
    ));
}

fn seen_by(app: &str) -> Vec<Seen> {
    SEEN.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .filter(|s| s.1 == app)
        .cloned()
        .collect()
}

/// A publisher stalls after taking its versions, past its lock's expiry.
/// Another process's recovery fences the write off and publishes a noop;
/// when the stalled publisher comes back, its write is refused with
/// `Error::Fenced`, so the record and every subscriber keep the state they
/// agree on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_publisher_is_fenced_off_by_recovery() {
    let app = fresh("stalls");
    let apps = Apps::new(&app, |b| b.subscriber::<NoteCopy>()).await;
    let worker = apps.worker().await;
    apps.publisher
        .create(&Note {
            id: 1,
            text: "first".into(),
        })
        .await
        .unwrap();
    applied(&worker, 1).await;
    let process = Process::stalling(&["storage.write_versioned", "lock.extend"]);
    let stalled = Promiscuous::configure()
        .app(&app)
        .broker(apps.broker.clone())
        .clock(apps.clock.clone())
        .lock(process.lock(apps.publisher.lock().clone()))
        .storage(process.storage(apps.source.clone()))
        .no_subscribers()
        .no_recovery_worker()
        .lock_ttl(Duration::from_millis(200))
        .build()
        .await
        .unwrap();
    let write = tokio::spawn(async move {
        stalled
            .update(&Note {
                id: 1,
                text: "written too late".into(),
            })
            .await
    });
    // Another process of the app recovers once the lock expired.
    let recovered = eventually(PATIENCE, || async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        apps.publisher
            .recovery()
            .run_once()
            .await
            .unwrap()
            .recovered
            > 0
    })
    .await;
    assert!(recovered, "recovery finishes the stalled publication");
    process.resume();
    let error = write.await.unwrap().unwrap_err();
    assert!(
        matches!(&error, Error::Publisher { source, .. } if matches!(**source, Error::Fenced { .. })),
        "the late write is refused: {}",
        promiscuous::core::error::chain(&error)
    );
    let stored = apps.source.records("Note");
    assert_eq!(stored[0]["text"], "first", "nothing was written");
    assert!(
        eventually(PATIENCE, || async { worker.stats().skipped >= 1 }).await,
        "the noop reached the subscriber: {:?}",
        worker.stats()
    );
    assert_eq!(apps.replica.records("NoteCopy")[0]["text"], "first");
    let stats = worker.stats();
    assert_eq!(
        (stats.applied, stats.recovered, stats.waiting),
        (1, 0, 0),
        "{stats:?}"
    );
}

/// Callbacks see the message they apply: its id, when it was published, and
/// the operation's versions; `after_commit` runs once per committed change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_see_the_message_they_apply() {
    let app = fresh("stalls");
    let apps = Apps::new(&app, |b| b.subscriber::<NoteCopy>()).await;
    let worker = apps.worker().await;
    let note = Note {
        id: 7,
        text: "hello".into(),
    };
    apps.publisher.create(&note).await.unwrap();
    apps.publisher
        .update(&Note {
            text: "hello again".into(),
            ..note
        })
        .await
        .unwrap();
    applied(&worker, 2).await;
    assert!(eventually(PATIENCE, || async { seen_by(&app).len() == 4 }).await);
    let seen = seen_by(&app);
    let callbacks: Vec<(&str, OperationKind)> = seen.iter().map(|s| (s.0, s.2)).collect();
    assert_eq!(
        callbacks,
        [
            ("after_create", OperationKind::Create),
            ("after_commit", OperationKind::Create),
            ("after_update", OperationKind::Update),
            ("after_commit", OperationKind::Update),
        ]
    );
    let (create, update) = (&seen[1], &seen[3]);
    assert!(
        create.3.is_some() && update.3.is_some() && create.3 != update.3,
        "{seen:?}"
    );
    assert!(create.4 > 0, "the publish time travels with the message");
    assert_eq!(
        (create.5, update.5),
        (1, 2),
        "the endpoint versions, in order"
    );
    assert!(worker.stats().is_idle());
}

/// A storage whose transactions fail to commit the first time: the change
/// they held is rolled back.
#[derive(Debug)]
struct FailingCommits {
    inner: Arc<MemoryStorage>,
    failures: AtomicUsize,
}

#[derive(Debug)]
struct OneTransaction {
    /// The records, seen without versioned writes (as in a SQL transaction).
    inner: Arc<FailingCommits>,
    fail: bool,
    committed: AtomicBool,
}

#[promiscuous::async_trait]
impl StorageTransaction for OneTransaction {
    fn storage(&self) -> &dyn Storage {
        self.inner.as_ref()
    }
    async fn applied_versions(&self, keys: &[String]) -> Result<Vec<u64>, BackendError> {
        Ok(vec![0; keys.len()])
    }
    async fn record_applied(&self, _targets: &[(String, u64)]) -> Result<(), BackendError> {
        Ok(())
    }
    async fn commit(self: Box<Self>) -> Result<(), BackendError> {
        if self.fail {
            return Err(
                BackendError::new("failing", "commit", "test", "the commit failed").temporary(),
            );
        }
        self.committed.store(true, Ordering::SeqCst);
        Ok(())
    }
}

#[promiscuous::async_trait]
impl Storage for FailingCommits {
    fn name(&self) -> &'static str {
        "failing-commits"
    }
    fn capabilities(&self) -> StorageCapabilities {
        StorageCapabilities {
            transactions: true,
            versioned_writes: false,
        }
    }
    async fn find(
        &self,
        model: &str,
        filter: &Filter,
        limit: usize,
    ) -> Result<Vec<Record>, BackendError> {
        self.inner.find(model, filter, limit).await
    }
    async fn scan(
        &self,
        model: &str,
        filter: &Filter,
        after: Option<&Value>,
        limit: usize,
    ) -> Result<Vec<Record>, BackendError> {
        self.inner.scan(model, filter, after, limit).await
    }
    async fn insert(&self, model: &str, record: &Record) -> Result<(), BackendError> {
        self.inner.insert(model, record).await
    }
    async fn update(
        &self,
        model: &str,
        filter: &Filter,
        record: &Record,
    ) -> Result<u64, BackendError> {
        self.inner.update(model, filter, record).await
    }
    async fn delete(&self, model: &str, filter: &Filter) -> Result<u64, BackendError> {
        self.inner.delete(model, filter).await
    }
    async fn begin(&self) -> Result<Option<Box<dyn StorageTransaction>>, BackendError> {
        let fail = self
            .failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        Ok(Some(Box::new(OneTransaction {
            inner: Arc::new(FailingCommits {
                inner: self.inner.clone(),
                failures: AtomicUsize::new(0),
            }),
            fail,
            committed: AtomicBool::new(false),
        })))
    }
}

/// `after_*` callbacks run while applying, inside the transaction, so again
/// when its commit failed and the message is retried; `after_commit` runs
/// only once the change is committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_commit_never_runs_for_a_change_that_was_rolled_back() {
    let app = fresh("stalls");
    let apps = Apps::new(&app, |b| b.subscriber::<NoteCopy>()).await;
    let replica = Arc::new(FailingCommits {
        inner: Arc::new(MemoryStorage::new()),
        failures: AtomicUsize::new(1),
    });
    let subscriber = Promiscuous::configure()
        .app(fresh("commits"))
        .broker(apps.broker.clone())
        .clock(apps.clock.clone())
        .lock(apps.publisher.lock().clone())
        .storage(replica)
        .subscriber::<NoteCopy>()
        .retry_backoff(Duration::from_millis(10))
        .no_recovery_worker()
        .build()
        .await
        .unwrap();
    let mut worker = subscriber.subscribe().await.unwrap();
    apps.publisher
        .create(&Note {
            id: 3,
            text: "once".into(),
        })
        .await
        .unwrap();
    assert!(
        eventually(PATIENCE, || async {
            seen_by(&app).iter().any(|s| s.0 == "after_commit")
        })
        .await,
        "{:?} {:?}",
        worker.stats(),
        seen_by(&app)
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let seen = seen_by(&app);
    let commits = seen.iter().filter(|s| s.0 == "after_commit").count();
    let applies = seen.iter().filter(|s| s.0 != "after_commit").count();
    assert_eq!(
        commits, 1,
        "after_commit ran once, for the committed change: {seen:?}"
    );
    assert_eq!(
        applies, 2,
        "after_* ran for the rolled-back attempt and for the retry: {seen:?}"
    );
    assert_eq!(worker.stats().failed, 1);
    worker.shutdown().await;
}
