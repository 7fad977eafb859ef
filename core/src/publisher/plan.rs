//! The operations of one message and the counters they advance, before and
//! after their versions are taken.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::PendingWrite;
use crate::dependency::{lock_key, object_counter};
use crate::traits::Versions;
use crate::wire::{Dependencies, Dependency, Message, Operation, OperationKind, FORMAT_VERSION};

/// Pushes `item` unless already present, keeping first-seen order.
fn push_unique(list: &mut Vec<String>, item: String) {
    if !list.contains(&item) {
        list.push(item);
    }
}

/// What a message will hold and which counters it advances. Part of the
/// intent a clock records, so a recovery worker rebuilds the same message.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Plan {
    /// The operations, without attributes; dependencies once versions are taken.
    pub operations: Vec<Operation>,
    /// The publisher model of each operation (its `PublisherDef::model`).
    pub models: Vec<String>,
    /// Each operation's own counter (`endpoint#bucket`; the endpoint's for an
    /// operation without id).
    pub counters: Vec<String>,
    /// Distinct endpoints, in order: the message goes to each.
    pub endpoints: Vec<String>,
    /// The record locks, sorted.
    pub locks: Vec<String>,
    /// Counter keys to tick: endpoints, then record counters.
    pub increments: Vec<String>,
    /// Counter keys to read: the records the publication depends on.
    pub reads: Vec<String>,
}

impl Plan {
    /// The plan of `writes` for `app`; `depends_on` are the records of the
    /// causal scope (endpoint, id).
    pub fn new(
        app: &str,
        hash_size: u64,
        writes: &[PendingWrite],
        depends_on: &[(String, Value)],
    ) -> Self {
        let mut plan = Plan::default();
        for write in writes {
            let endpoint = write.definition.endpoint(app);
            push_unique(&mut plan.increments, endpoint.clone());
            let counter = if write.id.is_null() {
                endpoint.clone()
            } else {
                let lock = lock_key(&endpoint, &write.id);
                if !plan.locks.contains(&lock) {
                    plan.locks.push(lock);
                }
                let counter = object_counter(&endpoint, &write.id, hash_size);
                push_unique(&mut plan.increments, counter.clone());
                counter
            };
            push_unique(&mut plan.endpoints, endpoint.clone());
            plan.counters.push(counter);
            plan.models.push(write.definition.model.to_owned());
            plan.operations.push(Operation {
                operation: write.operation,
                endpoint,
                types: write
                    .definition
                    .types()
                    .into_iter()
                    .map(str::to_owned)
                    .collect(),
                id: write.id.clone(),
                attributes: None,
                dependencies: Dependencies::default(),
                sync: false,
            });
        }
        plan.locks.sort();
        for (endpoint, id) in depends_on {
            let key = object_counter(endpoint, id, hash_size);
            if !plan.increments.contains(&key) {
                push_unique(&mut plan.reads, key);
            }
        }
        plan
    }

    /// Fills each operation's dependencies from the versions its step took.
    pub fn fill(&mut self, versions: &Versions) {
        let ticked: BTreeMap<&str, u64> = self
            .increments
            .iter()
            .map(String::as_str)
            .zip(versions.ticked.iter().copied())
            .collect();
        let read: Vec<Dependency> = self
            .reads
            .iter()
            .zip(versions.read.iter().copied())
            .filter(|(_, version)| *version > 0)
            .map(|(key, version)| Dependency::new(key.clone(), version))
            .collect();
        for (op, counter) in self.operations.iter_mut().zip(&self.counters) {
            let version_of = |key: &str| ticked.get(key).copied().unwrap_or(1);
            let endpoint = Dependency::new(op.endpoint.clone(), version_of(&op.endpoint));
            op.dependencies = Dependencies {
                write: vec![Dependency::new(counter.clone(), version_of(counter))],
                read: read.clone(),
                endpoint: Some(endpoint),
            };
        }
    }

    /// The operations with `attributes` (one per operation, `None` for a
    /// destroy), as published.
    pub fn operations_with(&self, attributes: Vec<Option<Map<String, Value>>>) -> Vec<Operation> {
        self.operations
            .iter()
            .zip(attributes.into_iter().chain(std::iter::repeat(None)))
            .map(|(op, attributes)| Operation {
                attributes: attributes.filter(|_| op.operation != OperationKind::Destroy),
                ..op.clone()
            })
            .collect()
    }

    /// The operations turned into noops: nothing happened, the versions pass.
    pub fn noops(&self) -> Vec<Operation> {
        self.operations
            .iter()
            .map(|op| Operation {
                operation: OperationKind::Noop,
                attributes: None,
                ..op.clone()
            })
            .collect()
    }

    /// Each operation as `create User 1`, for errors and logs.
    pub fn describe(&self) -> Vec<String> {
        self.operations
            .iter()
            .zip(&self.models)
            .map(|(op, model)| format!("{} {model} {}", op.operation.as_str(), op.id))
            .collect()
    }
}

/// The message of a publication.
pub(crate) fn message(
    app: &str,
    generation: u64,
    epoch: u64,
    host: &str,
    id: &str,
    operations: Vec<Operation>,
) -> Message {
    Message {
        format: FORMAT_VERSION,
        app: app.to_owned(),
        generation,
        epoch,
        timestamp: now_ms(),
        host: Some(host.to_owned()),
        id: Some(id.to_owned()),
        operations,
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or_default()
}
