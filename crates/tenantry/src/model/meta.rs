//! Static model metadata, generated once per model by the derive.

use crate::field::SqlType;

/// What a foreign key does when the row it points to is deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnDelete {
    /// Delete the referencing rows too.
    Cascade,
    /// Set the referencing column to NULL (the column must be nullable).
    SetNull,
    /// Refuse to delete a row that is still referenced.
    Restrict,
}

/// A foreign key's target and delete rule.
#[derive(Clone, Copy, Debug)]
pub struct ForeignKeyMeta {
    /// The referenced model's metadata (a function, so models may refer to each other).
    pub target: fn() -> &'static ModelMeta,
    /// The delete rule.
    pub on_delete: OnDelete,
}

/// One column of a model.
#[derive(Clone, Copy, Debug)]
pub struct ColumnMeta {
    /// The Rust field name.
    pub field: &'static str,
    /// The column name (a foreign key field `user` is stored as `user_id`).
    pub name: &'static str,
    /// The storage class.
    pub sql_type: SqlType,
    /// The PostgreSQL enum type of the column, if its field type declares one
    /// ([`FieldType::ENUM_TYPE`](crate::FieldType::ENUM_TYPE)).
    pub enum_type: Option<&'static crate::EnumType>,
    /// Accepts NULL (the field is an `Option`).
    pub nullable: bool,
    /// Is the primary key.
    pub primary_key: bool,
    /// The database assigns the value on insert.
    pub auto_increment: bool,
    /// `VARCHAR` length, for strings.
    pub max_length: Option<u32>,
    /// The precision (digits in all, `max_digits`) of a decimal column; `None` for every
    /// other column. A foreign key to a decimal primary key takes the key's (see
    /// [`ColumnMeta::numeric`]).
    pub precision: Option<u32>,
    /// The scale (digits after the point, `decimal_places`) of a decimal column; `None` for
    /// every other column.
    pub scale: Option<u32>,
    /// Has a unique constraint.
    pub unique: bool,
    /// Has an index.
    pub index: bool,
    /// The column's DDL default, if any.
    pub default: Option<fn() -> sea_query::Value>,
    /// Set for foreign key columns.
    pub foreign_key: Option<ForeignKeyMeta>,
}

impl ColumnMeta {
    /// The precision and scale of a decimal column: its own, or for a foreign key those of
    /// the primary key it references. `None` when the column is not a decimal or was
    /// declared without them.
    pub fn numeric(&self) -> Option<(u32, u32)> {
        let mut column = self;
        // A primary key that is itself a foreign key forwards to its target's key; the
        // types cannot form a cycle, the bound only keeps this loop obviously finite.
        for _ in 0..16 {
            if column.sql_type != SqlType::Decimal {
                return None;
            }
            if let (Some(precision), Some(scale)) = (column.precision, column.scale) {
                return Some((precision, scale));
            }
            column = (column.foreign_key?.target)().primary_key_column();
        }
        None
    }

    /// `value` as it is bound for this column of `model`: a decimal is checked against the
    /// column's precision and scale and rescaled to the scale
    /// ([`Error::ValueOutOfRange`](crate::Error::ValueOutOfRange) when it does not fit);
    /// text longer than a `max_length` column's characters is refused the same way (SQLite
    /// would store it whole, the others refuse it); every other value is unchanged.
    pub(crate) fn bind(
        &self,
        model: &'static ModelMeta,
        value: sea_query::Value,
    ) -> crate::Result<sea_query::Value> {
        match value {
            sea_query::Value::Decimal(Some(decimal)) if self.sql_type == SqlType::Decimal => {
                crate::decimal::check(model.table, self.name, self.numeric(), decimal)
                    .map(|d| sea_query::Value::Decimal(Some(d)))
            }
            // Bytes bound a character count: only text longer in bytes is counted.
            sea_query::Value::String(Some(text))
                if self.max_length.is_some_and(|n| {
                    text.len() > n as usize && text.chars().count() > n as usize
                }) =>
            {
                Err(crate::Error::ValueOutOfRange {
                    model: model.table,
                    column: self.name,
                    reason: format!(
                        "longer than the column's {} characters",
                        self.max_length.unwrap_or_default()
                    ),
                })
            }
            other => Ok(other),
        }
    }
}

/// A composite index or unique constraint declared on a model: `#[model(unique(a, b))]` or
/// `#[model(index(a, b))]` (a one-column one is `#[model(unique)]` / `#[model(index)]` on the
/// field). With a check, as `create_all` builds them:
///
/// ```
/// # use tenantry::__doc::*;
/// // #[model(table = "seats", unique(event, number),
/// //         check(name = "seats_price_ok", condition = Seat::price().gte(0)))]
/// let ddl = render_create(<Seat as tenantry::Model>::META);
/// assert_eq!(ddl.postgres, r#"CREATE TABLE IF NOT EXISTS "public"."seats" ( "id" bigint GENERATED BY DEFAULT AS IDENTITY NOT NULL PRIMARY KEY, "event" varchar(40) NOT NULL, "number" integer NOT NULL, "price" bigint NOT NULL, CONSTRAINT "seats_price_ok" CHECK ("price" >= 0) )
/// CREATE UNIQUE INDEX IF NOT EXISTS "uq_seats_event_number" ON "public"."seats" ("event", "number")"#);
/// assert!(ddl.mysql.contains("UNIQUE KEY `uq_seats_event_number` (`event`, `number`)"));
/// assert!(ddl.sqlite.contains(r#"CONSTRAINT "seats_price_ok" CHECK ("price" >= 0)"#));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexMeta {
    /// The index name: `uq_<table>_<columns>` / `ix_<table>_<columns>` unless given with
    /// `name = "..."`. Unique within the schema.
    pub name: &'static str,
    /// The column names, in index order.
    pub columns: &'static [&'static str],
    /// A unique index: no two rows hold the same values in all of `columns` (rows with a
    /// NULL in any of them never conflict, as SQL has it).
    pub unique: bool,
}

impl IndexMeta {
    /// Whether the index covers exactly `columns`, in any order (a conflict target names a
    /// unique index by its set of columns).
    pub fn covers(&self, columns: &[&str]) -> bool {
        self.columns.len() == columns.len() && self.columns.iter().all(|c| columns.contains(c))
    }
}

/// A check constraint declared on a model: `#[model(check(name = "...", condition = ...))]`.
#[derive(Clone, Copy, Debug)]
pub struct CheckMeta {
    /// The constraint name (MySQL wants it unique within the database's schema: prefix it
    /// with the table's).
    pub name: &'static str,
    /// The condition every row must meet, on the model's own columns only (a lookup across
    /// a relation or a subquery is refused when the table is built, and so are UUID,
    /// timestamp, time, bytes and JSON constants, which DDL text cannot write as tenantry
    /// stores them). Its constants are written in the DDL in the order the filter lists
    /// them: an `is_in` over a `HashSet` would change the text on every run. A NULL in a
    /// column passes, as in SQL.
    pub condition: fn() -> crate::model::Filter,
}

/// A model's table and columns. One `static` per model type.
#[derive(Debug)]
pub struct ModelMeta {
    /// The Rust type name.
    pub name: &'static str,
    /// The table name.
    pub table: &'static str,
    /// Every column, in field order.
    pub columns: &'static [ColumnMeta],
    /// The column names, in field order (the SELECT list).
    pub column_names: &'static [&'static str],
    /// The index of the primary key in `columns`.
    pub primary_key: usize,
    /// A shared model lives only in the shared (default) schema and ignores the tenant context.
    pub shared: bool,
    /// A tenant-only model (`#[model(tenant)]`) lives only in tenant schemas: it has no
    /// table in the shared schema ([`Registry::create_all`](crate::Registry::create_all)
    /// and the shared migration scope leave it out), and every statement that would name
    /// its table in the shared schema is refused with
    /// [`Error::TenantRequired`](crate::Error::TenantRequired) before it is sent. Never set
    /// together with [`shared`](Self::shared). A model that is neither (the default) lives
    /// in the shared schema and in every tenant schema.
    pub tenant_only: bool,
    /// The index in `columns` of the optimistic-locking counter (`#[model(version)]`):
    /// [`Instance::save`](crate::Instance::save) writes only over the version it read and
    /// bumps it; every UPDATE tenantry sends bumps it.
    pub version: Option<usize>,
    /// The composite indexes and unique constraints (`#[model(unique(a, b))]`,
    /// `#[model(index(a, b))]`), in declaration order.
    pub indexes: &'static [IndexMeta],
    /// The check constraints, in declaration order.
    pub checks: &'static [CheckMeta],
    /// The junction models the derive generated for this model's
    /// `#[model(many_to_many(..))]` relations;
    /// [`Registry::register`](crate::Registry::register) registers them with it.
    pub junctions: &'static [fn() -> &'static ModelMeta],
}

impl ModelMeta {
    /// Refuses `schema` for this model when it is the shared (default) schema (`None`) and
    /// the model is tenant-only: [`Error::TenantRequired`](crate::Error::TenantRequired).
    /// One test of a bool for every other model and schema.
    #[inline]
    pub(crate) fn check_schema(
        &self,
        schema: Option<&crate::schema_name::SchemaName>,
    ) -> crate::Result<()> {
        if self.lives_in(schema) {
            Ok(())
        } else {
            Err(crate::Error::TenantRequired { model: self.table })
        }
    }

    /// Whether this model has a table in `schema` (`None`: the shared schema): every model
    /// but a tenant-only one in the shared schema.
    #[inline]
    pub(crate) fn lives_in(&self, schema: Option<&crate::schema_name::SchemaName>) -> bool {
        !(self.tenant_only && schema.is_none())
    }

    /// The primary key column.
    pub fn primary_key_column(&self) -> &'static ColumnMeta {
        &self.columns[self.primary_key]
    }

    /// Whether the database assigns the primary key.
    pub fn auto_primary_key(&self) -> bool {
        self.primary_key_column().auto_increment
    }

    /// The column with this name.
    pub fn column(&self, name: &str) -> Option<&'static ColumnMeta> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Whether `columns` (a set, in any order) is a unique key of the model: the primary
    /// key, a `unique` column, or a composite unique constraint.
    pub fn is_unique_key(&self, columns: &[&str]) -> bool {
        match columns {
            [one] => self.column(one).is_some_and(|c| c.primary_key || c.unique),
            _ => self
                .indexes
                .iter()
                .any(|ix| ix.unique && ix.covers(columns)),
        }
    }

    /// The models this one points to with foreign keys.
    pub fn dependencies(&self) -> impl Iterator<Item = &'static ModelMeta> + '_ {
        self.columns
            .iter()
            .filter_map(|c| c.foreign_key.map(|fk| (fk.target)()))
    }

    /// The columns an INSERT writes: every column but an auto-increment key.
    pub(crate) fn insert_columns(&self) -> impl Iterator<Item = (usize, &'static ColumnMeta)> + '_ {
        self.columns
            .iter()
            .enumerate()
            .filter(|(_, c)| !c.auto_increment)
    }
}

/// Two metadata describe the same model when the type name, the table, the sharing (shared,
/// tenant-only or neither) and the columns agree: two types that differ in any of these (a shared `User` in another module
/// over the same table name, say) are different models, and a relation written for one is
/// refused for the other.
impl PartialEq for ModelMeta {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self, other)
            || (self.table == other.table
                && self.name == other.name
                && self.shared == other.shared
                && self.tenant_only == other.tenant_only
                && self.column_names == other.column_names)
    }
}
