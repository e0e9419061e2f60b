//! Every tenant of a store held in memory, so that requests naming unknown tenants (or
//! hosts) are answered without asking the database.

use std::{
    collections::HashMap,
    sync::{Mutex, MutexGuard},
    time::Instant,
};

use tenantry::{Result, SchemaName, TenantInfo, TenantStore};

/// The tenants of a store, by schema and by custom domain, as loaded at one moment.
pub(crate) struct Loaded {
    by_schema: HashMap<SchemaName, TenantInfo>,
    by_domain: HashMap<String, SchemaName>,
    /// The cache generation it was loaded under: an invalidation or an epoch change makes
    /// it stale.
    generation: u64,
    at: Instant,
}

impl Loaded {
    fn new(tenants: Vec<TenantInfo>, generation: u64) -> Loaded {
        let mut by_domain = HashMap::new();
        for tenant in &tenants {
            for domain in &tenant.domains {
                by_domain.insert(domain.to_ascii_lowercase(), tenant.schema.clone());
            }
        }
        Loaded {
            by_schema: tenants
                .into_iter()
                .map(|tenant| (tenant.schema.clone(), tenant))
                .collect(),
            by_domain,
            generation,
            at: Instant::now(),
        }
    }

    pub(crate) fn schema(&self, schema: &SchemaName) -> Option<TenantInfo> {
        self.by_schema.get(schema).cloned()
    }

    pub(crate) fn domain(&self, host: &str) -> Option<TenantInfo> {
        let schema = self.by_domain.get(host)?;
        self.by_schema.get(schema).cloned()
    }
}

/// The roster of one cache: loaded on first use and again once stale; one load at a time.
#[derive(Default)]
pub(crate) struct Roster {
    loading: tokio::sync::Mutex<()>,
    loaded: Mutex<Option<std::sync::Arc<Loaded>>>,
}

impl Roster {
    fn loaded(&self) -> MutexGuard<'_, Option<std::sync::Arc<Loaded>>> {
        self.loaded.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The roster as of `generation`, no older than `ttl`; loaded from `store` when there is
    /// none. Concurrent callers wait for one load instead of each making one.
    pub(crate) async fn current(
        &self,
        store: &dyn TenantStore,
        generation: u64,
        ttl: std::time::Duration,
    ) -> Result<std::sync::Arc<Loaded>> {
        let fresh = |loaded: &Option<std::sync::Arc<Loaded>>| {
            loaded
                .as_ref()
                .filter(|l| l.generation == generation && l.at.elapsed() < ttl)
                .cloned()
        };
        if let Some(loaded) = fresh(&self.loaded()) {
            return Ok(loaded);
        }
        let _one_load = self.loading.lock().await;
        if let Some(loaded) = fresh(&self.loaded()) {
            return Ok(loaded);
        }
        let loaded = std::sync::Arc::new(Loaded::new(store.list().await?, generation));
        *self.loaded() = Some(loaded.clone());
        Ok(loaded)
    }
}
