//! Migrations for every tenant: operations as data, rendered per backend through sea-query,
//! a history table inside each schema, a ledger row per tenant in the shared schema, and a
//! parallel, resumable runner.
//!
//! A migration is a JSON file in a directory kept in git (`0001_initial.json`, …; the file
//! name without `.json` is its id, and ids sort in the order they run):
//!
//! ```json
//! { "scope": "tenant",
//!   "operations": [
//!     { "op": "add_column", "table": "products",
//!       "column": { "name": "stock", "type": "integer", "default": 0 } } ] }
//! ```
//!
//! [`migrations!`](crate::migrations) embeds a directory's files in the binary at compile
//! time; [`Migrator::run`] applies them: the shared schema first, then each tenant.
//!
//! Per backend:
//! - PostgreSQL: each schema's migrations, history rows and ledger row commit in one
//!   transaction, under a transaction-scoped advisory lock keyed on the schema's OID;
//!   `lock_timeout` bounds every DDL statement and a timed-out tenant is retried.
//! - SQLite: each tenant file is migrated on a connection of its own inside
//!   `BEGIN IMMEDIATE` (the file's write lock is the tenant lock).
//! - MySQL / MariaDB: DDL commits implicitly, so each statement is a step recorded in the
//!   tenant's history after it ran, under `GET_LOCK`; a run killed between a statement and
//!   its record finds the change made (the statement's "already exists" error) and goes on,
//!   so no step is skipped or repeated.
//!
//! Every operation runs on every backend. Each is rendered against the tables the earlier
//! migrations of its scope (and its own earlier operations) built, replayed as a
//! [`Snapshot`], so that an `alter_column` changes only what differs from the recorded
//! column (a default dropped, a unique constraint removed):
//! - SQLite cannot alter a column, add or drop a foreign key, drop an indexed / unique /
//!   key column, or add a unique / primary key / NOT NULL-without-default column in place:
//!   the table is rebuilt inside the tenant's transaction (`<table>__tenantry_new` made from
//!   the table's new definition, the kept columns copied, the old table dropped, the new one
//!   renamed, its indexes made again, then `PRAGMA foreign_key_check`, whose any row fails
//!   the tenant and rolls it back). A migration set with a rebuild turns `foreign_keys` off
//!   on the runner's connection before `BEGIN IMMEDIATE` (inside a transaction the pragma
//!   does nothing, and dropping the old table would run its children's `ON DELETE`
//!   actions), checks every key before `COMMIT`, and turns them back on. The rebuild works
//!   from the recorded definition: a table whose live columns differ from the recorded ones
//!   is refused before any statement (a column added by hand would be lost), and an index
//!   or trigger a `raw` step made on it is not made again.
//! - MySQL / MariaDB: an add, drop or rename of a column carries `ALGORITHM=INSTANT` (a drop
//!   of an indexed column `ALGORITHM=NOCOPY`), so a change the server could only make by
//!   copying the table fails with [`MigrationErrorKind::NotInstant`] naming the operation,
//!   instead of copying silently. `alter_column` (`MODIFY COLUMN`) copies the table.
//!
//! Lint before harm: [`Migrations::hazards`] (and [`Migrator::hazards`], which `migrate
//! plan` prints) lists what each operation costs on a backend beyond its catalog change
//! ([`HazardKind`]: a rewrite, a scan, a long lock, a copy, a SQLite rebuild, a refusal),
//! with the expand/contract alternative. A migration holding a rewrite, a scan or a copy is
//! refused before anything runs unless its file says `"allow_rewrite": true`.

mod adopt;
mod apply;
mod conn;
mod data;
mod diff;
mod drift;
mod error;
mod hazard;
mod history;
mod introspect;
mod ledger;
mod migration;
mod operation;
mod render;
mod runner;
mod snapshot;
mod stamp;
mod status;

pub(crate) use apply::mysql_tenant_lock;
pub(crate) use data::refuse_pool_in_data_step;
pub use data::DataStep;
pub use diff::{diff, Changes, PossibleRename, Renames};
pub(crate) use drift::is_drift_scratch;
pub use drift::{TenantDrift, DRIFT_SCHEMA_PREFIX};
pub use error::{MigrationError, MigrationErrorKind};
pub use hazard::{Hazard, HazardKind};
pub use history::{LedgerState, HISTORY_TABLE, LEDGER_TABLE};
pub(crate) use introspect::pg_enums;
pub use introspect::{introspect, LiveColumn, LiveForeignKey, LiveIndex, LiveSchema, LiveTable};
pub use ledger::LedgerRow;
pub use migration::{Migration, MigrationScope, Migrations};
pub use operation::{CheckSpec, ColumnSpec, ColumnType, ForeignKeySpec, Operation};
pub use runner::{Migrator, Progress, RunOptions, RunReport, TenantOutcome};
pub use snapshot::{IndexSpec, Snapshot, TableSnapshot};
pub(crate) use stamp::{ensure_ledger, forget_ledger, is_unbuilt, record_ledger, stamp};
pub use status::{FleetStatus, SchemaState, TenantStatus};
