//! Factories of crowdtap's mocks: instances with the values crowdtap
//! publishes, for subscribers' tests (the Ruby gem's FactoryGirl factories).
//!
//! Kept by the publisher next to the generated mocks, and compiled by its
//! tests, so a change to the mocks that breaks them is noticed here first.
#![allow(dead_code)]

use std::sync::atomic::{AtomicI64, Ordering};

use promiscuous::validate::MockPublisher;
use promiscuous::WorkerStats;

use super::{Admin, Member, User, UserEvent, UserGroup};

/// Ids and emails are unique within a test binary.
static SEQUENCE: AtomicI64 = AtomicI64::new(1);

fn next() -> i64 {
    SEQUENCE.fetch_add(1, Ordering::Relaxed)
}

/// A user named John with a unique email.
pub fn user() -> User {
    let n = next();
    User {
        id: n,
        name: "John".into(),
        email: format!("user{n}@example.com"),
        group_id: None,
    }
}

/// An active member with no points yet.
pub fn member() -> Member {
    let user = user();
    Member {
        id: user.id,
        name: user.name,
        email: user.email,
        group_id: user.group_id,
        state: "active".into(),
        points: 0,
        level: "basic".into(),
    }
}

/// An admin.
pub fn admin() -> Admin {
    let user = user();
    Admin {
        id: user.id,
        name: user.name,
        email: user.email,
        group_id: user.group_id,
    }
}

/// A user group.
pub fn user_group() -> UserGroup {
    UserGroup {
        id: next(),
        name: "Some user group".into(),
    }
}

/// The event crowdtap publishes when `user` registers.
pub fn registration(user_id: i64) -> UserEvent {
    UserEvent {
        user_id,
        event_name: "registered".into(),
    }
}

impl Member {
    /// Bans the member as crowdtap does: its state becomes `banned`, and the
    /// update is sent to the subscriber.
    pub async fn ban(&mut self, crowdtap: &MockPublisher) -> promiscuous::Result<WorkerStats> {
        self.state = "banned".into();
        crowdtap.update(self).await
    }
}
