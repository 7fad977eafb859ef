//! Configuration is validated when built, with errors that say what to fix.

mod common;

use std::sync::Arc;
use std::time::Duration;

use promiscuous::memory::MemoryStorage;
use promiscuous::{ConfigBuilder, Error, Mode, Promiscuous};

mod models {
    use promiscuous::Subscribe;
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Serialize, Deserialize, Subscribe)]
    pub struct User {
        pub id: i64,
        #[subscribe]
        pub name: String,
    }

    /// Stands for the same published type as `User`, from the same endpoints.
    #[derive(Debug, Serialize, Deserialize, Subscribe)]
    #[subscribe(as = "User")]
    pub struct Person {
        pub id: i64,
        #[subscribe]
        pub name: String,
    }

    #[derive(Debug, Serialize, Deserialize, Subscribe)]
    #[subscribe(observer)]
    pub struct Watcher {
        #[subscribe]
        pub name: String,
    }
}

fn memory(builder: ConfigBuilder) -> ConfigBuilder {
    let name = common::fresh("config");
    builder
        .broker_url(format!("memory://{name}"))
        .redis_url(format!("memory://{name}"))
        .storage(Arc::new(MemoryStorage::new()))
        .subscriber::<models::User>()
}

async fn config_error(builder: ConfigBuilder) -> (&'static str, String) {
    match builder.build().await {
        Err(Error::Config { field, problem }) => (field, problem),
        Err(other) => panic!("expected a configuration error, got {other}"),
        Ok(_) => panic!("expected a configuration error, the configuration was accepted"),
    }
}

#[tokio::test]
async fn a_valid_configuration_builds_with_documented_defaults() {
    let app = memory(Promiscuous::configure().app("crowdtap"))
        .build()
        .await
        .unwrap();
    let config = app.config();
    assert_eq!(config.mode, Mode::Causal);
    assert_eq!(
        (config.prefetch, config.runners, config.hash_size),
        (1000, 8, 1 << 20)
    );
    assert_eq!(config.recovery_timeout, Duration::from_secs(10));
    assert!(app.healthy());
}

#[tokio::test]
async fn numbers_and_durations_are_checked() {
    let cases: Vec<(ConfigBuilder, &str, &str)> = vec![
        (
            Promiscuous::configure().prefetch(0),
            "prefetch",
            "at least 1",
        ),
        (Promiscuous::configure().runners(0), "runners", "at least 1"),
        (
            Promiscuous::configure().prefetch(4).runners(8),
            "runners",
            "raise prefetch or lower runners",
        ),
        (
            Promiscuous::configure().hash_size(0),
            "hash_size",
            "at least 1",
        ),
        (
            Promiscuous::configure().max_attempts(0),
            "max_attempts",
            "at least 1",
        ),
        (
            Promiscuous::configure().lock_ttl(Duration::ZERO),
            "lock_ttl",
            "greater than zero",
        ),
        (
            Promiscuous::configure().recovery_timeout(Duration::ZERO),
            "recovery_timeout",
            "greater than zero",
        ),
        (
            Promiscuous::configure().app("my app"),
            "app",
            "letters, digits",
        ),
    ];
    for (builder, field, hint) in cases {
        let builder = if field == "app" {
            builder
        } else {
            builder.app("crowdtap")
        };
        let (got, problem) = config_error(memory(builder)).await;
        assert_eq!(got, field, "{problem}");
        assert!(problem.contains(hint), "{field}: {problem}");
    }
}

#[tokio::test]
async fn urls_name_the_missing_backend_and_the_feature_that_brings_it() {
    let base = || {
        Promiscuous::configure()
            .app("crowdtap")
            .storage(Arc::new(MemoryStorage::new()))
            .subscriber::<models::User>()
    };
    // Without the backend compiled in, the error names the feature to enable;
    // with it, connecting fails and names the server. Never the password.
    let result = base()
        .broker_url("amqp://guest:secret@127.0.0.1:1/")
        .redis_url("memory://x")
        .build()
        .await;
    let problem = match result {
        Err(Error::Config { field, problem }) if cfg!(not(feature = "amqp")) => {
            assert_eq!(field, "broker_url");
            assert!(problem.contains("`amqp` feature"), "{problem}");
            assert!(
                problem.contains("memory"),
                "lists what is available: {problem}"
            );
            problem
        }
        Err(error @ Error::Connection(_)) if cfg!(feature = "amqp") => error.to_string(),
        other => panic!("unexpected outcome: {other:?}"),
    };
    assert!(
        problem.contains("127.0.0.1:1"),
        "names the server: {problem}"
    );
    assert!(
        !problem.contains("secret"),
        "passwords are not shown: {problem}"
    );

    let result = base()
        .broker_url("memory://x")
        .redis_url("redis://127.0.0.1:1/")
        .build()
        .await;
    match result {
        Err(Error::Config { field, problem }) if cfg!(not(feature = "redis")) => {
            assert_eq!(field, "redis_url", "the setting the user called is named");
            assert!(problem.contains("`redis` feature"), "{problem}");
        }
        Err(error @ Error::Connection(_)) if cfg!(feature = "redis") => {
            assert!(error.to_string().contains("127.0.0.1:1"), "{error}");
        }
        other => panic!("unexpected outcome: {other:?}"),
    }

    let (field, problem) =
        config_error(base().broker_url("kafka://x").redis_url("memory://x")).await;
    assert_eq!(field, "broker_url");
    assert!(problem.contains("no backend for kafka://x"), "{problem}");

    let (_, problem) = config_error(base().broker_url("localhost").redis_url("memory://x")).await;
    assert!(problem.contains("not a URL"), "{problem}");

    let (field, problem) = config_error(base().broker_url("memory://x").redis_url("null://")).await;
    assert_eq!(field, "redis_url");
    assert!(
        problem.contains("no backend for null://"),
        "null:// is only a broker: {problem}"
    );
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn an_unknown_redis_url_parameter_is_refused_naming_the_setting() {
    let (field, problem) = config_error(
        memory(Promiscuous::configure().app("crowdtap"))
            .redis_url("redis://127.0.0.1:6379/?prefx=crowdtap:"),
    )
    .await;
    assert_eq!(field, "redis_url");
    assert!(problem.contains("did you mean `prefix`"), "{problem}");
    let (field, _) = config_error(
        memory(Promiscuous::configure().app("crowdtap"))
            .clock_url("redis://127.0.0.1:6379/?prefx=crowdtap:"),
    )
    .await;
    assert_eq!(field, "clock_url");
}

#[tokio::test]
async fn an_app_name_too_long_for_a_queue_is_refused_when_built() {
    let (field, problem) =
        config_error(memory(Promiscuous::configure().app("a".repeat(300)))).await;
    assert_eq!(field, "app");
    assert!(problem.contains("255 bytes"), "{problem}");
    memory(Promiscuous::configure().app("a".repeat(249)))
        .build()
        .await
        .expect("249 bytes leave room for `.error`");
}

#[tokio::test]
async fn the_app_name_is_required() {
    if std::env::var(promiscuous::ENV_APP).is_ok() {
        return; // the environment names the app; nothing to check here
    }
    let (field, problem) = config_error(memory(Promiscuous::configure())).await;
    assert_eq!(field, "app");
    assert!(
        problem.contains(".app(") && problem.contains("PROMISCUOUS_APP"),
        "{problem}"
    );
}

#[tokio::test]
async fn stored_subscribers_need_a_storage_and_observers_do_not() {
    let name = common::fresh("nostore");
    let (field, problem) = config_error(
        Promiscuous::configure()
            .app("mailer")
            .broker_url(format!("memory://{name}"))
            .redis_url(format!("memory://{name}"))
            .subscriber::<models::User>(),
    )
    .await;
    assert_eq!(field, "storage");
    assert!(
        problem.contains("subscriber User stores records"),
        "{problem}"
    );

    let observer = Promiscuous::configure()
        .app("mailer")
        .broker_url(format!("memory://{name}"))
        .redis_url(format!("memory://{name}"))
        .subscriber::<models::Watcher>()
        .build()
        .await;
    assert!(observer.is_ok(), "{:?}", observer.err());
}

#[tokio::test]
async fn two_subscribers_standing_for_one_published_type_are_refused() {
    let err = memory(Promiscuous::configure().app("mailer"))
        .subscriber::<models::Person>()
        .build()
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Definition { .. }), "{text}");
    assert!(
        text.contains("both User and Person stand for User from */user"),
        "{text}"
    );
}

#[test]
fn modes_parse_by_name() {
    assert_eq!(Mode::parse("Global").unwrap(), Mode::Global);
    assert_eq!(Mode::parse("bareback").unwrap(), Mode::Unordered);
    let err = Mode::parse("eventual").unwrap_err().to_string();
    assert!(err.contains("causal, global, weak or unordered"), "{err}");
}

#[test]
fn secrets_stay_out_of_debug_output() {
    let builder = Promiscuous::configure()
        .app("x")
        .broker_url("amqp://guest:hunter2@host/");
    let shown = format!("{builder:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
}

#[tokio::test]
async fn several_clock_urls_spread_the_counters() {
    let name = common::fresh("shards");
    let app = Promiscuous::configure()
        .app("crowdtap")
        .broker_url(format!("memory://{name}"))
        .lock_url(format!("memory://{name}"))
        .clock_urls([format!("memory://{name}-a"), format!("memory://{name}-b")])
        .storage(Arc::new(MemoryStorage::new()))
        .subscriber::<models::User>()
        .build()
        .await
        .unwrap();
    assert_eq!(app.clock().name(), "sharded");
    let (field, problem) =
        config_error(memory(Promiscuous::configure().app("x")).clock_urls(Vec::<String>::new()))
            .await;
    assert_eq!(field, "clock_urls");
    assert!(problem.contains("at least one node"), "{problem}");
}

#[tokio::test]
async fn a_publisher_only_instance_needs_no_storage_and_cannot_subscribe() {
    let name = common::fresh("pubonly");
    let app = Promiscuous::configure()
        .app("crowdtap")
        .broker_url(format!("memory://{name}"))
        .redis_url(format!("memory://{name}"))
        .no_subscribers()
        .build()
        .await
        .unwrap();
    let err = app.subscribe().await.unwrap_err().to_string();
    assert!(err.contains("no subscribed model"), "{err}");
}

mod backends {
    use promiscuous::{Publish, Subscribe};
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Clone, Serialize, Deserialize, Publish)]
    #[publish(to = "backends/note")]
    pub struct Note {
        pub id: i64,
        #[publish]
        pub text: String,
    }

    #[derive(Debug, Serialize, Deserialize, Subscribe)]
    #[subscribe(from = "backends/note", as = "Note")]
    pub struct NoteCopy {
        pub id: i64,
        #[subscribe]
        pub text: String,
    }
}

/// A publisher-only instance of the app `backends` on `backend`.
async fn backends_publisher(backend: promiscuous::Backend) -> Promiscuous {
    Promiscuous::configure()
        .app("backends")
        .backend(backend)
        .storage(Arc::new(MemoryStorage::new()))
        .no_subscribers()
        .build()
        .await
        .unwrap()
}

#[tokio::test]
async fn backend_null_builds_with_nothing_else_and_delivers_nothing() {
    use promiscuous::Backend::Null;
    let publisher = backends_publisher(Null).await;
    publisher
        .create(&backends::Note {
            id: 1,
            text: "hello".into(),
        })
        .await
        .unwrap();
    // Another Null instance has a clock of its own.
    let other = backends_publisher(Null).await;
    assert!(publisher.healthy() && other.healthy());
    let (mine, _) = publisher.clock().scan("", 0).await.unwrap();
    let (theirs, _) = other.clock().scan("", 0).await.unwrap();
    assert!(!mine.is_empty(), "the create advanced a counter");
    assert!(
        theirs.is_empty(),
        "each Null instance has a clock of its own: {theirs:?}"
    );
}

#[tokio::test]
async fn backend_memory_connects_the_instances_that_share_its_name() {
    use promiscuous::Backend;
    let name = common::fresh("backend-memory");
    let replica = Arc::new(MemoryStorage::new());
    let subscriber = Promiscuous::configure()
        .app(common::fresh("subscriber"))
        .backend(Backend::Memory(name.clone()))
        .storage(replica.clone())
        .subscriber::<backends::NoteCopy>()
        .build()
        .await
        .unwrap();
    let worker = subscriber.subscribe().await.unwrap();
    let publisher = backends_publisher(Backend::Memory(name)).await;
    publisher
        .create(&backends::Note {
            id: 7,
            text: "through memory".into(),
        })
        .await
        .unwrap();
    common::applied(&worker, 1).await;
    assert_eq!(replica.records("NoteCopy")[0]["text"], "through memory");
}

#[tokio::test]
async fn a_wrong_backend_is_refused_when_built_naming_it() {
    use promiscuous::Backend;
    let (field, problem) = config_error(
        Promiscuous::configure()
            .app("backends")
            .backend(Backend::Amqp("redis://user:secret@127.0.0.1/".into())),
    )
    .await;
    assert_eq!(field, "backend");
    assert!(
        problem.contains("Backend::Amqp takes an `amqp://`"),
        "{problem}"
    );
    assert!(
        !problem.contains("secret"),
        "credentials stay out: {problem}"
    );
    let (field, problem) = config_error(
        Promiscuous::configure()
            .app("backends")
            .backend(Backend::Memory("no spaces".into())),
    )
    .await;
    assert_eq!(field, "backend");
    assert!(
        problem.contains("Backend::Memory(\"no spaces\")"),
        "{problem}"
    );
    // A later URL method overrides what the backend set.
    Promiscuous::configure()
        .app("backends")
        .backend(Backend::Memory(common::fresh("override")))
        .broker_url("null://")
        .storage(Arc::new(MemoryStorage::new()))
        .no_subscribers()
        .build()
        .await
        .unwrap();
}
