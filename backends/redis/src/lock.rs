//! Expiring, owner-tagged locks in Redis.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use promiscuous_core::traits::{Acquisition, ExpiredLock, Lock};
use promiscuous_core::BackendError;
use redis::Value;

use crate::connection::{bytes, text, Connection};
use crate::scripts;

/// The longest time-to-live, for larger ones (100 years): Redis refuses
/// expiry times that overflow.
const FAR_FUTURE_MS: u64 = 100 * 365 * 24 * 3600 * 1000;

/// Expiring locks in Redis, taken and released by Lua scripts.
///
/// A held lock is the key `<prefix>lock:<key>` holding its owner with a
/// millisecond time-to-live; its owner, recovery data and deadline (server
/// time) are also kept in `<prefix>lock-owner`, `<prefix>lock-data` and
/// `<prefix>lock-expiry`, which a release clears but an expiry does not: that
/// is how a lock that expired unreleased is recognised, handed over by
/// [`try_acquire`](Lock::try_acquire) and listed by [`expired`](Lock::expired).
pub struct RedisLock {
    connection: Connection,
    lock_prefix: String,
    owner_hash: String,
    data_hash: String,
    expiry_zset: String,
}

impl fmt::Debug for RedisLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisLock")
            .field("url", &self.connection.target())
            .field("prefix", &self.connection.prefix())
            .finish()
    }
}

/// A time-to-live in whole milliseconds, rounded up, between 1 ms and 100 years.
fn millis(ttl: Duration) -> u64 {
    let rounded_up = ttl
        .as_millis()
        .saturating_add(u128::from(!ttl.subsec_nanos().is_multiple_of(1_000_000)));
    u64::try_from(rounded_up)
        .unwrap_or(u64::MAX)
        .clamp(1, FAR_FUTURE_MS)
}

impl RedisLock {
    /// Connects to the Redis server of `url` (`redis://[:password@]host[:port][/db][?prefix=…]`).
    ///
    /// Fails with a temporary error naming the URL when the server cannot be reached.
    pub async fn connect(url: &str) -> Result<Self, BackendError> {
        let connection = Connection::open(url).await?;
        tracing::debug!(url = %connection.target(), prefix = %connection.prefix(), "redis lock connected");
        Ok(Self {
            lock_prefix: connection.key("lock:"),
            owner_hash: connection.key("lock-owner"),
            data_hash: connection.key("lock-data"),
            expiry_zset: connection.key("lock-expiry"),
            connection,
        })
    }

    /// The key that holds the lock `key` while it is held.
    fn lock_key(&self, key: &str) -> String {
        format!("{}{key}", self.lock_prefix)
    }

    /// Parses a 0/1 reply.
    fn flag(&self, operation: &'static str, reply: Value) -> Result<bool, BackendError> {
        match reply {
            Value::Int(0) | Value::Boolean(false) => Ok(false),
            Value::Int(1) | Value::Boolean(true) => Ok(true),
            other => Err(self.connection.unexpected(
                operation,
                &format!("the {operation} script"),
                &other,
            )),
        }
    }

    /// Parses one `{name, owner, data}` triple.
    fn expired_lock(&self, item: Value) -> Result<ExpiredLock, BackendError> {
        let unexpected = |item: &Value| {
            self.connection
                .unexpected("expired", "the expired script (an entry)", item)
        };
        let Value::Array(fields) = item else {
            return Err(unexpected(&item));
        };
        let shown = Value::Array(fields.clone());
        let mut fields = fields.into_iter();
        let (Some(key), Some(owner), Some(recovery), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(unexpected(&shown));
        };
        let (Some(key), Some(owner), Some(recovery)) = (
            bytes(key).and_then(|k| String::from_utf8(k).ok()),
            bytes(owner).and_then(|o| String::from_utf8(o).ok()),
            bytes(recovery),
        ) else {
            return Err(unexpected(&shown));
        };
        Ok(ExpiredLock {
            key,
            owner,
            recovery,
        })
    }
}

#[async_trait]
impl Lock for RedisLock {
    fn name(&self) -> &'static str {
        "redis"
    }

    async fn try_acquire(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
        recovery: &[u8],
    ) -> Result<Option<Acquisition>, BackendError> {
        let mut invocation = scripts::TRY_ACQUIRE.prepare_invoke();
        invocation
            .key(self.lock_key(key))
            .key(&self.owner_hash)
            .key(&self.data_hash)
            .key(&self.expiry_zset)
            .arg(key)
            .arg(owner)
            .arg(millis(ttl))
            .arg(recovery);
        let reply = self.connection.run("try_acquire", &invocation).await?;
        let items = match reply {
            Value::Nil | Value::Boolean(false) => return Ok(None),
            Value::Array(items) => items,
            other => {
                return Err(self.connection.unexpected(
                    "try_acquire",
                    "the try_acquire script",
                    &other,
                ))
            }
        };
        let shown = Value::Array(items.clone());
        let mut items = items.into_iter();
        let kind = items.next();
        match kind.as_ref().and_then(text) {
            Some("free") => Ok(Some(Acquisition::Free)),
            Some("expired") => {
                let previous_owner = items
                    .next()
                    .and_then(bytes)
                    .and_then(|o| String::from_utf8(o).ok());
                let previous_data = items.next().and_then(bytes);
                match (previous_owner, previous_data) {
                    (Some(owner), Some(recovery)) => {
                        Ok(Some(Acquisition::TookOverExpired(ExpiredLock {
                            key: key.to_owned(),
                            owner,
                            recovery,
                        })))
                    }
                    _ => Err(self.connection.unexpected(
                        "try_acquire",
                        "the try_acquire script",
                        &shown,
                    )),
                }
            }
            _ => Err(self
                .connection
                .unexpected("try_acquire", "the try_acquire script", &shown)),
        }
    }

    async fn release(&self, key: &str, owner: &str) -> Result<bool, BackendError> {
        let mut invocation = scripts::RELEASE.prepare_invoke();
        invocation
            .key(self.lock_key(key))
            .key(&self.owner_hash)
            .key(&self.data_hash)
            .key(&self.expiry_zset)
            .arg(key)
            .arg(owner);
        let reply = self.connection.run("release", &invocation).await?;
        self.flag("release", reply)
    }

    async fn extend(&self, key: &str, owner: &str, ttl: Duration) -> Result<bool, BackendError> {
        let mut invocation = scripts::EXTEND.prepare_invoke();
        invocation
            .key(self.lock_key(key))
            .key(&self.expiry_zset)
            .arg(key)
            .arg(owner)
            .arg(millis(ttl));
        let reply = self.connection.run("extend", &invocation).await?;
        self.flag("extend", reply)
    }

    async fn expired(&self, prefix: &str, limit: usize) -> Result<Vec<ExpiredLock>, BackendError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut invocation = scripts::EXPIRED.prepare_invoke();
        invocation
            .key(&self.expiry_zset)
            .key(&self.owner_hash)
            .key(&self.data_hash)
            .arg(&self.lock_prefix)
            .arg(prefix)
            .arg(limit);
        let reply = self.connection.run("expired", &invocation).await?;
        let Value::Array(items) = reply else {
            return Err(self
                .connection
                .unexpected("expired", "the expired script", &reply));
        };
        if items.len() > limit {
            return Err(self.connection.failure(
                "expired",
                format!(
                    "the expired script returned {} locks, more than the limit of {limit}",
                    items.len()
                ),
            ));
        }
        items
            .into_iter()
            .map(|item| self.expired_lock(item))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_is_rounded_up_and_bounded() {
        assert_eq!(millis(Duration::ZERO), 1);
        assert_eq!(millis(Duration::from_micros(1)), 1);
        assert_eq!(millis(Duration::from_micros(1500)), 2);
        assert_eq!(millis(Duration::from_millis(300)), 300);
        assert_eq!(millis(Duration::MAX), FAR_FUTURE_MS);
    }
}
