//! Query rows into JSON records: each column selected in a form sqlx can
//! decode, then decoded per its kind.

use promiscuous_core::traits::Record;
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Func, IntoColumnRef};
use sea_orm::{DbBackend, DbErr, QueryResult, TryGetable};
use serde_json::{Number, Value as Json};

use super::kind::Kind;
use crate::entity::{ColumnInfo, TableInfo};
use crate::error::SqlError;

/// The expression selecting `column` of `table` (aliased to the column's
/// name by the caller) in a form [`read_record`] decodes.
pub(crate) fn select_expr(table: &str, column: &ColumnInfo, backend: DbBackend) -> Expr {
    let kind = Kind::of(&column.column_type);
    let plain = Expr::col((Alias::new(table), Alias::new(&column.name)).into_column_ref());
    match backend {
        DbBackend::Postgres if kind.pg_reads_as_json() => {
            Func::cust(Alias::new("to_json")).arg(plain).into()
        }
        DbBackend::MySql if kind.reads_as_text() => plain.cast_as(Alias::new("CHAR")),
        DbBackend::Sqlite if kind.reads_as_text() => plain.cast_as(Alias::new("TEXT")),
        _ => plain,
    }
}

/// A row selected with [`select_expr`] as a record: every column, NULL as null.
pub(crate) fn read_record(
    model: &str,
    table: &TableInfo,
    row: &QueryResult,
    backend: DbBackend,
) -> Result<Record, SqlError> {
    let mut record = Record::new();
    for column in &table.columns {
        let value = read_column(row, column, backend).map_err(|e| {
            SqlError::database(
                "read",
                format!("{}.{}", table.describe(model), column.name),
                e,
            )
        })?;
        record.insert(column.name.clone(), value.unwrap_or(Json::Null));
    }
    Ok(record)
}

type Attempt<'a> = &'a dyn Fn() -> Result<Option<Json>, DbErr>;

/// The first decoding that succeeds; the first error when none does.
fn first(attempts: &[Attempt<'_>]) -> Result<Option<Json>, DbErr> {
    let mut first_error = None;
    for attempt in attempts {
        match attempt() {
            Ok(value) => return Ok(value),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Err(first_error.unwrap_or_else(|| DbErr::Type("no decoding attempted".to_owned())))
}

fn get<T: TryGetable>(row: &QueryResult, name: &str) -> Result<Option<T>, DbErr> {
    row.try_get_by::<Option<T>, _>(name)
}

fn number<T: TryGetable + Into<Json>>(
    row: &QueryResult,
    name: &str,
) -> Result<Option<Json>, DbErr> {
    Ok(get::<T>(row, name)?.map(Into::into))
}

fn read_column(
    row: &QueryResult,
    column: &ColumnInfo,
    backend: DbBackend,
) -> Result<Option<Json>, DbErr> {
    let name = column.name.as_str();
    let kind = Kind::of(&column.column_type);
    if backend == DbBackend::Postgres && kind.pg_reads_as_json() {
        return get::<Json>(row, name);
    }
    let integer = || {
        first(&[
            &|| number::<i64>(row, name),
            &|| number::<i32>(row, name),
            &|| number::<i16>(row, name),
            &|| number::<i8>(row, name),
            &|| number::<u64>(row, name),
            &|| number::<u32>(row, name),
        ])
    };
    let string = || get::<String>(row, name);
    match kind {
        Kind::Bool => first(&[&|| Ok(get::<bool>(row, name)?.map(Json::Bool)), &|| {
            Ok(get::<i64>(row, name)?.map(|i| Json::Bool(i != 0)))
        }]),
        Kind::Integer { .. } => integer(),
        Kind::Year => first(&[&|| Ok(string()?.map(|s| parse_number(&s))), &integer]),
        Kind::Float { single } => {
            let double = || Ok(get::<f64>(row, name)?.map(float));
            // Through text, so 0.1f32 reads 0.1 rather than 0.10000000149011612.
            let single_precision = || {
                Ok(get::<f32>(row, name)?
                    .map(|f| float(f.to_string().parse().unwrap_or(f64::from(f)))))
            };
            // SQLite stores every REAL in double precision.
            if single && backend != DbBackend::Sqlite {
                first(&[&single_precision, &double, &integer])
            } else {
                first(&[&double, &single_precision, &integer])
            }
        }
        Kind::Decimal { .. } => first(&[&|| Ok(string()?.map(|s| parse_number(&s))), &|| {
            Ok(get::<f64>(row, name)?.map(float))
        }]),
        Kind::Text { .. } | Kind::Other { .. } | Kind::Array => {
            first(&[&|| Ok(string()?.map(Json::String)), &|| {
                Ok(get::<Vec<u8>>(row, name)?
                    .map(|b| Json::String(String::from_utf8_lossy(&b).into_owned())))
            }])
        }
        Kind::Temporal { .. } => Ok(string()?.map(|s| Json::String(iso_8601(s)))),
        Kind::Json { .. } => first(&[
            &|| Ok(string()?.map(|s| serde_json::from_str(&s).unwrap_or(Json::String(s)))),
            &|| get::<Json>(row, name),
        ]),
        Kind::Bytes => Ok(get::<Vec<u8>>(row, name)?
            .map(|b| Json::Array(b.into_iter().map(Json::from).collect()))),
        Kind::Uuid => first(&[&|| Ok(string()?.map(Json::String)), &|| {
            Ok(get::<Vec<u8>>(row, name)?.map(|b| Json::String(uuid_text(&b))))
        }]),
    }
}

fn float(f: f64) -> Json {
    Number::from_f64(f).map_or_else(|| Json::String(f.to_string()), Json::Number)
}

/// A number when the text is one, else the text.
fn parse_number(text: &str) -> Json {
    serde_json::from_str::<Number>(text.trim())
        .map_or_else(|_| Json::String(text.to_owned()), Json::Number)
}

/// `2024-01-31 12:00:00` (how MySQL and SQLite print) as `2024-01-31T12:00:00`
/// (how chrono and most JSON encoders write).
fn iso_8601(mut text: String) -> String {
    let bytes = text.as_bytes();
    let looks_like_datetime = bytes.len() > 13
        && bytes[..10].iter().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                *b == b'-'
            } else {
                b.is_ascii_digit()
            }
        })
        && bytes[10] == b' '
        && bytes[11].is_ascii_digit();
    if looks_like_datetime {
        text.replace_range(10..11, "T");
    }
    text
}

fn uuid_text(bytes: &[u8]) -> String {
    if bytes.len() != 16 {
        return bytes.iter().map(|b| format!("{b:02x}")).collect();
    }
    let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        hex[..4].concat(),
        hex[4..6].concat(),
        hex[6..8].concat(),
        hex[8..10].concat(),
        hex[10..].concat()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_get_a_t() {
        assert_eq!(
            iso_8601("2024-01-31 12:00:00".into()),
            "2024-01-31T12:00:00"
        );
        assert_eq!(iso_8601("2024-01-31".into()), "2024-01-31");
        assert_eq!(iso_8601("12:00:00".into()), "12:00:00");
        assert_eq!(
            iso_8601("ünïcödé strings stay".into()),
            "ünïcödé strings stay"
        );
    }

    #[test]
    fn uuids_are_formatted() {
        let bytes: Vec<u8> = (0..16).collect();
        assert_eq!(uuid_text(&bytes), "00010203-0405-0607-0809-0a0b0c0d0e0f");
        assert_eq!(uuid_text(&[1, 2]), "0102");
    }

    #[test]
    fn decimals_read_as_numbers_when_they_are() {
        assert_eq!(parse_number("12.50"), serde_json::json!(12.5));
        assert_eq!(parse_number("NaN"), serde_json::json!("NaN"));
    }
}
