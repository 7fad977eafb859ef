//! What a column's SQL type means for conversion: how JSON is checked and
//! bound on the way in, and how the column is selected and decoded on the
//! way out.

use sea_orm::sea_query::{ColumnType, StringLen};

/// A PostgreSQL type a bound text value is cast to (PostgreSQL does not
/// convert text parameters to other types implicitly).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PgType {
    /// A built-in or custom type, written as is (`timestamp`, `numeric`, `citext`).
    Named(String),
    /// An enum type, quoted as sea-orm does.
    Enum(String),
}

/// How a column converts, by family of SQL types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    /// BOOLEAN (MySQL and SQLite store 0/1).
    Bool,
    /// Integers of any width; the bounds are the column type's.
    Integer { min: i128, max: i128 },
    /// MySQL's YEAR: written as an integer, read as text.
    Year,
    /// REAL (`single`) or DOUBLE.
    Float { single: bool },
    /// DECIMAL and MONEY: written as text, read as a number when exact enough.
    Decimal { pg: &'static str },
    /// CHAR, VARCHAR and TEXT, with their length limit.
    Text { max_chars: Option<u32> },
    /// JSON and JSONB; text on MySQL and SQLite.
    Json { pg: &'static str },
    /// BLOB, BINARY, VARBINARY.
    Bytes,
    /// UUID (binary(16) on MySQL).
    Uuid,
    /// Dates and times, exchanged as ISO 8601 strings.
    Temporal { pg: &'static str },
    /// Anything else (enums, network addresses, custom types), exchanged as text.
    Other { pg: Option<PgType> },
    /// PostgreSQL arrays: readable, not writable.
    Array,
}

fn int(min: i128, max: i128) -> Kind {
    Kind::Integer { min, max }
}

impl Kind {
    /// The kind of a column type.
    pub(crate) fn of(column_type: &ColumnType) -> Kind {
        match column_type {
            ColumnType::Boolean => Kind::Bool,
            ColumnType::TinyInteger => int(i8::MIN.into(), i8::MAX.into()),
            ColumnType::SmallInteger => int(i16::MIN.into(), i16::MAX.into()),
            ColumnType::Integer => int(i32::MIN.into(), i32::MAX.into()),
            ColumnType::BigInteger => int(i64::MIN.into(), i64::MAX.into()),
            ColumnType::TinyUnsigned => int(0, u8::MAX.into()),
            ColumnType::SmallUnsigned => int(0, u16::MAX.into()),
            ColumnType::Unsigned => int(0, u32::MAX.into()),
            ColumnType::BigUnsigned => int(0, u64::MAX.into()),
            ColumnType::Year => Kind::Year,
            ColumnType::Float => Kind::Float { single: true },
            ColumnType::Double => Kind::Float { single: false },
            ColumnType::Decimal(_) => Kind::Decimal { pg: "numeric" },
            ColumnType::Money(_) => Kind::Decimal { pg: "money" },
            ColumnType::Char(length) => Kind::Text { max_chars: *length },
            ColumnType::String(StringLen::N(length)) => Kind::Text {
                max_chars: Some(*length),
            },
            ColumnType::String(_) | ColumnType::Text => Kind::Text { max_chars: None },
            ColumnType::Json => Kind::Json { pg: "json" },
            ColumnType::JsonBinary => Kind::Json { pg: "jsonb" },
            ColumnType::Blob | ColumnType::Binary(_) | ColumnType::VarBinary(_) => Kind::Bytes,
            ColumnType::Uuid => Kind::Uuid,
            ColumnType::DateTime | ColumnType::Timestamp => Kind::Temporal { pg: "timestamp" },
            ColumnType::TimestampWithTimeZone => Kind::Temporal { pg: "timestamptz" },
            ColumnType::Date => Kind::Temporal { pg: "date" },
            ColumnType::Time => Kind::Temporal { pg: "time" },
            ColumnType::Interval(_, _) => Kind::Temporal { pg: "interval" },
            ColumnType::Array(_) => Kind::Array,
            ColumnType::Enum { name, .. } => Kind::Other {
                pg: Some(PgType::Enum(name.to_string())),
            },
            ColumnType::Custom(name) => Kind::Other {
                pg: Some(PgType::Named(name.to_string())),
            },
            ColumnType::Bit(_) | ColumnType::VarBit(_) => named("varbit"),
            ColumnType::Cidr => named("cidr"),
            ColumnType::Inet => named("inet"),
            ColumnType::MacAddr => named("macaddr"),
            ColumnType::LTree => named("ltree"),
            ColumnType::Vector(_) => named("vector"),
            _ => Kind::Other { pg: None },
        }
    }

    /// Whether PostgreSQL reads it best through `to_json` (types sqlx does not
    /// decode into JSON-friendly Rust types without extra features).
    pub(crate) fn pg_reads_as_json(&self) -> bool {
        matches!(
            self,
            Kind::Year
                | Kind::Decimal { .. }
                | Kind::Uuid
                | Kind::Temporal { .. }
                | Kind::Other { .. }
                | Kind::Array
        )
    }

    /// Whether MySQL and SQLite read it best cast to text.
    pub(crate) fn reads_as_text(&self) -> bool {
        matches!(
            self,
            Kind::Year | Kind::Decimal { .. } | Kind::Temporal { .. } | Kind::Other { .. }
        )
    }
}

fn named(pg: &str) -> Kind {
    Kind::Other {
        pg: Some(PgType::Named(pg.to_owned())),
    }
}

/// A column type as SQL-ish text, for error messages.
pub(crate) fn type_name(column_type: &ColumnType) -> String {
    let text = match column_type {
        ColumnType::Boolean => "BOOLEAN",
        ColumnType::TinyInteger => "TINYINT",
        ColumnType::SmallInteger => "SMALLINT",
        ColumnType::Integer => "INTEGER",
        ColumnType::BigInteger => "BIGINT",
        ColumnType::TinyUnsigned => "TINYINT UNSIGNED",
        ColumnType::SmallUnsigned => "SMALLINT UNSIGNED",
        ColumnType::Unsigned => "INTEGER UNSIGNED",
        ColumnType::BigUnsigned => "BIGINT UNSIGNED",
        ColumnType::Float => "REAL",
        ColumnType::Double => "DOUBLE",
        ColumnType::Text => "TEXT",
        ColumnType::Json => "JSON",
        ColumnType::JsonBinary => "JSONB",
        ColumnType::Uuid => "UUID",
        ColumnType::DateTime => "DATETIME",
        ColumnType::Timestamp => "TIMESTAMP",
        ColumnType::TimestampWithTimeZone => "TIMESTAMP WITH TIME ZONE",
        ColumnType::Date => "DATE",
        ColumnType::Time => "TIME",
        ColumnType::Blob => "BLOB",
        ColumnType::String(StringLen::N(n)) => return format!("VARCHAR({n})"),
        ColumnType::String(_) => "VARCHAR",
        ColumnType::Char(Some(n)) => return format!("CHAR({n})"),
        ColumnType::Char(None) => "CHAR",
        ColumnType::Decimal(Some((p, s))) => return format!("DECIMAL({p}, {s})"),
        ColumnType::Decimal(None) => "DECIMAL",
        ColumnType::Enum { name, .. } => return format!("enum {name}"),
        ColumnType::Custom(name) => return name.to_string(),
        other => return format!("{other:?}"),
    };
    text.to_owned()
}
