//! Where every schema stands: the shared schema's history and one ledger query for the
//! tenants.

use super::{
    history::{self, LedgerState},
    migration::{Migration, MigrationScope},
    runner::Migrator,
};
use crate::{
    error::Result,
    schema_name::SchemaName,
    target::{Conn, Target},
};

/// What the shared schema holds, before anything is created or migrated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SchemaState {
    /// Neither a migration history nor any table of the registered models: `create_all`
    /// builds it from the models and records every shared migration.
    Unbuilt,
    /// Tables of the registered models but no history (made before migrations existed):
    /// `Migrator::run` adopts it.
    Unversioned,
    /// A migration history: `Migrator::run` brings it up to date.
    Versioned,
}

/// One tenant's standing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantStatus {
    /// The tenant's schema.
    pub tenant: SchemaName,
    /// The last migration completed there, per the ledger.
    pub version: Option<String>,
    /// The ledger's state; `None` for a tenant the ledger does not know (never migrated
    /// or stamped by this application).
    pub state: Option<LedgerState>,
    /// Why its last attempt failed.
    pub error: Option<String>,
    /// Not at the last tenant migration (or failed, running, or unknown).
    pub behind: bool,
}

/// The standing of the shared schema and every tenant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FleetStatus {
    /// The shared migrations recorded as applied, in order.
    pub shared_applied: Vec<String>,
    /// The shared migrations not applied yet, in order.
    pub shared_pending: Vec<String>,
    /// The last tenant migration this binary carries.
    pub tenant_target: Option<String>,
    /// Every tenant, sorted by name.
    pub tenants: Vec<TenantStatus>,
}

impl FleetStatus {
    /// Whether the shared schema and every tenant are at the last version.
    pub fn is_current(&self) -> bool {
        self.shared_pending.is_empty() && self.tenants.iter().all(|t| !t.behind)
    }

    /// The tenants that are behind, failed or unknown.
    pub fn behind(&self) -> impl Iterator<Item = &TenantStatus> {
        self.tenants.iter().filter(|t| t.behind)
    }
}

impl Migrator {
    /// Where the shared schema and every tenant stand: the shared history, the tenant list
    /// and one ledger query, whatever the number of tenants. Writes nothing.
    pub async fn status(&self) -> Result<FleetStatus> {
        // Through the application's pool (these reads need no connection of the runner's
        // own, whose opening costs more than they do), the three at once. Their statement
        // texts name no tenant, so they add three entries to a statement cache, not one per
        // tenant.
        let target = Target {
            conn: Conn::Database(self.database().clone()),
            schema: None,
        };
        let namespace = self.shared_namespace();
        let (history, ledger) = (
            history::select_history(namespace),
            history::select_ledger(namespace),
        );
        let schemas = self.registry().schema();
        let (shared, ledger, schemas) = tokio::join!(
            target.fetch_unchecked(&history),
            target.fetch_unchecked(&ledger),
            schemas.list(),
        );
        let shared_applied = completed(shared)?;
        let ledger = match ledger {
            Ok(rows) => super::ledger::ledger_rows(rows)?,
            Err(error) if is_missing_table(&error) => Default::default(),
            Err(error) => return Err(error),
        };
        let shared_pending = self
            .migrations()
            .of(MigrationScope::Shared)
            .filter(|m| !shared_applied.iter().any(|a| a == m.id()))
            .map(|m| m.id().to_owned())
            .collect();
        let target = self
            .migrations()
            .last(MigrationScope::Tenant)
            .map(Migration::id);
        let tenants = schemas?
            .into_iter()
            .filter(|tenant| !super::is_drift_scratch(tenant))
            .map(|tenant| {
                let row = ledger.get(tenant.as_str());
                let behind = match row {
                    Some(row) => row.state != LedgerState::Done || row.version.as_deref() != target,
                    None => target.is_some(),
                };
                TenantStatus {
                    version: row.and_then(|r| r.version.clone()),
                    state: row.map(|r| r.state),
                    error: row.and_then(|r| r.error.clone()),
                    behind,
                    tenant,
                }
            })
            .collect();
        Ok(FleetStatus {
            shared_applied,
            shared_pending,
            tenant_target: target.map(str::to_owned),
            tenants,
        })
    }

    /// What the shared schema holds: nothing yet, the models' tables without a history, or
    /// a history.
    pub async fn shared_state(&self) -> Result<SchemaState> {
        let tables = crate::namespace::table_names(self.database(), None).await?;
        if tables.iter().any(|t| t == history::HISTORY_TABLE) {
            return Ok(SchemaState::Versioned);
        }
        let models = self.registry().models();
        Ok(
            if models.iter().any(|m| tables.iter().any(|t| t == m.table)) {
                SchemaState::Unversioned
            } else {
                SchemaState::Unbuilt
            },
        )
    }
}

/// The completed migrations among the rows of a history select; none when there is no
/// history table.
fn completed(rows: Result<Vec<crate::row::Row>>) -> Result<Vec<String>> {
    match rows {
        Ok(rows) => {
            let mut ids = Vec::with_capacity(rows.len());
            for row in rows {
                if row.get::<bool>(3)? {
                    ids.push(row.get::<String>(0)?);
                }
            }
            Ok(ids)
        }
        Err(error) if is_missing_table(&error) => Ok(Vec::new()),
        Err(error) => Err(error),
    }
}

/// PostgreSQL 42P01, MySQL 1146 (42S02), SQLite "no such table".
pub(crate) fn is_missing_table(error: &crate::error::Error) -> bool {
    match error.database_code().as_deref() {
        Some("42P01" | "42S02") => true,
        Some("1") => error.to_string().contains("no such table"),
        _ => false,
    }
}
