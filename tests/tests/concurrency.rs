//! Runners apply independent records concurrently and never overlap on one record.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use common::{applied, fresh, Apps};

static RUNNING: AtomicUsize = AtomicUsize::new(0);
static MOST_RUNNING: AtomicUsize = AtomicUsize::new(0);
static PER_RECORD: Mutex<Option<HashMap<i64, usize>>> = Mutex::new(None);
static MOST_PER_RECORD: AtomicUsize = AtomicUsize::new(0);

mod models {
    use super::*;
    use promiscuous::{BoxError, Callbacks, Context, Publish, Subscribe};
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Clone, Serialize, Deserialize, Publish)]
    pub struct Job {
        pub id: i64,
        #[publish]
        pub step: i64,
    }

    pub mod replica {
        use super::*;

        #[derive(Debug, Serialize, Deserialize, Subscribe)]
        #[subscribe(callbacks)]
        pub struct Job {
            pub id: i64,
            #[subscribe]
            pub step: i64,
        }

        impl Job {
            async fn slow(&self) {
                let now = RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
                MOST_RUNNING.fetch_max(now, Ordering::SeqCst);
                let on_record = {
                    let mut map = PER_RECORD.lock().unwrap();
                    let count = map
                        .get_or_insert_with(HashMap::new)
                        .entry(self.id)
                        .or_default();
                    *count += 1;
                    *count
                };
                MOST_PER_RECORD.fetch_max(on_record, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(30)).await;
                *PER_RECORD
                    .lock()
                    .unwrap()
                    .get_or_insert_with(HashMap::new)
                    .entry(self.id)
                    .or_default() -= 1;
                RUNNING.fetch_sub(1, Ordering::SeqCst);
            }
        }

        #[promiscuous::async_trait]
        impl Callbacks for Job {
            async fn before_create(&mut self, _ctx: &Context) -> Result<(), BoxError> {
                self.slow().await;
                Ok(())
            }
            async fn before_update(&mut self, _ctx: &Context) -> Result<(), BoxError> {
                self.slow().await;
                Ok(())
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runners_overlap_on_independent_records_and_never_on_one() {
    let apps = Apps::new(&fresh("jobs"), |b| {
        b.subscriber::<models::replica::Job>().runners(8)
    })
    .await;
    let mut worker = apps.worker().await;
    for id in 0..8 {
        apps.publisher
            .create(&models::Job { id, step: 0 })
            .await
            .unwrap();
    }
    for step in 1..=3 {
        for id in 0..8 {
            apps.publisher
                .update(&models::Job { id, step })
                .await
                .unwrap();
        }
    }
    applied(&worker, 32).await;
    let most = MOST_RUNNING.load(Ordering::SeqCst);
    assert!(
        most > 1,
        "independent records must be applied concurrently (observed at most {most})"
    );
    assert!(most <= 8, "never more than the runners ({most})");
    assert_eq!(
        MOST_PER_RECORD.load(Ordering::SeqCst),
        1,
        "one record is never applied twice at once"
    );
    let steps: Vec<i64> = apps
        .replica
        .records("Job")
        .iter()
        .map(|r| r["step"].as_i64().unwrap())
        .collect();
    assert_eq!(steps, vec![3; 8]);
    worker.shutdown().await;
}
