//! The built-in `TenantUser` model: which tenants a user belongs to, and the active one.

use serde::Serialize;

use super::Tenant;
use crate::{
    error::{Error, Result},
    instance::Instance,
    model::ForeignKey,
    registry::Registry,
    Model,
};

/// Links a user (by id: the user model is the application's) to a [`Tenant`]. A shared model
/// (table `tenant_users`). A user may belong to many tenants; at most one link per user is
/// active, which [`TenantUser::activate`] and [`TenantUser::link`] enforce in a transaction.
/// Dropping the tenant row deletes its links (`ON DELETE CASCADE`).
#[derive(Model, Debug, Clone, PartialEq, Serialize)]
#[model(shared, table = "tenant_users")]
pub struct TenantUser {
    /// The primary key.
    pub id: i64,
    /// The application's user id.
    #[model(index)]
    pub user_id: i64,
    /// The tenant.
    #[model(on_delete = "cascade")]
    pub tenant: ForeignKey<Tenant>,
    /// Whether this is the user's active tenant.
    #[model(default = false)]
    pub is_active: bool,
}

impl TenantUser {
    /// Links `user_id` to `tenant` (or returns the existing link) and, when `active`, makes
    /// it the user's only active tenant.
    pub async fn link(
        registry: &Registry,
        user_id: i64,
        tenant: &Instance<Tenant>,
        active: bool,
    ) -> Result<Instance<TenantUser>> {
        let tenant_id = tenant.id;
        let existing = TenantUser::query(registry)
            .filter(TenantUser::user_id().eq(user_id) & TenantUser::tenant().eq(tenant_id))
            .first()
            .await?;
        let mut link = match existing {
            Some(link) => link,
            None => {
                TenantUser::query(registry)
                    .create(TenantUser {
                        id: 0,
                        user_id,
                        tenant: ForeignKey::new(tenant_id),
                        is_active: false,
                    })
                    .await?
            }
        };
        if active {
            TenantUser::activate(registry, user_id, tenant_id).await?;
            link.refresh().await?;
        }
        Ok(link)
    }

    /// Makes `tenant_id` the active tenant of `user_id` and deactivates the others, in one
    /// transaction. [`Error::NotFound`] when the user is not linked to that tenant (and
    /// nothing changes).
    pub async fn activate(registry: &Registry, user_id: i64, tenant_id: i64) -> Result<()> {
        registry
            .transaction(|tx| async move {
                // Every link of the user, not only the active ones: the update then locks
                // all of them, so two concurrent activations for one user run one after
                // the other instead of each missing the other's uncommitted row.
                TenantUser::query(&tx)
                    .filter(TenantUser::user_id().eq(user_id))
                    .update([TenantUser::is_active().set(false)])
                    .await?;
                let activated = TenantUser::query(&tx)
                    .filter(TenantUser::user_id().eq(user_id) & TenantUser::tenant().eq(tenant_id))
                    .update([TenantUser::is_active().set(true)])
                    .await?;
                if activated == 0 {
                    return Err(Error::NotFound {
                        model: TenantUser::META.table,
                    });
                }
                Ok(())
            })
            .await
    }

    /// Deactivates every tenant of `user_id`; returns how many links changed.
    pub async fn deactivate_all(registry: &Registry, user_id: i64) -> Result<u64> {
        TenantUser::query(registry)
            .filter(TenantUser::user_id().eq(user_id) & TenantUser::is_active().eq(true))
            .update([TenantUser::is_active().set(false)])
            .await
    }

    /// The active tenant of `user_id`, if any.
    pub async fn active_tenant(
        registry: &Registry,
        user_id: i64,
    ) -> Result<Option<Instance<Tenant>>> {
        let link = TenantUser::query(registry)
            .filter(TenantUser::user_id().eq(user_id) & TenantUser::is_active().eq(true))
            .first()
            .await?;
        match link {
            Some(link) => Ok(Some(link.fetch(&link.tenant).await?)),
            None => Ok(None),
        }
    }
}
