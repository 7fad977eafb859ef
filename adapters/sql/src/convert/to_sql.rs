//! JSON values into SQL values, checked against the column they are written
//! to or compared with.

use sea_orm::sea_query::{Alias, Expr, ExprTrait, IntoColumnRef};
use sea_orm::{DbBackend, Value};
use serde_json::Value as Json;

use super::kind::{type_name, Kind, PgType};
use crate::entity::ColumnInfo;
use crate::error::SqlError;

/// Where a value goes: which model, which column, on which database.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target<'a> {
    /// The model named in errors.
    pub model: &'a str,
    /// The column written or compared.
    pub column: &'a ColumnInfo,
    /// The database, whose binding rules differ.
    pub backend: DbBackend,
}

impl Target<'_> {
    fn error(&self, value: &Json, problem: impl Into<String>) -> SqlError {
        let mut shown = value.to_string();
        if shown.len() > 200 {
            let mut end = 200;
            while !shown.is_char_boundary(end) {
                end -= 1;
            }
            shown.truncate(end);
            shown.push('…');
        }
        SqlError::Conversion {
            model: self.model.to_owned(),
            column: self.column.name.clone(),
            value: shown,
            column_type: type_name(&self.column.column_type),
            problem: problem.into(),
        }
    }

    fn postgres(&self) -> bool {
        self.backend == DbBackend::Postgres
    }

    fn mysql(&self) -> bool {
        self.backend == DbBackend::MySql
    }
}

/// The expression writing `value` into the target column (INSERT, UPDATE SET).
pub(crate) fn value_expr(target: &Target<'_>, value: &Json) -> Result<Expr, SqlError> {
    let kind = Kind::of(&target.column.column_type);
    if value.is_null() {
        if !target.column.nullable {
            return Err(target.error(
                value,
                "the column is NOT NULL; send a value, or make the column nullable",
            ));
        }
        return Ok(wrap(target, &kind, null_of(target, &kind)));
    }
    let bound = bind(target, &kind, value).map_err(|problem| target.error(value, problem))?;
    Ok(wrap(target, &kind, bound))
}

/// The condition `column = value` (`column IS NULL` for null), the column
/// qualified with `table` so it cannot be mistaken for a selected alias.
pub(crate) fn filter_condition(
    target: &Target<'_>,
    table: &str,
    value: &Json,
) -> Result<Expr, SqlError> {
    let column = Expr::col((Alias::new(table), Alias::new(&target.column.name)).into_column_ref());
    if value.is_null() {
        return Ok(column.is_null());
    }
    let kind = Kind::of(&target.column.column_type);
    let bound = bind(target, &kind, value).map_err(|problem| target.error(value, problem))?;
    if let (true, Kind::Json { .. }) = (target.postgres(), &kind) {
        // `json` has no equality operator: compare both sides as jsonb.
        let jsonb = Alias::new("jsonb");
        return Ok(column
            .cast_as(jsonb.clone())
            .eq(Expr::val(bound).cast_as(jsonb)));
    }
    Ok(column.eq(wrap(target, &kind, bound)))
}

/// Adds the cast PostgreSQL needs to accept a text (or jsonb) parameter.
fn wrap(target: &Target<'_>, kind: &Kind, value: Value) -> Expr {
    let expr = Expr::val(value);
    if !target.postgres() {
        return expr;
    }
    match kind {
        Kind::Decimal { pg } | Kind::Json { pg } | Kind::Temporal { pg } => {
            expr.cast_as(Alias::new(*pg))
        }
        Kind::Uuid => expr.cast_as(Alias::new("uuid")),
        Kind::Other {
            pg: Some(PgType::Named(name)),
        } => expr.cast_as(Alias::new(name)),
        Kind::Other {
            pg: Some(PgType::Enum(name)),
        } => expr.as_enum(Alias::new(name)),
        _ => expr,
    }
}

/// A NULL of the type the column's values are bound as.
fn null_of(target: &Target<'_>, kind: &Kind) -> Value {
    match kind {
        Kind::Bool => Value::Bool(None),
        Kind::Integer { .. } | Kind::Year => Value::BigInt(None),
        Kind::Float { .. } => Value::Double(None),
        Kind::Json { .. } if target.postgres() => Value::Json(None),
        Kind::Bytes => Value::Bytes(None),
        Kind::Uuid if target.mysql() => Value::Bytes(None),
        _ => Value::String(None),
    }
}

/// The SQL value for a non-null JSON value, or what is wrong with it.
fn bind(target: &Target<'_>, kind: &Kind, value: &Json) -> Result<Value, String> {
    match kind {
        Kind::Bool => boolean(value).map(|b| Value::Bool(Some(b))),
        Kind::Integer { min, max } => integer(value, *min, *max),
        Kind::Year => integer(value, 0, 9999),
        Kind::Float { single } => float(value, *single).map(|f| Value::Double(Some(f))),
        Kind::Decimal { .. } => decimal(value).map(|d| Value::String(Some(d))),
        Kind::Text { max_chars } => text(value, *max_chars).map(|s| Value::String(Some(s))),
        Kind::Json { .. } if target.postgres() => Ok(Value::Json(Some(Box::new(value.clone())))),
        Kind::Json { .. } => Ok(Value::String(Some(value.to_string()))),
        Kind::Bytes => bytes(value).map(|b| Value::Bytes(Some(b))),
        Kind::Uuid => uuid(value, target.mysql()),
        Kind::Temporal { .. } => match value {
            Json::String(s) => Ok(Value::String(Some(s.clone()))),
            _ => Err("expected a date or time as an ISO 8601 string (such as \"2024-01-31T12:00:00\"); send it as a string, or change the column's type".to_owned()),
        },
        Kind::Other { .. } => Ok(Value::String(Some(match value {
            Json::String(s) => s.clone(),
            other => other.to_string(),
        }))),
        Kind::Array => Err("PostgreSQL array columns cannot be written by promiscuous-sql; store the list in a JSON column".to_owned()),
    }
}

fn boolean(value: &Json) -> Result<bool, String> {
    match value {
        Json::Bool(b) => Ok(*b),
        Json::Number(n) if n.as_u64() == Some(0) => Ok(false),
        Json::Number(n) if n.as_u64() == Some(1) => Ok(true),
        _ => Err(
            "expected true or false (or 0 or 1); send a boolean, or change the column's type"
                .to_owned(),
        ),
    }
}

fn whole(value: &Json) -> Option<i128> {
    match value {
        Json::Number(n) => {
            if let Some(i) = n.as_i64() {
                Some(i.into())
            } else if let Some(u) = n.as_u64() {
                Some(u.into())
            } else {
                let f = n.as_f64()?;
                // 2^64 bounds every column type; beyond it the cast saturates.
                (f.fract() == 0.0 && f.abs() < 18_446_744_073_709_551_616.0).then_some(f as i128)
            }
        }
        Json::String(s) => s.trim().parse::<i128>().ok(),
        _ => None,
    }
}

fn integer(value: &Json, min: i128, max: i128) -> Result<Value, String> {
    let problem = || {
        format!("expected a whole number from {min} to {max}; send a JSON number in that range (or a string of digits), or give the column a type that holds this value")
    };
    let number = whole(value).ok_or_else(problem)?;
    if number < min || number > max {
        return Err(problem());
    }
    match i64::try_from(number) {
        Ok(signed) => Ok(Value::BigInt(Some(signed))),
        Err(_) => u64::try_from(number)
            .map(|unsigned| Value::BigUnsigned(Some(unsigned)))
            .map_err(|_| problem()),
    }
}

fn float(value: &Json, single: bool) -> Result<f64, String> {
    let number = match value {
        Json::Number(n) => n.as_f64(),
        Json::String(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
        _ => None,
    }
    .ok_or_else(|| {
        "expected a number; send a JSON number (or a numeric string), or change the column's type"
            .to_owned()
    })?;
    if single && number.abs() > f64::from(f32::MAX) {
        return Err("too large for a single-precision column; declare it DOUBLE".to_owned());
    }
    Ok(number)
}

fn decimal(value: &Json) -> Result<String, String> {
    let text = match value {
        Json::Number(n) => Some(n.to_string()),
        Json::String(s) if s.trim().parse::<f64>().is_ok() => Some(s.trim().to_owned()),
        _ => None,
    };
    text.ok_or_else(|| {
        "expected a decimal number (a JSON number, or a string such as \"12.50\"); send one, or change the column's type".to_owned()
    })
}

fn text(value: &Json, max_chars: Option<u32>) -> Result<String, String> {
    let text = match value {
        Json::String(s) => s.clone(),
        // Numbers, booleans, arrays and objects are stored as their JSON text.
        other => other.to_string(),
    };
    if let Some(max) = max_chars {
        let length = text.chars().count();
        if length > max as usize {
            return Err(format!(
                "it is {length} characters long but the column holds at most {max}; lengthen the column or shorten the value"
            ));
        }
    }
    Ok(text)
}

fn bytes(value: &Json) -> Result<Vec<u8>, String> {
    let problem = || "expected bytes: an array of numbers from 0 to 255, or a string".to_owned();
    match value {
        Json::String(s) => Ok(s.as_bytes().to_vec()),
        Json::Array(items) => items
            .iter()
            .map(|item| {
                item.as_u64()
                    .and_then(|b| u8::try_from(b).ok())
                    .ok_or_else(problem)
            })
            .collect(),
        _ => Err(problem()),
    }
}

fn uuid(value: &Json, as_bytes: bool) -> Result<Value, String> {
    let problem = || {
        "expected a UUID as a string (such as \"67e55044-10b1-426f-9247-bb680e5fe0c8\"); send one, or change the column's type".to_owned()
    };
    let Json::String(text) = value else {
        return Err(problem());
    };
    if !as_bytes {
        return Ok(Value::String(Some(text.clone())));
    }
    // MySQL stores sea-orm's UUIDs as binary(16).
    let digits: Vec<u8> = text.bytes().filter(|b| *b != b'-').collect();
    if digits.len() != 32 || !digits.iter().all(u8::is_ascii_hexdigit) {
        return Err(problem());
    }
    let mut bytes = Vec::with_capacity(16);
    for pair in digits.chunks(2) {
        let hex = std::str::from_utf8(pair).map_err(|_| problem())?;
        bytes.push(u8::from_str_radix(hex, 16).map_err(|_| problem())?);
    }
    Ok(Value::Bytes(Some(bytes)))
}
