//! The message headers this crate reads and writes.
//!
//! A retried or dead-lettered copy travels through the default exchange, so it
//! loses its routing key: the copy carries its endpoint and attempt count in
//! headers instead.

use lapin::types::{AMQPValue, LongString, ShortString};
use lapin::BasicProperties;

/// Header holding the endpoint (`app/model`) a retried or dead-lettered copy was published to.
pub const HEADER_ENDPOINT: &str = "x-promiscuous-endpoint";
/// Header holding how many deliveries a retried copy had before (its next `Delivery::attempt`, redelivery aside).
pub const HEADER_ATTEMPT: &str = "x-promiscuous-attempt";
/// Header holding why a message was dead-lettered.
pub const HEADER_REASON: &str = "x-promiscuous-reason";
/// Header holding how many times a dead-lettered message was delivered, the last one included.
pub const HEADER_ATTEMPTS: &str = "x-promiscuous-attempts";

/// The properties of every published message: persistent JSON.
pub(crate) fn published() -> BasicProperties {
    BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type(ShortString::from("application/json"))
}

/// A text header, if present and textual.
pub(crate) fn text(properties: &BasicProperties, key: &str) -> Option<String> {
    match properties.headers().as_ref()?.inner().get(key)? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

/// A count header, if present and a non-negative integer (saturated to `u32`).
pub(crate) fn count(properties: &BasicProperties, key: &str) -> Option<u32> {
    let value: i128 = match properties.headers().as_ref()?.inner().get(key)? {
        AMQPValue::ShortShortInt(v) => (*v).into(),
        AMQPValue::ShortShortUInt(v) => (*v).into(),
        AMQPValue::ShortInt(v) => (*v).into(),
        AMQPValue::ShortUInt(v) => (*v).into(),
        AMQPValue::LongInt(v) => (*v).into(),
        AMQPValue::LongUInt(v) => (*v).into(),
        AMQPValue::LongLongInt(v) => (*v).into(),
        AMQPValue::Timestamp(v) => (*v).into(),
        _ => return None,
    };
    Some(u32::try_from(value.max(0)).unwrap_or(u32::MAX))
}

/// The original properties with `entries` added to (or replacing in) its headers.
fn with_headers(original: &BasicProperties, entries: Vec<(&str, AMQPValue)>) -> BasicProperties {
    let mut headers = original.headers().clone().unwrap_or_default();
    for (key, value) in entries {
        headers.insert(ShortString::from(key), value);
    }
    original.clone().with_headers(headers)
}

fn long_string(text: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(text))
}

fn number(value: u32) -> AMQPValue {
    AMQPValue::LongLongInt(value.into())
}

/// The properties of a retried copy: the original ones plus endpoint and attempt.
pub(crate) fn retried(original: &BasicProperties, endpoint: &str, attempt: u32) -> BasicProperties {
    with_headers(
        original,
        vec![
            (HEADER_ENDPOINT, long_string(endpoint)),
            (HEADER_ATTEMPT, number(attempt)),
        ],
    )
}

/// The properties of a dead-lettered copy: endpoint, attempts and reason.
pub(crate) fn dead_lettered(
    original: &BasicProperties,
    endpoint: &str,
    attempt: u32,
    reason: &str,
) -> BasicProperties {
    with_headers(
        original,
        vec![
            (HEADER_ENDPOINT, long_string(endpoint)),
            (HEADER_ATTEMPT, number(attempt)),
            (HEADER_ATTEMPTS, number(attempt.saturating_add(1))),
            (HEADER_REASON, long_string(reason)),
        ],
    )
}

#[cfg(test)]
mod tests {
    use lapin::types::FieldTable;

    use super::*;

    #[test]
    fn copies_carry_endpoint_and_counts() {
        let original = published();
        let retried = retried(&original, "app/user", 2);
        assert_eq!(text(&retried, HEADER_ENDPOINT).as_deref(), Some("app/user"));
        assert_eq!(count(&retried, HEADER_ATTEMPT), Some(2));
        assert_eq!(retried.delivery_mode(), &Some(2));
        let dead = dead_lettered(&retried, "app/user", 3, "bad json");
        assert_eq!(count(&dead, HEADER_ATTEMPT), Some(3));
        assert_eq!(count(&dead, HEADER_ATTEMPTS), Some(4));
        assert_eq!(text(&dead, HEADER_REASON).as_deref(), Some("bad json"));
        assert_eq!(text(&original, HEADER_ENDPOINT), None);
        assert_eq!(count(&original, HEADER_ATTEMPT), None);
    }

    #[test]
    fn counts_accept_any_integer_and_clamp() {
        let mut headers = FieldTable::default();
        headers.insert("a".into(), AMQPValue::ShortUInt(7));
        headers.insert("b".into(), AMQPValue::LongLongInt(-3));
        headers.insert("c".into(), AMQPValue::LongLongInt(i64::MAX));
        headers.insert("d".into(), AMQPValue::Boolean(true));
        let properties = BasicProperties::default().with_headers(headers);
        assert_eq!(count(&properties, "a"), Some(7));
        assert_eq!(count(&properties, "b"), Some(0));
        assert_eq!(count(&properties, "c"), Some(u32::MAX));
        assert_eq!(count(&properties, "d"), None);
    }
}
