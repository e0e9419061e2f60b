//! Throwaway databases and tenants for tests, on any backend, as `#[sqlx::test]` gives each
//! test a database of its own.
//!
//! ```no_run
//! # async fn demo() -> tenantry::Result<()> {
//! use tenantry::{testing::{TestDatabase, TestTenant}, Registry};
//!
//! // PostgreSQL / MySQL: a new database beside the one the URL names; SQLite ("sqlite:"):
//! // a main file in a new temporary directory.
//! let server = std::env::var("DATABASE_URL").unwrap_or_else(|_| "sqlite:".into());
//! let test_db = TestDatabase::create(&server).await?;
//! let registry = Registry::new(test_db.database().clone());
//! registry.create_all().await?;
//! let tenant = TestTenant::create(&registry, "acme").await?;
//! // … queries with `.using(tenant.schema())` or inside `with_tenant` …
//! tenant.drop().await?;
//! test_db.drop().await?;
//! # Ok(()) }
//! ```
//!
//! Names are `tt_<pid>_<n>`: the process id and a per-process counter, so tests running in
//! parallel (and test binaries running side by side) never share one. Dropping is explicit
//! (an async drop cannot run in `Drop`): a test that panics before it leaves its database
//! behind, under a name that says which process made it.

use std::{
    path::PathBuf,
    sync::atomic::{AtomicUsize, Ordering},
};

use crate::{
    backend::Backend,
    database::Database,
    error::{Error, Result},
    namespace::NamespaceStatement,
    registry::Registry,
    schema_name::SchemaName,
    target::{Conn, Target},
};

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// The prefix of every database and tenant name this module makes.
const PREFIX: &str = "tt_";

/// A name no other test of any process running now has: `tt_<pid>_<n>[_<suffix>]`, short
/// enough for MySQL's 64 characters to hold tenant databases inside it.
fn unique_name(suffix: &str) -> Result<SchemaName> {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let mut name = format!("{PREFIX}{}_{n}", std::process::id());
    if !suffix.is_empty() {
        name.push('_');
        name.push_str(suffix);
    }
    SchemaName::parse(&name)
}

/// Creates a database of a new name: one a process with the same id left behind (process
/// ids are reused, and a killed test drops nothing) is skipped, never reused.
async fn create_unused(server_url: &str, backend: Backend) -> Result<SchemaName> {
    for _ in 0..100 {
        let name = unique_name("")?;
        let statement = NamespaceStatement::create_database(backend, &name);
        match run_on_server(server_url, &statement).await {
            Ok(()) => return Ok(name),
            Err(error) if crate::namespace::is_database_exists(backend, &error) => continue,
            Err(error) => return Err(error),
        }
    }
    Err(Error::InvalidArgument {
        argument: "test database",
        reason: "100 names in a row were taken by databases left behind; drop the tt_* databases",
    })
}

/// A database of one test: created empty, dropped with [`drop`](Self::drop).
pub struct TestDatabase {
    database: Database,
    url: String,
    place: Place,
}

enum Place {
    /// A database on a server, created through a connection to the URL's own database.
    Server {
        name: SchemaName,
        server_url: String,
    },
    /// A SQLite main file (and its tenant files) in a directory of its own.
    Directory(PathBuf),
}

impl TestDatabase {
    /// A new, empty database for one test. `server_url` names a PostgreSQL or MySQL server
    /// and a database on it that exists (the new database is created beside it, through a
    /// connection to it); a `sqlite:` URL (anything after `sqlite:` is ignored) gives a main
    /// file in a new temporary directory.
    pub async fn create(server_url: &str) -> Result<TestDatabase> {
        let backend = crate::database::backend_of(server_url)?;
        if backend == Backend::Sqlite {
            let dir = new_directory()?;
            let url = format!("sqlite://{}/main.sqlite?mode=rwc", dir.display());
            return Ok(TestDatabase {
                database: connect(&url).await?,
                url,
                place: Place::Directory(dir),
            });
        }
        let name = create_unused(server_url, backend).await?;
        let url = with_database(server_url, &name)?;
        let database = match connect(&url).await {
            Ok(database) => database,
            Err(error) => {
                let undone = drop_server_database(server_url, backend, &name).await;
                return Err(crate::error::compensated(
                    error,
                    "drop the test database",
                    undone,
                ));
            }
        };
        Ok(TestDatabase {
            database,
            url,
            place: Place::Server {
                name,
                server_url: server_url.to_owned(),
            },
        })
    }

    /// The database handle (its pools are closed by [`drop`](Self::drop)).
    pub fn database(&self) -> &Database {
        &self.database
    }

    /// The URL of this database, for handles with options of their own.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database's name on its server (on MySQL also its tenants' namespace); on SQLite
    /// the name of its directory.
    pub fn name(&self) -> &str {
        match &self.place {
            Place::Server { name, .. } => name.as_str(),
            Place::Directory(dir) => dir
                .file_name()
                .and_then(|name| name.to_str())
                .unwrap_or_default(),
        }
    }

    /// Closes the handle's pools and removes the database: on MySQL with the tenant
    /// databases of its namespace, on SQLite with its directory (every tenant file).
    ///
    /// The handle is disconnected first (every clone of it: a registry built on it too), so
    /// a transaction a test left open cannot hold a lock the drop waits for; the drops run
    /// on connections of their own.
    pub async fn drop(self) -> Result<()> {
        let backend = self.database.backend();
        self.database.disconnect().await;
        if let (Place::Server { .. }, Backend::MySql) = (&self.place, backend) {
            let admin = Database::options(&self.url)
                .max_connections(1)
                .connect()
                .await?;
            let dropped = drop_tenants(&admin).await;
            admin.disconnect().await;
            dropped?;
        }
        match self.place {
            Place::Directory(dir) => std::fs::remove_dir_all(&dir)
                .or_else(|e| match e.kind() {
                    std::io::ErrorKind::NotFound => Ok(()),
                    _ => Err(e),
                })
                .map_err(|e| Error::Database(sqlx::Error::Io(e))),
            Place::Server { name, server_url } => {
                drop_server_database(&server_url, backend, &name).await
            }
        }
    }
}

/// A tenant of one test: a new schema with every tenant model's tables, in a registry's
/// default database; removed with [`drop`](Self::drop).
pub struct TestTenant {
    registry: Registry,
    schema: SchemaName,
}

impl TestTenant {
    /// Creates schema `tt_<pid>_<n>_<label>` with the tables of every tenant model.
    /// `label` (lower-case letters, digits and `_`) only helps reading a failing test's
    /// names; [`Error::InvalidSchemaName`] when it makes the name invalid.
    pub async fn create(registry: &Registry, label: &str) -> Result<TestTenant> {
        let schema = unique_name(label)?;
        registry.schema().create(&schema, None, false, true).await?;
        Ok(TestTenant {
            registry: registry.clone(),
            schema,
        })
    }

    /// The tenant's schema, for `using` and `with_tenant`.
    pub fn schema(&self) -> &SchemaName {
        &self.schema
    }

    /// Drops the schema and everything in it.
    pub async fn drop(self) -> Result<()> {
        self.registry.schema().drop(&self.schema, true, true).await
    }
}

/// A target on `database`'s default schema, for the DDL of this module.
fn shared(database: &Database) -> Target {
    Target {
        conn: Conn::Database(database.clone()),
        schema: None,
    }
}

/// The test's handle. A test that ends with a transaction still open is not waited for
/// long: [`TestDatabase::drop`] closes it after 2 seconds.
async fn connect(url: &str) -> Result<Database> {
    Database::options(url)
        .disconnect_timeout(std::time::Duration::from_secs(2))
        .connect()
        .await
}

/// MySQL: drops every tenant database of `database`'s namespace. A lock held by a
/// transaction a test left open is waited for 5 seconds at most, then the drop fails (the
/// admin handle's one connection is its own, and closed afterwards).
async fn drop_tenants(database: &Database) -> Result<()> {
    let mut conn = database.acquire_mysql().await?;
    sqlx::query(MYSQL_LOCK_WAIT)
        .bind(5i64)
        .execute(&mut *conn)
        .await?;
    conn.release();
    for tenant in crate::namespace::list(database).await? {
        let statement = NamespaceStatement::drop(database, &tenant, true, true)?;
        shared(database).execute_ddl(statement.sql()).await?;
    }
    Ok(())
}

/// Bounds how long this session's DDL waits for a metadata lock (the value bound).
const MYSQL_LOCK_WAIT: &str = "SET SESSION lock_wait_timeout = ?";

/// A new directory for a SQLite test database, never one that exists (a directory left by
/// an earlier process with the same id is skipped, not reused).
fn new_directory() -> Result<PathBuf> {
    let io = |e| Error::Database(sqlx::Error::Io(e));
    let root = std::env::temp_dir().join("tenantry-testing");
    std::fs::create_dir_all(&root).map_err(io)?;
    loop {
        let dir = root.join(unique_name("")?.as_str());
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io(e)),
        }
    }
}

/// Runs `statement` on a short-lived connection to the database `server_url` names.
pub(crate) async fn run_on_server(server_url: &str, statement: &NamespaceStatement) -> Result<()> {
    let admin = Database::options(server_url)
        .max_connections(1)
        .connect()
        .await?;
    let result = shared(&admin).execute_ddl(statement.sql()).await;
    admin.disconnect().await;
    result
}

async fn drop_server_database(server_url: &str, backend: Backend, name: &SchemaName) -> Result<()> {
    run_on_server(
        server_url,
        &NamespaceStatement::drop_database(backend, name),
    )
    .await
}

/// `url` with its database replaced by `name`. Its query string is kept but for the keys
/// that would name another database (`dbname`) or share another namespace
/// (`tenant_namespace`): the new database is its own tenants' namespace.
pub(crate) fn with_database(url: &str, name: &SchemaName) -> Result<String> {
    let mut parsed = url::Url::parse(url).map_err(|e| Error::InvalidUrl {
        reason: e.to_string(),
    })?;
    parsed.set_path(&format!("/{name}"));
    let kept: Vec<(String, String)> = parsed
        .query_pairs()
        .filter(|(key, _)| key != "dbname" && key != "tenant_namespace")
        .map(|(key, value)| (key.into_owned(), value.into_owned()))
        .collect();
    parsed.set_query(None);
    if !kept.is_empty() {
        parsed.query_pairs_mut().extend_pairs(kept);
    }
    Ok(parsed.into())
}
