//! Wire format v1: the golden messages of `docs/golden/`, the JSON Schema
//! `docs/wire-format.schema.json`, the examples of `docs/wire-format.md` and
//! `Message::decode` must all agree.

use std::fs;
use std::path::{Path, PathBuf};

use promiscuous::core::dependency::{fnv1a64, id_json, object_counter};
use promiscuous::core::wire::{
    Dependencies, Dependency, Endpoint, EndpointPattern, Message, Operation, OperationKind,
    WireError, FORMAT_VERSION,
};
use serde_json::{json, Map, Value};

/// The default `hash_size` (2^20), which the golden counter keys use.
const HASH_SIZE: u64 = 1 << 20;

/// Valid golden messages.
const VALID: &[&str] = &[
    "create.json",
    "update.json",
    "destroy.json",
    "noop.json",
    "baseline.json",
    "polymorphic.json",
    "embedded.json",
    "ephemeral.json",
    "read-dependencies.json",
    "transaction.json",
    "unknown-fields.json",
];

/// How `Message::decode` must reject an invalid golden file.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// `WireError::Malformed` whose reason contains the text.
    Malformed(&'static str),
    /// `WireError::UnsupportedFormat` with this `found`.
    Unsupported(u64),
    /// `WireError::Invalid` on this field, whose reason contains the text.
    Invalid(&'static str, &'static str),
}

/// Every file of `docs/golden/invalid/`: the expected error, and whether the
/// JSON Schema rejects it too.
const INVALID: &[(&str, Expect, bool)] = &[
    // Not JSON: the schema only applies to JSON documents.
    (
        "not-json.txt",
        Expect::Malformed("expected value at line 1 column 1"),
        false,
    ),
    ("wrong-format-version.json", Expect::Unsupported(2), true),
    (
        "missing-format.json",
        Expect::Invalid("format", "missing"),
        true,
    ),
    (
        "no-operations.json",
        Expect::Invalid("operations", "at least one"),
        true,
    ),
    (
        "bad-endpoint.json",
        Expect::Invalid("operations[0].endpoint", "must be `app/model`"),
        true,
    ),
    (
        "empty-types.json",
        Expect::Invalid("operations[1].types", "at least one non-empty type name"),
        true,
    ),
    (
        "bad-id.json",
        Expect::Invalid("operations[0].id", "string or an integer"),
        true,
    ),
    (
        "null-id-on-update.json",
        Expect::Invalid(
            "operations[0].id",
            "null only for an ephemeral: create or noop",
        ),
        true,
    ),
    (
        "missing-attributes-on-create.json",
        Expect::Invalid("operations[0].attributes", "required for create"),
        true,
    ),
    // serde names the bad value and its position, not the field path.
    (
        "unknown-operation.json",
        Expect::Malformed(
            "unknown variant `upsert`, expected one of `create`, `update`, `destroy`, `noop`",
        ),
        true,
    ),
    (
        "zero-write-version.json",
        Expect::Invalid("operations[0].dependencies.write", "must be at least 1"),
        true,
    ),
    (
        "empty-key.json",
        Expect::Invalid("operations[0].dependencies.read", "key must not be empty"),
        true,
    ),
    (
        "empty-app.json",
        Expect::Invalid("app", "must not be empty"),
        true,
    ),
    // serde names the bad value and its position, not the field path.
    (
        "wrong-type.json",
        Expect::Malformed("invalid type: string \"2024-06-10T06:13:20Z\", expected u64 at line 5"),
        true,
    ),
];

fn docs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs")
}

fn golden_path(name: &str) -> PathBuf {
    docs().join("golden").join(name)
}

fn invalid_path(name: &str) -> PathBuf {
    docs().join("golden").join("invalid").join(name)
}

fn read(path: &Path) -> Vec<u8> {
    fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn json_of(path: &Path) -> Value {
    serde_json::from_slice(&read(path))
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

fn decode(path: &Path) -> Message {
    Message::decode(&read(path))
        .unwrap_or_else(|e| panic!("{} does not decode: {e}", path.display()))
}

/// Errors quote the first 200 bytes of the payload, with `…` when there is more.
fn assert_excerpt(name: &str, payload: &[u8], excerpt: &str) {
    let quoted = excerpt.strip_suffix('…').unwrap_or(excerpt);
    assert!(
        payload.starts_with(quoted.as_bytes()),
        "{name}: excerpt {excerpt:?}"
    );
    assert_eq!(
        quoted.len(),
        payload.len().min(200),
        "{name}: excerpt {excerpt:?}"
    );
    assert_eq!(
        excerpt.ends_with('…'),
        payload.len() > 200,
        "{name}: excerpt {excerpt:?}"
    );
}

fn schema() -> jsonschema::Validator {
    let schema = json_of(&docs().join("wire-format.schema.json"));
    jsonschema::validator_for(&schema)
        .unwrap_or_else(|e| panic!("the JSON Schema is not valid: {e}"))
}

fn schema_errors(validator: &jsonschema::Validator, instance: &Value) -> Vec<String> {
    validator
        .iter_errors(instance)
        .map(|e| format!("{}: {e}", e.instance_path))
        .collect()
}

/// The golden JSON without the fields format v1 does not know, i.e. what a
/// decoder keeps and an encoder writes back. `attributes` are data, kept whole.
fn known_fields(message: &Value) -> Value {
    fn keep(value: &Value, fields: &[&str]) -> Map<String, Value> {
        value
            .as_object()
            .expect("an object")
            .iter()
            .filter(|(k, _)| fields.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
    fn dependency(value: &Value) -> Value {
        Value::Object(keep(value, &["key", "version"]))
    }
    let mut envelope = keep(
        message,
        &[
            "format",
            "app",
            "generation",
            "epoch",
            "timestamp",
            "host",
            "operations",
        ],
    );
    let operations = envelope["operations"]
        .as_array()
        .expect("operations")
        .clone();
    let operations = operations.iter().map(|op| {
        let mut op = keep(
            op,
            &[
                "operation",
                "endpoint",
                "types",
                "id",
                "attributes",
                "dependencies",
                "sync",
            ],
        );
        if let Some(deps) = op.get("dependencies") {
            let mut deps = keep(deps, &["write", "read", "endpoint"]);
            for list in ["write", "read"] {
                if let Some(Value::Array(items)) = deps.get(list) {
                    let items = items.iter().map(dependency).collect();
                    deps.insert(list.into(), Value::Array(items));
                }
            }
            if let Some(endpoint) = deps.get("endpoint").filter(|e| e.is_object()) {
                let endpoint = dependency(endpoint);
                deps.insert("endpoint".into(), endpoint);
            }
            op.insert("dependencies".into(), Value::Object(deps));
        }
        Value::Object(op)
    });
    envelope.insert("operations".into(), operations.collect());
    Value::Object(envelope)
}

// ---------------------------------------------------------------------------
// The expected messages, written out in Rust.

fn attributes(value: Value) -> Option<Map<String, Value>> {
    match value {
        Value::Object(map) => Some(map),
        other => panic!("attributes must be an object, not {other}"),
    }
}

fn dependencies(own: (&str, u64), endpoint: (&str, u64)) -> Dependencies {
    Dependencies {
        write: vec![Dependency::new(own.0, own.1)],
        read: Vec::new(),
        endpoint: Some(Dependency::new(endpoint.0, endpoint.1)),
    }
}

fn envelope(
    app: &str,
    generation: u64,
    timestamp: u64,
    host: &str,
    operations: Vec<Operation>,
) -> Message {
    Message {
        format: FORMAT_VERSION,
        app: app.into(),
        generation,
        epoch: 0,
        timestamp,
        host: Some(host.into()),
        id: None,
        operations,
    }
}

fn user(
    operation: OperationKind,
    version: u64,
    endpoint_version: u64,
    attrs: Option<Value>,
) -> Operation {
    Operation {
        operation,
        endpoint: "crowdtap/user".into(),
        types: vec!["User".into()],
        id: json!(42),
        attributes: attrs.and_then(attributes),
        dependencies: dependencies(
            ("crowdtap/user#102947", version),
            ("crowdtap/user", endpoint_version),
        ),
        sync: false,
    }
}

fn ada_king() -> Value {
    json!({"display_name": "Ada K.", "email": "ada@analytical.example", "name": "Ada King"})
}

fn comment(operation: OperationKind, version: u64, endpoint_version: u64, body: &str) -> Operation {
    Operation {
        operation,
        endpoint: "crowdtap/comment".into(),
        types: vec!["Comment".into()],
        id: json!(9),
        attributes: attributes(json!({"author_id": 42, "body": body})),
        dependencies: dependencies(
            ("crowdtap/comment#108692", version),
            ("crowdtap/comment", endpoint_version),
        ),
        sync: false,
    }
}

fn expected(name: &str) -> Message {
    match name {
        "create.json" => envelope(
            "crowdtap",
            0,
            1_718_000_000_000,
            "web-1",
            vec![user(
                OperationKind::Create,
                1,
                17,
                // `display_name` is a virtual attribute: a method's value.
                Some(
                    json!({"display_name": "Ada L.", "email": "ada@example.com", "name": "Ada Lovelace"}),
                ),
            )],
        ),
        "update.json" => envelope(
            "crowdtap",
            0,
            1_718_000_005_000,
            "web-2",
            vec![user(OperationKind::Update, 2, 18, Some(ada_king()))],
        ),
        "destroy.json" => envelope(
            "crowdtap",
            0,
            1_718_000_016_000,
            "web-1",
            vec![user(OperationKind::Destroy, 5, 23, None)],
        ),
        "noop.json" => envelope(
            "crowdtap",
            0,
            1_718_000_007_000,
            "web-2",
            vec![Operation {
                id: json!(43),
                dependencies: dependencies(("crowdtap/user#102512", 1), ("crowdtap/user", 19)),
                ..user(OperationKind::Noop, 1, 19, None)
            }],
        ),
        "baseline.json" => Message {
            epoch: 1_780_000_000_000_000,
            ..envelope(
                "crowdtap",
                0,
                1_718_000_011_000,
                "worker-1",
                vec![Operation {
                    operation: OperationKind::Baseline,
                    endpoint: "crowdtap/user".into(),
                    types: vec!["User".into()],
                    id: Value::Null,
                    attributes: None,
                    dependencies: Dependencies {
                        write: vec![
                            Dependency::new("crowdtap/user#102512", 3),
                            Dependency::new("crowdtap/user#102947", 7),
                        ],
                        read: Vec::new(),
                        endpoint: Some(Dependency::new("crowdtap/user", 40)),
                    },
                    sync: true,
                }],
            )
        },
        "polymorphic.json" => envelope(
            "crowdtap",
            0,
            1_718_000_008_000,
            "web-1",
            vec![Operation {
                operation: OperationKind::Create,
                endpoint: "crowdtap/user".into(),
                types: vec!["Member".into(), "User".into()],
                id: json!("5f2b8c0e9d1a4b3c2e1f0a9b"),
                attributes: attributes(json!({
                    "display_name": "Grace H.",
                    "email": "grace@example.com",
                    "name": "Grace Hopper",
                    "plan": "gold",
                })),
                dependencies: dependencies(("crowdtap/user#218081", 1), ("crowdtap/user", 20)),
                sync: false,
            }],
        ),
        "embedded.json" => envelope(
            "shop",
            3,
            1_718_000_010_000,
            "checkout-7",
            vec![Operation {
                operation: OperationKind::Update,
                endpoint: "shop/order".into(),
                types: vec!["Order".into()],
                id: json!(7001),
                attributes: attributes(json!({
                    "billing_address": null,
                    "lines": [
                        {"types": ["OrderLine"], "id": 1, "attributes": {"quantity": 2, "sku": "TEA-01"}},
                        {
                            "types": ["GiftLine", "OrderLine"],
                            "id": 2,
                            "attributes": {"message": "Happy birthday!", "quantity": 1, "sku": "MUG-07"},
                        },
                    ],
                    "number": "A-7001",
                    "shipping_address": {
                        "types": ["Address"],
                        "id": "addr-9",
                        "attributes": {"city": "Lyon", "street": "12 rue de la Paix"},
                    },
                })),
                dependencies: dependencies(("shop/order#1017269", 4), ("shop/order", 96)),
                sync: false,
            }],
        ),
        "ephemeral.json" => envelope(
            "crowdtap",
            0,
            1_718_000_011_000,
            "web-3",
            vec![Operation {
                operation: OperationKind::Create,
                endpoint: "crowdtap/page_view".into(),
                types: vec!["PageView".into()],
                id: Value::Null,
                attributes: attributes(json!({"path": "/signup", "user_id": 42})),
                // Without an id there is no record counter: the endpoint's is the own one.
                dependencies: dependencies(
                    ("crowdtap/page_view", 311),
                    ("crowdtap/page_view", 311),
                ),
                sync: false,
            }],
        ),
        "read-dependencies.json" => {
            let mut op = comment(OperationKind::Create, 1, 5, "Nice engine!");
            op.dependencies.read = vec![Dependency::new("crowdtap/user#102947", 2)];
            envelope("crowdtap", 0, 1_718_000_012_000, "worker-1", vec![op])
        }
        "transaction.json" => envelope(
            "crowdtap",
            0,
            1_718_000_013_000,
            "worker-1",
            vec![
                user(OperationKind::Update, 3, 21, Some(ada_king())),
                comment(OperationKind::Update, 2, 6, "Nice engine, Ada!"),
            ],
        ),
        "unknown-fields.json" => {
            let mut op = user(OperationKind::Update, 4, 22, Some(ada_king()));
            op.dependencies.read = vec![Dependency::new("crowdtap/company#104342", 12)];
            envelope("crowdtap", 0, 1_718_000_014_000, "web-9", vec![op])
        }
        other => panic!("no expected message for {other}"),
    }
}

// ---------------------------------------------------------------------------

#[test]
fn the_golden_folder_holds_exactly_the_tested_files() {
    let list = |dir: PathBuf| -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
            .map(|entry| entry.expect("a directory entry"))
            .filter(|entry| entry.file_type().is_ok_and(|t| t.is_file()))
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .filter(|name| name != "README.md")
            .collect();
        names.sort();
        names
    };
    let mut valid: Vec<String> = VALID.iter().map(|s| s.to_string()).collect();
    valid.sort();
    assert_eq!(
        list(docs().join("golden")),
        valid,
        "docs/golden/ and VALID differ"
    );
    let mut invalid: Vec<String> = INVALID.iter().map(|(s, _, _)| s.to_string()).collect();
    invalid.sort();
    assert_eq!(
        list(docs().join("golden").join("invalid")),
        invalid,
        "docs/golden/invalid/ and INVALID differ"
    );
    assert!(docs().join("golden").join("README.md").is_file());
}

#[test]
fn golden_messages_decode_to_the_expected_messages_and_encode_back() {
    for name in VALID {
        let path = golden_path(name);
        let golden = json_of(&path);
        let want = expected(name);
        // Golden → Message.
        assert_eq!(decode(&path), want, "{name}: decoded message");
        // Message → golden (without the unknown fields, which are not kept).
        let encoded: Value = serde_json::from_slice(&want.encode()).expect("encode writes JSON");
        assert_eq!(encoded, known_fields(&golden), "{name}: encoded message");
        assert_eq!(
            serde_json::to_value(&want).expect("serialises"),
            encoded,
            "{name}"
        );
        if *name != "unknown-fields.json" {
            assert_eq!(
                known_fields(&golden),
                golden,
                "{name} must hold only v1 fields"
            );
        }
    }
}

#[test]
fn golden_messages_round_trip_through_encode_and_decode() {
    for name in VALID {
        let path = golden_path(name);
        let decoded = decode(&path);
        let encoded = decoded.encode();
        let again = Message::decode(&encoded)
            .unwrap_or_else(|e| panic!("{name}: re-encoded message does not decode: {e}"));
        assert_eq!(again, decoded, "{name}");
        assert_eq!(again.encode(), encoded, "{name}: encoding is stable");
        let encoded: Value = serde_json::from_slice(&encoded).expect("JSON");
        assert_eq!(encoded, known_fields(&json_of(&path)), "{name}");
    }
}

#[test]
fn unknown_fields_are_present_at_every_level_and_ignored() {
    let golden = json_of(&golden_path("unknown-fields.json"));
    let extra = |value: &Value, known: &[&str]| {
        value
            .as_object()
            .expect("an object")
            .keys()
            .any(|k| !known.contains(&k.as_str()))
    };
    let op = &golden["operations"][0];
    let deps = &op["dependencies"];
    assert!(extra(
        &golden,
        &[
            "format",
            "app",
            "generation",
            "epoch",
            "timestamp",
            "host",
            "operations"
        ]
    ));
    assert!(extra(
        op,
        &[
            "operation",
            "endpoint",
            "types",
            "id",
            "attributes",
            "dependencies",
            "sync"
        ]
    ));
    assert!(extra(deps, &["write", "read", "endpoint"]));
    for dep in [&deps["write"][0], &deps["read"][0], &deps["endpoint"]] {
        assert!(extra(dep, &["key", "version"]), "{dep}");
    }
    assert_eq!(
        decode(&golden_path("unknown-fields.json")),
        expected("unknown-fields.json")
    );
}

#[test]
fn golden_messages_satisfy_the_json_schema() {
    let validator = schema();
    for name in VALID {
        let golden = json_of(&golden_path(name));
        let errors = schema_errors(&validator, &golden);
        assert!(errors.is_empty(), "{name} breaks the schema: {errors:#?}");
    }
}

#[test]
fn the_schema_declares_draft_2020_12_and_has_no_remote_refs() {
    let schema = json_of(&docs().join("wire-format.schema.json"));
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    fn refs(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("$ref", Value::String(r)) => out.push(r.clone()),
                        _ => refs(v, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    refs(&schema, &mut found);
    assert!(!found.is_empty());
    for r in found {
        assert!(r.starts_with("#/$defs/"), "remote or unexpected $ref {r}");
    }
}

#[test]
fn invalid_messages_are_rejected_with_the_field_that_breaks_the_rule() {
    let validator = schema();
    for &(name, expect, schema_rejects) in INVALID {
        let path = invalid_path(name);
        let payload = read(&path);
        let error = Message::decode(&payload).expect_err(name);
        let text = error.to_string();
        match (expect, &error) {
            (Expect::Malformed(reason_part), WireError::Malformed { reason, excerpt }) => {
                assert!(reason.contains(reason_part), "{name}: reason {reason:?}");
                assert_excerpt(name, &payload, excerpt);
            }
            (
                Expect::Unsupported(want),
                WireError::UnsupportedFormat {
                    found, supported, ..
                },
            ) => {
                assert_eq!((*found, *supported), (want, FORMAT_VERSION), "{name}");
                assert!(
                    text.contains(&format!("unsupported wire format {want}")),
                    "{name}: {text}"
                );
            }
            (
                Expect::Invalid(want_field, reason_part),
                WireError::Invalid {
                    field,
                    reason,
                    excerpt,
                },
            ) => {
                assert_eq!(field, want_field, "{name}: {text}");
                assert!(reason.contains(reason_part), "{name}: reason {reason:?}");
                assert!(text.contains(want_field), "{name}: {text}");
                assert_excerpt(name, &payload, excerpt);
            }
            (want, got) => panic!("{name}: expected {want:?}, got {got:?}"),
        }
        if name.ends_with(".json") {
            let instance = json_of(&path);
            assert_eq!(
                !validator.is_valid(&instance),
                schema_rejects,
                "{name}: the schema should {} it",
                if schema_rejects { "reject" } else { "accept" }
            );
        }
    }
}

/// Messages beyond the golden files where decode and schema must agree, or
/// where (commented) the schema cannot say what decode does.
#[test]
fn decode_and_schema_agree_on_edge_cases() {
    let validator = schema();
    let base = json_of(&golden_path("create.json"));
    let with = |edit: &dyn Fn(&mut Value)| {
        let mut message = base.clone();
        edit(&mut message);
        message
    };
    let op = |field: &'static str, value: Value| {
        move |m: &mut Value| {
            m["operations"][0][field] = value.clone();
        }
    };
    // (case, message, decode accepts, schema accepts)
    let cases: Vec<(&str, Value, bool, bool)> = vec![
        ("string id", with(&op("id", json!("42"))), true, true),
        ("negative id", with(&op("id", json!(-7))), true, true),
        (
            "largest u64 id",
            with(&op("id", json!(u64::MAX))),
            true,
            true,
        ),
        (
            "object id",
            with(&op("id", json!({"oid": "x"}))),
            false,
            false,
        ),
        ("boolean id", with(&op("id", json!(true))), false, false),
        ("array id", with(&op("id", json!([42]))), false, false),
        // JSON Schema counts 42.0 as an integer; decode refuses a number with a fraction part.
        ("id 42.0", with(&op("id", json!(42.0))), false, true),
        (
            "null id on destroy",
            with(&|m: &mut Value| {
                m["operations"][0]["operation"] = json!("destroy");
                m["operations"][0]["id"] = Value::Null;
            }),
            false,
            false,
        ),
        (
            "null id on noop (the noop of a failed ephemeral create)",
            with(&|m: &mut Value| {
                m["operations"][0]["operation"] = json!("noop");
                m["operations"][0]["id"] = Value::Null;
            }),
            true,
            true,
        ),
        (
            "empty type name",
            with(&op("types", json!(["Member", ""]))),
            false,
            false,
        ),
        (
            "types not an array",
            with(&op("types", json!("User"))),
            false,
            false,
        ),
        (
            "attributes null on create",
            with(&op("attributes", Value::Null)),
            false,
            false,
        ),
        (
            "attributes not an object",
            with(&op("attributes", json!([1]))),
            false,
            false,
        ),
        (
            "attributes on destroy",
            with(&op("operation", json!("destroy"))),
            true,
            true,
        ),
        (
            "null attributes on noop",
            with(&|m: &mut Value| {
                m["operations"][0]["operation"] = json!("noop");
                m["operations"][0]["attributes"] = Value::Null;
            }),
            true,
            true,
        ),
        (
            "no dependencies",
            with(&|m: &mut Value| {
                m["operations"][0]
                    .as_object_mut()
                    .unwrap()
                    .remove("dependencies");
            }),
            true,
            true,
        ),
        (
            "empty dependencies",
            with(&op("dependencies", json!({}))),
            true,
            true,
        ),
        (
            "null dependencies",
            with(&op("dependencies", Value::Null)),
            false,
            false,
        ),
        (
            "null write list",
            with(&op("dependencies", json!({"write": null}))),
            false,
            false,
        ),
        (
            "null endpoint dependency",
            with(&op("dependencies", json!({"endpoint": null}))),
            true,
            true,
        ),
        (
            "read version 0",
            with(&op(
                "dependencies",
                json!({"read": [{"key": "a/b#1", "version": 0}]}),
            )),
            true,
            true,
        ),
        (
            "endpoint version 0",
            with(&op(
                "dependencies",
                json!({"endpoint": {"key": "a/b", "version": 0}}),
            )),
            false,
            false,
        ),
        (
            "negative version",
            with(&op(
                "dependencies",
                json!({"read": [{"key": "a/b#1", "version": -1}]}),
            )),
            false,
            false,
        ),
        // JSON Schema counts 1.0 as an integer; serde refuses it for a u64.
        (
            "version 1.0",
            with(&op(
                "dependencies",
                json!({"write": [{"key": "a/b#1", "version": 1.0}]}),
            )),
            false,
            true,
        ),
        (
            "dependency without key",
            with(&op("dependencies", json!({"write": [{"version": 1}]}))),
            false,
            false,
        ),
        (
            "endpoint with a dash",
            with(&op("endpoint", json!("my-app/user_group"))),
            true,
            true,
        ),
        (
            "endpoint with a pattern",
            with(&op("endpoint", json!("*/user"))),
            false,
            false,
        ),
        (
            "endpoint with 3 parts",
            with(&op("endpoint", json!("a/b/c"))),
            false,
            false,
        ),
        (
            "endpoint with a newline",
            with(&op("endpoint", json!("a/b\n"))),
            false,
            false,
        ),
        (
            "endpoint non-ASCII",
            with(&op("endpoint", json!("café/user"))),
            false,
            false,
        ),
        (
            "null host",
            with(&|m: &mut Value| m["host"] = Value::Null),
            true,
            true,
        ),
        (
            "no host",
            with(&|m: &mut Value| {
                m.as_object_mut().unwrap().remove("host");
            }),
            true,
            true,
        ),
        (
            "host not a string",
            with(&|m: &mut Value| m["host"] = json!(7)),
            false,
            false,
        ),
        (
            "format as a string",
            with(&|m: &mut Value| m["format"] = json!("1")),
            false,
            false,
        ),
        (
            "format null",
            with(&|m: &mut Value| m["format"] = Value::Null),
            false,
            false,
        ),
        (
            "format 0",
            with(&|m: &mut Value| m["format"] = json!(0)),
            false,
            false,
        ),
        (
            "negative format",
            with(&|m: &mut Value| m["format"] = json!(-1)),
            false,
            false,
        ),
        // JSON Schema counts 1.0 as the integer 1; decode wants the integer literal.
        (
            "format 1.0",
            with(&|m: &mut Value| m["format"] = json!(1.0)),
            false,
            true,
        ),
        (
            "negative generation",
            with(&|m: &mut Value| m["generation"] = json!(-1)),
            false,
            false,
        ),
        (
            "missing timestamp",
            with(&|m: &mut Value| {
                m.as_object_mut().unwrap().remove("timestamp");
            }),
            false,
            false,
        ),
        (
            "missing operation kind",
            with(&|m: &mut Value| {
                m["operations"][0]
                    .as_object_mut()
                    .unwrap()
                    .remove("operation");
            }),
            false,
            false,
        ),
        (
            "missing id",
            with(&|m: &mut Value| {
                m["operations"][0].as_object_mut().unwrap().remove("id");
            }),
            false,
            false,
        ),
        (
            "missing types",
            with(&|m: &mut Value| {
                m["operations"][0].as_object_mut().unwrap().remove("types");
            }),
            false,
            false,
        ),
        (
            "operation kind in capitals",
            with(&op("operation", json!("Create"))),
            false,
            false,
        ),
        ("message not an object", json!("hello"), false, false),
    ];
    for (case, message, decodes, validates) in cases {
        let payload = serde_json::to_vec(&message).expect("JSON");
        let decoded = Message::decode(&payload);
        assert_eq!(decoded.is_ok(), decodes, "{case}: decode gave {decoded:?}");
        assert_eq!(
            validator.is_valid(&message),
            validates,
            "{case}: schema errors {:#?}",
            schema_errors(&validator, &message)
        );
    }
}

#[test]
fn format_errors_say_what_was_found() {
    let message = |format: Value| {
        let mut m = json_of(&golden_path("create.json"));
        m["format"] = format;
        serde_json::to_vec(&m).expect("JSON")
    };
    match Message::decode(&message(json!(0))) {
        Err(WireError::UnsupportedFormat {
            found: 0,
            supported: 1,
            ..
        }) => {}
        other => panic!("format 0: {other:?}"),
    }
    // The format is checked before the rest: a future format may change anything else.
    let future = br#"{"format": 2, "operations": "v2 knows"}"#;
    match Message::decode(future) {
        Err(WireError::UnsupportedFormat { found: 2, .. }) => {}
        other => panic!("format 2: {other:?}"),
    }
    for bad in [json!("1"), json!(1.0), json!(-1), Value::Null] {
        match Message::decode(&message(bad.clone())) {
            Err(WireError::Invalid { field, .. }) if field == "format" => {}
            other => panic!("format {bad}: {other:?}"),
        }
    }
}

#[test]
fn decode_never_panics_on_truncated_golden_files() {
    let mut files: Vec<PathBuf> = VALID.iter().map(|n| golden_path(n)).collect();
    files.extend(INVALID.iter().map(|(n, _, _)| invalid_path(n)));
    for path in files {
        let payload = read(&path);
        let complete = payload.trim_ascii_end().len();
        for end in 0..=payload.len() {
            let prefix = &payload[..end];
            let result = std::panic::catch_unwind(|| Message::decode(prefix));
            let result = result.unwrap_or_else(|_| {
                panic!(
                    "decode panicked on the first {end} bytes of {}",
                    path.display()
                )
            });
            // A JSON document cut short is never valid JSON.
            if end < complete && path.extension().is_some_and(|e| e == "json") {
                assert!(
                    matches!(result, Err(WireError::Malformed { .. })),
                    "{} cut at {end}: {result:?}",
                    path.display()
                );
            }
        }
    }
}

#[test]
fn counter_keys_follow_the_naming_rule() {
    // FNV-1a 64 reference values: offset basis, and the texts hashed in the examples.
    assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(fnv1a64(b"42"), 0x07ee_7e07_b4b1_9223);
    assert_eq!(fnv1a64(b"\"42\""), 0xe04a_6385_212d_e2f3);
    assert_eq!(fnv1a64(b"42") % HASH_SIZE, 102_947);
    // The id's compact JSON text: integers in decimal, strings quoted and escaped as JSON.
    assert_eq!(id_json(&json!(42)), "42");
    assert_eq!(id_json(&json!(-7)), "-7");
    assert_eq!(id_json(&json!("42")), "\"42\"");
    assert_eq!(
        id_json(&json!("a\"b\\c/é\n\u{1}")),
        "\"a\\\"b\\\\c/é\\n\\u0001\""
    );
    assert_eq!(
        object_counter("crowdtap/user", &json!(42), HASH_SIZE),
        "crowdtap/user#102947"
    );
    assert_eq!(
        object_counter("crowdtap/user", &json!("42"), HASH_SIZE),
        "crowdtap/user#910067"
    );

    for name in VALID {
        for op in decode(&golden_path(name)).operations {
            let deps = &op.dependencies;
            let own = op
                .own_version()
                .expect("golden operations have a write dependency");
            let endpoint = deps
                .endpoint
                .as_ref()
                .expect("golden operations have an endpoint dependency");
            assert_eq!(endpoint.key, op.endpoint, "{name}");
            if op.operation == OperationKind::Baseline {
                // A baseline lists counters of its endpoint, not its own.
                assert!(
                    deps.write
                        .iter()
                        .all(|dep| dep.key.starts_with(&format!("{}#", op.endpoint))),
                    "{name}"
                );
            } else if op.id.is_null() {
                assert_eq!(
                    own, endpoint,
                    "{name}: an ephemeral's own counter is the endpoint's"
                );
            } else {
                assert_eq!(
                    own.key,
                    object_counter(&op.endpoint, &op.id, HASH_SIZE),
                    "{name}"
                );
            }
        }
    }
}

#[test]
fn subscribers_route_by_endpoint_pattern_and_type_chain() {
    let message = decode(&golden_path("polymorphic.json"));
    let op = &message.operations[0];
    let endpoint = Endpoint::parse(&op.endpoint).expect("endpoint");
    for (pattern, matches) in [
        ("*/user", true),
        ("crowdtap/*", true),
        ("*/*", true),
        ("*/member", false),
    ] {
        let pattern = EndpointPattern::parse(pattern).expect("pattern");
        assert_eq!(pattern.matches(&endpoint), matches, "{pattern}");
    }
    assert_eq!(op.types, ["Member", "User"], "most derived first");
}

/// Every JSON example of `docs/wire-format.md` preceded by
/// `<!-- golden: NAME -->` is the golden file NAME.
#[test]
fn the_specification_quotes_the_golden_files() {
    let spec = fs::read_to_string(docs().join("wire-format.md")).expect("docs/wire-format.md");
    let marker = "<!-- golden: ";
    let mut quoted = Vec::new();
    let mut rest = spec.as_str();
    while let Some(at) = rest.find(marker) {
        rest = &rest[at + marker.len()..];
        let end = rest.find(" -->").expect("marker end");
        let name = rest[..end].to_owned();
        let block = rest
            .find("```json\n")
            .expect("a ```json block after the marker")
            + "```json\n".len();
        let block_end = block + rest[block..].find("\n```").expect("end of the code block");
        let example: Value = serde_json::from_str(&rest[block..block_end])
            .unwrap_or_else(|e| panic!("the example of {name} is not JSON: {e}"));
        let path = if name.starts_with("invalid/") {
            docs().join("golden").join(&name)
        } else {
            golden_path(&name)
        };
        assert_eq!(
            example,
            json_of(&path),
            "the example of {name} differs from the golden file"
        );
        quoted.push(name);
        rest = &rest[block_end..];
    }
    for name in [
        "create.json",
        "update.json",
        "destroy.json",
        "noop.json",
        "polymorphic.json",
        "embedded.json",
        "ephemeral.json",
    ] {
        assert!(
            quoted.iter().any(|q| q == name),
            "the specification does not quote {name}"
        );
    }
}

#[test]
fn decode_limits_are_as_documented() {
    // Nesting: at most 127 arrays/objects deep, the envelope included.
    let nested = |depth: usize| {
        // envelope, operations, operation, attributes: 4 levels, then `depth - 4` arrays.
        let inner = depth - 4;
        format!(
            r#"{{"format":1,"app":"a","generation":0,"timestamp":0,"operations":[{{"operation":"create","endpoint":"a/b","types":["B"],"id":1,"attributes":{{"x":{}{}}}}}]}}"#,
            "[".repeat(inner),
            "]".repeat(inner)
        )
    };
    assert!(Message::decode(nested(127).as_bytes()).is_ok());
    assert!(matches!(
        Message::decode(nested(128).as_bytes()),
        Err(WireError::Malformed { .. })
    ));
    // A byte order mark is not JSON.
    assert!(matches!(
        Message::decode(b"\xef\xbb\xbf{\"format\":1}"),
        Err(WireError::Malformed { .. })
    ));
    // Text that is not UTF-8.
    let mut latin1 = read(&golden_path("create.json"));
    let at = latin1.windows(3).position(|w| w == b"Ada").expect("a name");
    latin1[at] = 0xC0;
    assert!(matches!(
        Message::decode(&latin1),
        Err(WireError::Malformed { .. })
    ));
    // Integers beyond 64 bits are not integers for the decoder.
    let huge = br#"{"format":1,"app":"a","generation":0,"timestamp":0,"operations":[{"operation":"destroy","endpoint":"a/b","types":["B"],"id":18446744073709551616}]}"#;
    assert!(
        matches!(Message::decode(huge), Err(WireError::Invalid { field, .. }) if field == "operations[0].id")
    );
    // Duplicate fields are refused.
    let duplicate =
        br#"{"format":1,"app":"a","app":"b","generation":0,"timestamp":0,"operations":[]}"#;
    assert!(
        matches!(Message::decode(duplicate), Err(WireError::Malformed { reason, .. }) if reason.contains("duplicate field `app`"))
    );
    // Trailing data after the message is refused.
    let mut trailing = read(&golden_path("create.json"));
    trailing.extend_from_slice(b"{}");
    assert!(matches!(
        Message::decode(&trailing),
        Err(WireError::Malformed { .. })
    ));
    // A message is an object; other JSON values are refused. (serde reads a
    // struct from an array too, so `[2]` is refused as UnsupportedFormat and
    // `[1]` as Malformed: refused either way.)
    for other in [&b"\"hello\""[..], b"42", b"null", b"[1]", b"{}"] {
        assert!(
            Message::decode(other).is_err(),
            "{}",
            String::from_utf8_lossy(other)
        );
    }
}
