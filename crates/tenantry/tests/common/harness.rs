//! The test harness, shared by the tests of tenantry, tenantry-axum and tenantry-demo (they
//! include this file with `#[path]`): every test body runs once per backend, each run in its
//! own database (PostgreSQL, MySQL) or directory (SQLite), so tests run in parallel. The
//! including `common` module provides `prepare`, which registers its models.
//!
//! PostgreSQL and MySQL run when `TENANTRY_TEST_POSTGRES_URL` / `TENANTRY_TEST_MYSQL_URL` are
//! set; with `TENANTRY_TEST_REQUIRE_ALL=1` a missing one fails the test instead of skipping.
//!
//! Shapes: a pool of 8 and one task per tenant prove little about isolation. [`TestDb::with_pool`]
//! gives the same database and models over a pool of `n` connections, and
//! [`backend_pool_test!`](crate::backend_pool_test) runs one body on every backend once per
//! size in [`SHAPE_POOLS`] (1 and 2 connections).
#![allow(dead_code)]

use std::{
    future::Future,
    path::PathBuf,
    sync::{
        atomic::{AtomicU32, Ordering},
        Arc,
    },
};

use tenantry::{testing::TestDatabase, Backend, Database, Registry, SchemaName};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// The pool sizes [`backend_pool_test!`](crate::backend_pool_test) runs every body with.
pub const SHAPE_POOLS: [u32; 2] = [1, 2];

/// The pool size of [`setup`]'s registry on PostgreSQL and MySQL.
const DEFAULT_POOL: u32 = 8;

/// One test's private database.
#[derive(Clone)]
pub struct TestDb {
    pub backend: Backend,
    pub registry: Registry,
    /// A unique prefix for every schema and database name the test makes. Every server
    /// database of the test starts with `<prefix>_` (its default one is `<prefix>_db`, whose
    /// MySQL tenant databases are `<prefix>_db$<schema>`), which is how cleanup finds them.
    pub prefix: String,
    /// The most connections the registry's pool (on SQLite: each schema file's pool) opens.
    pub max_connections: u32,
    admin_url: Option<String>,
    default_name: String,
    dir: Option<PathBuf>,
    /// PostgreSQL and MySQL: the default database, made by `tenantry::testing` (dropped,
    /// with its MySQL tenant databases, by the cleanup).
    test_database: Option<Arc<tokio::sync::Mutex<Option<TestDatabase>>>>,
}

impl TestDb {
    /// A schema name unique to this test: `<prefix>_<name>`.
    pub fn schema(&self, name: &str) -> SchemaName {
        SchemaName::parse(&format!("{}_{name}", self.prefix)).unwrap()
    }

    /// A second, independent database on the same backend (for `extra`).
    pub async fn other_database(&self, suffix: &str) -> Database {
        let name = format!("{}_{suffix}", self.prefix);
        match self.backend {
            Backend::Sqlite => {
                let dir = self.dir.as_ref().unwrap();
                Database::connect(&format!(
                    "sqlite://{}/{name}.sqlite?mode=rwc",
                    dir.display()
                ))
                .await
                .unwrap()
            }
            _ => {
                let url = self.admin_url.as_ref().unwrap();
                create_server_database(self.backend, url, &name).await;
                Database::connect(&with_database(url, &name)).await.unwrap()
            }
        }
    }

    /// A fresh database handle on the test's default database, sharing nothing with the
    /// registry's pools.
    pub async fn reconnect(&self) -> Database {
        match self.backend {
            Backend::Sqlite => Database::connect(&sqlite_url(self.dir.as_ref().unwrap()))
                .await
                .unwrap(),
            _ => Database::connect(&with_database(
                self.admin_url.as_ref().unwrap(),
                &self.default_name,
            ))
            .await
            .unwrap(),
        }
    }

    /// Like [`reconnect`](Self::reconnect), with pools of at most `max_connections`
    /// connections (1 puts every query of the handle on one connection).
    pub async fn reconnect_with(&self, max_connections: u32) -> Database {
        let url = match self.backend {
            Backend::Sqlite => sqlite_url(self.dir.as_ref().unwrap()),
            _ => with_database(self.admin_url.as_ref().unwrap(), &self.default_name),
        };
        Database::options(&url)
            .max_connections(max_connections)
            .connect()
            .await
            .unwrap()
    }

    /// The URL of the test's default database (SQLite: its main file), for handles with
    /// options of their own (`Database::options(&t.url())`).
    pub fn url(&self) -> String {
        match self.backend {
            Backend::Sqlite => sqlite_url(self.dir.as_ref().unwrap()),
            _ => with_database(self.admin_url.as_ref().unwrap(), &self.default_name),
        }
    }

    /// The same database, schemas and prefix, with a registry over a fresh pool of at most
    /// `max_connections` connections (on SQLite: per schema file) and the same models (the
    /// including crate's `prepare`, whose table creation is idempotent). The caller
    /// disconnects it; [`run_with_pool`] does.
    pub async fn with_pool(&self, max_connections: u32) -> TestDb {
        let database = self.reconnect_with(max_connections).await;
        TestDb {
            registry: super::prepare(Registry::new(database)).await,
            max_connections,
            ..self.clone()
        }
    }

    /// The server the test runs on, as a tenant directory names one: the administrative URL
    /// on PostgreSQL and MySQL, `sqlite://<the test's directory>` on SQLite.
    pub fn server_url(&self) -> String {
        match self.backend {
            Backend::Sqlite => format!("sqlite://{}", self.dir.as_ref().unwrap().display()),
            _ => self.admin_url.clone().unwrap(),
        }
    }

    /// The name of the test's default database on PostgreSQL and MySQL.
    pub fn database_name(&self) -> &str {
        &self.default_name
    }

    async fn cleanup(&self) {
        self.registry.disconnect().await;
        if let Some(test_database) = &self.test_database {
            if let Some(test_database) = test_database.lock().await.take() {
                test_database.drop().await.unwrap();
            }
        }
        match self.backend {
            Backend::Sqlite => {
                if let Some(dir) = &self.dir {
                    let _ = std::fs::remove_dir_all(dir);
                }
            }
            Backend::Postgres => {
                let admin = sqlx::PgPool::connect(self.admin_url.as_ref().unwrap())
                    .await
                    .unwrap();
                let names: Vec<(String,)> = sqlx::query_as(
                    "SELECT datname FROM pg_database WHERE datname LIKE $1 ESCAPE '!'",
                )
                .bind(own_names(&self.prefix))
                .fetch_all(&admin)
                .await
                .unwrap();
                for (name,) in names {
                    let _ =
                        sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                            .execute(&admin)
                            .await;
                }
                admin.close().await;
            }
            Backend::MySql => {
                let admin = sqlx::MySqlPool::connect(self.admin_url.as_ref().unwrap())
                    .await
                    .unwrap();
                // The test's databases and, inside its namespaces, their tenant databases
                // (`<prefix>_db$<schema>`, `<prefix>_<suffix>$<schema>`).
                let names: Vec<(String,)> = sqlx::query_as(
                    "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA \
                     WHERE SCHEMA_NAME LIKE ? ESCAPE '!'",
                )
                .bind(own_names(&self.prefix))
                .fetch_all(&admin)
                .await
                .unwrap();
                for (name,) in names {
                    let _ = sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS `{name}`"))
                        .execute(&admin)
                        .await;
                }
                admin.close().await;
            }
        }
    }
}

/// A `LIKE` pattern (escape character `!`) for every server database a test made: its
/// names all start with `<prefix>_`. The wildcards of the prefix are escaped and the `_`
/// after it is required, so test `t1_x_1` never matches `t1_x_10_db` of test `t1_x_10`.
fn own_names(prefix: &str) -> String {
    let mut pattern = String::new();
    for ch in prefix.chars().chain(['_']) {
        if matches!(ch, '!' | '%' | '_') {
            pattern.push('!');
        }
        pattern.push(ch);
    }
    pattern.push('%');
    pattern
}

fn sqlite_url(dir: &std::path::Path) -> String {
    format!("sqlite://{}/main.sqlite?mode=rwc", dir.display())
}

fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let root = base.rsplit_once('/').map(|(r, _)| r).unwrap_or(base);
    let mut out = format!("{root}/{name}");
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

async fn create_server_database(backend: Backend, admin_url: &str, name: &str) {
    match backend {
        Backend::Postgres => {
            let admin = sqlx::PgPool::connect(admin_url).await.unwrap();
            sqlx::raw_sql(&format!("CREATE DATABASE \"{name}\""))
                .execute(&admin)
                .await
                .unwrap();
            admin.close().await;
        }
        Backend::MySql => {
            let admin = sqlx::MySqlPool::connect(admin_url).await.unwrap();
            sqlx::raw_sql(&format!(
                "CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
            ))
            .execute(&admin)
            .await
            .unwrap();
            admin.close().await;
        }
        Backend::Sqlite => unreachable!(),
    }
}

fn env_url(backend: Backend) -> Option<String> {
    let var = match backend {
        Backend::Postgres => "TENANTRY_TEST_POSTGRES_URL",
        Backend::MySql => "TENANTRY_TEST_MYSQL_URL",
        Backend::Sqlite => return Some(String::new()),
    };
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            if std::env::var("TENANTRY_TEST_REQUIRE_ALL").is_ok_and(|v| v == "1") {
                panic!("{var} is not set but TENANTRY_TEST_REQUIRE_ALL=1");
            }
            None
        }
    }
}

/// A new private database for one test on `backend`, or `None` when that backend is not
/// configured (and not required).
pub async fn setup(backend: Backend, test: &str) -> Option<TestDb> {
    let url = env_url(backend)?;
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let short: String = test
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(12)
        .collect::<String>()
        .to_lowercase();
    let prefix = format!("t{}_{}_{n}", std::process::id() % 100_000, short);
    // SQLite keeps the library's default (10 per schema file).
    let max_connections = match backend {
        Backend::Sqlite => 10,
        _ => DEFAULT_POOL,
    };
    let (db, admin_url, dir, default_name, test_database) = match backend {
        Backend::Sqlite => {
            let dir = std::env::temp_dir().join(format!("tenantry-tests/{prefix}"));
            std::fs::create_dir_all(&dir).unwrap();
            (
                Database::connect(&sqlite_url(&dir)).await.unwrap(),
                None,
                Some(dir),
                format!("{prefix}_db"),
                None,
            )
        }
        _ => {
            let test_database = TestDatabase::create(&url).await.unwrap();
            let db = Database::options(test_database.url())
                .max_connections(DEFAULT_POOL)
                .connect()
                .await
                .unwrap();
            let name = test_database.name().to_owned();
            (
                db,
                Some(url),
                None,
                name,
                Some(Arc::new(tokio::sync::Mutex::new(Some(test_database)))),
            )
        }
    };
    let registry = super::prepare(Registry::new(db)).await;
    Some(TestDb {
        backend,
        registry,
        prefix,
        max_connections,
        admin_url,
        default_name,
        dir,
        test_database,
    })
}

/// Runs `body` against a fresh database on `backend`, then cleans up.
pub async fn run<F, Fut>(backend: Backend, test: &str, body: F)
where
    F: FnOnce(TestDb) -> Fut,
    Fut: Future<Output = ()>,
{
    let Some(db) = setup(backend, test).await else {
        eprintln!("skipping {test} on {backend}: no database configured");
        return;
    };
    body(db.clone()).await;
    db.cleanup().await;
}

/// Runs `body` against a fresh database on `backend` whose registry has a pool of at most
/// `max_connections` connections (see [`TestDb::with_pool`]), then cleans up.
pub async fn run_with_pool<F, Fut>(backend: Backend, test: &str, max_connections: u32, body: F)
where
    F: FnOnce(TestDb) -> Fut,
    Fut: Future<Output = ()>,
{
    let name = format!("{test}_p{max_connections}");
    let Some(db) = setup(backend, &name).await else {
        eprintln!(
            "skipping {test} (pool of {max_connections}) on {backend}: no database configured"
        );
        return;
    };
    let small = db.with_pool(max_connections).await;
    body(small.clone()).await;
    small.registry.disconnect().await;
    db.cleanup().await;
}

/// Defines one test per backend from one body: `backend_test!(name, |t| async move { … });`
#[macro_export]
macro_rules! backend_test {
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                $crate::common::run(::tenantry::Backend::Sqlite, stringify!($name), $body).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                $crate::common::run(::tenantry::Backend::Postgres, stringify!($name), $body).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn mysql() {
                $crate::common::run(::tenantry::Backend::MySql, stringify!($name), $body).await;
            }
        }
    };
}

/// Defines one test per backend and pool size in [`SHAPE_POOLS`] from one body (named
/// `<backend>_pool<n>`): `backend_pool_test!(name, |t| async move { … });`. The body's
/// registry has a pool of `t.max_connections` connections.
#[macro_export]
macro_rules! backend_pool_test {
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            $crate::backend_pool_test!(@one $name, sqlite_pool1, Sqlite, 0, $body);
            $crate::backend_pool_test!(@one $name, sqlite_pool2, Sqlite, 1, $body);
            $crate::backend_pool_test!(@one $name, postgres_pool1, Postgres, 0, $body);
            $crate::backend_pool_test!(@one $name, postgres_pool2, Postgres, 1, $body);
            $crate::backend_pool_test!(@one $name, mysql_pool1, MySql, 0, $body);
            $crate::backend_pool_test!(@one $name, mysql_pool2, MySql, 1, $body);
        }
    };
    (@one $name:ident, $test:ident, $backend:ident, $size:expr, $body:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $test() {
            $crate::common::run_with_pool(
                ::tenantry::Backend::$backend,
                stringify!($name),
                $crate::common::SHAPE_POOLS[$size],
                $body,
            )
            .await;
        }
    };
}
