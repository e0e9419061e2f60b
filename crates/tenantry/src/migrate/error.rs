//! What can go wrong with a migration, each kind with the tenant, the migration and what to
//! do about it.

use std::fmt;

use crate::error::Error;

/// A migration error: which tenant (schema; `None` for the shared schema), which migration,
/// and what went wrong. Reached through [`Error::Migration`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MigrationError {
    /// The tenant schema, `None` for the shared schema or the migration set itself.
    pub tenant: Option<String>,
    /// The migration's id, when one is concerned.
    pub migration: Option<String>,
    /// What went wrong.
    pub kind: MigrationErrorKind,
}

/// The kinds of [`MigrationError`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MigrationErrorKind {
    /// The migration file does not parse or names an invalid identifier.
    Invalid(String),
    /// The migration was changed after it ran here: the recorded checksum differs.
    ChecksumMismatch {
        /// The checksum recorded when it ran.
        recorded: String,
        /// The checksum of the migration in this binary.
        embedded: String,
    },
    /// The schema records a migration this binary does not carry.
    MissingFromBinary,
    /// The backend cannot do an operation (safely) in place.
    Unsupported(String),
    /// Another runner held the tenant's lock for longer than the lock wait.
    Locked {
        /// How long this runner waited.
        waited_ms: u64,
    },
    /// The tenant's schema no longer exists.
    SchemaGone,
    /// A statement failed; nothing of the migration was kept (on MySQL / MariaDB the
    /// completed steps are recorded and the next run resumes after them).
    Failed(String),
    /// The schema has tables but no migration history, and they are not what the first
    /// migration builds, so it cannot be adopted.
    NotAdoptable(String),
    /// MariaDB / MySQL refused to make the change instantly (ERROR 1845 / 1846 to the
    /// runner's `ALGORITHM=INSTANT` guard): it would have copied the table. Nothing of the
    /// operation was done.
    NotInstant {
        /// The operation, as [`Operation::describe`](super::Operation::describe) writes it.
        operation: String,
        /// The server's reason.
        reason: String,
    },
    /// SQLite's `PRAGMA foreign_key_check` after a table rebuild found rows whose foreign
    /// key points nowhere; the tenant's migration was rolled back.
    ForeignKeyViolation {
        /// The table holding the rows.
        table: String,
        /// The table they should point to.
        references: String,
        /// How many rows the check reported.
        rows: usize,
    },
    /// The database is behind the migrations this binary carries.
    Behind {
        /// Schemas (or `shared`) that are behind or failed.
        pending: usize,
    },
}

impl MigrationError {
    pub(crate) fn error(
        tenant: Option<&str>,
        migration: Option<&str>,
        kind: MigrationErrorKind,
    ) -> Error {
        Error::Migration(Box::new(MigrationError {
            tenant: tenant.map(str::to_owned),
            migration: migration.map(str::to_owned),
            kind,
        }))
    }

    pub(crate) fn invalid(migration: &str, reason: String) -> Error {
        MigrationError::error(None, Some(migration), MigrationErrorKind::Invalid(reason))
    }

    /// What to do about it, as one sentence.
    pub fn hint(&self) -> &'static str {
        match &self.kind {
            MigrationErrorKind::Invalid(_) => "fix the migration file and rebuild",
            MigrationErrorKind::ChecksumMismatch { .. } => {
                "a migration that ran must not change: restore the file from git and put the change in a new migration"
            }
            MigrationErrorKind::MissingFromBinary => {
                "run a binary that carries this migration (a newer release), or restore the file"
            }
            MigrationErrorKind::Unsupported(_) => {
                "express the change as operations this backend supports (for example a new table and a copy)"
            }
            MigrationErrorKind::Locked { .. } => {
                "another runner is migrating this tenant; wait for it, or raise --lock-wait"
            }
            MigrationErrorKind::SchemaGone => "the tenant was dropped; nothing to do for it",
            MigrationErrorKind::Failed(_) => {
                "fix the cause, then run `migrate --retry-failed`"
            }
            MigrationErrorKind::NotAdoptable(_) => {
                "bring the tables to what the first migration builds, or drop and recreate the tenant"
            }
            MigrationErrorKind::Behind { .. } => "run `migrate` to bring the database up to date",
            MigrationErrorKind::NotInstant { .. } => {
                "split the change expand/contract (add a new column, backfill it in batches, switch reads, drop the old one), or drop the column's index first"
            }
            MigrationErrorKind::ForeignKeyViolation { .. } => {
                "fix or delete the rows that point nowhere (in a data step before this operation), then run `migrate --retry-failed`"
            }
        }
    }
}

impl fmt::Display for MigrationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tenant = self.tenant.as_deref().unwrap_or("shared schema");
        let migration = self.migration.as_deref().unwrap_or("-");
        match &self.kind {
            MigrationErrorKind::Invalid(reason) => {
                write!(f, "migration {migration} is invalid: {reason}")?
            }
            MigrationErrorKind::ChecksumMismatch { recorded, embedded } => write!(
                f,
                "migration {migration} in {tenant} was changed after it ran (recorded checksum {recorded}, this binary's {embedded})"
            )?,
            MigrationErrorKind::MissingFromBinary => write!(
                f,
                "{tenant} records migration {migration}, which this binary does not carry"
            )?,
            MigrationErrorKind::Unsupported(what) => {
                write!(f, "migration {migration} cannot run in {tenant}: {what}")?
            }
            MigrationErrorKind::Locked { waited_ms } => write!(
                f,
                "{tenant} stayed locked by another migration runner for {waited_ms} ms (at migration {migration})"
            )?,
            MigrationErrorKind::SchemaGone => {
                write!(f, "{tenant} no longer exists (at migration {migration})")?
            }
            MigrationErrorKind::Failed(cause) => {
                write!(f, "migration {migration} failed in {tenant}: {cause}")?
            }
            MigrationErrorKind::NotAdoptable(why) => write!(
                f,
                "{tenant} has tables but no migration history, and cannot be adopted: {why}"
            )?,
            MigrationErrorKind::NotInstant { operation, reason } => write!(
                f,
                "migration {migration} failed in {tenant}: {operation} cannot be done instantly and would copy the table, which tenantry does not do silently ({reason})"
            )?,
            MigrationErrorKind::ForeignKeyViolation {
                table,
                references,
                rows,
            } => write!(
                f,
                "migration {migration} failed in {tenant}: {rows} row(s) of {table} point to no row of {references} (foreign key check after a table rebuild); nothing was kept"
            )?,
            MigrationErrorKind::Behind { pending } => write!(
                f,
                "the database is behind this binary's migrations ({pending} schema(s) behind or failed)"
            )?,
        }
        write!(f, "; {}", self.hint())
    }
}
