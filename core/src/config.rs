//! `Promiscuous::configure()`: the builder, its defaults and its validation.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::backend::{factory_for, known_schemes, redact_url, scheme_of};
pub use crate::backend_choice::Backend;
use crate::error::{Error, Result};
use crate::model::{Subscribe, SubscriberRegistration};
use crate::runtime::Promiscuous;
use crate::subscriber::Router;
use crate::traits::{Broker, Clock, Lock, Storage};
use crate::wire::Endpoint;

/// Environment variable naming the application when `.app()` is not called.
pub const ENV_APP: &str = "PROMISCUOUS_APP";
/// Environment variable holding the broker URL when none is given.
pub const ENV_AMQP_URL: &str = "PROMISCUOUS_AMQP_URL";
/// Environment variable holding the lock and clock URL when none is given.
pub const ENV_REDIS_URL: &str = "PROMISCUOUS_REDIS_URL";
/// Broker URL used when neither `.broker_url()` nor the environment gives one.
pub const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
/// Lock and clock URL used when neither `.redis_url()` nor the environment gives one.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379/";

/// How a subscriber orders the operations it applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Mode {
    /// Each record's operations in publish order, after the operations they
    /// declare they read. The default.
    #[default]
    Causal,
    /// All operations of an endpoint in one total order (the Ruby gem's order).
    Global,
    /// Latest wins: an operation older than one already applied to the same
    /// record is dropped; nothing ever waits.
    Weak,
    /// No ordering at all, for development (the Ruby gem's `--bareback`).
    Unordered,
}

impl Mode {
    /// Parses `causal`, `global`, `weak` or `unordered`.
    pub fn parse(text: &str) -> Result<Self> {
        match text.to_ascii_lowercase().as_str() {
            "causal" => Ok(Mode::Causal),
            "global" => Ok(Mode::Global),
            "weak" => Ok(Mode::Weak),
            "unordered" | "bareback" => Ok(Mode::Unordered),
            other => Err(Error::config(
                "mode",
                format!("unknown mode {other:?}; expected causal, global, weak or unordered"),
            )),
        }
    }
}

/// Receives every error promiscuous reports (after it is logged).
pub type ErrorNotifier = Arc<dyn Fn(&Error) + Send + Sync>;

/// A backend given as a URL or as an instance.
enum Choice<T: ?Sized> {
    Unset,
    /// A URL, and the builder method that gave it (named in errors).
    Url(String, &'static str),
    Urls(Vec<String>),
    Instance(Arc<T>),
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for Choice<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Choice::Unset => f.write_str("default"),
            Choice::Url(url, _) => write!(f, "{}", redact_url(url)),
            Choice::Urls(urls) => {
                let shown: Vec<String> = urls.iter().map(|u| redact_url(u)).collect();
                write!(f, "{shown:?}")
            }
            Choice::Instance(instance) => write!(f, "{instance:?}"),
        }
    }
}

/// The validated settings of a [`Promiscuous`] instance.
#[derive(Clone)]
pub struct Config {
    /// The application name: publishes to `app/model`, consumes queue `app`.
    pub app: String,
    /// Ordering mode of the subscriber. Default: causal.
    pub mode: Mode,
    /// Unacknowledged messages the worker may hold. Default: 1000.
    pub prefetch: u16,
    /// Operations applied concurrently by the worker. Default: 8.
    pub runners: usize,
    /// Number of version counters per endpoint that record ids hash into.
    /// Default: 2^20. 1 puts every record of an endpoint in one order.
    pub hash_size: u64,
    /// Generation of the version counters; bump it after losing Redis. Default: 0.
    pub generation: u64,
    /// How long a publisher's lock lives if it is never released. Default: 10 s.
    pub lock_ttl: Duration,
    /// How long a publisher waits for a busy lock. Default: 10 s.
    pub lock_timeout: Duration,
    /// How long the worker waits for a missing operation before alerting
    /// ([`Error::Stalled`], then again every `recovery_timeout`). It keeps
    /// waiting. Default: 10 s.
    pub recovery_timeout: Duration,
    /// Skip a missing operation after waiting this long, reporting each skip
    /// ([`Error::Recover`]); `None` (the default) never skips by itself: only
    /// an operator does ([`Promiscuous::skip_missing`]). For a subscriber that
    /// joins a running publisher without an initial sync, whose first
    /// messages miss history it never received.
    pub skip_missing_after: Option<Duration>,
    /// Attempts at processing a message before it is dead-lettered. Default: 10.
    pub max_attempts: u32,
    /// Delay before the first retry; doubled at each attempt, at most 5 min. Default: 1 s.
    pub retry_backoff: Duration,
    /// How long a worker's shutdown waits for operations being applied before
    /// abandoning them (their messages are delivered again). Default: 30 s.
    pub shutdown_timeout: Duration,
    /// How often the recovery worker looks for publications of stopped
    /// publishers and relays the outbox; `None` runs none in this process
    /// (run [`Promiscuous::recovery`] yourself). Default: 1 s.
    pub recovery_interval: Option<Duration>,
    /// How long a writer keeps its own outbox entry before the relay may
    /// publish it instead. Default: 30 s.
    pub outbox_claim: Duration,
    /// How often the process checks that its clock answers and still holds
    /// its state, so an idle process notices a lost Redis (`healthy()` turns
    /// false, the worker stops) before its next message. Default: 5 s.
    pub clock_check_interval: Duration,
    /// Host name sent in messages. Default: `$HOSTNAME` or `localhost`.
    pub host: String,
    pub(crate) error_notifier: Option<ErrorNotifier>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("app", &self.app)
            .field("mode", &self.mode)
            .field("prefetch", &self.prefetch)
            .field("runners", &self.runners)
            .field("hash_size", &self.hash_size)
            .field("generation", &self.generation)
            .field("lock_ttl", &self.lock_ttl)
            .field("lock_timeout", &self.lock_timeout)
            .field("recovery_timeout", &self.recovery_timeout)
            .field("skip_missing_after", &self.skip_missing_after)
            .field("max_attempts", &self.max_attempts)
            .field("retry_backoff", &self.retry_backoff)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field("recovery_interval", &self.recovery_interval)
            .field("outbox_claim", &self.outbox_claim)
            .field("clock_check_interval", &self.clock_check_interval)
            .field("host", &self.host)
            .field("error_notifier", &self.error_notifier.is_some())
            .finish()
    }
}

/// Builder methods that set one field to the value given, each with its doc.
macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident: $type:ty;)*) => {
        $(
            $(#[$doc])*
            pub fn $name(mut self, $name: $type) -> Self {
                self.$name = $name;
                self
            }
        )*
    };
}

/// Builds a [`Promiscuous`] instance; see [`Promiscuous::configure`].
///
/// Every setting has a default (documented on [`Config`]); URLs come from
/// `PROMISCUOUS_AMQP_URL` and `PROMISCUOUS_REDIS_URL` when not given, the app
/// name from `PROMISCUOUS_APP`. [`build`](ConfigBuilder::build) checks
/// everything and connects, so a wrong value fails at start-up, not at first use.
pub struct ConfigBuilder {
    app: Option<String>,
    broker: Choice<dyn Broker>,
    clock: Choice<dyn Clock>,
    lock: Choice<dyn Lock>,
    storage: Option<Arc<dyn Storage>>,
    subscribers: Option<Vec<&'static SubscriberRegistration>>,
    publisher_only: bool,
    mode: Mode,
    prefetch: u16,
    runners: usize,
    hash_size: u64,
    generation: u64,
    lock_ttl: Duration,
    lock_timeout: Duration,
    recovery_timeout: Duration,
    skip_missing_after: Option<Duration>,
    max_attempts: u32,
    retry_backoff: Duration,
    shutdown_timeout: Duration,
    recovery_interval: Option<Duration>,
    outbox_claim: Duration,
    clock_check_interval: Duration,
    host: Option<String>,
    error_notifier: Option<ErrorNotifier>,
    /// Why the last `backend(..)` is not valid, reported by `build()`.
    backend_problem: Option<String>,
}

impl fmt::Debug for ConfigBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigBuilder")
            .field("app", &self.app)
            .field("broker", &self.broker)
            .field("clock", &self.clock)
            .field("lock", &self.lock)
            .field("storage", &self.storage)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl Default for ConfigBuilder {
    fn default() -> Self {
        Self {
            app: None,
            broker: Choice::Unset,
            clock: Choice::Unset,
            lock: Choice::Unset,
            storage: None,
            subscribers: None,
            publisher_only: false,
            mode: Mode::Causal,
            prefetch: 1000,
            runners: 8,
            hash_size: 1 << 20,
            generation: 0,
            lock_ttl: Duration::from_secs(10),
            lock_timeout: Duration::from_secs(10),
            recovery_timeout: Duration::from_secs(10),
            skip_missing_after: None,
            max_attempts: 10,
            retry_backoff: Duration::from_secs(1),
            shutdown_timeout: Duration::from_secs(30),
            recovery_interval: Some(Duration::from_secs(1)),
            outbox_claim: Duration::from_secs(30),
            clock_check_interval: Duration::from_secs(5),
            host: None,
            error_notifier: None,
            backend_problem: None,
        }
    }
}

impl ConfigBuilder {
    /// The application name (required, or `PROMISCUOUS_APP`).
    pub fn app(mut self, app: impl Into<String>) -> Self {
        self.app = Some(app.into());
        self
    }

    /// The broker URL: `amqp://…` (feature `amqp`), `memory://name` (in-process,
    /// shared by every instance using the same name) or `null://` (pretend mode).
    pub fn broker_url(mut self, url: impl Into<String>) -> Self {
        self.broker = Choice::Url(url.into(), "broker_url");
        self
    }

    /// The broker, and for the in-memory ones the clock and lock, as one
    /// typed value: `.backend(Backend::Null)` in a test (see [`Backend`]).
    /// Checked by `build()`, like the URLs; a later `broker_url` or
    /// `redis_url` overrides what it set.
    pub fn backend(mut self, backend: Backend) -> Self {
        match backend.urls() {
            Ok(urls) => {
                self.backend_problem = None;
                self.broker = Choice::Url(urls.broker, "backend");
                if let Some(url) = urls.clock_and_lock {
                    self.clock = Choice::Url(url.clone(), "backend");
                    self.lock = Choice::Url(url, "backend");
                }
            }
            Err(problem) => self.backend_problem = Some(problem),
        }
        self
    }

    /// A broker instance, instead of a URL.
    pub fn broker(mut self, broker: Arc<dyn Broker>) -> Self {
        self.broker = Choice::Instance(broker);
        self
    }

    /// The URL of both the lock and the clock: `redis://…` (feature `redis`) or `memory://name`.
    pub fn redis_url(mut self, url: impl Into<String>) -> Self {
        let url = url.into();
        self.clock = Choice::Url(url.clone(), "redis_url");
        self.lock = Choice::Url(url, "redis_url");
        self
    }

    /// The clock URL, when it differs from the lock's.
    pub fn clock_url(mut self, url: impl Into<String>) -> Self {
        self.clock = Choice::Url(url.into(), "clock_url");
        self
    }

    /// Several clock URLs: counters are spread over them by endpoint (see
    /// [`ShardedClock`](crate::layers::ShardedClock)), so the version store scales out.
    pub fn clock_urls<I, S>(mut self, urls: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.clock = Choice::Urls(urls.into_iter().map(Into::into).collect());
        self
    }

    /// A clock instance, instead of a URL.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Choice::Instance(clock);
        self
    }

    /// The lock URL, when it differs from the clock's.
    pub fn lock_url(mut self, url: impl Into<String>) -> Self {
        self.lock = Choice::Url(url.into(), "lock_url");
        self
    }

    /// A lock instance, instead of a URL.
    pub fn lock(mut self, lock: Arc<dyn Lock>) -> Self {
        self.lock = Choice::Instance(lock);
        self
    }

    /// The storage of this app's models: where the worker replays operations
    /// and where `create`/`update`/`destroy` write.
    pub fn storage(mut self, storage: Arc<dyn Storage>) -> Self {
        self.storage = Some(storage);
        self
    }

    /// Runs this subscriber model in the worker. When never called, the worker
    /// runs every subscriber linked into the binary.
    pub fn subscriber<M: Subscribe>(mut self) -> Self {
        let found = crate::model::SubscriberRegistration::of(M::definition());
        let list = self.subscribers.get_or_insert_with(Vec::new);
        if let Some(reg) = found {
            list.push(reg);
        }
        self
    }

    /// Runs no subscriber model: a publisher-only instance, which then needs
    /// no storage for subscribed models and cannot [`subscribe`](Promiscuous::subscribe).
    pub fn no_subscribers(mut self) -> Self {
        self.subscribers = Some(Vec::new());
        self.publisher_only = true;
        self
    }

    /// Skips a missing operation after waiting `after`, reporting each skip
    /// as [`Error::Recover`]. Off by default: a subscriber never skips an
    /// operation that may still arrive unless told to. Meant for a subscriber
    /// joining a running publisher without an initial sync; what a skipped
    /// operation carried is lost for it.
    pub fn skip_missing_after(mut self, after: Duration) -> Self {
        self.skip_missing_after = Some(after);
        self
    }

    /// How often this process's recovery worker finishes the publications of
    /// publishers that stopped, and relays the outbox (default 1 s).
    pub fn recovery_interval(mut self, every: Duration) -> Self {
        self.recovery_interval = Some(every);
        self
    }

    /// Runs no recovery worker in this process: another process of the app
    /// must run one (or call [`Promiscuous::recovery`] yourself), or the
    /// publications of stopped publishers are never finished and subscribers
    /// wait for them.
    pub fn no_recovery_worker(mut self) -> Self {
        self.recovery_interval = None;
        self
    }

    setters! {
        /// The ordering mode of the worker.
        mode: Mode;
        /// How many unacknowledged messages the worker may hold (1 to 65535).
        prefetch: u16;
        /// How many operations the worker applies concurrently (at least 1).
        runners: usize;
        /// How many counters per endpoint record ids hash into (at least 1).
        hash_size: u64;
        /// The generation of the version counters.
        generation: u64;
        /// How long an unreleased publisher lock lives.
        lock_ttl: Duration;
        /// How long a publisher waits for a busy lock.
        lock_timeout: Duration;
        /// How long the worker waits for a missing operation before alerting
        /// (it keeps waiting, and alerts again every `timeout`).
        recovery_timeout: Duration;
        /// Attempts at processing a message before it is dead-lettered (at least 1).
        max_attempts: u32;
        /// Delay before the first retry of a failed message.
        retry_backoff: Duration;
        /// How long a worker's shutdown waits for operations being applied.
        shutdown_timeout: Duration;
        /// How long a writer keeps its own outbox entry before the relay may
        /// publish it instead (default 30 s): longer than the broker may take to
        /// confirm.
        outbox_claim: Duration;
        /// How often the process checks that its clock answers and still
        /// holds its state (default 5 s).
        clock_check_interval: Duration;
    }

    /// The host name sent in messages.
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = Some(host.into());
        self
    }

    /// Called with every error promiscuous reports, after logging it.
    pub fn error_notifier(mut self, notifier: impl Fn(&Error) + Send + Sync + 'static) -> Self {
        self.error_notifier = Some(Arc::new(notifier));
        self
    }

    /// The configuration [`build`](Self::build) would use, validated (the
    /// app name taken from `PROMISCUOUS_APP` when not given), without
    /// connecting to anything.
    pub fn resolve(&self) -> Result<Config> {
        self.validate()
    }

    fn validate(&self) -> Result<Config> {
        if let Some(problem) = &self.backend_problem {
            return Err(Error::config("backend", problem.clone()));
        }
        let app = match &self.app {
            Some(app) => app.clone(),
            None => std::env::var(ENV_APP).map_err(|_| {
                Error::config(
                    "app",
                    format!("no application name: call .app(\"name\") or set {ENV_APP}"),
                )
            })?,
        };
        Endpoint::parse(&format!("{app}/model")).map_err(|_| {
            Error::config(
                "app",
                format!("{app:?} is not a valid application name: use letters, digits, `_` or `-`"),
            )
        })?;
        if app.len() > MAX_APP_LEN {
            return Err(Error::config(
                "app",
                format!(
                    "the application name is {} bytes long; at most {MAX_APP_LEN}: it names the RabbitMQ queues `<app>` and `<app>.error`, whose names are at most 255 bytes",
                    app.len()
                ),
            ));
        }
        let positive = |field: &'static str, value: Duration| {
            if value.is_zero() {
                Err(Error::config(field, "must be greater than zero"))
            } else {
                Ok(())
            }
        };
        if self.prefetch == 0 {
            return Err(Error::config(
                "prefetch",
                "must be at least 1 (it is how many messages the worker may hold)",
            ));
        }
        if self.runners == 0 {
            return Err(Error::config("runners", "must be at least 1"));
        }
        if self.runners > usize::from(self.prefetch) {
            return Err(Error::config(
                "runners",
                format!("{} runners cannot be kept busy with a prefetch of {}; raise prefetch or lower runners", self.runners, self.prefetch),
            ));
        }
        if self.hash_size == 0 {
            return Err(Error::config(
                "hash_size",
                "must be at least 1 (1 orders all records of an endpoint together)",
            ));
        }
        if self.max_attempts == 0 {
            return Err(Error::config("max_attempts", "must be at least 1"));
        }
        positive("lock_ttl", self.lock_ttl)?;
        positive("lock_timeout", self.lock_timeout)?;
        positive("recovery_timeout", self.recovery_timeout)?;
        positive("retry_backoff", self.retry_backoff)?;
        positive("outbox_claim", self.outbox_claim)?;
        positive("clock_check_interval", self.clock_check_interval)?;
        if let Some(after) = self.skip_missing_after {
            positive("skip_missing_after", after)?;
        }
        if let Some(every) = self.recovery_interval {
            positive("recovery_interval", every)?;
        }
        if !self.publisher_only && matches!(&self.subscribers, Some(list) if list.is_empty()) {
            return Err(Error::config(
                "subscriber",
                "a model passed to .subscriber::<M>() is not registered; derive Subscribe on it",
            ));
        }
        Ok(Config {
            app,
            mode: self.mode,
            prefetch: self.prefetch,
            runners: self.runners,
            hash_size: self.hash_size,
            generation: self.generation,
            lock_ttl: self.lock_ttl,
            lock_timeout: self.lock_timeout,
            recovery_timeout: self.recovery_timeout,
            skip_missing_after: self.skip_missing_after,
            max_attempts: self.max_attempts,
            retry_backoff: self.retry_backoff,
            shutdown_timeout: self.shutdown_timeout,
            recovery_interval: self.recovery_interval,
            outbox_claim: self.outbox_claim,
            clock_check_interval: self.clock_check_interval,
            host: self
                .host
                .clone()
                .or_else(|| std::env::var("HOSTNAME").ok())
                .unwrap_or_else(|| "localhost".to_owned()),
            error_notifier: self.error_notifier.clone(),
        })
    }

    /// Validates the settings, connects the backends and returns the instance.
    pub async fn build(self) -> Result<Promiscuous> {
        let config = self.validate()?;
        check_publisher_endpoints(&config.app)?;
        let subscribers = self
            .subscribers
            .clone()
            .unwrap_or_else(crate::model::subscriber_registrations);
        let router = Router::new(&subscribers)?;
        if self.storage.is_none() {
            if let Some(def) = router.stored_models().next() {
                return Err(Error::config(
                    "storage",
                    format!("subscriber {def} stores records but no storage is configured; call .storage(...), or select only observers with .subscriber::<M>()"),
                ));
            }
        }
        let broker = match self.broker {
            Choice::Instance(broker) => broker,
            choice => {
                let (url, field) = url_of(choice, "broker_url", ENV_AMQP_URL, DEFAULT_AMQP_URL);
                let factory = factory(&url, field, |f| f.broker.is_some())?;
                let build = factory.broker.ok_or_else(|| not_a(field, &url, "broker"))?;
                build(&url).await.map_err(|e| connect_failed(field, e))?
            }
        };
        let clock = match self.clock {
            Choice::Instance(clock) => clock,
            Choice::Urls(urls) => {
                let mut nodes = Vec::with_capacity(urls.len());
                for url in &urls {
                    let factory = factory(url, "clock_urls", |f| f.clock.is_some())?;
                    let build = factory
                        .clock
                        .ok_or_else(|| not_a("clock_urls", url, "clock"))?;
                    nodes.push(
                        build(url)
                            .await
                            .map_err(|e| connect_failed("clock_urls", e))?,
                    );
                }
                let sharded = crate::layers::ShardedClock::new(nodes)
                    .map_err(|e| Error::config("clock_urls", e.message))?;
                Arc::new(sharded)
            }
            choice => {
                let (url, field) = url_of(choice, "redis_url", ENV_REDIS_URL, DEFAULT_REDIS_URL);
                let factory = factory(&url, field, |f| f.clock.is_some())?;
                let build = factory.clock.ok_or_else(|| not_a(field, &url, "clock"))?;
                build(&url).await.map_err(|e| connect_failed(field, e))?
            }
        };
        let lock = match self.lock {
            Choice::Instance(lock) => lock,
            choice => {
                let (url, field) = url_of(choice, "redis_url", ENV_REDIS_URL, DEFAULT_REDIS_URL);
                let factory = factory(&url, field, |f| f.lock.is_some())?;
                let build = factory.lock.ok_or_else(|| not_a(field, &url, "lock"))?;
                build(&url).await.map_err(|e| connect_failed(field, e))?
            }
        };
        Ok(Promiscuous::new(
            config,
            broker,
            clock,
            lock,
            self.storage,
            router,
        ))
    }
}

/// Longest application name: `<app>.error` must fit a 255-byte queue name.
const MAX_APP_LEN: usize = 255 - ".error".len();

/// Every publisher in the binary publishes to a valid endpoint (a `to` is
/// only checked here: the derive takes it as written).
fn check_publisher_endpoints(app: &str) -> Result<()> {
    for registration in crate::model::PublisherRegistration::all() {
        let def = (registration.definition)();
        Endpoint::parse(&def.endpoint(app)).map_err(|problem| Error::Definition {
            model: def.model.to_owned(),
            problem: format!("{problem}; fix its `to`"),
        })?;
    }
    Ok(())
}

/// The URL chosen, and the builder method (or default) it came from.
fn url_of<T: ?Sized>(
    choice: Choice<T>,
    default_field: &'static str,
    env: &str,
    default: &str,
) -> (String, &'static str) {
    match choice {
        Choice::Url(url, field) => (url, field),
        _ => (
            std::env::var(env).unwrap_or_else(|_| default.to_owned()),
            default_field,
        ),
    }
}

/// A backend that could not be built from the URL of `field`: a connection
/// error when trying again may help, otherwise a configuration error naming
/// the setting (a malformed URL, an unknown parameter, refused credentials).
fn connect_failed(field: &'static str, error: crate::error::BackendError) -> Error {
    if error.is_temporary() {
        Error::Connection(error)
    } else {
        Error::config(field, crate::error::chain(&error))
    }
}

fn not_a(field: &'static str, url: &str, role: &str) -> Error {
    Error::config(
        field,
        format!("{} does not provide a {role}", redact_url(url)),
    )
}

fn factory(
    url: &str,
    field: &'static str,
    provides: impl Fn(&crate::backend::BackendFactory) -> bool,
) -> Result<&'static crate::backend::BackendFactory> {
    let shown = redact_url(url);
    let Some(scheme) = scheme_of(url) else {
        return Err(Error::config(
            field,
            format!("{shown:?} is not a URL; expected scheme://…"),
        ));
    };
    match factory_for(url) {
        Some(f) if provides(f) => Ok(f),
        Some(_) | None => {
            let hint = match scheme {
                "amqp" | "amqps" => " (enable the `amqp` feature of promiscuous)",
                "redis" | "rediss" => " (enable the `redis` feature of promiscuous)",
                _ => "",
            };
            let known: Vec<&str> = known_schemes()
                .into_iter()
                .filter(|s| factory_for(&format!("{s}://")).is_some_and(&provides))
                .collect();
            Err(Error::config(
                field,
                format!(
                    "no backend for {shown}{hint}; schemes available in this binary: {}",
                    known.join(", ")
                ),
            ))
        }
    }
}
