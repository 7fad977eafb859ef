//! A type-erased description of a table: its name and its columns' SQL
//! types, read from a sea-orm entity or written by hand.

use sea_orm::sea_query::{Alias, ColumnDef, ColumnType, Table, TableCreateStatement, TableRef};
use sea_orm::{sea_query::IntoTableRef, PrimaryKeyTrait};
use sea_orm::{ColumnTrait, EntityTrait, IdenStatic, Iterable, PrimaryKeyToColumn};

/// One column of a [`TableInfo`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ColumnInfo {
    /// The column's name in the database.
    pub name: String,
    /// Its SQL type, which decides how JSON values are converted.
    pub column_type: ColumnType,
    /// Whether it accepts NULL.
    pub nullable: bool,
    /// Whether it is (part of) the primary key.
    pub primary_key: bool,
    /// Whether the database assigns its value on insert.
    pub auto_increment: bool,
}

impl ColumnInfo {
    /// A nullable column that is not part of the primary key.
    pub fn new(name: impl Into<String>, column_type: ColumnType) -> Self {
        ColumnInfo {
            name: name.into(),
            column_type,
            nullable: true,
            primary_key: false,
            auto_increment: false,
        }
    }

    /// Makes the column NOT NULL.
    pub fn not_null(mut self) -> Self {
        self.nullable = false;
        self
    }

    /// Makes the column (part of) the primary key, hence NOT NULL.
    pub fn primary_key(mut self) -> Self {
        self.primary_key = true;
        self.nullable = false;
        self
    }

    /// Lets the database assign the column's value on insert.
    pub fn auto_increment(mut self) -> Self {
        self.auto_increment = true;
        self
    }
}

/// A table: its name, optional schema, and columns in declaration order.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TableInfo {
    /// The table's name.
    pub table: String,
    /// The schema holding it (PostgreSQL), when not the connection's default.
    pub schema: Option<String>,
    /// The columns, in declaration order.
    pub columns: Vec<ColumnInfo>,
}

impl TableInfo {
    /// A table with no columns yet; add them with [`column`](Self::column).
    pub fn new(table: impl Into<String>) -> Self {
        TableInfo {
            table: table.into(),
            schema: None,
            columns: Vec::new(),
        }
    }

    /// The description of a sea-orm entity's table.
    pub fn of<E: EntityTrait>() -> Self {
        let entity = E::default();
        let keys: Vec<&'static str> = E::PrimaryKey::iter()
            .map(|key| key.into_column().as_str())
            .collect();
        let generated = keys.len() == 1 && <E::PrimaryKey as PrimaryKeyTrait>::auto_increment();
        let columns = E::Column::iter()
            .map(|column| {
                let def = column.def();
                let name = column.as_str();
                let primary_key = keys.contains(&name);
                ColumnInfo {
                    name: name.to_owned(),
                    column_type: def.get_column_type().clone(),
                    nullable: def.is_null() && !primary_key,
                    primary_key,
                    auto_increment: primary_key && generated,
                }
            })
            .collect();
        TableInfo {
            table: entity.table_name().to_owned(),
            schema: entity.schema_name().map(str::to_owned),
            columns,
        }
    }

    /// Puts the table in `schema`.
    pub fn in_schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = Some(schema.into());
        self
    }

    /// Adds a column.
    pub fn column(mut self, column: ColumnInfo) -> Self {
        self.columns.push(column);
        self
    }

    /// The column named `name`.
    pub fn get(&self, name: &str) -> Option<&ColumnInfo> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The primary-key columns, in declaration order.
    pub fn primary_key(&self) -> impl Iterator<Item = &ColumnInfo> {
        self.columns.iter().filter(|c| c.primary_key)
    }

    /// The table as a sea-query table reference (schema-qualified when it has one).
    pub fn table_ref(&self) -> TableRef {
        match &self.schema {
            Some(schema) => (Alias::new(schema), Alias::new(&self.table)).into_table_ref(),
            None => Alias::new(&self.table).into_table_ref(),
        }
    }

    /// A `CREATE TABLE IF NOT EXISTS` statement for this description (for
    /// tables without a migration of their own, such as tests').
    pub fn create_table(&self) -> TableCreateStatement {
        let mut statement = Table::create();
        statement.table(self.table_ref()).if_not_exists();
        let keys: Vec<&ColumnInfo> = self.primary_key().collect();
        for column in &self.columns {
            let mut def =
                ColumnDef::new_with_type(Alias::new(&column.name), column.column_type.clone());
            if column.nullable {
                def.null();
            } else {
                def.not_null();
            }
            if column.auto_increment {
                def.auto_increment();
            }
            if column.primary_key && keys.len() == 1 {
                def.primary_key();
            }
            statement.col(def);
        }
        if keys.len() > 1 {
            let mut index = sea_orm::sea_query::Index::create();
            for key in keys {
                index.col(Alias::new(&key.name));
            }
            statement.primary_key(&mut index);
        }
        statement.to_owned()
    }

    /// How errors name the table of `model`: the model, and the table when it differs.
    pub(crate) fn describe(&self, model: &str) -> String {
        if model == self.table {
            model.to_owned()
        } else {
            format!("{model} (table {})", self.table)
        }
    }
}
