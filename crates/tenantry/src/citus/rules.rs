//! What Citus refuses, checked before any SQL is sent.

use crate::{
    error::{Error, Result},
    field::SqlType,
    migrate::{ColumnType, Migrations, Operation},
    model::ModelMeta,
    schema_name::SchemaName,
};

/// A rule of a Citus deployment that a model or a statement broke
/// ([`Error::Distribution`](crate::Error::Distribution)).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DistributionRule {
    /// A database-assigned key must be 64-bit (`i64`): a worker hands out keys from a range
    /// of its own above 2^48, which no 32-bit column holds.
    KeyNotBigint {
        /// The key column.
        column: String,
    },
    /// A shared model (a reference table, copied to every node) may reference only shared
    /// models: its rows cannot point at one tenant's rows, which live on one worker.
    SharedReferencesTenant {
        /// The foreign key column.
        column: String,
        /// The referenced model's table.
        target: String,
    },
    /// One statement would read two tenants' schemas, which live on different workers
    /// (and belong to different tenants). The schemas are kept out of the message.
    AcrossTenants {
        /// The schema the statement runs in.
        outer: String,
        /// The other tenant's schema it would read.
        inner: String,
    },
}

impl std::fmt::Display for DistributionRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DistributionRule::KeyNotBigint { column } => write!(
                f,
                "its database-assigned key {column:?} must be an i64 (BIGINT): Citus workers assign keys above 2^48"
            ),
            DistributionRule::SharedReferencesTenant { column, target } => write!(
                f,
                "shared model's foreign key {column:?} references {target:?}, which is not shared: a reference table may reference only reference tables"
            ),
            DistributionRule::AcrossTenants { .. } => f.write_str(
                "one statement would read two tenants' schemas; run each tenant's query in its own schema",
            ),
        }
    }
}

/// Checks `models` (and the junctions they generate) against the rules of a Citus
/// deployment: every refusal names the model and the rule.
pub(crate) fn check_models(models: &[&'static ModelMeta]) -> Result<()> {
    for meta in crate::ddl::with_junctions(models) {
        check_model(meta)?;
    }
    Ok(())
}

fn check_model(meta: &'static ModelMeta) -> Result<()> {
    let key = meta.primary_key_column();
    if key.auto_increment && key.sql_type != SqlType::BigInteger {
        return Err(refused(
            meta.table,
            DistributionRule::KeyNotBigint {
                column: key.name.to_owned(),
            },
        ));
    }
    if !meta.shared {
        return Ok(());
    }
    for column in meta.columns {
        let Some(fk) = column.foreign_key else {
            continue;
        };
        let target = (fk.target)();
        if !target.shared {
            return Err(refused(
                meta.table,
                DistributionRule::SharedReferencesTenant {
                    column: column.name.to_owned(),
                    target: target.table.to_owned(),
                },
            ));
        }
    }
    Ok(())
}

/// Refuses a statement over `model` in `outer` that would read `inner`, another tenant's
/// schema (a subquery pinned to where its rows live). Refused on every backend: on one
/// server it would run, reading one tenant's rows to choose another's.
pub(crate) fn refuse_across_tenants(
    model: &'static ModelMeta,
    outer: Option<&SchemaName>,
    inner: Option<&SchemaName>,
) -> Result<()> {
    match (outer, inner) {
        (Some(outer), Some(inner)) if outer != inner => Err(refused(
            model.table,
            DistributionRule::AcrossTenants {
                outer: outer.to_string(),
                inner: inner.to_string(),
            },
        )),
        _ => Ok(()),
    }
}

/// Checks the migrations' tables against the rules: a column a migration creates, adds or
/// alters as database-assigned must be 64-bit. (A migration's foreign keys stay within its
/// scope: the shared scope's tables reference shared tables only.)
pub(crate) fn check_migrations(migrations: &Migrations) -> Result<()> {
    for migration in migrations.all() {
        for operation in migration.operations() {
            let table = match operation {
                Operation::CreateTable { table, .. }
                | Operation::AddColumn { table, .. }
                | Operation::AlterColumn { table, .. } => table,
                _ => continue,
            };
            for column in operation.columns() {
                if column.auto_increment && column.column_type != ColumnType::BigInteger {
                    return Err(refused(
                        table,
                        DistributionRule::KeyNotBigint {
                            column: column.name.clone(),
                        },
                    ));
                }
            }
        }
    }
    Ok(())
}

fn refused(table: &str, rule: DistributionRule) -> Error {
    Error::Distribution {
        model: table.to_owned(),
        rule,
    }
}
