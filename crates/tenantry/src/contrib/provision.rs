//! Creating and dropping tenants: the row and the schema kept in step (DESIGN 4.7).

use std::future::Future;

use chrono::Utc;
use tracing::Instrument;

use super::Tenant;
use crate::{
    backend::SchemaKind,
    error::{Error, Result},
    instance::Instance,
    registry::Registry,
    schema_name::SchemaName,
    tenancy::Schemas,
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
/// failure is returned with nothing left behind. The work runs in its own task, so dropping
/// the returned future (a client that hung up) does not interrupt it half way.
///
/// Errors: [`Error::InvalidSchemaName`]; [`Error::InvalidTenantName`] for an empty name, one
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
    let span = tracing::info_span!("tenantry.create_tenant", schema = %schema);
    let work = provision(registry.clone(), None, schema, tenant_name.to_owned());
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
    registry.extra_database(database)?;
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
/// [`TenantUser`](super::TenantUser) links), then, only when `drop_data`, drops its schema
/// with every table in it. Returns the removed row. A name with no tenant row is
/// [`Error::NotFound`]. The row goes first, so the tenant stops resolving before its data
/// disappears; should dropping the schema then fail, the error is returned and
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
        let tenant = Tenant::find(&registry, &schema)
            .await?
            .ok_or(Error::NotFound {
                model: Tenant::META.table,
            })?;
        let schemas = schemas_of(&registry, tenant.database.as_deref())?;
        let row = tenant.delete().await?;
        if drop_data {
            schemas.drop(&schema, true, true).await?;
        }
        Ok(row)
    };
    detach(work.instrument(span)).await
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
    let mut attempt = 1;
    loop {
        let result =
            provision_once(&registry, database.clone(), &schema, tenant_name.clone()).await;
        match result {
            Err(error) if attempt < ATTEMPTS && is_deadlock(&error) => {
                tracing::debug!(schema = %schema, attempt, "tenant creation lost a deadlock; retrying");
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// SQLSTATE 40001 (serialization failure; MySQL's deadlock) or 40P01 (PostgreSQL deadlock).
fn is_deadlock(error: &Error) -> bool {
    matches!(error.database_code().as_deref(), Some("40001" | "40P01"))
}

async fn provision_once(
    registry: &Registry,
    database: Option<String>,
    schema: &SchemaName,
    tenant_name: String,
) -> Result<Instance<Tenant>> {
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
    let tx = registry.begin().await?;
    let inserted = Tenant::query(&tx)
        .create(Tenant {
            id: 0,
            schema_name: schema.to_string(),
            tenant_name,
            created_at: Utc::now(),
            database,
        })
        .await;
    let made = match inserted {
        Ok(row) if same_transaction => schemas
            .create_within(&tx, schema, false)
            .await
            .map(|()| (row, false)),
        // `Schemas::create` undoes its own partial work on failure.
        Ok(row) => schemas
            .create(schema, None, false, true)
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
    if let Err(error) = tx.commit().await {
        if created_apart {
            if let Err(cleanup) = schemas.drop(schema, true, true).await {
                tracing::error!(schema = %schema, %cleanup, "could not drop the schema of a tenant whose row failed to commit");
            }
        }
        return Err(error);
    }
    tracing::info!(schema = %schema, "tenant created");
    Ok(row)
}
