//! No password in any error or log line: URLs are redacted wherever they are
//! shown, for RabbitMQ and Redis, whether the server is unreachable or
//! refuses the credentials.
#![cfg(all(feature = "amqp", feature = "redis"))]

use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};

use promiscuous::core::testkit::unique;
use promiscuous::{Backend, Promiscuous};

const PASSWORD: &str = "s3cr3t-pw";

/// Everything logged, kept for the test to search.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
    }
}

/// Builds an app with `amqp` and `redis`, logging everything at TRACE into
/// the returned capture; returns the error's full chain, if any.
async fn build(amqp: &str, redis: &str) -> (Option<String>, String) {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("trace")
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let builder = Promiscuous::configure()
        .app(unique("credentials"))
        .backend(Backend::Amqp(amqp.to_owned()))
        .redis_url(redis)
        .no_subscribers();
    let shown = format!("{builder:?}");
    assert!(
        !shown.contains(PASSWORD),
        "the builder's Debug shows the password: {shown}"
    );
    let error = match builder.build().await {
        Ok(app) => {
            let _ = app.shutdown().await;
            None
        }
        Err(error) => Some(promiscuous::core::error::chain(&error)),
    };
    (error, captured.text())
}

/// The error names the server by `shown` (its redacted URL) and neither it
/// nor any log line holds the password.
fn assert_hidden(error: Option<String>, logs: &str, shown: &str) -> String {
    let error = error.expect("the build fails");
    println!("{error}");
    assert!(error.contains(shown), "the error names the server: {error}");
    assert!(!error.contains(PASSWORD), "{error}");
    assert!(
        !logs.contains(PASSWORD),
        "a log line shows the password:\n{logs}"
    );
    error
}

#[tokio::test]
async fn a_refused_rabbitmq_password_is_not_shown() {
    let (error, logs) = build(
        &format!("amqp://guest:{PASSWORD}@127.0.0.1:5672/%2f?publish_timeout_ms=3000"),
        "redis://127.0.0.1:6379/",
    )
    .await;
    let error = assert_hidden(error, &logs, "guest:***@127.0.0.1");
    assert!(
        error.contains("ACCESS_REFUSED"),
        "the error says why: {error}"
    );
}

#[tokio::test]
async fn an_unreachable_redis_with_a_password_is_not_shown() {
    let (error, logs) = build(
        "amqp://guest:guest@127.0.0.1:5672/%2f",
        &format!("redis://:{PASSWORD}@127.0.0.1:1/"),
    )
    .await;
    assert_hidden(error, &logs, "127.0.0.1:1");
}

#[tokio::test]
async fn an_unreachable_rabbitmq_with_a_password_is_not_shown() {
    let (error, logs) = build(
        &format!("amqp://admin:{PASSWORD}@127.0.0.1:1/%2f?publish_timeout_ms=2000"),
        "redis://127.0.0.1:6379/",
    )
    .await;
    assert_hidden(error, &logs, "admin:***@127.0.0.1:1");
}
