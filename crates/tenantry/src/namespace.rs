//! Schemas as each backend has them: PostgreSQL schemas, MySQL databases, SQLite files.
//!
//! sea-query has no `CREATE SCHEMA` / `CREATE DATABASE` statement, so these few statements
//! are spelled here from fixed keywords, with the identifier quoted and escaped by the
//! backend's sea-query builder (`QuotedBuilder::prepare_iden`). The identifier is always a
//! validated [`SchemaName`].

use sea_query::{
    DynIden, Expr, ExprTrait, MysqlQueryBuilder, PostgresQueryBuilder, Query, QuotedBuilder,
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
    /// `CREATE SCHEMA` (PostgreSQL) or `CREATE DATABASE … utf8mb4_bin` (MySQL).
    pub(crate) fn create(backend: Backend, schema: &SchemaName, if_not_exists: bool) -> Self {
        let mut sql = String::from(match backend {
            Backend::MySql => "CREATE DATABASE ",
            _ => "CREATE SCHEMA ",
        });
        if if_not_exists {
            sql.push_str("IF NOT EXISTS ");
        }
        push_iden(backend, schema, &mut sql);
        if backend == Backend::MySql {
            sql.push_str(" CHARACTER SET utf8mb4 COLLATE utf8mb4_bin");
        }
        NamespaceStatement { sql }
    }

    /// `DROP SCHEMA … [CASCADE]` (PostgreSQL) or `DROP DATABASE` (MySQL).
    pub(crate) fn drop(
        backend: Backend,
        schema: &SchemaName,
        cascade: bool,
        if_exists: bool,
    ) -> Self {
        let mut sql = String::from(match backend {
            Backend::MySql => "DROP DATABASE ",
            _ => "DROP SCHEMA ",
        });
        if if_exists {
            sql.push_str("IF EXISTS ");
        }
        push_iden(backend, schema, &mut sql);
        if backend == Backend::Postgres {
            sql.push_str(if cascade { " CASCADE" } else { " RESTRICT" });
        }
        NamespaceStatement { sql }
    }

    pub(crate) fn sql(&self) -> &str {
        &self.sql
    }
}

fn push_iden(backend: Backend, schema: &SchemaName, sql: &mut String) {
    let iden: DynIden = schema.clone().into();
    match backend {
        Backend::MySql => MysqlQueryBuilder.prepare_iden(&iden, sql),
        _ => PostgresQueryBuilder.prepare_iden(&iden, sql),
    }
}

/// Whether `schema` exists on `database`.
pub(crate) async fn exists(database: &Database, schema: &SchemaName) -> Result<bool> {
    if let Pools::Sqlite(store) = database.pools() {
        return Ok(store.exists(schema));
    }
    let (table, column) = catalog(database.backend());
    let select = Query::select()
        .column(column)
        .from(table)
        .and_where(Expr::col(column).eq(schema.as_str()))
        .to_owned();
    let target = Target {
        conn: Conn::Database(database.clone()),
        schema: None,
    };
    Ok(!target.fetch_unchecked(&select).await?.is_empty())
}

/// Every schema of `database` whose name is a valid [`SchemaName`], sorted. On MySQL that is
/// every database of the server except the registry's default one.
pub(crate) async fn list(database: &Database) -> Result<Vec<SchemaName>> {
    if let Pools::Sqlite(store) = database.pools() {
        return store.list();
    }
    let (table, column) = catalog(database.backend());
    let select = Query::select()
        .column(column)
        .from(table)
        .order_by(column, sea_query::Order::Asc)
        .to_owned();
    let target = Target {
        conn: Conn::Database(database.clone()),
        schema: None,
    };
    let default = database.default_namespace().map(|ns| &**ns);
    let mut names = Vec::new();
    for row in target.fetch_unchecked(&select).await? {
        let name: String = row.get(0).map_err(Error::Database)?;
        if Some(name.as_str()) != default {
            if let Ok(schema) = SchemaName::parse(&name) {
                names.push(schema);
            }
        }
    }
    Ok(names)
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
        Backend::MySql => (
            Query::select()
                .expr(Expr::val(1))
                .from(("information_schema", "TABLES"))
                .and_where(Expr::col("TABLE_SCHEMA").eq(schema.as_str()))
                .limit(1)
                .to_owned(),
            None,
        ),
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
