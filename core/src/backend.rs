//! Backends chosen by URL at run time.
//!
//! Each backend crate registers a [`BackendFactory`] for its URL scheme with
//! `inventory`; `Promiscuous::configure()` builds the broker, lock and clock
//! from the URLs it is given (or reads from the environment) through them.

use std::sync::Arc;

use futures::future::BoxFuture;

use crate::error::BackendError;
use crate::traits::{Broker, Clock, Lock};

/// Builds a broker from a URL.
pub type BrokerFactory = fn(&str) -> BoxFuture<'static, Result<Arc<dyn Broker>, BackendError>>;
/// Builds a clock from a URL.
pub type ClockFactory = fn(&str) -> BoxFuture<'static, Result<Arc<dyn Clock>, BackendError>>;
/// Builds a lock from a URL.
pub type LockFactory = fn(&str) -> BoxFuture<'static, Result<Arc<dyn Lock>, BackendError>>;

/// What one backend crate can build for one URL scheme.
#[derive(Debug)]
pub struct BackendFactory {
    /// The URL scheme, without `://` (`memory`, `null`, `amqp`, `redis`).
    pub scheme: &'static str,
    /// The cargo feature of the `promiscuous` crate that brings this backend.
    pub feature: &'static str,
    /// Builds a broker, if this backend is one.
    pub broker: Option<BrokerFactory>,
    /// Builds a clock, if this backend provides one.
    pub clock: Option<ClockFactory>,
    /// Builds a lock, if this backend provides one.
    pub lock: Option<LockFactory>,
}

inventory::collect!(BackendFactory);

/// The scheme of a URL (`amqp` in `amqp://host`), if it has one.
pub fn scheme_of(url: &str) -> Option<&str> {
    url.split_once("://")
        .map(|(scheme, _)| scheme)
        .filter(|s| !s.is_empty())
}

/// The factory registered for `url`'s scheme (`amqps` falls back to `amqp`,
/// `rediss` to `redis`).
pub fn factory_for(url: &str) -> Option<&'static BackendFactory> {
    let scheme = scheme_of(url)?;
    let find = |wanted: &str| {
        inventory::iter::<BackendFactory>
            .into_iter()
            .find(|f| f.scheme == wanted)
    };
    find(scheme).or_else(|| find(scheme.strip_suffix('s')?))
}

/// Every registered scheme, for error messages.
pub fn known_schemes() -> Vec<&'static str> {
    let mut schemes: Vec<_> = inventory::iter::<BackendFactory>
        .into_iter()
        .map(|f| f.scheme)
        .collect();
    schemes.sort_unstable();
    schemes.dedup();
    schemes
}

/// A URL with its password replaced by `***`, for logs and errors.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{path}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords_only() {
        assert_eq!(
            redact_url("amqp://guest:secret@host:5672/vh"),
            "amqp://guest:***@host:5672/vh"
        );
        assert_eq!(redact_url("redis://host/0"), "redis://host/0");
        assert_eq!(redact_url("memory://bus"), "memory://bus");
        assert_eq!(scheme_of("amqp://x"), Some("amqp"));
        assert_eq!(scheme_of("nothing"), None);
    }
}
