//! The command line of promiscuous, embedded in the application's own
//! binary (the models it publishes and subscribes are compiled into it).
//!
//! ```no_run
//! use promiscuous_cli::App;
//! use promiscuous_core::Promiscuous;
//!
//! // src/bin/promiscuous.rs of the app
//! fn main() {
//!     promiscuous_cli::main(|| async {
//!         Ok(App::new(Promiscuous::configure().app("mailer")))
//!     })
//! }
//! ```
//!
//! gives the app's binary these commands:
//!
//! | command | what it does |
//! | --- | --- |
//! | `subscribe [--prefetch N] [--runners N] [--mode causal\|global\|weak\|unordered] [--recovery-timeout 10s] [--shutdown-timeout 30s] [--max-attempts N] [--bareback] [--metrics-addr 0.0.0.0:9394]` | runs the worker until SIGINT or SIGTERM, then stops taking messages, finishes or hands back what it holds, and exits 0 (1 with the reason when the worker stopped by itself; a second signal stops at once) |
//! | `publish MODEL [--filter COND] [--partition I/N] [--batch-size N]` (alias `sync`) | initial sync of a model registered with [`App::sync`], with a progress bar on a terminal and progress lines otherwise |
//! | `mocks [-o FILE]` | the mocks export of this app's publishers (what `validate::publishers` checks) |
//! | `status [--json]` | broker, queue depths of `<app>` and `<app>.error`, clock state, publications awaiting recovery, lag per subscription |
//! | `dead-letters list [--json] \| show ID \| replay (ID…\|--all) \| purge (ID…\|--all)` | the messages parked in `<app>.error` |
//!
//! An app with a command line of its own flattens [`Command`] into it and
//! calls [`Command::run`].

mod app;
mod dead_letters;
mod duration;
mod metrics_server;
mod mocks;
mod publish;
mod signals;
mod status;
mod subscribe;

use std::future::Future;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use promiscuous_core::BoxError;

pub use app::App;
pub use dead_letters::DeadLettersCommand;
pub use metrics_server::{MetricsServer, MetricsServerError};
pub use mocks::MocksArgs;
pub use publish::PublishArgs;
pub use status::StatusArgs;
pub use subscribe::SubscribeArgs;

/// The command line: one [`Command`].
#[derive(Debug, Parser)]
#[command(version, about = "Replicates this app's models through promiscuous.")]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands an app's binary offers.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Runs the subscriber worker until SIGINT or SIGTERM.
    Subscribe(SubscribeArgs),
    /// Publishes the current state of a model's records (initial sync).
    #[command(alias = "sync")]
    Publish(PublishArgs),
    /// Writes the mocks export of this app's publishers.
    Mocks(MocksArgs),
    /// Shows the broker, queues, clock and lag of this app.
    Status(StatusArgs),
    /// Lists, shows, replays or purges the messages parked in `<app>.error`.
    #[command(subcommand)]
    DeadLetters(DeadLettersCommand),
}

impl Command {
    /// Runs the command for `app`; prints what it did on standard output,
    /// and why it failed on standard error.
    pub async fn run(self, app: App) -> ExitCode {
        let outcome = match self {
            Command::Subscribe(args) => subscribe::run(app, args).await,
            Command::Publish(args) => publish::run(app, args).await,
            Command::Mocks(args) => mocks::run(app, args),
            Command::Status(args) => status::run(app, args).await,
            Command::DeadLetters(command) => dead_letters::run(app, command).await,
        };
        match outcome {
            Ok(code) => code,
            Err(error) => {
                eprintln!("error: {}", promiscuous_core::error::chain(error.as_ref()));
                ExitCode::FAILURE
            }
        }
    }
}

/// The whole `main` of an app's command-line binary: installs a tracing
/// subscriber (`RUST_LOG`, by default `warn,promiscuous=info`, on standard
/// error), parses the
/// arguments, builds the app with `app` (which connects to its database,
/// say) and runs the command on a Tokio runtime; then exits the process
/// with the command's status.
pub fn main<F, Fut>(app: F) -> !
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<App, BoxError>>,
{
    let cli = Cli::parse();
    install_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the Tokio runtime: {error}");
            std::process::exit(1);
        }
    };
    let code = runtime.block_on(async {
        match app().await {
            Ok(app) => cli.command.run(app).await,
            Err(error) => {
                eprintln!("error: cannot set the app up: {}", chain_of(error.as_ref()));
                ExitCode::FAILURE
            }
        }
    });
    drop(runtime);
    std::process::exit(if code == ExitCode::SUCCESS { 0 } else { 1 });
}

/// Installs the default tracing subscriber unless one is installed.
pub fn install_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        // lapin logs a closed channel as an error; a status or dead-letter
        // lookup of a queue that does not exist closes one on purpose.
        .unwrap_or_else(|_| "warn,promiscuous=info,lapin::channel=off".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colours on a terminal only: not in a journal or a log file.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

/// An error and its sources, on one line.
pub(crate) fn chain_of(error: &(dyn std::error::Error + 'static)) -> String {
    promiscuous_core::error::chain(error)
}
