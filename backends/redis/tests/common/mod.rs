//! Helpers shared by the tests: the server URL, unique prefixes, connections
//! that fail loudly when Redis is not running.

#![allow(dead_code)]

use promiscuous_core::testkit::unique;
use promiscuous_redis::{RedisClock, RedisLock};

/// The Redis server of the tests (env `PROMISCUOUS_REDIS_URL`, default local).
pub fn redis_url() -> String {
    std::env::var("PROMISCUOUS_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".to_owned())
}

/// `url` with the `prefix` query parameter added.
pub fn with_prefix(url: &str, prefix: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}prefix={prefix}")
}

/// A prefix no other test uses, ending with `:`.
pub fn unique_prefix(name: &str) -> String {
    format!("{}:", unique(&format!("promiscuous-redis-test-{name}")))
}

/// The server URL with a fresh prefix; returns (url, prefix).
pub fn unique_url(name: &str) -> (String, String) {
    let prefix = unique_prefix(name);
    (with_prefix(&redis_url(), &prefix), prefix)
}

fn needs_redis(url: &str, error: impl std::fmt::Display) -> ! {
    let url = promiscuous_core::backend::redact_url(url);
    panic!(
        "these tests need a Redis server at {url} (start one with `redis-server`, or set \
         PROMISCUOUS_REDIS_URL to another server); connecting failed: {error}"
    )
}

/// Connects a clock, failing the test loudly when Redis is not running.
pub async fn clock(url: &str) -> RedisClock {
    RedisClock::connect(url)
        .await
        .unwrap_or_else(|e| needs_redis(url, e))
}

/// Connects a lock, failing the test loudly when Redis is not running.
pub async fn lock(url: &str) -> RedisLock {
    RedisLock::connect(url)
        .await
        .unwrap_or_else(|e| needs_redis(url, e))
}

/// A plain connection to the test server, to look at or damage keys.
pub async fn raw() -> redis::aio::MultiplexedConnection {
    let url = redis_url();
    let client = redis::Client::open(url.as_str()).unwrap_or_else(|e| needs_redis(&url, e));
    client
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|e| needs_redis(&url, e))
}
