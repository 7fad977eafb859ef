//! A `User` replicated from a publisher service to a subscriber service, each
//! with its own SQLite file, through sea-orm.
//!
//! With no server (in-process broker, memory clock):
//!
//! ```text
//! cargo run -p sql-replication
//! ```
//!
//! Through RabbitMQ and Redis:
//!
//! ```text
//! cargo run -p sql-replication --features amqp,redis -- \
//!     --amqp-url amqp://guest:guest@127.0.0.1:5672/%2f --redis-url redis://127.0.0.1:6379/
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use promiscuous::sql::{SqlPublisher, SqlStorage};
use promiscuous::Promiscuous;
use sea_orm::{
    ActiveValue::Set, ConnectionTrait, Database, DatabaseConnection, EntityTrait, IntoActiveModel,
    QueryOrder, Schema,
};

/// The publisher service's users.
mod publisher_service {
    pub mod user {
        use promiscuous::Publish;
        use sea_orm::entity::prelude::*;
        use serde::{Deserialize, Serialize};

        /// A user, owned by the publisher service.
        #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize, Publish)]
        #[sea_orm(table_name = "users")]
        #[publish(model = "User", to = "accounts/user")]
        pub struct Model {
            /// Assigned by the database.
            #[sea_orm(primary_key)]
            pub id: i64,
            /// Published.
            #[publish]
            pub name: String,
            /// Published.
            #[publish]
            pub email: String,
            /// Never leaves the publisher.
            pub password_hash: String,
        }

        /// No relations.
        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}

        // Writes that do not go through the publisher are refused: they
        // would never be published.
        promiscuous::sql::published_writes_only!(ActiveModel);
    }
}

/// The subscriber service's copy of users.
mod subscriber_service {
    pub mod user {
        use promiscuous::Subscribe;
        use sea_orm::entity::prelude::*;
        use serde::{Deserialize, Serialize};

        /// A replicated user.
        #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize, Subscribe)]
        #[sea_orm(table_name = "users")]
        #[subscribe(model = "User", from = "accounts/user")]
        pub struct Model {
            /// The publisher's id.
            #[sea_orm(primary_key, auto_increment = false)]
            pub id: i64,
            /// Subscribed.
            #[subscribe]
            pub name: String,
            /// Subscribed.
            #[subscribe]
            pub email: String,
        }

        /// No relations.
        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}

        impl ActiveModelBehavior for ActiveModel {}
    }
}

use publisher_service::user as source;
use subscriber_service::user as replica;

/// Replicates users between two SQLite files.
#[derive(Debug, Parser)]
struct Args {
    /// RabbitMQ URL (or `PROMISCUOUS_AMQP_URL`); the in-process broker when absent.
    #[arg(long)]
    amqp_url: Option<String>,
    /// Redis URL (or `PROMISCUOUS_REDIS_URL`) for locks and version counters; memory when absent.
    #[arg(long)]
    redis_url: Option<String>,
    /// Where the two SQLite files go (default: a new temporary directory).
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// Opens (creating it if needed) a service's SQLite file, with the table of
/// entity `E` and the adapter's tables.
async fn open<E: EntityTrait>(
    path: &std::path::Path,
    entity: E,
) -> Result<DatabaseConnection, Box<dyn std::error::Error>> {
    let db = Database::connect(format!("sqlite://{}?mode=rwc", path.display())).await?;
    let mut table = Schema::new(db.get_database_backend()).create_table_from_entity(entity);
    db.execute(table.if_not_exists()).await?;
    promiscuous::sql::migrate(&db).await?;
    Ok(db)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
        .init();
    let mut args = Args::parse();
    args.amqp_url = args
        .amqp_url
        .or_else(|| std::env::var("PROMISCUOUS_AMQP_URL").ok());
    args.redis_url = args
        .redis_url
        .or_else(|| std::env::var("PROMISCUOUS_REDIS_URL").ok());
    let dir = match args.dir {
        Some(dir) => dir,
        None => {
            std::env::temp_dir().join(format!("promiscuous-sql-example-{}", std::process::id()))
        }
    };
    std::fs::create_dir_all(&dir)?;
    let broker = args
        .amqp_url
        .clone()
        .unwrap_or_else(|| "memory://sql-example".into());
    let redis = args
        .redis_url
        .clone()
        .unwrap_or_else(|| "memory://sql-example".into());
    println!(
        "broker {}, clock and locks {}, databases in {}",
        if args.amqp_url.is_some() {
            "RabbitMQ"
        } else {
            "in-process"
        },
        if args.redis_url.is_some() {
            "Redis"
        } else {
            "memory"
        },
        dir.display()
    );

    // The subscriber service: its own database, its own app name.
    let replica_db = open(&dir.join("subscriber.sqlite"), replica::Entity).await?;
    let subscriber = Promiscuous::configure()
        .app("newsletter")
        .broker_url(&broker)
        .redis_url(&redis)
        .storage(Arc::new(
            SqlStorage::new(replica_db.clone()).subscribed::<replica::Entity>(),
        ))
        .subscriber::<replica::Model>()
        .build()
        .await?;
    let mut worker = subscriber.subscribe().await?;

    // The publisher service.
    let source_db = open(&dir.join("publisher.sqlite"), source::Entity).await?;
    let promiscuous = Promiscuous::configure()
        .app("accounts")
        .broker_url(&broker)
        .redis_url(&redis)
        .no_subscribers()
        .build()
        .await?;
    let publisher = SqlPublisher::builder(promiscuous.clone(), source_db.clone())
        .entity::<source::Entity>()
        .build()?;
    let mut relay = publisher.relay().start();

    // Three users in one transaction: one message.
    let mut tx = publisher.begin().await?;
    let mut created = Vec::new();
    for name in ["Ada", "Grace", "Linus"] {
        created.push(
            tx.insert(source::ActiveModel {
                name: Set(name.to_owned()),
                email: Set(format!("{}@example.com", name.to_lowercase())),
                password_hash: Set("not published".to_owned()),
                ..Default::default()
            })
            .await?,
        );
    }
    tx.commit().await?;
    // An update and a delete, each its own transaction.
    let mut ada = created[0].clone().into_active_model();
    ada.name = Set("Ada Lovelace".to_owned());
    publisher.update(ada).await?;
    publisher.delete(created[2].clone()).await?;

    let expected: Vec<(i64, String)> = source::Entity::find()
        .order_by_asc(source::Column::Id)
        .all(&source_db)
        .await?
        .into_iter()
        .map(|u| (u.id, u.name))
        .collect();
    let started = Instant::now();
    loop {
        let have: Vec<(i64, String)> = replica::Entity::find()
            .order_by_asc(replica::Column::Id)
            .all(&replica_db)
            .await?
            .into_iter()
            .map(|u| (u.id, u.name))
            .collect();
        if have == expected {
            println!("the subscriber's users equal the publisher's: {have:?}");
            break;
        }
        if started.elapsed() > Duration::from_secs(30) {
            return Err(format!("the subscriber has {have:?}, the publisher {expected:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    relay.stop().await;
    worker.shutdown().await;
    subscriber.shutdown().await?;
    promiscuous.shutdown().await?;
    Ok(())
}
