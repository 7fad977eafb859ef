//! The wire format under ~100,000 mutated messages: the golden messages of
//! `docs/golden/` with bytes flipped, cut or inserted, and values deleted or
//! replaced by values of every JSON type. Decoding never panics; a worker
//! receiving a sample of them settles every one, and dead-letters each that
//! does not decode, with its reason. (`fuzz/` holds the `cargo fuzz` target
//! of the same decoder, for longer runs.)

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use promiscuous::core::testkit::eventually;
use promiscuous::core::wire::Message;
use promiscuous::memory::InProcessBroker;
use promiscuous::{Mode, Promiscuous, Subscribe};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Cases of the decoder property.
const CASES: u32 = 100_000;
/// Mutated messages delivered to a worker.
const DELIVERED: usize = 20_000;

/// Binds every endpoint; stands for no published type, so whatever decodes
/// is skipped after routing, and the rest is dead-lettered.
#[derive(Debug, Serialize, Deserialize, Subscribe)]
#[subscribe(observer, from = "*/*", as = "NoSuchType")]
pub struct Anything {}

fn goldens() -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/golden");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("docs/golden exists")
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|path| std::fs::read(path).expect("golden file reads"))
        .collect()
}

/// The next number of a xorshift generator.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// A JSON value of a type picked by `state`, often an awkward one.
fn any_value(state: &mut u64) -> Value {
    match next(state) % 12 {
        0 => Value::Null,
        1 => json!(true),
        2 => json!(-1),
        3 => json!(u64::MAX),
        4 => serde_json::from_str("18446744073709551616").unwrap_or(Value::Null),
        5 => json!(1.5),
        6 => json!(""),
        7 => json!("x/y z\u{0}"),
        8 => json!([]),
        9 => json!({}),
        10 => json!([{"key": "", "version": -3}]),
        _ => json!("a".repeat((next(state) % 3000) as usize)),
    }
}

/// Every path to a value in `value`.
fn paths(value: &Value, prefix: Vec<Value>, out: &mut Vec<Vec<Value>>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let mut path = prefix.clone();
                path.push(json!(key));
                out.push(path.clone());
                paths(child, path, out);
            }
        }
        Value::Array(items) => {
            for (index, child) in items.iter().enumerate() {
                let mut path = prefix.clone();
                path.push(json!(index));
                out.push(path.clone());
                paths(child, path, out);
            }
        }
        _ => {}
    }
}

/// Replaces (or with `delete`, removes) what `path` points to.
fn edit(value: &mut Value, path: &[Value], replacement: Value, delete: bool) {
    let Some((last, parents)) = path.split_last() else {
        *value = replacement;
        return;
    };
    let mut target = value;
    for step in parents {
        let next = match step {
            Value::String(key) => target.get_mut(key.as_str()),
            Value::Number(index) => target.get_mut(index.as_u64().unwrap_or(0) as usize),
            _ => None,
        };
        match next {
            Some(next) => target = next,
            None => return,
        }
    }
    match (target, last) {
        (Value::Object(map), Value::String(key)) if delete => {
            map.remove(key);
        }
        (Value::Object(map), Value::String(key)) => {
            map.insert(key.clone(), replacement);
        }
        (Value::Array(items), Value::Number(index)) => {
            let index = index.as_u64().unwrap_or(0) as usize;
            if index < items.len() {
                if delete {
                    items.remove(index);
                } else {
                    items[index] = replacement;
                }
            }
        }
        _ => {}
    }
}

/// Golden message `golden`, mutated as `seed` says.
fn mutate(golden: &[u8], seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut bytes = golden.to_vec();
    match next(&mut state) % 6 {
        0 if !bytes.is_empty() => {
            let at = (next(&mut state) as usize) % bytes.len();
            bytes[at] ^= 1 << (next(&mut state) % 8);
        }
        1 => bytes.truncate((next(&mut state) as usize) % (bytes.len() + 1)),
        2 => {
            let at = (next(&mut state) as usize) % (bytes.len() + 1);
            bytes.insert(at, (next(&mut state) % 256) as u8);
        }
        kind => {
            let mut value: Value = serde_json::from_slice(golden).expect("goldens are JSON");
            let mut all = Vec::new();
            paths(&value, Vec::new(), &mut all);
            let edits = 1 + next(&mut state) % 3;
            for _ in 0..edits {
                if all.is_empty() {
                    break;
                }
                let path = &all[(next(&mut state) as usize) % all.len()];
                edit(&mut value, path, any_value(&mut state), kind == 3);
            }
            bytes = serde_json::to_vec(&value).expect("a value serialises");
        }
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig { cases: CASES, failure_persistence: None, .. ProptestConfig::default() })]

    #[test]
    fn decoding_a_mutated_message_never_panics(golden in 0usize..11, seed in any::<u64>()) {
        let goldens = goldens_cached();
        let payload = mutate(&goldens[golden % goldens.len()], seed);
        let decoded = std::panic::catch_unwind(|| Message::decode(&payload).map(|_| ()));
        prop_assert!(decoded.is_ok(), "decoding panicked on {}", String::from_utf8_lossy(&payload));
        if let Ok(Err(error)) = decoded {
            prop_assert!(!error.to_string().is_empty());
        }
    }
}

fn goldens_cached() -> &'static [Vec<u8>] {
    static GOLDENS: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    GOLDENS.get_or_init(goldens)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_settles_every_mutated_message_and_dead_letters_the_malformed() {
    let panics = Arc::new(AtomicUsize::new(0));
    let counted = panics.clone();
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        counted.fetch_add(1, Ordering::SeqCst);
        previous(info);
    }));
    let started = Instant::now();
    let broker = Arc::new(InProcessBroker::new());
    let app = Promiscuous::configure()
        .app("fuzzed")
        .broker(broker.clone())
        .redis_url("memory://wire-fuzz")
        .subscriber::<Anything>()
        .mode(Mode::Unordered)
        .max_attempts(2)
        .retry_backoff(Duration::from_millis(1))
        .error_notifier(|_| {})
        .build()
        .await
        .unwrap();
    let mut worker = app.subscribe().await.unwrap();
    let goldens = goldens();
    let mut malformed = 0;
    let mut seed = 0x1234_5678_9abc_def1u64;
    for index in 0..DELIVERED {
        let payload = mutate(&goldens[index % goldens.len()], next(&mut seed));
        if Message::decode(&payload).is_err() {
            malformed += 1;
        }
        broker.inject("fuzzed", "crowdtap/user", &payload);
    }
    let settled = eventually(Duration::from_secs(120), || async {
        let stats = worker.stats();
        stats.received as usize >= DELIVERED
            && stats.is_idle()
            && broker.queue_len("fuzzed") == 0
            && broker.unacked("fuzzed") == 0
    })
    .await;
    let stats = worker.stats();
    let letters = broker.dead_letters("fuzzed");
    let undecodable = letters
        .iter()
        .filter(|letter| Message::decode(&letter.payload).is_err())
        .count();
    println!(
        "wire fuzz: {DELIVERED} mutated messages delivered, {malformed} malformed, {} dead-lettered, {} panics, {:.1} s ({CASES} more decoded by the property)",
        letters.len(),
        panics.load(Ordering::SeqCst),
        started.elapsed().as_secs_f64()
    );
    assert!(settled, "every message is settled: {stats:?}");
    assert_eq!(panics.load(Ordering::SeqCst), 0, "nothing panicked");
    assert_eq!(
        undecodable, malformed,
        "every malformed message is dead-lettered"
    );
    assert!(
        letters.iter().all(|letter| !letter.reason.is_empty()),
        "every dead letter says why"
    );
    assert!(malformed > DELIVERED / 4, "the mutations do break messages");
    worker.shutdown().await;
}
