//! Backends chosen by URL at run time.
//!
//! Each backend crate registers a [`BackendFactory`] for its URL scheme with
//! `inventory`; `Promiscuous::configure()` builds the broker, lock and clock
//! from the URLs it is given (or reads from the environment) through them.

use std::sync::Arc;

use futures::future::BoxFuture;
use url::Url;

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
///
/// The URL must have an authority (`scheme://…`): `localhost:5672` has none.
/// A URL whose scheme is valid but whose rest does not parse (a bad port, a
/// password with unescaped `#` or `/`) still has a scheme, so the backend
/// that owns it can say what is wrong.
pub fn scheme_of(url: &str) -> Option<&str> {
    let scheme_len = match Url::parse(url) {
        Ok(parsed) if parsed.has_authority() => parsed.scheme().len(),
        Ok(_) => return None,
        Err(_) => {
            let (scheme, _) = url.split_once("://")?;
            Url::parse(&format!("{scheme}://")).ok()?.scheme().len()
        }
    };
    // The parser lowercases the scheme and trims leading spaces: return the
    // scheme as written, or nothing when the URL does not start with it.
    let scheme = url.get(..scheme_len)?;
    let written = url.get(scheme_len..)?.starts_with("://");
    (written && !scheme.is_empty()).then_some(scheme)
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

/// The error for a query parameter of a `what` URL (`Redis`, `RabbitMQ`)
/// that nobody reads, naming the closest of the `known` ones when one is
/// close (a typo such as `prefx`).
pub fn unknown_parameter(what: &str, name: &str, known: &[&str]) -> String {
    let closest = known
        .iter()
        .map(|candidate| (strsim::levenshtein(name, candidate), *candidate))
        .min()
        .filter(|(distance, candidate)| distance * 3 <= name.len().max(candidate.len()))
        .map(|(_, candidate)| format!(" (did you mean `{candidate}`?)"))
        .unwrap_or_default();
    let known: Vec<String> = known.iter().map(|k| format!("`{k}`")).collect();
    format!(
        "unknown query parameter `{name}` in the {what} URL{closest}; known: {}",
        known.join(", ")
    )
}

/// A URL with its password replaced by `***`, for logs and errors.
///
/// A URL without a password is returned as it is. A URL that does not parse
/// (a password with an unescaped `#`, `/` or `?`, a bad port) or that has an
/// `@` after its host (the password may have run on) is redacted from the
/// `:` after the user name to the last `@`, so no part of a password is shown.
pub fn redact_url(url: &str) -> String {
    if let Ok(mut parsed) = Url::parse(url) {
        let runs_on = parsed.path().contains('@')
            || parsed.query().is_some_and(|q| q.contains('@'))
            || parsed.fragment().is_some_and(|f| f.contains('@'));
        if !runs_on {
            if parsed.password().is_none() {
                return url.to_owned();
            }
            if parsed.set_password(Some("***")).is_ok() {
                return parsed.into();
            }
        }
    }
    redact_to_last_at(url)
}

/// `scheme://user:***@rest`: everything between the user name's `:` and the
/// last `@` hidden; `url` itself when it has no `user:…@`.
fn redact_to_last_at(url: &str) -> String {
    let Some((before, host)) = url.rsplit_once('@') else {
        return url.to_owned();
    };
    let start = before.find("://").map_or(0, |i| i + 3);
    let (scheme, userinfo) = before.split_at(start);
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}{user}:***@{host}"),
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

    #[test]
    fn schemes() {
        assert_eq!(scheme_of("amqp://"), Some("amqp"));
        assert_eq!(scheme_of("null://"), Some("null"));
        assert_eq!(scheme_of("AMQP://h"), Some("AMQP"));
        assert_eq!(scheme_of("redis://:pw@[::1]:6379/0"), Some("redis"));
        // The rest does not parse, the scheme does.
        assert_eq!(scheme_of("amqp://u:pa#ss@h/"), Some("amqp"));
        assert_eq!(scheme_of("amqp://h:99999"), Some("amqp"));
        assert_eq!(scheme_of("localhost"), None);
        assert_eq!(scheme_of("localhost:5672"), None);
        assert_eq!(scheme_of("://h"), None);
        assert_eq!(scheme_of("1x://h"), None);
        assert_eq!(scheme_of(" amqp://h"), None);
        assert_eq!(scheme_of(""), None);
    }

    #[test]
    fn redacts_special_passwords() {
        // Escaped special characters stay escaped in the redacted URL.
        assert_eq!(
            redact_url("amqp://u:p%40s%3Ass@h/%2f"),
            "amqp://u:***@h/%2f"
        );
        // An unescaped `@` in the password: the last `@` ends it.
        assert_eq!(redact_url("amqp://u:p@ss@h/v"), "amqp://u:***@h/v");
        // No user name.
        assert_eq!(
            redact_url("redis://:secret@h:6379/0"),
            "redis://:***@h:6379/0"
        );
        // IPv6 hosts.
        assert_eq!(
            redact_url("amqp://guest:secret@[::1]:5672/%2f"),
            "amqp://guest:***@[::1]:5672/%2f"
        );
        assert_eq!(redact_url("amqp://[::1]:5672"), "amqp://[::1]:5672");
        // No password, or an empty one.
        assert_eq!(redact_url("amqp://guest@h/"), "amqp://guest@h/");
        assert_eq!(redact_url("amqp://guest:@h/"), "amqp://guest:@h/");
        // `@` in the query of a URL without a password.
        assert_eq!(redact_url("redis://h/?prefix=a@b"), "redis://h/?prefix=a@b");
    }

    #[test]
    fn unparsable_urls_never_show_a_password() {
        for (url, redacted) in [
            ("amqp://u:pa#ss@h/", "amqp://u:***@h/"),
            ("amqp://u:pa/ss@h/vh", "amqp://u:***@h/vh"),
            ("amqp://u:pa?ss@h:5672", "amqp://u:***@h:5672"),
            ("amqp://u:12/34@h", "amqp://u:***@h"),
            ("amqp://u:p@ss/w@h", "amqp://u:***@h"),
            ("amqp://u:secret@h:99999/", "amqp://u:***@h:99999/"),
            ("u:secret@h", "u:***@h"),
        ] {
            assert_eq!(redact_url(url), redacted, "{url}");
        }
        assert_eq!(redact_url("nothing"), "nothing");
        assert_eq!(redact_url("amqp://h:99999"), "amqp://h:99999");
    }
}
