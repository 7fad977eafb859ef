//! Example subscriber worker, `mailer`: it replicates crowdtap's users into
//! its own database (SQLite by default, any sea-orm database works) and
//! mails a user who registers and one who gets banned.
//!
//! The binary (`src/bin/mailer.rs`, see `README.md`) runs the worker until
//! Ctrl-C. Its tests (`tests/contract.rs`) include the mocks and factories
//! exported by `examples/publisher-app`, check every subscription against
//! them, and drive the callbacks through a `MockPublisher`.

use std::sync::{Mutex, OnceLock, PoisonError};

use promiscuous::sql::SqlStorage;
use promiscuous::{BoxError, Callbacks, ConfigBuilder, Context, Promiscuous, Subscribe};
use sea_orm::{ConnectionTrait, DatabaseConnection, Schema};
use serde::{Deserialize, Serialize};

/// This app's name: its queue.
pub const APP: &str = "mailer";

/// The database used when none is given.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://mailer.db?mode=rwc";

/// The builder of this app's instance, with its name and its storage on
/// `db`; add or change backends before `build()`.
pub fn configure(db: DatabaseConnection) -> ConfigBuilder {
    Promiscuous::configure()
        .app(APP)
        .storage(std::sync::Arc::new(
            SqlStorage::new(db).subscribed::<user::Entity>(),
        ))
}

/// Creates the `users` table (the app's own copy) and the table promiscuous
/// needs (`promiscuous::sql::migrate`: the versions applied), when they do
/// not exist.
pub async fn create_tables(db: &impl ConnectionTrait) -> Result<(), BoxError> {
    let mut users = Schema::new(db.get_database_backend()).create_table_from_entity(user::Entity);
    db.execute(users.if_not_exists()).await?;
    promiscuous::sql::migrate(db).await?;
    Ok(())
}

/// Why a mail was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailKind {
    /// Sent when a user registers.
    Welcome,
    /// Sent when a user is banned.
    Banned,
}

/// One mail sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    /// The user it is about.
    pub user_id: i64,
    /// Its recipient, when known.
    pub to: Option<String>,
    /// Why it was sent.
    pub kind: MailKind,
}

/// The mail service: here, it prints what it sends and keeps it in memory.
#[derive(Debug, Default)]
pub struct Mailer {
    sent: Mutex<Vec<Mail>>,
}

impl Mailer {
    /// The mailer used by the callbacks.
    pub fn global() -> &'static Mailer {
        static MAILER: OnceLock<Mailer> = OnceLock::new();
        MAILER.get_or_init(Mailer::default)
    }

    /// Sends a mail.
    pub fn send(&self, mail: Mail) {
        println!(
            "mail {:?} about user {} to {}",
            mail.kind,
            mail.user_id,
            mail.to.as_deref().unwrap_or("(the address on file)")
        );
        self.sent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(mail);
    }

    /// The mails sent about `user_id`, in order.
    pub fn sent_about(&self, user_id: i64) -> Vec<Mail> {
        self.sent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|mail| mail.user_id == user_id)
            .cloned()
            .collect()
    }
}

/// Crowdtap's users, replicated into the table `users`.
pub mod user {
    use promiscuous::{BoxError, Callbacks, Context, Subscribe};
    use sea_orm::entity::prelude::*;
    use serde::{Deserialize, Serialize};

    use super::{Mail, MailKind, Mailer};

    /// A user, as crowdtap publishes it (its points and password stay there).
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize, Subscribe)]
    #[sea_orm(table_name = "users")]
    #[subscribe(model = "User", from = "crowdtap/user", callbacks)]
    pub struct Model {
        /// Crowdtap's id.
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: i64,
        /// Subscribed.
        #[subscribe]
        pub name: String,
        /// Subscribed.
        #[subscribe]
        pub email: String,
        /// `active` or `banned`.
        #[subscribe]
        pub state: String,
        /// `basic`, `silver` or `gold`.
        #[subscribe]
        pub level: String,
    }

    impl Model {
        /// Whether this operation banned the user.
        fn got_banned(&self, ctx: &Context) -> bool {
            ctx.changes.changed("state") && self.state == "banned"
        }

        fn mail_ban(&self) {
            Mailer::global().send(Mail {
                user_id: self.id,
                to: Some(self.email.clone()),
                kind: MailKind::Banned,
            });
        }
    }

    #[promiscuous::async_trait]
    impl Callbacks for Model {
        async fn after_create(&self, ctx: &Context) -> Result<(), BoxError> {
            if self.got_banned(ctx) && !ctx.sync {
                self.mail_ban();
            }
            Ok(())
        }

        async fn after_update(&self, ctx: &Context) -> Result<(), BoxError> {
            if self.got_banned(ctx) && !ctx.sync {
                self.mail_ban();
            }
            Ok(())
        }
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Crowdtap's user events, observed: nothing is stored.
#[derive(Debug, Clone, Serialize, Deserialize, Subscribe)]
#[subscribe(observer, callbacks)]
pub struct UserEvent {
    /// Events have no id.
    #[serde(default)]
    pub id: Option<i64>,
    /// The user.
    #[subscribe]
    pub user_id: i64,
    /// What happened.
    #[subscribe]
    pub event_name: String,
}

#[promiscuous::async_trait]
impl Callbacks for UserEvent {
    async fn after_create(&self, _ctx: &Context) -> Result<(), BoxError> {
        if self.event_name == "registered" {
            Mailer::global().send(Mail {
                user_id: self.user_id,
                to: None,
                kind: MailKind::Welcome,
            });
        }
        Ok(())
    }
}
