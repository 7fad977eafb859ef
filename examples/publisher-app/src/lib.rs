//! Example publisher service, `crowdtap`: it keeps its users in PostgreSQL
//! and publishes them, with the events of their lives, through RabbitMQ.
//!
//! The binary (`src/bin/crowdtap.rs`, see `README.md`) registers, bans and
//! rewards users; every write goes through [`Crowdtap`], which writes with
//! [`SqlPublisher`] so that each committed change is published, in order,
//! even if the process dies right after the commit.
//!
//! The contract tests (`tests/contract.rs`) keep the exported mock
//! publishers in `mocks/crowdtap.rs` up to date; the subscriber app
//! `examples/subscriber-app` includes them, with the factories of
//! `mocks/factories.rs`, in its own tests.

use promiscuous::cli::App;
use promiscuous::sql::{SqlPublisher, SqlSync, SyncReport};
use promiscuous::{BoxError, ConfigBuilder, Promiscuous, Publish};
use sea_orm::DatabaseConnection;
use sea_orm::{ActiveValue::Set, ConnectionTrait, Database, EntityTrait, IntoActiveModel, Schema};
use serde::{Deserialize, Serialize};

/// This app's name: it publishes to `crowdtap/…`.
pub const APP: &str = "crowdtap";

/// The database used when none is given.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/crowdtap";

/// The builder of this app's instance: its name, and the backends from the
/// environment (`PROMISCUOUS_AMQP_URL`, `PROMISCUOUS_REDIS_URL`).
pub fn configure() -> ConfigBuilder {
    Promiscuous::configure().app(APP).no_subscribers()
}

/// This app as promiscuous's command line sees it: `publish User` syncs the
/// users of `db`.
pub fn cli_app(db: DatabaseConnection) -> App {
    App::new(configure()).sync(SqlSync::<user::Entity>::new(db))
}

/// Crowdtap's users (table `users`), published as `User`.
pub mod user {
    use promiscuous::Publish;
    use sea_orm::entity::prelude::*;
    use serde::{Deserialize, Serialize};

    /// A user; `level` is published too, computed from the points.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize, Publish)]
    #[sea_orm(table_name = "users")]
    #[publish(model = "User", to = "crowdtap/user", virtual(level))]
    pub struct Model {
        /// Assigned by the database.
        #[sea_orm(primary_key)]
        pub id: i64,
        /// Display name.
        #[publish]
        pub name: String,
        /// Email address.
        #[publish]
        pub email: String,
        /// `active` or `banned`.
        #[publish]
        pub state: String,
        /// Points collected.
        #[publish]
        pub points: i32,
        /// Never published.
        pub password_digest: String,
    }

    impl Model {
        /// Published as `level`.
        pub fn level(&self) -> &'static str {
            match self.points {
                ..=99 => "basic",
                100..=999 => "silver",
                _ => "gold",
            }
        }
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    // A write of a user that does not go through the publisher would never
    // be published: it is refused.
    promiscuous::sql::published_writes_only!(ActiveModel);
}

/// Something a user did: published, never stored.
#[derive(Debug, Clone, Default, Serialize, Deserialize, Publish)]
#[publish(ephemeral)]
pub struct UserEvent {
    /// The user.
    #[publish]
    pub user_id: i64,
    /// What happened: `registered`, …
    #[publish]
    pub event_name: String,
}

/// The crowdtap service: its database and its publisher.
#[derive(Debug, Clone)]
pub struct Crowdtap {
    promiscuous: Promiscuous,
    publisher: SqlPublisher,
}

impl Crowdtap {
    /// Connects to the database at `database_url`, to RabbitMQ and to Redis
    /// (`PROMISCUOUS_AMQP_URL` and `PROMISCUOUS_REDIS_URL`, else the local
    /// servers), and creates the tables when they do not exist.
    pub async fn connect(database_url: &str) -> Result<Self, BoxError> {
        let db = Database::connect(database_url).await?;
        create_tables(&db).await?;
        let promiscuous = configure().build().await?;
        let publisher = SqlPublisher::builder(promiscuous.clone(), db)
            .entity::<user::Entity>()
            .build()?;
        Ok(Crowdtap {
            promiscuous,
            publisher,
        })
    }

    /// Registers a user: inserts it, which publishes its creation, and
    /// publishes the `registered` event once the insert is committed.
    pub async fn register(&self, name: &str, email: &str) -> Result<user::Model, BoxError> {
        let user = self
            .publisher
            .insert(user::ActiveModel {
                name: Set(name.to_owned()),
                email: Set(email.to_owned()),
                state: Set("active".to_owned()),
                points: Set(0),
                password_digest: Set(String::new()),
                ..Default::default()
            })
            .await?;
        self.promiscuous
            .publish(&UserEvent {
                user_id: user.id,
                event_name: "registered".into(),
            })
            .await?;
        Ok(user)
    }

    /// Bans a user.
    pub async fn ban(&self, id: i64) -> Result<user::Model, BoxError> {
        let mut user = self.find(id).await?.into_active_model();
        user.state = Set("banned".to_owned());
        Ok(self.publisher.update(user).await?)
    }

    /// Gives a user more points.
    pub async fn award(&self, id: i64, points: i32) -> Result<user::Model, BoxError> {
        let found = self.find(id).await?;
        let total = found.points.saturating_add(points);
        let mut user = found.into_active_model();
        user.points = Set(total);
        Ok(self.publisher.update(user).await?)
    }

    /// Publishes every user again: the initial sync of a new subscriber.
    pub async fn sync(&self) -> Result<SyncReport, BoxError> {
        Ok(self.publisher.sync::<user::Entity>().run().await?)
    }

    /// Every user, by id.
    pub async fn users(&self) -> Result<Vec<user::Model>, BoxError> {
        use sea_orm::QueryOrder;
        Ok(user::Entity::find()
            .order_by_asc(user::Column::Id)
            .all(self.publisher.connection())
            .await?)
    }

    /// Waits until what was published is settled, then disconnects.
    pub async fn shutdown(self) -> Result<(), BoxError> {
        Ok(self.promiscuous.shutdown().await?)
    }

    async fn find(&self, id: i64) -> Result<user::Model, BoxError> {
        user::Entity::find_by_id(id)
            .one(self.publisher.connection())
            .await?
            .ok_or_else(|| format!("there is no user {id}").into())
    }
}

/// Creates the `users` table (the app's own) and the tables promiscuous
/// needs (`promiscuous::sql::migrate`: its outbox), when they do not exist.
pub async fn create_tables(db: &impl ConnectionTrait) -> Result<(), BoxError> {
    let mut users = Schema::new(db.get_database_backend()).create_table_from_entity(user::Entity);
    db.execute(users.if_not_exists()).await?;
    promiscuous::sql::migrate(db).await?;
    Ok(())
}
