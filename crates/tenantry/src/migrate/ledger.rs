//! Reading the ledger: one query for the state of every tenant.

use std::collections::HashMap;

use super::{
    conn::RunnerConn,
    history::{self, LedgerState},
};
use crate::error::Result;

/// One tenant's ledger row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerRow {
    /// The last migration completed in the tenant, if any.
    pub version: Option<String>,
    /// Running, done or failed.
    pub state: LedgerState,
    /// Why the last attempt failed.
    pub error: Option<String>,
    /// How long the last attempt took, in milliseconds.
    pub duration_ms: i64,
}

/// Every ledger row by tenant; empty when the ledger does not exist yet.
pub(crate) async fn read_ledger(
    conn: &mut RunnerConn,
    namespace: Option<&str>,
) -> Result<HashMap<String, LedgerRow>> {
    // Read only: the ledger is created under the shared schema's migration lock (two
    // creations racing collide on PostgreSQL's catalog); none yet means nothing recorded.
    match conn.rows(&history::select_ledger(namespace)).await {
        Ok(rows) => ledger_rows(rows),
        Err(error) if super::status::is_missing_table(&error) => Ok(HashMap::new()),
        Err(error) => Err(error),
    }
}

/// Decodes the rows of [`history::select_ledger`], by tenant.
pub(crate) fn ledger_rows(rows: Vec<crate::row::Row>) -> Result<HashMap<String, LedgerRow>> {
    let mut out = HashMap::with_capacity(rows.len());
    for row in rows {
        let tenant: String = row.get(0)?;
        let state: String = row.get(2)?;
        out.insert(
            tenant,
            LedgerRow {
                version: row.get(1)?,
                state: LedgerState::parse(&state).unwrap_or(LedgerState::Failed),
                error: row.get(3)?,
                duration_ms: row.get(4)?,
            },
        );
    }
    Ok(out)
}
