//! Example publisher app, `crowdtap`: it publishes its users (members and
//! admins are users), user groups, and user events.
//!
//! Its contract tests (`tests/contract.rs`) keep the exported mock publishers
//! in `mocks/crowdtap.rs` up to date; the subscriber app `examples/subscriber-app`
//! includes them, with the factories of `mocks/factories.rs`, in its own tests.

use promiscuous::Publish;
use serde::{Deserialize, Serialize};

/// This app's name: it publishes to `crowdtap/…`.
pub const APP: &str = "crowdtap";

/// A user.
#[derive(Debug, Clone, Default, Serialize, Deserialize, Publish)]
#[publish(to = "crowdtap/user")]
pub struct User {
    /// Primary key.
    pub id: i64,
    /// Display name.
    #[publish]
    pub name: String,
    /// Email address.
    #[publish]
    pub email: String,
    /// The user's group, if any.
    #[publish]
    pub group_id: Option<i64>,
    /// Never published.
    pub password_digest: String,
}

/// A member: a user who collects points, and can be banned.
#[derive(Debug, Clone, Default, Serialize, Deserialize, Publish)]
#[publish(parent = User, virtual(level))]
pub struct Member {
    /// Primary key.
    pub id: i64,
    /// Inherited from `User`.
    pub name: String,
    /// Inherited from `User`.
    pub email: String,
    /// Inherited from `User`.
    pub group_id: Option<i64>,
    /// Never published.
    pub password_digest: String,
    /// `active` or `banned`.
    #[publish]
    pub state: String,
    /// Points collected.
    #[publish]
    pub points: u32,
}

impl Member {
    /// Published as `level`, computed from the points.
    pub fn level(&self) -> &'static str {
        match self.points {
            0..=99 => "basic",
            100..=999 => "silver",
            _ => "gold",
        }
    }
}

/// An admin: a user, publishing nothing more.
#[derive(Debug, Clone, Default, Serialize, Deserialize, Publish)]
#[publish(parent = User)]
pub struct Admin {
    /// Primary key.
    pub id: i64,
    /// Inherited from `User`.
    pub name: String,
    /// Inherited from `User`.
    pub email: String,
    /// Inherited from `User`.
    pub group_id: Option<i64>,
    /// Never published.
    pub password_digest: String,
}

/// A group of users.
#[derive(Debug, Clone, Default, Serialize, Deserialize, Publish)]
#[publish(to = "crowdtap/user_group")]
pub struct UserGroup {
    /// Primary key.
    pub id: i64,
    /// Display name.
    #[publish]
    pub name: String,
}

/// Something a user did: published, never stored.
#[derive(Debug, Clone, Default, Serialize, Deserialize, Publish)]
#[publish(ephemeral)]
pub struct UserEvent {
    /// The user.
    #[publish]
    pub user_id: i64,
    /// What happened: `registered`, `signed_in`, …
    #[publish]
    pub event_name: String,
}
