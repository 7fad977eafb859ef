//! What the crowdtap app publishes, for its subscribers' tests: the generated
//! mock publishers (`crowdtap.rs`) and hand-written factories (`factories.rs`).
//!
//! A subscriber includes this module in its tests:
//!
//! ```ignore
//! #[path = "../../publisher-app/mocks/mod.rs"]
//! mod crowdtap;
//! ```
//!
//! and needs the dev-dependencies `promiscuous` (feature `validate`), `serde`
//! (feature `derive`) and `serde_json`.

#[path = "crowdtap.rs"]
mod publishers;

pub mod factories;

pub use self::publishers::*;
