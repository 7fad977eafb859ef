//! End-to-end: one test per section of the Ruby gem's "Features & Recipes",
//! through the in-process broker.

mod common;

use common::{applied, fresh, Apps, Journal};
use promiscuous::{Filter, Publish};
use serde_json::json;

static JOURNAL: Journal = Journal::new();

mod attributes {
    use super::JOURNAL;
    use promiscuous::{BoxError, Callbacks, Context, Publish, Subscribe};
    use serde::{Deserialize, Serialize};
    use std::collections::BTreeMap;

    #[derive(Debug, Clone, Serialize, Deserialize, Publish)]
    #[publish(virtual(full_name))]
    pub struct User {
        pub id: i64,
        #[publish]
        pub first_name: String,
        #[publish]
        pub last_name: String,
        #[publish]
        pub tags: Vec<String>,
        #[publish]
        pub settings: BTreeMap<String, bool>,
        pub password: String,
    }

    impl User {
        pub fn full_name(&self) -> String {
            format!("{} {}", self.first_name, self.last_name)
        }
    }

    pub mod replica {
        use super::*;

        #[derive(Debug, Serialize, Deserialize, Subscribe)]
        #[subscribe(callbacks)]
        pub struct User {
            pub id: i64,
            #[subscribe]
            pub full_name: String,
            #[subscribe]
            pub tags: Vec<String>,
            #[serde(default)]
            pub welcome_note: String,
        }

        #[promiscuous::async_trait]
        impl Callbacks for User {
            async fn before_create(&mut self, _ctx: &Context) -> Result<(), BoxError> {
                self.welcome_note = format!("welcome {}", self.full_name);
                Ok(())
            }
            async fn after_update(&self, ctx: &Context) -> Result<(), BoxError> {
                let names: Vec<&str> = ctx.changes.names().collect();
                let previous = ctx
                    .changes
                    .previous("full_name")
                    .cloned()
                    .unwrap_or_default();
                JOURNAL.push(&ctx.app, format!("update {names:?} from {previous}"));
                Ok(())
            }
        }
    }
}

#[tokio::test]
async fn attributes_virtual_attributes_and_callbacks_with_changes() {
    let app = fresh("attributes");
    let apps = Apps::new(&app, |b| b.subscriber::<attributes::replica::User>()).await;
    let mut worker = apps.worker().await;
    let mut user = attributes::User {
        id: 7,
        first_name: "Luke".into(),
        last_name: "Skywalker".into(),
        tags: vec!["jedi".into()],
        settings: [("newsletter".to_owned(), true)].into(),
        password: "secret".into(),
    };
    apps.publisher.create(&user).await.unwrap();
    applied(&worker, 1).await;

    let records = apps.replica.records("User");
    assert_eq!(records.len(), 1);
    assert_eq!(
        records[0]["full_name"], "Luke Skywalker",
        "virtual attribute replicated"
    );
    assert_eq!(records[0]["tags"], json!(["jedi"]), "arrays replicate");
    assert_eq!(
        records[0]["welcome_note"], "welcome Luke Skywalker",
        "before_create may change the model"
    );
    assert!(
        records[0].get("password").is_none(),
        "unpublished fields never leave the publisher"
    );

    user.last_name = "Organa".into();
    apps.publisher.update(&user).await.unwrap();
    applied(&worker, 2).await;
    let records = apps.replica.records("User");
    assert_eq!(records[0]["full_name"], "Luke Organa");
    assert_eq!(
        records[0]["welcome_note"], "welcome Luke Skywalker",
        "local fields survive updates"
    );
    assert_eq!(
        JOURNAL.entries(&app),
        vec![r#"update ["full_name"] from "Luke Skywalker""#.to_owned()],
        "after_update sees exactly the changed attributes and their previous values"
    );

    apps.publisher.destroy(&user).await.unwrap();
    applied(&worker, 3).await;
    assert!(apps.replica.records("User").is_empty());
    worker.shutdown().await;
}

mod ephemerals {
    use super::JOURNAL;
    use promiscuous::{BoxError, Callbacks, Context, Publish, Subscribe};
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Clone, Serialize, Deserialize, Publish)]
    #[publish(ephemeral)]
    pub struct UserEvent {
        #[publish]
        pub user_id: i64,
        #[publish]
        pub event_name: String,
    }

    #[derive(Debug, Clone, Serialize, Deserialize, Publish)]
    pub struct Account {
        pub id: i64,
        #[publish]
        pub state: String,
    }

    pub mod mailer {
        use super::*;

        #[derive(Debug, Serialize, Deserialize, Subscribe)]
        #[subscribe(observer, callbacks)]
        pub struct UserEvent {
            #[subscribe]
            pub user_id: i64,
            #[subscribe]
            pub event_name: String,
        }

        #[promiscuous::async_trait]
        impl Callbacks for UserEvent {
            async fn after_create(&self, ctx: &Context) -> Result<(), BoxError> {
                JOURNAL.push(
                    &ctx.app,
                    format!("mail {} {}", self.user_id, self.event_name),
                );
                Ok(())
            }
        }

        #[derive(Debug, Serialize, Deserialize, Subscribe)]
        #[subscribe(observer, callbacks)]
        pub struct Account {
            pub id: i64,
            #[subscribe]
            #[serde(default)]
            pub state: String,
        }

        #[promiscuous::async_trait]
        impl Callbacks for Account {
            async fn after_create(&self, ctx: &Context) -> Result<(), BoxError> {
                JOURNAL.push(&ctx.app, format!("created {} {}", self.id, self.state));
                Ok(())
            }
            async fn after_update(&self, ctx: &Context) -> Result<(), BoxError> {
                let sync = if ctx.sync { " (sync)" } else { "" };
                JOURNAL.push(
                    &ctx.app,
                    format!("updated {} {}{sync}", self.id, self.state),
                );
                Ok(())
            }
            async fn after_destroy(&self, ctx: &Context) -> Result<(), BoxError> {
                JOURNAL.push(&ctx.app, format!("destroyed {}", self.id));
                Ok(())
            }
        }
    }
}

#[tokio::test]
async fn ephemerals_are_published_never_stored_and_observers_only_run_callbacks() {
    let app = fresh("ephemerals");
    let apps = Apps::new(&app, |b| {
        b.subscriber::<ephemerals::mailer::UserEvent>()
            .subscriber::<ephemerals::mailer::Account>()
    })
    .await;
    let mut worker = apps.worker().await;

    let event = ephemerals::UserEvent {
        user_id: 123,
        event_name: "registered".into(),
    };
    apps.publisher.publish(&event).await.unwrap();
    let refused = apps.publisher.create(&event).await.unwrap_err();
    assert!(refused.to_string().contains("ephemeral"), "{refused}");

    let mut account = ephemerals::Account {
        id: 5,
        state: "active".into(),
    };
    apps.publisher.create(&account).await.unwrap();
    account.state = "banned".into();
    apps.publisher.update(&account).await.unwrap();
    apps.publisher.destroy(&account).await.unwrap();
    let kept = ephemerals::Account {
        id: 6,
        state: "kept".into(),
    };
    apps.publisher.create(&kept).await.unwrap();
    apps.publisher.sync(&kept).await.unwrap();
    applied(&worker, 6).await;

    assert_eq!(
        JOURNAL.entries(&app),
        vec![
            "mail 123 registered",
            "created 5 active",
            "updated 5 banned",
            "destroyed 5",
            "created 6 kept",
            "updated 6 kept (sync)",
        ],
        "callbacks are told which operations a sync republished"
    );
    assert!(
        apps.source.records("UserEvent").is_empty(),
        "ephemerals are not stored by the publisher"
    );
    assert!(
        apps.replica.records("UserEvent").is_empty(),
        "observers store nothing"
    );
    assert!(
        apps.replica.records("Account").is_empty(),
        "observers store nothing"
    );
    worker.shutdown().await;
}

mod polymorphism {
    use promiscuous::{Publish, Subscribe};
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Clone, Serialize, Deserialize, Publish)]
    pub struct User {
        pub id: i64,
        #[publish]
        pub name: String,
        #[publish]
        pub email: String,
    }

    #[derive(Debug, Clone, Serialize, Deserialize, Publish)]
    #[publish(parent = User)]
    pub struct Member {
        pub id: i64,
        pub name: String,
        pub email: String,
        #[publish]
        pub points: i64,
    }

    #[derive(Debug, Clone, Serialize, Deserialize, Publish)]
    #[publish(parent = User)]
    pub struct Admin {
        pub id: i64,
        pub name: String,
        pub email: String,
        #[publish]
        pub role: String,
    }

    pub mod replica {
        use super::*;

        #[derive(Debug, Serialize, Deserialize, Subscribe)]
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
            pub points: i64,
        }
    }

    pub mod remapped {
        use super::*;

        #[derive(Debug, Serialize, Deserialize, Subscribe)]
        #[subscribe(from = "crowdtap/user", as = "User")]
        pub struct CrowdtapUser {
            pub id: i64,
            #[subscribe]
            pub name: String,
        }

        #[derive(Debug, Serialize, Deserialize, Subscribe)]
        #[subscribe(parent = CrowdtapUser, as = "Member")]
        pub struct CrowdtapMember {
            pub id: i64,
            pub name: String,
            #[subscribe]
            pub points: i64,
        }
    }
}

#[tokio::test]
async fn polymorphism_maps_subclasses_and_collapses_unsubscribed_ones() {
    use polymorphism::*;
    let apps = Apps::new(&fresh("poly"), |b| {
        b.subscriber::<replica::User>()
            .subscriber::<replica::Member>()
    })
    .await;
    let mut worker = apps.worker().await;
    assert_eq!(Member::definition().types(), vec!["Member", "User"]);
    assert_eq!(
        Member::definition().endpoint("x"),
        "x/user",
        "subclasses publish to the root's endpoint"
    );

    apps.publisher
        .create(&User {
            id: 1,
            name: "u".into(),
            email: "u@x".into(),
        })
        .await
        .unwrap();
    apps.publisher
        .create(&Member {
            id: 2,
            name: "m".into(),
            email: "m@x".into(),
            points: 10,
        })
        .await
        .unwrap();
    apps.publisher
        .create(&Admin {
            id: 3,
            name: "a".into(),
            email: "a@x".into(),
            role: "root".into(),
        })
        .await
        .unwrap();
    applied(&worker, 3).await;

    let users = apps.replica.records("User");
    let ids: Vec<_> = users.iter().map(|r| r["id"].clone()).collect();
    assert_eq!(
        ids,
        vec![json!(1), json!(3)],
        "the unsubscribed Admin is handled as its nearest ancestor, User"
    );
    assert!(
        users[1].get("role").is_none(),
        "attributes the ancestor does not subscribe are dropped"
    );
    let members = apps.replica.records("Member");
    assert_eq!(members.len(), 1);
    assert_eq!(members[0]["points"], 10);
    assert_eq!(
        members[0]["name"], "m",
        "a subclass gets its parent's attributes"
    );
    worker.shutdown().await;
}

#[tokio::test]
async fn namespace_mapping_with_from_and_as() {
    use polymorphism::*;
    let apps = Apps::new("crowdtap", |b| {
        b.subscriber::<remapped::CrowdtapUser>()
            .subscriber::<remapped::CrowdtapMember>()
    })
    .await;
    let mut worker = apps.worker().await;
    apps.publisher
        .create(&User {
            id: 1,
            name: "u".into(),
            email: "u@x".into(),
        })
        .await
        .unwrap();
    apps.publisher
        .create(&Member {
            id: 2,
            name: "m".into(),
            email: "m@x".into(),
            points: 4,
        })
        .await
        .unwrap();
    applied(&worker, 2).await;
    assert_eq!(
        apps.replica.records("CrowdtapUser").len(),
        1,
        "User maps to CrowdtapUser with `as`"
    );
    assert_eq!(
        apps.replica.records("CrowdtapMember")[0]["points"],
        4,
        "Member maps to CrowdtapMember"
    );
    worker.shutdown().await;
}

mod endpoints {
    use promiscuous::{Publish, Subscribe};
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Clone, Serialize, Deserialize, Publish)]
    #[publish(to = "crowdtap/member")]
    pub struct User {
        pub id: String,
        #[publish]
        pub name: String,
    }

    #[derive(Debug, Clone, Serialize, Deserialize, Publish)]
    pub struct Order {
        pub id: i64,
        #[publish]
        pub total: i64,
    }

    pub mod replica {
        use super::*;

        #[derive(Debug, Serialize, Deserialize, Subscribe)]
        #[subscribe(from = "crowdtap/member", foreign_key = "crowdtap_id")]
        pub struct CrowdtapMember {
            #[serde(default)]
            pub local_id: Option<u32>,
            pub crowdtap_id: String,
            #[subscribe]
            pub name: String,
        }

        #[derive(Debug, Serialize, Deserialize, Subscribe)]
        #[subscribe(from = "shop/order")]
        pub struct Order {
            pub id: i64,
            #[subscribe]
            pub total: i64,
        }
    }
}

#[tokio::test]
async fn to_endpoint_from_endpoint_and_foreign_keys() {
    use endpoints::*;
    let apps = Apps::new("shop", |b| {
        b.subscriber::<replica::CrowdtapMember>()
            .subscriber::<replica::Order>()
    })
    .await;
    let mut worker = apps.worker().await;
    let mut user = User {
        id: "5f2a".into(),
        name: "Han".into(),
    };
    apps.publisher.create(&user).await.unwrap();
    apps.publisher
        .create(&Order { id: 1, total: 30 })
        .await
        .unwrap();
    applied(&worker, 2).await;
    let members = apps.replica.records("CrowdtapMember");
    assert_eq!(members.len(), 1);
    assert_eq!(
        members[0]["crowdtap_id"], "5f2a",
        "the publisher's id is stored in the foreign key"
    );
    assert_eq!(
        apps.replica.records("Order")[0]["total"],
        30,
        "default endpoint is app/model"
    );

    user.name = "Solo".into();
    apps.publisher.update(&user).await.unwrap();
    applied(&worker, 3).await;
    let members = apps.replica.records("CrowdtapMember");
    assert_eq!(members.len(), 1, "updates find the record by foreign key");
    assert_eq!(members[0]["name"], "Solo");
    apps.publisher.destroy(&user).await.unwrap();
    applied(&worker, 4).await;
    assert!(apps.replica.records("CrowdtapMember").is_empty());
    worker.shutdown().await;
}

mod embedded {
    use promiscuous::{Publish, Subscribe};
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Clone, Serialize, Deserialize, Publish)]
    pub struct Address {
        pub id: i64,
        #[publish]
        pub street_name: String,
        #[publish]
        pub zipcode: String,
    }

    #[derive(Debug, Clone, Serialize, Deserialize, Publish)]
    pub struct Customer {
        pub id: i64,
        #[publish]
        pub name: String,
        #[publish(embeds)]
        pub addresses: Vec<Address>,
        #[publish(embeds)]
        pub billing: Option<Address>,
    }

    pub mod replica {
        use super::*;

        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        pub struct Address {
            pub id: i64,
            pub street_name: String,
            pub zipcode: String,
        }

        #[derive(Debug, Serialize, Deserialize, Subscribe)]
        pub struct Customer {
            pub id: i64,
            #[subscribe]
            pub name: String,
            #[subscribe(embeds)]
            pub addresses: Vec<Address>,
            #[subscribe(embeds)]
            pub billing: Option<Address>,
        }
    }
}

#[tokio::test]
async fn embedded_documents_one_and_many() {
    use embedded::*;
    let apps = Apps::new(&fresh("embed"), |b| b.subscriber::<replica::Customer>()).await;
    let mut worker = apps.worker().await;
    let home = Address {
        id: 1,
        street_name: "Main".into(),
        zipcode: "10001".into(),
    };
    let work = Address {
        id: 2,
        street_name: "Side".into(),
        zipcode: "10002".into(),
    };
    let mut customer = Customer {
        id: 9,
        name: "Leia".into(),
        addresses: vec![home.clone(), work],
        billing: None,
    };
    apps.publisher.create(&customer).await.unwrap();
    applied(&worker, 1).await;
    let stored: replica::Customer = serde_json::from_value(serde_json::Value::Object(
        apps.replica.records("Customer")[0].clone(),
    ))
    .unwrap();
    assert_eq!(stored.addresses.len(), 2);
    assert_eq!(stored.addresses[1].street_name, "Side");
    assert_eq!(stored.billing, None);

    customer.billing = Some(home);
    customer.addresses.pop();
    apps.publisher.update(&customer).await.unwrap();
    applied(&worker, 2).await;
    let stored: replica::Customer = serde_json::from_value(serde_json::Value::Object(
        apps.replica.records("Customer")[0].clone(),
    ))
    .unwrap();
    assert_eq!(stored.addresses.len(), 1);
    assert_eq!(stored.billing.map(|a| a.zipcode), Some("10001".to_owned()));
    worker.shutdown().await;
}

mod dsl {
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct Product {
        pub id: i64,
        pub name: String,
        pub price_cents: i64,
    }

    impl Product {
        pub fn label(&self) -> String {
            format!("{} ({:.2})", self.name, self.price_cents as f64 / 100.0)
        }
    }

    #[derive(Debug, Serialize, Deserialize)]
    pub struct Item {
        pub id: i64,
        pub name: String,
        pub label: String,
    }

    promiscuous::define! {
        publish Product { to: "shop/product", attributes: [name, price_cents], virtual: [label] }
        subscribe Item { from: "shop/product", as: "Product", attributes: [name, label] }
    }
}

#[tokio::test]
async fn central_definitions_block() {
    use dsl::*;
    let apps = Apps::new("shop", |b| b.subscriber::<Item>()).await;
    let mut worker = apps.worker().await;
    apps.publisher
        .create(&Product {
            id: 3,
            name: "Lightsaber".into(),
            price_cents: 19999,
        })
        .await
        .unwrap();
    applied(&worker, 1).await;
    let items = apps.replica.records("Item");
    assert_eq!(items[0]["label"], "Lightsaber (199.99)");
    assert!(items[0].get("price_cents").is_none());
    assert!(promiscuous::core::model::publisher_definitions()
        .iter()
        .any(|d| d.model == "Product"));
    worker.shutdown().await;
}

#[tokio::test]
async fn writes_touching_several_records_are_refused() {
    use polymorphism::*;
    let apps = Apps::new(&fresh("multi"), |b| b.subscriber::<replica::User>()).await;
    let mut worker = apps.worker().await;
    for id in 1..=2 {
        apps.publisher
            .create(&User {
                id,
                name: "same".into(),
                email: format!("{id}@x"),
            })
            .await
            .unwrap();
    }
    applied(&worker, 2).await;
    let changes = serde_json::Map::from_iter([("email".to_owned(), json!("new@x"))]);
    let err = apps
        .publisher
        .update_where::<User>(&Filter::eq("name", json!("same")), changes.clone())
        .await
        .unwrap_err();
    assert!(
        matches!(err, promiscuous::Error::MultiRecordWrite { count: 2, .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("one record"),
        "the error says what to do: {err}"
    );
    let err = apps
        .publisher
        .destroy_where::<User>(&Filter::eq("name", json!("same")))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            promiscuous::Error::MultiRecordWrite {
                operation: "destroy",
                ..
            }
        ),
        "{err}"
    );

    let one = apps
        .publisher
        .update_where::<User>(&Filter::eq("email", json!("2@x")), changes)
        .await
        .unwrap()
        .expect("one record matched");
    assert_eq!(one.email, "new@x");
    applied(&worker, 3).await;
    let replica = apps.replica.records("User");
    assert_eq!(replica[1]["email"], "new@x");
    assert_eq!(replica[0]["email"], "1@x", "the other record is untouched");
    let matched = apps
        .publisher
        .destroy_where::<User>(&Filter::eq("email", json!("none")))
        .await
        .unwrap();
    assert!(!matched, "a filter matching nothing destroys nothing");
    worker.shutdown().await;
}
