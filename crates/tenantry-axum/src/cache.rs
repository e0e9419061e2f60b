//! A small TTL cache of tenant lookups, with explicit invalidation.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use tenantry::{
    contrib::{self, Tenant},
    Instance, Registry, Result, SchemaName,
};

/// The default time an answer is kept.
const DEFAULT_TTL: Duration = Duration::from_secs(30);
/// The default number of names kept.
const DEFAULT_CAPACITY: usize = 10_000;

/// Remembers, per schema name, whether it is a tenant (and its row), for a time to live.
/// Unknown names are remembered too, so a flood of made-up names costs one query each per
/// TTL; the number of names kept is bounded.
///
/// Cheap to clone; clones share the cache. Create and drop tenants through
/// [`create_tenant`](Self::create_tenant) / [`drop_tenant`](Self::drop_tenant) so the change is
/// seen at once, or call [`invalidate`](Self::invalidate) after changing the `tenants` table
/// another way; other processes see a change within the TTL.
#[derive(Clone)]
pub struct TenantCache {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    ttl: Duration,
    capacity: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    entries: HashMap<SchemaName, Entry>,
    /// Bumped by every invalidation: a lookup that started before one does not store its
    /// (possibly stale) answer.
    generation: u64,
}

struct Entry {
    tenant: Option<Tenant>,
    at: Instant,
}

impl std::fmt::Debug for TenantCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantCache")
            .field("ttl", &self.inner.ttl)
            .field("capacity", &self.inner.capacity)
            .field("entries", &self.state().entries.len())
            .finish()
    }
}

impl TenantCache {
    /// A cache over the [`Tenant`] table of `registry`: answers kept 30 seconds, 10,000
    /// names at most.
    pub fn new(registry: Registry) -> Self {
        Self::with_limits(registry, DEFAULT_TTL, DEFAULT_CAPACITY)
    }

    /// A cache keeping answers for `ttl` (zero: no caching) and at most `capacity` names.
    pub fn with_limits(registry: Registry, ttl: Duration, capacity: usize) -> Self {
        TenantCache {
            inner: Arc::new(Inner {
                registry,
                ttl,
                capacity,
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// The registry the tenants are looked up in.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The tenant whose schema is `schema`, from the cache while fresh, else from the
    /// database.
    pub async fn lookup(&self, schema: &SchemaName) -> Result<Option<Tenant>> {
        let generation = {
            let state = self.state();
            if let Some(entry) = state.entries.get(schema) {
                if entry.at.elapsed() < self.inner.ttl {
                    return Ok(entry.tenant.clone());
                }
            }
            state.generation
        };
        let tenant = Tenant::find(self.registry(), schema)
            .await?
            .map(Instance::into_inner);
        self.store(schema, &tenant, generation);
        Ok(tenant)
    }

    fn store(&self, schema: &SchemaName, tenant: &Option<Tenant>, generation: u64) {
        if self.inner.ttl.is_zero() || self.inner.capacity == 0 {
            return;
        }
        let mut state = self.state();
        if state.generation != generation {
            return;
        }
        if state.entries.len() >= self.inner.capacity && !state.entries.contains_key(schema) {
            let ttl = self.inner.ttl;
            state.entries.retain(|_, e| e.at.elapsed() < ttl);
            if state.entries.len() >= self.inner.capacity {
                state.entries.clear();
            }
        }
        state.entries.insert(
            schema.clone(),
            Entry {
                tenant: tenant.clone(),
                at: Instant::now(),
            },
        );
    }

    /// Forgets what is known about `schema`; the next lookup asks the database.
    pub fn invalidate(&self, schema: &SchemaName) {
        let mut state = self.state();
        state.generation += 1;
        state.entries.remove(schema);
    }

    /// Forgets everything.
    pub fn clear(&self) {
        let mut state = self.state();
        state.generation += 1;
        state.entries.clear();
    }

    /// [`contrib::create_tenant`], then [`invalidate`](Self::invalidate).
    pub async fn create_tenant(
        &self,
        schema: &SchemaName,
        tenant_name: &str,
    ) -> Result<Instance<Tenant>> {
        let result = contrib::create_tenant(self.registry(), schema, tenant_name).await;
        self.invalidate(schema);
        result
    }

    /// [`contrib::drop_tenant`], then [`invalidate`](Self::invalidate).
    pub async fn drop_tenant(&self, schema: &SchemaName, drop_data: bool) -> Result<Tenant> {
        let result = contrib::drop_tenant(self.registry(), schema, drop_data).await;
        self.invalidate(schema);
        result
    }
}
