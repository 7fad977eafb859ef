//! Core of promiscuous: model definitions and registry, the wire format, the
//! `Storage`, `Broker`, `Lock` and `Clock` traits, the publisher pipeline, the
//! subscriber worker, configuration and errors.
//!
//! Applications depend on the `promiscuous` facade crate, which re-exports this
//! one with the backends chosen by cargo features.

pub mod backend;
pub mod config;
pub mod dependency;
pub mod error;
pub mod model;
pub mod publisher;
mod runtime;
pub mod subscriber;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod traits;
pub mod wire;

pub use config::{ConfigBuilder, Mode};
pub use error::{BackendError, BoxError, Error, ErrorKind, Result, Retry};
pub use runtime::Promiscuous;
