//! The message and operation types of wire format v1.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::error::excerpt;
use super::{Endpoint, WireError};

/// The format version this library writes and reads.
pub const FORMAT_VERSION: u64 = 1;

/// One message: the operations of one write (or one transaction) of a publisher app.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Wire format version; always [`FORMAT_VERSION`] when written by this library.
    pub format: u64,
    /// Name of the publishing application.
    pub app: String,
    /// Generation of the publisher's version counters (bumped by an operator
    /// to start counting again on purpose).
    pub generation: u64,
    /// Epoch of the clock state the versions were taken from: when it was
    /// created, in microseconds since the Unix epoch (0: not given). A clock
    /// that lost its state starts a later epoch, and versions of two epochs
    /// are never compared.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub epoch: u64,
    /// Milliseconds since the Unix epoch when the operation was published.
    pub timestamp: u64,
    /// Host name of the publishing process, for debugging.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The id of the publication that produced the message: the same for
    /// every copy of it (a republish after a crash, a relayed outbox entry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The operations, applied together by subscribers.
    pub operations: Vec<Operation>,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// What happened to a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OperationKind {
    /// The record was created.
    Create,
    /// The record was updated.
    Update,
    /// The record was destroyed.
    Destroy,
    /// Nothing happened: the write failed after its versions were taken, so
    /// subscribers only advance their counters.
    Noop,
    /// Where the publisher's counters stood when an initial sync started
    /// (`dependencies.write` lists them): a subscriber that joined since
    /// starts its counters there, since what came before is carried by the
    /// sync, not by messages it will ever receive.
    Baseline,
}

impl OperationKind {
    /// The lowercase name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            OperationKind::Create => "create",
            OperationKind::Update => "update",
            OperationKind::Destroy => "destroy",
            OperationKind::Noop => "noop",
            OperationKind::Baseline => "baseline",
        }
    }
}

/// One operation on one record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Operation {
    /// The kind of operation.
    pub operation: OperationKind,
    /// The endpoint (`app/model`) the model is published to.
    pub endpoint: String,
    /// The model's type chain, most derived first (`["Member", "User"]`).
    pub types: Vec<String>,
    /// The record id: a string or an integer (`null` for ephemerals without id).
    pub id: Value,
    /// The published attributes after the operation; absent for destroy and noop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<Map<String, Value>>,
    /// The versions that order this operation.
    #[serde(default)]
    pub dependencies: Dependencies,
    /// The operation republishes a record's current state (an initial sync)
    /// rather than reporting a change; callbacks see it in `Context::sync`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub sync: bool,
}

/// The versions an operation depends on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dependencies {
    /// Counters this operation writes: the first one is the record's own.
    /// A subscriber applies the operation once each counter is at `version - 1`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub write: Vec<Dependency>,
    /// Counters read while producing the operation: a subscriber applies it
    /// once each counter is at least `version`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub read: Vec<Dependency>,
    /// The endpoint-wide counter, which totally orders one endpoint's operations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<Dependency>,
}

/// A counter and a version of it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Dependency {
    /// The counter key, e.g. `crowdtap/user#4821`.
    pub key: String,
    /// The version: the counter's value after (write) or at (read) the operation.
    pub version: u64,
}

impl Dependency {
    /// A dependency on `key` at `version`.
    pub fn new(key: impl Into<String>, version: u64) -> Self {
        Self {
            key: key.into(),
            version,
        }
    }
}

impl Message {
    /// Records the first operation's model, id and version in `span` (the
    /// `promiscuous.publish` and `promiscuous.receive` spans), when the span
    /// is enabled: nothing is formatted for a span nobody records.
    pub(crate) fn describe_in(&self, span: &tracing::Span) {
        if span.is_disabled() {
            return;
        }
        if let Some(op) = self.operations.first() {
            span.record("model", op.types.first().map_or("", String::as_str));
            span.record("id", op.id_text().as_str());
            span.record("version", op.own_version().map_or(0, |v| v.version));
        }
    }
}

impl Operation {
    /// The record's own write dependency, when the operation has one.
    pub fn own_version(&self) -> Option<&Dependency> {
        self.dependencies.write.first()
    }

    /// The id as text, for logs and errors.
    pub fn id_text(&self) -> String {
        match &self.id {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }
}

impl Message {
    /// Serialises the message to JSON bytes.
    pub fn encode(&self) -> Vec<u8> {
        // A Message holds only strings, integers and JSON values: it always serialises.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses and validates a message; unknown fields are ignored.
    pub fn decode(payload: &[u8]) -> Result<Self, WireError> {
        #[derive(Deserialize)]
        struct Header {
            format: Option<Value>,
        }
        let header: Header = serde_json::from_slice(payload).map_err(|e| WireError::Malformed {
            reason: e.to_string(),
            excerpt: excerpt(payload),
        })?;
        match header.format {
            Some(Value::Number(n)) if n.as_u64() == Some(FORMAT_VERSION) => {}
            Some(Value::Number(n)) if n.as_u64().is_some() => {
                return Err(WireError::UnsupportedFormat {
                    found: n.as_u64().unwrap_or_default(),
                    supported: FORMAT_VERSION,
                    excerpt: excerpt(payload),
                })
            }
            _ => {
                return Err(WireError::Invalid {
                    field: "format".into(),
                    reason: "missing or not a non-negative integer".into(),
                    excerpt: excerpt(payload),
                })
            }
        }
        let message: Message =
            serde_json::from_slice(payload).map_err(|e| WireError::Malformed {
                reason: e.to_string(),
                excerpt: excerpt(payload),
            })?;
        message
            .validate()
            .map_err(|(field, reason)| WireError::Invalid {
                field,
                reason,
                excerpt: excerpt(payload),
            })?;
        Ok(message)
    }

    fn validate(&self) -> Result<(), (String, String)> {
        if self.app.is_empty() {
            return Err(("app".into(), "must not be empty".into()));
        }
        if self.operations.is_empty() {
            return Err((
                "operations".into(),
                "must hold at least one operation".into(),
            ));
        }
        for (index, op) in self.operations.iter().enumerate() {
            let at = |field: &str| format!("operations[{index}].{field}");
            Endpoint::parse(&op.endpoint).map_err(|reason| (at("endpoint"), reason))?;
            if op.types.is_empty() || op.types.iter().any(String::is_empty) {
                return Err((
                    at("types"),
                    "must list at least one non-empty type name".into(),
                ));
            }
            match &op.id {
                Value::String(_) => {}
                Value::Number(n) if n.is_i64() || n.is_u64() => {}
                Value::Null
                    if matches!(
                        op.operation,
                        OperationKind::Create | OperationKind::Noop | OperationKind::Baseline
                    ) => {}
                _ => return Err((
                    at("id"),
                    "must be a string or an integer (null only for an ephemeral: create or noop; and for a baseline)"
                        .into(),
                )),
            }
            let needs_attributes =
                matches!(op.operation, OperationKind::Create | OperationKind::Update);
            if needs_attributes && op.attributes.is_none() {
                return Err((
                    at("attributes"),
                    format!("required for {}", op.operation.as_str()),
                ));
            }
            let deps = &op.dependencies;
            for (name, dep) in deps
                .write
                .iter()
                .map(|d| ("write", d))
                .chain(deps.read.iter().map(|d| ("read", d)))
                .chain(deps.endpoint.iter().map(|d| ("endpoint", d)))
            {
                if dep.key.is_empty() {
                    return Err((
                        at(&format!("dependencies.{name}")),
                        "key must not be empty".into(),
                    ));
                }
                if name != "read" && dep.version == 0 {
                    return Err((
                        at(&format!("dependencies.{name}")),
                        format!("version of {} must be at least 1", dep.key),
                    ));
                }
            }
        }
        Ok(())
    }
}
