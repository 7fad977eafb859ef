//! The mocks file `mocks/crowdtap.rs` is what this app publishes, and every
//! published model (the sea-orm `User` included) can be instantiated and
//! produces its attributes.
//!
//! After changing a published model, regenerate the file with
//!
//! ```sh
//! PROMISCUOUS_WRITE_MOCKS=1 cargo test -p publisher-app --test mocks
//! ```
//!
//! commit it, and run the subscribers' tests against it. This test is alone
//! in its file so that it compiles even when the factories
//! (`tests/contract.rs`) no longer match the old mocks.

promiscuous::validate::contract_tests!(publishers: publisher_app::APP, mocks: "mocks/crowdtap.rs");
