//! Multi-tenancy: the task's tenant context and schema management.

pub(crate) mod context;
mod schemas;

pub use context::{
    activate_schema, deactivate_schema, get_tenant, set_tenant, spawn_with_tenant, tenant_scope,
    with_tenant, TenantScope,
};
pub use schemas::{create_schema, drop_schema, Schemas};
