//! Multi-tenancy: the task's tenant context and schema management.

mod clone;
pub(crate) mod context;
mod directory;
mod directory_admin;
mod fleet;
mod job;
mod pg_drop;
mod schemas;
mod store;

pub use context::{
    activate_schema, deactivate_schema, get_tenant, set_tenant, spawn_with_tenant, tenant_scope,
    with_tenant, with_tenant_in, TenantScope,
};
pub use directory::{Directory, Route};
pub use directory_admin::DirectoryStore;
pub use fleet::{FleetProgress, ForEachTenant, TenantOutcome};
pub use job::TenantContext;
pub use schemas::{create_schema, drop_schema, Schemas};
pub use store::{BoxFuture, TenantInfo, TenantStore};
