//! A worker's `wait()` raced against a signal (as a `main` does with
//! `select!`) and dropped leaves the worker running: the `shutdown()` that
//! follows still lets the operation being applied finish.

use std::sync::Arc;
use std::time::Duration;

use promiscuous::core::testkit::{eventually, unique};
use promiscuous::memory::MemoryStorage;
use promiscuous::{Backend, BoxError, Callbacks, Context, Promiscuous, Publish, Subscribe};
use serde::{Deserialize, Serialize};

/// The publisher's parcel.
#[derive(Debug, Clone, Serialize, Deserialize, Publish)]
#[publish(to = "post/parcel")]
struct Parcel {
    id: i64,
    #[publish]
    to: String,
}

/// A subscriber whose callback takes its time.
#[derive(Debug, Serialize, Deserialize, Subscribe)]
#[subscribe(model = "Parcel", from = "post/parcel", callbacks)]
struct SlowParcel {
    id: i64,
    #[subscribe]
    to: String,
}

#[promiscuous::async_trait]
impl Callbacks for SlowParcel {
    async fn after_create(&self, _ctx: &Context) -> Result<(), BoxError> {
        tokio::time::sleep(Duration::from_millis(400)).await;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_after_a_cancelled_wait_lets_the_operation_finish() {
    let bus = unique("shutdown");
    let app = |name: &str, storage: Arc<MemoryStorage>| {
        Promiscuous::configure()
            .app(name)
            .backend(Backend::Memory(bus.clone()))
            .storage(storage)
    };
    let replica = Arc::new(MemoryStorage::new());
    let subscriber = app(&unique("post-office"), replica.clone())
        .subscriber::<SlowParcel>()
        .build()
        .await
        .unwrap();
    let publisher = app("post", Arc::new(MemoryStorage::new()))
        .no_subscribers()
        .build()
        .await
        .unwrap();
    let mut worker = subscriber.subscribe().await.unwrap();
    publisher
        .create(&Parcel {
            id: 1,
            to: "Ada".into(),
        })
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(5), || async {
            worker.stats().in_flight == 1
        })
        .await,
        "the parcel is being applied"
    );

    // What `main` does: wait for the worker or a signal; the signal wins.
    tokio::select! {
        stopped = worker.wait() => panic!("the worker stopped by itself: {stopped:?}"),
        () = tokio::time::sleep(Duration::from_millis(50)) => {}
    }
    assert!(
        worker.is_running(),
        "a cancelled wait leaves the worker running"
    );
    worker.shutdown().await;
    assert_eq!(
        worker.stats().applied,
        1,
        "shutdown waited for the operation being applied"
    );
    assert_eq!(replica.records("Parcel").len(), 1);
    assert!(!worker.is_running());
}
