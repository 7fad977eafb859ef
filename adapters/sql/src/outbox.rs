//! The outbox table: messages written with the data, removed once published.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use promiscuous_core::traits::{Fence, Outbox, OutboxEntry};
use promiscuous_core::BackendError;
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Order, Query, SelectStatement};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, QueryResult, SqlErr};

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

fn failed(operation: &'static str) -> impl FnOnce(DbErr) -> SqlError {
    move |e| crate::schema::table_error(operation, OUTBOX_TABLE, e)
}

/// Stores the message of publication `intent` of `app`, claimed by its
/// writer for `claim`: in the writer's transaction.
pub(crate) async fn insert<C: ConnectionTrait>(
    db: &C,
    app: &str,
    intent: &str,
    payload: &[u8],
    claim: Duration,
) -> Result<i64> {
    let payload = String::from_utf8_lossy(payload).into_owned();
    let mut statement = Query::insert();
    statement
        .into_table(table())
        .columns([
            col(outbox::APP),
            col(outbox::INTENT),
            col(outbox::CREATED_AT),
            col(outbox::CLAIMED_UNTIL),
            col(outbox::PAYLOAD),
        ])
        .values([
            app.into(),
            intent.into(),
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

fn entries_query() -> SelectStatement {
    Query::select()
        .columns([
            col(outbox::ID),
            col(outbox::INTENT),
            col(outbox::CLAIMED_UNTIL),
            col(outbox::PAYLOAD),
        ])
        .from(table())
        .to_owned()
}

fn entry(row: &QueryResult) -> Result<OutboxEntry> {
    let id: i64 = row.try_get_by(outbox::ID).map_err(failed("read"))?;
    let intent: Option<String> = row.try_get_by(outbox::INTENT).map_err(failed("read"))?;
    let payload: String = row.try_get_by(outbox::PAYLOAD).map_err(failed("read"))?;
    Ok(OutboxEntry {
        id: id.to_string(),
        // Rows of an earlier version have no intent: their id stands for it.
        intent: intent.unwrap_or_else(|| format!("outbox-row-{id}")),
        payload: payload.into_bytes(),
        claimed_until: row
            .try_get_by(outbox::CLAIMED_UNTIL)
            .map_err(failed("read"))?,
    })
}

/// The outbox of a database: [`Outbox`] over the `promiscuous_outbox` table
/// (run [`migrate`](crate::migrate) first).
#[derive(Debug, Clone)]
pub struct SqlOutbox {
    db: DatabaseConnection,
}

impl SqlOutbox {
    /// The outbox of `db`.
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }

    async fn by_intent(&self, intent: &str) -> Result<Option<OutboxEntry>> {
        let statement = entries_query()
            .and_where(Expr::col(col(outbox::INTENT)).eq(intent))
            .to_owned();
        match self
            .db
            .query_one(&statement)
            .await
            .map_err(failed("select"))?
        {
            Some(row) => entry(&row).map(Some),
            None => Ok(None),
        }
    }

    /// Rows of publications `intents`, or of ids standing for them.
    fn matching(intents: &[String]) -> sea_orm::sea_query::Condition {
        let ids: Vec<i64> = intents
            .iter()
            .filter_map(|i| i.strip_prefix("outbox-row-")?.parse().ok())
            .collect();
        sea_orm::sea_query::Condition::any()
            .add(Expr::col(col(outbox::INTENT)).is_in(intents.iter().cloned()))
            .add(Expr::col(col(outbox::ID)).is_in(ids))
    }
}

#[async_trait]
impl Outbox for SqlOutbox {
    fn name(&self) -> &'static str {
        "sea-orm"
    }

    async fn unclaimed(&self, app: &str, limit: usize) -> Result<Vec<OutboxEntry>, BackendError> {
        let statement = entries_query()
            .and_where(Expr::col(col(outbox::APP)).eq(app))
            .and_where(Expr::col(col(outbox::CLAIMED_UNTIL)).lt(now_ms()))
            .order_by(col(outbox::ID), Order::Asc)
            .limit(crate::storage::statements::sql_limit(limit))
            .to_owned();
        let rows = self
            .db
            .query_all(&statement)
            .await
            .map_err(failed("select"))?;
        Ok(rows.iter().map(entry).collect::<Result<Vec<_>>>()?)
    }

    async fn claim(&self, entry: &OutboxEntry, duration: Duration) -> Result<bool, BackendError> {
        let id: i64 = entry.id.parse().map_err(|_| SqlError::Definition {
            model: OUTBOX_TABLE.into(),
            problem: format!("{} is not an outbox row id", entry.id),
        })?;
        let statement = Query::update()
            .table(table())
            .value(col(outbox::CLAIMED_UNTIL), later(duration))
            .and_where(Expr::col(col(outbox::ID)).eq(id))
            .and_where(Expr::col(col(outbox::CLAIMED_UNTIL)).eq(entry.claimed_until))
            .to_owned();
        let done = self.db.execute(&statement).await.map_err(failed("claim"))?;
        Ok(done.rows_affected() == 1)
    }

    async fn unclaim(&self, intents: &[String]) -> Result<(), BackendError> {
        if intents.is_empty() {
            return Ok(());
        }
        let statement = Query::update()
            .table(table())
            .value(col(outbox::CLAIMED_UNTIL), 0i64)
            .cond_where(Self::matching(intents))
            .to_owned();
        self.db
            .execute(&statement)
            .await
            .map_err(failed("unclaim"))?;
        Ok(())
    }

    async fn remove(&self, intents: &[String]) -> Result<(), BackendError> {
        for chunk in intents.chunks(500) {
            let statement = Query::delete()
                .from_table(table())
                .cond_where(Self::matching(chunk))
                .to_owned();
            self.db
                .execute(&statement)
                .await
                .map_err(failed("delete"))?;
        }
        Ok(())
    }

    async fn fence(
        &self,
        app: &str,
        intent: &str,
        noop: &[u8],
        claim: Duration,
    ) -> Result<Fence, BackendError> {
        // The unique intent decides: the insert waits for a writer's open
        // transaction holding the same intent, and fails once it committed.
        match insert(&self.db, app, intent, noop, claim).await {
            Ok(id) => Ok(Fence::Fenced(OutboxEntry {
                id: id.to_string(),
                intent: intent.to_owned(),
                payload: noop.to_vec(),
                claimed_until: later(claim),
            })),
            Err(SqlError::Database { source, .. })
                if matches!(source.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) =>
            {
                match self.by_intent(intent).await? {
                    Some(entry) => Ok(Fence::Committed(entry)),
                    // Removed in between (published by its writer): publishing
                    // the noop would be harmless, but there is nothing to fence.
                    None => Err(SqlError::Definition {
                        model: OUTBOX_TABLE.into(),
                        problem: format!("the entry of publication {intent} vanished while it was fenced; try again"),
                    }
                    .into()),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn len(&self, app: &str) -> Result<u64, BackendError> {
        let statement = Query::select()
            .expr_as(Expr::col(col(outbox::ID)).count(), col("n"))
            .from(table())
            .and_where(Expr::col(col(outbox::APP)).eq(app))
            .to_owned();
        let row = self
            .db
            .query_one(&statement)
            .await
            .map_err(failed("count"))?;
        let count: i64 = match row {
            Some(row) => row.try_get_by("n").map_err(failed("count"))?,
            None => 0,
        };
        Ok(u64::try_from(count).unwrap_or_default())
    }
}
