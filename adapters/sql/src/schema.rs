//! The adapter's own tables, and the migration that creates them.
//!
//! - `promiscuous_outbox`: one row per published transaction, written in the
//!   same transaction as the data and removed once the broker confirmed it;
//!   `intent` (unique) names its publication, so recovery can tell whether a
//!   stopped publisher's transaction committed, and fence it off if not.
//! - `promiscuous_applied`: per version counter, the last version a
//!   subscriber applied, written in the same transaction as the data.

use sea_orm::sea_query::{Alias, ColumnDef, Table, TableCreateStatement};
use sea_orm::{ConnectionTrait, DbBackend, DbErr};

use crate::error::{Result, SqlError};

/// The outbox table's name.
pub const OUTBOX_TABLE: &str = "promiscuous_outbox";
/// The applied-versions table's name.
pub const APPLIED_TABLE: &str = "promiscuous_applied";

/// Column names of the outbox.
pub(crate) mod outbox {
    pub const ID: &str = "id";
    pub const APP: &str = "app";
    pub const CREATED_AT: &str = "created_at";
    pub const CLAIMED_UNTIL: &str = "claimed_until";
    pub const PAYLOAD: &str = "payload";
    pub const INTENT: &str = "intent";
}

/// Column names of the applied versions.
pub(crate) mod applied {
    pub const COUNTER: &str = "counter";
    pub const VERSION: &str = "version";
}

fn outbox_table(backend: DbBackend) -> TableCreateStatement {
    let mut payload = ColumnDef::new(Alias::new(outbox::PAYLOAD));
    payload.not_null();
    // MySQL's TEXT stops at 64 KiB; a transaction's message may be larger.
    if backend == DbBackend::MySql {
        payload.custom(Alias::new("LONGTEXT"));
    } else {
        payload.text();
    }
    Table::create()
        .table(Alias::new(OUTBOX_TABLE))
        .if_not_exists()
        .col(
            ColumnDef::new(Alias::new(outbox::ID))
                .big_integer()
                .not_null()
                .auto_increment()
                .primary_key(),
        )
        .col(
            ColumnDef::new(Alias::new(outbox::APP))
                .string_len(255)
                .not_null(),
        )
        .col(
            ColumnDef::new(Alias::new(outbox::CREATED_AT))
                .big_integer()
                .not_null(),
        )
        .col(
            ColumnDef::new(Alias::new(outbox::CLAIMED_UNTIL))
                .big_integer()
                .not_null(),
        )
        .col(payload)
        .col(intent_column())
        .to_owned()
}

/// The publication of an outbox row: unique, so a recovery worker's fence
/// and a late commit of the same publication cannot both store one.
fn intent_column() -> ColumnDef {
    ColumnDef::new(Alias::new(outbox::INTENT))
        .string_len(255)
        .unique_key()
        .to_owned()
}

fn applied_table() -> TableCreateStatement {
    Table::create()
        .table(Alias::new(APPLIED_TABLE))
        .if_not_exists()
        .col(
            ColumnDef::new(Alias::new(applied::COUNTER))
                .string_len(512)
                .not_null()
                .primary_key(),
        )
        .col(
            ColumnDef::new(Alias::new(applied::VERSION))
                .big_integer()
                .not_null(),
        )
        .to_owned()
}

/// The error of a statement on one of the adapter's tables; when the table is
/// missing, it says to run the migration.
pub(crate) fn table_error(operation: &'static str, table: &'static str, error: DbErr) -> SqlError {
    let text = error.to_string().to_lowercase();
    // Each database words it differently.
    let missing = text.contains(table)
        && (text.contains("no such table")
            || text.contains("does not exist")
            || text.contains("doesn't exist"));
    if missing {
        return SqlError::Definition {
            model: table.to_owned(),
            problem: format!(
                "the table does not exist in this database ({error}); run `promiscuous_sql::migrate(&db)` once before publishing or subscribing (at start-up, or from a sea-orm migration's `up`)"
            ),
        };
    }
    SqlError::database(operation, table, error)
}

/// Creates the adapter's tables when they do not exist; safe to run at
/// every start-up, from several processes.
///
/// With `sea-orm-migration`, call it from a migration's `up`:
/// `promiscuous_sql::migrate(manager.get_connection()).await`.
pub async fn migrate<C: ConnectionTrait>(db: &C) -> Result<()> {
    let backend = db.get_database_backend();
    for (table, statement) in [
        (OUTBOX_TABLE, outbox_table(backend)),
        (APPLIED_TABLE, applied_table()),
    ] {
        db.execute(&statement)
            .await
            .map_err(|e| SqlError::database("create table", table, e))?;
    }
    add_intent_column(db).await
}

/// Adds the `intent` column to an outbox created by an earlier version.
async fn add_intent_column<C: ConnectionTrait>(db: &C) -> Result<()> {
    let probe = sea_orm::sea_query::Query::select()
        .column(Alias::new(outbox::INTENT))
        .from(Alias::new(OUTBOX_TABLE))
        .limit(1)
        .to_owned();
    if db.query_one(&probe).await.is_ok() {
        return Ok(());
    }
    // SQLite cannot add a unique column: the column, then a unique index.
    let alter = Table::alter()
        .table(Alias::new(OUTBOX_TABLE))
        .add_column(ColumnDef::new(Alias::new(outbox::INTENT)).string_len(255))
        .to_owned();
    db.execute(&alter)
        .await
        .map_err(|e| SqlError::database("add the intent column", OUTBOX_TABLE, e))?;
    let index = sea_orm::sea_query::Index::create()
        .name("promiscuous_outbox_intent")
        .table(Alias::new(OUTBOX_TABLE))
        .col(Alias::new(outbox::INTENT))
        .unique()
        .to_owned();
    db.execute(&index)
        .await
        .map_err(|e| SqlError::database("index the intent column", OUTBOX_TABLE, e))?;
    Ok(())
}

/// Drops the adapter's tables (a migration's `down`). Pending outbox rows are lost.
pub async fn unmigrate<C: ConnectionTrait>(db: &C) -> Result<()> {
    for table in [OUTBOX_TABLE, APPLIED_TABLE] {
        let statement = Table::drop()
            .table(Alias::new(table))
            .if_exists()
            .to_owned();
        db.execute(&statement)
            .await
            .map_err(|e| SqlError::database("drop table", table, e))?;
    }
    Ok(())
}
