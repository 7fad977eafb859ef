//! `status`: the broker, queues, clock and lag of this app.

use std::process::ExitCode;

use clap::Args;
use promiscuous_core::status::Status;
use promiscuous_core::traits::QueueDepth;
use promiscuous_core::BoxError;

use crate::App;

/// The flags of `status`.
#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// Prints one JSON object (for scripts) instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Exits 0 when the broker and the clock answered, 1 otherwise.
pub(crate) async fn run(app: App, args: StatusArgs) -> Result<ExitCode, BoxError> {
    let name = app.config.resolve()?.app;
    let promiscuous = match app.config.no_recovery_worker().build().await {
        Ok(promiscuous) => promiscuous,
        // A server that cannot be reached is what `status` is asked about.
        Err(error) => {
            let problem = promiscuous_core::error::chain(&error);
            if args.json {
                let report =
                    serde_json::json!({ "app": name, "healthy": false, "problem": problem });
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!("app {name}: NOT healthy: {problem}");
            }
            return Ok(ExitCode::FAILURE);
        }
    };
    let status = promiscuous.status().await;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print!("{}", text(&status));
    }
    promiscuous.shutdown().await?;
    Ok(if status.broker.reachable && status.clock.reachable {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn depth(depth: Option<QueueDepth>) -> String {
    let Some(depth) = depth else {
        return "does not exist".to_owned();
    };
    let mut text = format!("{} ready", depth.ready);
    if let Some(unacked) = depth.unacked {
        text.push_str(&format!(", {unacked} unacknowledged"));
    }
    if let Some(consumers) = depth.consumers {
        text.push_str(&format!(", {consumers} consumers"));
    }
    text
}

fn text(status: &Status) -> String {
    let mut out = format!(
        "app {} (generation {}): {}\n",
        status.app,
        status.generation,
        if status.healthy {
            "healthy"
        } else {
            "NOT healthy"
        }
    );
    let broker = &status.broker;
    match &broker.problem {
        Some(problem) => out.push_str(&format!("broker {}: unreachable: {problem}\n", broker.name)),
        None => {
            out.push_str(&format!("broker {}: reachable\n", broker.name));
            out.push_str(&format!(
                "  queue {}: {}\n",
                broker.queue,
                depth(broker.depth)
            ));
            out.push_str(&format!(
                "  queue {}: {}\n",
                broker.error_queue,
                depth(broker.error_depth)
            ));
        }
    }
    let clock = &status.clock;
    match &clock.problem {
        Some(problem) => out.push_str(&format!("clock {}: unreachable: {problem}\n", clock.name)),
        None => out.push_str(&format!(
            "clock {}: state {}, answering\n",
            clock.name, clock.epoch
        )),
    }
    if let Some(waiting) = status.publications_awaiting_recovery {
        out.push_str(&format!("publications awaiting recovery: {waiting}\n"));
    }
    for subscription in &status.subscriptions {
        out.push_str(&match (subscription.published, subscription.behind) {
            (Some(published), Some(behind)) => format!(
                "subscribed to {}: {published} published, {} applied, {behind} behind\n",
                subscription.endpoint, subscription.applied
            ),
            _ => format!(
                "subscribed to {}: {} applied; lag unknown: {}\n",
                subscription.endpoint,
                subscription.applied,
                subscription
                    .note
                    .as_deref()
                    .unwrap_or("no publisher counters")
            ),
        });
    }
    out
}
