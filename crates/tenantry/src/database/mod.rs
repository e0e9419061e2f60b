//! A connection to one database server (or SQLite file set), with its pool(s).

mod budget;
mod connection;
mod driver;
mod options;
mod pool;
mod sqlite;

use std::{str::FromStr, sync::Arc};

use sqlx::{mysql::MySqlConnectOptions, postgres::PgConnectOptions};

pub use budget::ConnectionBudget;
pub use connection::PooledConnection;
pub(crate) use driver::{
    attach_shared, run_on, run_pooled, Driver, Outcome, Place, Returns, RowSink,
};
pub use options::{DatabaseOptions, PoolSettings};
pub use pool::PoolStatus;
pub(crate) use pool::{Checkout, ConnPool};
pub(crate) use sqlite::{file_set, SqliteStore};

use crate::{
    backend::{Backend, Capabilities},
    citus::Deployment,
    error::{Error, Result},
    naming::TenantNamespace,
    schema_name::SchemaName,
    target::{Conn, Target},
};

/// One database: a URL, its backend and its connection pool(s). Cheap to clone.
///
/// URL schemes: `postgres://`, `postgresql://`, `mysql://`, `mariadb://`, `sqlite://path`
/// (add `?mode=rwc` to create the file) and `sqlite::memory:`.
///
/// Queries and transactions share one pool per database (per file on SQLite) with fair
/// waiters and LIFO reuse; see [`PoolSettings`] for its limits.
///
/// ```
/// # tokio_test_block_on(async {
/// let db = tenantry::Database::connect("sqlite::memory:").await.unwrap();
/// assert_eq!(db.backend(), tenantry::Backend::Sqlite);
/// db.disconnect().await;
/// # });
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
/// # }
/// ```
#[derive(Clone)]
pub struct Database {
    inner: Arc<Inner>,
}

struct Inner {
    pools: Pools,
    /// The namespace unqualified tables live in: PostgreSQL's `public`, the MySQL database
    /// named in the URL; none for SQLite, whose default schema is the main file.
    default_namespace: Option<Arc<str>>,
    settings: PoolSettings,
    /// Where tenant schemas live on the server (see [`crate::naming`]).
    tenant_namespace: TenantNamespace,
    /// Statements run again after a migration invalidated their cached plan.
    stale_plan_retries: std::sync::atomic::AtomicU64,
    /// Opened by a [`Directory`](crate::Directory) for its tenants: holds tenant schemas
    /// only, never the application's shared schema.
    directory: bool,
    /// Unique to this handle's pools in the process.
    id: u64,
    /// The database's name on its server (SQLite: the main file's path), to tell whether a
    /// directory entry names it.
    name: Option<Arc<str>>,
    /// Detected at connect (or at the first use of a lazily connected database).
    deployment: std::sync::OnceLock<Deployment>,
}

/// The next [`Database`] id.
static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

pub(crate) enum Pools {
    Postgres(ConnPool<sqlx::Postgres>),
    MySql(ConnPool<sqlx::MySql>),
    Sqlite(Box<SqliteStore>),
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("backend", &self.backend())
            .finish_non_exhaustive()
    }
}

impl Database {
    /// Connects to `url` with default pool settings (or those in the URL's query string).
    pub async fn connect(url: &str) -> Result<Database> {
        Database::options(url).connect().await
    }

    /// Builds the database without connecting; the first query connects.
    pub async fn connect_lazy(url: &str) -> Result<Database> {
        Database::options(url).connect_lazy().await
    }

    /// A builder for explicit pool settings.
    pub fn options(url: &str) -> DatabaseOptions {
        DatabaseOptions::new(url)
    }

    pub(crate) async fn from_options(options: DatabaseOptions, eager: bool) -> Result<Database> {
        let directory = options.directory;
        let (options, tenant_namespace) = options.take_tenant_namespace();
        let (url, settings) = options.resolve()?;
        let backend = backend_of(&url)?;
        let (pools, default_namespace, name) = match backend {
            Backend::Postgres => {
                let opts = PgConnectOptions::from_str(&url)
                    .map_err(invalid_url)?
                    .statement_cache_capacity(settings.statement_cache_capacity(Backend::Postgres));
                // Without a database in the URL, PostgreSQL connects to the user's.
                let name = Arc::from(opts.get_database().unwrap_or(opts.get_username()));
                (
                    Pools::Postgres(ConnPool::new(opts, &settings)?),
                    Some(Arc::from("public")),
                    Some(name),
                )
            }
            Backend::MySql => {
                let url = url.replacen("mariadb://", "mysql://", 1);
                let opts = MySqlConnectOptions::from_str(&url)
                    .map_err(invalid_url)?
                    .statement_cache_capacity(settings.statement_cache_capacity(Backend::MySql));
                let namespace: Option<Arc<str>> = opts.get_database().map(Arc::from);
                (
                    Pools::MySql(ConnPool::new(opts, &settings)?),
                    namespace.clone(),
                    namespace,
                )
            }
            Backend::Sqlite => {
                let store = SqliteStore::new(&url, &settings).await?;
                let name = store.main_path().map(Arc::from);
                (Pools::Sqlite(Box::new(store)), None, name)
            }
        };
        let tenant_namespace = TenantNamespace::new(
            backend,
            default_namespace.as_deref(),
            tenant_namespace.as_deref(),
        )?;
        let db = Database {
            inner: Arc::new(Inner {
                pools,
                default_namespace,
                settings,
                tenant_namespace,
                stale_plan_retries: std::sync::atomic::AtomicU64::new(0),
                directory,
                id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                name,
                deployment: std::sync::OnceLock::new(),
            }),
        };
        if eager {
            db.ping().await?;
            db.deployment().await?;
        }
        Ok(db)
    }

    /// Which engine this database runs on.
    pub fn backend(&self) -> Backend {
        match self.inner.pools {
            Pools::Postgres(_) => Backend::Postgres,
            Pools::MySql(_) => Backend::MySql,
            Pools::Sqlite(_) => Backend::Sqlite,
        }
    }

    /// How the database is deployed: [`Deployment::Citus`] on a Citus coordinator, else
    /// [`Deployment::Single`]. Read once, when the database connects (a lazily connected one
    /// reads it at its first call), then kept.
    pub async fn deployment(&self) -> Result<&Deployment> {
        let target = Target {
            conn: Conn::Database(self.clone()),
            schema: None,
        };
        self.deployment_via(&target).await
    }

    /// [`deployment`](Self::deployment), read through `target` if not known yet (inside a
    /// transaction: on its connection).
    pub(crate) async fn deployment_via(&self, target: &Target) -> Result<&Deployment> {
        if let Some(known) = self.inner.deployment.get() {
            return Ok(known);
        }
        let detected = crate::citus::detect(target).await?;
        Ok(self.inner.deployment.get_or_init(|| detected))
    }

    /// What this database can do: its backend's [`Capabilities`], those of a Citus
    /// coordinator once the [`deployment`](Self::deployment) is known to be one.
    pub fn capabilities(&self) -> &'static Capabilities {
        match self.inner.deployment.get() {
            Some(deployment) => self.backend().capabilities_in(deployment),
            None => self.backend().capabilities(),
        }
    }

    /// Checks out one connection and runs a trivial round trip on it, proving the server is
    /// reachable.
    pub async fn ping(&self) -> Result<()> {
        match &self.inner.pools {
            Pools::Postgres(pool) => ping(pool.get().await?).await,
            Pools::MySql(pool) => ping(pool.get().await?).await,
            Pools::Sqlite(store) => ping(store.main().get().await?).await,
        }
    }

    /// Closes the database: from now on every query, transaction and borrow fails with
    /// [`Error::Closed`]. Idle connections are closed at once; statements and transactions
    /// in flight may finish, for up to the disconnect timeout (10 s by default, see
    /// [`DatabaseOptions::disconnect_timeout`]); their connections are closed as they come
    /// back. Returns after the last connection closed or the timeout, whichever is first;
    /// never hangs on a statement that does not end.
    pub async fn disconnect(&self) {
        let bound = self.inner.settings.disconnect_timeout;
        let deadline = tokio::time::Instant::now() + bound;
        let all_closed = match &self.inner.pools {
            Pools::Postgres(pool) => pool.close(deadline).await,
            Pools::MySql(pool) => pool.close(deadline).await,
            Pools::Sqlite(store) => store.close(bound).await,
        };
        if !all_closed {
            tracing::warn!(
                backend = self.backend().name(),
                "disconnect: connections still in use after {bound:?}; they close when their work ends"
            );
        }
    }

    /// Whether [`disconnect`](Self::disconnect) has been called.
    pub fn is_closed(&self) -> bool {
        match &self.inner.pools {
            Pools::Postgres(pool) => pool.is_closed(),
            Pools::MySql(pool) => pool.is_closed(),
            Pools::Sqlite(store) => store.main().is_closed(),
        }
    }

    /// How many connections the pool (on SQLite: the main file's pool) holds and uses.
    pub fn pool_status(&self) -> PoolStatus {
        match &self.inner.pools {
            Pools::Postgres(pool) => pool.status(),
            Pools::MySql(pool) => pool.status(),
            Pools::Sqlite(store) => store.main().status(),
        }
    }

    pub(crate) fn pools(&self) -> &Pools {
        &self.inner.pools
    }

    pub(crate) fn default_namespace(&self) -> Option<&Arc<str>> {
        self.inner.default_namespace.as_ref()
    }

    /// How many statements ran a second time because a migration had altered their table
    /// while their prepared plan was cached (PostgreSQL's "cached plan must not change result
    /// type"): each had its connection's statement cache cleared and then succeeded or
    /// failed on its own. Zero on the other backends.
    pub fn stale_plan_retries(&self) -> u64 {
        self.inner
            .stale_plan_retries
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) fn count_stale_plan_retry(&self) {
        self.inner
            .stale_plan_retries
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    pub(crate) fn tenant_namespace_rules(&self) -> &TenantNamespace {
        &self.inner.tenant_namespace
    }

    /// Whether a [`Directory`](crate::Directory) opened this database for its tenants (it
    /// holds no shared schema: shared models are never read or joined there).
    pub fn is_directory_database(&self) -> bool {
        self.inner.directory
    }

    /// A number no other database of this process has.
    pub(crate) fn id(&self) -> u64 {
        self.inner.id
    }

    /// The database's name on its server (SQLite: its main file's path; `None` in memory).
    pub(crate) fn name(&self) -> Option<&str> {
        self.inner.name.as_deref()
    }

    /// Two handles to the same pools.
    pub(crate) fn same_as(&self, other: &Database) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Borrows a raw sqlx PostgreSQL connection from tenantry's own pool, for statements
    /// tenantry does not cover; it goes back to the pool when dropped. (This replaces the
    /// former `as_postgres()`, which exposed a second, sqlx-owned pool.) A PostgreSQL
    /// connection handed back must not carry session state (`SET search_path`, an open
    /// transaction): the next user may be another tenant.
    /// [`Error::Unsupported`] on another backend.
    pub async fn acquire_postgres(&self) -> Result<PooledConnection<sqlx::Postgres>> {
        match &self.inner.pools {
            Pools::Postgres(pool) => PooledConnection::new(pool.get().await?),
            _ => Err(self.not_this_backend("acquire_postgres")),
        }
    }

    /// Borrows a raw sqlx MySQL connection from tenantry's own pool; see
    /// [`acquire_postgres`](Self::acquire_postgres). Never `USE` another database on it.
    pub async fn acquire_mysql(&self) -> Result<PooledConnection<sqlx::MySql>> {
        match &self.inner.pools {
            Pools::MySql(pool) => PooledConnection::new(pool.get().await?),
            _ => Err(self.not_this_backend("acquire_mysql")),
        }
    }

    /// Borrows a raw sqlx SQLite connection to the file of `schema` (`None`: the main file);
    /// see [`acquire_postgres`](Self::acquire_postgres). [`Error::SchemaNotFound`] when the
    /// schema does not exist.
    pub async fn acquire_sqlite(
        &self,
        schema: Option<&SchemaName>,
    ) -> Result<PooledConnection<sqlx::Sqlite>> {
        match &self.inner.pools {
            Pools::Sqlite(store) => PooledConnection::new(store.checkout(schema).await?),
            _ => Err(self.not_this_backend("acquire_sqlite")),
        }
    }

    fn not_this_backend(&self, what: &'static str) -> Error {
        Error::Unsupported {
            backend: self.backend().name(),
            what,
        }
    }
}

async fn ping<DB: sqlx::Database>(mut conn: Checkout<DB>) -> Result<()> {
    use sqlx::Connection;
    if let Err(error) = conn.raw()?.ping().await {
        conn.after_error(&error);
        return Err(error.into());
    }
    conn.release();
    Ok(())
}

pub(crate) fn backend_of(url: &str) -> Result<Backend> {
    let scheme = url.split(':').next().unwrap_or_default();
    match scheme {
        "postgres" | "postgresql" => Ok(Backend::Postgres),
        "mysql" | "mariadb" => Ok(Backend::MySql),
        "sqlite" => Ok(Backend::Sqlite),
        _ => Err(Error::InvalidUrl {
            reason: format!(
                "unknown scheme {scheme:?}; expected postgres://, postgresql://, mysql://, mariadb://, sqlite:// or sqlite::memory:"
            ),
        }),
    }
}

fn invalid_url(error: sqlx::Error) -> Error {
    Error::InvalidUrl {
        reason: error.to_string(),
    }
}
