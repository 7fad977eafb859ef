//! Conversions checked without a database: statements rendered as SQL text.

use sea_orm::sea_query::{
    ColumnType, IntoIden, MysqlQueryBuilder, PostgresQueryBuilder, Query, SqliteQueryBuilder,
    StringLen,
};
use sea_orm::DbBackend;
use serde_json::{json, Value as Json};

use super::{filter_condition, value_expr, Target};
use crate::entity::ColumnInfo;
use crate::error::SqlError;

fn rendered(backend: DbBackend, column: &ColumnInfo, value: &Json) -> Result<String, SqlError> {
    let target = Target {
        model: "User",
        column,
        backend,
    };
    let expr = value_expr(&target, value)?;
    let select = Query::select().expr(expr).to_owned();
    Ok(match backend {
        DbBackend::Postgres => select.to_string(PostgresQueryBuilder),
        DbBackend::MySql => select.to_string(MysqlQueryBuilder),
        _ => select.to_string(SqliteQueryBuilder),
    })
}

fn sqlite(column_type: ColumnType, value: Json) -> Result<String, SqlError> {
    rendered(
        DbBackend::Sqlite,
        &ColumnInfo::new("c", column_type),
        &value,
    )
}

fn problem(result: Result<String, SqlError>) -> String {
    match result {
        Ok(sql) => panic!("expected a conversion error, got {sql}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn integers_are_checked_against_the_column_width() {
    assert_eq!(
        sqlite(ColumnType::BigInteger, json!(42)).ok(),
        Some("SELECT 42".into())
    );
    assert_eq!(
        sqlite(ColumnType::BigInteger, json!("42")).ok(),
        Some("SELECT 42".into())
    );
    assert_eq!(
        sqlite(ColumnType::Integer, json!(3.0)).ok(),
        Some("SELECT 3".into())
    );
    assert_eq!(
        sqlite(ColumnType::BigUnsigned, json!(u64::MAX)).ok(),
        Some(format!("SELECT {}", u64::MAX))
    );
    let error = problem(sqlite(ColumnType::TinyInteger, json!(128)));
    assert!(
        error.contains("from -128 to 127") && error.contains("User.c"),
        "{error}"
    );
    for bad in [
        json!(-1),
        json!(1.5),
        json!("abc"),
        json!(true),
        json!([1]),
        json!({"a": 1}),
    ] {
        problem(sqlite(ColumnType::Unsigned, bad));
    }
}

#[test]
fn booleans_accept_zero_and_one() {
    assert_eq!(
        sqlite(ColumnType::Boolean, json!(true)).ok(),
        Some("SELECT TRUE".into())
    );
    assert_eq!(
        sqlite(ColumnType::Boolean, json!(0)).ok(),
        Some("SELECT FALSE".into())
    );
    assert!(problem(sqlite(ColumnType::Boolean, json!(2))).contains("true or false"));
}

#[test]
fn text_takes_any_json_and_checks_length() {
    assert_eq!(
        sqlite(ColumnType::Text, json!("Ada")).ok(),
        Some("SELECT 'Ada'".into())
    );
    assert_eq!(
        sqlite(ColumnType::Text, json!({"a": [1]})).ok(),
        Some(r#"SELECT '{"a":[1]}'"#.into())
    );
    assert_eq!(
        sqlite(ColumnType::Text, json!(7)).ok(),
        Some("SELECT '7'".into())
    );
    let error = problem(sqlite(ColumnType::String(StringLen::N(2)), json!("été")));
    assert!(
        error.contains("3 characters") && error.contains("at most 2"),
        "{error}"
    );
}

#[test]
fn json_is_bound_per_database() {
    let column = ColumnInfo::new("c", ColumnType::JsonBinary);
    let value = json!({"a": [1, null]});
    assert_eq!(
        rendered(DbBackend::Postgres, &column, &value).ok(),
        Some(r#"SELECT CAST('{"a":[1,null]}' AS jsonb)"#.into())
    );
    assert_eq!(
        rendered(DbBackend::MySql, &column, &value).ok(),
        Some(r#"SELECT '{\"a\":[1,null]}'"#.into())
    );
}

#[test]
fn text_typed_columns_are_cast_on_postgres_only() {
    let column = ColumnInfo::new("c", ColumnType::TimestampWithTimeZone);
    let at = json!("2024-01-31T12:00:00Z");
    assert_eq!(
        rendered(DbBackend::Postgres, &column, &at).ok(),
        Some("SELECT CAST('2024-01-31T12:00:00Z' AS timestamptz)".into())
    );
    assert_eq!(
        rendered(DbBackend::Sqlite, &column, &at).ok(),
        Some("SELECT '2024-01-31T12:00:00Z'".into())
    );
    assert!(problem(rendered(DbBackend::Postgres, &column, &json!(12))).contains("ISO 8601"));
    let decimal = ColumnInfo::new("c", ColumnType::Decimal(None));
    assert_eq!(
        rendered(DbBackend::Postgres, &decimal, &json!(12.5)).ok(),
        Some("SELECT CAST('12.5' AS numeric)".into())
    );
}

#[test]
fn uuids_are_bytes_on_mysql() {
    let column = ColumnInfo::new("c", ColumnType::Uuid);
    let id = json!("00010203-0405-0607-0809-0a0b0c0d0e0f");
    assert_eq!(
        rendered(DbBackend::MySql, &column, &id).ok(),
        Some("SELECT x'000102030405060708090A0B0C0D0E0F'".into())
    );
    assert!(problem(rendered(DbBackend::MySql, &column, &json!("not-a-uuid"))).contains("UUID"));
}

#[test]
fn nulls_need_a_nullable_column() {
    assert_eq!(
        sqlite(ColumnType::Text, Json::Null).ok(),
        Some("SELECT NULL".into())
    );
    let column = ColumnInfo::new("c", ColumnType::Text).not_null();
    assert!(problem(rendered(DbBackend::Sqlite, &column, &Json::Null)).contains("NOT NULL"));
}

#[test]
fn filters_compare_json_as_jsonb_on_postgres() {
    let column = ColumnInfo::new("c", ColumnType::Json);
    let target = Target {
        model: "User",
        column: &column,
        backend: DbBackend::Postgres,
    };
    let condition = filter_condition(&target, "users", &json!([1])).map_err(|e| e.to_string());
    let select = condition.map(|c| Query::select().expr(c).to_string(PostgresQueryBuilder));
    assert_eq!(
        select,
        Ok(r#"SELECT CAST("users"."c" AS jsonb) = CAST('[1]' AS jsonb)"#.to_owned())
    );
}

#[test]
fn no_value_panics_any_column() {
    let values = [
        Json::Null,
        json!(true),
        json!(-1),
        json!(u64::MAX),
        json!(i64::MIN),
        json!(1e308),
        json!(-1e-308),
        json!(""),
        json!("\u{0}\u{1F600}"),
        json!("9".repeat(400)),
        json!([1, "x", null, [], {}]),
        json!({"nested": {"deeper": [1.5]}}),
    ];
    let types = [
        ColumnType::Boolean,
        ColumnType::TinyInteger,
        ColumnType::SmallUnsigned,
        ColumnType::BigInteger,
        ColumnType::BigUnsigned,
        ColumnType::Year,
        ColumnType::Float,
        ColumnType::Double,
        ColumnType::Decimal(Some((10, 2))),
        ColumnType::Money(None),
        ColumnType::Char(Some(1)),
        ColumnType::String(StringLen::N(3)),
        ColumnType::Text,
        ColumnType::Json,
        ColumnType::JsonBinary,
        ColumnType::Blob,
        ColumnType::Binary(4),
        ColumnType::Uuid,
        ColumnType::Date,
        ColumnType::Interval(None, None),
        ColumnType::Inet,
        ColumnType::Bit(Some(1)),
        ColumnType::Vector(None),
        ColumnType::Array(std::sync::Arc::new(ColumnType::Integer)),
        ColumnType::Enum {
            name: "Mood".into_iden(),
            variants: vec!["happy".into_iden()],
        },
        ColumnType::Custom("citext".into_iden()),
    ];
    for backend in [DbBackend::Sqlite, DbBackend::Postgres, DbBackend::MySql] {
        for column_type in &types {
            for nullable in [true, false] {
                let mut column = ColumnInfo::new("c", column_type.clone());
                column.nullable = nullable;
                for value in &values {
                    let _ = rendered(backend, &column, value);
                    let target = Target {
                        model: "User",
                        column: &column,
                        backend,
                    };
                    let _ = filter_condition(&target, "t", value);
                }
            }
        }
    }
}
