//! CREATE / DROP TABLE for models, with one dialect per backend.
//!
//! Each backend's [`Dialect`] overrides only what differs from the default mapping.

use sea_query::{
    ColumnDef, ForeignKey, ForeignKeyAction, Index, MysqlQueryBuilder, PostgresQueryBuilder,
    SqliteQueryBuilder, Table, TableCreateStatement, TableName,
};

use crate::{
    backend::Backend,
    database::Database,
    error::Result,
    field::SqlType,
    model::{ColumnMeta, ModelMeta, OnDelete},
    schema_name::SchemaName,
    target::{table_name, Conn, Target},
};

/// How a backend spells columns and tables. The default bodies are the common ground.
trait Dialect {
    /// The column type of `column`.
    fn column_type(&self, column: &ColumnMeta, def: &mut ColumnDef) {
        match column.sql_type {
            SqlType::Integer => def.integer(),
            SqlType::BigInteger => def.big_integer(),
            SqlType::Varchar => def.string_len(column.max_length.unwrap_or(255)),
            SqlType::Text => def.text(),
            SqlType::Boolean => def.boolean(),
            SqlType::Double => def.double(),
            SqlType::Timestamp => def.timestamp_with_time_zone(),
            SqlType::Date => def.date(),
            SqlType::Uuid => def.uuid(),
            SqlType::Json => def.json(),
        };
    }

    /// Table-wide options.
    fn table_options(&self, _table: &mut TableCreateStatement) {}

    /// Whether indexes are declared inside CREATE TABLE (so that `IF NOT EXISTS` covers
    /// them) rather than by separate CREATE INDEX statements.
    fn inline_indexes(&self) -> bool {
        false
    }
}

struct Postgres;
struct MySql;
struct Sqlite;

impl Dialect for Postgres {
    fn column_type(&self, column: &ColumnMeta, def: &mut ColumnDef) {
        match column.sql_type {
            SqlType::Json => drop(def.json_binary()),
            _ => default_column_type(self, column, def),
        };
    }
}

impl Dialect for MySql {
    fn column_type(&self, column: &ColumnMeta, def: &mut ColumnDef) {
        match column.sql_type {
            // MySQL's TIMESTAMP ends in 2038; DATETIME(6) holds the UTC instant.
            SqlType::Timestamp => drop(def.custom("DATETIME(6)")),
            _ => default_column_type(self, column, def),
        };
    }

    /// `utf8mb4_bin` makes `=` and `LIKE` case-sensitive, as on the other backends.
    fn table_options(&self, table: &mut TableCreateStatement) {
        table
            .engine("InnoDB")
            .character_set("utf8mb4")
            .collate("utf8mb4_bin");
    }

    /// MySQL has no `CREATE INDEX IF NOT EXISTS` in sea-query.
    fn inline_indexes(&self) -> bool {
        true
    }
}

impl Dialect for Sqlite {
    fn column_type(&self, column: &ColumnMeta, def: &mut ColumnDef) {
        match column.sql_type {
            // Only `INTEGER PRIMARY KEY` is SQLite's rowid alias.
            SqlType::Integer | SqlType::BigInteger if column.auto_increment => drop(def.integer()),
            SqlType::Uuid => drop(def.blob()),
            SqlType::Json | SqlType::Timestamp | SqlType::Date => drop(def.text()),
            _ => default_column_type(self, column, def),
        };
    }
}

struct Common;
impl Dialect for Common {}

fn default_column_type(_dialect: &dyn Dialect, column: &ColumnMeta, def: &mut ColumnDef) {
    Common.column_type(column, def)
}

fn dialect(backend: Backend) -> &'static dyn Dialect {
    match backend {
        Backend::Postgres => &Postgres,
        Backend::MySql => &MySql,
        Backend::Sqlite => &Sqlite,
    }
}

fn column_def(dialect: &dyn Dialect, column: &ColumnMeta) -> ColumnDef {
    let mut def = ColumnDef::new(column.name);
    dialect.column_type(column, &mut def);
    if column.nullable {
        def.null();
    } else {
        def.not_null();
    }
    if column.primary_key {
        def.primary_key();
    }
    if column.auto_increment {
        def.auto_increment();
    }
    if column.unique && !column.primary_key {
        def.unique_key();
    }
    if let Some(default) = column.default {
        def.default(default());
    }
    def
}

fn on_delete(rule: OnDelete) -> ForeignKeyAction {
    match rule {
        OnDelete::Cascade => ForeignKeyAction::Cascade,
        OnDelete::SetNull => ForeignKeyAction::SetNull,
        OnDelete::Restrict => ForeignKeyAction::Restrict,
    }
}

/// The CREATE TABLE of `meta` in `schema`. A foreign key to a tenant model points into the
/// same schema; one to a shared model points into the default schema. SQLite cannot enforce
/// a key across files, nor can MySQL's `REFERENCES` (as sea-query renders it) name another
/// database, so on those two that cross-schema constraint is left out.
pub(crate) fn create_table(
    database: &Database,
    schema: Option<&SchemaName>,
    meta: &ModelMeta,
) -> TableCreateStatement {
    let backend = database.backend();
    let dialect = dialect(backend);
    let table = table_name(database, schema, meta.table);
    let mut create = Table::create();
    create.table(table.clone()).if_not_exists();
    dialect.table_options(&mut create);
    for column in meta.columns {
        create.col(column_def(dialect, column));
        let Some(fk) = column.foreign_key else {
            continue;
        };
        let target = (fk.target)();
        let target_schema = if target.shared { None } else { schema };
        let crosses_files = target_schema != schema;
        if crosses_files && !backend.capabilities().cross_schema_foreign_keys {
            continue;
        }
        let reference = if backend.capabilities().qualified_foreign_key_references {
            table_name(database, target_schema, target.table)
        } else {
            // Same schema: a bare name resolves in the referencing table's own database.
            TableName(None, target.table.into())
        };
        create.foreign_key(
            ForeignKey::create()
                .from(table.clone(), column.name)
                .to(reference, target.primary_key_column().name)
                .on_delete(on_delete(fk.on_delete)),
        );
    }
    if dialect.inline_indexes() {
        for column in indexed(meta) {
            create.index(
                Index::create()
                    .name(index_name(meta, column))
                    .col(column.name),
            );
        }
    }
    create.to_owned()
}

fn indexed(meta: &ModelMeta) -> impl Iterator<Item = &ColumnMeta> {
    meta.columns
        .iter()
        .filter(|c| c.index && !c.unique && !c.primary_key)
}

fn index_name(meta: &ModelMeta, column: &ColumnMeta) -> String {
    let mut name = String::from("ix_");
    name.push_str(meta.table);
    name.push('_');
    name.push_str(column.name);
    name
}

/// The CREATE INDEX statements of `meta`'s indexed columns.
fn create_indexes(
    database: &Database,
    schema: Option<&SchemaName>,
    meta: &ModelMeta,
) -> Vec<String> {
    let backend = database.backend();
    if dialect(backend).inline_indexes() {
        return Vec::new();
    }
    indexed(meta)
        .map(|column| {
            let index = Index::create()
                .name(index_name(meta, column))
                .table(table_name(database, schema, meta.table))
                .col(column.name)
                .if_not_exists()
                .to_owned();
            match backend {
                Backend::Postgres => index.to_string(PostgresQueryBuilder),
                Backend::MySql => index.to_string(MysqlQueryBuilder),
                Backend::Sqlite => index.to_string(SqliteQueryBuilder),
            }
        })
        .collect()
}

fn render_create(backend: Backend, create: &TableCreateStatement) -> String {
    match backend {
        Backend::Postgres => create.to_string(PostgresQueryBuilder),
        Backend::MySql => create.to_string(MysqlQueryBuilder),
        Backend::Sqlite => create.to_string(SqliteQueryBuilder),
    }
}

/// The DDL that creates `models` in `schema`, parents first.
pub(crate) fn create_statements(
    database: &Database,
    schema: Option<&SchemaName>,
    models: &[&'static ModelMeta],
) -> Vec<String> {
    let backend = database.backend();
    let mut statements = Vec::new();
    for meta in creation_order(models) {
        statements.push(render_create(
            backend,
            &create_table(database, schema, meta),
        ));
        statements.extend(create_indexes(database, schema, meta));
    }
    statements
}

/// The DDL that drops `models` from `schema`, children first.
pub(crate) fn drop_statements(
    database: &Database,
    schema: Option<&SchemaName>,
    models: &[&'static ModelMeta],
) -> Vec<String> {
    let backend = database.backend();
    let mut order = creation_order(models);
    order.reverse();
    order
        .into_iter()
        .map(|meta| {
            let drop = Table::drop()
                .table(table_name(database, schema, meta.table))
                .if_exists()
                .to_owned();
            match backend {
                Backend::Postgres => drop.to_string(PostgresQueryBuilder),
                Backend::MySql => drop.to_string(MysqlQueryBuilder),
                Backend::Sqlite => drop.to_string(SqliteQueryBuilder),
            }
        })
        .collect()
}

pub(crate) async fn create_tables(
    database: &Database,
    schema: Option<&SchemaName>,
    models: &[&'static ModelMeta],
) -> Result<()> {
    run(
        database,
        schema,
        create_statements(database, schema, models),
    )
    .await
}

pub(crate) async fn drop_tables(
    database: &Database,
    schema: Option<&SchemaName>,
    models: &[&'static ModelMeta],
) -> Result<()> {
    run(database, schema, drop_statements(database, schema, models)).await
}

async fn run(
    database: &Database,
    schema: Option<&SchemaName>,
    statements: Vec<String>,
) -> Result<()> {
    let target = Target {
        conn: Conn::Database(database.clone()),
        schema: schema.cloned(),
    };
    for sql in &statements {
        target.execute_ddl(sql).await?;
    }
    Ok(())
}

/// `models` ordered so that every model comes after the models it references (among
/// `models`); self-references and cycles do not loop.
pub(crate) fn creation_order(models: &[&'static ModelMeta]) -> Vec<&'static ModelMeta> {
    fn visit(
        meta: &'static ModelMeta,
        models: &[&'static ModelMeta],
        seen: &mut Vec<&'static ModelMeta>,
        out: &mut Vec<&'static ModelMeta>,
    ) {
        if seen.contains(&meta) {
            return;
        }
        seen.push(meta);
        for dep in meta.dependencies() {
            if models.contains(&dep) {
                visit(dep, models, seen, out);
            }
        }
        out.push(meta);
    }
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for meta in models {
        visit(meta, models, &mut seen, &mut out);
    }
    out
}
