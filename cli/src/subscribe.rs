//! `subscribe`: the worker, until a signal stops it.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use promiscuous_core::{BoxError, ConfigBuilder, Mode};

use crate::metrics_server::MetricsServer;
use crate::{duration, signals, App};

/// The flags of `subscribe`; each one left out keeps the app's setting.
#[derive(Debug, Clone, Args)]
pub struct SubscribeArgs {
    /// Unacknowledged messages the worker holds at once.
    #[arg(long)]
    pub prefetch: Option<u16>,
    /// Operations applied in parallel.
    #[arg(long)]
    pub runners: Option<usize>,
    /// Ordering: causal (the default), global, weak or unordered.
    #[arg(long, value_parser = parse_mode)]
    pub mode: Option<Mode>,
    /// How long a message waits for a missing earlier operation before an
    /// alert (500ms, 10s, 2m).
    #[arg(long, value_parser = duration::parse)]
    pub recovery_timeout: Option<Duration>,
    /// How long a stop waits for the operations being applied (30s by default).
    #[arg(long, value_parser = duration::parse)]
    pub shutdown_timeout: Option<Duration>,
    /// Deliveries of a failing message before it goes to the dead-letter
    /// queue (10 by default; failures of a backend that is down never count).
    #[arg(long)]
    pub max_attempts: Option<u32>,
    /// The Ruby gem's mode: unordered, and a failing message goes to the
    /// dead-letter queue at once instead of being retried (nothing is
    /// dropped: `dead-letters list` shows it).
    #[arg(long, conflicts_with_all = ["mode", "max_attempts"])]
    pub bareback: bool,
    /// Serves Prometheus metrics on `http://ADDR/metrics` and a health check
    /// on `http://ADDR/health` (200 when healthy, else 503).
    #[arg(long, env = "PROMISCUOUS_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
}

fn parse_mode(text: &str) -> Result<Mode, String> {
    Mode::parse(text).map_err(|e| e.to_string())
}

impl SubscribeArgs {
    /// The app's builder with these flags applied.
    pub fn apply(&self, mut config: ConfigBuilder) -> ConfigBuilder {
        if let Some(prefetch) = self.prefetch {
            config = config.prefetch(prefetch);
        }
        if let Some(runners) = self.runners {
            config = config.runners(runners);
        }
        if let Some(mode) = self.mode {
            config = config.mode(mode);
        }
        if let Some(timeout) = self.recovery_timeout {
            config = config.recovery_timeout(timeout);
        }
        if let Some(timeout) = self.shutdown_timeout {
            config = config.shutdown_timeout(timeout);
        }
        if let Some(attempts) = self.max_attempts {
            config = config.max_attempts(attempts);
        }
        if self.bareback {
            config = config.mode(Mode::Unordered).max_attempts(1);
        }
        config
    }
}

pub(crate) async fn run(app: App, args: SubscribeArgs) -> Result<ExitCode, BoxError> {
    let promiscuous = args.apply(app.config).build().await?;
    let name = promiscuous.app().to_owned();
    let metrics = match args.metrics_addr {
        Some(addr) => Some(MetricsServer::start(addr, promiscuous.clone()).await?),
        None => None,
    };
    let mut worker = promiscuous.subscribe().await?;
    match &metrics {
        Some(server) => println!(
            "{name} is subscribed; metrics on http://{}/metrics; SIGINT or SIGTERM stops it",
            server.local_addr()
        ),
        None => println!("{name} is subscribed; SIGINT or SIGTERM stops it"),
    }
    // The worker can stop by itself (its clock lost its state, the broker
    // ended its consumer): then exit non-zero with the reason, for a
    // supervisor to restart the process.
    let stopped_by_itself = tokio::select! {
        stopped = worker.wait() => Some(stopped),
        signal = signals::stop_requested() => {
            tracing::info!(app = %name, signal, "stopping: no new messages; finishing or handing back the ones held");
            None
        }
    };
    if stopped_by_itself.is_none() {
        // A second signal stops at once: what the worker holds goes back
        // to the queue when its connection closes.
        tokio::select! {
            () = worker.shutdown() => {}
            signal = signals::stop_requested() => {
                return Err(format!(
                    "{signal} again: stopped without waiting for the operations being applied; the messages held go back to the queue"
                )
                .into());
            }
        }
    }
    let stats = worker.stats();
    println!(
        "{name} stopped: {} messages received, {} operations applied, {} duplicates, {} dead-lettered",
        stats.received, stats.applied, stats.duplicates, stats.dead_lettered
    );
    promiscuous.shutdown().await?;
    if let Some(server) = metrics {
        server.stop();
    }
    match stopped_by_itself {
        Some(Err(error)) => Err(error.into()),
        Some(Ok(())) => Err(format!("the worker of {name} stopped without being asked").into()),
        None => Ok(ExitCode::SUCCESS),
    }
}
