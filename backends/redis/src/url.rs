//! Our options in the Redis URL, and the URL handed to the `redis` crate.
//!
//! Everything of the URL belongs to the `redis` crate (host, port, database,
//! user, password, `protocol=`…) except the query parameters listed here,
//! which are ours and are taken out before the URL reaches it:
//!
//! - `prefix`: the namespace of every key this crate reads or writes
//!   (default [`DEFAULT_PREFIX`]). Percent-encode characters that are special
//!   in a query string (`&`, `#`, `+`, `%`).
//!
//! Any other query parameter than these and the `redis` crate's (`protocol`,
//! `db`, `user`, `pass`) is refused, naming the closest known one: a typo
//! such as `?prefx=` must not silently leave the default prefix in place.

/// The prefix of every key when the URL has no `prefix` parameter.
pub const DEFAULT_PREFIX: &str = "promiscuous:";

use url::{form_urlencoded, Url};

/// The query parameter that sets the key prefix.
const PREFIX_PARAM: &str = "prefix";

/// The query parameters the `redis` crate reads (`db`, `user` and `pass`
/// for unix sockets; `protocol` everywhere).
const CLIENT_PARAMS: &[&str] = &["protocol", "db", "user", "pass"];

/// A URL split into our options and the URL for the `redis` crate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Options {
    /// The URL without our parameters, for `redis::Client::open`.
    pub(crate) redis_url: String,
    /// The namespace of every key.
    pub(crate) prefix: String,
}

/// Takes our parameters out of `url`; the error says what is wrong, in words.
///
/// The other query parameters are passed on as they are written.
pub(crate) fn parse(url: &str) -> Result<Options, String> {
    let mut parsed = Url::parse(url).map_err(|e| format!("invalid Redis URL: {e}"))?;
    let mut prefix = None;
    let mut kept = Vec::new();
    for pair in parsed.query().unwrap_or("").split('&') {
        let Some((name, value)) = form_urlencoded::parse(pair.as_bytes()).next() else {
            continue;
        };
        if name != PREFIX_PARAM {
            if !CLIENT_PARAMS.contains(&name.as_ref()) {
                let known: Vec<&str> = std::iter::once(PREFIX_PARAM)
                    .chain(CLIENT_PARAMS.iter().copied())
                    .collect();
                return Err(promiscuous_core::backend::unknown_parameter(
                    "Redis", &name, &known,
                ));
            }
            kept.push(pair);
            continue;
        }
        if prefix.is_some() {
            return Err(format!(
                "the `{PREFIX_PARAM}` query parameter is given more than once"
            ));
        }
        if replaced_invalid_utf8(pair, &value) {
            return Err(format!(
                "the `{PREFIX_PARAM}` query parameter is not valid UTF-8 once decoded"
            ));
        }
        prefix = Some(value.into_owned());
    }
    if prefix.is_some() {
        let query = (!kept.is_empty()).then(|| kept.join("&"));
        parsed.set_query(query.as_deref());
    }
    Ok(Options {
        redis_url: parsed.into(),
        prefix: prefix.unwrap_or_else(|| DEFAULT_PREFIX.to_owned()),
    })
}

/// Whether decoding `raw` replaced bytes that are not UTF-8 with U+FFFD
/// (form-urlencoded decoding is lossy): `decoded` then holds more U+FFFD than
/// `raw` spells out (`%EF%BF%BD`).
fn replaced_invalid_utf8(raw: &str, decoded: &str) -> bool {
    let spelled = raw.to_ascii_uppercase().matches("%EF%BF%BD").count()
        + raw.matches(char::REPLACEMENT_CHARACTER).count();
    decoded.matches(char::REPLACEMENT_CHARACTER).count() > spelled
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(url: &str) -> (String, String) {
        let options = parse(url).unwrap();
        (options.redis_url, options.prefix)
    }

    #[test]
    fn unknown_parameters_are_refused_with_the_closest_name() {
        let refused = parse("redis://127.0.0.1/?prefx=app:").unwrap_err();
        assert!(refused.contains("`prefx`"), "{refused}");
        assert!(refused.contains("did you mean `prefix`"), "{refused}");
        let refused = parse("redis://127.0.0.1/?colour=red").unwrap_err();
        assert!(!refused.contains("did you mean"), "{refused}");
        assert!(parse("redis://127.0.0.1/?protocol=resp3&prefix=a:").is_ok());
    }

    #[test]
    fn default_prefix_and_url_untouched() {
        assert_eq!(
            parsed("redis://127.0.0.1:6379/"),
            ("redis://127.0.0.1:6379/".into(), DEFAULT_PREFIX.into())
        );
        assert_eq!(
            parsed("redis://:pw@host/2?protocol=resp3"),
            (
                "redis://:pw@host/2?protocol=resp3".into(),
                DEFAULT_PREFIX.into()
            )
        );
    }

    #[test]
    fn prefix_is_taken_out_and_others_pass_through() {
        assert_eq!(
            parsed("redis://host/0?prefix=app:"),
            ("redis://host/0".into(), "app:".into())
        );
        assert_eq!(
            parsed("redis://host/0?protocol=resp3&prefix=a%3Ab%26c+d&db=1#frag"),
            (
                "redis://host/0?protocol=resp3&db=1#frag".into(),
                "a:b&c d".into()
            )
        );
        assert_eq!(
            parsed("redis://host/?prefix="),
            ("redis://host/".into(), String::new())
        );
        assert_eq!(
            parsed("redis://host/?prefix=100%"),
            ("redis://host/".into(), "100%".into())
        );
    }

    #[test]
    fn bad_prefixes_are_refused() {
        assert!(parse("redis://host/?prefix=a&prefix=b")
            .unwrap_err()
            .contains("more than once"));
        assert!(parse("redis://host/?prefix=%FF")
            .unwrap_err()
            .contains("UTF-8"));
        assert!(parse("redis://host:99999/")
            .unwrap_err()
            .contains("invalid port"));
    }

    #[test]
    fn prefixes_are_percent_decoded() {
        // The name may be encoded too; an encoded U+FFFD is kept.
        assert_eq!(
            parsed("redis://host/?pre%66ix=%E2%9C%93%2F%25&db=1"),
            ("redis://host/?db=1".into(), "\u{2713}/%".into())
        );
        assert_eq!(
            parsed("redis://host/?prefix=%EF%BF%BD"),
            ("redis://host/".into(), "\u{FFFD}".into())
        );
        // Unencoded characters that are not allowed in a URL are encoded by
        // the parser, then decoded.
        assert_eq!(
            parsed("redis://host/?prefix=a b"),
            ("redis://host/".into(), "a b".into())
        );
    }

    #[test]
    fn passwords_and_hosts_pass_through() {
        assert_eq!(
            parsed("redis://user:p%40ss%3Aw%2Frd@[::1]:6380/3?prefix=x:"),
            (
                "redis://user:p%40ss%3Aw%2Frd@[::1]:6380/3".into(),
                "x:".into()
            )
        );
        assert_eq!(
            parsed("redis://:only-password@127.0.0.1/?protocol=resp3&prefix=y"),
            (
                "redis://:only-password@127.0.0.1/?protocol=resp3".into(),
                "y".into()
            )
        );
    }
}
