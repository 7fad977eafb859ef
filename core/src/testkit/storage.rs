//! Conformance suite for [`Storage`] implementations.
//!
//! Every function writes to its own models (named with [`unique`]), so the
//! functions can run in parallel against one shared store. This suits stores
//! that create a model's collection on first write (memory, document stores);
//! a store with a fixed schema checks the same behaviours with its own models.

use serde_json::{json, Value};

use super::{unique, PATIENCE};
use crate::traits::{Filter, Record, Storage};

fn record(value: Value) -> Record {
    match value {
        Value::Object(map) => map,
        other => panic!("testkit built a record that is not an object: {other}"),
    }
}

async fn insert(storage: &dyn Storage, model: &str, value: Value) {
    let record = record(value);
    match tokio::time::timeout(PATIENCE, storage.insert(model, &record)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("{}: insert into {model} failed: {e}", storage.name()),
        Err(_) => panic!("{}: insert into {model} hung", storage.name()),
    }
}

async fn find(storage: &dyn Storage, model: &str, filter: &Filter, limit: usize) -> Vec<Record> {
    match tokio::time::timeout(PATIENCE, storage.find(model, filter, limit)).await {
        Ok(Ok(records)) => records,
        Ok(Err(e)) => panic!(
            "{}: find in {model} where {filter} failed: {e}",
            storage.name()
        ),
        Err(_) => panic!("{}: find in {model} hung", storage.name()),
    }
}

async fn update(storage: &dyn Storage, model: &str, filter: &Filter, value: Value) -> u64 {
    let record = record(value);
    match tokio::time::timeout(PATIENCE, storage.update(model, filter, &record)).await {
        Ok(Ok(count)) => count,
        Ok(Err(e)) => panic!(
            "{}: update of {model} where {filter} failed: {e}",
            storage.name()
        ),
        Err(_) => panic!("{}: update of {model} hung", storage.name()),
    }
}

async fn delete(storage: &dyn Storage, model: &str, filter: &Filter) -> u64 {
    match tokio::time::timeout(PATIENCE, storage.delete(model, filter)).await {
        Ok(Ok(count)) => count,
        Ok(Err(e)) => panic!(
            "{}: delete from {model} where {filter} failed: {e}",
            storage.name()
        ),
        Err(_) => panic!("{}: delete from {model} hung", storage.name()),
    }
}

fn ids(records: &[Record]) -> Vec<Value> {
    records
        .iter()
        .map(|r| r.get("id").cloned().unwrap_or(Value::Null))
        .collect()
}

/// An inserted record is found by its id, with every attribute as inserted.
pub async fn insert_then_find_by_id(storage: &dyn Storage) {
    assert!(
        !storage.name().is_empty(),
        "Storage::name must not be empty"
    );
    let model = unique("user");
    let inserted = json!({"id": 7, "name": "Ada", "tags": ["x"], "address": {"city": "Paris"}});
    insert(storage, &model, inserted.clone()).await;
    insert(storage, &model, json!({"id": 8, "name": "Bob"})).await;
    assert_eq!(
        find(storage, &model, &Filter::eq("id", json!(7)), 10).await,
        vec![record(inserted)],
        "{}: find by id must return the inserted record unchanged",
        storage.name()
    );
    assert!(
        find(storage, &model, &Filter::eq("id", json!(9)), 10)
            .await
            .is_empty(),
        "{}: find by an id never inserted must return nothing",
        storage.name()
    );
}

/// `find` returns the records satisfying every condition of the filter, at
/// most `limit` of them; an empty filter matches every record.
pub async fn find_filters_and_limits(storage: &dyn Storage) {
    let model = unique("user");
    for (id, group, active) in [
        (1, "a", true),
        (2, "a", false),
        (3, "b", true),
        (4, "a", true),
    ] {
        insert(
            storage,
            &model,
            json!({"id": id, "group": group, "active": active}),
        )
        .await;
    }
    let both = Filter::eq("group", json!("a")).and("active", json!(true));
    assert_eq!(
        ids(&find(storage, &model, &both, 10).await),
        vec![json!(1), json!(4)],
        "{}: find where {both} must match records satisfying every condition",
        storage.name()
    );
    assert_eq!(
        ids(&find(storage, &model, &both, 1).await),
        vec![json!(1)],
        "{}: find must return at most `limit` records, the first inserted",
        storage.name()
    );
    assert_eq!(
        find(storage, &model, &Filter::default(), 10).await.len(),
        4,
        "{}: an empty filter matches every record",
        storage.name()
    );
    assert!(
        find(
            storage,
            &model,
            &Filter::eq("group", json!("a")).and("id", json!(3)),
            10
        )
        .await
        .is_empty(),
        "{}: a filter whose conditions no single record satisfies must match nothing",
        storage.name()
    );
    assert!(
        find(storage, &model, &Filter::eq("missing", json!(1)), 10)
            .await
            .is_empty(),
        "{}: a condition on an absent attribute must match nothing",
        storage.name()
    );
}

/// `find` returns records in insertion order.
pub async fn find_preserves_insertion_order(storage: &dyn Storage) {
    let model = unique("post");
    let order = [5, 3, 9, 1, 7];
    for id in order {
        insert(storage, &model, json!({"id": id, "kind": "post"})).await;
    }
    assert_eq!(
        ids(&find(storage, &model, &Filter::eq("kind", json!("post")), 10).await),
        order.iter().map(|id| json!(id)).collect::<Vec<_>>(),
        "{}: find must return records in insertion order",
        storage.name()
    );
}

/// `update` sets the given attributes on every matching record, keeps the
/// others, and returns how many records matched (0 when none did).
pub async fn update_sets_given_attributes(storage: &dyn Storage) {
    let model = unique("user");
    insert(
        storage,
        &model,
        json!({"id": 1, "name": "Ada", "age": 36, "group": "a"}),
    )
    .await;
    insert(
        storage,
        &model,
        json!({"id": 2, "name": "Bob", "age": 40, "group": "a"}),
    )
    .await;
    insert(
        storage,
        &model,
        json!({"id": 3, "name": "Cy", "age": 50, "group": "b"}),
    )
    .await;
    assert_eq!(
        update(
            storage,
            &model,
            &Filter::eq("id", json!(1)),
            json!({"age": 37, "email": "a@x"})
        )
        .await,
        1,
        "{}: update of one record must return 1",
        storage.name()
    );
    assert_eq!(
        find(storage, &model, &Filter::eq("id", json!(1)), 10).await,
        vec![record(
            json!({"id": 1, "name": "Ada", "age": 37, "group": "a", "email": "a@x"})
        )],
        "{}: update must set the given attributes and keep the others",
        storage.name()
    );
    assert_eq!(
        update(
            storage,
            &model,
            &Filter::eq("group", json!("a")),
            json!({"group": "c"})
        )
        .await,
        2,
        "{}: update must return how many records matched",
        storage.name()
    );
    assert_eq!(
        ids(&find(storage, &model, &Filter::eq("group", json!("c")), 10).await),
        vec![json!(1), json!(2)],
        "{}: update must change every matching record",
        storage.name()
    );
    assert_eq!(
        update(
            storage,
            &model,
            &Filter::eq("id", json!(99)),
            json!({"age": 1})
        )
        .await,
        0,
        "{}: update matching nothing must return 0",
        storage.name()
    );
    assert_eq!(
        find(storage, &model, &Filter::eq("id", json!(3)), 10).await,
        vec![record(
            json!({"id": 3, "name": "Cy", "age": 50, "group": "b"})
        )],
        "{}: update must not touch records that do not match",
        storage.name()
    );
}

/// `delete` removes every matching record and returns how many it removed.
pub async fn delete_removes_matching(storage: &dyn Storage) {
    let model = unique("user");
    for (id, group) in [(1, "a"), (2, "b"), (3, "a")] {
        insert(storage, &model, json!({"id": id, "group": group})).await;
    }
    assert_eq!(
        delete(storage, &model, &Filter::eq("group", json!("a"))).await,
        2,
        "{}: delete must return how many records it removed",
        storage.name()
    );
    assert_eq!(
        ids(&find(storage, &model, &Filter::default(), 10).await),
        vec![json!(2)],
        "{}: delete must remove exactly the matching records",
        storage.name()
    );
    assert_eq!(
        delete(storage, &model, &Filter::eq("group", json!("a"))).await,
        0,
        "{}: deleting again must return 0",
        storage.name()
    );
}

/// Models are separate namespaces: writes to one are not seen in another.
pub async fn models_are_separate(storage: &dyn Storage) {
    let (users, posts) = (unique("user"), unique("post"));
    insert(storage, &users, json!({"id": 1, "title": "user"})).await;
    insert(storage, &posts, json!({"id": 1, "title": "post"})).await;
    let by_id = Filter::eq("id", json!(1));
    assert_eq!(
        find(storage, &users, &by_id, 10).await,
        vec![record(json!({"id": 1, "title": "user"}))],
        "{}: a model must only hold its own records",
        storage.name()
    );
    assert_eq!(
        update(storage, &posts, &by_id, json!({"title": "edited"})).await,
        1
    );
    assert_eq!(delete(storage, &posts, &by_id).await, 1);
    assert_eq!(
        find(storage, &users, &by_id, 10).await,
        vec![record(json!({"id": 1, "title": "user"}))],
        "{}: updating and deleting in one model must not touch another",
        storage.name()
    );
}

/// Finding in a model nothing was ever written to returns no records, not an error.
pub async fn find_unknown_model_is_empty(storage: &dyn Storage) {
    let model = unique("never-written");
    assert!(
        find(storage, &model, &Filter::default(), 10)
            .await
            .is_empty(),
        "{}: a model never written to has no records",
        storage.name()
    );
    assert_eq!(
        update(storage, &model, &Filter::default(), json!({"x": 1})).await,
        0
    );
    assert_eq!(delete(storage, &model, &Filter::default()).await, 0);
}

/// Runs every function of this suite against `storage`.
pub async fn run_all(storage: &dyn Storage) {
    insert_then_find_by_id(storage).await;
    find_filters_and_limits(storage).await;
    find_preserves_insertion_order(storage).await;
    update_sets_given_attributes(storage).await;
    delete_removes_matching(storage).await;
    models_are_separate(storage).await;
    find_unknown_model_is_empty(storage).await;
}
