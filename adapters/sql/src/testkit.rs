//! Throw-away databases for tests: a SQLite file, or a database of its own on
//! the PostgreSQL or MariaDB server, so tests run in parallel without seeing
//! each other's rows. Behind the `testkit` feature.
//!
//! A server that is not reachable makes [`TestDatabase::create`] panic with
//! the URL and what to do: tests that need it fail loudly.

use promiscuous_core::testkit::storage::ColumnKind;
use std::sync::atomic::{AtomicU64, Ordering};

use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection};

/// The database servers the adapter supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// A SQLite file in the temporary directory.
    Sqlite,
    /// PostgreSQL, at `PROMISCUOUS_TEST_POSTGRES_URL` or `postgres://postgres@127.0.0.1:5432`.
    Postgres,
    /// MariaDB or MySQL, at `PROMISCUOUS_TEST_MYSQL_URL` or `mysql://root@127.0.0.1:3306`.
    MariaDb,
}

impl Engine {
    /// Every engine.
    pub const ALL: [Engine; 3] = [Engine::Sqlite, Engine::Postgres, Engine::MariaDb];

    /// The server's URL, without a database.
    pub fn server_url(self) -> String {
        match self {
            Engine::Sqlite => "sqlite:".to_owned(),
            Engine::Postgres => std::env::var("PROMISCUOUS_TEST_POSTGRES_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned()),
            Engine::MariaDb => std::env::var("PROMISCUOUS_TEST_MYSQL_URL")
                .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".to_owned()),
        }
    }
}

/// A database that exists for one test; dropped (file removed, database
/// dropped) with the value.
#[derive(Debug)]
pub struct TestDatabase {
    engine: Engine,
    name: String,
    url: String,
    connection: DatabaseConnection,
}

static SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// `text` as a name every engine accepts unquoted: lower-case ASCII letters,
/// digits and `_`.
pub fn identifier(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

fn unique_name(label: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    let label: String = identifier(label).chars().take(24).collect();
    format!(
        "prom_{label}_{}_{}_{nanos:x}",
        std::process::id(),
        SEQUENCE.fetch_add(1, Ordering::Relaxed)
    )
}

async fn connect(url: &str) -> Result<DatabaseConnection, sea_orm::DbErr> {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .max_connections(8)
        .min_connections(0)
        .sqlx_logging(false)
        .connect_timeout(std::time::Duration::from_secs(10));
    Database::connect(options).await
}

impl TestDatabase {
    /// Creates a fresh database on `engine`, named after `label`.
    ///
    /// # Panics
    /// When the server cannot be reached or refuses to create the database:
    /// the test needs it.
    pub async fn create(engine: Engine, label: &str) -> Self {
        let name = unique_name(label);
        let server = engine.server_url();
        let url = match engine {
            Engine::Sqlite => {
                let path = std::env::temp_dir().join(format!("{name}.sqlite"));
                format!("sqlite://{}?mode=rwc", path.display())
            }
            Engine::Postgres | Engine::MariaDb => {
                let admin = connect(&server).await.unwrap_or_else(|e| {
                    panic!("{engine:?} at {server} is not reachable ({e}); start it (`.ci/run` does) or set its URL variable")
                });
                admin
                    .execute_unprepared(&format!("CREATE DATABASE {name}"))
                    .await
                    .unwrap_or_else(|e| {
                        panic!("{engine:?} at {server} refused to create database {name}: {e}")
                    });
                admin.close().await.ok();
                format!("{server}/{name}")
            }
        };
        let connection = connect(&url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to the test database {url}: {e}"));
        TestDatabase {
            engine,
            name,
            url,
            connection,
        }
    }

    /// The connection to this database.
    pub fn connection(&self) -> &DatabaseConnection {
        &self.connection
    }

    /// The URL of this database, for another process or another pool.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The engine.
    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// A new connection pool to this database.
    pub async fn connect(&self) -> DatabaseConnection {
        connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to the test database {}: {e}", self.url))
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let engine = self.engine;
        let name = self.name.clone();
        // Drop runs outside async code: clean up on a thread with its own runtime.
        let cleanup = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                match engine {
                    Engine::Sqlite => {
                        let path = std::env::temp_dir().join(format!("{name}.sqlite"));
                        for suffix in ["", "-wal", "-shm", "-journal"] {
                            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                        }
                    }
                    Engine::Postgres | Engine::MariaDb => {
                        let Ok(admin) = connect(&engine.server_url()).await else {
                            return;
                        };
                        let sql = if engine == Engine::Postgres {
                            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")
                        } else {
                            format!("DROP DATABASE IF EXISTS {name}")
                        };
                        let _ = admin.execute_unprepared(&sql).await;
                        let _ = admin.close().await;
                    }
                }
            });
        });
        let _ = cleanup.join();
    }
}

/// A table `name` with the conformance suites' `columns` (`id` the key),
/// for a fixture to create and register.
pub fn suite_table(name: &str, columns: &[(&str, ColumnKind)]) -> crate::TableInfo {
    use sea_orm::sea_query::ColumnType;
    columns
        .iter()
        .fold(crate::TableInfo::new(name), |table, (column, kind)| {
            let column_type = match kind {
                ColumnKind::Integer => ColumnType::BigInteger,
                ColumnKind::Text => ColumnType::Text,
                ColumnKind::Boolean => ColumnType::Boolean,
                ColumnKind::Json => ColumnType::Json,
            };
            let info = crate::ColumnInfo::new(*column, column_type);
            table.column(if *column == "id" {
                info.primary_key()
            } else {
                info
            })
        })
}
