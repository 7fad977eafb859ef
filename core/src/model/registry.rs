//! Link-time registration of every definition in the binary.

use super::publisher::PublisherDef;
use super::subscriber::SubscriberDef;
use crate::subscriber::SubscriberHandler;

/// Registers a publisher definition; submitted by the derive macros.
#[derive(Debug)]
pub struct PublisherRegistration {
    /// Returns the definition.
    pub definition: fn() -> &'static PublisherDef,
}

/// Registers a subscriber definition and the handler that applies its operations.
pub struct SubscriberRegistration {
    /// Returns the definition.
    pub definition: fn() -> &'static SubscriberDef,
    /// Applies operations to this model.
    pub handler: &'static dyn SubscriberHandler,
}

impl std::fmt::Debug for SubscriberRegistration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubscriberRegistration")
            .field("model", &(self.definition)().model)
            .finish()
    }
}

inventory::collect!(PublisherRegistration);
inventory::collect!(SubscriberRegistration);

/// Every publisher definition linked into this binary, sorted by model name.
pub fn publisher_definitions() -> Vec<&'static PublisherDef> {
    let mut defs: Vec<_> = inventory::iter::<PublisherRegistration>
        .into_iter()
        .map(|r| (r.definition)())
        .collect();
    defs.sort_by_key(|d| d.model);
    defs
}

/// Every subscriber registration linked into this binary, sorted by model name.
pub fn subscriber_registrations() -> Vec<&'static SubscriberRegistration> {
    let mut regs: Vec<_> = inventory::iter::<SubscriberRegistration>
        .into_iter()
        .collect();
    regs.sort_by_key(|r| (r.definition)().model);
    regs
}
