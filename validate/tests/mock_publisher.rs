//! Mock publishers: operations on the committed `crowdtap` mocks reach a
//! subscriber's storage and callbacks exactly as the real publisher's would.
#![allow(dead_code, missing_docs)]

mod common;

#[path = "fixtures/crowdtap.rs"]
mod crowdtap;

use std::sync::{Arc, Mutex, PoisonError};

use promiscuous::memory::{MemoryClock, MemoryLock, MemoryStorage, NullBroker};
use promiscuous::{OperationKind, Promiscuous};
use promiscuous_validate::{subscribers, MockPublisher};
use serde_json::json;

/// What the subscriber's callbacks saw: `(record id, line)`.
static LOG: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

fn log(key: String, line: String) {
    LOG.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push((key, line));
}

/// The callback lines of record `id`, in order.
fn log_of(id: impl ToString) -> Vec<String> {
    let id = id.to_string();
    LOG.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .filter(|(of, _)| *of == id)
        .map(|(_, line)| line.clone())
        .collect()
}

/// The subscriber app under test.
mod mailer {
    use promiscuous::{BoxError, Callbacks, Context, Subscribe};
    use serde::{Deserialize, Serialize};

    fn describe(model: &str, hook: &str, ctx: &Context) -> String {
        let changes: Vec<String> = ctx
            .changes
            .names()
            .map(|name| {
                let change = ctx
                    .changes
                    .get(name)
                    .cloned()
                    .unwrap_or(promiscuous::Change {
                        previous: None,
                        current: None,
                    });
                format!("{name}: {:?} -> {:?}", change.previous, change.current)
            })
            .collect();
        format!("{model} {hook} {:?} [{}]", ctx.types, changes.join(", "))
    }

    #[derive(Debug, Serialize, Deserialize, Subscribe)]
    #[subscribe(from = "crowdtap/user", callbacks)]
    pub struct User {
        pub id: i64,
        #[subscribe]
        pub name: String,
        #[subscribe]
        pub email: String,
    }

    #[promiscuous::async_trait]
    impl Callbacks for User {
        async fn after_create(&self, ctx: &Context) -> Result<(), BoxError> {
            super::log(ctx.id.to_string(), describe("User", "after_create", ctx));
            Ok(())
        }
        async fn after_update(&self, ctx: &Context) -> Result<(), BoxError> {
            super::log(ctx.id.to_string(), describe("User", "after_update", ctx));
            Ok(())
        }
        async fn after_destroy(&self, ctx: &Context) -> Result<(), BoxError> {
            super::log(ctx.id.to_string(), describe("User", "after_destroy", ctx));
            Ok(())
        }
    }

    #[derive(Debug, Serialize, Deserialize, Subscribe)]
    #[subscribe(parent = User, callbacks)]
    pub struct Member {
        pub id: i64,
        pub name: String,
        pub email: String,
        #[subscribe]
        pub state: String,
        #[subscribe]
        pub level: String,
    }

    #[promiscuous::async_trait]
    impl Callbacks for Member {
        async fn after_create(&self, ctx: &Context) -> Result<(), BoxError> {
            super::log(ctx.id.to_string(), describe("Member", "after_create", ctx));
            Ok(())
        }
        async fn before_update(&mut self, ctx: &Context) -> Result<(), BoxError> {
            if self.state == "exploded" {
                return Err("members do not explode".into());
            }
            super::log(ctx.id.to_string(), describe("Member", "before_update", ctx));
            Ok(())
        }
        async fn after_update(&self, ctx: &Context) -> Result<(), BoxError> {
            super::log(ctx.id.to_string(), describe("Member", "after_update", ctx));
            if ctx.changes.changed("state") && self.state == "banned" {
                super::log(
                    ctx.id.to_string(),
                    format!("mail to {}: you are banned", self.email),
                );
            }
            Ok(())
        }
        async fn after_destroy(&self, ctx: &Context) -> Result<(), BoxError> {
            super::log(ctx.id.to_string(), describe("Member", "after_destroy", ctx));
            Ok(())
        }
    }

    #[derive(Debug, Serialize, Deserialize, Subscribe)]
    #[subscribe(observer, callbacks)]
    pub struct UserEvent {
        #[serde(default)]
        pub id: Option<i64>,
        #[subscribe]
        pub user_id: i64,
        #[subscribe]
        pub event_name: String,
    }

    #[promiscuous::async_trait]
    impl Callbacks for UserEvent {
        async fn after_create(&self, _ctx: &Context) -> Result<(), BoxError> {
            super::log(
                format!("event-{}", self.user_id),
                format!("{} {}", self.event_name, self.user_id),
            );
            Ok(())
        }
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Address {
        pub id: i64,
        pub street: String,
        pub city: String,
    }

    #[derive(Debug, Serialize, Deserialize, Subscribe)]
    #[subscribe(from = "crowdtap/account", as = "BankAccount")]
    pub struct Account {
        pub id: String,
        #[subscribe]
        pub balance: i64,
        #[subscribe(embeds)]
        pub addresses: Vec<Address>,
        #[subscribe(embeds)]
        pub billing: Option<Address>,
    }
}

/// A subscriber app on memory backends; its clock is returned too.
async fn subscriber_app() -> (Promiscuous, Arc<MemoryStorage>, Arc<MemoryClock>) {
    let storage = Arc::new(MemoryStorage::new());
    let clock = Arc::new(MemoryClock::new());
    let app = Promiscuous::configure()
        .app("mailer")
        .broker(Arc::new(NullBroker::new()))
        .clock(clock.clone())
        .lock(Arc::new(MemoryLock::new()))
        .storage(storage.clone())
        .build()
        .await
        .unwrap();
    (app, storage, clock)
}

#[test]
fn the_subscribers_match_the_mocks() {
    let report = subscribers(&crowdtap::definitions(), crowdtap::APP).unwrap();
    assert_eq!(report.checked, ["Account", "Member", "User", "UserEvent"]);
}

/// What an operation carries, ids and timestamps left out.
type Summary = (
    OperationKind,
    String,
    Vec<String>,
    Option<serde_json::Value>,
    u64,
);

/// `(operation, endpoint, types, attributes, own version)` of each operation.
fn summary(messages: &[promiscuous::core::wire::Message]) -> Vec<Summary> {
    messages
        .iter()
        .flat_map(|m| &m.operations)
        .map(|op| {
            (
                op.operation,
                op.endpoint.clone(),
                op.types.clone(),
                op.attributes.clone().map(serde_json::Value::Object),
                op.dependencies.write[0].version,
            )
        })
        .collect()
}

#[tokio::test]
async fn mocks_send_and_run_what_the_real_publisher_does() {
    // The real publisher app, its messages delivered by hand to subscriber A.
    let broker = Arc::new(NullBroker::new());
    let (real_subscriber, real_replica, clock) = subscriber_app().await;
    let real = Promiscuous::configure()
        .app(common::APP)
        .broker(broker.clone())
        .clock(clock)
        .lock(Arc::new(MemoryLock::new()))
        .storage(Arc::new(MemoryStorage::new()))
        .no_subscribers()
        .build()
        .await
        .unwrap();
    let mut member = common::Member {
        id: 101,
        name: "John".into(),
        email: "john@example.com".into(),
        state: "active".into(),
        points: 120,
        ..Default::default()
    };
    real.create(&member).await.unwrap();
    member.state = "banned".into();
    real.update(&member).await.unwrap();
    let published = broker.take_published();
    for message in &published {
        real_subscriber.deliver(&message.payload).await.unwrap();
    }

    // The mock, delivering to subscriber B.
    let (subscriber, replica, _) = subscriber_app().await;
    let mocks = MockPublisher::new(crowdtap::APP, &subscriber)
        .await
        .unwrap();
    let mut mock = crowdtap::Member {
        id: 201,
        name: "John".into(),
        email: "john@example.com".into(),
        display_name: json!("@John"),
        state: "active".into(),
        points: 120,
        level: json!("gold"),
        ..Default::default()
    };
    let created = mocks.create(&mock).await.unwrap();
    assert_eq!((created.received, created.applied), (1, 1));
    mock.state = "banned".into();
    let updated = mocks.update(&mock).await.unwrap();
    assert_eq!(updated.applied, 1);

    // Same operations on the wire...
    let real_messages: Vec<_> = published.iter().map(|m| m.message().unwrap()).collect();
    assert_eq!(summary(&mocks.sent()), summary(&real_messages));
    assert_eq!(mocks.sent()[0].app, "crowdtap");
    // ...same callbacks, with the same changes...
    assert_eq!(log_of(201), log_of(101));
    assert_eq!(
        log_of(201),
        [
            r#"Member after_create ["Member", "User"] [email: None -> Some(String("john@example.com")), level: None -> Some(String("gold")), name: None -> Some(String("John")), state: None -> Some(String("active"))]"#,
            r#"Member before_update ["Member", "User"] [state: Some(String("active")) -> Some(String("banned"))]"#,
            r#"Member after_update ["Member", "User"] [state: Some(String("active")) -> Some(String("banned"))]"#,
            "mail to john@example.com: you are banned",
        ]
    );
    // ...and the same record stored.
    let mut stored = replica.records("Member");
    let mut real_stored = real_replica.records("Member");
    stored[0].remove("id");
    real_stored[0].remove("id");
    assert_eq!(stored, real_stored);

    // Destroys too.
    real.destroy(&member).await.unwrap();
    for message in broker.take_published() {
        real_subscriber.deliver(&message.payload).await.unwrap();
    }
    mocks.destroy(&mock).await.unwrap();
    assert_eq!(log_of(201), log_of(101));
    assert!(replica.records("Member").is_empty());
}

#[tokio::test]
async fn operations_apply_in_order_and_duplicates_are_recognised() {
    let (subscriber, replica, clock) = subscriber_app().await;
    let mocks = MockPublisher::new(crowdtap::APP, &subscriber)
        .await
        .unwrap();
    let mut user = crowdtap::User {
        id: 301,
        name: "Leia".into(),
        email: "leia@example.com".into(),
        ..Default::default()
    };
    mocks.create(&user).await.unwrap();
    for name in ["Leia Organa", "General Organa", "Princess Leia"] {
        user.name = name.into();
        assert_eq!(mocks.update(&user).await.unwrap().applied, 1);
    }
    let versions: Vec<u64> = mocks
        .sent()
        .iter()
        .map(|m| m.operations[0].dependencies.write[0].version)
        .collect();
    assert_eq!(versions, [1, 2, 3, 4]);
    assert_eq!(replica.records("User")[0]["name"], "Princess Leia");

    // A message delivered again is recognised, not applied twice.
    let again = mocks.sent()[2].encode();
    let stats = subscriber.deliver(&again).await.unwrap();
    assert_eq!((stats.duplicates, stats.applied), (1, 0));
    assert_eq!(replica.records("User")[0]["name"], "Princess Leia");

    // Another mock of the same app continues the versions: they live in the
    // subscriber's clock, as in a shared Redis.
    let other = MockPublisher::new(crowdtap::APP, &subscriber)
        .await
        .unwrap();
    user.name = "Leia".into();
    assert_eq!(other.update(&user).await.unwrap().applied, 1);
    assert_eq!(
        other.sent()[0].operations[0].dependencies.write[0].version,
        5
    );
    assert!(!clock.snapshot().is_empty());
    assert_eq!(log_of(301).len(), 5);
}

#[tokio::test]
async fn ephemerals_reach_observers() {
    let (subscriber, _, _) = subscriber_app().await;
    let mocks = MockPublisher::new(crowdtap::APP, &subscriber)
        .await
        .unwrap();
    let event = crowdtap::UserEvent {
        user_id: 401,
        event_name: "registered".into(),
    };
    assert_eq!(mocks.publish(&event).await.unwrap().applied, 1);
    assert_eq!(mocks.create(&event).await.unwrap().applied, 1);
    assert_eq!(log_of("event-401"), ["registered 401", "registered 401"]);

    let error = mocks.update(&event).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "invalid definition of UserEvent: is ephemeral: it is only published, never updated; send it with create or publish"
    );
    let user = crowdtap::User {
        id: 402,
        ..Default::default()
    };
    let error = mocks.publish(&user).await.unwrap_err();
    assert!(
        error.to_string().contains("User: is not ephemeral"),
        "{error}"
    );
}

#[tokio::test]
async fn embedded_documents_are_sent_as_documents() {
    let (subscriber, replica, _) = subscriber_app().await;
    let mocks = MockPublisher::new(crowdtap::APP, &subscriber)
        .await
        .unwrap();
    let home = crowdtap::Address {
        id: 1,
        street: "Main".into(),
        city: "Springfield".into(),
    };
    let account = crowdtap::BankAccount {
        id: "acc-501".into(),
        balance: 30,
        addresses: vec![home.clone()],
        billing: Some(home.clone()),
        home,
    };
    mocks.create(&account).await.unwrap();
    let sent = &mocks.sent()[0].operations[0];
    assert_eq!(sent.endpoint, "crowdtap/account");
    assert_eq!(sent.types, ["BankAccount"]);
    assert_eq!(
        sent.attributes.as_ref().unwrap()["billing"],
        json!({"types": ["Address"], "id": 1, "attributes": {"street": "Main", "city": "Springfield"}})
    );
    let stored: mailer::Account = serde_json::from_value(serde_json::Value::Object(
        replica.records("Account")[0].clone(),
    ))
    .unwrap();
    assert_eq!(stored.addresses[0].city, "Springfield");
    assert_eq!(stored.billing.unwrap().street, "Main");
}

#[tokio::test]
async fn a_failing_callback_fails_the_operation() {
    let (subscriber, _, _) = subscriber_app().await;
    let mocks = MockPublisher::new(crowdtap::APP, &subscriber)
        .await
        .unwrap();
    let mut member = crowdtap::Member {
        id: 601,
        state: "active".into(),
        level: json!("basic"),
        ..Default::default()
    };
    mocks.create(&member).await.unwrap();
    member.state = "exploded".into();
    let error = mocks.update(&member).await.unwrap_err();
    let chain = promiscuous::core::error::chain(&error);
    assert!(
        chain.contains("callback before_update failed: members do not explode"),
        "{chain}"
    );
}

#[tokio::test]
async fn an_invalid_app_is_refused() {
    let (subscriber, _, _) = subscriber_app().await;
    let mocks = MockPublisher::new(crowdtap::APP, &subscriber)
        .await
        .unwrap();
    let error = MockPublisher::new("not an app!", &subscriber)
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("is not a valid application name"),
        "{error}"
    );
    assert!(mocks.sent().is_empty());
}
