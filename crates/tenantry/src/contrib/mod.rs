//! Built-in tenant models and atomic tenant provisioning (Edgy's `edgy.contrib.multi_tenancy`).
//!
//! - [`Tenant`]: one row per tenant, in the shared schema: its schema name, a display name, and
//!   optionally the extra database (a [`Registry::extra`](crate::Registry::extra) name) its
//!   schema lives in;
//! - [`TenantUser`]: which tenants a user belongs to, with at most one active tenant per user;
//! - [`create_tenant`] / [`create_tenant_in`]: insert the row and create the schema and its
//!   tables, all or nothing; [`drop_tenant`]: remove the row, and optionally the data;
//!   [`suspend_tenant`] / [`resume_tenant`]: refuse a tenant service, and give it back;
//! - [`TenantEpoch`]: one row whose value changes with each of those changes, in the same
//!   transaction, so that caches in other processes see them quickly ([`epoch`]).
//!
//! Register the models with [`register`] before
//! [`Registry::create_all`](crate::Registry::create_all):
//!
//! ```no_run
//! use tenantry::{contrib, Database, Registry};
//!
//! # async fn demo() -> tenantry::Result<()> {
//! let registry = contrib::register(Registry::new(Database::connect("sqlite::memory:").await?));
//! registry.create_all().await?;
//! let edgy = contrib::create_tenant(&registry, "edgy", "Edgy").await?;
//! assert_eq!(edgy.schema_name, "edgy");
//! contrib::drop_tenant(&registry, "edgy", true).await?;
//! # Ok(()) }
//! ```

mod directory;
mod epoch;
mod legacy;
mod provision;
mod tenant;
mod tenant_user;

pub(crate) use directory::CheckedEntry;
pub use directory::{DirectoryEntry, TenantState};
pub(crate) use epoch::{bump as bump_epoch_in, ensure as ensure_epoch};
pub use epoch::{bump_epoch, epoch, Epoch, TenantEpoch};
pub use legacy::move_legacy_mysql_tenants;
pub use provision::{
    create_tenant, create_tenant_in, drop_tenant, provision_tenant, resume_tenant, suspend_tenant,
};
pub use tenant::{Tenant, TenantTable};
pub use tenant_user::TenantUser;

use crate::registry::Registry;

/// Registers [`Tenant`], [`TenantUser`] and [`TenantEpoch`] (all shared models) in
/// `registry`.
pub fn register(registry: Registry) -> Registry {
    registry
        .register::<Tenant>()
        .register::<TenantUser>()
        .register::<TenantEpoch>()
}
