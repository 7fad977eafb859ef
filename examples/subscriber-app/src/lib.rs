//! Example subscriber app, `mailer`: it replicates crowdtap's users and
//! members, and mails a member who gets banned and a user who registers.
//!
//! Its tests (`tests/contract.rs`) include the mocks and factories exported by
//! `examples/publisher-app`, check every subscription against them with
//! `validate::subscribers`, and drive the callbacks through a `MockPublisher`.

use std::sync::{Mutex, OnceLock, PoisonError};

use promiscuous::{BoxError, Callbacks, ConfigBuilder, Context, Promiscuous, Subscribe};
use serde::{Deserialize, Serialize};

/// This app's name: its queue.
pub const APP: &str = "mailer";

/// The builder of this app's instance, with its name set; add backends and storage.
pub fn configure() -> ConfigBuilder {
    Promiscuous::configure().app(APP)
}

/// Why a mail was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailKind {
    /// Sent when a user registers.
    Welcome,
    /// Sent when a member is banned.
    Banned,
}

/// One mail sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    /// The user or member it is about.
    pub member_id: i64,
    /// Its recipient, when known.
    pub to: Option<String>,
    /// Why it was sent.
    pub kind: MailKind,
}

/// The mail service: here, it keeps what it sends in memory.
#[derive(Debug, Default)]
pub struct Mailer {
    sent: Mutex<Vec<Mail>>,
}

impl Mailer {
    /// The mailer used by the callbacks.
    pub fn global() -> &'static Mailer {
        static MAILER: OnceLock<Mailer> = OnceLock::new();
        MAILER.get_or_init(Mailer::default)
    }

    /// Sends a mail.
    pub fn send(&self, mail: Mail) {
        self.sent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(mail);
    }

    /// The mails sent about `member_id`, in order.
    pub fn sent_about(&self, member_id: i64) -> Vec<Mail> {
        self.sent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|mail| mail.member_id == member_id)
            .cloned()
            .collect()
    }
}

/// Crowdtap's users.
#[derive(Debug, Clone, Serialize, Deserialize, Subscribe)]
#[subscribe(from = "crowdtap/user")]
pub struct User {
    /// Crowdtap's id.
    pub id: i64,
    /// Subscribed.
    #[subscribe]
    pub name: String,
    /// Subscribed.
    #[subscribe]
    pub email: String,
}

/// Crowdtap's members: users with a state.
#[derive(Debug, Clone, Serialize, Deserialize, Subscribe)]
#[subscribe(parent = User, callbacks)]
pub struct Member {
    /// Crowdtap's id.
    pub id: i64,
    /// Inherited from `User`.
    pub name: String,
    /// Inherited from `User`.
    pub email: String,
    /// `active` or `banned`.
    #[subscribe]
    pub state: String,
}

impl Member {
    /// Whether this operation banned the member.
    fn got_banned(&self, ctx: &Context) -> bool {
        ctx.changes.changed("state") && self.state == "banned"
    }

    fn mail_ban(&self) {
        Mailer::global().send(Mail {
            member_id: self.id,
            to: Some(self.email.clone()),
            kind: MailKind::Banned,
        });
    }
}

#[promiscuous::async_trait]
impl Callbacks for Member {
    async fn after_create(&self, ctx: &Context) -> Result<(), BoxError> {
        if self.got_banned(ctx) {
            self.mail_ban();
        }
        Ok(())
    }

    async fn after_update(&self, ctx: &Context) -> Result<(), BoxError> {
        if self.got_banned(ctx) {
            self.mail_ban();
        }
        Ok(())
    }
}

/// Crowdtap's user events, observed: nothing is stored.
#[derive(Debug, Clone, Serialize, Deserialize, Subscribe)]
#[subscribe(observer, callbacks)]
pub struct UserEvent {
    /// Events have no id.
    #[serde(default)]
    pub id: Option<i64>,
    /// The user.
    #[subscribe]
    pub user_id: i64,
    /// What happened.
    #[subscribe]
    pub event_name: String,
}

#[promiscuous::async_trait]
impl Callbacks for UserEvent {
    async fn after_create(&self, _ctx: &Context) -> Result<(), BoxError> {
        if self.event_name == "registered" {
            Mailer::global().send(Mail {
                member_id: self.user_id,
                to: None,
                kind: MailKind::Welcome,
            });
        }
        Ok(())
    }
}
