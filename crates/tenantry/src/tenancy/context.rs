//! The tenant of the current task: `with_tenant`, `set_tenant`, `activate_schema`.
//!
//! The context is a `tokio::task_local!`: it belongs to one task and is never shared, so two
//! concurrent requests for different tenants cannot see each other's. A spawned task starts
//! without it; [`spawn_with_tenant`] carries it over explicitly.

use std::{cell::RefCell, future::Future};

use crate::{
    error::{Error, Result},
    schema_name::SchemaName,
};

#[derive(Clone, Default)]
struct Scope {
    tenant: Option<SchemaName>,
    active: Option<SchemaName>,
}

tokio::task_local! {
    static SCOPE: RefCell<Scope>;
}

/// Runs `future` with `tenant` as the current tenant: every query inside it that does not say
/// otherwise goes to that tenant's schema. `None` runs it in a scope with no tenant (the
/// shared schema), inside which [`set_tenant`] may choose one later.
///
/// ```no_run
/// # use tenantry::{with_tenant, SchemaName};
/// # async fn demo() -> tenantry::Result<()> {
/// let edgy = SchemaName::parse("edgy")?;
/// with_tenant(Some(edgy), async {
///     // Product::query(&registry).all().await …
/// })
/// .await;
/// # Ok(()) }
/// ```
pub async fn with_tenant<F: Future>(tenant: Option<SchemaName>, future: F) -> F::Output {
    let scope = Scope {
        tenant,
        active: None,
    };
    SCOPE.scope(RefCell::new(scope), future).await
}

/// Runs `future` in an empty tenant scope, in which [`set_tenant`] and [`activate_schema`]
/// may be called.
pub async fn tenant_scope<F: Future>(future: F) -> F::Output {
    with_tenant(None, future).await
}

/// Sets (or with `None`, clears) the tenant of the current scope, for the rest of it.
/// Outside a scope this is [`Error::NoTenantScope`], never a process-wide switch.
pub fn set_tenant(tenant: Option<SchemaName>) -> Result<()> {
    SCOPE
        .try_with(|scope| scope.borrow_mut().tenant = tenant)
        .map_err(|_| Error::NoTenantScope {
            operation: "set_tenant",
        })
}

/// The tenant of the current scope, if any.
pub fn get_tenant() -> Option<SchemaName> {
    SCOPE
        .try_with(|scope| scope.borrow().tenant.clone())
        .ok()
        .flatten()
}

/// Makes `schema` the schema of unqualified queries for the rest of the current scope
/// (Edgy's `activate_schema`). A tenant set with [`with_tenant`] / [`set_tenant`] takes
/// precedence. Outside a scope this is [`Error::NoTenantScope`].
pub fn activate_schema(schema: impl TryInto<SchemaName, Error = Error>) -> Result<()> {
    let schema = schema.try_into()?;
    SCOPE
        .try_with(|scope| scope.borrow_mut().active = Some(schema))
        .map_err(|_| Error::NoTenantScope {
            operation: "activate_schema",
        })
}

/// Undoes [`activate_schema`]: unqualified queries go back to the default schema.
pub fn deactivate_schema() -> Result<()> {
    SCOPE
        .try_with(|scope| scope.borrow_mut().active = None)
        .map_err(|_| Error::NoTenantScope {
            operation: "deactivate_schema",
        })
}

/// The schema the context chooses: the tenant, else the activated schema.
pub(crate) fn context_schema() -> Option<SchemaName> {
    SCOPE
        .try_with(|scope| {
            let scope = scope.borrow();
            scope.tenant.clone().or_else(|| scope.active.clone())
        })
        .ok()
        .flatten()
}

/// Spawns `future` on the tokio runtime inside a copy of the current tenant scope (tenant and
/// activated schema), which `tokio::spawn` alone would drop.
pub fn spawn_with_tenant<F>(future: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let scope = SCOPE.try_with(|s| s.borrow().clone()).unwrap_or_default();
    tokio::spawn(SCOPE.scope(RefCell::new(scope), future))
}
