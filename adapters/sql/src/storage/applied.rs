//! The versions a subscriber applied, kept in `promiscuous_applied` and
//! written in the same transaction as the data.

use std::collections::{BTreeMap, HashMap};

use sea_orm::sea_query::{Alias, Expr, ExprTrait, OnConflict, Query};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, SqlErr};

use crate::error::SqlError;
use crate::schema::{applied, APPLIED_TABLE};

/// Keys per statement: far below every database's parameter limit.
const CHUNK: usize = 500;

fn failed(operation: &'static str, error: DbErr) -> SqlError {
    crate::schema::table_error(operation, APPLIED_TABLE, error)
}

/// The versions recorded for `keys`, in order, 0 for a key never recorded,
/// and what was read of each key (`None`: no row), for [`record`] to check
/// that nobody recorded them meanwhile. No row is locked: a lock on rows
/// that do not exist yet locks gaps on MySQL, where concurrent messages then
/// deadlock each other.
pub(crate) async fn read<C: ConnectionTrait>(
    conn: &C,
    keys: &[String],
) -> Result<(Vec<u64>, HashMap<String, Option<u64>>), SqlError> {
    let mut found: HashMap<String, u64> = HashMap::new();
    for chunk in keys.chunks(CHUNK) {
        let select = Query::select()
            .from(Alias::new(APPLIED_TABLE))
            .columns([Alias::new(applied::COUNTER), Alias::new(applied::VERSION)])
            .and_where(Expr::col(Alias::new(applied::COUNTER)).is_in(chunk.iter().cloned()))
            .to_owned();
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
    let seen = keys
        .iter()
        .map(|key| (key.clone(), found.get(key).copied()))
        .collect();
    let versions = keys
        .iter()
        .map(|key| found.get(key).copied().unwrap_or(0))
        .collect();
    Ok((versions, seen))
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
/// A key `seen` by [`read`] in this transaction is written only if its row
/// is still as it was read (inserted when there was none, updated from the
/// version read): should another transaction have recorded it meanwhile,
/// this fails with a [`SqlError::Conflict`] (temporary) instead of applying
/// the same operations twice, and the retry finds the versions recorded.
pub(crate) async fn record<C: ConnectionTrait>(
    conn: &C,
    targets: &[(String, u64)],
    seen: &HashMap<String, Option<u64>>,
) -> Result<(), SqlError> {
    let mut merged = Vec::new();
    for (key, version) in highest(targets) {
        match seen.get(key) {
            Some(None) => insert_fresh(conn, key, version).await?,
            Some(Some(read)) if version > *read => update_from(conn, key, *read, version).await?,
            Some(Some(_)) => {}
            None => merged.push((key.to_owned(), version)),
        }
    }
    upsert(conn, &merged).await
}

fn conflict(key: &str, source: DbErr) -> SqlError {
    SqlError::Conflict {
        target: format!("{APPLIED_TABLE} {key}"),
        source,
    }
}

/// Inserts a row read as absent; a unique violation means another
/// transaction applied it first.
async fn insert_fresh<C: ConnectionTrait>(
    conn: &C,
    key: &str,
    version: u64,
) -> Result<(), SqlError> {
    let mut insert = Query::insert();
    insert
        .into_table(Alias::new(APPLIED_TABLE))
        .columns([Alias::new(applied::COUNTER), Alias::new(applied::VERSION)])
        .values([Expr::val(key), Expr::val(as_stored(version)?)])
        .map_err(|e| SqlError::Definition {
            model: APPLIED_TABLE.to_owned(),
            problem: format!("cannot build the insert: {e}"),
        })?;
    match conn.execute(&insert).await {
        Ok(_) => Ok(()),
        Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
            Err(conflict(key, e))
        }
        Err(e) => Err(failed("record applied versions", e)),
    }
}

/// Raises a row from the version read; no row updated means another
/// transaction moved it first.
async fn update_from<C: ConnectionTrait>(
    conn: &C,
    key: &str,
    read: u64,
    version: u64,
) -> Result<(), SqlError> {
    let update = Query::update()
        .table(Alias::new(APPLIED_TABLE))
        .value(Alias::new(applied::VERSION), as_stored(version)?)
        .and_where(Expr::col(Alias::new(applied::COUNTER)).eq(key))
        .and_where(Expr::col(Alias::new(applied::VERSION)).eq(as_stored(read)?))
        .to_owned();
    // Rows matched, not changed, on MySQL too: sqlx connects with CLIENT_FOUND_ROWS.
    let done = conn
        .execute(&update)
        .await
        .map_err(|e| failed("record applied versions", e))?;
    if done.rows_affected() == 0 {
        return Err(SqlError::Conflict {
            target: format!("{APPLIED_TABLE} {key}"),
            source: DbErr::RecordNotUpdated,
        });
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
