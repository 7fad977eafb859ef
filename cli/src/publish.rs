//! `publish MODEL` (alias `sync`): an initial sync, with its progress.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use promiscuous_core::publisher::{SyncProgress, SyncRequest};
use promiscuous_core::BoxError;

use crate::App;

/// Progress lines, when standard error is not a terminal, come at most this often.
const LINE_EVERY: Duration = Duration::from_secs(2);

/// The flags of `publish`.
#[derive(Debug, Clone, Args)]
pub struct PublishArgs {
    /// The model to sync (`User`; case does not matter).
    pub model: String,
    /// Only the records matching this condition, in the model's source's
    /// language (for a sea-orm entity: an SQL condition, `state = 'banned'`).
    #[arg(long)]
    pub filter: Option<String>,
    /// Only partition I of N (`--partition 0/4` on the first of 4 workers).
    #[arg(long, value_name = "I/N", value_parser = parse_partition)]
    pub partition: Option<(u64, u64)>,
    /// Records per message.
    #[arg(long)]
    pub batch_size: Option<u64>,
}

fn parse_partition(text: &str) -> Result<(u64, u64), String> {
    let wrong = || format!("{text:?} is not a partition: write I/N with 0 <= I < N, as 0/4");
    let (index, count) = text.split_once('/').ok_or_else(wrong)?;
    let (index, count) = (
        index.trim().parse::<u64>().map_err(|_| wrong())?,
        count.trim().parse::<u64>().map_err(|_| wrong())?,
    );
    if count == 0 || index >= count {
        return Err(wrong());
    }
    Ok((index, count))
}

pub(crate) async fn run(app: App, args: PublishArgs) -> Result<ExitCode, BoxError> {
    let Some(source) = app.sync_source(&args.model).cloned() else {
        let known = app.syncable();
        return Err(if known.is_empty() {
            format!(
                "cannot sync {}: this binary registers no model to sync (App::sync)",
                args.model
            )
        } else {
            format!(
                "cannot sync {}: the models this binary syncs are {}",
                args.model,
                known.join(", ")
            )
        }
        .into());
    };
    if args.filter.is_some() && source.filter_syntax().is_none() {
        return Err(format!("{} takes no --filter", source.model()).into());
    }
    let promiscuous = app.config.no_subscribers().build().await?;
    let display = Display::new(source.model());
    let request = SyncRequest {
        filter: args.filter.clone(),
        partition: args.partition,
        batch_size: args.batch_size,
        on_progress: Some(display.callback()),
    };
    let outcome = source.sync(&promiscuous, request).await;
    display.finish();
    let report = match outcome {
        Ok(report) => report,
        Err(error) => {
            let hint = match (&args.filter, source.filter_syntax()) {
                (Some(_), Some(syntax)) => format!(" (--filter is {syntax})"),
                _ => String::new(),
            };
            promiscuous.shutdown().await.ok();
            return Err(format!("{}{hint}", promiscuous_core::error::chain(&error)).into());
        }
    };
    println!(
        "published {} {} records in {} messages ({} read, {} deleted meanwhile)",
        report.published,
        source.model(),
        report.batches,
        report.scanned,
        report.vanished
    );
    promiscuous.shutdown().await?;
    Ok(ExitCode::SUCCESS)
}

/// A progress bar on a terminal, a line every few seconds otherwise.
struct Display {
    model: &'static str,
    bar: Option<ProgressBar>,
    last_line: Mutex<Instant>,
    started: Instant,
}

impl Display {
    fn new(model: &'static str) -> Arc<Self> {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(0);
            if let Ok(style) = ProgressStyle::with_template(
                "{msg} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec}, {eta} left)",
            ) {
                bar.set_style(style);
            }
            bar.set_message(format!("sync {model}"));
            bar.enable_steady_tick(Duration::from_millis(250));
            bar
        });
        Arc::new(Self {
            model,
            bar,
            last_line: Mutex::new(Instant::now()),
            started: Instant::now(),
        })
    }

    fn callback(self: &Arc<Self>) -> Arc<dyn Fn(SyncProgress) + Send + Sync> {
        let display = self.clone();
        Arc::new(move |progress| display.show(progress))
    }

    fn show(&self, progress: SyncProgress) {
        if let Some(bar) = &self.bar {
            if let Some(total) = progress.total {
                bar.set_length(total);
            }
            bar.set_position(progress.scanned);
            return;
        }
        let mut last = self
            .last_line
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if last.elapsed() < LINE_EVERY {
            return;
        }
        *last = Instant::now();
        let of = progress
            .total
            .map_or_else(String::new, |total| format!(" of {total}"));
        eprintln!(
            "sync {}: {} read{of}, {} published, {:.0}s",
            self.model,
            progress.scanned,
            progress.published,
            self.started.elapsed().as_secs_f64()
        );
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_partition;

    #[test]
    fn partitions() {
        assert_eq!(parse_partition("0/4"), Ok((0, 4)));
        assert_eq!(parse_partition("3/4"), Ok((3, 4)));
        for wrong in ["4/4", "1/0", "x/2", "2"] {
            assert!(
                parse_partition(wrong).unwrap_err().contains("I/N"),
                "{wrong}"
            );
        }
    }
}
