//! `tenantry::testing`: a throwaway database per test on every backend, throwaway tenants
//! in it (two of them, holding different rows, used concurrently in one task), and nothing
//! left on the server or on disk once they are dropped.
mod common;

use common::models::*;
use tenantry::{
    testing::{TestDatabase, TestTenant},
    with_tenant, Backend, Registry,
};

/// The server URLs the suite runs on (SQLite always).
fn servers() -> Vec<(Backend, String)> {
    let mut servers = vec![(Backend::Sqlite, "sqlite:".to_string())];
    for (backend, var) in [
        (Backend::Postgres, "TENANTRY_TEST_POSTGRES_URL"),
        (Backend::MySql, "TENANTRY_TEST_MYSQL_URL"),
    ] {
        match std::env::var(var) {
            Ok(url) if !url.is_empty() => servers.push((backend, url)),
            _ => assert!(
                std::env::var("TENANTRY_TEST_REQUIRE_ALL").as_deref() != Ok("1"),
                "{var} is not set but TENANTRY_TEST_REQUIRE_ALL=1"
            ),
        }
    }
    servers
}

/// Whether a database (or, on MySQL, a tenant database) named `name…` is on the server.
async fn server_holds(backend: Backend, server_url: &str, name: &str) -> bool {
    let pattern = format!("{name}%");
    match backend {
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(server_url).await.unwrap();
            let n: i64 =
                sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname LIKE $1")
                    .bind(&pattern)
                    .fetch_one(&pool)
                    .await
                    .unwrap();
            pool.close().await;
            n > 0
        }
        Backend::MySql => {
            let pool = sqlx::MySqlPool::connect(server_url).await.unwrap();
            let n: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE ?",
            )
            .bind(&pattern)
            .fetch_one(&pool)
            .await
            .unwrap();
            pool.close().await;
            n > 0
        }
        Backend::Sqlite => std::env::temp_dir()
            .join("tenantry-testing")
            .join(name)
            .exists(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_test_gets_a_database_and_tenants_of_its_own() {
    for (backend, server) in servers() {
        let (first, second) =
            tokio::join!(TestDatabase::create(&server), TestDatabase::create(&server));
        let (first, second) = (first.unwrap(), second.unwrap());
        assert_ne!(first.name(), second.name());
        assert_eq!(first.database().backend(), backend);
        let registry = common::models::register(Registry::new(first.database().clone()));
        registry.create_all().await.unwrap();
        let (a, b) = tokio::join!(
            TestTenant::create(&registry, "a"),
            TestTenant::create(&registry, "b")
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_ne!(a.schema(), b.schema());
        // Two tenants, different rows under the same ids, used concurrently in one task.
        let fill = |s, name: &'static str| {
            let registry = registry.clone();
            with_tenant(Some(s), async move {
                User::query(&registry).create(user(name)).await.unwrap();
                User::query(&registry)
                    .values_list(User::name())
                    .await
                    .unwrap()
            })
        };
        let (in_a, in_b) = tokio::join!(
            fill(a.schema().clone(), "ann"),
            fill(b.schema().clone(), "bob")
        );
        assert_eq!(in_a, ["ann"]);
        assert_eq!(in_b, ["bob"]);
        // The second database holds none of it.
        let other = common::models::register(Registry::new(second.database().clone()));
        other.create_all().await.unwrap();
        assert_eq!(User::query(&other).count().await.unwrap(), 0);
        assert!(!other.schema().exists(a.schema()).await.unwrap());

        let schema_a = a.schema().clone();
        a.drop().await.unwrap();
        assert!(!registry.schema().exists(&schema_a).await.unwrap());
        // b is left in place: dropping the database removes it too.
        drop(b);
        let names = [first.name().to_owned(), second.name().to_owned()];
        first.drop().await.unwrap();
        second.drop().await.unwrap();
        for name in names {
            assert!(
                !server_holds(backend, &server, &name).await,
                "{backend}: {name} is still there"
            );
        }
    }
}

#[tokio::test]
async fn bad_input_is_a_typed_error() {
    let url = TestDatabase::create("ftp://example.com/x").await;
    assert!(
        matches!(url, Err(tenantry::Error::InvalidUrl { .. })),
        "{:?}",
        url.err()
    );
    let db = TestDatabase::create("sqlite:").await.unwrap();
    let registry = Registry::new(db.database().clone());
    let label = TestTenant::create(&registry, "Not-Valid").await;
    assert!(
        matches!(label, Err(tenantry::Error::InvalidSchemaName { .. })),
        "{:?}",
        label.err()
    );
    db.drop().await.unwrap();
}
