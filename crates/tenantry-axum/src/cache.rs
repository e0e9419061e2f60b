//! A small TTL cache of tenant lookups, with explicit invalidation and the tenants epoch.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use crate::roster::Roster;
use tenantry::{
    contrib::{self, Tenant, TenantTable},
    Instance, Registry, Result, SchemaName, TenantInfo, TenantStore,
};

/// The default time an answer is kept.
const DEFAULT_TTL: Duration = Duration::from_secs(30);
/// The default number of names kept.
const DEFAULT_CAPACITY: usize = 10_000;
/// The default time between two reads of the tenants epoch.
const DEFAULT_EPOCH_INTERVAL: Duration = Duration::from_secs(1);

/// Remembers, per schema name, whether it is a tenant (and whether it is suspended), for a
/// time to live, asking a [`TenantStore`]: the [`Tenant`] table by default
/// ([`TenantTable`]), your own tenant table with [`with_store`](Self::with_store).
/// Unknown names are remembered too, so a flood of made-up names costs one query each per
/// TTL; the number of names kept is bounded.
///
/// Changes made by other processes (another server, an operator's command) are seen through
/// the store's epoch ([`TenantStore::epoch`]; for the default store the
/// [tenants epoch](tenantry::contrib::TenantEpoch)): a lookup reads it when the last read
/// is at least the epoch interval old (1 second by default, so at most one extra primary-key
/// read per second), and when it changed, everything cached is forgotten. A tenant created,
/// suspended, resumed or dropped with `tenantry::contrib` anywhere is therefore seen by the
/// next lookup that starts an interval after its commit; the TTL bounds the rest (a failed
/// epoch read also forgets everything, so an unreadable epoch costs caching, not
/// freshness).
///
/// Cheap to clone; clones share the cache. Changes made through
/// [`create_tenant`](Self::create_tenant) and the other methods here are seen by this cache at
/// once. After changing the `tenants` table by hand, call
/// [`contrib::bump_epoch`](tenantry::contrib::bump_epoch) (or [`invalidate`](Self::invalidate)
/// for this cache only).
#[derive(Clone)]
pub struct TenantCache {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    store: Arc<dyn TenantStore>,
    /// Every tenant in memory ([`TenantCache::every_tenant_in_memory`]); domain lookups
    /// always use it.
    in_memory: bool,
    roster: Roster,
    ttl: Duration,
    capacity: usize,
    epoch_interval: Duration,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    entries: HashMap<SchemaName, Entry>,
    /// Bumped by every invalidation: a lookup that started before one does not store its
    /// (possibly stale) answer.
    generation: u64,
    /// The epoch the entries were cached under (`Some(None)`: the store keeps none); `None`
    /// before the first read.
    epoch: Option<Option<u128>>,
    /// When the last epoch read started.
    epoch_read_at: Option<Instant>,
}

struct Entry {
    tenant: Option<TenantInfo>,
    at: Instant,
}

impl std::fmt::Debug for TenantCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantCache")
            .field("ttl", &self.inner.ttl)
            .field("capacity", &self.inner.capacity)
            .field("epoch_interval", &self.inner.epoch_interval)
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

    /// A cache keeping answers for `ttl` (zero: no caching) and at most `capacity` names,
    /// reading the tenants epoch at most once a second.
    pub fn with_limits(registry: Registry, ttl: Duration, capacity: usize) -> Self {
        let store = Arc::new(TenantTable::new(registry.clone()));
        Self::build(registry, store, ttl, capacity, DEFAULT_EPOCH_INTERVAL)
    }

    /// A cache over your own tenant table: `store` answers the lookups (30 seconds, 10,000
    /// names, its epoch read at most once a second). `registry` is the one the tenants live
    /// in; the `contrib` helpers below ([`create_tenant`](Self::create_tenant) …) work on
    /// the [`Tenant`] table only.
    pub fn with_store(registry: Registry, store: Arc<dyn TenantStore>) -> Self {
        Self::build(
            registry,
            store,
            DEFAULT_TTL,
            DEFAULT_CAPACITY,
            DEFAULT_EPOCH_INTERVAL,
        )
    }

    /// The store the tenants are looked up in.
    pub fn store(&self) -> &Arc<dyn TenantStore> {
        &self.inner.store
    }

    /// This cache, reading the tenants epoch at most once per `interval` instead of once a
    /// second: changes made elsewhere are seen within about `interval`. Zero reads it on
    /// every lookup; [`Duration::MAX`] never (the TTL alone then bounds staleness). Returns a
    /// new, empty cache: call it before cloning.
    pub fn with_epoch_interval(self, interval: Duration) -> Self {
        Self::build(
            self.inner.registry.clone(),
            self.inner.store.clone(),
            self.inner.ttl,
            self.inner.capacity,
            interval,
        )
    }

    /// This cache holding every tenant of its store in memory instead of one answer per
    /// name: loaded with one [`TenantStore::list`] on first use, and again when the store's
    /// epoch changes (read at most once per epoch interval), after an invalidation, or when
    /// older than the TTL. A request naming an unknown tenant (a flood of made-up names) is
    /// then answered from memory: it costs the database nothing. For stores of up to some
    /// hundred thousand tenants. Returns a new, empty cache: call it before cloning.
    pub fn every_tenant_in_memory(self) -> Self {
        let mut cache = Self::build(
            self.inner.registry.clone(),
            self.inner.store.clone(),
            self.inner.ttl,
            self.inner.capacity,
            self.inner.epoch_interval,
        );
        if let Some(inner) = Arc::get_mut(&mut cache.inner) {
            inner.in_memory = true;
        }
        cache
    }

    /// The tenant whose custom domain is `host` (see [`TenantInfo::domains`]), from the
    /// tenants held in memory (loaded on first use, as for
    /// [`every_tenant_in_memory`](Self::every_tenant_in_memory)). `host` is compared in
    /// lower case.
    pub async fn lookup_domain(&self, host: &str) -> Result<Option<TenantInfo>> {
        if host.bytes().any(|b| b.is_ascii_uppercase()) {
            return self
                .lookup_lowercase_domain(&host.to_ascii_lowercase())
                .await;
        }
        self.lookup_lowercase_domain(host).await
    }

    /// [`lookup_domain`](Self::lookup_domain) of a host already in lower case (the layer's):
    /// no copy per request.
    pub(crate) async fn lookup_lowercase_domain(&self, host: &str) -> Result<Option<TenantInfo>> {
        self.check_epoch().await;
        let roster = self.roster().await?;
        Ok(roster.domain(host))
    }

    async fn roster(&self) -> Result<Arc<crate::roster::Loaded>> {
        let generation = self.state().generation;
        let ttl = if self.inner.ttl.is_zero() {
            // No caching asked for: a roster per lookup.
            Duration::ZERO
        } else {
            self.inner.ttl
        };
        self.inner
            .roster
            .current(self.inner.store.as_ref(), generation, ttl)
            .await
    }

    fn build(
        registry: Registry,
        store: Arc<dyn TenantStore>,
        ttl: Duration,
        capacity: usize,
        epoch_interval: Duration,
    ) -> Self {
        TenantCache {
            inner: Arc::new(Inner {
                registry,
                store,
                in_memory: false,
                roster: Roster::default(),
                ttl,
                capacity,
                epoch_interval,
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
    /// store. Reads the store's epoch first when it is due.
    pub async fn lookup(&self, schema: &SchemaName) -> Result<Option<TenantInfo>> {
        self.check_epoch().await;
        if self.inner.in_memory {
            return Ok(self.roster().await?.schema(schema));
        }
        let generation = {
            let state = self.state();
            if let Some(entry) = state.entries.get(schema) {
                if entry.at.elapsed() < self.inner.ttl {
                    return Ok(entry.tenant.clone());
                }
            }
            state.generation
        };
        let tenant = self.inner.store.find(schema).await?;
        self.remember(schema, &tenant, generation);
        Ok(tenant)
    }

    fn remember(&self, schema: &SchemaName, tenant: &Option<TenantInfo>, generation: u64) {
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

    /// Reads the tenants epoch if the last read is an interval old, and forgets everything
    /// when it changed (or cannot be read). One lookup reads at a time; the others meanwhile
    /// use the cache.
    async fn check_epoch(&self) {
        if self.inner.ttl.is_zero() {
            // Nothing is cached, so nothing can be stale.
            return;
        }
        let started = Instant::now();
        let previous = {
            let mut state = self.state();
            let due = match state.epoch_read_at {
                Some(at) => at.elapsed() >= self.inner.epoch_interval,
                None => true,
            };
            if !due {
                return;
            }
            state.epoch_read_at.replace(started)
        };
        // Should this lookup be dropped while reading, the next one reads again.
        let mut pending = PendingRead {
            cache: self,
            started,
            previous,
            armed: true,
        };
        let read = self.inner.store.epoch().await;
        pending.armed = false;
        let mut state = self.state();
        match read {
            Ok(epoch) if state.epoch == Some(epoch) => {}
            Ok(epoch) => {
                if state.epoch.is_some() {
                    tracing::debug!("the tenants epoch changed; forgetting cached tenants");
                }
                state.epoch = Some(epoch);
                state.generation += 1;
                state.entries.clear();
            }
            Err(error) => {
                tracing::warn!(%error, "the tenants epoch could not be read; forgetting cached tenants");
                state.epoch = None;
                state.generation += 1;
                state.entries.clear();
            }
        }
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

    /// [`contrib::suspend_tenant`], then [`invalidate`](Self::invalidate).
    pub async fn suspend_tenant(&self, schema: &SchemaName) -> Result<Tenant> {
        let result = contrib::suspend_tenant(self.registry(), schema).await;
        self.invalidate(schema);
        result
    }

    /// [`contrib::resume_tenant`], then [`invalidate`](Self::invalidate).
    pub async fn resume_tenant(&self, schema: &SchemaName) -> Result<Tenant> {
        let result = contrib::resume_tenant(self.registry(), schema).await;
        self.invalidate(schema);
        result
    }
}

/// An epoch read in progress: dropped before it finished, it makes the read due again.
struct PendingRead<'a> {
    cache: &'a TenantCache,
    started: Instant,
    previous: Option<Instant>,
    armed: bool,
}

impl Drop for PendingRead<'_> {
    fn drop(&mut self) {
        if self.armed {
            let mut state = self.cache.state();
            if state.epoch_read_at == Some(self.started) {
                state.epoch_read_at = self.previous;
            }
        }
    }
}
