//! Contract and integration tests of the mailer against crowdtap, without
//! crowdtap: its exported mocks and factories stand for it.

/// Crowdtap's mock publishers and factories, as it exports them.
#[path = "../../publisher-app/mocks/mod.rs"]
mod crowdtap;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crowdtap::factories;
use promiscuous::memory::MemoryStorage;
use promiscuous::validate::{self, MockPublisher};
use promiscuous::Promiscuous;
use subscriber_app::{Mail, MailKind, Mailer};

/// Every subscribed model, subclass and attribute is published by crowdtap.
#[test]
fn subscriptions_match_what_crowdtap_publishes() {
    let report = validate::subscribers(&crowdtap::definitions(), crowdtap::APP).unwrap();
    assert_eq!(report.checked, ["Member", "User", "UserEvent"]);
}

/// The mailer on memory backends, its storage, and crowdtap's mock.
async fn mailer() -> (Promiscuous, Arc<MemoryStorage>, MockPublisher) {
    static INSTANCE: AtomicU64 = AtomicU64::new(0);
    let storage = Arc::new(MemoryStorage::new());
    let app = subscriber_app::configure()
        .broker_url("null://")
        .redis_url(format!(
            "memory://mailer-test-{}",
            INSTANCE.fetch_add(1, Ordering::Relaxed)
        ))
        .storage(storage.clone())
        .build()
        .await
        .unwrap();
    let crowdtap = MockPublisher::new(crowdtap::APP, &app).await.unwrap();
    (app, storage, crowdtap)
}

#[tokio::test]
async fn banning_a_member_sends_a_mail() {
    let (_app, storage, crowdtap) = mailer().await;
    let mut member = factories::member();
    crowdtap.create(&member).await.unwrap();
    assert!(Mailer::global().sent_about(member.id).is_empty());

    member.ban(&crowdtap).await.unwrap();
    let banned = Mail {
        member_id: member.id,
        to: Some(member.email.clone()),
        kind: MailKind::Banned,
    };
    assert_eq!(
        Mailer::global().sent_about(member.id),
        std::slice::from_ref(&banned)
    );
    let stored = storage.records("Member");
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["state"], "banned");

    // Another update that leaves the state alone sends nothing more.
    member.points = 150;
    member.level = "silver".into();
    assert_eq!(crowdtap.update(&member).await.unwrap().applied, 1);
    assert_eq!(Mailer::global().sent_about(member.id), [banned]);
}

#[tokio::test]
async fn a_member_created_banned_gets_the_mail() {
    let (_app, _storage, crowdtap) = mailer().await;
    let mut member = factories::member();
    member.state = "banned".into();
    crowdtap.create(&member).await.unwrap();
    assert_eq!(
        Mailer::global().sent_about(member.id)[0].kind,
        MailKind::Banned
    );
}

#[tokio::test]
async fn users_and_admins_are_replicated_as_users() {
    let (_app, storage, crowdtap) = mailer().await;
    let user = factories::user();
    let admin = factories::admin();
    crowdtap.create(&user).await.unwrap();
    crowdtap.create(&admin).await.unwrap();
    let mut names: Vec<_> = storage
        .records("User")
        .iter()
        .map(|r| r["email"].clone())
        .collect();
    names.sort_by_key(|v| v.to_string());
    let mut expected = vec![
        serde_json::json!(user.email),
        serde_json::json!(admin.email),
    ];
    expected.sort_by_key(|v| v.to_string());
    assert_eq!(names, expected);

    crowdtap.destroy(&user).await.unwrap();
    assert_eq!(storage.records("User").len(), 1);
    // Groups are published but not subscribed: nothing happens.
    let stats = crowdtap.create(&factories::user_group()).await.unwrap();
    assert_eq!(stats.applied, 0);
}

#[tokio::test]
async fn registering_sends_a_welcome_mail() {
    let (_app, storage, crowdtap) = mailer().await;
    let user = factories::user();
    crowdtap.create(&user).await.unwrap();
    crowdtap
        .publish(&factories::registration(user.id))
        .await
        .unwrap();
    assert_eq!(
        Mailer::global().sent_about(user.id),
        [Mail {
            member_id: user.id,
            to: None,
            kind: MailKind::Welcome
        }]
    );
    // An observer stores nothing.
    assert!(storage.records("UserEvent").is_empty());
}
