//! Version counters in Redis.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use promiscuous_core::traits::{
    Clock, IntentRecord, RecordedIntent, Step, Versions, INTENT_RETENTION,
};
use promiscuous_core::BackendError;
use redis::Value;
use tokio::time::Instant;

use crate::connection::{bytes, text, Connection};
use crate::scripts;
use crate::waiters::{self, Listener, Waiters};

/// Version counters in Redis, one string key per counter.
///
/// `tick`, `read` and `advance` are each one Lua script, so one atomic step;
/// `wait_until` is woken through Redis pub/sub by an `advance` from any
/// process (no polling). Every call checks the [epoch](crate#the-epoch) and
/// fails with a [state-lost](BackendError::is_state_lost) error when the
/// server lost its data.
pub struct RedisClock {
    connection: Connection,
    epoch_key: String,
    epoch: String,
    /// The epoch's creation time (its numeric identity), in microseconds.
    created_at: u64,
    channel: String,
    waiters: Arc<Waiters>,
    _listener: Listener,
}

impl fmt::Debug for RedisClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisClock")
            .field("url", &self.connection.target())
            .field("prefix", &self.connection.prefix())
            .field("epoch", &self.epoch)
            .finish()
    }
}

/// The part of every counter key after the prefix.
const COUNTER_NAMESPACE: &str = "clock:";
/// The part of every intent hash's key after the prefix.
const INTENT_NAMESPACE: &str = "intent:";

impl RedisClock {
    /// Connects to the Redis server of `url` (`redis://[:password@]host[:port][/db][?prefix=…]`),
    /// reads (or creates) the epoch and subscribes to wake-ups.
    ///
    /// Fails with a temporary error naming the URL when the server cannot be reached.
    pub async fn connect(url: &str) -> Result<Self, BackendError> {
        let connection = Connection::open(url).await?;
        let epoch_key = connection.key("epoch");
        let suffix = fresh_epoch_suffix();
        let mut invocation = scripts::EPOCH.prepare_invoke();
        invocation.key(&epoch_key).arg(&suffix);
        let reply = connection.run("connect", &invocation).await?;
        let epoch = text(&reply)
            .filter(|epoch| !epoch.is_empty())
            .ok_or_else(|| connection.unexpected("connect", "the epoch script", &reply))?
            .to_owned();
        let created_at = epoch_micros(&epoch).ok_or_else(|| {
            connection.failure(
                "connect",
                format!(
                    "the epoch key {epoch_key} holds {epoch:?}, not an epoch written by \
                     promiscuous; is another program using the prefix {}?",
                    connection.prefix()
                ),
            )
        })?;
        if epoch.ends_with(&suffix) {
            tracing::warn!(
                url = %connection.target(),
                prefix = %connection.prefix(),
                epoch = created_at,
                "the Redis clock held no state, so a new one was created (epoch {created_at}). \
                 On a first start this is expected; otherwise Redis lost its state (restarted \
                 without persistence, or flushed): versions start again in the new epoch, \
                 subscribers dead-letter what is left of the old one, and an initial sync of \
                 each publisher brings them back in line"
            );
        }
        let channel = connection.key("advanced");
        let waiters = Arc::new(Waiters::default());
        let pubsub = waiters::subscribe(connection.client(), &channel, connection.target()).await?;
        let listener = Listener::spawn(
            connection.client().clone(),
            channel.clone(),
            connection.target().to_owned(),
            Arc::downgrade(&waiters),
            pubsub,
        )?;
        tracing::debug!(url = %connection.target(), prefix = %connection.prefix(), %epoch, "redis clock connected");
        Ok(Self {
            connection,
            epoch_key,
            epoch,
            created_at,
            channel,
            waiters,
            _listener: listener,
        })
    }

    /// The epoch this clock saw when it connected (see the [crate docs](crate#the-epoch)).
    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    /// The Redis key holding the counter `key`.
    fn counter_key(&self, key: &str) -> String {
        self.connection.key(&format!("{COUNTER_NAMESPACE}{key}"))
    }

    /// The error of every call once the epoch changed.
    fn state_lost(&self, operation: &'static str) -> BackendError {
        let url = self.connection.target();
        self.connection
            .failure(
                operation,
                format!(
                    "the Redis clock at {url} lost its state (was it restarted without \
                     persistence, or flushed?); versions taken before can no longer be ordered \
                     against new ones: restart this process (it continues in a new clock epoch, \
                     with the same generation), then run an initial sync of the publishers so \
                     subscribers get what the old epoch's last messages carried (see the \
                     operations guide)"
                ),
            )
            .state_lost()
    }

    /// Runs a clock script; a `STATE_LOST` status becomes the state-lost error.
    async fn run(
        &self,
        operation: &'static str,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Result<Value, BackendError> {
        let reply = self.connection.run(operation, invocation).await?;
        if matches!(&reply, Value::SimpleString(status) if status == scripts::STATE_LOST) {
            return Err(self.state_lost(operation));
        }
        Ok(reply)
    }

    /// Increments `increments`, reads `reads` and records `intent`, in one
    /// atomic script.
    async fn tick_reading(
        &self,
        operation: &'static str,
        increments: &[String],
        reads: &[String],
        intent: Option<IntentRecord<'_>>,
    ) -> Result<(Vec<u64>, Vec<u64>), BackendError> {
        if increments.is_empty() {
            return Ok((Vec::new(), self.read_values(operation, reads).await?));
        }
        let mut invocation = scripts::TAKE.prepare_invoke();
        invocation
            .key(&self.epoch_key)
            .arg(&self.epoch)
            .arg(increments.len().to_string())
            .arg(reads.len().to_string());
        for key in increments.iter().chain(reads) {
            invocation.key(self.counter_key(key));
        }
        match intent {
            Some(intent) => {
                let zset = self.intents_zset(intent.scope);
                invocation
                    .key(self.intent_key(intent.id))
                    .key(&zset)
                    .arg("1")
                    .arg(intent.id)
                    .arg(intent.data)
                    .arg(INTENT_RETENTION.as_millis().to_string())
                    .arg(&zset);
            }
            None => {
                invocation.arg("0");
            }
        }
        let reply = self.run(operation, &invocation).await?;
        self.refuse_unincrementable(operation, increments, &reply)?;
        let all: Vec<String> = increments.iter().chain(reads).cloned().collect();
        let mut values = self.counters(operation, &all, reply)?;
        let read = values.split_off(increments.len());
        Ok((values, read))
    }

    /// The zset listing the intents of `scope` by when they were recorded.
    fn intents_zset(&self, scope: &str) -> String {
        self.connection.key(&format!("intents:{scope}"))
    }

    /// The key of the hash holding intent `id`.
    fn intent_key(&self, id: &str) -> String {
        self.connection.key(&format!("{INTENT_NAMESPACE}{id}"))
    }

    /// Parses `{data, ticked, read}` (after the id, for stale intents).
    fn recorded_intent(
        &self,
        operation: &'static str,
        id: String,
        fields: Vec<Value>,
    ) -> Result<RecordedIntent, BackendError> {
        let shown = Value::Array(fields.clone());
        let mut fields = fields.into_iter();
        let (Some(data), Some(ticked), Some(read)) = (
            fields.next().and_then(bytes),
            fields.next().and_then(bytes),
            fields.next().and_then(bytes),
        ) else {
            return Err(self
                .connection
                .unexpected(operation, &format!("intent {id}"), &shown));
        };
        let numbers = |list: Vec<u8>| -> Result<Vec<u64>, BackendError> {
            let text = String::from_utf8_lossy(&list);
            text.split(',')
                .filter(|part| !part.is_empty())
                .map(|part| {
                    part.parse::<u64>().map_err(|_| {
                        self.connection
                            .unexpected(operation, &format!("intent {id}"), &shown)
                    })
                })
                .collect()
        };
        Ok(RecordedIntent {
            versions: Versions {
                ticked: numbers(ticked)?,
                read: numbers(read)?,
            },
            id,
            data,
        })
    }

    /// The counters of `keys`, read by one script.
    async fn read_values(
        &self,
        operation: &'static str,
        keys: &[String],
    ) -> Result<Vec<u64>, BackendError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut invocation = scripts::READ.prepare_invoke();
        invocation.key(&self.epoch_key).arg(&self.epoch);
        for key in keys {
            invocation.key(self.counter_key(key));
        }
        let reply = self.run(operation, &invocation).await?;
        self.counters(operation, keys, reply)
    }

    /// Runs the raise script in `mode` (`max`: advance; `unset`: seed) and
    /// wakes the local waiters of what changed; returns how many changed.
    async fn raise(
        &self,
        operation: &'static str,
        mode: &str,
        targets: &[(String, u64)],
    ) -> Result<usize, BackendError> {
        if targets.is_empty() {
            return Ok(0);
        }
        let mut invocation = scripts::RAISE.prepare_invoke();
        invocation
            .key(&self.epoch_key)
            .arg(&self.epoch)
            .arg(&self.channel)
            .arg(mode);
        for (key, target) in targets {
            invocation
                .key(self.counter_key(key))
                .arg(target.to_string());
        }
        let reply = self.run(operation, &invocation).await?;
        let Value::Array(changed) = reply else {
            return Err(self
                .connection
                .unexpected(operation, "the raise script", &reply));
        };
        let count = changed.len();
        // The listener wakes waiters through pub/sub too; waking the local ones
        // now saves them the round trip (and covers a listener reconnecting).
        for key in changed.into_iter().filter_map(bytes) {
            if let Ok(key) = String::from_utf8(key) {
                self.waiters.wake(&key);
            }
        }
        Ok(count)
    }

    /// Turns the scripts' `NOT_INCREMENTABLE <i>` status into an error naming the counter.
    fn refuse_unincrementable(
        &self,
        operation: &'static str,
        keys: &[String],
        reply: &Value,
    ) -> Result<(), BackendError> {
        let Value::SimpleString(status) = reply else {
            return Ok(());
        };
        let Some(index) = status
            .strip_prefix(scripts::NOT_INCREMENTABLE)
            .and_then(|rest| rest.trim().parse::<usize>().ok())
        else {
            return Ok(());
        };
        let key = index
            .checked_sub(1)
            .and_then(|i| keys.get(i))
            .map_or("?", String::as_str);
        Err(self.connection.failure(
            operation,
            format!(
                "counter {key} cannot be incremented: it is at Redis' largest integer \
                 (9223372036854775807) or holds something other than a number; \
                 no counter was changed"
            ),
        ))
    }

    /// Parses an array of decimal strings, one per key.
    fn counters(
        &self,
        operation: &'static str,
        keys: &[String],
        reply: Value,
    ) -> Result<Vec<u64>, BackendError> {
        let items = match reply {
            Value::Array(items) if items.len() == keys.len() => items,
            other => {
                return Err(self.connection.unexpected(
                    operation,
                    &format!("{operation} of {} counters", keys.len()),
                    &other,
                ))
            }
        };
        keys.iter()
            .zip(items)
            .map(|(key, item)| {
                let parsed = match &item {
                    Value::Int(value) => u64::try_from(*value).ok(),
                    other => text(other).and_then(|text| text.parse::<u64>().ok()),
                };
                parsed.ok_or_else(|| {
                    self.connection.failure(
                        operation,
                        format!(
                            "counter {key} (Redis key {}) holds {}, not a counter",
                            self.counter_key(key),
                            crate::connection::describe(&item)
                        ),
                    )
                })
            })
            .collect()
    }
}

#[async_trait]
impl Clock for RedisClock {
    fn name(&self) -> &'static str {
        "redis"
    }

    fn epoch(&self) -> u64 {
        self.created_at
    }

    async fn check(&self) -> Result<(), BackendError> {
        let mut invocation = scripts::READ.prepare_invoke();
        invocation.key(&self.epoch_key).arg(&self.epoch);
        self.run("check", &invocation).await.map(|_| ())
    }

    async fn tick(&self, keys: &[String]) -> Result<Vec<u64>, BackendError> {
        Ok(self.tick_reading("tick", keys, &[], None).await?.0)
    }

    async fn take(&self, step: &Step<'_>) -> Result<Versions, BackendError> {
        let (ticked, read) = self
            .tick_reading("take", step.increments, step.reads, step.intent)
            .await?;
        Ok(Versions { ticked, read })
    }

    async fn intent(&self, id: &str) -> Result<Option<RecordedIntent>, BackendError> {
        let mut invocation = scripts::INTENT.prepare_invoke();
        invocation
            .key(&self.epoch_key)
            .key(self.intent_key(id))
            .arg(&self.epoch);
        match self.run("intent", &invocation).await? {
            Value::Nil | Value::Boolean(false) => Ok(None),
            Value::Array(fields) => Ok(Some(self.recorded_intent(
                "intent",
                id.to_owned(),
                fields,
            )?)),
            other => Err(self
                .connection
                .unexpected("intent", "the intent script", &other)),
        }
    }

    async fn forget(&self, ids: &[String]) -> Result<(), BackendError> {
        for chunk in ids.chunks(500) {
            let mut invocation = scripts::FORGET.prepare_invoke();
            for id in chunk {
                invocation.key(self.intent_key(id)).arg(id);
            }
            self.connection.run("forget", &invocation).await?;
        }
        Ok(())
    }

    async fn stale_intents(
        &self,
        scope: &str,
        age: Duration,
        limit: usize,
    ) -> Result<Vec<RecordedIntent>, BackendError> {
        let mut invocation = scripts::STALE_INTENTS.prepare_invoke();
        invocation
            .key(&self.epoch_key)
            .key(self.intents_zset(scope))
            .arg(&self.epoch)
            .arg(self.connection.key(INTENT_NAMESPACE))
            .arg(age.as_millis().to_string())
            .arg(limit.to_string());
        let reply = self.run("stale_intents", &invocation).await?;
        let Value::Array(entries) = reply else {
            return Err(self.connection.unexpected(
                "stale_intents",
                "the stale intents script",
                &reply,
            ));
        };
        entries
            .into_iter()
            .map(|entry| {
                let Value::Array(mut fields) = entry else {
                    return Err(self.connection.unexpected(
                        "stale_intents",
                        "a stale intent",
                        &entry,
                    ));
                };
                let id = if fields.is_empty() {
                    None
                } else {
                    bytes(fields.remove(0)).and_then(|id| String::from_utf8(id).ok())
                };
                let Some(id) = id else {
                    return Err(self.connection.unexpected(
                        "stale_intents",
                        "a stale intent's id",
                        &Value::Array(fields),
                    ));
                };
                self.recorded_intent("stale_intents", id, fields)
            })
            .collect()
    }

    async fn read(&self, keys: &[String]) -> Result<Vec<u64>, BackendError> {
        self.read_values("read", keys).await
    }

    async fn advance(&self, targets: &[(String, u64)]) -> Result<(), BackendError> {
        self.raise("advance", "max", targets).await.map(|_| ())
    }

    async fn seed(&self, targets: &[(String, u64)]) -> Result<usize, BackendError> {
        self.raise("seed", "unset", targets).await
    }

    async fn scan(
        &self,
        prefix: &str,
        cursor: u64,
    ) -> Result<(Vec<(String, u64)>, u64), BackendError> {
        let namespace = self.counter_key("");
        let pattern = format!("{}*", glob_escape(&format!("{namespace}{prefix}")));
        let mut invocation = scripts::SCAN.prepare_invoke();
        invocation
            .key(&self.epoch_key)
            .arg(&self.epoch)
            .arg(cursor.to_string())
            .arg(pattern)
            .arg("1000");
        let reply = self.run("scan", &invocation).await?;
        let Value::Array(items) = reply else {
            return Err(self
                .connection
                .unexpected("scan", "the scan script", &reply));
        };
        let mut items = items.into_iter();
        let next = items
            .next()
            .and_then(|cursor| text(&cursor).and_then(|c| c.parse::<u64>().ok()))
            .ok_or_else(|| {
                self.connection
                    .failure("scan", "the scan script returned no cursor".to_owned())
            })?;
        let mut page = Vec::new();
        while let (Some(key), Some(value)) = (items.next(), items.next()) {
            let key = text(&key).unwrap_or_default();
            let Some(key) = key.strip_prefix(&namespace) else {
                continue;
            };
            let value = text(&value)
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| {
                    self.connection.failure(
                        "scan",
                        format!(
                            "counter {key} holds {}, not a counter",
                            crate::connection::describe(&value)
                        ),
                    )
                })?;
            page.push((key.to_owned(), value));
        }
        Ok((page, next))
    }

    async fn wait_until(
        &self,
        key: &str,
        value: u64,
        timeout: Duration,
    ) -> Result<u64, BackendError> {
        let deadline = Instant::now().checked_add(timeout);
        let keys = [key.to_owned()];
        // Registered before the first read, so an advance between the read
        // and the wait still wakes us.
        let registration = self.waiters.register(&self.counter_key(key));
        loop {
            let woken = registration.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let current = first(self.read_values("wait_until", &keys).await?);
            if current >= value {
                return Ok(current);
            }
            match deadline {
                Some(deadline) => {
                    if tokio::time::timeout_at(deadline, woken).await.is_err() {
                        return Ok(first(self.read_values("wait_until", &keys).await?));
                    }
                }
                None => woken.await,
            }
        }
    }
}

/// The only value read for one key.
fn first(values: Vec<u64>) -> u64 {
    values.first().copied().unwrap_or(0)
}

/// `text` with the glob characters of a `SCAN MATCH` pattern escaped.
fn glob_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// The creation time an epoch starts with (the server's time in
/// microseconds, before the first `-`).
fn epoch_micros(epoch: &str) -> Option<u64> {
    epoch.split('-').next()?.parse().ok()
}

/// A value no other connecting clock makes: the process id, the time and a
/// counter (the script puts the server time first).
fn fresh_epoch_suffix() -> String {
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!(
        "{:x}-{nanos:x}-{:x}",
        std::process::id(),
        COUNT.fetch_add(1, Ordering::Relaxed)
    )
}
