//! The operations a migration is made of, as data: what an author writes in a migration
//! file, what is checksummed, and what each backend renders.

use serde::{Deserialize, Serialize};

use crate::{field::SqlType, model::OnDelete};

/// One schema change. Table and column names are bare: the runner qualifies every table
/// with the schema it migrates, so no schema name is ever written in a migration.
///
/// In a migration file each operation is a JSON object tagged by `"op"`:
///
/// ```json
/// { "op": "add_column", "table": "products",
///   "column": { "name": "stock", "type": "integer", "default": 0 } }
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum Operation {
    /// `CREATE TABLE` with its columns and foreign keys.
    CreateTable {
        /// The new table.
        table: String,
        /// Its columns, in order.
        columns: Vec<ColumnSpec>,
        /// Its foreign keys.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        foreign_keys: Vec<ForeignKeySpec>,
        /// Its check constraints.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        checks: Vec<CheckSpec>,
    },
    /// `DROP TABLE`.
    DropTable {
        /// The table.
        table: String,
    },
    /// Renames a table within the schema.
    RenameTable {
        /// The current name.
        from: String,
        /// The new name.
        to: String,
    },
    /// `ADD COLUMN`.
    AddColumn {
        /// The table.
        table: String,
        /// The new column.
        column: ColumnSpec,
    },
    /// `DROP COLUMN`.
    DropColumn {
        /// The table.
        table: String,
        /// The column.
        column: String,
    },
    /// Renames a column.
    RenameColumn {
        /// The table.
        table: String,
        /// The current name.
        from: String,
        /// The new name.
        to: String,
    },
    /// Changes a column's type, nullability, default and uniqueness to those of `column`
    /// (its name picks the column). PostgreSQL and MySQL change in place what differs from
    /// the column's definition as the earlier migrations recorded it (PostgreSQL: a type
    /// change rewrites the table, `SET NOT NULL` scans it; MySQL: `MODIFY COLUMN` copies
    /// it; such a migration needs `"allow_rewrite": true`). SQLite cannot alter a column
    /// in place: the table is rebuilt inside the tenant's transaction (see
    /// [`HazardKind::Rebuild`](super::HazardKind::Rebuild)).
    ///
    /// Turning `unique` off drops the constraint by the name the server gave it when the
    /// column became unique (PostgreSQL `<table>_<column>_key`, MySQL the column's name, as
    /// they were called then: the replay follows later renames). A constraint made by a
    /// `raw` step, or named otherwise by hand, is not known: drop it with a `raw` step.
    AlterColumn {
        /// The table.
        table: String,
        /// The column's new definition.
        column: ColumnSpec,
    },
    /// `CREATE [UNIQUE] INDEX` (a unique index is the unique constraint).
    CreateIndex {
        /// The table.
        table: String,
        /// The index name, unique within the schema.
        name: String,
        /// The indexed columns, in order.
        columns: Vec<String>,
        /// A unique index.
        #[serde(default)]
        unique: bool,
    },
    /// `DROP INDEX`.
    DropIndex {
        /// The table the index is on.
        table: String,
        /// The index name.
        name: String,
    },
    /// Adds a foreign key constraint (on SQLite, which cannot add one in place, by a
    /// table rebuild whose foreign key check fails the tenant on a row pointing nowhere).
    AddForeignKey {
        /// The referencing table.
        table: String,
        /// The constraint.
        foreign_key: ForeignKeySpec,
    },
    /// Drops a foreign key constraint (on SQLite by a table rebuild).
    DropForeignKey {
        /// The referencing table.
        table: String,
        /// The constraint's name.
        name: String,
    },
    /// Adds a check constraint. PostgreSQL and MySQL check every stored row while the table
    /// is locked (a row that fails it fails the migration); SQLite, which cannot add one in
    /// place, rebuilds the table.
    AddCheck {
        /// The table.
        table: String,
        /// The constraint.
        check: CheckSpec,
    },
    /// Drops a check constraint (on SQLite by a table rebuild).
    DropCheck {
        /// The table.
        table: String,
        /// The constraint's name.
        name: String,
    },
    /// `CREATE TYPE .. AS ENUM` on PostgreSQL, in the migrated schema; nothing elsewhere
    /// (MySQL and SQLite keep an enum's text in a `VARCHAR` column). Comes before the
    /// columns of the type (a column names it with `"enum_type"`).
    CreateEnum {
        /// The type's name.
        name: String,
        /// Its labels, in order (the order PostgreSQL sorts by).
        variants: Vec<String>,
    },
    /// `ALTER TYPE .. ADD VALUE` on PostgreSQL, placed `before` or `after` a label (at the
    /// end when neither is given; `IF NOT EXISTS`); nothing elsewhere. PostgreSQL cannot use
    /// a label in the transaction that adds it, so the runner adds the labels of types that
    /// exist already before the schema's migration transaction: later operations and data
    /// steps may use them. PostgreSQL cannot drop or reorder labels: that needs a new type
    /// (a `raw` step).
    AddEnumValue {
        /// The type's name.
        name: String,
        /// The new label.
        value: String,
        /// The label it goes before.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        before: Option<String>,
        /// The label it goes after.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<String>,
    },
    /// `DROP TYPE` on PostgreSQL (no column may still have it); nothing elsewhere.
    DropEnum {
        /// The type's name.
        name: String,
    },
    /// A data step: the async Rust function registered under `name` with
    /// [`Migrator::data_step`](super::Migrator::data_step), given a
    /// [`Transaction`](crate::Transaction) inside the tenant's migration transaction
    /// (PostgreSQL, SQLite) or a transaction of its own committed with the step's record
    /// (MySQL / MariaDB), and run in the tenant's scope, so `Model::query(&tx)` reads and
    /// writes the schema being migrated. A migration naming a step the runner does not have
    /// is refused before anything runs.
    Data {
        /// The registered name.
        name: String,
    },
    /// SQL written by hand, one text per backend. `{table:NAME}` in it becomes table `NAME`
    /// of the schema being migrated, qualified and quoted by the backend's query builder. A
    /// backend without a text is refused before anything runs.
    Raw {
        /// The statement on PostgreSQL.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        postgres: Option<String>,
        /// The statement on MySQL / MariaDB.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mysql: Option<String>,
        /// The statement on SQLite.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sqlite: Option<String>,
    },
}

/// A column's definition.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnSpec {
    /// The column name.
    pub name: String,
    /// The storage class.
    #[serde(rename = "type")]
    pub column_type: ColumnType,
    /// Accepts NULL (default: no).
    #[serde(default, skip_serializing_if = "is_false")]
    pub null: bool,
    /// `VARCHAR` length (255 when not given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<u32>,
    /// A decimal's total digits (1 to 28; required for `"decimal"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision: Option<u32>,
    /// A decimal's digits after the point (at most `precision`; required for `"decimal"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<u32>,
    /// Is the primary key.
    #[serde(default, skip_serializing_if = "is_false")]
    pub primary_key: bool,
    /// The database assigns the value on insert.
    #[serde(default, skip_serializing_if = "is_false")]
    pub auto_increment: bool,
    /// Has a unique constraint.
    #[serde(default, skip_serializing_if = "is_false")]
    pub unique: bool,
    /// The default value: a JSON number, string or boolean, bound as a constant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<serde_json::Value>,
    /// On PostgreSQL the column has this enum type (made by `create_enum`) instead of its
    /// `type` (`"varchar"`), which the other backends keep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enum_type: Option<String>,
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// A column's storage class in a migration file (`"integer"`, `"varchar"`, …).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ColumnType {
    /// 32-bit integer.
    Integer,
    /// 64-bit integer.
    BigInteger,
    /// 16-bit integer.
    SmallInteger,
    /// 32-bit float.
    Float,
    /// Bytes.
    Bytes,
    /// A date and time without a time zone.
    DateTime,
    /// A time of day.
    Time,
    /// `VARCHAR(max_length)`.
    Varchar,
    /// Unbounded text.
    Text,
    /// Boolean.
    Boolean,
    /// 64-bit float.
    Double,
    /// A UTC timestamp.
    Timestamp,
    /// A calendar date.
    Date,
    /// A UUID.
    Uuid,
    /// A JSON document.
    Json,
    /// An exact decimal, `NUMERIC(precision, scale)` (TEXT compared by value on SQLite).
    Decimal,
}

impl ColumnType {
    /// The model storage class with the same column type.
    pub(crate) fn sql_type(self) -> SqlType {
        match self {
            ColumnType::Integer => SqlType::Integer,
            ColumnType::BigInteger => SqlType::BigInteger,
            ColumnType::SmallInteger => SqlType::SmallInteger,
            ColumnType::Float => SqlType::Float,
            ColumnType::Bytes => SqlType::Bytes,
            ColumnType::DateTime => SqlType::DateTime,
            ColumnType::Time => SqlType::Time,
            ColumnType::Varchar => SqlType::Varchar,
            ColumnType::Text => SqlType::Text,
            ColumnType::Boolean => SqlType::Boolean,
            ColumnType::Double => SqlType::Double,
            ColumnType::Timestamp => SqlType::Timestamp,
            ColumnType::Date => SqlType::Date,
            ColumnType::Uuid => SqlType::Uuid,
            ColumnType::Json => SqlType::Json,
            ColumnType::Decimal => SqlType::Decimal,
        }
    }
}

/// A foreign key: `column` of the migrated table points to `references_column` of
/// `references` (in the same schema, or in the shared schema when `shared`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForeignKeySpec {
    /// The constraint's name, unique within the schema.
    pub name: String,
    /// The referencing column.
    pub column: String,
    /// The referenced table.
    pub references: String,
    /// The referenced column.
    pub references_column: String,
    /// The referenced table is a shared model's, in the shared schema. On SQLite and MySQL
    /// such a key crosses files / databases and is left out, as `create_all` does.
    #[serde(default, skip_serializing_if = "is_false")]
    pub shared: bool,
    /// What deleting the referenced row does (default: restrict).
    #[serde(default = "restrict", with = "on_delete_name")]
    pub on_delete: OnDelete,
}

/// A check constraint: its name and its condition as each backend writes it, rendered by
/// sea-query from the model's `#[model(check(..))]` filter when the migration was
/// generated (column names quoted, constants inlined). The texts are trusted like a `raw`
/// step's: a migration file is code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckSpec {
    /// The constraint's name.
    pub name: String,
    /// The condition on PostgreSQL.
    pub postgres: String,
    /// The condition on MySQL / MariaDB.
    pub mysql: String,
    /// The condition on SQLite.
    pub sqlite: String,
}

impl CheckSpec {
    /// The condition as `backend` writes it.
    pub fn condition(&self, backend: crate::Backend) -> &str {
        match backend {
            crate::Backend::Postgres => &self.postgres,
            crate::Backend::MySql => &self.mysql,
            crate::Backend::Sqlite => &self.sqlite,
        }
    }
}

fn restrict() -> OnDelete {
    OnDelete::Restrict
}

mod on_delete_name {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::model::OnDelete;

    pub(super) fn serialize<S: Serializer>(rule: &OnDelete, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match rule {
            OnDelete::Cascade => "cascade",
            OnDelete::SetNull => "set_null",
            OnDelete::Restrict => "restrict",
        })
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OnDelete, D::Error> {
        match String::deserialize(d)?.as_str() {
            "cascade" => Ok(OnDelete::Cascade),
            "set_null" => Ok(OnDelete::SetNull),
            "restrict" => Ok(OnDelete::Restrict),
            other => Err(serde::de::Error::custom(format!(
                "unknown on_delete {other:?}: expected cascade, set_null or restrict"
            ))),
        }
    }
}

impl ColumnSpec {
    /// Checks what serde cannot: a decimal's precision and scale.
    pub(crate) fn check(&self) -> std::result::Result<(), String> {
        if self.auto_increment
            && !matches!(
                self.column_type,
                ColumnType::Integer | ColumnType::BigInteger
            )
        {
            return Err(format!(
                "column {}: only integer and big_integer columns can be auto_increment",
                self.name
            ));
        }
        match (self.column_type, self.precision, self.scale) {
            (ColumnType::Decimal, Some(p), Some(s)) if (1..=28).contains(&p) && s <= p => Ok(()),
            (ColumnType::Decimal, Some(_), Some(_)) => Err(format!(
                "column {}: precision must be 1 to 28 and scale at most the precision",
                self.name
            )),
            (ColumnType::Decimal, _, _) => Err(format!(
                "column {}: a decimal needs both precision and scale",
                self.name
            )),
            (_, None, None) => Ok(()),
            _ => Err(format!(
                "column {}: precision and scale are for decimal columns only",
                self.name
            )),
        }
    }
}

impl Operation {
    /// Whether the operation, judged without the tables before it, has a hazard on
    /// `backend` that needs `"allow_rewrite": true` (see [`Migration::hazards`]): an
    /// `alter_column` on PostgreSQL (a type change rewrites the table and its indexes;
    /// `SET NOT NULL` scans it) and MySQL (`MODIFY COLUMN` copies it). SQLite rebuilds
    /// the table instead (a [`HazardKind::Rebuild`], which needs no opt-in); defaults
    /// here are constants, so `add_column` stays metadata-only everywhere.
    ///
    /// [`Migration::hazards`]: super::Migration::hazards
    /// [`HazardKind::Rebuild`]: super::HazardKind::Rebuild
    pub fn rewrites(&self, backend: crate::Backend) -> bool {
        super::hazard::operation_hazards(self, backend, None, true)
            .iter()
            .any(|h| h.kind.needs_allow_rewrite())
    }

    /// The column definitions the operation carries.
    pub(crate) fn columns(&self) -> Vec<&ColumnSpec> {
        match self {
            Operation::CreateTable { columns, .. } => columns.iter().collect(),
            Operation::AddColumn { column, .. } | Operation::AlterColumn { column, .. } => {
                vec![column]
            }
            _ => Vec::new(),
        }
    }

    /// Every identifier the operation names (tables, columns, indexes, constraints), for
    /// validation before anything renders.
    pub(crate) fn identifiers(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        match self {
            Operation::CreateTable {
                table,
                columns,
                foreign_keys,
                checks,
            } => {
                out.push(table);
                out.extend(columns.iter().map(|c| c.name.as_str()));
                for fk in foreign_keys {
                    out.extend([&*fk.name, &fk.column, &fk.references, &fk.references_column]);
                }
                out.extend(checks.iter().map(|c| c.name.as_str()));
            }
            Operation::AddCheck { table, check } => out.extend([&**table, &check.name]),
            Operation::DropCheck { table, name } => out.extend([&**table, name]),
            Operation::DropTable { table } => out.push(table),
            Operation::RenameTable { from, to } => out.extend([&**from, to]),
            Operation::AddColumn { table, column } | Operation::AlterColumn { table, column } => {
                out.extend([&**table, &column.name])
            }
            Operation::DropColumn { table, column } => out.extend([&**table, column]),
            Operation::RenameColumn { table, from, to } => out.extend([&**table, from, to]),
            Operation::CreateIndex {
                table,
                name,
                columns,
                ..
            } => {
                out.extend([&**table, name]);
                out.extend(columns.iter().map(String::as_str));
            }
            Operation::DropIndex { table, name } | Operation::DropForeignKey { table, name } => {
                out.extend([&**table, name])
            }
            Operation::AddForeignKey { table, foreign_key } => out.extend([
                &**table,
                &foreign_key.name,
                &foreign_key.column,
                &foreign_key.references,
                &foreign_key.references_column,
            ]),
            Operation::Data { name } => out.push(name),
            Operation::CreateEnum { name, .. }
            | Operation::AddEnumValue { name, .. }
            | Operation::DropEnum { name } => out.push(name),
            Operation::Raw { .. } => {}
        }
        out.extend(
            self.columns()
                .into_iter()
                .filter_map(|c| c.enum_type.as_deref()),
        );
        out
    }

    /// A short description for plans and errors, e.g. `add_column products.stock`.
    pub fn describe(&self) -> String {
        match self {
            Operation::CreateTable { table, .. } => format!("create_table {table}"),
            Operation::DropTable { table } => format!("drop_table {table}"),
            Operation::RenameTable { from, to } => format!("rename_table {from} -> {to}"),
            Operation::AddColumn { table, column } => format!("add_column {table}.{}", column.name),
            Operation::DropColumn { table, column } => format!("drop_column {table}.{column}"),
            Operation::RenameColumn { table, from, to } => {
                format!("rename_column {table}.{from} -> {to}")
            }
            Operation::AlterColumn { table, column } => {
                format!("alter_column {table}.{}", column.name)
            }
            Operation::CreateIndex { table, name, .. } => format!("create_index {name} on {table}"),
            Operation::DropIndex { table, name } => format!("drop_index {name} on {table}"),
            Operation::AddForeignKey { table, foreign_key } => {
                format!("add_foreign_key {table}.{}", foreign_key.name)
            }
            Operation::DropForeignKey { table, name } => format!("drop_foreign_key {table}.{name}"),
            Operation::AddCheck { table, check } => format!("add_check {table}.{}", check.name),
            Operation::DropCheck { table, name } => format!("drop_check {table}.{name}"),
            Operation::Data { name } => format!("data {name}"),
            Operation::CreateEnum { name, .. } => format!("create_enum {name}"),
            Operation::AddEnumValue { name, value, .. } => {
                format!("add_enum_value {name} {value:?}")
            }
            Operation::DropEnum { name } => format!("drop_enum {name}"),
            Operation::Raw { .. } => "raw".to_owned(),
        }
    }
}
