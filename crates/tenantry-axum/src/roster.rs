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
        let mut by_domain: HashMap<String, Option<SchemaName>> = HashMap::new();
        for tenant in &tenants {
            for domain in &tenant.domains {
                let domain = domain
                    .strip_suffix('.')
                    .unwrap_or(domain)
                    .to_ascii_lowercase();
                by_domain
                    .entry(domain)
                    .and_modify(|owner| {
                        if owner.as_ref() != Some(&tenant.schema) {
                            // Claimed by two tenants: neither's.
                            *owner = None;
                        }
                    })
                    .or_insert_with(|| Some(tenant.schema.clone()));
            }
        }
        let by_domain = by_domain
            .into_iter()
            .filter_map(|(domain, owner)| match owner {
                Some(owner) => Some((domain, owner)),
                None => {
                    tracing::warn!(%domain, "a custom domain claimed by two tenants is served by neither");
                    None
                }
            })
            .collect();
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
    /// The last failed load (when it failed, and its error's text): the callers that were
    /// waiting for it get it too, instead of each reading the store again in turn.
    failed: Mutex<Option<(Instant, String)>>,
}

impl Roster {
    fn loaded(&self) -> MutexGuard<'_, Option<std::sync::Arc<Loaded>>> {
        self.loaded.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn failure(&self) -> MutexGuard<'_, Option<(Instant, String)>> {
        self.failed.lock().unwrap_or_else(|e| e.into_inner())
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
        let waiting_since = Instant::now();
        let _one_load = self.loading.lock().await;
        if let Some(loaded) = fresh(&self.loaded()) {
            return Ok(loaded);
        }
        if let Some((at, error)) = self.failure().as_ref() {
            // A load that failed while this caller waited for it answers for it too.
            if *at >= waiting_since {
                return Err(tenantry::Error::Database(sqlx_io(error)));
            }
        }
        match store.list().await {
            Ok(tenants) => {
                *self.failure() = None;
                let loaded = std::sync::Arc::new(Loaded::new(tenants, generation));
                *self.loaded() = Some(loaded.clone());
                Ok(loaded)
            }
            Err(error) => {
                *self.failure() = Some((Instant::now(), error.to_string()));
                Err(error)
            }
        }
    }
}

/// The error of a load that failed a moment ago, for the callers it answers.
fn sqlx_io(message: &str) -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::other(format!(
        "the tenant list could not be read a moment ago: {message}"
    )))
}
