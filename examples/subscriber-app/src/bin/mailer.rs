//! The mailer's worker: replicates crowdtap's users and sends the mails,
//! until Ctrl-C (or SIGTERM).
//!
//! ```text
//! cargo run -p subscriber-app
//! ```
//!
//! `DATABASE_URL` (or `--database`) names its database, SQLite by default;
//! `PROMISCUOUS_AMQP_URL` and `PROMISCUOUS_REDIS_URL` its RabbitMQ and Redis
//! (the local servers by default).

use clap::Parser;
use promiscuous::BoxError;
use subscriber_app::{configure, create_tables, DEFAULT_DATABASE_URL};

/// Mailer: replicates crowdtap's users and mails them.
#[derive(Debug, Parser)]
#[command(name = "mailer")]
struct Cli {
    /// The worker's database (`sqlite://…`, `postgres://…`, `mysql://…`).
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    database: String,
}

/// Resolves on Ctrl-C, or on SIGTERM where there is one (what a supervisor sends).
async fn stop_requested() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
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
    let db = sea_orm::Database::connect(&cli.database).await?;
    create_tables(&db).await?;
    let mailer = configure(db).build().await?;
    let mut worker = mailer.subscribe().await?;
    println!("mailer is running; Ctrl-C stops it");
    // The worker can stop by itself (its clock lost its state, the broker
    // ended its consumer): then exit with the reason, for a supervisor to
    // restart the process.
    let stopped_by_itself = tokio::select! {
        stopped = worker.wait() => Some(stopped),
        _ = stop_requested() => None,
    };
    let outcome = match stopped_by_itself {
        Some(stopped) => stopped,
        None => {
            worker.shutdown().await;
            Ok(())
        }
    };
    let stats = worker.stats();
    println!(
        "mailer stopped: {} messages received, {} operations applied",
        stats.received, stats.applied
    );
    mailer.shutdown().await?;
    Ok(outcome?)
}
