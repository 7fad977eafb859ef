//! The mailer's command line: promiscuous's, for this app. `subscribe` runs
//! the worker (it replicates crowdtap's users and sends the mails) until
//! Ctrl-C or SIGTERM; `status`, `dead-letters` and the rest are for its
//! operators.
//!
//! ```text
//! cargo run -p subscriber-app -- subscribe
//! ```
//!
//! `DATABASE_URL` names its database, SQLite by default;
//! `PROMISCUOUS_AMQP_URL` and `PROMISCUOUS_REDIS_URL` its RabbitMQ and Redis
//! (the local servers by default).

use promiscuous::cli::App;
use subscriber_app::{configure, create_tables, DEFAULT_DATABASE_URL};

fn main() {
    promiscuous::cli::main(|| async {
        let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE_URL.to_owned());
        let db = sea_orm::Database::connect(&url).await?;
        create_tables(&db).await?;
        Ok(App::new(configure(db)))
    })
}
