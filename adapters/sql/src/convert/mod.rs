//! Conversions between JSON records and SQL values, guided by each column's
//! sea-query [`ColumnType`](sea_orm::sea_query::ColumnType):
//! [`to_sql`] for what is written, [`from_row`] for what is read.

mod from_row;
mod kind;
mod to_sql;

pub(crate) use from_row::{read_record, select_expr};
pub(crate) use to_sql::{filter_condition, value_expr, Target};

#[cfg(test)]
mod tests;
