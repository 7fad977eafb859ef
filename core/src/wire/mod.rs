//! Wire format v1: what travels through the broker, as JSON.
//!
//! `docs/wire-format.md` describes every field; `docs/wire-format.schema.json`
//! is its JSON Schema. Decoding tolerates unknown fields and rejects, with a
//! typed [`WireError`], anything it cannot apply safely.

mod endpoint;
mod error;
mod message;

pub use endpoint::{Endpoint, EndpointPattern};
pub use error::WireError;
pub use message::{Dependencies, Dependency, Message, Operation, OperationKind, FORMAT_VERSION};
