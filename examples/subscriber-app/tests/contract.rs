//! Contract and integration tests of the mailer against crowdtap, without
//! crowdtap: its exported mocks and factories stand for it.

/// Crowdtap's mock publishers and factories, as it exports them.
#[path = "../../publisher-app/mocks/mod.rs"]
mod crowdtap;

use crowdtap::factories;
use promiscuous::validate::MockPublisher;
use promiscuous::Backend::Null;
use promiscuous::Promiscuous;
use sea_orm::{Database, DatabaseConnection, EntityTrait};
use subscriber_app::{user, Mail, MailKind, Mailer};

// Every subscribed model, subclass and attribute is published by crowdtap.
promiscuous::validate::contract_tests!(subscribers: crowdtap);

/// The mailer on an in-memory SQLite database in pretend mode (nothing is
/// delivered; a clock and lock of its own), and crowdtap's mock publisher.
async fn mailer() -> (Promiscuous, DatabaseConnection, MockPublisher) {
    let db = Database::connect("sqlite::memory:").await.unwrap();
    subscriber_app::create_tables(&db).await.unwrap();
    let app = subscriber_app::configure(db.clone())
        .backend(Null)
        .build()
        .await
        .unwrap();
    let crowdtap = MockPublisher::new(crowdtap::APP, &app).await.unwrap();
    (app, db, crowdtap)
}

async fn stored(db: &DatabaseConnection, id: i64) -> Option<user::Model> {
    user::Entity::find_by_id(id).one(db).await.unwrap()
}

#[tokio::test]
async fn banning_a_user_sends_a_mail() {
    let (_app, db, crowdtap) = mailer().await;
    let mut user = factories::user();
    crowdtap.create(&user).await.unwrap();
    assert!(Mailer::global().sent_about(user.id).is_empty());

    user.ban(&crowdtap).await.unwrap();
    let banned = Mail {
        user_id: user.id,
        to: Some(user.email.clone()),
        kind: MailKind::Banned,
    };
    assert_eq!(
        Mailer::global().sent_about(user.id),
        std::slice::from_ref(&banned)
    );
    assert_eq!(stored(&db, user.id).await.unwrap().state, "banned");

    // Another update that leaves the state alone sends nothing more.
    user.points = 150;
    user.level = "silver".into();
    assert_eq!(crowdtap.update(&user).await.unwrap().applied, 1);
    assert_eq!(Mailer::global().sent_about(user.id), [banned]);
    assert_eq!(stored(&db, user.id).await.unwrap().level, "silver");
}

#[tokio::test]
async fn a_user_created_banned_gets_the_mail() {
    let (_app, _db, crowdtap) = mailer().await;
    let mut user = factories::user();
    user.state = "banned".into();
    crowdtap.create(&user).await.unwrap();
    assert_eq!(
        Mailer::global().sent_about(user.id)[0].kind,
        MailKind::Banned
    );
}

#[tokio::test]
async fn users_are_replicated_and_destroyed() {
    let (_app, db, crowdtap) = mailer().await;
    let user = factories::user();
    crowdtap.create(&user).await.unwrap();
    let copy = stored(&db, user.id).await.unwrap();
    assert_eq!(
        (copy.name.as_str(), copy.email.as_str()),
        ("John", user.email.as_str())
    );

    crowdtap.destroy(&user).await.unwrap();
    assert!(stored(&db, user.id).await.is_none());
}

#[tokio::test]
async fn registering_sends_a_welcome_mail() {
    let (_app, _db, crowdtap) = mailer().await;
    let user = factories::user();
    crowdtap.create(&user).await.unwrap();
    crowdtap
        .publish(&factories::registration(user.id))
        .await
        .unwrap();
    assert_eq!(
        Mailer::global().sent_about(user.id),
        [Mail {
            user_id: user.id,
            to: None,
            kind: MailKind::Welcome
        }]
    );
}
