//! Integration tests of `#[derive(Publish)]`, `#[derive(Subscribe)]` and `define!`
//! through the `promiscuous` facade.

use std::collections::HashMap;

use promiscuous::core::model::{
    published_attributes, publisher_definitions, subscriber_registrations, AttributeDef,
    AttributeSource, SubscribedAttribute,
};
use promiscuous::{define, Callbacks, Context, Publish, Subscribe};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// An embedded, ephemeral model without id.
#[derive(Debug, Clone, Serialize, Deserialize, Publish)]
#[publish(ephemeral)]
struct Address {
    #[publish]
    street: String,
    #[publish]
    zip: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Publish)]
#[publish(to = "crowdtap/user", virtual(full_name))]
struct User {
    id: i64,
    #[publish]
    first_name: String,
    #[publish]
    last_name: String,
    #[publish]
    email: Option<String>,
    #[publish]
    tags: Vec<String>,
    #[publish]
    score: f64,
    #[publish]
    admin: bool,
    #[publish]
    settings: HashMap<String, String>,
    #[publish]
    extra: serde_json::Value,
    #[publish(embeds)]
    addresses: Vec<Address>,
    #[publish(embeds)]
    home: Option<Address>,
    password: String,
}

impl User {
    fn full_name(&self) -> String {
        format!("{} {}", self.first_name, self.last_name)
    }
}

#[derive(Debug, Serialize, Deserialize, Publish)]
#[publish(parent = User, model = "CrowdtapMember")]
struct Member {
    id: i64,
    #[publish]
    points: u32,
}

#[derive(Debug, Serialize, Deserialize, Publish)]
struct Account {
    #[publish(id)]
    number: String,
    #[publish]
    balance: i64,
}

#[derive(Debug, Serialize, Publish)]
#[publish(ephemeral, virtual(broken))]
struct Broken {
    #[publish]
    name: String,
}

impl Broken {
    fn broken(&self) -> HashMap<(u8, u8), u8> {
        HashMap::from([((1, 2), 3)])
    }
}

/// `crate = "..."` override: the facade reached through another path.
mod facade {
    pub use promiscuous::*;
}

#[derive(Debug, Serialize, Deserialize, Publish, Subscribe)]
#[publish(crate = "crate::facade", ephemeral)]
#[subscribe(crate = "crate::facade")]
struct Relayed {
    #[publish]
    #[subscribe]
    text: String,
}

#[derive(Debug, Serialize, Deserialize, Subscribe)]
#[subscribe(from = "crowdtap/user", as = "User", foreign_key = "crowdtap_id")]
struct Profile {
    crowdtap_id: i64,
    #[subscribe]
    first_name: String,
    #[subscribe(embeds)]
    addresses: Vec<serde_json::Value>,
    #[serde(default)]
    local_note: String,
}

#[derive(Debug, Serialize, Deserialize, Subscribe)]
#[subscribe(parent = Profile, as = "CrowdtapMember", observer, callbacks)]
struct MemberWatcher {
    #[subscribe]
    points: u32,
}

#[promiscuous::async_trait]
impl Callbacks for MemberWatcher {
    async fn after_create(&self, _ctx: &Context) -> Result<(), promiscuous::BoxError> {
        Ok(())
    }
}

fn attr(name: &'static str, source: AttributeSource, json_type: &'static str) -> AttributeDef {
    AttributeDef {
        name,
        source,
        json_type,
    }
}

fn user() -> User {
    User {
        id: 7,
        first_name: "Ada".into(),
        last_name: "Lovelace".into(),
        email: None,
        tags: vec!["math".into()],
        score: 1.5,
        admin: true,
        settings: HashMap::new(),
        extra: json!({"k": 1}),
        addresses: vec![Address {
            street: "1 Main St".into(),
            zip: Some(12345),
        }],
        home: None,
        password: "secret".into(),
    }
}

#[test]
fn derived_publisher_definition() {
    use AttributeSource::*;
    let def = User::definition();
    assert_eq!(def.model, "User");
    assert_eq!(def.to, Some("crowdtap/user"));
    assert!(def.parent.is_none());
    assert!(!def.ephemeral);
    assert_eq!(def.id_kind, "integer");
    assert_eq!(
        def.attributes,
        &[
            attr("first_name", Field, "string"),
            attr("last_name", Field, "string"),
            attr("email", Field, "string?"),
            attr("tags", Field, "array"),
            attr("score", Field, "number"),
            attr("admin", Field, "boolean"),
            attr("settings", Field, "object"),
            attr("extra", Field, "any"),
            attr("addresses", Embedded, "array"),
            attr("home", Embedded, "object?"),
            attr("full_name", Virtual, "any"),
        ]
    );
    assert_eq!(def.endpoint("crowdtap"), "crowdtap/user");
}

#[test]
fn derived_polymorphism_and_ids() {
    let member = Member::definition();
    assert_eq!(member.model, "CrowdtapMember");
    assert_eq!(member.types(), vec!["CrowdtapMember", "User"]);
    assert_eq!(member.endpoint("other"), "crowdtap/user");
    assert_eq!(member.all_attributes().len(), 12);
    assert_eq!(
        member.all_attributes().last().map(|a| a.name),
        Some("points")
    );
    assert_eq!(member.attributes[0].json_type, "integer");

    let account = Account {
        number: "A-1".into(),
        balance: 3,
    };
    assert_eq!(Account::definition().id_kind, "string");
    assert_eq!(account.id(), json!("A-1"));
    assert_eq!(Account::definition().endpoint("bank"), "bank/account");

    let address = Address::definition();
    assert!(address.ephemeral);
    assert_eq!(address.id_kind, "none");
    assert_eq!(
        Address {
            street: String::new(),
            zip: None
        }
        .id(),
        serde_json::Value::Null
    );
    assert_eq!(address.attributes[1].json_type, "integer?");
}

#[test]
fn published_attributes_include_virtual_and_embedded() {
    let user = user();
    assert_eq!(user.id(), json!(7));
    let attributes = published_attributes(&user).unwrap();
    assert_eq!(
        serde_json::Value::Object(attributes),
        json!({
            "first_name": "Ada",
            "last_name": "Lovelace",
            "email": null,
            "tags": ["math"],
            "score": 1.5,
            "admin": true,
            "settings": {},
            "extra": {"k": 1},
            "addresses": [{
                "types": ["Address"],
                "id": null,
                "attributes": {"street": "1 Main St", "zip": 12345},
            }],
            "home": null,
            "full_name": "Ada Lovelace",
        })
    );
}

#[test]
fn virtual_serialisation_failure_names_model_and_attribute() {
    let err = published_attributes(&Broken { name: "x".into() }).unwrap_err();
    match &err {
        promiscuous::Error::Attribute {
            model, attribute, ..
        } => {
            assert_eq!(model, "Broken");
            assert_eq!(attribute, "broken");
        }
        other => panic!("unexpected error {other:?}"),
    }
    assert!(err.to_string().contains("broken"), "{err}");
}

#[test]
fn derived_subscriber_definition() {
    let def = Profile::definition();
    assert_eq!(def.model, "Profile");
    assert_eq!(def.as_name, "User");
    assert_eq!(def.from_pattern(), "crowdtap/user");
    assert_eq!(def.key_field(), "crowdtap_id");
    assert!(!def.is_observer());
    assert_eq!(
        def.all_attributes(),
        vec![
            SubscribedAttribute {
                name: "first_name",
                embedded: false
            },
            SubscribedAttribute {
                name: "addresses",
                embedded: true
            },
        ]
    );

    let watcher = MemberWatcher::definition();
    assert_eq!(watcher.model, "MemberWatcher");
    assert_eq!(watcher.as_name, "CrowdtapMember");
    assert!(watcher.is_observer());
    assert_eq!(watcher.from_pattern(), "crowdtap/user");
    assert_eq!(watcher.key_field(), "crowdtap_id");
    assert_eq!(watcher.all_attributes().len(), 3);

    let relayed = <Relayed as Subscribe>::definition();
    assert_eq!(relayed.from_pattern(), "*/relayed");
    assert_eq!(relayed.key_field(), "id");
    assert_eq!(<Relayed as Publish>::definition().id_kind, "none");
}

// ---- define! ----------------------------------------------------------------

#[derive(Debug, Serialize, Deserialize)]
struct Shop {
    code: String,
    name: String,
    addresses: Vec<Address>,
}

impl Shop {
    fn label(&self) -> String {
        format!("{} ({})", self.name, self.code)
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Outlet {
    code: String,
    name: String,
    addresses: Vec<Address>,
    size: u8,
}

#[derive(Debug, Serialize, Deserialize)]
struct Visit {
    shop: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Ticket {
    id: u64,
    title: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct ShopCopy {
    shop_code: String,
    name: String,
    addresses: Vec<serde_json::Value>,
}

#[derive(Debug, Serialize, Deserialize)]
struct VisitLog {
    shop: String,
}

#[promiscuous::async_trait]
impl Callbacks for ShopCopy {}

mod models {
    #[derive(Debug, serde::Serialize)]
    pub struct Pinged {
        pub at: i64,
    }
}

define! {
    publish Shop { to: "retail/shop", id: code, attributes: [name], embeds: [addresses], virtual: [label] }
    publish Outlet { parent: Shop, model: "RetailOutlet", id: code, attributes: [size] }
    publish Visit { ephemeral, attributes: [shop] };
    publish Ticket { attributes: [title], crate: "crate::facade" }
    publish models::Pinged { ephemeral, id: at, attributes: [at] }
    subscribe ShopCopy { from: "retail/shop", as: "Shop", foreign_key: "shop_code", attributes: [name], embeds: [addresses], callbacks }
    subscribe VisitLog { observer, attributes: [shop] }
}

#[test]
fn define_publishers() {
    use AttributeSource::*;
    let shop = Shop::definition();
    assert_eq!(shop.model, "Shop");
    assert_eq!(shop.to, Some("retail/shop"));
    assert_eq!(shop.id_kind, "string");
    assert_eq!(
        shop.attributes,
        &[
            attr("name", Field, "any"),
            attr("addresses", Embedded, "any"),
            attr("label", Virtual, "any"),
        ]
    );
    let value = Shop {
        code: "S1".into(),
        name: "Corner".into(),
        addresses: vec![],
    };
    assert_eq!(value.id(), json!("S1"));
    assert_eq!(
        serde_json::Value::Object(published_attributes(&value).unwrap()),
        json!({"name": "Corner", "addresses": [], "label": "Corner (S1)"})
    );

    let outlet = Outlet::definition();
    assert_eq!(outlet.types(), vec!["RetailOutlet", "Shop"]);
    assert_eq!(outlet.endpoint("x"), "retail/shop");

    let visit = Visit::definition();
    assert!(visit.ephemeral);
    assert_eq!(visit.id_kind, "none");
    assert_eq!(Visit { shop: "S1".into() }.id(), serde_json::Value::Null);

    assert_eq!(Ticket::definition().id_kind, "integer");
    assert_eq!(
        Ticket {
            id: 3,
            title: String::new()
        }
        .id(),
        json!(3)
    );

    let pinged = models::Pinged::definition();
    assert_eq!(pinged.model, "Pinged");
    assert_eq!(pinged.id_kind, "integer");
    assert_eq!(models::Pinged { at: 9 }.id(), json!(9));
}

#[test]
fn define_subscribers() {
    let copy = ShopCopy::definition();
    assert_eq!(copy.model, "ShopCopy");
    assert_eq!(copy.as_name, "Shop");
    assert_eq!(copy.from_pattern(), "retail/shop");
    assert_eq!(copy.key_field(), "shop_code");
    assert!(!copy.is_observer());
    assert_eq!(
        copy.all_attributes(),
        vec![
            SubscribedAttribute {
                name: "name",
                embedded: false
            },
            SubscribedAttribute {
                name: "addresses",
                embedded: true
            },
        ]
    );
    let log = VisitLog::definition();
    assert!(log.is_observer());
    assert_eq!(log.from_pattern(), "*/visit_log");
}

#[test]
fn registrations_are_collected() {
    let publishers: Vec<_> = publisher_definitions().iter().map(|d| d.model).collect();
    for model in [
        "Account",
        "Address",
        "Broken",
        "CrowdtapMember",
        "Pinged",
        "Relayed",
        "RetailOutlet",
        "Shop",
        "Ticket",
        "User",
        "Visit",
    ] {
        assert!(publishers.contains(&model), "{model} not in {publishers:?}");
    }
    let subscribers: Vec<_> = subscriber_registrations()
        .iter()
        .map(|r| ((r.definition)().model, r.handler.definition().model))
        .collect();
    for model in [
        "MemberWatcher",
        "Profile",
        "Relayed",
        "ShopCopy",
        "VisitLog",
    ] {
        assert!(
            subscribers.contains(&(model, model)),
            "{model} not in {subscribers:?}"
        );
    }
}

/// A subscriber named for the storage apart from its Rust type (a sea-orm `Model`).
#[derive(Debug, Serialize, Deserialize, Subscribe)]
#[subscribe(model = "Customer")]
struct Model {
    id: i64,
    #[subscribe]
    name: String,
}

/// Both names, when the published type differs from the stored model.
#[derive(Debug, Serialize, Deserialize, Subscribe)]
#[subscribe(model = "Client", as = "User")]
struct ClientRow {
    id: i64,
}

#[test]
fn subscriber_model_option_names_the_stored_model_and_defaults_as() {
    let def = <Model as Subscribe>::definition();
    assert_eq!((def.model, def.as_name), ("Customer", "Customer"));
    assert_eq!(def.from_pattern(), "*/customer");
    let def = <ClientRow as Subscribe>::definition();
    assert_eq!((def.model, def.as_name), ("Client", "User"));
    assert_eq!(def.from_pattern(), "*/user");
}

/// A row type named for the storage in a central definition.
#[derive(Debug, Serialize, Deserialize)]
struct ShopRow {
    id: i64,
    name: String,
}

define! {
    subscribe ShopRow { model: "StoredShop", from: "retail/shop", attributes: [name] }
}

#[test]
fn define_subscriber_model_option() {
    let def = <ShopRow as Subscribe>::definition();
    assert_eq!((def.model, def.as_name), ("StoredShop", "StoredShop"));
    assert_eq!(def.from_pattern(), "retail/shop");
}
