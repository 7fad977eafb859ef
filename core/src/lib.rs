//! Core of promiscuous: model definitions and registry, the wire format, the
//! `Storage`, `Broker`, `Lock` and `Clock` traits, the publisher pipeline, the
//! subscriber worker, configuration and errors.
//!
//! Applications depend on the `promiscuous` facade crate, which re-exports this
//! one with the backends chosen by cargo features. Backend crates implement the
//! traits of [`traits`] and run the conformance suites of `testkit` (feature
//! `testkit`).
//!
//! ```
//! use promiscuous_core::wire::{Message, OperationKind, WireError};
//!
//! let payload = br#"{"format":1,"app":"crowdtap","generation":0,"timestamp":0,
//!   "operations":[{"operation":"create","endpoint":"crowdtap/user","types":["User"],
//!   "id":1,"attributes":{"name":"Yoda"},
//!   "dependencies":{"write":[{"key":"crowdtap/user#7","version":1}]}}]}"#;
//! let message = Message::decode(payload)?;
//! assert_eq!(message.operations[0].operation, OperationKind::Create);
//!
//! // Bad input is a typed error, never a panic.
//! let err = Message::decode(b"{\"format\": 2}").unwrap_err();
//! assert!(matches!(err, WireError::UnsupportedFormat { found: 2, .. }));
//! # Ok::<(), WireError>(())
//! ```

pub mod backend;
mod backend_choice;
pub mod backoff;
mod clock_watch;
pub mod config;
pub mod dead_letter;
pub mod dependency;
pub mod error;
pub mod layers;
pub mod metrics;
pub mod model;
pub mod publisher;
mod runtime;
pub mod status;
pub mod subscriber;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod traits;
pub mod wire;

pub use config::{ConfigBuilder, Mode};
pub use error::{BackendError, BoxError, Error, ErrorKind, Result, Retry};
pub use runtime::Promiscuous;
