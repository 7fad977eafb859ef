//! The `crowdtap` binary's promiscuous commands, run as an operator runs
//! them, against the real PostgreSQL, RabbitMQ and Redis: `publish` (initial
//! sync) and `mocks`.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use promiscuous::memory::MemoryStorage;
use promiscuous::{Promiscuous, Subscribe};
use promiscuous_core::testkit::{eventually, unique};
use promiscuous_sql::testkit::{Engine, TestDatabase};
use sea_orm::ConnectionTrait;
use serde::{Deserialize, Serialize};

/// A subscriber's copy of crowdtap's users, to see what a sync delivers.
#[derive(Debug, Serialize, Deserialize, Subscribe)]
#[subscribe(model = "User", from = "crowdtap/user")]
struct Replica {
    id: i64,
    #[subscribe]
    name: String,
}

/// The tests that publish take turns: every queue bound to `crowdtap/user`
/// gets what any of them publishes, and each runs on a clock of its own.
static PUBLISHING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn amqp_url() -> String {
    std::env::var("PROMISCUOUS_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

/// The local Redis with a key prefix of this test's.
fn redis_url(prefix: &str) -> String {
    format!("redis://127.0.0.1:6379/?prefix={prefix}:")
}

/// Runs the `crowdtap` binary on `database` with `redis`.
fn crowdtap(database: &str, redis: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_crowdtap"))
        .args(args)
        .env("DATABASE_URL", database)
        .env("PROMISCUOUS_AMQP_URL", amqp_url())
        .env("PROMISCUOUS_REDIS_URL", redis)
        .output()
        .expect("the crowdtap binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A crowdtap database holding users 1 to `count`, written without publishing.
async fn users(label: &str, count: u32) -> TestDatabase {
    let db = TestDatabase::create(Engine::Postgres, label).await;
    publisher_app::create_tables(db.connection())
        .await
        .expect("crowdtap's tables");
    db.connection()
        .execute_unprepared(&format!(
            "INSERT INTO users (id, name, email, state, points, password_digest) \
             SELECT g, 'user ' || g, 'user' || g || '@example.com', 'active', 0, 'secret' \
             FROM generate_series(1, {count}) AS g"
        ))
        .await
        .expect("users inserted");
    db
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_syncs_ten_thousand_rows_to_a_new_subscriber() {
    const USERS: usize = 10_000;
    let _turn = PUBLISHING.lock().await;
    let db = users("crowdtap_cli_sync", USERS as u32).await;
    let redis = redis_url(&unique("crowdtap-cli-sync"));
    let replica = Arc::new(MemoryStorage::new());
    let subscriber = Promiscuous::configure()
        .app(unique("crowdtap-cli-replica"))
        .broker_url(amqp_url())
        .redis_url(&redis)
        .storage(replica.clone())
        .subscriber::<Replica>()
        .build()
        .await
        .expect("RabbitMQ and Redis are running");
    let mut worker = subscriber.subscribe().await.expect("subscribed");

    let output = crowdtap(db.url(), &redis, &["publish", "User"]);
    let stdout = text(&output.stdout);
    assert!(
        output.status.success(),
        "publish failed: {stdout}{}",
        text(&output.stderr)
    );
    assert!(
        stdout.contains(&format!(
            "published {USERS} User records in 100 messages ({USERS} read, 0 deleted meanwhile)"
        )),
        "{stdout}"
    );
    // Not a terminal: progress comes as lines, not a bar.
    assert!(
        !text(&output.stderr).contains('\u{1b}'),
        "{}",
        text(&output.stderr)
    );

    let all_there = eventually(Duration::from_secs(120), || async {
        replica.records("User").len() == USERS
    })
    .await;
    let stats = worker.stats();
    assert!(
        all_there,
        "the subscriber has {} of {USERS} users ({stats:?})",
        replica.records("User").len()
    );
    assert_eq!(stats.recovered, 0, "a sync waits for nothing: {stats:?}");
    let mut names: Vec<String> = replica
        .records("User")
        .iter()
        .map(|record| record["name"].as_str().unwrap_or_default().to_owned())
        .collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), USERS, "every user once, with its name");
    worker.shutdown().await;
    subscriber.shutdown().await.expect("shut down");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_takes_a_filter_and_a_partition_and_says_what_is_wrong() {
    let _turn = PUBLISHING.lock().await;
    let db = users("crowdtap_cli_filter", 20).await;
    let redis = redis_url(&unique("crowdtap-cli-filter"));

    let output = crowdtap(
        db.url(),
        &redis,
        &["sync", "user", "--filter", "id <= 10", "--partition", "0/2"],
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    // Ids 2, 4, 6, 8 and 10: partition 0 of 2 of the first ten.
    assert!(
        text(&output.stdout).contains("published 5 User records"),
        "{}",
        text(&output.stdout)
    );

    let unknown = crowdtap(db.url(), &redis, &["publish", "Order"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        text(&unknown.stderr).contains("cannot sync Order: the models this binary syncs are User"),
        "{}",
        text(&unknown.stderr)
    );

    let bad_filter = crowdtap(
        db.url(),
        &redis,
        &["publish", "User", "--filter", "no_such_column = 1"],
    );
    assert_eq!(bad_filter.status.code(), Some(1));
    let stderr = text(&bad_filter.stderr);
    assert!(
        stderr.contains("no_such_column")
            && stderr.contains("--filter is an SQL condition on table users"),
        "{stderr}"
    );

    let bad_partition = crowdtap(db.url(), &redis, &["publish", "User", "--partition", "2/2"]);
    assert_eq!(bad_partition.status.code(), Some(2), "a usage error");
    assert!(
        text(&bad_partition.stderr).contains("I/N"),
        "{}",
        text(&bad_partition.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mocks_writes_the_file_the_contract_test_checks() {
    let db = TestDatabase::create(Engine::Postgres, "crowdtap_cli_mocks").await;
    let redis = redis_url(&unique("crowdtap-cli-mocks"));
    let dir = std::env::temp_dir().join(unique("crowdtap-mocks"));
    let written = dir.join("crowdtap.rs");
    let output = crowdtap(
        db.url(),
        &redis,
        &["mocks", "-o", written.to_str().unwrap()],
    );
    assert!(output.status.success(), "{}", text(&output.stderr));

    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("mocks/crowdtap.rs");
    let written_text = std::fs::read_to_string(&written).expect("mocks written");
    assert_eq!(
        written_text,
        std::fs::read_to_string(committed).expect("committed mocks"),
        "`mocks -o` writes the committed file"
    );
    let report = promiscuous::validate::Publishers::new(&written)
        .app(publisher_app::APP)
        .check()
        .expect("validate::publishers accepts what `mocks -o` wrote");
    println!("{report}");

    let to_stdout = crowdtap(db.url(), &redis, &["mocks"]);
    assert!(to_stdout.status.success());
    assert_eq!(
        text(&to_stdout.stdout),
        written_text,
        "without -o, the same on stdout"
    );
    let _ = std::fs::remove_dir_all(dir);
}
