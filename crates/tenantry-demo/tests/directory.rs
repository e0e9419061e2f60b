//! The demo over a tenant directory: 300 tenants spread over three databases (PostgreSQL: two
//! databases of the test's server and one on a second cluster the test starts; MariaDB: two
//! databases; SQLite: three files), 3,000 concurrent requests, every answer its own tenant's
//! rows, the servers never seeing more connections than the budget, and a tenant added by
//! another process served without a restart.
mod common;
#[allow(dead_code)]
#[path = "../../tenantry/tests/common/servers.rs"]
mod servers;

use std::{
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use axum::{body::Body, http::Request};
use futures_util::{stream, StreamExt};
use http_body_util::BodyExt;
use serde_json::Value;
use tenantry::{
    contrib::DirectoryEntry, Backend, ConnectionBudget, Decimal, Directory, ForeignKey, Registry,
};
use tenantry_demo::models::{Product, User};
use tower::ServiceExt;

const TENANTS: usize = 300;
const REQUESTS: usize = 3_000;
const BUDGET: usize = 10;

/// Where the three databases are: (server alias, database) each, and the servers' URLs.
struct Layout {
    backend: Backend,
    servers: Vec<(String, String)>,
    databases: Vec<(String, String)>,
    /// PostgreSQL: the second cluster, stopped when dropped.
    _private: Option<servers::PrivateServer>,
}

fn layout(t: &common::TestDb) -> Layout {
    let db = |n: u32| format!("{}_d{n}", t.prefix);
    match t.backend {
        Backend::Postgres => {
            let private = servers::PrivateServer::postgres().expect("a second PostgreSQL cluster");
            Layout {
                backend: t.backend,
                servers: vec![
                    ("one".into(), t.server_url()),
                    ("two".into(), private.admin_url()),
                ],
                databases: vec![
                    ("one".into(), db(1)),
                    ("one".into(), db(2)),
                    ("two".into(), db(3)),
                ],
                _private: Some(private),
            }
        }
        Backend::MySql => Layout {
            backend: t.backend,
            servers: vec![("one".into(), t.server_url())],
            databases: vec![("one".into(), db(1)), ("one".into(), db(2))],
            _private: None,
        },
        Backend::Sqlite => Layout {
            backend: t.backend,
            servers: vec![("one".into(), t.server_url())],
            databases: vec![
                ("one".into(), db(1)),
                ("one".into(), db(2)),
                ("one".into(), db(3)),
            ],
            _private: None,
        },
    }
}

/// The budget: 10 server connections; on SQLite, where every tenant is a file of its own
/// with its own connection, 100 (a budget far below the number of busy tenants makes every
/// request open and close a file, a WAL checkpoint each: measured, 3,000 requests over 300
/// tenants with 10 did not finish within 20 s).
fn budget(backend: Backend) -> usize {
    match backend {
        Backend::Sqlite => 100,
        _ => BUDGET,
    }
}

fn directory(layout: &Layout) -> Directory {
    let budget = ConnectionBudget::new(budget(layout.backend)).wait(Duration::from_secs(20));
    let mut directory = Directory::new(budget)
        .pool_size(4)
        .acquire_timeout(Duration::from_secs(30));
    for (alias, url) in &layout.servers {
        directory = directory.server(alias, url).unwrap();
    }
    directory
}

/// Connections the servers report for the directory's databases; on SQLite (no server) the
/// budget's own count.
async fn open_connections(t: &common::TestDb, layout: &Layout, directory: &Directory) -> usize {
    let mut total = 0;
    for (alias, url) in &layout.servers {
        let names: Vec<String> = layout
            .databases
            .iter()
            .filter(|(a, _)| a == alias)
            .map(|(_, db)| db.clone())
            .collect();
        total += match t.backend {
            Backend::Sqlite => return directory.budget().in_use(),
            backend => servers::connections_on(backend, url, &names).await,
        };
    }
    total
}

async fn get(app: &axum::Router, tenant: &str) -> (u16, Value) {
    let request = Request::get("/products")
        .header("tenant", tenant)
        .body(Body::empty())
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn product_names(body: &Value) -> Vec<String> {
    body.as_array()
        .unwrap_or_else(|| panic!("not a list: {body}"))
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect()
}

async fn add_and_seed(
    registry: &Registry,
    directory: &Directory,
    tenant: &str,
    server: &str,
    db: &str,
) {
    directory
        .add_tenant(registry, tenant, server, db)
        .await
        .unwrap();
    directory
        .with_tenant(registry, tenant, async {
            let owner = User::query(registry)
                .create(User {
                    id: 0,
                    name: tenant.to_owned(),
                })
                .await
                .unwrap();
            Product::query(registry)
                .create(Product {
                    id: 0,
                    name: format!("p-{tenant}"),
                    user: Some(ForeignKey::from(&owner)),
                    price: Decimal::ONE,
                    stock: 1,
                })
                .await
                .unwrap();
        })
        .await
        .unwrap();
}

backend_test!(
    three_hundred_tenants_over_three_databases,
    |t: common::TestDb| async move {
        let layout = layout(&t);
        let directory = directory(&layout);
        let registry = tenantry_demo::register(t.registry.clone())
            .register::<DirectoryEntry>()
            .directory(directory.clone());
        registry.create_all().await.unwrap();
        let app = tenantry_demo::app(registry.clone(), true);

        let tenants: Vec<(String, usize)> = (0..TENANTS)
            .map(|i| (format!("c{i:03}"), i % layout.databases.len()))
            .collect();
        stream::iter(&tenants)
            .for_each_concurrent(8, |(tenant, place)| {
                let (server, db) = &layout.databases[*place];
                add_and_seed(&registry, &directory, tenant, server, db)
            })
            .await;

        // Sample the servers' own counts while the requests run.
        let done = Arc::new(AtomicBool::new(false));
        let most = Arc::new(AtomicUsize::new(0));
        let sampler = {
            let (done, most, directory) = (done.clone(), most.clone(), directory.clone());
            let t = t.clone();
            let layout_view = Layout {
                backend: layout.backend,
                servers: layout.servers.clone(),
                databases: layout.databases.clone(),
                _private: None,
            };
            tokio::spawn(async move {
                let mut samples = 0;
                while !done.load(Ordering::SeqCst) {
                    let seen = open_connections(&t, &layout_view, &directory).await;
                    most.fetch_max(seen, Ordering::SeqCst);
                    assert!(directory.budget().in_use() <= directory.budget().limit());
                    samples += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                samples
            })
        };
        let started = Instant::now();
        let requests = (0..REQUESTS).map(|i| {
            let app = app.clone();
            let tenant = tenants[(i * 7) % TENANTS].0.clone();
            tokio::spawn(async move {
                let (status, body) = get(&app, &tenant).await;
                (tenant, status, body)
            })
        });
        let answers = futures_util::future::join_all(requests).await;
        let took = started.elapsed();
        done.store(true, Ordering::SeqCst);
        let samples = sampler.await.unwrap();
        for answer in answers {
            let (tenant, status, body) = answer.unwrap();
            assert_eq!(status, 200, "{tenant}: {body}");
            assert_eq!(product_names(&body), [format!("p-{tenant}")], "{tenant}");
        }
        let most = most.load(Ordering::SeqCst);
        eprintln!(
        "{REQUESTS} requests over {TENANTS} tenants in {took:?}; at most {most} connections seen in {samples} samples (budget {})",
            budget(t.backend)
        );
        assert!(samples > 0);
        let limit = budget(t.backend);
        assert!(
            most <= limit,
            "the servers saw {most} connections, budget {limit}"
        );

        // A tenant added by another process (its own directory) is served without a restart.
        let other = self::directory(&layout);
        let other_registry = tenantry_demo::register(t.registry.clone())
            .register::<DirectoryEntry>()
            .directory(other.clone());
        let (server, db) = &layout.databases[0];
        let (status, _) = get(&app, "late").await;
        assert_eq!(status, 404);
        add_and_seed(&other_registry, &other, "late", server, db).await;
        let added = Instant::now();
        loop {
            let (status, body) = get(&app, "late").await;
            if status == 200 {
                assert_eq!(product_names(&body), ["p-late"]);
                break;
            }
            assert!(
                added.elapsed() < Duration::from_millis(2500),
                "not served after {:?}: {status} {body}",
                added.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        directory.disconnect().await;
        other.disconnect().await;
    }
);
