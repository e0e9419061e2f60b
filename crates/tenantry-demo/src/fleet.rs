//! Tenants whose schema is behind the binary's migrations (or whose migration failed) get a
//! 503 with a JSON body while the service serves the others. The set is read from the
//! migration ledger at start and every few seconds after (one ledger query each time).

use std::{
    collections::HashSet,
    sync::{Arc, RwLock},
    time::Duration,
};

use axum::{extract::Request, http::StatusCode, middleware::Next, response::Response};
use tenantry::{migrate::Migrator, SchemaName};

use crate::ApiError;

/// How often the set of behind tenants is read again.
const REFRESH: Duration = Duration::from_secs(2);

/// The tenants that are not at the binary's last migration. Cheap to clone.
#[derive(Clone, Default)]
pub struct BehindTenants {
    inner: Arc<RwLock<HashSet<SchemaName>>>,
}

impl BehindTenants {
    /// Reads the set now, then keeps it fresh in a background task that ends when the last
    /// clone is dropped.
    pub async fn watch(migrator: Migrator) -> tenantry::Result<BehindTenants> {
        let behind = BehindTenants::default();
        behind.refresh(&migrator).await?;
        let weak = Arc::downgrade(&behind.inner);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(REFRESH).await;
                let Some(inner) = weak.upgrade() else { return };
                let behind = BehindTenants { inner };
                if let Err(error) = behind.refresh(&migrator).await {
                    tracing::warn!(%error, "could not read the migration ledger");
                }
            }
        });
        Ok(behind)
    }

    async fn refresh(&self, migrator: &Migrator) -> tenantry::Result<()> {
        let status = migrator.status().await?;
        let behind: HashSet<SchemaName> = status.behind().map(|t| t.tenant.clone()).collect();
        if !behind.is_empty() {
            tracing::warn!(
                count = behind.len(),
                "tenants behind the binary's migrations answer 503; run `tenantry-demo migrate`"
            );
        }
        *self.inner.write().unwrap_or_else(|e| e.into_inner()) = behind;
        Ok(())
    }

    /// Whether `tenant` is behind.
    pub fn contains(&self, tenant: &SchemaName) -> bool {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(tenant)
    }
}

/// Middleware inside the tenant layer: a request for a tenant that is behind is 503.
pub(crate) async fn refuse_behind(
    behind: BehindTenants,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if let Some(tenant) = tenantry::get_tenant() {
        if behind.contains(&tenant) {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "tenant {tenant} is not at this release's schema version yet; \
                     it answers again once `tenantry-demo migrate` has upgraded it"
                ),
            ));
        }
    }
    Ok(next.run(request).await)
}
