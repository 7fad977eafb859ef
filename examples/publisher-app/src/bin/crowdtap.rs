//! The crowdtap service's command line: each command is one write, published.
//!
//! ```text
//! cargo run -p publisher-app -- register Ada ada@example.com
//! cargo run -p publisher-app -- ban 1
//! ```
//!
//! `DATABASE_URL` (or `--database`) names its PostgreSQL database;
//! `PROMISCUOUS_AMQP_URL` and `PROMISCUOUS_REDIS_URL` its RabbitMQ and Redis
//! (the local servers by default).

use clap::{Parser, Subcommand};
use promiscuous::BoxError;
use publisher_app::{user, Crowdtap, DEFAULT_DATABASE_URL};

/// Crowdtap: registers, bans and rewards users, and publishes every change.
#[derive(Debug, Parser)]
#[command(name = "crowdtap")]
struct Cli {
    /// The service's database.
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    database: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Registers a user (publishes its creation and a `registered` event).
    Register {
        /// Display name.
        name: String,
        /// Email address.
        email: String,
    },
    /// Bans a user.
    Ban {
        /// The user's id.
        id: i64,
    },
    /// Gives a user points.
    Award {
        /// The user's id.
        id: i64,
        /// How many.
        points: i32,
    },
    /// Publishes every user again (the initial sync of a new subscriber).
    Sync,
    /// Lists the users.
    List,
}

fn show(user: &user::Model) {
    println!(
        "user {} {} <{}> {} {} points ({})",
        user.id,
        user.name,
        user.email,
        user.state,
        user.points,
        user.level()
    );
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,promiscuous=info".into()),
        )
        .init();
    let cli = Cli::parse();
    let crowdtap = Crowdtap::connect(&cli.database).await?;
    match cli.command {
        Command::Register { name, email } => show(&crowdtap.register(&name, &email).await?),
        Command::Ban { id } => show(&crowdtap.ban(id).await?),
        Command::Award { id, points } => show(&crowdtap.award(id, points).await?),
        Command::Sync => {
            let report = crowdtap.sync().await?;
            println!("published {} users", report.published);
        }
        Command::List => crowdtap.users().await?.iter().for_each(show),
    }
    crowdtap.shutdown().await
}
