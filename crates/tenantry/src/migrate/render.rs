//! Operations rendered to SQL for one backend and one schema, through sea-query.
//!
//! Where tables are qualified: on PostgreSQL the runner qualifies every table with the
//! schema it migrates (one runner connection serves many schemas, with no `search_path`).
//! On MySQL / MariaDB and SQLite the runner opens a connection to the tenant's own database
//! or file, so tables are bare there (sea-query cannot render a qualified `CREATE INDEX` for
//! MySQL, and a SQLite file is its own `main`).

use sea_query::{
    extension::postgres::Type, Alias, ColumnDef, Expr, ExprTrait, ForeignKey, Index, IntoIden,
    MysqlQueryBuilder, PostgresQueryBuilder, Query, QueryBuilder, SqliteQueryBuilder, Table,
    TableName, TableRef, TypeRef, Value,
};

use std::collections::BTreeMap;

use super::{
    error::{MigrationError, MigrationErrorKind},
    hazard::column_is_constrained,
    migration::{Migration, Migrations},
    operation::{CheckSpec, ColumnSpec, ForeignKeySpec, Operation},
    snapshot::{Snapshot, TableSnapshot},
};
use crate::{
    backend::Backend,
    ddl::{self, ColumnShape},
    error::{Error, Result},
};

/// Where the rendered statements run: the backend, the namespace that qualifies the
/// migrated tables (PostgreSQL's schema; `None` for bare names) and the one that holds the
/// shared tables a foreign key may point to.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Renderer<'a> {
    pub(crate) backend: Backend,
    pub(crate) namespace: Option<&'a str>,
    pub(crate) shared_namespace: Option<&'a str>,
    /// Renders a tenant's migration (a foreign key to a shared table crosses schemas).
    pub(crate) tenant: bool,
    /// Make DDL idempotent where the syntax allows (MySQL / MariaDB, whose DDL commits
    /// implicitly, so a resumed step may find its change already made).
    pub(crate) idempotent: bool,
}

fn iden(name: &str) -> sea_query::DynIden {
    Alias::new(name).into_iden()
}

fn qualified(namespace: Option<&str>, table: &str) -> TableName {
    TableName(
        namespace.map(|ns| sea_query::SchemaName(None, iden(ns))),
        iden(table),
    )
}

impl Renderer<'_> {
    fn table(&self, table: &str) -> TableName {
        qualified(self.namespace, table)
    }

    /// Enum type `name` of the migrated schema.
    fn type_ref(&self, name: &str) -> TypeRef {
        let TableName(namespace, name) = qualified(self.namespace, name);
        TypeRef(namespace, name)
    }

    /// On PostgreSQL, a column of an enum type has that type of the migrated schema.
    fn enum_column(&self, spec: &ColumnSpec, def: &mut ColumnDef) {
        if let (Some(ty), Backend::Postgres) = (&spec.enum_type, self.backend) {
            def.custom(Alias::new(crate::enum_types::quoted(&self.type_ref(ty))));
        }
    }

    fn unsupported(&self, op: &Operation, why: &str) -> Error {
        MigrationError::error(
            None,
            None,
            MigrationErrorKind::Unsupported(format!(
                "{} on {}: {why}",
                op.describe(),
                self.backend.name()
            )),
        )
    }

    fn build(&self, mut statement: impl FnMut(&dyn SchemaBuild) -> String) -> String {
        match self.backend {
            Backend::Postgres => statement(&PostgresQueryBuilder),
            Backend::MySql => statement(&MysqlQueryBuilder),
            Backend::Sqlite => statement(&SqliteQueryBuilder),
        }
    }

    /// The statements of `op`, in order, given the scope's tables before it (`replay`:
    /// every earlier migration and operation replayed; its snapshot `None` when unknown).
    ///
    /// On SQLite an operation it cannot do in place (see [`sqlite_rebuilds`]) is a table
    /// rebuild built from `before`. On PostgreSQL and MySQL an `alter_column` changes what
    /// differs from the column's recorded definition (a default dropped, a unique
    /// constraint removed), and a MySQL add / drop / rename of a column carries
    /// `ALGORITHM=INSTANT`.
    pub(crate) fn render_at(&self, op: &Operation, replay: &Replay) -> Result<Vec<String>> {
        let before = replay.snapshot();
        if self.backend != Backend::Postgres && alters_only_enum_type(op, before) {
            return Ok(Vec::new());
        }
        if self.backend == Backend::Sqlite && sqlite_rebuilds(op, before, self.tenant) {
            return self.rebuild(op, before);
        }
        let one = |sql: String| Ok(vec![sql]);
        match op {
            Operation::CreateTable {
                table,
                columns,
                foreign_keys,
                checks,
            } => self.create_table(table, columns, foreign_keys, checks),
            Operation::AddCheck { table, check } => one(self.add_check(table, check)),
            Operation::DropCheck { table, name } => {
                let drop = Table::alter()
                    .table(self.table(table))
                    .drop_constraint(iden(name))
                    .to_owned();
                one(self.build(|b| b.table_alter(&drop)))
            }
            // Run by the runner, not rendered.
            Operation::Data { .. } => Ok(Vec::new()),
            // MySQL and SQLite keep an enum's text: no type to make.
            Operation::CreateEnum { .. }
            | Operation::AddEnumValue { .. }
            | Operation::DropEnum { .. }
                if self.backend != Backend::Postgres =>
            {
                Ok(Vec::new())
            }
            Operation::CreateEnum { name, variants } => one(Type::create()
                .as_enum(self.type_ref(name))
                .values(variants.iter().map(|v| iden(v)))
                .to_string(PostgresQueryBuilder)),
            Operation::AddEnumValue {
                name,
                value,
                before,
                after,
            } => {
                // Idempotent: the runner adds a label before the migration's transaction.
                let mut alter = Type::alter()
                    .name(self.type_ref(name))
                    .add_value(iden(value))
                    .if_not_exists();
                if let Some(label) = before {
                    alter = alter.before(iden(label));
                }
                if let Some(label) = after {
                    alter = alter.after(iden(label));
                }
                one(alter.to_string(PostgresQueryBuilder))
            }
            Operation::DropEnum { name } => one(Type::drop()
                .name(self.type_ref(name))
                .to_string(PostgresQueryBuilder)),
            Operation::DropTable { table } => {
                let drop = Table::drop().table(self.table(table)).to_owned();
                one(self.build(|b| b.table_drop(&drop)))
            }
            Operation::RenameTable { from, to } => {
                let to = match self.backend {
                    Backend::MySql => self.table(to),
                    _ => qualified(None, to),
                };
                let rename = Table::rename().table(self.table(from), to).to_owned();
                one(self.build(|b| b.table_rename(&rename)))
            }
            Operation::AddColumn { table, column } => {
                let mut alter = Table::alter();
                alter.table(self.table(table));
                if self.idempotent {
                    alter.add_column_if_not_exists(self.column(column));
                } else {
                    alter.add_column(self.column(column));
                }
                one(self.instant(self.build(|b| b.table_alter(&alter))))
            }
            Operation::DropColumn { table, column } => {
                let alter = Table::alter()
                    .table(self.table(table))
                    .drop_column(iden(column))
                    .to_owned();
                let mut sql = self.build(|b| b.table_alter(&alter));
                if self.backend == Backend::MySql
                    && before.is_some_and(|s| column_is_constrained(s, table, column))
                {
                    // Dropping an indexed column drops its index too: not instant, but done
                    // without copying the table when the index is the column's own; a
                    // composite index would need a rebuild, which the server then refuses.
                    sql.push_str(MYSQL_NOCOPY);
                    return one(sql);
                }
                one(self.instant(sql))
            }
            Operation::RenameColumn { table, from, to } => {
                let alter = Table::alter()
                    .table(self.table(table))
                    .rename_column(iden(from), iden(to))
                    .to_owned();
                one(self.instant(self.build(|b| b.table_alter(&alter))))
            }
            Operation::AlterColumn { table, column } => {
                let old = before
                    .and_then(|s| s.table(table))
                    .and_then(|t| t.column(&column.name));
                let unique_name = replay.unique_name(self.backend, table, &column.name);
                self.alter_column(table, column, old, &unique_name)
            }
            Operation::CreateIndex {
                table,
                name,
                columns,
                unique,
            } => {
                let mut index = Index::create();
                index.name(name.as_str()).table(self.table(table));
                for column in columns {
                    index.col(iden(column));
                }
                if *unique {
                    index.unique();
                }
                // MySQL's index builder has no IF NOT EXISTS; a resumed step that finds the
                // index made is recognised by its error code instead.
                if self.backend != Backend::MySql {
                    index.if_not_exists();
                }
                one(self.build(|b| b.index_create(&index)))
            }
            Operation::DropIndex { table, name } => {
                let mut drop = Index::drop();
                drop.name(name.as_str());
                match self.backend {
                    // `DROP INDEX "schema"."name"`: the table only lends its schema.
                    Backend::Postgres | Backend::MySql => drop.table(self.table(table)),
                    Backend::Sqlite => &mut drop,
                };
                one(self.build(|b| b.index_drop(&drop)))
            }
            Operation::AddForeignKey { table, foreign_key } => {
                if self.backend == Backend::Sqlite && self.foreign_key(table, foreign_key).is_some()
                {
                    return Err(self.unsupported(op, "SQLite cannot add a constraint in place"));
                }
                match self.foreign_key(table, foreign_key) {
                    Some(mut fk) => one(self.build(|b| b.foreign_key_create(&mut fk))),
                    None => Ok(Vec::new()),
                }
            }
            Operation::DropForeignKey { table, name } => {
                if self.backend == Backend::Sqlite {
                    // A key to a shared table, left out of the tenant's file: nothing to drop.
                    let left_out = before
                        .and_then(|s| s.table(table))
                        .and_then(|t| t.foreign_keys.iter().find(|fk| &fk.name == name))
                        .is_some_and(|fk| self.foreign_key(table, fk).is_none());
                    if left_out {
                        return Ok(Vec::new());
                    }
                    return Err(self.unsupported(op, "SQLite cannot drop a constraint in place"));
                }
                let drop = ForeignKey::drop()
                    .name(name.as_str())
                    .table(self.table(table))
                    .to_owned();
                one(self.build(|b| b.foreign_key_drop(&drop)))
            }
            Operation::Raw {
                postgres,
                mysql,
                sqlite,
            } => {
                let text = match self.backend {
                    Backend::Postgres => postgres,
                    Backend::MySql => mysql,
                    Backend::Sqlite => sqlite,
                };
                let Some(text) = text else {
                    return Err(self.unsupported(op, "the raw step has no text for this backend"));
                };
                Ok(vec![self.raw(text)?])
            }
        }
    }

    fn create_table(
        &self,
        table: &str,
        columns: &[ColumnSpec],
        foreign_keys: &[ForeignKeySpec],
        checks: &[CheckSpec],
    ) -> Result<Vec<String>> {
        let mut create = self.create_statement(table, table, columns, foreign_keys, checks);
        create.if_not_exists();
        Ok(vec![self.build(|b| b.table_create(&create))])
    }

    /// `ALTER TABLE t ADD CONSTRAINT name CHECK (condition)` on PostgreSQL and MySQL.
    /// sea-query has no ADD CONSTRAINT: its `DROP CONSTRAINT name` for the table is built
    /// (table and name quoted by the builder) and its fixed keyword swapped; the condition
    /// is the check's text for this backend, rendered by sea-query when the migration was
    /// generated.
    fn add_check(&self, table: &str, check: &CheckSpec) -> String {
        let alter = Table::alter()
            .table(self.table(table))
            .drop_constraint(iden(&check.name))
            .to_owned();
        let drop = self.build(|b| b.table_alter(&alter));
        let add = drop.replacen(" DROP CONSTRAINT ", " ADD CONSTRAINT ", 1);
        [&add, " CHECK (", check.condition(self.backend), ")"].concat()
    }

    /// `CREATE TABLE name` with `columns`, the foreign keys of `table` (its final name,
    /// which a key to itself references) and `checks`.
    fn create_statement(
        &self,
        name: &str,
        table: &str,
        columns: &[ColumnSpec],
        foreign_keys: &[ForeignKeySpec],
        checks: &[CheckSpec],
    ) -> sea_query::TableCreateStatement {
        let mut create = Table::create();
        create.table(self.table(name));
        if self.backend == Backend::MySql {
            create
                .engine("InnoDB")
                .character_set("utf8mb4")
                .collate("utf8mb4_bin");
        }
        for column in columns {
            create.col(self.column(column));
        }
        for spec in foreign_keys {
            if let Some(mut fk) = self.foreign_key(table, spec) {
                create.foreign_key(&mut fk);
            }
        }
        for check in checks {
            let condition = Expr::cust(check.condition(self.backend).to_owned());
            create.check((iden(&check.name), condition));
        }
        create
    }

    /// MySQL / MariaDB: `statement` (an add, drop or rename of a column) with
    /// `, ALGORITHM=INSTANT`, so that the server refuses (ERROR 1845 / 1846) a change it
    /// could only make by copying the table instead of copying it silently. Instant ADD
    /// COLUMN needs MariaDB 10.3.2 (any position: 10.4) or MySQL 8.0.12 (any position and
    /// DROP COLUMN: 8.0.29); an older server refuses these too, with the same typed error. sea-query has
    /// no table-alter algorithm option, so the fixed clause is appended to the builder's
    /// output; it holds no identifier or value.
    fn instant(&self, mut statement: String) -> String {
        if self.backend == Backend::MySql {
            statement.push_str(MYSQL_INSTANT);
        }
        statement
    }

    /// `alter_column` on PostgreSQL and MySQL, changing what differs from `old` (the
    /// column's recorded definition; `None`: unknown, so everything is set).
    fn alter_column(
        &self,
        table: &str,
        column: &ColumnSpec,
        old: Option<&ColumnSpec>,
        unique_name: &str,
    ) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let was_unique = old.is_some_and(|o| o.unique || o.primary_key);
        match self.backend {
            Backend::MySql => {
                // MODIFY restates the whole column (so a default left out is dropped), but
                // an inline UNIQUE adds an index each time: only when it becomes unique.
                let mut spec = column.clone();
                spec.unique = column.unique && !was_unique;
                let alter = Table::alter()
                    .table(self.table(table))
                    .modify_column(self.column(&spec))
                    .to_owned();
                out.push(self.build(|b| b.table_alter(&alter)));
                if was_unique && !column.unique && !column.primary_key {
                    // MySQL named the column's unique index after the column (as it was
                    // called then).
                    let drop = Index::drop()
                        .name(unique_name)
                        .table(self.table(table))
                        .to_owned();
                    out.push(self.build(|b| b.index_drop(&drop)));
                }
            }
            Backend::Postgres | Backend::Sqlite => {
                let mut def = ColumnDef::new(iden(&column.name));
                let mut changed = false;
                let mut old_default = old.and_then(|o| o.default.as_ref());
                let type_changed = old.is_none_or(|o| {
                    o.column_type != column.column_type
                        || o.max_length != column.max_length
                        || o.precision != column.precision
                        || o.scale != column.scale
                        || o.enum_type != column.enum_type
                });
                // PostgreSQL casts nothing to an enum implicitly: the column (and its
                // default, dropped first and set again below) is converted by its text.
                let enum_type = column.enum_type.as_deref();
                if let (true, Some(ty), Backend::Postgres) = (type_changed, enum_type, self.backend)
                {
                    if old_default.take().is_some() {
                        out.push(self.drop_default(table, &column.name));
                    }
                    out.push(self.retype_to_enum(table, &column.name, ty));
                } else if type_changed {
                    let shape = ColumnShape {
                        sql_type: column.column_type.sql_type(),
                        max_length: column.max_length,
                        auto_increment: false,
                        numeric: column.precision.zip(column.scale),
                    };
                    ddl::dialect(self.backend).column_type(shape, &mut def);
                    changed = true;
                }
                if old.is_none_or(|o| o.null != column.null) {
                    if column.null {
                        def.null();
                    } else {
                        def.not_null();
                    }
                    changed = true;
                }
                if let Some(default) = &column.default {
                    if old_default != Some(default) {
                        def.default(json_value(column.column_type, default));
                        changed = true;
                    }
                }
                if column.unique && !was_unique {
                    def.unique_key();
                    changed = true;
                }
                if changed {
                    let alter = Table::alter()
                        .table(self.table(table))
                        .modify_column(def)
                        .to_owned();
                    out.push(self.build(|b| b.table_alter(&alter)));
                }
                if column.default.is_none() && old_default.is_some() {
                    out.push(self.drop_default(table, &column.name));
                }
                if was_unique && !column.unique && !column.primary_key {
                    // PostgreSQL named the constraint `<table>_<column>_key` (as they were
                    // called then).
                    let alter = Table::alter()
                        .table(self.table(table))
                        .drop_constraint(iden(unique_name))
                        .to_owned();
                    out.push(self.build(|b| b.table_alter(&alter)));
                }
            }
        }
        Ok(out)
    }

    /// PostgreSQL: `ALTER TABLE t ALTER COLUMN c TYPE "schema"."enum" USING
    /// c::text::"schema"."enum"`. sea-query's column changes write no `USING`: every
    /// identifier is quoted by the builder, the keywords are fixed text.
    fn retype_to_enum(&self, table: &str, column: &str, ty: &str) -> String {
        let ty = crate::enum_types::quoted(&self.type_ref(ty));
        let column = iden(column);
        let mut out = String::from("ALTER TABLE ");
        let table = TableRef::Table(self.table(table), None);
        PostgresQueryBuilder.prepare_table_ref(&table, &mut out);
        out.push_str(" ALTER COLUMN ");
        sea_query::QuotedBuilder::prepare_iden(&PostgresQueryBuilder, &column, &mut out);
        out.push_str(" TYPE ");
        out.push_str(&ty);
        out.push_str(" USING ");
        sea_query::QuotedBuilder::prepare_iden(&PostgresQueryBuilder, &column, &mut out);
        out.push_str("::text::");
        out.push_str(&ty);
        out
    }

    /// PostgreSQL: `ALTER TABLE t ALTER COLUMN c DROP DEFAULT`. sea-query's column changes
    /// can set a default but not drop one: the table and column are quoted by the builder,
    /// the keywords are fixed text.
    fn drop_default(&self, table: &str, column: &str) -> String {
        let mut out = String::from("ALTER TABLE ");
        let table = TableRef::Table(self.table(table), None);
        PostgresQueryBuilder.prepare_table_ref(&table, &mut out);
        out.push_str(" ALTER COLUMN ");
        sea_query::QuotedBuilder::prepare_iden(&PostgresQueryBuilder, &iden(column), &mut out);
        out.push_str(" DROP DEFAULT");
        out
    }

    /// SQLite's "12-step" rebuild of the table `op` changes: `<table>__tenantry_new` made
    /// with the table's new full definition, the kept columns copied (a new column takes
    /// its default), the old table dropped, the new one renamed to the old name, its
    /// indexes made again, then `PRAGMA foreign_key_check`. The runner runs it inside the
    /// tenant's transaction with `PRAGMA foreign_keys` turned off before `BEGIN` (dropping
    /// the old table would otherwise run its children's `ON DELETE` actions), and fails
    /// the tenant on any row the check reports.
    fn rebuild(&self, op: &Operation, before: Option<&Snapshot>) -> Result<Vec<String>> {
        let Some(before) = before else {
            return Err(self.unsupported(
                op,
                "the table must be rebuilt, and its definition is unknown (the earlier                  migrations do not replay)",
            ));
        };
        let table = op_table(op).unwrap_or_default();
        let mut after = before.clone();
        after.apply(op).map_err(|why| self.unsupported(op, &why))?;
        let (Some(old), Some(new)) = (before.table(table), after.table(table)) else {
            return Err(self.unsupported(op, "no such table to rebuild"));
        };
        Ok(self.rebuild_statements(table, old, new))
    }

    fn rebuild_statements(
        &self,
        table: &str,
        old: &TableSnapshot,
        new: &TableSnapshot,
    ) -> Vec<String> {
        let temp = [table, REBUILD_SUFFIX].concat();
        let mut out = Vec::new();
        let create =
            self.create_statement(&temp, table, &new.columns, &new.foreign_keys, &new.checks);
        out.push(self.build(|b| b.table_create(&create)));
        let kept: Vec<sea_query::DynIden> = new
            .columns
            .iter()
            .filter(|c| old.column(&c.name).is_some())
            .map(|c| iden(&c.name))
            .collect();
        if !kept.is_empty() {
            let select = Query::select()
                .columns(kept.clone())
                .from(self.table(table))
                .to_owned();
            let mut insert = Query::insert();
            insert.into_table(self.table(&temp)).columns(kept);
            // Only fails when the column counts differ, and both lists are `kept`.
            if insert.select_from(select).is_ok() {
                out.push(insert.to_string(SqliteQueryBuilder));
            }
        }
        if new.columns.iter().any(|c| c.auto_increment) {
            // AUTOINCREMENT never reuses an id: the new table takes the old one's counter
            // (which the copy alone would set to the highest id left, not the highest used).
            let sequence = || qualified(None, SQLITE_SEQUENCE);
            let forget = Query::delete()
                .from_table(sequence())
                .and_where(Expr::col(iden("name")).eq(temp.as_str()))
                .to_owned();
            out.push(forget.to_string(SqliteQueryBuilder));
            let counter = Query::select()
                .expr(Expr::val(temp.as_str()))
                .column(iden("seq"))
                .from(sequence())
                .and_where(Expr::col(iden("name")).eq(table))
                .to_owned();
            let mut keep = Query::insert();
            keep.into_table(sequence())
                .columns([iden("name"), iden("seq")]);
            if keep.select_from(counter).is_ok() {
                out.push(keep.to_string(SqliteQueryBuilder));
            }
        }
        let drop = Table::drop().table(self.table(table)).to_owned();
        out.push(self.build(|b| b.table_drop(&drop)));
        let rename = Table::rename()
            .table(self.table(&temp), qualified(None, table))
            .to_owned();
        out.push(self.build(|b| b.table_rename(&rename)));
        for ix in &new.indexes {
            let mut index = Index::create();
            index.name(ix.name.as_str()).table(self.table(table));
            for column in &ix.columns {
                index.col(iden(column));
            }
            if ix.unique {
                index.unique();
            }
            out.push(self.build(|b| b.index_create(&index)));
        }
        out.push(SQLITE_FOREIGN_KEY_CHECK.to_owned());
        out
    }

    /// The foreign key, or `None` where it would cross files (SQLite) or databases (MySQL),
    /// which `create_all` leaves out as well.
    fn foreign_key(
        &self,
        table: &str,
        spec: &ForeignKeySpec,
    ) -> Option<sea_query::ForeignKeyCreateStatement> {
        let capabilities = self.backend.capabilities();
        if spec.shared && self.tenant && !capabilities.cross_schema_foreign_keys {
            return None;
        }
        let target_namespace = if spec.shared {
            self.shared_namespace
        } else {
            self.namespace
        };
        Some(
            ForeignKey::create()
                .name(spec.name.as_str())
                .from(self.table(table), iden(&spec.column))
                .to(
                    qualified(target_namespace, &spec.references),
                    iden(&spec.references_column),
                )
                .on_delete(ddl::on_delete(spec.on_delete))
                .to_owned(),
        )
    }

    fn column(&self, spec: &ColumnSpec) -> ColumnDef {
        let mut def = ColumnDef::new(iden(&spec.name));
        let shape = ColumnShape {
            sql_type: spec.column_type.sql_type(),
            max_length: spec.max_length,
            auto_increment: spec.auto_increment,
            numeric: spec.precision.zip(spec.scale),
        };
        ddl::dialect(self.backend).column_type(shape, &mut def);
        self.enum_column(spec, &mut def);
        if spec.null {
            def.null();
        } else {
            def.not_null();
        }
        if spec.primary_key {
            def.primary_key();
        }
        if spec.auto_increment {
            def.auto_increment();
        }
        if spec.unique && !spec.primary_key {
            def.unique_key();
        }
        if let Some(default) = &spec.default {
            let value = json_value(spec.column_type, default);
            def.default(ddl::dialect(self.backend).default_value(shape, value));
        }
        def
    }

    /// `text` with each `{table:NAME}` replaced by table `NAME` of the migrated schema,
    /// qualified and quoted by the backend's query builder.
    fn raw(&self, text: &str) -> Result<String> {
        const OPEN: &str = "{table:";
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find(OPEN) {
            out.push_str(&rest[..start]);
            let after = &rest[start + OPEN.len()..];
            let Some(end) = after.find('}') else {
                return Err(MigrationError::invalid(
                    "-",
                    "an unterminated {table:…} placeholder in a raw step".into(),
                ));
            };
            let name = &after[..end];
            super::migration::check_identifier(name).map_err(|reason| {
                MigrationError::invalid("-", format!("raw step table {name:?} {reason}"))
            })?;
            let table = TableRef::Table(self.table(name), None);
            match self.backend {
                Backend::Postgres => PostgresQueryBuilder.prepare_table_ref(&table, &mut out),
                Backend::MySql => MysqlQueryBuilder.prepare_table_ref(&table, &mut out),
                Backend::Sqlite => SqliteQueryBuilder.prepare_table_ref(&table, &mut out),
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// The scope's tables before an operation: the earlier operations replayed into a
/// [`Snapshot`] (`None` once one does not apply: the migrations disagree with themselves),
/// and where each single-column unique constraint was made, since PostgreSQL and MySQL
/// keep the name they gave it then through later renames.
#[derive(Clone, Debug)]
pub(crate) struct Replay {
    snapshot: Option<Snapshot>,
    /// (table, column) now -> (table, column) when its unique constraint was made.
    unique_origin: BTreeMap<(String, String), (String, String)>,
}

impl Replay {
    /// Before the scope's first migration: no tables.
    pub(crate) fn new() -> Replay {
        Replay {
            snapshot: Some(Snapshot::default()),
            unique_origin: BTreeMap::new(),
        }
    }

    /// Before `migration`: every earlier migration of its scope replayed.
    pub(crate) fn before(migrations: &Migrations, migration: &Migration) -> Replay {
        let mut replay = Replay::new();
        for earlier in migrations.of(migration.scope()) {
            if earlier.id() >= migration.id() {
                break;
            }
            earlier.operations().iter().for_each(|op| replay.apply(op));
        }
        replay
    }

    /// The tables, when the replay is known.
    pub(crate) fn snapshot(&self) -> Option<&Snapshot> {
        self.snapshot.as_ref()
    }

    /// Replays one more operation.
    pub(crate) fn apply(&mut self, op: &Operation) {
        self.track_unique(op);
        if let Some(snapshot) = self.snapshot.as_mut() {
            if snapshot.apply(op).is_err() {
                self.snapshot = None;
            }
        }
    }

    fn track_unique(&mut self, op: &Operation) {
        let key = |t: &str, c: &str| (t.to_owned(), c.to_owned());
        let origins = &mut self.unique_origin;
        match op {
            Operation::CreateTable { table, columns, .. } => {
                for c in columns.iter().filter(|c| c.unique && !c.primary_key) {
                    origins.insert(key(table, &c.name), key(table, &c.name));
                }
            }
            Operation::AddColumn { table, column } if column.unique && !column.primary_key => {
                origins.insert(key(table, &column.name), key(table, &column.name));
            }
            Operation::AlterColumn { table, column } => {
                let now = key(table, &column.name);
                if column.unique && !column.primary_key {
                    origins.entry(now.clone()).or_insert(now);
                } else {
                    origins.remove(&now);
                }
            }
            Operation::DropColumn { table, column } => {
                origins.remove(&key(table, column));
            }
            Operation::DropTable { table } => origins.retain(|(t, _), _| t != table),
            Operation::RenameTable { from, to } => {
                let moved: Vec<_> = origins.keys().filter(|(t, _)| t == from).cloned().collect();
                for old in moved {
                    if let Some(origin) = origins.remove(&old) {
                        origins.insert(key(to, &old.1), origin);
                    }
                }
            }
            Operation::RenameColumn { table, from, to } => {
                if let Some(origin) = origins.remove(&key(table, from)) {
                    origins.insert(key(table, to), origin);
                }
            }
            _ => {}
        }
    }

    /// The name the server gave the unique constraint of `column` of `table` (PostgreSQL:
    /// `<table>_<column>_key`, MySQL: the column's name, both as they were called when it
    /// was made).
    fn unique_name(&self, backend: Backend, table: &str, column: &str) -> String {
        let (t, c) = self
            .unique_origin
            .get(&(table.to_owned(), column.to_owned()))
            .cloned()
            .unwrap_or_else(|| (table.to_owned(), column.to_owned()));
        match backend {
            Backend::MySql => c,
            Backend::Postgres | Backend::Sqlite => postgres_constraint_name(&t, &c, "key"),
        }
    }
}

/// PostgreSQL's name for a constraint of `column` of `table` (`makeObjectName`): both parts
/// shortened, the longer first, until `<table>_<column>_<label>` fits in 63 bytes.
/// Identifiers here are ASCII.
fn postgres_constraint_name(table: &str, column: &str, label: &str) -> String {
    let available = 63usize.saturating_sub(2 + label.len());
    let (mut t, mut c) = (table.len(), column.len());
    while t + c > available && (t > 0 || c > 0) {
        if t > c {
            t -= 1;
        } else {
            c -= 1;
        }
    }
    [&table[..t], "_", &column[..c], "_", label].concat()
}

/// Whether `op` is an `alter_column` that changes nothing but the column's PostgreSQL enum
/// type, judged against `before`: nothing to do on the backends that keep the text.
pub(crate) fn alters_only_enum_type(op: &Operation, before: Option<&Snapshot>) -> bool {
    let Operation::AlterColumn { table, column } = op else {
        return false;
    };
    let old = before
        .and_then(|s| s.table(table))
        .and_then(|t| t.column(&column.name));
    old.is_some_and(|old| {
        old.enum_type != column.enum_type
            && ColumnSpec {
                enum_type: column.enum_type.clone(),
                ..old.clone()
            } == *column
    })
}

/// SQLite's table of AUTOINCREMENT counters.
const SQLITE_SEQUENCE: &str = "sqlite_sequence";

/// The suffix of the table a SQLite rebuild makes before it takes the old one's name.
const REBUILD_SUFFIX: &str = "__tenantry_new";

/// MySQL / MariaDB: the guard appended to an add, drop or rename of a column.
const MYSQL_INSTANT: &str = ", ALGORITHM=INSTANT";

/// MySQL / MariaDB: the guard appended to a drop of an indexed column (the server drops the
/// index with it, so it cannot be instant, but it must not copy the table either).
const MYSQL_NOCOPY: &str = ", ALGORITHM=NOCOPY";

/// SQLite: the statement that ends a rebuild; the runner reads its rows (each a row whose
/// foreign key points nowhere) and fails the tenant on any. A pragma has no sea-query form.
pub(crate) const SQLITE_FOREIGN_KEY_CHECK: &str = "PRAGMA foreign_key_check";

/// The table an operation changes, when it changes one table (the one a SQLite rebuild
/// makes again).
pub(crate) fn op_table(op: &Operation) -> Option<&str> {
    match op {
        Operation::AddColumn { table, .. }
        | Operation::DropColumn { table, .. }
        | Operation::AlterColumn { table, .. }
        | Operation::AddForeignKey { table, .. }
        | Operation::DropForeignKey { table, .. }
        | Operation::AddCheck { table, .. }
        | Operation::DropCheck { table, .. } => Some(table),
        _ => None,
    }
}

/// Whether SQLite must rebuild the table to do `op`, given the tables before it (`None`:
/// unknown; then only what is always a rebuild): `alter_column`, adding or dropping a
/// foreign key (not one to a shared table, which a tenant file leaves out), dropping a
/// column that is indexed, unique, a primary key or in a foreign key, and adding a column
/// that is unique, a primary key, or NOT NULL without a default.
pub(crate) fn sqlite_rebuilds(op: &Operation, before: Option<&Snapshot>, tenant: bool) -> bool {
    let left_out = |fk: &ForeignKeySpec| fk.shared && tenant;
    match op {
        Operation::AlterColumn { .. } => !alters_only_enum_type(op, before),
        Operation::AddCheck { .. } | Operation::DropCheck { .. } => true,
        Operation::AddForeignKey { foreign_key, .. } => !left_out(foreign_key),
        Operation::DropForeignKey { table, name } => before
            .and_then(|s| s.table(table))
            .and_then(|t| t.foreign_keys.iter().find(|fk| &fk.name == name))
            .is_some_and(|fk| !left_out(fk)),
        Operation::DropColumn { table, column } => {
            before.is_some_and(|s| column_is_constrained(s, table, column))
        }
        Operation::AddColumn { column, .. } => {
            before.is_some()
                && (column.unique
                    || column.primary_key
                    || (!column.null && column.default.is_none()))
        }
        _ => false,
    }
}

/// A JSON default as a constant of the column's type (a decimal's exact text parsed, so
/// `"0.00"` is `0.00`, not a float).
fn json_value(column_type: super::operation::ColumnType, value: &serde_json::Value) -> Value {
    if column_type == super::operation::ColumnType::Decimal {
        let text = match value {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        if let Ok(decimal) = text.parse::<rust_decimal::Decimal>() {
            return Value::Decimal(Some(decimal));
        }
    }
    match value {
        serde_json::Value::Bool(b) => Value::Bool(Some(*b)),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::BigInt(Some(i)),
            None => Value::Double(n.as_f64()),
        },
        serde_json::Value::String(s) => Value::String(Some(s.clone())),
        serde_json::Value::Null => Value::String(None),
        other => Value::String(Some(other.to_string())),
    }
}

/// One schema builder per backend, behind one object-safe interface.
trait SchemaBuild {
    fn table_create(&self, s: &sea_query::TableCreateStatement) -> String;
    fn table_drop(&self, s: &sea_query::TableDropStatement) -> String;
    fn table_rename(&self, s: &sea_query::TableRenameStatement) -> String;
    fn table_alter(&self, s: &sea_query::TableAlterStatement) -> String;
    fn index_create(&self, s: &sea_query::IndexCreateStatement) -> String;
    fn index_drop(&self, s: &sea_query::IndexDropStatement) -> String;
    fn foreign_key_create(&self, s: &mut sea_query::ForeignKeyCreateStatement) -> String;
    fn foreign_key_drop(&self, s: &sea_query::ForeignKeyDropStatement) -> String;
}

macro_rules! schema_build {
    ($($builder:ty),*) => {$(
        impl SchemaBuild for $builder {
            fn table_create(&self, s: &sea_query::TableCreateStatement) -> String {
                s.to_string(<$builder>::default())
            }
            fn table_drop(&self, s: &sea_query::TableDropStatement) -> String {
                s.to_string(<$builder>::default())
            }
            fn table_rename(&self, s: &sea_query::TableRenameStatement) -> String {
                s.to_string(<$builder>::default())
            }
            fn table_alter(&self, s: &sea_query::TableAlterStatement) -> String {
                s.to_string(<$builder>::default())
            }
            fn index_create(&self, s: &sea_query::IndexCreateStatement) -> String {
                s.to_string(<$builder>::default())
            }
            fn index_drop(&self, s: &sea_query::IndexDropStatement) -> String {
                s.to_string(<$builder>::default())
            }
            fn foreign_key_create(&self, s: &mut sea_query::ForeignKeyCreateStatement) -> String {
                s.to_string(<$builder>::default())
            }
            fn foreign_key_drop(&self, s: &sea_query::ForeignKeyDropStatement) -> String {
                s.to_string(<$builder>::default())
            }
        }
    )*};
}

schema_build!(PostgresQueryBuilder, MysqlQueryBuilder, SqliteQueryBuilder);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrate::Migrations;

    const TABLES: &str = r#"{ "scope": "tenant", "operations": [
      { "op": "create_table", "table": "t", "columns": [
        { "name": "id", "type": "big_integer", "primary_key": true, "auto_increment": true },
        { "name": "price", "type": "decimal", "precision": 12, "scale": 2 },
        { "name": "code", "type": "varchar", "max_length": 10, "unique": true,
          "default": "x" },
        { "name": "tag", "type": "varchar", "max_length": 10, "null": true } ] },
      { "op": "create_index", "table": "t", "name": "ix_t_tag", "columns": ["tag"] } ] }"#;

    fn before() -> Replay {
        let set = Migrations::from_files(&[("0001_t", TABLES)]).unwrap();
        let mut replay = Replay::new();
        for op in set.all()[0].operations() {
            replay.apply(op);
        }
        replay
    }

    fn renderer(backend: Backend) -> Renderer<'static> {
        Renderer {
            backend,
            namespace: None,
            shared_namespace: None,
            tenant: true,
            idempotent: backend == Backend::MySql,
        }
    }

    fn op(json: &str) -> Operation {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn sqlite_rebuild_keeps_the_definition_and_checks_keys() {
        let alter = op(r#"{ "op": "alter_column", "table": "t",
            "column": { "name": "tag", "type": "text", "null": true } }"#);
        let sql = renderer(Backend::Sqlite)
            .render_at(&alter, &before())
            .unwrap();
        assert!(
            sql[0].starts_with("CREATE TABLE \"t__tenantry_new\""),
            "{sql:?}"
        );
        assert!(!sql[0].contains("IF NOT EXISTS"), "{sql:?}");
        // The decimal keeps its collation, the unique column its constraint and default.
        assert!(sql[0].contains(crate::decimal::SQLITE_COLLATE), "{sql:?}");
        assert!(
            sql[0].contains("UNIQUE") && sql[0].contains("DEFAULT 'x'"),
            "{sql:?}"
        );
        assert_eq!(
            sql[1],
            "INSERT INTO \"t__tenantry_new\" (\"id\", \"price\", \"code\", \"tag\") \
             SELECT \"id\", \"price\", \"code\", \"tag\" FROM \"t\""
        );
        // The AUTOINCREMENT counter moves to the new table.
        assert_eq!(
            sql[2],
            "DELETE FROM \"sqlite_sequence\" WHERE \"name\" = 't__tenantry_new'"
        );
        assert_eq!(
            sql[3],
            "INSERT INTO \"sqlite_sequence\" (\"name\", \"seq\") SELECT 't__tenantry_new', \
             \"seq\" FROM \"sqlite_sequence\" WHERE \"name\" = 't'"
        );
        assert_eq!(sql[4], "DROP TABLE \"t\"");
        assert_eq!(sql[5], "ALTER TABLE \"t__tenantry_new\" RENAME TO \"t\"");
        assert!(sql[6].contains("\"ix_t_tag\""), "{sql:?}");
        assert_eq!(
            sql.last().map(String::as_str),
            Some(SQLITE_FOREIGN_KEY_CHECK)
        );
        // Without the table's definition a rebuild is refused, not guessed.
        let unknown = Replay {
            snapshot: None,
            unique_origin: BTreeMap::new(),
        };
        assert!(renderer(Backend::Sqlite)
            .render_at(&alter, &unknown)
            .is_err());
        // A plain column drop stays in place; an indexed one is a rebuild.
        let drop = |c: &str| {
            op(&format!(
                r#"{{ "op": "drop_column", "table": "t", "column": "{c}" }}"#
            ))
        };
        let before = before();
        assert!(!sqlite_rebuilds(&drop("price"), before.snapshot(), true));
        assert!(sqlite_rebuilds(&drop("tag"), before.snapshot(), true));
        assert!(sqlite_rebuilds(&drop("code"), before.snapshot(), true));
    }

    #[test]
    fn alter_column_changes_only_what_differs() {
        let before = before();
        // Unique off and the default dropped.
        let alter = op(r#"{ "op": "alter_column", "table": "t",
            "column": { "name": "code", "type": "varchar", "max_length": 10 } }"#);
        let pg = renderer(Backend::Postgres)
            .render_at(&alter, &before)
            .unwrap();
        assert_eq!(
            pg,
            [
                "ALTER TABLE \"t\" ALTER COLUMN \"code\" DROP DEFAULT",
                "ALTER TABLE \"t\" DROP CONSTRAINT \"t_code_key\""
            ]
        );
        let my = renderer(Backend::MySql).render_at(&alter, &before).unwrap();
        assert_eq!(my.len(), 2, "{my:?}");
        assert!(my[0].starts_with("ALTER TABLE `t` MODIFY COLUMN `code` varchar(10) NOT NULL"));
        assert!(
            !my[0].contains("UNIQUE") && !my[0].contains("DEFAULT"),
            "{my:?}"
        );
        assert_eq!(my[1], "DROP INDEX `code` ON `t`");
        // A default-only change on PostgreSQL sets the default and nothing else.
        let default = op(r#"{ "op": "alter_column", "table": "t",
            "column": { "name": "code", "type": "varchar", "max_length": 10, "unique": true,
                        "default": "y" } }"#);
        let pg = renderer(Backend::Postgres)
            .render_at(&default, &before)
            .unwrap();
        assert_eq!(
            pg,
            ["ALTER TABLE \"t\" ALTER COLUMN \"code\" SET DEFAULT 'y'"]
        );
        // Unchanged: nothing at all.
        let same = op(r#"{ "op": "alter_column", "table": "t",
            "column": { "name": "tag", "type": "varchar", "max_length": 10, "null": true } }"#);
        let pg = renderer(Backend::Postgres)
            .render_at(&same, &before)
            .unwrap();
        assert!(pg.is_empty(), "{pg:?}");
    }

    #[test]
    fn unique_off_drops_the_name_given_before_renames() {
        let mut replay = before();
        for json in [
            r#"{ "op": "rename_table", "from": "t", "to": "u" }"#,
            r#"{ "op": "rename_column", "table": "u", "from": "code", "to": "sku" }"#,
        ] {
            replay.apply(&op(json));
        }
        let off = op(r#"{ "op": "alter_column", "table": "u",
            "column": { "name": "sku", "type": "varchar", "max_length": 10, "default": "x" } }"#);
        let pg = renderer(Backend::Postgres)
            .render_at(&off, &replay)
            .unwrap();
        assert_eq!(pg, ["ALTER TABLE \"u\" DROP CONSTRAINT \"t_code_key\""]);
        let my = renderer(Backend::MySql).render_at(&off, &replay).unwrap();
        assert_eq!(my[1], "DROP INDEX `code` ON `u`");
        // PostgreSQL shortens the longer part first to fit 63 bytes.
        let long = "a".repeat(60);
        let name = postgres_constraint_name(&long, "code", "key");
        assert_eq!(name.len(), 63);
        assert!(name.ends_with("_code_key"), "{name}");
    }

    #[test]
    fn mysql_column_changes_carry_their_algorithm_guard() {
        let before = before();
        let render = |json: &str| {
            renderer(Backend::MySql)
                .render_at(&op(json), &before)
                .unwrap()
        };
        let add = render(
            r#"{ "op": "add_column", "table": "t",
                "column": { "name": "n", "type": "integer", "default": 0 } }"#,
        );
        assert!(add[0].ends_with(", ALGORITHM=INSTANT"), "{add:?}");
        let rename =
            render(r#"{ "op": "rename_column", "table": "t", "from": "price", "to": "p" }"#);
        assert!(rename[0].ends_with(", ALGORITHM=INSTANT"), "{rename:?}");
        let plain = render(r#"{ "op": "drop_column", "table": "t", "column": "price" }"#);
        assert!(plain[0].ends_with(", ALGORITHM=INSTANT"), "{plain:?}");
        let indexed = render(r#"{ "op": "drop_column", "table": "t", "column": "tag" }"#);
        assert!(indexed[0].ends_with(", ALGORITHM=NOCOPY"), "{indexed:?}");
        // PostgreSQL and SQLite have no such clause.
        let pg = renderer(Backend::Postgres)
            .render_at(
                &op(r#"{ "op": "drop_column", "table": "t", "column": "price" }"#),
                &before,
            )
            .unwrap();
        assert!(!pg[0].contains("ALGORITHM"), "{pg:?}");
    }
}
