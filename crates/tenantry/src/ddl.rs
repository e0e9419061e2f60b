//! CREATE / DROP TABLE for models, with one dialect per backend.
//!
//! Each backend's [`Dialect`] overrides only what differs from the default mapping.

use sea_query::{
    Alias, ColumnDef, ForeignKey, ForeignKeyAction, Index, MysqlQueryBuilder, PostgresQueryBuilder,
    SqliteQueryBuilder, Table, TableCreateStatement, TableName, Value,
};

use crate::{
    backend::Backend,
    database::Database,
    error::Result,
    field::SqlType,
    model::{CheckMeta, ColumnMeta, ModelMeta, OnDelete},
    naming::table_name,
    schema_name::SchemaName,
    target::{Conn, Target},
};

/// What decides a column's type: its storage class, length and whether the database
/// assigns it. Models ([`ColumnMeta`]) and migrations both describe columns this way.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ColumnShape {
    pub(crate) sql_type: SqlType,
    pub(crate) max_length: Option<u32>,
    pub(crate) auto_increment: bool,
    /// A decimal's precision and scale.
    pub(crate) numeric: Option<(u32, u32)>,
}

impl From<&ColumnMeta> for ColumnShape {
    fn from(column: &ColumnMeta) -> Self {
        ColumnShape {
            sql_type: column.sql_type,
            max_length: column.max_length,
            auto_increment: column.auto_increment,
            numeric: column.numeric(),
        }
    }
}

/// How a backend spells columns and tables. The default bodies are the common ground.
pub(crate) trait Dialect {
    /// The column type of `column`.
    fn column_type(&self, column: ColumnShape, def: &mut ColumnDef) {
        match column.sql_type {
            SqlType::Integer => def.integer(),
            SqlType::BigInteger => def.big_integer(),
            SqlType::SmallInteger => def.small_integer(),
            SqlType::Float => def.float(),
            SqlType::Bytes => def.blob(),
            SqlType::DateTime => def.date_time(),
            SqlType::Time => def.time(),
            SqlType::Varchar => def.string_len(column.max_length.unwrap_or(255)),
            SqlType::Text => def.text(),
            SqlType::Boolean => def.boolean(),
            SqlType::Double => def.double(),
            SqlType::Timestamp => def.timestamp_with_time_zone(),
            SqlType::Date => def.date(),
            SqlType::Uuid => def.uuid(),
            SqlType::Json => def.json(),
            // The derive requires both bounds; without them the backend's own default.
            SqlType::Decimal => match column.numeric {
                Some((precision, scale)) => def.decimal_len(precision, scale),
                None => def.decimal(),
            },
        };
    }

    /// A column's default as written in its definition. A decimal is written at the
    /// column's scale (`0.00`, not `0`: the spelling of a generated migration, and what
    /// MySQL keeps in its catalog, so that a schema built from the models and one built by
    /// migrations agree).
    fn default_value(&self, column: ColumnShape, value: Value) -> Value {
        match value {
            Value::Decimal(Some(decimal)) if column.sql_type == SqlType::Decimal => {
                Value::Decimal(Some(at_scale(decimal, column)))
            }
            other => other,
        }
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
    fn column_type(&self, column: ColumnShape, def: &mut ColumnDef) {
        match column.sql_type {
            SqlType::Json => drop(def.json_binary()),
            _ => default_column_type(self, column, def),
        };
    }
}

impl Dialect for MySql {
    fn column_type(&self, column: ColumnShape, def: &mut ColumnDef) {
        match column.sql_type {
            // MySQL's TIMESTAMP ends in 2038; DATETIME(6) holds the UTC instant.
            SqlType::Timestamp | SqlType::DateTime => drop(def.custom("DATETIME(6)")),
            SqlType::Time => drop(def.custom("TIME(6)")),
            // BLOB holds 64 KiB.
            SqlType::Bytes => drop(def.custom("LONGBLOB")),
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
    fn column_type(&self, column: ColumnShape, def: &mut ColumnDef) {
        match column.sql_type {
            // Only `INTEGER PRIMARY KEY` is SQLite's rowid alias.
            SqlType::Integer | SqlType::BigInteger if column.auto_increment => drop(def.integer()),
            SqlType::Uuid => drop(def.blob()),
            SqlType::Json
            | SqlType::Timestamp
            | SqlType::Date
            | SqlType::DateTime
            | SqlType::Time => drop(def.text()),
            // No exact decimal type: the exact text, ordered by value by tenantry's
            // collation (see `crate::decimal`). `NUMERIC` affinity would store floats.
            SqlType::Decimal => drop(def.text().extra(crate::decimal::SQLITE_COLLATE)),
            _ => default_column_type(self, column, def),
        };
    }

    /// A decimal column is TEXT here, where a bare number default is stored as its REAL's
    /// text (`DEFAULT 0.00` fills in `'0.0'`): the default is the quoted text at the
    /// column's scale, the exact text tenantry writes.
    fn default_value(&self, column: ColumnShape, value: Value) -> Value {
        match value {
            Value::Decimal(Some(decimal)) if column.sql_type == SqlType::Decimal => {
                Value::String(Some(at_scale(decimal, column).to_string()))
            }
            other => other,
        }
    }
}

/// `decimal` at the column's scale, when the column has one.
fn at_scale(mut decimal: rust_decimal::Decimal, column: ColumnShape) -> rust_decimal::Decimal {
    if let Some((_, scale)) = column.numeric {
        decimal.rescale(scale);
    }
    decimal
}

struct Common;
impl Dialect for Common {}

fn default_column_type(_dialect: &dyn Dialect, column: ColumnShape, def: &mut ColumnDef) {
    Common.column_type(column, def)
}

pub(crate) fn dialect(backend: Backend) -> &'static dyn Dialect {
    match backend {
        Backend::Postgres => &Postgres,
        Backend::MySql => &MySql,
        Backend::Sqlite => &Sqlite,
    }
}

fn column_def(database: &Database, schema: Option<&SchemaName>, column: &ColumnMeta) -> ColumnDef {
    let dialect = dialect(database.backend());
    let mut def = ColumnDef::new(column.name);
    dialect.column_type(column.into(), &mut def);
    if let Some(ty) = column.enum_type {
        enum_column(database, schema, ty.name, &mut def);
    }
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
        def.default(dialect.default_value(column.into(), default()));
    }
    def
}

/// On PostgreSQL a column of an enum type has the type of its table's schema; elsewhere
/// it stays the `VARCHAR` its storage class gives.
pub(crate) fn enum_column(
    database: &Database,
    schema: Option<&SchemaName>,
    ty: &str,
    def: &mut ColumnDef,
) {
    if database.backend() == Backend::Postgres {
        def.custom(Alias::new(crate::enum_types::column_type(
            database,
            schema,
            ty.to_owned(),
        )));
    }
}

pub(crate) fn on_delete(rule: OnDelete) -> ForeignKeyAction {
    match rule {
        OnDelete::Cascade => ForeignKeyAction::Cascade,
        OnDelete::SetNull => ForeignKeyAction::SetNull,
        OnDelete::Restrict => ForeignKeyAction::Restrict,
    }
}

/// The CREATE TABLE of `meta` in `schema`. Foreign keys are named by [`foreign_key_name`].
/// A foreign key to a tenant model points into the same schema; one to a shared model
/// points into the default schema. SQLite cannot enforce a key across files, nor can
/// MySQL's `REFERENCES` (as sea-query renders it) name another database, so on those two
/// that cross-schema constraint is left out. Nor can a tenant's table in a
/// [`Directory`](crate::Directory) database reference the shared schema, which is in another
/// database: left out there too.
pub(crate) fn create_table(
    database: &Database,
    schema: Option<&SchemaName>,
    meta: &'static ModelMeta,
) -> Result<TableCreateStatement> {
    let backend = database.backend();
    let dialect = dialect(backend);
    let table = table_name(database, schema, meta.table);
    let mut create = Table::create();
    create.table(table.clone()).if_not_exists();
    dialect.table_options(&mut create);
    for column in meta.columns {
        create.col(column_def(database, schema, column));
        let Some(fk) = column.foreign_key else {
            continue;
        };
        let target = (fk.target)();
        let target_schema = if target.shared { None } else { schema };
        let crosses_files = target_schema != schema;
        if crosses_files
            && (!backend.capabilities().cross_schema_foreign_keys
                || database.is_directory_database())
        {
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
                .name(foreign_key_name(meta.table, column.field))
                .from(table.clone(), column.name)
                .to(reference, target.primary_key_column().name)
                .on_delete(on_delete(fk.on_delete)),
        );
    }
    if dialect.inline_indexes() {
        for mut index in indexes(meta) {
            create.index(&mut index);
        }
    }
    for check in meta.checks {
        let condition = sea_query::Expr::cust(check_text(meta, check, backend)?);
        create.check((Alias::new(check.name), condition));
    }
    Ok(create.to_owned())
}

/// A check's condition as `backend` writes it in DDL, rendered by sea-query (columns
/// quoted, constants inlined: DDL binds no parameters). A migration file keeps this text
/// (`migrate::CheckSpec`), so a table built from the models and one built by migrations
/// hold the same condition.
pub(crate) fn check_text(
    meta: &'static ModelMeta,
    check: &CheckMeta,
    backend: Backend,
) -> Result<String> {
    let condition = crate::query::row_condition((check.condition)().0, meta, backend)?;
    // sea-query renders an expression only inside a statement: `SELECT <condition>`.
    let select = sea_query::Query::select()
        .expr(sea_query::Expr::from(condition))
        .to_owned();
    let (_, values) = crate::target::render(backend, &select);
    if let Some(kind) = values.0 .0.iter().find_map(unwritable_constant) {
        return Err(crate::Error::InvalidArgument {
            argument: "check",
            reason: kind,
        });
    }
    let sql = match backend {
        Backend::Postgres => select.to_string(PostgresQueryBuilder),
        Backend::MySql => select.to_string(MysqlQueryBuilder),
        Backend::Sqlite => select.to_string(SqliteQueryBuilder),
    };
    Ok(sql.strip_prefix("SELECT ").unwrap_or(&sql).to_owned())
}

/// Why a check cannot hold `value` as a constant, if it cannot: the DDL writes constants as
/// SQL text, which for these types is not what tenantry stores (a UUID is bytes on SQLite
/// and MySQL, a timestamp or time is text of another form on SQLite and a DATETIME that
/// MariaDB refuses an offset in), so the check would compare unlike values.
fn unwritable_constant(value: &Value) -> Option<&'static str> {
    match value {
        Value::Uuid(_) => Some("a UUID constant in a check (stored as bytes on SQLite and MySQL, it would compare as text)"),
        Value::ChronoDateTimeUtc(_) | Value::ChronoDateTime(_) | Value::ChronoTime(_) => Some(
            "a timestamp or time constant in a check (its text differs from the stored one on SQLite and MySQL)",
        ),
        Value::Bytes(_) | Value::Json(_) => Some("a bytes or JSON constant in a check"),
        _ => None,
    }
}

/// `models` and the junctions generated for their `many_to_many` relations, each once: a
/// list naming a model builds its junction too.
pub(crate) fn with_junctions(models: &[&'static ModelMeta]) -> Vec<&'static ModelMeta> {
    let mut out: Vec<&'static ModelMeta> = Vec::with_capacity(models.len());
    let junctions = models
        .iter()
        .flat_map(|meta| meta.junctions.iter().map(|junction| junction()));
    for meta in models.iter().copied().chain(junctions) {
        if !out.contains(&meta) {
            out.push(meta);
        }
    }
    out
}

/// Refuses two models with one table and different columns (`CREATE TABLE IF NOT EXISTS`
/// would build only the first; two views of one table, with the same columns, are
/// allowed), two indexes with one name, or an index named like a table: on PostgreSQL and
/// SQLite an index name is the schema's, and `CREATE INDEX IF NOT EXISTS` would skip the
/// second index without a word (its table then holds duplicates). `models` are distinct.
fn refuse_name_clashes(models: &[&'static ModelMeta]) -> Result<()> {
    for (i, meta) in models.iter().enumerate() {
        let clash = models[..i]
            .iter()
            .any(|other| other.table == meta.table && other.column_names != meta.column_names);
        if clash {
            return Err(crate::Error::InvalidRelation {
                model: meta.table,
                column: "",
                reason: "two models of one schema with this table and different columns (a generated junction's is <table>_<relation> unless given with table = \"...\")",
            });
        }
    }
    let mut seen: Vec<String> = models.iter().map(|m| m.table.to_owned()).collect();
    let mut checked: Vec<&str> = Vec::new();
    for meta in models {
        // Two views of one table have its indexes once.
        if checked.contains(&meta.table) {
            continue;
        }
        checked.push(meta.table);
        // (the index's name, what the model calls it: its column or its declared name)
        let own = indexed(meta).map(|c| (index_name(meta.table, c.name), c.name));
        let composite = meta.indexes.iter().map(|ix| (ix.name.to_owned(), ix.name));
        for (name, label) in own.chain(composite) {
            if seen.contains(&name) {
                return Err(crate::Error::InvalidRelation {
                    model: meta.table,
                    column: label,
                    reason: "an index named like another index or a table of the models (PostgreSQL and SQLite name indexes per schema): give it another name with name = \"...\"",
                });
            }
            seen.push(name);
        }
    }
    Ok(())
}

/// The columns with an index of their own: `index`, not `unique` (whose constraint is its
/// index) nor the primary key.
pub(crate) fn indexed(meta: &ModelMeta) -> impl Iterator<Item = &'static ColumnMeta> + '_ {
    meta.columns
        .iter()
        .filter(|c| c.index && !c.unique && !c.primary_key)
}

/// The model's indexes, unnamed of table: each indexed column's own (a unique column's is
/// its constraint), then the composite ones.
fn indexes(meta: &ModelMeta) -> impl Iterator<Item = sea_query::IndexCreateStatement> + '_ {
    let own = indexed(meta).map(|c| {
        Index::create()
            .name(index_name(meta.table, c.name))
            .col(c.name)
            .to_owned()
    });
    let composite = meta.indexes.iter().map(|ix| {
        let mut index = Index::create();
        index.name(ix.name);
        for column in ix.columns {
            index.col(*column);
        }
        if ix.unique {
            index.unique();
        }
        index
    });
    own.chain(composite)
}

/// The name of a model's foreign key, `fk_<table>_<field>`: the name a generated migration
/// gives it (`migrate::snapshot`), so that a later generated `drop_foreign_key` finds the
/// key in a schema built from the models as well as in one built by migrations.
pub(crate) fn foreign_key_name(table: &str, field: &str) -> String {
    ["fk_", table, "_", field].concat()
}

/// The name of an indexed column's index, `ix_<table>_<column>` (also what a generated
/// migration names it).
pub(crate) fn index_name(table: &str, column: &str) -> String {
    ["ix_", table, "_", column].concat()
}

/// The CREATE INDEX statements of `meta`'s indexes.
fn create_indexes(
    database: &Database,
    schema: Option<&SchemaName>,
    meta: &ModelMeta,
) -> Vec<String> {
    let backend = database.backend();
    if dialect(backend).inline_indexes() {
        return Vec::new();
    }
    indexes(meta)
        .map(|mut index| {
            index
                .table(table_name(database, schema, meta.table))
                .if_not_exists();
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

/// The DDL that creates `models` in `schema`, parents first; in the shared schema
/// (`schema` `None`) the tenant-only models are left out.
pub(crate) fn create_statements(
    database: &Database,
    schema: Option<&SchemaName>,
    models: &[&'static ModelMeta],
) -> Result<Vec<String>> {
    let backend = database.backend();
    let models = &with_junctions(models);
    refuse_name_clashes(models)?;
    crate::enum_types::of_models(models)?;
    let mut statements = Vec::new();
    // A tenant-only model has no table in the shared schema.
    for meta in creation_order(models)
        .into_iter()
        .filter(|meta| meta.lives_in(schema))
    {
        statements.push(render_create(
            backend,
            &create_table(database, schema, meta)?,
        ));
        statements.extend(create_indexes(database, schema, meta));
    }
    Ok(statements)
}

/// The DDL that drops `models` from `schema`, children first (in the shared schema, the
/// tenant-only models left out: they have no table there).
pub(crate) fn drop_statements(
    database: &Database,
    schema: Option<&SchemaName>,
    models: &[&'static ModelMeta],
) -> Vec<String> {
    let backend = database.backend();
    let mut order = creation_order(&with_junctions(models));
    order.reverse();
    order
        .into_iter()
        .filter(|meta| meta.lives_in(schema))
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
    let statements = create_statements(database, schema, models)?;
    let target = Target {
        conn: Conn::Database(database.clone()),
        schema: schema.cloned(),
    };
    crate::enum_types::ensure(&target, schema, models).await?;
    run(database, schema, statements).await
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
