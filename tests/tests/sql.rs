//! The SQL adapter's scenarios on SQLite (a file), PostgreSQL and MariaDB:
//! the same suite on each engine, each test with databases of its own.
#![cfg(feature = "sql")]

#[path = "sql/entities.rs"]
mod entities;
#[path = "sql/scenarios.rs"]
mod scenarios;

macro_rules! on_engine {
    ($module:ident, $engine:expr, [$($scenario:ident),* $(,)?]) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::scenarios::$scenario($engine).await;
                }
            )*
        }
    };
}

macro_rules! every_engine {
    ($($scenario:ident),* $(,)?) => {
        on_engine!(sqlite, promiscuous::sql::testkit::Engine::Sqlite, [$($scenario),*]);
        on_engine!(postgres, promiscuous::sql::testkit::Engine::Postgres, [$($scenario),*]);
        on_engine!(mariadb, promiscuous::sql::testkit::Engine::MariaDb, [$($scenario),*]);
    };
}

every_engine!(
    create_update_destroy,
    permanent_errors_are_dead_lettered_at_once,
    writes_bypassing_the_publisher_are_refused,
    a_joining_subscriber_catches_up_from_a_sync,
    a_subscriber_that_lost_its_clock_resumes_from_its_database,
    polymorphism,
    foreign_key,
    rollback_publishes_nothing,
    transaction_is_one_message,
    multi_row_writes_refused,
    replay_after_crash_is_detected,
    relay_publishes_leftovers,
    initial_sync_with_concurrent_updates,
    filtered_sync,
    unregistered_entity_is_refused,
    refused_write_is_reported,
    long_transaction_keeps_its_locks,
    core_transaction_is_atomic_on_sql_storage,
    sync_waits_for_a_locked_record,
);
