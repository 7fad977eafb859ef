//! Our options in the Redis URL, and the URL handed to the `redis` crate.
//!
//! Everything of the URL belongs to the `redis` crate (host, port, database,
//! user, password, `protocol=`…) except the query parameters listed here,
//! which are ours and are taken out before the URL reaches it:
//!
//! - `prefix`: the namespace of every key this crate reads or writes
//!   (default [`DEFAULT_PREFIX`]). Percent-encode characters that are special
//!   in a query string (`&`, `#`, `+`, `%`).

/// The prefix of every key when the URL has no `prefix` parameter.
pub const DEFAULT_PREFIX: &str = "promiscuous:";

/// The query parameter that sets the key prefix.
const PREFIX_PARAM: &str = "prefix";

/// A URL split into our options and the URL for the `redis` crate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Options {
    /// The URL without our parameters, for `redis::Client::open`.
    pub(crate) redis_url: String,
    /// The namespace of every key.
    pub(crate) prefix: String,
}

/// Takes our parameters out of `url`; the error says what is wrong, in words.
pub(crate) fn parse(url: &str) -> Result<Options, String> {
    let (before_fragment, fragment) = match url.find('#') {
        Some(i) => url.split_at(i),
        None => (url, ""),
    };
    let (base, query) = match before_fragment.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (before_fragment, None),
    };
    let mut prefix = None;
    let mut kept = Vec::new();
    for pair in query.into_iter().flat_map(|q| q.split('&')) {
        if pair.is_empty() {
            continue;
        }
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if decode(name).as_deref() == Ok(PREFIX_PARAM) {
            if prefix.is_some() {
                return Err(format!(
                    "the `{PREFIX_PARAM}` query parameter is given more than once"
                ));
            }
            let value = decode(value).map_err(|_| {
                format!("the `{PREFIX_PARAM}` query parameter is not valid UTF-8 once decoded")
            })?;
            prefix = Some(value);
        } else {
            kept.push(pair);
        }
    }
    let mut redis_url = base.to_owned();
    if !kept.is_empty() {
        redis_url.push('?');
        redis_url.push_str(&kept.join("&"));
    }
    redis_url.push_str(fragment);
    Ok(Options {
        redis_url,
        prefix: prefix.unwrap_or_else(|| DEFAULT_PREFIX.to_owned()),
    })
}

/// Decodes a query-string component (`%XX` escapes, `+` for a space), as
/// `application/x-www-form-urlencoded` does; a `%` not followed by two hex
/// digits is kept as it is.
fn decode(component: &str) -> Result<String, std::string::FromUtf8Error> {
    let bytes = component.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(byte) => {
                        out.push(byte);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(url: &str) -> (String, String) {
        let options = parse(url).unwrap();
        (options.redis_url, options.prefix)
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
            parsed("redis://host/0?protocol=resp3&prefix=a%3Ab%26c+d&x=1#frag"),
            (
                "redis://host/0?protocol=resp3&x=1#frag".into(),
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
    }
}
