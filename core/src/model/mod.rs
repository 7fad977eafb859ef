//! Model definitions: what a publisher publishes and what a subscriber subscribes.
//!
//! Definitions are usually written with `#[derive(Publish)]` / `#[derive(Subscribe)]`
//! or the central `define!` block, which generate the impls of the traits here
//! and register them with `inventory`, so every definition of a binary can be listed.

mod callbacks;
mod conversion;
mod lineage;
mod naming;
mod publisher;
mod record_id;
mod registry;
mod subscriber;

pub use callbacks::{Callbacks, Change, Changes, Context};
pub use conversion::{from_record, to_record};
pub use naming::snake_case;
pub use publisher::{
    embed, published_attributes, AttributeDef, AttributeSource, Embed, Publish, PublisherDef,
};
pub use record_id::RecordId;
pub use registry::{
    publisher_definitions, subscriber_registrations, PublisherRegistration, SubscriberRegistration,
};
pub use subscriber::{Subscribe, SubscribedAttribute, SubscriberDef};
