//! URL options and the [`AmqpBrokerBuilder`].
//!
//! The broker URL is a RabbitMQ URL (`amqp://user:password@host:port/vhost`)
//! that may carry options of ours besides lapin's (`heartbeat`, `frame_max`,
//! `channel_max`, `auth_mechanism`, ...):
//!
//! - `exchange` (default `promiscuous`): the topic exchange to publish to;
//! - `publish_timeout_ms` (default 10000): how long a publish waits for a
//!   reconnection and for the broker's confirm.
//!
//! Ours are removed before the URL goes to lapin, and `heartbeat=10` is added
//! when the URL has no `heartbeat`, so a dead connection is noticed within
//! seconds. Any other query parameter is refused, naming the closest
//! known one, rather than ignored.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use lapin::uri::AMQPUri;
use promiscuous_core::backend::redact_url;
use promiscuous_core::BackendError;
use url::{form_urlencoded, Host, Url};

use crate::error::BACKEND;
use crate::AmqpBroker;

/// The exchange used when neither the URL nor the builder names one.
pub const DEFAULT_EXCHANGE: &str = "promiscuous";
/// How long a publish waits when neither the URL nor the builder says.
pub const DEFAULT_PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);
/// The heartbeat (seconds) asked for when the URL has no `heartbeat`.
pub const DEFAULT_HEARTBEAT_SECS: u16 = 10;
/// The connection name shown by RabbitMQ when the builder sets none.
const DEFAULT_CONNECTION_NAME: &str = "promiscuous";

/// Everything a broker needs to connect, parsed and checked once.
#[derive(Clone)]
pub(crate) struct Options {
    /// The URL as given, password redacted: for logs, errors and `Debug`.
    pub(crate) url: String,
    /// What lapin connects to (ours removed, heartbeat added). Holds the password.
    pub(crate) uri: AMQPUri,
    /// The topic exchange.
    pub(crate) exchange: String,
    /// How long a publish may wait for a reconnection and a confirm.
    pub(crate) publish_timeout: Duration,
    /// The `connection_name` client property.
    pub(crate) connection_name: String,
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("url", &self.url)
            .field("exchange", &self.exchange)
            .field("publish_timeout", &self.publish_timeout)
            .field("connection_name", &self.connection_name)
            .finish()
    }
}

/// The URL split into what lapin gets and what we keep.
#[derive(Debug, PartialEq, Eq)]
struct SplitUrl {
    /// The URL for lapin: our parameters removed, `heartbeat` ensured.
    lapin_url: String,
    exchange: Option<String>,
    publish_timeout: Option<Duration>,
}

/// The query parameters lapin reads.
const LAPIN_PARAMS: &[&str] = &[
    "heartbeat",
    "frame_max",
    "channel_max",
    "connection_timeout",
    "auth_mechanism",
];

/// Removes our query parameters from `url` and adds the default heartbeat.
///
/// Parameter names and our values are percent-decoded (form-urlencoded); the
/// parameters kept for lapin are passed on as written. The fragment is dropped.
fn split_url(url: &str) -> Result<SplitUrl, String> {
    let mut parsed = Url::parse(url).map_err(|e| e.to_string())?;
    let mut kept = Vec::new();
    let mut exchange = None;
    let mut publish_timeout = None;
    let mut has_heartbeat = false;
    for pair in parsed.query().unwrap_or("").split('&') {
        let Some((key, value)) = form_urlencoded::parse(pair.as_bytes()).next() else {
            continue;
        };
        match key.as_ref() {
            "exchange" => exchange = Some(value.into_owned()),
            "publish_timeout_ms" => {
                let ms: u64 = value.parse().map_err(|_| {
                    format!("publish_timeout_ms={value:?} is not a number of milliseconds")
                })?;
                publish_timeout = Some(Duration::from_millis(ms));
            }
            key if LAPIN_PARAMS.contains(&key) => {
                has_heartbeat |= key == "heartbeat";
                kept.push(pair.to_owned());
            }
            key => {
                let known: Vec<&str> = ["exchange", "publish_timeout_ms"]
                    .into_iter()
                    .chain(LAPIN_PARAMS.iter().copied())
                    .collect();
                return Err(promiscuous_core::backend::unknown_parameter(
                    "RabbitMQ", key, &known,
                ));
            }
        }
    }
    if !has_heartbeat {
        kept.push(format!("heartbeat={DEFAULT_HEARTBEAT_SECS}"));
    }
    parsed.set_fragment(None);
    parsed.set_query(Some(&kept.join("&")));
    Ok(SplitUrl {
        lapin_url: parsed.into(),
        exchange,
        publish_timeout,
    })
}

/// The host of `url` when it is an IP literal (`127.0.0.1`, `[::1]`).
///
/// amq-protocol-uri takes the host from `Url::domain()`, which is `None` for
/// IPv6 addresses, and then falls back to `localhost`; we put the address back.
fn ip_host(url: &str) -> Option<String> {
    match Url::parse(url).ok()?.host()? {
        Host::Ipv4(ip) => Some(ip.to_string()),
        Host::Ipv6(ip) => Some(ip.to_string()),
        Host::Domain(name) => name.parse::<IpAddr>().ok().map(|ip| ip.to_string()),
    }
}

/// Checks an exchange name: AMQP allows letters, digits, `-`, `_`, `.`, `:`.
fn check_exchange(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 255
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "exchange name {name:?} must be 1 to 255 letters, digits, `-`, `_`, `.` or `:`"
        ))
    }
}

impl Options {
    /// Parses `url` and applies the builder's overrides.
    fn parse(
        url: &str,
        exchange: Option<String>,
        publish_timeout: Option<Duration>,
        connection_name: Option<String>,
    ) -> Result<Self, BackendError> {
        let redacted = redact_url(url);
        let invalid = |problem: String| {
            BackendError::new(
                BACKEND,
                "connect",
                redacted.clone(),
                format!("invalid RabbitMQ URL: {problem}"),
            )
        };
        let split = split_url(url).map_err(invalid)?;
        let mut uri: AMQPUri = split.lapin_url.parse().map_err(|e: String| {
            // lapin's message may quote the URL: never show it, the password is in it.
            let shown = if e.contains(url) || e.contains(&split.lapin_url) {
                "it does not parse".to_owned()
            } else {
                e
            };
            invalid(format!(
                "{shown} (expected amqp://user:password@host:port/vhost)"
            ))
        })?;
        if let Some(ip) = ip_host(url) {
            uri.authority.host = ip;
        }
        let exchange = exchange
            .or(split.exchange)
            .unwrap_or_else(|| DEFAULT_EXCHANGE.to_owned());
        check_exchange(&exchange).map_err(invalid)?;
        Ok(Self {
            url: redacted,
            uri,
            exchange,
            publish_timeout: publish_timeout
                .or(split.publish_timeout)
                .unwrap_or(DEFAULT_PUBLISH_TIMEOUT),
            connection_name: connection_name.unwrap_or_else(|| DEFAULT_CONNECTION_NAME.to_owned()),
        })
    }
}

/// Configures an [`AmqpBroker`] beyond its URL; made by [`AmqpBroker::builder`].
///
/// Values set here win over the URL's `exchange` and `publish_timeout_ms`.
#[must_use = "a builder does nothing until .connect().await"]
pub struct AmqpBrokerBuilder {
    url: String,
    exchange: Option<String>,
    publish_timeout: Option<Duration>,
    connection_name: Option<String>,
}

impl fmt::Debug for AmqpBrokerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AmqpBrokerBuilder")
            .field("url", &redact_url(&self.url))
            .field("exchange", &self.exchange)
            .field("publish_timeout", &self.publish_timeout)
            .field("connection_name", &self.connection_name)
            .finish()
    }
}

impl AmqpBrokerBuilder {
    pub(crate) fn new(url: String) -> Self {
        Self {
            url,
            exchange: None,
            publish_timeout: None,
            connection_name: None,
        }
    }

    /// The topic exchange to publish to and bind queues on (default `promiscuous`).
    pub fn exchange(mut self, name: impl Into<String>) -> Self {
        self.exchange = Some(name.into());
        self
    }

    /// How long a publish waits for a reconnection and for the confirm (default 10 s).
    pub fn publish_timeout(mut self, timeout: Duration) -> Self {
        self.publish_timeout = Some(timeout);
        self
    }

    /// The connection name RabbitMQ shows for this broker's connection (default `promiscuous`).
    pub fn connection_name(mut self, name: impl Into<String>) -> Self {
        self.connection_name = Some(name.into());
        self
    }

    /// Connects, declares the exchange and starts the reconnect supervisor.
    ///
    /// Fails with a permanent error for a bad URL or refused credentials and
    /// with a temporary one when RabbitMQ cannot be reached.
    pub async fn connect(self) -> Result<AmqpBroker, BackendError> {
        let options = Options::parse(
            &self.url,
            self.exchange,
            self.publish_timeout,
            self.connection_name,
        )?;
        AmqpBroker::start(options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_parameters_are_removed_and_heartbeat_added() {
        let split = split_url(
            "amqp://u:p@h:5672/%2f?exchange=events&publish_timeout_ms=250&frame_max=8192",
        )
        .unwrap();
        assert_eq!(
            split,
            SplitUrl {
                lapin_url: "amqp://u:p@h:5672/%2f?frame_max=8192&heartbeat=10".into(),
                exchange: Some("events".into()),
                publish_timeout: Some(Duration::from_millis(250)),
            }
        );
        let split = split_url("amqp://h/%2f?heartbeat=30").unwrap();
        assert_eq!(split.lapin_url, "amqp://h/%2f?heartbeat=30");
        assert_eq!(
            split_url("amqp://h").unwrap().lapin_url,
            "amqp://h?heartbeat=10"
        );
        assert!(split_url("amqp://h?publish_timeout_ms=soon").is_err());
        let refused = split_url("amqp://h?heartbaet=5").unwrap_err();
        assert!(refused.contains("did you mean `heartbeat`"), "{refused}");
    }

    #[test]
    fn ip_hosts_survive_parsing() {
        assert_eq!(
            ip_host("amqp://guest:guest@127.0.0.1:5672/%2f"),
            Some("127.0.0.1".into())
        );
        assert_eq!(ip_host("amqp://[::1]:5672"), Some("::1".into()));
        assert_eq!(ip_host("amqp://rabbit:5672/%2f"), None);
        let options =
            Options::parse("amqp://guest:pw@127.0.0.1:5673/%2f", None, None, None).unwrap();
        assert_eq!(options.uri.authority.host, "127.0.0.1");
        assert_eq!(options.uri.authority.port, 5673);
        assert_eq!(options.uri.vhost, "/");
        assert_eq!(options.uri.query.heartbeat, Some(10));
    }

    #[test]
    fn builder_values_win_and_defaults_apply() {
        let options = Options::parse(
            "amqp://u:secret@h/%2f?exchange=from-url&publish_timeout_ms=5",
            Some("from-builder".into()),
            None,
            None,
        )
        .unwrap();
        assert_eq!(options.exchange, "from-builder");
        assert_eq!(options.publish_timeout, Duration::from_millis(5));
        assert_eq!(
            options.url,
            "amqp://u:***@h/%2f?exchange=from-url&publish_timeout_ms=5"
        );
        assert!(!format!("{options:?}").contains("secret"));
        let options = Options::parse("amqp://h", None, None, None).unwrap();
        assert_eq!(options.exchange, DEFAULT_EXCHANGE);
        assert_eq!(options.publish_timeout, DEFAULT_PUBLISH_TIMEOUT);
    }

    #[test]
    fn special_passwords_ipv6_hosts_and_encoded_values() {
        let options = Options::parse(
            "amqp://user:p%40ss%2Fw%23rd@[::1]:5672/%2f?exchange=ev%2Ents#ignored",
            None,
            None,
            None,
        )
        .unwrap();
        assert_eq!(options.uri.authority.userinfo.username, "user");
        assert_eq!(options.uri.authority.userinfo.password, "p@ss/w#rd");
        assert_eq!(options.uri.authority.host, "::1");
        assert_eq!(options.uri.authority.port, 5672);
        assert_eq!(options.exchange, "ev.nts");
        assert_eq!(
            options.url,
            "amqp://user:***@[::1]:5672/%2f?exchange=ev%2Ents#ignored"
        );
        assert!(!format!("{options:?}").contains("p%40ss"));

        // No password: lapin's default one, nothing to hide.
        let options = Options::parse("amqp://guest@127.0.0.1/%2f", None, None, None).unwrap();
        assert_eq!(options.uri.authority.userinfo.username, "guest");
        assert_eq!(options.uri.authority.host, "127.0.0.1");
        assert_eq!(options.url, "amqp://guest@127.0.0.1/%2f");

        let split = split_url("amqp://h/?auth_mechanism=a%26b&heartbeat=5").unwrap();
        assert_eq!(
            split.lapin_url,
            "amqp://h/?auth_mechanism=a%26b&heartbeat=5"
        );
    }

    #[test]
    fn bad_urls_are_permanent_errors_without_the_password() {
        for url in [
            "amqp://u:se#cret@h/",
            "amqp://u:se/cret@h/",
            "amqp://u:secret@h:99999/",
            "http://u:secret@h/",
            "amqp://u:secret@h/?exchange=",
            "amqp://u:secret@h/?exchange=a%20b",
            "amqp://u:secret@h/?heartbeat=often",
        ] {
            let err = Options::parse(url, None, None, None).unwrap_err();
            assert!(!err.is_temporary(), "{url}: {err}");
            let text = err.to_string();
            assert!(!text.contains("secret") && !text.contains("cret"), "{text}");
            assert!(text.contains("u:***@h"), "{text}");
        }
    }
}
