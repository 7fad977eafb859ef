//! What can go wrong in the SQL adapter.

use promiscuous_core::{BackendError, Error as CoreError};
use sea_orm::DbErr;

/// Errors of the SQL adapter; each names what it was doing and on what.
///
/// The database's error is the [`source`](std::error::Error::source) of
/// [`SqlError::Database`], not repeated in its message: show errors with
/// [`promiscuous_core::error::chain`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SqlError {
    /// The database refused or failed a statement.
    #[error("{operation} on {target} failed")]
    Database {
        /// What was being done (`insert`, `update`, `begin`, `commit`...).
        operation: &'static str,
        /// The table or model it was done on.
        target: String,
        /// The database's error.
        #[source]
        source: DbErr,
    },
    /// Another transaction wrote the same row at the same time; trying again
    /// sees what it wrote.
    #[error(
        "{target} was written by another transaction at the same time; the message is retried"
    )]
    Conflict {
        /// The table or row.
        target: String,
        /// The database's error.
        #[source]
        source: DbErr,
    },
    /// A JSON value does not fit the column it is written to.
    #[error(
        "{model}.{column}: the value {value} does not fit the column ({column_type}): {problem}"
    )]
    Conversion {
        /// The model (or table) written.
        model: String,
        /// The column.
        column: String,
        /// The offending value, as JSON.
        value: String,
        /// The column's SQL type.
        column_type: String,
        /// Why it does not fit.
        problem: String,
    },
    /// A record names a column the entity does not have.
    #[error("{model} has no column `{column}`; add it to the sea-orm entity {table}, or stop subscribing it")]
    UnknownColumn {
        /// The model.
        model: String,
        /// The entity's table.
        table: String,
        /// The missing column.
        column: String,
    },
    /// No entity is registered for a model.
    #[error("no sea-orm entity is registered for model {model}; register it with SqlStorage::entity::<E>(\"{model}\") (known: {known})")]
    UnknownModel {
        /// The model asked for.
        model: String,
        /// The models that are registered.
        known: String,
    },
    /// A multi-row update or delete of a published entity.
    #[error("{operation} of several {model} rows is refused: each published write is locked, versioned and published per record, so a write touching rows it cannot name would reach no subscriber; load the rows and {operation} them one by one in a transaction, or run the statement on the connection (`tx.connection()`) if subscribers must not hear of it")]
    MultiRowWrite {
        /// The published model.
        model: String,
        /// `update` or `delete`.
        operation: &'static str,
    },
    /// An entity cannot be published or stored as declared.
    #[error("{model}: {problem}")]
    Definition {
        /// The model or entity.
        model: String,
        /// What is wrong and what to do.
        problem: String,
    },
    /// The publishing pipeline failed (lock, clock, broker).
    #[error(transparent)]
    Promiscuous(#[from] CoreError),
}

impl SqlError {
    pub(crate) fn database(
        operation: &'static str,
        target: impl Into<String>,
        source: DbErr,
    ) -> Self {
        SqlError::Database {
            operation,
            target: target.into(),
            source,
        }
    }

    /// Whether trying again later can help (a lost connection, a timeout).
    pub fn is_temporary(&self) -> bool {
        match self {
            SqlError::Database { source, .. } => is_temporary(source),
            SqlError::Conflict { .. } => true,
            SqlError::Promiscuous(e) => e.is_temporary(),
            _ => false,
        }
    }

    /// Whether the same write fails the same way however often it is tried:
    /// a value the column cannot hold (too long, out of range, of the wrong
    /// type), a missing required value, a record with an attribute the table
    /// lacks. A subscriber dead-letters such a message at once.
    pub fn is_permanent(&self) -> bool {
        match self {
            SqlError::Database { source, .. } => is_permanent(source),
            SqlError::Conversion { .. }
            | SqlError::UnknownColumn { .. }
            | SqlError::UnknownModel { .. }
            | SqlError::MultiRowWrite { .. }
            | SqlError::Definition { .. } => true,
            SqlError::Promiscuous(e) => e.is_permanent(),
            SqlError::Conflict { .. } => false,
        }
    }
}

/// SQLSTATE classes and codes of errors the same data always hits: data
/// exceptions (22: too long, out of range, invalid text), not-null and check
/// violations (PostgreSQL and MySQL give SQLSTATEs).
fn is_permanent_sqlstate(code: &str) -> bool {
    code.len() == 5 && (code.starts_with("22") || code == "23502" || code == "23514")
}

/// MySQL error numbers and SQLite extended codes of the same errors: MySQL
/// data too long, out of range, incorrect value, truncated value, column
/// cannot be null, check violated; SQLite NOT NULL, CHECK, DATATYPE, TOOBIG.
const PERMANENT_NUMBERS: &[&str] = &[
    "1406", "1264", "1366", "1292", "1048", "3819", "1299", "275", "3091", "18",
];

/// Whether a database error is one the same data always hits.
pub(crate) fn is_permanent(error: &DbErr) -> bool {
    let (DbErr::Exec(sea_orm::RuntimeErr::SqlxError(sqlx))
    | DbErr::Query(sea_orm::RuntimeErr::SqlxError(sqlx))) = error
    else {
        return false;
    };
    let sea_orm::sqlx::Error::Database(database) = sqlx.as_ref() else {
        return false;
    };
    let mysql_number = database
        .try_downcast_ref::<sea_orm::sqlx::mysql::MySqlDatabaseError>()
        .map(|e| e.number().to_string());
    let code = database.code().map(|code| code.into_owned());
    code.as_deref().is_some_and(is_permanent_sqlstate)
        || code
            .iter()
            .chain(mysql_number.iter())
            .any(|code| PERMANENT_NUMBERS.contains(&code.as_str()))
}

/// SQLSTATE / driver codes of conflicts that succeed when tried again:
/// SQLite busy and locked, PostgreSQL serialization failure and deadlock,
/// MySQL lock wait timeout and deadlock.
const CONFLICT_CODES: &[&str] = &["5", "6", "517", "40001", "40P01", "1205", "1213"];

/// Whether a database error can go away by itself: a lost connection, or a
/// conflict with another transaction (busy, deadlock, serialization).
pub(crate) fn is_temporary(error: &DbErr) -> bool {
    let runtime = match error {
        DbErr::Conn(_) | DbErr::ConnectionAcquire(_) => return true,
        DbErr::Exec(runtime) | DbErr::Query(runtime) => runtime,
        _ => return false,
    };
    match runtime {
        sea_orm::RuntimeErr::SqlxError(sqlx) => match sqlx.as_ref() {
            sea_orm::sqlx::Error::Database(database) => {
                // MySQL's SQLSTATE is often the generic HY000: its error
                // number tells (1205 lock wait timeout, 1213 deadlock).
                let mysql_number = database
                    .try_downcast_ref::<sea_orm::sqlx::mysql::MySqlDatabaseError>()
                    .map(|e| e.number().to_string());
                database
                    .code()
                    .map(|code| code.into_owned())
                    .into_iter()
                    .chain(mysql_number)
                    .any(|code| CONFLICT_CODES.contains(&code.as_str()))
            }
            sea_orm::sqlx::Error::Io(_)
            | sea_orm::sqlx::Error::PoolTimedOut
            | sea_orm::sqlx::Error::PoolClosed => true,
            _ => false,
        },
        _ => false,
    }
}

impl From<SqlError> for BackendError {
    fn from(error: SqlError) -> Self {
        let temporary = error.is_temporary();
        let permanent = error.is_permanent();
        let (operation, target) = match &error {
            SqlError::Database {
                operation, target, ..
            } => (*operation, target.clone()),
            SqlError::Conflict { target, .. } => ("write", target.clone()),
            SqlError::Conversion { model, column, .. } => ("convert", format!("{model}.{column}")),
            SqlError::UnknownColumn { model, .. }
            | SqlError::UnknownModel { model, .. }
            | SqlError::MultiRowWrite { model, .. }
            | SqlError::Definition { model, .. } => ("check", model.clone()),
            SqlError::Promiscuous(_) => ("publish", String::new()),
        };
        // The adapter's error is the source: its text is not repeated in the message.
        let backend = BackendError::new("sea-orm", operation, target, "").with_source(error);
        if temporary {
            backend.temporary()
        } else if permanent {
            backend.permanent()
        } else {
            backend
        }
    }
}

impl From<SqlError> for CoreError {
    fn from(error: SqlError) -> Self {
        match error {
            SqlError::Promiscuous(e) => e,
            other => CoreError::Backend(other.into()),
        }
    }
}

/// Results of the SQL adapter.
pub type Result<T, E = SqlError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use promiscuous_core::error::chain;

    #[test]
    fn the_database_error_is_shown_once() {
        let error = SqlError::database("insert", "users", DbErr::Custom("disk full".into()));
        assert_eq!(error.to_string(), "insert on users failed");
        assert_eq!(
            chain(&error),
            "insert on users failed: Custom Error: disk full"
        );
        let backend = BackendError::from(error);
        assert_eq!(
            chain(&backend),
            "sea-orm insert failed on users: insert on users failed: Custom Error: disk full"
        );
        let core = CoreError::from(SqlError::UnknownColumn {
            model: "User".into(),
            table: "users".into(),
            column: "age".into(),
        });
        let shown = chain(&core);
        assert_eq!(shown.matches("has no column `age`").count(), 1, "{shown}");
    }
}
