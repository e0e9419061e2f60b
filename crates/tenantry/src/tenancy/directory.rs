//! The tenant directory: which server and database each tenant lives in, and the pools that
//! reach them within one connection budget.

use std::{
    collections::HashMap,
    future::Future,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use hashlink::LruCache;

use crate::{
    backend::Backend,
    contrib::{CheckedEntry, DirectoryEntry, TenantState},
    database::{backend_of, ConnectionBudget, Database, DatabaseOptions},
    error::{Error, Result},
    registry::Registry,
    schema_name::SchemaName,
    tenancy::context::with_tenant_in,
};

/// How long a route is trusted before the tenants epoch is read again.
const EPOCH_CHECK: Duration = Duration::from_secs(1);
/// The most tenants (known or not) whose routes are remembered.
const ROUTES_CACHED: usize = 100_000;

/// Where tenants live when they do not all live in the registry's default database: a table
/// in the shared schema ([`DirectoryEntry`]) maps each tenant to a server alias, a database
/// on that server and a state; the servers' URLs (and so their credentials) come from this
/// configuration, by alias, never from the table, and never appear in logs or errors.
///
/// Pools are keyed by server and database, never by tenant, opened on first use, and all of
/// them together stay within one [`ConnectionBudget`]: when it is used up, the idle
/// connections of the least recently used pool are closed to make room; when every
/// connection is busy, a query waits up to the budget's wait and then fails with
/// [`Error::ConnectionBudgetExhausted`].
///
/// Routing: [`with_tenant`](Self::with_tenant) runs work in a tenant's scope whose queries go
/// to its database; `tenantry-axum`'s layer does the same for each request when its store is
/// [`store`](Self::store). Shared models stay in the registry's default database; a join from
/// a directory tenant to one is [`Error::Unsupported`] (the two are in different databases).
///
/// ```no_run
/// use std::time::Duration;
/// use tenantry::{contrib, ConnectionBudget, Database, Directory, Registry};
///
/// # async fn demo() -> tenantry::Result<()> {
/// let budget = ConnectionBudget::new(40).wait(Duration::from_secs(2));
/// let directory = Directory::new(budget)
///     .server("eu1", "postgres://app:secret@10.0.0.1:5432/postgres")?
///     .server("eu2", "postgres://app:secret@10.0.0.2:5432/postgres")?
///     .pool_size(4);
/// let registry = contrib::register(Registry::new(Database::connect("postgres://app:secret@10.0.0.1/app").await?))
///     .register::<contrib::DirectoryEntry>()
///     .directory(directory.clone());
/// registry.create_all().await?;
///
/// directory.add_tenant(&registry, "acme", "eu2", "customers_a").await?;
/// directory
///     .with_tenant(&registry, "acme", async {
///         // Product::query(&registry).all().await … runs on eu2, database customers_a.
///     })
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Directory {
    config: Arc<Config>,
    state: Arc<State>,
}

#[derive(Clone)]
struct Config {
    servers: Vec<Server>,
    budget: ConnectionBudget,
    pool_size: u32,
    acquire_timeout: Duration,
}

/// A configured server: its alias and the URL it is reached with (never shown).
#[derive(Clone)]
struct Server {
    alias: SchemaName,
    backend: Backend,
    url: String,
}

struct State {
    /// Open databases by `server/database`.
    databases: Mutex<HashMap<String, Database>>,
    /// `server/database`s checked not to be one of a registry's own databases, per registry
    /// (its default database's id): the check resolves SQLite paths on the file system,
    /// too slow for every request.
    checked: Mutex<HashMap<u64, std::collections::HashSet<String>>>,
    /// Serializes opening, so that one database never gets two pools.
    opening: tokio::sync::Mutex<()>,
    routes: Mutex<Routes>,
}

impl State {
    fn fresh() -> Arc<State> {
        Arc::new(State {
            databases: Mutex::new(HashMap::new()),
            checked: Mutex::new(HashMap::new()),
            opening: tokio::sync::Mutex::new(()),
            routes: Mutex::new(Routes {
                checked: HashMap::new(),
                entries: LruCache::new(ROUTES_CACHED),
                generation: 0,
            }),
        })
    }
}

struct Routes {
    /// When the epoch was last read, and its value, per registry (by its default database).
    checked: HashMap<u64, (Instant, Option<u128>)>,
    /// Entries by registry (its default database's id: one directory may serve several
    /// registries, each with its own table) and tenant.
    entries: LruCache<(u64, SchemaName), Option<Arc<CheckedEntry>>>,
    /// Bumped whenever entries are forgotten: a read that began before may not store what it
    /// read, which may be older than the change that made them forgotten.
    generation: u64,
}

/// Where a tenant lives, as the directory resolved it.
#[derive(Clone, Debug)]
pub struct Route {
    /// The tenant's schema on its database.
    pub schema: SchemaName,
    /// The server alias.
    pub server: String,
    /// The database's name on the server.
    pub database_name: String,
    /// The tenant's state.
    pub state: TenantState,
    /// The database, with its pool.
    pub database: Database,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let aliases: Vec<&str> = self
            .config
            .servers
            .iter()
            .map(|s| s.alias.as_str())
            .collect();
        f.debug_struct("Directory")
            .field("servers", &aliases)
            .field("budget", &self.config.budget)
            .finish_non_exhaustive()
    }
}

impl Directory {
    /// A directory with no server yet, whose pools share `budget`.
    pub fn new(budget: ConnectionBudget) -> Self {
        Directory {
            config: Arc::new(Config {
                servers: Vec::new(),
                budget,
                pool_size: 4,
                acquire_timeout: Duration::from_secs(5),
            }),
            state: State::fresh(),
        }
    }

    /// Declares server `alias` (a valid [`SchemaName`]), reached with `url`: a PostgreSQL or
    /// MySQL URL with credentials (its database is the one administrative statements run
    /// in, such as `CREATE DATABASE`; tenants' databases replace it), or `sqlite://DIR`, a
    /// directory whose `<database>.sqlite` files are the databases. A second declaration of
    /// an alias replaces the first. The URL is never logged nor shown in an error.
    pub fn server(mut self, alias: &str, url: &str) -> Result<Self> {
        let alias = SchemaName::parse(alias)?;
        let backend = backend_of(url)?;
        let server = Server {
            alias,
            backend,
            url: url.to_owned(),
        };
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        if backend == Backend::Sqlite && (in_memory || server.sqlite_dir().is_empty()) {
            return Err(Error::InvalidUrl {
                reason: format!(
                    "server {}: a SQLite server is a directory (sqlite://DIR), not an in-memory database or no path",
                    server.alias
                ),
            });
        }
        let config = Arc::make_mut(&mut self.config);
        let replaced = config.servers.iter().any(|s| s.alias == server.alias);
        config.servers.retain(|s| s.alias != server.alias);
        config.servers.push(server);
        if replaced {
            // Pools opened for the old server must not serve the new one's tenants: this
            // directory starts with none (clones made before keep theirs).
            self.state = State::fresh();
        }
        Ok(self)
    }

    /// The most connections each database's pool holds (default 4); the budget bounds them
    /// all together.
    pub fn pool_size(mut self, n: u32) -> Self {
        Arc::make_mut(&mut self.config).pool_size = n.max(1);
        self
    }

    /// How long a query waits for a connection of a tenant's database (default 5 s): also
    /// the bound within which a tenant whose server is down or refuses the credentials gets
    /// its error.
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        Arc::make_mut(&mut self.config).acquire_timeout = timeout;
        self
    }

    /// The budget the directory's pools share.
    pub fn budget(&self) -> &ConnectionBudget {
        &self.config.budget
    }

    /// The configured server aliases.
    pub fn servers(&self) -> impl Iterator<Item = &str> {
        self.config.servers.iter().map(|s| s.alias.as_str())
    }

    fn server_named(&self, alias: &str) -> Result<&Server> {
        self.config
            .servers
            .iter()
            .find(|s| s.alias.as_str() == alias)
            .ok_or_else(|| Error::UnknownDatabase {
                name: format!("{alias} (no such server in the directory's configuration)"),
            })
    }

    /// The database `database` on server `server`, its pool opened on first use (no
    /// connection is made until a query needs one).
    pub async fn database(&self, server: &str, database: &str) -> Result<Database> {
        let key = database_key(server, database);
        if let Some(db) = self.open_database(&key) {
            return Ok(db);
        }
        let database = SchemaName::parse(database).map_err(|_| Error::InvalidArgument {
            argument: "directory database",
            reason: "a database name must be a valid schema name",
        })?;
        let server = self.server_named(server)?;
        let _opening = self.state.opening.lock().await;
        if let Some(db) = self.open_database(&key) {
            return Ok(db);
        }
        let mut options = DatabaseOptions::new(&server.database_url(&database)?)
            .max_connections(self.config.pool_size)
            .acquire_timeout(self.config.acquire_timeout)
            .connection_budget(&self.config.budget);
        options.directory = true;
        let db = options.connect_lazy().await?;
        self.lock_databases().insert(key, db.clone());
        Ok(db)
    }

    fn open_database(&self, key: &str) -> Option<Database> {
        self.lock_databases().get(key).cloned()
    }

    fn lock_databases(&self) -> std::sync::MutexGuard<'_, HashMap<String, Database>> {
        self.state
            .databases
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Closes every pool the directory opened (they open again on next use).
    pub async fn disconnect(&self) {
        let databases: Vec<Database> = self.lock_databases().drain().map(|(_, db)| db).collect();
        for db in databases {
            db.disconnect().await;
        }
    }

    /// Where `tenant` lives, or `None` when the directory has no entry for it. Answered from
    /// memory; the tenants epoch is read at most once a second, and a change seen there
    /// (a tenant added, suspended or removed by any process) clears what is remembered.
    pub async fn route(&self, registry: &Registry, tenant: &SchemaName) -> Result<Option<Route>> {
        self.check_epoch(registry).await?;
        let key = (registry.database().id(), tenant.clone());
        let (cached, generation) = {
            let mut routes = self.lock_routes();
            (routes.entries.get(&key).cloned(), routes.generation)
        };
        let entry = match cached {
            Some(entry) => entry,
            None => {
                let entry = self.read_entry(registry, tenant).await?.map(Arc::new);
                let mut routes = self.lock_routes();
                if routes.generation == generation {
                    routes.entries.insert(key, entry.clone());
                }
                entry
            }
        };
        match entry {
            Some(entry) => Ok(Some(self.route_of(registry, &entry).await?)),
            None => Ok(None),
        }
    }

    pub(crate) async fn route_of(
        &self,
        registry: &Registry,
        entry: &CheckedEntry,
    ) -> Result<Route> {
        let database = self
            .routed_database(registry, entry.server.as_str(), entry.database.as_str())
            .await?;
        Ok(Route {
            schema: entry.schema.clone(),
            server: entry.server.to_string(),
            database_name: entry.database.to_string(),
            state: entry.state,
            database,
        })
    }

    async fn read_entry(
        &self,
        registry: &Registry,
        tenant: &SchemaName,
    ) -> Result<Option<CheckedEntry>> {
        let row = DirectoryEntry::query(registry)
            .filter(DirectoryEntry::schema_name().eq(tenant.as_str()))
            .first()
            .await?;
        match row {
            Some(row) => Ok(Some(self.check(&row)?)),
            None => Ok(None),
        }
    }

    /// An entry's fields validated, its server one of the configuration's.
    pub(crate) fn check(&self, entry: &DirectoryEntry) -> Result<CheckedEntry> {
        let checked = entry.checked()?;
        self.server_named(checked.server.as_str())?;
        Ok(checked)
    }

    async fn check_epoch(&self, registry: &Registry) -> Result<()> {
        let id = registry.database().id();
        let due = match self.lock_routes().checked.get(&id) {
            Some((at, _)) => at.elapsed() >= EPOCH_CHECK,
            None => true,
        };
        if !due {
            return Ok(());
        }
        let generation = self.lock_routes().generation;
        let epoch = Some(crate::contrib::epoch(registry).await?.as_u128());
        let mut routes = self.lock_routes();
        let changed = routes
            .checked
            .get(&id)
            .is_some_and(|(_, seen)| *seen != epoch);
        // Entries cached under an older epoch (or since a forget that raced this read) are
        // dropped: they may predate the change.
        if changed || routes.generation != generation {
            routes.entries.clear();
            routes.generation += 1;
        }
        routes.checked.insert(id, (Instant::now(), epoch));
        Ok(())
    }

    /// Forgets every remembered route (this process's own changes do it themselves).
    pub fn forget(&self) {
        let mut routes = self.lock_routes();
        routes.entries.clear();
        routes.checked.clear();
        routes.generation += 1;
    }

    /// [`Error::InvalidArgument`] when `server`/`database` is one of `registry`'s own
    /// databases (its default or an extra one; on MySQL also their tenant namespaces): a
    /// directory tenant there would be that database's tenant of the same name. Compared
    /// by name, whatever the server (a host can have several names).
    pub(crate) fn refuse_registry_database(
        &self,
        registry: &Registry,
        server: &str,
        database: &str,
    ) -> Result<()> {
        let server = self.server_named(server)?;
        let target = match server.backend {
            Backend::Sqlite => {
                crate::database::file_set(std::path::Path::new(server.sqlite_dir()), database)
            }
            _ => database.to_owned(),
        };
        let taken = registry.all_databases().any(|db| {
            db.backend() == server.backend
                && (db.name() == Some(target.as_str()) || db.tenant_namespace() == Some(database))
        });
        if taken {
            return Err(Error::InvalidArgument {
                argument: "directory entry",
                reason: "its database is one of the registry's own databases, whose tenants are not the directory's",
            });
        }
        Ok(())
    }

    /// [`database`](Self::database), for a tenant of `registry`: refused when it is one of
    /// the registry's own databases ([`refuse_registry_database`](Self::refuse_registry_database),
    /// checked once per registry and database).
    pub(crate) async fn routed_database(
        &self,
        registry: &Registry,
        server: &str,
        database: &str,
    ) -> Result<Database> {
        let key = database_key(server, database);
        let id = registry.database().id();
        let known = self
            .state
            .checked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id)
            .is_some_and(|keys| keys.contains(&key));
        if !known {
            self.refuse_registry_database(registry, server, database)?;
            self.state
                .checked
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(id)
                .or_default()
                .insert(key);
        }
        self.database(server, database).await
    }

    fn lock_routes(&self) -> std::sync::MutexGuard<'_, Routes> {
        self.state
            .routes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `future` in `tenant`'s scope, its queries routed to the tenant's database (see
    /// [`with_tenant_in`](crate::with_tenant_in)). [`Error::TenantNotFound`] for a tenant
    /// with no entry, [`Error::TenantSuspended`] for a suspended one: `future` does not run.
    pub async fn with_tenant<F: Future>(
        &self,
        registry: &Registry,
        tenant: impl TryInto<SchemaName, Error = Error>,
        future: F,
    ) -> Result<F::Output> {
        let tenant = tenant.try_into()?;
        let route = self
            .route(registry, &tenant)
            .await?
            .ok_or_else(|| Error::TenantNotFound {
                tenant: tenant.to_string(),
            })?;
        if route.state == TenantState::Suspended {
            return Err(Error::TenantSuspended {
                tenant: tenant.to_string(),
            });
        }
        Ok(with_tenant_in(route.database, route.schema, future).await)
    }
}

/// How a directory database is named in [`TenantInfo::database`](crate::TenantInfo::database).
pub(crate) fn database_key(server: &str, database: &str) -> String {
    let mut key = String::with_capacity(server.len() + 1 + database.len());
    key.push_str(server);
    key.push('/');
    key.push_str(database);
    key
}

impl Server {
    /// The URL of database `database` on this server.
    fn database_url(&self, database: &SchemaName) -> Result<String> {
        match self.backend {
            Backend::Postgres | Backend::MySql => {
                crate::testing::with_database(&self.url, database)
            }
            Backend::Sqlite => {
                let dir = self.sqlite_dir();
                Ok(format!("sqlite://{dir}/{database}.sqlite?mode=rwc"))
            }
        }
    }

    /// SQLite: the server's directory.
    fn sqlite_dir(&self) -> &str {
        let path = self
            .url
            .trim_start_matches("sqlite://")
            .trim_start_matches("sqlite:");
        let path = path.split('?').next().unwrap_or_default();
        path.trim_end_matches('/')
    }

    /// The server's own URL, for administrative statements.
    pub(crate) fn admin_url(&self) -> &str {
        &self.url
    }
}

impl Directory {
    pub(crate) fn server_for(&self, alias: &str) -> Result<(Backend, &str, Option<&str>)> {
        let server = self.server_named(alias)?;
        let dir = (server.backend == Backend::Sqlite).then(|| server.sqlite_dir());
        Ok((server.backend, server.admin_url(), dir))
    }
}
