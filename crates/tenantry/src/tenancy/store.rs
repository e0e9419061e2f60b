//! Your tenant table, as tenantry sees it: which schemas are tenants and which of them are
//! suspended.

use crate::{database::Database, error::Result, schema_name::SchemaName};

/// A boxed, sendable future: what [`TenantStore`]'s methods return.
pub type BoxFuture<'a, T> = futures_util::future::BoxFuture<'a, T>;

/// What tenantry needs to know about one tenant, whatever else your tenant table holds
/// (plan, status, custom domains…).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantInfo {
    /// The tenant's schema.
    pub schema: SchemaName,
    /// A suspended tenant keeps its data but is refused service: `tenantry-axum` answers its
    /// requests with its own rejection and runs no query of it.
    pub suspended: bool,
    /// Custom domains (host names, lower case, no port) whose requests are this tenant's:
    /// `tenantry-axum`'s `TenantSource::Domain`.
    pub domains: Vec<String>,
    /// For database-per-tenant: the registry's extra database (a
    /// [`Registry::extra`](crate::Registry::extra) name) that holds the tenant's schema;
    /// `None` for the default database.
    pub database: Option<String>,
}

impl TenantInfo {
    /// An active tenant in `schema`, with no custom domain.
    pub fn active(schema: SchemaName) -> Self {
        TenantInfo {
            schema,
            suspended: false,
            domains: Vec::new(),
            database: None,
        }
    }
}

/// The application's tenant table, for the code that serves and maintains tenants: the
/// `tenantry-axum` layer looks tenants up through it (and refuses suspended ones), and
/// [`ForEachTenant::store`](crate::ForEachTenant::store) runs work in the tenants it lists.
/// [`contrib::TenantTable`](crate::contrib::TenantTable) is the ready-made store over
/// [`contrib::Tenant`](crate::contrib::Tenant); implement it over your own model to let your
/// table drive them.
///
/// ```no_run
/// use tenantry::{BoxFuture, Model, Registry, Result, SchemaName, TenantInfo, TenantStore};
///
/// #[derive(Model, Clone, Debug)]
/// #[model(shared)]
/// struct Organization {
///     id: i64,
///     #[model(max_length = 63, unique)]
///     schema_name: String,
///     #[model(max_length = 20)]
///     plan: String,
///     #[model(max_length = 20)]
///     status: String,
/// }
///
/// struct Organizations(Registry);
///
/// impl TenantStore for Organizations {
///     fn find<'a>(&'a self, schema: &'a SchemaName) -> BoxFuture<'a, Result<Option<TenantInfo>>> {
///         Box::pin(async move {
///             let row = Organization::query(&self.0)
///                 .filter(Organization::schema_name().eq(schema.as_str()))
///                 .first()
///                 .await?;
///             Ok(row.map(|org| TenantInfo {
///                 schema: schema.clone(),
///                 suspended: org.status == "suspended",
///                 domains: Vec::new(),
///                 database: None,
///             }))
///         })
///     }
///
///     fn list(&self) -> BoxFuture<'_, Result<Vec<TenantInfo>>> {
///         Box::pin(async move {
///             let mut tenants = Vec::new();
///             for org in Organization::query(&self.0).all().await? {
///                 tenants.push(TenantInfo {
///                     schema: SchemaName::parse(&org.schema_name)?,
///                     suspended: org.status == "suspended",
///                     domains: Vec::new(),
///                     database: None,
///                 });
///             }
///             Ok(tenants)
///         })
///     }
/// }
/// ```
pub trait TenantStore: Send + Sync + 'static {
    /// The tenant whose schema is `schema`; `None` when there is none.
    fn find<'a>(&'a self, schema: &'a SchemaName) -> BoxFuture<'a, Result<Option<TenantInfo>>>;

    /// Every tenant.
    fn list(&self) -> BoxFuture<'_, Result<Vec<TenantInfo>>>;

    /// A value that changes whenever a tenant is created, suspended, resumed or dropped, read
    /// by caches in every process (at most once a second by `tenantry-axum`'s) so that they
    /// see such changes quickly. `None` (the default) when the store keeps no such value: a
    /// cache then relies on its time to live alone.
    fn epoch(&self) -> BoxFuture<'_, Result<Option<u128>>> {
        Box::pin(async { Ok(None) })
    }

    /// The database a tenant's queries are routed to, when the store routes tenants itself
    /// (the [`Directory`](crate::Directory)'s store does: `tenantry-axum`'s layer then runs
    /// the request in [`with_tenant_in`](crate::with_tenant_in)). `None` (the default): the
    /// registry's databases, as each query names them.
    fn database<'a>(&'a self, info: &'a TenantInfo) -> BoxFuture<'a, Result<Option<Database>>> {
        let _ = info;
        Box::pin(async { Ok(None) })
    }
}
