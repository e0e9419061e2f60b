//! Work run in every tenant, a bounded number at a time, with a result per tenant.

use std::{future::Future, panic::AssertUnwindSafe, sync::Arc};

use futures_util::{FutureExt, StreamExt};

use super::context::TenantScope;
use crate::{
    database::Database,
    error::{Error, Result},
    registry::Registry,
    schema_name::SchemaName,
    tenancy::TenantStore,
};

/// One tenant's outcome in a [`ForEachTenant`] run.
#[derive(Debug)]
pub struct TenantOutcome<T> {
    /// The tenant the work ran in.
    pub tenant: SchemaName,
    /// What the work returned; a work that panicked is [`Error::WorkPanicked`].
    pub result: Result<T>,
}

/// How far a [`ForEachTenant`] run has got: given to the progress callback each time a
/// tenant's work ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FleetProgress {
    /// Tenants whose work has ended, failed ones included.
    pub done: usize,
    /// Tenants whose work returned an error (or panicked).
    pub failed: usize,
    /// Tenants in the run.
    pub total: usize,
}

type ProgressFn = Box<dyn Fn(FleetProgress) + Send + Sync>;

/// A run of the same work in many tenants: [`Registry::for_each_tenant`].
pub struct ForEachTenant {
    registry: Registry,
    concurrency: usize,
    tenants: Option<Vec<SchemaName>>,
    store: Option<Arc<dyn TenantStore>>,
    progress: Option<ProgressFn>,
}

impl Registry {
    /// Runs work in every tenant schema of the default database ([`Schemas::list`] when the
    /// run starts), or in the tenants of [`ForEachTenant::store`] or [`ForEachTenant::tenants`], at most `concurrency`
    /// tenants at a time, each inside [`with_tenant`](crate::with_tenant) of its tenant: queries in the work go
    /// to that tenant without a `using`. One tenant's failure (an error or a panic) is its
    /// own [`TenantOutcome`] and does not stop the others.
    ///
    /// ```no_run
    /// # async fn demo(registry: tenantry::Registry) -> tenantry::Result<()> {
    /// # #[derive(tenantry::Model, Clone, Debug)] struct Product { id: i64 }
    /// let counts = registry
    ///     .for_each_tenant(8)
    ///     .on_progress(|p| eprintln!("{}/{} tenants", p.done, p.total))
    ///     .run(|_tenant| {
    ///         let registry = registry.clone();
    ///         async move { Product::query(&registry).count().await }
    ///     })
    ///     .await?;
    /// for outcome in counts {
    ///     println!("{}: {:?}", outcome.tenant, outcome.result);
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// [`Schemas::list`]: crate::Schemas::list
    pub fn for_each_tenant(&self, concurrency: usize) -> ForEachTenant {
        ForEachTenant {
            registry: self.clone(),
            concurrency,
            tenants: None,
            store: None,
            progress: None,
        }
    }
}

impl ForEachTenant {
    /// Runs in these tenants instead of every schema of the database (for example the
    /// rows of your own tenant table), in this order.
    pub fn tenants(mut self, tenants: impl IntoIterator<Item = SchemaName>) -> Self {
        self.tenants = Some(tenants.into_iter().collect());
        self
    }

    /// Runs in the tenants `store` lists when the run starts, suspended ones left out. A
    /// tenant the store routes itself ([`TenantStore::database`], as the
    /// [`Directory`](crate::Directory)'s store does) runs in a scope routed to its database;
    /// one in a registry's extra database (a [`TenantInfo::database`](crate::TenantInfo::database)
    /// the store does not route) is left out: the work would reach it only with
    /// `using_with_db` (give it with [`tenants`](Self::tenants) and route in the work).
    /// [`tenants`](Self::tenants), when given, wins.
    pub fn store(mut self, store: Arc<dyn TenantStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Calls `progress` each time a tenant's work ends (on the task that awaits the run).
    pub fn on_progress(mut self, progress: impl Fn(FleetProgress) + Send + Sync + 'static) -> Self {
        self.progress = Some(Box::new(progress));
        self
    }

    /// Runs `work` once per tenant and returns the outcomes in the order of the tenants.
    /// [`Error::InvalidArgument`] for a concurrency of 0; an error listing the schemas is
    /// returned as is, before any work runs.
    pub async fn run<T, F, Fut>(self, mut work: F) -> Result<Vec<TenantOutcome<T>>>
    where
        F: FnMut(SchemaName) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        if self.concurrency == 0 {
            return Err(Error::InvalidArgument {
                argument: "concurrency",
                reason: "at least one tenant must run at a time",
            });
        }
        let unrouted = |tenants: Vec<SchemaName>| tenants.into_iter().map(|t| (t, None)).collect();
        let tenants: Vec<(SchemaName, Option<Database>)> = match (self.tenants, &self.store) {
            (Some(tenants), _) => unrouted(tenants),
            (None, Some(store)) => routed(store.as_ref()).await?,
            (None, None) => unrouted(self.registry.schema().list().await?),
        };
        let total = tenants.len();
        let runs = tenants
            .into_iter()
            .enumerate()
            .map(|(index, (tenant, database))| {
                // The work is built inside its tenant's scope too (a closure that captures the
                // current tenant captures this one), and a panic while building it is its own.
                let scope = match database {
                    Some(database) => TenantScope::routed(tenant.clone(), database),
                    None => TenantScope::new(Some(tenant.clone())),
                };
                let built = scope.sync_scope(|| {
                    std::panic::catch_unwind(AssertUnwindSafe(|| work(tenant.clone())))
                });
                async move {
                    let result = match built {
                        Ok(run) => scope
                            .scope(AssertUnwindSafe(run).catch_unwind())
                            .await
                            .unwrap_or_else(|panic| Err(panicked(&*panic))),
                        Err(panic) => Err(panicked(&*panic)),
                    };
                    (index, TenantOutcome { tenant, result })
                }
            });
        let mut ended = futures_util::stream::iter(runs).buffer_unordered(self.concurrency);
        let mut outcomes: Vec<Option<TenantOutcome<T>>> = (0..total).map(|_| None).collect();
        let mut progress = FleetProgress {
            done: 0,
            failed: 0,
            total,
        };
        while let Some((index, outcome)) = ended.next().await {
            progress.done += 1;
            progress.failed += usize::from(outcome.result.is_err());
            outcomes[index] = Some(outcome);
            if let Some(report) = &self.progress {
                report(progress);
            }
        }
        Ok(outcomes.into_iter().flatten().collect())
    }
}

/// The active tenants of `store`, each with the database the store routes it to; those in an
/// extra database it does not route are left out.
async fn routed(store: &dyn TenantStore) -> Result<Vec<(SchemaName, Option<Database>)>> {
    let mut tenants = Vec::new();
    for tenant in store.list().await? {
        if tenant.suspended {
            continue;
        }
        match store.database(&tenant).await? {
            Some(database) => tenants.push((tenant.schema, Some(database))),
            None if tenant.database.is_none() => tenants.push((tenant.schema, None)),
            None => {}
        }
    }
    Ok(tenants)
}

/// The error of a work that panicked, with the panic's message when it has one.
fn panicked(panic: &(dyn std::any::Any + Send)) -> Error {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned());
    Error::WorkPanicked { message }
}
