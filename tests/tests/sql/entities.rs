//! The sea-orm entities of the SQL scenarios: a publisher app (`shop`) with
//! users, members (a kind of user) and unpublished notes; a subscriber app
//! with its copy of users, and accounts keyed by a foreign key.
#![allow(dead_code)]

use promiscuous::sql::SqlError;
use sea_orm::{ConnectionTrait, EntityTrait, Schema};

/// The publisher app's name.
pub const PUBLISHER_APP: &str = "shop";

/// Published users (`shop/user`).
pub mod user {
    use promiscuous::Publish;
    use sea_orm::entity::prelude::*;
    use serde::{Deserialize, Serialize};

    /// A user of the publisher.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize, Publish)]
    #[sea_orm(table_name = "users")]
    #[publish(model = "User", to = "shop/user")]
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
        /// Published.
        #[publish]
        pub active: bool,
        /// Published, JSON.
        #[publish]
        pub profile: Option<Json>,
        /// Not published.
        pub password: String,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    // Writes that bypass the publisher are refused.
    promiscuous::sql::published_writes_only!(ActiveModel);
}

/// Published members: a kind of user, published to the users' endpoint.
pub mod member {
    use promiscuous::Publish;
    use sea_orm::entity::prelude::*;
    use serde::{Deserialize, Serialize};

    /// A member (ids from 1,000,000, so as not to meet users' ids).
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize, Publish)]
    #[sea_orm(table_name = "members")]
    #[publish(model = "Member", parent = super::user::Model)]
    pub struct Model {
        /// Given by the test.
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: i64,
        /// Published (inherited).
        pub name: String,
        /// Published (inherited).
        pub email: String,
        /// Published (inherited).
        pub active: bool,
        /// Published (inherited).
        pub profile: Option<Json>,
        /// Published by members only.
        #[publish]
        pub level: i32,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Notes: written in the publisher's transactions, never published.
pub mod note {
    use sea_orm::entity::prelude::*;

    /// A note.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "notes")]
    pub struct Model {
        /// Assigned by the database.
        #[sea_orm(primary_key)]
        pub id: i64,
        /// Text.
        pub body: String,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The subscriber's copy of users: the entity's model is the subscriber.
pub mod replica_user {
    use promiscuous::Subscribe;
    use sea_orm::entity::prelude::*;
    use serde::{Deserialize, Serialize};

    /// A replicated user.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize, Subscribe)]
    #[sea_orm(table_name = "users")]
    #[subscribe(model = "User", from = "shop/user")]
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
        /// Subscribed.
        #[subscribe]
        pub active: bool,
        /// Subscribed.
        #[subscribe]
        pub profile: Option<Json>,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Accounts of another subscriber app: their own ids, the publisher's in `user_id`.
pub mod account {
    use sea_orm::entity::prelude::*;
    use serde::{Deserialize, Serialize};

    /// A stored account.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
    #[sea_orm(table_name = "accounts")]
    pub struct Model {
        /// Assigned by the database.
        #[sea_orm(primary_key)]
        pub id: i64,
        /// The publisher's user id.
        #[sea_orm(unique)]
        pub user_id: i64,
        /// Subscribed from `name`.
        pub name: String,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The subscriber struct of accounts: a subset of the table's columns, keyed
/// by the foreign key.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize, promiscuous::Subscribe)]
#[subscribe(as = "User", from = "shop/user", foreign_key = "user_id")]
pub struct Account {
    /// The local id: absent until the database assigns it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    /// The publisher's id.
    pub user_id: i64,
    /// Subscribed.
    #[subscribe]
    pub name: String,
}

/// Creates the tables of entity `E`.
pub async fn create_table<C: ConnectionTrait, E: EntityTrait>(db: &C, entity: E) {
    let statement = Schema::new(db.get_database_backend()).create_table_from_entity(entity);
    db.execute(&statement)
        .await
        .unwrap_or_else(|e| panic!("cannot create the table of {}: {e}", entity.table_name()));
}

/// The publisher's tables and the adapter's.
pub async fn publisher_schema<C: ConnectionTrait>(db: &C) -> Result<(), SqlError> {
    create_table(db, user::Entity).await;
    create_table(db, member::Entity).await;
    create_table(db, note::Entity).await;
    promiscuous::sql::migrate(db).await
}

/// The subscriber's tables and the adapter's.
pub async fn subscriber_schema<C: ConnectionTrait>(db: &C) -> Result<(), SqlError> {
    create_table(db, replica_user::Entity).await;
    create_table(db, account::Entity).await;
    promiscuous::sql::migrate(db).await
}
