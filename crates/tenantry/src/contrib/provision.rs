//! Creating and dropping tenants: the row and the schema kept in step (DESIGN 4.7).

use std::future::Future;

use chrono::Utc;
use tracing::Instrument;

use super::{epoch, Tenant};
use crate::{
    backend::SchemaKind,
    error::{compensated, Error, Result},
    instance::Instance,
    registry::Registry,
    schema_name::SchemaName,
    tenancy::BoxFuture,
    tenancy::Schemas,
    transaction::Transaction,
    Model,
};

/// The longest tenant name the `tenants` table holds.
const MAX_TENANT_NAME: usize = 100;

/// Creates tenant `schema_name` (display name `tenant_name`) on the registry's default
/// database: inserts its [`Tenant`] row, creates its schema and the tables of every
/// tenant-capable registered model, all or nothing.
///
/// - On PostgreSQL the row, `CREATE SCHEMA` and the tables are one transaction.
/// - On MySQL and SQLite, whose DDL is not transactional (a SQLite schema is another file),
///   the row is inserted in a transaction that stays open while the schema and its tables
///   are created, and is committed last. A failure rolls the row back and drops whatever
///   schema this call created; a commit failure drops the schema. These creations take
///   turns within the process (a process-wide async lock), and each needs two connections of
///   the pool at once.
///
/// Either way the row becomes visible only once the schema and its tables exist, and a
/// failure is returned with nothing left behind (should undoing fail too, the original error
/// is still the one returned, and the failed cleanup is logged). The same transaction gives
/// the [tenants epoch](super::TenantEpoch) a new value, so caches in other processes notice the
/// new tenant. The work runs in its own task, so dropping the returned future (a client that
/// hung up) does not interrupt it half way.
///
/// Errors: [`Error::InvalidSchemaName`] (also, on MySQL, for a name too long for the tenant
/// namespace: see [`Database::tenant_namespace`](crate::Database::tenant_namespace));
/// [`Error::InvalidTenantName`] for an empty name, one
/// longer than 100 characters or one containing NUL; [`Error::UniqueViolation`] when a
/// tenant already has this schema or display name (of two concurrent calls for one name,
/// exactly one succeeds); [`Error::SchemaAlreadyExists`] when the schema exists without a
/// tenant row (it is left alone).
pub async fn create_tenant(
    registry: &Registry,
    schema_name: impl TryInto<SchemaName, Error = Error>,
    tenant_name: &str,
) -> Result<Instance<Tenant>> {
    let schema = schema_name.try_into()?;
    check_tenant_name(tenant_name)?;
    registry.database().check_schema(&schema)?;
    let span = tracing::info_span!("tenantry.create_tenant", schema = %schema);
    let work = provision(registry.clone(), None, schema, tenant_name.to_owned());
    detach(work.instrument(span)).await
}

/// Creates a tenant of **your own** tenant table, all or nothing, as [`create_tenant`] does
/// for [`Tenant`]: `row` writes your row (plan, status, anything) through the transaction it
/// is given (which it cannot commit or roll back: that is the provisioning's), then the schema and the tables of every tenant-capable model are created, and
/// the row commits only once they exist (one transaction on PostgreSQL; on MySQL and SQLite
/// the schema is dropped again if anything fails). `row` may run more than once: a
/// provisioning that loses a deadlock on MySQL is tried again from the start. When the
/// registry has [`TenantEpoch`](super::TenantEpoch) (`contrib::register`), its value changes
/// in the same transaction, so layers in other processes see the tenant within a second.
///
/// ```no_run
/// # use tenantry::{Model, Registry, Transaction};
/// # #[derive(Model, Clone, Debug)] #[model(shared)]
/// # struct Organization { id: i64, #[model(max_length = 63)] schema_name: String,
/// #   #[model(max_length = 20)] plan: String, #[model(max_length = 20)] status: String }
/// # async fn demo(registry: Registry) -> tenantry::Result<()> {
/// let org = tenantry::contrib::provision_tenant(&registry, "acme", |tx, schema| {
///     Box::pin(async move {
///         Organization::query(&tx)
///             .create(Organization {
///                 id: 0,
///                 schema_name: schema.to_string(),
///                 plan: "pro".into(),
///                 status: "active".into(),
///             })
///             .await
///     })
/// })
/// .await?;
/// # Ok(()) }
/// ```
pub async fn provision_tenant<T, F>(
    registry: &Registry,
    schema_name: impl TryInto<SchemaName, Error = Error>,
    row: F,
) -> Result<T>
where
    T: Send + 'static,
    F: Fn(Transaction, SchemaName) -> BoxFuture<'static, Result<T>> + Send + Sync + 'static,
{
    let schema = schema_name.try_into()?;
    registry.database().check_schema(&schema)?;
    let registry = registry.clone();
    let span = tracing::info_span!("tenantry.provision_tenant", schema = %schema);
    let work = async move {
        let row = move |tx: Transaction, schema: SchemaName, _: Option<String>| row(tx, schema);
        provision_with(&registry, None, &schema, &row).await
    };
    detach(work.instrument(span)).await
}

/// Like [`create_tenant`], for database-per-tenant: the schema is created on the registry's
/// extra database `database` (see [`Registry::extra`]) and the row, in the default database,
/// records that name in [`Tenant::database`]. The two are in different databases, so this
/// always takes the compensating path. An undeclared name is [`Error::UnknownDatabase`].
pub async fn create_tenant_in(
    registry: &Registry,
    database: &str,
    schema_name: impl TryInto<SchemaName, Error = Error>,
    tenant_name: &str,
) -> Result<Instance<Tenant>> {
    let schema = schema_name.try_into()?;
    check_tenant_name(tenant_name)?;
    registry.extra_database(database)?.check_schema(&schema)?;
    let span = tracing::info_span!("tenantry.create_tenant", schema = %schema, database);
    let work = provision(
        registry.clone(),
        Some(database.to_owned()),
        schema,
        tenant_name.to_owned(),
    );
    detach(work.instrument(span)).await
}

/// Removes tenant `schema_name`: deletes its [`Tenant`] row (and, by cascade, its
/// [`TenantUser`](super::TenantUser) links) and gives the [tenants epoch](super::TenantEpoch)
/// a new value in one transaction, then, only when `drop_data`, drops its schema with every
/// table in it. Returns the removed row. A name with no tenant row is [`Error::NotFound`].
/// The row goes first, so the tenant stops resolving before its data disappears; should
/// dropping the schema then fail, the error is returned and
/// [`drop_schema`](crate::drop_schema) can finish the job.
pub async fn drop_tenant(
    registry: &Registry,
    schema_name: impl TryInto<SchemaName, Error = Error>,
    drop_data: bool,
) -> Result<Tenant> {
    let schema = schema_name.try_into()?;
    let registry = registry.clone();
    let span = tracing::info_span!("tenantry.drop_tenant", schema = %schema, drop_data);
    let work = async move {
        epoch::ensure(&registry).await?;
        let tx = registry.begin().await?;
        let removed = async {
            // Written first: on SQLite a transaction that reads before it writes cannot take
            // the write lock while another writer waits (SQLITE_BUSY at once).
            epoch::bump(&tx).await?;
            let tenant = find_in(&tx, &schema).await?;
            let deleted = Tenant::query(&tx)
                .filter(Tenant::id().eq(tenant.id))
                .delete()
                .await?;
            if deleted == 0 {
                // A concurrent drop_tenant got there first.
                return Err(Error::NotFound {
                    model: Tenant::META.table,
                });
            }
            Ok(tenant)
        }
        .await;
        let row = finish(tx, removed).await?;
        if drop_data {
            let schemas = schemas_of(&registry, row.database.as_deref())?;
            schemas.drop(&schema, true, true).await?;
        }
        Ok(row)
    };
    detach(work.instrument(span)).await
}

/// Suspends tenant `schema_name`: its row and data stay, but `tenantry-axum` refuses its
/// requests (403) until [`resume_tenant`]. Sets [`Tenant::suspended`] and gives the
/// [tenants epoch](super::TenantEpoch) a new value in one transaction, so layers in other
/// processes notice within their epoch interval. Returns the row as it is now. A name with
/// no tenant row is [`Error::NotFound`]; suspending a suspended tenant changes nothing else.
pub async fn suspend_tenant(
    registry: &Registry,
    schema_name: impl TryInto<SchemaName, Error = Error>,
) -> Result<Tenant> {
    set_suspended(registry, schema_name.try_into()?, true).await
}

/// Undoes [`suspend_tenant`]: the tenant is served again. A name with no tenant row is
/// [`Error::NotFound`].
pub async fn resume_tenant(
    registry: &Registry,
    schema_name: impl TryInto<SchemaName, Error = Error>,
) -> Result<Tenant> {
    set_suspended(registry, schema_name.try_into()?, false).await
}

async fn set_suspended(registry: &Registry, schema: SchemaName, suspended: bool) -> Result<Tenant> {
    let registry = registry.clone();
    let span = tracing::info_span!("tenantry.suspend_tenant", schema = %schema, suspended);
    let work = async move {
        epoch::ensure(&registry).await?;
        let tx = registry.begin().await?;
        let changed = async {
            // Written first, as in drop_tenant.
            epoch::bump(&tx).await?;
            let mut tenant = find_in(&tx, &schema).await?;
            Tenant::query(&tx)
                .filter(Tenant::id().eq(tenant.id))
                .update([Tenant::suspended().set(suspended)])
                .await?;
            tenant.suspended = suspended;
            Ok(tenant)
        }
        .await;
        let tenant = finish(tx, changed).await?;
        tracing::info!(schema = %schema, suspended, "tenant suspension changed");
        Ok(tenant)
    };
    detach(work.instrument(span)).await
}

/// The tenant row of `schema`, read inside `tx`, or [`Error::NotFound`].
async fn find_in(tx: &Transaction, schema: &SchemaName) -> Result<Tenant> {
    Tenant::find(tx, schema)
        .await?
        .map(Instance::into_inner)
        .ok_or(Error::NotFound {
            model: Tenant::META.table,
        })
}

/// Commits `tx` after `work` succeeded, rolls it back after it failed; the work's error is the
/// one returned (a failed rollback is moot: the connection is discarded).
async fn finish<T>(tx: Transaction, work: Result<T>) -> Result<T> {
    match work {
        Ok(value) => tx.commit().await.map(|()| value),
        Err(error) => {
            let _ = tx.rollback().await;
            Err(error)
        }
    }
}

fn check_tenant_name(name: &str) -> Result<()> {
    let reason = if name.trim().is_empty() {
        "it is empty"
    } else if name.chars().count() > MAX_TENANT_NAME {
        "it is longer than 100 characters"
    } else if name.contains('\0') {
        // PostgreSQL text cannot hold NUL: refuse it everywhere, not as a database error.
        "it contains a NUL character"
    } else {
        return Ok(());
    };
    Err(Error::InvalidTenantName {
        name: name.escape_debug().take(120).collect(),
        reason,
    })
}

fn schemas_of<'r>(registry: &'r Registry, database: Option<&str>) -> Result<Schemas<'r>> {
    match database {
        Some(name) => registry.schema_on(name),
        None => Ok(registry.schema()),
    }
}

/// Runs `work` in its own task, so that it completes even if the caller is dropped.
async fn detach<T: Send + 'static>(
    work: impl Future<Output = Result<T>> + Send + 'static,
) -> Result<T> {
    tokio::spawn(work).await.map_err(|join| {
        Error::Database(sqlx::Error::Io(std::io::Error::other(format!(
            "the tenant provisioning task failed: {join}"
        ))))
    })?
}

/// Serializes the provisionings of this process that cannot run in one transaction.
static APART: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How often a provisioning that lost a deadlock is tried again.
const ATTEMPTS: usize = 5;

/// Provisions, trying again when the database picked this transaction as a deadlock victim:
/// InnoDB does so among concurrent inserts of one unique key. Each attempt rolled back
/// completely, and the next one ends in success or a clear error (typically
/// [`Error::UniqueViolation`]).
async fn provision(
    registry: Registry,
    database: Option<String>,
    schema: SchemaName,
    tenant_name: String,
) -> Result<Instance<Tenant>> {
    let row = |tx: Transaction, schema: SchemaName, database: Option<String>| {
        let tenant_name = tenant_name.clone();
        Box::pin(async move {
            Tenant::query(&tx)
                .create(Tenant {
                    id: 0,
                    schema_name: schema.to_string(),
                    tenant_name,
                    created_at: Utc::now(),
                    database,
                    suspended: false,
                })
                .await
        }) as BoxFuture<'static, Result<Instance<Tenant>>>
    };
    provision_with(&registry, database, &schema, &row).await
}

/// The row a provisioning writes, inside the transaction it is given (the schema and the
/// database alias are the tenant's).
type RowInsert<'f, T> = dyn Fn(Transaction, SchemaName, Option<String>) -> BoxFuture<'static, Result<T>>
    + Send
    + Sync
    + 'f;

/// [`provision_once`], tried again when it lost a deadlock.
async fn provision_with<T>(
    registry: &Registry,
    database: Option<String>,
    schema: &SchemaName,
    row: &RowInsert<'_, T>,
) -> Result<T> {
    let mut attempt = 1;
    loop {
        let result = provision_once(registry, database.clone(), schema, row).await;
        match result {
            Err(error) if attempt < ATTEMPTS && is_deadlock(&error) => {
                tracing::debug!(schema = %schema, attempt, "tenant creation lost a deadlock; retrying");
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// Whether the registry has the [`TenantEpoch`](super::TenantEpoch) model (a provisioning
/// for a tenant table of your own may not).
fn has_epoch(registry: &Registry) -> bool {
    registry.models().contains(&super::TenantEpoch::META)
}

/// SQLSTATE 40001 (serialization failure; MySQL's deadlock) or 40P01 (PostgreSQL deadlock).
fn is_deadlock(error: &Error) -> bool {
    matches!(error.database_code().as_deref(), Some("40001" | "40P01"))
}

async fn provision_once<T>(
    registry: &Registry,
    database: Option<String>,
    schema: &SchemaName,
    row: &RowInsert<'_, T>,
) -> Result<T> {
    let schemas = schemas_of(registry, database.as_deref())?;
    let same_transaction = database.is_none() && {
        let capabilities = registry.database().backend().capabilities();
        capabilities.transactional_ddl && capabilities.schema_kind == SchemaKind::Schema
    };
    // Off PostgreSQL the schema is made through other connections while the row's
    // transaction holds one. Concurrent creations in this process queue here rather than in
    // the database, where a loser would sit on a pooled connection (waiting for the winner's
    // row lock) that the winner may need: with a saturated pool, both would wait for ever.
    let _turn = match same_transaction {
        true => None,
        false => Some(APART.lock().await),
    };
    let has_epoch = has_epoch(registry);
    if has_epoch {
        epoch::ensure(registry).await?;
    }
    if registry.migration_set().is_some() {
        // Before the row's transaction: on SQLite it holds the main file's write lock.
        crate::migrate::ensure_ledger(registry.database()).await?;
    }
    let tx = registry.begin().await?;
    // The row's code may write through the transaction but not end it: a commit there
    // would leave a row with no schema.
    let inserted = row(tx.unending(), schema.clone(), database).await;
    let made = match inserted {
        Ok(row) if same_transaction => schemas
            .create_within(&tx, schema, false)
            .await
            .map(|()| (row, false)),
        // `Schemas::create_for_tenant` undoes its own partial work on failure.
        Ok(row) => schemas
            .create_for_tenant(schema, &tx)
            .await
            .map(|()| (row, true)),
        Err(error) => Err(error),
    };
    let (row, created_apart) = match made {
        Ok(made) => made,
        Err(error) => {
            // The row goes with the transaction; a failed rollback is moot (the connection
            // is discarded) and must not hide the cause.
            let _ = tx.rollback().await;
            return Err(error);
        }
    };
    // The epoch changes in the row's transaction: a reader that sees the new epoch sees the
    // row. Bumped last, so its row lock is held only for the commit.
    let bumped = match has_epoch {
        true => epoch::bump(&tx).await,
        false => Ok(()),
    };
    let committed = match bumped {
        Ok(()) => tx.commit().await,
        Err(error) => {
            let _ = tx.rollback().await;
            Err(error)
        }
    };
    if let Err(error) = committed {
        if created_apart {
            let undone = schemas.drop(schema, true, true).await;
            return Err(compensated(
                error,
                "drop the schema of a tenant whose row was not committed",
                undone,
            ));
        }
        return Err(error);
    }
    tracing::info!(schema = %schema, "tenant created");
    Ok(row)
}
