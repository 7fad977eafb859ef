//! The README cannot rot: every command it shows is run by CI, every Rust
//! excerpt is taken line for line from code that compiles (and runs), and its
//! dependency lines name features and versions that exist. Also the source of
//! the README's excerpts that have no other home.

use std::path::{Path, PathBuf};

/// The repository's root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests package sits in the repository")
        .to_path_buf()
}

fn read(relative: &str) -> String {
    let path = root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The documents whose code blocks are checked.
const DOCUMENTS: &[&str] = &[
    "README.md",
    "examples/publisher-app/README.md",
    "examples/subscriber-app/README.md",
];

/// The scripts CI runs: every shell command of the documents is in one of them.
const CI_SCRIPTS: &[&str] = &[".ci/run", "examples/run-the-pair.sh", "examples/new-app.sh"];

/// A fenced code block of a Markdown document.
#[derive(Debug)]
struct Block {
    /// Where: `README.md:120`.
    place: String,
    /// The fence's language (`rust`, `sh`, `toml`, `text`).
    language: String,
    /// The block's lines, as written.
    lines: Vec<String>,
    /// The comment before the fence, if it is one (`from: path`).
    annotation: Option<String>,
}

fn blocks(document: &str) -> Vec<Block> {
    let text = read(document);
    let mut blocks = Vec::new();
    let mut previous = "";
    let mut open: Option<Block> = None;
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if let Some(fence) = trimmed.strip_prefix("```") {
            match open.take() {
                Some(block) => blocks.push(block),
                None => {
                    open = Some(Block {
                        place: format!("{document}:{}", index + 1),
                        language: fence.to_owned(),
                        lines: Vec::new(),
                        annotation: previous
                            .strip_prefix("<!--")
                            .and_then(|rest| rest.strip_suffix("-->"))
                            .map(|comment| comment.trim().to_owned()),
                    })
                }
            }
        } else if let Some(block) = open.as_mut() {
            block.lines.push(line.to_owned());
        }
        if !trimmed.is_empty() {
            previous = trimmed;
        }
    }
    assert!(open.is_none(), "{document} ends inside a code block");
    blocks
}

/// A line of an excerpt as compared: trimmed, without a trailing comment
/// (the README aligns its commentary, rustfmt does not).
fn normalized(line: &str) -> &str {
    let line = line.trim();
    match line.find(" // ") {
        Some(at) => line[..at].trim_end(),
        None => line,
    }
}

#[test]
fn rust_excerpts_are_taken_from_code_that_compiles() {
    let mut checked = 0;
    for document in DOCUMENTS {
        for block in blocks(document)
            .into_iter()
            .filter(|b| b.language.starts_with("rust"))
        {
            let source = block
                .annotation
                .as_deref()
                .and_then(|a| a.strip_prefix("from:"))
                .map(str::trim)
                .unwrap_or_else(|| {
                    panic!(
                        "{}: a Rust block must say where it comes from, `<!-- from: path -->` on the line before it",
                        block.place
                    )
                });
            let source_lines: Vec<String> = read(source)
                .lines()
                .map(|l| normalized(l).to_owned())
                .collect();
            let mut after = 0;
            for line in &block.lines {
                let wanted = normalized(line);
                if wanted.is_empty() || wanted.starts_with("//") {
                    continue;
                }
                match source_lines[after..].iter().position(|l| l == wanted) {
                    Some(found) => after += found + 1,
                    None => panic!(
                        "{}: `{wanted}` is not in {source} (after line {after}): the excerpt no longer matches the code it comes from",
                        block.place
                    ),
                }
            }
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} Rust excerpts found");
}

#[test]
fn every_metric_is_documented_in_the_operations_guide() {
    let guide = read("docs/operations.md");
    for name in promiscuous_core::metrics::ALL {
        assert!(
            guide.contains(&format!("| `{name}` |")),
            "docs/operations.md does not document the metric {name}"
        );
    }
}

#[test]
fn every_shell_command_is_run_by_ci() {
    let scripts: Vec<String> = CI_SCRIPTS.iter().map(|s| read(s)).collect();
    let mut checked = 0;
    for document in DOCUMENTS {
        for block in blocks(document).into_iter().filter(|b| b.language == "sh") {
            for line in &block.lines {
                let command = line.trim();
                if command.is_empty() || command.starts_with('#') {
                    continue;
                }
                assert!(
                    scripts.iter().any(|script| script.contains(command)),
                    "{}: `{command}` is run by none of {CI_SCRIPTS:?}: run it there, or the README can rot",
                    block.place
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 10, "only {checked} commands found");
}

/// The value of `key = "…"` in a line of TOML.
fn quoted_after<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let rest = &line[line.find(key)? + key.len()..];
    let rest = &rest[rest.find('"')? + 1..];
    Some(&rest[..rest.find('"')?])
}

#[test]
fn dependency_lines_name_what_exists() {
    let manifest = read("Cargo.toml");
    let features_table = &manifest[manifest
        .find("\n[features]")
        .expect("the root manifest has features")..];
    let workspace_sea_orm = manifest
        .lines()
        .find(|l| l.starts_with("sea-orm ="))
        .and_then(|l| quoted_after(l, "version"))
        .expect("the workspace pins sea-orm");
    let blocks: Vec<Block> = blocks("README.md")
        .into_iter()
        .filter(|b| {
            b.annotation
                .as_deref()
                .is_some_and(|a| a.starts_with("dependencies:"))
        })
        .collect();
    assert_eq!(
        blocks.len(),
        2,
        "the quick start's and the services' dependencies"
    );
    for block in &blocks {
        for line in &block.lines {
            if line.starts_with("promiscuous =") {
                assert_eq!(
                    quoted_after(line, "path"),
                    Some("../promiscuous-rs"),
                    "{}: {line}",
                    block.place
                );
                if let Some(list) = line.split("features = [").nth(1) {
                    for feature in list.split(']').next().unwrap_or("").split(',') {
                        let feature = feature.trim().trim_matches('"');
                        assert!(
                            features_table.contains(&format!("\n{feature} = ")),
                            "{}: feature `{feature}` does not exist",
                            block.place
                        );
                    }
                }
            }
            if line.starts_with("sea-orm =") {
                assert_eq!(
                    quoted_after(line, "version"),
                    Some(workspace_sea_orm),
                    "{}: the sea-orm version is the workspace's",
                    block.place
                );
            }
        }
    }
    // The version the README promises is the one the workspace states.
    let rust_version = manifest
        .lines()
        .find(|l| l.starts_with("rust-version ="))
        .and_then(|l| quoted_after(l, "rust-version"))
        .expect("the workspace states its rust-version");
    assert!(
        read("README.md").contains(&format!("It needs Rust {rust_version} or later")),
        "the README states rust-version {rust_version}"
    );
}

/// The README's "A publisher alone" excerpt.
mod null_broker {
    use std::sync::Arc;

    use promiscuous::memory::{MemoryStorage, NullBroker};
    use promiscuous::{Promiscuous, Publish};
    use serde::{Deserialize, Serialize};

    /// An event of the README's excerpt.
    #[derive(Debug, Clone, Serialize, Deserialize, Publish)]
    #[publish(ephemeral, to = "readme/signup")]
    pub struct Signup {
        #[publish]
        pub user_id: i64,
    }

    #[tokio::test]
    async fn a_null_broker_records_what_is_published() -> Result<(), Box<dyn std::error::Error>> {
        let broker = Arc::new(NullBroker::new());
        let app = Promiscuous::configure()
            .app("readme")
            .broker(broker.clone())
            .redis_url("memory://readme-null")
            .storage(Arc::new(MemoryStorage::new()))
            .build()
            .await?;
        app.publish(&Signup { user_id: 7 }).await?;
        let sent = broker.published_messages()?;
        assert_eq!(sent[0].operations[0].endpoint, "readme/signup");
        let attributes = sent[0].operations[0].attributes.as_ref().unwrap();
        assert_eq!(attributes["user_id"], 7);
        assert_eq!(sent.len(), 1);
        Ok(())
    }
}

/// The README's sea-orm excerpt, run on SQLite.
#[cfg(feature = "sql")]
pub(crate) mod sea_orm_publisher {
    use promiscuous::sql::SqlPublisher;
    use promiscuous::Promiscuous;
    use sea_orm::{
        ActiveModelTrait, ActiveValue::Set, ConnectionTrait, Database, EntityTrait,
        IntoActiveModel, Schema,
    };

    pub mod user {
        use promiscuous::Publish;
        use sea_orm::entity::prelude::*;
        use serde::{Deserialize, Serialize};

        /// A user.
        #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize, Publish)]
        #[sea_orm(table_name = "users")]
        #[publish(model = "User", to = "readme/user")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i64,
            #[publish]
            pub name: String,
            pub password_hash: String,
        }

        /// No relations.
        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}

        promiscuous::sql::published_writes_only!(ActiveModel);
    }

    pub mod note {
        use sea_orm::entity::prelude::*;

        /// An unpublished note.
        #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
        #[sea_orm(table_name = "notes")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i64,
            pub body: String,
        }

        /// No relations.
        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}

        impl ActiveModelBehavior for ActiveModel {}
    }

    /// Contract tests instantiate a sea-orm model without `Default` (from
    /// its `ActiveModel::default_values()`) and check its attributes.
    #[cfg(feature = "validate")]
    #[test]
    fn contract_tests_instantiate_sea_orm_models() {
        use promiscuous::Publish;
        let path = std::env::temp_dir()
            .join(format!("promiscuous-readme-{}", std::process::id()))
            .join("readme.rs");
        let report = promiscuous::validate::Publishers::new(&path)
            .app("readme")
            .definitions(&[<user::Model as Publish>::definition()])
            .rewrite(true)
            .check()
            .unwrap();
        assert_eq!(report.checked, ["User"], "{report}");
        assert!(report.not_instantiated.is_empty(), "{report}");
        let mocks = std::fs::read_to_string(&path).unwrap();
        assert!(mocks.contains("    pub name: String,"), "{mocks}");
        assert!(!mocks.contains("password_hash"), "{mocks}");
    }

    #[tokio::test]
    async fn a_transaction_publishes_one_message_after_its_commit(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let db = Database::connect("sqlite::memory:").await?;
        let mut notes =
            Schema::new(db.get_database_backend()).create_table_from_entity(note::Entity);
        db.execute(notes.if_not_exists()).await?;
        let broker = std::sync::Arc::new(promiscuous::memory::NullBroker::new());
        let promiscuous = Promiscuous::configure()
            .app("readme")
            .broker(broker.clone())
            .redis_url("memory://readme-sql")
            .build()
            .await?;

        // Your tables are yours to create (here from the entities); `migrate`
        // creates promiscuous's own: `promiscuous_outbox` and `promiscuous_applied`.
        let mut users =
            Schema::new(db.get_database_backend()).create_table_from_entity(user::Entity);
        db.execute(users.if_not_exists()).await?;
        promiscuous::sql::migrate(&db).await?;

        let publisher = SqlPublisher::builder(promiscuous.clone(), db.clone())
            .entity::<user::Entity>() // checked now: key, columns
            .build()?;

        let mut tx = publisher.begin().await?; // a sea-orm transaction
        let ada = tx
            .insert(user::ActiveModel {
                name: Set("Ada".into()),
                password_hash: Set("…".into()),
                ..Default::default()
            })
            .await?;
        let mut renamed = ada.clone().into_active_model();
        renamed.name = Set("Ada Lovelace".into());
        tx.update(renamed).await?;
        note::ActiveModel {
            body: Set("unpublished writes share the transaction".into()),
            ..Default::default()
        }
        .insert(tx.connection())
        .await?;
        assert!(broker.published().is_empty(), "nothing before the commit");
        tx.commit().await?; // one message, after the commit; none after a rollback
        publisher.flush_outbox().await;
        assert_eq!(publisher.outbox_len().await?, 0);

        let sent = broker.published_messages()?;
        assert_eq!(sent.len(), 1, "one message for the transaction");
        let operations = &sent[0].operations;
        assert_eq!(operations.len(), 2, "{operations:?}");
        let last = operations[1].attributes.as_ref().unwrap();
        assert_eq!(last["name"], "Ada Lovelace");
        assert!(last.get("password_hash").is_none(), "not published");
        assert_eq!(note::Entity::find().all(&db).await?.len(), 1);
        Ok(())
    }
}

/// The README's promise about Redis and the publisher's writes: when Redis
/// cannot be reached, `tx.insert` fails, and nothing is committed or published.
#[cfg(all(feature = "sql", feature = "redis"))]
mod redis_unreachable {
    use std::sync::Arc;
    use std::time::Duration;

    use promiscuous::memory::NullBroker;
    use promiscuous::sql::SqlPublisher;
    use promiscuous::Promiscuous;
    use sea_orm::{ActiveValue::Set, ConnectionTrait, Database, EntityTrait, Schema};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::task::JoinSet;

    use super::sea_orm_publisher::user;

    /// A TCP proxy to the test Redis that can be cut, as a network failure would.
    struct Proxy {
        port: u16,
        tasks: JoinSet<()>,
    }

    impl Proxy {
        async fn to_redis() -> Proxy {
            let target = std::env::var("PROMISCUOUS_REDIS_PROXY_TARGET")
                .unwrap_or_else(|_| "127.0.0.1:6379".to_owned());
            TcpStream::connect(&target).await.unwrap_or_else(|e| {
                panic!("Redis is not reachable at {target} ({e}): start it, or set PROMISCUOUS_REDIS_PROXY_TARGET")
            });
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            let mut tasks = JoinSet::new();
            tasks.spawn(async move {
                let mut connections = JoinSet::new();
                while let Ok((mut client, _)) = listener.accept().await {
                    let target = target.clone();
                    connections.spawn(async move {
                        if let Ok(mut server) = TcpStream::connect(&target).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    });
                }
            });
            Proxy { port, tasks }
        }

        /// Closes the listener and every connection through it.
        fn cut(&mut self) {
            self.tasks.abort_all();
        }
    }

    #[tokio::test]
    async fn a_write_fails_and_nothing_is_committed_when_redis_is_unreachable() {
        let mut proxy = Proxy::to_redis().await;
        let db = Database::connect("sqlite::memory:").await.unwrap();
        let mut users =
            Schema::new(db.get_database_backend()).create_table_from_entity(user::Entity);
        db.execute(users.if_not_exists()).await.unwrap();
        promiscuous::sql::migrate(&db).await.unwrap();
        let broker = Arc::new(NullBroker::new());
        let prefix = promiscuous::core::testkit::unique("readme-redis");
        let promiscuous = Promiscuous::configure()
            .app("readme")
            .broker(broker.clone())
            .redis_url(format!(
                "redis://127.0.0.1:{}/?prefix={prefix}:",
                proxy.port
            ))
            .lock_timeout(Duration::from_secs(1))
            .no_recovery_worker()
            .build()
            .await
            .unwrap();
        let publisher = SqlPublisher::builder(promiscuous.clone(), db.clone())
            .entity::<user::Entity>()
            .build()
            .unwrap();

        proxy.cut();
        let mut tx = publisher.begin().await.unwrap();
        let failed = tokio::time::timeout(
            Duration::from_secs(60),
            tx.insert(user::ActiveModel {
                name: Set("Ada".into()),
                password_hash: Set("…".into()),
                ..Default::default()
            }),
        )
        .await
        .expect("the write gives up instead of hanging")
        .expect_err("the write needs Redis");
        let text = promiscuous::core::error::chain(&failed);
        assert!(
            text.to_lowercase().contains("redis"),
            "the error says Redis is the problem: {text}"
        );
        drop(tx);
        assert!(user::Entity::find().all(&db).await.unwrap().is_empty());
        assert!(broker.published().is_empty());
        assert_eq!(publisher.outbox_len().await.unwrap(), 0);
    }
}
