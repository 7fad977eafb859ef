//! The commands on the in-process broker and memory storage: what they do
//! to the app, and their exit status.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use promiscuous::memory::MemoryStorage;
use promiscuous::{Backend, Promiscuous, Publish, StorageSync, Subscribe};
use promiscuous_cli::{App, Command, DeadLettersCommand, PublishArgs, StatusArgs};
use promiscuous_core::testkit::{eventually, unique};
use serde::{Deserialize, Serialize};

/// The publisher's account.
#[derive(Debug, Clone, Serialize, Deserialize, Publish)]
#[publish(to = "bank/account")]
struct Account {
    id: i64,
    #[publish]
    owner: String,
}

/// A subscriber's copy.
#[derive(Debug, Serialize, Deserialize, Subscribe)]
#[subscribe(model = "Account", from = "bank/account")]
struct AccountCopy {
    id: i64,
    #[subscribe]
    owner: String,
}

fn publish(model: &str, filter: Option<&str>) -> Command {
    Command::Publish(PublishArgs {
        model: model.to_owned(),
        filter: filter.map(str::to_owned),
        partition: None,
        batch_size: Some(40),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_syncs_the_storage_to_a_late_subscriber() {
    let bus = unique("cli-bus");
    let storage = Arc::new(MemoryStorage::new());
    let bank = || {
        Promiscuous::configure()
            .app("bank")
            .backend(Backend::Memory(bus.clone()))
            .storage(storage.clone())
            .no_subscribers()
    };
    let publisher = bank().build().await.unwrap();
    for id in 0..250 {
        let account = Account {
            id,
            owner: format!("owner {id}"),
        };
        publisher.create(&account).await.unwrap();
    }
    // Joins after the writes: only a sync brings them.
    let replica = Arc::new(MemoryStorage::new());
    let subscriber = Promiscuous::configure()
        .app(unique("auditor"))
        .backend(Backend::Memory(bus.clone()))
        .storage(replica.clone())
        .subscriber::<AccountCopy>()
        .build()
        .await
        .unwrap();
    let mut worker = subscriber.subscribe().await.unwrap();

    let app = || App::new(bank()).sync(StorageSync::<Account>::new());
    assert_eq!(publish("account", None).run(app()).await, ExitCode::SUCCESS);
    assert!(
        eventually(Duration::from_secs(20), || async {
            replica.records("Account").len() == 250
        })
        .await,
        "the subscriber has {} of 250 accounts",
        replica.records("Account").len()
    );
    assert_eq!(worker.stats().recovered, 0);

    // What cannot be done fails, saying why, and publishes nothing.
    let received = worker.stats().received;
    assert_eq!(publish("Loan", None).run(app()).await, ExitCode::FAILURE);
    assert_eq!(
        publish("Account", Some("owner = 'x'")).run(app()).await,
        ExitCode::FAILURE
    );
    assert_eq!(
        publish("Account", None).run(App::new(bank())).await,
        ExitCode::FAILURE,
        "no model registered"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(worker.stats().received, received);

    // status and dead-letters answer on the in-process broker.
    let subscriber_app = || {
        App::new(
            Promiscuous::configure()
                .app(subscriber.app())
                .backend(Backend::Memory(bus.clone()))
                .storage(replica.clone())
                .subscriber::<AccountCopy>(),
        )
    };
    let status = Command::Status(StatusArgs { json: true });
    assert_eq!(status.run(subscriber_app()).await, ExitCode::SUCCESS);
    let list = Command::DeadLetters(DeadLettersCommand::List { json: false });
    assert_eq!(list.run(subscriber_app()).await, ExitCode::SUCCESS);
    let show = Command::DeadLetters(DeadLettersCommand::Show {
        id: "0123456789abcdef".into(),
    });
    assert_eq!(
        show.run(subscriber_app()).await,
        ExitCode::FAILURE,
        "no such dead letter"
    );

    worker.shutdown().await;
}

#[test]
fn the_command_line_parses_as_documented() {
    use clap::Parser;
    let parse = |args: &[&str]| promiscuous_cli::Cli::try_parse_from(args);
    assert!(parse(&[
        "app",
        "subscribe",
        "--prefetch",
        "5",
        "--mode",
        "global",
        "--recovery-timeout",
        "10s"
    ])
    .is_ok());
    assert!(parse(&["app", "subscribe", "--bareback"]).is_ok());
    let error = parse(&["app", "subscribe", "--bareback", "--mode", "causal"]).unwrap_err();
    assert!(error.to_string().contains("--mode"), "{error}");
    let error = parse(&["app", "subscribe", "--mode", "fifo"]).unwrap_err();
    assert!(error.to_string().contains("fifo"), "{error}");
    let error = parse(&["app", "subscribe", "--recovery-timeout", "soon"]).unwrap_err();
    assert!(error.to_string().contains("500ms"), "{error}");
    assert!(parse(&["app", "sync", "User", "--partition", "1/4"]).is_ok());
    assert!(parse(&["app", "mocks", "-o", "mocks/app.rs"]).is_ok());
    assert!(parse(&["app", "dead-letters", "replay", "--all"]).is_ok());
    assert!(parse(&[
        "app",
        "dead-letters",
        "purge",
        "0123456789abcdef",
        "fedcba9876543210"
    ])
    .is_ok());
    let error = parse(&["app", "dead-letters", "replay"]).unwrap_err();
    assert!(
        error.to_string().contains("--all"),
        "replay needs ids or --all: {error}"
    );
    let error = parse(&["app", "dead-letters", "replay", "abc", "--all"]).unwrap_err();
    assert!(error.to_string().contains("cannot be used with"), "{error}");
}
