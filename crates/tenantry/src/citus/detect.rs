//! Which deployment a PostgreSQL database is: one server, or a Citus coordinator.

use sea_query::{Expr, ExprTrait, Query};

use crate::{
    backend::Backend,
    error::{Error, Result},
    target::Target,
};

/// How a database is deployed, detected when it connects
/// ([`Database::deployment`](crate::Database::deployment)).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Deployment {
    /// One server: plain PostgreSQL, MySQL or MariaDB, SQLite.
    Single,
    /// A Citus coordinator (PostgreSQL with the `citus` extension): tenant schemas are
    /// distributed over its workers; see the [`citus`](crate::Database::citus) handle.
    Citus {
        /// The extension's version (`13.2-1`).
        version: String,
    },
}

impl Deployment {
    /// Whether tenant schemas are distributed schemas of a Citus cluster.
    pub fn is_citus(&self) -> bool {
        matches!(self, Deployment::Citus { .. })
    }
}

/// Reads the deployment through `target` (its connection, or its transaction's: a
/// transaction holding a pool's only connection must not wait for a second one).
pub(crate) async fn detect(target: &Target) -> Result<Deployment> {
    if target.backend() != Backend::Postgres {
        return Ok(Deployment::Single);
    }
    // SELECT "extversion" FROM "pg_catalog"."pg_extension" WHERE "extname" = 'citus'
    let select = Query::select()
        .column("extversion")
        .from(("pg_catalog", "pg_extension"))
        .and_where(Expr::col("extname").eq("citus"))
        .to_owned();
    let rows = target.fetch_unchecked(&select).await?;
    match rows.first() {
        None => Ok(Deployment::Single),
        Some(row) => Ok(Deployment::Citus {
            version: row.get(0).map_err(Error::Database)?,
        }),
    }
}
