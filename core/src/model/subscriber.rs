//! Subscriber definitions.

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::callbacks::Callbacks;
use super::naming::snake_case;

/// One subscribed attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscribedAttribute {
    /// Its name on the wire and in the struct.
    pub name: &'static str,
    /// Whether it holds embedded documents (`{"types","id","attributes"}` on the wire).
    pub embedded: bool,
}

/// The static definition of a subscribed model.
#[derive(Debug)]
pub struct SubscriberDef {
    /// The Rust type name; also the model name given to the Storage.
    pub model: &'static str,
    /// The published type name this model stands for (`as`); by default `model`.
    pub as_name: &'static str,
    /// The endpoint pattern (`from`); by default `*/snake_case(root as_name)`.
    pub from: Option<&'static str>,
    /// The parent model, for polymorphism.
    pub parent: Option<fn() -> &'static SubscriberDef>,
    /// The attributes this model adds (its parent's are inherited).
    pub attributes: &'static [SubscribedAttribute],
    /// The local field that holds the publisher's id (`foreign_key`); by default `id`.
    pub foreign_key: Option<&'static str>,
    /// An observer stores nothing and only runs callbacks.
    pub observer: bool,
}

impl SubscriberDef {
    /// The root of the polymorphic chain.
    pub fn root(&self) -> &SubscriberDef {
        let mut def = self;
        while let Some(parent) = def.parent {
            def = parent();
        }
        def
    }

    /// The endpoint pattern this model binds: its own `from`, its root's, or `*/model`.
    pub fn from_pattern(&self) -> String {
        let mut def = self;
        loop {
            if let Some(from) = def.from {
                return from.to_owned();
            }
            match def.parent {
                Some(parent) => def = parent(),
                None => return format!("*/{}", snake_case(def.as_name)),
            }
        }
    }

    /// Every subscribed attribute, inherited ones first.
    pub fn all_attributes(&self) -> Vec<SubscribedAttribute> {
        let mut chain = vec![self];
        let mut parent = self.parent;
        while let Some(def) = parent.map(|f| f()) {
            chain.push(def);
            parent = def.parent;
        }
        let mut seen = std::collections::HashSet::new();
        chain
            .iter()
            .rev()
            .flat_map(|def| def.attributes.iter().copied())
            .filter(|attr| seen.insert(attr.name))
            .collect()
    }

    /// The field holding the publisher's id: the foreign key, inherited, or `id`.
    pub fn key_field(&self) -> &'static str {
        let mut def = self;
        loop {
            if let Some(fk) = def.foreign_key {
                return fk;
            }
            match def.parent {
                Some(parent) => def = parent(),
                None => return "id",
            }
        }
    }

    /// Whether this model or an ancestor is an observer.
    pub fn is_observer(&self) -> bool {
        self.observer || self.parent.is_some_and(|p| p().is_observer())
    }
}

/// A model that receives replicated operations.
///
/// Implemented by `#[derive(Subscribe)]` or `define!`. The struct is read from
/// and written to the Storage as a JSON object through serde, so it may hold
/// local fields that are not subscribed (give them `#[serde(default)]`).
pub trait Subscribe: Serialize + DeserializeOwned + Callbacks + Send + Sync + 'static {
    /// The static definition.
    fn definition() -> &'static SubscriberDef;
}
