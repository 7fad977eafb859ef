//! `dead-letters`: the messages parked in `<app>.error`.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use promiscuous_core::dead_letter::{DeadLetter, Selection};
use promiscuous_core::BoxError;

use crate::App;

/// What to do with the dead letters.
#[derive(Debug, Clone, Subcommand)]
pub enum DeadLettersCommand {
    /// Lists them: id, endpoint, attempts and reason.
    List {
        /// Prints one JSON array instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Shows one: its reason in full and its message.
    Show {
        /// Its id, as `list` prints it.
        id: String,
    },
    /// Moves them back to the app's queue, to be processed again.
    Replay(Which),
    /// Deletes them for good.
    Purge(Which),
}

/// Which dead letters `replay` and `purge` take.
#[derive(Debug, Clone, Args)]
#[group(required = true, multiple = false)]
pub struct Which {
    /// Their ids, as `list` prints them.
    pub ids: Vec<String>,
    /// All of them.
    #[arg(long)]
    pub all: bool,
}

impl Which {
    fn selection(&self) -> Selection {
        if self.all {
            Selection::All
        } else {
            Selection::Ids(self.ids.clone())
        }
    }
}

fn json(letter: &DeadLetter) -> serde_json::Value {
    let message = serde_json::from_slice::<serde_json::Value>(&letter.payload)
        .unwrap_or_else(|_| String::from_utf8_lossy(&letter.payload).into_owned().into());
    serde_json::json!({
        "id": letter.id(),
        "endpoint": letter.endpoint,
        "attempts": letter.attempts,
        "reason": letter.reason,
        "message": message,
    })
}

fn one_line(text: &str, at_most: usize) -> String {
    let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(at_most) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line,
    }
}

pub(crate) async fn run(app: App, command: DeadLettersCommand) -> Result<ExitCode, BoxError> {
    let promiscuous = app.config.no_recovery_worker().build().await?;
    let letters = promiscuous.dead_letters();
    let parked_in = format!("{}.error", letters.queue());
    let outcome = match command {
        DeadLettersCommand::List { json: as_json } => {
            let list = letters.list().await?;
            if as_json {
                let all: Vec<_> = list.iter().map(json).collect();
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else {
                println!("{} dead letters in {parked_in}", list.len());
                for letter in &list {
                    println!(
                        "{}  {}  {} attempts  {}",
                        letter.id(),
                        letter.endpoint,
                        letter.attempts,
                        one_line(&letter.reason, 120)
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        DeadLettersCommand::Show { id } => {
            let list = letters.list().await?;
            match list.iter().find(|letter| letter.id() == id) {
                Some(letter) => {
                    println!("{}", serde_json::to_string_pretty(&json(letter))?);
                    Ok(ExitCode::SUCCESS)
                }
                None => Err(format!(
                    "no dead letter {id} in {parked_in} (`dead-letters list` shows their ids)"
                )
                .into()),
            }
        }
        DeadLettersCommand::Replay(which) => {
            let moved = letters.replay(&which.selection()).await?;
            settled("replayed", moved, &which, &parked_in)
        }
        DeadLettersCommand::Purge(which) => {
            let deleted = letters.purge(&which.selection()).await?;
            settled("purged", deleted, &which, &parked_in)
        }
    };
    promiscuous.shutdown().await?;
    outcome
}

/// Says how many were taken; asking for ids none of which exist is an error.
fn settled(done: &str, count: usize, which: &Which, queue: &str) -> Result<ExitCode, BoxError> {
    println!("{done} {count} dead letters");
    if count == 0 && !which.all {
        return Err(format!(
            "no dead letter {} in {queue} (`dead-letters list` shows their ids)",
            which.ids.join(", ")
        )
        .into());
    }
    Ok(ExitCode::SUCCESS)
}
