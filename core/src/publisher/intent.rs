//! What a publication records with its versions (in the clock) and on its
//! locks, so that another process can finish it if its publisher stops.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::plan::Plan;

/// How a recovery worker finishes a publication whose publisher stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum IntentKind {
    /// Its message is stored in an outbox, in the transaction of its
    /// writes: publish that entry if the transaction committed, else fence
    /// the transaction off with a `noop` entry.
    Outbox,
    /// Its writes are versioned single-record writes: fence each record at
    /// the publication's version (an absent one with a tombstone); a write
    /// that landed is published with the record as stored, one that did not
    /// becomes a `noop`.
    Versioned,
    /// Its writes cannot be fenced (a store without versioned writes, or the
    /// caller's own database): publish the records as stored now.
    Unfenced,
    /// Nothing is written (an ephemeral, a sync): publish the recorded
    /// attributes.
    Recorded,
}

/// What an intent records for one operation, for recovery.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "value")]
pub(crate) enum Recorded {
    /// Nothing: recovery reads the record's state from the storage.
    #[default]
    Nothing,
    /// The attributes to publish as they are (an ephemeral, a sync).
    Attributes(Map<String, Value>),
}

/// The intent of one publication, as recorded by the clock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct IntentData {
    /// The publishing app.
    pub app: String,
    /// Its generation.
    pub generation: u64,
    /// The epoch of the clock state its versions were taken from.
    #[serde(default)]
    pub epoch: u64,
    /// How to finish it.
    pub kind: IntentKind,
    /// The operations and counters.
    pub plan: Plan,
    /// Per operation: what recovery needs beyond the store.
    #[serde(default)]
    pub recorded: Vec<Recorded>,
    /// Publications of stopped publishers whose locks this one took over:
    /// recovering this one recovers them too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inherits: Vec<String>,
}

impl IntentData {
    /// The JSON the clock stores.
    pub fn encode(&self) -> Vec<u8> {
        // Strings, integers and JSON values only: it always serialises.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses what the clock stored.
    pub fn decode(data: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(data)
    }
}

/// The data attached to each lock of a publication: which publication holds
/// it, and in words what it does (for an operator looking at Redis).
pub(crate) fn lock_data(publication: &str, doing: &str) -> Vec<u8> {
    let mut data = Map::new();
    data.insert("publication".into(), Value::from(publication));
    data.insert("doing".into(), Value::from(doing));
    Value::Object(data).to_string().into_bytes()
}

/// The publication named in a lock's data, when there is one.
pub(crate) fn publication_of(lock_data: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(lock_data).ok()?;
    value.get("publication")?.as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_data_names_its_publication() {
        let data = lock_data("host:1:ab:7", "create User 1");
        assert_eq!(publication_of(&data).as_deref(), Some("host:1:ab:7"));
        assert_eq!(publication_of(b"{\"outbox\":true}"), None);
        assert_eq!(publication_of(b"not json"), None);
    }
}
