//! Cost of publishing sea-orm writes through the outbox, as a ratio to the
//! same writes with plain sea-orm, and the rate of an initial sync, in one run.
//!
//! ```sh
//! cargo bench -p promiscuous-benches --bench sql                          # SQLite file
//! cargo bench -p promiscuous-benches --bench sql -- --engine postgres     # or mariadb
//! ```
//!
//! Plain: each row inserted in a transaction of its own. Published: the same
//! through `SqlPublisher::insert` (lock, outbox row, commit, version counters,
//! publish to the in-process broker, outbox row removed). Sync: rows per
//! second published by `InitialSync` (batches of 100, one message each).

use std::time::Instant;

use clap::{Parser, ValueEnum};
use promiscuous::sql::testkit::{Engine, TestDatabase};
use promiscuous::sql::SqlPublisher;
use promiscuous::Promiscuous;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ConnectionTrait, Schema, TransactionTrait};

mod item {
    use promiscuous::Publish;
    use sea_orm::entity::prelude::*;
    use serde::{Deserialize, Serialize};

    /// A published row.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize, Publish)]
    #[sea_orm(table_name = "items")]
    #[publish(model = "Item")]
    pub struct Model {
        /// Assigned by the database.
        #[sea_orm(primary_key)]
        pub id: i64,
        /// Published.
        #[publish]
        pub name: String,
        /// Published.
        #[publish]
        pub price: i64,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum EngineArg {
    Sqlite,
    Postgres,
    Mariadb,
}

#[derive(Parser, Debug)]
#[command(about = "Publishing sea-orm writes, as a ratio to plain sea-orm writes")]
struct Args {
    /// Rows per measurement.
    #[arg(long, default_value_t = 2_000)]
    rows: i64,
    /// The database.
    #[arg(long, value_enum, default_value_t = EngineArg::Sqlite)]
    engine: EngineArg,
    /// Accepted for `cargo bench` compatibility.
    #[arg(long, hide = true)]
    bench: bool,
}

fn row(i: i64) -> item::ActiveModel {
    item::ActiveModel {
        name: Set(format!("item {i}")),
        price: Set(i),
        ..Default::default()
    }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let engine = match args.engine {
        EngineArg::Sqlite => Engine::Sqlite,
        EngineArg::Postgres => Engine::Postgres,
        EngineArg::Mariadb => Engine::MariaDb,
    };
    let database = TestDatabase::create(engine, "bench").await;
    let db = database.connection();
    let table = Schema::new(db.get_database_backend()).create_table_from_entity(item::Entity);
    db.execute(&table)
        .await
        .expect("the items table is created");
    promiscuous::sql::migrate(db)
        .await
        .expect("the adapter's tables are created");
    let promiscuous = Promiscuous::configure()
        .app("bench")
        .broker_url("memory://sql-bench")
        .redis_url("memory://sql-bench")
        .no_subscribers()
        .build()
        .await
        .expect("the configuration is valid");
    let publisher = SqlPublisher::builder(promiscuous, db.clone())
        .entity::<item::Entity>()
        .build()
        .expect("the entity is publishable");

    let started = Instant::now();
    for i in 0..args.rows {
        let tx = db.begin().await.unwrap();
        row(i).insert(&tx).await.unwrap();
        tx.commit().await.unwrap();
    }
    let plain = args.rows as f64 / started.elapsed().as_secs_f64();

    let started = Instant::now();
    for i in 0..args.rows {
        publisher.insert(row(i)).await.unwrap();
    }
    let published = args.rows as f64 / started.elapsed().as_secs_f64();

    let started = Instant::now();
    let report = publisher
        .sync::<item::Entity>()
        .progress(false)
        .run()
        .await
        .unwrap();
    let synced = report.published as f64 / started.elapsed().as_secs_f64();

    println!("engine {engine:?}, {} rows", args.rows);
    println!("plain sea-orm inserts   {plain:>10.0} rows/s");
    println!("published inserts       {published:>10.0} rows/s");
    println!("ratio                   {:>10.2}", published / plain);
    println!(
        "initial sync            {synced:>10.0} rows/s ({} rows)",
        report.published
    );
}
