//! The demo on a private Citus cluster whose worker stops under load: the other worker's
//! tenants are served without an error, the stopped worker's tenants get 503 within the
//! acquire timeout, and every tenant is served again once the worker is back.

mod common;

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use common::{citus::PrivateCluster, http::Client};
use serde_json::json;
use tenantry::{Database, Registry, SchemaName};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_worker_gets_its_tenants_503_and_the_others_served() {
    let Some(cluster) = PrivateCluster::start("demodown") else {
        return;
    };
    let acquire = Duration::from_secs(5);
    let db = Database::options(cluster.url())
        .max_connections(16)
        .acquire_timeout(acquire)
        .connect()
        .await
        .unwrap();
    let registry = tenantry_demo::register(Registry::new(db.clone()));
    tenantry_demo::seed_as(&registry, &SchemaName::parse("edgy").unwrap())
        .await
        .unwrap();
    let addr = common::http::spawn(&registry, true).await;
    let mut client = Client::connect(addr).await;
    let names: Vec<String> = (0..8).map(|i| format!("d{i}")).collect();
    for name in &names {
        let (status, body) = client
            .post(
                "/tenants",
                None,
                json!({"schema_name": name, "tenant_name": name}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        let (status, body) = client
            .post(
                "/products",
                Some(name),
                json!({"name": format!("{name}-p")}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let stopped = cluster.worker_port(2);
    let (mut down, mut up) = (Vec::new(), Vec::new());
    for placement in db.citus().await.unwrap().placements().await.unwrap() {
        if !names.iter().any(|n| n == placement.schema.as_str()) {
            continue;
        }
        if placement.port == stopped {
            down.push(placement.schema.to_string());
        } else {
            up.push(placement.schema.to_string());
        }
    }
    assert!(
        !down.is_empty() && !up.is_empty(),
        "tenants on one worker only"
    );

    // Readers of the other worker's tenants, from before the stop until after the restart.
    let done = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(Mutex::new(Vec::new()));
    let readers: Vec<_> = up
        .iter()
        .cloned()
        .map(|name| {
            let (done, errors) = (done.clone(), errors.clone());
            tokio::spawn(async move {
                let mut client = Client::connect(addr).await;
                let mut reads = 0;
                while !done.load(Ordering::SeqCst) {
                    let (status, body) = client.get("/products", Some(&name)).await;
                    let first = body
                        .as_array()
                        .and_then(|a| a.first())
                        .map(|p| p["name"].clone());
                    if status != 200 || first != Some(json!(format!("{name}-p"))) {
                        errors
                            .lock()
                            .unwrap()
                            .push(format!("{name}: {status} {body}"));
                    }
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    cluster.stop_worker(2);
    for _ in 0..3 {
        for name in &down {
            let started = Instant::now();
            let (status, body) = client.get("/products", Some(name)).await;
            assert_eq!(status, 503, "tenant {name} on the stopped worker: {body}");
            assert!(
                started.elapsed() < acquire,
                "tenant {name} waited {:?}",
                started.elapsed()
            );
            // The body names neither the node nor any tenant.
            assert_eq!(body, json!({"error": "service unavailable, retry later"}));
        }
    }
    cluster.start_worker(2);
    let deadline = Instant::now() + Duration::from_secs(20);
    for name in &down {
        loop {
            let (status, body) = client.get("/products", Some(name)).await;
            if status == 200 {
                assert_eq!(body[0]["name"], json!(format!("{name}-p")));
                break;
            }
            assert!(
                Instant::now() < deadline,
                "tenant {name} not served again: {status} {body}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    done.store(true, Ordering::SeqCst);
    let mut reads = 0;
    for reader in readers {
        reads += reader.await.unwrap();
    }
    let errors = errors.lock().unwrap().clone();
    assert!(
        errors.is_empty(),
        "the other worker's tenants saw errors: {errors:?}"
    );
    assert!(reads > 20, "{reads} reads");
    db.disconnect().await;
}
