//! The runner: the shared schema first, then every tenant with bounded parallelism, each
//! under its own lock, on connections of the runner's own, recording each tenant's result.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex, OnceLock},
    time::{Duration, Instant},
};

use super::{
    apply::{apply_locked, Done, Failure, Lock, ScopeReplay},
    conn::{RunnerConn, TenantPin},
    data::DataSteps,
    error::{MigrationError, MigrationErrorKind},
    hazard::Hazard,
    history::{self, LedgerState},
    ledger::{read_ledger, LedgerRow},
    migration::{Migration, MigrationScope, Migrations},
    operation::Operation,
    render::{Renderer, Replay},
};
use crate::{
    backend::Backend,
    database::Database,
    error::{Error, Result},
    registry::Registry,
    schema_name::SchemaName,
    transaction::Transaction,
};

/// How a run behaves. The defaults suit a fleet on one server.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Tenants migrated at once (each on a connection of the runner's own). Default 4.
    pub concurrency: usize,
    /// How long to wait for a tenant's lock held by another runner before recording the
    /// tenant as failed (locked). Default 30 s.
    pub lock_wait: Duration,
    /// How long one DDL statement waits for the table locks it needs (behind a long reader)
    /// before the tenant's attempt is rolled back and retried. Default 5 s.
    pub lock_timeout: Duration,
    /// Retries of a tenant whose DDL hit `lock_timeout`. Default 3.
    pub lock_retries: u32,
    /// Also migrate tenants whose last attempt failed. Default: skip them (they stay failed).
    pub retry_failed: bool,
    /// Migrate only this tenant (after the shared schema).
    pub tenant: Option<SchemaName>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            concurrency: 4,
            lock_wait: Duration::from_secs(30),
            lock_timeout: Duration::from_secs(5),
            lock_retries: 3,
            retry_failed: false,
            tenant: None,
        }
    }
}

/// What happened to one tenant in a run.
#[derive(Clone, Debug)]
pub struct TenantOutcome {
    /// The tenant's schema.
    pub tenant: SchemaName,
    /// The migrations applied in this run, in order.
    pub applied: Vec<String>,
    /// Why the tenant is not at the last version, if it is not.
    pub error: Option<MigrationError>,
    /// Not attempted: its last attempt had failed and the run was not `retry_failed`.
    pub skipped: bool,
    /// The migration recorded without running because the schema's tables (made before it
    /// had a history) were already what it builds.
    pub adopted: Option<String>,
    /// Time spent on it.
    pub duration: Duration,
}

/// The result of a run.
#[derive(Clone, Debug, Default)]
pub struct RunReport {
    /// The shared migrations applied.
    pub shared_applied: Vec<String>,
    /// The shared migration adopted (see [`TenantOutcome::adopted`]).
    pub shared_adopted: Option<String>,
    /// One outcome per tenant that was behind, in the order they finished.
    pub tenants: Vec<TenantOutcome>,
}

impl RunReport {
    /// The tenants that are not at the last version after the run (failed or skipped).
    pub fn failed(&self) -> impl Iterator<Item = &TenantOutcome> {
        self.tenants
            .iter()
            .filter(|t| t.error.is_some() || t.skipped)
    }

    /// Whether every tenant is at the last version.
    pub fn is_complete(&self) -> bool {
        self.failed().next().is_none()
    }
}

/// The ledger row of the shared schema on MySQL (a name no schema can have).
const SHARED_LEDGER_KEY: &str = "";

/// What the ledger says of a tenant that is behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Prior {
    /// Behind, or its last run was interrupted: migrate it.
    Behind,
    /// Its last attempt failed, and the run retries failed tenants: migrate it, knowing the
    /// step it stopped at failed (MySQL must not take that step's error for a done step).
    Failed,
    /// Its last attempt failed and the run does not retry: report it skipped.
    Skip,
}

/// Called once per tenant as it finishes (for progress bars).
pub type Progress = Arc<dyn Fn(&TenantOutcome) + Send + Sync>;

/// Runs migrations over a registry's default database.
///
/// ```no_run
/// # use tenantry::{migrate::{Migrator, Migrations, RunOptions}, Registry};
/// # async fn demo(registry: Registry, migrations: Migrations) -> tenantry::Result<()> {
/// let report = Migrator::new(&registry, migrations).run(RunOptions::default()).await?;
/// assert!(report.is_complete());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Migrator {
    database: Database,
    registry: Registry,
    migrations: Migrations,
    progress: Option<Progress>,
    data_steps: DataSteps,
    /// Builds tables only: data steps are skipped (drift's reference).
    shape_only: bool,
    /// Each scope's replays (shared, tenant), made on first use.
    replays: Arc<[OnceLock<Arc<ScopeReplay>>; 2]>,
    /// A directory database's runner: its tenants only (the shared schema is the default
    /// database's).
    tenants_only: bool,
}

impl Migrator {
    /// A runner for `migrations` over `registry`'s default database.
    pub fn new(registry: &Registry, migrations: Migrations) -> Migrator {
        Migrator {
            database: registry.database().clone(),
            registry: registry.clone(),
            migrations,
            progress: None,
            data_steps: DataSteps::default(),
            shape_only: false,
            replays: Arc::default(),
            tenants_only: false,
        }
    }

    /// This runner over `database`, a [`Directory`](crate::Directory) database: its
    /// [`run`](Self::run) migrates the tenant schemas of that database only (the shared
    /// schema is the default database's, migrated by the runner over it), under the same
    /// per-tenant locks, with the ledger in that database's own default schema.
    /// [`Directory::migrate`](crate::Directory::migrate) runs one per database.
    pub fn on_directory_database(&self, database: &Database) -> Migrator {
        Migrator {
            database: database.clone(),
            tenants_only: true,
            ..self.clone()
        }
    }

    /// The replays of the scope of `migrations` (the tenant scope's when `tenant`), made
    /// once per runner.
    pub(crate) fn scope_replay(&self, tenant: bool, migrations: &[&Migration]) -> Arc<ScopeReplay> {
        let cached = self.replays[usize::from(tenant)]
            .get_or_init(|| Arc::new(ScopeReplay::new(migrations, tenant)));
        Arc::clone(cached)
    }

    /// This runner without its data steps (they are skipped, not refused): for building
    /// tables only.
    pub(crate) fn shape_only(&self) -> Migrator {
        Migrator {
            shape_only: true,
            ..self.clone()
        }
    }

    pub(crate) fn is_shape_only(&self) -> bool {
        self.shape_only
    }

    /// Registers the data step `name`: the async function a migration's
    /// `{ "op": "data", "name": "NAME" }` runs in each schema it migrates. It gets the
    /// migration's [`Transaction`] and runs in the migrated tenant's scope (the shared
    /// schema's: no tenant), so `Model::query(&tx)` reads and writes that schema.
    ///
    /// - PostgreSQL and SQLite: inside the schema's migration transaction; an `Err` (or a
    ///   panic, or a failed statement) rolls back the schema's whole migration, and a run
    ///   killed halfway leaves nothing of it.
    /// - MySQL / MariaDB: in a transaction of its own, committed together with the step's
    ///   record, so a run killed anywhere either kept the step and its record or neither:
    ///   it runs exactly once. (Its DDL neighbours commit implicitly, one step each.)
    ///
    /// The step must not commit or roll back the transaction itself, nor run a query
    /// through the registry's pool (on PostgreSQL that query would wait for the locks of
    /// the step's own migration and hang the run): both are refused with
    /// [`Error::Unsupported`](crate::Error::Unsupported), which fails the tenant. Drift
    /// (`Migrator::drift`) builds its reference without running data steps. Work in batches within it is
    /// fine; for a backfill too large for one transaction a tenant, see the README's guide
    /// to changing a live fleet (backfill outside the migration, in batches).
    ///
    /// ```no_run
    /// # use tenantry::{migrate::{Migrator, Migrations}, Registry};
    /// # fn demo(registry: Registry, migrations: Migrations) {
    /// let migrator = Migrator::new(&registry, migrations).data_step("fill_full_name", |tx| {
    ///     Box::pin(async move {
    ///         // Customer::query(&tx).update([...]).await?;
    ///         let _ = tx;
    ///         Ok(())
    ///     })
    /// });
    /// # }
    /// ```
    pub fn data_step<F>(mut self, name: &str, step: F) -> Migrator
    where
        F: Fn(Transaction) -> Pin<Box<dyn Future<Output = Result<()>> + Send>>
            + Send
            + Sync
            + 'static,
    {
        self.data_steps = self.data_steps.with(name, Arc::new(step));
        self
    }

    pub(crate) fn data_steps(&self) -> &DataSteps {
        &self.data_steps
    }

    /// Calls `progress` as each tenant finishes.
    pub fn on_progress(mut self, progress: Progress) -> Migrator {
        self.progress = Some(progress);
        self
    }

    /// The migrations this runner applies.
    pub fn migrations(&self) -> &Migrations {
        &self.migrations
    }

    pub(crate) fn database(&self) -> &Database {
        &self.database
    }

    /// The registry this runner migrates (its default database).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    fn backend(&self) -> Backend {
        self.database.backend()
    }

    /// The namespace the runner qualifies shared tables with: PostgreSQL's default schema;
    /// none where the runner's connection is the shared database or file itself.
    pub(crate) fn shared_namespace(&self) -> Option<&str> {
        match self.backend() {
            Backend::Postgres => self.database.default_namespace().map(|ns| &**ns),
            Backend::MySql | Backend::Sqlite => None,
        }
    }

    /// Migrates the shared schema (stopping at its first failure, returned as the error),
    /// then every tenant that is behind, `options.concurrency` at a time. A failing tenant is
    /// recorded in the ledger and the run goes on; tenants created during the run are
    /// picked up, since the tenant list is read again until none is behind.
    pub async fn run(&self, options: RunOptions) -> Result<RunReport> {
        self.check_rewrites()?;
        self.check_data_steps()?;
        if self.database.deployment().await?.is_citus() {
            crate::citus::check_migrations(&self.migrations)?;
        }
        let mut report = RunReport::default();
        if self.tenants_only {
            super::ensure_ledger(&self.database).await?;
        } else {
            let mut shared = RunnerConn::shared(&self.database).await?;
            let result = self.migrate_shared(&mut shared, &options).await;
            shared.close().await;
            (report.shared_applied, report.shared_adopted) = result?;
            // A shared table a migration created must be a reference table before a tenant
            // table may reference it.
            if self.database.deployment().await?.is_citus() {
                crate::citus::make_reference_tables(&self.database, self.registry.models()).await?;
            }
        }

        let mut done: HashSet<SchemaName> = HashSet::new();
        loop {
            let behind = self.behind(&options, &done).await?;
            if behind.is_empty() {
                break;
            }
            let (todo, skipped): (Vec<_>, Vec<_>) = behind
                .into_iter()
                .partition(|(_, state)| *state != Prior::Skip);
            for (tenant, _) in skipped {
                done.insert(tenant.clone());
                let outcome = TenantOutcome {
                    tenant,
                    applied: Vec::new(),
                    error: None,
                    skipped: true,
                    adopted: None,
                    duration: Duration::ZERO,
                };
                self.report(&outcome);
                report.tenants.push(outcome);
            }
            let todo: Vec<(SchemaName, bool)> = todo
                .into_iter()
                .map(|(t, prior)| (t, prior == Prior::Failed))
                .collect();
            done.extend(todo.iter().map(|(t, _)| t.clone()));
            report
                .tenants
                .extend(self.migrate_tenants(todo, &options).await?);
        }
        Ok(report)
    }

    /// Refuses, before anything runs, a migration with an operation whose hazard on this
    /// backend needs `"allow_rewrite": true` ([`HazardKind::needs_allow_rewrite`](super::HazardKind::needs_allow_rewrite): a table
    /// rewritten, scanned or copied) when the migration does not say so.
    fn check_rewrites(&self) -> Result<()> {
        for migration in self.migrations.all() {
            if migration.allows_rewrite() {
                continue;
            }
            let hazards = self.migrations.hazards(migration, self.backend());
            if let Some(hazard) = hazards.iter().find(|h| h.kind.needs_allow_rewrite()) {
                return Err(MigrationError::error(
                    None,
                    Some(migration.id()),
                    MigrationErrorKind::Unsupported(format!(
                        "{} on {}: {} ({}, in every tenant); add \"allow_rewrite\": true to \
                         the migration to accept that, or instead: {}",
                        hazard.operation,
                        self.backend().name(),
                        hazard.why,
                        hazard.kind,
                        hazard.alternative,
                    )),
                ));
            }
        }
        Ok(())
    }

    /// What `migration`'s operations cost on this database's backend beyond their catalog
    /// change (each judged against the tables the earlier migrations built), with the
    /// alternative: what `migrate plan` prints.
    pub fn hazards(&self, migration: &Migration) -> Vec<Hazard> {
        self.migrations.hazards(migration, self.backend())
    }

    /// Refuses, before anything runs, a migration naming a data step this runner was not
    /// given.
    fn check_data_steps(&self) -> Result<()> {
        for migration in self.migrations.all() {
            for op in migration.operations() {
                if let Operation::Data { name } = op {
                    if self.data_steps.get(name).is_none() {
                        return Err(super::data::unknown(migration.id(), name));
                    }
                }
            }
        }
        Ok(())
    }

    fn report(&self, outcome: &TenantOutcome) {
        if let Some(progress) = &self.progress {
            progress(outcome);
        }
    }

    /// Tenants not at the last tenant migration, with whether to skip them (failed before,
    /// not retrying), leaving out those already handled in this run.
    async fn behind(
        &self,
        options: &RunOptions,
        done: &HashSet<SchemaName>,
    ) -> Result<Vec<(SchemaName, Prior)>> {
        let last = self
            .migrations
            .last(MigrationScope::Tenant)
            .map(Migration::id);
        let ledger = self.ledger().await?;
        let schemas = match &options.tenant {
            Some(tenant) => vec![tenant.clone()],
            None => crate::namespace::list(&self.database).await?,
        };
        let schemas = schemas.into_iter().filter(|s| !super::is_drift_scratch(s));
        Ok(schemas
            .filter(|s| !done.contains(s))
            .filter_map(|schema| {
                let row = ledger.get(schema.as_str());
                match row {
                    Some(row)
                        if row.state == LedgerState::Done && row.version.as_deref() == last =>
                    {
                        None
                    }
                    Some(row) if row.state == LedgerState::Failed => Some((
                        schema,
                        if options.retry_failed {
                            Prior::Failed
                        } else {
                            Prior::Skip
                        },
                    )),
                    _ => Some((schema, Prior::Behind)),
                }
            })
            .collect())
    }

    /// The ledger, by tenant.
    pub(crate) async fn ledger(&self) -> Result<HashMap<String, LedgerRow>> {
        let mut conn = RunnerConn::shared(&self.database).await?;
        let result = read_ledger(&mut conn, self.shared_namespace()).await;
        conn.close().await;
        result
    }

    async fn migrate_shared(
        &self,
        conn: &mut RunnerConn,
        options: &RunOptions,
    ) -> Result<(Vec<String>, Option<String>)> {
        let backend = self.backend();
        let namespace = self.shared_namespace();
        let renderer = Renderer {
            backend,
            namespace,
            shared_namespace: namespace,
            tenant: false,
            idempotent: backend == Backend::MySql,
        };
        let migrations: Vec<&Migration> = self.migrations.of(MigrationScope::Shared).collect();
        // MySQL resumes steps, and must know whether the shared schema's last attempt
        // failed: its state is the ledger row of the reserved name "" (never a schema).
        let stepwise = backend == Backend::MySql;
        let failed_before = stepwise
            && read_ledger(conn, namespace)
                .await?
                .get(SHARED_LEDGER_KEY)
                .is_some_and(|row| row.state == LedgerState::Failed);
        let mut done = Done {
            failed_before,
            ..Done::default()
        };
        let key = self.lock_key(None)?;
        let lock = Lock::Shared(&key);
        let result = apply_locked(
            conn,
            renderer,
            None,
            &migrations,
            options,
            lock,
            &mut done,
            self,
        )
        .await;
        if stepwise {
            let (state, error) = match &result {
                Ok(_) => (LedgerState::Done, None),
                Err(failure) => (LedgerState::Failed, Some(failure.error.to_string())),
            };
            let version = match &result {
                Ok(version) => version.clone(),
                Err(failure) => failure.version.clone(),
            };
            let row = history::upsert_ledger(
                namespace,
                SHARED_LEDGER_KEY,
                version.as_deref(),
                state,
                error.as_deref(),
                0,
            );
            conn.exec(&row).await?;
        }
        result.map_err(|e| e.into_error())?;
        Ok((done.applied, done.adopted))
    }

    /// The SQL `migration` runs in `tenant` (`None`: the shared schema) on this database's
    /// backend, for `migrate plan --dry-run`. On MySQL and SQLite tables are bare, as the
    /// runner sends them on the tenant's own connection.
    pub fn plan_sql(
        &self,
        migration: &Migration,
        tenant: Option<&SchemaName>,
    ) -> Result<Vec<String>> {
        let backend = self.backend();
        let shared = self.shared_namespace();
        let namespace = match (backend, tenant) {
            (Backend::Postgres, Some(tenant)) => Some(tenant.as_str()),
            (Backend::Postgres, None) => shared,
            _ => None,
        };
        let renderer = Renderer {
            backend,
            namespace,
            shared_namespace: if backend == Backend::Postgres {
                shared
            } else {
                None
            },
            tenant: tenant.is_some(),
            idempotent: backend == Backend::MySql,
        };
        let mut statements = Vec::new();
        let mut replay = Replay::before(&self.migrations, migration);
        for op in migration.operations() {
            if let Operation::Data { name } = op {
                // Shown, never run: the step is Rust code.
                statements.push(
                    [
                        "-- data step ",
                        name,
                        " (Rust, in the migration's transaction)",
                    ]
                    .concat(),
                );
                continue;
            }
            let rendered = renderer.render_at(op, &replay);
            replay.apply(op);
            statements.extend(rendered.map_err(|error| match error {
                Error::Migration(mut e) => {
                    e.migration = Some(migration.id().to_owned());
                    e.tenant = tenant.map(|t| t.to_string());
                    Error::Migration(e)
                }
                other => other,
            })?);
        }
        Ok(statements)
    }

    /// The server-wide name of a schema's migration lock on MySQL (its server database), the
    /// schema name elsewhere.
    fn lock_key(&self, tenant: Option<&SchemaName>) -> Result<String> {
        match (self.backend(), tenant) {
            (Backend::MySql, Some(tenant)) => {
                self.database.tenant_namespace_rules().server_name(tenant)
            }
            (_, Some(tenant)) => Ok(tenant.to_string()),
            (_, None) => Ok(self
                .database
                .default_namespace()
                .map_or_else(String::new, |ns| ns.to_string())),
        }
    }

    /// Migrates `tenants` with `options.concurrency` workers, each on a connection of its own.
    async fn migrate_tenants(
        &self,
        tenants: Vec<(SchemaName, bool)>,
        options: &RunOptions,
    ) -> Result<Vec<TenantOutcome>> {
        let queue = Arc::new(Mutex::new(VecDeque::from(tenants)));
        let workers = options.concurrency.max(1);
        let mut handles = Vec::with_capacity(workers);
        for _ in 0..workers {
            let this = self.clone();
            let queue = Arc::clone(&queue);
            let options = options.clone();
            handles.push(tokio::spawn(
                async move { this.worker(queue, options).await },
            ));
        }
        let mut outcomes = Vec::new();
        let mut first_error = None;
        for handle in handles {
            match handle.await {
                Ok(Ok(mut done)) => outcomes.append(&mut done),
                Ok(Err(error)) => first_error = first_error.or(Some(error)),
                Err(join) => {
                    first_error = first_error.or(Some(Error::Unsupported {
                        backend: self.backend().name(),
                        what: if join.is_panic() {
                            "a migration worker panicked"
                        } else {
                            "a migration worker was cancelled"
                        },
                    }))
                }
            }
        }
        match first_error {
            Some(error) => Err(error),
            None => Ok(outcomes),
        }
    }

    async fn worker(
        &self,
        queue: Arc<Mutex<VecDeque<(SchemaName, bool)>>>,
        options: RunOptions,
    ) -> Result<Vec<TenantOutcome>> {
        let mut shared = RunnerConn::shared(&self.database).await?;
        let mut outcomes = Vec::new();
        loop {
            let next = queue.lock().unwrap_or_else(|e| e.into_inner()).pop_front();
            let Some((tenant, failed_before)) = next else {
                break;
            };
            let outcome = self
                .migrate_tenant(&mut shared, &tenant, failed_before, &options)
                .await;
            match outcome {
                Ok(outcome) => {
                    self.report(&outcome);
                    outcomes.push(outcome);
                }
                Err(error) => {
                    shared.close().await;
                    return Err(error);
                }
            }
        }
        shared.close().await;
        Ok(outcomes)
    }

    /// One tenant: marked running, migrated under its lock, then recorded done or failed.
    /// `Err` only when the ledger itself cannot be written.
    pub(crate) async fn migrate_tenant(
        &self,
        shared: &mut RunnerConn,
        tenant: &SchemaName,
        failed_before: bool,
        options: &RunOptions,
    ) -> Result<TenantOutcome> {
        let started = Instant::now();
        let ledger_ns = self.shared_namespace();
        shared
            .exec(&history::mark_running(ledger_ns, tenant.as_str()))
            .await?;
        let mut done = Done {
            failed_before,
            ..Done::default()
        };
        let migrations: Vec<&Migration> = self.migrations.of(MigrationScope::Tenant).collect();
        let mut pin = None;
        let result = match self.backend() {
            Backend::Postgres => {
                let renderer = Renderer {
                    backend: Backend::Postgres,
                    namespace: Some(tenant.as_str()),
                    shared_namespace: ledger_ns,
                    tenant: true,
                    idempotent: false,
                };
                let lock = Lock::Tenant(tenant, tenant.as_str());
                apply_locked(
                    shared,
                    renderer,
                    Some(tenant),
                    &migrations,
                    options,
                    lock,
                    &mut done,
                    self,
                )
                .await
            }
            Backend::MySql | Backend::Sqlite => {
                // Held until the tenant's ledger row is written (below).
                let pinned = TenantPin::new(&self.database, tenant);
                let connected = match &pinned {
                    Ok(_) => RunnerConn::tenant(&self.database, tenant, options.lock_wait).await,
                    Err(_) => Ok(None),
                };
                pin = pinned.ok();
                match connected {
                    Ok(Some(mut conn)) => {
                        let renderer = Renderer {
                            backend: self.backend(),
                            namespace: None,
                            shared_namespace: None,
                            tenant: true,
                            idempotent: self.backend() == Backend::MySql,
                        };
                        let key = match self.lock_key(Some(tenant)) {
                            Ok(key) => key,
                            Err(error) => return Err(error),
                        };
                        let lock = Lock::Tenant(tenant, &key);
                        let result = apply_locked(
                            &mut conn,
                            renderer,
                            Some(tenant),
                            &migrations,
                            options,
                            lock,
                            &mut done,
                            self,
                        )
                        .await;
                        conn.close().await;
                        result
                    }
                    Ok(None) => Err(Failure::new(tenant, None, MigrationErrorKind::SchemaGone)),
                    Err(error) => Err(Failure::new(
                        tenant,
                        None,
                        MigrationErrorKind::Failed(error.to_string()),
                    )),
                }
            }
        };
        if let RunnerConn::Lent(_) = shared {
            // Lost in a data step (PostgreSQL migrates on this worker's connection).
            *shared = RunnerConn::shared(&self.database).await?;
        }
        let duration = started.elapsed();
        let millis = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        let version = match &result {
            Ok(version) => version.clone(),
            Err(failure) => failure.version.clone(),
        };
        let error = result.err().map(|f| f.error);
        if matches!(
            error.as_ref().map(|e| &e.kind),
            Some(MigrationErrorKind::SchemaGone)
        ) {
            shared
                .exec(&history::delete_ledger(ledger_ns, tenant.as_str()))
                .await?;
        } else if self.backend() != Backend::Postgres || error.is_some() {
            // PostgreSQL records success inside the tenant's own transaction.
            let state = if error.is_some() {
                LedgerState::Failed
            } else {
                LedgerState::Done
            };
            let message = error.as_ref().map(ToString::to_string);
            shared
                .exec(&history::upsert_ledger(
                    ledger_ns,
                    tenant.as_str(),
                    version.as_deref(),
                    state,
                    message.as_deref(),
                    millis,
                ))
                .await?;
        }
        if let Some(error) = &error {
            tracing::warn!(tenant = %tenant, %error, "tenant migration failed");
        }
        drop(pin);
        Ok(TenantOutcome {
            tenant: tenant.clone(),
            applied: done.applied,
            error,
            skipped: false,
            adopted: done.adopted,
            duration,
        })
    }
}
