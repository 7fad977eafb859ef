//! A published counter whose every write is a read-modify-write under the
//! record's lock, so its values grow in publish order, and a subscriber that
//! journals every state it applies.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use promiscuous::{
    BoxError, Callbacks, Context, Filter, OperationKind, PendingWrite, Promiscuous, Publish,
    Storage, Subscribe,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The publisher's counter.
#[derive(Debug, Clone, Serialize, Deserialize, Publish)]
pub struct ReplicatedCounter {
    pub id: i64,
    #[publish]
    pub n: i64,
}

/// The subscriber's copy.
#[derive(Debug, Serialize, Deserialize, Subscribe)]
#[subscribe(as = "ReplicatedCounter", callbacks)]
pub struct CounterCopy {
    pub id: i64,
    #[subscribe]
    pub n: i64,
}

/// Every state the subscriber applied, per id, in order.
pub static OBSERVED: Mutex<BTreeMap<i64, Vec<i64>>> = Mutex::new(BTreeMap::new());

#[promiscuous::async_trait]
impl Callbacks for CounterCopy {
    async fn after_create(&self, _ctx: &Context) -> Result<(), BoxError> {
        OBSERVED
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(self.id)
            .or_default()
            .push(self.n);
        Ok(())
    }
    async fn after_update(&self, ctx: &Context) -> Result<(), BoxError> {
        self.after_create(ctx).await
    }
}

/// Ids whose observed states ever went back to an older value.
pub fn regressions() -> Vec<(i64, Vec<i64>)> {
    observed_where(|older, newer| newer < older)
}

/// Ids whose observed states ever repeated (an operation applied twice).
pub fn repeats() -> Vec<(i64, Vec<i64>)> {
    observed_where(|older, newer| newer == older)
}

fn observed_where(bad: impl Fn(i64, i64) -> bool) -> Vec<(i64, Vec<i64>)> {
    OBSERVED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .filter(|(_, states)| states.windows(2).any(|w| bad(w[0], w[1])))
        .map(|(id, states)| (*id, states.clone()))
        .collect()
}

/// Adds one to counter `id` in `storage` under its lock and publishes the update.
pub async fn increment(
    app: &Promiscuous,
    storage: &Arc<dyn Storage>,
    id: i64,
) -> promiscuous::Result<()> {
    let storage = storage.clone();
    app.publish_write(
        PendingWrite::of::<ReplicatedCounter>(OperationKind::Update, json!(id)),
        || async move {
            let filter = Filter::eq("id", json!(id));
            let current = storage.find("ReplicatedCounter", &filter, 1).await?;
            let n = current
                .first()
                .and_then(|r| r["n"].as_i64())
                .ok_or("counter missing")?
                + 1;
            storage
                .update(
                    "ReplicatedCounter",
                    &filter,
                    &serde_json::Map::from_iter([("n".to_owned(), json!(n))]),
                )
                .await?;
            Ok(Some(ReplicatedCounter { id, n }))
        },
    )
    .await
    .map(|_| ())
}

/// The states of every counter in a storage, by id.
pub async fn states(storage: &dyn Storage, model: &str) -> BTreeMap<i64, i64> {
    storage
        .find(model, &Filter::default(), usize::MAX)
        .await
        .unwrap()
        .iter()
        .map(|r| (r["id"].as_i64().unwrap(), r["n"].as_i64().unwrap()))
        .collect()
}

/// Waits up to `limit` until the replica holds the publisher's states, then
/// checks that no counter was ever seen going back to an older state.
pub async fn assert_caught_up(
    source: &dyn Storage,
    replica: &dyn Storage,
    worker: &promiscuous::Worker,
    limit: std::time::Duration,
) {
    let expected = states(source, "ReplicatedCounter").await;
    let caught_up = promiscuous::core::testkit::eventually(limit, || async {
        states(replica, "CounterCopy").await == expected
    })
    .await;
    assert!(
        caught_up,
        "the subscriber ends equal to the publisher: {:?}",
        worker.stats()
    );
    assert_eq!(
        regressions(),
        vec![],
        "no counter was ever seen going back to an older state"
    );
}

/// Creates counters `0..count` at 0.
pub async fn create_counters(app: &Promiscuous, count: i64) {
    for id in 0..count {
        app.create(&ReplicatedCounter { id, n: 0 })
            .await
            .unwrap_or_else(|e| panic!("create counter {id}: {e}"));
    }
}

/// `times` increments, spread over counters `0..count`.
pub async fn increment_many(app: &Promiscuous, storage: &Arc<dyn Storage>, times: i64, count: i64) {
    for i in 0..times {
        increment(app, storage, i % count)
            .await
            .unwrap_or_else(|e| panic!("increment {}: {e}", i % count));
    }
}

/// Republishes every counter of `storage` (an initial sync).
pub async fn sync_counters(app: &Promiscuous, storage: &dyn Storage) {
    for record in storage
        .find("ReplicatedCounter", &Filter::default(), usize::MAX)
        .await
        .unwrap()
    {
        let counter: ReplicatedCounter =
            serde_json::from_value(serde_json::Value::Object(record)).unwrap();
        app.sync(&counter).await.unwrap();
    }
}
