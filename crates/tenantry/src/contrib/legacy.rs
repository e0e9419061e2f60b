//! Tenant databases made on MySQL / MariaDB before tenant namespaces existed (the server
//! database named exactly as the schema) are moved into this application's namespace
//! (`<namespace>$<schema>`, see [`Database::tenant_namespace`](crate::Database::tenant_namespace)).

use sea_query::{Alias, Expr, ExprTrait, IntoIden, Query, Table, TableName};

use crate::{
    backend::Backend,
    error::Result,
    namespace::{self, NamespaceStatement},
    registry::Registry,
    schema_name::SchemaName,
    target::{render_schema, Conn, Target},
    Model,
};

/// On MySQL / MariaDB: for every tenant row of the shared `tenants` table (on the default
/// database) whose namespaced database does not exist but whose legacy database (named
/// exactly as the schema) does, creates the namespaced database, moves every table into it
/// (`RENAME TABLE`, which keeps rows, indexes and foreign keys), and drops the emptied legacy
/// database. Returns the tenants moved. Nothing to do on PostgreSQL and SQLite, or without a
/// `tenants` table. Reads only the `schema_name` and `database` columns, which every release
/// of the table has.
///
/// A move interrupted between tables is finished by the next call: the namespaced database
/// then exists, and the tables still in the legacy database are moved on.
pub async fn move_legacy_mysql_tenants(registry: &Registry) -> Result<Vec<SchemaName>> {
    let database = registry.database();
    if database.backend() != Backend::MySql {
        return Ok(Vec::new());
    }
    let shared = namespace::table_names(database, None).await?;
    if !shared.iter().any(|t| t == super::Tenant::META.table) {
        return Ok(Vec::new());
    }
    let target = Target {
        conn: Conn::Database(database.clone()),
        schema: None,
    };
    let select = Query::select()
        .column("schema_name")
        .from(crate::naming::table_name(
            database,
            None,
            super::Tenant::META.table,
        ))
        .and_where(Expr::col("database").is_null())
        .to_owned();
    let mut moved = Vec::new();
    for row in target.fetch_unchecked(&select).await? {
        let name: String = row.get(0).map_err(crate::Error::Database)?;
        let Ok(schema) = SchemaName::parse(&name) else {
            tracing::warn!(name, "a tenant row names an invalid schema; left alone");
            continue;
        };
        if move_one(registry, &target, &schema).await? {
            tracing::info!(schema = %schema, "moved a legacy tenant database into the namespace");
            moved.push(schema);
        }
    }
    Ok(moved)
}

/// Moves one tenant's legacy database, if there is one with tables; whether it moved any.
///
/// Only a database that is plainly this tenant's old one moves: named exactly as the
/// schema, not the URL's own database, while the namespaced database does not exist yet (or
/// exists and is empty: an interrupted move), and holding nothing but tables of the
/// registry's tenant models and the migration history. Anything else (another
/// application's database that happens to share the tenant's name) is left alone and
/// logged.
async fn move_one(registry: &Registry, target: &Target, schema: &SchemaName) -> Result<bool> {
    let database = registry.database();
    let legacy = schema.as_str();
    if database
        .default_namespace()
        .is_some_and(|ns| &**ns == legacy)
    {
        return Ok(false);
    }
    let tables = Query::select()
        .column("TABLE_NAME")
        .from(("information_schema", "TABLES"))
        .and_where(Expr::col("TABLE_SCHEMA").eq(legacy))
        .to_owned();
    let legacy_exists = namespace::holds_exactly(
        &target
            .fetch_unchecked(&namespace::exists_statement(Backend::MySql, legacy))
            .await?,
        legacy,
    )?;
    if !legacy_exists {
        return Ok(false);
    }
    if namespace::exists(database, schema).await?
        && !namespace::table_names(database, Some(schema))
            .await?
            .is_empty()
    {
        // The tenant already lives in the namespace: the same-named database is not its.
        tracing::warn!(schema = %schema, "a database named like the tenant exists beside its namespaced one; left alone");
        return Ok(false);
    }
    let names: Vec<String> = target
        .fetch_unchecked(&tables)
        .await?
        .iter()
        .map(|row| row.get::<String>(0).map_err(crate::Error::Database))
        .collect::<Result<_>>()?;
    if names.is_empty() {
        return Ok(false);
    }
    let known: Vec<&str> = registry
        .tenant_models()
        .map(|m| m.table)
        .chain([crate::migrate::HISTORY_TABLE])
        .collect();
    if let Some(stranger) = names.iter().find(|n| !known.contains(&n.as_str())) {
        tracing::warn!(schema = %schema, table = %stranger, "a database named like the tenant holds a table no tenant model has; not moved");
        return Ok(false);
    }
    let create = NamespaceStatement::create(database, schema, true)?;
    target.execute_ddl(create.sql()).await?;
    let new = database.server_schema_name(schema)?;
    for table in &names {
        let iden = || Alias::new(table.as_str()).into_iden();
        let from = TableName(
            Some(sea_query::SchemaName(None, Alias::new(legacy).into_iden())),
            iden(),
        );
        let to = TableName(
            Some(sea_query::SchemaName(
                None,
                Alias::new(new.as_str()).into_iden(),
            )),
            iden(),
        );
        let rename = Table::rename().table(from, to).to_owned();
        target
            .execute_ddl(&render_schema(Backend::MySql, &rename))
            .await?;
    }
    target
        .execute_ddl(NamespaceStatement::drop_legacy_mysql(schema).sql())
        .await?;
    Ok(!names.is_empty())
}
