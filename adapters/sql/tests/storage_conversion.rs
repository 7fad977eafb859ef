//! JSON values through `SqlStorage` on SQLite, PostgreSQL and MariaDB: what
//! does not fit a column is refused with an error naming the model, the
//! column and the value; what is stored reads back with its JSON type.

use async_trait::async_trait;
use promiscuous_core::error::chain;
use promiscuous_core::model::{Callbacks, Subscribe, SubscribedAttribute, SubscriberDef};
use promiscuous_core::traits::{Filter, Record, Storage};
use promiscuous_sql::testkit::{Engine, TestDatabase};
use promiscuous_sql::{ColumnInfo, SqlStorage, TableInfo};
use sea_orm::sea_query::ColumnType;
use sea_orm::ConnectionTrait;
use serde_json::{json, Value};

/// A subscribed sea-orm entity, its `Model` being the subscriber struct.
mod person {
    use sea_orm::entity::prelude::*;
    use serde::{Deserialize, Serialize};

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
    #[sea_orm(table_name = "people")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub name: String,
        pub age: Option<i64>,
        pub active: bool,
        #[sea_orm(column_type = "Json", nullable)]
        pub profile: Option<Json>,
        pub nickname: Option<String>,
        pub score: Option<f64>,
        pub small: Option<i16>,
        #[sea_orm(column_type = "String(StringLen::N(5))", nullable)]
        pub code: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

#[async_trait]
impl Callbacks for person::Model {}

static PERSON: SubscriberDef = SubscriberDef {
    model: "Person",
    as_name: "Person",
    from: None,
    parent: None,
    attributes: &[
        SubscribedAttribute {
            name: "name",
            embedded: false,
        },
        SubscribedAttribute {
            name: "age",
            embedded: false,
        },
    ],
    foreign_key: None,
    observer: false,
};

impl Subscribe for person::Model {
    fn definition() -> &'static SubscriberDef {
        &PERSON
    }
}

fn record(value: Value) -> Record {
    value.as_object().cloned().unwrap_or_default()
}

async fn storage_on(engine: Engine) -> (TestDatabase, SqlStorage) {
    let db = TestDatabase::create(engine, "storage_conversion").await;
    promiscuous_sql::migrate(db.connection())
        .await
        .expect("migrated");
    db.connection()
        .execute(&TableInfo::of::<person::Entity>().create_table())
        .await
        .expect("people created");
    let storage = SqlStorage::new(db.connection().clone()).subscribed::<person::Entity>();
    (db, storage)
}

/// Inserting `value` into Person fails; the error's text.
async fn refused(storage: &SqlStorage, value: Value) -> String {
    match storage.insert("Person", &record(value.clone())).await {
        Ok(()) => panic!("inserting {value} must fail"),
        Err(e) => chain(&e),
    }
}

fn assert_names(error: &str, parts: &[&str]) {
    for part in parts {
        assert!(error.contains(part), "the error must name {part}: {error}");
    }
}

async fn values_that_do_not_fit_are_named(engine: Engine) {
    let (_db, storage) = storage_on(engine).await;
    let error = refused(
        &storage,
        json!({"id": 1, "name": "Ada", "active": true, "age": "abc"}),
    )
    .await;
    assert_names(
        &error,
        &["Person", "age", "\"abc\"", "BIGINT", "whole number"],
    );

    let error = refused(
        &storage,
        json!({"id": 1, "name": "Ada", "active": true, "nope": 1}),
    )
    .await;
    assert_names(&error, &["Person", "nope", "people"]);

    let error = refused(&storage, json!({"id": 1, "name": null, "active": true})).await;
    assert_names(&error, &["Person", "name", "NOT NULL"]);

    let error = refused(
        &storage,
        json!({"id": 1, "name": "Ada", "active": true, "small": 70000}),
    )
    .await;
    assert_names(&error, &["Person", "small", "70000", "32767"]);

    let error = refused(&storage, json!({"id": 1, "name": "Ada", "active": "yes"})).await;
    assert_names(&error, &["Person", "active", "\"yes\"", "true or false"]);

    let error = refused(
        &storage,
        json!({"id": 1, "name": "Ada", "active": true, "code": "toolong"}),
    )
    .await;
    assert_names(&error, &["Person", "code", "at most 5"]);

    let error = storage
        .find("Nobody", &Filter::default(), 1)
        .await
        .expect_err("an unregistered model is refused");
    let error = chain(&error);
    assert_names(&error, &["Nobody", "SqlStorage::entity", "Person"]);

    let error = storage
        .find("Person", &Filter::eq("missing", json!(1)), 1)
        .await
        .expect_err("a filter on an unknown column is refused");
    let error = chain(&error);
    assert_names(&error, &["Person", "missing"]);

    assert!(
        storage
            .find("Person", &Filter::default(), 10)
            .await
            .expect("find")
            .is_empty(),
        "{engine:?}: refused records must not be stored"
    );
}

async fn values_read_back_with_their_types(engine: Engine) {
    let (_db, storage) = storage_on(engine).await;
    let ada = json!({
        "name": "Ada", "age": 36, "active": true, "profile": {"langs": ["en", "fr"], "n": 1},
        "nickname": null, "score": 1.5, "small": -3, "code": "abc"
    });
    storage
        .insert("Person", &record(ada))
        .await
        .expect("insert without id");
    storage
        .insert(
            "Person",
            &record(json!({"name": "Bob", "active": 1, "age": "42"})),
        )
        .await
        .expect("insert with 1 for true and a string of digits");

    let found = storage
        .find("Person", &Filter::default(), 10)
        .await
        .expect("find");
    assert_eq!(
        found,
        vec![
            record(json!({
                "id": 1, "name": "Ada", "age": 36, "active": true,
                "profile": {"langs": ["en", "fr"], "n": 1},
                "nickname": null, "score": 1.5, "small": -3, "code": "abc"
            })),
            record(json!({
                "id": 2, "name": "Bob", "age": 42, "active": true, "profile": null,
                "nickname": null, "score": null, "small": null, "code": null
            })),
        ],
        "{engine:?}: records must read back with the database's generated ids and JSON types"
    );
    let ada = &found[0];
    assert!(
        ada["active"].is_boolean(),
        "{engine:?}: booleans read back as booleans"
    );
    assert!(
        ada["age"].is_i64(),
        "{engine:?}: integers read back as integers"
    );
    assert!(
        ada["profile"].is_object(),
        "{engine:?}: JSON objects read back as objects"
    );
    let model: person::Model = serde_json::from_value(Value::Object(ada.clone()))
        .expect("the entity's Model deserialises");
    assert_eq!(
        (model.id, model.small, model.profile.is_some()),
        (1, Some(-3), true)
    );

    let by_null = Filter::eq("nickname", Value::Null);
    assert_eq!(
        storage
            .find("Person", &by_null, 10)
            .await
            .expect("find")
            .len(),
        2,
        "{engine:?}: null filters match NULL"
    );
    let bob = Filter::eq("name", json!("Bob"));
    assert_eq!(
        storage
            .update("Person", &bob, &record(json!({"id": 99, "age": 43})))
            .await
            .expect("update"),
        1
    );
    assert_eq!(
        storage
            .update("Person", &bob, &record(json!({"id": 99})))
            .await
            .expect("update of keys only"),
        1,
        "{engine:?}: an update that sets nothing still reports the rows matched"
    );
    let bob = storage.find("Person", &bob, 10).await.expect("find");
    assert_eq!(
        (bob[0]["id"].clone(), bob[0]["age"].clone()),
        (json!(2), json!(43)),
        "{engine:?}: keys are not updated"
    );
}

async fn other_types_read_back_as_written(engine: Engine) {
    let db = TestDatabase::create(engine, "storage_types").await;
    let table = TableInfo::new("things")
        .column(ColumnInfo::new("id", ColumnType::BigInteger).primary_key())
        .column(ColumnInfo::new("at", ColumnType::DateTime))
        .column(ColumnInfo::new("day", ColumnType::Date))
        .column(ColumnInfo::new("price", ColumnType::Decimal(Some((10, 2)))))
        .column(ColumnInfo::new("uid", ColumnType::Uuid))
        .column(ColumnInfo::new("ratio", ColumnType::Float))
        .column(ColumnInfo::new("data", ColumnType::Blob))
        .column(ColumnInfo::new("count", ColumnType::Integer))
        .column(ColumnInfo::new("doc", ColumnType::JsonBinary))
        .column(ColumnInfo::new("note", ColumnType::Text));
    db.connection()
        .execute(&table.create_table())
        .await
        .expect("things created");
    let storage = SqlStorage::new(db.connection().clone()).table("Thing", table);
    let thing = json!({
        "id": 1, "at": "2024-01-31T12:34:56", "day": "2024-01-31", "price": "12.50",
        "uid": "67e55044-10b1-426f-9247-bb680e5fe0c8", "ratio": 0.1, "data": [1, 2, 255],
        "count": 7, "doc": [1, {"a": null}], "note": {"kept": "as JSON text"}
    });
    storage
        .insert("Thing", &record(thing))
        .await
        .expect("insert");
    let found = storage
        .find("Thing", &Filter::eq("id", json!(1)), 1)
        .await
        .expect("find");
    assert_eq!(
        found,
        vec![record(json!({
            "id": 1, "at": "2024-01-31T12:34:56", "day": "2024-01-31", "price": 12.5,
            "uid": "67e55044-10b1-426f-9247-bb680e5fe0c8", "ratio": 0.1, "data": [1, 2, 255],
            "count": 7, "doc": [1, {"a": null}], "note": "{\"kept\":\"as JSON text\"}"
        }))],
        "{engine:?}: dates, decimals, UUIDs, floats, bytes and JSON must read back as written"
    );
    for (column, value) in [
        ("at", json!("2024-01-31T12:34:56")),
        ("day", json!("2024-01-31")),
        ("price", json!(12.5)),
        ("uid", json!("67e55044-10b1-426f-9247-bb680e5fe0c8")),
        ("count", json!("7")),
    ] {
        let filter = Filter::eq(column, value);
        assert_eq!(
            storage
                .find("Thing", &filter, 1)
                .await
                .map(|r| r.len())
                .map_err(|e| chain(&e)),
            Ok(1),
            "{engine:?}: find where {filter}"
        );
    }
}

async fn missing_applied_table_says_to_migrate(engine: Engine) {
    let db = TestDatabase::create(engine, "storage_unmigrated").await;
    let storage = SqlStorage::new(db.connection().clone());
    let tx = storage
        .begin()
        .await
        .expect("begin")
        .expect("sea-orm has transactions");
    let error = tx
        .applied_versions(&["some-counter".to_owned()])
        .await
        .expect_err("the table is missing");
    let error = chain(&error);
    assert_names(&error, &["promiscuous_applied", "promiscuous_sql::migrate"]);
}

async fn all_checks(engine: Engine) {
    values_that_do_not_fit_are_named(engine).await;
    values_read_back_with_their_types(engine).await;
    other_types_read_back_as_written(engine).await;
    missing_applied_table_says_to_migrate(engine).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_conversions() {
    all_checks(Engine::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_conversions() {
    all_checks(Engine::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_conversions() {
    all_checks(Engine::MariaDb).await;
}
