//! [`App`]: what the command line needs of the application.

use std::sync::Arc;

use promiscuous_core::publisher::SyncSource;
use promiscuous_core::ConfigBuilder;

/// The application as the command line sees it: the builder of its
/// promiscuous instance (app name, backends, storage, subscribers), and the
/// models `publish` can sync. Commands change the builder's worker settings
/// from their flags before building it.
#[derive(Debug)]
pub struct App {
    pub(crate) config: ConfigBuilder,
    pub(crate) syncs: Vec<Arc<dyn SyncSource>>,
}

impl App {
    /// The app configured by `config` (not built yet).
    pub fn new(config: ConfigBuilder) -> Self {
        Self {
            config,
            syncs: Vec::new(),
        }
    }

    /// Lets `publish` sync `source`'s model (`promiscuous::sql::SqlSync` for
    /// a sea-orm entity).
    pub fn sync(mut self, source: impl SyncSource + 'static) -> Self {
        self.syncs.push(Arc::new(source));
        self
    }

    /// The source of `model`, compared without case (`user` finds `User`).
    pub(crate) fn sync_source(&self, model: &str) -> Option<&Arc<dyn SyncSource>> {
        self.syncs
            .iter()
            .find(|source| source.model().eq_ignore_ascii_case(model))
    }

    /// The models `publish` can sync, for errors and help.
    pub(crate) fn syncable(&self) -> Vec<&'static str> {
        self.syncs.iter().map(|source| source.model()).collect()
    }
}
