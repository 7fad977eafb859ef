//! Publisher definitions and how a model's payload is built from them.

use serde::Serialize;
use serde_json::{Map, Value};

use super::lineage::Lineage;
use super::naming::snake_case;
use crate::error::{Error, Result};

/// Where the value of a published attribute comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttributeSource {
    /// A field of the struct, read through its `Serialize` impl.
    Field,
    /// A method of the model (a virtual attribute), computed when publishing.
    Virtual,
    /// An embedded published model (`T`, `Option<T>` or `Vec<T>` of a `Publish` type).
    Embedded,
}

/// One published attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttributeDef {
    /// Its name on the wire.
    pub name: &'static str,
    /// Where its value comes from.
    pub source: AttributeSource,
    /// Its JSON type as far as known (`string`, `integer`, `number`, `boolean`,
    /// `array`, `object`, `any`), with a `?` suffix when it may be null.
    pub json_type: &'static str,
}

/// The static definition of a published model.
#[derive(Debug)]
pub struct PublisherDef {
    /// The type name published in `types` (`"User"`).
    pub model: &'static str,
    /// Explicit endpoint (`to`), e.g. `"crowdtap/member"`; by default `app/model_name`.
    pub to: Option<&'static str>,
    /// The parent model, for polymorphism: the child publishes to the parent's endpoint.
    pub parent: Option<fn() -> &'static PublisherDef>,
    /// The attributes this model adds (its parent's are inherited).
    pub attributes: &'static [AttributeDef],
    /// Published but never persisted by the publisher.
    pub ephemeral: bool,
    /// The kind of id (`string`, `integer`, or `none` for ephemerals without id).
    pub id_kind: &'static str,
}

impl Lineage for PublisherDef {
    type Attribute = AttributeDef;
    fn parent_definition(&self) -> Option<&'static Self> {
        self.parent.map(|parent| parent())
    }
    fn own_attributes(&self) -> &'static [AttributeDef] {
        self.attributes
    }
    fn attribute_name(attribute: &AttributeDef) -> &'static str {
        attribute.name
    }
}

impl PublisherDef {
    /// The type chain, most derived first: `["Member", "User"]`.
    pub fn types(&self) -> Vec<&'static str> {
        self.ancestry().iter().map(|def| def.model).collect()
    }

    /// The root of the polymorphic chain (itself when it has no parent).
    pub fn root(&self) -> &PublisherDef {
        self.ancestry().last().copied().unwrap_or(self)
    }

    /// Every published attribute, inherited ones first.
    pub fn all_attributes(&self) -> Vec<AttributeDef> {
        self.chain_attributes()
    }

    /// The endpoint of this model when published by `app`: the root's `to`, or
    /// `app/snake_case(root model)`.
    pub fn endpoint(&self, app: &str) -> String {
        let root = self.root();
        match root.to {
            Some(to) => to.to_owned(),
            None => format!("{app}/{}", snake_case(root.model)),
        }
    }
}

/// A model whose writes are published.
///
/// Implemented by `#[derive(Publish)]` or `define!`; see the crate docs.
pub trait Publish: Serialize + Send + Sync + 'static {
    /// The static definition.
    fn definition() -> &'static PublisherDef
    where
        Self: Sized;

    /// The record id as JSON (`null` for ephemerals without id).
    fn id(&self) -> Value;

    /// Values of the attributes this type declares as virtual or embedded.
    /// Fields are read through `Serialize` and need not appear here.
    fn computed_attributes(&self) -> Result<Map<String, Value>> {
        Ok(Map::new())
    }
}

/// Values that can be embedded in a published payload.
pub trait Embed {
    /// The embedded value: `{"types", "id", "attributes"}` for a model,
    /// `null` for `None`, an array for a `Vec`.
    fn embed(&self) -> Result<Value>;
}

impl<T: Publish> Embed for T {
    fn embed(&self) -> Result<Value> {
        let mut doc = Map::new();
        let types = T::definition().types();
        doc.insert("types".into(), Value::from(types));
        doc.insert("id".into(), self.id());
        doc.insert(
            "attributes".into(),
            Value::Object(published_attributes(self)?),
        );
        Ok(Value::Object(doc))
    }
}

/// Embeds a value: the derive macros call this for `#[publish(embeds)]` fields.
pub fn embed<E: Embed + ?Sized>(value: &E) -> Result<Value> {
    value.embed()
}

/// Wrapper implementations for optional and repeated embedded documents.
mod wrappers {
    use super::*;

    /// `Option<T>` embeds as `null` or the document.
    impl<T: Publish> Embed for Option<T> {
        fn embed(&self) -> Result<Value> {
            self.as_ref().map_or(Ok(Value::Null), Embed::embed)
        }
    }

    /// `Vec<T>` embeds as an array of documents.
    impl<T: Publish> Embed for Vec<T> {
        fn embed(&self) -> Result<Value> {
            self.iter()
                .map(Embed::embed)
                .collect::<Result<Vec<_>>>()
                .map(Value::Array)
        }
    }
}

/// The published attributes of a model, inherited ones included, as they go on the wire.
pub fn published_attributes<M: Publish>(model: &M) -> Result<Map<String, Value>> {
    let def = M::definition();
    let fields = match serde_json::to_value(model) {
        Ok(Value::Object(map)) => map,
        Ok(_) => Map::new(),
        Err(source) => {
            return Err(Error::Conversion {
                model: def.model.to_owned(),
                id: String::new(),
                direction: "to published attributes",
                attribute: Box::default(),
                value: Box::default(),
                source,
            })
        }
    };
    let mut computed = model.computed_attributes()?;
    let mut out = Map::new();
    for attr in def.all_attributes() {
        let value = match computed.remove(attr.name) {
            Some(value) => value,
            None => fields.get(attr.name).cloned().ok_or_else(|| Error::Attribute {
                model: def.model.to_owned(),
                attribute: attr.name.to_owned(),
                problem: format!(
                    "{} has no serialised field `{}`; add the field, or declare it as virtual on {} (`#[publish(virtual({}))]`) when it is a method",
                    def.model, attr.name, def.model, attr.name
                ),
            })?,
        };
        out.insert(attr.name.to_owned(), value);
    }
    Ok(out)
}
