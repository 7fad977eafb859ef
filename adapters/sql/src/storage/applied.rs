//! The versions a subscriber applied, kept in `promiscuous_applied` and
//! written in the same transaction as the data.

use std::collections::{BTreeMap, HashMap};

use sea_orm::sea_query::{Alias, Expr, ExprTrait, LockType, OnConflict, Query};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, SqlErr};

use crate::error::SqlError;
use crate::schema::{applied, APPLIED_TABLE};

/// Keys per statement: far below every database's parameter limit.
const CHUNK: usize = 500;

fn failed(operation: &'static str, error: DbErr) -> SqlError {
    crate::schema::table_error(operation, APPLIED_TABLE, error)
}

/// The versions recorded for `keys`, in order, 0 for a key never recorded;
/// the rows found stay locked until the transaction ends (on SQLite, whose
/// transactions take turns, the whole database is).
pub(crate) async fn read<C: ConnectionTrait>(
    conn: &C,
    keys: &[String],
) -> Result<(Vec<u64>, std::collections::HashSet<String>), SqlError> {
    let mut found: HashMap<String, u64> = HashMap::new();
    for chunk in keys.chunks(CHUNK) {
        let mut select = Query::select()
            .from(Alias::new(APPLIED_TABLE))
            .columns([Alias::new(applied::COUNTER), Alias::new(applied::VERSION)])
            .and_where(Expr::col(Alias::new(applied::COUNTER)).is_in(chunk.iter().cloned()))
            .to_owned();
        if conn.get_database_backend() != DbBackend::Sqlite {
            select.lock(LockType::Update);
        }
        let rows = conn
            .query_all(&select)
            .await
            .map_err(|e| failed("read applied versions", e))?;
        for row in rows {
            let counter: String = row
                .try_get_by(applied::COUNTER)
                .map_err(|e| failed("read applied versions", e))?;
            let version: i64 = row
                .try_get_by(applied::VERSION)
                .map_err(|e| failed("read applied versions", e))?;
            found.insert(counter, u64::try_from(version).unwrap_or(0));
        }
    }
    let absent = keys
        .iter()
        .filter(|key| !found.contains_key(*key))
        .cloned()
        .collect();
    let versions = keys
        .iter()
        .map(|key| found.get(key).copied().unwrap_or(0))
        .collect();
    Ok((versions, absent))
}

/// The expression keeping the larger of the stored and the proposed version.
fn keep_max(backend: DbBackend) -> Expr {
    let (table, column) = (APPLIED_TABLE, applied::VERSION);
    Expr::cust(match backend {
        DbBackend::MySql => format!("GREATEST(`{column}`, VALUES(`{column}`))"),
        DbBackend::Sqlite => format!(r#"MAX("{table}"."{column}", excluded."{column}")"#),
        _ => format!(r#"GREATEST("{table}"."{column}", excluded."{column}")"#),
    })
}

/// Records the versions of `targets`, never lowering one already recorded.
///
/// Keys `absent` (read and not found in this transaction) are inserted
/// without merging: should another transaction have recorded one meanwhile,
/// this fails with a [`SqlError::Conflict`] (temporary) instead of applying
/// the same operations twice; the retry finds its versions.
pub(crate) async fn record<C: ConnectionTrait>(
    conn: &C,
    targets: &[(String, u64)],
    absent: &std::collections::HashSet<String>,
) -> Result<(), SqlError> {
    let (fresh, known): (Vec<(String, u64)>, Vec<(String, u64)>) = targets
        .iter()
        .cloned()
        .partition(|(key, _)| absent.contains(key));
    insert_fresh(conn, &fresh).await?;
    upsert(conn, &known).await
}

/// Inserts rows read as absent; a unique violation means another
/// transaction applied them first.
async fn insert_fresh<C: ConnectionTrait>(conn: &C, targets: &[(String, u64)]) -> Result<(), SqlError> {
    for (key, version) in highest(targets) {
        let mut insert = Query::insert();
        insert
            .into_table(Alias::new(APPLIED_TABLE))
            .columns([Alias::new(applied::COUNTER), Alias::new(applied::VERSION)])
            .values([Expr::val(key), Expr::val(as_stored(version)?)])
            .map_err(|e| SqlError::Definition {
                model: APPLIED_TABLE.to_owned(),
                problem: format!("cannot build the insert: {e}"),
            })?;
        if let Err(e) = conn.execute(&insert).await {
            if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) {
                return Err(SqlError::Conflict {
                    target: format!("{APPLIED_TABLE} {key}"),
                    source: e,
                });
            }
            return Err(failed("record applied versions", e));
        }
    }
    Ok(())
}

/// One row per key, with its largest version.
fn highest(targets: &[(String, u64)]) -> Vec<(&str, u64)> {
    let mut highest: BTreeMap<&str, u64> = BTreeMap::new();
    for (key, version) in targets {
        let entry = highest.entry(key.as_str()).or_default();
        *entry = Ord::max(*entry, *version);
    }
    highest.into_iter().collect()
}

fn as_stored(version: u64) -> Result<i64, SqlError> {
    i64::try_from(version).map_err(|_| SqlError::Conversion {
        model: APPLIED_TABLE.to_owned(),
        column: applied::VERSION.to_owned(),
        value: version.to_string(),
        column_type: "BIGINT".to_owned(),
        problem: "versions above 2^63-1 cannot be stored; this counter cannot advance further"
            .to_owned(),
    })
}

/// Records versions, keeping the larger of the stored and the new one.
async fn upsert<C: ConnectionTrait>(conn: &C, targets: &[(String, u64)]) -> Result<(), SqlError> {
    // One row per key (PostgreSQL refuses to upsert a row twice in one statement).
    let rows = highest(targets);
    for chunk in rows.chunks(CHUNK) {
        let mut insert = Query::insert();
        insert
            .into_table(Alias::new(APPLIED_TABLE))
            .columns([Alias::new(applied::COUNTER), Alias::new(applied::VERSION)]);
        for (key, version) in chunk {
            let version = as_stored(*version)?;
            insert
                .values([Expr::val(*key), Expr::val(version)])
                .map_err(|e| SqlError::Definition {
                    model: APPLIED_TABLE.to_owned(),
                    problem: format!("cannot build the upsert: {e}"),
                })?;
        }
        insert.on_conflict(
            OnConflict::column(Alias::new(applied::COUNTER))
                .value(
                    Alias::new(applied::VERSION),
                    keep_max(conn.get_database_backend()),
                )
                .to_owned(),
        );
        conn.execute(&insert)
            .await
            .map_err(|e| failed("record applied versions", e))?;
    }
    Ok(())
}
