//! [`Backend`]: the broker (and, in memory, the clock and lock) of an
//! instance as one typed value, for `Promiscuous::configure().backend(Null)`.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::backend::scheme_of;

/// Where an instance's messages go, as one value: what
/// [`ConfigBuilder::backend`](crate::config::ConfigBuilder::backend) takes.
///
/// The URL methods (`broker_url`, `redis_url`) say the same piece by piece;
/// a later call to either overrides what a `backend` set.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Backend {
    /// Pretend mode: every publish is recorded and nothing is delivered,
    /// with an in-memory clock and lock of this instance's own. For tests:
    /// a publisher needs no server, a subscriber is driven by a
    /// `MockPublisher`. (To read what was published, give the builder a
    /// `NullBroker` of your own with `.broker(..)`.)
    Null,
    /// The in-process broker, clock and lock named by the string: the
    /// instances of this process using the same name talk to each other.
    Memory(String),
    /// RabbitMQ at this `amqp://` or `amqps://` URL (feature `amqp`); the
    /// clock and lock stay as configured (Redis by default).
    Amqp(String),
}

/// What a [`Backend`] sets on the builder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BackendUrls {
    /// The broker URL.
    pub broker: String,
    /// The URL of the clock and the lock, when the backend brings them.
    pub clock_and_lock: Option<String>,
}

impl Backend {
    /// The URLs this backend stands for, or why it is not valid.
    pub(crate) fn urls(&self) -> Result<BackendUrls, String> {
        match self {
            Backend::Null => {
                // A name of its own, so that instances never share what they recorded.
                static NEXT: AtomicU64 = AtomicU64::new(0);
                let name = format!(
                    "backend-null-{}-{}",
                    std::process::id(),
                    NEXT.fetch_add(1, Ordering::Relaxed)
                );
                Ok(BackendUrls {
                    broker: format!("null://{name}"),
                    clock_and_lock: Some(format!("memory://{name}")),
                })
            }
            Backend::Memory(name) => {
                let valid = !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
                if !valid {
                    return Err(format!(
                        "Backend::Memory({name:?}): the name must be non-empty and made of letters, digits, `-`, `_` or `.`"
                    ));
                }
                Ok(BackendUrls {
                    broker: format!("memory://{name}"),
                    clock_and_lock: Some(format!("memory://{name}")),
                })
            }
            Backend::Amqp(url) => match scheme_of(url) {
                Some(scheme) if scheme == "amqp" || scheme == "amqps" => Ok(BackendUrls {
                    broker: url.clone(),
                    clock_and_lock: None,
                }),
                _ => Err(format!(
                    "Backend::Amqp takes an `amqp://` or `amqps://` URL, not {}; use Backend::Memory(name) or Backend::Null for the in-process brokers",
                    crate::backend::redact_url(url)
                )),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_instances_are_private() {
        let first = Backend::Null.urls().unwrap();
        let second = Backend::Null.urls().unwrap();
        assert!(first.broker.starts_with("null://backend-null-"));
        assert_ne!(first.broker, second.broker);
        assert!(first.clock_and_lock.unwrap().starts_with("memory://"));
    }

    #[test]
    fn memory_names_and_amqp_urls_are_checked() {
        assert_eq!(
            Backend::Memory("bus".into()).urls().unwrap(),
            BackendUrls {
                broker: "memory://bus".into(),
                clock_and_lock: Some("memory://bus".into())
            }
        );
        assert!(Backend::Memory(String::new()).urls().is_err());
        assert!(Backend::Memory("a/b".into()).urls().is_err());
        let amqp = Backend::Amqp("amqps://u:pw@h/vh".into()).urls().unwrap();
        assert_eq!(amqp.clock_and_lock, None);
        let wrong = Backend::Amqp("redis://u:secret@h/".into())
            .urls()
            .unwrap_err();
        assert!(wrong.contains("redis://u:***@h/"), "{wrong}");
        assert!(!wrong.contains("secret"), "{wrong}");
    }
}
