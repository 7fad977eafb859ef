//! Subscriber definitions.

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::callbacks::Callbacks;
use super::lineage::Lineage;
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

impl Lineage for SubscriberDef {
    type Attribute = SubscribedAttribute;
    fn parent_definition(&self) -> Option<&'static Self> {
        self.parent.map(|parent| parent())
    }
    fn own_attributes(&self) -> &'static [SubscribedAttribute] {
        self.attributes
    }
    fn attribute_name(attribute: &SubscribedAttribute) -> &'static str {
        attribute.name
    }
}

impl SubscriberDef {
    /// The root of the polymorphic chain.
    pub fn root(&self) -> &SubscriberDef {
        self.ancestry().last().copied().unwrap_or(self)
    }

    /// The endpoint pattern this model binds: its own `from`, its nearest
    /// ancestor's, or `*/snake_case(root as_name)`.
    pub fn from_pattern(&self) -> String {
        match self.inherited(|def| def.from) {
            Some(from) => from.to_owned(),
            None => format!("*/{}", snake_case(self.root().as_name)),
        }
    }

    /// Every subscribed attribute, inherited ones first.
    pub fn all_attributes(&self) -> Vec<SubscribedAttribute> {
        self.chain_attributes()
    }

    /// The field holding the publisher's id: the foreign key, inherited, or `id`.
    pub fn key_field(&self) -> &'static str {
        self.foreign_key().unwrap_or("id")
    }

    /// The foreign key, own or inherited, when the model has one.
    pub fn foreign_key(&self) -> Option<&'static str> {
        self.inherited(|def| def.foreign_key)
    }

    /// Whether this model or an ancestor is an observer.
    pub fn is_observer(&self) -> bool {
        self.ancestry().iter().any(|def| def.observer)
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
