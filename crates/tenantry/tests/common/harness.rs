//! The test harness, shared by the tests of tenantry, tenantry-axum and tenantry-demo (they
//! include this file with `#[path]`): every test body runs once per backend, each run in its
//! own database (PostgreSQL, MySQL) or directory (SQLite), so tests run in parallel. The
//! including `common` module provides `prepare`, which registers its models.
//!
//! PostgreSQL and MySQL run when `TENANTRY_TEST_POSTGRES_URL` / `TENANTRY_TEST_MYSQL_URL` are
//! set; with `TENANTRY_TEST_REQUIRE_ALL=1` a missing one fails the test instead of skipping.
#![allow(dead_code)]

use std::{
    future::Future,
    path::PathBuf,
    sync::atomic::{AtomicU32, Ordering},
};

use tenantry::{Backend, Database, Registry, SchemaName};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// One test's private database.
#[derive(Clone)]
pub struct TestDb {
    pub backend: Backend,
    pub registry: Registry,
    /// A unique prefix for every schema name the test makes (MySQL schemas are databases,
    /// shared by the whole server).
    pub prefix: String,
    admin_url: Option<String>,
    default_name: String,
    dir: Option<PathBuf>,
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

    /// The name of the test's default database on PostgreSQL and MySQL.
    pub fn database_name(&self) -> &str {
        &self.default_name
    }

    async fn cleanup(&self) {
        self.registry.disconnect().await;
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
                let names: Vec<(String,)> =
                    sqlx::query_as("SELECT datname FROM pg_database WHERE datname LIKE $1")
                        .bind(format!("{}%", self.prefix))
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
                let names: Vec<(String,)> = sqlx::query_as(
                    "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE ?",
                )
                .bind(format!("{}%", self.prefix))
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
    let default_name = format!("{prefix}_db");
    let (db, admin_url, dir) = match backend {
        Backend::Sqlite => {
            let dir = std::env::temp_dir().join(format!("tenantry-tests/{prefix}"));
            std::fs::create_dir_all(&dir).unwrap();
            (
                Database::connect(&sqlite_url(&dir)).await.unwrap(),
                None,
                Some(dir),
            )
        }
        _ => {
            create_server_database(backend, &url, &default_name).await;
            let db = Database::options(&with_database(&url, &default_name))
                .max_connections(8)
                .connect()
                .await
                .unwrap();
            (db, Some(url), None)
        }
    };
    let registry = super::prepare(Registry::new(db)).await;
    Some(TestDb {
        backend,
        registry,
        prefix,
        admin_url,
        default_name,
        dir,
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
