//! The sea-query statements behind the storage operations, with every JSON
//! value converted for its column.

use promiscuous_core::traits::{Filter, Record};
use sea_orm::sea_query::{
    Alias, DeleteStatement, Expr, ExprTrait, InsertStatement, IntoColumnRef, Order, Query,
    SelectStatement, UpdateStatement,
};
use sea_orm::DbBackend;

use crate::convert::{filter_condition, select_expr, value_expr, Target};
use crate::entity::{ColumnInfo, TableInfo};
use crate::error::SqlError;

/// A table of a model, on a database: what every statement is built for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct On<'a> {
    /// The model, named in errors.
    pub model: &'a str,
    /// Its table.
    pub table: &'a TableInfo,
    /// The database.
    pub backend: DbBackend,
}

impl<'a> On<'a> {
    fn column(&self, name: &str) -> Result<&'a ColumnInfo, SqlError> {
        self.table.get(name).ok_or_else(|| SqlError::UnknownColumn {
            model: self.model.to_owned(),
            table: self.table.table.clone(),
            column: name.to_owned(),
        })
    }

    fn target(&self, column: &'a ColumnInfo) -> Target<'a> {
        Target {
            model: self.model,
            column,
            backend: self.backend,
        }
    }

    fn conditions(&self, filter: &Filter) -> Result<Vec<Expr>, SqlError> {
        filter
            .conditions()
            .iter()
            .map(|(name, value)| {
                filter_condition(&self.target(self.column(name)?), &self.table.table, value)
            })
            .collect()
    }

    /// The value expressions of `record`'s attributes, by column; `skip`
    /// leaves columns out (generated keys on insert, keys on update).
    fn values(
        &self,
        record: &Record,
        skip: impl Fn(&ColumnInfo, &serde_json::Value) -> bool,
    ) -> Result<Vec<(Alias, Expr)>, SqlError> {
        let mut values = Vec::with_capacity(record.len());
        for (name, value) in record {
            let column = self.column(name)?;
            if !skip(column, value) {
                values.push((
                    Alias::new(&column.name),
                    value_expr(&self.target(column), value)?,
                ));
            }
        }
        Ok(values)
    }

    /// Every column of the matching rows, in primary-key order, at most `limit`.
    #[cfg(test)]
    pub(crate) fn select(
        &self,
        filter: &Filter,
        limit: usize,
    ) -> Result<SelectStatement, SqlError> {
        self.select_after(filter, None, limit)
    }

    /// Every column of the matching rows whose key is after `after`, in
    /// primary-key order, at most `limit`.
    pub(crate) fn select_after(
        &self,
        filter: &Filter,
        after: Option<&serde_json::Value>,
        limit: usize,
    ) -> Result<SelectStatement, SqlError> {
        let mut select = Query::select();
        select.from(self.table.table_ref());
        for column in &self.table.columns {
            select.expr_as(
                select_expr(&self.table.table, column, self.backend),
                Alias::new(&column.name),
            );
        }
        for condition in self.conditions(filter)? {
            select.and_where(condition);
        }
        if let Some(after) = after {
            let key = self
                .table
                .primary_key()
                .next()
                .ok_or_else(|| SqlError::Definition {
                    model: self.model.to_owned(),
                    problem: format!(
                        "table {} has no primary key to page through",
                        self.table.table
                    ),
                })?;
            let value = value_expr(&self.target(key), after)?;
            select.and_where(
                Expr::col((Alias::new(&self.table.table), Alias::new(&key.name))).gt(value),
            );
        }
        for key in self.table.primary_key() {
            select.order_by(
                (Alias::new(&self.table.table), Alias::new(&key.name)).into_column_ref(),
                Order::Asc,
            );
        }
        select.limit(sql_limit(limit));
        Ok(select)
    }

    /// How many rows match.
    pub(crate) fn count(&self, filter: &Filter) -> Result<SelectStatement, SqlError> {
        let mut select = Query::select();
        select
            .from(self.table.table_ref())
            .expr_as(Expr::cust("COUNT(*)"), Alias::new("matched"));
        for condition in self.conditions(filter)? {
            select.and_where(condition);
        }
        Ok(select)
    }

    /// Inserts `record`, leaving a generated key to the database when the
    /// record has no value for it.
    pub(crate) fn insert(&self, record: &Record) -> Result<InsertStatement, SqlError> {
        let values = self.values(record, |column, value| {
            column.auto_increment && value.is_null()
        })?;
        let mut insert = Query::insert();
        insert.into_table(self.table.table_ref());
        if values.is_empty() {
            insert.or_default_values();
            return Ok(insert);
        }
        let (columns, exprs): (Vec<Alias>, Vec<Expr>) = values.into_iter().unzip();
        insert.columns(columns);
        insert.values(exprs).map_err(|e| SqlError::Definition {
            model: self.model.to_owned(),
            problem: format!("cannot build the insert: {e}"),
        })?;
        Ok(insert)
    }

    /// Sets `record`'s attributes, except primary-key columns, on the
    /// matching rows; `None` when that leaves nothing to set.
    pub(crate) fn update(
        &self,
        filter: &Filter,
        record: &Record,
    ) -> Result<Option<UpdateStatement>, SqlError> {
        let values = self.values(record, |column, _| column.primary_key)?;
        let conditions = self.conditions(filter)?;
        if values.is_empty() {
            return Ok(None);
        }
        let mut update = Query::update();
        update.table(self.table.table_ref()).values(values);
        for condition in conditions {
            update.and_where(condition);
        }
        Ok(Some(update))
    }

    /// Deletes the matching rows.
    pub(crate) fn delete(&self, filter: &Filter) -> Result<DeleteStatement, SqlError> {
        let mut delete = Query::delete();
        delete.from_table(self.table.table_ref());
        for condition in self.conditions(filter)? {
            delete.and_where(condition);
        }
        Ok(delete)
    }
}

/// `limit` as a SQL `LIMIT`: databases take a signed 64-bit one (and the
/// driver refuses a larger value), so anything above means no limit.
pub(crate) fn sql_limit(limit: usize) -> u64 {
    Ord::min(
        u64::try_from(limit).unwrap_or(u64::MAX),
        i64::MAX.unsigned_abs(),
    )
}

#[cfg(test)]
mod tests {
    use sea_orm::sea_query::{ColumnType, PostgresQueryBuilder};
    use serde_json::json;

    use super::*;

    fn table() -> TableInfo {
        TableInfo::new("users")
            .column(
                ColumnInfo::new("id", ColumnType::BigInteger)
                    .primary_key()
                    .auto_increment(),
            )
            .column(ColumnInfo::new("name", ColumnType::Text))
    }

    fn record(value: serde_json::Value) -> Record {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn statements_qualify_filters_and_skip_keys() -> Result<(), SqlError> {
        let table = table();
        let on = On {
            model: "User",
            table: &table,
            backend: DbBackend::Postgres,
        };
        let filter = Filter::eq("id", json!(1)).and("name", json!(null));
        assert_eq!(
            on.select(&filter, 2)?.to_string(PostgresQueryBuilder),
            r#"SELECT "users"."id" AS "id", "users"."name" AS "name" FROM "users" WHERE "users"."id" = 1 AND "users"."name" IS NULL ORDER BY "users"."id" ASC LIMIT 2"#
        );
        assert_eq!(
            on.insert(&record(json!({"id": null, "name": "Ada"})))?
                .to_string(PostgresQueryBuilder),
            r#"INSERT INTO "users" ("name") VALUES ('Ada')"#
        );
        assert!(on.update(&filter, &record(json!({"id": 2})))?.is_none());
        assert!(matches!(
            on.insert(&record(json!({"nope": 1}))),
            Err(SqlError::UnknownColumn { .. })
        ));
        Ok(())
    }
}
