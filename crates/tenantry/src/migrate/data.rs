//! Data steps: named async Rust functions a migration runs (`{ "op": "data", "name": … }`),
//! on the migration's own connection and transaction, in the migrated tenant's scope.

use std::{collections::BTreeMap, future::Future, pin::Pin, sync::Arc};

use super::conn::RunnerConn;
use crate::{
    database::Checkout,
    error::{Error, Result},
    registry::Registry,
    schema_name::SchemaName,
    transaction::{PoolConn, Transaction},
};

tokio::task_local! {
    /// Set while a data step runs (in its task).
    static IN_DATA_STEP: ();
}

/// Inside a data step, a statement through an application pool is refused: on PostgreSQL it
/// would wait for the locks of the step's own migration (an ALTER earlier in the same
/// transaction) and hang the run; elsewhere it would run outside the migration's
/// transaction. The step's [`Transaction`] reaches every schema it may touch.
pub(crate) fn refuse_pool_in_data_step() -> Result<()> {
    match IN_DATA_STEP.try_with(|_| ()) {
        Ok(()) => Err(Error::Unsupported {
            backend: "any",
            what: "a query through the registry inside a data step (it would wait for the \
                   migration's own locks, or run outside its transaction): run it through the \
                   step's Transaction",
        }),
        Err(_) => Ok(()),
    }
}

/// A data step's function: given the migration's transaction, bound to the schema being
/// migrated.
pub type DataStep =
    Arc<dyn Fn(Transaction) -> Pin<Box<dyn Future<Output = Result<()>> + Send>> + Send + Sync>;

/// The data steps a runner knows, by name.
#[derive(Clone, Default)]
pub(crate) struct DataSteps(Arc<BTreeMap<String, DataStep>>);

impl DataSteps {
    pub(crate) fn with(&self, name: &str, step: DataStep) -> DataSteps {
        let mut steps = (*self.0).clone();
        steps.insert(name.to_owned(), step);
        DataSteps(Arc::new(steps))
    }

    pub(crate) fn get(&self, name: &str) -> Option<&DataStep> {
        self.0.get(name)
    }
}

/// Why a data step did not complete.
pub(crate) enum StepFailed {
    /// The step returned this error, or a statement of it ended the transaction.
    Failed(String),
    /// The connection was lost in the step (a statement of it was cancelled halfway):
    /// nothing more can run on it.
    Lost(String),
}

/// Runs `step` on `conn` (inside the transaction its caller began) in the scope of
/// `tenant` (`None`: the shared schema), and gives the connection back.
pub(crate) async fn run(
    conn: &mut RunnerConn,
    registry: &Registry,
    database: &crate::Database,
    tenant: Option<&SchemaName>,
    step: &DataStep,
) -> std::result::Result<(), StepFailed> {
    let database = database.clone();
    let sqlite_schema = match conn.backend() {
        crate::Backend::Sqlite => tenant.cloned(),
        _ => None,
    };
    // Statements the connection prepared before an ALTER of this migration would fail
    // with "cached plan must not change result type" inside the transaction (PostgreSQL):
    // each step starts with none.
    conn.clear_cached_statements()
        .await
        .map_err(|e| StepFailed::Failed(e.to_string()))?;
    let lent = match conn.lend() {
        RunnerConn::Postgres(c) => PoolConn::Postgres(Checkout::lent(c)),
        RunnerConn::MySql(c) => PoolConn::MySql(Checkout::lent(c)),
        RunnerConn::Sqlite(c) => PoolConn::Sqlite(Checkout::lent(c)),
        RunnerConn::Lent(_) => return Err(StepFailed::Lost("lost before the step".into())),
    };
    let tx = Transaction::lent(registry.clone(), database.clone(), sqlite_schema, lent);
    // In a task of its own: a panicking step fails its tenant, not the run.
    // A directory database's tenant runs in a scope routed to that database, as its
    // requests do: its queries (and a job context captured there) name its database.
    let scope = match (tenant, database.is_directory_database()) {
        (Some(tenant), true) => crate::TenantScope::routed(tenant.clone(), database.clone()),
        _ => crate::TenantScope::new(tenant.cloned()),
    };
    let work = IN_DATA_STEP.scope((), scope.scope(step(tx.clone())));
    let outcome = match tokio::spawn(work).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(error.to_string()),
        Err(join) if join.is_panic() => Err("the data step panicked".to_owned()),
        Err(_) => Err("the data step was cancelled".to_owned()),
    };
    let (back, aborted) = match tx.reclaim().await {
        Ok(reclaimed) => reclaimed,
        Err(error) => {
            let why = outcome.err().unwrap_or_else(|| error.to_string());
            return Err(StepFailed::Lost(why));
        }
    };
    *conn = match back {
        PoolConn::Postgres(c) => c.into_lent().map(RunnerConn::Postgres),
        PoolConn::MySql(c) => c.into_lent().map(RunnerConn::MySql),
        PoolConn::Sqlite(c) => c.into_lent().map(RunnerConn::Sqlite),
    }
    .ok_or_else(|| StepFailed::Lost("the data step's connection was closed".into()))?;
    match (outcome, aborted) {
        (Err(why), _) => Err(StepFailed::Failed(why)),
        (Ok(()), Some(cause)) => Err(StepFailed::Failed(format!(
            "a statement of the step failed and ended the transaction: {cause}"
        ))),
        (Ok(()), None) => Ok(()),
    }
}

impl From<StepFailed> for String {
    fn from(failed: StepFailed) -> String {
        match failed {
            StepFailed::Failed(why) | StepFailed::Lost(why) => why,
        }
    }
}

/// The error of a data step the runner does not know.
pub(crate) fn unknown(migration: &str, name: &str) -> Error {
    super::error::MigrationError::invalid(
        migration,
        format!("data step {name:?} is not registered with Migrator::data_step"),
    )
}
