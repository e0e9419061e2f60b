//! Schemas as each backend has them: PostgreSQL schemas, MySQL databases, SQLite files.
//!
//! sea-query has no `CREATE SCHEMA` / `CREATE DATABASE` statement, so these few statements
//! are spelled here from fixed keywords, with the identifier quoted and escaped by the
//! backend's sea-query builder (`QuotedBuilder::prepare_iden`). The identifier is always a
//! validated [`SchemaName`], on MySQL inside this application's tenant namespace
//! (`<namespace>$<schema>`, see [`crate::naming`]).

use sea_query::{
    DynIden, Expr, ExprTrait, LikeExpr, MysqlQueryBuilder, PostgresQueryBuilder, Query,
    QuotedBuilder,
};

use crate::{
    backend::Backend,
    database::{Database, Pools},
    error::{Error, Result},
    schema_name::SchemaName,
    target::{Conn, Target},
};

/// A statement on a schema, rendered by the backend's builder.
pub(crate) struct NamespaceStatement {
    sql: String,
}

impl NamespaceStatement {
    /// `CREATE SCHEMA` (PostgreSQL) or `CREATE DATABASE … utf8mb4_bin` (MySQL, the database
    /// `<namespace>$<schema>`, see [`crate::naming`]). A schema name that does not fit the
    /// namespace is [`Error::InvalidSchemaName`].
    pub(crate) fn create(
        database: &Database,
        schema: &SchemaName,
        if_not_exists: bool,
    ) -> Result<Self> {
        let backend = database.backend();
        let mut sql = String::from(match backend {
            Backend::MySql => "CREATE DATABASE ",
            _ => "CREATE SCHEMA ",
        });
        if if_not_exists {
            sql.push_str("IF NOT EXISTS ");
        }
        push_iden(database, schema, &mut sql)?;
        if backend == Backend::MySql {
            sql.push_str(" CHARACTER SET utf8mb4 COLLATE utf8mb4_bin");
        }
        Ok(NamespaceStatement { sql })
    }

    /// `DROP SCHEMA … [CASCADE]` (PostgreSQL) or `DROP DATABASE` (MySQL, the database
    /// `<namespace>$<schema>`: never the default database nor another namespace's).
    pub(crate) fn drop(
        database: &Database,
        schema: &SchemaName,
        cascade: bool,
        if_exists: bool,
    ) -> Result<Self> {
        let backend = database.backend();
        let mut sql = String::from(match backend {
            Backend::MySql => "DROP DATABASE ",
            _ => "DROP SCHEMA ",
        });
        if if_exists {
            sql.push_str("IF EXISTS ");
        }
        push_iden(database, schema, &mut sql)?;
        if backend == Backend::Postgres {
            sql.push_str(if cascade { " CASCADE" } else { " RESTRICT" });
        }
        Ok(NamespaceStatement { sql })
    }

    /// PostgreSQL: `LOCK TABLE "<schema>"."<table>", … IN ACCESS EXCLUSIVE MODE`, every
    /// name quoted by the builder (the table names are the catalog's, of this schema).
    pub(crate) fn lock_tables(schema: &SchemaName, tables: &[String]) -> Self {
        let mut sql = String::from("LOCK TABLE ");
        for (i, table) in tables.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            PostgresQueryBuilder.prepare_iden(&DynIden::from(schema.to_string()), &mut sql);
            sql.push('.');
            PostgresQueryBuilder.prepare_iden(&DynIden::from(table.clone()), &mut sql);
        }
        sql.push_str(" IN ACCESS EXCLUSIVE MODE");
        NamespaceStatement { sql }
    }

    /// `DROP DATABASE` of a legacy MySQL tenant database, named exactly as the schema (made
    /// before tenant namespaces existed): only [`crate::contrib::move_legacy_mysql_tenants`]
    /// uses it, once the database is empty.
    pub(crate) fn drop_legacy_mysql(schema: &SchemaName) -> Self {
        let mut sql = String::from("DROP DATABASE ");
        MysqlQueryBuilder.prepare_iden(&DynIden::from(schema.to_string()), &mut sql);
        NamespaceStatement { sql }
    }

    /// `CREATE DATABASE` of a whole database on a PostgreSQL or MySQL server (MySQL:
    /// `utf8mb4_bin`, as tenant databases), for [`crate::testing`].
    pub(crate) fn create_database(backend: Backend, name: &SchemaName) -> Self {
        let mut sql = String::from("CREATE DATABASE ");
        push_server_iden(backend, name, &mut sql);
        if backend == Backend::MySql {
            sql.push_str(" CHARACTER SET utf8mb4 COLLATE utf8mb4_bin");
        }
        NamespaceStatement { sql }
    }

    /// `DROP DATABASE IF EXISTS` of a whole database (PostgreSQL: `WITH (FORCE)`, closing
    /// connections a test left open), for [`crate::testing`].
    pub(crate) fn drop_database(backend: Backend, name: &SchemaName) -> Self {
        let mut sql = String::from("DROP DATABASE IF EXISTS ");
        push_server_iden(backend, name, &mut sql);
        if backend == Backend::Postgres {
            sql.push_str(" WITH (FORCE)");
        }
        NamespaceStatement { sql }
    }

    pub(crate) fn sql(&self) -> &str {
        &self.sql
    }
}

fn push_server_iden(backend: Backend, name: &SchemaName, sql: &mut String) {
    let iden = DynIden::from(name.to_string());
    match backend {
        Backend::MySql => MysqlQueryBuilder.prepare_iden(&iden, sql),
        _ => PostgresQueryBuilder.prepare_iden(&iden, sql),
    }
}

fn push_iden(database: &Database, schema: &SchemaName, sql: &mut String) -> Result<()> {
    let iden = DynIden::from(database.server_schema_name(schema)?);
    match database.backend() {
        Backend::MySql => MysqlQueryBuilder.prepare_iden(&iden, sql),
        _ => PostgresQueryBuilder.prepare_iden(&iden, sql),
    }
    Ok(())
}

/// PostgreSQL: `FROM "pg_catalog"."pg_class" AS "c" JOIN "pg_catalog"."pg_namespace" AS "n"
/// ON "n"."oid" = "c"."relnamespace" WHERE "n"."nspname" = $1`, the relations of schema
/// `namespace` (aliased `c`), for the caller's columns and conditions.
pub(crate) fn pg_relations_in(namespace: &str) -> sea_query::SelectStatement {
    Query::select()
        .from_as(("pg_catalog", "pg_class"), "c")
        .join_as(
            sea_query::JoinType::InnerJoin,
            ("pg_catalog", "pg_namespace"),
            "n",
            Expr::col(("n", "oid")).equals(("c", "relnamespace")),
        )
        .and_where(Expr::col(("n", "nspname")).eq(namespace))
        .to_owned()
}

/// Whether `schema` exists on `database`.
pub(crate) async fn exists(database: &Database, schema: &SchemaName) -> Result<bool> {
    if let Pools::Sqlite(store) = database.pools() {
        return Ok(store.exists(schema));
    }
    let name = database.server_schema_name(schema)?;
    let select = exists_statement(database.backend(), &name);
    let target = Target {
        conn: Conn::Database(database.clone()),
        schema: None,
    };
    holds_exactly(&target.fetch_unchecked(&select).await?, &name)
}

/// The catalog query that returns a row when the server schema `name` exists (PostgreSQL,
/// MySQL); see [`holds_exactly`].
pub(crate) fn exists_statement(backend: Backend, name: &str) -> sea_query::SelectStatement {
    let (table, column) = catalog(backend);
    Query::select()
        .column(column)
        .from(table)
        .and_where(Expr::col(column).eq(name))
        .to_owned()
}

/// Whether the rows of an [`exists_statement`] name exactly `name`: MySQL's catalog may
/// compare without case, so only the exact name counts.
pub(crate) fn holds_exactly(rows: &[crate::row::Row], name: &str) -> Result<bool> {
    for row in rows {
        let found: String = row.get(0).map_err(Error::Database)?;
        if found == name {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Every tenant schema of `database` (names that are valid [`SchemaName`]s), sorted. On
/// PostgreSQL every schema of the database; on MySQL only the databases of this
/// application's tenant namespace (`<namespace>$<schema>`, see [`crate::naming`]): never the
/// default database, another application's tenants or an unrelated database.
pub(crate) async fn list(database: &Database) -> Result<Vec<SchemaName>> {
    if let Pools::Sqlite(store) = database.pools() {
        return store.list();
    }
    let (table, column) = catalog(database.backend());
    let mut select = Query::select();
    select.column(column).from(table);
    match database.backend() {
        Backend::MySql => {
            let pattern = database.tenant_namespace_rules().like_pattern()?;
            select.and_where(Expr::col(column).like(LikeExpr::new(pattern).escape('\\')));
        }
        // An extension's own schema (Citus's `citus` and `citus_internal`, pg_cron's `cron`)
        // is no tenant.
        _ => {
            select.and_where(Expr::exists(extension_member()).not());
        }
    }
    let target = Target {
        conn: Conn::Database(database.clone()),
        schema: None,
    };
    let namespace = database.tenant_namespace_rules();
    let mut names = Vec::new();
    for row in target.fetch_unchecked(&select).await? {
        let name: String = row.get(0).map_err(Error::Database)?;
        if let Some(schema) = namespace.schema_of(&name) {
            names.push(schema);
        }
    }
    names.sort();
    names.dedup();
    Ok(names)
}

/// PostgreSQL: `SELECT 1 FROM pg_depend WHERE classid = 'pg_namespace'::regclass AND objid =
/// pg_namespace.oid AND deptype = 'e'`, a row when the schema belongs to an extension.
fn extension_member() -> sea_query::SelectStatement {
    use sea_query::Func;
    Query::select()
        .expr(Expr::val(1))
        .from(("pg_catalog", "pg_depend"))
        .and_where(Expr::col(("pg_depend", "classid")).eq(Func::cast_as(
            Expr::val("pg_catalog.pg_namespace"),
            "regclass",
        )))
        .and_where(Expr::col(("pg_depend", "objid")).equals(("pg_namespace", "oid")))
        .and_where(Expr::col(("pg_depend", "deptype")).eq("e"))
        .to_owned()
}

fn catalog(backend: Backend) -> ((&'static str, &'static str), &'static str) {
    match backend {
        Backend::MySql => (("information_schema", "SCHEMATA"), "SCHEMA_NAME"),
        _ => (("pg_catalog", "pg_namespace"), "nspname"),
    }
}

/// Whether `schema` holds any table.
pub(crate) async fn has_tables(database: &Database, schema: &SchemaName) -> Result<bool> {
    let (select, target_schema) = match database.backend() {
        Backend::Sqlite => (
            Query::select()
                .expr(Expr::val(1))
                .from("sqlite_master")
                .and_where(Expr::col("type").eq("table"))
                .limit(1)
                .to_owned(),
            Some(schema.clone()),
        ),
        Backend::MySql => {
            // The exact name, compared here: the catalog may compare without case.
            let name = database.server_schema_name(schema)?;
            let select = Query::select()
                .column("TABLE_SCHEMA")
                .from(("information_schema", "TABLES"))
                .and_where(Expr::col("TABLE_SCHEMA").eq(name.as_str()))
                .group_by_col("TABLE_SCHEMA")
                .to_owned();
            let target = Target {
                conn: Conn::Database(database.clone()),
                schema: None,
            };
            for row in target.fetch_unchecked(&select).await? {
                let found: String = row.get(0).map_err(Error::Database)?;
                if found == name {
                    return Ok(true);
                }
            }
            return Ok(false);
        }
        Backend::Postgres => (
            Query::select()
                .expr(Expr::val(1))
                .from(("pg_catalog", "pg_tables"))
                .and_where(Expr::col("schemaname").eq(schema.as_str()))
                .limit(1)
                .to_owned(),
            None,
        ),
    };
    let target = Target {
        conn: Conn::Database(database.clone()),
        schema: target_schema,
    };
    Ok(!target.fetch_unchecked(&select).await?.is_empty())
}

/// The names of the tables in `schema` (`None`: the shared schema), sorted.
pub(crate) async fn table_names(
    database: &Database,
    schema: Option<&SchemaName>,
) -> Result<Vec<String>> {
    let (select, target_schema) = match database.backend() {
        Backend::Sqlite => (
            Query::select()
                .column("name")
                .from("sqlite_master")
                .and_where(Expr::col("type").eq("table"))
                .to_owned(),
            schema.cloned(),
        ),
        Backend::MySql => {
            let name = match schema {
                Some(schema) => database.server_schema_name(schema)?,
                None => database
                    .default_namespace()
                    .map(|ns| ns.to_string())
                    .unwrap_or_default(),
            };
            (
                Query::select()
                    .column("TABLE_NAME")
                    .from(("information_schema", "TABLES"))
                    .and_where(Expr::col("TABLE_SCHEMA").eq(name))
                    .to_owned(),
                None,
            )
        }
        Backend::Postgres => {
            let name = match schema {
                Some(schema) => schema.to_string(),
                None => database
                    .default_namespace()
                    .map(|ns| ns.to_string())
                    .unwrap_or_default(),
            };
            (
                Query::select()
                    .column("tablename")
                    .from(("pg_catalog", "pg_tables"))
                    .and_where(Expr::col("schemaname").eq(name))
                    .to_owned(),
                None,
            )
        }
    };
    let target = Target {
        conn: Conn::Database(database.clone()),
        schema: target_schema,
    };
    let mut names = target
        .fetch_unchecked(&select)
        .await?
        .iter()
        .map(|row| row.get::<String>(0).map_err(Error::Database))
        .collect::<Result<Vec<_>>>()?;
    names.sort();
    Ok(names)
}

/// Whether `error` is a `CREATE DATABASE` of a database that exists: PostgreSQL 42P04 (or a
/// unique violation on `pg_database` when two creations race), MySQL 1007.
pub(crate) fn is_database_exists(backend: Backend, error: &Error) -> bool {
    match error {
        Error::UniqueViolation { .. } => backend == Backend::Postgres,
        Error::Database(sqlx::Error::Database(db)) => match backend {
            Backend::Postgres => db.code().as_deref() == Some("42P04"),
            Backend::MySql => db
                .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
                .is_some_and(|e| e.number() == 1007),
            Backend::Sqlite => false,
        },
        _ => false,
    }
}
