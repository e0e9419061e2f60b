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
