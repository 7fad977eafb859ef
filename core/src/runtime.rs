//! The `Promiscuous` handle: one configured application.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use crate::config::{Config, ConfigBuilder};
use crate::error::Error;
use crate::publisher::Sweeper;
use crate::subscriber::Router;
use crate::traits::{Broker, Clock, Lock, Outbox, Storage};

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
    /// Turns true with `faulted`, so workers stop at once.
    pub(crate) fault: tokio::sync::watch::Sender<bool>,
    /// Set while the clock does not answer its checks.
    pub(crate) clock_down: AtomicBool,
    /// The outbox of the app's database, when it has one: where recovery
    /// settles publications of stopped publishers and the relay reads.
    outbox: RwLock<Option<Arc<dyn Outbox>>>,
    /// Forgets settled publications in the background.
    pub(crate) sweeper: Sweeper,
    /// The background tasks: the recovery worker and the clock watch.
    background: Mutex<Vec<tokio::task::JoinHandle<()>>>,
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
        let outbox = storage.as_ref().and_then(|s| s.outbox());
        let recovery_interval = config.recovery_interval;
        let clock_check_interval = config.clock_check_interval;
        let promiscuous = Self {
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
                fault: tokio::sync::watch::Sender::new(false),
                clock_down: AtomicBool::new(false),
                outbox: RwLock::new(outbox),
                sweeper: Sweeper::default(),
                background: Mutex::new(Vec::new()),
            }),
        };
        let weak = Arc::downgrade(&promiscuous.inner);
        let mut background = vec![tokio::spawn(crate::clock_watch::run(
            weak.clone(),
            clock_check_interval,
        ))];
        if let Some(every) = recovery_interval {
            background.push(tokio::spawn(crate::publisher::run_recovery(weak, every)));
        }
        *promiscuous
            .inner
            .background
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = background;
        promiscuous
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
    /// backend lost its state, the clock answered its last check (see
    /// `clock_check_interval`) and the broker connected. Use it as a load
    /// balancer health check.
    pub fn healthy(&self) -> bool {
        !self.inner.closed.load(Ordering::SeqCst)
            && !self.inner.faulted.load(Ordering::SeqCst)
            && !self.inner.clock_down.load(Ordering::SeqCst)
            && self.inner.broker.healthy()
    }

    /// Stops the recovery worker and closes the broker; later publishes fail
    /// with [`Error::Shutdown`]. Idempotent.
    pub async fn shutdown(&self) -> crate::Result<()> {
        if self.inner.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        self.inner.stop_background();
        self.inner.sweeper.flush(&self.inner).await;
        self.inner.broker.close().await.map_err(Error::from)
    }

    /// Waits until the settled publications are forgotten (their intents in
    /// the clock, their outbox entries): they are forgotten in the
    /// background, in batches.
    pub async fn flush(&self) {
        self.inner.sweeper.flush(&self.inner).await;
    }

    /// Uses `outbox` for recovery and the relay, unless the app has one
    /// already (one database per app). Adapters call it.
    pub fn attach_outbox(&self, outbox: Arc<dyn Outbox>) {
        self.inner.attach_outbox(outbox);
    }

    /// The outbox recovery and the relay use, if any.
    pub fn outbox(&self) -> Option<Arc<dyn Outbox>> {
        self.inner.outbox()
    }

    /// Logs an error and hands it to the error notifier.
    pub fn report(&self, error: &Error) {
        self.inner.report(error);
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.stop_background();
    }
}

impl Runtime {
    pub(crate) fn report(&self, error: &Error) {
        if error.is_state_lost() {
            self.faulted.store(true, Ordering::SeqCst);
            self.fault.send_replace(true);
        }
        crate::metrics::error(&self.config.app, error.kind());
        // The whole chain: each error's message holds its context, its source the cause.
        let shown = crate::error::chain(error);
        match error.kind() {
            crate::ErrorKind::Recover if matches!(error, Error::PublicationRecovered { .. }) => {
                tracing::info!(app = %self.config.app, kind = %error.kind(), error = %shown, "promiscuous recovered a publication")
            }
            crate::ErrorKind::Recover => {
                tracing::warn!(app = %self.config.app, kind = %error.kind(), error = %shown, "promiscuous waits or recovered")
            }
            kind => {
                tracing::error!(app = %self.config.app, kind = %kind, error = %shown, "promiscuous error")
            }
        }
        if let Some(notifier) = &self.config.error_notifier {
            notifier(error);
        }
    }

    pub(crate) fn outbox(&self) -> Option<Arc<dyn Outbox>> {
        self.outbox
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn attach_outbox(&self, outbox: Arc<dyn Outbox>) {
        let mut slot = self.outbox.write().unwrap_or_else(PoisonError::into_inner);
        if slot.is_none() {
            *slot = Some(outbox);
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    fn stop_background(&self) {
        let tasks = std::mem::take(
            &mut *self
                .background
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for task in tasks {
            task.abort();
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
