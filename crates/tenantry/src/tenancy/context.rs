//! The tenant of the current task: `with_tenant`, `set_tenant`, `activate_schema`.
//!
//! The context is a `tokio::task_local!`: it belongs to one task and is never shared, so two
//! concurrent requests for different tenants cannot see each other's. A spawned task starts
//! without it; [`spawn_with_tenant`] carries it over explicitly.
//!
//! Several futures polled by one task (`join!`, `select!`, `join_all`) share its context, so a
//! scope's tenant is fixed once and a conflicting change poisons the scope; each branch gets
//! its own scope instead. The rules and the safe pattern are documented on [`with_tenant`]
//! (the crate's modules are private; that is where readers of the API docs find them).
//!
//! # Scopes outside their future
//!
//! A response body, a stream or a callback polled after the future that created the scope
//! returned runs outside it. [`TenantScope`] is a handle on a scope that can be entered again:
//! [`TenantScope::sync_scope`] runs one poll (or any closure) inside it, and
//! [`TenantScope::scope`] a whole future. `tenantry-axum` uses it so that the tenant covers a
//! streamed response body.

use std::{
    future::Future,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

use crate::{
    database::Database,
    error::{Error, Result},
    schema_name::SchemaName,
};

#[derive(Clone, Default)]
struct Scope {
    /// The scope's tenant, fixed once set.
    tenant: Option<SchemaName>,
    /// The database the tenant lives in, when a [`Directory`](crate::Directory) routed it
    /// there (fixed with the tenant); `None`: the database each query names.
    database: Option<Database>,
    /// The activated schema, while activated.
    active: Option<SchemaName>,
    /// The first schema activated in this scope: the only one that may be activated again.
    activated: Option<SchemaName>,
    /// Set by a refused change: every query of the scope that follows the context fails.
    conflict: Option<Conflict>,
    /// The schema the first query that followed the context ran in, while the scope had no
    /// tenant: a later `set_tenant` may not move the scope (and so a sibling future that
    /// already ran there) elsewhere.
    observed: Option<Option<SchemaName>>,
}

#[derive(Clone)]
struct Conflict {
    current: String,
    requested: String,
}

impl Conflict {
    fn new(current: Option<&SchemaName>, requested: Option<&SchemaName>) -> Self {
        let name = |s: Option<&SchemaName>| s.map_or_else(|| "none".to_owned(), |s| s.to_string());
        Conflict {
            current: name(current),
            requested: name(requested),
        }
    }

    fn error(&self) -> Error {
        Error::TenantConflict {
            current: self.current.clone(),
            requested: self.requested.clone(),
        }
    }
}

type Cell = Arc<Mutex<Scope>>;

tokio::task_local! {
    static SCOPE: Cell;
}

/// Locks a scope; a panic while it was locked (none of the code holding the lock panics)
/// leaves its state intact, so a poisoned lock is used as is.
fn lock(cell: &Cell) -> MutexGuard<'_, Scope> {
    cell.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs `f` on the current scope, or returns `None` outside any.
fn with_scope<R>(f: impl FnOnce(&mut Scope) -> R) -> Option<R> {
    SCOPE.try_with(|cell| f(&mut lock(cell))).ok()
}

/// A tenant scope as a value: it can be entered more than once, from code that does not run
/// inside the future that created it (a response body polled by the server after the handler
/// returned, a stream, a callback).
///
/// Entering a `TenantScope` enters *that* scope, not a copy: a [`set_tenant`] made inside
/// one entry is seen by the next, and a conflict poisons it for all (see
/// [several tenants in one task](with_tenant#several-tenants-in-one-task)). Clones share the
/// scope. Cheap to clone.
///
/// ```no_run
/// # use tenantry::{SchemaName, TenantScope};
/// # fn demo(tenant: SchemaName) {
/// let scope = TenantScope::new(Some(tenant));
/// // Later, maybe in another task or thread: run one synchronous step inside the scope.
/// let seen = scope.sync_scope(tenantry::get_tenant);
/// assert_eq!(seen, scope.tenant());
/// # }
/// ```
#[derive(Clone)]
pub struct TenantScope {
    cell: Cell,
}

impl std::fmt::Debug for TenantScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scope = lock(&self.cell);
        f.debug_struct("TenantScope")
            .field("tenant", &scope.tenant.as_ref().map(SchemaName::as_str))
            .field("active", &scope.active.as_ref().map(SchemaName::as_str))
            .field("conflict", &scope.conflict.is_some())
            .finish()
    }
}

impl TenantScope {
    /// A new scope whose tenant is `tenant` (`None`: no tenant yet, the shared schema).
    pub fn new(tenant: Option<SchemaName>) -> Self {
        TenantScope {
            cell: Arc::new(Mutex::new(Scope {
                tenant,
                ..Scope::default()
            })),
        }
    }

    /// A scope for `tenant` that refuses every query taking its schema from the context, with
    /// [`Error::TenantConflict`] saying `why`.
    pub(crate) fn refused(tenant: &SchemaName, why: &str) -> Self {
        let conflict = Conflict {
            current: format!("directory tenant {tenant}"),
            requested: why.to_owned(),
        };
        TenantScope {
            cell: Arc::new(Mutex::new(Scope {
                tenant: Some(tenant.clone()),
                conflict: Some(conflict),
                ..Scope::default()
            })),
        }
    }

    /// The scope the current task is in (the same scope, not a copy), or `None` outside any.
    pub fn current() -> Option<Self> {
        SCOPE
            .try_with(|cell| TenantScope { cell: cell.clone() })
            .ok()
    }

    /// A new scope for `tenant`, whose schema lives in `database` (a tenant routed by the
    /// [`Directory`](crate::Directory)): every query of a tenant model that takes its schema
    /// from the context goes there, whatever database its source names, and
    /// [`Registry::begin`](crate::Registry::begin) begins there.
    pub fn routed(tenant: SchemaName, database: Database) -> Self {
        TenantScope {
            cell: Arc::new(Mutex::new(Scope {
                tenant: Some(tenant),
                database: Some(database),
                ..Scope::default()
            })),
        }
    }

    /// The scope's tenant.
    pub fn tenant(&self) -> Option<SchemaName> {
        lock(&self.cell).tenant.clone()
    }

    /// Runs `future` inside this scope: every poll of it enters the scope.
    pub fn scope<F: Future>(&self, future: F) -> impl Future<Output = F::Output> {
        SCOPE.scope(self.cell.clone(), future)
    }

    /// Runs the synchronous `f` inside this scope, for example one `poll` of a future,
    /// stream or body that outlives the future that created the scope.
    ///
    /// Calling it from inside `f` (re-entering) is fine; tenantry never calls user code while
    /// it holds the scope, so this does not fail.
    pub fn sync_scope<R>(&self, f: impl FnOnce() -> R) -> R {
        SCOPE.sync_scope(self.cell.clone(), f)
    }
}

/// Runs `future` with `tenant` as the current tenant: every query inside it that does not say
/// otherwise goes to that tenant's schema. `None` runs it in a scope with no tenant (the
/// shared schema), inside which [`set_tenant`] may choose one later.
///
/// Each call makes a new scope, so sibling futures polled by one task (`join!`, `select!`,
/// `join_all`) that each run in their own `with_tenant` never see each other's tenant.
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
///
/// # Several tenants in one task
///
/// A task-local is shared by every future the task polls: the branches of `join!`, `select!`
/// or `join_all` all live in the scope of the task that polls them. A branch that switched
/// the scope's tenant would switch it for its siblings too (code ported from Edgy does
/// exactly that: `set_tenant(a)` in one branch, `set_tenant(b)` in the next, and the first
/// branch reads `b` after its next `.await`). tenantry therefore fixes a scope's tenant once:
///
/// - [`set_tenant`] may choose the tenant of a scope that has none yet, or repeat the one it
///   has; any other change (another tenant, or clearing one with `None`) is refused with
///   [`Error::TenantConflict`], and the scope is *poisoned*: from then on every query in it
///   that takes its schema from the context fails with that error, in every branch. A branch
///   that ignored the error can therefore never read or write another branch's tenant; it
///   fails closed.
/// - [`with_tenant`] fixes the tenant when the scope is created; `set_tenant` of another
///   tenant inside it is the same conflict.
/// - [`activate_schema`] follows the same rule for the activated schema: the first schema
///   activated in a scope is the only one that may be activated in it;
///   [`deactivate_schema`] then [`activate_schema`] of that same schema again works, another
///   schema is a conflict that poisons the scope. A sibling's `deactivate_schema` does send the
///   other branches back to the default (shared) schema, which is never a tenant's; do not
///   activate and deactivate schemas in branches of one task, give each its own scope.
///
/// To serve several tenants from one task, give each branch its own scope; the scopes of
/// sibling futures never see each other:
///
/// ```no_run
/// # use tenantry::{with_tenant, Model, Registry, SchemaName};
/// # #[derive(Model, Debug, Clone)] struct Product { id: i64, name: String }
/// # async fn demo(registry: Registry, tenants: Vec<SchemaName>) -> tenantry::Result<()> {
/// // One future per tenant, each inside its own `with_tenant`.
/// let counts = tenants.iter().map(|tenant| {
///     with_tenant(Some(tenant.clone()), Product::query(&registry).count())
/// });
/// let counts: Vec<u64> = futures_util::future::try_join_all(counts).await?;
///
/// // The same with join! and select!.
/// let (a, b) = tokio::join!(
///     with_tenant(Some(tenants[0].clone()), Product::query(&registry).count()),
///     with_tenant(Some(tenants[1].clone()), Product::query(&registry).count()),
/// );
/// # let _ = (counts, a, b);
/// # Ok(()) }
/// ```
///
/// To switch tenants sequentially, open a new scope for each: nested `with_tenant` scopes
/// replace the outer one for their duration and never change it.
pub async fn with_tenant<F: Future>(tenant: Option<SchemaName>, future: F) -> F::Output {
    TenantScope::new(tenant).scope(future).await
}

/// Runs `future` with `tenant` as the current tenant, whose schema lives in `database`: as
/// [`with_tenant`], and every query of a tenant model that takes its schema from the context
/// runs on `database` (see [`TenantScope::routed`]). This is what
/// [`Directory::with_tenant`](crate::Directory::with_tenant) runs after looking the tenant
/// up; use it directly only with a database that holds no shared schema of the application.
pub async fn with_tenant_in<F: Future>(
    database: Database,
    tenant: SchemaName,
    future: F,
) -> F::Output {
    TenantScope::routed(tenant, database).scope(future).await
}

/// Runs `future` in an empty tenant scope, in which [`set_tenant`] and [`activate_schema`]
/// may be called.
pub async fn tenant_scope<F: Future>(future: F) -> F::Output {
    with_tenant(None, future).await
}

/// Sets the tenant of the current scope, for the rest of it (Edgy's `set_tenant`, as a
/// middleware would call it before the handler runs).
///
/// A scope's tenant is chosen once: this succeeds when the scope has no tenant yet (and no
/// other schema was chosen for it: an activated schema, or a query that already ran in the
/// scope on the default or activated schema), or when `tenant` is the one it has. Any other
/// change, to another tenant or back to `None`, is
/// [`Error::TenantConflict`] and poisons the scope: every later query in it that takes its
/// schema from the context fails with the same error (see [several tenants in one task](with_tenant#several-tenants-in-one-task)). To switch
/// tenants, open a new scope with [`with_tenant`].
///
/// What cannot be refused: a scope is shared by every future polled in it, so a sibling
/// (`join!`, `select!`, `join_all`) that has not yet run any query follows the tenant set
/// here, exactly like the code after this call in the same future (the two cannot be told
/// apart). Siblings that already ran a query in the scope are protected: the set is refused
/// and the scope fails closed. Give each branch its own [`with_tenant`] scope.
///
/// Outside a scope this is [`Error::NoTenantScope`], never a process-wide switch.
pub fn set_tenant(tenant: Option<SchemaName>) -> Result<()> {
    with_scope(|scope| {
        if let Some(conflict) = &scope.conflict {
            return Err(conflict.error());
        }
        match &scope.tenant {
            None => {
                // The scope's schema may be chosen already, by an activated schema or by a
                // query that followed the context: a tenant may only confirm it.
                let chosen = match &scope.active {
                    Some(active) => Some(Some(active.clone())),
                    None => scope.observed.clone(),
                };
                match chosen {
                    Some(chosen) if tenant.is_some() && chosen != tenant => {
                        let conflict = Conflict::new(chosen.as_ref(), tenant.as_ref());
                        let error = conflict.error();
                        scope.conflict = Some(conflict);
                        Err(error)
                    }
                    _ => {
                        scope.tenant = tenant;
                        Ok(())
                    }
                }
            }
            Some(current) if tenant.as_ref() == Some(current) => Ok(()),
            Some(current) => {
                let conflict = Conflict::new(Some(current), tenant.as_ref());
                let error = conflict.error();
                scope.conflict = Some(conflict);
                Err(error)
            }
        }
    })
    .unwrap_or(Err(Error::NoTenantScope {
        operation: "set_tenant",
    }))
}

/// The tenant of the current scope, if any.
///
/// In a scope poisoned by a refused [`set_tenant`] this is still the tenant the scope had
/// first; queries that take their schema from the context fail there, but a schema read
/// here and passed to `using(..)` by hand is not checked.
pub fn get_tenant() -> Option<SchemaName> {
    with_scope(|scope| scope.tenant.clone()).flatten()
}

/// Makes `schema` the schema of unqualified queries for the rest of the current scope
/// (Edgy's `activate_schema`). A tenant set with [`with_tenant`] / [`set_tenant`] takes
/// precedence. Outside a scope this is [`Error::NoTenantScope`].
///
/// The first schema activated in a scope is the only one that may be activated in it:
/// activating it again (also after [`deactivate_schema`]) works, activating another one is
/// [`Error::TenantConflict`] and poisons the scope like a conflicting [`set_tenant`], so that
/// a sibling future of the same task can never move the others to its schema. Use a new
/// scope ([`tenant_scope`]) for another schema.
pub fn activate_schema(schema: impl TryInto<SchemaName, Error = Error>) -> Result<()> {
    let schema = schema.try_into()?;
    with_scope(|scope| {
        if let Some(conflict) = &scope.conflict {
            return Err(conflict.error());
        }
        match &scope.activated {
            Some(first) if *first != schema => {
                let conflict = Conflict::new(Some(first), Some(&schema));
                let error = conflict.error();
                scope.conflict = Some(conflict);
                Err(error)
            }
            _ => {
                scope.activated = Some(schema.clone());
                scope.active = Some(schema);
                Ok(())
            }
        }
    })
    .unwrap_or(Err(Error::NoTenantScope {
        operation: "activate_schema",
    }))
}

/// Undoes [`activate_schema`]: unqualified queries go back to the default schema. The
/// schema activated first stays the only one that may be activated again in this scope.
/// In a poisoned scope this is its [`Error::TenantConflict`].
pub fn deactivate_schema() -> Result<()> {
    with_scope(|scope| {
        if let Some(conflict) = &scope.conflict {
            return Err(conflict.error());
        }
        scope.active = None;
        Ok(())
    })
    .unwrap_or(Err(Error::NoTenantScope {
        operation: "deactivate_schema",
    }))
}

/// The schema the context chooses (the tenant, else the activated schema; `None` outside a
/// scope) and the database it lives in when the scope was routed there. A poisoned scope is
/// its [`Error::TenantConflict`].
pub(crate) fn context_route() -> Result<(Option<SchemaName>, Option<Database>)> {
    with_scope(|scope| {
        if let Some(conflict) = &scope.conflict {
            return Err(conflict.error());
        }
        if let Some(tenant) = &scope.tenant {
            return Ok((Some(tenant.clone()), scope.database.clone()));
        }
        if scope.observed.is_none() {
            scope.observed = Some(scope.active.clone());
        }
        Ok((scope.active.clone(), None))
    })
    .unwrap_or(Ok((None, None)))
}

/// The database of a routed scope whose tenant is `schema`: a query that names its own
/// tenant's schema with `using(..)` goes where the scope's other queries go, not to a schema
/// of the same name in the default database.
pub(crate) fn routed_database_of(schema: &SchemaName) -> Option<Database> {
    with_scope(|scope| match (&scope.tenant, &scope.database) {
        (Some(tenant), Some(database)) if tenant == schema => Some(database.clone()),
        _ => None,
    })
    .flatten()
}

/// Spawns `future` on the tokio runtime inside a copy of the current tenant scope (tenant,
/// activated schema, and a conflict if the scope is poisoned), which `tokio::spawn` alone
/// would drop. The copy is the spawned task's own: a [`set_tenant`] there does not reach back.
pub fn spawn_with_tenant<F>(future: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let scope = with_scope(|scope| scope.clone()).unwrap_or_default();
    let scope = TenantScope {
        cell: Arc::new(Mutex::new(scope)),
    };
    tokio::spawn(scope.scope(future))
}
