//! Initial sync: publishing the current state of existing rows, so a new
//! subscriber (or one restarted after a generation bump) catches up.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use promiscuous_core::dependency::{fnv1a64, id_json};
use promiscuous_core::model::{published_attributes, Publish};
use promiscuous_core::publisher::{PendingWrite, SyncProgress, SyncReport};
use promiscuous_core::wire::OperationKind;
use promiscuous_core::Error as CoreError;
use sea_orm::sea_query::{ColumnType, Expr, ExprTrait, IntoCondition};
use sea_orm::{
    ColumnTrait, Condition, EntityTrait, Iterable, ModelTrait, PaginatorTrait, PrimaryKeyToColumn,
    QueryFilter, QueryOrder, QuerySelect,
};
use serde_json::Value;

use crate::error::{Result, SqlError};
use crate::publisher::SqlPublisher;

/// Default number of rows per batch (and per message).
const DEFAULT_BATCH: u64 = 100;

/// Publishes the current state of the rows of entity `E`; made by
/// [`SqlPublisher::sync`].
///
/// Rows are read in primary-key order, `batch` at a time; each batch is
/// published as one message of updates (a subscriber creates the records it
/// does not have). Each batch takes the locks of its records and reads them
/// again under the locks, so a write running at the same time is published
/// either before the batch or after it, never overtaken by an older state.
/// Rows deleted between the two reads are left out.
///
/// Several workers can share the work: each runs the same sync with
/// [`partition`](Self::partition)`(i, n)`. With an integer key the database
/// selects the rows whose key is `i` modulo `n`, so each worker reads only
/// its share; with another key each worker reads every row and publishes
/// those whose id hashes to `i` modulo `n`.
pub struct InitialSync<E> {
    publisher: SqlPublisher,
    condition: Condition,
    batch: u64,
    partition: (u64, u64),
    progress: bool,
    on_progress: Option<Arc<dyn Fn(SyncProgress) + Send + Sync>>,
    entity: PhantomData<fn() -> E>,
}

impl<E> std::fmt::Debug for InitialSync<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InitialSync")
            .field("condition", &self.condition)
            .field("batch", &self.batch)
            .field("partition", &self.partition)
            .field("progress", &self.progress)
            .finish_non_exhaustive()
    }
}

impl SqlPublisher {
    /// An initial sync of every row of entity `E`; narrow it with
    /// [`filter`](InitialSync::filter).
    pub fn sync<E>(&self) -> InitialSync<E>
    where
        E: EntityTrait,
        E::Model: Publish,
    {
        InitialSync {
            publisher: self.clone(),
            condition: Condition::all(),
            batch: DEFAULT_BATCH,
            partition: (0, 1),
            progress: true,
            on_progress: None,
            entity: PhantomData,
        }
    }
}

impl<E> InitialSync<E>
where
    E: EntityTrait,
    E::Model: Publish,
{
    /// Publishes only the rows matching `condition` (sea-orm filters: `user::Column::Active.eq(true)`).
    pub fn filter(mut self, condition: impl IntoCondition) -> Self {
        self.condition = self.condition.add(condition.into_condition());
        self
    }

    /// Rows per batch and per message (default 100).
    pub fn batch_size(mut self, batch: u64) -> Self {
        self.batch = std::cmp::max(batch, 1);
        self
    }

    /// Publishes only partition `index` of `count` (ids hashed), so `count`
    /// workers can share the sync.
    pub fn partition(mut self, index: u64, count: u64) -> Self {
        self.partition = (index, count);
        self
    }

    /// Shows a progress bar on standard error when it is a terminal (default on).
    pub fn progress(mut self, shown: bool) -> Self {
        self.progress = shown;
        self
    }

    /// Called after each batch with the progress so far (its `total` is the
    /// number of rows to read).
    pub fn on_progress(mut self, report: impl Fn(SyncProgress) + Send + Sync + 'static) -> Self {
        self.on_progress = Some(Arc::new(report));
        self
    }

    /// Publishes only the rows matching `condition`, an SQL boolean
    /// expression on the entity's table (`state = 'banned'`), as the CLI's
    /// `publish --filter` takes it. It is sent to the database as written:
    /// take it from operators, never from end users.
    pub fn filter_sql(self, condition: &str) -> Self {
        self.filter(Expr::cust(condition.to_owned()))
    }

    fn progress_bar(&self, total: u64) -> ProgressBar {
        if !self.progress {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new(total);
        if let Ok(style) = ProgressStyle::with_template(
            "{msg} [{elapsed_precise}] {wide_bar} {pos}/{len} rows ({per_sec}, {eta} left)",
        ) {
            bar.set_style(style);
        }
        bar.set_message(format!(
            "sync {}",
            <E::Model as Publish>::definition().model
        ));
        bar.enable_steady_tick(Duration::from_millis(250));
        bar
    }

    /// The rows of this worker's partition, when the database can tell them
    /// (integer keys): `key % n` is `i`, or `i - n` for negative keys.
    fn partition_condition(&self, key: E::Column) -> Option<Condition> {
        let (index, count) = self.partition;
        let integer = matches!(
            key.def().get_column_type(),
            ColumnType::TinyInteger
                | ColumnType::SmallInteger
                | ColumnType::Integer
                | ColumnType::BigInteger
                | ColumnType::TinyUnsigned
                | ColumnType::SmallUnsigned
                | ColumnType::Unsigned
                | ColumnType::BigUnsigned
        );
        if count <= 1 || !integer {
            return None;
        }
        let (index, count) = (i64::try_from(index).ok()?, i64::try_from(count).ok()?);
        let remainder = || Expr::col((E::default(), key)).modulo(count);
        Some(
            Condition::any()
                .add(remainder().eq(index))
                .add(remainder().eq(index - count)),
        )
    }

    /// Whether the client must pick this worker's rows itself (non-integer keys).
    fn in_partition(&self, id: &Value, by_database: bool) -> bool {
        let (index, count) = self.partition;
        by_database || count <= 1 || fnv1a64(id_json(id).as_bytes()) % count == index
    }

    fn check(&self) -> Result<()> {
        let (index, count) = self.partition;
        if count == 0 || index >= count {
            return Err(SqlError::Definition {
                model: <E::Model as Publish>::definition().model.to_owned(),
                problem: format!(
                    "sync partition {index} of {count} does not exist; use partition(i, n) with 0 <= i < n"
                ),
            });
        }
        self.publisher.published::<E>().map(|_| ())
    }

    /// Runs the sync to the end.
    pub async fn run(self) -> Result<SyncReport> {
        self.check()?;
        let model = <E::Model as Publish>::definition().model;
        let db = self.publisher.connection();
        let Some(key) = E::PrimaryKey::iter()
            .next()
            .map(PrimaryKeyToColumn::into_column)
        else {
            return Err(SqlError::Definition {
                model: model.to_owned(),
                problem: "has no primary key".into(),
            });
        };
        let mut condition = self.condition.clone();
        let by_database = match self.partition_condition(key) {
            Some(partition) => {
                condition = condition.add(partition);
                true
            }
            None => false,
        };
        let total = E::find()
            .filter(condition.clone())
            .count(db)
            .await
            .map_err(|e| SqlError::database("count", model, e))?;
        self.publisher
            .promiscuous()
            .publish_baseline(<E::Model as Publish>::definition())
            .await?;
        let bar = self.progress_bar(total);
        let mut report = SyncReport {
            total: Some(total),
            ..SyncReport::default()
        };
        let mut after: Option<sea_orm::Value> = None;
        loop {
            let mut query = E::find().filter(condition.clone());
            if let Some(last) = after.take() {
                query = query.filter(key.gt(last));
            }
            let rows = query
                .order_by_asc(key)
                .limit(self.batch)
                .all(db)
                .await
                .map_err(|e| SqlError::database("select", model, e))?;
            let Some(last) = rows.last() else { break };
            after = Some(last.get(key));
            report.scanned += rows.len() as u64;
            let mine: Vec<(Value, sea_orm::Value)> = rows
                .iter()
                .map(|row| (row.id(), row.get(key)))
                .filter(|(id, _)| self.in_partition(id, by_database))
                .collect();
            self.publish_batch(key, mine, &mut report).await?;
            bar.inc(rows.len() as u64);
            if let Some(on_progress) = &self.on_progress {
                on_progress(report);
            }
        }
        bar.finish_and_clear();
        tracing::info!(
            model,
            scanned = report.scanned,
            published = report.published,
            vanished = report.vanished,
            "initial sync done"
        );
        Ok(report)
    }

    /// Publishes one batch under the locks of its records, leaving out rows
    /// deleted since they were listed.
    async fn publish_batch(
        &self,
        key: E::Column,
        batch: Vec<(Value, sea_orm::Value)>,
        report: &mut SyncReport,
    ) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let model = <E::Model as Publish>::definition().model;
        let db = self.publisher.connection();
        let pending: Vec<PendingWrite> = batch
            .iter()
            .map(|(id, _)| PendingWrite::of::<E::Model>(OperationKind::Update, id.clone()))
            .collect();
        let keys: Vec<sea_orm::Value> = batch.iter().map(|(_, key)| key.clone()).collect();
        let published = self
            .publisher
            .promiscuous()
            .publish_states(pending, || async {
                let found = E::find()
                    .filter(key.is_in(keys))
                    .all(db)
                    .await
                    .map_err(|e| CoreError::from(SqlError::database("select", model, e)))?;
                let mut by_id: HashMap<String, E::Model> = found
                    .into_iter()
                    .map(|row| (id_json(&row.id()), row))
                    .collect();
                batch
                    .iter()
                    .map(|(id, _)| match by_id.remove(&id_json(id)) {
                        Some(row) => published_attributes(&row).map(Some),
                        None => Ok(None),
                    })
                    .collect()
            })
            .await?;
        report.published += published as u64;
        report.vanished += (batch.len() - published) as u64;
        if published > 0 {
            report.batches += 1;
        }
        Ok(())
    }
}
