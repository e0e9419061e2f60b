//! Stamping: a schema built from the current models records every migration of its scope
//! as applied (Rails' `assume_migrated_upto_version`, Alembic's `stamp head`), so that new
//! tenants never replay history.

use super::{
    apply::build_table,
    history::{self, LedgerState},
    migration::{MigrationScope, Migrations},
};
use crate::{
    backend::Backend,
    database::Database,
    error::{Error, Result},
    schema_name::SchemaName,
    target::{Conn, Target},
};

/// The namespace that qualifies a history table reached through the application's pools:
/// PostgreSQL's schema, MySQL's server database (the URL's for the shared schema), none on
/// SQLite (the statement runs on the schema's own file).
fn namespace(database: &Database, schema: Option<&SchemaName>) -> Result<Option<String>> {
    Ok(match (database.backend(), schema) {
        (Backend::Sqlite, _) => None,
        (_, Some(schema)) => Some(database.tenant_namespace_rules().server_name(schema)?),
        (_, None) => database.default_namespace().map(|ns| ns.to_string()),
    })
}

/// Creates the ledger in the shared schema, outside any transaction: two creations racing
/// `CREATE TABLE IF NOT EXISTS` on PostgreSQL collide on its catalog, so the loser tries
/// once more and finds the table.
pub(crate) async fn ensure_ledger(database: &Database) -> Result<()> {
    let ns = namespace(database, None)?;
    let sql = build_table(
        database.backend(),
        &history::create_ledger(database.backend(), ns.as_deref()),
    );
    let target = Target {
        conn: Conn::Database(database.clone()),
        schema: None,
    };
    match target.execute_ddl(&sql).await {
        // The catalog collision is a unique violation (23505) or a duplicate type or table
        // (42710, 42P07), depending on where the two creations met.
        Err(error)
            if matches!(error, Error::UniqueViolation { .. })
                || matches!(error.database_code().as_deref(), Some("42710" | "42P07")) =>
        {
            target.execute_ddl(&sql).await
        }
        other => other,
    }
}

/// Whether a schema (`None`: the shared one) is unbuilt: no history table and none of
/// `models`' tables. Only an unbuilt schema is stamped when its tables are created; one
/// with tables but no history is adopted by the runner, one with a history is migrated.
pub(crate) async fn is_unbuilt(
    database: &Database,
    schema: Option<&SchemaName>,
    models: &[&'static crate::model::ModelMeta],
) -> Result<bool> {
    let tables = crate::namespace::table_names(database, schema).await?;
    let taken = |name: &str| tables.iter().any(|t| t == name);
    Ok(!taken(history::HISTORY_TABLE) && !models.iter().any(|m| taken(m.table)))
}

/// Records every migration of the target's scope as applied in `target`'s schema (its
/// history table made first), through `target`'s connection (inside its transaction, if it
/// has one). A tenant's ledger row is [`record_ledger`]'s.
pub(crate) async fn stamp(target: &Target, migrations: &Migrations) -> Result<()> {
    let database = target.database().clone();
    let scope = match target.schema {
        Some(_) => MigrationScope::Tenant,
        None => MigrationScope::Shared,
    };
    let ns = namespace(&database, target.schema.as_ref())?;
    let create = history::create_history(database.backend(), ns.as_deref());
    target
        .execute_ddl(&build_table(database.backend(), &create))
        .await?;
    for migration in migrations.of(scope) {
        let row =
            history::insert_history(ns.as_deref(), migration.id(), migration.checksum(), 0, true);
        target.execute(&row).await?;
    }
    Ok(())
}

/// Writes tenant `schema`'s ledger row, done at the last tenant migration, through `shared`
/// (a target on the shared schema: the database, or the transaction that also holds the
/// tenant's row; on SQLite that transaction holds the main file's write lock, so the row
/// must go through it).
pub(crate) async fn record_ledger(
    shared: &Target,
    schema: &SchemaName,
    migrations: &Migrations,
) -> Result<()> {
    let database = shared.database().clone();
    let shared_ns = namespace(&database, None)?;
    let version = migrations.last(MigrationScope::Tenant).map(|m| m.id());
    let ledger = history::upsert_ledger(
        shared_ns.as_deref(),
        schema.as_str(),
        version,
        LedgerState::Done,
        None,
        0,
    );
    shared.execute(&ledger).await.map(drop)
}

/// Deletes tenant `schema`'s ledger row, if there is a ledger (a dropped schema's state must
/// not pass to a schema created again under its name).
pub(crate) async fn forget_ledger(database: &Database, schema: &SchemaName) -> Result<()> {
    let shared_ns = namespace(database, None)?;
    if database.backend() == Backend::MySql && shared_ns.is_none() {
        // A MySQL URL without a database has no shared schema, so no ledger.
        return Ok(());
    }
    let target = Target {
        conn: Conn::Database(database.clone()),
        schema: None,
    };
    match target
        .execute(&history::delete_ledger(
            shared_ns.as_deref(),
            schema.as_str(),
        ))
        .await
    {
        Ok(_) => Ok(()),
        Err(error) if super::status::is_missing_table(&error) => Ok(()),
        Err(error) => Err(error),
    }
}
