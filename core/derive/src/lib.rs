//! Procedural macros of `promiscuous`: they declare which models are published
//! and subscribed, implement `Publish` / `Subscribe` and register the
//! definitions with `inventory` so every definition of a binary can be listed.
//!
//! Use them through the facade crate (`promiscuous::{Publish, Subscribe, define}`);
//! the generated code names only `::promiscuous::__private::*` (override the root
//! with `crate = "path"`), so applications depend on `promiscuous` alone.
//!
//! - [`macro@Publish`]: `#[derive(Publish)]` with `#[publish(...)]` attributes.
//! - [`macro@Subscribe`]: `#[derive(Subscribe)]` with `#[subscribe(...)]` attributes.
//! - [`define!`]: a central block defining publishers and subscribers of structs
//!   declared elsewhere, like Ruby's `Promiscuous.define`.
//!
//! ```ignore
//! use promiscuous::{define, Publish, Subscribe};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Publish)]
//! #[publish(to = "crowdtap/user", virtual(full_name))]
//! struct User {
//!     id: i64,
//!     #[publish] first_name: String,
//!     #[publish] last_name: String,
//! }
//! impl User {
//!     fn full_name(&self) -> String { format!("{} {}", self.first_name, self.last_name) }
//! }
//!
//! #[derive(Serialize, Deserialize, Subscribe)]
//! #[subscribe(from = "crowdtap/user", as = "User")]
//! struct Profile {
//!     id: i64,
//!     #[subscribe] first_name: String,
//! }
//!
//! #[derive(Serialize)]
//! struct Click { user_id: i64 }
//! define! {
//!     publish Click { ephemeral, attributes: [user_id] }
//! }
//! ```

extern crate proc_macro;

mod attrs;
mod codegen;
mod define;
mod publish;
mod spec;
mod subscribe;
mod types;

use proc_macro::TokenStream;
use syn::{parse_macro_input, DeriveInput};

/// Implements `Publish` for a struct with named fields and registers its definition.
///
/// Struct options, in `#[publish(...)]` (several attributes may be given):
///
/// | option | meaning |
/// |---|---|
/// | `to = "app/model"` | explicit endpoint (default `app/snake_case(model)`); not with `parent` |
/// | `parent = Path` | polymorphism: the parent `Publish` type, whose endpoint and attributes are inherited |
/// | `ephemeral` | published but never persisted; may have no id |
/// | `model = "Name"` | type name on the wire (default: the struct name) |
/// | `virtual(a, b)` | virtual attributes: methods `fn a(&self) -> impl Serialize` |
/// | `mock` | a mock publisher (written by `promiscuous::validate::export_mocks`): left out of exports and `validate::publishers` |
/// | `internal` | a model of promiscuous's own test suites: left out of the app's publishers, exports and contract validation |
/// | `crate = "path"` | root of the facade crate (default `::promiscuous`) |
///
/// The registration also records, for contract tests, the published
/// attributes of `Default::default()` when the struct implements `Default`,
/// and the model each embedded field embeds.
///
/// Field options: `#[publish]` publishes the field; `#[publish(embeds)]` publishes
/// an embedded model (`T`, `Option<T>` or `Vec<T>` where `T: Publish`);
/// `#[publish(id)]` marks the id field (default: the field named `id`; it must
/// implement `RecordId`). Only ephemeral models may lack an id.
///
/// Attributes are published in field order, then virtual ones in the order listed.
/// Each attribute's JSON type is guessed from the field's type (`string`,
/// `integer`, `number`, `boolean`, `array`, `object`, `any`, `?` when optional).
/// Generic structs, tuple structs and enums are rejected.
///
/// ```ignore
/// #[derive(serde::Serialize, promiscuous::Publish)]
/// #[publish(parent = User, virtual(level))]
/// struct Member {
///     id: i64,
///     #[publish] points: u32,
///     #[publish(embeds)] addresses: Vec<Address>,
/// }
/// impl Member {
///     fn level(&self) -> &'static str { if self.points > 100 { "gold" } else { "basic" } }
/// }
/// ```
#[proc_macro_derive(Publish, attributes(publish))]
pub fn derive_publish(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    publish::parse(&input)
        .map(|spec| codegen::publisher(&spec))
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Implements `Subscribe` (and an empty `Callbacks`) for a struct and registers it.
///
/// Struct options, in `#[subscribe(...)]`:
///
/// | option | meaning |
/// |---|---|
/// | `from = "app/model"` | endpoint pattern (default `*/snake_case(as)`) |
/// | `as = "Name"` | the published type this model stands for (default: `model`) |
/// | `model = "Name"` | the model's name given to the storage (default: the struct name); for a sea-orm entity's `Model` struct |
/// | `parent = Path` | polymorphism: the parent `Subscribe` type |
/// | `foreign_key = "field"` | local field holding the publisher's id (default `id`) |
/// | `observer` | store nothing, only run callbacks |
/// | `callbacks` | you implement `Callbacks` yourself (otherwise an empty impl is generated) |
/// | `internal` | a model of promiscuous's own test suites: not run by default, left out of contract validation |
/// | `crate = "path"` | root of the facade crate (default `::promiscuous`) |
///
/// Field options: `#[subscribe]` subscribes the field; `#[subscribe(embeds)]`
/// subscribes a field holding embedded documents.
///
/// ```ignore
/// #[derive(serde::Serialize, serde::Deserialize, promiscuous::Subscribe)]
/// #[subscribe(from = "crowdtap/user", as = "User", foreign_key = "crowdtap_id")]
/// struct Profile {
///     crowdtap_id: i64,
///     #[subscribe] name: String,
///     #[subscribe(embeds)] addresses: Vec<Address>,
/// }
/// ```
#[proc_macro_derive(Subscribe, attributes(subscribe))]
pub fn derive_subscribe(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    subscribe::parse(&input)
        .map(|spec| codegen::subscriber(&spec))
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Defines publishers and subscribers of structs declared elsewhere, in one block.
///
/// Generates the same impls and registrations as the derives. Grammar:
///
/// ```text
/// define! { entry* }
/// entry   := ("publish" | "subscribe") TypePath "{" option ("," option)* ","? "}" (";" | ",")?
///
/// publish options:   to: "app/model"      parent: Type        ephemeral
///                    model: "Name"        id: field           crate: "::path"
///                    attributes: [field, ...]   embeds: [field, ...]   virtual: [method, ...]
/// subscribe options: from: "app/model"    as: "Name"          parent: Type
///                    model: "Name"        foreign_key: "field" observer
///                    callbacks            crate: "::path"
///                    attributes: [field, ...]   embeds: [field, ...]
/// ```
///
/// Options mean what they mean on the derives. Attributes are published in the
/// order the lists are written. The id field defaults to `id`; an `ephemeral`
/// publisher without `id:` has no id. As field types are not visible here, every
/// attribute's JSON type is `any`; the id kind comes from the id field's `RecordId`.
///
/// ```ignore
/// promiscuous::define! {
///     publish User { to: "crowdtap/user", attributes: [name, email], virtual: [full_name] }
///     publish Member { parent: User, attributes: [points] }
///     publish UserEvent { ephemeral, attributes: [user_id, event_name] }
///     publish Account { id: account_number, attributes: [balance], embeds: [addresses] }
///     subscribe Profile { from: "crowdtap/user", as: "User", foreign_key: "crowdtap_id",
///                         attributes: [name, email], callbacks }
///     subscribe Mailer { observer, attributes: [user_id] }
/// }
/// ```
#[proc_macro]
pub fn define(input: TokenStream) -> TokenStream {
    let definitions = parse_macro_input!(input as define::Definitions);
    define::expand(&definitions).into()
}
