//! The versions a subscriber applied, kept in `promiscuous_applied` and
//! written in the same transaction as the data.

use std::collections::{BTreeMap, HashMap};

use sea_orm::sea_query::{Alias, Expr, ExprTrait, OnConflict, Query};
use sea_orm::{ConnectionTrait, DbBackend, DbErr};

use crate::error::SqlError;
use crate::schema::{applied, APPLIED_TABLE};

/// Keys per statement: far below every database's parameter limit.
const CHUNK: usize = 500;

fn failed(operation: &'static str, error: DbErr) -> SqlError {
    crate::schema::table_error(operation, APPLIED_TABLE, error)
}

/// The versions recorded for `keys`, in order, 0 for a key never recorded.
pub(crate) async fn read<C: ConnectionTrait>(
    conn: &C,
    keys: &[String],
) -> Result<Vec<u64>, SqlError> {
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
    Ok(keys
        .iter()
        .map(|key| found.get(key).copied().unwrap_or(0))
        .collect())
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
pub(crate) async fn record<C: ConnectionTrait>(
    conn: &C,
    targets: &[(String, u64)],
) -> Result<(), SqlError> {
    // One row per key (PostgreSQL refuses to upsert a row twice in one statement).
    let mut highest: BTreeMap<&str, u64> = BTreeMap::new();
    for (key, version) in targets {
        let entry = highest.entry(key.as_str()).or_default();
        *entry = Ord::max(*entry, *version);
    }
    let rows: Vec<(&str, u64)> = highest.into_iter().collect();
    for chunk in rows.chunks(CHUNK) {
        let mut insert = Query::insert();
        insert
            .into_table(Alias::new(APPLIED_TABLE))
            .columns([Alias::new(applied::COUNTER), Alias::new(applied::VERSION)]);
        for (key, version) in chunk {
            let version = i64::try_from(*version).map_err(|_| SqlError::Conversion {
                model: APPLIED_TABLE.to_owned(),
                column: applied::VERSION.to_owned(),
                value: version.to_string(),
                column_type: "BIGINT".to_owned(),
                problem:
                    "versions above 2^63-1 cannot be stored; this counter cannot advance further"
                        .to_owned(),
            })?;
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
