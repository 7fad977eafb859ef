//! Starting transactions that will write.

use sea_orm::{DbBackend, SqliteTransactionMode, TransactionOptions};

/// The options of a transaction that will write.
///
/// On SQLite it is `IMMEDIATE`: it takes the write lock at once, waiting for
/// the busy timeout, instead of reading first and then failing with
/// "database is locked" when it upgrades while another writer committed.
pub(crate) fn writing(backend: DbBackend) -> TransactionOptions {
    TransactionOptions {
        sqlite_transaction_mode: (backend == DbBackend::Sqlite)
            .then_some(SqliteTransactionMode::Immediate),
        ..Default::default()
    }
}
