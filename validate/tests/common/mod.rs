//! Real publisher models of the `crowdtap` app, shared by several test
//! binaries: every kind of definition the export handles, all valid.
#![allow(dead_code)]

use std::collections::HashMap;

use promiscuous::Publish;
use serde::{Deserialize, Serialize};

/// The app these models are published by.
pub const APP: &str = "crowdtap";

/// The committed export of these models.
pub const MOCKS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/crowdtap.rs");

/// A root model with a virtual attribute.
#[derive(Debug, Clone, Default, Serialize, Deserialize, Publish)]
#[publish(to = "crowdtap/user", virtual(display_name))]
pub struct User {
    pub id: i64,
    #[publish]
    pub name: String,
    #[publish]
    pub email: String,
    #[publish]
    pub group_id: Option<i64>,
    /// Never published.
    pub password_digest: String,
}

impl User {
    pub fn display_name(&self) -> String {
        format!("@{}", self.name)
    }
}

/// A subclass adding attributes (it declares the inherited virtual attribute
/// again, as subclasses must).
#[derive(Debug, Clone, Default, Serialize, Deserialize, Publish)]
#[publish(parent = User, virtual(display_name, level))]
pub struct Member {
    pub id: i64,
    pub name: String,
    pub email: String,
    pub group_id: Option<i64>,
    pub password_digest: String,
    #[publish]
    pub state: String,
    #[publish]
    pub points: u32,
}

impl Member {
    pub fn display_name(&self) -> String {
        format!("@{}", self.name)
    }

    pub fn level(&self) -> &'static str {
        if self.points >= 100 {
            "gold"
        } else {
            "basic"
        }
    }
}

/// A subclass adding nothing.
#[derive(Debug, Clone, Default, Serialize, Deserialize, Publish)]
#[publish(parent = User, virtual(display_name))]
pub struct Admin {
    pub id: i64,
    pub name: String,
    pub email: String,
    pub group_id: Option<i64>,
    pub password_digest: String,
}

impl Admin {
    pub fn display_name(&self) -> String {
        format!("@{}", self.name)
    }
}

/// Every JSON type, a keyword attribute, and the default endpoint.
#[derive(Debug, Clone, Default, Serialize, Deserialize, Publish)]
pub struct UserGroup {
    pub id: i64,
    #[publish]
    pub name: String,
    #[publish]
    pub tags: Vec<String>,
    #[publish]
    pub settings: HashMap<String, String>,
    #[publish]
    pub score: f64,
    #[publish]
    pub active: bool,
    #[publish]
    pub r#type: String,
    #[publish]
    pub owners: Option<Vec<i64>>,
    #[publish]
    pub extra: serde_json::Value,
}

/// An embedded model.
#[derive(Debug, Clone, Default, Serialize, Deserialize, Publish)]
#[publish(to = "crowdtap/address")]
pub struct Address {
    pub id: i64,
    #[publish]
    pub street: String,
    #[publish]
    pub city: String,
}

/// A string id in another field, another name on the wire, embedded models.
#[derive(Debug, Clone, Default, Serialize, Deserialize, Publish)]
#[publish(to = "crowdtap/account", model = "BankAccount")]
pub struct Account {
    #[publish(id)]
    pub number: String,
    #[publish]
    pub balance: i64,
    #[publish(embeds)]
    pub addresses: Vec<Address>,
    #[publish(embeds)]
    pub billing: Option<Address>,
    #[publish(embeds)]
    pub home: Address,
}

/// An ephemeral without id.
#[derive(Debug, Clone, Default, Serialize, Deserialize, Publish)]
#[publish(ephemeral)]
pub struct UserEvent {
    #[publish]
    pub user_id: i64,
    #[publish]
    pub event_name: String,
}

/// An ephemeral with an optional id.
#[derive(Debug, Clone, Default, Serialize, Deserialize, Publish)]
#[publish(ephemeral, to = "crowdtap/click")]
pub struct Click {
    pub id: Option<i64>,
    #[publish]
    pub url: String,
}

/// A model without `Default`: exported, but not instantiated by `publishers`.
#[derive(Debug, Clone, Serialize, Deserialize, Publish)]
#[publish(to = "crowdtap/audit")]
pub struct Audit {
    pub id: i64,
    #[publish]
    pub action: String,
}

/// A model defined with `define!`: its attribute types are unknown (`any`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Legacy {
    pub id: i64,
    pub code: String,
    pub size: u32,
}

promiscuous::define! {
    publish Legacy { to: "crowdtap/legacy", attributes: [code, size] }
}
