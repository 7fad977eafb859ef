//! `validate::subscribers`: each rule, passing and failing, against the
//! committed `crowdtap` mocks. The subscribers of this binary break the rules
//! on purpose, so each test selects the ones it checks.
#![allow(dead_code, missing_docs)]

#[path = "fixtures/crowdtap.rs"]
mod crowdtap;

use promiscuous::Subscribe;
use promiscuous_validate::{Problem, Subscribers, ValidationError};
use serde::{Deserialize, Serialize};

/// Valid subscribers.
mod valid {
    use super::*;

    #[derive(Debug, Serialize, Deserialize, Subscribe)]
    #[subscribe(from = "crowdtap/user")]
    pub struct User {
        pub id: i64,
        #[subscribe]
        pub name: String,
        #[subscribe]
        pub email: String,
    }

    #[derive(Debug, Serialize, Deserialize, Subscribe)]
    #[subscribe(parent = User)]
    pub struct Member {
        pub id: i64,
        pub name: String,
        pub email: String,
        #[subscribe]
        pub state: String,
        #[subscribe]
        pub level: serde_json::Value,
    }

    /// Another name for a published type, with a foreign key.
    #[derive(Debug, Serialize, Deserialize, Subscribe)]
    #[subscribe(from = "*/user_group", as = "UserGroup", foreign_key = "crowdtap_id")]
    pub struct Team {
        pub crowdtap_id: i64,
        #[subscribe]
        pub tags: Vec<String>,
    }

    /// An observer of an ephemeral, on the default endpoint `*/user_event`.
    #[derive(Debug, Serialize, Deserialize, Subscribe)]
    #[subscribe(observer)]
    pub struct UserEvent {
        #[serde(default)]
        pub id: Option<i64>,
        #[subscribe]
        pub user_id: i64,
        #[subscribe]
        pub event_name: String,
    }

    /// Embedded documents.
    #[derive(Debug, Serialize, Deserialize, Subscribe)]
    #[subscribe(from = "crowdtap/account", as = "BankAccount")]
    pub struct Account {
        pub id: String,
        #[subscribe(embeds)]
        pub addresses: Vec<serde_json::Value>,
    }

    /// A root standing for no published type: it receives the endpoint's root.
    #[derive(Debug, Serialize, Deserialize, Subscribe)]
    #[subscribe(from = "crowdtap/click")]
    pub struct Visit {
        #[serde(default)]
        pub id: Option<i64>,
        #[subscribe]
        pub url: String,
    }
}

/// Subscribers breaking one rule each.
mod broken {
    use super::*;

    /// A typo in the endpoint.
    #[derive(Debug, Serialize, Deserialize, Subscribe)]
    #[subscribe(from = "crowdtap/usr")]
    pub struct Usr {
        pub id: i64,
        #[subscribe]
        pub name: String,
    }

    /// The default endpoint `*/customer` is not published.
    #[derive(Debug, Serialize, Deserialize, Subscribe)]
    pub struct Customer {
        pub id: i64,
    }

    #[derive(Debug, Serialize, Deserialize, Subscribe)]
    #[subscribe(from = "crowdtap/user", as = "User")]
    pub struct Person {
        pub id: i64,
        #[subscribe]
        pub name: String,
    }

    /// A subclass standing for a type that is not published (a typo).
    #[derive(Debug, Serialize, Deserialize, Subscribe)]
    #[subscribe(parent = Person)]
    pub struct Admn {
        pub id: i64,
        pub name: String,
    }

    /// A subclass standing for a type that is not published at all.
    #[derive(Debug, Serialize, Deserialize, Subscribe)]
    #[subscribe(parent = Person)]
    pub struct Janitor {
        pub id: i64,
        pub name: String,
    }

    /// An attribute that is not published (a typo).
    #[derive(Debug, Serialize, Deserialize, Subscribe)]
    #[subscribe(from = "crowdtap/user", as = "User")]
    pub struct Contact {
        pub id: i64,
        #[subscribe]
        pub emial: String,
    }

    /// An attribute only a subclass publishes, subscribed on the root.
    #[derive(Debug, Serialize, Deserialize, Subscribe)]
    #[subscribe(from = "crowdtap/user", as = "User")]
    pub struct Scores {
        pub id: i64,
        #[subscribe]
        pub points: i64,
    }

    /// An inherited subscribed attribute the subclass's type does not publish.
    #[derive(Debug, Serialize, Deserialize, Subscribe)]
    #[subscribe(from = "crowdtap/user", as = "User")]
    pub struct Base {
        pub id: i64,
        #[subscribe]
        pub name: String,
    }

    #[derive(Debug, Serialize, Deserialize, Subscribe)]
    #[subscribe(parent = Base, as = "Member")]
    pub struct Ranked {
        pub id: i64,
        pub name: String,
        #[subscribe]
        pub rank: i64,
    }

    /// An observer subscribing an attribute that is not published.
    #[derive(Debug, Serialize, Deserialize, Subscribe)]
    #[subscribe(observer, from = "crowdtap/user_event", as = "UserEvent")]
    pub struct Signup {
        #[serde(default)]
        pub id: Option<i64>,
        #[subscribe]
        pub event: String,
    }

    /// Two roots on one endpoint: `Shadow` receives nothing.
    #[derive(Debug, Serialize, Deserialize, Subscribe)]
    #[subscribe(from = "crowdtap/user", as = "User")]
    pub struct Main {
        pub id: i64,
    }

    #[derive(Debug, Serialize, Deserialize, Subscribe)]
    #[subscribe(from = "crowdtap/user", as = "Visitor")]
    pub struct Shadow {
        pub id: i64,
    }

    /// Two subscribers standing for the same type on the same endpoint.
    #[derive(Debug, Serialize, Deserialize, Subscribe)]
    #[subscribe(from = "crowdtap/user_group", as = "UserGroup")]
    pub struct GroupA {
        pub id: i64,
    }

    #[derive(Debug, Serialize, Deserialize, Subscribe)]
    #[subscribe(from = "crowdtap/user_group", as = "UserGroup")]
    pub struct GroupB {
        pub id: i64,
    }
}

fn against_crowdtap() -> Subscribers {
    Subscribers::new().publisher(crowdtap::APP, &crowdtap::definitions())
}

fn only(error: &ValidationError) -> String {
    assert_eq!(error.problems.len(), 1, "{error}");
    error.problems[0].to_string()
}

#[test]
fn valid_subscribers_pass() {
    let report = against_crowdtap()
        .subscriber::<valid::User>()
        .subscriber::<valid::Member>()
        .subscriber::<valid::Team>()
        .subscriber::<valid::UserEvent>()
        .subscriber::<valid::Account>()
        .subscriber::<valid::Visit>()
        .check()
        .unwrap();
    assert_eq!(
        report.checked,
        ["User", "Member", "Team", "UserEvent", "Account", "Visit"]
    );
    assert_eq!(
        report.notes,
        ["Visit stands for Visit, which is not a published type on crowdtap/click; it receives the types no other subscriber takes there"]
    );
}

#[test]
fn subscribed_endpoint_must_be_published() {
    let error = against_crowdtap()
        .subscriber::<broken::Usr>()
        .check()
        .unwrap_err();
    assert_eq!(
        only(&error),
        "subscriber Usr listens to crowdtap/usr, where nothing is published; did you mean `from = \"crowdtap/user\"`? (published endpoints: crowdtap/account, crowdtap/address, crowdtap/audit, crowdtap/click, crowdtap/legacy, crowdtap/user, crowdtap/user_event, crowdtap/user_group)"
    );
    let error = against_crowdtap()
        .subscriber::<broken::Customer>()
        .check()
        .unwrap_err();
    assert!(
        matches!(&error.problems[..], [Problem::EndpointNotPublished { model, pattern, .. }] if model == "Customer" && pattern == "*/customer"),
        "{error}"
    );
}

#[test]
fn subscribed_subclass_must_be_published() {
    let error = against_crowdtap()
        .subscriber::<broken::Person>()
        .subscriber::<broken::Admn>()
        .check()
        .unwrap_err();
    assert_eq!(
        only(&error),
        "subscribed subclass Admn stands for Admn, which is not a published type on crowdtap/user; did you mean `as = \"Admin\"`? (published types there: Admin, Member, User)"
    );
    let error = against_crowdtap()
        .subscriber::<broken::Person>()
        .subscriber::<broken::Janitor>()
        .check()
        .unwrap_err();
    assert!(
        only(&error).starts_with("subscribed subclass Janitor stands for Janitor, which is not a published type on crowdtap/user; the closest is `as = \""),
        "{error}"
    );
}

#[test]
fn subscribed_attribute_must_be_published() {
    let error = against_crowdtap()
        .subscriber::<broken::Contact>()
        .check()
        .unwrap_err();
    assert_eq!(
        only(&error),
        "subscriber Contact subscribes `emial`, which is not published by Admin, Member, User on crowdtap/user; did you mean `email`? (published attributes: name, email, group_id, display_name)"
    );
}

#[test]
fn attribute_of_a_subclass_subscribed_on_the_root() {
    let error = against_crowdtap()
        .subscriber::<broken::Scores>()
        .check()
        .unwrap_err();
    assert_eq!(
        only(&error),
        "subscriber Scores subscribes `points`, which is not published by Admin, User on crowdtap/user; only Member publishes it: subscribe it on a subscriber of Member (with `parent = …`)"
    );
}

#[test]
fn attributes_of_subscribed_subclasses() {
    let error = against_crowdtap()
        .subscriber::<broken::Base>()
        .subscriber::<broken::Ranked>()
        .check()
        .unwrap_err();
    assert_eq!(
        only(&error),
        "subscriber Ranked subscribes `rank`, which is not published by Member on crowdtap/user; the closest is `name` (published attributes: name, email, group_id, display_name, state, points, level)"
    );
}

#[test]
fn observers_are_checked_too() {
    let error = against_crowdtap()
        .subscriber::<broken::Signup>()
        .check()
        .unwrap_err();
    assert!(
        only(&error).starts_with("subscriber Signup subscribes `event`, which is not published by UserEvent on crowdtap/user_event; "),
        "{error}"
    );
}

#[test]
fn a_subscriber_that_receives_nothing() {
    let error = against_crowdtap()
        .subscriber::<broken::Main>()
        .subscriber::<broken::Shadow>()
        .check()
        .unwrap_err();
    assert_eq!(
        only(&error),
        "subscriber Shadow listens to crowdtap/user but receives nothing: every type published there goes to Main; give Shadow an `as` naming a published type, or a `parent`"
    );
}

#[test]
fn subscribers_that_cannot_be_routed() {
    let error = against_crowdtap()
        .subscriber::<broken::GroupA>()
        .subscriber::<broken::GroupB>()
        .check()
        .unwrap_err();
    assert!(
        only(&error).starts_with("the subscribers cannot work together: invalid definition of GroupB: both GroupA and GroupB stand for UserGroup"),
        "{error}"
    );
}

#[test]
fn publishers_are_needed() {
    let error = Subscribers::new()
        .subscriber::<valid::User>()
        .check()
        .unwrap_err();
    assert!(
        matches!(error.problems[0], Problem::NoPublishers),
        "{error}"
    );
}

#[test]
fn every_problem_at_once() {
    let error = against_crowdtap()
        .subscriber::<broken::Usr>()
        .subscriber::<broken::Person>()
        .subscriber::<broken::Admn>()
        .subscriber::<broken::Signup>()
        .subscriber::<valid::Team>()
        .check()
        .unwrap_err();
    let found: Vec<(&str, &str)> = error
        .problems
        .iter()
        .map(|p| {
            let kind = match p {
                Problem::EndpointNotPublished { .. } => "endpoint",
                Problem::SubclassNotPublished { .. } => "subclass",
                Problem::AttributeNotPublished { .. } => "attribute",
                _ => "other",
            };
            (p.model().unwrap_or_default(), kind)
        })
        .collect();
    assert_eq!(
        found,
        [
            ("Usr", "endpoint"),
            ("Admn", "subclass"),
            ("Signup", "attribute"),
        ],
        "{error}"
    );
    let message = error.to_string();
    assert!(message.starts_with("validate::subscribers found 3 problems:\n1. subscriber Usr"));
    assert!(
        message.ends_with("(validate::subscribers checked Usr, Person, Admn, Signup, Team)"),
        "{message}"
    );
}

#[test]
fn publishers_need_publishers_linked() {
    // Only mocks are linked into this binary, and mocks are not exported.
    let error = promiscuous_validate::publishers("fixtures/crowdtap.rs").unwrap_err();
    assert!(
        matches!(&error.problems[..], [Problem::NothingPublished]),
        "{error}"
    );
    assert!(error.to_string().starts_with(
        "validate::publishers found 1 problem:\n1. no publisher is linked into this binary"
    ));
}
