//! Wake-ups of `wait_until` through Redis pub/sub.
//!
//! Every `advance` publishes, on the channel `<prefix>advanced`, the JSON
//! array of the counter keys it raised. Each [`RedisClock`](crate::RedisClock)
//! runs one [listener task](Listener) that owns a pub/sub connection
//! subscribed to that channel and wakes the local [`Waiters`] of those keys,
//! so an `advance` in any process wakes the waiters of every process.
//!
//! When the pub/sub connection drops (or stops answering the periodic `PING`),
//! the listener reconnects with a backoff (100 ms doubling up to 5 s) and,
//! once subscribed again, wakes every waiter so it re-reads its counter:
//! messages published while it was away are lost. The task ends when its
//! clock is dropped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use futures::StreamExt;
use promiscuous_core::error::chain;
use promiscuous_core::{backoff, BackendError};
use redis::aio::PubSub;
use tokio::sync::futures::Notified;
use tokio::sync::{oneshot, Notify};
use tokio::time::{Instant, MissedTickBehavior};

use crate::connection::{redis_error, CONNECT_TIMEOUT};

/// The first pause before reconnecting the pub/sub connection; it doubles
/// after each failed attempt ([`backoff::exponential`]).
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest pause between two reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often the listener checks its connection is alive with a `PING`.
const HEALTH_CHECK: Duration = Duration::from_secs(15);

/// The local waiters of one clock, by counter key (the Redis key).
#[derive(Debug, Default)]
pub(crate) struct Waiters {
    keys: Mutex<HashMap<String, Waiting>>,
}

/// The waiters of one key: one `Notify` shared by them, and how many there are.
#[derive(Debug)]
struct Waiting {
    notify: Arc<Notify>,
    count: usize,
}

impl Waiters {
    fn keys(&self) -> MutexGuard<'_, HashMap<String, Waiting>> {
        self.keys.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers interest in `key` until the registration is dropped.
    pub(crate) fn register(self: &Arc<Self>, key: &str) -> Registration {
        let mut keys = self.keys();
        let waiting = keys.entry(key.to_owned()).or_insert_with(|| Waiting {
            notify: Arc::new(Notify::new()),
            count: 0,
        });
        waiting.count += 1;
        Registration {
            waiters: Arc::clone(self),
            key: key.to_owned(),
            notify: Arc::clone(&waiting.notify),
        }
    }

    /// Wakes the waiters of `key`, if any.
    pub(crate) fn wake(&self, key: &str) {
        if let Some(waiting) = self.keys().get(key) {
            waiting.notify.notify_waiters();
        }
    }

    /// Wakes every waiter (after a reconnection, as messages may have been missed).
    pub(crate) fn wake_all(&self) {
        for waiting in self.keys().values() {
            waiting.notify.notify_waiters();
        }
    }

    /// How many keys have waiters (for tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.keys().len()
    }
}

/// One waiter's interest in a key; dropping it unregisters.
#[derive(Debug)]
pub(crate) struct Registration {
    waiters: Arc<Waiters>,
    key: String,
    notify: Arc<Notify>,
}

impl Registration {
    /// A future completed by the next wake-up of the key. Enable it (or poll
    /// it) before reading the counter, so no wake-up is lost in between.
    pub(crate) fn notified(&self) -> Notified<'_> {
        self.notify.notified()
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut keys = self.waiters.keys();
        if let Some(waiting) = keys.get_mut(&self.key) {
            waiting.count = waiting.count.saturating_sub(1);
            if waiting.count == 0 {
                keys.remove(&self.key);
            }
        }
    }
}

/// Opens a pub/sub connection subscribed to `channel`.
pub(crate) async fn subscribe(
    client: &redis::Client,
    channel: &str,
    target: &str,
) -> Result<PubSub, BackendError> {
    let attempt = async {
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(channel).await?;
        Ok::<_, redis::RedisError>(pubsub)
    };
    match tokio::time::timeout(CONNECT_TIMEOUT * 2, attempt).await {
        Ok(Ok(pubsub)) => Ok(pubsub),
        Ok(Err(e)) => Err(redis_error("subscribe", target, e)),
        Err(_) => Err(BackendError::new(
            crate::connection::BACKEND,
            "subscribe",
            target,
            format!(
                "subscribing to {channel} took longer than {:?}",
                CONNECT_TIMEOUT * 2
            ),
        )
        .temporary()),
    }
}

/// The handle of a clock's listener task: dropping it stops the task.
#[derive(Debug)]
pub(crate) struct Listener {
    _shutdown: oneshot::Sender<()>,
}

impl Listener {
    /// Spawns the listener on the current Tokio runtime, starting with the
    /// already subscribed `pubsub`; fails outside a Tokio runtime.
    pub(crate) fn spawn(
        client: redis::Client,
        channel: String,
        target: String,
        waiters: Weak<Waiters>,
        pubsub: PubSub,
    ) -> Result<Self, BackendError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|e| {
            BackendError::new(
                crate::connection::BACKEND,
                "connect",
                target.as_str(),
                "the Redis clock must be connected inside a Tokio runtime (it runs a task \
                 listening for wake-ups)",
            )
            .with_source(e)
        })?;
        let (shutdown, stopped) = oneshot::channel();
        let task = Task {
            client,
            channel,
            target,
            waiters,
        };
        runtime.spawn(task.run(pubsub, stopped));
        Ok(Self {
            _shutdown: shutdown,
        })
    }
}

/// What the listener task needs.
struct Task {
    client: redis::Client,
    channel: String,
    target: String,
    waiters: Weak<Waiters>,
}

/// Why one subscribed session of the listener ended.
enum Ended {
    /// The clock was dropped.
    Shutdown,
    /// The connection dropped or stopped answering.
    Lost(String),
}

impl Task {
    async fn run(self, first: PubSub, mut stopped: oneshot::Receiver<()>) {
        let mut pubsub = Some(first);
        let mut pauses = backoff::exponential(FIRST_BACKOFF, MAX_BACKOFF);
        loop {
            let current = match pubsub.take() {
                Some(current) => current,
                None => {
                    let attempt = tokio::select! {
                        _ = &mut stopped => return,
                        attempt = subscribe(&self.client, &self.channel, &self.target) => attempt,
                    };
                    match attempt {
                        Ok(current) => {
                            tracing::info!(
                                url = %self.target,
                                channel = %self.channel,
                                "redis clock: pub/sub reconnected; waking every waiter to re-read"
                            );
                            pauses = backoff::exponential(FIRST_BACKOFF, MAX_BACKOFF);
                            match self.waiters.upgrade() {
                                Some(waiters) => waiters.wake_all(),
                                None => return,
                            }
                            current
                        }
                        Err(e) => {
                            let pause = pauses.next().unwrap_or(MAX_BACKOFF);
                            tracing::warn!(
                                url = %self.target,
                                error = %chain(&e),
                                retry_in = ?pause,
                                "redis clock: cannot resubscribe to wake-ups"
                            );
                            tokio::select! {
                                _ = &mut stopped => return,
                                () = tokio::time::sleep(pause) => {}
                            }
                            continue;
                        }
                    }
                }
            };
            match self.listen(current, &mut stopped).await {
                Ended::Shutdown => return,
                Ended::Lost(reason) => {
                    tracing::warn!(
                        url = %self.target,
                        channel = %self.channel,
                        reason = %reason,
                        "redis clock: lost the pub/sub connection of wake-ups; reconnecting"
                    );
                    // Messages are lost until we are subscribed again; waiters
                    // still end at their timeout, and are all woken on resubscribe.
                }
            }
        }
    }

    /// Dispatches messages until the connection is lost or the clock dropped.
    async fn listen(&self, pubsub: PubSub, stopped: &mut oneshot::Receiver<()>) -> Ended {
        let (mut sink, mut stream) = pubsub.split();
        let mut health = tokio::time::interval_at(Instant::now() + HEALTH_CHECK, HEALTH_CHECK);
        health.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut *stopped => return Ended::Shutdown,
                message = stream.next() => {
                    let Some(message) = message else {
                        return Ended::Lost("the connection closed".to_owned());
                    };
                    let Some(waiters) = self.waiters.upgrade() else {
                        return Ended::Shutdown;
                    };
                    match serde_json::from_slice::<Vec<String>>(message.get_payload_bytes()) {
                        Ok(keys) => {
                            for key in &keys {
                                waiters.wake(key);
                            }
                        }
                        Err(e) => {
                            tracing::warn!(
                                url = %self.target,
                                channel = %self.channel,
                                error = %e,
                                "redis clock: unreadable wake-up message; waking every waiter"
                            );
                            waiters.wake_all();
                        }
                    }
                }
                _ = health.tick() => {
                    let ping = tokio::time::timeout(CONNECT_TIMEOUT, sink.ping::<redis::Value>());
                    match ping.await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => return Ended::Lost(format!("PING failed: {e}")),
                        Err(_) => {
                            return Ended::Lost(format!(
                                "PING unanswered after {CONNECT_TIMEOUT:?}"
                            ))
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The health check's `PING` is answered on a subscribed connection (in
    /// RESP2 the reply is a `pong` array, which `redis` must route to us).
    #[tokio::test]
    async fn ping_is_answered_while_subscribed() {
        let url = std::env::var("PROMISCUOUS_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379/".to_owned());
        let client = redis::Client::open(url.as_str()).unwrap();
        let channel = format!("promiscuous-redis-unit-{}:advanced", std::process::id());
        let pubsub = subscribe(&client, &channel, &url)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "this test needs a Redis server at {url} (or set PROMISCUOUS_REDIS_URL): {e}"
                )
            });
        let (mut sink, _stream) = pubsub.split();
        for _ in 0..2 {
            tokio::time::timeout(CONNECT_TIMEOUT, sink.ping::<redis::Value>())
                .await
                .expect("PING answered in time")
                .expect("PING succeeds while subscribed");
        }
    }

    #[tokio::test]
    async fn registrations_wake_and_clean_up() {
        let waiters = Arc::new(Waiters::default());
        let a = waiters.register("a");
        let a2 = waiters.register("a");
        let b = waiters.register("b");
        assert_eq!(waiters.len(), 2);

        {
            let woken = a.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let not_woken = b.notified();
            tokio::pin!(not_woken);
            not_woken.as_mut().enable();
            waiters.wake("a");
            waiters.wake("unknown");
            tokio::time::timeout(Duration::from_secs(1), woken)
                .await
                .expect("a waiter of `a` must be woken");
            assert!(
                tokio::time::timeout(Duration::from_millis(20), &mut not_woken)
                    .await
                    .is_err(),
                "a waiter of `b` must not be woken by `a`"
            );
            waiters.wake_all();
            tokio::time::timeout(Duration::from_secs(1), not_woken)
                .await
                .expect("wake_all wakes everyone");
        }

        drop(a);
        assert_eq!(waiters.len(), 2, "`a` still has a waiter");
        drop(a2);
        drop(b);
        assert_eq!(waiters.len(), 0, "dropped registrations are removed");
    }
}
