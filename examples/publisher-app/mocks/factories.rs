//! Factories of crowdtap's mocks: instances with the values crowdtap
//! publishes, for subscribers' tests (the Ruby gem's FactoryGirl factories).
//!
//! Kept by the publisher next to the generated mocks, and compiled by its
//! tests, so a change to the mocks that breaks them is noticed here first.
#![allow(dead_code)]

use std::sync::atomic::{AtomicI64, Ordering};

use promiscuous::validate::MockPublisher;
use promiscuous::WorkerStats;

use super::{User, UserEvent};

/// Ids and emails are unique within a test binary.
static SEQUENCE: AtomicI64 = AtomicI64::new(1);

fn next() -> i64 {
    SEQUENCE.fetch_add(1, Ordering::Relaxed)
}

/// An active user named John with a unique email and no points yet.
pub fn user() -> User {
    let n = next();
    User {
        id: n,
        name: "John".into(),
        email: format!("user{n}@example.com"),
        state: "active".into(),
        points: 0,
        level: "basic".into(),
    }
}

/// The event crowdtap publishes when user `user_id` registers.
pub fn registration(user_id: i64) -> UserEvent {
    UserEvent {
        user_id,
        event_name: "registered".into(),
    }
}

impl User {
    /// Bans the user as crowdtap does: its state becomes `banned`, and the
    /// update is sent to the subscriber.
    pub async fn ban(&mut self, crowdtap: &MockPublisher) -> promiscuous::Result<WorkerStats> {
        self.state = "banned".into();
        crowdtap.update(self).await
    }
}
