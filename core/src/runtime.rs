//! The `Promiscuous` handle: one configured application.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use crate::config::{Config, ConfigBuilder};
use crate::error::Error;
use crate::subscriber::Router;
use crate::traits::{Broker, Clock, Lock, Storage};

/// One configured application: publishes its models' writes and runs its
/// subscriber worker. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct Promiscuous {
    pub(crate) inner: Arc<Runtime>,
}

/// What every part of an instance shares.
pub(crate) struct Runtime {
    pub(crate) config: Config,
    pub(crate) broker: Arc<dyn Broker>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) lock: Arc<dyn Lock>,
    pub(crate) storage: Option<Arc<dyn Storage>>,
    pub(crate) router: Router,
    /// Tags this instance's locks: host, process and a per-instance nonce.
    pub(crate) owner: String,
    pub(crate) lock_sequence: AtomicU64,
    pub(crate) closed: AtomicBool,
    /// Set when a backend lost its state: the instance cannot order anything.
    pub(crate) faulted: AtomicBool,
}

impl fmt::Debug for Promiscuous {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Promiscuous")
            .field("config", &self.inner.config)
            .field("broker", &self.inner.broker)
            .field("clock", &self.inner.clock)
            .field("lock", &self.inner.lock)
            .field("storage", &self.inner.storage)
            .finish()
    }
}

impl Promiscuous {
    /// Starts configuring an instance.
    pub fn configure() -> ConfigBuilder {
        ConfigBuilder::default()
    }

    pub(crate) fn new(
        config: Config,
        broker: Arc<dyn Broker>,
        clock: Arc<dyn Clock>,
        lock: Arc<dyn Lock>,
        storage: Option<Arc<dyn Storage>>,
        router: Router,
    ) -> Self {
        let nonce = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let owner = format!("{}:{}:{nonce:x}", config.host, std::process::id());
        Self {
            inner: Arc::new(Runtime {
                config,
                broker,
                clock,
                lock,
                storage,
                router,
                owner,
                lock_sequence: AtomicU64::new(0),
                closed: AtomicBool::new(false),
                faulted: AtomicBool::new(false),
            }),
        }
    }

    /// The validated configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The application name.
    pub fn app(&self) -> &str {
        &self.inner.config.app
    }

    /// The broker in use.
    pub fn broker(&self) -> &Arc<dyn Broker> {
        &self.inner.broker
    }

    /// The clock in use.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// The lock in use.
    pub fn lock(&self) -> &Arc<dyn Lock> {
        &self.inner.lock
    }

    /// The storage in use, if any.
    pub fn storage(&self) -> Option<&Arc<dyn Storage>> {
        self.inner.storage.as_ref()
    }

    /// Whether this instance can publish and subscribe now: not shut down, no
    /// backend lost its state, and the broker connected. Use it as a load
    /// balancer health check.
    pub fn healthy(&self) -> bool {
        !self.inner.closed.load(Ordering::SeqCst)
            && !self.inner.faulted.load(Ordering::SeqCst)
            && self.inner.broker.healthy()
    }

    /// Closes the broker; later publishes fail with [`Error::Shutdown`]. Idempotent.
    pub async fn shutdown(&self) -> crate::Result<()> {
        if self.inner.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        self.inner.broker.close().await.map_err(Error::from)
    }

    /// Logs an error and hands it to the error notifier.
    pub fn report(&self, error: &Error) {
        self.inner.report(error);
    }
}

impl Runtime {
    pub(crate) fn report(&self, error: &Error) {
        if error.is_state_lost() {
            self.faulted.store(true, Ordering::SeqCst);
        }
        // The whole chain: each error's message holds its context, its source the cause.
        let shown = crate::error::chain(error);
        match error.kind() {
            crate::ErrorKind::Recover => {
                tracing::warn!(app = %self.config.app, kind = %error.kind(), error = %shown, "promiscuous recovered")
            }
            kind => {
                tracing::error!(app = %self.config.app, kind = %kind, error = %shown, "promiscuous error")
            }
        }
        if let Some(notifier) = &self.config.error_notifier {
            notifier(error);
        }
    }

    pub(crate) fn ensure_open(&self) -> crate::Result<()> {
        if self.closed.load(Ordering::SeqCst) {
            Err(Error::Shutdown("this instance was shut down"))
        } else {
            Ok(())
        }
    }
}
