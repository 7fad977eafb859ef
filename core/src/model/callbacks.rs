//! Callbacks run by the subscriber around each applied operation.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde_json::Value;

use crate::error::BoxError;
use crate::wire::{Dependencies, OperationKind};

/// One attribute's change: its value before and after the operation.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The value before; `None` when the record did not exist (or on an observer).
    pub previous: Option<Value>,
    /// The value after; `None` on destroy.
    pub current: Option<Value>,
}

/// The subscribed attributes an operation changed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Changes {
    changes: BTreeMap<String, Change>,
}

impl Changes {
    /// Records a change; values that did not change are not recorded.
    pub fn record(&mut self, name: &str, previous: Option<Value>, current: Option<Value>) {
        if previous != current {
            self.changes
                .insert(name.to_owned(), Change { previous, current });
        }
    }

    /// Whether the attribute changed.
    pub fn changed(&self, name: &str) -> bool {
        self.changes.contains_key(name)
    }

    /// The change of one attribute, if it changed.
    pub fn get(&self, name: &str) -> Option<&Change> {
        self.changes.get(name)
    }

    /// The value before the operation, if the attribute changed and had one.
    pub fn previous(&self, name: &str) -> Option<&Value> {
        self.changes.get(name).and_then(|c| c.previous.as_ref())
    }

    /// Names of the changed attributes, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.changes.keys().map(String::as_str)
    }

    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// How many attributes changed.
    pub fn len(&self) -> usize {
        self.changes.len()
    }
}

/// What a callback knows about the operation being applied.
#[derive(Debug, Clone)]
pub struct Context {
    /// The operation received (an update of a missing record arrives here as `Update`
    /// but runs the create callbacks).
    pub operation: OperationKind,
    /// The publishing app.
    pub app: String,
    /// The endpoint the operation came from.
    pub endpoint: String,
    /// The published type chain, most derived first.
    pub types: Vec<String>,
    /// The record id as published.
    pub id: Value,
    /// The subscribed attributes that changed, with their previous values.
    pub changes: Changes,
    /// The id of the publication that produced the message: the same for
    /// every copy of it (`None` from publishers that do not send one).
    pub message_id: Option<String>,
    /// When the publisher published the message (milliseconds since the
    /// Unix epoch, the publisher's clock).
    pub published_at: u64,
    /// The versions that order the operation.
    pub versions: Dependencies,
    /// The operation republishes the record's current state (an initial
    /// sync): a `create` callback may then see a record that existed long
    /// before (skip welcome mails and the like when it is set).
    pub sync: bool,
}

/// Hooks around create, update and destroy on the subscriber side.
///
/// Every method has an empty default. `before_*` may change the model before it
/// is stored, or fail to refuse the operation (the message is retried).
///
/// `before_*` and `after_*` run while the operation is applied, inside the
/// storage's transaction when it has them: they run again when the message
/// is retried (after a failure, or a crash before the commit), and may have
/// run for a change that was then rolled back. Make them idempotent.
/// [`after_commit`](Callbacks::after_commit) runs once the change is
/// committed, never for a change that was rolled back; it runs at most once
/// (a crash right after the commit skips it), and its failure is reported,
/// not retried. Put side effects that must not happen for a rolled-back
/// change there (sending the email), and effects that must happen in
/// `after_*` (idempotently).
#[async_trait]
#[allow(unused_variables)]
pub trait Callbacks: Send + Sync {
    /// Before a new record is stored.
    async fn before_create(&mut self, ctx: &Context) -> Result<(), BoxError> {
        Ok(())
    }
    /// After a new record was stored (or observed).
    async fn after_create(&self, ctx: &Context) -> Result<(), BoxError> {
        Ok(())
    }
    /// Before an existing record is updated.
    async fn before_update(&mut self, ctx: &Context) -> Result<(), BoxError> {
        Ok(())
    }
    /// After an existing record was updated (or observed).
    async fn after_update(&self, ctx: &Context) -> Result<(), BoxError> {
        Ok(())
    }
    /// Before a record is deleted.
    async fn before_destroy(&mut self, ctx: &Context) -> Result<(), BoxError> {
        Ok(())
    }
    /// After a record was deleted (or observed).
    async fn after_destroy(&self, ctx: &Context) -> Result<(), BoxError> {
        Ok(())
    }
    /// After the change (any operation; see `ctx.operation`) was committed
    /// to the storage (at once on a storage without transactions, and for
    /// observers).
    async fn after_commit(&self, ctx: &Context) -> Result<(), BoxError> {
        Ok(())
    }
}
