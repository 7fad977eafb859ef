//! Contract testing for promiscuous: test each app alone while still checking
//! the contract between a publisher and its subscribers.
//!
//! Use it through the facade, `promiscuous::validate` (feature `validate`,
//! usually in `[dev-dependencies]`).
//!
//! 1. **Export.** [`export_mocks`] writes what the publisher app publishes as a
//!    Rust source file of *mock publishers*: one struct per published model,
//!    with its endpoint, its id, its published attributes typed from their JSON
//!    types, and subclasses marking only what they add. The output is
//!    deterministic, so the file is committed and diffed like code.
//! 2. **Publisher tests** call [`publishers`]`(path)`: it fails when the
//!    committed file is not what the binary publishes now (showing a diff), or
//!    when a published attribute cannot be produced from `Model::default()`.
//!    Run the tests with `PROMISCUOUS_WRITE_MOCKS=1` to rewrite the file.
//! 3. **Subscriber tests** include the file (`#[path = "…/crowdtap.rs"] mod crowdtap;`)
//!    and call [`subscribers`]`(&crowdtap::definitions(), crowdtap::APP)`: it
//!    fails when a subscribed endpoint, subclass or attribute is not
//!    published, naming the closest published name.
//! 4. **Integration tests** on the subscriber create, update and destroy mock
//!    instances through a [`MockPublisher`], which sends exactly what the real
//!    publisher would, synchronously through the subscriber's pipeline, with no
//!    broker: storage and callbacks run as on a real delivery.
//!
//! ## Publisher side
//!
//! ```
//! use promiscuous::Publish;
//! use serde::{Deserialize, Serialize};
//!
//! /// A published model; `Default` lets `publishers` check its attributes.
//! #[derive(Debug, Clone, Default, Serialize, Deserialize, Publish)]
//! #[publish(to = "crowdtap/user", virtual(display_name))]
//! pub struct User {
//!     pub id: i64,
//!     #[publish]
//!     pub name: String,
//!     pub password_digest: String,
//! }
//! impl User {
//!     fn display_name(&self) -> String {
//!         format!("@{}", self.name)
//!     }
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // In the publisher's tests: the committed file, e.g. "mocks/crowdtap.rs".
//! let path = std::env::temp_dir().join(format!("promiscuous-doc-{}/crowdtap.rs", std::process::id()));
//! promiscuous_validate::write_mocks("crowdtap", &path)?; // or PROMISCUOUS_WRITE_MOCKS=1
//! let report = promiscuous_validate::publishers(&path)?;
//! assert_eq!(report.checked, ["User"]);
//!
//! let mocks = std::fs::read_to_string(&path)?;
//! assert!(mocks.contains("pub const APP: &str = \"crowdtap\";"));
//! assert!(mocks.contains("    #[publish]\n    pub display_name: ::serde_json::Value,"));
//! assert!(!mocks.contains("password_digest"));
//! # Ok(())
//! # }
//! ```
//!
//! ## Subscriber side
//!
//! ```
//! use std::sync::Arc;
//! use promiscuous::{memory::MemoryStorage, Promiscuous, Subscribe};
//! use promiscuous_validate::MockPublisher;
//! use serde::{Deserialize, Serialize};
//!
//! /// The subscriber app's copy of the user.
//! #[derive(Debug, Serialize, Deserialize, Subscribe)]
//! #[subscribe(from = "crowdtap/user")]
//! pub struct User {
//!     pub id: i64,
//!     #[subscribe]
//!     pub name: String,
//! }
//!
//! /// Normally `#[path = "../../crowdtap/mocks/crowdtap.rs"] mod crowdtap;`:
//! /// the file the publisher exported (shortened).
//! mod crowdtap {
//!     pub const APP: &str = "crowdtap";
//!
//!     #[derive(Debug, Clone, Default, PartialEq, ::serde::Serialize, ::serde::Deserialize, ::promiscuous::Publish)]
//!     #[publish(to = "crowdtap/user", mock)]
//!     pub struct User {
//!         pub id: i64,
//!         #[publish]
//!         pub name: String,
//!     }
//!
//!     pub fn definitions() -> Vec<&'static ::promiscuous::core::model::PublisherDef> {
//!         vec![<User as ::promiscuous::Publish>::definition()]
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // Every subscribed model, subclass and attribute is published.
//! promiscuous_validate::subscribers(&crowdtap::definitions(), crowdtap::APP)?;
//!
//! // Operations on mocks go through this app's pipeline, as a real delivery would.
//! let storage = Arc::new(MemoryStorage::new());
//! let app = Promiscuous::configure()
//!     .app("mailer")
//!     .broker_url("null://")
//!     .redis_url("memory://validate-doc")
//!     .storage(storage.clone())
//!     .build()
//!     .await?;
//! let publisher = MockPublisher::new(crowdtap::APP, &app).await?;
//! let mut yoda = crowdtap::User { id: 1, name: "Yoda".into() };
//! publisher.create(&yoda).await?;
//! yoda.name = "Master Yoda".into();
//! let stats = publisher.update(&yoda).await?;
//! assert_eq!(stats.applied, 1);
//! assert_eq!(storage.records("User")[0]["name"], "Master Yoda");
//! # Ok(())
//! # }
//! ```
//!
//! A failed validation is a [`ValidationError`] listing every [`Problem`];
//! its `Debug` output is readable, so `validate::publishers(path).unwrap()`
//! prints the list (and the diff) in a failing test.

mod contract_tests;
mod diff;
mod export;
mod mock;
mod publishers;
mod report;
mod subscribers;
mod suggest;

pub use export::{
    export_mocks, mocks_app, mocks_source, published_definitions, write_mocks, ENV_WRITE_MOCKS,
};
pub use mock::MockPublisher;
pub use publishers::{publishers, Publishers};
pub use report::{Problem, Report, ValidationError};
pub use subscribers::{subscribers, Subscribers};
