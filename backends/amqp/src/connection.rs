//! The connection to RabbitMQ: connecting, health, and the supervisor task
//! that notices a lost connection and reconnects with backoff.
//!
//! The current state is a [`Link`] in a `watch` channel: `Up` with a
//! [`Session`] (the connection and its confirm-mode publisher channel),
//! `Down` while reconnecting, or `Closed` for good. Publishers and consumers
//! wait on it for a usable session.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use futures::StreamExt;
use lapin::options::ConfirmSelectOptions;
use lapin::types::{LongString, ShortString};
use lapin::{Channel, Connection, ConnectionProperties, Event};
use promiscuous_core::error::chain;
use promiscuous_core::{backoff, BackendError};
use tokio::runtime::Handle;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::error;
use crate::options::Options;
use crate::topology;

/// How long connecting (TCP, TLS, AMQP handshake, publisher channel and
/// exchange declaration) may take before the attempt counts as failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// First pause before reconnecting; it doubles after each failed attempt.
const FIRST_RECONNECT_PAUSE: Duration = Duration::from_secs(2);
/// Longest pause between two reconnection attempts.
const MAX_RECONNECT_PAUSE: Duration = Duration::from_secs(30);
/// How often the supervisor looks at the connection's status.
const WATCH_INTERVAL: Duration = Duration::from_millis(100);
/// How many channel numbers [`Session::open_channel`] tries.
const OPEN_CHANNEL_ATTEMPTS: u32 = 8;
/// How long closing a connection may take before we stop waiting.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a call RabbitMQ answers at once (open a channel, declare, ack)
/// may take before it counts as failed.
pub(crate) const CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// `call`, failing after [`CALL_TIMEOUT`]: lapin 4 can leave a call pending
/// forever when the connection dies at the wrong moment.
pub(crate) async fn bounded<T>(call: impl Future<Output = lapin::Result<T>>) -> lapin::Result<T> {
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(result) => result,
        Err(_) => Err(lapin::Error::from(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("RabbitMQ did not answer within {CALL_TIMEOUT:?}"),
        ))),
    }
}

/// The instant `timeout` from now; a timeout too long to add counts as "about forever".
pub(crate) fn deadline_in(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout)
        .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 24 * 3600)))
        .unwrap_or(now)
}

/// One live connection and the channels shared by the whole broker.
pub(crate) struct Session {
    /// The AMQP connection.
    pub(crate) connection: Connection,
    /// The channel every publish goes through, in confirm mode.
    pub(crate) publisher: Channel,
    /// A channel for declarations of retry and error queues; re-opened when a
    /// refused declaration closed it.
    topology: Mutex<Option<Channel>>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("connection", self.connection.status())
            .field("publisher", &self.publisher.id())
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Whether the connection and the publisher channel are both open.
    pub(crate) fn is_usable(&self) -> bool {
        self.connection.status().connected() && self.publisher.status().connected()
    }

    /// Opens a channel, trying a few channel numbers.
    ///
    /// lapin 4 keeps the error of a channel closed by RabbitMQ (a 404, a 406)
    /// attached to its channel number; once the numbers wrap around (after
    /// `channel_max` channels) opening that number again fails with the old
    /// error. The next attempt gets the next number.
    pub(crate) async fn open_channel(&self) -> lapin::Result<Channel> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            match bounded(self.connection.create_channel()).await {
                Ok(channel) => return Ok(channel),
                Err(e)
                    if attempts < OPEN_CHANNEL_ATTEMPTS && self.connection.status().connected() =>
                {
                    tracing::debug!(error = %e, "opening a channel failed; trying the next channel number");
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The shared channel for declarations, opened if needed.
    pub(crate) async fn topology_channel(&self) -> lapin::Result<Channel> {
        let current = self
            .topology
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(channel) = current.filter(|c| c.status().connected()) {
            return Ok(channel);
        }
        let channel = self.open_channel().await?;
        *self.topology.lock().unwrap_or_else(PoisonError::into_inner) = Some(channel.clone());
        Ok(channel)
    }

    /// Closes the connection, ignoring errors and giving up after a while.
    pub(crate) async fn close(&self, reason: &str) {
        if !self.connection.status().connected() {
            return;
        }
        let reason = ShortString::try_new(reason).unwrap_or_else(|_| ShortString::from("closed"));
        let closing = self.connection.close(200, reason);
        if let Ok(Err(e)) = tokio::time::timeout(CLOSE_TIMEOUT, closing).await {
            tracing::debug!(error = %e, "closing the RabbitMQ connection failed");
        }
    }
}

/// Where the broker stands.
#[derive(Debug, Clone)]
pub(crate) enum Link {
    /// Connected.
    Up(Arc<Session>),
    /// The connection was lost; the supervisor is reconnecting.
    Down,
    /// [`close`](promiscuous_core::traits::Broker::close) was called.
    Closed,
}

/// Why no session could be had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unavailable {
    /// The broker was closed.
    Closed,
    /// The deadline passed before the reconnection.
    TimedOut,
}

/// The state shared by the broker, its consumers and its ackers.
pub(crate) struct Shared {
    /// The parsed options.
    pub(crate) options: Options,
    /// The runtime the broker was created on, for the tasks it spawns.
    pub(crate) runtime: Handle,
    link: watch::Sender<Link>,
    /// Retry queues declared by this broker, by subscription queue: delays in ms.
    pub(crate) retry_delays: Mutex<BTreeMap<String, BTreeSet<u32>>>,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("options", &self.options)
            .field("link", &*self.link.borrow())
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// Connects, and on success starts the supervisor.
    pub(crate) async fn connect(options: Options) -> Result<Arc<Self>, BackendError> {
        let runtime = Handle::try_current().map_err(|_| {
            error::permanent(
                "connect",
                &options.url,
                "must be called within a tokio runtime (lapin runs on tokio here)",
            )
        })?;
        let session = connect_session(&options).await?;
        tracing::info!(url = %options.url, exchange = %options.exchange, "connected to RabbitMQ");
        let shared = Arc::new(Self {
            options,
            runtime,
            link: watch::Sender::new(Link::Up(session.clone())),
            retry_delays: Mutex::default(),
        });
        shared
            .runtime
            .spawn(supervise(Arc::downgrade(&shared), session));
        Ok(shared)
    }

    /// Whether [`close`](Self::close) was called.
    pub(crate) fn is_closed(&self) -> bool {
        matches!(*self.link.borrow(), Link::Closed)
    }

    /// The current session if it is usable right now.
    pub(crate) fn current(&self) -> Option<Arc<Session>> {
        match &*self.link.borrow() {
            Link::Up(session) if session.is_usable() => Some(session.clone()),
            _ => None,
        }
    }

    /// A usable session, waiting for the reconnection until `deadline` (or
    /// forever with `None`).
    pub(crate) async fn session(
        &self,
        deadline: Option<Instant>,
    ) -> Result<Arc<Session>, Unavailable> {
        let mut link = self.link.subscribe();
        loop {
            match &*link.borrow_and_update() {
                Link::Closed => return Err(Unavailable::Closed),
                Link::Up(session) if session.is_usable() => return Ok(session.clone()),
                // Down, or Up with a connection the supervisor is about to
                // notice is lost: wait for the next state.
                _ => {}
            }
            let changed = match deadline {
                Some(deadline) => tokio::time::timeout_at(deadline, link.changed())
                    .await
                    .map_err(|_| Unavailable::TimedOut)?,
                None => link.changed().await,
            };
            if changed.is_err() {
                return Err(Unavailable::Closed);
            }
        }
    }

    /// Resolves once the broker is closed.
    pub(crate) async fn closed(&self) {
        let mut link = self.link.subscribe();
        // An error means the sender is gone, which cannot happen while `self` lives.
        let _ = link.wait_for(|l| matches!(l, Link::Closed)).await;
    }

    /// Marks the broker closed for good; returns the session to close, if any.
    pub(crate) fn close(&self) -> Option<Arc<Session>> {
        match self.link.send_replace(Link::Closed) {
            Link::Up(session) => Some(session),
            Link::Down | Link::Closed => None,
        }
    }

    /// Marks `lost` as gone; false when the broker was closed meanwhile.
    fn mark_down(&self, lost: &Arc<Session>) -> bool {
        let mut open = true;
        self.link.send_if_modified(|link| match link {
            Link::Closed => {
                open = false;
                false
            }
            Link::Up(current) if Arc::ptr_eq(current, lost) => {
                *link = Link::Down;
                true
            }
            _ => false,
        });
        open
    }

    /// Publishes a new session; false when the broker was closed meanwhile.
    fn mark_up(&self, session: Arc<Session>) -> bool {
        let mut open = true;
        self.link.send_if_modified(|link| {
            if matches!(link, Link::Closed) {
                open = false;
                false
            } else {
                *link = Link::Up(session);
                true
            }
        });
        open
    }

    /// Remembers that the retry queue of `queue` for `delay_ms` was declared.
    pub(crate) fn record_retry_queue(&self, queue: &str, delay_ms: u32) {
        self.retry_delays
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(queue.to_owned())
            .or_default()
            .insert(delay_ms);
    }

    /// Forgets the retry queues of `queue`, returning their delays.
    pub(crate) fn take_retry_delays(&self, queue: &str) -> Vec<u32> {
        self.retry_delays
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(queue)
            .map(|delays| delays.into_iter().collect())
            .unwrap_or_default()
    }
}

/// Opens a connection, its publisher channel in confirm mode, and declares the exchange.
async fn connect_session(options: &Options) -> Result<Arc<Session>, BackendError> {
    let properties = ConnectionProperties::default()
        .with_connection_name(LongString::from(options.connection_name.as_str()))
        .with_client_property(
            ShortString::from("product"),
            LongString::from("promiscuous-rs"),
        );
    let connecting = Connection::connect_uri(options.uri.clone(), properties);
    let connection = match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
        Ok(Ok(connection)) => connection,
        Ok(Err(e)) => {
            return Err(error::from_lapin(
                "connect",
                &options.url,
                "cannot connect to RabbitMQ",
                e,
            ))
        }
        Err(_) => {
            return Err(error::temporary(
                "connect",
                &options.url,
                format!("RabbitMQ did not complete the connection within {CONNECT_TIMEOUT:?}"),
            ))
        }
    };
    let setup = async {
        let publisher = connection.create_channel().await?;
        publisher
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        topology::declare_exchange(&publisher, &options.exchange).await?;
        Ok::<_, lapin::Error>(publisher)
    };
    let result = match tokio::time::timeout(CONNECT_TIMEOUT, setup).await {
        Ok(Ok(publisher)) => {
            return Ok(Arc::new(Session {
                connection,
                publisher,
                topology: Mutex::new(None),
            }))
        }
        Ok(Err(e)) => {
            let context = format!(
                "cannot open the publisher channel or declare the topic exchange {:?}",
                options.exchange
            );
            error::from_lapin("connect", &options.url, &context, e)
        }
        Err(_) => error::temporary(
            "connect",
            &options.url,
            format!("opening the publisher channel took more than {CONNECT_TIMEOUT:?}"),
        ),
    };
    let closing = connection.close(200, ShortString::from("setup failed"));
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, closing).await;
    Err(result)
}

/// The supervisor: watches the session, and when it is lost marks the broker
/// down and reconnects. Ends when the broker is closed or dropped.
async fn supervise(shared: Weak<Shared>, mut session: Arc<Session>) {
    loop {
        let Some(reason) = watch(&shared, &session).await else {
            return;
        };
        {
            let Some(strong) = shared.upgrade() else {
                return;
            };
            if !strong.mark_down(&session) {
                return;
            }
            tracing::warn!(url = %strong.options.url, %reason, "lost the connection to RabbitMQ; reconnecting");
        }
        // The connection may still be open when only the publisher channel died.
        session.close("reconnecting").await;
        drop(session);
        match reconnect(&shared).await {
            Some(next) => session = next,
            None => return,
        }
    }
}

/// Waits until `session` is lost (returns why) or the broker is closed or dropped (`None`).
async fn watch(shared: &Weak<Shared>, session: &Session) -> Option<String> {
    let mut link = shared.upgrade()?.link.subscribe();
    let mut events = Some(session.connection.events_listener());
    let mut tick = tokio::time::interval(WATCH_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if matches!(*link.borrow_and_update(), Link::Closed) {
            return None;
        }
        let status = session.connection.status();
        if !status.connected() {
            return Some(format!("the connection is {:?}", status_name(status)));
        }
        if !session.publisher.status().connected() {
            return Some("the publisher channel was closed".to_owned());
        }
        tokio::select! {
            event = next_event(&mut events) => {
                // Channel errors (a refused declaration, a 404) come through
                // this stream too: an event only says "look at the status".
                if let Some(Event::Error(e)) = event {
                    tracing::debug!(error = %e, "RabbitMQ connection event");
                }
            }
            _ = tick.tick() => {}
            changed = link.changed() => {
                if changed.is_err() {
                    return None;
                }
            }
        }
    }
}

/// The next connection event; pends forever once the event stream ended.
async fn next_event(
    events: &mut Option<impl futures::Stream<Item = Event> + Unpin>,
) -> Option<Event> {
    match events {
        Some(stream) => match stream.next().await {
            Some(event) => Some(event),
            None => {
                *events = None;
                std::future::pending().await
            }
        },
        None => std::future::pending().await,
    }
}

fn status_name(status: &lapin::ConnectionStatus) -> &'static str {
    if status.closed() {
        "closed"
    } else if status.errored() {
        "in error"
    } else if status.closing() {
        "closing"
    } else if status.reconnecting() || status.connecting() {
        "reconnecting"
    } else {
        "not connected"
    }
}

/// Reconnects with backoff (2 s, doubling up to 30 s: [`backoff::exponential`])
/// until it succeeds (the new session is published) or the broker is closed
/// or dropped (`None`).
async fn reconnect(shared: &Weak<Shared>) -> Option<Arc<Session>> {
    let mut pauses = backoff::exponential(FIRST_RECONNECT_PAUSE, MAX_RECONNECT_PAUSE);
    let mut pause = pauses.next().unwrap_or(MAX_RECONNECT_PAUSE);
    let mut attempt: u32 = 0;
    loop {
        let (options, mut link) = {
            let strong = shared.upgrade()?;
            (strong.options.clone(), strong.link.subscribe())
        };
        let waited = tokio::select! {
            _ = tokio::time::sleep(pause) => true,
            _ = link.wait_for(|l| matches!(l, Link::Closed)) => false,
        };
        if !waited {
            return None;
        }
        attempt += 1;
        match connect_session(&options).await {
            Ok(session) => {
                let strong = shared.upgrade()?;
                if strong.mark_up(session.clone()) {
                    tracing::info!(url = %options.url, attempt, "reconnected to RabbitMQ");
                    return Some(session);
                }
                session.close("broker closed").await;
                return None;
            }
            Err(e) => {
                pause = pauses.next().unwrap_or(MAX_RECONNECT_PAUSE);
                tracing::warn!(url = %options.url, attempt, error = %chain(&e), retry_in = ?pause, "reconnecting to RabbitMQ failed");
            }
        }
    }
}
