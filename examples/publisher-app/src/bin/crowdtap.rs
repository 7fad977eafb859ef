//! The crowdtap service's command line: each of its own commands is one
//! write, published; promiscuous's commands (`publish`, `mocks`, `status`,
//! `dead-letters`, …) come with it.
//!
//! ```text
//! cargo run -p publisher-app -- register Ada ada@example.com
//! cargo run -p publisher-app -- ban 1
//! cargo run -p publisher-app -- publish User
//! ```
//!
//! `DATABASE_URL` (or `--database`) names its PostgreSQL database;
//! `PROMISCUOUS_AMQP_URL` and `PROMISCUOUS_REDIS_URL` its RabbitMQ and Redis
//! (the local servers by default).

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use promiscuous::BoxError;
use publisher_app::{cli_app, create_tables, user, Crowdtap, DEFAULT_DATABASE_URL};

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
    /// Lists the users.
    List,
    /// promiscuous's commands, for this app.
    #[command(flatten)]
    Promiscuous(promiscuous::cli::Command),
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

async fn run(cli: Cli) -> Result<ExitCode, BoxError> {
    if let Command::Promiscuous(command) = cli.command {
        let db = sea_orm::Database::connect(&cli.database).await?;
        create_tables(&db).await?;
        return Ok(command.run(cli_app(db)).await);
    }
    let crowdtap = Crowdtap::connect(&cli.database).await?;
    match cli.command {
        Command::Register { name, email } => show(&crowdtap.register(&name, &email).await?),
        Command::Ban { id } => show(&crowdtap.ban(id).await?),
        Command::Award { id, points } => show(&crowdtap.award(id, points).await?),
        Command::List => crowdtap.users().await?.iter().for_each(show),
        Command::Promiscuous(_) => {}
    }
    crowdtap.shutdown().await?;
    Ok(ExitCode::SUCCESS)
}

#[tokio::main]
async fn main() -> ExitCode {
    promiscuous::cli::install_tracing();
    match run(Cli::parse()).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
