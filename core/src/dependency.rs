//! Names of locks and version counters, and how ids are hashed into counters.
//!
//! The rules here are part of the wire contract (`docs/wire-format.md`):
//! a publisher in another language must name counters the same way only if it
//! shares the Redis clock, but every subscriber reads the keys from the message.

use serde_json::Value;

/// FNV-1a, 64 bits: stable across platforms, versions and languages.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes
        .iter()
        .fold(OFFSET, |hash, &b| (hash ^ u64::from(b)).wrapping_mul(PRIME))
}

/// The JSON text of an id (`"42"` for a string, `42` for an integer).
pub fn id_json(id: &Value) -> String {
    id.to_string()
}

/// The counter a record's writes advance: `endpoint#bucket`, where bucket is
/// FNV-1a of the id's JSON text modulo `hash_size`.
pub fn object_counter(endpoint: &str, id: &Value, hash_size: u64) -> String {
    let bucket = fnv1a64(id_json(id).as_bytes()) % hash_size.max(1);
    format!("{endpoint}#{bucket}")
}

/// The lock key of a record: `app/model/id` (the endpoint, then the id text).
pub fn lock_key(endpoint: &str, id: &Value) -> String {
    match id {
        Value::String(s) => format!("{endpoint}/{s}"),
        other => format!("{endpoint}/{other}"),
    }
}

/// The key, in the subscriber's clock, under which weak mode keeps a record's
/// last applied version (exact per record: weak mode must not confuse records
/// that share a hashed counter).
pub fn weak_counter(endpoint: &str, id: &Value) -> String {
    format!("{endpoint}@{}", id_json(id))
}

/// The endpoint a namespaced counter key belongs to (`app/model` in
/// `s:sub:app:0:app/model#12`). Namespace parts (`p`, generation, app names)
/// never hold a `/`, so the first `/` is the endpoint's; the endpoint runs
/// from the `:` before it up to `#` (a record bucket) or `@` (a weak-mode
/// record, whose id may hold anything).
pub fn endpoint_of_key(key: &str) -> &str {
    let Some(slash) = key.find('/') else {
        return key.split(['#', '@']).next().unwrap_or(key);
    };
    let start = key[..slash].rfind(':').map_or(0, |i| i + 1);
    let end = key[slash..]
        .find(['#', '@'])
        .map_or(key.len(), |i| slash + i);
    &key[start..end]
}

/// Bits of a stamp's era that hold the epoch's milliseconds; the generation sits above.
const ERA_EPOCH_BITS: u32 = 48;

/// The version a record is written with (see `Storage::write_versioned`):
/// the *era* (the generation in its high 16 bits, the clock epoch's
/// milliseconds in the low 48) in the high 64 bits, the endpoint counter's
/// version in the low 64. Every write of a record in a later generation, or
/// under a clock state created later (after Redis lost one), is newer than
/// any write before it, whatever their versions. `None` when the generation
/// does not fit (2^16).
pub fn version_stamp(generation: u64, epoch: u64, version: u64) -> Option<u128> {
    let millis = epoch / 1000;
    if generation >> (64 - ERA_EPOCH_BITS) != 0 || millis >> ERA_EPOCH_BITS != 0 {
        return None;
    }
    let era = (generation << ERA_EPOCH_BITS) | millis;
    Some((u128::from(era) << 64) | u128::from(version))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fnv_matches_reference_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn stamps_order_by_generation_then_epoch_then_version() {
        assert_eq!(version_stamp(0, 0, 5), Some(5));
        let epoch = 1_780_000_000_000_000; // 2026, in microseconds
        assert!(version_stamp(0, epoch, 1) > version_stamp(0, epoch - 1000, u64::MAX));
        assert!(version_stamp(1, 0, 1) > version_stamp(0, epoch, u64::MAX));
        assert!(version_stamp(0, epoch, 2) > version_stamp(0, epoch, 1));
        assert_eq!(version_stamp(1 << 16, 0, 1), None);
    }

    #[test]
    fn counters_are_bounded_by_hash_size() {
        assert_eq!(object_counter("a/user", &json!(1), 1), "a/user#0");
        let key = object_counter("a/user", &json!("x"), 1 << 20);
        let bucket: u64 = key.rsplit('#').next().unwrap().parse().unwrap();
        assert!(bucket < 1 << 20);
        assert_ne!(id_json(&json!("1")), id_json(&json!(1)));
        assert_eq!(lock_key("a/user", &json!("42")), "a/user/42");
        assert_eq!(lock_key("a/user", &json!(42)), "a/user/42");
    }
}
