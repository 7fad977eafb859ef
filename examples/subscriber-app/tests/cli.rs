//! The `mailer` binary run as an operator runs it, against the real
//! RabbitMQ and Redis, with crowdtap's mocks publishing for real:
//! `subscribe` with its metrics and health check, `dead-letters` list and
//! replay, `status --json` against what RabbitMQ says, and a SIGTERM in
//! the middle of a burst that loses nothing.
//!
//! One test: the mailer's queue (`mailer`) is the app's, so its steps run in
//! turn.

#[path = "../../publisher-app/mocks/mod.rs"]
mod crowdtap;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use promiscuous::memory::MemoryStorage;
use promiscuous::Promiscuous;
use promiscuous_core::testkit::unique;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, EntityTrait};
use subscriber_app::user;

const PATIENCE: Duration = Duration::from_secs(60);

fn amqp_url() -> String {
    std::env::var("PROMISCUOUS_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

/// Where the mailer runs: its database, its Redis prefix.
struct Setup {
    dir: PathBuf,
    database: String,
    redis: String,
}

impl Setup {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(unique("mailer-cli"));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let database = format!("sqlite://{}?mode=rwc", dir.join("mailer.db").display());
        let redis = format!("redis://127.0.0.1:6379/?prefix={}:", unique("mailer-cli"));
        Self {
            dir,
            database,
            redis,
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_mailer"));
        command
            .args(args)
            .env("DATABASE_URL", &self.database)
            .env("PROMISCUOUS_AMQP_URL", amqp_url())
            .env("PROMISCUOUS_REDIS_URL", &self.redis)
            .env("RUST_LOG", "warn,promiscuous=info");
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("the mailer binary runs")
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A running `mailer subscribe`, its standard output collected.
struct Worker {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Worker {
    fn start(setup: &Setup, args: &[&str]) -> Self {
        let mut child = setup
            .command(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("the mailer starts");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().expect("piped");
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let worker = Self { child, lines };
        worker.wait_for_line("is subscribed");
        worker
    }

    fn wait_for_line(&self, text: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(line) = self.lines.lock().unwrap().iter().find(|l| l.contains(text)) {
                return line.clone();
            }
            assert!(
                Instant::now() < deadline,
                "the mailer did not print {text:?}: {:?}",
                self.lines.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends `signal` and waits for the exit; returns its status code.
    fn stop(mut self, signal: &str) -> (Option<i32>, String) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args([signal, &pid])
            .status()
            .expect("kill runs");
        assert!(sent.success());
        let status = self.child.wait().expect("the mailer exits");
        let report = self.wait_for_line("mailer stopped:");
        (status.code(), report)
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET path` on `addr`: the status code and the body.
fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("the metrics server answers");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let code = response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (code, body)
}

/// The sum of the samples of `name` whose labels include `labels`.
fn metric(body: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    body.lines()
        .filter(|line| {
            line.starts_with(&format!("{name}{{")) || line.starts_with(&format!("{name} "))
        })
        .filter(|line| {
            labels
                .iter()
                .all(|(key, value)| line.contains(&format!("{key}=\"{value}\"")))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn wait_for_metric(addr: SocketAddr, name: &str, labels: &[(&str, &str)], value: f64) -> String {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (_, body) = http_get(addr, "/metrics");
        if metric(&body, name, labels) >= value {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "{name} {labels:?} did not reach {value}:\n{body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
}

/// Messages ready in `queue`, as RabbitMQ itself tells.
fn rabbitmq_ready(queue: &str) -> u64 {
    let output = Command::new("rabbitmqctl")
        .args(["-q", "list_queues", "name", "messages_ready"])
        .output()
        .expect("rabbitmqctl runs");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some(queue)).then(|| words.next()?.parse().ok())?
        })
        .next()
        .unwrap_or(0)
}

async fn users(db: &DatabaseConnection) -> Vec<user::Model> {
    user::Entity::find().all(db).await.unwrap_or_default()
}

async fn wait_for_users(
    db: &DatabaseConnection,
    what: &str,
    done: impl Fn(&[user::Model]) -> bool,
) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let found = users(db).await;
        if done(&found) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: mailer.db holds {} users",
            found.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn crowdtap_user(id: i64, name: &str, state: &str) -> crowdtap::User {
    crowdtap::User {
        id,
        name: name.to_owned(),
        email: format!("user{id}@example.com"),
        state: state.to_owned(),
        points: 0,
        level: "basic".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mailer_binary_as_an_operator_runs_it() {
    let setup = Setup::new();
    for queue in ["mailer", "mailer.error"] {
        let _ = Command::new("rabbitmqctl")
            .args(["-q", "delete_queue", queue])
            .output();
    }
    let crowdtap = Promiscuous::configure()
        .app(crowdtap::APP)
        .broker_url(amqp_url())
        .redis_url(&setup.redis)
        .storage(Arc::new(MemoryStorage::new()))
        .no_subscribers()
        .build()
        .await
        .expect("RabbitMQ and Redis are running");

    // subscribe, with metrics: 40 users created, then 40 updates.
    let metrics = free_port();
    let addr = metrics.to_string();
    let worker = Worker::start(
        &setup,
        &[
            "subscribe",
            "--metrics-addr",
            &addr,
            "--max-attempts",
            "1",
            "--runners",
            "4",
        ],
    );
    let db = Database::connect(&setup.database).await.expect("mailer.db");
    for id in 1..=40 {
        crowdtap
            .create(&crowdtap_user(id, "new", "active"))
            .await
            .unwrap();
    }
    for id in 1..=40 {
        let state = if id % 4 == 0 { "banned" } else { "active" };
        crowdtap
            .update(&crowdtap_user(id, "named", state))
            .await
            .unwrap();
    }
    let user_labels = [
        ("app", "mailer"),
        ("endpoint", "crowdtap/user"),
        ("model", "User"),
    ];
    let body = wait_for_metric(
        metrics,
        "promiscuous_operations_applied_total",
        &user_labels,
        80.0,
    );
    assert_eq!(
        metric(&body, "promiscuous_operations_applied_total", &user_labels),
        80.0
    );
    assert_eq!(
        metric(
            &body,
            "promiscuous_messages_received_total",
            &[("app", "mailer")]
        ),
        80.0
    );
    assert_eq!(
        metric(
            &body,
            "promiscuous_messages_dead_lettered_total",
            &[("app", "mailer")]
        ),
        0.0
    );
    assert_eq!(
        metric(
            &body,
            "promiscuous_replication_latency_seconds_count",
            &[("app", "mailer"), ("endpoint", "crowdtap/user")]
        ),
        80.0
    );
    assert_eq!(
        metric(&body, "promiscuous_healthy", &[("app", "mailer")]),
        1.0
    );
    assert_eq!(http_get(metrics, "/health"), (200, "ok\n".to_owned()));
    wait_for_users(&db, "80 operations", |users| {
        users.len() == 40 && users.iter().all(|u| u.name == "named")
    })
    .await;
    assert_eq!(
        users(&db)
            .await
            .iter()
            .filter(|u| u.state == "banned")
            .count(),
        10
    );

    // A message that fails (a column is missing) is dead-lettered at once
    // (--max-attempts 1); once the column is back, replay applies it.
    db.execute_unprepared("ALTER TABLE users RENAME COLUMN email TO email_gone")
        .await
        .unwrap();
    crowdtap
        .create(&crowdtap_user(1000, "late", "active"))
        .await
        .unwrap();
    wait_for_metric(
        metrics,
        "promiscuous_messages_dead_lettered_total",
        &[("app", "mailer"), ("endpoint", "crowdtap/user")],
        1.0,
    );
    let listed = setup.run(&["dead-letters", "list", "--json"]);
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let letters: serde_json::Value = serde_json::from_slice(&listed.stdout).expect("a JSON array");
    assert_eq!(letters.as_array().map(Vec::len), Some(1), "{letters}");
    assert!(
        letters[0]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("email"),
        "{letters}"
    );
    assert_eq!(letters[0]["endpoint"], "crowdtap/user");
    let id = letters[0]["id"].as_str().expect("an id").to_owned();
    let shown = setup.run(&["dead-letters", "show", &id]);
    assert!(String::from_utf8_lossy(&shown.stdout).contains("\"late\""));
    db.execute_unprepared("ALTER TABLE users RENAME COLUMN email_gone TO email")
        .await
        .unwrap();
    let replayed = setup.run(&["dead-letters", "replay", &id]);
    assert!(
        replayed.status.success(),
        "{}",
        String::from_utf8_lossy(&replayed.stderr)
    );
    assert!(String::from_utf8_lossy(&replayed.stdout).contains("replayed 1 dead letters"));
    wait_for_users(&db, "the replayed user", |users| {
        users.iter().any(|u| u.id == 1000)
    })
    .await;
    let again = setup.run(&["dead-letters", "replay", &id]);
    assert_eq!(again.status.code(), Some(1), "no such dead letter any more");

    // SIGTERM in the middle of a burst: the worker stops taking messages,
    // finishes or hands back what it holds, reports, exits 0.
    for round in 1..=10 {
        for id in 1..=40 {
            crowdtap
                .update(&crowdtap_user(id, &format!("round {round}"), "active"))
                .await
                .unwrap();
        }
    }
    let (code, report) = worker.stop("-TERM");
    assert_eq!(code, Some(0), "{report}");
    println!("after SIGTERM: {report}");

    // status --json, with no worker: the queue's depth is RabbitMQ's.
    let status = setup.run(&["status", "--json"]);
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).expect("JSON");
    let ready = status["broker"]["depth"]["ready"]
        .as_u64()
        .expect("a depth");
    assert_eq!(ready, rabbitmq_ready("mailer"), "{status}");
    println!("{ready} messages handed back or never taken");
    assert_eq!(status["broker"]["depth"]["consumers"], 0);
    assert_eq!(status["broker"]["error_depth"]["ready"], 0, "{status}");
    assert_eq!(status["clock"]["reachable"], true);

    // A new worker applies what the first handed back: nothing was lost.
    let worker = Worker::start(&setup, &["subscribe"]);
    wait_for_users(&db, "every round applied", |users| {
        users.len() == 41
            && users
                .iter()
                .filter(|u| u.id <= 40)
                .all(|u| u.name == "round 10")
    })
    .await;
    let (code, report) = worker.stop("-INT");
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(rabbitmq_ready("mailer"), 0);
    crowdtap.shutdown().await.unwrap();
}
