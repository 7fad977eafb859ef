//! Rows of the outbox table: written with the data, removed once published.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sea_orm::sea_query::{Alias, Expr, ExprTrait, Order, Query};
use sea_orm::{ConnectionTrait, DbBackend};

use crate::error::{Result, SqlError};
use crate::schema::{outbox, OUTBOX_TABLE};

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

fn later(duration: Duration) -> i64 {
    now_ms().saturating_add(i64::try_from(duration.as_millis()).unwrap_or(i64::MAX))
}

fn table() -> Alias {
    Alias::new(OUTBOX_TABLE)
}

fn col(name: &str) -> Alias {
    Alias::new(name)
}

fn failed(operation: &'static str) -> impl FnOnce(sea_orm::DbErr) -> SqlError {
    move |e| crate::schema::table_error(operation, OUTBOX_TABLE, e)
}

/// A row left in the outbox.
#[derive(Debug, Clone)]
pub(crate) struct OutboxRow {
    pub id: i64,
    pub claimed_until: i64,
    pub payload: String,
}

/// Stores a message, claimed by its writer for `claim`; returns the row's id.
pub(crate) async fn insert<C: ConnectionTrait>(
    db: &C,
    app: &str,
    payload: &str,
    claim: Duration,
) -> Result<i64> {
    let mut statement = Query::insert();
    statement
        .into_table(table())
        .columns([
            col(outbox::APP),
            col(outbox::CREATED_AT),
            col(outbox::CLAIMED_UNTIL),
            col(outbox::PAYLOAD),
        ])
        .values([
            app.into(),
            now_ms().into(),
            later(claim).into(),
            payload.into(),
        ])
        .map_err(|e| SqlError::Definition {
            model: OUTBOX_TABLE.into(),
            problem: format!("cannot build the outbox insert: {e}"),
        })?;
    if db.get_database_backend() == DbBackend::MySql {
        let done = db.execute(&statement).await.map_err(failed("insert"))?;
        return Ok(i64::try_from(done.last_insert_id()).unwrap_or(i64::MAX));
    }
    statement.returning_col(col(outbox::ID));
    let row = db
        .query_one(&statement)
        .await
        .map_err(failed("insert"))?
        .ok_or_else(|| SqlError::Definition {
            model: OUTBOX_TABLE.into(),
            problem: "the database returned no id for the new outbox row".into(),
        })?;
    row.try_get_by::<i64, _>(outbox::ID)
        .map_err(failed("insert"))
}

/// Removes published rows.
pub(crate) async fn delete_all<C: ConnectionTrait>(db: &C, ids: &[i64]) -> Result<()> {
    let statement = Query::delete()
        .from_table(table())
        .and_where(Expr::col(col(outbox::ID)).is_in(ids.iter().copied()))
        .to_owned();
    db.execute(&statement).await.map_err(failed("delete"))?;
    Ok(())
}

/// Whether a row is there (after a commit whose outcome is unknown).
pub(crate) async fn exists<C: ConnectionTrait>(db: &C, id: i64) -> Result<bool> {
    let statement = Query::select()
        .column(col(outbox::ID))
        .from(table())
        .and_where(Expr::col(col(outbox::ID)).eq(id))
        .to_owned();
    Ok(db
        .query_one(&statement)
        .await
        .map_err(failed("select"))?
        .is_some())
}

/// Up to `limit` rows of `app` nobody holds, oldest first.
pub(crate) async fn unclaimed<C: ConnectionTrait>(
    db: &C,
    app: &str,
    limit: u64,
) -> Result<Vec<OutboxRow>> {
    let statement = Query::select()
        .columns([
            col(outbox::ID),
            col(outbox::CLAIMED_UNTIL),
            col(outbox::PAYLOAD),
        ])
        .from(table())
        .and_where(Expr::col(col(outbox::APP)).eq(app))
        .and_where(Expr::col(col(outbox::CLAIMED_UNTIL)).lt(now_ms()))
        .order_by(col(outbox::ID), Order::Asc)
        .limit(limit)
        .to_owned();
    let rows = db.query_all(&statement).await.map_err(failed("select"))?;
    rows.into_iter()
        .map(|row| {
            Ok(OutboxRow {
                id: row.try_get_by(outbox::ID).map_err(failed("read"))?,
                claimed_until: row
                    .try_get_by(outbox::CLAIMED_UNTIL)
                    .map_err(failed("read"))?,
                payload: row.try_get_by(outbox::PAYLOAD).map_err(failed("read"))?,
            })
        })
        .collect()
}

/// How many rows of `app` are in the outbox.
pub(crate) async fn pending<C: ConnectionTrait>(db: &C, app: &str) -> Result<u64> {
    let statement = Query::select()
        .expr_as(Expr::col(col(outbox::ID)).count(), col("n"))
        .from(table())
        .and_where(Expr::col(col(outbox::APP)).eq(app))
        .to_owned();
    let row = db.query_one(&statement).await.map_err(failed("count"))?;
    let count: i64 = match row {
        Some(row) => row.try_get_by("n").map_err(failed("count"))?,
        None => 0,
    };
    Ok(u64::try_from(count).unwrap_or_default())
}

/// Takes a row for `claim` if nobody took it since it was read: of several
/// relays, only one publishes it.
pub(crate) async fn claim<C: ConnectionTrait>(
    db: &C,
    row: &OutboxRow,
    claim: Duration,
) -> Result<bool> {
    let statement = Query::update()
        .table(table())
        .value(col(outbox::CLAIMED_UNTIL), later(claim))
        .and_where(Expr::col(col(outbox::ID)).eq(row.id))
        .and_where(Expr::col(col(outbox::CLAIMED_UNTIL)).eq(row.claimed_until))
        .to_owned();
    let done = db.execute(&statement).await.map_err(failed("claim"))?;
    Ok(done.rows_affected() == 1)
}
