//! The history table inside each schema (which migrations ran there) and the ledger in the
//! shared schema (one row per tenant: version, state, error, duration), as sea-query
//! statements.

use sea_query::{Alias, ColumnDef, Expr, ExprTrait, IntoIden, OnConflict, Query, Table, TableName};

use crate::backend::Backend;

/// The history table's name, in every schema.
pub const HISTORY_TABLE: &str = "tenantry_migrations";
/// The ledger's name, in the shared schema.
pub const LEDGER_TABLE: &str = "tenantry_migration_ledger";

/// A ledger row's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LedgerState {
    /// A runner is migrating the tenant (or was, and was killed: the next run resumes it).
    Running,
    /// The tenant is at the version recorded.
    Done,
    /// The last attempt failed; `error` says why.
    Failed,
}

impl LedgerState {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            LedgerState::Running => "running",
            LedgerState::Done => "done",
            LedgerState::Failed => "failed",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(text: &str) -> Option<LedgerState> {
        match text {
            "running" => Some(LedgerState::Running),
            "done" => Some(LedgerState::Done),
            "failed" => Some(LedgerState::Failed),
            _ => None,
        }
    }
}

fn name(namespace: Option<&str>, table: &'static str) -> TableName {
    TableName(
        namespace.map(|ns| sea_query::SchemaName(None, Alias::new(ns).into_iden())),
        table.into(),
    )
}

fn table_options(backend: Backend, create: &mut sea_query::TableCreateStatement) {
    if backend == Backend::MySql {
        create
            .engine("InnoDB")
            .character_set("utf8mb4")
            .collate("utf8mb4_bin");
    }
}

/// `CREATE TABLE IF NOT EXISTS` the history table in `namespace`.
pub(crate) fn create_history(
    backend: Backend,
    namespace: Option<&str>,
) -> sea_query::TableCreateStatement {
    let mut create = Table::create();
    create
        .table(name(namespace, HISTORY_TABLE))
        .if_not_exists()
        .col(
            ColumnDef::new("id")
                .string_len(128)
                .not_null()
                .primary_key(),
        )
        .col(ColumnDef::new("checksum").string_len(64).not_null())
        .col(ColumnDef::new("steps").big_integer().not_null().default(0))
        .col(ColumnDef::new("done").boolean().not_null());
    table_options(backend, &mut create);
    create
}

/// `CREATE TABLE IF NOT EXISTS` the ledger in the shared `namespace`.
pub(crate) fn create_ledger(
    backend: Backend,
    namespace: Option<&str>,
) -> sea_query::TableCreateStatement {
    let mut create = Table::create();
    create
        .table(name(namespace, LEDGER_TABLE))
        .if_not_exists()
        .col(
            ColumnDef::new("tenant")
                .string_len(255)
                .not_null()
                .primary_key(),
        )
        .col(ColumnDef::new("version").string_len(128).null())
        .col(ColumnDef::new("state").string_len(16).not_null())
        .col(ColumnDef::new("error").text().null())
        .col(
            ColumnDef::new("duration_ms")
                .big_integer()
                .not_null()
                .default(0),
        );
    table_options(backend, &mut create);
    create
}

/// Every history row: id, checksum, steps, done.
pub(crate) fn select_history(namespace: Option<&str>) -> sea_query::SelectStatement {
    Query::select()
        .columns(["id", "checksum", "steps", "done"])
        .from(name(namespace, HISTORY_TABLE))
        .order_by("id", sea_query::Order::Asc)
        .to_owned()
}

/// Records migration `id` with `steps` completed, `done` or not.
pub(crate) fn insert_history(
    namespace: Option<&str>,
    id: &str,
    checksum: &str,
    steps: i64,
    done: bool,
) -> sea_query::InsertStatement {
    Query::insert()
        .into_table(name(namespace, HISTORY_TABLE))
        .columns(["id", "checksum", "steps", "done"])
        .values_panic([id.into(), checksum.into(), steps.into(), done.into()])
        .to_owned()
}

/// Moves migration `id`'s record to `steps` completed, `done` or not.
pub(crate) fn update_history(
    namespace: Option<&str>,
    id: &str,
    steps: i64,
    done: bool,
) -> sea_query::UpdateStatement {
    Query::update()
        .table(name(namespace, HISTORY_TABLE))
        .value("steps", steps)
        .value("done", done)
        .and_where(Expr::col("id").eq(id))
        .to_owned()
}

/// Deletes migration `id`'s history row if none of its steps ran (MySQL: a migration whose
/// first statement the server refused leaves no trace, so its author may change it).
pub(crate) fn delete_unstarted_history(
    namespace: Option<&str>,
    id: &str,
) -> sea_query::DeleteStatement {
    Query::delete()
        .from_table(name(namespace, HISTORY_TABLE))
        .and_where(Expr::col("id").eq(id))
        .and_where(Expr::col("steps").eq(0))
        .and_where(Expr::col("done").eq(false))
        .to_owned()
}

/// Writes tenant `tenant`'s ledger row (insert or replace).
pub(crate) fn upsert_ledger(
    namespace: Option<&str>,
    tenant: &str,
    version: Option<&str>,
    state: LedgerState,
    error: Option<&str>,
    duration_ms: i64,
) -> sea_query::InsertStatement {
    Query::insert()
        .into_table(name(namespace, LEDGER_TABLE))
        .columns(["tenant", "version", "state", "error", "duration_ms"])
        .values_panic([
            tenant.into(),
            version.map(str::to_owned).into(),
            state.as_str().into(),
            error.map(str::to_owned).into(),
            duration_ms.into(),
        ])
        .on_conflict(
            OnConflict::column("tenant")
                .update_columns(["version", "state", "error", "duration_ms"])
                .to_owned(),
        )
        .to_owned()
}

/// Marks a tenant's ledger row `running`, keeping its version.
pub(crate) fn mark_running(namespace: Option<&str>, tenant: &str) -> sea_query::InsertStatement {
    Query::insert()
        .into_table(name(namespace, LEDGER_TABLE))
        .columns(["tenant", "version", "state", "error", "duration_ms"])
        .values_panic([
            tenant.into(),
            Option::<String>::None.into(),
            LedgerState::Running.as_str().into(),
            Option::<String>::None.into(),
            0i64.into(),
        ])
        .on_conflict(
            OnConflict::column("tenant")
                .update_columns(["state"])
                .to_owned(),
        )
        .to_owned()
}

/// Every ledger row: tenant, version, state, error, duration_ms.
pub(crate) fn select_ledger(namespace: Option<&str>) -> sea_query::SelectStatement {
    Query::select()
        .columns(["tenant", "version", "state", "error", "duration_ms"])
        .from(name(namespace, LEDGER_TABLE))
        .order_by("tenant", sea_query::Order::Asc)
        .to_owned()
}

/// Deletes the ledger rows of tenants that no longer exist.
pub(crate) fn delete_ledger(namespace: Option<&str>, tenant: &str) -> sea_query::DeleteStatement {
    Query::delete()
        .from_table(name(namespace, LEDGER_TABLE))
        .and_where(Expr::col("tenant").eq(tenant))
        .to_owned()
}
