//! Wiring of the tests that run against the real RabbitMQ and Redis.
#![allow(dead_code)]

use std::time::Duration;

use promiscuous::core::testkit::unique;

/// The RabbitMQ URL of the tests (`PROMISCUOUS_AMQP_URL`, else the local server).
pub fn amqp_url() -> String {
    std::env::var("PROMISCUOUS_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

/// The Redis URL of the tests, with a key prefix of their own.
pub fn redis_url(prefix: &str) -> String {
    let base = std::env::var("PROMISCUOUS_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379/".to_owned());
    let separator = if base.contains('?') { '&' } else { '?' };
    format!("{base}{separator}prefix={prefix}:")
}

/// A fresh key prefix.
pub fn prefix(name: &str) -> String {
    unique(name)
}

/// Runs a command of the machine's services, failing the test with its output.
pub fn run(program: &str, args: &[&str]) {
    let output = std::process::Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} {args:?}: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Waits until `probe` succeeds, up to `limit`.
pub fn wait_until(what: &str, limit: Duration, probe: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + limit;
    while !probe() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what} did not happen within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Whether the local Redis answers PING.
pub fn redis_answers() -> bool {
    std::process::Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", "6379", "ping"])
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains("PONG"))
}
