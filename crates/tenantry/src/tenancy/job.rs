//! A task's tenant as data, for background jobs that run in another task or process.

use std::future::Future;

use super::context::{context_route, with_tenant, TenantScope};
use crate::{
    error::{Error, Result},
    registry::Registry,
    schema_name::SchemaName,
};

/// The tenant of the current task, captured where a background job is queued, stored with
/// the job (JSON in a queue message or a jobs table) and restored where the job runs: in
/// another task or another process, whose queries then go to the same tenant.
///
/// Its JSON form is `{"tenant":"acme"}` (`{"tenant":null}` for no tenant, the shared
/// schema). Reading it back validates the name ([`SchemaName`]'s rules): a tampered context
/// fails to deserialize rather than reaching the database. Unknown fields are refused.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use tenantry::{with_tenant, SchemaName, TenantContext};
///
/// let acme = SchemaName::parse("acme").unwrap();
/// // Where the job is queued, inside the request's tenant:
/// let queued = with_tenant(Some(acme.clone()), async {
///     serde_json::to_string(&TenantContext::current().unwrap()).unwrap()
/// })
/// .await;
/// assert_eq!(queued, r#"{"tenant":"acme"}"#);
///
/// // Where it runs (another process):
/// let context: TenantContext = serde_json::from_str(&queued).unwrap();
/// let seen = context.run(async { tenantry::get_tenant() }).await;
/// assert_eq!(seen, Some(acme));
///
/// assert!(serde_json::from_str::<TenantContext>(r#"{"tenant":"Robert'); DROP"}"#).is_err());
/// assert!(serde_json::from_str::<TenantContext>("{}").is_err());
/// # });
/// ```
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, try_from = "Stored")]
pub struct TenantContext {
    /// Required when read back: a context without it (`{}`) is refused, not taken for "no
    /// tenant".
    #[serde(deserialize_with = "required")]
    tenant: Option<SchemaName>,
    /// A tenant of the registry's [`Directory`](crate::Directory): run it with
    /// [`run_in`](TenantContext::run_in), which routes it to its database. Written only when
    /// true (`{"tenant":"acme","directory":true}`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    directory: bool,
}

/// A context as stored, checked before it becomes a [`TenantContext`]: a directory context
/// names a tenant.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Stored {
    #[serde(deserialize_with = "required")]
    tenant: Option<SchemaName>,
    #[serde(default)]
    directory: bool,
}

impl TryFrom<Stored> for TenantContext {
    type Error = &'static str;

    fn try_from(stored: Stored) -> std::result::Result<Self, Self::Error> {
        if stored.directory && stored.tenant.is_none() {
            return Err("a directory context names its tenant");
        }
        Ok(TenantContext {
            tenant: stored.tenant,
            directory: stored.directory,
        })
    }
}

/// An `Option` field that must be present (`null` for `None`).
fn required<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<Option<SchemaName>, D::Error> {
    <Option<SchemaName> as serde::Deserialize>::deserialize(deserializer)
}

impl TenantContext {
    /// Where the current task's queries go: its tenant, else its activated schema
    /// ([`activate_schema`](crate::activate_schema)); no tenant outside any scope.
    /// [`Error::TenantConflict`](crate::Error::TenantConflict) inside a scope refused for a conflict, as its queries are.
    ///
    /// Inside a directory tenant's scope ([`Directory::with_tenant`](crate::Directory::with_tenant),
    /// the layer over the directory's store) the context says so, and runs only with
    /// [`run_in`](Self::run_in).
    pub fn current() -> Result<Self> {
        let (tenant, routed) = context_route()?;
        Ok(TenantContext {
            tenant,
            directory: routed.is_some(),
        })
    }

    /// A context for `tenant` (`None`: the shared schema) of the registry's default database.
    pub fn new(tenant: Option<SchemaName>) -> Self {
        TenantContext {
            tenant,
            directory: false,
        }
    }

    /// A context for `tenant`, a tenant of the registry's [`Directory`](crate::Directory).
    pub fn in_directory(tenant: SchemaName) -> Self {
        TenantContext {
            tenant: Some(tenant),
            directory: true,
        }
    }

    /// Whether the tenant is a directory tenant (see [`run_in`](Self::run_in)).
    pub fn is_directory(&self) -> bool {
        self.directory
    }

    /// The tenant.
    pub fn tenant(&self) -> Option<&SchemaName> {
        self.tenant.as_ref()
    }

    /// Runs `future` in this context's tenant, as [`with_tenant`] does.
    ///
    /// A directory tenant's context cannot be routed without the registry: `future` then
    /// runs in a scope that refuses every query that takes its schema from the context
    /// ([`Error::TenantConflict`](crate::Error::TenantConflict) naming
    /// [`run_in`](Self::run_in)), never in a schema of the same name elsewhere.
    pub async fn run<F: Future>(&self, future: F) -> F::Output {
        match (&self.tenant, self.directory) {
            (Some(tenant), true) => TenantScope::refused(
                tenant,
                "a scope without its database: run it with TenantContext::run_in(&registry, ..)",
            )
            .scope(future)
            .await,
            _ => with_tenant(self.tenant.clone(), future).await,
        }
    }

    /// Runs `future` in this context's tenant, routed by `registry`'s
    /// [`Directory`](crate::Directory) for a directory tenant (as
    /// [`Directory::with_tenant`](crate::Directory::with_tenant): an unknown tenant is
    /// [`Error::TenantNotFound`], a suspended one [`Error::TenantSuspended`](crate::Error::TenantSuspended),
    /// and a registry without a directory [`Error::TenantNotFound`] too), else as
    /// [`run`](Self::run).
    pub async fn run_in<F: Future>(&self, registry: &Registry, future: F) -> Result<F::Output> {
        match (&self.tenant, self.directory) {
            (Some(tenant), true) => match registry.tenant_directory() {
                Some(directory) => directory.with_tenant(registry, tenant, future).await,
                None => Err(Error::TenantNotFound {
                    tenant: tenant.to_string(),
                }),
            },
            _ => Ok(with_tenant(self.tenant.clone(), future).await),
        }
    }
}
