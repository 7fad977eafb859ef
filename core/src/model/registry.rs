//! Link-time registration of every definition in the binary.

use serde_json::{Map, Value};

use super::publisher::PublisherDef;
use super::subscriber::SubscriberDef;
use crate::subscriber::SubscriberHandler;

/// Registers a publisher definition; submitted by the derive macros.
#[derive(Debug)]
pub struct PublisherRegistration {
    /// Returns the definition.
    pub definition: fn() -> &'static PublisherDef,
    /// The published attributes of `Default::default()`: `None` when the
    /// model does not implement `Default`. Contract tests call it to check
    /// that every published attribute can be produced.
    pub sample: fn() -> Option<crate::Result<Map<String, Value>>>,
    /// The published attributes of the model read from a stored record:
    /// `None` when the model does not implement `DeserializeOwned`. Recovery
    /// publishes a record's stored state with it.
    #[allow(clippy::type_complexity)] // spelled out: generated code names it
    pub attributes_of: fn(&Map<String, Value>) -> Option<crate::Result<Map<String, Value>>>,
    /// For each embedded attribute whose field type is known (`T`,
    /// `Option<T>` or `Vec<T>`), its name and the definition of `T` (`None`
    /// when `T` is not a `Publish` type). Mock exports use it to type the field.
    #[allow(clippy::type_complexity)] // spelled out: generated code builds it literally
    pub embeds: &'static [(&'static str, fn() -> Option<&'static PublisherDef>)],
    /// A mock publisher (`#[publish(mock)]`, written by `promiscuous-validate`'s
    /// export): left out of exports and publisher validation.
    pub mock: bool,
    /// A model of promiscuous's own test suites (`#[publish(internal)]`):
    /// left out of [`publisher_definitions`], exports and validation.
    pub internal: bool,
}

impl PublisherRegistration {
    /// Every publisher registration linked into this binary, mocks and
    /// internal ones included, sorted by model name (then endpoint, for
    /// equal names).
    pub fn all() -> Vec<&'static PublisherRegistration> {
        let mut regs: Vec<_> = inventory::iter::<PublisherRegistration>
            .into_iter()
            .collect();
        regs.sort_by_cached_key(|r| {
            let def = (r.definition)();
            (def.model, def.to, r.mock)
        });
        regs
    }

    /// The registration of a definition, when it was registered in this binary.
    pub fn of(definition: &PublisherDef) -> Option<&'static PublisherRegistration> {
        inventory::iter::<PublisherRegistration>
            .into_iter()
            .find(|r| std::ptr::eq((r.definition)(), definition))
    }

    /// The registration of the publisher model named `model` publishing to
    /// `endpoint` for `app`, not a mock when a real one exists.
    pub fn find(model: &str, endpoint: &str, app: &str) -> Option<&'static PublisherRegistration> {
        inventory::iter::<PublisherRegistration>
            .into_iter()
            .filter(|r| {
                let def = (r.definition)();
                def.model == model && def.endpoint(app) == endpoint
            })
            .min_by_key(|r| r.mock)
    }

    /// The definition of the model the embedded attribute `name` embeds, when known.
    pub fn embedded_definition(&self, name: &str) -> Option<&'static PublisherDef> {
        self.embeds
            .iter()
            .find(|(attribute, _)| *attribute == name)
            .and_then(|(_, definition)| definition())
    }
}

/// Registers a subscriber definition and the handler that applies its operations.
pub struct SubscriberRegistration {
    /// Returns the definition.
    pub definition: fn() -> &'static SubscriberDef,
    /// Applies operations to this model.
    pub handler: &'static dyn SubscriberHandler,
    /// A model of promiscuous's own test suites (`#[subscribe(internal)]`):
    /// left out of contract validation and of the worker's default models.
    pub internal: bool,
}

impl std::fmt::Debug for SubscriberRegistration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubscriberRegistration")
            .field("model", &(self.definition)().model)
            .finish()
    }
}

impl SubscriberRegistration {
    /// The registration of a definition, internal ones included.
    pub fn of(definition: &SubscriberDef) -> Option<&'static SubscriberRegistration> {
        inventory::iter::<SubscriberRegistration>
            .into_iter()
            .find(|r| std::ptr::eq((r.definition)(), definition))
    }
}

inventory::collect!(PublisherRegistration);
inventory::collect!(SubscriberRegistration);

/// Every publisher definition linked into this binary, sorted by model
/// name, except the internal ones of promiscuous's test suites.
pub fn publisher_definitions() -> Vec<&'static PublisherDef> {
    let mut defs: Vec<_> = inventory::iter::<PublisherRegistration>
        .into_iter()
        .filter(|r| !r.internal)
        .map(|r| (r.definition)())
        .collect();
    defs.sort_by_key(|d| d.model);
    defs
}

/// Every subscriber registration linked into this binary, sorted by model
/// name, except the internal ones of promiscuous's test suites.
pub fn subscriber_registrations() -> Vec<&'static SubscriberRegistration> {
    let mut regs: Vec<_> = inventory::iter::<SubscriberRegistration>
        .into_iter()
        .filter(|r| !r.internal)
        .collect();
    regs.sort_by_key(|r| (r.definition)().model);
    regs
}
