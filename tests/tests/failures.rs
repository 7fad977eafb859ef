//! Bad input and failures: malformed messages, failing callbacks, failed
//! writes, pretend mode and shutdown.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{applied, fresh, settled, Apps};
use promiscuous::core::error::chain;
use promiscuous::core::testkit::{eventually, PATIENCE};
use promiscuous::core::wire::Message;
use promiscuous::memory::NullBroker;
use promiscuous::{Error, OperationKind, PendingWrite, Promiscuous};
use serde_json::json;

/// How many more times the flaky subscriber's callback fails, per test key.
static FAILURES_LEFT: AtomicU32 = AtomicU32::new(0);

mod models {
    use super::FAILURES_LEFT;
    use promiscuous::{BoxError, Callbacks, Context, Publish, Subscribe};
    use serde::{Deserialize, Serialize};
    use std::sync::atomic::Ordering;

    #[derive(Debug, Clone, Serialize, Deserialize, Publish)]
    #[publish(to = "crowdtap/user")]
    pub struct User {
        pub id: i64,
        #[publish]
        pub name: String,
    }

    #[derive(Debug, Clone, Serialize, Deserialize, Publish)]
    #[publish(to = "crowdtap/flaky")]
    pub struct Flaky {
        pub id: i64,
        #[publish]
        pub name: String,
    }

    pub mod replica {
        use super::*;

        #[derive(Debug, Serialize, Deserialize, Subscribe)]
        #[subscribe(from = "crowdtap/user")]
        pub struct User {
            pub id: i64,
            #[subscribe]
            pub name: String,
        }

        #[derive(Debug, Serialize, Deserialize, Subscribe)]
        #[subscribe(from = "crowdtap/flaky", callbacks)]
        pub struct Flaky {
            pub id: i64,
            #[subscribe]
            pub name: String,
        }

        #[promiscuous::async_trait]
        impl Callbacks for Flaky {
            async fn before_create(&mut self, _ctx: &Context) -> Result<(), BoxError> {
                let left = FAILURES_LEFT.load(Ordering::SeqCst);
                if left > 0 {
                    FAILURES_LEFT.store(left - 1, Ordering::SeqCst);
                    return Err("the mail server is down".into());
                }
                Ok(())
            }
        }
    }
}

use models::User;

#[tokio::test]
async fn malformed_messages_are_dead_lettered_with_the_reason_and_the_worker_goes_on() {
    let apps = Apps::new("crowdtap", |b| b.subscriber::<models::replica::User>()).await;
    let mut worker = apps.worker().await;
    apps.broker.inject("mailer", "crowdtap/user", b"{not json");
    apps.broker
        .inject("mailer", "crowdtap/user", br#"{"format": 99, "app": "x"}"#);
    apps.broker.inject(
        "mailer",
        "crowdtap/user",
        br#"{"format":1,"app":"crowdtap","generation":0,"timestamp":1,"operations":[{"operation":"create","endpoint":"crowdtap/user","types":[],"id":1,"attributes":{}}]}"#,
    );
    apps.publisher
        .create(&User {
            id: 1,
            name: "after".into(),
        })
        .await
        .unwrap();
    applied(&worker, 1).await;

    let dead = apps.broker.dead_letters("mailer");
    let reasons: Vec<&str> = dead.iter().map(|d| d.reason.as_str()).collect();
    assert_eq!(dead.len(), 3, "{reasons:?}");
    assert!(reasons[0].contains("malformed message"), "{}", reasons[0]);
    assert!(
        reasons[1].contains("unsupported wire format 99"),
        "{}",
        reasons[1]
    );
    assert!(reasons[2].contains("operations[0].types"), "{}", reasons[2]);
    assert_eq!(worker.stats().dead_lettered, 3);
    assert_eq!(
        apps.errors().len(),
        3,
        "each one reached the error notifier"
    );
    assert_eq!(apps.replica.records("User")[0]["name"], "after");
    worker.shutdown().await;
}

#[tokio::test]
async fn a_message_missing_a_subscribed_attribute_names_it_and_is_retried_then_dead_lettered() {
    let apps = Apps::new("crowdtap", |b| {
        b.subscriber::<models::replica::User>().max_attempts(2)
    })
    .await;
    let mut worker = apps.worker().await;
    let message = json!({"format":1,"app":"crowdtap","generation":0,"timestamp":1,"operations":[
        {"operation":"create","endpoint":"crowdtap/user","types":["User"],"id":1,"attributes":{"nickname":"x"},
         "dependencies":{"write":[{"key":"crowdtap/user#1","version":1}]}}]});
    apps.broker
        .inject("mailer", "crowdtap/user", message.to_string().as_bytes());
    assert!(
        eventually(PATIENCE, || async {
            apps.broker.dead_letters("mailer").len() == 1
        })
        .await
    );
    let dead = &apps.broker.dead_letters("mailer")[0];
    assert!(dead.reason.contains("failed 2 times"), "{}", dead.reason);
    assert!(
        dead.reason.contains("no attribute `name`"),
        "{}",
        dead.reason
    );
    assert!(
        dead.reason.contains("deploy the publisher"),
        "{}",
        dead.reason
    );
    assert_eq!(worker.stats().failed, 2);
    worker.shutdown().await;
}

#[tokio::test]
async fn a_failing_callback_is_retried_with_backoff_until_it_succeeds() {
    FAILURES_LEFT.store(2, Ordering::SeqCst);
    let apps = Apps::new("crowdtap", |b| {
        b.subscriber::<models::replica::Flaky>().max_attempts(5)
    })
    .await;
    let mut worker = apps.worker().await;
    apps.publisher
        .create(&models::Flaky {
            id: 1,
            name: "x".into(),
        })
        .await
        .unwrap();
    applied(&worker, 1).await;
    let stats = worker.stats();
    assert_eq!(
        (stats.failed, stats.applied, stats.dead_lettered),
        (2, 1, 0),
        "{stats:?}"
    );
    assert_eq!(apps.replica.records("Flaky").len(), 1, "stored once");
    let errors = apps.errors();
    assert!(
        errors
            .iter()
            .all(|e| e.contains("callback before_create failed: the mail server is down")),
        "{errors:?}"
    );
    assert!(apps.broker.dead_letters("mailer").is_empty());
    worker.shutdown().await;
}

#[tokio::test]
async fn a_failed_write_publishes_a_noop_so_subscribers_do_not_wait() {
    let apps = Apps::new("crowdtap", |b| {
        b.subscriber::<models::replica::User>()
            .recovery_timeout(Duration::from_secs(30))
    })
    .await;
    let mut worker = apps.worker().await;
    apps.publisher
        .create(&User {
            id: 1,
            name: "a".into(),
        })
        .await
        .unwrap();
    let failed = apps
        .publisher
        .publish_write::<User, _, _>(
            PendingWrite::of::<User>(OperationKind::Update, json!(1)),
            || async { Err("deadlock detected".into()) },
        )
        .await
        .unwrap_err();
    assert!(matches!(failed, Error::Publisher { .. }), "{failed}");
    assert!(chain(&failed).contains("deadlock detected"), "{failed}");
    apps.publisher
        .update(&User {
            id: 1,
            name: "b".into(),
        })
        .await
        .unwrap();
    applied(&worker, 2).await;
    settled(&worker, 3).await;
    let stats = worker.stats();
    assert_eq!(
        (stats.skipped, stats.recovered),
        (1, 0),
        "the noop let the next update through at once: {stats:?}"
    );
    assert_eq!(apps.replica.records("User")[0]["name"], "b");
    worker.shutdown().await;
}

#[tokio::test]
async fn pretend_mode_records_operations_and_delivers_nothing() {
    let null = Arc::new(NullBroker::new());
    let app = Promiscuous::configure()
        .app("crowdtap")
        .broker(null.clone())
        .redis_url(format!("memory://{}", fresh("pretend")))
        .storage(Arc::new(promiscuous::memory::MemoryStorage::new()))
        .build()
        .await
        .unwrap();
    app.create(&User {
        id: 4,
        name: "Rey".into(),
    })
    .await
    .unwrap();
    app.destroy(&User {
        id: 4,
        name: "Rey".into(),
    })
    .await
    .unwrap();
    let messages: Vec<Message> = null.published_messages().unwrap();
    assert_eq!(messages.len(), 2);
    let create = &messages[0].operations[0];
    assert_eq!(
        (create.operation, create.endpoint.as_str()),
        (OperationKind::Create, "crowdtap/user")
    );
    assert_eq!(create.attributes.as_ref().unwrap()["name"], "Rey");
    assert_eq!(create.dependencies.write[0].version, 1);
    let destroy = &messages[1].operations[0];
    assert_eq!(destroy.operation, OperationKind::Destroy);
    assert_eq!(destroy.dependencies.write[0].version, 2);
    assert!(destroy.attributes.is_none());
}

#[tokio::test]
async fn publishing_while_another_writer_holds_the_lock_times_out_with_lock_unavailable() {
    let apps = Apps::new("crowdtap", |b| b.subscriber::<models::replica::User>()).await;
    let publisher = Promiscuous::configure()
        .app("crowdtap")
        .broker(apps.broker.clone())
        .clock(apps.clock.clone())
        .lock(apps.publisher.lock().clone())
        .storage(apps.source.clone())
        .lock_timeout(Duration::from_millis(100))
        .build()
        .await
        .unwrap();
    apps.publisher
        .lock()
        .try_acquire(
            "crowdtap/user/1",
            "someone-else",
            Duration::from_secs(30),
            b"",
        )
        .await
        .unwrap();
    let err = publisher
        .create(&User {
            id: 1,
            name: "x".into(),
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Publisher { source, .. } if matches!(**source, Error::LockUnavailable { .. })),
        "{err:?}"
    );
    assert!(chain(&err).contains("crowdtap/user/1"), "{err}");
    assert!(
        apps.source.records("User").is_empty(),
        "nothing was written"
    );
}

#[tokio::test]
async fn health_and_shutdown() {
    let apps = Apps::new("crowdtap", |b| b.subscriber::<models::replica::User>()).await;
    let mut worker = apps.worker().await;
    assert!(apps.publisher.healthy());
    assert!(worker.is_running());
    worker.shutdown().await;
    worker.shutdown().await;
    assert!(!worker.is_running());
    apps.publisher.shutdown().await.unwrap();
    apps.publisher.shutdown().await.unwrap();
    assert!(!apps.publisher.healthy());
    let err = apps
        .publisher
        .create(&User {
            id: 1,
            name: "x".into(),
        })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Shutdown(_)), "{err}");
}

#[tokio::test]
async fn taking_over_a_lock_left_to_expire_is_reported_as_a_recovery() {
    let apps = Apps::new("crowdtap", |b| b.subscriber::<models::replica::User>()).await;
    let reported = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen = reported.clone();
    let publisher = Promiscuous::configure()
        .app("crowdtap")
        .broker(apps.broker.clone())
        .clock(apps.clock.clone())
        .lock(apps.publisher.lock().clone())
        .storage(apps.source.clone())
        .error_notifier(move |e| seen.lock().unwrap().push(format!("{:?}: {e}", e.kind())))
        .build()
        .await
        .unwrap();
    apps.publisher
        .lock()
        .try_acquire(
            "crowdtap/user/1",
            "crashed-writer",
            Duration::from_millis(30),
            br#"{"operation":"update"}"#,
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(60)).await;
    publisher
        .create(&User {
            id: 1,
            name: "x".into(),
        })
        .await
        .unwrap();
    let reported = reported.lock().unwrap().clone();
    assert_eq!(reported.len(), 1, "{reported:?}");
    assert!(reported[0].starts_with("Recover"), "{reported:?}");
    assert!(
        reported[0].contains("crowdtap/user/1") && reported[0].contains("crashed-writer"),
        "{reported:?}"
    );
    assert!(
        reported[0].contains(r#"{"operation":"update"}"#),
        "the recovery data is shown: {reported:?}"
    );
}

/// A clock that can be made to report a loss of its state, like a Redis
/// restarted without persistence.
#[derive(Debug, Default)]
struct LosableClock {
    inner: promiscuous::memory::MemoryClock,
    lost: std::sync::atomic::AtomicBool,
}

impl LosableClock {
    fn check(&self) -> Result<(), promiscuous::BackendError> {
        if self.lost.load(Ordering::SeqCst) {
            Err(
                promiscuous::BackendError::new("test", "read", "losable", "state lost")
                    .state_lost(),
            )
        } else {
            Ok(())
        }
    }
}

#[promiscuous::async_trait]
impl promiscuous::Clock for LosableClock {
    fn name(&self) -> &'static str {
        "losable"
    }
    fn epoch(&self) -> u64 {
        self.inner.epoch()
    }
    async fn check(&self) -> Result<(), promiscuous::BackendError> {
        LosableClock::check(self)
    }
    async fn seed(&self, targets: &[(String, u64)]) -> Result<usize, promiscuous::BackendError> {
        self.check()?;
        self.inner.seed(targets).await
    }
    async fn scan(
        &self,
        prefix: &str,
        cursor: u64,
    ) -> Result<(Vec<(String, u64)>, u64), promiscuous::BackendError> {
        self.check()?;
        self.inner.scan(prefix, cursor).await
    }
    async fn tick(&self, keys: &[String]) -> Result<Vec<u64>, promiscuous::BackendError> {
        self.check()?;
        self.inner.tick(keys).await
    }
    async fn read(&self, keys: &[String]) -> Result<Vec<u64>, promiscuous::BackendError> {
        self.check()?;
        self.inner.read(keys).await
    }
    async fn take(
        &self,
        step: &promiscuous::core::traits::Step<'_>,
    ) -> Result<promiscuous::core::traits::Versions, promiscuous::BackendError> {
        self.check()?;
        self.inner.take(step).await
    }
    async fn intent(
        &self,
        id: &str,
    ) -> Result<Option<promiscuous::core::traits::RecordedIntent>, promiscuous::BackendError> {
        self.check()?;
        self.inner.intent(id).await
    }
    async fn forget(&self, ids: &[String]) -> Result<(), promiscuous::BackendError> {
        self.check()?;
        self.inner.forget(ids).await
    }
    async fn stale_intents(
        &self,
        scope: &str,
        age: Duration,
        limit: usize,
    ) -> Result<Vec<promiscuous::core::traits::RecordedIntent>, promiscuous::BackendError> {
        self.check()?;
        self.inner.stale_intents(scope, age, limit).await
    }
    async fn advance(&self, targets: &[(String, u64)]) -> Result<(), promiscuous::BackendError> {
        self.check()?;
        self.inner.advance(targets).await
    }
    async fn wait_until(
        &self,
        key: &str,
        value: u64,
        timeout: Duration,
    ) -> Result<u64, promiscuous::BackendError> {
        self.check()?;
        self.inner.wait_until(key, value, timeout).await
    }
}

#[tokio::test]
async fn a_clock_that_lost_its_state_stops_the_worker_and_keeps_the_message() {
    let apps = Apps::new("crowdtap", |b| b.subscriber::<models::replica::User>()).await;
    let clock = Arc::new(LosableClock::default());
    let subscriber = Promiscuous::configure()
        .app("lossy")
        .broker(apps.broker.clone())
        .clock(clock.clone())
        .lock(apps.publisher.lock().clone())
        .storage(apps.replica.clone())
        .subscriber::<models::replica::User>()
        .build()
        .await
        .unwrap();
    let mut worker = subscriber.subscribe().await.unwrap();
    clock.lost.store(true, Ordering::SeqCst);
    apps.publisher
        .create(&User {
            id: 1,
            name: "x".into(),
        })
        .await
        .unwrap();
    assert!(
        eventually(PATIENCE, || async { !worker.is_running() }).await,
        "the worker stops"
    );
    assert!(
        !subscriber.healthy(),
        "an instance whose clock lost its state is unhealthy"
    );
    assert_eq!(
        apps.broker.queue_len("lossy"),
        1,
        "the message is handed back, not lost"
    );
    assert!(apps.replica.records("User").is_empty());
    worker.shutdown().await;
}

#[tokio::test]
async fn messages_of_an_older_generation_are_dropped_and_reported() {
    let apps = Apps::new("crowdtap", |b| {
        b.subscriber::<models::replica::User>().generation(1)
    })
    .await;
    let mut worker = apps.worker().await;
    apps.publisher
        .create(&User {
            id: 1,
            name: "old".into(),
        })
        .await
        .unwrap();
    settled(&worker, 1).await;
    assert_eq!(worker.stats().skipped, 1);
    assert!(apps.replica.records("User").is_empty());
    let errors = apps.errors();
    assert!(
        errors
            .iter()
            .any(|e| e.contains("generation 0") && e.contains("initial sync")),
        "{errors:?}"
    );
    worker.shutdown().await;
}

#[tokio::test]
async fn a_slow_write_keeps_its_lock_alive_so_no_one_takes_the_record_over() {
    let apps = Apps::new("crowdtap", |b| b.subscriber::<models::replica::User>()).await;
    let build = |timeout: Duration| {
        Promiscuous::configure()
            .app("crowdtap")
            .broker(apps.broker.clone())
            .clock(apps.clock.clone())
            .lock(apps.publisher.lock().clone())
            .storage(apps.source.clone())
            .lock_ttl(Duration::from_millis(90))
            .lock_timeout(timeout)
            .no_subscribers()
            .build()
    };
    let slow = build(Duration::from_secs(1)).await.unwrap();
    let other = build(Duration::from_millis(150)).await.unwrap();
    let writing = tokio::spawn(async move {
        slow.publish_write::<User, _, _>(
            PendingWrite::of::<User>(OperationKind::Create, json!(5)),
            || async {
                tokio::time::sleep(Duration::from_millis(400)).await;
                Ok(Some(User {
                    id: 5,
                    name: "slow".into(),
                }))
            },
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    let err = other
        .create(&User {
            id: 5,
            name: "fast".into(),
        })
        .await
        .unwrap_err();
    assert!(
        chain(&err).contains("crowdtap/user/5"),
        "the record stays locked past its ttl: {err}"
    );
    writing.await.unwrap().unwrap();
}

mod hanging {
    use promiscuous::{BoxError, Callbacks, Context, Publish, Subscribe};
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Clone, Serialize, Deserialize, Publish)]
    #[publish(to = "crowdtap/hanging")]
    pub struct Hanging {
        pub id: i64,
        #[publish]
        pub name: String,
    }

    #[derive(Debug, Serialize, Deserialize, Subscribe)]
    #[subscribe(from = "crowdtap/hanging", as = "Hanging", callbacks)]
    pub struct HangingCopy {
        pub id: i64,
        #[subscribe]
        pub name: String,
    }

    #[promiscuous::async_trait]
    impl Callbacks for HangingCopy {
        async fn before_create(&mut self, _ctx: &Context) -> Result<(), BoxError> {
            tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
            Ok(())
        }
    }
}

#[tokio::test]
async fn shutdown_abandons_a_hanging_callback_after_its_timeout_and_keeps_the_message() {
    let apps = Apps::new("crowdtap", |b| {
        b.subscriber::<hanging::HangingCopy>()
            .shutdown_timeout(Duration::from_millis(200))
    })
    .await;
    let mut worker = apps.worker().await;
    apps.publisher
        .create(&hanging::Hanging {
            id: 1,
            name: "stuck".into(),
        })
        .await
        .unwrap();
    assert!(eventually(PATIENCE, || async { apps.broker.unacked("mailer") == 1 }).await);
    let stopped = tokio::time::timeout(Duration::from_secs(5), worker.shutdown()).await;
    assert!(
        stopped.is_ok(),
        "shutdown returns despite the hanging callback"
    );
    assert!(
        eventually(PATIENCE, || async { apps.broker.queue_len("mailer") == 1 }).await,
        "the abandoned message is back in the queue"
    );
}

#[tokio::test]
async fn a_worker_that_stops_by_itself_says_why_and_a_shutdown_is_not_an_error() {
    use promiscuous::Broker as _;
    let apps = Apps::new("crowdtap", |b| b.subscriber::<models::replica::User>()).await;
    let mut worker = apps.worker().await;
    // The broker goes away under the worker (not through `shutdown`).
    apps.broker.close().await.unwrap();
    let stopped = tokio::time::timeout(PATIENCE, worker.wait())
        .await
        .expect("the worker stops by itself");
    let error = stopped.expect_err("a worker that stopped by itself is an error");
    assert!(
        matches!(&error, Error::WorkerStopped { app, .. } if app == "mailer")
            && chain(&error).contains("ended the consumer"),
        "{error}"
    );
    assert!(!worker.is_running());
    assert!(
        apps.errors()
            .iter()
            .any(|e| e.contains("the subscriber worker of mailer stopped")),
        "reported through the error notifier: {:?}",
        apps.errors()
    );

    // Stopped as asked: `wait` returns Ok, nothing is reported.
    let apps = Apps::new("crowdtap", |b| b.subscriber::<models::replica::User>()).await;
    let mut worker = apps.worker().await;
    let waiting = {
        let subscriber = apps.subscriber.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            subscriber.shutdown().await.unwrap();
        })
    };
    tokio::time::timeout(PATIENCE, worker.wait())
        .await
        .expect("the worker stops with its app")
        .expect("a shutdown is not an error");
    waiting.await.unwrap();
    assert!(apps.errors().is_empty(), "{:?}", apps.errors());
}
