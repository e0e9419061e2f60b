//! What migrations have built, as data: the tables of one scope with their columns, indexes
//! and foreign keys. Replaying operations gives the snapshot the migrations recorded;
//! reading the registered models gives the one the code wants. `makemigrations` writes the
//! operations between the two (see [`diff`](super::diff)).

use std::collections::BTreeMap;

use serde_json::Value as Json;

use super::{
    migration::{MigrationScope, Migrations},
    operation::{CheckSpec, ColumnSpec, ColumnType, ForeignKeySpec, Operation},
};
use crate::{
    ddl::{foreign_key_name, index_name},
    field::SqlType,
    model::{ColumnMeta, ModelMeta},
};

/// The tables of one scope (the shared schema, or every tenant schema).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    /// Every table by name.
    pub tables: BTreeMap<String, TableSnapshot>,
    /// Every enum type (PostgreSQL's; the other backends keep the text) by name: its
    /// labels in order.
    pub enums: BTreeMap<String, Vec<String>>,
    /// The `raw` operations replayed: their effect is not known, so a generator built on
    /// this snapshot warns about them.
    pub raw_operations: usize,
}

/// One table.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TableSnapshot {
    /// Its columns, in order.
    pub columns: Vec<ColumnSpec>,
    /// Its foreign keys.
    pub foreign_keys: Vec<ForeignKeySpec>,
    /// Its indexes made by `create_index` (a column's `unique` is in its spec).
    pub indexes: Vec<IndexSpec>,
    /// Its check constraints.
    pub checks: Vec<CheckSpec>,
}

/// An index made by `create_index`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexSpec {
    /// Its name, unique within the schema.
    pub name: String,
    /// The indexed columns, in order.
    pub columns: Vec<String>,
    /// A unique index.
    pub unique: bool,
}

impl TableSnapshot {
    /// The column with this name.
    pub fn column(&self, name: &str) -> Option<&ColumnSpec> {
        self.columns.iter().find(|c| c.name == name)
    }

    fn column_mut(&mut self, table: &str, name: &str) -> Result<&mut ColumnSpec, String> {
        self.columns
            .iter_mut()
            .find(|c| c.name == name)
            .ok_or_else(|| format!("table {table} has no column {name}"))
    }
}

impl Snapshot {
    /// The snapshot the migrations of `scope` build, replayed in order.
    pub fn of_migrations(
        migrations: &Migrations,
        scope: MigrationScope,
    ) -> Result<Snapshot, String> {
        let mut snapshot = Snapshot::default();
        for migration in migrations.of(scope) {
            for op in migration.operations() {
                snapshot
                    .apply(op)
                    .map_err(|e| format!("migration {}: {}: {e}", migration.id(), op.describe()))?;
            }
        }
        Ok(snapshot)
    }

    /// The snapshot `models` want in `scope`: in the shared schema every model but the
    /// tenant-only ones (tenant-capable models are built there too, as `create_all` does),
    /// in a tenant schema every model but the shared ones. Fails when a model's default
    /// cannot be written in a migration file.
    pub fn of_models(
        models: &[&'static ModelMeta],
        scope: MigrationScope,
    ) -> Result<Snapshot, String> {
        let mut snapshot = Snapshot::default();
        for meta in models {
            let skip = match scope {
                MigrationScope::Tenant => meta.shared,
                MigrationScope::Shared => meta.tenant_only,
            };
            if skip {
                continue;
            }
            snapshot
                .tables
                .insert(meta.table.to_owned(), table_of_model(meta, scope)?);
            for ty in meta.columns.iter().filter_map(|c| c.enum_type) {
                let variants: Vec<String> = ty.variants.iter().map(|v| (*v).to_owned()).collect();
                match snapshot.enums.get(ty.name) {
                    Some(known) if *known != variants => {
                        return Err(format!(
                            "enum type {}: two Rust enums declare it with different variants",
                            ty.name
                        ))
                    }
                    Some(_) => {}
                    None => {
                        snapshot.enums.insert(ty.name.to_owned(), variants);
                    }
                }
            }
        }
        Ok(snapshot)
    }

    /// The table with this name.
    pub fn table(&self, name: &str) -> Option<&TableSnapshot> {
        self.tables.get(name)
    }

    fn table_mut(&mut self, name: &str) -> Result<&mut TableSnapshot, String> {
        self.tables
            .get_mut(name)
            .ok_or_else(|| format!("no table {name}"))
    }

    /// Applies one operation; fails when it cannot apply (a table that exists already, a
    /// column that does not, …): the migrations disagree with themselves.
    pub fn apply(&mut self, op: &Operation) -> Result<(), String> {
        for column in op.columns() {
            if let Some(ty) = column.enum_type.as_deref() {
                if !self.enums.contains_key(ty) {
                    return Err(format!(
                        "column {} has enum type {ty}, which no create_enum made",
                        column.name
                    ));
                }
            }
        }
        match op {
            Operation::CreateTable {
                table,
                columns,
                foreign_keys,
                checks,
            } => {
                if self.tables.contains_key(table) {
                    return Err(format!("table {table} exists already"));
                }
                let created = TableSnapshot {
                    columns: columns.clone(),
                    foreign_keys: foreign_keys.clone(),
                    indexes: Vec::new(),
                    checks: checks.clone(),
                };
                self.tables.insert(table.clone(), created);
            }
            Operation::DropTable { table } => {
                self.tables
                    .remove(table)
                    .ok_or_else(|| format!("no table {table}"))?;
            }
            Operation::RenameTable { from, to } => self.rename_table(from, to)?,
            Operation::AddColumn { table, column } => {
                let t = self.table_mut(table)?;
                if t.column(&column.name).is_some() {
                    return Err(format!(
                        "table {table} has a column {} already",
                        column.name
                    ));
                }
                t.columns.push(column.clone());
            }
            Operation::DropColumn { table, column } => {
                let t = self.table_mut(table)?;
                t.column_mut(table, column)?;
                t.columns.retain(|c| &c.name != column);
                t.foreign_keys.retain(|fk| &fk.column != column);
                t.indexes.retain(|ix| !ix.columns.contains(column));
            }
            Operation::RenameColumn { table, from, to } => {
                let t = self.table_mut(table)?;
                if t.column(to).is_some() {
                    return Err(format!("table {table} has a column {to} already"));
                }
                t.column_mut(table, from)?.name = to.clone();
                for fk in t.foreign_keys.iter_mut().filter(|fk| &fk.column == from) {
                    fk.column = to.clone();
                }
                for name in t.indexes.iter_mut().flat_map(|ix| ix.columns.iter_mut()) {
                    if name == from {
                        *name = to.clone();
                    }
                }
                self.rename_referenced_column(table, from, to);
            }
            Operation::AlterColumn { table, column } => {
                *self.table_mut(table)?.column_mut(table, &column.name)? = column.clone();
            }
            Operation::CreateIndex {
                table,
                name,
                columns,
                unique,
            } => {
                let t = self.table_mut(table)?;
                if let Some(missing) = columns.iter().find(|c| t.column(c).is_none()) {
                    return Err(format!("table {table} has no column {missing}"));
                }
                if self.index_table(name).is_some() {
                    return Err(format!("index {name} exists already"));
                }
                self.table_mut(table)?.indexes.push(IndexSpec {
                    name: name.clone(),
                    columns: columns.clone(),
                    unique: *unique,
                });
            }
            Operation::DropIndex { table, name } => {
                let t = self.table_mut(table)?;
                let before = t.indexes.len();
                t.indexes.retain(|ix| &ix.name != name);
                if t.indexes.len() == before {
                    return Err(format!("table {table} has no index {name}"));
                }
            }
            Operation::AddForeignKey { table, foreign_key } => {
                let t = self.table_mut(table)?;
                t.column_mut(table, &foreign_key.column)?;
                if t.foreign_keys.iter().any(|fk| fk.name == foreign_key.name) {
                    return Err(format!("foreign key {} exists already", foreign_key.name));
                }
                t.foreign_keys.push(foreign_key.clone());
            }
            Operation::DropForeignKey { table, name } => {
                let t = self.table_mut(table)?;
                let before = t.foreign_keys.len();
                t.foreign_keys.retain(|fk| &fk.name != name);
                if t.foreign_keys.len() == before {
                    return Err(format!("table {table} has no foreign key {name}"));
                }
            }
            Operation::AddCheck { table, check } => {
                let t = self.table_mut(table)?;
                if t.checks.iter().any(|c| c.name == check.name) {
                    return Err(format!("table {table} has a check {} already", check.name));
                }
                t.checks.push(check.clone());
            }
            Operation::DropCheck { table, name } => {
                let t = self.table_mut(table)?;
                let before = t.checks.len();
                t.checks.retain(|c| &c.name != name);
                if t.checks.len() == before {
                    return Err(format!("table {table} has no check {name}"));
                }
            }
            Operation::CreateEnum { name, variants } => {
                if self.enums.contains_key(name) {
                    return Err(format!("enum type {name} exists already"));
                }
                if let Some(repeated) = variants
                    .iter()
                    .enumerate()
                    .find_map(|(i, v)| variants[..i].contains(v).then_some(v))
                {
                    return Err(format!("enum type {name} lists {repeated:?} twice"));
                }
                self.enums.insert(name.clone(), variants.clone());
            }
            Operation::AddEnumValue {
                name,
                value,
                before,
                after,
            } => self.add_enum_value(name, value, before.as_deref(), after.as_deref())?,
            Operation::DropEnum { name } => {
                let used = self.tables.iter().find_map(|(table, t)| {
                    t.columns
                        .iter()
                        .find(|c| c.enum_type.as_ref() == Some(name))
                        .map(|c| format!("{table}.{}", c.name))
                });
                if let Some(column) = used {
                    return Err(format!("enum type {name} is still the type of {column}"));
                }
                self.enums
                    .remove(name)
                    .ok_or_else(|| format!("no enum type {name}"))?;
            }
            // Rows, not tables.
            Operation::Data { .. } => {}
            Operation::Raw { .. } => self.raw_operations += 1,
        }
        Ok(())
    }

    fn add_enum_value(
        &mut self,
        name: &str,
        value: &str,
        before: Option<&str>,
        after: Option<&str>,
    ) -> Result<(), String> {
        let labels = self
            .enums
            .get_mut(name)
            .ok_or_else(|| format!("no enum type {name}"))?;
        if labels.iter().any(|l| l == value) {
            return Err(format!("enum type {name} has the label {value:?} already"));
        }
        let at = |label: &str| {
            labels
                .iter()
                .position(|l| l == label)
                .ok_or_else(|| format!("enum type {name} has no label {label:?}"))
        };
        let index = match (before, after) {
            (Some(_), Some(_)) => {
                return Err(format!(
                    "add_enum_value {name}: give before or after, not both"
                ))
            }
            (Some(label), None) => at(label)?,
            (None, Some(label)) => at(label)? + 1,
            (None, None) => labels.len(),
        };
        labels.insert(index, value.to_owned());
        Ok(())
    }

    fn rename_table(&mut self, from: &str, to: &str) -> Result<(), String> {
        if self.tables.contains_key(to) {
            return Err(format!("table {to} exists already"));
        }
        let table = self
            .tables
            .remove(from)
            .ok_or_else(|| format!("no table {from}"))?;
        self.tables.insert(to.to_owned(), table);
        for fk in self.foreign_keys_mut().filter(|fk| fk.references == from) {
            fk.references = to.to_owned();
        }
        Ok(())
    }

    fn rename_referenced_column(&mut self, table: &str, from: &str, to: &str) {
        let references = |fk: &&mut ForeignKeySpec| fk.references == table;
        for fk in self.foreign_keys_mut().filter(references) {
            if fk.references_column == from {
                fk.references_column = to.to_owned();
            }
        }
    }

    fn foreign_keys_mut(&mut self) -> impl Iterator<Item = &mut ForeignKeySpec> {
        self.tables
            .values_mut()
            .flat_map(|t| t.foreign_keys.iter_mut())
    }

    fn index_table(&self, index: &str) -> Option<&str> {
        self.tables
            .iter()
            .find(|(_, t)| t.indexes.iter().any(|ix| ix.name == index))
            .map(|(name, _)| name.as_str())
    }
}

/// The table `meta` wants in `scope`.
fn table_of_model(
    meta: &'static ModelMeta,
    scope: MigrationScope,
) -> Result<TableSnapshot, String> {
    let mut table = TableSnapshot::default();
    for column in meta.columns {
        table.columns.push(
            column_spec(column)
                .map_err(|e| format!("model {} column {}: {e}", meta.name, column.name))?,
        );
        if let Some(fk) = column.foreign_key {
            let target = (fk.target)();
            table.foreign_keys.push(ForeignKeySpec {
                name: foreign_key_name(meta.table, column.field),
                column: column.name.to_owned(),
                references: target.table.to_owned(),
                references_column: target.primary_key_column().name.to_owned(),
                shared: scope == MigrationScope::Tenant && target.shared,
                on_delete: fk.on_delete,
            });
        }
    }
    table
        .indexes
        .extend(crate::ddl::indexed(meta).map(|column| IndexSpec {
            name: index_name(meta.table, column.name),
            columns: vec![column.name.to_owned()],
            unique: false,
        }));
    for check in meta.checks {
        let text = |backend| {
            crate::ddl::check_text(meta, check, backend)
                .map_err(|e| format!("model {} check {}: {e}", meta.name, check.name))
        };
        table.checks.push(CheckSpec {
            name: check.name.to_owned(),
            postgres: text(crate::Backend::Postgres)?,
            mysql: text(crate::Backend::MySql)?,
            sqlite: text(crate::Backend::Sqlite)?,
        });
    }
    table
        .indexes
        .extend(meta.indexes.iter().map(|ix| IndexSpec {
            name: ix.name.to_owned(),
            columns: ix.columns.iter().map(|c| (*c).to_owned()).collect(),
            unique: ix.unique,
        }));
    Ok(table)
}

/// A model column as a migration file writes it.
pub(crate) fn column_spec(column: &ColumnMeta) -> Result<ColumnSpec, String> {
    let column_type = column_type(column.sql_type);
    let numeric = column.numeric();
    let mut spec = ColumnSpec {
        name: column.name.to_owned(),
        column_type,
        null: column.nullable,
        max_length: match column.sql_type {
            SqlType::Varchar => Some(column.max_length.unwrap_or(255)),
            _ => None,
        },
        precision: numeric.map(|(p, _)| p),
        scale: numeric.map(|(_, s)| s),
        primary_key: column.primary_key,
        auto_increment: column.auto_increment,
        unique: column.unique && !column.primary_key,
        default: None,
        enum_type: column.enum_type.map(|ty| ty.name.to_owned()),
    };
    if let Some(default) = column.default {
        spec.default = Some(json_default(default())?);
    }
    spec.default = canonical_default(&spec);
    Ok(spec)
}

fn column_type(sql_type: SqlType) -> ColumnType {
    match sql_type {
        SqlType::Integer => ColumnType::Integer,
        SqlType::BigInteger => ColumnType::BigInteger,
        SqlType::SmallInteger => ColumnType::SmallInteger,
        SqlType::Float => ColumnType::Float,
        SqlType::Bytes => ColumnType::Bytes,
        SqlType::DateTime => ColumnType::DateTime,
        SqlType::Time => ColumnType::Time,
        SqlType::Varchar => ColumnType::Varchar,
        SqlType::Text => ColumnType::Text,
        SqlType::Boolean => ColumnType::Boolean,
        SqlType::Double => ColumnType::Double,
        SqlType::Timestamp => ColumnType::Timestamp,
        SqlType::Date => ColumnType::Date,
        SqlType::Uuid => ColumnType::Uuid,
        SqlType::Json => ColumnType::Json,
        SqlType::Decimal => ColumnType::Decimal,
    }
}

/// A model default as the JSON constant a migration file holds.
fn json_default(value: sea_query::Value) -> Result<Json, String> {
    use sea_query::Value as V;
    let json = match value {
        V::Bool(Some(b)) => Json::from(b),
        V::TinyInt(Some(i)) => Json::from(i),
        V::SmallInt(Some(i)) => Json::from(i),
        V::Int(Some(i)) => Json::from(i),
        V::BigInt(Some(i)) => Json::from(i),
        V::TinyUnsigned(Some(i)) => Json::from(i),
        V::SmallUnsigned(Some(i)) => Json::from(i),
        V::Unsigned(Some(i)) => Json::from(i),
        V::BigUnsigned(Some(i)) => Json::from(i),
        V::Float(Some(f)) => Json::from(f64::from(f)),
        V::Double(Some(f)) => Json::from(f),
        V::String(Some(s)) => Json::from(s),
        V::Char(Some(c)) => Json::from(c.to_string()),
        V::Decimal(Some(d)) => Json::from(d.to_string()),
        V::Uuid(Some(u)) => Json::from(u.to_string()),
        other => {
            return Err(format!(
                "its default {other:?} cannot be written in a migration file (use a number, \
                 string, boolean, decimal or uuid constant)"
            ))
        }
    };
    Ok(json)
}

/// `spec`'s default in one spelling per value, so that equal defaults compare equal: a
/// decimal as its text at the column's scale (`"0.00"` for `0` at scale 2), an integer or
/// float as a JSON number, a boolean as `true`/`false`; others as written.
pub(crate) fn canonical_default(spec: &ColumnSpec) -> Option<Json> {
    let value = spec.default.as_ref()?;
    let text = match value {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    };
    let canonical = match spec.column_type {
        ColumnType::Decimal => match text.parse::<rust_decimal::Decimal>() {
            Ok(mut d) => {
                d.rescale(spec.scale.unwrap_or(d.scale()));
                Json::from(d.to_string())
            }
            Err(_) => value.clone(),
        },
        ColumnType::Integer | ColumnType::BigInteger => match text.parse::<i64>() {
            Ok(i) => Json::from(i),
            Err(_) => value.clone(),
        },
        ColumnType::Double => match text.parse::<f64>() {
            Ok(f) => Json::from(f),
            Err(_) => value.clone(),
        },
        ColumnType::Boolean => match text.as_str() {
            "true" | "1" => Json::from(true),
            "false" | "0" => Json::from(false),
            _ => value.clone(),
        },
        _ => value.clone(),
    };
    Some(canonical)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(id: &str, text: &str) -> Migrations {
        let _ = id;
        Migrations::from_files(&[(id, text)]).unwrap()
    }

    #[test]
    fn replay_follows_renames_into_foreign_keys_and_indexes() {
        let migrations = parse(
            "0001_a",
            r#"{ "scope": "tenant", "operations": [
              { "op": "create_table", "table": "users", "columns": [
                { "name": "id", "type": "big_integer", "primary_key": true, "auto_increment": true } ] },
              { "op": "create_table", "table": "posts", "columns": [
                { "name": "id", "type": "big_integer", "primary_key": true, "auto_increment": true },
                { "name": "author_id", "type": "big_integer" } ],
                "foreign_keys": [ { "name": "fk_posts_author", "column": "author_id",
                  "references": "users", "references_column": "id" } ] },
              { "op": "create_index", "table": "posts", "name": "ix_posts_author_id",
                "columns": ["author_id"] },
              { "op": "rename_table", "from": "users", "to": "people" },
              { "op": "rename_column", "table": "posts", "from": "author_id", "to": "writer_id" },
              { "op": "raw", "postgres": "SELECT 1" } ] }"#,
        );
        let s = Snapshot::of_migrations(&migrations, MigrationScope::Tenant).unwrap();
        let posts = s.table("posts").unwrap();
        assert_eq!(posts.foreign_keys[0].references, "people");
        assert_eq!(posts.foreign_keys[0].column, "writer_id");
        assert_eq!(posts.indexes[0].columns, vec!["writer_id".to_owned()]);
        assert!(s.table("users").is_none());
        assert_eq!(s.raw_operations, 1);
        assert!(Snapshot::of_migrations(&migrations, MigrationScope::Shared)
            .unwrap()
            .tables
            .is_empty());
    }

    #[test]
    fn replay_refuses_what_cannot_apply() {
        let migrations = parse(
            "0001_a",
            r#"{ "scope": "tenant", "operations": [
              { "op": "drop_column", "table": "nowhere", "column": "x" } ] }"#,
        );
        let error = Snapshot::of_migrations(&migrations, MigrationScope::Tenant).unwrap_err();
        assert!(
            error.contains("0001_a") && error.contains("no table nowhere"),
            "{error}"
        );
    }

    #[test]
    fn defaults_compare_by_value() {
        let spec = |column_type, default: Json| ColumnSpec {
            name: "c".into(),
            column_type,
            null: false,
            max_length: None,
            precision: Some(12),
            scale: Some(2),
            primary_key: false,
            auto_increment: false,
            unique: false,
            default: Some(default),
            enum_type: None,
        };
        let decimal = |d: Json| canonical_default(&spec(ColumnType::Decimal, d));
        assert_eq!(decimal(Json::from("0")), decimal(Json::from("0.00")));
        assert_eq!(decimal(Json::from(0)), Some(Json::from("0.00")));
        let int = |d: Json| canonical_default(&spec(ColumnType::Integer, d));
        assert_eq!(int(Json::from("7")), Some(Json::from(7)));
    }
}
