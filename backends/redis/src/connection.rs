//! The connection shared by the calls of one clock or lock, and the mapping
//! of `redis` errors to [`BackendError`].

use std::fmt;
use std::time::Duration;

use promiscuous_core::backend::redact_url;
use promiscuous_core::BackendError;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ErrorKind, RedisError, ScriptInvocation, ServerErrorKind, Value};

use crate::url;

/// The backend name in errors and logs.
pub(crate) const BACKEND: &str = "redis";

/// How long one attempt to open a connection may take.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long Redis may take to answer one command (the `redis` default, 500 ms,
/// is short for a loaded shared server).
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(3);
/// How many times the connection manager retries opening a connection before
/// the pending call fails (the next call tries again).
const CONNECT_RETRIES: usize = 2;
/// The longest pause between two reconnection attempts.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(5);

/// A reconnecting connection to one Redis server, with the key prefix and the
/// redacted URL that every error names.
#[derive(Clone)]
pub(crate) struct Connection {
    client: redis::Client,
    manager: ConnectionManager,
    target: String,
    prefix: String,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("url", &self.target)
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl Connection {
    /// Parses `url`, connects and checks the server answers a `PING`.
    pub(crate) async fn open(url: &str) -> Result<Self, BackendError> {
        let target = redact_url(url);
        let options = url::parse(url)
            .map_err(|message| BackendError::new(BACKEND, "connect", target.as_str(), message))?;
        let client = redis::Client::open(options.redis_url.as_str()).map_err(|e| {
            redis_error("connect", &target, e).with_message_prefix("invalid Redis URL")
        })?;
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(CONNECT_RETRIES)
            .set_max_delay(MAX_RECONNECT_DELAY)
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT));
        let manager = ConnectionManager::new_with_config(client.clone(), config)
            .await
            .map_err(|e| {
                redis_error("connect", &target, e).with_message_prefix("cannot connect to Redis")
            })?;
        let connection = Self {
            client,
            manager,
            target,
            prefix: options.prefix,
        };
        let pong = redis::cmd("PING")
            .query_async::<Value>(&mut connection.manager.clone())
            .await
            .map_err(|e| {
                connection
                    .error("connect", e)
                    .with_message_prefix("PING failed")
            })?;
        if !matches!(&pong, Value::SimpleString(s) if s == "PONG") {
            return Err(connection.unexpected("connect", "PING", &pong));
        }
        Ok(connection)
    }

    /// The client, to open more connections (pub/sub) to the same server.
    pub(crate) fn client(&self) -> &redis::Client {
        &self.client
    }

    /// The URL without its password, named by every error.
    pub(crate) fn target(&self) -> &str {
        &self.target
    }

    /// The namespace of every key.
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `suffix` in our namespace.
    pub(crate) fn key(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.prefix)
    }

    /// Runs a script (EVALSHA, falling back to EVAL once the script is unknown).
    pub(crate) async fn run(
        &self,
        operation: &'static str,
        invocation: &ScriptInvocation<'_>,
    ) -> Result<Value, BackendError> {
        invocation
            .invoke_async::<Value>(&mut self.manager.clone())
            .await
            .map_err(|e| self.error(operation, e))
    }

    /// A `redis` error of `operation`, naming our URL.
    pub(crate) fn error(&self, operation: &'static str, error: RedisError) -> BackendError {
        redis_error(operation, &self.target, error)
    }

    /// A reply whose shape a script never returns: permanent.
    pub(crate) fn unexpected(
        &self,
        operation: &'static str,
        what: &str,
        reply: &Value,
    ) -> BackendError {
        BackendError::new(
            BACKEND,
            operation,
            self.target.as_str(),
            format!("unexpected reply to {what}: {}", describe(reply)),
        )
    }

    /// A permanent error of `operation` with `message`.
    pub(crate) fn failure(
        &self,
        operation: &'static str,
        message: impl Into<String>,
    ) -> BackendError {
        BackendError::new(BACKEND, operation, self.target.as_str(), message)
    }
}

/// Maps a `redis` error: temporary when retrying may help (I/O, dropped or
/// refused connections, timeouts, a server loading or busy, a cluster
/// reconfiguring), permanent otherwise. The `redis` error is the source, not
/// repeated in the message (empty until [`WithMessagePrefix`] adds context).
pub(crate) fn redis_error(
    operation: &'static str,
    target: &str,
    error: RedisError,
) -> BackendError {
    let temporary = is_temporary(&error);
    let backend = BackendError::new(BACKEND, operation, target, "");
    let backend = if temporary {
        backend.temporary()
    } else {
        backend
    };
    backend.with_source(error)
}

/// Whether retrying the call that failed with `error` may succeed.
pub(crate) fn is_temporary(error: &RedisError) -> bool {
    if error.is_io_error()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || error.is_timeout()
    {
        return true;
    }
    match error.kind() {
        ErrorKind::Server(
            ServerErrorKind::BusyLoading
            | ServerErrorKind::TryAgain
            | ServerErrorKind::ClusterDown
            | ServerErrorKind::MasterDown
            | ServerErrorKind::ReadOnly,
        )
        | ErrorKind::ClusterConnectionNotFound => true,
        _ => matches!(
            error.code(),
            Some("BUSY" | "LOADING" | "TRYAGAIN" | "CLUSTERDOWN" | "MASTERDOWN")
        ),
    }
}

/// Puts `prefix: ` before the message of an error (`prefix` alone for an
/// empty message).
trait WithMessagePrefix {
    fn with_message_prefix(self, prefix: &str) -> Self;
}

impl WithMessagePrefix for BackendError {
    fn with_message_prefix(mut self, prefix: &str) -> Self {
        self.message = if self.message.is_empty() {
            prefix.to_owned()
        } else {
            format!("{prefix}: {}", self.message)
        };
        self
    }
}

/// A short description of a reply, for errors (bounded in length).
pub(crate) fn describe(reply: &Value) -> String {
    let text = format!("{reply:?}");
    const MAX: usize = 200;
    if text.len() <= MAX {
        return text;
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// The text of a string reply (bulk or simple), if it is one and is UTF-8.
pub(crate) fn text(reply: &Value) -> Option<&str> {
    match reply {
        Value::BulkString(bytes) => std::str::from_utf8(bytes).ok(),
        Value::SimpleString(text) => Some(text),
        Value::VerbatimString { text, .. } => Some(text),
        Value::Okay => Some("OK"),
        _ => None,
    }
}

/// The bytes of a string reply, if it is one.
pub(crate) fn bytes(reply: Value) -> Option<Vec<u8>> {
    match reply {
        Value::BulkString(bytes) => Some(bytes),
        Value::SimpleString(text) => Some(text.into_bytes()),
        Value::VerbatimString { text, .. } => Some(text.into_bytes()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_errors() {
        let refused = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(is_temporary(&refused));
        let timeout = RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut));
        assert!(is_temporary(&timeout));
        let loading = redis::make_extension_error("LOADING".into(), Some("loading".into()));
        assert!(is_temporary(&loading));
        let busy = redis::make_extension_error("BUSY".into(), None);
        assert!(is_temporary(&busy));
        let wrongtype = redis::make_extension_error("WRONGTYPE".into(), None);
        assert!(!is_temporary(&wrongtype));
        let config = RedisError::from((ErrorKind::InvalidClientConfig, "bad"));
        assert!(!is_temporary(&config));

        let mapped = redis_error("tick", "redis://h/", refused);
        assert!(mapped.is_temporary());
        assert_eq!(
            (mapped.backend, mapped.operation, mapped.target.as_str()),
            ("redis", "tick", "redis://h/")
        );
        assert!(std::error::Error::source(&mapped).is_some());
        // The redis error is the source, shown once in the chain.
        assert_eq!(mapped.to_string(), "redis tick failed on redis://h/");
        let prefixed = mapped.with_message_prefix("cannot connect to Redis");
        assert_eq!(
            prefixed.to_string(),
            "redis tick failed on redis://h/: cannot connect to Redis"
        );
        let cause = std::error::Error::source(&prefixed).unwrap();
        assert_eq!(
            promiscuous_core::error::chain(&prefixed),
            format!(
                "redis tick failed on redis://h/: cannot connect to Redis: {}",
                promiscuous_core::error::chain(cause)
            )
        );
        assert!(!redis_error("tick", "redis://h/", wrongtype).is_temporary());
    }

    #[test]
    fn describes_replies_briefly() {
        let long = Value::BulkString(vec![b'x'; 1000]);
        assert!(describe(&long).chars().count() <= 201);
        assert_eq!(text(&Value::SimpleString("OK".into())), Some("OK"));
        assert_eq!(bytes(Value::Int(1)), None);
    }
}
