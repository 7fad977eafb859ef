//! Conformance suite for [`Storage`] implementations.
//!
//! The functions take a [`StorageFixture`]: the store under test, and a way
//! to get a fresh model for each check. Every [`Storage`] is its own
//! schemaless fixture (models are named with [`unique`], and created by the
//! first write), so `storage::run_all(&MemoryStorage::new())` works as is. A
//! store with a fixed schema implements the fixture itself: its
//! [`model`](StorageFixture::model) creates a table with the suite's
//! [`COLUMNS`] and registers it, and its [`schema`](StorageFixture::schema)
//! is [`Schema::Fixed`]. Every function writes to its own models, so the
//! functions can run in parallel against one shared store.
//!
//! The transaction functions check [`Storage::begin`] and
//! [`StorageTransaction`]; on a store without transactions they only check
//! that `begin` returns `None`. The versioned-write and outbox functions run
//! on stores that have them.

use async_trait::async_trait;
use serde_json::{json, Value};

use super::{unique, PATIENCE};
use crate::traits::{
    Fence, Filter, Record, Storage, StorageTransaction, Versioned, VersionedWrite,
};

/// How the store under test keeps models, where stores legitimately differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schema {
    /// A model is created by its first write; a record holds exactly the
    /// attributes written; `find` returns records in insertion order.
    Schemaless,
    /// A model is a table with the suite's [`COLUMNS`]: attributes never
    /// written read back as null, and `find` returns records in primary-key
    /// (`id`) order.
    Fixed,
}

/// The type of a column of the suite's models (see [`COLUMNS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    /// A 64-bit integer.
    Integer,
    /// Text.
    Text,
    /// A boolean.
    Boolean,
    /// Any JSON value (arrays and objects).
    Json,
}

/// Every attribute the suite writes, with its type: what a fixed-schema
/// fixture's tables hold. `id` is the primary key (assigned by the suite,
/// never generated); every other column is nullable.
pub const COLUMNS: &[(&str, ColumnKind)] = &[
    ("id", ColumnKind::Integer),
    ("name", ColumnKind::Text),
    ("age", ColumnKind::Integer),
    ("group", ColumnKind::Text),
    ("email", ColumnKind::Text),
    ("title", ColumnKind::Text),
    ("kind", ColumnKind::Text),
    ("tags", ColumnKind::Json),
    ("address", ColumnKind::Json),
    ("active", ColumnKind::Boolean),
];

/// A store under test, and the models the suite may write to.
#[async_trait]
pub trait StorageFixture: Send + Sync {
    /// The store under test.
    fn storage(&self) -> &dyn Storage;

    /// A model no other call returned, ready to be written to, named after
    /// `label` (`user`, `post`...).
    async fn model(&self, label: &str) -> String;

    /// How the store keeps models.
    fn schema(&self) -> Schema {
        Schema::Schemaless
    }
}

/// Every storage is a schemaless fixture of itself: models named with [`unique`].
#[async_trait]
impl<S: Storage> StorageFixture for S {
    fn storage(&self) -> &dyn Storage {
        self
    }

    async fn model(&self, label: &str) -> String {
        unique(label)
    }
}

fn record(value: Value) -> Record {
    match value {
        Value::Object(map) => map,
        other => panic!("testkit built a record that is not an object: {other}"),
    }
}

/// The records as the suite wrote them: with a fixed schema, the attributes
/// never written (read back as null) are left out.
fn as_written(fixture: &dyn StorageFixture, records: Vec<Record>) -> Vec<Record> {
    match fixture.schema() {
        Schema::Schemaless => records,
        Schema::Fixed => records
            .into_iter()
            .map(|r| r.into_iter().filter(|(_, v)| !v.is_null()).collect())
            .collect(),
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

/// A transaction, or `None` (checked) when the store has none.
async fn begin(storage: &dyn Storage) -> Option<Box<dyn StorageTransaction>> {
    let begun = match tokio::time::timeout(PATIENCE, storage.begin()).await {
        Ok(Ok(begun)) => begun,
        Ok(Err(e)) => panic!("{}: begin failed: {e}", storage.name()),
        Err(_) => panic!("{}: begin hung", storage.name()),
    };
    assert_eq!(
        begun.is_some(),
        storage.capabilities().transactions,
        "{}: begin must return a transaction exactly when capabilities().transactions is true",
        storage.name()
    );
    begun
}

async fn applied(tx: &dyn StorageTransaction, keys: &[String]) -> Vec<u64> {
    let name = tx.storage().name();
    match tokio::time::timeout(PATIENCE, tx.applied_versions(keys)).await {
        Ok(Ok(versions)) => versions,
        Ok(Err(e)) => panic!("{name}: applied_versions failed: {e}"),
        Err(_) => panic!("{name}: applied_versions hung"),
    }
}

async fn record_applied(tx: &dyn StorageTransaction, targets: &[(&str, u64)]) {
    let name = tx.storage().name();
    let targets: Vec<(String, u64)> = targets.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect();
    match tokio::time::timeout(PATIENCE, tx.record_applied(&targets)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("{name}: record_applied failed: {e}"),
        Err(_) => panic!("{name}: record_applied hung"),
    }
}

async fn commit(tx: Box<dyn StorageTransaction>) {
    let name = tx.storage().name();
    match tokio::time::timeout(PATIENCE, tx.commit()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("{name}: commit failed: {e}"),
        Err(_) => panic!("{name}: commit hung"),
    }
}

fn ids(records: &[Record]) -> Vec<Value> {
    records
        .iter()
        .map(|r| r.get("id").cloned().unwrap_or(Value::Null))
        .collect()
}

/// An inserted record is found by its id, with every attribute as inserted.
pub async fn insert_then_find_by_id(fixture: &dyn StorageFixture) {
    let storage = fixture.storage();
    assert!(
        !storage.name().is_empty(),
        "Storage::name must not be empty"
    );
    let model = fixture.model("user").await;
    let inserted = json!({"id": 7, "name": "Ada", "tags": ["x"], "address": {"city": "Paris"}});
    insert(storage, &model, inserted.clone()).await;
    insert(storage, &model, json!({"id": 8, "name": "Bob"})).await;
    assert_eq!(
        as_written(
            fixture,
            find(storage, &model, &Filter::eq("id", json!(7)), 10).await
        ),
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
pub async fn find_filters_and_limits(fixture: &dyn StorageFixture) {
    let storage = fixture.storage();
    let model = fixture.model("user").await;
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
    assert_eq!(
        find(storage, &model, &Filter::default(), usize::MAX)
            .await
            .len(),
        4,
        "{}: `usize::MAX` as the limit means no limit",
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
    // `email` is one of the suite's columns that these records never set.
    assert!(
        find(storage, &model, &Filter::eq("email", json!("a@x")), 10)
            .await
            .is_empty(),
        "{}: a condition on an absent attribute must match nothing",
        storage.name()
    );
}

/// `find` returns records in insertion order (in primary-key order with a
/// fixed schema).
pub async fn find_preserves_insertion_order(fixture: &dyn StorageFixture) {
    let storage = fixture.storage();
    let model = fixture.model("post").await;
    let order = [5, 3, 9, 1, 7];
    for id in order {
        insert(storage, &model, json!({"id": id, "kind": "post"})).await;
    }
    let (expected, promise) = match fixture.schema() {
        Schema::Schemaless => (order.to_vec(), "insertion order"),
        Schema::Fixed => {
            let mut sorted = order.to_vec();
            sorted.sort_unstable();
            (sorted, "primary-key order")
        }
    };
    assert_eq!(
        ids(&find(storage, &model, &Filter::eq("kind", json!("post")), 10).await),
        expected.iter().map(|id| json!(id)).collect::<Vec<_>>(),
        "{}: find must return records in {promise}",
        storage.name()
    );
}

/// `update` sets the given attributes on every matching record, keeps the
/// others, and returns how many records matched (0 when none did, and
/// matched records count even when they already held the values).
pub async fn update_sets_given_attributes(fixture: &dyn StorageFixture) {
    let storage = fixture.storage();
    let model = fixture.model("user").await;
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
        as_written(
            fixture,
            find(storage, &model, &Filter::eq("id", json!(1)), 10).await
        ),
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
        update(
            storage,
            &model,
            &Filter::eq("id", json!(3)),
            json!({"age": 50})
        )
        .await,
        1,
        "{}: update must count a matching record that already held the values (matched, not changed)",
        storage.name()
    );
    assert_eq!(
        as_written(
            fixture,
            find(storage, &model, &Filter::eq("id", json!(3)), 10).await
        ),
        vec![record(
            json!({"id": 3, "name": "Cy", "age": 50, "group": "b"})
        )],
        "{}: update must not touch records that do not match",
        storage.name()
    );
}

/// `delete` removes every matching record and returns how many it removed.
pub async fn delete_removes_matching(fixture: &dyn StorageFixture) {
    let storage = fixture.storage();
    let model = fixture.model("user").await;
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
pub async fn models_are_separate(fixture: &dyn StorageFixture) {
    let storage = fixture.storage();
    let (users, posts) = (fixture.model("user").await, fixture.model("post").await);
    insert(storage, &users, json!({"id": 1, "title": "user"})).await;
    insert(storage, &posts, json!({"id": 1, "title": "post"})).await;
    let by_id = Filter::eq("id", json!(1));
    assert_eq!(
        as_written(fixture, find(storage, &users, &by_id, 10).await),
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
        as_written(fixture, find(storage, &users, &by_id, 10).await),
        vec![record(json!({"id": 1, "title": "user"}))],
        "{}: updating and deleting in one model must not touch another",
        storage.name()
    );
}

/// Finding in a model nothing was ever written to returns no records, not an error.
pub async fn find_unknown_model_is_empty(fixture: &dyn StorageFixture) {
    let storage = fixture.storage();
    let model = fixture.model("never-written").await;
    assert!(
        find(storage, &model, &Filter::default(), 10)
            .await
            .is_empty(),
        "{}: a model never written to has no records",
        storage.name()
    );
    assert_eq!(
        update(storage, &model, &Filter::default(), json!({"name": "x"})).await,
        0
    );
    assert_eq!(delete(storage, &model, &Filter::default()).await, 0);
}

/// Writes made in a transaction are seen inside it, by nobody else before
/// the commit, and by everybody after it.
pub async fn transaction_commits_atomically(fixture: &dyn StorageFixture) {
    let storage = fixture.storage();
    let model = fixture.model("user").await;
    insert(storage, &model, json!({"id": 1, "name": "Ada"})).await;
    let Some(tx) = begin(storage).await else {
        return;
    };
    insert(tx.storage(), &model, json!({"id": 2, "name": "Bob"})).await;
    assert_eq!(
        update(
            tx.storage(),
            &model,
            &Filter::eq("id", json!(1)),
            json!({"name": "Ada L."})
        )
        .await,
        1,
        "{}: an update in a transaction must count the rows it matched",
        storage.name()
    );
    assert_eq!(
        ids(&find(tx.storage(), &model, &Filter::default(), 10).await),
        vec![json!(1), json!(2)],
        "{}: a transaction must see its own writes",
        storage.name()
    );
    assert_eq!(
        as_written(fixture, find(storage, &model, &Filter::default(), 10).await),
        vec![record(json!({"id": 1, "name": "Ada"}))],
        "{}: writes of a transaction must be invisible outside it before the commit",
        storage.name()
    );
    commit(tx).await;
    assert_eq!(
        as_written(fixture, find(storage, &model, &Filter::default(), 10).await),
        vec![
            record(json!({"id": 1, "name": "Ada L."})),
            record(json!({"id": 2, "name": "Bob"}))
        ],
        "{}: writes of a transaction must be visible once it committed",
        storage.name()
    );
}

/// A transaction dropped without committing leaves nothing behind: neither
/// its writes nor the versions it recorded.
pub async fn dropped_transaction_leaves_nothing(fixture: &dyn StorageFixture) {
    let storage = fixture.storage();
    let model = fixture.model("user").await;
    let counter = unique("counter");
    insert(storage, &model, json!({"id": 1, "name": "Ada"})).await;
    let Some(tx) = begin(storage).await else {
        return;
    };
    insert(tx.storage(), &model, json!({"id": 2, "name": "Bob"})).await;
    update(
        tx.storage(),
        &model,
        &Filter::eq("id", json!(1)),
        json!({"name": "gone"}),
    )
    .await;
    delete(tx.storage(), &model, &Filter::eq("id", json!(1))).await;
    record_applied(tx.as_ref(), &[(&counter, 4)]).await;
    drop(tx);
    assert_eq!(
        as_written(fixture, find(storage, &model, &Filter::default(), 10).await),
        vec![record(json!({"id": 1, "name": "Ada"}))],
        "{}: a transaction dropped without committing must leave no write behind",
        storage.name()
    );
    let Some(tx) = begin(storage).await else {
        return;
    };
    assert_eq!(
        applied(tx.as_ref(), &[counter]).await,
        vec![0],
        "{}: versions recorded in a transaction dropped without committing must be forgotten",
        storage.name()
    );
}

/// Applied versions are 0 for keys never recorded, read back in the order
/// asked, never lowered, and kept once committed.
pub async fn applied_versions_round_trip(fixture: &dyn StorageFixture) {
    let storage = fixture.storage();
    let Some(tx) = begin(storage).await else {
        return;
    };
    let name = storage.name();
    let (a, b, c) = (
        unique("counter-a"),
        unique("counter-b"),
        unique("counter-c"),
    );
    assert_eq!(
        applied(tx.as_ref(), &[a.clone(), b.clone()]).await,
        vec![0, 0],
        "{name}: keys never recorded have version 0"
    );
    assert!(
        applied(tx.as_ref(), &[]).await.is_empty(),
        "{name}: no keys, no versions"
    );
    record_applied(tx.as_ref(), &[(&a, 5), (&b, 3)]).await;
    assert_eq!(
        applied(tx.as_ref(), &[a.clone(), b.clone()]).await,
        vec![5, 3],
        "{name}: recorded versions must read back inside the transaction"
    );
    record_applied(tx.as_ref(), &[(&a, 2), (&b, 9)]).await;
    record_applied(tx.as_ref(), &[(&c, 4), (&c, 7), (&c, 6)]).await;
    assert_eq!(
        applied(tx.as_ref(), &[b.clone(), a.clone(), c.clone(), b.clone()]).await,
        vec![9, 5, 7, 9],
        "{name}: a recorded version must never be lowered, and versions come back in the order of the keys asked"
    );
    commit(tx).await;
    let Some(tx) = begin(storage).await else {
        return;
    };
    assert_eq!(
        applied(tx.as_ref(), &[a.clone(), b.clone(), c.clone()]).await,
        vec![5, 9, 7],
        "{name}: committed versions must be seen by later transactions"
    );
    record_applied(tx.as_ref(), &[(&a, 1)]).await;
    commit(tx).await;
    let Some(tx) = begin(storage).await else {
        return;
    };
    assert_eq!(
        applied(tx.as_ref(), &[a]).await,
        vec![5],
        "{name}: recording a smaller version in a later transaction must leave the larger"
    );
}

/// Versions recorded in a transaction are rolled back with it, leaving the
/// committed ones.
pub async fn applied_versions_roll_back(fixture: &dyn StorageFixture) {
    let storage = fixture.storage();
    let Some(tx) = begin(storage).await else {
        return;
    };
    let (a, b) = (unique("counter-a"), unique("counter-b"));
    record_applied(tx.as_ref(), &[(&a, 3)]).await;
    commit(tx).await;
    let Some(tx) = begin(storage).await else {
        return;
    };
    record_applied(tx.as_ref(), &[(&a, 8), (&b, 2)]).await;
    drop(tx);
    let Some(tx) = begin(storage).await else {
        return;
    };
    assert_eq!(
        applied(tx.as_ref(), &[a, b]).await,
        vec![3, 0],
        "{}: versions recorded in a rolled-back transaction must be forgotten, committed ones kept",
        storage.name()
    );
}

/// `scan` pages through the matching records in key order, each exactly
/// once, starting after the key given.
pub async fn scan_pages_in_key_order(fixture: &dyn StorageFixture) {
    let storage = fixture.storage();
    let model = fixture.model("user").await;
    for id in [5, -3, 12, 0, 7, 2] {
        let group = if id % 2 == 0 { "even" } else { "odd" };
        insert(storage, &model, json!({"id": id, "group": group})).await;
    }
    let mut seen = Vec::new();
    let mut after: Option<Value> = None;
    loop {
        let page = match tokio::time::timeout(
            PATIENCE,
            storage.scan(&model, &Filter::default(), after.as_ref(), 4),
        )
        .await
        {
            Ok(Ok(page)) => page,
            Ok(Err(e)) => panic!("{}: scan of {model} failed: {e}", storage.name()),
            Err(_) => panic!("{}: scan of {model} hung", storage.name()),
        };
        assert!(
            page.len() <= 4,
            "{}: scan returned more than its limit",
            storage.name()
        );
        seen.extend(ids(&page));
        match page.last() {
            Some(last) if page.len() == 4 => after = last.get("id").cloned(),
            _ => break,
        }
    }
    assert_eq!(
        seen,
        [-3, 0, 2, 5, 7, 12].map(|i| json!(i)).to_vec(),
        "{}: pages of a scan must visit every record once, in key order",
        storage.name()
    );
    let even = storage
        .scan(
            &model,
            &Filter::eq("group", json!("even")),
            Some(&json!(0)),
            10,
        )
        .await
        .expect("scan");
    assert_eq!(
        ids(&even),
        vec![json!(2), json!(12)],
        "{}: a scan filters, and starts after the key given",
        storage.name()
    );
}

/// `upsert` inserts a record whose key is new and updates the one with its
/// key otherwise, keeping the attributes it does not set.
pub async fn upsert_inserts_or_updates(fixture: &dyn StorageFixture) {
    let storage = fixture.storage();
    let model = fixture.model("user").await;
    let name = storage.name();
    let inserted = storage
        .upsert(&model, &record(json!({"id": 1, "name": "Ada", "age": 36})))
        .await
        .expect("upsert");
    assert!(inserted, "{name}: upsert of a new key inserts");
    let inserted = storage
        .upsert(&model, &record(json!({"id": 1, "name": "Ada L."})))
        .await
        .expect("upsert");
    assert!(!inserted, "{name}: upsert of an existing key updates");
    assert_eq!(
        as_written(fixture, find(storage, &model, &Filter::default(), 10).await),
        vec![record(json!({"id": 1, "name": "Ada L.", "age": 36}))],
        "{name}: upsert keeps one record per key, and the attributes it does not set"
    );
}

async fn versioned(
    storage: &dyn Storage,
    model: &str,
    id: i64,
    write: VersionedWrite,
    version: u128,
) -> Versioned {
    match tokio::time::timeout(
        PATIENCE,
        storage.write_versioned(model, &json!(id), write, version),
    )
    .await
    {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(e)) => panic!("{}: write_versioned on {model} failed: {e}", storage.name()),
        Err(_) => panic!("{}: write_versioned on {model} hung", storage.name()),
    }
}

/// Versioned writes apply only over an older version, and say why not
/// otherwise; a deleted record keeps its version; a stamp fences out older
/// writes. Skipped on a store without versioned writes.
pub async fn versioned_writes_apply_only_over_older_versions(fixture: &dyn StorageFixture) {
    let storage = fixture.storage();
    if !storage.capabilities().versioned_writes {
        return;
    }
    let name = storage.name();
    let model = fixture.model("user").await;
    let ada = || record(json!({"id": 1, "name": "Ada"}));
    let named = |name: &str| record(json!({ "name": name }));
    use VersionedWrite::*;
    let steps: Vec<(VersionedWrite, u128, Versioned, &str)> = vec![
        (
            Update(ada()),
            1,
            Versioned::Missing,
            "update of a missing record",
        ),
        (Stamp, 2, Versioned::Missing, "stamp of a missing record"),
        (
            Insert(ada()),
            2,
            Versioned::Stale { stored: 2 },
            "the stamp of a missing record leaves a tombstone that fences a create at its version",
        ),
        (
            Insert(ada()),
            5,
            Versioned::Written,
            "insert of a new record",
        ),
        (
            Insert(ada()),
            6,
            Versioned::Exists,
            "insert over an older version",
        ),
        (
            Insert(ada()),
            5,
            Versioned::Stale { stored: 5 },
            "insert at the stored version",
        ),
        (
            Update(named("old")),
            4,
            Versioned::Stale { stored: 5 },
            "an older update is refused",
        ),
        (
            Upsert(record(json!({"id": 1, "name": "Ada L."}))),
            7,
            Versioned::Written,
            "a newer upsert applies",
        ),
        (Stamp, 9, Versioned::Written, "a stamp raises the version"),
        (
            Update(named("fenced")),
            8,
            Versioned::Stale { stored: 9 },
            "a write below a stamp is fenced out",
        ),
    ];
    for (write, version, expected, what) in steps {
        assert_eq!(
            versioned(storage, &model, 1, write, version).await,
            expected,
            "{name}: {what}"
        );
    }
    assert_eq!(
        as_written(
            fixture,
            find(storage, &model, &Filter::eq("id", json!(1)), 5).await
        ),
        vec![record(json!({"id": 1, "name": "Ada L."}))],
        "{name}: refused writes change nothing"
    );
    assert_eq!(
        versioned(storage, &model, 1, Delete, 10).await,
        Versioned::Written,
        "{name}: a newer delete applies"
    );
    let gone = find(storage, &model, &Filter::eq("id", json!(1)), 5).await;
    assert!(gone.is_empty(), "{name}: deleted");
    let steps: Vec<(VersionedWrite, u128, Versioned, &str)> = vec![
        (
            Upsert(ada()),
            8,
            Versioned::Stale { stored: 10 },
            "a stale write cannot bring a deleted record back",
        ),
        (Upsert(ada()), 11, Versioned::Written, "a newer one can"),
    ];
    for (write, version, expected, what) in steps {
        assert_eq!(
            versioned(storage, &model, 1, write, version).await,
            expected,
            "{name}: {what}"
        );
    }
    let racing = futures::future::join_all((20..30).map(|version| {
        versioned(
            storage,
            &model,
            1,
            Update(record(json!({"name": format!("v{version}")}))),
            version,
        )
    }))
    .await;
    let written = racing.iter().filter(|o| **o == Versioned::Written).count();
    assert!(
        written >= 1,
        "{name}: of racing writes, the newest at least applies"
    );
    assert_eq!(
        as_written(
            fixture,
            find(storage, &model, &Filter::eq("id", json!(1)), 5).await
        ),
        vec![record(json!({"id": 1, "name": "v29"}))],
        "{name}: racing versioned writes end with the newest"
    );
}

/// The outbox of a store with transactions: an entry staged in a
/// transaction appears with its commit (never without), is claimed by one
/// caller, unclaimed and removed by its publication; a fence returns the
/// committed entry, or stores the noop in its place so the transaction can
/// no longer commit its own. Skipped on a store without an outbox.
pub async fn outbox_entries_follow_their_transaction(fixture: &dyn StorageFixture) {
    let storage = fixture.storage();
    let Some(outbox) = storage.outbox() else {
        return;
    };
    let name = storage.name();
    let app = unique("app");
    let claim = std::time::Duration::from_millis(200);
    let (committed, rolled_back, fenced) = (unique("pub"), unique("pub"), unique("pub"));
    let Some(tx) = begin(storage).await else {
        panic!("{name}: a store with an outbox has transactions");
    };
    tx.stage_message(&app, &committed, b"{\"m\":1}", claim)
        .await
        .expect("stage_message");
    assert_eq!(
        outbox.len(&app).await.expect("len"),
        0,
        "{name}: invisible before the commit"
    );
    commit(tx).await;
    assert_eq!(
        outbox.len(&app).await.expect("len"),
        1,
        "{name}: visible after the commit"
    );
    let Some(tx) = begin(storage).await else {
        return;
    };
    tx.stage_message(&app, &rolled_back, b"{\"m\":2}", claim)
        .await
        .expect("stage_message");
    drop(tx);
    assert_eq!(
        outbox.len(&app).await.expect("len"),
        1,
        "{name}: a rolled-back entry is gone"
    );
    assert!(
        outbox
            .unclaimed(&app, 10)
            .await
            .expect("unclaimed")
            .is_empty(),
        "{name}: a claimed entry is not listed"
    );
    tokio::time::sleep(claim * 2).await;
    let listed = outbox.unclaimed(&app, 10).await.expect("unclaimed");
    assert_eq!(
        listed.len(),
        1,
        "{name}: an entry whose claim expired is listed"
    );
    assert_eq!(
        (listed[0].intent.as_str(), listed[0].payload.as_slice()),
        (committed.as_str(), &b"{\"m\":1}"[..])
    );
    let first = outbox.claim(&listed[0], claim).await.expect("claim");
    let second = outbox.claim(&listed[0], claim).await.expect("claim");
    assert!(first && !second, "{name}: one caller wins a claim");
    match outbox
        .fence(&app, &committed, b"noop", claim)
        .await
        .expect("fence")
    {
        Fence::Committed(entry) => assert_eq!(entry.payload, b"{\"m\":1}"),
        other => panic!("{name}: fencing a committed publication returns its entry, not {other:?}"),
    }
    match outbox
        .fence(&app, &fenced, b"noop", claim)
        .await
        .expect("fence")
    {
        Fence::Fenced(entry) => assert_eq!(entry.payload, b"noop"),
        other => panic!("{name}: fencing an unknown publication stores the noop, not {other:?}"),
    }
    let Some(tx) = begin(storage).await else {
        return;
    };
    let late = match tx.stage_message(&app, &fenced, b"{\"m\":3}", claim).await {
        Ok(()) => tx.commit().await,
        Err(e) => {
            drop(tx);
            Err(e)
        }
    };
    assert!(
        late.is_err(),
        "{name}: a fenced publication's transaction cannot store its entry"
    );
    outbox
        .unclaim(std::slice::from_ref(&fenced))
        .await
        .expect("unclaim");
    assert!(
        outbox
            .unclaimed(&app, 10)
            .await
            .expect("unclaimed")
            .iter()
            .any(|e| e.intent == fenced),
        "{name}: an unclaimed entry is listed at once"
    );
    outbox
        .remove(&[committed, fenced, unique("unknown")])
        .await
        .expect("remove");
    assert_eq!(
        outbox.len(&app).await.expect("len"),
        0,
        "{name}: removed by publication"
    );
}

/// Runs every function of this suite against `fixture` (any [`Storage`] is one).
pub async fn run_all(fixture: &dyn StorageFixture) {
    insert_then_find_by_id(fixture).await;
    find_filters_and_limits(fixture).await;
    find_preserves_insertion_order(fixture).await;
    update_sets_given_attributes(fixture).await;
    delete_removes_matching(fixture).await;
    models_are_separate(fixture).await;
    find_unknown_model_is_empty(fixture).await;
    transaction_commits_atomically(fixture).await;
    dropped_transaction_leaves_nothing(fixture).await;
    applied_versions_round_trip(fixture).await;
    applied_versions_roll_back(fixture).await;
    scan_pages_in_key_order(fixture).await;
    upsert_inserts_or_updates(fixture).await;
    versioned_writes_apply_only_over_older_versions(fixture).await;
    outbox_entries_follow_their_transaction(fixture).await;
}
