//! Starting transactions that will write.

use sea_orm::{
    DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, SqliteTransactionMode,
    TransactionOptions, TransactionTrait,
};

/// Begins a transaction that will write.
///
/// On SQLite it is `IMMEDIATE`: it takes the write lock at once, waiting for
/// the busy timeout, instead of reading first and then failing with
/// "database is locked" when it upgrades while another writer committed.
pub(crate) async fn begin_writing(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    if db.get_database_backend() != DbBackend::Sqlite {
        return db.begin().await;
    }
    db.begin_with_options(TransactionOptions {
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        ..Default::default()
    })
    .await
}
