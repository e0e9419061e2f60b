//! The demo on a live Citus cluster (`TENANTRY_TEST_CITUS_URL`): 50 tenants provisioned through
//! its HTTP API are distributed schemas spread over both workers, the shared tables are
//! reference tables, and under 32 concurrent requests every tenant reads only its own rows.

mod common;

use common::{citus::CitusDb, http::Client};
use futures_util::{stream, StreamExt};
use serde_json::json;
use sqlx::{Connection as _, Row as _};
use tenantry::{Registry, SchemaName};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_tenants_through_the_demo_are_distributed_and_read_only_their_own_products() {
    let Some(cluster) = CitusDb::create("demo").await else {
        return;
    };
    let db = cluster.connect(16).await;
    let registry = tenantry_demo::register(Registry::new(db.clone()));
    let edgy = SchemaName::parse("edgy").unwrap();
    tenantry_demo::seed_as(&registry, &edgy).await.unwrap();
    let addr = common::http::spawn(&registry, true).await;

    let names: Vec<String> = (0..50).map(|i| format!("acme{i}")).collect();
    stream::iter(names.clone())
        .for_each_concurrent(4, |name| async move {
            let mut client = Client::connect(addr).await;
            let (status, body) = client
                .post(
                    "/tenants",
                    None,
                    json!({"schema_name": name, "tenant_name": name}),
                )
                .await;
            assert_eq!(status, 201, "{body}");
            for i in 0..3 {
                let (status, body) = client
                    .post(
                        "/products",
                        Some(&name),
                        json!({"name": format!("{name}-{i}")}),
                    )
                    .await;
                assert_eq!(status, 201, "{body}");
            }
        })
        .await;

    // Distributed schemas on both workers; the shared tables are reference tables.
    let nodes = db.citus().await.unwrap().nodes().await.unwrap();
    assert_eq!(nodes.len(), 2);
    for node in &nodes {
        assert!(
            node.tenants.len() >= 10,
            "{}:{} holds {}",
            node.host,
            node.port,
            node.tenants.len()
        );
    }
    let mut admin = cluster.admin().await;
    let reference: Vec<String> = sqlx::query(
        "SELECT logicalrelid::text FROM pg_dist_partition WHERE repmodel = 't' ORDER BY 1",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap()
    .iter()
    .map(|row| row.get(0))
    .collect();
    for shared in ["tenants", "tenant_users", "tenant_directory"] {
        assert!(
            reference.iter().any(|t| t == shared),
            "{shared} is not a reference table: {reference:?}"
        );
    }
    let distributed: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_dist_schema")
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert_eq!(distributed, 51, "50 tenants and edgy");
    admin.close().await.unwrap();

    // 32 requests at once, each tenant many times: only its own products.
    let requests: Vec<String> = (0..640).map(|i| names[(i * 13) % 50].clone()).collect();
    stream::iter(requests)
        .for_each_concurrent(32, |name| async move {
            let mut client = Client::connect(addr).await;
            let (status, body) = client.get("/products", Some(&name)).await;
            assert_eq!(status, 200, "{body}");
            let got: Vec<&str> = body
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["name"].as_str().unwrap())
                .collect();
            let expected: Vec<String> = (0..3).map(|i| format!("{name}-{i}")).collect();
            assert_eq!(got, expected, "tenant {name} read another's products");
        })
        .await;
    db.disconnect().await;
    cluster.drop().await;
}

/// The demo binary, logging warnings only.
fn demo(url: &str, args: &[&str]) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tenantry-demo"))
        .arg("--database-url")
        .arg(url)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    );
    assert!(output.status.success(), "{args:?}: {stdout}{stderr}");
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_lists_moves_and_rebalances_the_tenants() {
    let Some(cluster) = CitusDb::create("democli").await else {
        return;
    };
    let url = cluster.url();
    let migrated = demo(&url, &["migrate"]);
    assert!(!migrated.is_empty());
    for name in ["c0", "c1", "c2", "c3"] {
        demo(&url, &["tenants", "create", name]);
    }
    let nodes = demo(&url, &["tenants", "nodes"]);
    let workers: Vec<&str> = nodes.lines().filter(|l| !l.starts_with(' ')).collect();
    assert_eq!(workers.len(), 2, "{nodes}");
    let listed: Vec<&str> = nodes
        .lines()
        .filter_map(|l| l.strip_prefix("  "))
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    assert_eq!(listed.len(), 4, "{nodes}");
    // Move every tenant onto the first worker, then spread them again.
    let first = workers[0].split('\t').next().unwrap().to_owned();
    for name in ["c0", "c1", "c2", "c3"] {
        let out = demo(&url, &["tenants", "move", name, "--to", &first]);
        assert!(
            out.starts_with(&format!("moved tenant {name} from ")),
            "{out}"
        );
    }
    let nodes = demo(&url, &["tenants", "nodes"]);
    assert!(nodes.contains(&format!("{first}\t4 tenants")), "{nodes}");
    let spread = demo(&url, &["tenants", "rebalance"]);
    assert!(spread.contains("\t2 tenants"), "{spread}");
    assert!(!spread.contains("\t4 tenants"), "{spread}");
    // The tenants still read their own data through the demo.
    let db = cluster.connect(4).await;
    let registry = tenantry_demo::register(Registry::new(db.clone()));
    let addr = common::http::spawn(&registry, true).await;
    let mut client = Client::connect(addr).await;
    for name in ["c0", "c1", "c2", "c3"] {
        let (status, body) = client
            .post(
                "/products",
                Some(name),
                json!({"name": format!("{name}-p")}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        let (status, body) = client.get("/products", Some(name)).await;
        assert_eq!(status, 200, "{body}");
        let names: Vec<&str> = body
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, vec![format!("{name}-p")]);
    }
    db.disconnect().await;
    cluster.drop().await;
}
