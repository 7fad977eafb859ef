//! `mocks`: the mocks export of this app's publishers.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use promiscuous_core::BoxError;

use crate::App;

/// The flags of `mocks`.
#[derive(Debug, Clone, Args)]
pub struct MocksArgs {
    /// Writes the export to FILE (standard output without it). It is the
    /// file `validate::publishers` and `contract_tests!` check.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

pub(crate) fn run(app: App, args: MocksArgs) -> Result<ExitCode, BoxError> {
    // Only the app's name is needed: nothing connects.
    let name = app.config.resolve()?.app;
    if promiscuous_validate::published_definitions().is_empty() {
        return Err(format!(
            "{name} publishes no model in this binary: derive Publish on its models (and link them into this binary)"
        )
        .into());
    }
    match args.output {
        Some(path) => {
            promiscuous_validate::write_mocks(&name, &path)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            eprintln!("wrote the mocks of {name} to {}", path.display());
        }
        None => print!("{}", promiscuous_validate::export_mocks(&name)),
    }
    Ok(ExitCode::SUCCESS)
}
