//! A connection to one database server (or SQLite file set), with its pool(s).

mod options;
mod sqlite;
mod stash;

use std::{str::FromStr, sync::Arc};

use sqlx::{mysql::MySqlConnectOptions, postgres::PgConnectOptions, MySqlPool, PgPool};

pub use options::{DatabaseOptions, PoolSettings};
pub(crate) use sqlite::SqliteStore;
pub(crate) use stash::Stash;

use crate::{
    backend::Backend,
    error::{Error, Result},
};

/// One database: a URL, its backend and its connection pool(s). Cheap to clone.
///
/// URL schemes: `postgres://`, `postgresql://`, `mysql://`, `mariadb://`, `sqlite://path`
/// (add `?mode=rwc` to create the file) and `sqlite::memory:`.
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
    /// Warm connections of the server backends (see [`Stash`]); the unused one stays empty.
    postgres_stash: Stash<sqlx::Postgres>,
    mysql_stash: Stash<sqlx::MySql>,
}

pub(crate) enum Pools {
    Postgres(PgPool),
    MySql(MySqlPool),
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
        let (url, settings) = options.resolve()?;
        let max_connections = settings.max_connections;
        let backend = backend_of(&url)?;
        let (pools, default_namespace) = match backend {
            Backend::Postgres => {
                let opts = PgConnectOptions::from_str(&url)
                    .map_err(invalid_url)?
                    .statement_cache_capacity(settings.statement_cache_capacity(Backend::Postgres));
                let pool = settings.pool_options().connect_lazy_with(opts);
                (Pools::Postgres(pool), Some(Arc::from("public")))
            }
            Backend::MySql => {
                let url = url.replacen("mariadb://", "mysql://", 1);
                let opts = MySqlConnectOptions::from_str(&url)
                    .map_err(invalid_url)?
                    .statement_cache_capacity(settings.statement_cache_capacity(Backend::MySql));
                let namespace = opts.get_database().map(Arc::from);
                let pool = settings.pool_options().connect_lazy_with(opts);
                (Pools::MySql(pool), namespace)
            }
            Backend::Sqlite => (
                Pools::Sqlite(Box::new(SqliteStore::new(&url, settings)?)),
                None,
            ),
        };
        let db = Database {
            inner: Arc::new(Inner {
                pools,
                default_namespace,
                postgres_stash: Stash::new(max_connections),
                mysql_stash: Stash::new(max_connections),
            }),
        };
        if eager {
            db.ping().await?;
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

    /// Opens one connection and runs a trivial round trip, proving the server is reachable.
    pub async fn ping(&self) -> Result<()> {
        use sqlx::Connection;
        match &self.inner.pools {
            Pools::Postgres(pool) => pool.acquire().await?.ping().await?,
            Pools::MySql(pool) => pool.acquire().await?.ping().await?,
            Pools::Sqlite(store) => store.main().acquire().await?.ping().await?,
        }
        Ok(())
    }

    /// Closes every pooled connection and waits for them to finish. Queries issued afterwards
    /// fail with [`Error::Database`] (`PoolClosed`).
    pub async fn disconnect(&self) {
        // The pool's close waits for every checked-out connection, stashed ones included.
        self.release_warm_connections();
        match &self.inner.pools {
            Pools::Postgres(pool) => pool.close().await,
            Pools::MySql(pool) => pool.close().await,
            Pools::Sqlite(store) => store.close().await,
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

    /// Hands the few connections tenantry keeps checked out for reuse (at most half the pool,
    /// see the executor notes in the README) back to the pool, so that the bare pool of
    /// [`as_postgres`](Self::as_postgres) / [`as_mysql`](Self::as_mysql) can hand out every
    /// connection. Later queries take them again as needed.
    pub fn release_warm_connections(&self) {
        self.inner.postgres_stash.release_all();
        self.inner.mysql_stash.release_all();
    }

    pub(crate) fn postgres_stash(&self) -> &Stash<sqlx::Postgres> {
        &self.inner.postgres_stash
    }

    pub(crate) fn mysql_stash(&self) -> &Stash<sqlx::MySql> {
        &self.inner.mysql_stash
    }

    pub(crate) fn pools(&self) -> &Pools {
        &self.inner.pools
    }

    pub(crate) fn default_namespace(&self) -> Option<&Arc<str>> {
        self.inner.default_namespace.as_ref()
    }

    /// Two handles to the same pools.
    pub(crate) fn same_as(&self, other: &Database) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// The bare sqlx PostgreSQL pool, for queries tenantry does not cover.
    pub fn as_postgres(&self) -> Option<&PgPool> {
        match &self.inner.pools {
            Pools::Postgres(pool) => Some(pool),
            _ => None,
        }
    }

    /// The bare sqlx MySQL pool, for queries tenantry does not cover.
    pub fn as_mysql(&self) -> Option<&MySqlPool> {
        match &self.inner.pools {
            Pools::MySql(pool) => Some(pool),
            _ => None,
        }
    }

    /// The bare sqlx pool of SQLite's main file, for queries tenantry does not cover.
    pub fn as_sqlite(&self) -> Option<&sqlx::SqlitePool> {
        match &self.inner.pools {
            Pools::Sqlite(store) => Some(store.main()),
            _ => None,
        }
    }

    /// The bare sqlx pool of SQLite schema `schema`'s file (each SQLite schema is its own
    /// file with its own pool); `None` on other backends, [`Error::SchemaNotFound`] when the
    /// schema does not exist.
    pub fn as_sqlite_schema(&self, schema: &crate::SchemaName) -> Option<Result<sqlx::SqlitePool>> {
        match &self.inner.pools {
            Pools::Sqlite(store) => Some(store.pool(Some(schema))),
            _ => None,
        }
    }
}

fn backend_of(url: &str) -> Result<Backend> {
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
