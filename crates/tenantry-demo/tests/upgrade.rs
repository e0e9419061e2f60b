//! The demo's first upgrade: databases made by the demo at e34eb8e (before migrations; the
//! fixtures in `tests/fixtures/e34eb8e`) are refused by `serve`, then adopted and upgraded in
//! place by `tenantry-demo migrate` on every backend, keeping every product of every tenant.
//! On MariaDB the tenant databases of that release (named exactly as the tenant) are moved
//! into the application's namespace first.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
};

use tenantry::{Database, Registry, SchemaName};
use tenantry_demo::models::Product;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/e34eb8e")
}

fn demo(url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tenantry-demo"))
        .arg("--database-url")
        .arg(url)
        .args(args)
        .env("RUST_LOG", "warn")
        .env_remove("DATABASE_URL")
        .output()
        .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The tenants of the fixture, as this test names them, with their products.
struct Expected {
    tenants: Vec<(SchemaName, Vec<String>)>,
}

fn expected(prefix: &str) -> Expected {
    let name = |s: &str| SchemaName::parse(&format!("{prefix}{s}")).unwrap();
    let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let edgy: Vec<String> = (0..10).map(|i| format!("Product-{i}")).collect();
    Expected {
        tenants: vec![
            (name("edgy"), edgy),
            (
                name("acme"),
                names(&["acme-widget-1", "acme-widget-2", "acme-widget-3"]),
            ),
            (name("globex"), names(&["globex-gear-1", "globex-gear-2"])),
        ],
    }
}

/// The whole upgrade against `url`: refused, migrated, verified.
async fn upgrade(url: &str, prefix: &str) {
    // Before the upgrade the service refuses the database, saying what to run.
    let refused = demo(url, &["--bind", "127.0.0.1:0"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(
        stderr.contains("no migration history") && stderr.contains("tenantry-demo migrate"),
        "{}",
        text(&refused)
    );
    let status = demo(url, &["migrate", "status"]);
    assert_eq!(status.status.code(), Some(1), "{}", text(&status));

    let migrated = demo(url, &["migrate"]);
    assert_eq!(migrated.status.code(), Some(0), "{}", text(&migrated));
    let stdout = String::from_utf8_lossy(&migrated.stdout);
    assert!(
        stdout.contains("shared schema: adopted at 0001_shared_initial"),
        "{}",
        text(&migrated)
    );
    assert!(
        stdout.contains("adopted           3"),
        "{}",
        text(&migrated)
    );

    let status = demo(url, &["migrate", "status"]);
    assert_eq!(status.status.code(), Some(0), "{}", text(&status));
    let again = demo(url, &["migrate"]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("migrated          0"),
        "{}",
        text(&again)
    );

    // Every product of every tenant is still there, with the new columns at their defaults;
    // each tenant sees only its own.
    let database = Database::connect(url).await.unwrap();
    let registry = tenantry_demo::register(Registry::new(database));
    let expected = expected(prefix);
    let reads = expected.tenants.iter().map(|(tenant, _)| {
        let registry = registry.clone();
        let tenant = tenant.clone();
        async move {
            Product::query(&registry)
                .using(&tenant)
                .order_by([Product::id().asc()])
                .all()
                .await
                .unwrap()
        }
    });
    let found = futures_util::future::join_all(reads).await;
    for ((tenant, names), products) in expected.tenants.iter().zip(found) {
        let got: Vec<String> = products.iter().map(|p| p.name.clone()).collect();
        assert_eq!(&got, names, "tenant {tenant}");
        assert!(products.iter().all(|p| p.price.is_zero() && p.stock == 0));
    }
    let shared = Product::query(&registry).count().await.unwrap();
    assert_eq!(shared, 25);
    // The upgraded schema takes the new columns.
    let (tenant, _) = &expected.tenants[1];
    let made = Product::query(&registry)
        .using(tenant)
        .create(Product {
            id: 0,
            name: "after-upgrade".into(),
            user: None,
            price: "12.34".parse().unwrap(),
            stock: 7,
        })
        .await
        .unwrap();
    assert_eq!(made.price.to_string(), "12.34");
    registry.disconnect().await;

    // And the service now starts on it (tenants list runs the same check first).
    let listed = demo(url, &["tenants", "list"]);
    assert_eq!(listed.status.code(), Some(0), "{}", text(&listed));
    for (tenant, _) in &expected.tenants {
        assert!(
            String::from_utf8_lossy(&listed.stdout).contains(tenant.as_str()),
            "{}",
            text(&listed)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e34eb8e_sqlite_upgrades_in_place() {
    let dir = std::env::temp_dir().join(format!("tenantry-upgrade-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(fixtures().join("sqlite")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
    }
    let url = format!("sqlite://{}/demo.sqlite?mode=rwc", dir.display());
    upgrade(&url, "").await;
    let _ = std::fs::remove_dir_all(&dir);
}

fn require(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) => Some(url),
        Err(_) if std::env::var("TENANTRY_TEST_REQUIRE_ALL").as_deref() == Ok("1") => {
            panic!("{var} is not set and TENANTRY_TEST_REQUIRE_ALL=1")
        }
        Err(_) => {
            eprintln!("skipping: {var} is not set");
            None
        }
    }
}

/// `url` with its database replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let base = url.rsplit_once('/').map_or(url, |(base, _)| base);
    format!("{base}/{name}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e34eb8e_postgres_upgrades_in_place() {
    let Some(admin) = require("TENANTRY_TEST_POSTGRES_URL") else {
        return;
    };
    let name = format!("e34up_{}", std::process::id());
    let pool = sqlx::PgPool::connect(&admin).await.unwrap();
    let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
    sqlx::query(&drop).execute(&pool).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&pool)
        .await
        .unwrap();
    let url = with_database(&admin, &name);
    let loaded = Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", &url, "-f"])
        .arg(fixtures().join("postgres.sql"))
        .stdout(Stdio::null())
        .output()
        .unwrap();
    assert!(loaded.status.success(), "{}", text(&loaded));
    upgrade(&url, "").await;
    sqlx::query(&drop).execute(&pool).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e34eb8e_mariadb_upgrades_in_place() {
    let Some(admin) = require("TENANTRY_TEST_MYSQL_URL") else {
        return;
    };
    // The dump names its databases server-wide; this run's names are its own, so runs and
    // other tests on the server never meet: `e34_fixture` and the legacy tenant databases
    // `edgy`, `acme`, `globex` (and the rows naming them) get a prefix.
    let pid = std::process::id();
    let (main, prefix) = (format!("e34up{pid}"), format!("u{pid}_"));
    let mut dump = std::fs::read_to_string(fixtures().join("mariadb.sql")).unwrap();
    dump = dump.replace("`e34_fixture`", &format!("`{main}`"));
    for tenant in ["edgy", "acme", "globex"] {
        dump = dump
            .replace(&format!("`{tenant}`"), &format!("`{prefix}{tenant}`"))
            .replace(&format!("'{tenant}'"), &format!("'{prefix}{tenant}'"));
    }
    let pool = sqlx::MySqlPool::connect(&admin).await.unwrap();
    let legacy: Vec<String> = ["edgy", "acme", "globex"]
        .iter()
        .map(|t| format!("{prefix}{t}"))
        .collect();
    let cleanup = || async {
        let mut names = vec![main.clone()];
        names.extend(legacy.iter().cloned());
        names.extend(legacy.iter().map(|t| format!("{main}${t}")));
        for name in names {
            sqlx::query(&format!("DROP DATABASE IF EXISTS `{name}`"))
                .execute(&pool)
                .await
                .unwrap();
        }
    };
    cleanup().await;
    let mut load = Command::new("mariadb")
        .args(["-h", "127.0.0.1", "-P", "3306", "-u", "root"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::io::Write::write_all(load.stdin.as_mut().unwrap(), dump.as_bytes()).unwrap();
    drop(load.stdin.take());
    assert!(load.wait().unwrap().success());
    let url = with_database(&admin, &main);
    let before = demo(&url, &["migrate", "status"]);
    assert_eq!(before.status.code(), Some(1), "{}", text(&before));
    upgrade(&url, &prefix).await;
    // The legacy databases are gone, moved into the namespace.
    for name in &legacy {
        let left: Option<(String,)> = sqlx::query_as(
            "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
        )
        .bind(name)
        .fetch_optional(&pool)
        .await
        .unwrap();
        assert!(left.is_none(), "legacy database {name} is still there");
    }
    cleanup().await;
}
